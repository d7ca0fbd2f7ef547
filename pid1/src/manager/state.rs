//! PID 1's runtime state, all in one serializable place.
//!
//! Everything a re-exec or a kexec handover must carry lives here: units,
//! their processes, counters and timers (as absolute monotonic deadlines).
//! What cannot be serialized (open pipes, waiting D-Bus callers) lives in
//! `Runtime` beside it and is rebuilt after a handover.

use relive_units::Unit;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Nanoseconds of CLOCK_MONOTONIC; survives a re-exec, not a kexec.
pub type Monotonic = u64;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ManagerState {
    /// Every unit relive has heard of, by canonical name.
    pub units: BTreeMap<String, UnitState>,
    /// Alias name → canonical name.
    pub aliases: BTreeMap<String, String>,
    /// The target started at boot (empty until then).
    pub default_target: String,
    /// CLOCK_MONOTONIC when relive first started on this kernel
    /// (OnStartupSec=); kept across a re-exec.
    #[serde(default)]
    pub startup_mono: Option<Monotonic>,
    /// Set once a shutdown has begun.
    pub shutdown: Option<relive_sys::machine::ShutdownKind>,
    /// Set while a live upgrade runs (one at a time).
    #[serde(default)]
    pub upgrading: bool,
    /// A shutdown signal (SIGPWR from a UPS daemon, ctrl-alt-del, SIGTERM)
    /// that came during an upgrade: acted on once the upgrade is over,
    /// on whichever kernel that is.
    #[serde(default)]
    pub queued_shutdown: Option<relive_sys::machine::ShutdownKind>,
    /// In a new kernel, the units the upgrade restarts (logind...): a
    /// start of one (a D-Bus activation) waits until no unit is parked
    /// any more, as they read back state whose processes are restored.
    #[serde(default)]
    pub restarted_after_restores: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoadState {
    Loaded,
    NotFound,
    Error,
    Masked,
}

impl LoadState {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadState::Loaded => "loaded",
            LoadState::NotFound => "not-found",
            LoadState::Error => "error",
            LoadState::Masked => "masked",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActiveState {
    Inactive,
    Activating,
    Active,
    Reloading,
    Deactivating,
    Failed,
}

impl ActiveState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActiveState::Inactive => "inactive",
            ActiveState::Activating => "activating",
            ActiveState::Active => "active",
            ActiveState::Reloading => "reloading",
            ActiveState::Deactivating => "deactivating",
            ActiveState::Failed => "failed",
        }
    }
}

/// Finer state, named as systemd names a service's sub-states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubState {
    Dead,
    Condition,
    StartPre,
    Start,
    StartPost,
    Running,
    /// A socket waiting for traffic.
    Listening,
    /// A timer armed for its next elapse.
    Waiting,
    /// A timer with nothing left to elapse.
    Elapsed,
    /// A device that is there.
    Plugged,
    /// A file system mounted.
    Mounted,
    /// A swap area in use.
    SwapActive,
    /// A target reached (systemd's sub-state for targets, "active").
    Reached,
    Exited,
    Reload,
    Stop,
    StopSigterm,
    StopSigkill,
    StopPost,
    AutoRestart,
    Failed,
    /// A slice that is set up.
    Active,
    /// A scope whose manager (logind) let go of it: it ends when its
    /// processes do.
    Abandoned,
}

impl SubState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubState::Dead => "dead",
            SubState::Condition => "condition",
            SubState::StartPre => "start-pre",
            SubState::Start => "start",
            SubState::StartPost => "start-post",
            SubState::Running => "running",
            SubState::Listening => "listening",
            SubState::Waiting => "waiting",
            SubState::Elapsed => "elapsed",
            SubState::Plugged => "plugged",
            SubState::Mounted => "mounted",
            SubState::SwapActive => "active",
            SubState::Reached => "active",
            SubState::Exited => "exited",
            SubState::Reload => "reload",
            SubState::Stop => "stop",
            SubState::StopSigterm => "stop-sigterm",
            SubState::StopSigkill => "stop-sigkill",
            SubState::StopPost => "stop-post",
            SubState::AutoRestart => "auto-restart",
            SubState::Failed => "failed",
            SubState::Active => "active",
            SubState::Abandoned => "abandoned",
        }
    }
}

