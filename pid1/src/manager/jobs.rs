//! Jobs: what was asked of a unit, run in dependency order.
//!
//! Ordering (After=/Before=) only matters between units that both have a
//! job, as in systemd: a start job waits for the start jobs of the units it
//! is ordered after (and for those being carried across a live upgrade);
//! a stop job waits for the stop jobs of the units ordered after it.
//! Requirement (Requires=/BindsTo=) decides failure: when a start
//! job fails, the start jobs of the units that require it fail too.

use super::ordering::OrderIndex;
use super::state::*;
use super::{Manager, ManagerError};
use crate::systemd1::events::{BusEvent, JobResult};
use relive_units::UnitKind;

/// What a waiting caller learns.
pub type JobOutcome = Result<(), ManagerError>;

impl Manager {
    /// Queues `kind` on `name` and everything it pulls in. Returns the job
    /// id of the unit's own job, to wait on; None when there is nothing to do.
    pub fn enqueue(&mut self, name: &str, kind: JobKind) -> Result<Option<u64>, ManagerError> {
        if self.state.shutdown.is_some() && kind != JobKind::Stop {
            return Err(ManagerError::Refused("the system is shutting down".into()));
        }
        let canonical = self.load(name);
        let unit = &self.state.units[&canonical];
        if unit.parked {
            return Err(ManagerError::Refused(format!(
                "{canonical} is being carried across a live upgrade"
            )));
        }
        if unit.load != LoadState::Loaded && kind != JobKind::Stop {
            return Err(ManagerError::NoSuchUnit {
                name: name.to_owned(),
                reason: unit
                    .load_error
                    .clone()
                    .unwrap_or_else(|| unit.load.as_str().to_owned()),
            });
        }
        let id = match kind {
            JobKind::Start => {
                let mut pulled = Vec::new();
                self.collect_start(&canonical, &mut pulled);
                for dep in pulled {
                    self.add_job(&dep, JobKind::Start);
                }
                self.add_job(&canonical, JobKind::Start)
            }
            JobKind::Stop => {
                for dep in self.requirers_transitive(&canonical) {
                    if self.state.units[&dep].active != ActiveState::Inactive {
                        self.add_job(&dep, JobKind::Stop);
                    }
                }
                self.add_job(&canonical, JobKind::Stop)
            }
            JobKind::Restart => self.add_job(&canonical, JobKind::Restart),
            JobKind::Reload => {
                let u = &self.state.units[&canonical];
                if !matches!(u.active, ActiveState::Active) {
                    return Err(ManagerError::JobFailed(format!(
                        "Unit {canonical} cannot be reloaded: it is not active"
                    )));
                }
                if u.config
                    .as_ref()
                    .and_then(|c| c.service.as_ref())
                    .is_none_or(|s| {
                        s.exec_reload.is_empty()
                            && s.service_type != relive_units::ServiceType::NotifyReload
                    })
                {
                    return Err(ManagerError::JobFailed(format!(
                        "Unit {canonical} has no ExecReload= and cannot be reloaded"
                    )));
                }
                self.add_job(&canonical, JobKind::Reload)
            }
        };
        Ok(id)
    }

    /// Queues a job, registers the caller as waiting on it, and runs what
    /// can run. The receiver yields the outcome of the unit's own job.
    pub fn request(
        &mut self,
        name: &str,
        kind: JobKind,
    ) -> Result<async_channel::Receiver<JobOutcome>, ManagerError> {
        let rx = self.enqueue_waited(name, kind)?;
        self.dispatch();
        Ok(rx)
    }

    /// Start jobs for every unit in `names`, all queued before any runs,
    /// so that After= orders them among themselves whatever the order of
    /// the list (queued one by one, a unit listed first would start before
    /// the job of one it is ordered after existed).
    pub fn request_starts(
        &mut self,
        names: &[String],
    ) -> Vec<Result<async_channel::Receiver<JobOutcome>, ManagerError>> {
        let queued = names
            .iter()
            .map(|name| self.enqueue_waited(name, JobKind::Start))
            .collect();
        self.dispatch();
        queued
    }

