//! The client side of relive's D-Bus API (`relive_api::names`): the
//! methods relivectl calls, as a zbus proxy.

use relive_api::units::{UnitStatus, UnitSummary};

/// The client side: `relivectl` calls these.
#[zbus::proxy(
    interface = "org.relive.Manager1",
    default_path = "/org/relive/Manager1",
    gen_async = false,
    gen_blocking = true
)]
pub trait Manager1 {
    fn list_units(&self) -> zbus::Result<Vec<UnitSummary>>;
    fn list_timers(&self) -> zbus::Result<Vec<relive_api::units::TimerSummary>>;
    fn list_sockets(&self) -> zbus::Result<Vec<relive_api::units::SocketSummary>>;
    fn get_unit(&self, name: &str) -> zbus::Result<UnitStatus>;
    /// The protections a service runs with, as JSON
    /// (`Vec<relive_api::units::SecurityCheck>`).
    fn unit_security(&self, name: &str) -> zbus::Result<String>;
    /// Starts the unit and what it requires; returns once the job is done.
    fn start_unit(&self, name: &str) -> zbus::Result<()>;
    fn stop_unit(&self, name: &str) -> zbus::Result<()>;
    fn restart_unit(&self, name: &str) -> zbus::Result<()>;
    fn reload_unit(&self, name: &str) -> zbus::Result<()>;
    /// Re-reads every unit file; running services are untouched.
    fn daemon_reload(&self) -> zbus::Result<()>;
    /// Serializes relive's state and re-executes its binary (possibly a newer
    /// one); every service keeps running untouched. The connection closes.
    fn daemon_reexec(&self) -> zbus::Result<()>;
    /// Plans a live kernel upgrade and runs its preflight; with `dry_run`
    /// returns the plan as JSON (`relive_api::plan::Plan`). Without,
    /// performs the upgrade: progress arrives as `Progress` signals, and
    /// on success the machine kexecs (the call never returns); on failure
    /// everything is put back and the error says why. `initrd` and
    /// `append` may be empty.
    /// `options` (any of): "single-phase" = "yes" (no background
    /// pre-dumps), "store" = "memory" | "disk" | "auto" (instead of
    /// upgrade.store), "initrd" = "minimal" (relive's minimal initrd).
    fn live_upgrade(
        &self,
        kernel: &str,
        initrd: &str,
        append: &str,
        reuse_cmdline: bool,
        dry_run: bool,
        options: &std::collections::HashMap<&str, &str>,
    ) -> zbus::Result<String>;
    /// Like `live_upgrade`, but returns the plan (JSON) once the preflight
    /// passed; the upgrade proceeds when every control client has
    /// disconnected. For callers inside a preserved unit (an ssh session).
    fn start_live_upgrade(
        &self,
        kernel: &str,
        initrd: &str,
        append: &str,
        reuse_cmdline: bool,
        options: &std::collections::HashMap<&str, &str>,
    ) -> zbus::Result<String>;
    /// Runs phase 1 of an upgrade now (background pre-dumps) and keeps it
    /// as a warm snapshot for the next upgrade; returns it as JSON
    /// (`relive_api::warm::Warm`).
    fn prepare_live_upgrade(&self) -> zbus::Result<String>;
    /// Wipes the warm snapshot; true if there was one.
    fn discard_live_upgrade(&self) -> zbus::Result<bool>;
    /// Cancels the upgrade under way before its stoppage; says what it
    /// found, as JSON (`relive_snapshot::control::CancelAnswer`).
    fn cancel_live_upgrade(&self) -> zbus::Result<String>;
    /// The last completed upgrade's report, as JSON
    /// (`relive_api::report::UpgradeReport`).
    fn upgrade_report(&self) -> zbus::Result<String>;
    /// One step of a running live upgrade.
    #[zbus(signal)]
    fn progress(
        &self,
        phase: String,
        unit: String,
        bytes: u64,
        message: String,
    ) -> zbus::Result<()>;
    /// Begins the shutdown; returns once it has been accepted.
    fn power_off(&self) -> zbus::Result<()>;
    fn reboot(&self) -> zbus::Result<()>;
    fn halt(&self) -> zbus::Result<()>;
}
