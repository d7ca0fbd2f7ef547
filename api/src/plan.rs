//! The plan of a live upgrade: which units are preserved (and in which
//! order), restarted or rerun, how big their images will be, which TCP
//! connections cannot survive, and how the preflight went.
//! `relivectl live-upgrade --dry-run` prints it.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Preserved units in freeze order: ascending priority, so the most
    /// critical is frozen last and (in reverse) restored first.
    pub preserved: Vec<PlannedUnit>,
    /// Stopped cleanly before the kexec and started fresh after it.
    pub restarted: Vec<String>,
    /// Restarted units' state under /run that crosses the kexec (unit,
    /// paths relative to /run): what they read back when they start
    /// (logind's sessions, RuntimeDirectoryPreserve= directories).
    #[serde(default)]
    pub carried_on_restart: Vec<(String, Vec<String>)>,
    /// Why each unit above is preserved, restarted or rerun (unit,
    /// reason), in the order the units were planned.
    #[serde(default)]
    pub why: Vec<(String, String)>,
    /// Run again early in the new kernel (network, sysctl...).
    pub rerun: Vec<String>,
    /// The rerun units above that belong to the services' layer (ordered
    /// after basic.target): they run again beside the restores rather
    /// than before them, as no restored process waits for them.
    #[serde(default)]
    pub rerun_beside_restores: Vec<String>,
    /// The rerun units that set up a firewall (ordered before
    /// network-pre.target): in the new kernel CRIU's network locks are
    /// loaded once they are done, as a ruleset may flush every table.
    #[serde(default)]
    pub rerun_firewall: Vec<String>,
    /// The rerun units that bring the network up (ordered around
    /// network.target or after network-pre.target), and those ordered
    /// after them: they wait for the network locks, so that no peer of a
    /// preserved connection is answered before its restore. The other
    /// early reruns run beside the locks' loading.
    #[serde(default)]
    pub rerun_network: Vec<String>,
    /// Mount units active now (unit, mount point): kernel state, gone
    /// after the kexec; those a preserved unit's mount namespace holds
    /// are mounted again before the restores (CRIU binds them).
    #[serde(default)]
    pub mounts: Vec<(String, String)>,
    /// Sum of the preserved units' estimates.
    pub estimated_image_bytes: u64,
    /// Connections of preserved units that will be reset.
    pub doomed_connections: Vec<DoomedConnection>,
    /// Unix socket connections between two preserved units: the units are
    /// a group, frozen together and connected again after the restore.
    #[serde(default)]
    pub unix_links: Vec<UnixLink>,
    /// Pipes and FIFOs held by two or more preserved units and nobody
    /// else: the units are a group too, and get one pipe again.
    #[serde(default)]
    pub pipe_links: Vec<PipeLink>,
    /// Preflight checks, in the order run.
    pub checks: Vec<Check>,
    /// Where the images travel (decided by the preflight).
    #[serde(default)]
    pub store: Option<StoreChoice>,
    /// The release the next kernel's image announces (`uname -r` once it
    /// runs), when its header names one.
    #[serde(default)]
    pub next_release: Option<String>,
    /// The unit files of every unit the upgrade touches, with their
    /// modification times, to tell which were edited meanwhile.
    #[serde(default)]
    pub unit_files: Vec<(PathBuf, u128)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedUnit {
    pub name: String,
    pub priority: u16,
    /// The root of the process tree CRIU dumps.
    #[serde(default)]
    pub main_pid: u32,
    pub pids: Vec<u32>,
    /// Anonymous memory of its processes: roughly what CRIU writes.
    pub estimated_bytes: u64,
    /// PreDump= (phase 1 copies it in the background first).
    #[serde(default)]
    pub pre_dump: bool,
    /// PreDumpMaxRounds=.
    #[serde(default)]
    pub pre_dump_max_rounds: Option<u32>,
    /// OnRestoreFailure=rollback.
    #[serde(default)]
    pub rollback: bool,
}

/// A unix socket connection between two preserved units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnixLink {
    pub a: String,
    pub b: String,
    pub kind: crate::report::UnixKind,
    /// The address the listening end was bound to, if any.
    pub name: String,
}