    fn enqueue_waited(
        &mut self,
        name: &str,
        kind: JobKind,
    ) -> Result<async_channel::Receiver<JobOutcome>, ManagerError> {
        let id = self.enqueue(name, kind)?;
        let (tx, rx) = async_channel::bounded(1);
        match id {
            Some(id) => self.rt.waiters.entry(id).or_default().push(tx),
            None => {
                let _ = tx.try_send(Ok(()));
            }
        }
        Ok(rx)
    }

    /// The units a start of `name` pulls in (Requires, Wants, BindsTo,
    /// transitively), loading them, plus stop jobs for what it conflicts with.
    fn collect_start(&mut self, name: &str, out: &mut Vec<String>) {
        let mut queue = vec![name.to_owned()];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(current) = queue.pop() {
            if !seen.insert(current.clone()) {
                continue;
            }
            let Some(cfg) = self
                .state
                .units
                .get(&current)
                .and_then(|u| u.config.clone())
            else {
                continue;
            };
            // Conflicts= works both ways: what this unit names, and the
            // loaded units that name it.
            let mut conflicts: Vec<String> =
                cfg.unit.conflicts.iter().map(|c| self.load(c)).collect();
            conflicts.extend(self.conflicting_with(&current));
            for c in conflicts {
                if self.state.units[&c].is_up() {
                    self.add_job(&c, JobKind::Stop);
                }
            }
            let required = cfg.unit.requires.iter().chain(&cfg.unit.binds_to);
            let deps = required
                .map(|d| (d, true))
                .chain(cfg.unit.wants.iter().map(|d| (d, false)));
            for (dep, required) in deps {
                let canonical = self.load(dep);
                if !required && self.refused_directive(&canonical).is_some() {
                    // As systemd leaves a wanted unit with a bad setting
                    // out of the transaction.
                    tracing::debug!("{canonical}: not started for {current}'s Wants=");
                    continue;
                }
                if canonical != name {
                    out.push(canonical.clone());
                }
                queue.push(canonical);
            }
        }
    }

    /// Loaded units whose dependency list (chosen by `deps`) names `name`.
    fn units_naming(
        &self,
        name: &str,
        deps: impl Fn(&relive_units::UnitSection) -> Vec<&String>,
    ) -> Vec<String> {
        self.state
            .units
            .values()
            .filter(|u| {
                u.config
                    .as_ref()
                    .is_some_and(|c| deps(&c.unit).iter().any(|d| self.resolves_to(d, name)))
            })
            .map(|u| u.name.clone())
            .collect()
    }

    /// Loaded units whose Conflicts= names `name`.
    fn conflicting_with(&self, name: &str) -> Vec<String> {
        self.units_naming(name, |u| u.conflicts.iter().collect())
    }

    /// Units that Requires= or BindsTo= `name`, directly.
    pub(super) fn requirers(&self, name: &str) -> Vec<String> {
        self.units_naming(name, |u| u.requires.iter().chain(&u.binds_to).collect())
    }

    /// Units that BindsTo= `name`: they stop whenever it goes down.
    pub(super) fn binders(&self, name: &str) -> Vec<String> {
        self.units_naming(name, |u| u.binds_to.iter().collect())
    }

    fn requirers_transitive(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut queue = vec![name.to_owned()];
        while let Some(current) = queue.pop() {
            for r in self.requirers(&current) {
                if r != name && !out.contains(&r) {
                    out.push(r.clone());
                    queue.push(r);
                }
            }
        }
        out
    }

    fn resolves_to(&self, reference: &str, canonical: &str) -> bool {
        reference == canonical
            || self
                .state
                .aliases
                .get(reference)
                .is_some_and(|c| c == canonical)
    }

