//! The [Service] section: directives, then systemd's defaults
//! (`service_add_extras()`) and checks (`service_verify()`).

use super::build::Ctx;
use super::values::{
    empty_or, parse_bool, parse_exit_status, parse_kill_mode, parse_mode, parse_rlimit,
    parse_signal, parse_timespan, timeout,
};
use crate::error::LoadError;
use crate::exec::{parse_environment_with, parse_exec_with};
use crate::model::*;

#[derive(Debug, Default)]
pub(crate) struct ServiceBuilder {
    s: ServiceSection,
    type_set: bool,
    output_set: bool,
    start_timeout_set: bool,
}

impl ServiceBuilder {
    pub fn directive(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &str,
        value: &str,
        loc: &Location,
    ) -> Result<(), LoadError> {
        let s = &mut self.s;
        let bad = |ctx: &Ctx<'_>| ctx.bad(key, value, loc);
        let empty = value.is_empty();
        match key {
            "Type" => {
                self.type_set = !empty;
                s.service_type = match value {
                    "" | "simple" => ServiceType::Simple,
                    "exec" => ServiceType::Exec,
                    "forking" => ServiceType::Forking,
                    "oneshot" => ServiceType::Oneshot,
                    "notify" => ServiceType::Notify,
                    "idle" => ServiceType::Idle,
                    "dbus" => ServiceType::Dbus,
                    "notify-reload" => ServiceType::NotifyReload,
                    _ => return Err(bad(ctx)),
                };
            }
            "ExecStartPre" | "ExecStart" | "ExecStartPost" | "ExecStop" | "ExecStopPost"
            | "ExecReload" => {
                let list = match key {
                    "ExecStartPre" => &mut s.exec_start_pre,
                    "ExecStart" => &mut s.exec_start,
                    "ExecStartPost" => &mut s.exec_start_post,
                    "ExecStop" => &mut s.exec_stop,
                    "ExecStopPost" => &mut s.exec_stop_post,
                    _ => &mut s.exec_reload,
                };
                if empty {
                    list.clear();
                    return Ok(());
                }
                let spec = &ctx.spec;
                let parsed =
                    parse_exec_with(value, loc, &|w| spec.resolve(w).map_err(|e| e.to_string()));
                match parsed {
                    Ok(parsed) => {
                        list.push(parsed.command);
                        for w in parsed.warnings {
                            ctx.warn(loc, format!("{key}=: {w}"));
                        }
                    }
                    // The '-' prefix makes systemd drop a bad line, not the unit.
                    Err(e) if e.ignorable => {
                        ctx.warn(loc, format!("{key}= line ignored: {}", e.message))
                    }
                    Err(e) => return Err(ctx.bad_because(key, value, loc, &e.message)),
                }
            }
            "PIDFile" if empty => s.pid_file = None,
            "PIDFile" => {
                let mut p = ctx.resolve(key, value, loc)?;
                if let Some(rest) = p.strip_prefix("/var/run/") {
                    p = format!("/run/{rest}");
                    ctx.warn(loc, format!("PIDFile= below legacy /var/run/, using {p}"));
                } else if !p.starts_with('/') {
                    p = format!("/run/{p}");
                    ctx.warn(loc, format!("PIDFile= is not absolute, using {p}"));
                }
                s.pid_file = Some(p.into());
            }
            "RemainAfterExit" => {
                s.remain_after_exit = empty_or(value, false, parse_bool).ok_or_else(|| bad(ctx))?
            }
            "Restart" => {
                s.restart = match value {
                    "" | "no" => RestartPolicy::No,
                    "on-success" => RestartPolicy::OnSuccess,
                    "on-failure" => RestartPolicy::OnFailure,
                    "on-abnormal" => RestartPolicy::OnAbnormal,
                    "on-abort" => RestartPolicy::OnAbort,
                    "on-watchdog" => RestartPolicy::OnWatchdog,
                    "always" => RestartPolicy::Always,
                    _ => return Err(bad(ctx)),
                }
            }
            "RestartSec" if empty => s.restart_sec = ServiceSection::default().restart_sec,
            "RestartSec" => {
                s.restart_sec = parse_timespan(value).ok_or_else(|| bad(ctx))?.saturating()
            }
            "TimeoutSec" | "TimeoutStartSec" | "TimeoutStopSec" => {
                let t = if empty {
                    Timeout::Default
                } else {
                    timeout(value).ok_or_else(|| bad(ctx))?
                };
                if key != "TimeoutStopSec" {
                    s.timeout_start = t;
                    self.start_timeout_set = !empty;
                }
                if key != "TimeoutStartSec" {
                    s.timeout_stop = t;
                }
            }
            "RestartPreventExitStatus" | "SuccessExitStatus" => {
                let (codes, signals) = if key == "SuccessExitStatus" {
                    (&mut s.success_exit_status, &mut s.success_signals)
                } else {
                    (
                        &mut s.restart_prevent_exit_status,
                        &mut s.restart_prevent_signals,
                    )
                };
                if empty {
                    codes.clear();
                    signals.clear();
                }
                for w in value.split_ascii_whitespace() {
                    if let Some(code) = parse_exit_status(w) {
                        codes.push(code);
                    } else if let Some(sig) = parse_signal(w) {
                        signals.push(sig);
                    } else {
                        return Err(ctx.bad_because(
                            key,
                            value,
                            loc,
                            &format!("'{w}' is neither an exit status nor a signal"),
                        ));
                    }
                }
            }
            "KillMode" => s.kill_mode = parse_kill_mode(value).ok_or_else(|| bad(ctx))?,
            "KillSignal" => {
                s.kill_signal = empty_or(value, 15, parse_signal).ok_or_else(|| bad(ctx))?
            }
            "SendSIGKILL" => {
                s.send_sigkill = empty_or(value, true, parse_bool).ok_or_else(|| bad(ctx))?
            }
            "User" | "Group" => {
                let v = user_or_group(ctx, key, value, loc)?;
                if key == "User" {
                    s.user = v;
                } else {
                    s.group = v;
                }
            }
            "SupplementaryGroups" if empty => s.supplementary_groups.clear(),
            "SupplementaryGroups" => {
                let groups = ctx.words(key, value, loc)?;
                if groups.iter().any(|g| !user_group_name_ok(g)) {
                    return Err(bad(ctx));
                }
                s.supplementary_groups.extend(groups);
            }
            "UMask" => s.umask = empty_or(value, 0o022, parse_mode).ok_or_else(|| bad(ctx))?,
            "LimitNOFILE" if empty => s.limit_nofile = None,
            "LimitNOFILE" => s.limit_nofile = Some(parse_rlimit(value).ok_or_else(|| bad(ctx))?),
            "WorkingDirectory" => {
                let (optional, rest) = match value.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, value),
                };
                let dir = ctx.resolve(key, rest, loc)?;
                if !dir.is_empty() && dir != "~" && !dir.starts_with('/') {
                    return Err(ctx.bad_because(key, value, loc, "not an absolute path"));
                }
                s.working_directory_optional = optional && !dir.is_empty();
                s.working_directory = (!dir.is_empty()).then(|| dir.into());
            }
            "Environment" if empty => s.environment.clear(),
            "Environment" => {
                let spec = &ctx.spec;
                let vars =
                    parse_environment_with(value, &|w| spec.resolve(w).map_err(|e| e.to_string()))
                        .map_err(|e| ctx.bad_because(key, value, loc, &e))?;
                s.environment.extend(vars);
            }
            "EnvironmentFile" if empty => s.environment_files.clear(),
            "EnvironmentFile" => {
                let (optional, rest) = match value.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, value),
                };
                let path = ctx.resolve(key, rest, loc)?;
                if !path.starts_with('/') {
                    return Err(ctx.bad_because(key, value, loc, "not an absolute path"));
                }
                s.environment_files.push((path.into(), optional));
            }
            "RuntimeDirectory" if empty => s.runtime_directory.clear(),
            "RuntimeDirectory" => s
                .runtime_directory
                .extend(super::directories::names(ctx, key, value, loc)?),
            "RuntimeDirectoryMode" => {
                s.runtime_directory_mode =
                    empty_or(value, 0o755, parse_mode).ok_or_else(|| bad(ctx))?
            }
            "RuntimeDirectoryPreserve" => {
                s.runtime_directory_preserve = match value {
                    "restart" => {
                        ctx.warn(loc, "RuntimeDirectoryPreserve=restart is treated as no");
                        false
                    }
                    v => empty_or(v, false, parse_bool).ok_or_else(|| bad(ctx))?,
                }
            }
            "StandardInput" => {
                s.standard_input = match value {
                    "" | "null" => InputSource::Null,
                    "socket" => InputSource::Socket,
                    "tty" => InputSource::Tty,
                    "tty-force" => InputSource::TtyForce,
                    "tty-fail" => InputSource::TtyFail,
                    "data" | "file" => {
                        ctx.warn(
                            loc,
                            format!("StandardInput={value} is not supported, input is /dev/null"),
                        );
                        InputSource::Null
                    }
                    v if v.starts_with("file:") || v.starts_with("fd:") => {
                        ctx.warn(
                            loc,
                            format!("StandardInput={v} is not supported, input is /dev/null"),
                        );
                        InputSource::Null
                    }
                    _ => return Err(bad(ctx)),
                }
            }
            "AmbientCapabilities" | "CapabilityBoundingSet" => {
                let ambient = key == "AmbientCapabilities";
                if empty {
                    // systemd.exec(5): an empty value resets either to the
                    // empty set: no ambient capabilities, and a bounding
                    // set with none at all.
                    if ambient {
                        s.ambient_capabilities = 0;
                    } else {
                        s.capability_bounding_set = Some(0);
                    }
                    return Ok(());
                }
                let (invert, mask) = parse_capabilities(value)
                    .map_err(|why| ctx.bad_because(key, value, loc, &why))?;
                if ambient {
                    // systemd: plain lines add, `~` lines take away.
                    if invert {
                        s.ambient_capabilities &= !mask;
                    } else {
                        s.ambient_capabilities |= mask;
                    }
                } else {
                    let current = s.capability_bounding_set.unwrap_or(ALL_CAPABILITIES);
                    s.capability_bounding_set = Some(if invert {
                        current & !mask
                    } else if s.capability_bounding_set.is_none() {
                        mask
                    } else {
                        current | mask
                    });
                }
            }
            "FileDescriptorStorePreserve" => {
                s.fd_store_preserve = match value {
                    "" | "restart" => FdStorePreserve::Restart,
                    v => match parse_bool(v) {
                        Some(true) => FdStorePreserve::Yes,
                        Some(false) => FdStorePreserve::No,
                        None => return Err(bad(ctx)),
                    },
                };
            }
            "FileDescriptorStoreMax" => {
                s.fd_store_max = if empty {
                    0
                } else {
                    value.parse().map_err(|_| bad(ctx))?
                }
            }
            "WatchdogSec" => {
                let span = if empty {
                    None
                } else {
                    Some(parse_timespan(value).ok_or_else(|| bad(ctx))?.saturating())
                };
                s.watchdog = span.filter(|d| !d.is_zero() && *d != std::time::Duration::MAX);
            }
            "BusName" => {
                let name = ctx.resolve_optional(key, value, loc)?;
                if name.as_deref().is_some_and(|n| !is_bus_name(n)) {
                    return Err(bad(ctx));
                }
                s.bus_name = name;
            }
            "ReloadSignal" => {
                s.reload_signal =
                    empty_or(value, libc::SIGHUP, parse_signal).ok_or_else(|| bad(ctx))?
            }
            "WatchdogSignal" => {
                s.watchdog_signal =
                    empty_or(value, libc::SIGABRT, parse_signal).ok_or_else(|| bad(ctx))?
            }
            "SyslogIdentifier" => s.syslog_identifier = ctx.resolve_optional(key, value, loc)?,
            "SyslogLevelPrefix" => {
                s.syslog_level_prefix = empty_or(value, true, parse_bool).ok_or_else(|| bad(ctx))?
            }
            "TTYPath" => {
                let path = ctx.resolve(key, value, loc)?;
                if !path.is_empty() && !path.starts_with('/') {
                    return Err(ctx.bad_because(key, value, loc, "not an absolute path"));
                }
                s.tty.path = if path.is_empty() {
                    TtySettings::default().path
                } else {
                    path.into()
                };
            }
            "TTYReset" | "TTYVHangup" | "TTYVTDisallocate" | "SendSIGHUP" => {
                let v = empty_or(value, false, parse_bool).ok_or_else(|| bad(ctx))?;
                match key {
                    "TTYReset" => s.tty.reset = v,
                    "TTYVHangup" => s.tty.vhangup = v,
                    "TTYVTDisallocate" => s.tty.vt_disallocate = v,
                    _ => s.send_sighup = v,
                }
            }
            "UtmpIdentifier" => s.utmp_identifier = ctx.resolve_optional(key, value, loc)?,
            "UtmpMode" => {
                if !matches!(value, "" | "init" | "login" | "user") {
                    return Err(bad(ctx));
                }
                if !matches!(value, "" | "init") {
                    ctx.warn(loc, format!("UtmpMode={value} is written as init"));
                }
            }
            "UnsetEnvironment" if empty => s.unset_environment.clear(),
            "UnsetEnvironment" => s.unset_environment.extend(ctx.words(key, value, loc)?),
            "GuessMainPID" => {
                s.guess_main_pid = empty_or(value, true, parse_bool).ok_or_else(|| bad(ctx))?
            }
            "IgnoreSIGPIPE" => {
                s.ignore_sigpipe = empty_or(value, true, parse_bool).ok_or_else(|| bad(ctx))?
            }
            "Sockets" if empty => s.sockets.clear(),
            "Sockets" => {
                for name in ctx.unit_names(key, value, loc)? {
                    if crate::unit_name::suffix(&name) != Some("socket") {
                        return Err(ctx.bad_because(
                            key,
                            value,
                            loc,
                            &format!("'{name}' is not a socket unit"),
                        ));
                    }
                    s.sockets.push(name);
                }
            }
            "StandardOutput" | "StandardError" => {
                if key == "StandardOutput" {
                    self.output_set = !empty;
                }
                let default = if key == "StandardOutput" {
                    OutputTarget::Capture
                } else {
                    OutputTarget::Inherit
                };
                let target = if empty {
                    default
                } else {
                    output(ctx, key, value, loc)?
                };
                if key == "StandardOutput" {
                    s.standard_output = target;
                } else {
                    s.standard_error = target;
                }
            }
            "NotifyAccess" => {
                s.notify_access = match value {
                    "" | "none" => NotifyAccess::None,
                    "main" => NotifyAccess::Main,
                    "exec" => NotifyAccess::Exec,
                    "all" => NotifyAccess::All,
                    _ => return Err(bad(ctx)),
                }
            }
            _ => {
                let outcome = super::process::directive(&mut s.process, ctx, key, value, loc)
                    .or_else(|| {
                        super::directories::directive(&mut s.directories, ctx, key, value, loc)
                    })
                    .or_else(|| super::sandbox::directive(&mut s.sandbox, ctx, key, value, loc))
                    .or_else(|| super::resources::directive(&mut s.resources, ctx, key, value, loc))
                    .or_else(|| {
                        super::credentials::directive(&mut s.credentials, ctx, key, value, loc)
                    });
                match outcome {
                    Some(outcome) => outcome?,
                    None => ctx.unsupported(key, value, loc),
                }
            }
        }
        Ok(())
    }

    /// systemd's defaults and refusals, in systemd's words.
    pub fn finish(
        self,
        fragment: &Location,
        success_action: bool,
    ) -> Result<ServiceSection, LoadError> {
        let mut s = self.s;
        if !self.type_set {
            // service_add_extras(): BusName= alone makes a Type=dbus service.
            s.service_type = if s.bus_name.is_some() {
                ServiceType::Dbus
            } else if s.exec_start.is_empty() {
                ServiceType::Oneshot
            } else {
                ServiceType::Simple
            };
        }
        if (s.standard_input == InputSource::Socket || s.standard_input.is_tty())
            && !self.output_set
        {
            // systemd.exec(5): output defaults to inherit (the socket) then.
            s.standard_output = OutputTarget::Inherit;
        }
        let oneshot = s.service_type == ServiceType::Oneshot;
        if oneshot && !self.start_timeout_set {
            s.timeout_start = Timeout::Infinity;
        }
        // As systemd: a service that needs the notify socket gets it
        // (WATCHDOG=1 pings, FDSTORE=1), whatever its type: logind is
        // Type=dbus with WatchdogSec= and FileDescriptorStoreMax=.
        let needs_notify = s.service_type.notifies() || s.watchdog.is_some() || s.fd_store_max > 0;
        if s.notify_access == NotifyAccess::None && needs_notify {
            s.notify_access = NotifyAccess::Main;
        }
        let refuse = |m: &str| Err(LoadError::invalid(fragment, m));
        if !oneshot && s.exec_start.is_empty() {
            return refuse("Service has no ExecStart= setting, which is only allowed for Type=oneshot services. Refusing.");
        }
        if s.exec_start.is_empty() && s.exec_stop.is_empty() && !success_action {
            return refuse("Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing.");
        }
        if s.exec_start.is_empty() && !success_action && !s.remain_after_exit {
            return refuse("Service has no ExecStart= and no SuccessAction= settings and does not have RemainAfterExit=yes set. Refusing.");
        }
        if !oneshot && s.exec_start.len() > 1 {
            return refuse("Service has more than one ExecStart= setting, which is only allowed for Type=oneshot services. Refusing.");
        }
        if s.service_type == ServiceType::Dbus && s.bus_name.is_none() {
            return refuse(
                "Service is of type D-Bus but no D-Bus service name has been specified. Refusing.",
            );
        }
        if oneshot && matches!(s.restart, RestartPolicy::Always | RestartPolicy::OnSuccess) {
            return refuse("Service has Restart= set to either always or on-success, which isn't allowed for Type=oneshot services. Refusing.");
        }
        Ok(s)
    }
}

