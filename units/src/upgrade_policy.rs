//! relive's built-in live-upgrade policy: services bound to the kernel
//! they run on, which a live upgrade starts fresh (or runs again) in the
//! new kernel instead of checkpointing. Every other long-running service
//! is preserved by default. A unit's own `[X-LiveUpgrade] Mode=`, or a
//! drop-in's, overrides an entry. relive.unit(5) lists the table.

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

/// The built-in entry for `name` (an instance matches its template):
/// its mode and why.
pub fn built_in(name: &str) -> Option<(UpgradeMode, &'static str)> {
    let template = name
        .split_once('@')
        .and_then(|(prefix, rest)| Some(format!("{prefix}@.{}", rest.rsplit_once('.')?.1)));
    BUILT_IN
        .iter()
        .find(|(unit, _, _)| *unit == name || Some(*unit) == template.as_deref())
        .map(|(_, mode, why)| (*mode, *why))
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
        assert_eq!(built_in("getty.target"), None);
    }
}