    /// Puts a job on the unit, merging with one already there.
    pub(super) fn add_job(&mut self, name: &str, kind: JobKind) -> Option<u64> {
        let unit = self.state.units.get(name)?;
        if let Some(job) = &unit.job {
            // A second request of the same kind joins the first.
            if job.kind == kind || (kind == JobKind::Start && job.kind == JobKind::Restart) {
                return Some(job.id);
            }
            if job.running {
                // Let the running job finish its phase; the new one replaces it afterwards.
                tracing::info!("{name}: {:?} job replaces running {:?} job", kind, job.kind);
            }
            let old = job.id;
            self.job_done(
                old,
                name,
                JobResult::Canceled,
                Err(ManagerError::JobFailed(format!(
                    "Job for {name} was replaced by a {kind:?} job"
                ))),
            );
        }
        let unit = self.state.units.get(name)?;
        let is_up = unit.is_up();
        let noop = match kind {
            JobKind::Start => is_up && unit.job.is_none(),
            JobKind::Stop => {
                !is_up
                    && unit.active != ActiveState::Deactivating
                    && unit.job.is_none()
                    && unit.sub != SubState::AutoRestart
            }
            _ => false,
        };
        if noop {
            return None;
        }
        let id = self.rt.next_job_id;
        self.rt.next_job_id += 1;
        let unit = self.state.units.get_mut(name)?;
        let running = unit.job.as_ref().is_some_and(|j| j.running) && kind == JobKind::Stop;
        unit.job = Some(Job {
            kind,
            id,
            running: false,
        });
        self.rt.bus_events.publish(BusEvent::JobNew {
            id,
            unit: name.to_owned(),
        });
        if running {
            // A stop replacing a running start acts at once.
            self.begin_stop(name);
            if let Some(j) = self.state.units.get_mut(name).and_then(|u| u.job.as_mut()) {
                j.running = true;
            }
        }
        Some(id)
    }

    /// Starts every job whose ordering constraints are met, repeatedly,
    /// until no more can start.
    pub fn dispatch(&mut self) {
        loop {
            let waiting: Vec<(String, JobKind)> = self
                .state
                .units
                .values()
                .filter_map(|u| {
                    u.job
                        .as_ref()
                        .filter(|j| !j.running)
                        .map(|j| (u.name.clone(), j.kind))
                })
                .collect();
            // Most wake-ups of the loop find no job waiting: no index then.
            let order = (!waiting.is_empty()).then(|| OrderIndex::build(&self.state));
            let ready: Vec<(String, JobKind)> = match &order {
                Some(order) => waiting
                    .into_iter()
                    .filter(|(name, kind)| self.job_runnable(order, name, *kind))
                    .collect(),
                None => Vec::new(),
            };
            let ready = if ready.is_empty() {
                match order.as_ref().and_then(|order| self.stuck_job(order)) {
                    Some(stuck) => {
                        tracing::warn!(
                            "{}: ordering cycle among queued jobs; running this job to break it",
                            stuck.0
                        );
                        vec![stuck]
                    }
                    None => {
                        if !self.has_jobs() && self.rt.idle_gate.take().is_some() {
                            // The boot's jobs are done: Type=idle programs run.
                            tracing::debug!("no job left: Type=idle services go on");
                        }
                        return;
                    }
                }
            } else {
                ready
            };
            for (name, kind) in ready {
                if let Some(job) = self.state.units.get_mut(&name).and_then(|u| u.job.as_mut()) {
                    job.running = true;
                }
                self.run_job(&name, kind);
            }
        }
    }

