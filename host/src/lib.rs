//! What the live upgrade asks of PID 1, as a trait.
//!
//! The snapshot and restore crates never touch the manager: they run on
//! worker threads and ask PID 1 (the loop thread that owns every unit) to
//! park, unpark, start or stop units, run a helper program, or hand over
//! its state, through [`UnitHost`]. PID 1 implements it by sending closures
//! to its event loop; tests implement it with [`fake::FakeHost`], which
//! records every call.
//!
//! In the lab's builds (cargo feature `fault-injection`) this crate also
//! holds [`fault`], the faults the lab injects to test the abort paths.

pub mod fake;
#[cfg(feature = "fault-injection")]
pub mod fault;

use relive_api::plan::Plan;
use relive_api::report::CarriedListener;
use relive_sys::ExitStatus;
use std::os::fd::OwnedFd;

/// What a job asks of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Start,
    Stop,
}

/// What the upgrade needs to checkpoint a unit, from PID 1.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParkInfo {
    pub main_pid: i32,
    /// Relative to the cgroup2 root.
    pub cgroup: String,
    /// Inodes of the output pipes its processes write to.
    pub pipes: Vec<u64>,
    /// Its RuntimeDirectory= names and the files under /run its processes
    /// hold open (a locked PID file), relative to /run, which the next
    /// kernel starts empty.
    pub runtime_dirs: Vec<String>,
    /// Files under /dev/shm its processes hold open or mapped (POSIX
    /// shared memory, semaphores), relative to /dev/shm, also empty in
    /// the next kernel.
    pub shm_files: Vec<String>,
    /// FIFOs its processes hold that another mount namespace opened.
    pub foreign_fifos: Vec<relive_api::report::ForeignFifo>,
    /// The listening sockets its socket units handed it, which it holds.
    pub listeners: Vec<relive_api::report::CarriedListener>,
}

/// What a helper program printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A helper started by [`UnitHost::start_helper`].
pub struct StartedHelper {
    pub pid: i32,
    /// Blocks until it has exited; None if its exit was not reported.
    pub exit: Box<dyn FnOnce() -> Option<ExitStatus> + Send>,
}

impl std::fmt::Debug for StartedHelper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StartedHelper({})", self.pid)
    }
}

/// Why PID 1 did not do what the upgrade asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// PID 1's loop does not answer (it is gone, or shutting down).
    #[error("relive's loop is gone")]
    LoopGone,
    /// The manager refused or failed (its own words).
    #[error("{0}")]
    Manager(String),
    /// A job on a unit failed.
    #[error("{unit}: {reason}")]
    Job { unit: String, reason: String },
    /// A helper program could not be run, or failed.
    #[error("{program}: {reason}")]
    Helper { program: String, reason: String },
}

/// PID 1, as the upgrade's worker threads see it. Every method blocks
/// until the loop has done it.
pub trait UnitHost: Sync {
    /// Marks the upgrade as running; refuses a second one, or one during
    /// a shutdown.
    fn begin_upgrade(&self) -> Result<(), HostError>;
    /// The upgrade is over (done, undone or abandoned): every unit is
    /// supervised again.
    fn end_upgrade(&self);
    /// A resume has restored its most critical units: work held back so
    /// as not to slow their restores (the generators) may run now.
    fn most_critical_restored(&self) {}
    /// The plan, from the units' state and /proc (no preflight yet).
    fn plan(&self) -> Result<Plan, HostError>;
    /// Takes a running service out of supervision for its checkpoint.
    fn park(&self, unit: &str) -> Result<ParkInfo, HostError>;
    /// Puts a parked unit back under supervision with `main_pid` as its
    /// main process (restored, or never checkpointed) and `outputs` as the
    /// read ends of its output pipes.
    fn unpark(&self, unit: &str, main_pid: i32, outputs: Vec<OwnedFd>);
    /// A parked unit whose state was lost: it is inactive again, to be
    /// started like any unit.
    fn forget_parked(&self, unit: &str, reason: &str);
    /// After `unit`'s restore (`main_pid` its root): PID 1 copies the
    /// listening sockets it carried from the restored process, and their
    /// socket units listen on them again.
    fn adopt_listeners(&self, unit: &str, main_pid: i32, listeners: &[CarriedListener]);
    /// Before an undo restores `unit` on the old kernel: PID 1 closes its
    /// copies of the listening sockets the unit carried, which the
    /// restore binds again.
    fn release_listeners(&self, unit: &str);
    fn is_parked(&self, unit: &str) -> bool;
    /// Before a restore: the unit's cgroup and runtime directories, as a
    /// start would make them.
    fn prepare_restore(&self, unit: &str) -> Result<(), HostError>;
    /// Runs a job and waits until it is done.
    fn run_job(&self, unit: &str, job: Job) -> Result<(), HostError>;
    /// A unit's main PID now, if it has one.
    fn main_pid(&self, unit: &str) -> Option<i32>;
    /// Whether a service ended on its own since the plan: inactive, not
    /// parked, its last run a success (a socket-activated daemon that
    /// exits when idle). Its state is not lost: there is none to carry.
    fn ended_on_its_own(&self, unit: &str) -> bool;
    /// Queues a start and returns at once.
    fn queue_start(&self, unit: &str);
    /// Starts every unit at once (the manager orders them by After=) and
    /// waits; returns each unit (in the order given) with the time from
    /// the call until its job was done (ms), or why it failed.
    fn start_together(&self, units: &[String]) -> Vec<(String, Result<f64, HostError>)>;
    /// Runs a helper program (argv[0] an absolute path) to its end.
    fn run_helper(&self, argv: &[&str]) -> Result<HelperOutput, HostError>;
    /// Starts a helper that outlives the call (CRIU's lazy-pages daemon),
    /// with `keep` open in it at the same numbers and its output in the
    /// journal's stead on relive's stderr; returns its PID and a wait for
    /// its exit. Where there is none, an error: what needs it does
    /// without.
    fn start_helper(
        &self,
        argv: &[&str],
        keep: &[std::os::fd::RawFd],
    ) -> Result<StartedHelper, HostError> {
        let _ = keep;
        Err(HostError::Helper {
            program: argv.first().copied().unwrap_or_default().to_owned(),
            reason: "this host starts no long-running helpers".into(),
        })
    }
    /// Moves the PID counter above relive's floor again, so that services
    /// started from now on leave the low PIDs to the kernel (after the
    /// restores, which need their old PIDs).
    fn pids_above_floor(&self);
    /// PID 1's whole state, for the kexec handover.
    fn manager_state(&self) -> Result<Box<serde_json::value::RawValue>, HostError>;
    /// Open connections to relive's control socket.
    fn control_clients(&self) -> usize;
    /// Those of them made from processes in `cgroup` (a unit's, below the
    /// cgroup root) or below it.
    fn control_clients_in(&self, cgroup: &str) -> usize;
    /// The target the machine booted into, to start again after a resume.
    fn boot_target(&self) -> String;
}

/// Runs `argv` through the host and requires exit status 0; returns its
/// stdout.
pub fn run_ok(host: &dyn UnitHost, argv: &[&str]) -> Result<String, HostError> {
    let out = host.run_helper(argv)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(HostError::Helper {
            program: argv.join(" "),
            reason: format!("failed ({}): {}", out.status.describe(), out.stderr.trim()),
        })
    }
}

/// The text of a caught panic.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
