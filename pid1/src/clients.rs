//! The connections to relive's control socket and to
//! /run/systemd/private: how many are open, and from which processes. A
//! live upgrade waits for the ones inside a unit to go before it
//! checkpoints that unit (CRIU cannot checkpoint a connection to relive
//! itself), and a detached upgrade waits for all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Connection id → the peer's PID (0 when unknown: a peer in an
/// ancestor PID namespace).
static OPEN: Mutex<Option<HashMap<u64, i32>>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(0);

fn with_open<R>(f: impl FnOnce(&mut HashMap<u64, i32>) -> R) -> R {
    let mut guard = OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

/// How many control connections are open right now.
pub fn open() -> usize {
    with_open(|open| open.len())
}

/// How many are open from processes in `cgroup` (a path below the
/// cgroup root, e.g. /system.slice/ssh.service) or below it.
pub fn open_in(cgroup: &str) -> usize {
    let pids: Vec<i32> = with_open(|open| open.values().copied().filter(|p| *p > 0).collect());
    pids.into_iter()
        .filter_map(relive_sys::cgroup::cgroup_of)
        .filter(|path| path == cgroup || path.starts_with(&format!("{cgroup}/")))
        .count()
}

/// Counts a connection for as long as it lives.
#[derive(Debug)]
pub struct Counted(u64);

impl Counted {
    /// A connection from process `peer_pid` (0 if unknown).
    pub fn new(peer_pid: i32) -> Counted {
        let id = NEXT.fetch_add(1, Ordering::SeqCst);
        with_open(|open| open.insert(id, peer_pid));
        Counted(id)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        with_open(|open| open.remove(&self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_with_their_cgroup() {
        let mine = std::fs::read_to_string("/proc/self/cgroup")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_owned));
        let before = open();
        let counted = Counted::new(std::process::id() as i32);
        assert_eq!(open(), before + 1);
        if let Some(cgroup) = mine {
            assert!(open_in(&cgroup) >= 1);
        }
        assert_eq!(open_in("/no/such/cgroup"), 0);
        drop(counted);
        assert_eq!(open(), before);
    }
}
