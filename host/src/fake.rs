//! A [`UnitHost`] that records what the upgrade asked, for in-process
//! tests of the parking order, the undo paths, the resume order and the
//! rollback decision. Nothing runs: parks answer from a table, jobs and
//! helpers succeed unless told to fail.

use crate::{HelperOutput, HostError, Job, ParkInfo, UnitHost};
use relive_api::plan::Plan;
use relive_api::report::CarriedListener;
use relive_sys::ExitStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::sync::Mutex;

/// One call the upgrade made, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCall {
    BeginUpgrade,
    EndUpgrade,
    MostCriticalRestored,
    Plan,
    Park(String),
    Unpark {
        unit: String,
        main_pid: i32,
    },
    ForgetParked {
        unit: String,
        reason: String,
    },
    AdoptListeners {
        unit: String,
        main_pid: i32,
        fds: Vec<i32>,
    },
    ReleaseListeners(String),
    PrepareRestore(String),
    Job {
        unit: String,
        job: Job,
    },
    QueueStart(String),
    StartTogether(Vec<String>),
    Helper(Vec<String>),
    ManagerState,
    PidsAboveFloor,
}

/// What the fake answers, and what it was asked.
#[derive(Debug, Default)]
pub struct FakeState {
    pub calls: Vec<HostCall>,
    pub plan: Plan,
    /// What `park` answers, by unit; a unit not here cannot be parked.
    pub parkable: BTreeMap<String, ParkInfo>,
    pub parked: BTreeSet<String>,
    /// Units whose jobs fail.
    pub failing_jobs: BTreeSet<String>,
    /// Helper programs (argv[0]) that exit 1.
    pub failing_helpers: BTreeSet<String>,
    /// What a helper prints on stdout, by its whole command line.
    pub helper_stdout: BTreeMap<String, String>,
    pub upgrading: bool,
    pub control_clients: usize,
    /// Control connections from inside a cgroup: (cgroup, how many).
    pub clients_in: Vec<(String, usize)>,
    /// What `main_pid` answers, by unit.
    pub main_pids: BTreeMap<String, i32>,
    /// Units that ended on their own (`ended_on_its_own`).
    pub ended: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub struct FakeHost {
    pub state: Mutex<FakeState>,
}

impl FakeHost {
    pub fn new(plan: Plan) -> FakeHost {
        let host = FakeHost::default();
        host.with(|s| s.plan = plan);
        host
    }

    /// Runs `f` on the fake's state.
    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn calls(&self) -> Vec<HostCall> {
        self.with(|s| s.calls.clone())
    }

    fn record(&self, call: HostCall) {
        self.with(|s| s.calls.push(call));
    }
}

impl UnitHost for FakeHost {
    fn begin_upgrade(&self) -> Result<(), HostError> {
        self.record(HostCall::BeginUpgrade);
        self.with(|s| {
            if s.upgrading {
                return Err(HostError::Manager(
                    "a live upgrade is already running".into(),
                ));
            }
            s.upgrading = true;
            Ok(())
        })
    }

    fn end_upgrade(&self) {
        self.record(HostCall::EndUpgrade);
        self.with(|s| {
            s.upgrading = false;
            s.parked.clear();
        });
    }

    fn most_critical_restored(&self) {
        self.record(HostCall::MostCriticalRestored);
    }

    fn plan(&self) -> Result<Plan, HostError> {
        self.record(HostCall::Plan);
        Ok(self.with(|s| s.plan.clone()))
    }

    fn park(&self, unit: &str) -> Result<ParkInfo, HostError> {
        self.record(HostCall::Park(unit.into()));
        self.with(|s| {
            let info = s
                .parkable
                .get(unit)
                .cloned()
                .ok_or_else(|| HostError::Manager(format!("{unit}: not running")))?;
            s.parked.insert(unit.into());
            Ok(info)
        })
    }

