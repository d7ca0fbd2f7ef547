//! A dump CRIU would fail on shared memory numbers.
//!
//! CRIU (3.17 to 4.2) keys the shared memory it dumps by one number: a
//! System V segment by its id, an anonymous shared mapping (or a memfd)
//! by its inode number on the kernel's shmem mount, which is where System
//! V segments live too (the kernel gives a segment's inode its id). When
//! a segment's id equals a shared mapping's inode number, CRIU dumps the
//! segment with the mapping's size and fails ("Can't open
//! 0/map_files/..."). postgres did in the lab: its interlock segment's
//! small id met its buffers' inode number. relive starts a service's own
//! IPC namespace with ids out of reach (`relive_sys::namespace`); this
//! finds the meeting in a unit that was started otherwise, before
//! anything is frozen.

use procfs::process::{MMPermissions, MMapPath, MemoryMap};
use std::collections::{HashMap, HashSet};

/// A System V segment and a shared mapping under one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub pid: u32,
    pub id: u64,
    /// Where the shared mapping with that inode number starts.
    pub start: u64,
}

/// The first collision between the System V segments (`segments`: the
/// ids of the unit's IPC namespace, and any its processes map) and the
/// anonymous shared mappings of the unit's processes, if any.
pub fn find(maps: &[(u32, Vec<MemoryMap>)], segments: &[u64]) -> Option<Collision> {
    let mut ids: HashSet<u64> = segments.iter().copied().collect();
    for map in maps.iter().flat_map(|(_, maps)| maps) {
        if let MMapPath::Vsys(_) = map.pathname {
            ids.insert(map.inode);
        }
    }
    maps.iter().find_map(|(pid, maps)| {
        maps.iter()
            .filter(|m| is_anonymous_shared(m) && ids.contains(&m.inode))
            .map(|m| Collision {
                pid: *pid,
                id: m.inode,
                start: m.address.0,
            })
            .next()
    })
}

/// MAP_SHARED | MAP_ANONYMOUS: the kernel backs it with a file of its
/// shmem mount that /proc/PID/maps names "/dev/zero (deleted)".
fn is_anonymous_shared(map: &MemoryMap) -> bool {
    map.perms.contains(MMPermissions::SHARED)
        && matches!(&map.pathname, MMapPath::Path(p) if p.to_string_lossy().starts_with("/dev/zero"))
}

/// [`find`] over the live processes `pids` (one that is gone is skipped)
/// and the System V segments of their IPC namespaces other than relive's
/// (CRIU dumps a unit's IPC namespace with it).
pub fn find_in(pids: &[u32]) -> Option<Collision> {
    let maps: Vec<(u32, Vec<MemoryMap>)> = pids
        .iter()
        .filter_map(|&pid| {
            let maps = procfs::process::Process::new(pid as i32)
                .and_then(|p| p.maps())
                .ok()?;
            Some((pid, maps.0))
        })
        .collect();
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/ipc")).ok();
    let ours = ns("self");
    let mut namespaces = HashMap::new();
    for &pid in pids {
        if let Some(n) = ns(&pid.to_string()).filter(|n| Some(n) != ours.as_ref()) {
            namespaces.entry(n).or_insert(pid);
        }
    }
    let segments: Vec<u64> = namespaces
        .values()
        .flat_map(|&pid| namespace_segments(pid))
        .collect();
    find(&maps, &segments)
}

/// The ids of the System V segments in `pid`'s IPC namespace, read from
/// /proc/sysvipc/shm by a thread that joins it (the file lists its
/// reader's namespace; only that thread moves, and it ends here).
fn namespace_segments(pid: u32) -> Vec<u64> {
    let Ok(ns) = std::fs::File::open(format!("/proc/{pid}/ns/ipc")) else {
        return Vec::new();
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWIPC).ok()?;
                std::fs::read_to_string("/proc/sysvipc/shm").ok()
            })
            .join()
            .ok()
            .flatten()
            .map(|text| segment_ids(&text))
            .unwrap_or_default()
    })
}

/// The shmid column of /proc/sysvipc/shm.
fn segment_ids(text: &str) -> Vec<u64> {
    text.lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::FromBufRead;

    fn maps(text: &str) -> Vec<MemoryMap> {
        procfs::process::MemoryMaps::from_buf_read(text.as_bytes())
            .unwrap()
            .0
    }

    /// A process in an IPC namespace of its own makes two segments (the
    /// first numbered as relive numbers it): read from that namespace, not
    /// ours. Needs root, as relive does.
    #[test]
    fn the_segments_of_another_namespace_are_listed() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to unshare an IPC namespace");
            return;
        }
        let script = "import ctypes, sys; libc = ctypes.CDLL(None); \
            open('/proc/sys/kernel/shm_next_id', 'w').write('1073741824'); \
            ids = [libc.shmget(0, 4096, 0o1600) for _ in range(2)]; \
            print(*ids, flush=True); sys.stdin.read()";
        let mut child = std::process::Command::new("unshare")
            .args(["--ipc", "python3", "-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let made: Vec<u64> = line
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        let mut listed = namespace_segments(child.id());
        listed.sort_unstable();
        drop(child.stdin.take());
        child.wait().unwrap();
        assert_eq!(made, [1 << 30, 1]);
        assert_eq!(listed, [1, 1 << 30]);
    }

    #[test]
    fn the_namespace_s_segments_are_read_from_proc() {
        let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
              28816 1073741824   600                    56   701   703      6   105   112   105   112 1796612350          0 1796612250                  4096                     0\n\
         1504584636          1   600                 26976   701   701      6   105   112   105   112          0          0 1796612250                 28672                     0\n";
        assert_eq!(segment_ids(text), [1073741824, 1]);
    }

    #[test]
    fn a_segment_id_that_is_a_shared_mapping_s_inode_is_found() {
        // postgres: its buffers (anonymous shared, inode 5) and its
        // interlock segment, id 5, in the backend; the postmaster too.
        let backend = maps(
            "7f00bc199000-7f00c5031000 rw-s 00000000 00:01 5                          /dev/zero (deleted)\n\
             7f00c6000000-7f00c6001000 rw-s 00000000 00:01 5                          /SYSV0052e2c1 (deleted)\n\
             7f00c7000000-7f00c7001000 r--p 00000000 fe:01 5                          /usr/lib/postgresql/15/bin/postgres\n",
        );
        let found = find(&[(700, backend.clone())], &[]);
        assert_eq!(
            found,
            Some(Collision {
                pid: 700,
                id: 5,
                start: 0x7f00bc199000
            })
        );
        // The id relive gives the first segment of a namespace: no
        // mapping's inode reaches it. A file of another device with
        // inode 5 (the binary) is no collision either.
        let apart: Vec<MemoryMap> = backend
            .iter()
            .map(|m| {
                let mut m = m.clone();
                if matches!(m.pathname, MMapPath::Vsys(_)) {
                    m.inode = 1 << 30;
                }
                m
            })
            .collect();
        assert_eq!(find(&[(700, apart.clone())], &[]), None);
        // A segment of its namespace that no process maps meets it all
        // the same: CRIU dumps the whole namespace.
        assert_eq!(find(&[(700, apart)], &[1, 5]).map(|c| c.id), Some(5));
        // No segment at all: nothing to meet.
        let plain = maps("7f00bc199000-7f00c5031000 rw-s 00000000 00:01 5 /dev/zero (deleted)\n");
        assert_eq!(find(&[(701, plain)], &[]), None);
    }
}
