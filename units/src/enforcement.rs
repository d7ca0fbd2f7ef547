//! Which sandboxing and resource directives relive does not enforce, and
//! what that means for a unit that asks for one.
//!
//! A protection is never dropped silently. A directive in [`BEST_EFFORT`]
//! is not applied, the unit starts, and `relivectl status` and `relivectl
//! security` say what was not applied; any other sandboxing or resource
//! directive relive does not implement keeps the unit from starting, as
//! systemd keeps a unit from starting when a protection fails. The table
//! is relive.unit(5)'s "best effort" list.

/// Directives relive does not apply, with the reason the unit still runs.
pub const BEST_EFFORT: &[(&str, &str)] = &[
    (
        "IPAddressAllow",
        "needs a cgroup BPF socket filter; RestrictAddressFamilies= and PrivateNetwork= are enforced",
    ),
    (
        "IPAddressDeny",
        "needs a cgroup BPF socket filter; RestrictAddressFamilies= and PrivateNetwork= are enforced",
    ),
    (
        "KeyringMode",
        "services share the kernel's per-user session keyrings (as KeyringMode=inherit)",
    ),
    (
        "MountFlags",
        "the service's mounts are always slaves of PID 1's (MountFlags=slave)",
    ),
    (
        "PAMName",
        "relive opens no PAM session (pam_limits, pam_env, pam_keyinit): the service runs with its unit's own settings alone; logind of systemd 256 on fails every login whose user@.service does not start",
    ),
    (
        "SystemCallLog",
        "logging system calls is a diagnostic, not a protection",
    ),
];

/// Directives that ask for a protection or a resource limit relive does
/// not implement: a unit with one does not start.
pub const NOT_IMPLEMENTED: &[&str] = &[
    "DynamicUser",
    "RootDirectory",
    "RootImage",
    "RootImageOptions",
    "RootHash",
    "RootVerity",
    "MountImages",
    "ExtensionImages",
    "ExtensionDirectories",
    "RestrictFileSystems",
    "NetworkNamespacePath",
    "IPCNamespacePath",
    "Personality",
    "SELinuxContext",
    "AppArmorProfile",
    "SmackProcessLabel",
    "LoadCredentialEncrypted",
    "SetCredentialEncrypted",
    "MemoryZSwapMax",
    "MemoryLimit",
    "StartupCPUWeight",
    "CPUShares",
    "StartupCPUShares",
    "CPUQuotaPeriodSec",
    "AllowedCPUs",
    "StartupAllowedCPUs",
    "AllowedMemoryNodes",
    "StartupAllowedMemoryNodes",
    "StartupIOWeight",
    "IODeviceWeight",
    "IOReadBandwidthMax",
    "IOWriteBandwidthMax",
    "IOReadIOPSMax",
    "IOWriteIOPSMax",
    "IODeviceLatencyTargetSec",
    "BlockIOWeight",
    "StartupBlockIOWeight",
    "BlockIODeviceWeight",
    "BlockIOReadBandwidth",
    "BlockIOWriteBandwidth",
    "IPIngressFilterPath",
    "IPEgressFilterPath",
    "BPFProgram",
    "SocketBindAllow",
    "SocketBindDeny",
    "RestrictNetworkInterfaces",
];

/// What an unimplemented directive means for its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Not applied; the unit starts. The reason.
    BestEffort(&'static str),
    /// The unit does not start.
    Refuse,
}

/// The policy for `key` when relive does not implement it; None for a
/// directive that is no protection (its warning is the only consequence).
pub fn policy(key: &str) -> Option<Policy> {
    if let Some((_, why)) = BEST_EFFORT.iter().find(|(k, _)| *k == key) {
        return Some(Policy::BestEffort(why));
    }
    NOT_IMPLEMENTED.contains(&key).then_some(Policy::Refuse)
}

/// Whether a value asks for anything: not empty, not a false boolean, not
/// a setting's neutral value.
pub fn asks_for_something(key: &str, value: &str) -> bool {
    let neutral = match key {
        "KeyringMode" => value == "inherit",
        "MountFlags" => value == "slave",
        _ => false,
    };
    !value.is_empty() && !neutral && crate::load::values::parse_bool(value) != Some(false)
}
