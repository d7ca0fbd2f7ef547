//! Type=dbus services and the names on the system bus (systemd's
//! service_bus_name_owner_change()): such a service is started when its
//! BusName= gets an owner, and stopped when the name goes away while it
//! runs. The names come from crate::system_bus's thread.

use super::state::*;
use super::Manager;
use relive_units::ServiceType;

impl Manager {
    /// Connected to the bus: `names` are the well-known names owned now.
    pub fn bus_connected(&mut self, names: Vec<String>) {
        self.rt.bus_names.clear();
        for name in names {
            self.bus_name_owner_changed(&name, true);
        }
    }

    /// The bus went away (dbus-daemon stopped): its names with it. Running
    /// services are left alone: the bus, not they, went away.
    pub fn bus_disconnected(&mut self) {
        self.rt.bus_names.clear();
    }

    /// A well-known name got (`owned`) or lost its owner.
    pub fn bus_name_owner_changed(&mut self, bus_name: &str, owned: bool) {
        if owned {
            self.rt.bus_names.insert(bus_name.to_owned());
        } else {
            self.rt.bus_names.remove(bus_name);
        }
        let waiting: Vec<String> = self
            .state
            .units
            .values()
            .filter(|u| {
                u.config
                    .as_ref()
                    .and_then(|c| c.service.as_ref())
                    .is_some_and(|s| {
                        s.service_type == ServiceType::Dbus
                            && s.bus_name.as_deref() == Some(bus_name)
                    })
            })
            .map(|u| u.name.clone())
            .collect();
        for name in waiting {
            let u = &self.state.units[&name];
            if owned && u.active == ActiveState::Activating && u.sub == SubState::Start {
                tracing::info!("{name}: {bus_name} appeared on the bus");
                self.set_state(&name, ActiveState::Activating, SubState::StartPost);
                self.run_phase(&name, ExecPhase::StartPost, 0);
            } else if !owned && u.active == ActiveState::Active && u.job.is_none() {
                tracing::warn!("{name}: its bus name {bus_name} went away, stopping");
                let _ = self.enqueue(&name, JobKind::Stop);
                self.dispatch();
            }
        }
    }

    /// A Type=dbus service just started: its name may already be there
    /// (a restart whose old process still held it, a name taken early).
    pub(super) fn check_bus_name(&mut self, name: &str) {
        let bus_name = self.service_config(name).and_then(|s| s.bus_name);
        if let Some(bus_name) = bus_name.filter(|b| self.rt.bus_names.contains(b)) {
            self.bus_name_owner_changed(&bus_name, true);
        }
    }

    /// The system bus's service has started: the bus thread connects.
    pub(super) fn system_bus_started(&self) {
        if let Some(bus) = &self.rt.system_bus {
            bus.bus_started();
        }
    }
}
