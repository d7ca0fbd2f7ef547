//! Local file systems frozen for a kexec (FIFREEZE, as fsfreeze(8) does).
//!
//! kexec unmounts nothing: a mounted ext4 or XFS is left with its journal
//! marked "needs recovery", and the new kernel replays it before it can
//! mount the root, in every preserved service's stoppage. Remounting /
//! read-only is refused while any process holds a file open for writing,
//! which on a live upgrade some frozen service always does. Freezing is
//! not: the file system writes every dirty block, flushes its journal and
//! marks it clean, whatever is open, and the new kernel mounts it at once.
//!
//! Freezing waits for writes in progress. One that does not end in time
//! leaves its file system as before: the new kernel recovers its journal,
//! as it would without the freeze.

use procfs::process::MountInfo;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

// linux/fs.h: FIFREEZE _IOWR('X', 119, int), FITHAW _IOWR('X', 120, int);
// the kernel ignores the argument.
nix::ioctl_readwrite!(fifreeze, b'X', 119, libc::c_int);
nix::ioctl_readwrite!(fithaw, b'X', 120, libc::c_int);

/// The mount points to freeze: one per file system on a block device
/// that is writable (bind mounts, and btrfs subvolumes, of the same file
/// system name its device: the first one stands for all).
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

/// The file systems frozen so far; [`Frozen::thaw`] after a failed kexec.
#[derive(Debug)]
pub struct Frozen {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    frozen: Vec<(PathBuf, OwnedFd)>,
    /// The kexec went on (or failed) without waiting: a freeze that ends
    /// now is undone at once.
    given_up: bool,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Freezes the local writable file systems ([`local_writable`]), waiting
/// at most `timeout` (on a thread of its own: a writer that never ends
/// must not hold the kexec). What could not be frozen is logged.
pub fn freeze_local(timeout: Duration) -> Frozen {
    let targets = match procfs::process::Process::myself().and_then(|me| me.mountinfo()) {
        Ok(mounts) => local_writable(&mounts.0),
        Err(e) => {
            tracing::warn!("cannot list the mounts to freeze them: {e}");
            Vec::new()
        }
    };
    // Opened before any is frozen: no path is looked up on a frozen one.
    let opened: Vec<(PathBuf, OwnedFd)> = targets
        .into_iter()
        .filter_map(|path| match open_dir(&path) {
            Ok(fd) => Some((path, fd)),
            Err(e) => {
                tracing::warn!("cannot open {} to freeze it: {e}", path.display());
                None
            }
        })
        .collect();
    let frozen = Frozen {
        state: Arc::default(),
    };
    let state = Arc::clone(&frozen.state);
    let (done, finished) = mpsc::channel();
    let worker = move || {
        for (path, fd) in opened {
            let result = freeze(&fd);
            let mut state = lock(&state);
            match result {
                Ok(()) if state.given_up => {
                    if let Err(e) = thaw(&fd) {
                        tracing::error!("cannot thaw {} (frozen late): {e}", path.display());
                    }
                }
                Ok(()) => state.frozen.push((path, fd)),
                Err(e) => tracing::warn!(
                    "cannot freeze {} ({e}): the new kernel recovers its journal",
                    path.display()
                ),
            }
        }
        let _ = done.send(());
    };
    if let Err(e) = std::thread::Builder::new()
        .name("relive-fsfreeze".into())
        .spawn(worker)
    {
        tracing::warn!(
            "cannot start the file systems' freeze ({e}): the new kernel recovers their journals"
        );
        return frozen;
    }
    if finished.recv_timeout(timeout).is_err() {
        lock(&frozen.state).given_up = true;
        tracing::warn!(
            "file systems not all frozen within {} s (a write did not end): the new kernel recovers the journals of the others",
            timeout.as_secs()
        );
    }
    frozen
}

impl Frozen {
    /// The mount points frozen.
    pub fn paths(&self) -> Vec<PathBuf> {
        lock(&self.state)
            .frozen
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Thaws every file system frozen (the kexec failed: the machine goes
    /// on); one whose freeze ends later is thawed then.
    pub fn thaw(self) {
        let mut state = lock(&self.state);
        state.given_up = true;
        for (path, fd) in state.frozen.drain(..) {
            if let Err(e) = thaw(&fd) {
                tracing::error!("cannot thaw {}: {e}", path.display());
            }
        }
    }
}

fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)?;
    Ok(dir.into())
}

/// FIFREEZE on the file system `fd` is on.
pub fn freeze(fd: &OwnedFd) -> nix::Result<()> {
    let mut unused: libc::c_int = 0;
    // SAFETY: `fd` is an open descriptor; FIFREEZE reads no memory through
    // its argument, which points at a live c_int anyway.
    unsafe { fifreeze(fd.as_raw_fd(), &mut unused) }.map(drop)
}

/// FITHAW on the file system `fd` is on.
pub fn thaw(fd: &OwnedFd) -> nix::Result<()> {
    let mut unused: libc::c_int = 0;
    // SAFETY: as in `freeze`.
    unsafe { fithaw(fd.as_raw_fd(), &mut unused) }.map(drop)
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
