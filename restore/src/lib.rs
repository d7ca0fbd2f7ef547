//! After the kexec: relive finds the handover, puts the network locks
//! back, reruns the rerun units, checks each unit's images and restores it
//! with CRIU (most critical first), starts the rest, and writes the
//! report. A unit that cannot be restored starts afresh, or sends the
//! machine back to its previous kernel (OnRestoreFailure=rollback).
//!
//! - [`resume`]: the order of it all, and the report;
//! - `early`: the new kernel made ready for the restores, and timed;
//! - `tiers`: the units of one priority restored at once;
//! - [`verifier`]: checking images ahead of their restores, on a thread;
//! - [`revive`]: restoring one unit ([`revive::Restorer`], CRIU or a fake),
//!   also used on the old kernel when an upgrade is undone;
//! - [`rollback`]: the rollback units, and going back;
//! - [`netlock`]: the nftables tables CRIU locks TCP connections with;
//! - [`syn_hold`]: new connections to a checkpointed service, held;
//! - [`interrupted`]: the report of an upgrade that never finished.
//!
//! Everything outside the process goes through [`Seams`]: PID 1 (a
//! [`relive_host::UnitHost`]), CRIU, the freezer and kexec, so that the
//! orders and the failure policies are tested in-process.

mod clock;
mod early;
pub mod error;
#[cfg(any(test, feature = "fakes"))]
pub mod fake;
mod hold_lifter;
pub mod interrupted;
pub mod lazy;
pub mod lock_merge;
mod mount_flags;
pub mod netlock;
pub mod netstate;
pub mod pipe_switch;
pub mod resume;
pub mod revive;
pub mod rollback;
pub mod switchboard;
pub mod syn_hold;
mod tiers;
pub mod verifier;

#[cfg(test)]
mod tests;

pub use early::{ordinary_thread, urgent_thread, Ahead, ProbeAhead, EXITS_FILE};
pub use error::RestoreError;

use relive_host::UnitHost;
use relive_store::kexec::Kexec;
use relive_sys::freezer::Freezer;

/// What the restore side acts through.
#[derive(Clone, Copy)]
pub struct Seams<'a> {
    pub host: &'a dyn UnitHost,
    pub restorer: &'a dyn revive::Restorer,
    pub freezer: &'a dyn Freezer,
    pub kexec: &'a dyn Kexec,
}

impl std::fmt::Debug for Seams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seams")
    }
}

/// The cgroup directory of a cgroup path relative to the cgroup2 root.
pub fn cgroup_dir(cgroup: &str) -> std::path::PathBuf {
    std::path::Path::new(relive_sys::cgroup::ROOT).join(cgroup.trim_start_matches('/'))
}
