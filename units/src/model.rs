//! The typed model of a loaded unit: what relive acts on.
//!
//! Everything here is plain data (serde) so that PID 1 can serialize it into
//! its handover state. Parsing fills it in (see `parse` and `load`).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Where a directive came from, for messages of the form `file:line: ...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Location {
    /// `file:line`, or just `file` when `line` is 0 (a finding about the
    /// whole file, e.g. "Service has no ExecStart= setting").
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// A non-fatal finding while loading a unit (e.g. a directive relive does not
/// implement). Displayed as `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Warning {
    pub location: Location,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnitKind {
    Service,
    Target,
    Socket,
    Timer,
    Mount,
    Swap,
    Path,
    /// A mount point that mounts its .mount unit on first access (autofs).
    Automount,
    /// A device the kernel and udev made (no unit file needed): active
    /// ("plugged") while its node or /sys path exists.
    Device,
    /// A node of the cgroup tree (`user.slice`, `user-1000.slice`).
    Slice,
    /// Processes started elsewhere, grouped in a cgroup (logind's session
    /// scopes, `systemd-run --scope`): only ever made at run time.
    Scope,
    /// A unit type relive does not run yet (.mount, .path, ...):
    /// loaded so that dependencies on it resolve, never started.
    Unsupported,
}

/// Where services go unless they say otherwise (Slice=).
pub const SYSTEM_SLICE: &str = "system.slice";

/// A fully loaded unit: fragment + drop-ins + .wants/.requires directories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    /// Canonical name, e.g. `ssh.service` or `getty@tty1.service`.
    pub name: String,
    pub kind: UnitKind,
    /// Other names this unit answers to (Alias= and alias symlinks).
    pub aliases: Vec<String>,
    /// The main unit file.
    pub fragment: PathBuf,
    /// Drop-in files applied, in the order applied.
    pub dropins: Vec<PathBuf>,
    pub unit: UnitSection,
    /// Present for services (defaults filled in), `None` for targets.
    pub service: Option<ServiceSection>,
    /// Present for sockets.
    #[serde(default)]
    pub socket: Option<crate::socket::SocketSection>,
    /// Present for timers.
    #[serde(default)]
    pub timer: Option<crate::timer::TimerSection>,
    /// Present for mounts (from a file; mounts found in the kernel's
    /// table have one too, made from it).
    #[serde(default)]
    pub mount: Option<crate::mount::MountSection>,
    /// Present for swap units.
    #[serde(default)]
    pub swap: Option<crate::mount::SwapSection>,
    #[serde(default)]
    pub automount: Option<crate::mount::AutomountSection>,
    /// Present for path units.
    #[serde(default)]
    pub path: Option<crate::path::PathSection>,
    /// Present for scopes.
    #[serde(default)]
    pub scope: Option<crate::scope::ScopeSection>,
    /// Present for slices.
    #[serde(default)]
    pub slice_section: Option<crate::scope::SliceSection>,
    /// Slice=: the slice whose cgroup this unit's is in. None: the
    /// default, system.slice for services and scopes, the parent slice
    /// for a slice ([`Unit::slice`]).
    #[serde(default)]
    pub slice: Option<String>,
    pub install: InstallSection,
    pub live_upgrade: LiveUpgrade,
    /// Unsupported directives and other non-fatal findings, one per occurrence.
    pub warnings: Vec<Warning>,
    /// Sandboxing and resource directives relive does not apply
    /// ([`crate::enforcement`]).
    #[serde(default)]
    pub unenforced: Vec<Unenforced>,
}

/// A sandboxing or resource directive of the unit relive does not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unenforced {
    /// `DeviceAllow`.
    pub directive: String,
    pub location: Location,
    /// Listed in [`crate::enforcement::BEST_EFFORT`]: the unit starts
    /// without it. Otherwise the unit does not start.
    pub best_effort: bool,
}

impl Unit {
    /// The slice this unit's cgroup is in; None for the root slice.
    pub fn slice(&self) -> Option<String> {
        if self.kind == UnitKind::Slice {
            return crate::scope::parent_slice(&self.name);
        }
        Some(
            self.slice
                .clone()
                .unwrap_or_else(|| SYSTEM_SLICE.to_string()),
        )
    }

    /// The unit's cgroup path relative to the cgroup2 root, e.g.
    /// `/system.slice/ssh.service` or `/user.slice/user-0.slice`.
    pub fn cgroup(&self) -> String {
        match self.slice() {
            _ if self.kind == UnitKind::Slice => crate::scope::slice_cgroup(&self.name),
            Some(slice) => format!("{}/{}", crate::scope::slice_cgroup(&slice), self.name),
            None => String::new(),
        }
    }

