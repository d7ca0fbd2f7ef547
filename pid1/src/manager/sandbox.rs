//! A service's mount namespace, planned in PID 1: systemd.exec(5)'s
//! ProtectSystem=, ProtectHome=, PrivateTmp=, PrivateDevices=,
//! ProtectKernel*=, ProtectControlGroups=, ProtectProc=, the path lists
//! and PrivateNetwork=/PrivateIPC=/ProtectHostname= as namespaces.
//!
//! Every setting becomes an entry on a path; entries run from the
//! shallowest path to the deepest, so the more specific one wins
//! (ReadWritePaths=/var/lib/x inside ProtectSystem=strict), as in systemd.
//! Paths are resolved (symbolic links followed) and checked here: a
//! missing path fails the start, or is skipped with a `-` prefix.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use relive_sys::namespace::{MountStep, NamespacePlan, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_RDONLY};
use relive_units::sandbox::{PathRule, ProtectHome, ProtectSystem, Sandbox};

/// Where PID 1 keeps the empty, mode 000 nodes bound over
/// InaccessiblePaths= (systemd's /run/systemd/inaccessible).
const INACCESSIBLE: &str = "/run/relive/inaccessible";
/// Where each unit's credentials are mounted.
const CREDENTIALS: &str = super::credentials::BASE;
/// An empty directory the private /dev is built on before it moves.
const DEV_STAGE: &str = "/run/relive/private-dev";

/// What happens at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// A tmpfs (PrivateTmp=, TemporaryFileSystem=, ProtectHome=tmpfs).
    Tmpfs {
        options: String,
        read_only: bool,
    },
    /// A new procfs with these options (ProtectProc=, ProcSubset=).
    Proc(String),
    /// The private /dev of PrivateDevices=.
    Devices,
    Bind {
        source: PathBuf,
        recursive: bool,
        read_only: bool,
    },
    /// Mount attributes to set and clear ([`Mode`]).
    Attr(Mode),
    Inaccessible,
}

/// What an attribute entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    ReadWrite,
    ReadOnly,
    /// ProtectSystem=strict: read-only, but the API file systems (/dev,
    /// /proc, /sys) keep theirs.
    ReadOnlyButApi,
    NoExec,
    Exec,
}

impl Mode {
    /// (set, clear) for mount_setattr(2).
    fn attributes(self) -> (u64, u64) {
        match self {
            Mode::ReadWrite => (0, MOUNT_ATTR_RDONLY),
            Mode::ReadOnly | Mode::ReadOnlyButApi => (MOUNT_ATTR_RDONLY, 0),
            Mode::NoExec => (MOUNT_ATTR_NOEXEC, 0),
            Mode::Exec => (0, MOUNT_ATTR_NOEXEC),
        }
    }
}

impl Entry {
    /// At one path, what runs first: new mounts, then their modes, the
    /// more restrictive last (ReadOnlyPaths= beats ReadWritePaths= on the
    /// same path) but ExecPaths=, which exists to make exceptions.
    fn rank(&self) -> u8 {
        match self {
            Entry::Tmpfs { .. } | Entry::Proc(_) | Entry::Devices | Entry::Bind { .. } => 0,
            Entry::Attr(Mode::ReadOnlyButApi) => 1,
            Entry::Attr(Mode::ReadWrite) => 2,
            Entry::Attr(Mode::ReadOnly) => 3,
            Entry::Attr(Mode::NoExec) => 4,
            Entry::Attr(Mode::Exec) => 5,
            Entry::Inaccessible => 6,
        }
    }
}

