//! The service state machine: start, run, stop, restart.
//!
//! Phases run their Exec*= lists one command at a time as "control"
//! processes; the main process is tracked separately. Every phase that can
//! hang has a deadline; `service_timeout` decides what a missed one means.

use super::clock;
use super::state::*;
use super::{ExitStatus, Manager, ManagerError};
use relive_units::{
    FdStorePreserve, KillMode, RestartPolicy, ServiceSection, ServiceType, Timeout,
};
use std::time::Duration;

impl Manager {
    pub(super) fn service_config(&self, name: &str) -> Option<ServiceSection> {
        self.state.units.get(name)?.config.as_ref()?.service.clone()
    }

    /// UtmpIdentifier=, where relive keeps utmp (a machine's PID 1).
    fn utmp_id(&self, svc: &ServiceSection) -> Option<String> {
        (self.rt.scope == relive_sys::machine::Scope::Machine)
            .then(|| svc.utmp_identifier.clone())
            .flatten()
    }

    /// Changes the unit's state, logs it, and lets jobs and bound units react.
    pub(super) fn set_state(&mut self, name: &str, active: ActiveState, sub: SubState) {
        let Some(u) = self.state.units.get_mut(name) else {
            return;
        };
        let old = u.active;
        u.active = active;
        u.sub = sub;
        if old != active {
            u.state_change_usec = clock::wall_usec();
            u.transitions.record(old, active);
            let was_down = matches!(old, ActiveState::Inactive | ActiveState::Failed);
            let is_down = matches!(active, ActiveState::Inactive | ActiveState::Failed);
            if was_down && !is_down {
                u.active_enter_mono = Some(clock::now());
                u.invocation_id = Some(new_invocation_id());
            } else if is_down && !was_down {
                u.inactive_enter_mono = Some(clock::now());
            }
            tracing::debug!(
                "{name}: {} -> {} ({})",
                old.as_str(),
                active.as_str(),
                sub.as_str()
            );
        }
        let went_down = matches!(active, ActiveState::Inactive | ActiveState::Failed)
            && matches!(
                old,
                ActiveState::Active | ActiveState::Reloading | ActiveState::Deactivating
            );
        let requested = u
            .job
            .as_ref()
            .is_some_and(|j| matches!(j.kind, JobKind::Stop | JobKind::Restart));
        self.job_progress(name);
        if old != active && self.state.units[name].is_service() {
            self.socket_trigger_notify(name);
        }
        if old != active {
            self.timer_trigger_notify(name);
            self.path_trigger_notify(name);
            if name == relive_units::DBUS_SERVICE && active == ActiveState::Active {
                self.system_bus_started();
            }
            if name.ends_with(".mount") {
                self.automount_mount_notify(name);
            }
        }
        if went_down && !requested {
            for binder in self.binders(name) {
                if self.state.units[&binder].is_up() {
                    tracing::info!("{binder}: stopping, bound to {name} which went down");
                    let _ = self.enqueue(&binder, JobKind::Stop);
                }
            }
        }
    }

    /// The first directive of the unit that relive does not implement
    /// and that keeps it from starting (relive.unit(5)), described.
    pub fn refused_directive(&self, name: &str) -> Option<String> {
        let cfg = self.unit(name)?.config.as_ref()?;
        let u = cfg.unenforced.iter().find(|u| !u.best_effort)?;
        Some(format!(
            "{}: {}= asks for what relive does not implement (relive.unit(5))",
            u.location, u.directive
        ))
    }

