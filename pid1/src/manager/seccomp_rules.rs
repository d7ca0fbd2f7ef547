//! The seccomp filters a service's sandbox asks for, one per setting, in
//! systemd's terms (systemd.exec(5)): which calls, with which arguments,
//! fail with which errno.

use relive_sys::seccomp::{self, Action, Arch, Arg, Filter, Program, Rule};
use relive_units::sandbox::{Sandbox, SyscallAction};
use relive_units::syscalls;

const EPERM: Action = Action::Errno(libc::EPERM);

fn action(a: SyscallAction) -> Action {
    match a {
        SyscallAction::Kill => Action::Kill,
        SyscallAction::Errno(n) => Action::Errno(n),
    }
}

/// A deny-list filter of whole calls (a group or names), all with `act`.
fn deny(setting: &'static str, names: &[&str], act: Action) -> Filter {
    let rules = names
        .iter()
        .flat_map(|n| syscalls::expand(n).unwrap_or_default())
        .map(|call| Rule::new(&call, act))
        .collect();
    Filter {
        setting,
        default: Action::Allow,
        rules,
    }
}

/// Every filter `s` needs, compiled; the architectures they accept.
pub(super) fn programs(s: &Sandbox) -> Result<Vec<Program>, String> {
    let arches = architectures(s);
    filters(s)
        .iter()
        .map(|f| seccomp::compile(f, &arches).map_err(|e| e.to_string()))
        .collect()
}

/// SystemCallArchitectures=: the architectures whose calls pass; without
/// it, every one x86-64 runs. With `native` alone, 32-bit calls are killed.
fn architectures(s: &Sandbox) -> Vec<Arch> {
    if s.system_call_architectures.is_empty() {
        return vec![Arch::X8664, Arch::X86, Arch::X32];
    }
    s.system_call_architectures
        .iter()
        .map(|a| match a.as_str() {
            "x86" => Arch::X86,
            "x32" => Arch::X32,
            _ => Arch::X8664,
        })
        .collect()
}

fn filters(s: &Sandbox) -> Vec<Filter> {
    let mut out = Vec::new();
    if !s.system_call_architectures.is_empty() {
        // Only the architecture check: every call of the listed ones passes.
        out.push(Filter {
            setting: "SystemCallArchitectures",
            default: Action::Allow,
            rules: Vec::new(),
        });
    }
    if let Some(families) = &s.restrict_address_families {
        out.push(address_families(families.allow_list, &families.families));
    }
    if let Some(allowed) = s.allowed_namespaces {
        out.push(namespaces(allowed));
    }
    if s.restrict_realtime {
        // sched_setscheduler(pid, policy, param); SCHED_RESET_ON_FORK may be or'ed in.
        let reset_on_fork = 0x4000_0000u64;
        let rules = [
            libc::SCHED_FIFO,
            libc::SCHED_RR,
            6, /* SCHED_DEADLINE */
        ]
        .iter()
        .map(|&p| {
            let arg = Arg::Masked(1, !reset_on_fork & 0xffff_ffff, p as u64);
            Rule::when("sched_setscheduler", EPERM, &[arg])
        })
        .collect();
        out.push(Filter {
            setting: "RestrictRealtime",
            default: Action::Allow,
            rules,
        });
    }
    if s.lock_personality {
        // Only the personality the service starts with (PER_LINUX).
        out.push(Filter {
            setting: "LockPersonality",
            default: Action::Allow,
            rules: vec![Rule::when("personality", EPERM, &[Arg::Ne(0, 0)])],
        });
    }
    if s.memory_deny_write_execute {
        out.push(write_execute());
    }
    if s.restrict_suid_sgid {
        out.push(suid_sgid());
    }
    if s.protect_kernel_modules {
        out.push(deny("ProtectKernelModules", &["@module"], EPERM));
    }
    if s.protect_kernel_logs {
        out.push(deny("ProtectKernelLogs", &["syslog"], EPERM));
    }
    if s.protect_clock {
        out.push(deny("ProtectClock", &["@clock"], EPERM));
    }
    if s.protect_hostname {
        out.push(deny(
            "ProtectHostname",
            &["sethostname", "setdomainname"],
            EPERM,
        ));
    }
    if s.private_devices {
        out.push(deny("PrivateDevices", &["@raw-io"], EPERM));
    }
    // Last: an allow-list without seccomp(2) would refuse the filters
    // after it.
    if let Some(f) = &s.system_call_filter {
        let fallback = s.system_call_error.map(action).unwrap_or(Action::Kill);
        out.push(if f.allow_list {
            Filter {
                setting: "SystemCallFilter",
                default: fallback,
                rules: f
                    .calls
                    .keys()
                    .map(|c| Rule::new(c, Action::Allow))
                    .collect(),
            }
        } else {
            Filter {
                setting: "SystemCallFilter",
                default: Action::Allow,
                rules: f
                    .calls
                    .iter()
                    .map(|(c, a)| Rule::new(c, a.map(action).unwrap_or(fallback)))
                    .collect(),
            }
        });
    }
    out
}

