//! What the manager shows: conditions, unit summaries and status for the API.

use super::state::*;
use super::Manager;
use relive_api::units::{UnitStatus, UnitSummary};
use relive_units::{Condition, Unit, UpgradeMode};

/// The first Condition*= that fails, as `PathExists=!/x`; None if the unit
/// may start. Triggering (`|`) conditions need only one of them to hold.
impl super::Manager {
    /// The unit's configuration if it may start now: loaded, and its
    /// Assert*= and Condition*= hold (see `start_checks_pass`).
    pub(super) fn start_config(&mut self, name: &str) -> Option<Unit> {
        let cfg = self.state.units[name].config.clone()?;
        self.start_checks_pass(name, &cfg).then_some(cfg)
    }

    /// Before a start: a failed Assert*= fails the unit (result
    /// `assert`), a failed Condition*= leaves it inactive (a success).
    /// True when the start may go on.
    pub(super) fn start_checks_pass(&mut self, name: &str, cfg: &Unit) -> bool {
        use super::state::{ActiveState, SubState, UnitResult};
        if let Some(failed) = failed_assertion(cfg) {
            tracing::warn!("{name}: assertion failed: {failed}");
            self.state.units.get_mut(name).expect("unit exists").result = UnitResult::Assert;
            self.set_state(name, ActiveState::Failed, SubState::Failed);
            return false;
        }
        if let Some(failed) = failed_condition(cfg) {
            tracing::info!("{name}: start condition not met: {failed}");
            self.state.units.get_mut(name).expect("unit exists").result = UnitResult::Success;
            self.set_state(name, ActiveState::Inactive, SubState::Dead);
            return false;
        }
        true
    }
}

pub(super) fn failed_condition(unit: &Unit) -> Option<String> {
    first_failure(unit.unit.conditions.iter().filter(|c| !c.assert))
}

/// The same for Assert*=, whose failure fails the start.
pub(super) fn failed_assertion(unit: &Unit) -> Option<String> {
    first_failure(unit.unit.conditions.iter().filter(|c| c.assert))
}

fn first_failure<'a>(checks: impl Iterator<Item = &'a Condition> + Clone) -> Option<String> {
    let describe = |c: &Condition| c.to_string();
    let mut triggers = checks.clone().filter(|c| c.trigger).peekable();
    if triggers.peek().is_some() && !checks.clone().filter(|c| c.trigger).any(holds) {
        return checks.clone().find(|c| c.trigger).map(describe);
    }
    checks
        .filter(|c| !c.trigger)
        .find(|c| !holds(c))
        .map(describe)
}

use super::conditions::holds;

/// Output lines a unit may log per interval.
pub const OUTPUT_BURST: u32 = 10_000;
pub const OUTPUT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// One unit's output lines in the current interval.
#[derive(Debug, Default)]
pub struct OutputRate {
    started: Option<std::time::Instant>,
    logged: u32,
    suppressed: u64,
}

/// Whether a line is logged, and how many were not since the last one.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Log { suppressed: u64 },
    Suppress,
}

impl OutputRate {
    pub fn admit(&mut self, now: std::time::Instant) -> Admit {
        let expired = self
            .started
            .is_none_or(|start| now.duration_since(start) >= OUTPUT_INTERVAL);
        if expired {
            self.started = Some(now);
            self.logged = 0;
        }
        if self.logged < OUTPUT_BURST {
            self.logged += 1;
            Admit::Log {
                suppressed: std::mem::take(&mut self.suppressed),
            }
        } else {
            self.suppressed += 1;
            Admit::Suppress
        }
    }
}

impl Manager {
    /// Records an output line of `unit`, keeping the last N. The log gets
    /// at most OUTPUT_BURST lines per unit per OUTPUT_INTERVAL (journald's
    /// defaults): past that they are counted, and the count logged when
    /// the interval ends.
    pub fn output_line(&mut self, unit: &str, line: String) {
        // Every output line passes here: no allocation for a known unit.
        if !self.rt.output_rate.contains_key(unit) {
            self.rt
                .output_rate
                .insert(unit.to_owned(), OutputRate::default());
        }
        let window = self.rt.output_rate.get_mut(unit).expect("inserted above");
        let main_pid = self.state.units.get(unit).and_then(|u| u.main_pid);
        crate::journal_log::note_sender(unit, main_pid);
        match window.admit(std::time::Instant::now()) {
            // The target marks it for the journal (crate::journal_log),
            // which sends it as the unit's main process.
            Admit::Log { suppressed: 0 } => tracing::info!(target: "unit", "{unit}: {line}"),
            Admit::Log { suppressed } => {
                tracing::warn!("{unit}: {suppressed} output lines not logged (more than {OUTPUT_BURST} in {OUTPUT_INTERVAL:?})");
                tracing::info!(target: "unit", "{unit}: {line}");
            }
            Admit::Suppress => {}
        }
        let keep = self.config.manager.status_output_lines;
        if let Some(u) = self.state.units.get_mut(unit) {
            u.output.push_back(line);
            while u.output.len() > keep {
                u.output.pop_front();
            }
        }
    }

