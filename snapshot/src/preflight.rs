//! Preflight: everything that can be checked before anything changes.
//! A failed check leaves the system as it was (a loaded kernel is unloaded).

use crate::compat;
use crate::dump::Dumper;
use crate::UpgradeRequest;
use relive_api::human;
use relive_api::plan::{Check, Plan, StoreChoice, StoreWanted};
use relive_config::UpgradeConfig;
use relive_store::backends;
use relive_store::kexec::Kexec;
use relive_store::memory;
use relive_sys::kexec::next_cmdline;
use relive_sys::machine::Scope;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a check failed: what the plan shows beside it.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("relive is not the machine's init (it runs as PID 1 of a PID namespace, or as a process): a live upgrade would kexec the host")]
    NotMachineInit,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: too short to be a kernel image", .0.display())]
    TooShort(PathBuf),
    #[error("{}: not an x86 kernel image (no boot protocol header)", .0.display())]
    NotAKernel(PathBuf),
    #[error("{}: truncated x86 kernel image ({actual} bytes, its header says {expected})", path.display())]
    Truncated {
        path: PathBuf,
        actual: u64,
        expected: u64,
    },
    #[error("{} is not an executable file", .0.display())]
    NotExecutable(PathBuf),
    #[error("{}: {source} (install Debian's criu package)", path.display())]
    NoCriu {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("memory store unusable: {0}")]
    MemoryStore(#[from] relive_store::memory::MemoryStoreError),
    #[error("{}", .0)]
    Cmdline(CmdlineError),
    #[error(transparent)]
    Kexec(#[from] relive_sys::kexec::KexecError),
    #[error("skipped: the command line is refused")]
    CmdlineRefused,
    #[error("skipped: relive is not the machine's init")]
    NotInit,
    #[error("no main process to checkpoint")]
    NoMainProcess,
    #[error("PIDs {} are not descendants of main PID {main_pid} or of its parents in the unit: CRIU checkpoints one process tree", outside.iter().map(u32::to_string).collect::<Vec<_>>().join(" "))]
    NotOneTree { main_pid: u32, outside: Vec<u32> },
    #[error("PID {pid} maps SysV shared memory ({segment}) of the machine's IPC namespace: CRIU dumps SysV IPC only with an IPC namespace of the unit's own (PrivateIPC=yes)")]
    HostSysvShm { pid: u32, segment: String },
    #[error("PID {pid} maps a System V segment whose id {id} is also the inode number of its shared mapping at {start:#x}: CRIU (up to 4.2) takes one for the other and its dump would fail (\"Can't open 0/map_files/...\"); once this relive has started the unit again, its IPC namespace numbers segments out of reach")]
    ShmIdCollision { pid: u32, id: u64, start: u64 },
    #[error("PID {0} keeps the state of the vDSO's getrandom (glibc 2.41 on Linux 6.11 and later): CRIU (up to 4.2) cannot carry it to another kernel's vDSO, and the process would crash at its next getrandom (sshd did, in the lab)")]
    VdsoGetrandom(u32),
    #[error("PID {pid} holds /dev/pts/{index}, whose master PID {master_holder} holds outside the unit: CRIU checkpoints a terminal only with both its ends")]
    HalfTerminal {
        pid: u32,
        index: u32,
        master_holder: u32,
    },
    #[error(transparent)]
    Criu(#[from] crate::dump::DumpError),
    #[error("{} in memory, {} needed: reserve a larger region, or use --store disk", human(*capacity), human(*needed))]
    MemoryTooSmall { capacity: u64, needed: u64 },
    #[error(transparent)]
    CriuUnsupported(#[from] compat::Unsupported),
    #[error("{} free at {}, {} needed", human(*free), at.display(), human(*needed))]
    DiskTooSmall { free: u64, at: PathBuf, needed: u64 },
}

/// Why the next kernel's command line cannot bring relive back.
#[derive(Debug, PartialEq, Eq)]
pub enum CmdlineError {
    TooLong(usize),
    BadCharacter(char),
    OwnWord(String),
    NoRoot,
    NotRelive { init: String, resolved: PathBuf },
    BadInit { init: String, reason: String },
}

impl std::fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CmdlineError::TooLong(n) => write!(
                f,
                "the command line is {n} bytes, the kernel takes {} at most",
                COMMAND_LINE_SIZE - 1
            ),
            CmdlineError::BadCharacter(c) => write!(
                f,
                "--append holds a character the kernel command line cannot carry: {c:?}"
            ),
            CmdlineError::OwnWord(w) => {
                write!(f, "--append: {w} is relive's own, set by the upgrade")
            }
            CmdlineError::NoRoot => f.write_str(
                "no root= on the next kernel's command line: it would not find the root file system",
            ),
            CmdlineError::NotRelive { init, resolved } => write!(
                f,
                "the next kernel would start {} (init={init}), not relive: the services could not be restored",
                resolved.display()
            ),
            CmdlineError::BadInit { init, reason } => write!(f, "init={init}: {reason}"),
        }
    }
}

