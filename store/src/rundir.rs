//! RuntimeDirectory= content, its PID file, and files a unit holds open
//! or mapped under /run and /dev/shm, across the kexec.
//!
//! /run is a tmpfs: the new kernel starts it empty, yet restored services
//! expect their runtime directories (sshd refuses connections without
//! /run/sshd) and what they wrote there (PID files), and CRIU reopens an
//! open file or FIFO by its path (cron keeps /run/crond.pid open, an ssh
//! login's sshd logind's session FIFO). Regular files and directories are
//! copied into the store and back, with modes and owners; a FIFO is made
//! again (empty: what is in its pipe is CRIU's to carry), unless one is
//! there already, which both ends must share; sockets are not (CRIU
//! re-creates bound sockets itself).

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// POSIX shared memory and semaphores: a tmpfs too.
pub const SHM: &str = "/dev/shm";

/// Files larger than this are not carried (a runtime directory holding
/// that much is not state a PID file-sized copy should move).
const MAX_FILE: u64 = 16 << 20;

/// Copies `/run/NAME` (a directory or a file) for each name into `dest/NAME`.
pub fn save(run: &Path, names: &[String], dest: &Path) -> io::Result<()> {
    for name in names {
        let from = run.join(name);
        let to = dest.join(name);
        let is_fifo = fs::metadata(&from).is_ok_and(|m| m.file_type().is_fifo());
        if from.is_dir() {
            copy_tree(&from, &to)?;
        } else if from.is_file() || is_fifo {
            // A file the unit holds open, perhaps in a directory of its own.
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent)?;
            }
            copy_tree(&from, &to)?;
        }
    }
    Ok(())
}