    /// A unit with no file (a device, a mount the kernel lists): its
    /// description, no dependencies of its own, restarted (not carried)
    /// by a live upgrade.
    pub fn synthetic(name: &str, kind: UnitKind, description: &str) -> Unit {
        Unit {
            name: name.to_string(),
            kind,
            aliases: Vec::new(),
            fragment: PathBuf::new(),
            dropins: Vec::new(),
            unit: UnitSection {
                description: Some(description.to_string()),
                ..UnitSection::default()
            },
            service: None,
            socket: None,
            timer: None,
            mount: None,
            swap: None,
            automount: None,
            path: None,
            scope: None,
            slice_section: None,
            slice: None,
            install: InstallSection::default(),
            live_upgrade: LiveUpgrade {
                mode: UpgradeMode::Restart,
                priority: 500,
                mode_explicit: false,
                pre_dump: false,
                pre_dump_max_rounds: None,
                rollback_on_restore_failure: false,
            },
            warnings: Vec::new(),
            unenforced: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitSection {
    pub description: Option<String>,
    pub documentation: Vec<String>,
    pub after: Vec<String>,
    pub before: Vec<String>,
    /// Requires= plus the unit's `.requires/` directories.
    pub requires: Vec<String>,
    /// Wants= plus the unit's `.wants/` directories.
    pub wants: Vec<String>,
    pub binds_to: Vec<String>,
    pub conflicts: Vec<String>,
    pub conditions: Vec<Condition>,
    /// StartLimitIntervalSec= (None: manager default; `0` disables rate
    /// limiting; `infinity` is `Duration::MAX`).
    pub start_limit_interval: Option<Duration>,
    /// StartLimitBurst= (None: manager default).
    pub start_limit_burst: Option<u32>,
    /// DefaultDependencies= (default true).
    pub default_dependencies: bool,
    /// RequiresMountsFor=: the mounts these paths need become Requires=
    /// and After= when the unit is loaded (by the manager, which knows
    /// what is mounted).
    #[serde(default)]
    pub requires_mounts_for: Vec<String>,
}

/// Every Condition*=/Assert*= kind of systemd 252 (systemd.unit(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionKind {
    PathExists,
    PathIsDirectory,
    PathExistsGlob,
    FileNotEmpty,
    DirectoryNotEmpty,
    FileIsExecutable,
    PathIsSymbolicLink,
    PathIsMountPoint,
    PathIsReadWrite,
    PathIsEncrypted,
    Architecture,
    Firmware,
    Virtualization,
    Host,
    KernelCommandLine,
    KernelVersion,
    Credential,
    Environment,
    Security,
    Capability,
    ACPower,
    NeedsUpdate,
    FirstBoot,
    User,
    Group,
    ControlGroupController,
    Memory,
    CPUs,
    CPUFeature,
    OSRelease,
    MemoryPressure,
    CPUPressure,
    IOPressure,
}

impl ConditionKind {
    /// Every kind, with the name after `Condition`/`Assert`.
    pub const ALL: &'static [(&'static str, ConditionKind)] = &[
        ("PathExists", ConditionKind::PathExists),
        ("PathIsDirectory", ConditionKind::PathIsDirectory),
        ("PathExistsGlob", ConditionKind::PathExistsGlob),
        ("FileNotEmpty", ConditionKind::FileNotEmpty),
        ("DirectoryNotEmpty", ConditionKind::DirectoryNotEmpty),
        ("FileIsExecutable", ConditionKind::FileIsExecutable),
        ("PathIsSymbolicLink", ConditionKind::PathIsSymbolicLink),
        ("PathIsMountPoint", ConditionKind::PathIsMountPoint),
        ("PathIsReadWrite", ConditionKind::PathIsReadWrite),
        ("PathIsEncrypted", ConditionKind::PathIsEncrypted),
        ("Architecture", ConditionKind::Architecture),
        ("Firmware", ConditionKind::Firmware),
        ("Virtualization", ConditionKind::Virtualization),
        ("Host", ConditionKind::Host),
        ("KernelCommandLine", ConditionKind::KernelCommandLine),
        ("KernelVersion", ConditionKind::KernelVersion),
        ("Credential", ConditionKind::Credential),
        ("Environment", ConditionKind::Environment),
        ("Security", ConditionKind::Security),
        ("Capability", ConditionKind::Capability),
        ("ACPower", ConditionKind::ACPower),
        ("NeedsUpdate", ConditionKind::NeedsUpdate),
        ("FirstBoot", ConditionKind::FirstBoot),
        ("User", ConditionKind::User),
        ("Group", ConditionKind::Group),
        (
            "ControlGroupController",
            ConditionKind::ControlGroupController,
        ),
        ("Memory", ConditionKind::Memory),
        ("CPUs", ConditionKind::CPUs),
        ("CPUFeature", ConditionKind::CPUFeature),
        ("OSRelease", ConditionKind::OSRelease),
        ("MemoryPressure", ConditionKind::MemoryPressure),
        ("CPUPressure", ConditionKind::CPUPressure),
        ("IOPressure", ConditionKind::IOPressure),
    ];

