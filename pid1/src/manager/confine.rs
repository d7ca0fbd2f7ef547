//! What a service's process is confined by, put together for one exec:
//! its namespaces and mounts (`sandbox`), its seccomp filters
//! (`seccomp_rules`), the capabilities the sandbox takes away and the
//! no_new_privs the filters imply. Commands with the `+` prefix run
//! unconfined, as in systemd (`!` only runs as root).

use std::path::{Path, PathBuf};

use relive_sys::namespace::NamespacePlan;
use relive_sys::seccomp::Program;
use relive_units::ServiceSection;

/// The confinement of one exec.
#[derive(Debug, Default)]
pub(super) struct Confinement {
    pub namespaces: NamespacePlan,
    pub seccomp: Vec<Program>,
    /// CapabilityBoundingSet= less what the sandbox drops; None: PID 1's.
    pub bounding_set: Option<u64>,
    /// NoNewPrivileges=, or implied by a seccomp filter on a service
    /// that will not hold CAP_SYS_ADMIN (the kernel demands one of them).
    pub no_new_privs: bool,
}

const CAP_SYS_MODULE: u32 = 16;
const CAP_SYS_RAWIO: u32 = 17;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_TIME: u32 = 25;
const CAP_MKNOD: u32 = 27;
const CAP_SYSLOG: u32 = 34;
const CAP_WAKE_ALARM: u32 = 35;

/// `privileged`: the command's `+` prefix; `uid`: the user it runs as.
pub(super) fn confinement(
    unit: &str,
    svc: &ServiceSection,
    privileged: bool,
    uid: u32,
) -> Result<Confinement, String> {
    if privileged {
        return Ok(Confinement::default());
    }
    let s = &svc.sandbox;
    let mut bounding = svc.capability_bounding_set;
    let mut drop = |caps: &[u32]| {
        let mask: u64 = caps.iter().map(|c| 1u64 << c).sum();
        bounding = Some(bounding.unwrap_or(u64::MAX) & !mask);
    };
    if s.protect_kernel_modules {
        drop(&[CAP_SYS_MODULE]);
    }
    if s.protect_kernel_logs {
        drop(&[CAP_SYSLOG]);
    }
    if s.protect_clock {
        drop(&[CAP_SYS_TIME, CAP_WAKE_ALARM]);
    }
    if s.private_devices {
        drop(&[CAP_MKNOD, CAP_SYS_RAWIO]);
    }
    let namespaces = if s.needs_mount_namespace() {
        // PID 1's mounts: settings on / reach each, and late API mounts
        // are left out.
        let points = super::mounts::mount_points();
        let own = super::credentials::directory(unit);
        super::sandbox::plan(s, &writable_directories(svc), &points, &own)?
    } else {
        super::sandbox::plan(s, &[], &[], Path::new(""))?
    };
    let seccomp = super::seccomp_rules::programs(s)?;
    let keeps_admin = uid == 0 && bounding.is_none_or(|b| b & (1 << CAP_SYS_ADMIN) != 0);
    Ok(Confinement {
        namespaces,
        no_new_privs: svc.process.no_new_privileges || (!seccomp.is_empty() && !keeps_admin),
        seccomp,
        bounding_set: bounding,
    })
}

/// The unit's own directories, writable whatever ProtectSystem= says.
fn writable_directories(svc: &ServiceSection) -> Vec<PathBuf> {
    use relive_units::directories::DirectoryKind;
    let runtime = svc
        .runtime_directory
        .iter()
        .map(|d| PathBuf::from("/run").join(d));
    let others = DirectoryKind::ALL.into_iter().flat_map(|kind| {
        let base = PathBuf::from(kind.base());
        svc.directories
            .get(kind)
            .names
            .iter()
            .map(move |d| base.join(d))
            .collect::<Vec<_>>()
    });
    runtime.chain(others).collect()
}