/// The namespaces and mounts `s` asks for. `writable` are the unit's own
/// directories (RuntimeDirectory=, StateDirectory=, ...), writable even
/// under ProtectSystem=strict; `mount_points` PID 1's, from mountinfo.
pub(super) fn plan(
    s: &Sandbox,
    writable: &[PathBuf],
    mount_points: &[PathBuf],
    own_credentials: &Path,
) -> Result<NamespacePlan, String> {
    let mut flags = 0;
    if s.private_network {
        flags |= libc::CLONE_NEWNET;
    }
    if s.private_ipc {
        flags |= libc::CLONE_NEWIPC;
    }
    if s.protect_hostname {
        flags |= libc::CLONE_NEWUTS;
    }
    let mut plan = NamespacePlan {
        unshare: flags,
        mounts: Vec::new(),
        loopback_up: s.private_network,
    };
    if !s.needs_mount_namespace() {
        return Ok(plan);
    }
    plan.unshare |= libc::CLONE_NEWNS;
    // PID 1's own mounts the service must not hold: the handover store
    // (process images of every service) if an upgrade has it mounted.
    // Mounts are private, so PID 1's unmount would not reach a copy here,
    // and the copy would keep the store's device busy.
    let handover = Path::new(relive_store::memory::MOUNT_POINT);
    plan.mounts.push(MountStep::Unmount { path: c(handover)? });
    // Nor the services' time namespace, pinned by a bind mount of its
    // nsfs file after a live upgrade: a service joins it by its spawn,
    // and CRIU could not rebuild such a mount in the next kernel ("Failed
    // to open_tree /run/relive/timens/: Not a directory"), so that the
    // service's second upgrade would lose its state.
    let timens = Path::new(relive_sys::timens::PATH);
    plan.mounts.push(MountStep::Unmount { path: c(timens)? });
    // Below the API file systems, only what relive mounts itself before
    // any restore: what units mount there later (/dev/hugepages,
    // /sys/kernel/config, binfmt_misc, ...) does not exist yet when a
    // live upgrade restores the service on the next kernel, and CRIU
    // could not rebuild the namespace.
    let late_api = |m: &Path| {
        let api = ["/dev", "/sys", "/proc"].iter().any(|a| m.starts_with(a));
        // relive mounts these at boot, before any restore.
        let early = relive_sys::mounts::API_MOUNTS
            .iter()
            .any(|e| m == Path::new(e.target));
        api && !early
    };
    // Other units' credentials (their own ramfs each): not this
    // service's to see, and gone in the next kernel until their unit
    // runs again, so that CRIU could not rebuild the namespace.
    let foreign_credentials =
        |m: &Path| m.parent() == Some(Path::new(CREDENTIALS)) && m != own_credentials;
    let (gone, kept): (Vec<PathBuf>, Vec<PathBuf>) = mount_points.iter().cloned().partition(|m| {
        m.starts_with(handover) || m == timens || late_api(m) || foreign_credentials(m)
    });
    for m in gone
        .iter()
        .filter(|m| late_api(m) || foreign_credentials(m))
    {
        plan.mounts.push(MountStep::Unmount { path: c(m)? });
    }
    let mut entries = Vec::new();
    entries_of(s, writable, &mut entries)?;
    // Stable: among equal depths and ranks, the order of the settings.
    entries.sort_by_key(|(path, e): &(PathBuf, Entry)| (path.components().count(), e.rank()));
    for (path, entry) in entries {
        steps(&path, entry, &kept, &mut plan.mounts)?;
    }
    Ok(plan)
}

