//! Shared memory a preserved unit shares with processes outside it: a
//! memfd or a shared anonymous mapping (MAP_SHARED | MAP_ANONYMOUS, which
//! a child inherits) that another unit or process also holds. CRIU dumps
//! such memory with each tree that maps it and restores each its own
//! copy: the contents cross the kexec, the sharing does not. The plan
//! says so. (A file under /dev/shm is a file: it crosses with the units'
//! runtime files and both map it again. System V segments of the
//! machine's IPC namespace keep the unit from being preserved at all:
//! preflight.rs.)

use crate::pipes::{self, Holder};
use procfs::process::{MMPermissions, MMapPath};
use relive_api::plan::{DoomedConnection, PlannedUnit};
use std::os::unix::fs::MetadataExt;

/// A piece of shared memory: its inode on the kernel's shmem mount, and
/// the name /proc gives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SharedMemory {
    pub inode: u64,
    pub name: String,
}

/// What /proc names a memfd ("/memfd:NAME (deleted)") or shared
/// anonymous memory ("/dev/zero (deleted)"), cleaned up; `None` for
/// anything else.
fn shared_name(path: &str) -> Option<String> {
    let path = path.trim_end_matches(" (deleted)");
    if path.starts_with("/memfd:") {
        Some(path.trim_start_matches('/').to_owned())
    } else if path == "/dev/zero" {
        Some("shared anonymous memory".to_owned())
    } else {
        None
    }
}

/// The shared memory process `pid` maps shared or holds a descriptor to.
fn of_process(pid: u32) -> Vec<SharedMemory> {
    let Ok(process) = procfs::process::Process::new(pid as i32) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for map in process.maps().map(|m| m.0).unwrap_or_default() {
        let MMapPath::Path(path) = &map.pathname else {
            continue;
        };
        if !map.perms.contains(MMPermissions::SHARED) {
            continue;
        }
        if let Some(name) = shared_name(&path.to_string_lossy()) {
            found.push(SharedMemory {
                inode: map.inode,
                name,
            });
        }
    }
    for fd in process.fd().into_iter().flatten().flatten() {
        let procfs::process::FDTarget::Path(path) = &fd.target else {
            continue;
        };
        let Some(name) = shared_name(&path.to_string_lossy()) else {
            continue;
        };
        if let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/fd/{}", fd.fd)) {
            found.push(SharedMemory {
                inode: meta.ino(),
                name,
            });
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The plan's entries for the preserved units' shared memory that
/// processes outside each unit share.
pub fn doomed(
    preserved: &[PlannedUnit],
    unit_of_outsider: impl Fn(u32) -> Option<String>,
) -> Vec<DoomedConnection> {
    let Ok(processes) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let held: Vec<(u32, SharedMemory)> = processes
        .flatten()
        .flat_map(|p| {
            let pid = p.pid as u32;
            of_process(pid).into_iter().map(move |m| (pid, m))
        })
        .collect();
    let units = pipes::units_of(preserved, held.iter().map(|(pid, _)| *pid));
    let unit_of = |pid: u32| units.get(&pid).cloned().flatten();
    let mut doomed = Vec::new();
    for (memory, holders) in pipes::shared(&held, unit_of) {
        for holder in &holders {
            let Holder::Unit(unit) = holder else { continue };
            let others = pipes::others_than(unit, &holders, &unit_of_outsider);
            let pid = held
                .iter()
                .find(|(pid, m)| *m == memory && unit_of(*pid).as_deref() == Some(unit))
                .map_or(0, |(pid, _)| *pid);
            doomed.push(DoomedConnection {
                unit: unit.clone(),
                pid,
                local: format!("{} (inode {})", memory.name, memory.inode),
                reason: format!(
                    "{} shared with {others}: each side gets a copy of its own, they no longer share it",
                    memory.name,
                ),
                remote: others,
            });
        }
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memfds_and_shared_anonymous_memory_are_named_the_rest_is_not() {
        assert_eq!(
            shared_name("/memfd:pool (deleted)").as_deref(),
            Some("memfd:pool")
        );
        assert_eq!(
            shared_name("/dev/zero (deleted)").as_deref(),
            Some("shared anonymous memory")
        );
        assert_eq!(shared_name("/dev/shm/PostgreSQL.1"), None);
        assert_eq!(shared_name("/usr/lib/x86_64-linux-gnu/libc.so.6"), None);
    }

    #[test]
    fn a_shared_mapping_of_this_process_is_found() {
        // SAFETY: a fresh anonymous shared mapping, unmapped below; no
        // other reference to it exists.
        let addr = unsafe {
            nix::libc::mmap(
                std::ptr::null_mut(),
                4096,
                nix::libc::PROT_READ | nix::libc::PROT_WRITE,
                nix::libc::MAP_SHARED | nix::libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(addr, nix::libc::MAP_FAILED);
        let found = of_process(std::process::id());
        // SAFETY: the mapping made above, of that length, no longer used.
        unsafe { nix::libc::munmap(addr, 4096) };
        assert!(
            found.iter().any(|m| m.name == "shared anonymous memory"),
            "{found:?}"
        );
    }
}
