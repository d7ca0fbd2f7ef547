//! Before the kexec: the plan and its preflight, phase 1's background
//! pre-dumps (and the warm snapshot that keeps them between upgrades),
//! then the stoppage: stop the restart units, freeze and dump the
//! preserved ones in ascending priority, write the handover, kexec. Any
//! failure is undone: the units run on, on the old kernel.
//!
//! - [`request`]: what the caller asked for;
//! - [`plan`], [`connections`], [`pipes`]: the parts of the plan that read /proc;
//! - [`preflight`]: every check that can be made before anything changes;
//! - [`predump`], [`warm`]: phase 1; [`budget`]: its share of the CPUs;
//! - [`park`]: phase 2, the kexec, and the undo;
//! - [`control`]: a cancel from outside, before the stoppage;
//! - [`dump`]: CRIU, behind the [`dump::Dumper`] trait.
//!
//! Everything outside the process goes through [`Seams`], so that the
//! parking order and every undo path are tested in-process.

pub mod budget;
pub mod compat;
pub mod connections;
pub mod control;
pub mod dump;
pub mod error;
pub mod initrd;
pub mod park;
pub mod pipes;
pub mod plan;
pub mod predump;
pub mod preflight;
mod ptys;
pub mod request;
pub mod shared_memory;
mod shm_ids;
pub mod tree;
pub mod unix_ties;
pub mod warm;

#[cfg(test)]
mod tests;

pub use error::UpgradeError;
pub use request::UpgradeRequest;

use relive_host::UnitHost;
use relive_restore::revive::Restorer;
use relive_store::kexec::Kexec;
use relive_sys::freezer::Freezer;

/// What the snapshot side acts through: PID 1, CRIU both ways, the
/// freezer and kexec.
#[derive(Clone, Copy)]
pub struct Seams<'a> {
    pub host: &'a dyn UnitHost,
    pub dumper: &'a dyn dump::Dumper,
    pub restorer: &'a dyn Restorer,
    pub freezer: &'a dyn Freezer,
    pub kexec: &'a dyn Kexec,
    /// Where the upgrade stands, for a cancel from outside its thread.
    pub control: &'a control::UpgradeControl,
}

impl std::fmt::Debug for Seams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seams")
    }
}

impl<'a> Seams<'a> {
    /// The same, for the restore side (an undo restores on the old kernel).
    pub fn restore(&self) -> relive_restore::Seams<'a> {
        relive_restore::Seams {
            host: self.host,
            restorer: self.restorer,
            freezer: self.freezer,
            kexec: self.kexec,
        }
    }
}
