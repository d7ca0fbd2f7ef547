//! What an upgrade records: per unit while parking, the handover that
//! crosses the kexec, and the report written after it.

use super::plan::Plan;
use crate::manager::state::ManagerState;
use serde::{Deserialize, Serialize};

/// One unit's journey through the upgrade.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitRecord {
    pub name: String,
    /// preserve, restart or rerun.
    pub mode: String,
    pub priority: u16,
    pub main_pid: i32,
    pub pids: Vec<u32>,
    /// Relative to the cgroup2 root.
    pub cgroup: String,
    /// Inodes of the output pipes its processes wrote to.
    pub pipes: Vec<u64>,
    /// Its RuntimeDirectory= names, carried in the store.
    #[serde(default)]
    pub runtime_dirs: Vec<String>,
    pub image_bytes: u64,
    /// Wall clock (µs since the epoch) when it was frozen.
    pub frozen_usec: u64,
    pub dump_ms: f64,
    /// A network-lock table was saved for its connections.
    pub lock_saved: bool,
    pub restore_ms: Option<f64>,
    /// Wall clock when it ran again.
    pub running_usec: Option<u64>,
    /// restored, restarted, rerun, or "state lost: REASON" (started afresh).
    pub outcome: String,
}

impl UnitRecord {
    /// Frozen → running again, in milliseconds (wall clock).
    pub fn stoppage_ms(&self) -> Option<f64> {
        self.running_usec
            .map(|r| r.saturating_sub(self.frozen_usec) as f64 / 1000.0)
    }
}

/// What crosses the kexec in the store's state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KexecHandover {
    pub state: ManagerState,
    pub plan: Plan,
    /// Preserved units, in freeze order.
    pub units: Vec<UnitRecord>,
    pub kernel_from: String,
    pub kernel_to: String,
    pub started_usec: u64,
    pub kexec_usec: u64,
}

/// `relivectl upgrade-report`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpgradeReport {
    pub kernel_from: String,
    pub kernel_to: String,
    pub started_usec: u64,
    pub kexec_usec: u64,
    /// relive started in the new kernel.
    pub resumed_usec: u64,
    pub finished_usec: u64,
    pub units: Vec<UnitRecord>,
    pub total_image_bytes: u64,
    pub longest_stoppage_ms: f64,
    /// How times across the kexec were measured, and their error.
    pub clock: String,
}

pub const CLOCK_NOTE: &str =
    "wall clock (CLOCK_REALTIME); across the kexec the new kernel sets it from the RTC, \
so times that span the kexec carry an error of up to about 1 s";

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}
