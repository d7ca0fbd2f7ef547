//! PID 1 as the upgrade's [`UnitHost`]: each call is a closure run on the
//! loop's thread, which owns the manager; the worker thread waits for it.

use crate::event_loop::CommandSender;
use crate::manager::state::{ActiveState, JobKind, UnitResult};
use crate::manager::Manager;
use relive_api::plan::Plan;
use relive_host::{HelperOutput, HostError, Job, ParkInfo, UnitHost};
use std::os::fd::OwnedFd;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct LoopHost {
    pub commands: CommandSender,
}

impl LoopHost {
    /// Runs `f` on the manager's thread and waits for its result.
    fn on_loop<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Manager) -> R + Send + 'static,
    ) -> Result<R, HostError> {
        async_io::block_on(self.commands.call(f)).map_err(|_| HostError::LoopGone)
    }
}

fn manager_error(e: crate::manager::ManagerError) -> HostError {
    HostError::Manager(e.to_string())
}

fn job_kind(job: Job) -> JobKind {
    match job {
        Job::Start => JobKind::Start,
        Job::Stop => JobKind::Stop,
    }
}

impl UnitHost for LoopHost {
    fn begin_upgrade(&self) -> Result<(), HostError> {
        self.on_loop(|m| m.begin_upgrade())?.map_err(manager_error)
    }

    fn end_upgrade(&self) {
        let _ = self.on_loop(|m| m.end_upgrade());
    }

    fn plan(&self) -> Result<Plan, HostError> {
        self.on_loop(|m| m.upgrade_plan())
    }

    fn park(&self, unit: &str) -> Result<ParkInfo, HostError> {
        let unit = unit.to_owned();
        self.on_loop(move |m| m.park(&unit))?.map_err(manager_error)
    }

    fn unpark(&self, unit: &str, main_pid: i32, outputs: Vec<OwnedFd>) {
        let unit = unit.to_owned();
        let _ = self.on_loop(move |m| m.unpark(&unit, main_pid, outputs));
    }

    fn forget_parked(&self, unit: &str, reason: &str) {
        let (unit, reason) = (unit.to_owned(), reason.to_owned());
        let _ = self.on_loop(move |m| m.forget_parked(&unit, &reason));
    }

    fn is_parked(&self, unit: &str) -> bool {
        let unit = unit.to_owned();
        self.on_loop(move |m| m.state.units.get(&unit).is_some_and(|u| u.parked))
            .unwrap_or(false)
    }

    fn prepare_restore(&self, unit: &str) -> Result<(), HostError> {
        let unit = unit.to_owned();
        self.on_loop(move |m| m.prepare_restore(&unit))?
            .map_err(manager_error)
    }

    fn run_job(&self, unit: &str, job: Job) -> Result<(), HostError> {
        let name = unit.to_owned();
        let failed = |reason: String| HostError::Job {
            unit: unit.to_owned(),
            reason,
        };
        let waiting = self
            .on_loop(move |m| m.request(&name, job_kind(job)))?
            .map_err(|e| failed(e.to_string()))?;
        async_io::block_on(waiting.recv())
            .map_err(|_| failed("job dropped".into()))?
            .map_err(|e| failed(e.to_string()))
    }

    fn main_pid(&self, unit: &str) -> Option<i32> {
        let unit = unit.to_owned();
        self.on_loop(move |m| m.unit(&unit).and_then(|u| u.main_pid))
            .ok()
            .flatten()
    }

    fn ended_on_its_own(&self, unit: &str) -> bool {
        let unit = unit.to_owned();
        self.on_loop(move |m| {
            m.unit(&unit).is_some_and(|u| {
                u.active == ActiveState::Inactive
                    && u.result == UnitResult::Success
                    && u.main_pid.is_none()
                    && !u.parked
            })
        })
        .unwrap_or(false)
    }

    fn queue_start(&self, unit: &str) {
        let unit = unit.to_owned();
        let _ = self.on_loop(move |m| {
            if let Err(e) = m.request(&unit, JobKind::Start) {
                tracing::error!("{unit}: {e}");
            }
        });
    }

    fn start_together(&self, units: &[String]) -> Vec<(String, Result<f64, HostError>)> {
        let started = Instant::now();
        let names = units.to_vec();
        let queued = match self.on_loop(move |m| {
            names
                .iter()
                .map(|name| (name.clone(), m.request(name, JobKind::Start)))
                .collect::<Vec<_>>()
        }) {
            Ok(queued) => queued,
            Err(e) => return units.iter().map(|n| (n.clone(), Err(e.clone()))).collect(),
        };
        // One waiter per job, so that each unit's time is its own and not
        // the slowest of those listed before it.
        std::thread::scope(|scope| {
            let waiters: Vec<_> = queued
                .into_iter()
                .map(|(name, job)| {
                    scope.spawn(move || {
                        let done = match job {
                            Ok(waiting) => waiting
                                .recv_blocking()
                                .map_err(|_| "job dropped".to_owned())
                                .and_then(|r| r.map_err(|e| e.to_string())),
                            Err(e) => Err(e.to_string()),
                        };
                        let done = done
                            .map(|()| started.elapsed().as_secs_f64() * 1000.0)
                            .map_err(|reason| HostError::Job {
                                unit: name.clone(),
                                reason,
                            });
                        (name, done)
                    })
                })
                .collect();
            waiters
                .into_iter()
                .zip(units)
                .map(|(waiter, unit)| {
                    waiter.join().unwrap_or_else(|_| {
                        let reason = "its waiter panicked".to_owned();
                        let unit = unit.clone();
                        (unit.clone(), Err(HostError::Job { unit, reason }))
                    })
                })
                .collect()
        })
    }

    fn run_helper(&self, argv: &[&str]) -> Result<HelperOutput, HostError> {
        super::helper::run(&self.commands, argv)
    }

    fn pids_above_floor(&self) {
        let floor = self.on_loop(|m| m.config.pids.floor).unwrap_or(0);
        let sysctls = relive_sys::pid_space::PidSysctls::default();
        if let Err(e) = sysctls.prepare(0, floor) {
            tracing::warn!("cannot move the PID counter: {e}");
        }
    }

    fn manager_state(&self) -> Result<serde_json::Value, HostError> {
        self.on_loop(|m| serde_json::to_value(&m.state))?
            .map_err(|e| HostError::Manager(format!("cannot encode the manager's state: {e}")))
    }

    fn control_clients(&self) -> usize {
        crate::clients::open()
    }

    fn control_clients_in(&self, cgroup: &str) -> usize {
        crate::clients::open_in(cgroup)
    }

    fn boot_target(&self) -> String {
        self.on_loop(|m| m.boot_target()).unwrap_or_default()
    }
}