/// socket(2)'s family: EAFNOSUPPORT for those not allowed.
fn address_families(allow_list: bool, families: &std::collections::BTreeSet<i32>) -> Filter {
    const AF_MAX: i32 = 46;
    let refuse = Action::Errno(libc::EAFNOSUPPORT);
    let mut rules = Vec::new();
    if allow_list {
        for af in 0..AF_MAX {
            if !families.contains(&af) {
                rules.push(Rule::when("socket", refuse, &[Arg::Eq(0, af as u64)]));
            }
        }
        rules.push(Rule::when("socket", refuse, &[Arg::Ge(0, AF_MAX as u64)]));
    } else {
        for &af in families {
            rules.push(Rule::when("socket", refuse, &[Arg::Eq(0, af as u64)]));
        }
    }
    Filter {
        setting: "RestrictAddressFamilies",
        default: Action::Allow,
        rules,
    }
}

/// RestrictNamespaces=: unshare(2), clone(2) and setns(2) with a flag
/// not allowed fail; clone3(2), whose flags seccomp cannot read, returns
/// ENOSYS so that the C library falls back to clone(2).
fn namespaces(allowed: u64) -> Filter {
    let all: u64 = relive_units::sandbox::NAMESPACES
        .iter()
        .map(|(_, f)| f)
        .sum();
    let mut rules = vec![Rule::new("clone3", Action::Errno(libc::ENOSYS))];
    for flag in (0..64).map(|b| 1u64 << b).filter(|f| all & f != 0) {
        if allowed & flag != 0 {
            continue;
        }
        for (call, arg) in [("unshare", 0), ("clone", 0), ("setns", 1)] {
            rules.push(Rule::when(call, EPERM, &[Arg::Masked(arg, flag, flag)]));
        }
    }
    if allowed & all != all {
        // setns(fd, 0) joins whatever namespace fd is.
        rules.push(Rule::when("setns", EPERM, &[Arg::Eq(1, 0)]));
    }
    Filter {
        setting: "RestrictNamespaces",
        default: Action::Allow,
        rules,
    }
}

/// MemoryDenyWriteExecute=: no mapping both writable and executable, and
/// none made executable later.
fn write_execute() -> Filter {
    let wx = (libc::PROT_WRITE | libc::PROT_EXEC) as u64;
    let x = libc::PROT_EXEC as u64;
    let shm_exec = 0o100000u64;
    Filter {
        setting: "MemoryDenyWriteExecute",
        default: Action::Allow,
        rules: vec![
            Rule::when("mmap", EPERM, &[Arg::Masked(2, wx, wx)]),
            Rule::when("mprotect", EPERM, &[Arg::Masked(2, x, x)]),
            Rule::when("pkey_mprotect", EPERM, &[Arg::Masked(2, x, x)]),
            Rule::when("shmat", EPERM, &[Arg::Masked(2, shm_exec, shm_exec)]),
        ],
    }
}

/// RestrictSUIDSGID=: no file gets the set-user-ID or set-group-ID bit.
fn suid_sgid() -> Filter {
    let mut rules = Vec::new();
    let creat = libc::O_CREAT as u64;
    for bit in [libc::S_ISUID as u64, libc::S_ISGID as u64] {
        let mode = |arg| Arg::Masked(arg, bit, bit);
        rules.push(Rule::when("chmod", EPERM, &[mode(1)]));
        rules.push(Rule::when("fchmod", EPERM, &[mode(1)]));
        rules.push(Rule::when("fchmodat", EPERM, &[mode(2)]));
        rules.push(Rule::when("mkdir", EPERM, &[mode(1)]));
        rules.push(Rule::when("mkdirat", EPERM, &[mode(2)]));
        rules.push(Rule::when("mknod", EPERM, &[mode(1)]));
        rules.push(Rule::when("mknodat", EPERM, &[mode(2)]));
        rules.push(Rule::when("creat", EPERM, &[mode(1)]));
        let created = Arg::Masked(1, creat, creat);
        rules.push(Rule::when("open", EPERM, &[created, mode(2)]));
        let created_at = Arg::Masked(2, creat, creat);
        rules.push(Rule::when("openat", EPERM, &[created_at, mode(3)]));
    }
    Filter {
        setting: "RestrictSUIDSGID",
        default: Action::Allow,
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_compiles_with_libseccomp() {
        let mut s = Sandbox {
            restrict_realtime: true,
            lock_personality: true,
            memory_deny_write_execute: true,
            restrict_suid_sgid: true,
            protect_kernel_modules: true,
            protect_kernel_logs: true,
            protect_clock: true,
            protect_hostname: true,
            private_devices: true,
            allowed_namespaces: Some(libc::CLONE_NEWNET as u64),
            system_call_architectures: vec!["native".into()],
            ..Default::default()
        };
        s.restrict_address_families = Some(relive_units::sandbox::AddressFamilies {
            allow_list: true,
            families: [libc::AF_UNIX, libc::AF_INET].into(),
        });
        let mut filter = relive_units::sandbox::SyscallFilter {
            allow_list: true,
            ..Default::default()
        };
        for call in syscalls::expand("@system-service").unwrap() {
            filter.calls.insert(call, None);
        }
        s.system_call_filter = Some(filter);
        let programs = programs(&s).unwrap();
        assert_eq!(programs.len(), filters(&s).len());
        assert!(programs
            .iter()
            .all(|p| !p.0.is_empty() && p.0.len() <= 4096));
    }
}