    /// Jobs wait only on other queued jobs; if none runs and none can
    /// start, they wait on each other in a cycle. systemd breaks such a
    /// cycle by dropping a job; relive runs one (nothing is left undone).
    fn stuck_job(&self, order: &OrderIndex) -> Option<(String, JobKind)> {
        let any_running = self
            .state
            .units
            .values()
            .any(|u| u.job.as_ref().is_some_and(|j| j.running));
        if any_running {
            return None;
        }
        // A job waiting for a carried unit is not stuck: the unit's
        // restore (or fresh start) lets it go.
        self.state
            .units
            .values()
            .filter(|u| !self.waits_for_carried(order, &u.name))
            .find_map(|u| u.job.as_ref().map(|j| (u.name.clone(), j.kind)))
    }

    /// Whether `name` is ordered after a unit being carried across a live
    /// upgrade (parked): it comes back restored, or started afresh. A unit
    /// the upgrade restarts waits for every parked unit (logind reads
    /// back sessions whose processes are being restored).
    fn waits_for_carried(&self, order: &OrderIndex, name: &str) -> bool {
        let parked = |u: &UnitState| u.parked;
        if self
            .state
            .restarted_after_restores
            .iter()
            .any(|r| r == name)
        {
            return self.state.units.values().any(parked);
        }
        order
            .ordered_before(name)
            .iter()
            .any(|o| self.state.units.get(o).is_some_and(parked))
    }

    fn job_runnable(&self, order: &OrderIndex, name: &str, kind: JobKind) -> bool {
        let waiting_on = |other: &String, kinds: &[JobKind]| {
            self.state
                .units
                .get(other)
                .and_then(|u| u.job.as_ref())
                .is_some_and(|j| kinds.contains(&j.kind))
        };
        match kind {
            // A unit carried across a live upgrade is waited for as if it
            // had a start job (user-runtime-dir@ asks logind through
            // dbus-daemon).
            JobKind::Start | JobKind::Restart => {
                !self.waits_for_carried(order, name)
                    && !order
                        .ordered_before(name)
                        .iter()
                        .any(|o| waiting_on(o, &[JobKind::Start, JobKind::Restart]))
                    && !order
                        .ordered_after(name)
                        .iter()
                        .any(|o| waiting_on(o, &[JobKind::Stop]))
            }
            JobKind::Stop => !order
                .ordered_after(name)
                .iter()
                .any(|o| waiting_on(o, &[JobKind::Stop])),
            JobKind::Reload => true,
        }
    }

    fn run_job(&mut self, name: &str, kind: JobKind) {
        let kind_of_unit = self.state.units[name].config.as_ref().map(|c| c.kind);
        match kind {
            JobKind::Start => {
                if let Some(failed) = self.failed_requirement(name) {
                    self.set_result(name, UnitResult::Dependency);
                    self.finish_job(
                        name,
                        Err(ManagerError::JobFailed(format!(
                            "Dependency failed for {name}: {failed} did not start"
                        ))),
                    );
                    return;
                }
                match kind_of_unit {
                    Some(UnitKind::Service) => self.begin_start(name),
                    Some(UnitKind::Socket) => self.start_socket(name),
                    Some(UnitKind::Timer) => self.start_timer(name),
                    Some(UnitKind::Device) => self.start_device(name),
                    Some(UnitKind::Mount | UnitKind::Swap) => self.start_mount(name),
                    Some(UnitKind::Path) => self.start_path(name),
                    Some(UnitKind::Automount) => self.start_automount(name),
                    Some(UnitKind::Slice) => self.start_slice(name),
                    Some(UnitKind::Scope) => self.start_scope(name),
                    Some(UnitKind::Target) => {
                        // Conditions hold for targets too
                        // (first-boot-complete.target: ConditionFirstBoot=).
                        if self.start_config(name).is_some() {
                            tracing::info!("reached target {name}");
                            self.set_state(name, ActiveState::Active, SubState::Reached);
                        }
                    }
                    // Not runnable here: the job succeeds without activating it.
                    _ => self.finish_job(name, Ok(())),
                }
            }
            JobKind::Stop | JobKind::Restart => match kind_of_unit {
                Some(UnitKind::Service) => self.begin_stop(name),
                Some(UnitKind::Socket) => self.stop_socket(name),
                Some(UnitKind::Timer) => self.stop_timer(name),
                Some(UnitKind::Device) => self.stop_device(name),
                Some(UnitKind::Mount | UnitKind::Swap) => self.stop_mount(name),
                Some(UnitKind::Path) => self.stop_path(name),
                Some(UnitKind::Automount) => self.stop_automount(name),
                Some(UnitKind::Slice) => self.stop_slice(name),
                Some(UnitKind::Scope) => self.stop_scope(name),
                _ => self.set_state(name, ActiveState::Inactive, SubState::Dead),
            },
            JobKind::Reload => self.begin_reload(name),
        }
    }

