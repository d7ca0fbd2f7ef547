//! Copies of the manager's state for systemd1 clients: taken on the
//! loop's thread (cheap clones), turned into D-Bus properties on the
//! client's thread.

use super::state::{ActiveState, JobKind, UnitState};
use super::Manager;
use crate::systemd1::events::BusEvent;
use std::path::PathBuf;

/// One unit and what ties other units to it.
#[derive(Debug, Clone)]
pub struct UnitView {
    pub state: UnitState,
    /// Its other names (aliases).
    pub names: Vec<String>,
    /// Reverse dependencies: units whose Requires=/Wants=/BindsTo=/
    /// Conflicts= name this one.
    pub required_by: Vec<String>,
    pub wanted_by: Vec<String>,
    pub bound_by: Vec<String>,
    pub conflicted_by: Vec<String>,
    /// Units that name this one in Before= (so it is after them), and
    /// After= (so it is before them).
    pub before_me: Vec<String>,
    pub after_me: Vec<String>,
    /// The unit it starts (a socket's, timer's or path's), and the
    /// socket, timer and path units that start it.
    pub triggers: Vec<String>,
    pub triggered_by: Vec<String>,
    /// The search path, to look up its unit file state.
    pub unit_dirs: Vec<PathBuf>,
}

/// A job, as ListJobs and the job objects show it.
#[derive(Debug, Clone)]
pub struct JobView {
    pub id: u64,
    pub unit: String,
    pub kind: JobKind,
    pub running: bool,
}

impl JobView {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            JobKind::Start => "start",
            JobKind::Stop => "stop",
            JobKind::Restart => "restart",
            JobKind::Reload => "reload",
        }
    }

    pub fn state_name(&self) -> &'static str {
        if self.running {
            "running"
        } else {
            "waiting"
        }
    }
}

/// The manager object's properties.
#[derive(Debug, Clone)]
pub struct ManagerView {
    pub n_names: u32,
    pub n_failed_units: u32,
    pub n_jobs: u32,
    pub system_state: &'static str,
    pub unit_dirs: Vec<PathBuf>,
    pub default_target: String,
    /// When relive started and when the boot target was reached, µs.
    pub userspace: super::state::Stamp,
    pub finish: super::state::Stamp,
}

impl Manager {
    /// The unit `name`, loaded if new when `load` (as systemd loads a unit
    /// a client asks about). Without `load` (a caller who is not root) a
    /// unit relive has not heard of is shown as not found and not kept:
    /// no user can make PID 1 hold a unit per name it sends.
    pub fn unit_view(&mut self, name: &str, load: bool) -> UnitView {
        let known = self
            .state
            .aliases
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned());
        let canonical = if load || self.state.units.contains_key(&known) {
            self.load(name)
        } else {
            known
        };
        let state = self
            .state
            .units
            .get(&canonical)
            .cloned()
            .unwrap_or_else(|| UnitState::new(&canonical));
        let mut view = UnitView {
            names: std::iter::once(canonical.clone())
                .chain(
                    self.state
                        .aliases
                        .iter()
                        .filter(|(_, c)| **c == canonical)
                        .map(|(a, _)| a.clone()),
                )
                .collect(),
            state,
            required_by: Vec::new(),
            wanted_by: Vec::new(),
            bound_by: Vec::new(),
            conflicted_by: Vec::new(),
            before_me: Vec::new(),
            after_me: Vec::new(),
            triggers: Vec::new(),
            triggered_by: Vec::new(),
            unit_dirs: self.unit_dirs.clone(),
        };
        let names = view.names.clone();
        let is_me = |n: &String| names.contains(n);
        for other in self.state.units.values() {
            let Some(cfg) = other.config.as_ref() else {
                continue;
            };
            let name = other.name.clone();
            for (list, out) in [
                (&cfg.unit.requires, &mut view.required_by),
                (&cfg.unit.wants, &mut view.wanted_by),
                (&cfg.unit.binds_to, &mut view.bound_by),
                (&cfg.unit.conflicts, &mut view.conflicted_by),
                (&cfg.unit.before, &mut view.before_me),
                (&cfg.unit.after, &mut view.after_me),
            ] {
                if list.iter().any(is_me) {
                    out.push(name.clone());
                }
            }
            if trigger_of(other).is_some_and(|t| is_me(&t)) {
                view.triggered_by.push(name);
            }
        }
        view.triggers.extend(trigger_of(&view.state));
        view
    }

    pub fn job_views(&self) -> Vec<JobView> {
        self.state
            .units
            .values()
            .filter_map(|u| {
                let job = u.job.as_ref()?;
                Some(JobView {
                    id: job.id,
                    unit: u.name.clone(),
                    kind: job.kind,
                    running: job.running,
                })
            })
            .collect()
    }

    /// StartupFinished, once, when the boot target is first reached.
    pub fn announce_startup(&mut self) {
        if self.rt.startup_announced {
            return;
        }
        let target = self.boot_target();
        let Some(reached) = self
            .state
            .units
            .get(&target)
            .map(|u| u.transitions.active_enter)
            .filter(|s| s.wall != 0)
        else {
            return;
        };
        self.rt.startup_announced = true;
        let started = self.rt.started.mono;
        if reached.mono < started {
            // Reached before a re-exec: announced by the relive before.
            return;
        }
        self.rt.bus_events.publish(BusEvent::StartupFinished {
            kernel_usec: started,
            userspace_usec: reached.mono.saturating_sub(started),
        });
    }

    pub fn manager_view(&self) -> ManagerView {
        let units = self.state.units.values();
        let n_failed_units = units
            .clone()
            .filter(|u| u.active == ActiveState::Failed)
            .count() as u32;
        let n_jobs = units.clone().filter(|u| u.job.is_some()).count() as u32;
        let target = self.boot_target();
        let booted = self
            .state
            .units
            .get(&target)
            .map(|u| u.transitions.active_enter)
            .filter(|s| s.wall != 0);
        let system_state = if self.state.shutdown.is_some() {
            "stopping"
        } else if booted.is_none() {
            "starting"
        } else if n_failed_units > 0 {
            "degraded"
        } else {
            "running"
        };
        ManagerView {
            n_names: (self.state.units.len() + self.state.aliases.len()) as u32,
            n_failed_units,
            n_jobs,
            system_state,
            unit_dirs: self.unit_dirs.clone(),
            default_target: self.default_target(),
            userspace: self.rt.started,
            finish: booted.unwrap_or_default(),
        }
    }
}

/// The unit a socket, timer or path unit starts.
fn trigger_of(u: &UnitState) -> Option<String> {
    let cfg = u.config.as_ref()?;
    let stem = cfg
        .name
        .rsplit_once('.')
        .map_or(cfg.name.as_str(), |(s, _)| s);
    if let Some(socket) = &cfg.socket {
        if socket.accept {
            return None;
        }
        return Some(socket.service.clone().unwrap_or(format!("{stem}.service")));
    }
    if let Some(timer) = &cfg.timer {
        return Some(timer.unit.clone().unwrap_or(format!("{stem}.service")));
    }
    if let Some(path) = &cfg.path {
        return Some(path.unit.clone().unwrap_or(format!("{stem}.service")));
    }
    None
}
