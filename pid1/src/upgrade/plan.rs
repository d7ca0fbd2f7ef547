//! The plan of a live upgrade: which units are preserved (and in which
//! order), restarted or rerun, how big their images will be, and which TCP
//! connections cannot survive. `relivectl live-upgrade --dry-run` prints it.

use super::connections::{self, Connection};
use crate::manager::state::{ActiveState, UnitState};
use crate::manager::Manager;
use relive_units::{UnitKind, UpgradeMode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Preserved units in freeze order: ascending priority, so the most
    /// critical is frozen last and (in reverse) restored first.
    pub preserved: Vec<PlannedUnit>,
    /// Stopped cleanly before the kexec and started fresh after it.
    pub restarted: Vec<String>,
    /// Run again early in the new kernel (network, sysctl...).
    pub rerun: Vec<String>,
    /// Sum of the preserved units' estimates.
    pub estimated_image_bytes: u64,
    /// Connections of preserved units that will be reset.
    pub doomed_connections: Vec<DoomedConnection>,
    /// Preflight checks, in the order run.
    pub checks: Vec<Check>,
    /// Where the images travel (decided by the preflight).
    #[serde(default)]
    pub store: Option<super::memstore::StoreChoice>,
    /// The unit files of every unit the upgrade touches, with their
    /// modification times, to tell which were edited meanwhile.
    #[serde(default)]
    pub unit_files: Vec<(std::path::PathBuf, u128)>,
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
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

impl Manager {
    /// Builds the plan from the units' state and /proc. Runs on the loop's
    /// thread (it reads the manager), and takes milliseconds.
    pub fn upgrade_plan(&self) -> Plan {
        let mut plan = Plan::default();
        let mut preserved: Vec<PlannedUnit> = Vec::new();
        for u in self.state.units.values().filter(|u| is_running_service(u)) {
            let cfg = u.config.as_ref().expect("a running service is loaded");
            match cfg.live_upgrade.mode {
                UpgradeMode::Preserve => {
                    let cgroup = crate::sys::cgroup::unit_cgroup(&u.name);
                    let pids: Vec<u32> = self
                        .rt
                        .kernel
                        .cgroup_pids(&cgroup)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|p| p as u32)
                        .collect();
                    let estimated_bytes = pids.iter().map(|p| anonymous_bytes(*p)).sum();
                    preserved.push(PlannedUnit {
                        name: u.name.clone(),
                        main_pid: u.main_pid.unwrap_or(0) as u32,
                        priority: cfg.live_upgrade.priority,
                        pids,
                        estimated_bytes,
                        pre_dump: cfg.live_upgrade.pre_dump,
                        pre_dump_max_rounds: cfg.live_upgrade.pre_dump_max_rounds,
                        rollback: cfg.live_upgrade.rollback_on_restore_failure,
                    });
                }
                UpgradeMode::Restart => plan.restarted.push(u.name.clone()),
                UpgradeMode::Rerun => plan.rerun.push(u.name.clone()),
            }
        }
        preserved.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then_with(|| a.name.cmp(&b.name))
        });
        plan.estimated_image_bytes = preserved.iter().map(|p| p.estimated_bytes).sum();
        let touched: Vec<&str> = preserved
            .iter()
            .map(|p| p.name.as_str())
            .chain(plan.restarted.iter().map(String::as_str))
            .chain(plan.rerun.iter().map(String::as_str))
            .collect();
        plan.unit_files = touched
            .iter()
            .filter_map(|name| self.state.units.get(*name)?.config.as_ref())
            .flat_map(|c| std::iter::once(&c.fragment).chain(&c.dropins))
            .map(|path| (path.clone(), modified_ns(path)))
            .collect();
        plan.doomed_connections = doomed_connections(&preserved, &self.state.units);
        plan.preserved = preserved;
        plan
    }
}

fn is_running_service(u: &UnitState) -> bool {
    u.config
        .as_ref()
        .is_some_and(|c| c.kind == UnitKind::Service)
        && matches!(u.active, ActiveState::Active | ActiveState::Reloading)
}

/// Connections of preserved processes whose local peer is not preserved.
fn doomed_connections(
    preserved: &[PlannedUnit],
    units: &std::collections::BTreeMap<String, UnitState>,
) -> Vec<DoomedConnection> {
    let owner_unit: HashMap<u32, &str> = preserved
        .iter()
        .flat_map(|p| p.pids.iter().map(move |pid| (*pid, p.name.as_str())))
        .collect();
    let pids: Vec<u32> = owner_unit.keys().copied().collect();
    let sockets = connections::all_sockets();
    let owners = connections::socket_owners();
    connections::connections_of(&pids, &sockets, &owners)
        .into_iter()
        .filter_map(|c: Connection| {
            let peer = c.peer_pid?;
            if owner_unit.contains_key(&peer) {
                return None;
            }
            let peer_unit = crate::sys::cgroup::cgroup_of(peer as i32)
                .as_deref()
                .and_then(crate::sys::cgroup::unit_of_cgroup)
                .filter(|u| units.contains_key(*u))
                .map(|u| format!("{u} (not preserved)"))
                .unwrap_or_else(|| format!("PID {peer}, outside any preserved unit"));
            Some(DoomedConnection {
                unit: owner_unit[&c.pid].to_owned(),
                pid: c.pid,
                local: c.local,
                remote: c.remote,
                reason: format!("its local peer is {peer_unit}: the connection will be reset"),
            })
        })
        .collect()
}

/// The process's anonymous memory (smaps_rollup), which is what a
/// checkpoint mostly consists of.
fn anonymous_bytes(pid: u32) -> u64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("Anonymous:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A file's modification time in nanoseconds (0 when it cannot be read).
pub fn modified_ns(path: &std::path::Path) -> u128 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// The unit files changed since the plan was made.
pub fn edited_unit_files(plan: &Plan) -> Vec<std::path::PathBuf> {
    plan.unit_files
        .iter()
        .filter(|(path, then)| modified_ns(path) != *then)
        .map(|(path, _)| path.clone())
        .collect()
}