/// Copies everything saved in `saved` back under `run`.
pub fn restore(saved: &Path, run: &Path) -> io::Result<()> {
    if !saved.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(saved)? {
        let entry = entry?;
        copy_tree(&entry.path(), &run.join(entry.file_name()))?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    if meta.is_dir() {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.is_file() && meta.len() <= MAX_FILE {
        copy_file(from, to)?;
    } else if meta.file_type().is_fifo() {
        if !make_fifo(to)? {
            return Ok(());
        }
    } else {
        return Ok(());
    }
    // The owner first: a chown clears set-id bits the mode then restores.
    std::os::unix::fs::chown(to, Some(meta.uid()), Some(meta.gid()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    copy_xattrs(from, to)?;
    // Last, so that nothing written above moves them (a directory's
    // after its entries, which this call has copied already).
    let time = |secs, nsecs| nix::sys::time::TimeSpec::new(secs, nsecs);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        to,
        &time(meta.atime(), meta.atime_nsec()),
        &time(meta.mtime(), meta.mtime_nsec()),
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

/// Makes a FIFO at `to`; false if one is there already, which is kept:
/// the restores of a group run at once, and each brings back the FIFO
/// its members share; the first may have opened it and written into it
/// (relive_restore::pipe_switch), so a later one must never replace it.
/// Hence mkfifo first and no look before: between a look and a remove,
/// the other restore's FIFO could appear and be removed.
fn make_fifo(to: &Path) -> io::Result<bool> {
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
    match nix::unistd::mkfifo(to, mode) {
        Ok(()) => return Ok(true),
        Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    if fs::symlink_metadata(to)?.file_type().is_fifo() {
        return Ok(false);
    }
    // Something else stands there (a stale file): the FIFO replaces it.
    fs::remove_file(to)?;
    nix::unistd::mkfifo(to, mode)?;
    Ok(true)
}

/// `from`'s bytes into `to`. A file that is there already (an undo on the
/// old kernel: postgres's segments in /dev/shm) is written without
/// O_CREAT: with fs.protected_regular (systemd sets 1) the kernel refuses
/// even root an O_CREAT open of another user's file in a sticky
/// world-writable directory such as /dev/shm or /tmp.
fn copy_file(from: &Path, to: &Path) -> io::Result<()> {
    match fs::OpenOptions::new().write(true).truncate(true).open(to) {
        Ok(mut existing) => io::copy(&mut fs::File::open(from)?, &mut existing).map(drop),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::copy(from, to).map(drop),
        Err(e) => Err(e),
    }
}

/// Extended attributes (SELinux labels, `user.*` notes) as they were; a
/// file system without them (the disk store on a file system that
/// refuses some namespace) keeps the copy without: the file matters more.
fn copy_xattrs(from: &Path, to: &Path) -> io::Result<()> {
    let Ok(names) = xattr::list(from) else {
        return Ok(());
    };
    for name in names {
        if let Ok(Some(value)) = xattr::get(from, &name) {
            if let Err(e) = xattr::set(to, &name, &value) {
                tracing::warn!(
                    "{}: extended attribute {} not carried: {e}",
                    to.display(),
                    name.to_string_lossy()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_modes_come_back_sockets_do_not() {
        let base = std::env::temp_dir().join(format!("relive-rundir-{}", std::process::id()));
        let run = base.join("run");
        fs::create_dir_all(run.join("svc/sub")).unwrap();
        fs::write(run.join("svc/svc.pid"), "123\n").unwrap();
        fs::set_permissions(run.join("svc"), fs::Permissions::from_mode(0o2755)).unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(run.join("svc/s.sock")).unwrap();
        fs::create_dir_all(run.join("other/deep")).unwrap();
        fs::write(run.join("crond.pid"), "7\n").unwrap();
        fs::write(run.join("other/deep/held.pid"), "8\n").unwrap();
        fs::write(run.join("other/not-held"), "9\n").unwrap();
        let names = ["svc", "absent", "crond.pid", "other/deep/held.pid"].map(String::from);
        save(&run, &names, &base.join("store")).unwrap();
        fs::remove_dir_all(&run).unwrap();
        fs::create_dir_all(&run).unwrap();
        restore(&base.join("store"), &run).unwrap();
        assert_eq!(
            fs::read_to_string(run.join("svc/svc.pid")).unwrap(),
            "123\n"
        );
        assert!(run.join("svc/sub").is_dir());
        // Open files alone, not what lies beside them.
        assert_eq!(fs::read_to_string(run.join("crond.pid")).unwrap(), "7\n");
        assert_eq!(
            fs::read_to_string(run.join("other/deep/held.pid")).unwrap(),
            "8\n"
        );
        assert!(!run.join("other/not-held").exists());
        assert!(!run.join("svc/s.sock").exists());
        assert_eq!(
            fs::metadata(run.join("svc")).unwrap().permissions().mode() & 0o7777,
            0o2755
        );
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn timestamps_and_extended_attributes_come_back() {
        let base = std::env::temp_dir().join(format!("relive-rundir-meta-{}", std::process::id()));
        let run = base.join("run");
        fs::create_dir_all(run.join("svc")).unwrap();
        let pid_file = run.join("svc/svc.pid");
        fs::write(&pid_file, "42\n").unwrap();
        let old = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123_456_789);
        let file = fs::File::options().write(true).open(&pid_file).unwrap();
        file.set_modified(old).unwrap();
        drop(file);
        // user.* attributes need a file system that keeps them (tmpfs
        // from 6.6, ext4): where the temporary directory has none, only
        // the times are checked.
        let with_xattr = xattr::set(&pid_file, "user.relive", b"kept").is_ok();
        fs::File::open(run.join("svc"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        save(&run, &["svc".to_string()], &base.join("store")).unwrap();
        fs::remove_dir_all(&run).unwrap();
        fs::create_dir_all(&run).unwrap();
        restore(&base.join("store"), &run).unwrap();
        assert_eq!(fs::metadata(&pid_file).unwrap().modified().unwrap(), old);
        assert_eq!(
            fs::metadata(run.join("svc")).unwrap().modified().unwrap(),
            old
        );
        if with_xattr {
            assert_eq!(
                xattr::get(&pid_file, "user.relive").unwrap().as_deref(),
                Some(b"kept".as_slice())
            );
        }
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn restores_bringing_back_one_fifo_at_once_make_it_once() {
        let base = std::env::temp_dir().join(format!("relive-rundir-race-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        let fifo = base.join("fifo");
        for _ in 0..50 {
            let _ = fs::remove_file(&fifo);
            let start = std::sync::Barrier::new(4);
            let made: Vec<bool> = std::thread::scope(|scope| {
                let threads: Vec<_> = (0..4)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            make_fifo(&fifo).unwrap()
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).collect()
            });
            // One made it; the others kept it (none replaced it).
            assert_eq!(made.iter().filter(|m| **m).count(), 1, "{made:?}");
        }
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_fifo_is_made_again_and_one_already_there_is_kept() {
        let base = std::env::temp_dir().join(format!("relive-rundir-fifo-{}", std::process::id()));
        let run = base.join("run");
        fs::create_dir_all(run.join("systemd/sessions")).unwrap();
        let fifo = run.join("systemd/sessions/3.ref");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let names = ["systemd/sessions/3.ref".to_string()];
        save(&run, &names, &base.join("store")).unwrap();
        fs::remove_dir_all(&run).unwrap();
        fs::create_dir_all(&run).unwrap();
        restore(&base.join("store"), &run).unwrap();
        let meta = fs::metadata(&fifo).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // A second restore (logind's own directory after ssh's files)
        // keeps the FIFO both ends already opened.
        let inode = meta.ino();
        restore(&base.join("store"), &run).unwrap();
        assert_eq!(fs::metadata(&fifo).unwrap().ino(), inode);
        fs::remove_dir_all(base).unwrap();
    }
}
