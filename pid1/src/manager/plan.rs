//! The plan of a live upgrade, from the units' state: which are
//! preserved (in freeze order), restarted or rerun.

use super::state::{ActiveState, UnitState};
use super::Manager;
use relive_api::plan::{Plan, PlannedUnit};
use relive_snapshot::plan;
use relive_units::{UnitKind, UpgradeMode};

/// Why a service active without a process is rerun.
const NO_PROCESS: &str =
    "active without a process (RemainAfterExit=yes): nothing to checkpoint, run again";

/// Why a unit has the mode its [X-LiveUpgrade] section, relive's
/// built-in policy or its type gives.
fn mode_reason(cfg: &relive_units::Unit) -> &'static str {
    let oneshot = cfg
        .service
        .as_ref()
        .is_some_and(|s| s.service_type == relive_units::ServiceType::Oneshot);
    if let Some((_, why)) = relive_units::upgrade_policy::built_in(&cfg.name)
        .filter(|_| !cfg.live_upgrade.mode_explicit)
    {
        return why;
    }
    match (cfg.live_upgrade.mode, cfg.live_upgrade.mode_explicit) {
        (UpgradeMode::Preserve, true) => "Mode=preserve in its unit",
        (UpgradeMode::Restart, true) => "Mode=restart in its unit",
        (UpgradeMode::Rerun, true) => "Mode=rerun in its unit",
        (UpgradeMode::Rerun, false) if oneshot => "Type=oneshot: run again by default",
        (UpgradeMode::Preserve, false) => "a long-running service: preserved by default",
        (_, false) => "not a service: restarted by default",
    }
}

/// Why a datagram socket unit is rerun.
const DATAGRAM_SOCKET: &str = "a datagram socket of PID 1's that services are connected to by path (/dev/log): opened again before the restores";

/// Why a unit in a slice of its own is not preserved.
const IN_OWN_SLICE: &str =
    "in a slice of its own: the checkpoint looks for a unit's processes in system.slice";

/// Why a PrivateUsers= unit is not preserved: CRIU checkpoints it, but
/// restoring a user namespace without a PID namespace of its own fails
/// (CRIU mounts a fresh /proc inside it, which only the PID namespace's
/// owner may; CRIU 3.17 to 4.2 alike).
pub const PRIVATE_USERS: &str = "PrivateUsers=yes: CRIU cannot restore a user namespace without a PID namespace of its own; restarted with its sandbox (a drop-in with PrivateUsers=no preserves it, without that namespace)";

/// The names of the units PID 1 knows: what the scans of /proc that
/// complete a plan need of the manager.
pub type KnownUnits = std::collections::BTreeSet<String>;

impl Manager {
    /// Builds the plan from the units' state and /proc, on the thread
    /// that calls it (tests).
    pub fn upgrade_plan(&self) -> Plan {
        let (mut plan, known) = self.upgrade_plan_from_state();
        scan_processes(&mut plan, &known);
        plan
    }