/// A pipe or FIFO between two preserved units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipeLink {
    pub a: String,
    pub b: String,
    /// `pipe:[INODE]`, or the FIFO's path.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoomedConnection {
    pub unit: String,
    pub pid: u32,
    pub local: String,
    pub remote: String,
    /// Why it will not survive.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Plan {
    /// The preservation groups: units tied by unix sockets, pipes or
    /// FIFOs, each group's members sorted by name, the groups in the
    /// order of their first member in `preserved`. A unit with no link is
    /// in no group.
    pub fn groups(&self) -> Vec<Vec<String>> {
        let mut groups: Vec<Vec<String>> = Vec::new();
        let links = self
            .unix_links
            .iter()
            .map(|l| (&l.a, &l.b))
            .chain(self.pipe_links.iter().map(|l| (&l.a, &l.b)));
        for (a, b) in links {
            let find = |groups: &Vec<Vec<String>>, unit: &str| {
                groups.iter().position(|g| g.iter().any(|u| u == unit))
            };
            match (find(&groups, a), find(&groups, b)) {
                (Some(x), Some(y)) if x != y => {
                    let merged = groups.remove(x.max(y));
                    groups[x.min(y)].extend(merged);
                }
                (Some(_), Some(_)) => {}
                (Some(x), None) => groups[x].push(b.clone()),
                (None, Some(y)) => groups[y].push(a.clone()),
                (None, None) => groups.push(vec![a.clone(), b.clone()]),
            }
        }
        for group in &mut groups {
            group.sort();
            group.dedup();
        }
        let first = |group: &Vec<String>| {
            self.preserved
                .iter()
                .position(|u| group.contains(&u.name))
                .unwrap_or(usize::MAX)
        };
        groups.sort_by_key(first);
        groups
    }

    /// The group `unit` is in, if any.
    pub fn group_of(&self, unit: &str) -> Option<Vec<String>> {
        self.groups()
            .into_iter()
            .find(|g| g.iter().any(|u| u == unit))
    }

    /// Why `unit` is preserved, restarted or rerun, if the plan says.
    pub fn why_of(&self, unit: &str) -> Option<&str> {
        self.why
            .iter()
            .find(|(name, _)| name == unit)
            .map(|(_, why)| why.as_str())
    }

    /// What of /run the restarted `unit` finds again (none: empty).
    pub fn carried_on_restart_of(&self, unit: &str) -> &[String] {
        self.carried_on_restart
            .iter()
            .find(|(name, _)| name == unit)
            .map_or(&[], |(_, paths)| paths)
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The failed checks as `name: detail`.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect()
    }
}

/// Where the images of an upgrade travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A `memmap=` region the next kernel leaves alone, as a pmem device.
    Memory,
    /// A directory on the root file system.
    Disk,
}

/// What `upgrade.store` or `--store` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreWanted {
    Memory,
    Disk,
    /// The memory store when it can be used, else the disk store.
    Auto,
}

/// A store name that is not memory, disk or auto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidStore(pub String);

impl std::fmt::Display for InvalidStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid store {:?} (expected memory, disk or auto)",
            self.0
        )
    }
}

impl std::error::Error for InvalidStore {}

impl std::str::FromStr for StoreWanted {
    type Err = InvalidStore;
    fn from_str(s: &str) -> Result<StoreWanted, InvalidStore> {
        match s {
            "memory" => Ok(StoreWanted::Memory),
            "disk" => Ok(StoreWanted::Disk),
            "auto" => Ok(StoreWanted::Auto),
            other => Err(InvalidStore(other.to_owned())),
        }
    }
}

/// Which store an upgrade uses, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreChoice {
    pub kind: StoreKind,
    /// Where the store's files are (the memory store's mount point).
    pub dir: PathBuf,
    /// The memory store's block device.
    pub device: Option<PathBuf>,
    /// The region, or why the disk store is used.
    pub note: String,
    /// Bytes the store can hold (memory store only).
    pub capacity: Option<u64>,
}

/// The kernel command-line word that names the memory store's device.
pub const DEVICE_WORD: &str = "relive.handover_device=";
/// The kernel command-line word that names the store.
pub const STORE_WORD: &str = "relive.handover=";

impl StoreChoice {
    pub fn disk(dir: &Path, note: String) -> StoreChoice {
        StoreChoice {
            kind: StoreKind::Disk,
            dir: dir.to_owned(),
            device: None,
            note,
            capacity: None,
        }
    }

    /// The words the next kernel's command line carries for it.
    pub fn marker(&self) -> String {
        match &self.device {
            Some(device) => format!(
                "{STORE_WORD}{} {DEVICE_WORD}{}",
                self.dir.display(),
                device.display()
            ),
            None => format!("{STORE_WORD}{}", self.dir.display()),
        }
    }
}
