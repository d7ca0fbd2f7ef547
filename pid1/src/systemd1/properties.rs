//! Unit, service, socket, timer, mount and job properties with systemd
//! 252's names and D-Bus types, built from the manager's views. A value
//! relive does not track is given as systemd gives an unset one (0, "",
//! u64::MAX for "infinity"), never made up.

use crate::manager::bus_view::{JobView, ManagerView, UnitView};
use crate::manager::state::{Stamp, UnitResult};
use relive_units::load::unit_files::{Presets, UnitFileState, PRESET_DIRS};
use relive_units::{ExecCommand, RestartPolicy, ServiceType, Timeout, UnitKind};
use std::path::PathBuf;
use std::time::Duration;
use zbus::zvariant::{ObjectPath, Value};

pub const UNIT: &str = "org.freedesktop.systemd1.Unit";
pub const MANAGER: &str = "org.freedesktop.systemd1.Manager";
pub const JOB: &str = "org.freedesktop.systemd1.Job";

/// Properties by name, in systemd's order: `systemctl show` prints them
/// in the order they come, so they go out as inserted (an a{sv}).
#[derive(Debug, Default)]
pub struct Props(Vec<(&'static str, Value<'static>)>);

impl Props {
    pub fn new() -> Props {
        Props::default()
    }

    /// Sets `name`, keeping its place if it was set before.
    pub fn insert(&mut self, name: &'static str, value: Value<'static>) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value<'static>> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend(&mut self, other: Props) {
        for (name, value) in other.0 {
            self.insert(name, value);
        }
    }
}

impl serde::Serialize for Props {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl zbus::zvariant::Type for Props {
    const SIGNATURE: &'static zbus::zvariant::Signature = &zbus::zvariant::Signature::static_dict(
        &zbus::zvariant::Signature::Str,
        &zbus::zvariant::Signature::Variant,
    );
}

/// systemd's "infinity" for a number of bytes, tasks or µs.
pub(super) const INFINITY: u64 = u64::MAX;

pub(super) fn s(text: impl Into<String>) -> Value<'static> {
    Value::from(text.into())
}

fn strv(list: &[String]) -> Value<'static> {
    Value::from(list.to_vec())
}

pub fn object_path(path: String) -> ObjectPath<'static> {
    ObjectPath::try_from(path).expect("paths::* make valid object paths")
}

fn usec(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(INFINITY)
}

fn stamps(props: &mut Props, name: &'static str, mono: &'static str, at: Stamp) {
    props.insert(name, Value::from(at.wall));
    props.insert(mono, Value::from(at.mono));
}

/// The type-specific interface of a unit, by its kind.
pub fn type_interface(kind: UnitKind) -> Option<&'static str> {
    Some(match kind {
        UnitKind::Service => "org.freedesktop.systemd1.Service",
        UnitKind::Target => "org.freedesktop.systemd1.Target",
        UnitKind::Socket => "org.freedesktop.systemd1.Socket",
        UnitKind::Timer => "org.freedesktop.systemd1.Timer",
        UnitKind::Mount => "org.freedesktop.systemd1.Mount",
        UnitKind::Swap => "org.freedesktop.systemd1.Swap",
        UnitKind::Path => "org.freedesktop.systemd1.Path",
        UnitKind::Automount => "org.freedesktop.systemd1.Automount",
        UnitKind::Device => "org.freedesktop.systemd1.Device",
        UnitKind::Slice => "org.freedesktop.systemd1.Slice",
        UnitKind::Scope => "org.freedesktop.systemd1.Scope",
        UnitKind::Unsupported => return None,
    })
}

/// The kind a unit name's suffix implies, for units without a file.
pub fn kind_of_name(name: &str) -> Option<UnitKind> {
    Some(match name.rsplit_once('.')?.1 {
        "service" => UnitKind::Service,
        "target" => UnitKind::Target,
        "socket" => UnitKind::Socket,
        "timer" => UnitKind::Timer,
        "mount" => UnitKind::Mount,
        "swap" => UnitKind::Swap,
        "path" => UnitKind::Path,
        "automount" => UnitKind::Automount,
        "device" => UnitKind::Device,
        "slice" => UnitKind::Slice,
        "scope" => UnitKind::Scope,
        _ => return None,
    })
}