    /// The part of the plan read from the units' state: runs on the
    /// loop's thread (it reads the manager) and reads no process;
    /// [`scan_processes`] completes it off the loop.
    pub fn upgrade_plan_from_state(&self) -> (Plan, KnownUnits) {
        let mut plan = Plan::default();
        let mut preserved: Vec<PlannedUnit> = Vec::new();
        for u in self.state.units.values().filter(|u| is_running_service(u)) {
            let cfg = u.config.as_ref().expect("a running service is loaded");
            match cfg.live_upgrade.mode {
                UpgradeMode::Preserve
                    if self.unit_cgroup(&u.name) != relive_sys::cgroup::unit_cgroup(&u.name) =>
                {
                    // The checkpoint finds a unit's processes in
                    // system.slice: a service in a slice of its own
                    // (user@.service) starts again on the new kernel.
                    plan.restarted.push(u.name.clone());
                    plan.why.push((u.name.clone(), IN_OWN_SLICE.into()));
                }
                UpgradeMode::Preserve
                    if cfg
                        .service
                        .as_ref()
                        .is_some_and(|s| s.sandbox.private_users) =>
                {
                    plan.restarted.push(u.name.clone());
                    plan.why.push((u.name.clone(), PRIVATE_USERS.into()));
                }
                UpgradeMode::Preserve => {
                    let cgroup = self.unit_cgroup(&u.name);
                    let pids: Vec<u32> = self
                        .rt
                        .kernel
                        .cgroup_pids(&cgroup)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|p| p as u32)
                        .collect();
                    if u.main_pid.is_none() && pids.is_empty() {
                        // Active with no process (an init script that
                        // configured something, RemainAfterExit=yes):
                        // nothing to checkpoint; it runs again on the new
                        // kernel, as a oneshot would.
                        plan.rerun.push(u.name.clone());
                        plan.why.push((u.name.clone(), NO_PROCESS.into()));
                        continue;
                    }
                    let mut why = mode_reason(cfg).to_owned();
                    let mut sockets = self.sockets_feeding(&u.name);
                    sockets.retain(|s| !self.rt.listeners.fds_of(s).is_empty());
                    if !sockets.is_empty() {
                        why.push_str(&format!(
                            "; the sockets of {} cross with it, and PID 1 listens on them again once it is restored",
                            sockets.join(", ")
                        ));
                    }
                    plan.why.push((u.name.clone(), why));
                    preserved.push(PlannedUnit {
                        name: u.name.clone(),
                        main_pid: u.main_pid.unwrap_or(0) as u32,
                        priority: cfg.live_upgrade.priority,
                        pids,
                        estimated_bytes: 0,
                        pre_dump: cfg.live_upgrade.pre_dump,
                        pre_dump_max_rounds: cfg.live_upgrade.pre_dump_max_rounds,
                        rollback: cfg.live_upgrade.rollback_on_restore_failure,
                    });
                }
                UpgradeMode::Restart => {
                    plan.restarted.push(u.name.clone());
                    plan.why.push((u.name.clone(), mode_reason(cfg).into()));
                    let carried = carried_on_restart(cfg);
                    if !carried.is_empty() {
                        plan.carried_on_restart.push((u.name.clone(), carried));
                    }
                }
                UpgradeMode::Rerun => {
                    plan.rerun.push(u.name.clone());
                    plan.why.push((u.name.clone(), mode_reason(cfg).into()));
                }
            }
        }
        // Datagram sockets PID 1 listens on (journald's /dev/log and
        // native socket): preserved services are connected to them by
        // path, which CRIU connects again at the restore, so they are
        // opened again first, with the rerun units.
        for u in self.state.units.values() {
            let Some(socket) = u.config.as_ref().and_then(|c| c.socket.as_ref()) else {
                continue;
            };
            let datagram = socket.listen.iter().any(|l| {
                matches!(
                    l.listen,
                    relive_units::socket::Listen::Socket {
                        socket_type: relive_units::socket::SocketType::Datagram,
                        ..
                    }
                )
            });
            if u.active == ActiveState::Active && datagram {
                plan.rerun.push(u.name.clone());
                plan.why.push((u.name.clone(), DATAGRAM_SOCKET.into()));
            }
        }
        // What the restores need first is the machine's early layer: file
        // systems, sockets, sysctls, devices, the network (all ordered
        // before sysinit.target). A rerun service that comes after
        // basic.target is a service like the restored ones, started beside
        // them (on Debian: postgresql.service's wrapper,
        // systemd-user-sessions, user-runtime-dir@, seconds under
        // emulation), and so is the early layer's bookkeeping in relive's
        // built-in table (utmp, the journal's flush, the random seed).
        // A rerun unit ordered after a preserved one waits for its restore
        // (a start waits for a parked unit it is ordered after): it runs
        // beside the restores, never in front of them.
        let order = super::ordering::OrderIndex::build(&self.state);
        let after_preserved = |name: &str| {
            order
                .ordered_before(name)
                .iter()
                .any(|o| preserved.iter().any(|p| &p.name == o))
        };
        plan.rerun_beside_restores = plan
            .rerun
            .iter()
            .filter(|name| {
                let services_layer = self
                    .state
                    .units
                    .get(*name)
                    .and_then(|u| u.config.as_ref())
                    .is_some_and(|c| c.unit.after.iter().any(|a| a == "basic.target"));
                services_layer
                    || relive_units::upgrade_policy::beside_restores(name).is_some()
                    || after_preserved(name)
            })
            .cloned()
            .collect();
        for (name, why) in plan.why.iter_mut() {
            if let Some(beside) = relive_units::upgrade_policy::beside_restores(name) {
                why.push_str(&format!("; beside the restores: it {beside}"));
            }
        }
        (plan.rerun_firewall, plan.rerun_network) =
            super::network_reruns::split(&plan.rerun, &order);
        preserved.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then_with(|| a.name.cmp(&b.name))
        });
        let touched: Vec<&str> = preserved
            .iter()
            .map(|p| p.name.as_str())
            .chain(plan.restarted.iter().map(String::as_str))
            .chain(plan.rerun.iter().map(String::as_str))
            .collect();
        // Their times are read by scan_processes.
        plan.unit_files = touched
            .iter()
            .filter_map(|name| self.state.units.get(*name)?.config.as_ref())
            .flat_map(|c| std::iter::once(&c.fragment).chain(&c.dropins))
            .map(|path| (path.clone(), 0))
            .collect();
        plan.mounts = self
            .state
            .units
            .values()
            .filter(|u| u.active == ActiveState::Active)
            .filter_map(|u| {
                let mount = u.config.as_ref()?.mount.as_ref()?;
                Some((u.name.clone(), mount.where_.to_string_lossy().into_owned()))
            })
            .collect();
        plan.preserved = preserved;
        (plan, self.state.units.keys().cloned().collect())
    }
}

