//! Pipes between a preserved unit and processes outside it. CRIU dumps a
//! pipe with the tree that holds it and restores it as a new pipe whose
//! other end only that tree has: a pipe shared with another unit (or any
//! process outside the unit) no longer joins the two after the upgrade.
//! relive does not broker pipes yet (unix sockets it does): the plan
//! lists them, so that the administrator knows before. The pipes between
//! a service and PID 1 (its output, which relive reads) are relive's own
//! and crossed with it.

use relive_api::plan::{DoomedConnection, PlannedUnit};
use std::collections::{BTreeMap, BTreeSet};

/// Who holds a pipe: a preserved unit, or a process outside them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Holder {
    Unit(String),
    Process(u32),
}

/// Pipes (by inode) held by more than one holder, PID 1's excluded, from
/// `fds`: (PID, pipe inode) of every process, and `unit_of` the preserved
/// unit a PID belongs to.
pub fn shared(
    fds: &[(u32, u64)],
    unit_of: impl Fn(u32) -> Option<String>,
) -> BTreeMap<u64, BTreeSet<Holder>> {
    let relive_pipes: BTreeSet<u64> = fds
        .iter()
        .filter(|(pid, _)| *pid == 1)
        .map(|(_, inode)| *inode)
        .collect();
    let mut holders: BTreeMap<u64, BTreeSet<Holder>> = BTreeMap::new();
    for &(pid, inode) in fds {
        if pid == 1 || relive_pipes.contains(&inode) {
            continue;
        }
        let holder = unit_of(pid).map_or(Holder::Process(pid), Holder::Unit);
        holders.entry(inode).or_default().insert(holder);
    }
    holders.retain(|_, h| h.len() > 1 && h.iter().any(|h| matches!(h, Holder::Unit(_))));
    holders
}

/// Every process's pipes: (PID, inode).
fn all_pipe_fds() -> Vec<(u32, u64)> {
    let Ok(processes) = procfs::process::all_processes() else {
        return Vec::new();
    };
    processes
        .flatten()
        .flat_map(|p| {
            let pid = p.pid as u32;
            p.fd()
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(move |fd| match fd.target {
                    procfs::process::FDTarget::Pipe(inode) => Some((pid, inode)),
                    _ => None,
                })
        })
        .collect()
}

/// The plan's entries for the preserved units' pipes shared with others.
pub fn doomed(
    preserved: &[PlannedUnit],
    unit_of_outsider: impl Fn(u32) -> Option<String>,
) -> Vec<DoomedConnection> {
    // A descendant of a unit's process in another cgroup (an ssh login's
    // session scope) is checkpointed with the unit: PID 1 gathers such
    // scopes into it when it parks it.
    let unit_of_pid = |pid: u32| {
        let mut next = Some(pid);
        while let Some(p) = next.filter(|&p| p > 1) {
            if let Some(unit) = preserved.iter().find(|u| u.pids.contains(&p)) {
                return Some(unit.name.clone());
            }
            next = procfs::process::Process::new(p as i32)
                .and_then(|p| p.stat())
                .ok()
                .map(|s| s.ppid as u32);
        }
        None
    };
    let fds = all_pipe_fds();
    // Each holder's ancestry walked once, not once per pipe it holds.
    let units: BTreeMap<u32, Option<String>> = fds
        .iter()
        .map(|&(pid, _)| pid)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|pid| (pid, unit_of_pid(pid)))
        .collect();
    let unit_of = |pid: u32| units.get(&pid).cloned().flatten();
    let mut doomed = Vec::new();
    for (inode, holders) in shared(&fds, unit_of) {
        for holder in &holders {
            let Holder::Unit(unit) = holder else { continue };
            let others: Vec<String> = holders
                .iter()
                .filter(|h| *h != holder)
                .map(|h| match h {
                    Holder::Unit(u) => format!("{u} (preserved, checkpointed apart)"),
                    Holder::Process(pid) => match unit_of_outsider(*pid) {
                        Some(u) => format!("{u} (not preserved)"),
                        None => format!("PID {pid}, outside any preserved unit"),
                    },
                })
                .collect();
            let pid = fds
                .iter()
                .find(|(pid, i)| *i == inode && unit_of(*pid).as_deref() == Some(unit))
                .map_or(0, |(pid, _)| *pid);
            doomed.push(DoomedConnection {
                unit: unit.clone(),
                pid,
                local: format!("pipe:[{inode}]"),
                remote: others.join(", "),
                reason: format!(
                    "pipe shared with {}: each side gets a pipe of its own, they no longer talk",
                    others.join(", ")
                ),
            });
        }
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_between_units_are_found_and_relive_s_own_left_out() {
        let unit_of = |pid: u32| match pid {
            10 | 11 => Some("web.service".to_owned()),
            20 => Some("log.service".to_owned()),
            _ => None,
        };
        let fds = [
            // Within web.service: fine.
            (10, 100),
            (11, 100),
            // web.service's output, read by relive: relive's own.
            (10, 200),
            (1, 200),
            // web.service | log.service.
            (11, 300),
            (20, 300),
            // log.service and a process outside the preserved units.
            (20, 400),
            (77, 400),
            // Two outsiders: not the plan's business.
            (77, 500),
            (78, 500),
        ];
        let found = shared(&fds, unit_of);
        assert_eq!(found.keys().copied().collect::<Vec<_>>(), [300, 400]);
        assert_eq!(
            found[&300],
            BTreeSet::from([
                Holder::Unit("log.service".into()),
                Holder::Unit("web.service".into())
            ])
        );
        assert!(found[&400].contains(&Holder::Process(77)));
    }
}
