//! `.device` units: systemd makes them from udev; relive takes a device
//! as present ("plugged") while its node or /sys path exists (the path
//! comes from the unit's name: `dev-ttyS0.device` is /dev/ttyS0). A
//! start job waits for it up to systemd's default device timeout, and a
//! present device is looked at again every few seconds, so that units
//! bound to it (BindsTo=) stop when it goes.

use super::clock;
use super::state::{ActiveState, SubState, UnitResult};
use super::Manager;
use std::path::Path;
use std::time::Duration;

/// systemd's DefaultDeviceTimeoutSec=.
const WAIT: Duration = Duration::from_secs(90);
/// How often a missing device is looked for while a job waits for it.
const LOOK_AGAIN: Duration = Duration::from_millis(250);
/// How often a present one is checked.
const CHECK_PRESENT: Duration = Duration::from_secs(5);

impl Manager {
    fn device_path(&self, name: &str) -> Option<String> {
        self.state
            .units
            .get(name)?
            .config
            .as_ref()?
            .unit
            .description
            .clone()
    }

    fn device_present(&self, name: &str) -> bool {
        self.device_path(name)
            .is_some_and(|p| Path::new(&where_it_shows(&p)).exists())
    }

    pub(super) fn start_device(&mut self, name: &str) {
        let now = clock::now();
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.wait_until = Some(clock::after(now, WAIT));
        self.device_deadline(name);
    }

    pub(super) fn stop_device(&mut self, name: &str) {
        // A device is not stopped; its unit forgets the job.
        let u = self.state.units.get_mut(name).expect("unit exists");
        u.wait_until = None;
        u.deadline = None;
        let (active, sub) = (u.active, u.sub);
        self.set_state(name, active, sub);
        self.finish_job(name, Ok(()));
    }

    /// A device's deadline: it appeared, went, or a start waited too long.
    pub(super) fn device_deadline(&mut self, name: &str) {
        let now = clock::now();
        let present = self.device_present(name);
        let u = self.state.units.get_mut(name).expect("unit exists");
        let waiting = u.wait_until.is_some();
        match (present, u.active) {
            (true, ActiveState::Active) => {
                u.deadline = Some(clock::after(now, CHECK_PRESENT));
            }
            (true, _) => {
                u.wait_until = None;
                u.result = UnitResult::Success;
                u.deadline = Some(clock::after(now, CHECK_PRESENT));
                self.set_state(name, ActiveState::Active, SubState::Plugged);
            }
            (false, ActiveState::Active) => {
                tracing::info!("{name}: the device is gone");
                u.deadline = None;
                self.set_state(name, ActiveState::Inactive, SubState::Dead);
            }
            (false, _) if waiting && u.wait_until.is_some_and(|t| now >= t) => {
                tracing::warn!("{name}: timed out waiting for the device");
                u.wait_until = None;
                u.deadline = None;
                u.result = UnitResult::Timeout;
                self.set_state(name, ActiveState::Inactive, SubState::Dead);
            }
            (false, _) if waiting => {
                u.deadline = Some(clock::after(now, LOOK_AGAIN));
            }
            (false, _) => u.deadline = None,
        }
    }
}

/// Where a device's path shows. udev names network devices
/// /sys/subsystem/net/devices/NAME (its SYSTEMD_ALIAS), which the kernel
/// shows as /sys/class/net/NAME.
fn where_it_shows(path: &str) -> String {
    match path.strip_prefix("/sys/subsystem/net/devices/") {
        Some(name) => format!("/sys/class/net/{name}"),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn network_devices_show_in_sys_class_net() {
        assert_eq!(
            super::where_it_shows("/sys/subsystem/net/devices/eth0"),
            "/sys/class/net/eth0"
        );
        assert_eq!(super::where_it_shows("/dev/ttyS0"), "/dev/ttyS0");
    }
}
