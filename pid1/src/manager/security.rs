//! `relivectl security UNIT`: which protections a service runs with, as
//! systemd-analyze security lists them, from what relive enforces.

use relive_api::units::{Protection, SecurityCheck};
use relive_units::sandbox::{ProtectHome, ProtectProc, ProtectSystem};
use relive_units::{ServiceSection, Unit};

/// The checks for a unit, None when it is not a service.
pub(super) fn checks(unit: &Unit) -> Option<Vec<SecurityCheck>> {
    let svc = unit.service.as_ref()?;
    let mut out = Vec::new();
    let mut add = |setting: &str, on: bool, description: &str| {
        out.push(SecurityCheck {
            setting: setting.to_string(),
            protection: if on { Protection::On } else { Protection::Off },
            description: description.to_string(),
        })
    };
    let s = &svc.sandbox;
    let root = svc.user.as_deref().is_none_or(|u| u == "root" || u == "0");
    add("User", !root, "runs as a user other than root");
    add(
        "NoNewPrivileges",
        svc.process.no_new_privileges,
        "cannot gain privileges through set-user-ID programs",
    );
    add(
        "SecureBits",
        svc.process.secure_bits & (1 << 0) != 0,
        "root has no special capabilities on exec (noroot)",
    );
    add(
        "CapabilityBoundingSet",
        svc.capability_bounding_set.is_some() || has_implied_drops(svc),
        "capabilities are limited",
    );
    add(
        "ProtectSystem",
        s.protect_system != ProtectSystem::No,
        match s.protect_system {
            ProtectSystem::Strict => "the whole file system is read-only",
            ProtectSystem::Full => "/usr, /boot and /etc are read-only",
            _ => "/usr and /boot are read-only",
        },
    );
    add(
        "ProtectHome",
        s.protect_home != ProtectHome::No,
        "home directories are hidden or read-only",
    );
    add("PrivateTmp", s.private_tmp, "/tmp and /var/tmp are its own");
    add(
        "PrivateDevices",
        s.private_devices,
        "no access to hardware devices",
    );
    add(
        "DevicePolicy",
        svc.resources.devices.restricted(),
        "only the devices DeviceAllow= lists (and, unless strict, the pseudo devices)",
    );
    add(
        "PrivateNetwork",
        s.private_network,
        "no access to the network",
    );
    add("PrivateIPC", s.private_ipc, "System V IPC of its own");
    add(
        "PrivateUsers",
        s.private_users,
        "a user namespace of its own: only root and its own IDs mapped",
    );
    add(
        "PrivateMounts",
        s.needs_mount_namespace(),
        "mount namespace of its own",
    );
    add(
        "ProtectKernelTunables",
        s.protect_kernel_tunables,
        "cannot change kernel settings in /proc/sys and /sys",
    );
    add(
        "ProtectKernelModules",
        s.protect_kernel_modules,
        "cannot load kernel modules",
    );
    add(
        "ProtectKernelLogs",
        s.protect_kernel_logs,
        "cannot read the kernel log",
    );
    add(
        "ProtectControlGroups",
        s.protect_control_groups,
        "cgroups are read-only",
    );
    add("ProtectClock", s.protect_clock, "cannot change the clock");
    add(
        "ProtectHostname",
        s.protect_hostname,
        "cannot change the host name",
    );
    add(
        "ProtectProc",
        s.protect_proc != ProtectProc::Default,
        "other users' processes are hidden",
    );
    add(
        "ProcSubset",
        s.proc_subset_pid,
        "only the process part of /proc",
    );
    add(
        "RestrictAddressFamilies",
        s.restrict_address_families.is_some(),
        "socket families are limited",
    );
    add(
        "RestrictNamespaces",
        s.allowed_namespaces.is_some(),
        "cannot create namespaces",
    );
    add(
        "RestrictRealtime",
        s.restrict_realtime,
        "cannot take real-time scheduling",
    );
    add(
        "RestrictSUIDSGID",
        s.restrict_suid_sgid,
        "cannot make set-user-ID files",
    );
    add(
        "LockPersonality",
        s.lock_personality,
        "cannot change its execution domain",
    );
    add(
        "MemoryDenyWriteExecute",
        s.memory_deny_write_execute,
        "no memory both writable and executable",
    );
    add(
        "SystemCallFilter",
        s.system_call_filter.is_some(),
        "system calls are filtered",
    );
    add(
        "SystemCallArchitectures",
        !s.system_call_architectures.is_empty(),
        "only the listed system call ABIs",
    );
    add("RemoveIPC", s.remove_ipc, "its IPC objects go with it");
    add(
        "TasksMax",
        svc.resources.tasks_max.is_some(),
        "the number of tasks is limited",
    );
    add(
        "MemoryMax",
        svc.resources.memory_max.is_some(),
        "memory use is limited",
    );
    for u in &unit.unenforced {
        let protection = if u.best_effort {
            Protection::NotApplied
        } else {
            Protection::Refused
        };
        let why = match relive_units::enforcement::policy(&u.directive) {
            Some(relive_units::enforcement::Policy::BestEffort(why)) => why.to_string(),
            _ => "not implemented by relive: the unit does not start".to_string(),
        };
        match out.iter_mut().find(|c| c.setting == u.directive) {
            Some(c) => {
                c.protection = protection;
                c.description = why;
            }
            None => out.push(SecurityCheck {
                setting: u.directive.clone(),
                protection,
                description: why,
            }),
        }
    }
    Some(out)
}

fn has_implied_drops(svc: &ServiceSection) -> bool {
    let s = &svc.sandbox;
    s.protect_kernel_modules || s.protect_kernel_logs || s.protect_clock || s.private_devices
}
