//! The manager: units, jobs and services, driven by events from the loop.
//!
//! One thread owns a `Manager`. Events (a child exited, a notify message, a
//! timer, a request from D-Bus) change the state, then `dispatch` runs queued
//! jobs until nothing changes any more (a fixed point, without recursion).

pub mod automounts;
mod bus_names;
pub mod bus_ops;
mod carried_sockets;
/// What MemoryMax=N% and TasksMax=N% are shares of.
pub(crate) use conditions::physical_memory;
pub(crate) use exec::task_limit;
pub mod bus_view;
pub mod clock;
mod conditions;
mod confine;
mod credentials;
mod devices;
mod exec;
pub mod execs;
mod fdstore;
mod foreign_fifos;
mod jobs;
mod journal;
mod mounts;
mod network_reruns;
pub mod notify;
mod ordering;
pub mod output;
mod paths;
pub(crate) mod plan;
mod remove_ipc;
mod rundir;
mod sandbox;
mod scope_moves;
pub mod scopes;
mod seccomp_rules;
mod security;
mod service;
mod shutdown;
pub mod sockets;
pub mod state;
mod status;
pub mod timers;
pub mod upgrade;
mod utmp;
mod watchdog;

use relive_config::Config;
use relive_sys::users::Accounts;
use relive_sys::Kernel;
use relive_units::{LoadError, Loader, UnitKind};
use state::*;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

pub use jobs::JobOutcome;

/// Exists on the first boot of an image (no machine ID before it), as
/// under systemd.
pub const FIRST_BOOT_FLAG: &str = "/run/systemd/first-boot";

/// Errors returned to API callers.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ManagerError {
    #[error("Unit {name} not found: {reason}")]
    NoSuchUnit { name: String, reason: String },
    #[error("{0}")]
    JobFailed(String),
    #[error("{0}")]
    Refused(String),
    /// The unit asks for something relive cannot do (systemd's
    /// "bad-setting"): refused before any job.
    #[error("{0}")]
    BadSetting(String),
}

impl ManagerError {
    /// systemd's D-Bus error name for it.
    pub fn bus_error_name(&self) -> &'static str {
        match self {
            ManagerError::NoSuchUnit { reason, .. } if reason == "masked" => {
                "org.freedesktop.systemd1.UnitMasked"
            }
            ManagerError::NoSuchUnit { .. } => "org.freedesktop.systemd1.NoSuchUnit",
            ManagerError::BadSetting(_) => "org.freedesktop.systemd1.BadUnitSetting",
            ManagerError::JobFailed(_) | ManagerError::Refused(_) => {
                "org.freedesktop.DBus.Error.Failed"
            }
        }
    }
}

