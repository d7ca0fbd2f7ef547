//! What the old kernel's relive tells the new one, in the store's state
//! file: PID 1's state, the plan, what happened to each unit so far, and
//! the kernel to go back to.
//!
//! The JSON is read by a relive that may be newer (the upgrade installs
//! one) or older (a rollback boots the previous kernel, whose root may
//! hold the older binary): fields are only ever added, each new one with a
//! default, and readers ignore what they do not know (docs/ARCHITECTURE.md,
//! "The handover format").

use relive_api::plan::Plan;
use relive_api::report::{Loss, UnitRecord, UpgradeMode};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What crosses the kexec in the store's state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KexecHandover {
    /// PID 1's manager state, as PID 1 serialized it: only PID 1 reads it.
    /// Kept as its JSON text: PID 1 decodes it once, straight into its
    /// own types (through a serde_json::Value it took seconds under
    /// emulation, in front of every restore).
    pub state: Box<serde_json::value::RawValue>,
    pub plan: Plan,
    /// Preserved units, in freeze order.
    pub units: Vec<UnitRecord>,
    pub kernel_from: String,
    pub kernel_to: String,
    pub started_usec: u64,
    pub kexec_usec: u64,
    /// Before two-phase upgrades existed, every upgrade was single-phase.
    #[serde(default = "single_phase")]
    pub mode: UpgradeMode,
    /// Phase 1 (background pre-dumps) began; it ended when the stoppage
    /// began (the first unit stopped or frozen).
    #[serde(default)]
    pub phase1_started_usec: u64,
    #[serde(default)]
    pub phase1_ended_usec: u64,
    /// What phase 1 cost the machine.
    #[serde(default)]
    pub phase1_cpu: Option<relive_api::report::Phase1Cpu>,
    /// Which store carried the images, and why.
    #[serde(default)]
    pub store: String,
    /// What the user should know (unit files edited meanwhile...).
    #[serde(default)]
    pub notes: Vec<String>,
    /// States lost before the stoppage (also in `notes`, as text).
    #[serde(default)]
    pub losses: Vec<Loss>,
    /// The kernel to go back to if a unit with OnRestoreFailure=rollback
    /// cannot be restored.
    #[serde(default)]
    pub previous: Option<PreviousKernel>,
    /// Set when this handover comes back from the new kernel: why it
    /// rolled back. There is no second rollback.
    #[serde(default)]
    pub rolled_back: Option<String>,
    /// The services' clocks at the kexec, which the new kernel's time
    /// namespace continues (relive_sys::timens). Zero from a relive that
    /// did not say: CRIU's own offsets then, one per unit.
    #[serde(default)]
    pub clock: relive_sys::timens::ClockAtKexec,
    /// The physical interfaces' addresses and routes before the stoppage,
    /// put back in the new kernel right after CRIU's network locks
    /// (relive_restore::netstate). None: not recorded.
    #[serde(default)]
    pub network: Option<relive_api::network::NetworkState>,
}

fn single_phase() -> UpgradeMode {
    UpgradeMode::SinglePhase
}

/// The running kernel, for a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousKernel {
    pub release: String,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// Its command line without relive's handover words.
    pub cmdline: String,
}

impl PreviousKernel {
    /// The running kernel, if its image is where Debian puts it.
    pub fn running() -> Option<PreviousKernel> {
        let release = kernel_release();
        let kernel = PathBuf::from(format!("/boot/vmlinuz-{release}"));
        let initrd = PathBuf::from(format!("/boot/initrd.img-{release}"));
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

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `relive.handover=PATH` on a kernel command line: the store to resume from.
pub fn marker(cmdline: &str) -> Option<PathBuf> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(relive_api::plan::STORE_WORD))
        .map(PathBuf::from)
}

/// Why the store a kernel command line names is not used (nor touched).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MarkerRefused {
    #[error("relive.handover={} is not one of relive's store locations ({}, {})", path.display(), disk.display(), memory.display())]
    NotAStore {
        path: PathBuf,
        disk: PathBuf,
        memory: PathBuf,
    },
    #[error("relive.handover_device={} is not a persistent-memory device (/dev/pmemN)", .0.display())]
    NotPmem(PathBuf),
    #[error("relive.handover_device= names the memory store, but relive.handover={} is not its directory ({})", path.display(), memory.display())]
    DeviceWithoutMemoryStore { path: PathBuf, memory: PathBuf },
}

/// Checks what a command line names before relive reads, mounts or wipes
/// anything: the store must be relive's own (`disk_store` from the
/// configuration, or the memory store), the device a pmem device. Anyone
/// who can set the command line could otherwise have relive delete any
/// directory (a refused store is wiped) or mount any device.
pub fn check_marker(
    path: &std::path::Path,
    device: Option<&std::path::Path>,
    disk_store: &std::path::Path,
) -> Result<(), MarkerRefused> {
    let memory = crate::memory::store_dir();
    if let Some(device) = device {
        let pmem = device
            .to_str()
            .and_then(|d| d.strip_prefix("/dev/pmem"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !pmem {
            return Err(MarkerRefused::NotPmem(device.to_owned()));
        }
        if path != memory {
            return Err(MarkerRefused::DeviceWithoutMemoryStore {
                path: path.to_owned(),
                memory,
            });
        }
        return Ok(());
    }
    if path == disk_store {
        return Ok(());
    }
    Err(MarkerRefused::NotAStore {
        path: path.to_owned(),
        disk: disk_store.to_owned(),
        memory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_found_on_the_command_line() {
        assert_eq!(
            marker("console=ttyS0 relive.handover=/var/lib/relive/upgrade quiet"),
            Some(PathBuf::from("/var/lib/relive/upgrade"))
        );
        assert_eq!(marker("console=ttyS0 quiet"), None);
    }

    #[test]
    fn only_relive_s_own_stores_and_pmem_devices_are_accepted() {
        let disk = std::path::Path::new("/var/lib/relive/upgrade");
        let memory = crate::memory::store_dir();
        let pmem = std::path::Path::new("/dev/pmem0");
        assert_eq!(check_marker(disk, None, disk), Ok(()));
        assert_eq!(check_marker(&memory, Some(pmem), disk), Ok(()));
        // relive.handover=/var would have had /var deleted at boot.
        let e = check_marker(std::path::Path::new("/var"), None, disk).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("relive.handover=/var is not one of relive's store locations"),
            "{e}"
        );
        assert!(check_marker(
            std::path::Path::new("/var/lib/relive/upgrade/.."),
            None,
            disk
        )
        .is_err());
        for device in ["/dev/sda", "/dev/pmem", "/dev/pmem0/../sda", "/tmp/pmem0"] {
            let device = std::path::Path::new(device);
            assert_eq!(
                check_marker(&memory, Some(device), disk),
                Err(MarkerRefused::NotPmem(device.to_owned()))
            );
        }
        assert!(
            check_marker(disk, Some(pmem), disk).is_err(),
            "the device goes with the memory store"
        );
    }
}
