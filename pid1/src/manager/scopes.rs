//! Slices and scopes: units that own a cgroup and start no process.
//!
//! A slice is set up by making its cgroup (below its parent slice's) with
//! its limits. A scope is made at run time by StartTransientUnit (logind's
//! session scopes, `systemd-run --scope`): its unit file is written to
//! /run/systemd/transient as systemd writes it, and its start moves the
//! processes the caller named into its cgroup. Nothing tells PID 1 when
//! processes it did not start exit, so a scope's cgroup is looked at once
//! a second (`SCOPE_POLL`) until it is empty; then the scope is inactive
//! and, being transient, forgotten (UnitRemoved).

use super::clock;
use super::state::{ActiveState, SubState, UnitResult};
use super::{Manager, ManagerError};
use relive_units::scope::ScopeSection;
use relive_units::{KillMode, UnitKind};
use std::path::PathBuf;
use std::time::Duration;

/// How often an active scope's cgroup is checked for processes.
const SCOPE_POLL: Duration = Duration::from_secs(1);

/// A unit to make at run time: its name, its unit file, and for a scope
/// the processes it takes in.
#[derive(Debug, Clone)]
pub struct Transient {
    pub name: String,
    pub unit_file: String,
    pub pids: Vec<i32>,
}

impl Manager {
    /// StartTransientUnit: writes the unit file, loads it and queues its
    /// start; the job's id. A name already active, or queued, is refused.
    pub fn start_transient(&mut self, t: Transient) -> Result<u64, ManagerError> {
        if let Some(u) = self.unit(&t.name) {
            if u.is_up() || u.active == ActiveState::Deactivating || u.job.is_some() {
                return Err(ManagerError::Refused(format!(
                    "Unit {} was already loaded or has a fragment file.",
                    t.name
                )));
            }
        }
        let dir = self.transient_dir();
        let has_file = self.loader.load(&t.name).is_ok_and(|u| {
            !u.fragment.as_os_str().is_empty() && u.fragment.parent() != dir.as_deref()
        });
        if has_file {
            // A transient unit never hides a unit file (it would come
            // first in the search path).
            return Err(ManagerError::Refused(format!(
                "Unit {} was already loaded or has a fragment file.",
                t.name
            )));
        }
        self.write_transient(&t.name, &t.unit_file)
            .map_err(|e| ManagerError::Refused(format!("cannot write {}: {e}", t.name)))?;
        // The file is new to the loader: read the search path again, and
        // forget what was known of the name before.
        self.refresh_loader();
        self.state.units.remove(&t.name);
        let canonical = self.load(&t.name);
        let u = &self.state.units[&canonical];
        if let Some(error) = u.load_error.clone() {
            self.forget_transient(&canonical);
            return Err(ManagerError::Refused(error));
        }
        let kind = u.config.as_ref().map(|c| c.kind);
        let unit = self.state.units.get_mut(&canonical).expect("just loaded");
        unit.transient_file = Some(t.unit_file.clone());
        if kind == Some(UnitKind::Scope) {
            if t.pids.is_empty() {
                self.forget_transient(&canonical);
                return Err(ManagerError::Refused(
                    "Scope has no PIDs. Refusing.".to_owned(),
                ));
            }
            self.rt.scope_pids.insert(canonical.clone(), t.pids);
        }
        self.enqueue_for_bus(&canonical, super::state::JobKind::Start)
    }