    /// A required unit that failed (or cannot be loaded), if any.
    fn failed_requirement(&self, name: &str) -> Option<String> {
        let cfg = self.state.units[name].config.as_ref()?;
        cfg.unit
            .requires
            .iter()
            .chain(&cfg.unit.binds_to)
            .find_map(|dep| {
                let u = self.unit(dep)?;
                let bad = match u.load {
                    LoadState::Loaded => {
                        u.active == ActiveState::Failed
                            || (u.active == ActiveState::Inactive
                                && u.result != UnitResult::Success)
                    }
                    _ => true,
                };
                bad.then(|| u.name.clone())
            })
    }

    /// Called on every state change: completes the unit's job when the new
    /// state is what the job waited for.
    pub(super) fn job_progress(&mut self, name: &str) {
        let Some(unit) = self.state.units.get(name) else {
            return;
        };
        let Some(job) = unit.job.clone().filter(|j| j.running) else {
            return;
        };
        let outcome: Option<Result<(), ManagerError>> = match (job.kind, unit.active) {
            (JobKind::Start, ActiveState::Active) => Some(Ok(())),
            (JobKind::Start, ActiveState::Failed) => Some(Err(self.failure_message(name))),
            (JobKind::Start, ActiveState::Inactive) if unit.sub != SubState::AutoRestart => {
                if unit.result == UnitResult::Success {
                    Some(Ok(()))
                } else {
                    Some(Err(self.failure_message(name)))
                }
            }
            (JobKind::Stop, ActiveState::Inactive | ActiveState::Failed) => Some(Ok(())),
            (JobKind::Restart, ActiveState::Inactive | ActiveState::Failed) => {
                // Stopped: now the start half.
                let unit = self.state.units.get_mut(name).expect("checked above");
                unit.job = Some(Job {
                    kind: JobKind::Start,
                    id: job.id,
                    running: false,
                });
                unit.restarts = 0;
                return;
            }
            (JobKind::Reload, ActiveState::Active) => Some(Ok(())),
            (JobKind::Reload, ActiveState::Failed | ActiveState::Inactive) => Some(Err(
                ManagerError::JobFailed(format!("Reload of {name} failed: the unit stopped")),
            )),
            _ => None,
        };
        if let Some(outcome) = outcome {
            self.finish_job(name, outcome);
        }
    }

    fn failure_message(&self, name: &str) -> ManagerError {
        let u = &self.state.units[name];
        let why = match &u.result {
            UnitResult::Resources(msg) => format!("resources ({msg})"),
            UnitResult::ExitCode(c) => format!("exit-code (status={c})"),
            UnitResult::Signal(s) => format!("signal ({})", super::signal_name(*s)),
            r => r.as_str().to_owned(),
        };
        ManagerError::JobFailed(format!(
            "Job for {name} failed: {why}. See \"relivectl status {name}\" for details."
        ))
    }