impl std::error::Error for CmdlineError {}

type Checked = Result<String, PreflightError>;

/// Runs every check, recording each in the plan. With `keep_loaded`, a
/// kernel that loaded stays loaded (for the upgrade that follows), unless
/// another check failed.
pub fn run(
    plan: &mut Plan,
    request: &UpgradeRequest,
    scope: Scope,
    config: &UpgradeConfig,
    seams: (&dyn Kexec, &dyn Dumper),
    keep_loaded: bool,
) {
    let (kexec, dumper) = seams;
    let mut check = |name: &str, result: Checked| {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(e) => (false, e.to_string()),
        };
        plan.checks.push(Check {
            name: name.into(),
            ok,
            detail,
        });
    };
    let is_machine = scope == Scope::Machine;
    check(
        "init",
        if is_machine {
            Ok("relive is the machine's init".into())
        } else {
            Err(PreflightError::NotMachineInit)
        },
    );
    check("kernel", kernel_image(&request.kernel));
    plan.next_release = compat::image_release(&request.kernel).ok().flatten();
    if let Some(initrd) = &request.initrd {
        check("initrd", readable(initrd));
    }
    let current = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let without_marker = next_cmdline(&current, request.reuse_cmdline, &request.append, "");
    let wanted = request.store.unwrap_or(config.store);
    let chosen = memory::choose(
        wanted,
        &config.store_dir,
        &config.memory_device,
        &current,
        &without_marker,
    );
    let needed = plan.estimated_image_bytes
        + (plan.estimated_image_bytes as f64 * config.store_headroom) as u64;
    let choice = match chosen.map(|c| fit(c, wanted, needed, &config.store_dir)) {
        Ok(choice) => {
            check("store", Ok(choice.note.clone()));
            choice
        }
        Err(e) => {
            check("store", Err(e.into()));
            StoreChoice::disk(&config.store_dir, "not usable".into())
        }
    };
    let next_config = plan
        .next_release
        .as_ref()
        .and_then(|release| std::fs::read_to_string(format!("/boot/config-{release}")).ok());
    let offers = backends::offers(
        &backends::running_kernel(&current),
        &backends::NextKernel {
            cmdline: &without_marker,
            config: next_config.as_deref(),
        },
    );
    check("store backends", Ok(backends::describe(&offers)));
    let cmdline = next_cmdline(
        &current,
        request.reuse_cmdline,
        &request.append,
        &choice.marker(),
    );
    // A package upgrade replaces the binary on disk: /proc/self/exe then
    // reads "PATH (deleted)", and PATH holds the new relive.
    let own_exe = std::fs::read_link("/proc/self/exe").unwrap_or_default();
    let own_exe = own_exe
        .to_str()
        .and_then(|p| p.strip_suffix(" (deleted)"))
        .map(std::path::PathBuf::from)
        .unwrap_or(own_exe);
    let cmdline_ok = command_line(
        &cmdline,
        &current,
        &request.append,
        &own_exe,
        Path::new("/"),
    );
    let cmdline_passed = cmdline_ok.is_ok();
    check("cmdline", cmdline_ok.map_err(PreflightError::Cmdline));
    let minimal = (request.minimal_initrd && is_machine).then(|| {
        let built = minimal_initrd(
            plan.next_release.as_deref(),
            next_config.as_deref(),
            &own_exe,
            &cmdline,
        );
        let given = request
            .initrd
            .as_ref()
            .map_or("none".into(), |p| p.display().to_string());
        match built {
            Ok(initrd) => {
                check(
                    "minimal initrd",
                    Ok(format!(
                        "relive's, {:.1} MiB, instead of {given}: {}",
                        initrd.bytes as f64 / 1_048_576.0,
                        initrd.modules.join(" ")
                    )),
                );
                Some(initrd.path)
            }
            Err(e) => {
                check(
                    "minimal initrd",
                    Ok(format!("not used ({e}): the kernel boots with {given}")),
                );
                None
            }
        }
    });
    let initrd = minimal.flatten().or_else(|| request.initrd.clone());
    let loaded = if is_machine && cmdline_passed {
        let result = kexec
            .load(&request.kernel, initrd.as_deref(), &cmdline)
            .map(|()| format!("loaded with kexec_file_load; command line: {cmdline}"))
            .map_err(PreflightError::from);
        let ok = result.is_ok();
        check("kexec", result);
        ok
    } else {
        let why = if is_machine {
            PreflightError::CmdlineRefused
        } else {
            PreflightError::NotInit
        };
        check("kexec", Err(why));
        false
    };
    let mut cannot_carry = Vec::new();
    for unit in plan.preserved.clone() {
        let name = format!("unit {}", unit.name);
        let carried = one_tree(unit.main_pid, &unit.pids)
            .and_then(|ok| host_sysv_shm(&unit.pids).map(|()| ok))
            .and_then(|ok| shm_ids(&unit.pids).map(|()| ok))
            .and_then(|ok| vdso_getrandom(&unit.pids).map(|()| ok))
            .and_then(|ok| whole_terminals(&unit.pids).map(|()| ok));
        match carried {
            Err(
                e @ (PreflightError::NotOneTree { .. }
                | PreflightError::NoMainProcess
                | PreflightError::HostSysvShm { .. }
                | PreflightError::ShmIdCollision { .. }
                | PreflightError::VdsoGetrandom { .. }
                | PreflightError::HalfTerminal { .. }),
            ) if !config.strict => {
                let why = format!("{e}: restarted instead (upgrade.strict refuses the upgrade)");
                check(&name, Ok(why.clone()));
                cannot_carry.push((unit.name, why));
            }
            result => check(&name, result),
        }
    }
    let criu = executable(&config.criu).and_then(|_| Ok(dumper.check()?));
    match criu {
        Ok(version) => {
            check("criu", Ok(format!("CRIU {version}: criu check passed")));
            let next = plan.next_release.as_deref();
            check("criu on the kernels", criu_on_kernels(&version, next));
        }
        Err(e) => check("criu", Err(e)),
    }
    check(
        "capacity",
        match choice.capacity {
            Some(capacity) if capacity >= needed => Ok(format!(
                "{} in memory, {} needed",
                human(capacity),
                human(needed)
            )),
            Some(capacity) => Err(PreflightError::MemoryTooSmall { capacity, needed }),
            None => store_capacity(&choice.dir, needed),
        },
    );
    plan.store = Some(choice);
    for (unit, why) in cannot_carry {
        restart_instead(plan, &unit, why);
    }
    let passed = plan.checks.iter().all(|c| c.ok);
    if loaded && !(keep_loaded && passed) {
        if let Err(e) = kexec.unload() {
            plan.checks.push(Check {
                name: "kexec unload".into(),
                ok: false,
                detail: e.to_string(),
            });
        }
    }
}

