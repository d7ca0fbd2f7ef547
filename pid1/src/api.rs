//! The D-Bus API between `relive` (PID 1) and `relivectl`.
//!
//! Served peer-to-peer on a private unix socket (no bus daemon: PID 1 must
//! not depend on one). Object `/org/relive/Manager1`, interface
//! `org.relive.Manager1`. Every method refuses a caller whose uid is not 0
//! with `org.freedesktop.DBus.Error.AccessDenied`.

use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

pub const OBJECT_PATH: &str = "/org/relive/Manager1";
pub const INTERFACE: &str = "org.relive.Manager1";
/// Where PID 1 listens unless `--control-socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/relive/private";

/// One line of `relivectl list-units`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct UnitSummary {
    pub name: String,
    pub description: String,
    /// loaded, not-found, error, masked
    pub load_state: String,
    /// active, reloading, inactive, failed, activating, deactivating
    pub active_state: String,
    /// running, exited, dead, start-pre, start, stop-sigterm, auto-restart, ...
    pub sub_state: String,
    /// 0 when there is none.
    pub main_pid: u32,
}

/// Everything `relivectl status UNIT` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct UnitStatus {
    pub name: String,
    pub description: String,
    pub load_state: String,
    /// Why loading failed (file:line: message), empty if it did not.
    pub load_error: String,
    /// The unit file and its drop-ins.
    pub fragment: String,
    pub dropins: Vec<String>,
    pub active_state: String,
    pub sub_state: String,
    /// success, exit-code, signal, timeout, core-dump, start-limit-hit,
    /// dependency, resources, condition, protocol.
    pub result: String,
    /// Wall-clock time of the last active-state change, µs since the epoch.
    pub state_change_usec: u64,
    pub main_pid: u32,
    /// The cgroup path relative to the cgroup2 root, e.g. /system.slice/ssh.service.
    pub cgroup: String,
    /// PIDs currently in the cgroup.
    pub pids: Vec<u32>,
    /// Automatic restarts since the unit was last started by request.
    pub restarts: u32,
    /// Last STATUS= sent over sd_notify.
    pub status_text: String,
    /// The [X-LiveUpgrade] policy: preserve, restart or rerun, and its priority.
    pub upgrade_mode: String,
    pub upgrade_priority: u16,
    /// Load warnings (unsupported directives) as file:line: message.
    pub warnings: Vec<String>,
    /// The most recent lines the unit's processes wrote to stdout/stderr.
    pub output: Vec<String>,
}

/// The client side: `relivectl` calls these.
#[zbus::proxy(
    interface = "org.relive.Manager1",
    default_path = "/org/relive/Manager1",
    gen_async = false,
    gen_blocking = true
)]
pub trait Manager1 {
    fn list_units(&self) -> zbus::Result<Vec<UnitSummary>>;
    fn get_unit(&self, name: &str) -> zbus::Result<UnitStatus>;
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
    /// returns the plan as JSON (`relive::upgrade::plan::Plan`). Without,
    /// performs the upgrade: progress arrives as `Progress` signals, and
    /// on success the machine kexecs (the call never returns); on failure
    /// everything is put back and the error says why. `initrd` and
    /// `append` may be empty.
    /// `options` (any of): "single-phase" = "yes" (no background
    /// pre-dumps), "store" = "memory" | "disk" | "auto" (instead of
    /// upgrade.store).
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
    /// (`relive::upgrade::warm::Warm`).
    fn prepare_live_upgrade(&self) -> zbus::Result<String>;
    /// Wipes the warm snapshot; true if there was one.
    fn discard_live_upgrade(&self) -> zbus::Result<bool>;
    /// The last completed upgrade's report, as JSON
    /// (`relive::upgrade::record::UpgradeReport`).
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
