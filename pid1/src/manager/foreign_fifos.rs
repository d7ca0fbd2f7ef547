//! FIFOs a service holds that were opened in another mount namespace.
//!
//! logind, sandboxed in a mount namespace of its own, makes each
//! session's FIFO (/run/systemd/sessions/N.ref) and hands the open end to
//! pam_systemd in sshd over D-Bus. The descriptor's mount is logind's,
//! which CRIU, checkpointing sshd, cannot find ("Can't lookup mount"). Such
//! a FIFO is dumped as an external file and, at the restore, given back
//! opened again by its path under /run, which travels with the unit's
//! runtime files.

use relive_api::report::ForeignFifo;
use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// The foreign FIFOs of `pids`, each once.
pub fn of_processes(pids: &[i32]) -> Vec<ForeignFifo> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    for &pid in pids {
        let Ok(process) = procfs::process::Process::new(pid) else {
            continue;
        };
        let own_mounts: BTreeSet<i32> = match process.mountinfo() {
            Ok(mounts) => mounts.into_iter().map(|m| m.mnt_id).collect(),
            Err(_) => continue,
        };
        let Ok(fds) = process.fd() else { continue };
        for fd in fds.flatten() {
            // An anonymous pipe (a service's output to PID 1) is a FIFO
            // too, of the kernel's pipe mount that no namespace lists:
            // CRIU carries it as a pipe.
            if let procfs::process::FDTarget::Pipe(_) = fd.target {
                continue;
            }
            let link = format!("/proc/{pid}/fd/{}", fd.fd);
            let Ok(meta) = std::fs::metadata(&link) else {
                continue;
            };
            if !meta.file_type().is_fifo() {
                continue;
            }
            let Some(mnt_id) = mount_id(pid, fd.fd) else {
                continue;
            };
            if own_mounts.contains(&mnt_id) || !seen.insert((mnt_id, meta.ino())) {
                continue;
            }
            match find_under(Path::new("/run"), meta.dev(), meta.ino(), 6) {
                Some(run_path) => found.push(ForeignFifo {
                    key: format!("file[{mnt_id:x}:{:x}]", meta.ino()),
                    run_path,
                }),
                None => tracing::warn!(
                    "process {pid}: FIFO on descriptor {} is from another mount namespace and not under /run: its checkpoint will fail",
                    fd.fd
                ),
            }
        }
    }
    found
}

/// `mnt_id:` of /proc/PID/fdinfo/FD (procfs does not read it).
fn mount_id(pid: i32, fd: i32) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The path, relative to `dir`, of the FIFO with that device and inode,
/// looking `depth` levels down (/run is small).
fn find_under(dir: &Path, dev: u64, ino: u64, depth: u32) -> Option<String> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.file_type().is_fifo() && meta.dev() == dev && meta.ino() == ino {
            return Some(entry.file_name().to_string_lossy().into_owned());
        }
        if meta.is_dir() && depth > 0 {
            if let Some(rest) = find_under(&entry.path(), dev, ino, depth - 1) {
                return Some(format!("{}/{rest}", entry.file_name().to_string_lossy()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_found_by_its_inode() {
        let base = std::env::temp_dir().join(format!("relive-fifo-find-{}", std::process::id()));
        std::fs::create_dir_all(base.join("systemd/sessions")).unwrap();
        let fifo = base.join("systemd/sessions/5.ref");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let meta = std::fs::metadata(&fifo).unwrap();
        assert_eq!(
            find_under(&base, meta.dev(), meta.ino(), 6).as_deref(),
            Some("systemd/sessions/5.ref")
        );
        assert_eq!(find_under(&base, meta.dev(), meta.ino(), 1), None);
        std::fs::remove_dir_all(base).unwrap();
    }
}
