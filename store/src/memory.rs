//! The handover store in memory that survives the kexec, so that neither
//! the dump nor the restore waits on a disk.
//!
//! A region reserved on the kernel command line as legacy persistent
//! memory (`memmap=SIZE!OFFSET`) is left alone by the kernel and shown as
//! /dev/pmemN once `nd_e820` and `nd_pmem` are loaded. The next kernel,
//! given the same reservation, shows the same bytes: an ext4 made on it
//! before the kexec (and unmounted) mounts again after it. The region must
//! lie wholly in usable RAM and be 128 MiB aligned (LAB.md).

use relive_api::plan::{StoreChoice, StoreKind, StoreWanted, DEVICE_WORD};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why the memory store cannot be used or set up.
#[derive(Debug, thiserror::Error)]
pub enum MemoryStoreError {
    /// The running kernel reserves no region.
    #[error("no memmap=SIZE!OFFSET reservation on the running kernel's command line")]
    NoReservation,
    /// The next kernel would not leave the region alone.
    #[error(
        "the next kernel's command line does not reserve the same region ({0}): \
         it would overwrite the store (add it with --append, or use --reuse-cmdline)"
    )]
    NotReservedNext(Reservation),
    #[error("{} is missing (relive loads {} at boot when the command line reserves a region)", .0.display(), MODULES.join(" "))]
    NoDevice(PathBuf),
    #[error("modprobe -a {module}: {reason}")]
    Modprobe { module: String, reason: String },
    #[error("{} did not appear after loading {}", .0.display(), MODULES.join(" "))]
    DeviceDidNotAppear(PathBuf),
    #[error("{} is not a block device", .0.display())]
    NotABlockDevice(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mounting {device} on {MOUNT_POINT}: {source}")]
    Mount {
        device: PathBuf,
        source: nix::errno::Errno,
    },
    #[error("unmounting the memory store {MOUNT_POINT}: {0}")]
    Unmount(nix::errno::Errno),
}

fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> MemoryStoreError {
    let path = path.into();
    move |source| MemoryStoreError::Io { path, source }
}

/// Where relive mounts the memory store (root-only, under its own /run).
pub const MOUNT_POINT: &str = "/run/relive/handover";
const MODULES: &[&str] = &["nd_e820", "nd_pmem"];
/// ext4's own metadata and the store's headroom on a small region.
const USABLE_FRACTION: f64 = 0.9;

/// One `memmap=SIZE!OFFSET` reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub size: u64,
    pub offset: u64,
}

impl std::fmt::Display for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "memmap={}!{}",
            size_text(self.size),
            size_text(self.offset)
        )
    }
}

/// Every persistent-memory reservation on a command line (`memmap=` may
/// hold several, comma-separated; other memmap kinds are not ours).
pub fn reservations(cmdline: &str) -> Vec<Reservation> {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("memmap="))
        .flat_map(|v| v.split(','))
        .filter_map(|item| {
            let (size, offset) = item.split_once('!')?;
            Some(Reservation {
                size: parse_size(size)?,
                offset: parse_size(offset)?,
            })
        })
        .collect()
}

/// The kernel's memparse: a number with an optional K, M, G or T suffix.
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        b'T' | b't' => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    let n: u64 = if let Some(hex) = digits.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()?
    } else {
        digits.parse().ok()?
    };
    n.checked_mul(1 << shift)
}