/// Why a unit last stopped or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnitResult {
    Success,
    ExitCode(i32),
    Signal(i32),
    Timeout,
    StartLimitHit,
    Dependency,
    /// Setting up the unit failed (cgroup, user, exec): the message says what.
    Resources(String),
    /// A Type=forking service left no main process to follow, or a notify
    /// service exited before READY=1.
    Protocol,
    /// An Assert*= did not hold.
    Assert,
    /// A socket triggered more often than TriggerLimitBurst= allows.
    TriggerLimitHit,
    /// A socket's service hit its own start limit.
    ServiceStartLimitHit,
    /// The service missed its WatchdogSec=.
    Watchdog,
}

impl UnitResult {
    pub fn as_str(&self) -> &'static str {
        match self {
            UnitResult::Success => "success",
            UnitResult::ExitCode(_) => "exit-code",
            UnitResult::Signal(_) => "signal",
            UnitResult::Timeout => "timeout",
            UnitResult::StartLimitHit => "start-limit-hit",
            UnitResult::Dependency => "dependency",
            UnitResult::Resources(_) => "resources",
            UnitResult::Protocol => "protocol",
            UnitResult::Assert => "assert",
            UnitResult::TriggerLimitHit => "trigger-limit-hit",
            UnitResult::ServiceStartLimitHit => "service-start-limit-hit",
            UnitResult::Watchdog => "watchdog",
        }
    }
}

/// Which Exec*= list a control process is running, and which entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecPhase {
    StartPre,
    /// Type=forking's ExecStart, or Type=oneshot's ExecStart lines.
    Start,
    StartPost,
    Reload,
    Stop,
    StopPost,
}

/// A pending request on a unit. At most one per unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    Start,
    Stop,
    /// Stop, then start.
    Restart,
    Reload,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub kind: JobKind,
    /// Job id, to match D-Bus callers waiting on it (kept in `Runtime`).
    pub id: u64,
    /// Set once the job has begun acting on the unit.
    pub running: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitState {
    pub name: String,
    pub load: LoadState,
    /// file:line: message, when loading failed.
    pub load_error: Option<String>,
    pub config: Option<Unit>,
    pub active: ActiveState,
    pub sub: SubState,
    pub result: UnitResult,
    pub job: Option<Job>,
    pub main_pid: Option<i32>,
    pub control_pid: Option<i32>,
    /// What the control process runs: the phase and the index in its list.
    pub control: Option<(ExecPhase, usize)>,
    /// Automatic restarts since the last start by request.
    pub restarts: u32,
    /// Start times within the rate-limit window.
    pub start_times: VecDeque<Monotonic>,
    /// Timeout of the current phase, or the time of a pending auto-restart.
    pub deadline: Option<Monotonic>,
    /// STATUS= from sd_notify.
    pub status_text: Option<String>,
    /// Wall clock (µs since the epoch) of the last active-state change.
    pub state_change_usec: u64,
    /// The last lines its processes wrote.
    pub output: VecDeque<String>,
    /// A notify service said RELOADING=1 and has not said READY=1 since.
    pub reloading: bool,
    /// A notify service said READY=1 before its start finished.
    pub ready: bool,
    /// Checkpointed (or being checkpointed) for a live upgrade: its
    /// processes end because CRIU ends them, not because they failed, and
    /// nothing restarts it; a restore brings them back.
    #[serde(default)]
    pub parked: bool,
    /// A timer's elapses (timers only).
    #[serde(default)]
    pub timer: Option<super::timers::TimerState>,
    /// When it last left inactive (OnUnitActiveSec=) and last became
    /// inactive again (OnUnitInactiveSec=), on CLOCK_MONOTONIC.
    #[serde(default)]
    pub active_enter_mono: Option<Monotonic>,
    #[serde(default)]
    pub inactive_enter_mono: Option<Monotonic>,
    /// A start job waits for its device until then; a stopping scope
    /// gets SIGKILL then.
    #[serde(default)]
    pub wait_until: Option<Monotonic>,
    /// WatchdogSec=: the main process must send WATCHDOG=1 before then.
    #[serde(default)]
    pub watchdog_deadline: Option<Monotonic>,
    /// WATCHDOG_USEC= sent by the service, replacing WatchdogSec=.
    #[serde(default)]
    pub watchdog_override: Option<std::time::Duration>,
    /// When it last crossed each edge of its active state (systemctl
    /// status's "since").
    #[serde(default)]
    pub transitions: Transitions,
    /// A transient unit's file, as written: written again if /run loses it
    /// (a new kernel's /run starts empty).
    #[serde(default)]
    pub transient_file: Option<String>,
    /// A random 128-bit id of its current activation (systemd's
    /// InvocationID), new each time it leaves inactive.
    #[serde(default)]
    pub invocation_id: Option<[u8; 16]>,
}

