//! `.timer` units (systemd.timer(5)): each active timer is armed at its
//! next elapse (the unit's `deadline`, which the loop's poll timeout
//! honours), starts its unit when it elapses, and is armed again once the
//! unit has run.
//!
//! Monotonic timers count from the timer's activation, the boot, relive's
//! start, or the unit's last activation or deactivation; the one-shot
//! kinds elapse once. Calendar timers are computed on the wall clock and
//! armed at most a minute ahead, so that a clock set at boot (NTP) is
//! noticed within a minute. Persistent= keeps the last run in systemd's
//! own stamp file, so a run missed while the machine was off happens at
//! the next start, whichever of the two inits ran before.

use super::clock;
use super::state::Monotonic;
use super::state::{ActiveState, JobKind, SubState, UnitResult};
use super::Manager;
use relive_units::timer::{TimerBase, TimerSection};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// What a timer remembers (kept across a re-exec).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerState {
    /// When the timer was started (OnActiveSec=).
    pub activated: Monotonic,
    /// The last elapse, on both clocks.
    pub last_trigger_mono: Option<Monotonic>,
    pub last_trigger_usec: Option<u64>,
    /// The next elapse on the wall clock, for `list-timers`.
    pub next_elapse_usec: Option<u64>,
}

/// A calendar deadline is checked again at least this often.
const CALENDAR_RECHECK: Duration = Duration::from_secs(60);

impl Manager {
    fn timer_config(&self, name: &str) -> Option<TimerSection> {
        self.state.units.get(name)?.config.as_ref()?.timer.clone()
    }

    /// systemd's stamp of a Persistent= timer.
    fn stamp_path(&self, name: &str) -> PathBuf {
        self.config
            .manager
            .timer_stamp_dir
            .join(format!("stamp-{name}"))
    }

    pub(super) fn start_timer(&mut self, name: &str) {
        let Some(cfg) = self.start_config(name) else {
            return;
        };
        let Some(timer) = cfg.timer.clone() else {
            return;
        };
        let unit = timer.unit.clone().unwrap_or_default();
        let target = self.load(&unit);
        if self.unit(&target).is_none_or(|u| u.config.is_none()) {
            tracing::error!("{name}: cannot start: its unit {unit} is not loaded");
            let u = self.state.units.get_mut(name).expect("unit exists");
            u.result = UnitResult::Resources(format!("{unit} not loaded"));
            self.set_state(name, ActiveState::Failed, SubState::Failed);
            return;
        }
        let mut state = self.state.units[name].timer.clone().unwrap_or_default();
        state.activated = clock::now();
        if timer.persistent {
            if let Some(stamp) = read_stamp(&self.stamp_path(name)) {
                if state.last_trigger_usec.is_none_or(|t| t < stamp) {
                    state.last_trigger_usec = Some(stamp);
                }
            }
        }
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.timer = Some(state);
        u.result = UnitResult::Success;
        self.arm_timer(name);
    }

    pub(super) fn stop_timer(&mut self, name: &str) {
        if let Some(u) = self.state.units.get_mut(name) {
            u.deadline = None;
            if let Some(t) = &mut u.timer {
                t.next_elapse_usec = None;
            }
        }
        self.set_state(name, ActiveState::Inactive, SubState::Dead);
    }

    /// Computes the next elapse and arms the deadline, or leaves the timer
    /// elapsed when nothing is left to come.
    fn arm_timer(&mut self, name: &str) {
        let Some(timer) = self.timer_config(name) else {
            return;
        };
        let now = clock::now();
        let now_usec = clock::wall_usec();
        let state = self.state.units[name].timer.clone().unwrap_or_default();
        let next_mono = self.next_monotonic(&timer, &state);
        let next_wall = next_calendar(&timer, &state, now_usec, name);
        // Both as a monotonic deadline; the wall clock one no further
        // ahead than a minute (the clock may still be set).
        let wall_as_mono = next_wall.map(|usec| {
            let wait = usec.saturating_sub(now_usec).saturating_mul(1000);
            now + wait.min(CALENDAR_RECHECK.as_nanos() as u64)
        });
        let deadline = match (next_mono, wall_as_mono) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let next_usec = match (next_mono, next_wall) {
            (Some(m), Some(w)) => {
                let m_usec = now_usec + m.saturating_sub(now) / 1000;
                Some(m_usec.min(w))
            }
            (Some(m), None) => Some(now_usec + m.saturating_sub(now) / 1000),
            (None, w) => w,
        };
        let delay = random_delay(timer.randomized_delay);
        let u = self.state.units.get_mut(name).expect("unit exists");
        if let Some(t) = &mut u.timer {
            t.next_elapse_usec = next_usec.map(|n| n + delay.as_micros() as u64);
        }
        match deadline {
            Some(at) => {
                u.deadline = Some(at + delay.as_nanos() as u64);
                self.set_state(name, ActiveState::Active, SubState::Waiting);
            }
            None if timer.remain_after_elapse => {
                u.deadline = None;
                self.set_state(name, ActiveState::Active, SubState::Elapsed);
            }
            None => {
                u.deadline = None;
                self.set_state(name, ActiveState::Inactive, SubState::Dead);
            }
        }
    }