fn size_text(bytes: u64) -> String {
    for (suffix, shift) in [("G", 30), ("M", 20), ("K", 10)] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Picks the store: `wanted` is "memory", "disk" or "auto" (memory when
/// it can be used, else disk). The memory store needs a reservation on the
/// running kernel's command line, the same one on the next kernel's, and
/// its device. Errors only when "memory" was asked for and cannot be had.
pub fn choose(
    wanted: StoreWanted,
    disk_dir: &Path,
    device: &Path,
    cmdline_now: &str,
    cmdline_next: &str,
) -> Result<StoreChoice, MemoryStoreError> {
    if wanted == StoreWanted::Disk {
        return Ok(StoreChoice::disk(
            disk_dir,
            "disk store (as configured)".into(),
        ));
    }
    let memory = (|| {
        let region = *reservations(cmdline_now)
            .first()
            .ok_or(MemoryStoreError::NoReservation)?;
        if !reservations(cmdline_next).contains(&region) {
            return Err(MemoryStoreError::NotReservedNext(region));
        }
        if !device.exists() {
            return Err(MemoryStoreError::NoDevice(device.to_owned()));
        }
        Ok(StoreChoice {
            kind: StoreKind::Memory,
            dir: store_dir(),
            device: Some(device.to_owned()),
            note: format!("memory store on {} ({region})", device.display()),
            capacity: Some((region.size as f64 * USABLE_FRACTION) as u64),
        })
    })();
    match (wanted, memory) {
        (_, Ok(choice)) => Ok(choice),
        (StoreWanted::Memory, Err(e)) => Err(e),
        (_, Err(e)) => Ok(StoreChoice::disk(
            disk_dir,
            format!("disk store (memory store unusable: {e})"),
        )),
    }
}

/// The store's root inside the mounted file system (the mount point
/// itself cannot be removed when the store is wiped).
pub fn store_dir() -> PathBuf {
    Path::new(MOUNT_POINT).join("upgrade")
}

/// Makes the device appear (loading the drivers if needed) and root-only.
/// At boot, before relive supervises any process: it waits for modprobe
/// itself.
pub fn attach(device: &Path) -> Result<(), MemoryStoreError> {
    if !device.exists() {
        // One modprobe for all: in a new kernel every process started
        // before the first restore delays it.
        let modprobe = |reason: String| MemoryStoreError::Modprobe {
            module: MODULES.join(" "),
            reason,
        };
        let status = std::process::Command::new("/usr/sbin/modprobe")
            .args(["-q", "-a"])
            .args(MODULES)
            .status()
            .map_err(|e| modprobe(e.to_string()))?;
        if !status.success() {
            return Err(modprobe(status.to_string()));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !device.exists() {
            if Instant::now() > deadline {
                return Err(MemoryStoreError::DeviceDidNotAppear(device.to_owned()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(device).map_err(io_error(device))?;
    if !meta.file_type().is_block_device() {
        return Err(MemoryStoreError::NotABlockDevice(device.to_owned()));
    }
    // The raw device holds the images too: root only, whatever udev made it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(device, std::fs::Permissions::from_mode(0o600))
        .map_err(io_error(device))
}

/// The command that makes a fresh ext4 on the device. No journal: the
/// file system is unmounted cleanly before the kexec.
pub fn mkfs_command(device: &Path) -> Vec<String> {
    [
        "/usr/sbin/mkfs.ext4",
        "-q",
        "-F",
        "-O",
        "^has_journal",
        "-L",
        "relive-handover",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(std::iter::once(device.display().to_string()))
    .collect()
}

/// Mounts the store's file system as the previous kernel left it.
pub fn mount(device: &Path) -> Result<(), MemoryStoreError> {
    use nix::mount::MsFlags;
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(MOUNT_POINT)
        .map_err(io_error(MOUNT_POINT))?;
    nix::mount::mount(
        Some(device),
        MOUNT_POINT,
        Some("ext4"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|source| MemoryStoreError::Mount {
        device: device.to_owned(),
        source,
    })?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(MOUNT_POINT, std::fs::Permissions::from_mode(0o700))
        .map_err(io_error(MOUNT_POINT))
}

/// Unmounts the store (before the kexec, and once it is wiped). Not
/// mounted: nothing to do.
pub fn unmount() {
    match nix::mount::umount2(MOUNT_POINT, nix::mount::MntFlags::empty()) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => tracing::warn!("unmounting {MOUNT_POINT}: {e}"),
    }
}

/// Unmounts the store before the kexec: the next kernel must find a clean
/// file system.
pub fn unmount_checked() -> Result<(), MemoryStoreError> {
    nix::mount::umount2(MOUNT_POINT, nix::mount::MntFlags::empty())
        .map_err(MemoryStoreError::Unmount)
}

/// Whether the memory store's file system is mounted.
pub fn is_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(MOUNT_POINT))
}

/// The memory store's device named on a command line, if any.
pub fn device_of(cmdline: &str) -> Option<PathBuf> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(DEVICE_WORD))
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_read_like_the_kernel_does() {
        assert_eq!(
            reservations("console=ttyS0 memmap=512M!1G quiet memmap=1G$3G"),
            [Reservation {
                size: 512 << 20,
                offset: 1 << 30
            }]
        );
        assert_eq!(
            reservations("memmap=0x1000!0x2000,4G!8G").len(),
            2,
            "hex and lists"
        );
        assert_eq!(reservations("memmap=banana!1G"), []);
        assert_eq!(
            Reservation {
                size: 512 << 20,
                offset: 1 << 30
            }
            .to_string(),
            "memmap=512M!1G"
        );
    }

    #[test]
    fn the_memory_store_needs_the_same_region_on_both_sides() {
        let disk = Path::new("/var/lib/relive/upgrade");
        let dev = Path::new("/nonexistent/pmem0");
        let now = "root=/dev/vda memmap=512M!1G";
        let choice = choose(StoreWanted::Auto, disk, dev, now, "root=/dev/vda").unwrap();
        assert_eq!(choice.kind, StoreKind::Disk);
        assert!(
            choice
                .note
                .contains("does not reserve the same region (memmap=512M!1G)"),
            "{}",
            choice.note
        );
        let e = choose(
            StoreWanted::Memory,
            disk,
            dev,
            now,
            "root=/dev/vda memmap=256M!1G",
        )
        .unwrap_err();
        assert!(matches!(e, MemoryStoreError::NotReservedNext(_)), "{e}");
        let choice = choose(StoreWanted::Auto, disk, dev, "root=/dev/vda", "x").unwrap();
        assert!(choice.note.contains("no memmap="), "{}", choice.note);
        assert_eq!(
            choose(StoreWanted::Disk, disk, dev, now, now).unwrap().kind,
            StoreKind::Disk
        );
    }

    #[test]
    fn markers_name_the_device_for_the_memory_store() {
        let c = StoreChoice {
            kind: StoreKind::Memory,
            dir: store_dir(),
            device: Some("/dev/pmem0".into()),
            note: String::new(),
            capacity: None,
        };
        assert_eq!(
            c.marker(),
            "relive.handover=/run/relive/handover/upgrade relive.handover_device=/dev/pmem0"
        );
        assert_eq!(device_of(&c.marker()), Some(PathBuf::from("/dev/pmem0")));
    }
}
