//! PID 1 as the upgrade's [`UnitHost`]: each call is a closure run on the
//! loop's thread, which owns the manager; the worker thread waits for it.

use crate::event_loop::CommandSender;
use crate::manager::state::{ActiveState, JobKind, UnitResult};
use crate::manager::Manager;
use relive_api::plan::Plan;
use relive_api::report::CarriedListener;
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
        // The boot target starts next: with the generators' units.
        self.most_critical_restored();
        if let Ok(Some(pending)) = self.on_loop(|m| m.rt.generators_pending.take()) {
            let _ = async_io::block_on(pending.recv());
        }
        let _ = self.on_loop(|m| m.end_upgrade());
    }

    fn most_critical_restored(&self) {
        let _ = self.on_loop(|m| drop(m.rt.generators_held.take()));
    }

    fn plan(&self) -> Result<Plan, HostError> {
        let (mut plan, units) = self.on_loop(|m| m.upgrade_plan_from_state())?;
        crate::manager::plan::scan_processes(&mut plan, &units);
        Ok(plan)
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

    fn adopt_listeners(&self, unit: &str, main_pid: i32, listeners: &[CarriedListener]) {
        let (unit, listeners) = (unit.to_owned(), listeners.to_vec());
        let _ = self.on_loop(move |m| m.adopt_listeners(&unit, main_pid, &listeners));
    }

    fn release_listeners(&self, unit: &str) {
        let unit = unit.to_owned();
        let _ = self.on_loop(move |m| m.release_listeners(&unit));
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
            let jobs = m.request_starts(&names);
            names.into_iter().zip(jobs).collect::<Vec<_>>()
        }) {
            Ok(queued) => queued,
            Err(e) => return units.iter().map(|n| (n.clone(), Err(e.clone()))).collect(),
        };
        // Each job's own time, not the slowest of those listed before it:
        // the jobs are polled together (every 10 ms, a few seconds at most).
        let mut results: Vec<(String, Option<Result<f64, HostError>>)> = Vec::new();
        let mut pending = Vec::new();
        for (i, (name, job)) in queued.into_iter().enumerate() {
            let failed = |reason: String| HostError::Job {
                unit: name.clone(),
                reason,
            };
            match job {
                Ok(waiting) => pending.push((i, waiting)),
                Err(e) => {
                    results.push((name.clone(), Some(Err(failed(e.to_string())))));
                    continue;
                }
            }
            results.push((name, None));
        }
        while !pending.is_empty() {
            pending.retain(|(i, waiting)| {
                let done = match waiting.try_recv() {
                    Err(async_channel::TryRecvError::Empty) => return true,
                    Err(async_channel::TryRecvError::Closed) => Err("job dropped".to_owned()),
                    Ok(result) => result
                        .map(|()| started.elapsed().as_secs_f64() * 1000.0)
                        .map_err(|e| e.to_string()),
                };
                let (name, slot) = &mut results[*i];
                *slot = Some(done.map_err(|reason| HostError::Job {
                    unit: name.clone(),
                    reason,
                }));
                false
            });
            if !pending.is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        results
            .into_iter()
            .map(|(name, done)| {
                let done = done.unwrap_or_else(|| {
                    Err(HostError::Job {
                        unit: name.clone(),
                        reason: "never done".into(),
                    })
                });
                (name, done)
            })
            .collect()
    }

    fn run_helper(&self, argv: &[&str]) -> Result<HelperOutput, HostError> {
        super::helper::run(&self.commands, argv)
    }

    fn start_helper(
        &self,
        argv: &[&str],
        keep: &[std::os::fd::RawFd],
    ) -> Result<relive_host::StartedHelper, HostError> {
        super::helper::start(&self.commands, argv, keep)
    }

    fn pids_above_floor(&self) {
        let floor = self.on_loop(|m| m.config.pids.floor).unwrap_or(0);
        let sysctls = relive_sys::pid_space::PidSysctls::default();
        if let Err(e) = sysctls.prepare(0, floor) {
            tracing::warn!("cannot move the PID counter: {e}");
        }
    }

    fn manager_state(&self) -> Result<Box<serde_json::value::RawValue>, HostError> {
        self.on_loop(|m| serde_json::value::to_raw_value(&m.state))?
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
