//! The [Timer] section of a `.timer` unit (systemd.timer(5)), as data.

use crate::calendar::CalendarSpec;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a monotonic timer counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimerBase {
    /// OnActiveSec=: the timer's own activation.
    Active,
    /// OnBootSec=: the boot.
    Boot,
    /// OnStartupSec=: the service manager's start.
    Startup,
    /// OnUnitActiveSec=: the last activation of the unit it starts.
    UnitActive,
    /// OnUnitInactiveSec=: the last deactivation of that unit.
    UnitInactive,
}

impl TimerBase {
    /// The directive's name.
    pub fn key(self) -> &'static str {
        match self {
            TimerBase::Active => "OnActiveSec",
            TimerBase::Boot => "OnBootSec",
            TimerBase::Startup => "OnStartupSec",
            TimerBase::UnitActive => "OnUnitActiveSec",
            TimerBase::UnitInactive => "OnUnitInactiveSec",
        }
    }

    /// Elapses once (per activation, boot or start), not on every run of
    /// the unit.
    pub fn one_shot(self) -> bool {
        matches!(
            self,
            TimerBase::Active | TimerBase::Boot | TimerBase::Startup
        )
    }
}

/// One OnCalendar= line, with its text for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarTimer {
    pub text: String,
    pub spec: CalendarSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerSection {
    pub monotonic: Vec<(TimerBase, Duration)>,
    pub calendar: Vec<CalendarTimer>,
    /// AccuracySec= (default 1 min): how late it may elapse.
    pub accuracy: Duration,
    /// RandomizedDelaySec= (default 0).
    pub randomized_delay: Duration,
    /// Persistent=: a run missed while the machine was off happens at the
    /// next start (OnCalendar= only).
    pub persistent: bool,
    /// RemainAfterElapse= (default yes): stays active once nothing is left
    /// to elapse.
    pub remain_after_elapse: bool,
    /// Unit= (default: the timer's own name with `.service`).
    pub unit: Option<String>,
}

impl Default for TimerSection {
    fn default() -> Self {
        TimerSection {
            monotonic: Vec::new(),
            calendar: Vec::new(),
            accuracy: Duration::from_secs(60),
            randomized_delay: Duration::ZERO,
            persistent: false,
            remain_after_elapse: true,
            unit: None,
        }
    }
}
