//! RemoveIPC=: when the last unit running as a user stops, the System V
//! and POSIX IPC objects that user or its group own are removed
//! (systemd.exec(5)), so that nothing a service left behind outlives it
//! or reaches the next user of the same ID. Never for root.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Removes what `uid` or `gid` own; returns how many objects went.
pub(super) fn remove_ipc_of(uid: u32, gid: u32) -> usize {
    if uid == 0 {
        return 0;
    }
    let owned = |u: u32, g: u32| u == uid || g == gid;
    let mut removed = 0;
    if let Ok(segments) = <procfs::SharedMemorySegments as procfs::Current>::current() {
        for s in segments
            .0
            .iter()
            .filter(|s| owned(s.uid.into(), s.gid.into()))
        {
            // SAFETY: shmctl(2) with IPC_RMID takes no buffer.
            if unsafe { libc::shmctl(s.shmid as i32, libc::IPC_RMID, std::ptr::null_mut()) } == 0 {
                removed += 1;
            }
        }
    }
    // procfs reads /proc/sysvipc/shm only: the other two tables are read
    // here, by their header's column names.
    for (id, _) in owned_ids("/proc/sysvipc/msg", "msqid", &owned) {
        // SAFETY: msgctl(2) with IPC_RMID takes no buffer.
        if unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) } == 0 {
            removed += 1;
        }
    }
    for (id, _) in owned_ids("/proc/sysvipc/sem", "semid", &owned) {
        // SAFETY: semctl(2) with IPC_RMID takes no fourth argument.
        if unsafe { libc::semctl(id, 0, libc::IPC_RMID) } == 0 {
            removed += 1;
        }
    }
    for dir in ["/dev/shm", "/dev/mqueue"] {
        removed += remove_owned_files(Path::new(dir), &owned);
    }
    removed
}

/// The IDs in a /proc/sysvipc table whose `uid` or `gid` column `owned`.
fn owned_ids(table: &str, id_column: &str, owned: &dyn Fn(u32, u32) -> bool) -> Vec<(i32, u32)> {
    let Ok(text) = std::fs::read_to_string(table) else {
        return Vec::new();
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let column = |name: &str| header.iter().position(|h| *h == name);
    let (Some(id), Some(u), Some(g)) = (column(id_column), column("uid"), column("gid")) else {
        return Vec::new();
    };
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let num = |i: usize| f.get(i)?.parse::<u32>().ok();
            let (id, uid, gid) = (num(id)?, num(u)?, num(g)?);
            owned(uid, gid).then_some((id as i32, uid))
        })
        .collect()
}

/// POSIX shared memory and message queues are files of their own file
/// systems: removing the file removes the object.
fn remove_owned_files(dir: &Path, owned: &dyn Fn(u32, u32) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.path()
                .symlink_metadata()
                .is_ok_and(|m| m.is_file() && owned(m.uid(), m.gid()))
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}
