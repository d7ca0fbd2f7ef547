//! WatchdogSec=: a service that stops sending WATCHDOG=1 is hung, and is
//! killed with WatchdogSignal= (SIGABRT: a core dump to look at); its
//! result is `watchdog`, which Restart=on-watchdog, on-abnormal,
//! on-failure and always restart (systemd.service(5)).

use super::clock;
use super::state::UnitResult;
use super::Manager;

impl Manager {
    /// (Re)starts the countdown: when the main process starts, and on each
    /// WATCHDOG=1.
    pub(super) fn arm_watchdog(&mut self, name: &str) {
        let Some(svc) = self.service_config(name) else {
            return;
        };
        let u = self.state.units.get_mut(name).expect("unit exists");
        let limit = u.watchdog_override.or(svc.watchdog);
        u.watchdog_deadline = match (limit, u.main_pid) {
            (Some(limit), Some(_)) => Some(clock::after(clock::now(), limit)),
            _ => None,
        };
    }

    pub(super) fn watchdog_expired(&mut self, name: &str) {
        let Some(svc) = self.service_config(name) else {
            return;
        };
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.watchdog_deadline = None;
        let Some(pid) = u.main_pid else {
            return;
        };
        let limit = u.watchdog_override.or(svc.watchdog).unwrap_or_default();
        tracing::warn!(
            "{name}: watchdog timeout (limit {:?}), killing the main process {pid} with {}",
            limit,
            super::signal_name(svc.watchdog_signal)
        );
        u.result = UnitResult::Watchdog;
        let _ = self.rt.kernel.kill(pid, svc.watchdog_signal);
    }
}
