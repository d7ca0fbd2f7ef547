//! Building blocks of the plan (relive_api::plan::Plan), which PID 1
//! assembles from its units: image size estimates, the TCP connections
//! that cannot survive, and the unit files to watch for edits.

use crate::connections::{self, Connection};
use crate::unix_ties::{self, Sockets};
use relive_api::plan::{DoomedConnection, Plan, PlannedUnit, UnixLink};
use relive_api::report::TiePeer;
use std::collections::HashMap;

/// Connections of preserved processes whose local peer is not preserved.
pub fn doomed_connections(
    preserved: &[PlannedUnit],
    is_unit: impl Fn(&str) -> bool,
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
            let peer_unit = relive_sys::cgroup::cgroup_of(peer as i32)
                .as_deref()
                .and_then(relive_sys::cgroup::unit_of_cgroup)
                .filter(|u| is_unit(u))
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

/// The preserved units' unix sockets to processes outside them: links
/// between two preserved units (each once), and those that will be reset.
pub fn unix_plan(
    preserved: &[PlannedUnit],
    is_unit: impl Fn(&str) -> bool,
) -> (Vec<UnixLink>, Vec<DoomedConnection>) {
    let sockets = match Sockets::now() {
        Ok(sockets) => sockets,
        Err(e) => {
            tracing::warn!("cannot list unix sockets (sock_diag): {e}");
            return (Vec::new(), Vec::new());
        }
    };
    let unit_of = |pid: u32| relive_sys::cgroup::unit_of_pid(pid as i32).filter(|u| is_unit(u));
    let is_preserved = |unit: &str| preserved.iter().any(|p| p.name == unit);
    let mut links: Vec<(u64, UnixLink)> = Vec::new();
    let mut doomed = Vec::new();
    for unit in preserved {
        for held in unix_ties::ties_of(&unit.name, &unit.pids, &sockets, &unit_of, &is_preserved) {
            match held.tie.peer {
                TiePeer::Unit { unit: other, inode } => {
                    let key = held.tie.inode.min(inode);
                    if links.iter().all(|(k, _)| *k != key) {
                        links.push((
                            key,
                            UnixLink {
                                a: unit.name.clone(),
                                b: other,
                                kind: held.tie.kind,
                                name: held.tie.name,
                            },
                        ));
                    }
                }
                TiePeer::Reset { why } => doomed.push(DoomedConnection {
                    unit: unit.name.clone(),
                    pid: held.pid,
                    local: format!("unix {} socket {}", held.tie.kind.name(), held.tie.name),
                    remote: why.clone(),
                    reason: format!("unix socket to {why}: will be reset"),
                }),
            }
        }
    }
    (links.into_iter().map(|(_, l)| l).collect(), doomed)
}

/// Puts each group's members next to each other in `plan.preserved`, at
/// the group's highest priority: they are frozen together when the first
/// of them is parked.
pub fn order_groups(plan: &mut Plan) {
    let groups = plan.groups();
    let rank = |unit: &PlannedUnit| {
        let group = groups.iter().find(|g| g.contains(&unit.name));
        let priority = group.map_or(unit.priority, |g| {
            plan.preserved
                .iter()
                .filter(|u| g.contains(&u.name))
                .map(|u| u.priority)
                .max()
                .unwrap_or(unit.priority)
        });
        let first = group.map_or(unit.name.clone(), |g| g[0].clone());
        (priority, first, unit.name.clone())
    };
    let mut ranked: Vec<_> = plan
        .preserved
        .iter()
        .map(|u| (rank(u), u.clone()))
        .collect();
    ranked.sort_by(|a, b| a.0.cmp(&b.0));
    plan.preserved = ranked.into_iter().map(|(_, u)| u).collect();
}

/// The process's anonymous memory (smaps_rollup), which is what a
/// checkpoint mostly consists of.
pub fn anonymous_bytes(pid: u32) -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, priority: u16) -> PlannedUnit {
        PlannedUnit {
            name: name.into(),
            priority,
            main_pid: 0,
            pids: Vec::new(),
            estimated_bytes: 0,
            pre_dump: false,
            pre_dump_max_rounds: None,
            rollback: false,
        }
    }

    #[test]
    fn a_group_is_parked_together_at_its_highest_priority() {
        let mut plan = Plan {
            preserved: vec![
                unit("app.service", 100),
                unit("cron.service", 200),
                unit("echo.service", 800),
                unit("web.service", 900),
            ],
            unix_links: vec![UnixLink {
                a: "web.service".into(),
                b: "app.service".into(),
                kind: relive_api::report::UnixKind::Stream,
                name: "/run/app.sock".into(),
            }],
            ..Plan::default()
        };
        order_groups(&mut plan);
        let order: Vec<&str> = plan.preserved.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            order,
            ["cron.service", "echo.service", "app.service", "web.service"]
        );
        assert_eq!(
            plan.groups(),
            [vec!["app.service".to_string(), "web.service".to_string()]]
        );
    }

    #[test]
    fn a_unit_file_edited_after_the_plan_is_found() {
        let dir = std::env::temp_dir().join(format!("relive-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (kept, edited) = (dir.join("a.service"), dir.join("b.service"));
        std::fs::write(&kept, "[Service]\n").unwrap();
        std::fs::write(&edited, "[Service]\n").unwrap();
        let plan = Plan {
            unit_files: [&kept, &edited]
                .iter()
                .map(|p| (p.to_path_buf(), modified_ns(p)))
                .collect(),
            ..Plan::default()
        };
        assert!(edited_unit_files(&plan).is_empty());
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&edited)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(edited_unit_files(&plan), vec![edited]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