/// Completes a plan from /proc, off PID 1's loop (with many processes
/// the scans take a while): each preserved unit's size, the unit files'
/// times, and what ties units together or will not survive (sockets,
/// pipes, shared memory), from which the groups are made.
pub fn scan_processes(plan: &mut Plan, units: &KnownUnits) {
    for unit in &mut plan.preserved {
        unit.estimated_bytes = unit.pids.iter().map(|p| plan::anonymous_bytes(*p)).sum();
    }
    plan.estimated_image_bytes = plan.preserved.iter().map(|p| p.estimated_bytes).sum();
    for (path, modified) in &mut plan.unit_files {
        *modified = plan::modified_ns(path);
    }
    let preserved = &plan.preserved;
    let known = |u: &str| units.contains(u);
    let mut doomed = plan::doomed_connections(preserved, known);
    let (unix_links, unix_doomed) = plan::unix_plan(preserved, known);
    doomed.extend(unix_doomed);
    let unit_of_outsider =
        |pid: u32| relive_sys::cgroup::unit_of_pid(pid as i32).filter(|u| units.contains(u));
    let (pipe_links, pipe_doomed) = relive_snapshot::pipes::plan(preserved, unit_of_outsider);
    doomed.extend(pipe_doomed);
    doomed.extend(relive_snapshot::shared_memory::doomed(
        preserved,
        unit_of_outsider,
    ));
    plan.doomed_connections = doomed;
    plan.unix_links = unix_links;
    plan.pipe_links = pipe_links;
    plan::order_groups(plan);
}

/// What of /run a restarted unit finds again in the new kernel, as after
/// a restart under systemd: the built-in entries (logind's sessions) and
/// its RuntimeDirectory= with RuntimeDirectoryPreserve=.
fn carried_on_restart(cfg: &relive_units::model::Unit) -> Vec<String> {
    let built_in = relive_units::upgrade_policy::carried_on_restart(&cfg.name);
    let preserved = cfg
        .service
        .as_ref()
        .filter(|s| s.runtime_directory_preserve)
        .map_or(&[][..], |s| &s.runtime_directory[..]);
    built_in
        .iter()
        .map(|p| p.to_string())
        .chain(preserved.iter().cloned())
        .collect()
}

fn is_running_service(u: &UnitState) -> bool {
    u.config
        .as_ref()
        .is_some_and(|c| c.kind == UnitKind::Service)
        && matches!(u.active, ActiveState::Active | ActiveState::Reloading)
}
