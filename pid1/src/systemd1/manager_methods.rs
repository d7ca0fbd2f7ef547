//! org.freedesktop.systemd1.Manager's methods, and the Unit and Job
//! objects' own.

use super::dispatch::{no_such_job, BusError, Call};
use super::events::BusEvent;
use super::paths::{job_path, unit_path};
use super::properties::object_path;
use crate::manager::bus_ops::KillWhom;
use crate::manager::state::{JobKind, LoadState, UnitState};
use crate::manager::ManagerError;
use relive_sys::machine::ShutdownKind;
use zbus::zvariant::ObjectPath;

/// One row of ListUnits: name, description, load, active and sub state,
/// followed unit, unit path, job id, job type, job path.
type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    ObjectPath<'static>,
    u32,
    String,
    ObjectPath<'static>,
);

/// One row of ListJobs: id, unit, type, state, job path, unit path.
type JobRow = (
    u32,
    String,
    String,
    String,
    ObjectPath<'static>,
    ObjectPath<'static>,
);

/// A systemctl request on a unit, before it is a relive job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Start,
    Stop,
    Reload,
    Restart,
    TryRestart,
    ReloadOrRestart,
    ReloadOrTryRestart,
}

impl Verb {
    fn of_method(member: &str) -> Option<Verb> {
        Some(match member.strip_suffix("Unit").unwrap_or(member) {
            "Start" => Verb::Start,
            "Stop" => Verb::Stop,
            "Reload" => Verb::Reload,
            "Restart" => Verb::Restart,
            "TryRestart" => Verb::TryRestart,
            "ReloadOrRestart" => Verb::ReloadOrRestart,
            "ReloadOrTryRestart" => Verb::ReloadOrTryRestart,
            _ => return None,
        })
    }

    /// The job it becomes for a unit in state `u`; None for nothing to
    /// do (a try-restart of a stopped unit).
    fn job(self, u: &UnitState) -> Option<JobKind> {
        let up = u.is_up();
        let reloadable = u
            .config
            .as_ref()
            .and_then(|c| c.service.as_ref())
            .is_some_and(|s| {
                !s.exec_reload.is_empty()
                    || s.service_type == relive_units::ServiceType::NotifyReload
            });
        match self {
            Verb::Start => Some(JobKind::Start),
            Verb::Stop => Some(JobKind::Stop),
            Verb::Reload => Some(JobKind::Reload),
            Verb::Restart => Some(JobKind::Restart),
            Verb::TryRestart => up.then_some(JobKind::Restart),
            Verb::ReloadOrRestart if up && reloadable => Some(JobKind::Reload),
            Verb::ReloadOrRestart => Some(JobKind::Restart),
            Verb::ReloadOrTryRestart if up && reloadable => Some(JobKind::Reload),
            Verb::ReloadOrTryRestart => up.then_some(JobKind::Restart),
        }
    }
}

/// The job modes relive honours: every mode but isolate queues the job
/// as relive always does (replacing a conflicting job).
pub(super) fn check_mode(mode: &str) -> Result<(), BusError> {
    match mode {
        "replace"
        | "fail"
        | "replace-irreversibly"
        | "ignore-dependencies"
        | "ignore-requirements"
        | "flush"
        | "" => Ok(()),
        "isolate" => Err(BusError::new(
            "org.freedesktop.DBus.Error.NotSupported",
            "relive does not isolate targets yet",
        )),
        other => Err(BusError::invalid_args(format!("Job mode {other} invalid."))),
    }
}

