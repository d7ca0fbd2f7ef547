//! Children that have not exec'd yet. The loop never waits for an exec (a
//! program or working directory on a hung mount can take for ever): it
//! polls each child's exec-status pipe with everything else, and the
//! manager acts when the answer comes, as systemd does for Type=exec.

use super::state::{ActiveState, ExecPhase, SubState};
use super::Manager;
use relive_sys::{ExecOutcome, ExecStatus};
use relive_units::ServiceType;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

#[derive(Debug)]
struct Pending {
    pid: i32,
    /// The unit the child belongs to; None for a helper (nft, ...).
    unit: Option<String>,
    status: ExecStatus,
}

/// Exec-status pipes by descriptor.
#[derive(Debug, Default)]
pub struct PendingExecs {
    by_fd: HashMap<RawFd, Pending>,
}

impl PendingExecs {
    pub fn add(&mut self, pid: i32, unit: Option<&str>, status: ExecStatus) {
        self.by_fd.insert(
            status.fd().as_raw_fd(),
            Pending {
                pid,
                unit: unit.map(str::to_owned),
                status,
            },
        );
    }

    /// The descriptors for the loop to poll.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.by_fd.values().map(|p| p.status.fd()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_fd.is_empty()
    }

    fn fd_of(&self, pid: i32) -> Option<RawFd> {
        self.by_fd
            .iter()
            .find_map(|(fd, p)| (p.pid == pid).then_some(*fd))
    }
}

impl Manager {
    /// The exec-status pipe `fd` is readable: the child exec'd or failed.
    pub fn exec_status_ready(&mut self, fd: RawFd) {
        let Some(pending) = self.rt.execs.by_fd.get(&fd) else {
            return;
        };
        let outcome = pending.status.check();
        if matches!(outcome, ExecOutcome::Pending) {
            return;
        }
        let pending = self.rt.execs.by_fd.remove(&fd).expect("looked up above");
        self.exec_settled(pending.pid, pending.unit.as_deref(), outcome);
    }

    /// `pid` was reaped: whatever it reported before it exited counts
    /// first, so its failure reads as such before its exit status.
    pub(super) fn settle_exec_of(&mut self, pid: i32) {
        if let Some(fd) = self.rt.execs.fd_of(pid) {
            self.exec_status_ready(fd);
            // A child that exited has closed its end: no answer is left to wait for.
            self.rt.execs.by_fd.remove(&fd);
        }
    }

    fn exec_settled(&mut self, pid: i32, unit: Option<&str>, outcome: ExecOutcome) {
        let who = unit.unwrap_or("helper");
        match outcome {
            ExecOutcome::Pending => {}
            // The child exits with the step's status (203/EXEC ...); its
            // exit fails the unit as any other failure would.
            ExecOutcome::Failed(e) => tracing::error!("{who}: PID {pid}: {e}"),
            ExecOutcome::Running => {
                if let Some(name) = unit {
                    self.main_exec_done(name, pid);
                }
            }
        }
    }

    /// After a re-exec: the exec-status pipes stayed with the previous
    /// relive. A Type=exec unit still waiting for its exec is taken as
    /// exec'd (it was, or will exit with 203 and fail as it would have).
    pub fn execs_lost_in_reexec(&mut self) {
        let waiting: Vec<(String, i32)> = self
            .state
            .units
            .values()
            .filter(|u| (u.active, u.sub) == (ActiveState::Activating, SubState::Start))
            .filter_map(|u| Some((u.name.clone(), u.main_pid?)))
            .collect();
        for (name, pid) in waiting {
            self.main_exec_done(&name, pid);
        }
    }

    /// Type=exec is started once its main program runs.
    fn main_exec_done(&mut self, name: &str, pid: i32) {
        let Some(svc) = self.service_config(name) else {
            return;
        };
        let u = &self.state.units[name];
        if svc.service_type == ServiceType::Exec
            && u.main_pid == Some(pid)
            && (u.active, u.sub) == (ActiveState::Activating, SubState::Start)
        {
            self.set_state(name, ActiveState::Activating, SubState::StartPost);
            self.run_phase(name, ExecPhase::StartPost, 0);
        }
    }
}

#[cfg(test)]
impl Manager {
    /// Acts on every exec status that has an answer, as the loop would.
    pub(super) fn settle_ready_execs(&mut self) {
        let fds: Vec<RawFd> = self.rt.execs.by_fd.keys().copied().collect();
        for fd in fds {
            self.exec_status_ready(fd);
        }
        self.dispatch();
    }
}