    fn write_transient(&self, name: &str, text: &str) -> std::io::Result<()> {
        let dir = self.transient_dir().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no transient unit directory in the unit search path",
            )
        })?;
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)
    }

    /// Writes a transient unit's file again if it is gone.
    pub(super) fn rewrite_transient(&self, name: &str) {
        let Some(text) = self.unit(name).and_then(|u| u.transient_file.clone()) else {
            return;
        };
        let missing = self
            .transient_dir()
            .is_some_and(|dir| !dir.join(name).exists());
        if missing {
            if let Err(e) = self.write_transient(name, &text) {
                tracing::warn!("{name}: cannot write its unit file again: {e}");
            }
        }
    }

    /// The transient directory of the search path (/run/systemd/transient
    /// in systemd's).
    fn transient_dir(&self) -> Option<PathBuf> {
        self.unit_dirs
            .iter()
            .find(|d| d.ends_with("transient"))
            .cloned()
    }

    /// A transient unit that ended: its file and its state go, and
    /// subscribers hear UnitRemoved.
    pub(super) fn forget_transient(&mut self, name: &str) {
        if let Some(dir) = self.transient_dir() {
            let _ = std::fs::remove_file(dir.join(name));
        }
        self.rt.scope_pids.remove(name);
        if self.state.units.remove(name).is_some() {
            self.state.aliases.retain(|_, c| c != name);
            self.rt.bus_events.removed(name);
        }
    }

    /// The root slice and system.slice, which systemd has from its start.
    pub fn start_builtin_slices(&mut self) {
        for slice in [relive_units::scope::ROOT_SLICE, relive_units::SYSTEM_SLICE] {
            if let Err(e) = self.request(slice, super::state::JobKind::Start) {
                tracing::warn!("cannot start {slice}: {e}");
            }
        }
    }

    /// Transient units that are over (inactive, no job) are forgotten, as
    /// systemd collects them; a failed one stays until reset-failed.
    pub fn collect_transient(&mut self) {
        let Some(dir) = self.transient_dir() else {
            return;
        };
        if self.state.upgrading {
            // A scope whose processes are being carried across is
            // inactive until its service is restored.
            return;
        }
        let over: Vec<String> = self
            .state
            .units
            .values()
            .filter(|u| u.active == ActiveState::Inactive && u.job.is_none())
            .filter(|u| {
                u.config
                    .as_ref()
                    .is_some_and(|c| c.fragment.parent() == Some(&dir))
            })
            .map(|u| u.name.clone())
            .collect();
        for name in over {
            self.forget_transient(&name);
        }
    }

    pub(super) fn start_slice(&mut self, name: &str) {
        let resources = self
            .unit(name)
            .and_then(|u| u.config.as_ref()?.slice_section.clone())
            .unwrap_or_default()
            .resources;
        match self.create_unit_cgroup(name, &resources, None) {
            Ok(_) => self.set_state(name, ActiveState::Active, SubState::Active),
            Err(e) => self.fail_cgroup_unit(name, e),
        }
    }

    /// A slice stops after what is in it (they are ordered after it):
    /// its cgroup goes if nothing is left in it.
    pub(super) fn stop_slice(&mut self, name: &str) {
        let cgroup = self.unit_cgroup(name);
        if !cgroup.is_empty() {
            self.rt.kernel.cgroup_remove(&cgroup);
        }
        self.set_state(name, ActiveState::Inactive, SubState::Dead);
    }

    pub(super) fn start_scope(&mut self, name: &str) {
        let Some(scope) = self.scope_config(name) else {
            return;
        };
        let pids = self.rt.scope_pids.remove(name).unwrap_or_default();
        if pids.is_empty() {
            // Only StartTransientUnit gives a scope its processes.
            return self
                .fail_cgroup_unit(name, "a scope is only started with its processes".into());
        }
        let cgroup = match self.create_unit_cgroup(name, &scope.resources, None) {
            Ok(c) => c,
            Err(e) => return self.fail_cgroup_unit(name, e),
        };
        let mut moved = 0;
        for pid in pids {
            match self.rt.kernel.cgroup_attach(&cgroup, pid) {
                Ok(()) => moved += 1,
                Err(e) => tracing::warn!("{name}: cannot move process {pid} into it: {e}"),
            }
        }
        if moved == 0 {
            self.rt.kernel.cgroup_remove(&cgroup);
            return self.fail_cgroup_unit(name, "none of its processes is left".into());
        }
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.result = UnitResult::Success;
        u.deadline = Some(clock::after(clock::now(), SCOPE_POLL));
        self.set_state(name, ActiveState::Active, SubState::Running);
    }

    /// KillSignal= (and SIGHUP with SendSIGHUP=) to the scope's
    /// processes, then SIGKILL after TimeoutStopSec= if any is left.
    pub(super) fn stop_scope(&mut self, name: &str) {
        let Some(scope) = self.scope_config(name) else {
            return;
        };
        let timeout = super::service::resolve_timeout(
            scope.timeout_stop,
            self.config.manager.default_timeout_stop_sec,
        );
        let now = clock::now();
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.wait_until = timeout.map(|t| clock::after(now, t));
        u.deadline = Some(clock::after(now, SCOPE_POLL));
        self.set_state(name, ActiveState::Deactivating, SubState::StopSigterm);
        self.signal_scope(name, &scope, scope.kill_signal);
        if scope.send_sighup {
            self.signal_scope(name, &scope, libc::SIGHUP);
        }
        self.scope_check(name);
    }

    /// AbandonScope: logind lets go of a session's scope; it runs on
    /// until its processes end.
    pub fn abandon_scope(&mut self, name: &str) -> Result<(), ManagerError> {
        let u = self.unit(name).ok_or_else(|| ManagerError::NoSuchUnit {
            name: name.to_owned(),
            reason: "not loaded".into(),
        })?;
        if u.config.as_ref().map(|c| c.kind) != Some(UnitKind::Scope) {
            return Err(ManagerError::Refused(format!(
                "Unit {name} is not a scope."
            )));
        }
        if u.sub != SubState::Running {
            return Err(ManagerError::Refused(
                "Scope not running, cannot abandon.".into(),
            ));
        }
        let canonical = u.name.clone();
        self.set_state(&canonical, ActiveState::Active, SubState::Abandoned);
        Ok(())
    }

    /// The poll deadline of a scope: done when its cgroup is empty; past
    /// TimeoutStopSec= in a stop, SIGKILL.
    pub(super) fn scope_check(&mut self, name: &str) {
        let Some(scope) = self.scope_config(name) else {
            return;
        };
        if self.unit(name).is_some_and(|u| u.parked) {
            // Its processes are in a service's cgroup for a checkpoint.
            let u = self.state.units.get_mut(name).expect("checked");
            u.deadline = Some(clock::after(clock::now(), SCOPE_POLL));
            return;
        }
        let cgroup = self.unit_cgroup(name);
        if !self.rt.kernel.cgroup_populated(&cgroup).unwrap_or(false) {
            self.rt.kernel.cgroup_remove(&cgroup);
            let u = self.state.units.get_mut(name).expect("unit exists");
            u.deadline = None;
            u.wait_until = None;
            let failed = u.result != UnitResult::Success;
            if failed {
                self.set_state(name, ActiveState::Failed, SubState::Failed);
            } else {
                self.set_state(name, ActiveState::Inactive, SubState::Dead);
                // Transient and over: nothing is left to show.
                self.forget_transient(name);
            }
            return;
        }
        let now = clock::now();
        let u = self.state.units.get_mut(name).expect("unit exists");
        let overdue = u.sub == SubState::StopSigterm && u.wait_until.is_some_and(|t| now >= t);
        u.deadline = Some(clock::after(now, SCOPE_POLL));
        if overdue {
            u.wait_until = None;
            if scope.send_sigkill {
                tracing::warn!("{name}: processes left after TimeoutStopSec=, killing them");
                u.result = UnitResult::Timeout;
                self.set_state(name, ActiveState::Deactivating, SubState::StopSigkill);
                self.signal_scope(name, &scope, libc::SIGKILL);
            }
        }
    }

    fn signal_scope(&mut self, name: &str, scope: &ScopeSection, signal: i32) {
        let cgroup = self.unit_cgroup(name);
        if signal == libc::SIGKILL && self.rt.kernel.cgroup_kill(&cgroup).is_ok() {
            return;
        }
        let pids = self.rt.kernel.cgroup_pids(&cgroup).unwrap_or_default();
        // A scope has no main process: KillMode=process signals nothing,
        // mixed only the final SIGKILL (systemd's unit_kill_context()).
        let pids = match scope.kill_mode {
            KillMode::ControlGroup => pids,
            KillMode::Mixed if signal == libc::SIGKILL => pids,
            _ => Vec::new(),
        };
        for pid in pids {
            let _ = self.rt.kernel.kill(pid, signal);
            let _ = self.rt.kernel.kill(pid, libc::SIGCONT);
        }
    }

    fn fail_cgroup_unit(&mut self, name: &str, why: String) {
        tracing::error!("{name}: {why}");
        if let Some(u) = self.state.units.get_mut(name) {
            u.result = UnitResult::Resources(why);
        }
        self.set_state(name, ActiveState::Failed, SubState::Failed);
    }

    fn scope_config(&self, name: &str) -> Option<ScopeSection> {
        self.unit(name)?.config.as_ref()?.scope.clone()
    }
}