/// The unit file state and preset systemctl shows ("enabled; preset: enabled").
fn unit_file_state(view: &UnitView) -> (String, String) {
    let loader = relive_units::Loader::new(&view.unit_dirs);
    let name = &view.state.name;
    let Some(state) = loader.unit_file_state(name) else {
        return (String::new(), String::new());
    };
    let dirs: Vec<PathBuf> = PRESET_DIRS.iter().map(PathBuf::from).collect();
    let preset = match state {
        UnitFileState::Static | UnitFileState::Generated | UnitFileState::Transient => "",
        _ if Presets::read(&dirs).enables(name) => "enabled",
        _ => "disabled",
    };
    (state.as_str().to_owned(), preset.to_owned())
}

/// org.freedesktop.systemd1.Unit.
/// `with_file_state`: with UnitFileState and UnitFilePreset, which read the
/// unit directories and preset files (left out when a caller Gets
/// another property: `systemctl is-active`, list-timers' reads).
pub fn unit_props(view: &UnitView, with_file_state: bool) -> Props {
    let u = &view.state;
    let cfg = u.config.as_ref();
    let section = cfg.map(|c| &c.unit);
    let list = |f: fn(&relive_units::UnitSection) -> &Vec<String>| {
        section.map(|s| strv(f(s))).unwrap_or_else(|| strv(&[]))
    };
    let (file_state, preset) = if with_file_state {
        unit_file_state(view)
    } else {
        Default::default()
    };
    let mut p = Props::new();
    p.insert("Id", s(&u.name));
    p.insert("Names", strv(&view.names));
    p.insert("Following", s(""));
    p.insert("Requires", list(|s| &s.requires));
    p.insert("Wants", list(|s| &s.wants));
    p.insert("BindsTo", list(|s| &s.binds_to));
    p.insert("RequiredBy", strv(&view.required_by));
    p.insert("WantedBy", strv(&view.wanted_by));
    p.insert("BoundBy", strv(&view.bound_by));
    p.insert("Conflicts", list(|s| &s.conflicts));
    p.insert("ConflictedBy", strv(&view.conflicted_by));
    let mut before = section.map(|s| s.before.clone()).unwrap_or_default();
    before.extend(view.after_me.iter().cloned());
    let mut after = section.map(|s| s.after.clone()).unwrap_or_default();
    after.extend(view.before_me.iter().cloned());
    p.insert("Before", strv(&before));
    p.insert("After", strv(&after));
    p.insert("Triggers", strv(&view.triggers));
    p.insert("TriggeredBy", strv(&view.triggered_by));
    p.insert("RequiresMountsFor", list(|s| &s.requires_mounts_for));
    p.insert("Documentation", list(|s| &s.documentation));
    p.insert(
        "Description",
        s(section
            .and_then(|s| s.description.clone())
            .unwrap_or_else(|| u.name.clone())),
    );
    p.insert("LoadState", s(u.load.as_str()));
    p.insert("ActiveState", s(u.active.as_str()));
    p.insert("FreezerState", s("running"));
    p.insert("SubState", s(u.sub.as_str()));
    let fragment = cfg
        .map(|c| c.fragment.display().to_string())
        .filter(|f| !f.is_empty() && f != "/dev/null")
        .unwrap_or_default();
    p.insert("FragmentPath", s(fragment));
    p.insert("SourcePath", s(""));
    let dropins: Vec<String> = cfg
        .map(|c| c.dropins.iter().map(|d| d.display().to_string()).collect())
        .unwrap_or_default();
    p.insert("DropInPaths", strv(&dropins));
    if with_file_state {
        p.insert("UnitFileState", s(file_state));
        p.insert("UnitFilePreset", s(preset));
    }
    stamps(
        &mut p,
        "StateChangeTimestamp",
        "StateChangeTimestampMonotonic",
        Stamp {
            wall: u.state_change_usec,
            mono: 0,
        },
    );
    let t = u.transitions;
    stamps(
        &mut p,
        "InactiveExitTimestamp",
        "InactiveExitTimestampMonotonic",
        t.inactive_exit,
    );
    stamps(
        &mut p,
        "ActiveEnterTimestamp",
        "ActiveEnterTimestampMonotonic",
        t.active_enter,
    );
    stamps(
        &mut p,
        "ActiveExitTimestamp",
        "ActiveExitTimestampMonotonic",
        t.active_exit,
    );
    stamps(
        &mut p,
        "InactiveEnterTimestamp",
        "InactiveEnterTimestampMonotonic",
        t.inactive_enter,
    );
    let startable = cfg.is_some_and(|c| c.kind != UnitKind::Unsupported);
    p.insert("CanStart", Value::from(startable));
    p.insert("CanStop", Value::from(startable));
    let reloadable = cfg
        .and_then(|c| c.service.as_ref())
        .is_some_and(|s| !s.exec_reload.is_empty() || s.service_type == ServiceType::NotifyReload);
    p.insert("CanReload", Value::from(reloadable));
    p.insert("CanIsolate", Value::from(false));
    p.insert("CanFreeze", Value::from(false));
    let job = u
        .job
        .as_ref()
        .map(|j| (j.id as u32, super::paths::job_path(j.id)))
        .unwrap_or((0, "/".into()));
    p.insert("Job", Value::from((job.0, object_path(job.1))));
    p.insert(
        "DefaultDependencies",
        Value::from(section.is_none_or(|s| s.default_dependencies)),
    );
    p.insert("NeedDaemonReload", Value::from(false));
    let transient = cfg.is_some_and(|c| {
        c.fragment
            .parent()
            .is_some_and(|d| d.ends_with("transient"))
    });
    p.insert("Transient", Value::from(transient));
    let perpetual = u.name == relive_units::scope::ROOT_SLICE;
    p.insert("Perpetual", Value::from(perpetual));
    let condition_ok =
        u.result != UnitResult::Success || u.sub != crate::manager::state::SubState::Condition;
    p.insert("ConditionResult", Value::from(condition_ok));
    p.insert("AssertResult", Value::from(u.result != UnitResult::Assert));
    p.insert("ConditionTimestamp", Value::from(0u64));
    p.insert("AssertTimestamp", Value::from(0u64));
    let conditions: Vec<(String, bool, bool, String, i32)> = section
        .map(|s| {
            s.conditions
                .iter()
                .filter(|c| !c.assert)
                .map(|c| {
                    (
                        c.kind.name().to_owned(),
                        c.trigger,
                        c.negate,
                        c.value.clone(),
                        0,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    p.insert("Conditions", Value::from(conditions));
    let load_error = match &u.load_error {
        Some(e) if u.load != crate::manager::state::LoadState::Loaded => (
            if u.load == crate::manager::state::LoadState::NotFound {
                "org.freedesktop.systemd1.NoSuchUnit"
            } else {
                "org.freedesktop.systemd1.LoadFailed"
            }
            .to_owned(),
            e.clone(),
        ),
        _ => (String::new(), String::new()),
    };
    p.insert("LoadError", Value::from(load_error));
    let limit = section.and_then(|s| s.start_limit_interval);
    p.insert(
        "StartLimitIntervalUSec",
        Value::from(limit.map_or(10_000_000, usec)),
    );
    p.insert(
        "StartLimitBurst",
        Value::from(section.and_then(|s| s.start_limit_burst).unwrap_or(5)),
    );
    let invocation = u.invocation_id.map(|id| id.to_vec()).unwrap_or_default();
    p.insert("InvocationID", Value::from(invocation));
    p
}

/// The type-specific properties (Service, Socket, Timer, ...).
pub fn type_props(view: &UnitView) -> Props {
    let u = &view.state;
    let mut p = Props::new();
    let Some(cfg) = u.config.as_ref() else {
        return p;
    };
    let result = match u.result {
        UnitResult::Resources(_) => "resources".to_owned(),
        ref r => r.as_str().to_owned(),
    };
    if let Some(svc) = &cfg.service {
        service_props(&mut p, view, svc, &result);
    }
    if let Some(socket) = &cfg.socket {
        let listen: Vec<(String, String)> = socket
            .listen
            .iter()
            .map(|l| (l.listen.kind_name().to_owned(), l.listen.describe()))
            .collect();
        p.insert("Listen", Value::from(listen));
        p.insert("Accept", Value::from(socket.accept));
        p.insert("NAccepted", Value::from(0u32));
        p.insert("NConnections", Value::from(0u32));
        p.insert("NRefused", Value::from(0u32));
        p.insert("Result", s(result.clone()));
    }
    if let Some(timer) = &cfg.timer {
        let state = u.timer.clone().unwrap_or_default();
        let armed = u.active == crate::manager::state::ActiveState::Active;
        let monotonic: Vec<(String, u64, u64)> = timer
            .monotonic
            .iter()
            .map(|(base, d)| (base.key().to_owned(), usec(*d), 0))
            .collect();
        let calendar: Vec<(String, String, u64)> = timer
            .calendar
            .iter()
            .map(|c| ("OnCalendar".to_owned(), c.text.clone(), 0))
            .collect();
        p.insert("TimersMonotonic", Value::from(monotonic));
        p.insert("TimersCalendar", Value::from(calendar));
        p.insert(
            "NextElapseUSecRealtime",
            Value::from(state.next_elapse_usec.filter(|_| armed).unwrap_or(0)),
        );
        p.insert("NextElapseUSecMonotonic", Value::from(0u64));
        p.insert(
            "LastTriggerUSec",
            Value::from(state.last_trigger_usec.unwrap_or(0)),
        );
        p.insert(
            "LastTriggerUSecMonotonic",
            Value::from(state.last_trigger_mono.map_or(0, |m| m / 1000)),
        );
        p.insert(
            "Unit",
            s(view.triggers.first().cloned().unwrap_or_default()),
        );
        p.insert("Persistent", Value::from(timer.persistent));
        p.insert("AccuracyUSec", Value::from(usec(timer.accuracy)));
        p.insert(
            "RandomizedDelayUSec",
            Value::from(usec(timer.randomized_delay)),
        );
        p.insert("RemainAfterElapse", Value::from(timer.remain_after_elapse));
        p.insert("Result", s(result.clone()));
    }
    if let Some(mount) = &cfg.mount {
        p.insert("Where", s(mount.where_.display().to_string()));
        p.insert("What", s(&mount.what));
        p.insert("Options", s(mount.options.clone().unwrap_or_default()));
        p.insert("Type", s(mount.fs_type.clone().unwrap_or_default()));
        p.insert("Result", s(result.clone()));
    }
    if let Some(scope) = &cfg.scope {
        super::cgroup_props::scope_props(&mut p, view, scope, &result);
    }
    if let Some(slice) = &cfg.slice_section {
        let active = u.active == crate::manager::state::ActiveState::Active;
        super::cgroup_props::cgroup_props(&mut p, view, active, &slice.resources);
    }
    if let Some(path) = &cfg.path {
        p.insert("Unit", s(path.unit.clone().unwrap_or_default()));
        p.insert("Result", s(result));
    }
    p
}

fn restart_name(r: RestartPolicy) -> &'static str {
    match r {
        RestartPolicy::No => "no",
        RestartPolicy::OnSuccess => "on-success",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::OnAbnormal => "on-abnormal",
        RestartPolicy::OnAbort => "on-abort",
        RestartPolicy::OnWatchdog => "on-watchdog",
        RestartPolicy::Always => "always",
    }
}

fn type_name(t: ServiceType) -> &'static str {
    match t {
        ServiceType::Simple => "simple",
        ServiceType::Exec => "exec",
        ServiceType::Forking => "forking",
        ServiceType::Oneshot => "oneshot",
        ServiceType::Notify => "notify",
        ServiceType::Idle => "idle",
        ServiceType::Dbus => "dbus",
        ServiceType::NotifyReload => "notify-reload",
    }
}

/// systemd's default start and stop timeout (DefaultTimeoutStartSec=).
const DEFAULT_TIMEOUT: u64 = 90_000_000;

pub(super) fn timeout(t: &Timeout) -> u64 {
    match t {
        Timeout::Default => DEFAULT_TIMEOUT,
        Timeout::Infinity => INFINITY,
        Timeout::After(d) => usec(*d),
    }
}

/// One Exec*= command: path, argv, ignore failure, start and exit times
/// (realtime, monotonic), PID, exit code and status.
type ExecRow = (String, Vec<String>, bool, u64, u64, u64, u64, u32, i32, i32);

/// An Exec*= list as a(sasbttttuii): path, argv, ignore failure, then
/// the last run's times, PID and exit (zero: relive does not keep them
/// per command).
fn commands(list: &[ExecCommand]) -> Value<'static> {
    let rows: Vec<ExecRow> = list
        .iter()
        .map(|c| {
            (
                c.path.clone(),
                c.argv.clone(),
                c.ignore_failure,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            )
        })
        .collect();
    Value::from(rows)
}

fn service_props(p: &mut Props, view: &UnitView, svc: &relive_units::ServiceSection, result: &str) {
    let u = &view.state;
    // In the order of systemd's vtables: the service, its cgroup, its
    // execution context.
    p.insert("Type", s(type_name(svc.service_type)));
    p.insert("Restart", s(restart_name(svc.restart)));
    let pid_file = svc.pid_file.as_ref().map(|f| f.display().to_string());
    p.insert("PIDFile", s(pid_file.unwrap_or_default()));
    p.insert("RestartUSec", Value::from(usec(svc.restart_sec)));
    p.insert("TimeoutStartUSec", Value::from(timeout(&svc.timeout_start)));
    p.insert("TimeoutStopUSec", Value::from(timeout(&svc.timeout_stop)));
    p.insert("WatchdogUSec", Value::from(svc.watchdog.map_or(0, usec)));
    p.insert("RemainAfterExit", Value::from(svc.remain_after_exit));
    p.insert("MainPID", Value::from(u.main_pid.unwrap_or(0) as u32));
    p.insert("ControlPID", Value::from(u.control_pid.unwrap_or(0) as u32));
    p.insert("FileDescriptorStoreMax", Value::from(svc.fd_store_max));
    p.insert("StatusText", s(u.status_text.clone().unwrap_or_default()));
    p.insert("StatusErrno", Value::from(0i32));
    p.insert("Result", s(result));
    p.insert("NRestarts", Value::from(u.restarts));
    stamps(
        p,
        "ExecMainStartTimestamp",
        "ExecMainStartTimestampMonotonic",
        u.transitions.inactive_exit,
    );
    p.insert("ExecMainPID", Value::from(u.main_pid.unwrap_or(0) as u32));
    let (code, status) = match u.result {
        UnitResult::ExitCode(n) => (libc::CLD_EXITED, n),
        UnitResult::Signal(n) => (libc::CLD_KILLED, n),
        _ => (0, 0),
    };
    p.insert("ExecMainCode", Value::from(code));
    p.insert("ExecMainStatus", Value::from(status));
    p.insert("ExecStartPre", commands(&svc.exec_start_pre));
    p.insert("ExecStart", commands(&svc.exec_start));
    p.insert("ExecStartPost", commands(&svc.exec_start_post));
    p.insert("ExecReload", commands(&svc.exec_reload));
    p.insert("ExecStop", commands(&svc.exec_stop));
    p.insert("ExecStopPost", commands(&svc.exec_stop_post));
    let running = u.main_pid.is_some() || u.control_pid.is_some();
    super::cgroup_props::cgroup_props(p, view, running, &svc.resources);
    let env: Vec<String> = svc
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    p.insert("Environment", strv(&env));
    p.insert("UMask", Value::from(svc.umask));
    let directory = svc
        .working_directory
        .as_ref()
        .map(|d| d.display().to_string());
    p.insert("WorkingDirectory", s(directory.unwrap_or_default()));
    p.insert("User", s(svc.user.clone().unwrap_or_default()));
    p.insert("Group", s(svc.group.clone().unwrap_or_default()));
}

/// org.freedesktop.systemd1.Job.
pub fn job_props(job: &JobView) -> Props {
    let mut p = Props::new();
    p.insert("Id", Value::from(job.id as u32));
    p.insert(
        "Unit",
        Value::from((
            job.unit.clone(),
            object_path(super::paths::unit_path(&job.unit)),
        )),
    );
    p.insert("JobType", s(job.type_name()));
    p.insert("State", s(job.state_name()));
    p
}

/// org.freedesktop.systemd1.Manager.
pub fn manager_props(m: &ManagerView) -> Props {
    let mut p = Props::new();
    p.insert("Version", s(format!("relive {}", relive_api::VERSION)));
    p.insert("Features", s(""));
    p.insert("Architecture", s(std::env::consts::ARCH.replace('_', "-")));
    p.insert("Virtualization", s(""));
    p.insert("Tainted", s(""));
    stamps(
        &mut p,
        "UserspaceTimestamp",
        "UserspaceTimestampMonotonic",
        m.userspace,
    );
    stamps(
        &mut p,
        "FinishTimestamp",
        "FinishTimestampMonotonic",
        m.finish,
    );
    p.insert("NNames", Value::from(m.n_names));
    p.insert("NFailedUnits", Value::from(m.n_failed_units));
    p.insert("NJobs", Value::from(m.n_jobs));
    p.insert("NInstalledJobs", Value::from(m.n_jobs));
    p.insert("NFailedJobs", Value::from(0u32));
    p.insert(
        "Progress",
        Value::from(if m.system_state == "starting" {
            0.5
        } else {
            1.0
        }),
    );
    p.insert("SystemState", s(m.system_state));
    let dirs: Vec<String> = m
        .unit_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    p.insert("UnitPath", strv(&dirs));
    p.insert("Environment", strv(&[]));
    p.insert("ShowStatus", Value::from(true));
    p.insert("ConfirmSpawn", Value::from(false));
    p.insert("ServiceWatchdogs", Value::from(true));
    p.insert("DefaultStandardOutput", s("journal"));
    p.insert("DefaultStandardError", s("inherit"));
    p.insert("DefaultTimeoutStartUSec", Value::from(DEFAULT_TIMEOUT));
    p.insert("DefaultTimeoutStopUSec", Value::from(DEFAULT_TIMEOUT));
    p.insert("ControlGroup", s(""));
    p.insert("ExitCode", Value::from(0u8));
    p
}