/// A unit the plan preserved but CRIU cannot checkpoint: stopped before
/// the kexec and started in the new kernel, like a Mode=restart unit,
/// with `why` in the plan (and so in the report).
/// Where relive's minimal initrd is written: RAM, root-only.
const MINIMAL_INITRD: &str = "/run/relive/upgrade-initrd.img";

/// relive's minimal initrd for kernel `release`, booted with `cmdline`.
fn minimal_initrd(
    release: Option<&str>,
    config: Option<&str>,
    exe: &Path,
    cmdline: &str,
) -> Result<crate::initrd::MinimalInitrd, crate::initrd::InitrdError> {
    use crate::initrd::{self, InitrdError, Root, Sources};
    let release = release
        .ok_or_else(|| InitrdError::Unsupported("the new kernel's release is unknown".into()))?;
    let root = Root::mounted()?;
    initrd::root_supported(&root, cmdline)?;
    let out = Path::new(MINIMAL_INITRD);
    if let Some(dir) = out.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| InitrdError::Io {
                path: dir.to_owned(),
                source,
            })?;
    }
    initrd::build(&Sources::live(release, exe), &root, config, out)
}

fn restart_instead(plan: &mut Plan, unit: &str, why: String) {
    if let Some(at) = plan.preserved.iter().position(|u| u.name == unit) {
        let removed = plan.preserved.remove(at);
        plan.estimated_image_bytes = plan
            .estimated_image_bytes
            .saturating_sub(removed.estimated_bytes);
    }
    plan.restarted.push(unit.to_owned());
    match plan.why.iter_mut().find(|(name, _)| name == unit) {
        Some(entry) => entry.1 = why,
        None => plan.why.push((unit.to_owned(), why)),
    }
}