/// Queues `verb` on `name`; the job's path.
fn enqueue(call: &Call<'_>, name: String, verb: Verb, mode: &str) -> Result<(), BusError> {
    call.require_root(&format!("{verb:?} of {name}"))?;
    check_mode(mode)?;
    let id = call.on_manager(move |m| -> Result<u64, ManagerError> {
        if let Some(kind) = shutdown_target(&name).filter(|_| verb == Verb::Start) {
            // systemctl poweroff/reboot/halt start these targets when
            // logind does not answer: relive's shutdown is the same.
            m.begin_shutdown(kind)?;
            return Ok(m.job_with_nothing_to_do(&name));
        }
        let canonical = m.load(&name);
        let u = &m.state.units[&canonical];
        if u.load != LoadState::Loaded && verb != Verb::Stop {
            return Err(ManagerError::NoSuchUnit {
                reason: match u.load {
                    LoadState::Masked => "masked".into(),
                    _ => u.load_error.clone().unwrap_or_default(),
                },
                name: canonical,
            });
        }
        let kind = verb.job(u);
        let starts = matches!(kind, Some(JobKind::Start | JobKind::Restart));
        if let Some(refused) = m.refused_directive(&canonical).filter(|_| starts) {
            return Err(ManagerError::BadSetting(format!(
                "Unit {canonical} has a bad unit file setting: {refused}"
            )));
        }
        match kind {
            Some(kind) => m.enqueue_for_bus(&canonical, kind),
            None => Ok(m.job_with_nothing_to_do(&canonical)),
        }
    })?;
    let id = id.map_err(unit_error)?;
    call.reply(&object_path(job_path(id)))
}

/// The shutdown a special target means (systemd.special(7)).
fn shutdown_target(name: &str) -> Option<ShutdownKind> {
    match name {
        "poweroff.target" => Some(ShutdownKind::PowerOff),
        "reboot.target" | "ctrl-alt-del.target" => Some(ShutdownKind::Reboot),
        "halt.target" => Some(ShutdownKind::Halt),
        _ => None,
    }
}

/// systemd's wording for the errors systemctl shows.
pub(super) fn unit_error(e: ManagerError) -> BusError {
    match e {
        ManagerError::NoSuchUnit { name, reason } if reason == "masked" => BusError::new(
            "org.freedesktop.systemd1.UnitMasked",
            format!("Unit {name} is masked."),
        ),
        ManagerError::NoSuchUnit { name, .. } => BusError::new(
            "org.freedesktop.systemd1.NoSuchUnit",
            format!("Unit {name} not found."),
        ),
        other => other.into(),
    }
}

fn row(u: &UnitState) -> UnitRow {
    let description = u
        .config
        .as_ref()
        .and_then(|c| c.unit.description.clone())
        .unwrap_or_else(|| u.name.clone());
    let (job_id, job_type, job) = match &u.job {
        Some(j) => (
            j.id as u32,
            match j.kind {
                JobKind::Start => "start",
                JobKind::Stop => "stop",
                JobKind::Restart => "restart",
                JobKind::Reload => "reload",
            },
            job_path(j.id),
        ),
        None => (0, "", "/".to_owned()),
    };
    (
        u.name.clone(),
        description,
        u.load.as_str().to_owned(),
        u.active.as_str().to_owned(),
        u.sub.as_str().to_owned(),
        String::new(),
        object_path(unit_path(&u.name)),
        job_id,
        job_type.to_owned(),
        object_path(job),
    )
}

/// Shell-style matching as systemd's fnmatch() for unit patterns.
fn matches(patterns: &[String], name: &str) -> bool {
    patterns.is_empty()
        || patterns
            .iter()
            .any(|p| glob::Pattern::new(p).is_ok_and(|p| p.matches(name)))
}

/// ListUnits and its filtered forms: units in memory that match.
fn list_units(call: &Call<'_>, states: Vec<String>, patterns: Vec<String>) -> Result<(), BusError> {
    let rows = call.on_manager(move |m| {
        m.state
            .units
            .values()
            .filter(|u| {
                states.is_empty()
                    || states.iter().any(|s| {
                        s == u.load.as_str() || s == u.active.as_str() || s == u.sub.as_str()
                    })
            })
            .filter(|u| matches(&patterns, &u.name))
            .map(row)
            .collect::<Vec<UnitRow>>()
    })?;
    call.reply(&rows)
}