    pub(super) fn begin_start(&mut self, name: &str) {
        let Some(cfg) = self.start_config(name) else {
            return;
        };
        let Some(svc) = cfg.service.clone() else {
            return;
        };
        let now = clock::now();
        let m = &self.config.manager;
        let interval = cfg
            .unit
            .start_limit_interval
            .unwrap_or(Duration::from_secs_f64(m.default_start_limit_interval_sec));
        let burst = cfg
            .unit
            .start_limit_burst
            .unwrap_or(m.default_start_limit_burst);
        let u = self.state.units.get_mut(name).expect("unit exists");
        let window_start = now.saturating_sub(interval.as_nanos() as u64);
        u.start_times.retain(|t| *t >= window_start);
        if burst > 0 && !interval.is_zero() && u.start_times.len() >= burst as usize {
            tracing::warn!("{name}: start request repeated too quickly ({burst} starts within {interval:?}), refusing to start");
            u.result = UnitResult::StartLimitHit;
            u.deadline = None;
            self.set_state(name, ActiveState::Failed, SubState::Failed);
            return;
        }
        u.start_times.push_back(now);
        u.result = UnitResult::Success;
        u.watchdog_override = None;
        u.status_text = None;
        u.ready = false;
        u.reloading = false;
        u.main_pid = None;
        let timeout = self.timeout_start(&svc);
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.deadline = timeout.map(|t| clock::after(now, t));
        let refused = self
            .refused_directive(name)
            .map(|r| format!("{r}, not starting"));
        if let Some(msg) = refused.or_else(|| self.prepare_unit_resources(name, &svc).err()) {
            tracing::error!("{name}: {msg}");
            self.fail_start(name, UnitResult::Resources(msg));
            return;
        }
        tracing::info!(
            "starting {name}{}",
            cfg.unit
                .description
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
        self.set_state(name, ActiveState::Activating, SubState::StartPre);
        self.run_phase(name, ExecPhase::StartPre, 0);
    }

    fn timeout_start(&self, svc: &ServiceSection) -> Option<Duration> {
        resolve_timeout(
            svc.timeout_start,
            self.config.manager.default_timeout_start_sec,
        )
    }

    fn timeout_stop(&self, svc: &ServiceSection) -> Option<Duration> {
        resolve_timeout(
            svc.timeout_stop,
            self.config.manager.default_timeout_stop_sec,
        )
    }

    /// Runs command `index` of `phase`, or moves on when the list is done.
    pub(super) fn run_phase(&mut self, name: &str, phase: ExecPhase, index: usize) {
        let Some(svc) = self.service_config(name) else {
            return;
        };
        let list = match phase {
            ExecPhase::StartPre => &svc.exec_start_pre,
            ExecPhase::Start => &svc.exec_start,
            ExecPhase::StartPost => &svc.exec_start_post,
            ExecPhase::Reload => &svc.exec_reload,
            ExecPhase::Stop => &svc.exec_stop,
            ExecPhase::StopPost => &svc.exec_stop_post,
        };
        let Some(cmd) = list.get(index).cloned() else {
            self.phase_done(name, phase);
            return;
        };
        match self.spawn_command(name, &cmd, phase == ExecPhase::Start) {
            Ok(pid) => {
                let u = self.state.units.get_mut(name).expect("unit exists");
                u.control_pid = Some(pid);
                u.control = Some((phase, index));
            }
            Err(msg) => {
                tracing::error!("{name}: {msg}");
                if cmd.ignore_failure
                    || matches!(
                        phase,
                        ExecPhase::Stop | ExecPhase::StopPost | ExecPhase::Reload
                    )
                {
                    self.run_phase(name, phase, index + 1);
                } else {
                    self.fail_start(name, UnitResult::Resources(msg));
                }
            }
        }
    }

    /// The phase's commands all ran: enter the next phase.
    fn phase_done(&mut self, name: &str, phase: ExecPhase) {
        let Some(svc) = self.service_config(name) else {
            return;
        };
        match phase {
            ExecPhase::StartPre => self.start_main(name, &svc),
            ExecPhase::Start => {
                if svc.service_type == ServiceType::Forking {
                    if let Err(msg) = self.adopt_forked_main(name, &svc) {
                        tracing::error!("{name}: {msg}");
                        self.fail_start(name, UnitResult::Protocol);
                        return;
                    }
                }
                self.set_state(name, ActiveState::Activating, SubState::StartPost);
                self.run_phase(name, ExecPhase::StartPost, 0);
            }
            ExecPhase::StartPost => {
                let u = self.state.units.get_mut(name).expect("unit exists");
                u.deadline = None;
                if svc.service_type == ServiceType::Oneshot {
                    if svc.remain_after_exit {
                        self.set_state(name, ActiveState::Active, SubState::Exited);
                    } else {
                        self.finish_stop(name);
                    }
                } else if u.main_pid.is_none() && svc.remain_after_exit {
                    self.set_state(name, ActiveState::Active, SubState::Exited);
                } else if u.main_pid.is_none() {
                    let cgroup = self.unit_cgroup(name);
                    if self.rt.kernel.cgroup_populated(&cgroup).unwrap_or(false) {
                        // Processes run, none of them the main one
                        // (GuessMainPID=no): running, as under systemd.
                        self.set_state(name, ActiveState::Active, SubState::Running);
                    } else {
                        // The main process is gone already.
                        self.enter_kill(name);
                    }
                } else {
                    tracing::info!("started {name}");
                    self.set_state(name, ActiveState::Active, SubState::Running);
                }
            }
            ExecPhase::Reload => {
                let reloading = self.state.units[name].reloading;
                if !reloading {
                    let sub = if self.state.units[name].main_pid.is_some() {
                        SubState::Running
                    } else {
                        SubState::Exited
                    };
                    self.set_state(name, ActiveState::Active, sub);
                }
            }
            ExecPhase::Stop => self.enter_kill(name),
            ExecPhase::StopPost => self.finish_stop(name),
        }
    }

    fn start_main(&mut self, name: &str, svc: &ServiceSection) {
        match svc.service_type {
            ServiceType::Forking | ServiceType::Oneshot => {
                self.set_state(name, ActiveState::Activating, SubState::Start);
                self.run_phase(name, ExecPhase::Start, 0);
            }
            ServiceType::Simple
            | ServiceType::Exec
            | ServiceType::Notify
            | ServiceType::NotifyReload
            | ServiceType::Idle
            | ServiceType::Dbus => {
                let Some(cmd) = svc.exec_start.first().cloned() else {
                    self.phase_done(name, ExecPhase::Start);
                    return;
                };
                match self.spawn_command(name, &cmd, true) {
                    Ok(pid) => {
                        self.state
                            .units
                            .get_mut(name)
                            .expect("unit exists")
                            .main_pid = Some(pid);
                        self.arm_watchdog(name);
                        if let Some(id) = self.utmp_id(svc) {
                            super::utmp::init_process(&id, pid, &svc.tty.path.to_string_lossy());
                        }
                        let notify = svc.service_type.notifies();
                        if notify && !self.rt.notify_available {
                            tracing::warn!("{name}: Type=notify, but relive has no notify socket: started as Type=simple");
                        }
                        if notify && self.rt.notify_available {
                            // Wait for READY=1 (see `notify_ready`).
                            self.set_state(name, ActiveState::Activating, SubState::Start);
                        } else if svc.service_type == ServiceType::Exec {
                            // Wait for the exec (see `main_exec_done`).
                            self.set_state(name, ActiveState::Activating, SubState::Start);
                        } else if svc.service_type == ServiceType::Dbus {
                            // Wait for its bus name (see `bus_name_owner_changed`).
                            self.set_state(name, ActiveState::Activating, SubState::Start);
                            self.check_bus_name(name);
                        } else {
                            self.set_state(name, ActiveState::Activating, SubState::StartPost);
                            self.run_phase(name, ExecPhase::StartPost, 0);
                        }
                    }
                    Err(msg) => {
                        tracing::error!("{name}: {msg}");
                        self.fail_start(name, UnitResult::Resources(msg));
                    }
                }
            }
        }
    }

    /// Type=forking: the main process is the one named by PIDFile=, or the
    /// only process left in the cgroup.
    fn adopt_forked_main(&mut self, name: &str, svc: &ServiceSection) -> Result<(), String> {
        let pid = if let Some(path) = &svc.pid_file {
            Some(self.pid_from_file(name, path)?)
        } else {
            let cgroup = self.unit_cgroup(name);
            let pids = self.rt.kernel.cgroup_pids(&cgroup).unwrap_or_default();
            match pids.as_slice() {
                // Nothing left (an init script that only configures):
                // systemd goes on without a main process, and so does
                // a service that says GuessMainPID=no.
                [] => None,
                _ if !svc.guess_main_pid => None,
                [one] => Some(*one),
                _ => return Err("cannot tell the main process among several; set PIDFile=".into()),
            }
        };
        match pid {
            Some(pid) => tracing::info!("{name}: main PID {pid}"),
            None => tracing::info!("{name}: no main process to follow"),
        }
        self.state
            .units
            .get_mut(name)
            .expect("unit exists")
            .main_pid = pid;
        Ok(())
    }

    /// The main PID a PIDFile= names, if it may be trusted. The file may be
    /// written by the service's own user: a PID outside the unit's cgroup
    /// is accepted only from a file root owns (systemd's rule since
    /// CVE-2018-16888), and never PID 1. The file is read without blocking
    /// (a FIFO there would hold the loop) and must be a small regular file.
    fn pid_from_file(&self, name: &str, path: &std::path::Path) -> Result<i32, String> {
        let (data, owner) = relive_units::read::read_regular_owned(path, 4096)
            .map_err(|e| format!("cannot read PIDFile {}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&data);
        let pid: i32 = text
            .trim()
            .parse()
            .ok()
            .filter(|pid| *pid > 0)
            .ok_or_else(|| format!("PIDFile {} holds no PID: {:?}", path.display(), text.trim()))?;
        if pid == 1 {
            return Err(format!("PIDFile {} names PID 1: refused", path.display()));
        }
        let Some(cgroup) = self.rt.kernel.cgroup_of(pid) else {
            return Err(format!(
                "PIDFile {} names PID {pid}, which does not exist",
                path.display()
            ));
        };
        let own = self.unit_cgroup(name);
        let in_unit = cgroup == own || cgroup.starts_with(&format!("{own}/"));
        if !in_unit {
            if owner != 0 {
                return Err(format!(
                    "PIDFile {} (owned by uid {owner}) names PID {pid}, which is not in {name}'s cgroup: refused",
                    path.display()
                ));
            }
            tracing::warn!(
                "{name}: PIDFile {} names PID {pid}, outside the unit's cgroup ({cgroup}); accepted: the file is root's",
                path.display()
            );
        }
        Ok(pid)
    }

    /// The start failed: record why, then clean up what runs.
    pub(super) fn fail_start(&mut self, name: &str, result: UnitResult) {
        let u = self.state.units.get_mut(name).expect("unit exists");
        if u.result == UnitResult::Success {
            u.result = result;
        }
        self.enter_kill(name);
    }

    pub(super) fn begin_stop(&mut self, name: &str) {
        let Some(svc) = self.service_config(name) else {
            return;
        };
        let u = self.state.units.get_mut(name).expect("unit exists");
        match u.active {
            ActiveState::Inactive | ActiveState::Failed => {
                // Nothing runs (or only a pending auto-restart): cancel it.
                u.deadline = None;
                let active = u.active;
                self.set_state(
                    name,
                    active,
                    if active == ActiveState::Failed {
                        SubState::Failed
                    } else {
                        SubState::Dead
                    },
                );
                return;
            }
            ActiveState::Activating if u.sub == SubState::AutoRestart => {
                u.deadline = None;
                self.set_state(name, ActiveState::Inactive, SubState::Dead);
                return;
            }
            _ => {}
        }
        tracing::info!("stopping {name}");
        let was_running = matches!(
            u.sub,
            SubState::Running | SubState::Exited | SubState::Reload
        );
        if let Some(pid) = u.control_pid {
            let _ = self.rt.kernel.kill(pid, svc.kill_signal);
        }
        if was_running && !svc.exec_stop.is_empty() {
            let deadline = self
                .timeout_stop(&svc)
                .map(|t| clock::after(clock::now(), t));
            self.state
                .units
                .get_mut(name)
                .expect("unit exists")
                .deadline = deadline;
            self.set_state(name, ActiveState::Deactivating, SubState::Stop);
            self.run_phase(name, ExecPhase::Stop, 0);
        } else {
            self.enter_kill(name);
        }
    }

    /// Sends KillSignal= as KillMode= says, then waits for the processes to go.
    pub(super) fn enter_kill(&mut self, name: &str) {
        let Some(svc) = self.service_config(name) else {
            return;
        };
        let deadline = self
            .timeout_stop(&svc)
            .map(|t| clock::after(clock::now(), t));
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.deadline = deadline;
        let (main, control) = (u.main_pid, u.control_pid);
        self.set_state(name, ActiveState::Deactivating, SubState::StopSigterm);
        self.signal_unit(name, &svc, svc.kill_signal, main, control);
        if svc.send_sighup {
            // SendSIGHUP=: shells and gettys hang up on it.
            self.signal_unit(name, &svc, libc::SIGHUP, main, control);
        }
        self.check_stopped(name);
    }

    fn signal_unit(
        &mut self,
        name: &str,
        svc: &ServiceSection,
        signal: i32,
        main: Option<i32>,
        control: Option<i32>,
    ) {
        let mut targets: Vec<i32> = main.into_iter().chain(control).collect();
        if svc.kill_mode == KillMode::ControlGroup {
            let cgroup = self.unit_cgroup(name);
            // SIGKILL at once, in the kernel: a process forking in a loop
            // cannot outrun it, as it could a kill per listed PID, and
            // 10,000 processes need no 20,000 kill(2) calls.
            let killed_all = signal == libc::SIGKILL
                && match self.rt.kernel.cgroup_kill(&cgroup) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!("{name}: cgroup.kill: {e}");
                        false
                    }
                };
            if !killed_all {
                targets.extend(self.rt.kernel.cgroup_pids(&cgroup).unwrap_or_default());
            }
        }
        if svc.kill_mode == KillMode::None {
            targets = control.into_iter().collect();
        }
        targets.sort_unstable();
        targets.dedup();
        for pid in targets {
            let _ = self.rt.kernel.kill(pid, signal);
            // A stopped process must run to act on the signal.
            let _ = self.rt.kernel.kill(pid, libc::SIGCONT);
        }
    }

    /// In a stop state: done once the main and control processes are gone
    /// and, for KillMode=control-group/mixed, the cgroup is empty.
    pub(super) fn check_stopped(&mut self, name: &str) {
        let Some(svc) = self.service_config(name) else {
            return;
        };
        let u = &self.state.units[name];
        if !matches!(u.sub, SubState::StopSigterm | SubState::StopSigkill) {
            return;
        }
        // KillMode=none leaves the main process alone: it is not waited for.
        let main_pending = u.main_pid.is_some() && svc.kill_mode != KillMode::None;
        if main_pending || u.control_pid.is_some() {
            return;
        }
        if matches!(svc.kill_mode, KillMode::ControlGroup | KillMode::Mixed) {
            // cgroup.events, not cgroup.procs: this runs on every exit of
            // a process of a stopping unit, and a unit may have 10,000.
            let cgroup = self.unit_cgroup(name);
            if self.rt.kernel.cgroup_populated(&cgroup).unwrap_or(false) {
                return;
            }
        }
        let deadline = self
            .timeout_stop(&svc)
            .map(|t| clock::after(clock::now(), t));
        self.state
            .units
            .get_mut(name)
            .expect("unit exists")
            .deadline = deadline;
        self.set_state(name, ActiveState::Deactivating, SubState::StopPost);
        self.run_phase(name, ExecPhase::StopPost, 0);
    }

    /// All processes are gone: release resources, then settle on inactive,
    /// failed, or a scheduled restart.
    fn finish_stop(&mut self, name: &str) {
        let Some(svc) = self.service_config(name) else {
            return;
        };
        self.release_unit_resources(name, &svc);
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.deadline = None;
        u.main_pid = None;
        u.control_pid = None;
        u.control = None;
        let result = u.result.clone();
        let requested_stop = u
            .job
            .as_ref()
            .is_some_and(|j| matches!(j.kind, JobKind::Stop | JobKind::Restart));
        let restart =
            !requested_stop && self.state.shutdown.is_none() && should_restart(&svc, &result);
        let restart_job = u.job.as_ref().is_some_and(|j| j.kind == JobKind::Restart);
        // Its stored descriptors are closed when it stops for good, or as
        // FileDescriptorStorePreserve= says.
        let keep_store = match svc.fd_store_preserve {
            FdStorePreserve::Yes => true,
            FdStorePreserve::Restart => restart || restart_job,
            FdStorePreserve::No => false,
        };
        if !keep_store {
            self.release_fd_store(name);
        }
        if result == UnitResult::Success {
            self.set_state(name, ActiveState::Inactive, SubState::Dead);
        } else {
            tracing::warn!("{name}: failed with result '{}'", result.as_str());
            self.set_state(name, ActiveState::Failed, SubState::Failed);
        }
        if restart {
            let at = clock::after(clock::now(), svc.restart_sec);
            let u = self.state.units.get_mut(name).expect("unit exists");
            u.deadline = Some(at);
            u.active = ActiveState::Activating;
            u.sub = SubState::AutoRestart;
            tracing::info!("{name}: scheduled restart in {:?}", svc.restart_sec);
        }
    }

    /// A deadline passed.
    pub(super) fn service_timeout(&mut self, name: &str) {
        let Some(svc) = self.service_config(name) else {
            return;
        };
        let u = &self.state.units[name];
        let (main, control) = (u.main_pid, u.control_pid);
        match u.sub {
            SubState::AutoRestart => {
                let u = self.state.units.get_mut(name).expect("unit exists");
                u.restarts += 1;
                tracing::info!("{name}: restarting (restart {})", u.restarts);
                self.begin_start(name);
            }
            SubState::StartPre | SubState::Start | SubState::StartPost => {
                tracing::warn!("{name}: start timed out, terminating");
                self.fail_start(name, UnitResult::Timeout);
            }
            SubState::Stop => {
                tracing::warn!("{name}: ExecStop timed out, terminating");
                if let Some(pid) = control {
                    let _ = self.rt.kernel.kill(pid, libc::SIGKILL);
                }
                self.enter_kill(name);
            }
            SubState::StopSigterm if svc.send_sigkill => {
                tracing::warn!("{name}: stop timed out, killing");
                let deadline = self
                    .timeout_stop(&svc)
                    .map(|t| clock::after(clock::now(), t));
                self.state
                    .units
                    .get_mut(name)
                    .expect("unit exists")
                    .deadline = deadline;
                self.set_state(name, ActiveState::Deactivating, SubState::StopSigkill);
                if matches!(svc.kill_mode, KillMode::ControlGroup | KillMode::Mixed) {
                    let _ = self.rt.kernel.cgroup_kill(&self.unit_cgroup(name));
                }
                self.signal_unit(name, &svc, libc::SIGKILL, main, control);
                self.mark_timeout(name);
                self.check_stopped(name);
            }
            SubState::StopSigterm | SubState::StopSigkill | SubState::StopPost => {
                tracing::error!(
                    "{name}: processes still remain after the stop timeout, giving up on them"
                );
                self.mark_timeout(name);
                let u = self.state.units.get_mut(name).expect("unit exists");
                u.main_pid = None;
                u.control_pid = None;
                self.finish_stop(name);
            }
            _ => {}
        }
    }

    fn mark_timeout(&mut self, name: &str) {
        let u = self.state.units.get_mut(name).expect("unit exists");
        if u.result == UnitResult::Success {
            u.result = UnitResult::Timeout;
        }
    }

    pub(super) fn main_exited(&mut self, name: &str, status: ExitStatus) {
        let Some(svc) = self.service_config(name) else {
            return;
        };
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.watchdog_deadline = None;
        let pid = u.main_pid.take();
        if let (Some(id), Some(pid)) = (self.utmp_id(&svc), pid) {
            super::utmp::dead_process(&id, pid, status);
        }
        let u = self.state.units.get_mut(name).expect("unit exists");
        let clean = is_clean_exit(&svc, status);
        let level_ok = clean
            || matches!(
                u.sub,
                SubState::StopSigterm | SubState::StopSigkill | SubState::Stop
            );
        if level_ok {
            tracing::info!("{name}: main process exited, {}", status.describe());
        } else {
            tracing::warn!("{name}: main process exited, {}", status.describe());
        }
        match u.sub {
            SubState::Stop | SubState::StopSigterm | SubState::StopSigkill | SubState::StopPost => {
                self.check_stopped(name)
            }
            SubState::Start
                if svc.service_type.notifies() || svc.service_type == ServiceType::Dbus =>
            {
                let result = if clean {
                    UnitResult::Protocol
                } else {
                    failure_result(status)
                };
                self.fail_start(name, result);
            }
            SubState::StartPre | SubState::Start | SubState::StartPost if !clean => {
                self.fail_start(name, failure_result(status));
            }
            // A clean exit during StartPost: `phase_done` notices no main is left.
            SubState::Running | SubState::Reload => {
                if clean && svc.remain_after_exit {
                    self.set_state(name, ActiveState::Active, SubState::Exited);
                } else {
                    // A watchdog kill keeps its own result.
                    if !clean && u.result != UnitResult::Watchdog {
                        u.result = failure_result(status);
                    }
                    self.enter_kill(name);
                }
            }
            _ => {}
        }
    }

    pub(super) fn control_exited(&mut self, name: &str, status: ExitStatus) {
        let Some(svc) = self.service_config(name) else {
            return;
        };
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.control_pid = None;
        let Some((phase, index)) = u.control.take() else {
            return;
        };
        let ignore = command_of(&svc, phase, index).is_some_and(|c| c.ignore_failure);
        let ok = status == ExitStatus::Exited(0) || ignore;
        if !ok {
            tracing::warn!(
                "{name}: {:?} command {} failed, {}",
                phase,
                index + 1,
                status.describe()
            );
        }
        match phase {
            ExecPhase::StartPre | ExecPhase::Start | ExecPhase::StartPost => {
                if u.sub == SubState::StopSigterm || u.sub == SubState::StopSigkill {
                    self.check_stopped(name);
                } else if ok {
                    self.run_phase(name, phase, index + 1);
                } else {
                    self.fail_start(name, failure_result(status));
                }
            }
            ExecPhase::Reload => {
                if !ok {
                    if let Some(job) = u.job.as_ref().filter(|j| j.kind == JobKind::Reload) {
                        let id = job.id;
                        u.job = None;
                        self.job_done(
                            id,
                            name,
                            crate::systemd1::events::JobResult::Failed,
                            Err(ManagerError::JobFailed(format!(
                                "Reload of {name} failed: {}",
                                status.describe()
                            ))),
                        );
                    }
                }
                self.run_phase(name, phase, index + 1);
            }
            ExecPhase::Stop => {
                if u.sub == SubState::Stop {
                    self.run_phase(name, phase, index + 1);
                } else {
                    self.check_stopped(name);
                }
            }
            ExecPhase::StopPost => self.run_phase(name, phase, index + 1),
        }
    }

    pub(super) fn begin_reload(&mut self, name: &str) {
        let u = &self.state.units[name];
        if u.active != ActiveState::Active {
            self.finish_job(
                name,
                Err(ManagerError::JobFailed(format!(
                    "Unit {name} is not active"
                ))),
            );
            return;
        }
        tracing::info!("reloading {name}");
        self.set_state(name, ActiveState::Reloading, SubState::Reload);
        let svc = self
            .service_config(name)
            .expect("a service has its section");
        let main = self.state.units[name].main_pid;
        if svc.service_type == ServiceType::NotifyReload && svc.exec_reload.is_empty() {
            if let Some(pid) = main {
                // Done at the READY=1 that follows (see `notify_ready`).
                self.state
                    .units
                    .get_mut(name)
                    .expect("unit exists")
                    .reloading = true;
                if let Err(e) = self.rt.kernel.kill(pid, svc.reload_signal) {
                    tracing::warn!("{name}: cannot send ReloadSignal= to PID {pid}: {e}");
                    self.state
                        .units
                        .get_mut(name)
                        .expect("unit exists")
                        .reloading = false;
                    self.set_state(name, ActiveState::Active, SubState::Running);
                }
                return;
            }
        }
        self.run_phase(name, ExecPhase::Reload, 0);
    }
}

fn command_of(
    svc: &ServiceSection,
    phase: ExecPhase,
    index: usize,
) -> Option<&relive_units::ExecCommand> {
    let list = match phase {
        ExecPhase::StartPre => &svc.exec_start_pre,
        ExecPhase::Start => &svc.exec_start,
        ExecPhase::StartPost => &svc.exec_start_post,
        ExecPhase::Reload => &svc.exec_reload,
        ExecPhase::Stop => &svc.exec_stop,
        ExecPhase::StopPost => &svc.exec_stop_post,
    };
    list.get(index)
}

/// A unit's timeout, or the manager's default; None is no timeout.
pub(super) fn resolve_timeout(setting: Timeout, default_sec: f64) -> Option<Duration> {
    match setting {
        Timeout::Infinity => None,
        Timeout::After(d) => Some(d),
        Timeout::Default if default_sec == 0.0 => None,
        Timeout::Default => Some(Duration::from_secs_f64(default_sec)),
    }
}

/// Exit 0, SuccessExitStatus=, or (not for oneshot) the signals a clean stop uses.
fn is_clean_exit(svc: &ServiceSection, status: ExitStatus) -> bool {
    match status {
        ExitStatus::Exited(0) => true,
        ExitStatus::Exited(code) => svc.success_exit_status.contains(&code),
        ExitStatus::Signaled(sig) => {
            svc.success_signals.contains(&sig)
                || (svc.service_type != ServiceType::Oneshot
                    && [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGPIPE].contains(&sig))
        }
    }
}

pub(super) fn failure_result(status: ExitStatus) -> UnitResult {
    match status {
        ExitStatus::Exited(c) => UnitResult::ExitCode(c),
        ExitStatus::Signaled(s) => UnitResult::Signal(s),
    }
}

/// Restart= against the result, with RestartPreventExitStatus= as a veto.
fn should_restart(svc: &ServiceSection, result: &UnitResult) -> bool {
    let prevented = match result {
        UnitResult::ExitCode(c) => svc.restart_prevent_exit_status.contains(c),
        UnitResult::Signal(s) => svc.restart_prevent_signals.contains(s),
        _ => false,
    };
    if prevented || matches!(result, UnitResult::StartLimitHit | UnitResult::Dependency) {
        return false;
    }
    match svc.restart {
        RestartPolicy::No => false,
        RestartPolicy::OnWatchdog => *result == UnitResult::Watchdog,
        RestartPolicy::Always => true,
        RestartPolicy::OnSuccess => *result == UnitResult::Success,
        RestartPolicy::OnFailure => *result != UnitResult::Success,
        RestartPolicy::OnAbnormal => matches!(
            result,
            UnitResult::Signal(_) | UnitResult::Timeout | UnitResult::Watchdog
        ),
        RestartPolicy::OnAbort => matches!(result, UnitResult::Signal(_)),
    }
}

/// 16 random bytes; zeros (no id) if the kernel has none to give.
fn new_invocation_id() -> [u8; 16] {
    use std::io::Read;
    let mut id = [0u8; 16];
    if let Ok(mut random) = std::fs::File::open("/dev/urandom") {
        let _ = random.read_exact(&mut id);
    }
    id
}