    /// The name after `Condition`/`Assert`.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// Its value is an absolute path.
    pub fn takes_path(self) -> bool {
        matches!(
            self,
            ConditionKind::PathExists
                | ConditionKind::PathIsDirectory
                | ConditionKind::PathExistsGlob
                | ConditionKind::FileNotEmpty
                | ConditionKind::DirectoryNotEmpty
                | ConditionKind::FileIsExecutable
                | ConditionKind::PathIsSymbolicLink
                | ConditionKind::PathIsMountPoint
                | ConditionKind::PathIsReadWrite
                | ConditionKind::PathIsEncrypted
                | ConditionKind::NeedsUpdate
        )
    }
}

/// `ConditionPathExists=!/x`: kind PathExists, negate true, path /x.
/// `Assert*` variants are parsed into the same type with `assert` set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub kind: ConditionKind,
    pub negate: bool,
    /// `|` prefix: triggering condition (any one of the triggering ones suffices).
    pub trigger: bool,
    pub assert: bool,
    /// What the condition tests: a path, a name, an expression.
    #[serde(alias = "path")]
    pub value: String,
    pub location: Location,
}

impl std::fmt::Display for Condition {
    /// As written: `ConditionPathExists=!/x`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}={}{}{}",
            if self.assert { "Assert" } else { "Condition" },
            self.kind.name(),
            if self.trigger { "|" } else { "" },
            if self.negate { "!" } else { "" },
            self.value
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceType {
    Simple,
    Exec,
    Forking,
    Oneshot,
    Notify,
    /// As simple, but the program runs only once the other jobs are
    /// done (at most 5 s later): a getty's prompt after the boot's messages.
    Idle,
    /// Started once BusName= has an owner on the system bus.
    Dbus,
    /// As notify; a reload is ReloadSignal= to the main process, done at
    /// its READY=1 after RELOADING=1.
    NotifyReload,
}

impl ServiceType {
    /// Types that report their readiness with READY=1.
    pub fn notifies(self) -> bool {
        matches!(self, ServiceType::Notify | ServiceType::NotifyReload)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    No,
    OnSuccess,
    OnFailure,
    OnAbnormal,
    OnAbort,
    OnWatchdog,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KillMode {
    ControlGroup,
    Process,
    Mixed,
    None,
}

/// StandardOutput= / StandardError=.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputTarget {
    /// journal, kmsg, syslog (and +console variants): to journald's
    /// stream when it runs, else captured by relive.
    Capture,
    /// kmsg, kmsg+console, journal+console: the same, with journald told
    /// to forward to the kernel log or the console.
    CaptureForward {
        kmsg: bool,
        console: bool,
    },
    /// inherit: stdout for StandardError=; for StandardOutput= the input (null → capture).
    Inherit,
    Null,
    Tty,
    /// The connection of an Accept=yes socket (or the one socket of an
    /// Accept=no one).
    Socket,
    File(PathBuf),
    Append(PathBuf),
    Truncate(PathBuf),
}

/// One Exec*= line. `argv[0]` is the path to execute (after the '@' rule:
/// with '@', argv0 is the second word). Words are not yet variable-expanded:
/// `$VAR`/`${VAR}` are expanded at spawn time by `exec::expand_argv`.
/// Specifiers (%n, %i, ...) are already resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecCommand {
    pub path: String,
    pub argv: Vec<String>,
    /// '-' prefix: a failure exit status is ignored.
    pub ignore_failure: bool,
    /// '+' / '!' prefix: run with full privileges (User= etc. not applied).
    /// '!!' does not set this: on kernels with ambient capabilities (all
    /// that relive supports) systemd applies User= for '!!' too.
    pub privileged: bool,
    /// '!' (not '+'): only User=, Group= and SupplementaryGroups= are
    /// left out; the sandbox and the bounding set still apply. False in a
    /// handover from a relive that did not know it: such a command keeps
    /// running as '+'.
    #[serde(default)]
    pub credentials_only: bool,
    /// ':' prefix: no environment variable expansion.
    pub no_env_expand: bool,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSection {
    pub service_type: ServiceType,
    pub exec_start_pre: Vec<ExecCommand>,
    pub exec_start: Vec<ExecCommand>,
    pub exec_start_post: Vec<ExecCommand>,
    pub exec_stop: Vec<ExecCommand>,
    pub exec_stop_post: Vec<ExecCommand>,
    pub exec_reload: Vec<ExecCommand>,
    pub pid_file: Option<PathBuf>,
    pub remain_after_exit: bool,
    pub restart: RestartPolicy,
    /// RestartSec= (default 100ms; `infinity` is `Duration::MAX`).
    pub restart_sec: Duration,
    /// TimeoutStartSec= / TimeoutSec=. Not set: `Default` (the manager's
    /// default), except Type=oneshot, where systemd disables it: `Infinity`.
    pub timeout_start: Timeout,
    /// TimeoutStopSec= / TimeoutSec=.
    pub timeout_stop: Timeout,
    /// Exit statuses (numbers) and signal numbers listed in RestartPreventExitStatus=.
    pub restart_prevent_exit_status: Vec<i32>,
    pub restart_prevent_signals: Vec<i32>,
    /// SuccessExitStatus= extra exit codes counted as success.
    pub success_exit_status: Vec<i32>,
    /// SuccessExitStatus= signal numbers counted as a clean exit (besides
    /// SIGHUP, SIGINT, SIGTERM and SIGPIPE, which always are).
    pub success_signals: Vec<i32>,
    pub kill_mode: KillMode,
    /// Signal number, default SIGTERM (15).
    pub kill_signal: i32,
    /// SendSIGKILL= (default true).
    pub send_sigkill: bool,
    pub user: Option<String>,
    pub group: Option<String>,
    pub supplementary_groups: Vec<String>,
    /// Default 0o022.
    pub umask: u32,
    /// LimitNOFILE= as (soft, hard); None = inherit.
    pub limit_nofile: Option<(u64, u64)>,
    /// The other Limit*=, Nice=, OOMScoreAdjust=, I/O and CPU scheduling,
    /// NoNewPrivileges=.
    #[serde(default)]
    pub process: crate::process::ProcessAttributes,
    /// StateDirectory=, CacheDirectory=, LogsDirectory=,
    /// ConfigurationDirectory= and their modes.
    #[serde(default)]
    pub directories: crate::directories::ExecDirectories,
    /// ProtectSystem=, PrivateTmp=, SystemCallFilter= and the rest of
    /// the sandbox. Default: a handover from a relive before sandboxing.
    #[serde(default)]
    pub sandbox: crate::sandbox::Sandbox,
    /// MemoryMax=, CPUWeight=, TasksMax= and the other cgroup settings.
    #[serde(default)]
    pub resources: crate::resources::Resources,
    /// LoadCredential= and SetCredential=.
    #[serde(default)]
    pub credentials: crate::credentials::Credentials,
    /// Absolute path, or `~` for the home directory of User=.
    pub working_directory: Option<PathBuf>,
    /// `-` prefix on WorkingDirectory=: missing directory is not an error.
    pub working_directory_optional: bool,
    /// Environment= assignments in order (later wins).
    pub environment: Vec<(String, String)>,
    /// EnvironmentFile= paths; bool = optional ('-' prefix).
    pub environment_files: Vec<(PathBuf, bool)>,
    /// RuntimeDirectory= names, relative to /run.
    pub runtime_directory: Vec<String>,
    /// Default 0o755.
    pub runtime_directory_mode: u32,
    /// RuntimeDirectoryPreserve=yes keeps it after stop (default no).
    pub runtime_directory_preserve: bool,
    #[serde(default)]
    pub standard_input: InputSource,
    pub standard_output: OutputTarget,
    pub standard_error: OutputTarget,
    /// AmbientCapabilities=: capability bits (1 << CAP_*) a User= service
    /// keeps, raised into its ambient set.
    #[serde(default)]
    pub ambient_capabilities: u64,
    /// CapabilityBoundingSet=: the bits left in the bounding set; None
    /// leaves it as it is.
    #[serde(default)]
    pub capability_bounding_set: Option<u64>,
    /// FileDescriptorStoreMax= (default 0: no store).
    #[serde(default)]
    pub fd_store_max: u32,
    /// FileDescriptorStorePreserve=: when the store is emptied.
    #[serde(default)]
    pub fd_store_preserve: FdStorePreserve,
    /// WatchdogSec=: the service must send WATCHDOG=1 this often.
    #[serde(default)]
    pub watchdog: Option<Duration>,
    /// WatchdogSignal= (default SIGABRT).
    #[serde(default = "sigabrt")]
    pub watchdog_signal: i32,
    /// SyslogIdentifier= (default: the program's file name).
    #[serde(default)]
    pub syslog_identifier: Option<String>,
    /// SyslogLevelPrefix= (default yes).
    #[serde(default = "yes")]
    pub syslog_level_prefix: bool,
    /// TTYPath= and its companions.
    #[serde(default)]
    pub tty: TtySettings,
    /// UtmpIdentifier=: the utmp record PID 1 writes for a getty.
    #[serde(default)]
    pub utmp_identifier: Option<String>,
    /// SendSIGHUP=: SIGHUP after the kill signal (shells, gettys).
    #[serde(default)]
    pub send_sighup: bool,
    /// UnsetEnvironment=: variables (or exact assignments) removed last.
    #[serde(default)]
    pub unset_environment: Vec<String>,
    /// GuessMainPID= (default yes): a Type=forking service without
    /// PIDFile= takes its only process as the main one.
    #[serde(default = "yes")]
    pub guess_main_pid: bool,
    /// IgnoreSIGPIPE= (default yes: SIGPIPE is for shell pipelines).
    #[serde(default = "yes")]
    pub ignore_sigpipe: bool,
    /// Sockets= : socket units whose descriptors the service gets, besides
    /// those that name it in Service= (or by their name).
    #[serde(default)]
    pub sockets: Vec<String>,
    /// NotifyAccess= (main|all|exec|none); relive accepts any process of the unit's cgroup for all/exec.
    pub notify_access: NotifyAccess,
    /// BusName=: the name a Type=dbus service takes on the system bus.
    #[serde(default)]
    pub bus_name: Option<String>,
    /// ReloadSignal= (default SIGHUP): Type=notify-reload's reload.
    #[serde(default = "sighup")]
    pub reload_signal: i32,
}

/// A start or stop timeout. systemd treats `0` like `infinity` for these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timeout {
    /// Not set: use the manager's default (DefaultTimeoutStartSec= etc.).
    Default,
    /// `infinity` or `0`: no timeout.
    Infinity,
    After(Duration),
}

impl Default for ServiceSection {
    /// systemd's defaults for a service whose unit file sets nothing.
    fn default() -> Self {
        ServiceSection {
            service_type: ServiceType::Simple,
            exec_start_pre: Vec::new(),
            exec_start: Vec::new(),
            exec_start_post: Vec::new(),
            exec_stop: Vec::new(),
            exec_stop_post: Vec::new(),
            exec_reload: Vec::new(),
            pid_file: None,
            remain_after_exit: false,
            restart: RestartPolicy::No,
            restart_sec: Duration::from_millis(100),
            timeout_start: Timeout::Default,
            timeout_stop: Timeout::Default,
            restart_prevent_exit_status: Vec::new(),
            restart_prevent_signals: Vec::new(),
            success_exit_status: Vec::new(),
            success_signals: Vec::new(),
            kill_mode: KillMode::ControlGroup,
            kill_signal: 15,
            send_sigkill: true,
            user: None,
            group: None,
            supplementary_groups: Vec::new(),
            umask: 0o022,
            limit_nofile: None,
            process: Default::default(),
            directories: Default::default(),
            sandbox: Default::default(),
            resources: Default::default(),
            credentials: Default::default(),
            working_directory: None,
            working_directory_optional: false,
            environment: Vec::new(),
            environment_files: Vec::new(),
            runtime_directory: Vec::new(),
            runtime_directory_mode: 0o755,
            runtime_directory_preserve: false,
            standard_input: InputSource::Null,
            standard_output: OutputTarget::Capture,
            standard_error: OutputTarget::Inherit,
            notify_access: NotifyAccess::None,
            ignore_sigpipe: true,
            fd_store_max: 0,
            fd_store_preserve: FdStorePreserve::Restart,
            watchdog: None,
            watchdog_signal: libc::SIGABRT,
            syslog_identifier: None,
            syslog_level_prefix: true,
            tty: TtySettings::default(),
            utmp_identifier: None,
            send_sighup: false,
            unset_environment: Vec::new(),
            guess_main_pid: true,
            ambient_capabilities: 0,
            capability_bounding_set: None,
            sockets: Vec::new(),
            bus_name: None,
            reload_signal: libc::SIGHUP,
        }
    }
}

/// StandardInput=.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputSource {
    #[default]
    Null,
    /// The socket the service was activated through (stdout and stderr
    /// default to it too).
    Socket,
    /// TTYPath= as the controlling terminal (tty: if nobody else holds
    /// it; tty-force: taken from whoever does; tty-fail: the same as tty
    /// here, failing instead of waiting).
    Tty,
    TtyForce,
    TtyFail,
}

