//! StartTransientUnit: systemd's list of (property, value) pairs made
//! into a unit file, as systemd writes one to /run/systemd/transient.
//! The file is then loaded like any other, so a transient unit gets the
//! same checks, warnings and `systemctl cat` as one from disk.

use super::dispatch::{BusError, Call};
use super::paths::job_path;
use super::properties::object_path;
use crate::manager::scopes::Transient;
use std::collections::BTreeMap;
use zbus::zvariant::{OwnedValue, Value};

type Properties = Vec<(String, OwnedValue)>;

/// Manager.StartTransientUnit(name, mode, properties, aux): the job.
pub fn start_transient_unit(call: &Call<'_>) -> Result<(), BusError> {
    let (name, mode, properties, aux): (String, String, Properties, Vec<(String, Properties)>) =
        call.args()?;
    call.require_root(&format!("StartTransientUnit of {name}"))?;
    super::manager_methods::check_mode(&mode)?;
    if !aux.is_empty() {
        return Err(BusError::new(
            "org.freedesktop.DBus.Error.NotSupported",
            "relive does not make auxiliary transient units",
        ));
    }
    let transient = translate(&name, &properties, call.caller.pid)?;
    let id = call
        .on_manager(move |m| m.start_transient(transient))?
        .map_err(super::manager_methods::unit_error)?;
    call.reply(&object_path(job_path(id)))
}

/// The process a pidfd refers to, from its fdinfo ("Pid:\t812"; -1 once
/// it has exited). procfs does not read pidfd fdinfo: one line here.
fn pid_of_pidfd(fd: &impl std::os::fd::AsRawFd) -> Option<i32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("Pid:"))
        .and_then(|pid| pid.trim().parse().ok())
        .filter(|pid: &i32| *pid > 0)
}

