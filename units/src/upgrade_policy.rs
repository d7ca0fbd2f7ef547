//! relive's built-in live-upgrade policy: services bound to the kernel
//! they run on, and the plumbing whose state is PID 1's or the kernel's
//! (the journal, logind), which a live upgrade starts fresh (or runs
//! again) in the new kernel instead of checkpointing, as systemd
//! restarts them. dbus-daemon is preserved, with its clients'
//! connections. Every other long-running service is preserved by
//! default. A unit's own `[X-LiveUpgrade] Mode=`, or a drop-in's,
//! overrides an entry. relive.unit(5) lists the table.
//!
//! [`CARRIED_ON_RESTART`] names the state in /run a restarted unit reads
//! back when it starts (logind's sessions): it crosses the kexec with the
//! store, so that the fresh process finds it as after a restart.

use crate::model::UpgradeMode;

/// (unit or template name, mode, why).
pub const BUILT_IN: &[(&str, UpgradeMode, &str)] = &[
    (
        "systemd-udevd.service",
        UpgradeMode::Restart,
        "kernel-bound: udevd talks to the kernel over netlink and tracks devices it numbers anew at each boot",
    ),
    (
        "systemd-networkd.service",
        UpgradeMode::Restart,
        "kernel-bound: the new kernel starts without the links, addresses and routes networkd configured",
    ),
    (
        "getty@.service",
        UpgradeMode::Restart,
        "kernel-bound: a getty owns its terminal's session; a fresh one gives the prompt again",
    ),
    (
        "serial-getty@.service",
        UpgradeMode::Restart,
        "kernel-bound: a getty owns its terminal's session; a fresh one gives the prompt again",
    ),
    (
        "systemd-journald.service",
        UpgradeMode::Restart,
        "plumbing: its sockets and its file descriptor store are PID 1's; restarted with them as systemd restarts it, the services' output streams reopened",
    ),
    (
        "systemd-logind.service",
        UpgradeMode::Restart,
        "plumbing: it holds the kernel's seats, input and DRM devices for the sessions and asks PID 1 for their scopes; its sessions, users and seats in /run/systemd cross the kexec and it reads them back",
    ),
    (
        "systemd-timesyncd.service",
        UpgradeMode::Restart,
        "kernel-bound: the clock it disciplines is the new kernel's",
    ),
    (
        "systemd-modules-load.service",
        UpgradeMode::Rerun,
        "kernel-bound: loads the new kernel's modules",
    ),
    (
        "systemd-sysctl.service",
        UpgradeMode::Rerun,
        "kernel-bound: the new kernel starts with default sysctl settings",
    ),
    (
        "kmod-static-nodes.service",
        UpgradeMode::Rerun,
        "kernel-bound: device nodes of the new kernel's modules",
    ),
    (
        "systemd-tmpfiles-setup-dev.service",
        UpgradeMode::Rerun,
        "kernel-bound: static device nodes in the new kernel's /dev",
    ),
    (
        "systemd-udev-trigger.service",
        UpgradeMode::Rerun,
        "kernel-bound: replays the new kernel's device events",
    ),
];

/// Early rerun units that run again beside the restores rather than
/// before the first one: bookkeeping that no restored process waits for,
/// which under emulation took seconds of CPU from the most critical
/// restores (unit, why).
pub const BESIDE_RESTORES: &[(&str, &str)] = &[
    (
        "systemd-update-utmp.service",
        "records the boot in utmp and wtmp, which no restored process reads first",
    ),
    (
        "systemd-journal-flush.service",
        "moves the journal to /var: journald's own work",
    ),
    (
        "systemd-random-seed.service",
        "credits the saved seed to the new kernel's pool, which fills on its own meanwhile",
    ),
    (
        "systemd-binfmt.service",
        "registers binary formats for programs started later; a restore starts none",
    ),
    (
        "systemd-sysusers.service",
        "creates system users; restored processes hold numeric IDs already",
    ),
    (
        "ldconfig.service",
        "rebuilds the dynamic linker's cache for programs started later",
    ),
    (
        "systemd-journal-catalog-update.service",
        "rebuilds journalctl's message catalog",
    ),
    (
        "systemd-update-done.service",
        "stamps /etc and /var as updated",
    ),
    (
        "systemd-udev-trigger.service",
        "replays the device events for udev's rules; the devices are in the new kernel's /dev already, and under emulation its coldplug took the CPUs from the network locks and the most critical restores",
    ),
];