    fn unpark(&self, unit: &str, main_pid: i32, _outputs: Vec<OwnedFd>) {
        self.record(HostCall::Unpark {
            unit: unit.into(),
            main_pid,
        });
        self.with(|s| s.parked.remove(unit));
    }

    fn forget_parked(&self, unit: &str, reason: &str) {
        self.record(HostCall::ForgetParked {
            unit: unit.into(),
            reason: reason.into(),
        });
        self.with(|s| s.parked.remove(unit));
    }

    fn adopt_listeners(&self, unit: &str, main_pid: i32, listeners: &[CarriedListener]) {
        self.record(HostCall::AdoptListeners {
            unit: unit.into(),
            main_pid,
            fds: listeners.iter().map(|l| l.fd).collect(),
        });
    }

    fn release_listeners(&self, unit: &str) {
        self.record(HostCall::ReleaseListeners(unit.into()));
    }

    fn is_parked(&self, unit: &str) -> bool {
        self.with(|s| s.parked.contains(unit))
    }

    fn prepare_restore(&self, unit: &str) -> Result<(), HostError> {
        self.record(HostCall::PrepareRestore(unit.into()));
        Ok(())
    }

    fn run_job(&self, unit: &str, job: Job) -> Result<(), HostError> {
        self.record(HostCall::Job {
            unit: unit.into(),
            job,
        });
        if self.with(|s| s.failing_jobs.contains(unit)) {
            return Err(HostError::Job {
                unit: unit.into(),
                reason: "failed (fake)".into(),
            });
        }
        Ok(())
    }

    fn main_pid(&self, unit: &str) -> Option<i32> {
        self.with(|s| s.main_pids.get(unit).copied())
    }

    fn ended_on_its_own(&self, unit: &str) -> bool {
        self.with(|s| s.ended.contains(unit))
    }

    fn queue_start(&self, unit: &str) {
        self.record(HostCall::QueueStart(unit.into()));
    }

    fn start_together(&self, units: &[String]) -> Vec<(String, Result<f64, HostError>)> {
        self.record(HostCall::StartTogether(units.to_vec()));
        self.with(|s| {
            units
                .iter()
                .map(|u| {
                    let done = if s.failing_jobs.contains(u) {
                        Err(HostError::Job {
                            unit: u.clone(),
                            reason: "failed (fake)".into(),
                        })
                    } else {
                        Ok(0.0)
                    };
                    (u.clone(), done)
                })
                .collect()
        })
    }

    fn run_helper(&self, argv: &[&str]) -> Result<HelperOutput, HostError> {
        self.record(HostCall::Helper(
            argv.iter().map(|a| a.to_string()).collect(),
        ));
        self.with(|s| {
            let fails = s.failing_helpers.contains(argv[0]);
            Ok(HelperOutput {
                status: ExitStatus::Exited(i32::from(fails)),
                stdout: s
                    .helper_stdout
                    .get(&argv.join(" "))
                    .cloned()
                    .unwrap_or_default(),
                stderr: if fails {
                    "failed (fake)".into()
                } else {
                    String::new()
                },
            })
        })
    }

    fn pids_above_floor(&self) {
        self.record(HostCall::PidsAboveFloor);
    }

    fn manager_state(&self) -> Result<Box<serde_json::value::RawValue>, HostError> {
        self.record(HostCall::ManagerState);
        serde_json::value::RawValue::from_string(r#"{"units":{}}"#.into())
            .map_err(|e| HostError::Manager(e.to_string()))
    }

    fn control_clients(&self) -> usize {
        self.with(|s| s.control_clients)
    }

    fn control_clients_in(&self, cgroup: &str) -> usize {
        self.with(|s| {
            s.clients_in
                .iter()
                .filter(|(c, _)| c == cgroup)
                .map(|(_, n)| *n)
                .sum()
        })
    }

    fn boot_target(&self) -> String {
        "multi-user.target".into()
    }
}
