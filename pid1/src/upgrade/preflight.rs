//! Preflight: everything that can be checked before anything changes.
//! A failed check leaves the system as it was (a loaded kernel is unloaded).

use super::memstore::{self, StoreChoice};
use super::plan::{Check, Plan};
use crate::sys::kexec;
use crate::sys::machine::Scope;
use relive_config::UpgradeConfig;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where `criu check` keeps its log (tmpfs, root only).
const CRIU_WORK_DIR: &str = "/run/relive/criu-check";

/// What the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub append: String,
    pub reuse_cmdline: bool,
    pub dry_run: bool,
    /// Skip phase 1 (the background pre-dumps): everything is dumped
    /// during the stoppage.
    pub single_phase: bool,
    /// "memory" or "disk" instead of `upgrade.store`.
    pub store: Option<String>,
}

impl UpgradeRequest {
    /// From the D-Bus arguments, where an empty initrd means none.
    /// `options`: "single-phase" = "yes"|"no", "store" = "memory"|"disk"|"auto".
    pub fn new(
        kernel: String,
        initrd: String,
        append: String,
        reuse_cmdline: bool,
        dry_run: bool,
        options: &std::collections::HashMap<String, String>,
    ) -> Result<UpgradeRequest, String> {
        let mut request = UpgradeRequest {
            kernel: kernel.into(),
            initrd: (!initrd.is_empty()).then(|| initrd.into()),
            append,
            reuse_cmdline,
            dry_run,
            single_phase: false,
            store: None,
        };
        for (key, value) in options {
            match (key.as_str(), value.as_str()) {
                ("single-phase", "yes") => request.single_phase = true,
                ("single-phase", "no") => request.single_phase = false,
                ("store", "memory" | "disk" | "auto") => request.store = Some(value.clone()),
                ("single-phase" | "store", _) => {
                    return Err(format!("option {key}: invalid value {value:?}"))
                }
                _ => {
                    return Err(format!(
                        "unknown option {key:?} (expected single-phase or store)"
                    ))
                }
            }
        }
        Ok(request)
    }
}

/// Runs every check, recording each in the plan. With `keep_loaded`, a
/// kernel that loaded stays loaded (for the upgrade that follows), unless
/// another check failed.
pub fn run(
    plan: &mut Plan,
    request: &UpgradeRequest,
    scope: Scope,
    config: &UpgradeConfig,
    keep_loaded: bool,
) {
    let mut check = |name: &str, result: Result<String, String>| {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
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
            Err("relive is not the machine's init (it runs as PID 1 of a PID namespace, or as a process): a live upgrade would kexec the host".into())
        },
    );
    check("kernel", kernel_image(&request.kernel));
    if let Some(initrd) = &request.initrd {
        check("initrd", readable(initrd));
    }
    let current = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let without_marker = kexec::next_cmdline(&current, request.reuse_cmdline, &request.append, "");
    let wanted = request.store.as_deref().unwrap_or(&config.store);
    let choice = memstore::choose(
        wanted,
        &config.store_dir,
        &config.memory_device,
        &current,
        &without_marker,
    );
    check(
        "store",
        choice
            .as_ref()
            .map(|c| c.note.clone())
            .map_err(Clone::clone),
    );
    let choice =
        choice.unwrap_or_else(|_| StoreChoice::disk(&config.store_dir, "not usable".into()));
    let cmdline = kexec::next_cmdline(
        &current,
        request.reuse_cmdline,
        &request.append,
        &choice.marker(),
    );
    let own_exe = std::fs::read_link("/proc/self/exe").unwrap_or_default();
    let cmdline_ok = command_line(
        &cmdline,
        &current,
        &request.append,
        &own_exe,
        Path::new("/"),
    );
    let cmdline_passed = cmdline_ok.is_ok();
    check("cmdline", cmdline_ok);
    let loaded = if is_machine && cmdline_passed {
        let result = kexec::load(&request.kernel, request.initrd.as_deref(), &cmdline)
            .map(|()| format!("loaded with kexec_file_load; command line: {cmdline}"))
            .map_err(|e| e.to_string());
        let ok = result.is_ok();
        check("kexec", result);
        ok
    } else {
        let why = if is_machine {
            "skipped: the command line is refused"
        } else {
            "skipped: relive is not the machine's init"
        };
        check("kexec", Err(why.into()));
        false
    };
    for unit in plan.preserved.clone() {
        check(
            &format!("unit {}", unit.name),
            one_tree(unit.main_pid, &unit.pids),
        );
    }
    check(
        "criu",
        executable(&config.criu)
            .and_then(|_| super::criu::check(&config.criu, Path::new(CRIU_WORK_DIR))),
    );
    let needed = plan.estimated_image_bytes
        + (plan.estimated_image_bytes as f64 * config.store_headroom) as u64;
    check(
        "capacity",
        match choice.capacity {
            Some(capacity) if capacity >= needed => Ok(format!(
                "{} in memory, {} needed",
                human(capacity),
                human(needed)
            )),
            Some(capacity) => Err(format!(
                "{} in memory, {} needed: reserve a larger region, or use --store disk",
                human(capacity),
                human(needed)
            )),
            None => store_capacity(&choice.dir, needed),
        },
    );
    plan.store = Some(choice);
    let passed = plan.checks.iter().all(|c| c.ok);
    if loaded && !(keep_loaded && passed) {
        if let Err(e) = kexec::unload() {
            plan.checks.push(Check {
                name: "kexec unload".into(),
                ok: false,
                detail: e.to_string(),
            });
        }
    }
}

