//! What systemctl can ask for beyond jobs: signals to a unit's
//! processes, forgetting failures, cancelling jobs.

use super::state::{ActiveState, SubState, UnitResult};
use super::{Manager, ManagerError};
use crate::systemd1::events::JobResult;

/// Which processes `systemctl kill --kill-whom=` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillWhom {
    Main,
    Control,
    All,
}

impl KillWhom {
    pub fn parse(text: &str) -> Option<KillWhom> {
        match text {
            "main" => Some(KillWhom::Main),
            "control" => Some(KillWhom::Control),
            // systemd 252 sends "all" by default; an empty string is the same.
            "all" | "" => Some(KillWhom::All),
            _ => None,
        }
    }
}

impl Manager {
    /// Sends `signal` to a unit's processes. Errors when there is none
    /// to send it to, as systemd does.
    pub fn kill_unit(
        &mut self,
        name: &str,
        whom: KillWhom,
        signal: i32,
    ) -> Result<(), ManagerError> {
        let canonical = self.load(name);
        let u = &self.state.units[&canonical];
        let mut targets: Vec<i32> = match whom {
            KillWhom::Main => u.main_pid.into_iter().collect(),
            KillWhom::Control => u.control_pid.into_iter().collect(),
            KillWhom::All => {
                let cgroup = self.unit_cgroup(&canonical);
                let mut all: Vec<i32> = u.main_pid.into_iter().chain(u.control_pid).collect();
                if u.is_service() {
                    all.extend(self.rt.kernel.cgroup_pids(&cgroup).unwrap_or_default());
                }
                all
            }
        };
        targets.sort_unstable();
        targets.dedup();
        if targets.is_empty() {
            return Err(ManagerError::Refused(format!(
                "No matching processes to kill for {canonical}"
            )));
        }
        for pid in targets {
            if let Err(e) = self.rt.kernel.kill(pid, signal) {
                tracing::debug!("{canonical}: kill {pid}: {e}");
            }
        }
        Ok(())
    }

    /// `systemctl reset-failed [UNIT]`: a failed unit becomes inactive,
    /// and its start rate counter and result are forgotten.
    pub fn reset_failed(&mut self, name: Option<&str>) -> Result<(), ManagerError> {
        let names: Vec<String> = match name {
            Some(n) => {
                let canonical = self.load(n);
                if self.state.units[&canonical].load == super::state::LoadState::NotFound {
                    return Err(ManagerError::NoSuchUnit {
                        name: n.to_owned(),
                        reason: "not loaded".into(),
                    });
                }
                vec![canonical]
            }
            None => self.state.units.keys().cloned().collect(),
        };
        for name in names {
            let Some(u) = self.state.units.get_mut(&name) else {
                continue;
            };
            u.start_times.clear();
            u.restarts = 0;
            if u.active == ActiveState::Failed {
                u.result = UnitResult::Success;
                self.set_state(&name, ActiveState::Inactive, SubState::Dead);
            } else {
                u.result = UnitResult::Success;
            }
        }
        Ok(())
    }

    /// `systemctl cancel ID`: a job not yet running is dropped; a running
    /// one is dropped too, and the unit is left as its job left it.
    pub fn cancel_job(&mut self, id: u64) -> Result<(), ManagerError> {
        let Some(name) = self
            .state
            .units
            .values()
            .find(|u| u.job.as_ref().is_some_and(|j| j.id == id))
            .map(|u| u.name.clone())
        else {
            return Err(ManagerError::Refused(format!("Job {id} does not exist.")));
        };
        if let Some(u) = self.state.units.get_mut(&name) {
            u.job = None;
        }
        self.job_done(
            id,
            &name,
            JobResult::Canceled,
            Err(ManagerError::Refused(format!(
                "Job {id} for {name} was canceled"
            ))),
        );
        self.dispatch();
        Ok(())
    }
}
