//! The orderly end: every unit stops in reverse dependency order.

use super::state::*;
use super::{Manager, ManagerError};
use relive_sys::machine::ShutdownKind;

impl Manager {
    /// Begins stopping everything. Start jobs still queued are cancelled.
    /// A second request while one runs changes nothing but is not an error.
    pub fn begin_shutdown(&mut self, kind: ShutdownKind) -> Result<(), ManagerError> {
        if self.state.upgrading {
            // Parked units are frozen or exist only as images: stopping
            // "everything" now would lose them. The upgrade ends soon,
            // either way; the caller can ask again then.
            return Err(ManagerError::Refused(format!(
                "{} refused: a live upgrade is running; ask again once it has completed or been undone",
                kind.verb()
            )));
        }
        if let Some(current) = self.state.shutdown {
            tracing::info!(
                "{} requested while {} is in progress",
                kind.verb(),
                current.verb()
            );
            return Ok(());
        }
        tracing::info!("{}: stopping all units", kind.verb());
        self.state.shutdown = Some(kind);
        let names: Vec<String> = self.state.units.keys().cloned().collect();
        for name in &names {
            let u = self.state.units.get_mut(name).expect("listed above");
            if let Some(job) = u.job.take_if(|j| j.kind != JobKind::Stop) {
                self.job_done(
                    job.id,
                    name,
                    crate::systemd1::events::JobResult::Canceled,
                    Err(ManagerError::Refused(
                        "cancelled: the system is shutting down".into(),
                    )),
                );
            }
        }
        for name in &names {
            let u = &self.state.units[name];
            let has_processes = u.main_pid.is_some() || u.control_pid.is_some();
            if u.is_up() || u.active == ActiveState::Deactivating || has_processes {
                // Every running unit gets its own stop job here, so the
                // requirers enqueue() would add are already covered.
                self.add_job(name, JobKind::Stop);
            }
        }
        self.dispatch();
        Ok(())
    }

    /// A shutdown signal: during an upgrade it waits for the upgrade's
    /// end (a UPS's SIGPWR must not be dropped); otherwise it begins.
    pub fn shutdown_signal(&mut self, kind: ShutdownKind) {
        if self.state.upgrading {
            tracing::warn!(
                "{}: queued until the live upgrade has completed or been undone",
                kind.verb()
            );
            self.state.queued_shutdown = Some(kind);
            return;
        }
        if let Err(e) = self.begin_shutdown(kind) {
            tracing::warn!("{e}");
        }
    }

    /// The shutdown has stopped every unit.
    pub fn shutdown_done(&self) -> Option<ShutdownKind> {
        let kind = self.state.shutdown?;
        (!self.has_jobs()).then_some(kind)
    }
}