    /// The earliest monotonic elapse to come (systemd's
    /// `timer_enter_waiting()`): one-shot kinds that already elapsed since
    /// are done; the unit-relative kinds count from the later of the
    /// unit's change and the last elapse.
    fn next_monotonic(&self, timer: &TimerSection, state: &TimerState) -> Option<Monotonic> {
        let unit = timer
            .unit
            .as_deref()
            .and_then(|u| self.unit(u))
            .map(|u| (u.active_enter_mono, u.inactive_enter_mono));
        let last = state.last_trigger_mono;
        let mut next: Option<Monotonic> = None;
        for (base, offset) in &timer.monotonic {
            let from = match base {
                TimerBase::Active => Some(state.activated),
                TimerBase::Boot => Some(self.boot_mono()),
                TimerBase::Startup => Some(self.state.startup_mono.unwrap_or(0)),
                TimerBase::UnitActive => max_opt(unit.and_then(|u| u.0), last),
                TimerBase::UnitInactive => max_opt(unit.and_then(|u| u.1), last),
            };
            let Some(from) = from else {
                continue;
            };
            let at = from.saturating_add(offset.as_nanos() as u64);
            if base.one_shot() && last.is_some_and(|l| at <= l) {
                continue;
            }
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        next
    }

    /// The boot on CLOCK_MONOTONIC: 0 for the machine's PID 1; relive's
    /// start in a container, whose clock counts from the host's boot.
    fn boot_mono(&self) -> Monotonic {
        if self.rt.scope == relive_sys::machine::Scope::Machine {
            0
        } else {
            self.state.startup_mono.unwrap_or(0)
        }
    }

    /// The deadline of a timer came: start its unit if an elapse is due
    /// (a calendar deadline may only be a recheck).
    pub(super) fn timer_deadline(&mut self, name: &str) {
        let Some(timer) = self.timer_config(name) else {
            return;
        };
        if self.state.units[name].active != ActiveState::Active {
            return;
        }
        let now = clock::now();
        let now_usec = clock::wall_usec();
        let state = self.state.units[name].timer.clone().unwrap_or_default();
        let mono_due = self
            .next_monotonic(&timer, &state)
            .is_some_and(|at| at <= now + 1_000_000);
        let wall_due =
            next_calendar(&timer, &state, now_usec, name).is_some_and(|at| at <= now_usec + 1_000);
        if !mono_due && !wall_due {
            self.arm_timer(name);
            return;
        }
        self.timer_elapsed(name, &timer, now, now_usec);
    }

    fn timer_elapsed(&mut self, name: &str, timer: &TimerSection, now: Monotonic, now_usec: u64) {
        let unit = timer.unit.clone().unwrap_or_default();
        tracing::info!("{name}: elapsed, starting {unit}");
        let u = self.state.units.get_mut(name).expect("unit exists");
        if let Some(t) = &mut u.timer {
            t.last_trigger_mono = Some(now);
            t.last_trigger_usec = Some(now_usec);
            t.next_elapse_usec = None;
        }
        u.deadline = None;
        if timer.persistent {
            if let Err(e) = touch_stamp(&self.stamp_path(name)) {
                tracing::warn!("{name}: cannot write its stamp: {e}");
            }
        }
        if let Err(e) = self.enqueue(&unit, JobKind::Start) {
            tracing::error!("{name}: cannot start {unit}: {e}");
            let u = self.state.units.get_mut(name).expect("unit exists");
            u.result = UnitResult::Resources(e.to_string());
            self.set_state(name, ActiveState::Failed, SubState::Failed);
            return;
        }
        self.set_state(name, ActiveState::Active, SubState::Running);
    }

    /// The unit a timer starts changed state: a timer that started it is
    /// armed again once it is down; a waiting one is re-armed, since its
    /// unit-relative elapses move (systemd's `timer_trigger_notify()`).
    pub(super) fn timer_trigger_notify(&mut self, unit: &str) {
        let timers: Vec<String> = self
            .state
            .units
            .values()
            .filter(|t| matches!(t.sub, SubState::Waiting | SubState::Running))
            .filter(|t| {
                t.config
                    .as_ref()
                    .and_then(|c| c.timer.as_ref())
                    .is_some_and(|c| c.unit.as_deref() == Some(unit))
            })
            .map(|t| t.name.clone())
            .collect();
        if timers.is_empty() {
            return;
        }
        let down = self.unit(unit).is_none_or(|u| !u.is_up());
        for timer in timers {
            if self.state.units[&timer].sub == SubState::Waiting || down {
                self.arm_timer(&timer);
            }
        }
    }
}

fn max_opt(a: Option<Monotonic>, b: Option<Monotonic>) -> Option<Monotonic> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The earliest calendar elapse after the last one (or after the timer's
/// start if it never elapsed), as µs on the wall clock. A Persistent=
/// timer whose last run is old gets an elapse in the past: it runs now.
fn next_calendar(
    timer: &TimerSection,
    state: &TimerState,
    now_usec: u64,
    name: &str,
) -> Option<u64> {
    if timer.calendar.is_empty() {
        return None;
    }
    let activated_usec =
        now_usec.saturating_sub(clock::now().saturating_sub(state.activated) / 1000);
    let base_usec = state.last_trigger_usec.unwrap_or(activated_usec);
    let next = timer
        .calendar
        .iter()
        .filter_map(|c| c.spec.next_after_micros(base_usec as i64))
        .min();
    if next.is_none() {
        tracing::debug!("{name}: no calendar elapse is left");
    }
    next.map(|t| t.max(0) as u64)
}

/// A random delay in [0, max) for RandomizedDelaySec=.
fn random_delay(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut bytes = [0u8; 8];
    if getrandom(&mut bytes).is_err() {
        return Duration::ZERO;
    }
    let micros = u64::from_ne_bytes(bytes) % (max.as_micros().max(1) as u64);
    Duration::from_micros(micros)
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    // SAFETY: getrandom(2) writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    if n == buf.len() as isize {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The stamp's modification time, µs since the epoch.
fn read_stamp(path: &std::path::Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(since.as_micros() as u64)
}

fn touch_stamp(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    file.set_modified(std::time::SystemTime::now())
}