    pub(super) fn finish_job(&mut self, name: &str, outcome: JobOutcome) {
        let Some(job) = self.state.units.get_mut(name).and_then(|u| u.job.take()) else {
            return;
        };
        if let Err(e) = &outcome {
            tracing::warn!("{e}");
            if job.kind == JobKind::Start {
                // Units that need this one cannot start either.
                for requirer in self.requirers(name) {
                    let waiting = self.state.units[&requirer]
                        .job
                        .as_ref()
                        .is_some_and(|j| j.kind == JobKind::Start && !j.running);
                    if waiting {
                        self.set_result(&requirer, UnitResult::Dependency);
                        self.finish_job(
                            &requirer,
                            Err(ManagerError::JobFailed(format!(
                                "Dependency failed for {requirer}: {name} did not start"
                            ))),
                        );
                    }
                }
            }
        }
        let result = match &outcome {
            Ok(()) => JobResult::Done,
            Err(ManagerError::Refused(_)) => JobResult::Canceled,
            Err(_) if self.state.units[name].result == UnitResult::Dependency => {
                JobResult::Dependency
            }
            Err(_) => JobResult::Failed,
        };
        self.job_done(job.id, name, result, outcome);
    }

    /// Tells the callers waiting on job `id` and the bus clients how it ended.
    pub(super) fn job_done(&mut self, id: u64, unit: &str, result: JobResult, outcome: JobOutcome) {
        self.rt.bus_events.publish(BusEvent::JobRemoved {
            id,
            unit: unit.to_owned(),
            result,
        });
        for tx in self.rt.waiters.remove(&id).unwrap_or_default() {
            let _ = tx.try_send(outcome.clone());
        }
    }

    /// Queues a job for a systemd1 client, which always gets a job to wait
    /// for: one with nothing to do ends at once, as in systemd.
    pub fn enqueue_for_bus(&mut self, name: &str, kind: JobKind) -> Result<u64, ManagerError> {
        let canonical = self.load(name);
        let id = match self.enqueue(name, kind)? {
            Some(id) => id,
            None => self.job_with_nothing_to_do(&canonical),
        };
        self.dispatch();
        Ok(id)
    }

    /// A job that is done as soon as it is made (a start of a running
    /// unit): its id, after JobNew and JobRemoved went out.
    pub fn job_with_nothing_to_do(&mut self, unit: &str) -> u64 {
        let id = self.rt.next_job_id;
        self.rt.next_job_id += 1;
        self.rt.bus_events.publish(BusEvent::JobNew {
            id,
            unit: unit.to_owned(),
        });
        self.job_done(id, unit, JobResult::Done, Ok(()));
        id
    }

    pub(super) fn set_result(&mut self, name: &str, result: UnitResult) {
        if let Some(u) = self.state.units.get_mut(name) {
            u.result = result;
            if u.result == UnitResult::Dependency {
                u.active = ActiveState::Failed;
                u.sub = SubState::Failed;
                u.state_change_usec = super::clock::wall_usec();
                tracing::warn!("{name}: failed (dependency)");
            }
        }
    }

    pub fn has_jobs(&self) -> bool {
        self.state.units.values().any(|u| u.job.is_some())
    }

    /// Type=idle's gate (read end, write end) a child waits on before its
    /// exec while other jobs run; None when none does.
    pub(super) fn idle_gate(
        &mut self,
        name: &str,
    ) -> Option<(std::os::fd::RawFd, std::os::fd::RawFd)> {
        use std::os::fd::AsRawFd;
        let others = self
            .state
            .units
            .values()
            .filter(|u| u.job.is_some() && u.name != name)
            .count();
        if others == 0 {
            return None;
        }
        if self.rt.idle_gate.is_none() {
            match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
                Ok(pair) => {
                    tracing::debug!("{name}: Type=idle, waiting for {others} other jobs");
                    self.rt.idle_gate = Some(pair)
                }
                Err(e) => {
                    tracing::warn!("Type=idle: cannot make its gate: {e}");
                    return None;
                }
            }
        }
        self.rt
            .idle_gate
            .as_ref()
            .map(|(read, write)| (read.as_raw_fd(), write.as_raw_fd()))
    }
}