/// Why `name` reruns beside the restores, if the built-in table says so.
pub fn beside_restores(name: &str) -> Option<&'static str> {
    BESIDE_RESTORES
        .iter()
        .find(|(unit, _)| *unit == name)
        .map(|(_, why)| *why)
}

/// Services relive starts in an IPC namespace of their own (as
/// `PrivateIPC=yes`) when they are to be preserved (unit or template
/// name, why): they keep System V shared memory for themselves, and CRIU
/// dumps System V IPC only with the IPC namespace it lives in, never the
/// machine's. With `Mode=restart` or `rerun` the unit starts as its file
/// says.
pub const OWN_IPC_NAMESPACE: &[(&str, &str)] = &[(
    "postgresql@.service",
    "PostgreSQL keeps a System V segment (its interlock against orphaned backends) beside its mmap'd shared memory; CRIU carries it only with an IPC namespace of the cluster's own",
)];

/// Why `name` gets an IPC namespace of its own when preserved, if the
/// built-in table says so.
pub fn own_ipc_namespace(name: &str) -> Option<&'static str> {
    let template = template_of(name);
    OWN_IPC_NAMESPACE
        .iter()
        .find(|(unit, _)| *unit == name || Some(*unit) == template.as_deref())
        .map(|(_, why)| *why)
}

/// (unit, paths under /run it reads back when it starts): carried across
/// the kexec when the unit is restarted.
pub const CARRIED_ON_RESTART: &[(&str, &[&str])] = &[(
    "systemd-logind.service",
    &["systemd/sessions", "systemd/users", "systemd/seats"],
)];

/// What of /run a restarted `name` reads back when it starts.
pub fn carried_on_restart(name: &str) -> &'static [&'static str] {
    CARRIED_ON_RESTART
        .iter()
        .find(|(unit, _)| *unit == name)
        .map_or(&[], |(_, paths)| paths)
}

/// The built-in entry for `name` (an instance matches its template):
/// its mode and why.
pub fn built_in(name: &str) -> Option<(UpgradeMode, &'static str)> {
    let template = template_of(name);
    BUILT_IN
        .iter()
        .find(|(unit, _, _)| *unit == name || Some(*unit) == template.as_deref())
        .map(|(_, mode, why)| (*mode, *why))
}

/// `getty@tty1.service` -> `getty@.service`; None for a unit that is
/// not an instance.
fn template_of(name: &str) -> Option<String> {
    name.split_once('@')
        .and_then(|(prefix, rest)| Some(format!("{prefix}@.{}", rest.rsplit_once('.')?.1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_match_their_template_and_others_nothing() {
        assert_eq!(
            built_in("getty@tty1.service").map(|(m, _)| m),
            Some(UpgradeMode::Restart)
        );
        assert_eq!(
            built_in("systemd-udevd.service").map(|(m, _)| m),
            Some(UpgradeMode::Restart)
        );
        assert_eq!(built_in("redis-server.service"), None);
        // dbus-daemon crosses the kexec with its clients' connections.
        assert_eq!(built_in("dbus.service"), None);
        assert_eq!(
            carried_on_restart("systemd-logind.service"),
            ["systemd/sessions", "systemd/users", "systemd/seats"]
        );
        assert!(carried_on_restart("dbus.service").is_empty());
        assert_eq!(built_in("getty.target"), None);
        assert!(own_ipc_namespace("postgresql@15-main.service").is_some());
        assert_eq!(own_ipc_namespace("redis-server.service"), None);
    }
}