/// Every setting's entries, paths resolved; missing optional paths left out.
fn entries_of(
    s: &Sandbox,
    writable: &[PathBuf],
    out: &mut Vec<(PathBuf, Entry)>,
) -> Result<(), String> {
    let optional = |p: &str| PathRule {
        path: p.to_string(),
        optional: true,
    };
    let mut add = |rules: &[PathRule], entry: Entry, setting: &str| -> Result<(), String> {
        for rule in rules {
            match std::fs::canonicalize(&rule.path) {
                Ok(path) => out.push((path, entry.clone())),
                Err(_) if rule.optional => {}
                Err(e) => return Err(format!("{setting}={}: {e}", rule.path)),
            }
        }
        Ok(())
    };
    let system: &[&str] = match s.protect_system {
        ProtectSystem::No | ProtectSystem::Strict => &[],
        ProtectSystem::Yes => &["/usr", "/boot", "/efi"],
        ProtectSystem::Full => &["/usr", "/boot", "/efi", "/etc"],
    };
    add(
        &rules(system, optional),
        Entry::Attr(Mode::ReadOnly),
        "ProtectSystem",
    )?;
    if s.protect_system == ProtectSystem::Strict {
        add(
            &[optional("/")],
            Entry::Attr(Mode::ReadOnlyButApi),
            "ProtectSystem",
        )?;
    }
    let home = rules(&["/home", "/root", "/run/user"], optional);
    match s.protect_home {
        ProtectHome::No => {}
        ProtectHome::Yes => add(&home, Entry::Inaccessible, "ProtectHome")?,
        ProtectHome::ReadOnly => add(&home, Entry::Attr(Mode::ReadOnly), "ProtectHome")?,
        ProtectHome::Tmpfs => {
            let tmpfs = Entry::Tmpfs {
                options: "mode=0755".into(),
                read_only: true,
            };
            add(&home, tmpfs, "ProtectHome")?
        }
    }
    if s.private_tmp {
        let tmpfs = Entry::Tmpfs {
            options: "mode=1777".into(),
            read_only: false,
        };
        add(&rules(&["/tmp", "/var/tmp"], optional), tmpfs, "PrivateTmp")?;
    }
    if s.private_devices {
        add(&[optional("/dev")], Entry::Devices, "PrivateDevices")?;
    }
    let mut proc_options = Vec::new();
    if let Some(hidepid) = s.protect_proc.hidepid() {
        proc_options.push(format!("hidepid={hidepid}"));
    }
    if s.proc_subset_pid {
        proc_options.push("subset=pid".to_string());
    }
    if !proc_options.is_empty() {
        add(
            &[optional("/proc")],
            Entry::Proc(proc_options.join(",")),
            "ProtectProc",
        )?;
    }
    if s.protect_kernel_tunables {
        let read_only = [
            "/proc/acpi",
            "/proc/apm",
            "/proc/asound",
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/latency_stats",
            "/proc/mttr",
            "/proc/scsi",
            "/proc/sys",
            "/proc/sysrq-trigger",
            "/proc/timer_stats",
            "/sys",
        ];
        add(
            &rules(&read_only, optional),
            Entry::Attr(Mode::ReadOnly),
            "ProtectKernelTunables",
        )?;
        let hidden = rules(&["/proc/kallsyms", "/proc/kcore"], optional);
        add(&hidden, Entry::Inaccessible, "ProtectKernelTunables")?;
    }
    if s.protect_kernel_modules {
        let modules = rules(&["/lib/modules", "/usr/lib/modules"], optional);
        add(&modules, Entry::Inaccessible, "ProtectKernelModules")?;
    }
    if s.protect_kernel_logs {
        let logs = rules(&["/proc/kmsg", "/dev/kmsg"], optional);
        add(&logs, Entry::Inaccessible, "ProtectKernelLogs")?;
    }
    if s.protect_control_groups {
        let cgroups = [optional("/sys/fs/cgroup")];
        add(
            &cgroups,
            Entry::Attr(Mode::ReadOnly),
            "ProtectControlGroups",
        )?;
    }
    add(
        &s.read_write_paths,
        Entry::Attr(Mode::ReadWrite),
        "ReadWritePaths",
    )?;
    add(
        &s.read_only_paths,
        Entry::Attr(Mode::ReadOnly),
        "ReadOnlyPaths",
    )?;
    add(
        &s.inaccessible_paths,
        Entry::Inaccessible,
        "InaccessiblePaths",
    )?;
    add(&s.no_exec_paths, Entry::Attr(Mode::NoExec), "NoExecPaths")?;
    add(&s.exec_paths, Entry::Attr(Mode::Exec), "ExecPaths")?;
    let own: Vec<PathRule> = writable
        .iter()
        .map(|p| optional(&p.to_string_lossy()))
        .collect();
    add(&own, Entry::Attr(Mode::ReadWrite), "StateDirectory")?;
    for t in &s.temporary_file_systems {
        let mut read_only = false;
        let mut options = vec!["mode=0755".to_string()];
        for o in t.options.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => read_only = true,
                "rw" => read_only = false,
                o => options.push(o.to_string()),
            }
        }
        let tmpfs = Entry::Tmpfs {
            options: options.join(","),
            read_only,
        };
        add(&[optional(&t.path)], tmpfs, "TemporaryFileSystem")?;
    }
    for b in &s.bind_paths {
        let source = match std::fs::canonicalize(&b.source) {
            Ok(p) => p,
            Err(_) if b.optional => continue,
            Err(e) => return Err(format!("BindPaths={}: {e}", b.source)),
        };
        let bind = Entry::Bind {
            source,
            recursive: b.recursive,
            read_only: b.read_only,
        };
        let target = PathRule {
            path: b.target.clone(),
            optional: b.optional,
        };
        add(&[target], bind, "BindPaths")?;
    }
    Ok(())
}

fn rules(paths: &[&str], rule: impl Fn(&str) -> PathRule) -> Vec<PathRule> {
    paths.iter().map(|p| rule(p)).collect()
}

fn c(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: a NUL byte in a path", path.display()))
}

/// A read-only attribute step.
fn read_only_step(path: &Path, recursive: bool, optional: bool) -> Result<MountStep, String> {
    Ok(MountStep::Attr {
        path: c(path)?,
        set: MOUNT_ATTR_RDONLY,
        clear: 0,
        recursive,
        optional,
    })
}