    pub fn list_units(&self) -> Vec<UnitSummary> {
        self.state.units.values().map(summary).collect()
    }

    /// Every address of every active socket unit.
    pub fn list_sockets(&self) -> Vec<relive_api::units::SocketSummary> {
        self.state
            .units
            .values()
            .filter(|u| u.active == ActiveState::Active)
            .filter_map(|u| Some((u, u.config.as_ref()?.socket.as_ref()?)))
            .flat_map(|(u, socket)| {
                socket
                    .listen
                    .iter()
                    .map(move |l| relive_api::units::SocketSummary {
                        listen: l.listen.describe(),
                        kind: l.listen.kind_name().into(),
                        unit: u.name.clone(),
                        activates: socket.service.clone().unwrap_or_default(),
                    })
            })
            .collect()
    }

    /// Every loaded timer, armed or not.
    pub fn list_timers(&self) -> Vec<relive_api::units::TimerSummary> {
        self.state
            .units
            .values()
            .filter_map(|u| {
                let timer = u.config.as_ref()?.timer.as_ref()?;
                let state = u.timer.clone().unwrap_or_default();
                let armed = u.active == ActiveState::Active;
                Some(relive_api::units::TimerSummary {
                    unit: u.name.clone(),
                    activates: timer.unit.clone().unwrap_or_default(),
                    active_state: u.active.as_str().into(),
                    next_usec: state.next_elapse_usec.filter(|_| armed).unwrap_or(0),
                    last_usec: state.last_trigger_usec.unwrap_or(0),
                })
            })
            .collect()
    }

    /// `relivectl security UNIT`: None when it is no loaded service.
    pub fn unit_security(&self, name: &str) -> Option<Vec<relive_api::units::SecurityCheck>> {
        self.unit(name)?
            .config
            .as_ref()
            .and_then(super::security::checks)
    }

    pub fn unit_status(&self, name: &str) -> Option<UnitStatus> {
        let u = self.unit(name)?;
        let cfg = u.config.as_ref();
        let cgroup = self.unit_cgroup(&u.name);
        let pids = if u.is_service() {
            self.rt
                .kernel
                .cgroup_pids(&cgroup)
                .unwrap_or_default()
                .into_iter()
                .map(|p| p as u32)
                .collect()
        } else {
            Vec::new()
        };
        let (mode, priority) = cfg
            .map(|c| (c.live_upgrade.mode, c.live_upgrade.priority))
            .unwrap_or((UpgradeMode::Restart, 0));
        Some(UnitStatus {
            name: u.name.clone(),
            description: cfg
                .and_then(|c| c.unit.description.clone())
                .unwrap_or_default(),
            load_state: u.load.as_str().into(),
            load_error: u.load_error.clone().unwrap_or_default(),
            fragment: cfg
                .map(|c| c.fragment.display().to_string())
                .unwrap_or_default(),
            dropins: cfg
                .map(|c| c.dropins.iter().map(|d| d.display().to_string()).collect())
                .unwrap_or_default(),
            active_state: u.active.as_str().into(),
            sub_state: u.sub.as_str().into(),
            result: u.result.as_str().into(),
            state_change_usec: u.state_change_usec,
            main_pid: u.main_pid.unwrap_or(0) as u32,
            cgroup: if u.is_service() {
                cgroup
            } else {
                String::new()
            },
            pids,
            restarts: u.restarts,
            status_text: u.status_text.clone().unwrap_or_default(),
            upgrade_mode: match mode {
                UpgradeMode::Preserve => "preserve",
                UpgradeMode::Restart => "restart",
                UpgradeMode::Rerun => "rerun",
            }
            .into(),
            upgrade_priority: priority,
            warnings: cfg
                .map(|c| c.warnings.iter().map(|w| w.to_string()).collect())
                .unwrap_or_default(),
            output: u.output.iter().cloned().collect(),
        })
    }
}

fn summary(u: &UnitState) -> UnitSummary {
    UnitSummary {
        name: u.name.clone(),
        description: u
            .config
            .as_ref()
            .and_then(|c| c.unit.description.clone())
            .unwrap_or_default(),
        load_state: u.load.as_str().into(),
        active_state: u.active.as_str().into(),
        sub_state: u.sub.as_str().into(),
        main_pid: u.main_pid.unwrap_or(0) as u32,
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_unit_logs_a_burst_per_interval_and_the_rest_is_counted() {
        let mut rate = OutputRate::default();
        let start = Instant::now();
        for _ in 0..OUTPUT_BURST {
            assert_eq!(rate.admit(start), Admit::Log { suppressed: 0 });
        }
        assert_eq!(rate.admit(start), Admit::Suppress);
        assert_eq!(rate.admit(start + Duration::from_secs(1)), Admit::Suppress);
        let later = start + OUTPUT_INTERVAL;
        assert_eq!(rate.admit(later), Admit::Log { suppressed: 2 });
        assert_eq!(rate.admit(later), Admit::Log { suppressed: 0 });
    }
}
