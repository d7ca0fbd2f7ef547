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

/// The first collision in the maps of a unit's processes, if any.
pub fn find(maps: &[(u32, Vec<MemoryMap>)]) -> Option<Collision> {
    let mut segments: HashMap<u64, (i32, i32)> = HashMap::new();
    for map in maps.iter().flat_map(|(_, maps)| maps) {
        if let MMapPath::Vsys(_) = map.pathname {
            segments.insert(map.inode, map.dev);
        }
    }
    let devices: HashSet<(i32, i32)> = segments.values().copied().collect();
    maps.iter().find_map(|(pid, maps)| {
        maps.iter()
            .filter(|m| !matches!(m.pathname, MMapPath::Vsys(_)))
            .filter(|m| m.perms.contains(MMPermissions::SHARED) && devices.contains(&m.dev))
            .find(|m| segments.contains_key(&m.inode))
            .map(|m| Collision {
                pid: *pid,
                id: m.inode,
                start: m.address.0,
            })
    })
}

/// [`find`] over the live processes `pids` (one that is gone is skipped).
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
    find(&maps)
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

    #[test]
    fn a_segment_id_that_is_a_shared_mapping_s_inode_is_found() {
        // postgres: its buffers (anonymous shared, inode 5) and its
        // interlock segment, id 5, in the backend; the postmaster too.
        let backend = maps(
            "7f00bc199000-7f00c5031000 rw-s 00000000 00:01 5                          /dev/zero (deleted)\n\
             7f00c6000000-7f00c6001000 rw-s 00000000 00:01 5                          /SYSV0052e2c1 (deleted)\n\
             7f00c7000000-7f00c7001000 r--p 00000000 fe:01 5                          /usr/lib/postgresql/15/bin/postgres\n",
        );
        let found = find(&[(700, backend.clone())]);
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
        let apart = backend
            .iter()
            .map(|m| {
                let mut m = m.clone();
                if matches!(m.pathname, MMapPath::Vsys(_)) {
                    m.inode = 1 << 30;
                }
                m
            })
            .collect();
        assert_eq!(find(&[(700, apart)]), None);
        // No segment at all: nothing to meet.
        let plain = maps("7f00bc199000-7f00c5031000 rw-s 00000000 00:01 5 /dev/zero (deleted)\n");
        assert_eq!(find(&[(701, plain)]), None);
    }
}