/// Sets `mode` on `path` and below. On / itself, mount by mount (a bind
/// of / onto itself would not be the root the service sees); elsewhere
/// `path` is bound onto itself first, so that a path that is no mount
/// point of its own becomes one.
fn set_mode(
    path: &Path,
    mode: Mode,
    mount_points: &[PathBuf],
    out: &mut Vec<MountStep>,
) -> Result<(), String> {
    let (set, clear) = mode.attributes();
    if path == Path::new("/") {
        let api = ["/dev", "/proc", "/sys"].map(Path::new);
        for m in mount_points {
            if mode == Mode::ReadOnlyButApi && api.iter().any(|a| m.starts_with(a)) {
                continue;
            }
            out.push(MountStep::Attr {
                path: c(m)?,
                set,
                clear,
                recursive: false,
                optional: true,
            });
        }
        return Ok(());
    }
    out.push(MountStep::Bind {
        source: c(path)?,
        target: c(path)?,
        recursive: true,
        optional: true,
    });
    out.push(MountStep::Attr {
        path: c(path)?,
        set,
        clear,
        recursive: true,
        optional: true,
    });
    Ok(())
}

fn steps(
    path: &Path,
    entry: Entry,
    mount_points: &[PathBuf],
    out: &mut Vec<MountStep>,
) -> Result<(), String> {
    let tmpfs = |target: &Path, options: &str| -> Result<MountStep, String> {
        Ok(MountStep::Fresh {
            fstype: c"tmpfs".into(),
            target: c(target)?,
            flags: libc::MS_NOSUID | libc::MS_NODEV,
            data: CString::new(options).map_err(|_| "a NUL byte in options".to_string())?,
        })
    };
    // What replaces a path's content first takes away what was mounted
    // there: no mount stays hidden below another, which the service could
    // not reach anyway and CRIU could not rebuild.
    if matches!(
        entry,
        Entry::Tmpfs { .. } | Entry::Proc(_) | Entry::Inaccessible
    ) {
        out.push(MountStep::Unmount { path: c(path)? });
    }
    match entry {
        Entry::Tmpfs { options, read_only } => {
            out.push(tmpfs(path, &options)?);
            if read_only {
                out.push(read_only_step(path, false, false)?);
            }
        }
        Entry::Proc(options) => out.push(MountStep::Fresh {
            fstype: c"proc".into(),
            target: c(path)?,
            flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            data: CString::new(options).map_err(|_| "a NUL byte in options".to_string())?,
        }),
        Entry::Devices => devices(path, out, tmpfs)?,
        Entry::Bind {
            source,
            recursive,
            read_only,
        } => {
            out.push(MountStep::Bind {
                source: c(&source)?,
                target: c(path)?,
                recursive,
                optional: false,
            });
            if read_only {
                out.push(read_only_step(path, recursive, false)?);
            }
        }
        Entry::Attr(mode) => set_mode(path, mode, mount_points, out)?,
        Entry::Inaccessible => {
            let kind = if path.is_dir() { "dir" } else { "reg" };
            let source = Path::new(INACCESSIBLE).join(kind);
            out.push(MountStep::Bind {
                source: c(&source)?,
                target: c(path)?,
                recursive: false,
                optional: true,
            });
            out.push(read_only_step(path, false, true)?);
        }
    }
    Ok(())
}

/// PrivateDevices=: a tmpfs with the harmless device nodes of PID 1's /dev
/// bound into it, /dev/pts and /dev/shm shared, and the usual
/// symbolic links; built aside, then moved onto /dev.
fn devices(
    dev: &Path,
    out: &mut Vec<MountStep>,
    tmpfs: impl Fn(&Path, &str) -> Result<MountStep, String>,
) -> Result<(), String> {
    let stage = Path::new(DEV_STAGE);
    out.push(tmpfs(stage, "mode=0755")?);
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        out.push(MountStep::CreateFile {
            path: c(&stage.join(node))?,
        });
        out.push(MountStep::Bind {
            source: c(&dev.join(node))?,
            target: c(&stage.join(node))?,
            recursive: false,
            optional: true,
        });
    }
    for (dir, mode) in [("pts", 0o755), ("shm", 0o1777)] {
        out.push(MountStep::Mkdir {
            path: c(&stage.join(dir))?,
            mode,
        });
        out.push(MountStep::Bind {
            source: c(&dev.join(dir))?,
            target: c(&stage.join(dir))?,
            recursive: false,
            optional: true,
        });
    }
    for (name, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("log", "/run/systemd/journal/dev-log"),
    ] {
        out.push(MountStep::Symlink {
            target: CString::new(target).map_err(|e| e.to_string())?,
            path: c(&stage.join(name))?,
        });
    }
    out.push(MountStep::Unmount { path: c(dev)? });
    out.push(MountStep::Move {
        from: c(stage)?,
        to: c(dev)?,
    });
    Ok(())
}

