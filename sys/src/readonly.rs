//! The block devices' file systems left clean for a kexec: remounted
//! read-only by force, as sysrq's emergency remount does.
//!
//! kexec unmounts nothing: a mounted ext4 or XFS is left "not clean",
//! its journal needing recovery, and the new kernel (and the
//! initramfs's fsck) replay it before the root is mounted, in every
//! preserved service's stoppage. Remounting read-only is refused while
//! any process holds a file open for writing, which on a live upgrade
//! some frozen service always does. Freezing (FIFREEZE) is not refused,
//! but leaves the file system marked "not cleanly unmounted": fsck then
//! checks all of it, which is slower still.
//!
//! The emergency remount (sysrq "u") is the read-only remount without
//! the open-files check: every dirty block is written, the journal
//! flushed, and the file system marked clean. It is asynchronous: relive
//! waits until the file systems say "ro". Processes still running get
//! EROFS for writes from then on, which only matters if the kexec fails:
//! then the file systems are made writable again.

use procfs::process::MountInfo;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The mount points of the file systems on block devices that are
/// writable: one per device (bind mounts, and btrfs subvolumes, of a
/// file system name its device: the first one stands for all).
pub fn local_writable(mounts: &[MountInfo]) -> Vec<PathBuf> {
    let mut seen = std::collections::BTreeSet::new();
    mounts
        .iter()
        .filter(|m| {
            m.mount_source
                .as_deref()
                .is_some_and(|s| s.starts_with("/dev/"))
        })
        .filter(|m| m.super_options.contains_key("rw"))
        .filter(|m| seen.insert(m.mount_source.clone()))
        .map(|m| m.mount_point.clone())
        .collect()
}

fn writable_now() -> std::io::Result<Vec<PathBuf>> {
    let mounts = procfs::process::Process::myself()
        .and_then(|me| me.mountinfo())
        .map_err(std::io::Error::other)?;
    Ok(local_writable(&mounts.0))
}

/// The file systems made read-only for a kexec; [`ReadOnly::undo`] after
/// a failed one.
#[derive(Debug, Default)]
pub struct ReadOnly {
    paths: Vec<PathBuf>,
}

/// Remounts every block device's file system read-only by force and
/// waits, at most `timeout`, until they all are; logs what is not.
pub fn remount_all(timeout: Duration) -> ReadOnly {
    let before = match writable_now() {
        Ok(paths) => paths,
        Err(e) => {
            tracing::warn!("cannot list the mounts to remount them read-only: {e}");
            return ReadOnly::default();
        }
    };
    if before.is_empty() {
        return ReadOnly::default();
    }
    if let Err(e) = std::fs::write("/proc/sysrq-trigger", "u") {
        tracing::warn!(
            "cannot remount the file systems read-only (/proc/sysrq-trigger: {e}): the new kernel recovers their journals"
        );
        return ReadOnly::default();
    }
    let deadline = Instant::now() + timeout;
    let still = loop {
        let still: Vec<PathBuf> = writable_now()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| before.contains(p))
            .collect();
        if still.is_empty() || Instant::now() >= deadline {
            break still;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if !still.is_empty() {
        let names: Vec<String> = still.iter().map(|p| p.display().to_string()).collect();
        tracing::warn!(
            "still writable after {} s: {} (the new kernel recovers their journals)",
            timeout.as_secs(),
            names.join(", ")
        );
    }
    ReadOnly { paths: before }
}

impl ReadOnly {
    /// The mount points of the file systems made read-only.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Makes them writable again (the kexec failed: the machine goes on).
    pub fn undo(self) {
        use nix::mount::{mount, MsFlags};
        for path in &self.paths {
            if let Err(e) = mount(
                None::<&str>,
                path,
                None::<&str>,
                MsFlags::MS_REMOUNT,
                None::<&str>,
            ) {
                tracing::error!("cannot make {} writable again: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts(lines: &[&str]) -> Vec<MountInfo> {
        lines
            .iter()
            .map(|l| MountInfo::from_line(l).expect("a mountinfo line"))
            .collect()
    }

    #[test]
    fn one_mount_per_writable_block_file_system() {
        let mounts = mounts(&[
            "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
            "23 22 0:21 / /proc rw,nosuid shared:5 - proc proc rw",
            "24 22 0:25 / /run rw,nosuid shared:6 - tmpfs tmpfs rw,mode=755",
            "25 22 254:16 / /srv/data rw,relatime shared:7 - ext4 /dev/vdb rw",
            // A read-only bind of a writable file system: the same one.
            "26 22 254:0 /usr /usr ro,relatime shared:8 - ext4 /dev/vda rw",
            // A file system mounted read-only: nothing to flush.
            "27 22 7:0 / /mnt/iso ro,relatime shared:9 - iso9660 /dev/loop0 ro",
            "28 22 0:30 / /var/lib/containers rw shared:10 - overlay overlay rw,lowerdir=/a",
        ]);
        assert_eq!(
            local_writable(&mounts),
            [PathBuf::from("/"), PathBuf::from("/srv/data")]
        );
    }
}
