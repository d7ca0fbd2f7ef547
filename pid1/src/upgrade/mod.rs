//! Live kernel upgrades.
//!
//! So far: the plan and the preflight, which `relivectl live-upgrade
//! --dry-run` shows. The upgrade itself (freeze, CRIU dump, kexec, restore)
//! is being built on top of them.

pub mod connections;
pub mod criu;
pub mod helper;
pub mod park;
pub mod plan;
pub mod preflight;
pub mod record;
pub mod resume;
pub mod revive;
pub mod store;

/// A step of the upgrade, shown live by `relivectl live-upgrade`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub phase: String,
    pub unit: String,
    pub bytes: u64,
    pub message: String,
}

impl Progress {
    pub fn new(phase: &str, unit: &str, bytes: u64, message: &str) -> Progress {
        Progress {
            phase: phase.into(),
            unit: unit.into(),
            bytes,
            message: message.into(),
        }
    }
}