/// The empty nodes InaccessiblePaths= binds and the staging directory of
/// PrivateDevices=: made once, root's, mode 000 (700 for the stage).
pub(super) fn prepare_run_dirs() -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let dir = Path::new(INACCESSIBLE);
    let made = |e: std::io::Error| format!("{INACCESSIBLE}: {e}");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(made)?;
    let empty_dir = dir.join("dir");
    if !empty_dir.exists() {
        std::fs::DirBuilder::new()
            .mode(0o000)
            .create(&empty_dir)
            .map_err(made)?;
    }
    let empty_file = dir.join("reg");
    if !empty_file.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o000)
            .open(&empty_file)
            .map_err(made)?;
    }
    for p in [&empty_dir, &empty_file] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o000)).map_err(made)?;
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(DEV_STAGE)
        .map_err(|e| format!("{DEV_STAGE}: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use relive_units::sandbox::PathRule;

    fn describe(plan: &NamespacePlan) -> Vec<String> {
        plan.mounts.iter().map(|m| m.to_string()).collect()
    }

    /// The more specific path wins: ProtectSystem=strict first on each of
    /// PID 1's mounts (but the API ones), then the writable path below it;
    /// a private /tmp replaces what was mounted there; late API mounts
    /// and the handover store are left out of the namespace.
    #[test]
    fn settings_become_mount_steps_shallowest_first() {
        let s = Sandbox {
            protect_system: ProtectSystem::Strict,
            private_tmp: true,
            read_write_paths: vec![PathRule {
                path: "/tmp".into(),
                optional: false,
            }],
            ..Default::default()
        };
        let points: Vec<PathBuf> = [
            "/",
            "/proc",
            "/dev/hugepages",
            "/run",
            "/run/relive/handover",
            "/run/relive/timens",
            "/run/credentials/a.service",
            "/run/credentials/other.service",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let plan = plan(&s, &[], &points, Path::new("/run/credentials/a.service")).unwrap();
        assert_eq!(plan.unshare, libc::CLONE_NEWNS);
        let steps = describe(&plan);
        let position = |text: &str| {
            steps
                .iter()
                .position(|s| s == text)
                .unwrap_or_else(|| panic!("no step {text:?} in {steps:?}"))
        };
        let root_ro = position("set 0x1, clear 0x0 on /");
        let run_ro = position("set 0x1, clear 0x0 on /run");
        assert!(position("unmount /run/relive/handover") < root_ro);
        // The pinned time namespace: CRIU could not rebuild it next time.
        assert!(position("unmount /run/relive/timens") < root_ro);
        assert!(position("unmount /dev/hugepages") < root_ro);
        // Another unit's credentials go; its own stay.
        assert!(position("unmount /run/credentials/other.service") < root_ro);
        assert!(!steps
            .iter()
            .any(|s| s == "unmount /run/credentials/a.service"));
        // The API file systems keep their modes; the store is not there.
        assert!(!steps.iter().any(|s| s.ends_with(" on /proc")));
        assert!(!steps.iter().any(|s| s.contains("on /run/relive/handover")));
        let tmpfs = position("mount tmpfs on /tmp");
        assert!(root_ro < tmpfs && run_ro < tmpfs);
        assert!(position("unmount /tmp") < tmpfs);
        // ReadWritePaths=/tmp: after the tmpfs on the same path (a new
        // mount first, then its mode).
        assert!(tmpfs < position("set 0x0, clear 0x1 on /tmp"));
    }

    #[test]
    fn a_missing_path_fails_unless_optional() {
        let rule = |optional| PathRule {
            path: "/nonexistent/relive-test".into(),
            optional,
        };
        let s = |optional| Sandbox {
            read_only_paths: vec![rule(optional)],
            ..Default::default()
        };
        let err = plan(&s(false), &[], &[], Path::new("")).unwrap_err();
        assert!(
            err.starts_with("ReadOnlyPaths=/nonexistent/relive-test: "),
            "{err}"
        );
        assert!(plan(&s(true), &[], &[], Path::new("")).is_ok());
    }
}