fn shutdown(call: &Call<'_>, kind: ShutdownKind) -> Result<(), BusError> {
    call.require_root(kind.verb())?;
    call.on_manager(move |m| m.begin_shutdown(kind))??;
    call.reply(&())
}

/// A Manager method.
pub fn call(call: &Call<'_>, member: &str) -> Result<(), BusError> {
    if let Some(verb) = Verb::of_method(member).filter(|_| member.ends_with("Unit")) {
        let (name, mode): (String, String) = call.args()?;
        return enqueue(call, name, verb, &mode);
    }
    match member {
        "StartTransientUnit" => super::transient::start_transient_unit(call),
        "AbandonScope" => {
            let name: String = call.args()?;
            abandon_scope(call, name)
        }
        "GetUnit" => {
            let name: String = call.args()?;
            let found = call.on_manager(move |m| {
                let canonical = m.state.aliases.get(&name).cloned().unwrap_or(name.clone());
                m.state
                    .units
                    .get(&canonical)
                    .filter(|u| u.load != LoadState::NotFound)
                    .map(|u| u.name.clone())
                    .ok_or(name)
            })?;
            match found {
                Ok(name) => call.reply(&object_path(unit_path(&name))),
                Err(name) => Err(BusError::new(
                    "org.freedesktop.systemd1.NoSuchUnit",
                    format!("Unit {name} not loaded."),
                )),
            }
        }
        "LoadUnit" => {
            // For others than root, GetUnit's answer: only root makes
            // relive load (and keep) a unit.
            let name: String = call.args()?;
            let load = call.caller.uid == 0;
            let canonical = call.on_manager(move |m| m.unit_view(&name, load).state.name)?;
            call.reply(&object_path(unit_path(&canonical)))
        }
        "GetUnitByPID" => {
            let pid: u32 = call.args()?;
            // 0 is the caller.
            let pid = if pid == 0 { call.caller.pid.unwrap_or(0) } else { pid };
            match relive_sys::cgroup::unit_of_pid(pid as i32) {
                Some(u) => call.reply(&object_path(unit_path(&u))),
                None => Err(BusError::new(
                    "org.freedesktop.systemd1.NoUnitForPID",
                    format!("PID {pid} does not belong to any loaded unit."),
                )),
            }
        }
        "ListUnits" => list_units(call, Vec::new(), Vec::new()),
        "ListUnitsFiltered" => {
            let states: Vec<String> = call.args()?;
            list_units(call, states, Vec::new())
        }
        "ListUnitsByPatterns" => {
            let (states, patterns): (Vec<String>, Vec<String>) = call.args()?;
            list_units(call, states, patterns)
        }
        "ListUnitsByNames" => {
            let names: Vec<String> = call.args()?;
            let load = call.caller.uid == 0;
            let rows = call.on_manager(move |m| {
                names
                    .iter()
                    .map(|n| row(&m.unit_view(n, load).state))
                    .collect::<Vec<UnitRow>>()
            })?;
            call.reply(&rows)
        }
        "ListJobs" => {
            let jobs = call.on_manager(|m| m.job_views())?;
            let rows: Vec<JobRow> = jobs
                .iter()
                .map(|j| {
                    (
                        j.id as u32,
                        j.unit.clone(),
                        j.type_name().to_owned(),
                        j.state_name().to_owned(),
                        object_path(job_path(j.id)),
                        object_path(unit_path(&j.unit)),
                    )
                })
                .collect();
            call.reply(&rows)
        }
        "GetJob" => {
            let id: u32 = call.args()?;
            let exists =
                call.on_manager(move |m| m.job_views().iter().any(|j| j.id == u64::from(id)))?;
            if !exists {
                return Err(no_such_job(id.into()));
            }
            call.reply(&object_path(job_path(id.into())))
        }
        "CancelJob" => {
            let id: u32 = call.args()?;
            cancel_job(call, id.into())
        }
        "ClearJobs" => {
            call.require_root("ClearJobs")?;
            call.on_manager(|m| {
                for job in m.job_views() {
                    let _ = m.cancel_job(job.id);
                }
            })?;
            call.reply(&())
        }
        "KillUnit" => {
            let (name, whom, signal): (String, String, i32) = call.args()?;
            kill(call, name, &whom, signal)
        }
        "ResetFailedUnit" => {
            let name: String = call.args()?;
            reset_failed(call, name)
        }
        "ResetFailed" => {
            call.require_root("ResetFailed")?;
            call.on_manager(|m| m.reset_failed(None))??;
            call.reply(&())
        }
        "Subscribe" | "Unsubscribe" => call.reply(&()),
        m if super::unit_file_methods::METHODS.contains(&m) => {
            super::unit_file_methods::call(call, member)
        }
        "GetDefaultTarget" => {
            // Read afresh: set-default may have changed the link since
            // the last daemon-reload. relive.toml's choice comes first.
            let (configured, dirs) = call.on_manager(|m| {
                (m.config.manager.default_target.clone(), m.unit_dirs.clone())
            })?;
            let target = if configured.is_empty() {
                relive_units::Loader::new(&dirs).default_target()
            } else {
                configured
            };
            call.reply(&target)
        }
        "GetUnitFileState" => {
            let name: String = call.args()?;
            let dirs = call.on_manager(|m| m.unit_dirs.clone())?;
            let state = relive_units::Loader::new(&dirs)
                .unit_file_state(&name)
                .ok_or_else(|| {
                    BusError::new(
                        "org.freedesktop.DBus.Error.FileNotFound",
                        format!("Unit file {name} does not exist."),
                    )
                })?;
            call.reply(&state.as_str())
        }
        "ListUnitFiles" => list_unit_files(call, Vec::new(), Vec::new()),
        "ListUnitFilesByPatterns" => {
            let (states, patterns): (Vec<String>, Vec<String>) = call.args()?;
            list_unit_files(call, states, patterns)
        }
        "GetUnitProcesses" => {
            let name: String = call.args()?;
            unit_processes(call, name)
        }
        "Reload" => {
            call.require_root("Reload")?;
            daemon_reload(call)?;
            call.reply(&())
        }
        "Reexecute" => {
            call.require_root("Reexecute")?;
            call.on_manager(|m| m.request_reexec())??;
            call.reply(&())
        }
        "PowerOff" => shutdown(call, ShutdownKind::PowerOff),
        "Reboot" => shutdown(call, ShutdownKind::Reboot),
        "Halt" => shutdown(call, ShutdownKind::Halt),
        "KExec" => Err(BusError::new(
            "org.freedesktop.DBus.Error.NotSupported",
            "a plain kexec reboot is not offered: use relive's LiveUpgrade (relivectl live-upgrade) to change kernels",
        )),
        _ => Err(BusError::unknown_method(super::properties::MANAGER, member)),
    }
}

