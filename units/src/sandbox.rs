//! The sandbox a service asks for (systemd.exec(5), "Sandboxing" and
//! "System Call Filtering"): what its mount namespace hides or makes
//! read-only, which namespaces it gets, which system calls it may make.
//! relive enforces each setting in the child before the exec; the
//! settings it cannot enforce are listed in [`crate::policy`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// ProtectSystem=.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProtectSystem {
    #[default]
    No,
    /// /usr, /boot and /efi read-only.
    Yes,
    /// Also /etc.
    Full,
    /// The whole tree but /dev, /proc and /sys.
    Strict,
}

/// ProtectHome=.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProtectHome {
    #[default]
    No,
    /// /home, /root and /run/user empty and inaccessible.
    Yes,
    ReadOnly,
    /// An empty, read-only tmpfs on each.
    Tmpfs,
}

/// ProtectProc=: the hidepid= of the service's own /proc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProtectProc {
    #[default]
    Default,
    NoAccess,
    Invisible,
    Ptraceable,
}

impl ProtectProc {
    /// The procfs mount option, None for the default.
    pub fn hidepid(self) -> Option<&'static str> {
        match self {
            ProtectProc::Default => None,
            ProtectProc::NoAccess => Some("noaccess"),
            ProtectProc::Invisible => Some("invisible"),
            ProtectProc::Ptraceable => Some("ptraceable"),
        }
    }
}

/// A path of ReadWritePaths=, ReadOnlyPaths=, InaccessiblePaths= and
/// friends; `optional` for a `-` prefix (missing paths are skipped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRule {
    pub path: String,
    pub optional: bool,
}

/// BindPaths= and BindReadOnlyPaths=: `[-]SOURCE[:DEST[:OPTIONS]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindRule {
    pub source: String,
    pub target: String,
    pub optional: bool,
    pub read_only: bool,
    /// `rbind` (the default) or `norbind`.
    pub recursive: bool,
}

/// TemporaryFileSystem=: `PATH[:OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsRule {
    pub path: String,
    /// mount(8) options, `ro` among them or not.
    pub options: String,
}

/// The action for a filtered system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyscallAction {
    /// SIGSYS, the whole process (systemd's default).
    Kill,
    Errno(i32),
}

/// SystemCallFilter=: system call names, groups already expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallFilter {
    /// An allow-list (everything else fails), or a deny-list.
    pub allow_list: bool,
    /// Each listed call with its own action (`name:EPERM`), if it has one.
    pub calls: BTreeMap<String, Option<SyscallAction>>,
}

/// RestrictAddressFamilies=.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressFamilies {
    pub allow_list: bool,
    /// AF_* numbers.
    pub families: BTreeSet<i32>,
}

/// The namespace types RestrictNamespaces= names, with their clone flags.
pub const NAMESPACES: &[(&str, u64)] = &[
    ("cgroup", libc::CLONE_NEWCGROUP as u64),
    ("ipc", libc::CLONE_NEWIPC as u64),
    ("net", libc::CLONE_NEWNET as u64),
    ("mnt", libc::CLONE_NEWNS as u64),
    ("pid", libc::CLONE_NEWPID as u64),
    ("user", libc::CLONE_NEWUSER as u64),
    ("uts", libc::CLONE_NEWUTS as u64),
];

/// Everything the [`Sandbox`] says about one service; the default is no
/// sandbox at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub protect_system: ProtectSystem,
    pub protect_home: ProtectHome,
    pub protect_proc: ProtectProc,
    /// ProcSubset=pid.
    pub proc_subset_pid: bool,
    pub private_tmp: bool,
    pub private_devices: bool,
    pub private_network: bool,
    pub private_ipc: bool,
    /// PrivateUsers=: a user namespace mapping only root and the
    /// service's user and group.
    pub private_users: bool,
    pub private_mounts: bool,
    pub protect_kernel_tunables: bool,
    pub protect_kernel_modules: bool,
    pub protect_kernel_logs: bool,
    pub protect_control_groups: bool,
    pub protect_clock: bool,
    pub protect_hostname: bool,
    pub read_write_paths: Vec<PathRule>,
    pub read_only_paths: Vec<PathRule>,
    pub inaccessible_paths: Vec<PathRule>,
    /// ExecPaths= and NoExecPaths=: where programs may (not) be run.
    pub exec_paths: Vec<PathRule>,
    pub no_exec_paths: Vec<PathRule>,
    pub temporary_file_systems: Vec<TmpfsRule>,
    pub bind_paths: Vec<BindRule>,
    pub system_call_filter: Option<SyscallFilter>,
    /// SystemCallErrorNumber=: the action for filtered calls without one
    /// of their own.
    pub system_call_error: Option<SyscallAction>,
    /// SystemCallArchitectures=: `native`, `x86`, `x86-64`, `x32`;
    /// empty: all the machine runs.
    pub system_call_architectures: Vec<String>,
    pub restrict_address_families: Option<AddressFamilies>,
    /// RestrictNamespaces=: the CLONE_NEW* flags still allowed; None: no
    /// restriction.
    pub allowed_namespaces: Option<u64>,
    pub restrict_realtime: bool,
    pub lock_personality: bool,
    pub memory_deny_write_execute: bool,
    pub restrict_suid_sgid: bool,
    /// RemoveIPC=: the user's IPC objects go when its last unit stops.
    pub remove_ipc: bool,
}

impl Sandbox {
    /// Whether the service needs a mount namespace of its own.
    pub fn needs_mount_namespace(&self) -> bool {
        self.protect_system != ProtectSystem::No
            || self.protect_home != ProtectHome::No
            || self.protect_proc != ProtectProc::Default
            || self.proc_subset_pid
            || self.private_tmp
            || self.private_devices
            || self.private_mounts
            || self.protect_kernel_tunables
            || self.protect_kernel_modules
            || self.protect_kernel_logs
            || self.protect_control_groups
            || !self.read_write_paths.is_empty()
            || !self.read_only_paths.is_empty()
            || !self.inaccessible_paths.is_empty()
            || !self.exec_paths.is_empty()
            || !self.no_exec_paths.is_empty()
            || !self.temporary_file_systems.is_empty()
            || !self.bind_paths.is_empty()
    }

    /// Whether any setting is enforced with a seccomp filter.
    pub fn needs_seccomp(&self) -> bool {
        self.system_call_filter.is_some()
            || !self.system_call_architectures.is_empty()
            || self.restrict_address_families.is_some()
            || self.allowed_namespaces.is_some()
            || self.restrict_realtime
            || self.lock_personality
            || self.memory_deny_write_execute
            || self.restrict_suid_sgid
            || self.protect_kernel_modules
            || self.protect_kernel_logs
            || self.protect_clock
            || self.protect_hostname
    }
}
