//! The sandboxing directives of [`crate::sandbox::Sandbox`], with
//! systemd's syntax: booleans that also take a mode, path lists with `-`
//! and `+` prefixes, `~` for deny-lists, system call groups.

use std::collections::BTreeSet;

use super::build::Ctx;
use super::values::{inverted, parse_bool};
use crate::error::LoadError;
use crate::model::Location;
use crate::sandbox::*;
use crate::syscalls;

/// Applies `key` if it is one of this module's: None when it is not.
pub(crate) fn directive(
    s: &mut Sandbox,
    ctx: &mut Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Option<Result<(), LoadError>> {
    let bad = |why: &str| Err(ctx.bad_because(key, value, loc, why));
    let flag = |v: &str| {
        if v.is_empty() {
            Some(false)
        } else {
            parse_bool(v)
        }
    };
    let set_flag = |field: &mut bool| match flag(value) {
        Some(on) => {
            *field = on;
            Ok(())
        }
        None => Err(ctx.bad(key, value, loc)),
    };
    Some(match key {
        "ProtectSystem" => set(&mut s.protect_system, protect_system(value))
            .or_else(|_| bad("not a boolean, \"full\" or \"strict\"")),
        "ProtectHome" => set(&mut s.protect_home, protect_home(value))
            .or_else(|_| bad("not a boolean, \"read-only\" or \"tmpfs\"")),
        "ProtectProc" => set(&mut s.protect_proc, protect_proc(value))
            .or_else(|_| bad("not \"noaccess\", \"invisible\", \"ptraceable\" or \"default\"")),
        "ProcSubset" => {
            let subset = match value {
                "" | "all" => Some(false),
                "pid" => Some(true),
                _ => None,
            };
            set(&mut s.proc_subset_pid, subset).or_else(|_| bad("not \"all\" or \"pid\""))
        }
        // relive's private /tmp is always a tmpfs of the service's own,
        // which is what systemd 256's "disconnected" asks for.
        "PrivateTmp" if value == "disconnected" => {
            s.private_tmp = true;
            Ok(())
        }
        "PrivateTmp" => set_flag(&mut s.private_tmp),
        "PrivateDevices" => set_flag(&mut s.private_devices),
        "PrivateNetwork" => set_flag(&mut s.private_network),
        "PrivateIPC" => set_flag(&mut s.private_ipc),
        "PrivateUsers" => set_flag(&mut s.private_users),
        "PrivateMounts" => set_flag(&mut s.private_mounts),
        "ProtectKernelTunables" => set_flag(&mut s.protect_kernel_tunables),
        "ProtectKernelModules" => set_flag(&mut s.protect_kernel_modules),
        "ProtectKernelLogs" => set_flag(&mut s.protect_kernel_logs),
        "ProtectControlGroups" => set_flag(&mut s.protect_control_groups),
        "ProtectClock" => set_flag(&mut s.protect_clock),
        "ProtectHostname" => set_flag(&mut s.protect_hostname),
        "RestrictRealtime" => set_flag(&mut s.restrict_realtime),
        "LockPersonality" => set_flag(&mut s.lock_personality),
        "MemoryDenyWriteExecute" => set_flag(&mut s.memory_deny_write_execute),
        "RestrictSUIDSGID" => set_flag(&mut s.restrict_suid_sgid),
        "RemoveIPC" => set_flag(&mut s.remove_ipc),
        "ReadWritePaths" | "ReadWriteDirectories" => {
            path_list(&mut s.read_write_paths, ctx, key, value, loc)
        }
        "ReadOnlyPaths" | "ReadOnlyDirectories" => {
            path_list(&mut s.read_only_paths, ctx, key, value, loc)
        }
        "InaccessiblePaths" | "InaccessibleDirectories" => {
            path_list(&mut s.inaccessible_paths, ctx, key, value, loc)
        }
        "ExecPaths" => path_list(&mut s.exec_paths, ctx, key, value, loc),
        "NoExecPaths" => path_list(&mut s.no_exec_paths, ctx, key, value, loc),
        "TemporaryFileSystem" => temporary_file_systems(s, ctx, key, value, loc),
        "BindPaths" | "BindReadOnlyPaths" => bind_paths(s, ctx, key, value, loc),
        "SystemCallFilter" => system_call_filter(s, ctx, key, value, loc),
        "SystemCallErrorNumber" => {
            let action = if value.is_empty() {
                Some(None)
            } else {
                parse_action(value).map(Some)
            };
            set(&mut s.system_call_error, action)
                .or_else(|_| bad("not an errno name, a number up to 4095 or \"kill\""))
        }
        "SystemCallArchitectures" => {
            if value.is_empty() {
                s.system_call_architectures.clear();
                return Some(Ok(()));
            }
            for arch in value.split_ascii_whitespace() {
                if !matches!(arch, "native" | "x86" | "x86-64" | "x32") {
                    return Some(bad(&format!("unknown architecture {arch}")));
                }
                if !s.system_call_architectures.iter().any(|a| a == arch) {
                    s.system_call_architectures.push(arch.to_string());
                }
            }
            Ok(())
        }
        "RestrictAddressFamilies" => address_families(s, value).or_else(|why| bad(&why)),
        "RestrictNamespaces" => namespaces(s, value).or_else(|why| bad(&why)),
        _ => return None,
    })
}

/// Stores a parsed value; Err(()) for a bad one.
fn set<T>(field: &mut T, parsed: Option<T>) -> Result<(), ()> {
    *field = parsed.ok_or(())?;
    Ok(())
}

/// A boolean that also takes names: empty or false is `off`, true is `on`.
fn bool_or<T: Copy>(v: &str, off: T, on: T, named: &[(&str, T)]) -> Option<T> {
    match (v, parse_bool(v)) {
        ("", _) | (_, Some(false)) => Some(off),
        (_, Some(true)) => Some(on),
        _ => named.iter().find(|(n, _)| *n == v).map(|(_, t)| *t),
    }
}

fn protect_system(v: &str) -> Option<ProtectSystem> {
    use ProtectSystem::*;
    bool_or(v, No, Yes, &[("full", Full), ("strict", Strict)])
}

fn protect_home(v: &str) -> Option<ProtectHome> {
    use ProtectHome::*;
    bool_or(v, No, Yes, &[("read-only", ReadOnly), ("tmpfs", Tmpfs)])
}

fn protect_proc(v: &str) -> Option<ProtectProc> {
    Some(match v {
        "" | "default" => ProtectProc::Default,
        "noaccess" => ProtectProc::NoAccess,
        "invisible" => ProtectProc::Invisible,
        "ptraceable" => ProtectProc::Ptraceable,
        _ => return None,
    })
}

/// ReadWritePaths= and friends: `[-][+]PATH ...`; empty resets.
fn path_list(
    list: &mut Vec<PathRule>,
    ctx: &Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Result<(), LoadError> {
    if value.is_empty() {
        list.clear();
        return Ok(());
    }
    for word in ctx.words(key, value, loc)? {
        let (path, optional) = match word.strip_prefix('-') {
            Some(rest) => (rest, true),
            None => (word.as_str(), false),
        };
        // `+` means "below RootDirectory="; relive has no RootDirectory=.
        let path = path.strip_prefix('+').unwrap_or(path);
        list.push(PathRule {
            path: absolute(ctx, key, value, loc, path)?,
            optional,
        });
    }
    Ok(())
}

/// An absolute, normalized path (no `.`/`..`), without a trailing slash.
fn absolute(
    ctx: &Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
    path: &str,
) -> Result<String, LoadError> {
    let ok = path.starts_with('/') && path.split('/').all(|c| c != "." && c != "..");
    if !ok {
        return Err(ctx.bad_because(
            key,
            value,
            loc,
            &format!("'{path}' is not an absolute, normalized path"),
        ));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_string())
}

fn temporary_file_systems(
    s: &mut Sandbox,
    ctx: &Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Result<(), LoadError> {
    if value.is_empty() {
        s.temporary_file_systems.clear();
        return Ok(());
    }
    for word in ctx.words(key, value, loc)? {
        let (path, options) = word.split_once(':').unwrap_or((&word, ""));
        s.temporary_file_systems.push(TmpfsRule {
            path: absolute(ctx, key, value, loc, path)?,
            options: options.to_string(),
        });
    }
    Ok(())
}

fn bind_paths(
    s: &mut Sandbox,
    ctx: &Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Result<(), LoadError> {
    let read_only = key == "BindReadOnlyPaths";
    if value.is_empty() {
        s.bind_paths.retain(|b| b.read_only != read_only);
        return Ok(());
    }
    for word in ctx.words(key, value, loc)? {
        let (word, optional) = match word.strip_prefix('-') {
            Some(rest) => (rest.to_string(), true),
            None => (word, false),
        };
        let mut parts = word.splitn(3, ':');
        let source = absolute(ctx, key, value, loc, parts.next().unwrap_or(""))?;
        let target = match parts.next() {
            Some(t) => absolute(ctx, key, value, loc, t)?,
            None => source.clone(),
        };
        let recursive = match parts.next() {
            None | Some("") | Some("rbind") => true,
            Some("norbind") => false,
            Some(other) => {
                return Err(ctx.bad_because(key, value, loc, &format!("unknown option {other}")))
            }
        };
        s.bind_paths.push(BindRule {
            source,
            target,
            optional,
            read_only,
            recursive,
        });
    }
    Ok(())
}

/// `EPERM`, `13`, `kill`.
fn parse_action(v: &str) -> Option<SyscallAction> {
    if v == "kill" {
        return Some(SyscallAction::Kill);
    }
    if let Ok(n) = v.parse::<i32>() {
        return (0..=4095).contains(&n).then_some(SyscallAction::Errno(n));
    }
    // nix names every errno the way errno(3) does.
    (1..4096)
        .find(|&n| format!("{:?}", nix::errno::Errno::from_raw(n)) == v)
        .map(SyscallAction::Errno)
}

/// SystemCallFilter=, merged as systemd merges it: the first assignment
/// decides allow- or deny-list; a later one of the other kind takes its
/// calls out again. An allow-list always holds `@default`.
fn system_call_filter(
    s: &mut Sandbox,
    ctx: &Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Result<(), LoadError> {
    if value.is_empty() {
        s.system_call_filter = None;
        return Ok(());
    }
    let (deny, list) = inverted(value);
    let filter = s.system_call_filter.get_or_insert_with(|| {
        let mut f = SyscallFilter {
            allow_list: !deny,
            ..Default::default()
        };
        if !deny {
            for call in syscalls::expand("@default").unwrap_or_default() {
                f.calls.insert(call, None);
            }
        }
        f
    });
    for word in ctx.words(key, list, loc)? {
        let (name, action) = match word.split_once(':') {
            Some((name, action)) => match parse_action(action) {
                Some(a) => (name.to_string(), Some(a)),
                None => {
                    return Err(ctx.bad_because(key, value, loc, &format!("bad action {action}")))
                }
            },
            None => (word, None),
        };
        let Some(calls) = syscalls::expand(&name) else {
            return Err(ctx.bad_because(key, value, loc, &format!("unknown group {name}")));
        };
        for call in calls {
            // Names this kernel generation does not know are skipped, as
            // systemd skips them (a filter names calls of all architectures).
            if filter.allow_list != deny {
                filter.calls.insert(call, action);
            } else {
                filter.calls.remove(&call);
            }
        }
    }
    Ok(())
}

/// The address families relive can name.
const FAMILIES: &[(&str, i32)] = &[
    ("AF_UNIX", libc::AF_UNIX),
    ("AF_LOCAL", libc::AF_LOCAL),
    ("AF_INET", libc::AF_INET),
    ("AF_INET6", libc::AF_INET6),
    ("AF_NETLINK", libc::AF_NETLINK),
    ("AF_PACKET", libc::AF_PACKET),
    ("AF_BLUETOOTH", libc::AF_BLUETOOTH),
    ("AF_ALG", libc::AF_ALG),
    ("AF_CAN", libc::AF_CAN),
    ("AF_TIPC", libc::AF_TIPC),
    ("AF_VSOCK", libc::AF_VSOCK),
    ("AF_XDP", libc::AF_XDP),
    ("AF_KEY", libc::AF_KEY),
    ("AF_QIPCRTR", 42),
    ("AF_NFC", libc::AF_NFC),
    ("AF_RDS", libc::AF_RDS),
    ("AF_APPLETALK", libc::AF_APPLETALK),
    ("AF_X25", libc::AF_X25),
    ("AF_AX25", libc::AF_AX25),
    ("AF_IPX", libc::AF_IPX),
    ("AF_ISDN", libc::AF_ISDN),
    ("AF_PPPOX", libc::AF_PPPOX),
    ("AF_LLC", libc::AF_LLC),
    ("AF_MPLS", libc::AF_MPLS),
];

/// RestrictAddressFamilies=: `none`, `[~]AF_X ...`; empty resets.
fn address_families(s: &mut Sandbox, value: &str) -> Result<(), String> {
    if value.is_empty() {
        s.restrict_address_families = None;
        return Ok(());
    }
    if value == "none" {
        s.restrict_address_families = Some(AddressFamilies {
            allow_list: true,
            families: BTreeSet::new(),
        });
        return Ok(());
    }
    let (deny, list) = inverted(value);
    let set = s.restrict_address_families.get_or_insert(AddressFamilies {
        allow_list: !deny,
        families: BTreeSet::new(),
    });
    for name in list.split_ascii_whitespace() {
        let Some(&(_, af)) = FAMILIES.iter().find(|(n, _)| *n == name) else {
            return Err(format!("unknown address family {name}"));
        };
        if set.allow_list != deny {
            set.families.insert(af);
        } else {
            set.families.remove(&af);
        }
    }
    Ok(())
}

/// RestrictNamespaces=: a boolean or `[~]TYPE ...`.
fn namespaces(s: &mut Sandbox, value: &str) -> Result<(), String> {
    let all: u64 = NAMESPACES.iter().map(|(_, f)| f).sum();
    if value.is_empty() {
        s.allowed_namespaces = None;
        return Ok(());
    }
    if let Some(on) = parse_bool(value) {
        s.allowed_namespaces = on.then_some(0);
        return Ok(());
    }
    let (deny, list) = inverted(value);
    let mut flags = 0;
    for name in list.split_ascii_whitespace() {
        let Some(&(_, flag)) = NAMESPACES.iter().find(|(n, _)| *n == name) else {
            return Err(format!("unknown namespace type {name}"));
        };
        flags |= flag;
    }
    s.allowed_namespaces = Some(if deny { all & !flags } else { flags });
    Ok(())
}