/// A method of a unit object (org.freedesktop.systemd1.Unit).
pub fn unit_call(call: &Call<'_>, name: &str, member: &str) -> Result<(), BusError> {
    if let Some(verb) = Verb::of_method(member) {
        let mode: String = call.args()?;
        return enqueue(call, name.to_owned(), verb, &mode);
    }
    match member {
        "Kill" => {
            let (whom, signal): (String, i32) = call.args()?;
            kill(call, name.to_owned(), &whom, signal)
        }
        "ResetFailed" => reset_failed(call, name.to_owned()),
        // org.freedesktop.systemd1.Scope's.
        "Abandon" => abandon_scope(call, name.to_owned()),
        _ => Err(BusError::unknown_method(super::properties::UNIT, member)),
    }
}

fn abandon_scope(call: &Call<'_>, name: String) -> Result<(), BusError> {
    call.require_root("AbandonScope")?;
    call.on_manager(move |m| m.abandon_scope(&name))?
        .map_err(|e| match e {
            ManagerError::Refused(message) => {
                BusError::new("org.freedesktop.systemd1.ScopeNotRunning", message)
            }
            other => unit_error(other),
        })?;
    call.reply(&())
}

fn reset_failed(call: &Call<'_>, name: String) -> Result<(), BusError> {
    call.require_root("ResetFailed")?;
    call.on_manager(move |m| m.reset_failed(Some(&name)))?
        .map_err(unit_error)?;
    call.reply(&())
}