/// The memory store `choice` if it holds `needed` bytes; for
/// `store = auto` the disk store otherwise, saying why (relive(8)). An
/// explicit "memory" keeps the choice: the capacity check then fails.
fn fit(choice: StoreChoice, wanted: StoreWanted, needed: u64, disk: &Path) -> StoreChoice {
    match choice.capacity {
        Some(capacity) if wanted == StoreWanted::Auto && capacity < needed => {
            let note = format!(
                "disk store (memory store too small: {} in memory, {} needed)",
                human(capacity),
                human(needed)
            );
            StoreChoice::disk(disk, note)
        }
        _ => choice,
    }
}

/// Whether this CRIU can checkpoint on the running kernel and restore on
/// the next one (see [`compat`]): a pair known to fail is refused here,
/// before any service is frozen.
fn criu_on_kernels(criu: &relive_criu::CriuVersion, next: Option<&str>) -> Checked {
    let running = relive_store::handover::kernel_release();
    compat::supports(criu, &running, "checkpoint")?;
    let Some(next) = next else {
        return Ok(format!(
            "CRIU {criu} checkpoints on {running}; the next kernel's image names no release"
        ));
    };
    compat::supports(criu, next, "restore")?;
    Ok(format!(
        "CRIU {criu} checkpoints on {running} and restores on {next}"
    ))
}

/// CRIU dumps the tree under one process: every process of the unit
/// must descend from its topmost one (the main process, or the
/// supervisor above it whose PID file names it).
fn one_tree(main_pid: u32, pids: &[u32]) -> Checked {
    if main_pid == 0 {
        return Err(PreflightError::NoMainProcess);
    }
    // The cgroup was listed a moment ago and /proc's children files are
    // exact only for stopped tasks: a short-lived child (a shell loop's
    // `sleep`) may have exited or been forked since. A PID that is gone
    // does not count, and a violation must hold in a second walk too.
    let proc = Path::new("/proc");
    let mut outside = Vec::new();
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let root = crate::tree::root(main_pid, pids);
        let tree = crate::tree::descendants(root);
        outside = pids
            .iter()
            .filter(|p| !tree.contains(p) && relive_criu::activity::alive(proc, **p))
            .copied()
            .collect();
        if outside.is_empty() {
            let count = pids.len();
            return Ok(if root == main_pid {
                format!("{count} processes under main PID {main_pid}")
            } else {
                format!("{count} processes under PID {root}, the parent of main PID {main_pid}: checkpointed from there")
            });
        }
    }
    Err(PreflightError::NotOneTree { main_pid, outside })
}

/// CRIU refuses a task that maps a SysV shared memory segment while it
/// shares PID 1's IPC namespace ("doesn't live in IPC ns", postgres's
/// default): found here, before anything is frozen, rather than by the
/// final dump in the stoppage.
fn host_sysv_shm(pids: &[u32]) -> Result<(), PreflightError> {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/ipc")).ok();
    let ours = ns("self");
    for &pid in pids {
        if ns(&pid.to_string()) != ours {
            continue;
        }
        let Ok(maps) = procfs::process::Process::new(pid as i32).and_then(|p| p.maps()) else {
            continue;
        };
        for map in maps {
            // /proc/PID/maps names a segment "/SYSV<key in hex>".
            if let procfs::process::MMapPath::Vsys(key) = map.pathname {
                let segment = format!("key {key:#010x}");
                return Err(PreflightError::HostSysvShm { pid, segment });
            }
        }
    }
    Ok(())
}