impl InputSource {
    pub fn is_tty(self) -> bool {
        matches!(
            self,
            InputSource::Tty | InputSource::TtyForce | InputSource::TtyFail
        )
    }
}

/// TTYPath= and what to do with it before the service runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtySettings {
    /// TTYPath= (default /dev/console).
    pub path: PathBuf,
    /// TTYReset=: sane terminal settings first.
    pub reset: bool,
    /// TTYVHangup=: hang up whoever had it open.
    pub vhangup: bool,
    /// TTYVTDisallocate=: clear it (a virtual console's scrollback too).
    pub vt_disallocate: bool,
}

impl Default for TtySettings {
    fn default() -> Self {
        TtySettings {
            path: PathBuf::from("/dev/console"),
            reset: false,
            vhangup: false,
            vt_disallocate: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotifyAccess {
    None,
    Main,
    Exec,
    All,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSection {
    pub wanted_by: Vec<String>,
    pub required_by: Vec<String>,
    pub alias: Vec<String>,
    pub also: Vec<String>,
    /// The instance `systemctl enable` enables a template as.
    #[serde(default)]
    pub default_instance: Option<String>,
}

impl InstallSection {
    /// Whether `systemctl enable` has anything to do with it.
    pub fn carries_install_info(&self) -> bool {
        !self.wanted_by.is_empty()
            || !self.required_by.is_empty()
            || !self.alias.is_empty()
            || !self.also.is_empty()
            || self.default_instance.is_some()
    }
}

/// systemd.special(7): the system bus's socket and service.
pub const DBUS_SOCKET: &str = "dbus.socket";
pub const DBUS_SERVICE: &str = "dbus.service";

/// relive's own section, `[X-LiveUpgrade]`, ignored by systemd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpgradeMode {
    /// Checkpoint before the kexec, restore after it (same PIDs).
    Preserve,
    /// Stop cleanly before the kexec, start fresh after it.
    Restart,
    /// Run again early in the new kernel (oneshot setup: network, sysctl).
    Rerun,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveUpgrade {
    pub mode: UpgradeMode,
    /// 0..=1000, higher = more critical: frozen last, restored first. Default 500.
    pub priority: u16,
    /// Whether Mode= was set explicitly (else derived from the service type).
    pub mode_explicit: bool,
    /// PreDump=: whether the unit is pre-dumped in the background before
    /// the stoppage (two-phase snapshot). Default yes.
    #[serde(default = "yes")]
    pub pre_dump: bool,
    /// PreDumpMaxRounds=: this unit's cap on pre-dump rounds, below the
    /// global one (`upgrade.pre_dump_max_rounds`). Default: none.
    #[serde(default)]
    pub pre_dump_max_rounds: Option<u32>,
    /// OnRestoreFailure=rollback: when the unit cannot be restored in the
    /// new kernel, relive goes back to the previous one and restores
    /// everything there. Default: restart (started afresh).
    #[serde(default)]
    pub rollback_on_restore_failure: bool,
}

fn sighup() -> i32 {
    libc::SIGHUP
}

fn sigabrt() -> i32 {
    libc::SIGABRT
}

fn yes() -> bool {
    true
}

/// FileDescriptorStorePreserve=: when a service's stored descriptors are
/// closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FdStorePreserve {
    /// Each time the service stops, restarts included.
    No,
    /// When it stops for good (not when it restarts): systemd's default.
    #[default]
    Restart,
    /// Never while the unit is loaded: a stopped and started service
    /// (logind 254+ keeps its sessions' leaders there) gets them back.
    Yes,
}