/// What the manager can't serialize: open files, the kernel, callers.
pub struct Runtime {
    pub kernel: Box<dyn Kernel>,
    pub outputs: output::Outputs,
    /// Job id → callers waiting for its outcome.
    pub waiters: HashMap<u64, Vec<async_channel::Sender<JobOutcome>>>,
    pub notify_socket_path: PathBuf,
    pub next_job_id: u64,
    /// Helpers (nft, ...) whose exit someone waits for, by PID.
    pub pid_waiters: HashMap<i32, async_channel::Sender<ExitStatus>>,
    /// After a live upgrade's kexec the generators run beside the resume;
    /// this closes once their output is in the loader: the resume's end
    /// waits for it before it starts the boot target.
    pub generators_pending: Option<async_channel::Receiver<()>>,
    /// Dropped, it lets those generators start: once the most critical
    /// units are restored (or at the resume's end, whichever is first).
    pub generators_held: Option<async_channel::Sender<()>>,
    /// `relivectl daemon-reexec` asked for a re-exec: the loop hands over.
    pub reexec_requested: bool,
    /// Machine init, namespace init or plain process: what relive may do.
    pub scope: relive_sys::machine::Scope,
    /// (file, line, key) already warned about: each warning is logged once.
    warned: BTreeSet<String>,
    /// Each unit's output lines logged in the current interval.
    pub output_rate: HashMap<String, status::OutputRate>,
    /// False when the notify socket could not be bound: services get no
    /// NOTIFY_SOCKET, and Type=notify ones start as Type=simple.
    pub notify_available: bool,
    /// Children whose exec the loop still waits to hear about.
    pub execs: execs::PendingExecs,
    /// Socket units' descriptors and Accept=yes connections.
    pub listeners: sockets::Listeners,
    /// The file descriptor store of each service (name given, descriptor).
    pub fd_store: std::collections::BTreeMap<String, Vec<(String, std::os::fd::OwnedFd)>>,
    /// The inotify watches of path units.
    pub path_watches: paths::PathWatches,
    /// Control processes of mount and swap units (mount(8) ...), by PID.
    pub controls: HashMap<i32, (String, mounts::Control)>,
    /// Type=idle's gate (read end, write end), dropped once no job is
    /// left: see `Manager::idle_gate`.
    pub idle_gate: Option<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)>,
    /// Automount units' autofs mounts and the accesses waiting on them.
    pub automounts: automounts::Automounts,
    /// The connection to the system bus, once there is a loop to serve it.
    pub system_bus: Option<crate::system_bus::SystemBus>,
    /// The well-known names owned on the system bus (Type=dbus).
    pub bus_names: BTreeSet<String>,
    /// systemd1 clients listening for job and unit events.
    pub bus_events: crate::systemd1::events::Subscribers,
    /// When this relive started (UserspaceTimestamp).
    pub started: state::Stamp,
    /// StartupFinished went out (or is not this relive's to send).
    pub startup_announced: bool,
    /// Processes a transient scope takes in when its start job runs.
    pub scope_pids: HashMap<String, Vec<i32>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("waiters", &self.waiters.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct Manager {
    pub state: ManagerState,
    pub rt: Runtime,
    pub config: Config,
    pub unit_dirs: Vec<PathBuf>,
    loader: Loader,
}

impl Manager {
    pub fn new(
        config: Config,
        unit_dirs: Vec<PathBuf>,
        kernel: Box<dyn Kernel>,
        notify_socket_path: PathBuf,
    ) -> Manager {
        let loader = Loader::new(unit_dirs.clone());
        Manager {
            state: ManagerState::default(),
            rt: Runtime {
                kernel,
                outputs: output::Outputs::default(),
                waiters: HashMap::new(),
                notify_socket_path,
                next_job_id: 1,
                pid_waiters: HashMap::new(),
                generators_pending: None,
                generators_held: None,
                reexec_requested: false,
                scope: relive_sys::machine::Scope::Process,
                warned: BTreeSet::new(),
                output_rate: HashMap::new(),
                notify_available: true,
                execs: execs::PendingExecs::default(),
                listeners: sockets::Listeners::default(),
                idle_gate: None,
                controls: HashMap::new(),
                path_watches: paths::PathWatches::default(),
                fd_store: std::collections::BTreeMap::new(),
                automounts: automounts::Automounts::default(),
                system_bus: None,
                bus_names: BTreeSet::new(),
                bus_events: Default::default(),
                started: state::Stamp::now(),
                startup_announced: false,
                scope_pids: HashMap::new(),
            },
            config,
            unit_dirs,
            loader,
        }
    }

    /// The target to boot into: the config's, else default.target's, else
    /// multi-user.target.
    pub fn default_target(&self) -> String {
        if self.config.manager.default_target.is_empty() {
            self.loader.default_target()
        } else {
            self.config.manager.default_target.clone()
        }
    }

    /// The target this boot started (kept across a live upgrade), else
    /// the default one.
    pub fn boot_target(&self) -> String {
        if self.state.default_target.is_empty() {
            self.default_target()
        } else {
            self.state.default_target.clone()
        }
    }

    /// The canonical name for `name` (resolving aliases), loading it if new.
    pub fn load(&mut self, name: &str) -> String {
        if let Some(canonical) = self.state.aliases.get(name) {
            return canonical.clone();
        }
        if self.state.units.contains_key(name) {
            return name.to_owned();
        }
        let mut unit = UnitState::new(name);
        let loaded = match self.loader.load(name) {
            // A mount point in the kernel's table has a unit, file or not.
            Err(LoadError::NotFound { .. }) if name.ends_with(".mount") => {
                self.mount_from_kernel(name).ok_or(LoadError::NotFound {
                    name: name.to_owned(),
                })
            }
            other => other,
        };
        match loaded {
            Ok(config) => {
                let canonical = config.name.clone();
                if canonical != name {
                    self.state
                        .aliases
                        .insert(name.to_owned(), canonical.clone());
                    if self.state.units.contains_key(&canonical) {
                        return canonical;
                    }
                    unit = UnitState::new(&canonical);
                }
                for alias in &config.aliases {
                    if alias != &canonical {
                        self.state.aliases.insert(alias.clone(), canonical.clone());
                    }
                }
                for warning in &config.warnings {
                    if self.rt.warned.insert(warning.to_string()) {
                        tracing::warn!("{warning}");
                    }
                }
                if config.kind == UnitKind::Unsupported {
                    tracing::warn!("{canonical}: relive does not run this unit type; dependencies on it are ignored");
                }
                let mounts_matter =
                    config.mount.is_some() || !config.unit.requires_mounts_for.is_empty();
                unit.load = LoadState::Loaded;
                unit.config = Some(config);
                self.state.units.insert(canonical.clone(), unit);
                if mounts_matter {
                    self.add_mount_dependencies(&canonical);
                }
                return canonical;
            }
            Err(LoadError::NotFound { .. }) => unit.load = LoadState::NotFound,
            Err(LoadError::Masked { .. }) => unit.load = LoadState::Masked,
            Err(e) => {
                tracing::error!("{e}");
                unit.load = LoadState::Error;
                unit.load_error = Some(e.to_string());
            }
        }
        if unit.load_error.is_none() && unit.load == LoadState::NotFound {
            unit.load_error = Some(format!("{name}: unit file not found"));
        }
        self.state.units.insert(name.to_owned(), unit);
        name.to_owned()
    }

    /// After a re-exec whose handover could not be read: every service
    /// whose cgroup still holds processes runs on from the previous relive.
    /// It is marked active with its lowest PID as main process (the first
    /// one started), so that starting the target does not start it a
    /// second time. Returns the units adopted.
    pub fn adopt_survivors(&mut self) -> Vec<String> {
        let names = self
            .rt
            .kernel
            .cgroup_children("/system.slice")
            .unwrap_or_default();
        let mut adopted = Vec::new();
        for name in names {
            let pids = self
                .rt
                .kernel
                .cgroup_pids(&self.unit_cgroup(&name))
                .unwrap_or_default();
            let Some(main) = pids.iter().min().copied() else {
                continue;
            };
            let canonical = self.load(&name);
            let Some(u) = self.state.units.get_mut(&canonical) else {
                continue;
            };
            if !u.is_service() {
                continue;
            }
            u.main_pid = Some(main);
            u.active = state::ActiveState::Active;
            u.sub = state::SubState::Running;
            u.state_change_usec = clock::wall_usec();
            u.transitions
                .record(state::ActiveState::Inactive, state::ActiveState::Active);
            tracing::warn!(
                "{canonical}: adopted from its cgroup (main PID {main}, {} processes)",
                pids.len()
            );
            adopted.push(canonical);
        }
        adopted
    }

    /// A unit file of that name exists (loading it succeeds).
    pub(super) fn loader_has(&self, name: &str) -> bool {
        self.loader.load(name).is_ok()
    }

    /// The generators to run, if they run here: as a machine's PID 1
    /// unless `manager.generators` says otherwise.
    pub fn generators(&self) -> Option<crate::generators::Generators> {
        generators_for(&self.config, self.rt.scope)
    }

    /// Asks the loop to hand over to a fresh relive binary.
    pub fn request_reexec(&mut self) -> Result<(), ManagerError> {
        if self.state.shutdown.is_some() {
            return Err(ManagerError::Refused("the system is shutting down".into()));
        }
        if self.state.upgrading {
            // Its units are frozen or exist only as images, and the
            // upgrade's threads would be gone with this process.
            return Err(ManagerError::Refused(
                "a live upgrade is running; re-execute once it has completed or been undone".into(),
            ));
        }
        let serving = relive_restore::lazy::serving();
        if serving > 0 {
            // The page servers' threads would be gone with this process,
            // and the processes they serve would get empty pages.
            return Err(ManagerError::Refused(format!(
                "{serving} lazily restored units still have pages to be served; re-execute once they are back"
            )));
        }
        tracing::info!("re-executing relive");
        self.rt.reexec_requested = true;
        Ok(())
    }

    /// Reads the search path's directories again (a unit file was added,
    /// or the generators wrote theirs after the manager was made).
    pub fn refresh_loader(&mut self) {
        self.loader = Loader::new(self.unit_dirs.clone());
    }

    /// Re-reads every unit file. Running units keep their processes and
    /// state; their configuration is replaced.
    pub fn daemon_reload(&mut self) {
        self.refresh_loader();
        self.state.aliases.clear();
        let names: Vec<String> = self.state.units.keys().cloned().collect();
        for name in names {
            let Some(old) = self.state.units.remove(&name) else {
                continue;
            };
            let canonical = self.load(&name);
            if let Some(new) = self.state.units.get_mut(&canonical) {
                let (load, load_error, config) =
                    (new.load, new.load_error.take(), new.config.take());
                *new = UnitState {
                    load,
                    load_error,
                    config,
                    ..old
                };
            }
        }
        tracing::info!(
            "reloaded unit files from {} directories",
            self.unit_dirs.len()
        );
    }

    /// Accounts are read per spawn: a package may have added a user since boot.
    fn accounts(&self) -> Accounts {
        Accounts::read(std::path::Path::new("/etc"))
    }

    /// The unit's cgroup path relative to the cgroup2 root: below its
    /// slice (`/system.slice/ssh.service`, `/user.slice/user-0.slice`).
    pub fn unit_cgroup(&self, name: &str) -> String {
        match self.unit(name).and_then(|u| u.config.as_ref()) {
            Some(config) => config.cgroup(),
            None => relive_sys::cgroup::unit_cgroup(name),
        }
    }

    pub fn unit(&self, name: &str) -> Option<&UnitState> {
        let canonical = self
            .state
            .aliases
            .get(name)
            .map(String::as_str)
            .unwrap_or(name);
        self.state.units.get(canonical)
    }

    /// The earliest deadline of any unit, for the loop's poll timeout.
    pub fn next_deadline(&self) -> Option<Monotonic> {
        self.state
            .units
            .values()
            .flat_map(|u| [u.deadline, u.watchdog_deadline])
            .flatten()
            .min()
    }

    /// Fires every deadline that has passed.
    pub fn fire_timers(&mut self) {
        let now = clock::now();
        let starved: Vec<String> = self
            .state
            .units
            .values()
            .filter(|u| u.watchdog_deadline.is_some_and(|d| d <= now))
            .map(|u| u.name.clone())
            .collect();
        for name in starved {
            self.watchdog_expired(&name);
        }
        let due: Vec<String> = self
            .state
            .units
            .values()
            .filter(|u| u.deadline.is_some_and(|d| d <= now))
            .map(|u| u.name.clone())
            .collect();
        for name in due {
            if let Some(u) = self.state.units.get_mut(&name) {
                u.deadline = None;
            }
            match self.state.units[&name].config.as_ref().map(|c| c.kind) {
                Some(UnitKind::Timer) => self.timer_deadline(&name),
                Some(UnitKind::Device) => self.device_deadline(&name),
                Some(UnitKind::Mount | UnitKind::Swap) => self.mount_timeout(&name),
                Some(UnitKind::Scope) => self.scope_check(&name),
                _ => self.service_timeout(&name),
            }
        }
    }

    /// A child process exited (already reaped): route it to its unit.
    pub fn child_exited(&mut self, pid: i32, status: ExitStatus) {
        self.settle_exec_of(pid);
        if let Some((unit, control)) = self.rt.controls.remove(&pid) {
            self.control_done(&unit, control, status);
            return;
        }
        if let Some(waiter) = self.rt.pid_waiters.remove(&pid) {
            let _ = waiter.try_send(status);
            return;
        }
        if let Some(u) = self
            .state
            .units
            .values_mut()
            .find(|u| u.parked && (u.main_pid == Some(pid) || u.control_pid == Some(pid)))
        {
            // CRIU ended it after the checkpoint: expected, nothing to do.
            tracing::debug!(
                "{}: parked process {pid} ended, {}",
                u.name,
                status.describe()
            );
            if u.main_pid == Some(pid) {
                u.main_pid = None;
            }
            return;
        }
        let owner = self.state.units.values().find_map(|u| {
            if u.main_pid == Some(pid) {
                Some((u.name.clone(), true))
            } else if u.control_pid == Some(pid) {
                Some((u.name.clone(), false))
            } else {
                None
            }
        });
        match owner {
            Some((name, true)) => self.main_exited(&name, status),
            Some((name, false)) => self.control_exited(&name, status),
            None => {
                // Another process of a unit (or an orphan): a stopping unit
                // may now be empty.
                let stopping: Vec<String> = self
                    .state
                    .units
                    .values()
                    .filter(|u| matches!(u.sub, SubState::StopSigterm | SubState::StopSigkill))
                    .map(|u| u.name.clone())
                    .collect();
                for name in stopping {
                    self.check_stopped(&name);
                }
            }
        }
    }
}

pub use relive_sys::{signal_name, ExitStatus};

/// [`Manager::generators`] before there is a manager (at boot).
pub fn generators_for(
    config: &Config,
    scope: relive_sys::machine::Scope,
) -> Option<crate::generators::Generators> {
    let wanted = config
        .manager
        .generators
        .unwrap_or(scope == relive_sys::machine::Scope::Machine);
    wanted.then(|| crate::generators::Generators {
        dirs: config.manager.generator_dirs.clone(),
        output: config.manager.generator_output_dir.clone(),
    })
}

#[cfg(test)]
mod tests;
