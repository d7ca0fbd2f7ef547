//! Pipes and FIFOs between a preserved unit and processes outside it.
//!
//! CRIU dumps a pipe with the tree that holds it and restores it as a new
//! pipe whose other end only that tree has; a FIFO it opens again by its
//! path, and writes what waited in it once per tree. So a pipe or FIFO
//! that two units share would come back as two pipes, or with its bytes
//! twice. Where every holder is a preserved unit, the units are a group
//! (frozen together; relive takes what waits in the pipe out, keeps it in
//! the store and writes it back once, and hands every holder's restore
//! the same new pipe: `restore/src/pipe_switch.rs`). Where a holder does
//! not cross the kexec, the plan says the pipe will no longer join them.
//! The pipes between a service and PID 1 (its output, which relive
//! reads) are relive's own and crossed with it.

use relive_api::plan::{DoomedConnection, PipeLink, PlannedUnit};
use relive_api::report::PipeTie;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// Who holds a pipe: a preserved unit, or a process outside them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Holder {
    Unit(String),
    Process(u32),
}

/// A pipe as its holders see it: its inode, and a FIFO's path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PipeRef {
    pub inode: u64,
    pub fifo: Option<String>,
}

impl PipeRef {
    fn name(&self) -> String {
        match &self.fifo {
            None => format!("pipe:[{}]", self.inode),
            Some(path) => format!("FIFO {path}"),
        }
    }
}

/// One process's descriptor on a pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeFd {
    pub pid: u32,
    pub fd: i32,
    pub pipe: PipeRef,
}

/// Pipes held by more than one holder, PID 1's excluded, from `fds`:
/// (PID, pipe) of every process, and `unit_of` the preserved unit a PID
/// belongs to.
pub fn shared<K: Ord + Clone>(
    fds: &[(u32, K)],
    unit_of: impl Fn(u32) -> Option<String>,
) -> BTreeMap<K, BTreeSet<Holder>> {
    let relive_pipes: BTreeSet<&K> = fds
        .iter()
        .filter(|(pid, _)| *pid == 1)
        .map(|(_, pipe)| pipe)
        .collect();
    let mut holders: BTreeMap<K, BTreeSet<Holder>> = BTreeMap::new();
    for (pid, pipe) in fds {
        if *pid == 1 || relive_pipes.contains(pipe) {
            continue;
        }
        let holder = unit_of(*pid).map_or(Holder::Process(*pid), Holder::Unit);
        holders.entry(pipe.clone()).or_default().insert(holder);
    }
    holders.retain(|_, h| h.len() > 1 && h.iter().any(|h| matches!(h, Holder::Unit(_))));
    holders
}

/// Every process's descriptors on pipes, and on FIFOs that relive reaches
/// by the same path (a FIFO of another mount namespace is CRIU's, or
/// foreign: pid1's foreign_fifos).
pub fn all_pipe_fds() -> Vec<PipeFd> {
    let Ok(processes) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for process in processes.flatten() {
        let pid = process.pid as u32;
        for fd in process.fd().into_iter().flatten().flatten() {
            let pipe = match fd.target {
                procfs::process::FDTarget::Pipe(inode) => PipeRef { inode, fifo: None },
                procfs::process::FDTarget::Path(path) => {
                    let Some(inode) = fifo_seen_alike(pid, fd.fd, &path) else {
                        continue;
                    };
                    PipeRef {
                        inode,
                        fifo: Some(path.to_string_lossy().into_owned()),
                    }
                }
                _ => continue,
            };
            found.push(PipeFd {
                pid,
                fd: fd.fd,
                pipe,
            });
        }
    }
    found
}

/// The FIFO's inode, if descriptor `fd` of `pid` is a FIFO that `path`
/// names for relive too.
fn fifo_seen_alike(pid: u32, fd: i32, path: &std::path::Path) -> Option<u64> {
    let held = std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).ok()?;
    if !held.file_type().is_fifo() {
        return None;
    }
    let here = std::fs::metadata(path).ok()?;
    (here.dev() == held.dev() && here.ino() == held.ino()).then_some(held.ino())
}

/// The preserved unit each of `pids` is checkpointed with, if any: its
/// own, or that of an ancestor (an ssh login's session scope is gathered
/// into ssh.service when PID 1 parks it). Each ancestry walked once.
pub fn units_of(
    preserved: &[PlannedUnit],
    pids: impl Iterator<Item = u32>,
) -> BTreeMap<u32, Option<String>> {
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
    pids.collect::<BTreeSet<_>>()
        .into_iter()
        .map(|pid| (pid, unit_of_pid(pid)))
        .collect()
}

/// The holders of a shared pipe or piece of memory other than `unit`,
/// named for the plan.
pub fn others_than(
    unit: &str,
    holders: &BTreeSet<Holder>,
    unit_of_outsider: &impl Fn(u32) -> Option<String>,
) -> String {
    let others: Vec<String> = holders
        .iter()
        .filter(|h| !matches!(h, Holder::Unit(u) if u == unit))
        .map(|h| match h {
            Holder::Unit(u) => format!("{u} (preserved, checkpointed apart)"),
            Holder::Process(pid) => match unit_of_outsider(*pid) {
                Some(u) => format!("{u} (not preserved)"),
                None => format!("PID {pid}, outside any preserved unit"),
            },
        })
        .collect();
    others.join(", ")
}