/// CRIU dumps the tree under one process: every process of the unit
/// must descend from its main process.
fn one_tree(main_pid: u32, pids: &[u32]) -> Result<String, String> {
    if main_pid == 0 {
        return Err("no main process to checkpoint".into());
    }
    let mut tree = vec![main_pid];
    let mut i = 0;
    while i < tree.len() {
        let pid = tree[i];
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten();
        for task in tasks {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            tree.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        i += 1;
    }
    let outside: Vec<String> = pids
        .iter()
        .filter(|p| !tree.contains(p))
        .map(u32::to_string)
        .collect();
    if outside.is_empty() {
        Ok(format!(
            "{} processes under main PID {main_pid}",
            pids.len()
        ))
    } else {
        Err(format!(
            "PIDs {} are not descendants of main PID {main_pid}: CRIU checkpoints one process tree",
            outside.join(" ")
        ))
    }
}

/// A bzImage carries "HdrS" at offset 0x202 (the x86 boot protocol).
fn kernel_image(path: &Path) -> Result<String, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut head = vec![0u8; 0x206];
    file.read_exact(&mut head)
        .map_err(|_| format!("{}: too short to be a kernel image", path.display()))?;
    if &head[0x202..0x206] != b"HdrS" {
        return Err(format!(
            "{}: not an x86 kernel image (no boot protocol header)",
            path.display()
        ));
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
    let actual = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if actual < expected {
        return Err(format!(
            "{}: truncated x86 kernel image ({actual} bytes, its header says {expected})",
            path.display()
        ));
    }
    Ok(format!("{}: x86 kernel image", path.display()))
}

fn readable(path: &Path) -> Result<String, String> {
    std::fs::File::open(path)
        .map(|_| format!("{} is readable", path.display()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn executable(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
            Ok(format!("{} is present", path.display()))
        }
        Ok(_) => Err(format!("{} is not an executable file", path.display())),
        Err(e) => Err(format!(
            "{}: {e} (install Debian's criu package)",
            path.display()
        )),
    }
}

/// Free space where the store is (or will be created) against `needed`.
fn store_capacity(store: &Path, needed: u64) -> Result<String, String> {
    let existing = store
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let stat =
        nix::sys::statvfs::statvfs(existing).map_err(|e| format!("{}: {e}", existing.display()))?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    let text = format!(
        "{} free at {}, {} needed",
        human(free),
        existing.display(),
        human(needed)
    );
    if free >= needed {
        Ok(text)
    } else {
        Err(text)
    }
}

pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[i])
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
) -> Result<String, String> {
    if next.len() >= COMMAND_LINE_SIZE {
        return Err(format!(
            "the command line is {} bytes, the kernel takes {} at most",
            next.len(),
            COMMAND_LINE_SIZE - 1
        ));
    }
    if let Some(c) = next.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "--append holds a character the kernel command line cannot carry: {c:?}"
        ));
    }
    if let Some(w) = append
        .split_whitespace()
        .find(|w| w.starts_with("relive.handover"))
    {
        return Err(format!("--append: {w} is relive's own, set by the upgrade"));
    }
    let value = |key: &str| {
        next.split_whitespace()
            .rev()
            .find_map(|w| w.strip_prefix(key))
    };
    let has_root = |cmdline: &str| cmdline.split_whitespace().any(|w| w.starts_with("root="));
    if has_root(current) && !has_root(next) {
        return Err(
            "no root= on the next kernel's command line: it would not find the root file system"
                .into(),
        );
    }
    let init = value("init=").unwrap_or("/sbin/init");
    let resolved = std::fs::canonicalize(root.join(init.trim_start_matches('/')));
    let own = std::fs::canonicalize(own_exe);
    match (resolved, own) {
        (Ok(a), Ok(b)) if a == b => Ok(format!("{} bytes; init {init} is relive", next.len())),
        (Ok(a), _) => Err(format!(
            "the next kernel would start {} (init={init}), not relive: the services could not be restored",
            a.display()
        )),
        (Err(e), _) => Err(format!("init={init}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_kernel_is_refused() {
        let e = kernel_image(Path::new("/bin/sh")).unwrap_err();
        assert!(e.contains("not an x86 kernel image"), "{e}");
        let e = kernel_image(Path::new("/nonexistent")).unwrap_err();
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
        let e = cut.unwrap_err();
        assert!(
            e.contains("truncated x86 kernel image (3000 bytes, its header says 5120)"),
            "{e}"
        );
    }

    #[test]
    fn capacity_compares_free_space_with_the_estimate() {
        assert!(store_capacity(Path::new("/tmp/relive-no-such-store/x"), 1280).is_ok());
        let e = store_capacity(Path::new("/tmp"), u64::MAX / 2).unwrap_err();
        assert!(e.contains("needed"), "{e}");
    }

    #[test]
    fn a_process_outside_the_main_tree_is_refused() {
        let me = std::process::id();
        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(one_tree(me, &[me, child.id()]).is_ok());
        let e = one_tree(child.id(), &[child.id(), me]).unwrap_err();
        assert!(e.contains(&format!("PIDs {me} are not descendants")), "{e}");
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 * 1024 * 1024), "3.0 MiB");
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
        let check = |next: &str, append: &str| command_line(next, current, append, &own, &root);
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