/// The unit file and processes `properties` describe for unit `name`.
pub fn translate(
    name: &str,
    properties: &[(String, OwnedValue)],
    caller: Option<u32>,
) -> Result<Transient, BusError> {
    let section = match relive_units::unit_name::suffix(name) {
        Some("service") => "Service",
        Some("scope") => "Scope",
        Some("slice") => "Slice",
        _ => {
            return Err(BusError::new(
                "org.freedesktop.DBus.Error.NotSupported",
                format!("relive makes transient services, scopes and slices only, not {name}"),
            ))
        }
    };
    if relive_units::unit_name::UnitName::parse(name).is_none_or(|n| n.instance == Some("")) {
        return Err(BusError::invalid_args(format!("Invalid unit name: {name}")));
    }
    let mut file = UnitFile::default();
    let mut pids = Vec::new();
    for (key, value) in properties {
        let value: &Value<'_> = value;
        // systemd's error for it: logind then asks again with PIDs
        // rather than PIDFDs (a manager that does not know them).
        let unknown = || {
            BusError::new(
                "org.freedesktop.DBus.Error.PropertyReadOnly",
                format!("Cannot set property {key}, or unknown property."),
            )
        };
        let bad = |why: &str| BusError::invalid_args(format!("Invalid value for {key}: {why}"));
        let own = |allowed: &[&str]| allowed.contains(&section);
        match key.as_str() {
            "Description" | "SourcePath" => file.unit(
                key,
                escape(&string(value).ok_or_else(|| bad("not a string"))?)?,
            ),
            "Documentation" | "RequiresMountsFor" => {
                let list = strings(value).ok_or_else(|| bad("not a list of strings"))?;
                let words: Result<Vec<String>, BusError> = list.iter().map(|w| quote(w)).collect();
                file.unit(key, words?.join(" "));
            }
            "After"
            | "Before"
            | "Wants"
            | "Requires"
            | "Requisite"
            | "BindsTo"
            | "PartOf"
            | "Conflicts"
            | "Upholds"
            | "PropagatesReloadTo"
            | "ReloadPropagatedFrom" => {
                let list = strings(value).ok_or_else(|| bad("not a list of unit names"))?;
                if let Some(wrong) = list
                    .iter()
                    .find(|n| relive_units::unit_name::UnitName::parse(n).is_none())
                {
                    return Err(bad(&format!("{wrong} is not a unit name")));
                }
                file.unit(key, list.join(" "));
            }
            "DefaultDependencies"
            | "StopWhenUnneeded"
            | "RefuseManualStart"
            | "RefuseManualStop" => {
                file.unit(key, yes_no(value).ok_or_else(|| bad("not a boolean"))?)
            }
            "CollectMode" => file.unit(
                key,
                escape(&string(value).ok_or_else(|| bad("not a string"))?)?,
            ),
            // A reference the caller holds on the unit so that it is not
            // collected under it: relive keeps a transient unit until it
            // is over anyway.
            "AddRef" => {}
            "PIDs" if own(&["Scope"]) => {
                let list: Vec<u32> = value
                    .try_clone()
                    .ok()
                    .and_then(|v| Vec::<u32>::try_from(v).ok())
                    .ok_or_else(|| bad("not a list of PIDs"))?;
                for pid in list {
                    // 0 is the caller itself.
                    let pid = if pid == 0 {
                        caller.ok_or_else(|| bad("the caller's PID is not known"))?
                    } else {
                        pid
                    };
                    pids.push(i32::try_from(pid).map_err(|_| bad("not a PID"))?);
                }
            }
            // logind from systemd 254 on: the session's leader as a pidfd.
            "PIDFDs" if own(&["Scope"]) => {
                let Value::Array(fds) = value else {
                    return Err(bad("not a list of pidfds"));
                };
                for fd in fds.iter() {
                    let Value::Fd(fd) = fd else {
                        return Err(bad("not a pidfd"));
                    };
                    let pid = pid_of_pidfd(fd).ok_or_else(|| bad("not a live process's pidfd"))?;
                    pids.push(pid);
                }
            }
            "Slice" if own(&["Service", "Scope"]) => file.typed(
                section,
                key,
                escape(&string(value).ok_or_else(|| bad("not a string"))?)?,
            ),
            "KillMode" if own(&["Service", "Scope"]) => file.typed(
                section,
                key,
                escape(&string(value).ok_or_else(|| bad("not a string"))?)?,
            ),
            "KillSignal" | "Nice" if own(&["Service", "Scope"]) => {
                let n = i32::try_from(value).map_err(|_| bad("not an integer"))?;
                if key == "Nice" && section != "Service" {
                    return Err(unknown());
                }
                file.typed(section, key, n.to_string());
            }
            "SendSIGHUP" | "SendSIGKILL" if own(&["Service", "Scope"]) => file.typed(
                section,
                key,
                yes_no(value).ok_or_else(|| bad("not a boolean"))?,
            ),
            "TimeoutStopUSec" | "TimeoutStartUSec" | "RuntimeMaxUSec"
                if own(&["Service", "Scope"]) =>
            {
                let us = u64::try_from(value).map_err(|_| bad("not a number of µs"))?;
                let directive = format!("{}Sec", key.trim_end_matches("USec"));
                file.typed_owned(section, directive, timespan(us));
            }
            "TasksMax" | "MemoryMax" | "MemoryHigh" | "MemoryLow" | "MemoryMin"
            | "MemorySwapMax" | "CPUWeight" | "IOWeight" => {
                let n = u64::try_from(value).map_err(|_| bad("not a number"))?;
                file.typed(
                    section,
                    key,
                    if n == u64::MAX {
                        "infinity".into()
                    } else {
                        n.to_string()
                    },
                );
            }
            "CPUQuotaPerSecUSec" => {
                let us = u64::try_from(value).map_err(|_| bad("not a number of µs"))?;
                if us != u64::MAX {
                    // µs of CPU per second of time: 10000 µs are 1 %.
                    file.typed(
                        section,
                        "CPUQuota",
                        format!("{}.{:02}%", us / 10_000, us % 10_000 / 100),
                    );
                }
            }
            "Delegate" | "OOMPolicy" if own(&["Service", "Scope"]) => {
                let text = match key.as_str() {
                    "Delegate" => yes_no(value).ok_or_else(|| bad("not a boolean"))?,
                    _ => escape(&string(value).ok_or_else(|| bad("not a string"))?)?,
                };
                file.typed(section, key, text);
            }
            "Type" | "User" | "Group" | "WorkingDirectory" | "Restart" | "StandardInput"
            | "StandardOutput" | "StandardError" | "UtmpIdentifier" | "PAMName"
                if own(&["Service"]) =>
            {
                file.typed(
                    section,
                    key,
                    escape(&string(value).ok_or_else(|| bad("not a string"))?)?,
                )
            }
            "RemainAfterExit" if own(&["Service"]) => file.typed(
                section,
                key,
                yes_no(value).ok_or_else(|| bad("not a boolean"))?,
            ),
            "Environment" if own(&["Service"]) => {
                let list = strings(value).ok_or_else(|| bad("not a list of strings"))?;
                let words: Result<Vec<String>, BusError> = list.iter().map(|w| quote(w)).collect();
                file.typed(section, key, words?.join(" "));
            }
            "ExecStartPre" | "ExecStart" | "ExecStartPost" | "ExecReload" | "ExecStop"
            | "ExecStopPost" | "ExecCondition"
                if own(&["Service"]) =>
            {
                let commands: Vec<(String, Vec<String>, bool)> = value
                    .try_clone()
                    .ok()
                    .and_then(|v| Vec::try_from(v).ok())
                    .ok_or_else(|| bad("not a list of (path, argv, ignore-failure)"))?;
                for (path, argv, ignore) in commands {
                    file.typed(section, key, command_line(&path, &argv, ignore)?);
                }
            }
            _ => return Err(unknown()),
        }
    }
    if section == "Service" && !file.has(section, "ExecStart") {
        return Err(BusError::invalid_args("Service has no ExecStart= setting, which is only allowed for RemainAfterExit=yes services."));
    }
    Ok(Transient {
        name: name.to_owned(),
        unit_file: file.text(section),
        pids,
    })
}