/// A moment on both clocks, µs (CLOCK_REALTIME, CLOCK_MONOTONIC); zero
/// when it never happened, as systemd's dual_timestamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub wall: u64,
    pub mono: u64,
}

impl Stamp {
    pub fn now() -> Stamp {
        Stamp {
            wall: super::clock::wall_usec(),
            mono: super::clock::now() / 1000,
        }
    }
}

/// systemd's four unit timestamps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transitions {
    /// Left inactive or failed.
    pub inactive_exit: Stamp,
    /// Became active.
    pub active_enter: Stamp,
    /// Stopped being active.
    pub active_exit: Stamp,
    /// Became inactive or failed.
    pub inactive_enter: Stamp,
}

impl Transitions {
    /// Records the edges a change from `old` to `new` crosses.
    pub fn record(&mut self, old: ActiveState, new: ActiveState) {
        let down = |s| matches!(s, ActiveState::Inactive | ActiveState::Failed);
        let up = |s| matches!(s, ActiveState::Active | ActiveState::Reloading);
        let now = Stamp::now();
        if down(old) && !down(new) {
            self.inactive_exit = now;
        }
        if !up(old) && up(new) {
            self.active_enter = now;
        }
        if up(old) && !up(new) {
            self.active_exit = now;
        }
        if !down(old) && down(new) {
            self.inactive_enter = now;
        }
    }
}

impl UnitState {
    pub fn new(name: &str) -> UnitState {
        UnitState {
            name: name.to_owned(),
            load: LoadState::NotFound,
            load_error: None,
            config: None,
            active: ActiveState::Inactive,
            sub: SubState::Dead,
            result: UnitResult::Success,
            job: None,
            main_pid: None,
            control_pid: None,
            control: None,
            restarts: 0,
            start_times: VecDeque::new(),
            deadline: None,
            status_text: None,
            state_change_usec: 0,
            output: VecDeque::new(),
            reloading: false,
            ready: false,
            parked: false,
            timer: None,
            active_enter_mono: None,
            inactive_enter_mono: None,
            wait_until: None,
            watchdog_deadline: None,
            watchdog_override: None,
            transitions: Transitions::default(),
            invocation_id: None,
            transient_file: None,
        }
    }

    pub fn is_service(&self) -> bool {
        self.config.as_ref().is_some_and(|c| c.service.is_some())
    }

    /// Active, or on its way there: nothing to start.
    pub fn is_up(&self) -> bool {
        matches!(
            self.active,
            ActiveState::Active | ActiveState::Reloading | ActiveState::Activating
        )
    }
}