/// A System V segment and a shared mapping CRIU would take for each other
/// (`crate::shm_ids`).
fn shm_ids(pids: &[u32]) -> Result<(), PreflightError> {
    match crate::shm_ids::find_in(pids) {
        Some(c) => Err(PreflightError::ShmIdCollision {
            pid: c.pid,
            id: c.id,
            start: c.start,
        }),
        None => Ok(()),
    }
}

/// A process that called getrandom through the vDSO keeps per-thread
/// state in a VM_DROPPABLE mapping ("dp" in smaps' VmFlags; the procfs
/// crate does not know that flag yet, hence the one line read here).
/// CRIU's vDSO proxy redirects only the time functions to the new
/// kernel's vDSO: getrandom would run the old kernel's code.
fn vdso_getrandom(pids: &[u32]) -> Result<(), PreflightError> {
    for &pid in pids {
        let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
            continue;
        };
        let droppable = smaps
            .lines()
            .filter_map(|line| line.strip_prefix("VmFlags:"))
            .any(|flags| flags.split_whitespace().any(|f| f == "dp"));
        if droppable {
            return Err(PreflightError::VdsoGetrandom(pid));
        }
    }
    Ok(())
}

/// A terminal the unit shares with processes outside it (`crate::ptys`).
fn whole_terminals(pids: &[u32]) -> Result<(), PreflightError> {
    match crate::ptys::find_in(pids) {
        None => Ok(()),
        Some(half) => Err(PreflightError::HalfTerminal {
            pid: half.pid,
            index: half.index,
            master_holder: half.master_holder,
        }),
    }
}

/// A bzImage carries "HdrS" at offset 0x202 (the x86 boot protocol).
fn kernel_image(path: &Path) -> Checked {
    let io = |source| PreflightError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut head = vec![0u8; 0x206];
    file.read_exact(&mut head)
        .map_err(|_| PreflightError::TooShort(path.to_owned()))?;
    if &head[0x202..0x206] != b"HdrS" {
        return Err(PreflightError::NotAKernel(path.to_owned()));
    }
    // The boot protocol header says how long the image is: the setup
    // sectors (0 meaning 4) and syssize, in 16-byte paragraphs. A shorter
    // file is truncated; kexec_file_load does not notice it.
    let setup_sects = match head[0x1f1] {
        0 => 4,
        n => u64::from(n),
    };
    let syssize = u64::from(u32::from_le_bytes(
        head[0x1f4..0x1f8].try_into().expect("4 bytes"),
    ));
    let expected = (setup_sects + 1) * 512 + syssize * 16;
    let actual = file.metadata().map_err(io)?.len();
    if actual < expected {
        return Err(PreflightError::Truncated {
            path: path.to_owned(),
            actual,
            expected,
        });
    }
    Ok(format!("{}: x86 kernel image", path.display()))
}

fn readable(path: &Path) -> Checked {
    std::fs::File::open(path)
        .map(|_| format!("{} is readable", path.display()))
        .map_err(|source| PreflightError::Io {
            path: path.to_owned(),
            source,
        })
}