pub fn cancel_job(call: &Call<'_>, id: u64) -> Result<(), BusError> {
    call.require_root("CancelJob")?;
    call.on_manager(move |m| m.cancel_job(id))?
        .map_err(|_| no_such_job(id))?;
    call.reply(&())
}

fn kill(call: &Call<'_>, name: String, whom: &str, signal: i32) -> Result<(), BusError> {
    call.require_root("KillUnit")?;
    let whom = KillWhom::parse(whom)
        .ok_or_else(|| BusError::invalid_args(format!("Invalid who argument {whom}")))?;
    if !(1..=64).contains(&signal) {
        return Err(BusError::invalid_args(format!(
            "Signal number out of range: {signal}"
        )));
    }
    call.on_manager(move |m| m.kill_unit(&name, whom, signal))?
        .map_err(|e| BusError::new("org.freedesktop.systemd1.NoSuchProcess", e.to_string()))?;
    call.reply(&())
}

/// daemon-reload: generators (off the loop), then the unit files, with
/// the Reloading signal around it as systemd sends it.
fn daemon_reload(call: &Call<'_>) -> Result<(), BusError> {
    call.on_manager(|m| m.rt.bus_events.publish(BusEvent::Reloading(true)))?;
    if let Some(generators) = call.on_manager(|m| m.generators())? {
        generators.run(&mut crate::generators::LoopSpawner::new(
            call.commands.clone(),
        ));
    }
    call.on_manager(|m| {
        m.daemon_reload();
        m.rt.bus_events.publish(BusEvent::Reloading(false));
    })?;
    Ok(())
}

fn list_unit_files(
    call: &Call<'_>,
    states: Vec<String>,
    patterns: Vec<String>,
) -> Result<(), BusError> {
    let dirs = call.on_manager(|m| m.unit_dirs.clone())?;
    let rows: Vec<(String, String)> = relive_units::Loader::new(&dirs)
        .unit_files()
        .into_iter()
        .filter(|(_, state)| states.is_empty() || states.iter().any(|s| s == state.as_str()))
        .filter(|(path, _)| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            matches(&patterns, name)
        })
        .map(|(path, state)| (path.display().to_string(), state.as_str().to_owned()))
        .collect();
    call.reply(&rows)
}

/// GetUnitProcesses: (cgroup, PID, command line) of every process in the
/// unit's cgroup and those below it.
fn unit_processes(call: &Call<'_>, name: String) -> Result<(), BusError> {
    let load = call.caller.uid == 0;
    let cgroup = call.on_manager(move |m| {
        let canonical = m.unit_view(&name, load).state.name;
        m.unit_cgroup(&canonical)
    })?;
    let mut rows: Vec<(String, u32, String)> = Vec::new();
    collect_processes(
        &std::path::Path::new("/sys/fs/cgroup").join(cgroup.trim_start_matches('/')),
        &cgroup,
        &mut rows,
    );
    call.reply(&rows)
}

fn collect_processes(dir: &std::path::Path, cgroup: &str, rows: &mut Vec<(String, u32, String)>) {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let text = cmdline
            .split(|b| *b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        rows.push((cgroup.to_owned(), pid, text));
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let child = format!("{cgroup}/{}", e.file_name().to_string_lossy());
            collect_processes(&e.path(), &child, rows);
        }
    }
}