/// The plan's pipe links (pipes held by preserved units only) and its
/// entries for the pipes a preserved unit shares with others.
pub fn plan(
    preserved: &[PlannedUnit],
    unit_of_outsider: impl Fn(u32) -> Option<String>,
) -> (Vec<PipeLink>, Vec<DoomedConnection>) {
    let fds: Vec<(u32, PipeRef)> = all_pipe_fds()
        .into_iter()
        .map(|f| (f.pid, f.pipe))
        .collect();
    let units = units_of(preserved, fds.iter().map(|(pid, _)| *pid));
    let unit_of = |pid: u32| units.get(&pid).cloned().flatten();
    let mut links = Vec::new();
    let mut doomed = Vec::new();
    for (pipe, holders) in shared(&fds, unit_of) {
        let held_by_units: Vec<&String> = holders
            .iter()
            .filter_map(|h| match h {
                Holder::Unit(u) => Some(u),
                Holder::Process(_) => None,
            })
            .collect();
        if held_by_units.len() == holders.len() {
            // A chain is enough to put them in one group.
            for pair in held_by_units.windows(2) {
                links.push(PipeLink {
                    a: pair[0].clone(),
                    b: pair[1].clone(),
                    name: pipe.fifo.clone().unwrap_or_else(|| pipe.name()),
                });
            }
            continue;
        }
        for unit in held_by_units {
            let others = others_than(unit, &holders, &unit_of_outsider);
            let pid = fds
                .iter()
                .find(|(pid, p)| *p == pipe && unit_of(*pid).as_deref() == Some(unit))
                .map_or(0, |(pid, _)| *pid);
            doomed.push(DoomedConnection {
                unit: unit.clone(),
                pid,
                local: pipe.name(),
                reason: format!(
                    "{} shared with {others}: each side gets a pipe of its own, they no longer talk",
                    pipe.name(),
                ),
                remote: others,
            });
        }
    }
    (links, doomed)
}

/// A pipe tie and where a process of the unit holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPipe {
    pub pid: u32,
    pub fd: i32,
    pub tie: PipeTie,
}

/// The pipe ties of a group's members (each with its processes), among
/// `fds`: pipes that two or more members hold and nobody else.
pub fn ties_of_group(
    members: &[(String, Vec<u32>)],
    fds: &[PipeFd],
) -> BTreeMap<String, Vec<HeldPipe>> {
    let member_of = |pid: u32| {
        members
            .iter()
            .find(|(_, pids)| pids.contains(&pid))
            .map(|(name, _)| name.clone())
    };
    let keyed: Vec<(u32, PipeRef)> = fds.iter().map(|f| (f.pid, f.pipe.clone())).collect();
    let mut ties: BTreeMap<String, Vec<HeldPipe>> = BTreeMap::new();
    for (pipe, holders) in shared(&keyed, member_of) {
        let units: Vec<&String> = holders
            .iter()
            .filter_map(|h| match h {
                Holder::Unit(u) => Some(u),
                Holder::Process(_) => None,
            })
            .collect();
        if units.len() != holders.len() {
            continue;
        }
        for unit in &units {
            let Some(held) = fds
                .iter()
                .find(|f| f.pipe == pipe && member_of(f.pid).as_ref() == Some(*unit))
            else {
                continue;
            };
            ties.entry((*unit).clone()).or_default().push(HeldPipe {
                pid: held.pid,
                fd: held.fd,
                tie: PipeTie {
                    inode: pipe.inode,
                    fifo: pipe.fifo.clone(),
                    units: units
                        .iter()
                        .filter(|u| *u != unit)
                        .map(|u| (*u).clone())
                        .collect(),
                    capacity: 0,
                    queued: 0,
                },
            });
        }
    }
    ties
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

    #[test]
    fn a_group_s_ties_are_the_pipes_only_its_members_hold() {
        let fd = |pid, fd, inode, fifo: Option<&str>| PipeFd {
            pid,
            fd,
            pipe: PipeRef {
                inode,
                fifo: fifo.map(str::to_owned),
            },
        };
        let fds = [
            // writer.service -> /run/feed -> reader.service
            fd(10, 3, 900, Some("/run/feed")),
            fd(20, 0, 900, Some("/run/feed")),
            // writer.service | reader.service, anonymous
            fd(11, 1, 901, None),
            fd(20, 4, 901, None),
            // reader.service and an outsider: not a tie.
            fd(20, 5, 902, None),
            fd(77, 1, 902, None),
        ];
        let members = [
            ("reader.service".to_owned(), vec![20]),
            ("writer.service".to_owned(), vec![10, 11]),
        ];
        let ties = ties_of_group(&members, &fds);
        let reader: Vec<(u64, i32, &[String])> = ties["reader.service"]
            .iter()
            .map(|h| (h.tie.inode, h.fd, h.tie.units.as_slice()))
            .collect();
        let writer = ["writer.service".to_owned()];
        assert_eq!(reader, [(900, 0, &writer[..]), (901, 4, &writer[..])]);
        assert_eq!(ties["writer.service"].len(), 2);
        assert_eq!(ties["writer.service"][0].tie.key(), "fifo:/run/feed");
        assert_eq!(ties["writer.service"][1].tie.key(), "pipe:[901]");
    }
}