/// The file's lines by section, in the order the properties came.
#[derive(Default)]
struct UnitFile {
    sections: BTreeMap<&'static str, Vec<String>>,
}

impl UnitFile {
    fn unit(&mut self, key: &str, value: String) {
        self.line("Unit", key, value);
    }

    fn typed(&mut self, section: &'static str, key: &str, value: String) {
        self.line(section, key, value);
    }

    fn typed_owned(&mut self, section: &'static str, key: String, value: String) {
        self.line(section, &key, value);
    }

    fn line(&mut self, section: &'static str, key: &str, value: String) {
        self.sections
            .entry(section)
            .or_default()
            .push(format!("{key}={value}"));
    }

    fn has(&self, section: &str, key: &str) -> bool {
        self.sections
            .get(section)
            .is_some_and(|lines| lines.iter().any(|l| l.starts_with(&format!("{key}="))))
    }

    fn text(&self, section: &str) -> String {
        let mut out = String::from("# This is a transient unit file, created programmatically via the systemd API. Do not edit.\n");
        for name in ["Unit", section] {
            if let Some(lines) = self.sections.get(name) {
                out.push_str(&format!("[{name}]\n"));
                for l in lines {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }
}

fn string(v: &Value<'_>) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

fn strings(v: &Value<'_>) -> Option<Vec<String>> {
    v.try_clone()
        .ok()
        .and_then(|v| Vec::<String>::try_from(v).ok())
}

fn yes_no(v: &Value<'_>) -> Option<String> {
    match v {
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.to_owned()),
        _ => None,
    }
}

/// A value as it stands after `Key=`: one line, with `%` kept literal
/// (specifiers are expanded when the file is read).
fn escape(text: &str) -> Result<String, BusError> {
    if text.chars().any(|c| c.is_control()) {
        return Err(BusError::invalid_args(format!(
            "Invalid value {text:?}: control characters are not allowed"
        )));
    }
    Ok(text.replace('%', "%%"))
}

/// One word of a list, in double quotes: blanks stay inside it, and `$`
/// is not a variable (Exec lines expand `$NAME`).
fn quote(word: &str) -> Result<String, BusError> {
    let escaped = escape(word)?
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "$$");
    Ok(format!("\"{escaped}\""))
}

/// `[-]@PATH ARGV0 ARGS...`: the program and its argv, as given.
fn command_line(path: &str, argv: &[String], ignore_failure: bool) -> Result<String, BusError> {
    if !path.starts_with('/') {
        return Err(BusError::invalid_args(format!(
            "Path {path} is not absolute."
        )));
    }
    let mut words = vec![format!(
        "{}@{}",
        if ignore_failure { "-" } else { "" },
        quote(path)?
    )];
    if argv.is_empty() {
        words.push(quote(path)?);
    }
    for arg in argv {
        // A lone ";" would end the command: `\;` is the literal word.
        words.push(if arg == ";" {
            "\\;".to_owned()
        } else {
            quote(arg)?
        });
    }
    Ok(words.join(" "))
}

/// A duration in µs as a unit file writes it.
fn timespan(us: u64) -> String {
    if us == u64::MAX {
        "infinity".to_owned()
    } else {
        format!("{us}us")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(list: Vec<(&str, Value<'static>)>) -> Properties {
        list.into_iter()
            .map(|(k, v)| (k.to_owned(), OwnedValue::try_from(v).unwrap()))
            .collect()
    }

    #[test]
    fn logind_s_session_scope_becomes_a_scope_file() {
        let p = props(vec![
            ("Slice", Value::from("user-0.slice")),
            ("Description", Value::from("Session 3 of User root (100%)")),
            (
                "After",
                Value::from(vec![
                    "systemd-logind.service",
                    "systemd-user-sessions.service",
                ]),
            ),
            ("SendSIGHUP", Value::from(true)),
            ("PIDs", Value::from(vec![812u32, 0])),
            ("OOMPolicy", Value::from("continue")),
            ("TasksMax", Value::from(u64::MAX)),
        ]);
        let t = translate("session-3.scope", &p, Some(900)).unwrap();
        assert_eq!(t.pids, [812, 900]);
        assert_eq!(
            t.unit_file.lines().skip(1).collect::<Vec<_>>(),
            [
                "[Unit]",
                "Description=Session 3 of User root (100%%)",
                "After=systemd-logind.service systemd-user-sessions.service",
                "[Scope]",
                "Slice=user-0.slice",
                "SendSIGHUP=yes",
                "OOMPolicy=continue",
                "TasksMax=infinity",
            ]
        );
    }

    #[test]
    fn logind_s_pidfd_names_the_session_leader() {
        // SAFETY: pidfd_open on this process; the result is checked and
        // owned at once.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, std::process::id(), 0) };
        assert!(raw >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
        // SAFETY: a new descriptor this test owns.
        let fd =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw as i32) };
        // "ah", as logind sends it.
        let fds = zbus::zvariant::Array::from(vec![zbus::zvariant::Fd::from(fd)]);
        let p = props(vec![("PIDFDs", Value::Array(fds))]);
        let t = translate("session-4.scope", &p, None).unwrap();
        assert_eq!(t.pids, [std::process::id() as i32]);
    }

    #[test]
    fn systemd_run_s_command_keeps_its_words() {
        let argv = vec![
            "sh".to_owned(),
            "-c".into(),
            "echo $HOME \"x\"".into(),
            ";".into(),
        ];
        let p = props(vec![(
            "ExecStart",
            Value::from(vec![("/bin/sh".to_owned(), argv, false)]),
        )]);
        let t = translate("run-u7.service", &p, None).unwrap();
        assert!(
            t.unit_file
                .contains(r#"ExecStart=@"/bin/sh" "sh" "-c" "echo $$HOME \"x\"" \;"#),
            "{}",
            t.unit_file
        );
    }

    #[test]
    fn unknown_properties_and_bad_values_are_named() {
        let e = translate(
            "a.scope",
            &props(vec![("Frobnicate", Value::from(1u32))]),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "Cannot set property Frobnicate, or unknown property."
        );
        assert_eq!(e.name, "org.freedesktop.DBus.Error.PropertyReadOnly");
        let e = translate(
            "a.scope",
            &props(vec![("SendSIGHUP", Value::from("yes"))]),
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("SendSIGHUP"), "{}", e.message);
        let e = translate("a.timer", &[], None).unwrap_err();
        assert!(e.message.contains("a.timer"), "{}", e.message);
        let e = translate("a.service", &[], None).unwrap_err();
        assert!(e.message.contains("ExecStart"), "{}", e.message);
    }
}