fn executable(path: &Path) -> Checked {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
            Ok(format!("{} is present", path.display()))
        }
        Ok(_) => Err(PreflightError::NotExecutable(path.to_owned())),
        Err(source) => Err(PreflightError::NoCriu {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Free space where the store is (or will be created) against `needed`.
fn store_capacity(store: &Path, needed: u64) -> Checked {
    let existing = store
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let stat = nix::sys::statvfs::statvfs(existing).map_err(|e| PreflightError::Io {
        path: existing.to_owned(),
        source: e.into(),
    })?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    if free >= needed {
        Ok(format!(
            "{} free at {}, {} needed",
            human(free),
            existing.display(),
            human(needed)
        ))
    } else {
        Err(PreflightError::DiskTooSmall {
            free,
            at: existing.to_owned(),
            needed,
        })
    }
}

/// The longest command line an x86 kernel takes (COMMAND_LINE_SIZE).
const COMMAND_LINE_SIZE: usize = 2048;

/// Whether the next kernel's command line can bring relive back: short
/// enough, printable, the marker relive's own, a root file system when the
/// running kernel names one, and an init that is relive (else the
/// services could never be restored). `root` is where paths resolve.
fn command_line(
    next: &str,
    current: &str,
    append: &str,
    own_exe: &Path,
    root: &Path,
) -> Result<String, CmdlineError> {
    if next.len() >= COMMAND_LINE_SIZE {
        return Err(CmdlineError::TooLong(next.len()));
    }
    if let Some(c) = next.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(CmdlineError::BadCharacter(c));
    }
    if let Some(w) = append
        .split_whitespace()
        .find(|w| w.starts_with("relive.handover"))
    {
        return Err(CmdlineError::OwnWord(w.to_owned()));
    }
    let value = |key: &str| {
        next.split_whitespace()
            .rev()
            .find_map(|w| w.strip_prefix(key))
    };
    let has_root = |cmdline: &str| cmdline.split_whitespace().any(|w| w.starts_with("root="));
    if has_root(current) && !has_root(next) {
        return Err(CmdlineError::NoRoot);
    }
    let init = value("init=").unwrap_or("/sbin/init");
    let resolved = std::fs::canonicalize(root.join(init.trim_start_matches('/')));
    let own = std::fs::canonicalize(own_exe);
    match (resolved, own) {
        (Ok(a), Ok(b)) if a == b => Ok(format!("{} bytes; init {init} is relive", next.len())),
        (Ok(resolved), _) => Err(CmdlineError::NotRelive {
            init: init.to_owned(),
            resolved,
        }),
        (Err(e), _) => Err(CmdlineError::BadInit {
            init: init.to_owned(),
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_that_cannot_be_carried_is_restarted_with_its_reason() {
        let unit = |name: &str, bytes| relive_api::plan::PlannedUnit {
            name: name.into(),
            priority: 100,
            main_pid: 2000,
            pids: vec![2000, 2001],
            estimated_bytes: bytes,
            pre_dump: true,
            pre_dump_max_rounds: None,
            rollback: false,
        };
        let mut plan = Plan {
            preserved: vec![
                unit("forker.service", 3 << 20),
                unit("redis.service", 5 << 20),
            ],
            restarted: vec!["udev.service".into()],
            why: vec![
                ("forker.service".into(), "Mode=preserve".into()),
                ("redis.service".into(), "Mode=preserve".into()),
            ],
            estimated_image_bytes: 8 << 20,
            ..Plan::default()
        };
        restart_instead(&mut plan, "forker.service", "PIDs 2001 ...".into());
        let preserved: Vec<&str> = plan.preserved.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(preserved, ["redis.service"]);
        assert_eq!(plan.restarted, ["udev.service", "forker.service"]);
        assert_eq!(plan.estimated_image_bytes, 5 << 20);
        assert_eq!(
            plan.why[0],
            ("forker.service".to_owned(), "PIDs 2001 ...".to_owned())
        );
    }

    #[test]
    fn auto_falls_back_to_the_disk_when_the_region_is_too_small() {
        let disk = Path::new("/var/lib/relive/upgrade");
        let memory = StoreChoice {
            kind: relive_api::plan::StoreKind::Memory,
            dir: "/run/relive/handover/upgrade".into(),
            device: Some("/dev/pmem0".into()),
            note: "memory store".into(),
            capacity: Some(460 << 20),
        };
        let fallback = fit(memory.clone(), StoreWanted::Auto, 477 << 20, disk);
        assert_eq!(fallback.kind, relive_api::plan::StoreKind::Disk);
        assert!(fallback
            .note
            .contains("memory store too small: 460.0 MiB in memory, 477.0 MiB needed"));
        assert_eq!(
            fit(memory.clone(), StoreWanted::Memory, 477 << 20, disk),
            memory
        );
        assert_eq!(
            fit(memory.clone(), StoreWanted::Auto, 400 << 20, disk),
            memory
        );
    }

    #[test]
    fn a_file_that_is_not_a_kernel_is_refused() {
        let e = kernel_image(Path::new("/bin/sh")).unwrap_err().to_string();
        assert!(e.contains("not an x86 kernel image"), "{e}");
        let e = kernel_image(Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent:"), "{e}");
    }

    #[test]
    fn a_truncated_kernel_is_refused() {
        // A boot protocol header: 1 setup sector past the boot sector,
        // syssize 0x100 paragraphs: 1024 + 4096 bytes in all.
        let mut image = vec![0u8; 1024 + 4096];
        image[0x1f1] = 1;
        image[0x1f4..0x1f8].copy_from_slice(&0x100u32.to_le_bytes());
        image[0x202..0x206].copy_from_slice(b"HdrS");
        let path = std::env::temp_dir().join(format!("relive-bzimage-{}", std::process::id()));
        std::fs::write(&path, &image).unwrap();
        let whole = kernel_image(&path);
        std::fs::write(&path, &image[..3000]).unwrap();
        let cut = kernel_image(&path);
        std::fs::remove_file(&path).unwrap();
        assert!(whole.is_ok(), "{whole:?}");
        let e = cut.unwrap_err().to_string();
        assert!(
            e.contains("truncated x86 kernel image (3000 bytes, its header says 5120)"),
            "{e}"
        );
    }

    #[test]
    fn capacity_compares_free_space_with_the_estimate() {
        assert!(store_capacity(Path::new("/tmp/relive-no-such-store/x"), 1280).is_ok());
        let e = store_capacity(Path::new("/tmp"), u64::MAX / 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needed"), "{e}");
    }

    #[test]
    fn a_process_outside_the_unit_s_tree_is_refused() {
        let me = std::process::id();
        let sleep = || {
            std::process::Command::new("sleep")
                .arg("5")
                .spawn()
                .unwrap()
        };
        let (mut child, mut sibling) = (sleep(), sleep());
        assert!(one_tree(me, &[me, child.id()]).is_ok());
        // A main process below the unit's topmost one (a PID file naming
        // a supervisor's child): one tree, from the supervisor.
        let from_parent = one_tree(child.id(), &[child.id(), me]).unwrap();
        assert!(
            from_parent.contains(&format!(
                "under PID {me}, the parent of main PID {}",
                child.id()
            )),
            "{from_parent}"
        );
        // Two trees side by side: refused, naming the other.
        let e = one_tree(child.id(), &[child.id(), sibling.id()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("PIDs {} are not descendants", sibling.id())),
            "{e}"
        );
        // A listed process that has exited since does not count.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        assert!(one_tree(me, &[me, gone.id()]).is_ok());
        for process in [&mut child, &mut sibling] {
            process.kill().unwrap();
            process.wait().unwrap();
        }
    }

    #[test]
    fn the_next_command_line_must_bring_relive_back() {
        let root = std::env::temp_dir().join(format!("relive-cmdline-{}", std::process::id()));
        std::fs::create_dir_all(root.join("usr/sbin")).unwrap();
        std::fs::create_dir_all(root.join("sbin")).unwrap();
        std::fs::write(root.join("usr/sbin/relive"), b"relive").unwrap();
        std::fs::write(root.join("sbin/other-init"), b"other").unwrap();
        std::os::unix::fs::symlink("../usr/sbin/relive", root.join("sbin/init")).unwrap();
        let own = root.join("usr/sbin/relive");
        let current = "root=/dev/vda init=/usr/sbin/relive";
        let check = |next: &str, append: &str| {
            command_line(next, current, append, &own, &root).map_err(|e| e.to_string())
        };
        assert!(check("root=/dev/vda init=/usr/sbin/relive", "").is_ok());
        // Without init=, /sbin/init: here a link to relive.
        assert!(check("root=/dev/vda quiet", "quiet").is_ok());
        let e = check(
            "root=/dev/vda init=/sbin/other-init",
            "init=/sbin/other-init",
        )
        .unwrap_err();
        assert!(e.contains("not relive"), "{e}");
        let e = check("root=/dev/vda init=/nope", "init=/nope").unwrap_err();
        assert!(e.starts_with("init=/nope"), "{e}");
        let e = check("init=/usr/sbin/relive", "init=/usr/sbin/relive").unwrap_err();
        assert!(e.contains("no root="), "{e}");
        let e = check("root=/dev/vda a\tb", "a\tb").unwrap_err();
        assert!(e.contains("'\\t'"), "{e}");
        let long = format!("root=/dev/vda {}", "x".repeat(3000));
        assert!(check(&long, "").unwrap_err().contains("2047 at most"));
        let e = check("root=/dev/vda relive.handover=/x", "relive.handover=/x").unwrap_err();
        assert!(e.contains("relive's own"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