/// A well-known D-Bus name (the D-Bus specification's rules): two or more
/// dot-separated elements of [A-Za-z0-9_-], none empty or starting with a
/// digit, at most 255 bytes.
fn is_bus_name(name: &str) -> bool {
    let elements: Vec<&str> = name.split('.').collect();
    name.len() <= 255
        && elements.len() >= 2
        && elements.iter().all(|e| {
            !e.is_empty()
                && !e.starts_with(|c: char| c.is_ascii_digit())
                && e.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// A user or group name or number as User=/Group= accept it (resolved
/// later by PID 1): no blanks, `:` or `/`, no control characters.
/// User=, Group=, SocketUser=, SocketGroup=: a valid name, or none.
pub(crate) fn user_or_group(
    ctx: &Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Result<Option<String>, LoadError> {
    let name = ctx.resolve(key, value, loc)?;
    if !name.is_empty() && !user_group_name_ok(&name) {
        return Err(ctx.bad(key, value, loc));
    }
    Ok((!name.is_empty()).then_some(name))
}

fn user_group_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':' || c == '/')
}

fn output(
    ctx: &mut Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Result<OutputTarget, LoadError> {
    let path = |ctx: &Ctx<'_>, p: &str| -> Result<std::path::PathBuf, LoadError> {
        let p = ctx.resolve(key, p, loc)?;
        if p.starts_with('/') {
            Ok(p.into())
        } else {
            Err(ctx.bad_because(key, value, loc, "not an absolute path"))
        }
    };
    Ok(match value {
        "inherit" => OutputTarget::Inherit,
        "null" => OutputTarget::Null,
        "tty" => OutputTarget::Tty,
        "socket" => OutputTarget::Socket,
        "journal" | "syslog" => OutputTarget::Capture,
        "kmsg" => OutputTarget::CaptureForward {
            kmsg: true,
            console: false,
        },
        "journal+console" | "syslog+console" => OutputTarget::CaptureForward {
            kmsg: false,
            console: true,
        },
        "kmsg+console" => OutputTarget::CaptureForward {
            kmsg: true,
            console: true,
        },
        v if v.starts_with("file:") => OutputTarget::File(path(ctx, &v[5..])?),
        v if v.starts_with("append:") => OutputTarget::Append(path(ctx, &v[7..])?),
        v if v.starts_with("truncate:") => OutputTarget::Truncate(path(ctx, &v[9..])?),
        v if v.starts_with("fd:") => {
            ctx.warn(
                loc,
                format!("{key}={v} is not supported, output is captured instead"),
            );
            OutputTarget::Capture
        }
        _ => return Err(ctx.bad(key, value, loc)),
    })
}

/// Every capability the kernel headers relive knows define.
const ALL_CAPABILITIES: u64 = (1 << 41) - 1;

/// `CAP_X CAP_Y` or `~CAP_X`: (inverted, bit mask).
fn parse_capabilities(value: &str) -> Result<(bool, u64), String> {
    let (invert, list) = super::values::inverted(value);
    let mut mask = 0u64;
    for name in list.split_ascii_whitespace() {
        let cap: caps::Capability = name
            .to_ascii_uppercase()
            .parse()
            .map_err(|_| format!("unknown capability {name}"))?;
        mask |= 1 << cap.index();
    }
    Ok((invert, mask))
}
