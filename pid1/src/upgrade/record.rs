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
    /// Checking its images against the manifest, before the restore (not
    /// in restore_ms).
    #[serde(default)]
    pub verify_ms: Option<f64>,
    /// Wall clock when it ran again.
    pub running_usec: Option<u64>,
    /// restored, restarted, rerun, or "state lost: REASON" (started afresh).
    pub outcome: String,
    /// Phase 1: the background pre-dump rounds, in order.
    #[serde(default)]
    pub pre_dumps: Vec<PreDumpRound>,
    /// Why the pre-dump rounds stopped (or why there were none).
    #[serde(default)]
    pub convergence: String,
    /// The final dump: "clean-skip" (pre-dumped, and none of its tasks ran
    /// since the last pre-dump), "incremental" (pre-dumped, tasks ran) or
    /// "full" (no usable pre-dump).
    #[serde(default)]
    pub final_dump: String,
    /// Bytes CRIU wrote in the final dump, i.e. during the stoppage.
    #[serde(default)]
    pub stoppage_bytes: u64,
    /// OnRestoreFailure=rollback.
    #[serde(default)]
    pub rollback: bool,
}

/// One background pre-dump of one unit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PreDumpRound {
    pub round: u32,
    /// Wall clock when it started.
    pub started_usec: u64,
    pub duration_ms: f64,
    /// How long CRIU kept the tasks frozen (its stats), when known.
    pub frozen_ms: Option<f64>,
    /// Pages written in this round: all of them in the first, the ones
    /// dirtied since the previous round afterwards.
    pub pages_written: u64,
    /// Bytes of this round's images.
    pub bytes: u64,
    /// Whether any of the unit's tasks had used the CPU since the previous
    /// round (always true for the first).
    pub ran: bool,
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
    /// "two-phase" or "single-phase".
    #[serde(default)]
    pub mode: String,
    /// Phase 1 (background pre-dumps) began; it ended when the stoppage
    /// began (the first unit stopped or frozen).
    #[serde(default)]
    pub phase1_started_usec: u64,
    #[serde(default)]
    pub phase1_ended_usec: u64,
    /// Which store carried the images, and why.
    #[serde(default)]
    pub store: String,
    /// What the user should know (unit files edited meanwhile...).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The kernel to go back to if a unit with OnRestoreFailure=rollback
    /// cannot be restored.
    #[serde(default)]
    pub previous: Option<PreviousKernel>,
    /// Set when this handover comes back from the new kernel: why it
    /// rolled back. There is no second rollback.
    #[serde(default)]
    pub rolled_back: Option<String>,
}

/// The running kernel, for a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousKernel {
    pub release: String,
    pub kernel: std::path::PathBuf,
    pub initrd: Option<std::path::PathBuf>,
    /// Its command line without relive's handover words.
    pub cmdline: String,
}

impl PreviousKernel {
    /// The running kernel, if its image is where Debian puts it.
    pub fn running() -> Option<PreviousKernel> {
        let release = kernel_release();
        let kernel = std::path::PathBuf::from(format!("/boot/vmlinuz-{release}"));
        let initrd = std::path::PathBuf::from(format!("/boot/initrd.img-{release}"));
        let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
        kernel.is_file().then(|| PreviousKernel {
            release,
            kernel,
            initrd: initrd.is_file().then_some(initrd),
            cmdline: cmdline
                .split_whitespace()
                .filter(|w| !w.starts_with("relive.handover"))
                .collect::<Vec<_>>()
                .join(" "),
        })
    }
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
    /// The network locks and the rerun units done: the restores began.
    #[serde(default)]
    pub restores_started_usec: u64,
    pub finished_usec: u64,
    pub units: Vec<UnitRecord>,
    /// "two-phase" or "single-phase".
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub phase1_started_usec: u64,
    #[serde(default)]
    pub phase1_ended_usec: u64,
    /// Which store carried the images, and why.
    #[serde(default)]
    pub store: String,
    #[serde(default)]
    pub notes: Vec<String>,
    /// Why the upgrade went back to the previous kernel, if it did.
    #[serde(default)]
    pub rolled_back: Option<String>,
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
