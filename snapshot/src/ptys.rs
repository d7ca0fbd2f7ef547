//! Terminals split between a unit and processes outside it.
//!
//! CRIU checkpoints a pseudo-terminal as a pair: a tree that holds a
//! slave (/dev/pts/N) whose master is held outside it cannot be restored
//! (CRIU's restore finds no master, or with --shell-job hands it CRIU's
//! own terminal). An ssh login's terminal is whole within ssh.service
//! (its session, held by sshd's session process, is gathered into the
//! unit at the park); a service whose terminal's master another unit or
//! an outside process holds (`systemd-run --pty` from a login) is found
//! here, before anything is frozen, and restarted instead.

use std::collections::BTreeMap;

/// A slave the unit holds whose master is held outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HalfTerminal {
    pub pid: u32,
    pub index: u32,
    /// A process outside the unit that holds the master.
    pub master_holder: u32,
}

/// The pts index a descriptor's path names (/dev/pts/N), if a slave.
fn slave_index(path: &std::path::Path) -> Option<u32> {
    path.to_str()?.strip_prefix("/dev/pts/")?.parse().ok()
}

/// Every master's pts index and a process that holds it (from the
/// `tty-index:` line of /proc/PID/fdinfo/FD of /dev/ptmx descriptors).
fn masters() -> BTreeMap<u32, Vec<u32>> {
    let mut found: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let Ok(processes) = procfs::process::all_processes() else {
        return found;
    };
    for process in processes.flatten() {
        let pid = process.pid as u32;
        for fd in process.fd().into_iter().flatten().flatten() {
            let procfs::process::FDTarget::Path(path) = &fd.target else {
                continue;
            };
            if !matches!(path.to_str(), Some("/dev/ptmx" | "/dev/pts/ptmx")) {
                continue;
            }
            let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.fd)) else {
                continue;
            };
            let index = info
                .lines()
                .find_map(|l| l.strip_prefix("tty-index:"))
                .and_then(|i| i.trim().parse().ok());
            if let Some(index) = index {
                found.entry(index).or_default().push(pid);
            }
        }
    }
    found
}

/// The slaves `pids` hold: (PID, pts index).
fn slaves_of(pids: &[u32]) -> Vec<(u32, u32)> {
    let mut found = Vec::new();
    for &pid in pids {
        let Ok(fds) = procfs::process::Process::new(pid as i32).and_then(|p| p.fd()) else {
            continue;
        };
        for fd in fds.flatten() {
            if let procfs::process::FDTarget::Path(path) = &fd.target {
                if let Some(index) = slave_index(path) {
                    found.push((pid, index));
                }
            }
        }
    }
    found.sort_unstable();
    found.dedup();
    found
}

/// Whether `pid` is one of `pids` or below one of them.
fn in_tree_of(pid: u32, pids: &[u32]) -> bool {
    let mut next = Some(pid);
    while let Some(p) = next.filter(|&p| p > 1) {
        if pids.contains(&p) {
            return true;
        }
        next = procfs::process::Process::new(p as i32)
            .and_then(|p| p.stat())
            .ok()
            .map(|s| s.ppid as u32);
    }
    false
}

/// The first slave of `slaves` whose masters (`masters`, by index) are
/// all held outside the unit (`inside` says who is in it). A slave whose
/// master nobody holds is hung up, and CRIU's matter.
pub fn split(
    slaves: &[(u32, u32)],
    masters: &BTreeMap<u32, Vec<u32>>,
    inside: impl Fn(u32) -> bool,
) -> Option<HalfTerminal> {
    slaves.iter().find_map(|&(pid, index)| {
        let holders = masters.get(&index)?;
        if holders.iter().any(|&h| inside(h)) {
            return None;
        }
        Some(HalfTerminal {
            pid,
            index,
            master_holder: holders[0],
        })
    })
}

/// The unit's (`pids`) first terminal whose master is outside it.
pub fn find_in(pids: &[u32]) -> Option<HalfTerminal> {
    let slaves = slaves_of(pids);
    if slaves.is_empty() {
        return None;
    }
    split(&slaves, &masters(), |holder| in_tree_of(holder, pids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_whose_master_is_outside_is_found() {
        let masters = BTreeMap::from([(3, vec![500]), (4, vec![20])]);
        // The unit (10, 11, 20) holds pts 4 and its master: whole.
        let inside = |pid: u32| [10, 11, 20].contains(&pid);
        assert_eq!(split(&[(11, 4)], &masters, inside), None);
        // pts 3's master is PID 500's, outside.
        assert_eq!(
            split(&[(11, 4), (10, 3)], &masters, inside),
            Some(HalfTerminal {
                pid: 10,
                index: 3,
                master_holder: 500
            })
        );
        // Nobody holds pts 9's master: hung up, not a split.
        assert_eq!(split(&[(10, 9)], &masters, inside), None);
    }

    #[test]
    fn a_real_terminal_held_whole_by_one_process_is_not_split() {
        let Ok(pty) = nix::pty::openpty(None, None) else {
            return eprintln!("skipped: no pseudo-terminals here");
        };
        let me = std::process::id();
        let held = slaves_of(&[me]);
        let Some(&(_, index)) = held.first() else {
            return eprintln!("skipped: /dev/pts is not this namespace's");
        };
        assert!(masters().get(&index).is_some_and(|h| h.contains(&me)));
        assert_eq!(find_in(&[me]), None);
        drop(pty);
    }
}
