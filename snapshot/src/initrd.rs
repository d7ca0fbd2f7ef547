//! relive's minimal initrd for a live upgrade (`relivectl live-upgrade
//! --minimal-initrd`): the distribution's initrd spent 4-5 s of the
//! lab's floor between the kernel running /init and the root mounted
//! (udev, its scripts, a module at a time). relive's holds only what
//! mounting this machine's root needs: relive itself as /init (its
//! initrd stage, `relive::initrd_stage`), the shared libraries it runs
//! with, and the new kernel's modules for the root's disk and file
//! system, and for the network interfaces (their addresses are put back
//! before the first restore). It is built when the root is a plain disk (or partition) with
//! an ext2/3/4 file system named by root=/dev/... or root=UUID=...;
//! anything else (LVM, RAID, encryption, the network) keeps the
//! distribution's initrd, which knows how.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The initrd stage's instructions, inside the archive.
pub const CONF: &str = "etc/relive-initrd.conf";
/// The x86-64 ABI's program interpreter.
const INTERPRETER: &str = "lib64/ld-linux-x86-64.so.2";
/// File systems the initrd stage can find by UUID and mount.
const FILE_SYSTEMS: &[&str] = &["ext2", "ext3", "ext4"];
/// Modules a file system asks the crypto API for, which has the kernel
/// run modprobe (there is none in the initrd): loaded ahead, if the new
/// kernel has them as modules.
const CRYPTO_FOR_EXT4: &[&str] = &["crc32c_intel", "crc32c_generic"];

#[derive(Debug, thiserror::Error)]
pub enum InitrdError {
    /// The distribution's initrd is needed; why.
    #[error("{0}")]
    Unsupported(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> InitrdError + '_ {
    move |source| InitrdError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The initrd written, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimalInitrd {
    pub path: PathBuf,
    /// The modules loaded, in their order (names).
    pub modules: Vec<String>,
    pub bytes: u64,
}

/// The machine as the builder reads it: the root's mount, the kernel's
/// modules, relive's own files. Paths are the live system's unless a
/// test gives others.
#[derive(Debug, Clone)]
pub struct Sources {
    /// sysfs (for /sys/dev/block/MAJ:MIN).
    pub sys: PathBuf,
    /// The new kernel's modules directory (/lib/modules/RELEASE).
    pub modules_dir: PathBuf,
    /// relive's binary, as /init.
    pub exe: PathBuf,
    /// The shared libraries it runs with (from its /proc/self/maps).
    pub libraries: Vec<PathBuf>,
    /// The other mounted block devices (major, minor): their mount
    /// units wait for them before the first restore.
    pub other_disks: Vec<(u32, u32)>,
}

/// The root file system: its device (major, minor) and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub device: (u32, u32),
    pub fstype: String,
}

impl Root {
    /// "/" in this process's mountinfo.
    pub fn mounted() -> Result<Root, InitrdError> {
        let mounts = procfs::process::Process::myself()
            .and_then(|p| p.mountinfo())
            .map_err(|e| InitrdError::Unsupported(format!("cannot read mountinfo: {e}")))?;
        let root = mounts
            .into_iter()
            .rfind(|m| m.mount_point == Path::new("/"))
            .ok_or_else(|| InitrdError::Unsupported("no / in mountinfo".into()))?;
        let (major, minor) = root
            .majmin
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .ok_or_else(|| InitrdError::Unsupported(format!("device {}", root.majmin)))?;
        Ok(Root {
            device: (major, minor),
            fstype: root.fs_type,
        })
    }
}

impl Sources {
    /// The live system's, for kernel `release`.
    pub fn live(release: &str, exe: &Path) -> Sources {
        Sources {
            sys: PathBuf::from("/sys"),
            modules_dir: Path::new("/lib/modules").join(release),
            exe: exe.to_owned(),
            libraries: mapped_libraries(),
            other_disks: mounted_disks(),
        }
    }
}

/// The block devices this process's mounts are on (a major above 0: not
/// the kernel's own file systems).
fn mounted_disks() -> Vec<(u32, u32)> {
    let mounts = procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .map(|m| m.into_iter().collect::<Vec<_>>())
        .unwrap_or_default();
    let mut disks: Vec<(u32, u32)> = mounts
        .iter()
        .filter_map(|m| {
            let (major, minor) = m.majmin.split_once(':')?;
            Some((major.parse().ok()?, minor.parse().ok()?))
        })
        .filter(|(major, _)| *major > 0)
        .collect();
    disks.sort_unstable();
    disks.dedup();
    disks
}

/// The shared objects this process has mapped (relive's libraries and
/// the program interpreter).
fn mapped_libraries() -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let found: BTreeSet<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && (p.ends_with(".so") || p.contains(".so.")))
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .collect();
    found.into_iter().collect()
}

/// The names of the symbolic links beside `file` that lead to it.
fn links_to(file: &Path) -> Vec<std::ffi::OsString> {
    let Some(dir) = file.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .filter(|e| std::fs::canonicalize(e.path()).is_ok_and(|target| target == file))
        .map(|e| e.file_name())
        .collect()
}

/// Why the root cannot be mounted by the minimal initrd, if it cannot:
/// its file system, or root= on the next command line.
pub fn root_supported(root: &Root, cmdline: &str) -> Result<(), InitrdError> {
    if !FILE_SYSTEMS.contains(&root.fstype.as_str()) {
        return Err(InitrdError::Unsupported(format!(
            "the root is {}; the initrd stage mounts {}",
            root.fstype,
            FILE_SYSTEMS.join(", ")
        )));
    }
    let spec = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("root="))
        .unwrap_or_default();
    // /dev/NAME is the kernel's own node; /dev/disk/... and
    // /dev/mapper/... are udev's links, which the initrd has not.
    let kernel_node = spec
        .strip_prefix("/dev/")
        .is_some_and(|name| !name.is_empty() && !name.contains('/'));
    if !(kernel_node || spec.starts_with("UUID=")) {
        return Err(InitrdError::Unsupported(format!(
            "root={spec:?}: the initrd stage finds /dev/NAME and UUID=..."
        )));
    }
    Ok(())
}

/// The modules of the drivers between the root's block device and the
/// system's buses (the disk's, its controller's...), from sysfs: each
/// device's `driver/module` link. A virtual device (device-mapper, md,
/// loop) is refused.
pub fn drivers_of(sys: &Path, device: (u32, u32)) -> Result<Vec<String>, InitrdError> {
    let link = sys.join(format!("dev/block/{}:{}", device.0, device.1));
    let dir = std::fs::canonicalize(&link).map_err(io_error(&link))?;
    if dir.components().any(|c| c.as_os_str() == "virtual") {
        return Err(InitrdError::Unsupported(format!(
            "the root's device {} is virtual (device-mapper, RAID or loop)",
            dir.display()
        )));
    }
    let mut modules = Vec::new();
    up_the_devices(sys, dir, &mut modules);
    Ok(modules)
}

/// The modules of the network interfaces' drivers (those with a device:
/// not lo, bridges or tunnels): the resume puts the old kernel's
/// addresses back before the first restore, on interfaces that must
/// exist by then. The distribution's initrd had udev load them.
pub fn network_drivers(sys: &Path) -> Vec<String> {
    let mut modules = Vec::new();
    let Ok(interfaces) = std::fs::read_dir(sys.join("class/net")) else {
        return modules;
    };
    for interface in interfaces.flatten() {
        if let Ok(device) = std::fs::canonicalize(interface.path().join("device")) {
            up_the_devices(sys, device, &mut modules);
        }
    }
    modules
}

/// Adds to `modules` each device's `driver/module` from `dir` up to the
/// system's buses.
fn up_the_devices(sys: &Path, mut dir: PathBuf, modules: &mut Vec<String>) {
    let devices = sys.join("devices");
    while dir.starts_with(&devices) && dir != devices {
        if let Ok(module) = std::fs::read_link(dir.join("driver/module")) {
            if let Some(name) = module.file_name().and_then(|n| n.to_str()) {
                if !modules.iter().any(|m| m == name) {
                    modules.push(name.to_owned());
                }
            }
        }
        dir.pop();
    }
}

/// The files of `wanted` modules and their dependencies, dependencies
/// first, from the new kernel's modules.dep; built-in ones (in
/// modules.builtin) need none. `optional` modules are skipped if the
/// kernel has neither.
pub fn resolve(
    modules_dep: &str,
    modules_builtin: &str,
    wanted: &[String],
    optional: &[&str],
) -> Result<Vec<String>, InitrdError> {
    let name_of = |path: &str| file_stem(path).replace('-', "_");
    let entries: Vec<(String, String, Vec<String>)> = modules_dep
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(path, deps)| {
            let deps = deps.split_whitespace().map(str::to_owned).collect();
            (name_of(path), path.to_owned(), deps)
        })
        .collect();
    let builtin: BTreeSet<String> = modules_builtin.lines().map(name_of).collect();
    let mut ordered: Vec<String> = Vec::new();
    let names = wanted
        .iter()
        .map(|w| (w.replace('-', "_"), false))
        .chain(optional.iter().map(|o| (o.replace('-', "_"), true)));
    for (name, is_optional) in names {
        let Some((_, path, deps)) = entries.iter().find(|(n, _, _)| *n == name) else {
            if builtin.contains(&name) || is_optional {
                continue;
            }
            return Err(InitrdError::Unsupported(format!(
                "module {name} is neither in modules.dep nor built in"
            )));
        };
        // modules.dep lists every dependency, nearest first: loaded
        // from the farthest.
        for file in deps.iter().rev().chain(std::iter::once(path)) {
            if !ordered.contains(file) {
                ordered.push(file.clone());
            }
        }
    }
    Ok(ordered)
}

/// A module file's name without its directory and `.ko...` suffix
/// ("kernel/fs/ext4/ext4.ko.xz" -> "ext4").
fn file_stem(path: &str) -> &str {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file)
}

/// Builds the initrd at `out` (root-only) for the machine's `root` and
/// the new kernel's `config` (its /boot/config-RELEASE, for compressed
/// modules).
pub fn build(
    sources: &Sources,
    root: &Root,
    config: Option<&str>,
    out: &Path,
) -> Result<MinimalInitrd, InitrdError> {
    let mut wanted = drivers_of(&sources.sys, root.device)?;
    wanted.push(root.fstype.clone());
    // Another disk's drivers where the device is a plain one (a volume
    // of LVM's is activated by its own units later, as after the
    // distribution's initrd).
    let others = sources
        .other_disks
        .iter()
        .filter(|d| **d != root.device)
        .filter_map(|d| drivers_of(&sources.sys, *d).ok());
    for module in others.flatten().chain(network_drivers(&sources.sys)) {
        if !wanted.contains(&module) {
            wanted.push(module);
        }
    }
    let read = |name: &str| {
        let path = sources.modules_dir.join(name);
        std::fs::read_to_string(&path).map_err(io_error(&path))
    };
    let files = resolve(
        &read("modules.dep")?,
        &read("modules.builtin").unwrap_or_default(),
        &wanted,
        CRYPTO_FOR_EXT4,
    )?;
    let decompresses = config.is_some_and(|c| c.lines().any(|l| l == "CONFIG_MODULE_DECOMPRESS=y"));
    if let Some(packed) = files.iter().find(|f| !f.ends_with(".ko")) {
        if !decompresses {
            return Err(InitrdError::Unsupported(format!(
                "{packed} is compressed and the new kernel does not decompress modules"
            )));
        }
    }
    let modules_root = Path::new("lib/modules").join(
        sources
            .modules_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .as_ref(),
    );
    let mut conf = String::from("# relive's minimal initrd: the modules /init loads, in order\n");
    let mut archive = Archive::default();
    for file in &files {
        let inside = modules_root.join(file);
        conf.push_str(&format!("module /{}\n", inside.display()));
        archive.file(&inside, &sources.modules_dir.join(file), 0o644)?;
    }
    conf.push_str(&format!("fstype {}\n", root.fstype));
    archive.file(Path::new("init"), &sources.exe, 0o755)?;
    for library in &sources.libraries {
        let inside = library.strip_prefix("/").unwrap_or(library);
        archive.file(inside, library, 0o755)?;
        if library.file_name() == Path::new(INTERPRETER).file_name() {
            archive.symlink(Path::new(INTERPRETER), library)?;
        }
        // The maps name the file (libseccomp.so.2.5.4); the loader looks
        // for the soname, a link beside it (libseccomp.so.2).
        for link in links_to(library) {
            let name = library.file_name().unwrap_or_default();
            archive.symlink(&inside.with_file_name(link), Path::new(name))?;
        }
    }
    archive.bytes(Path::new(CONF), conf.as_bytes(), 0o644)?;
    let bytes = archive.write(out)?;
    Ok(MinimalInitrd {
        path: out.to_owned(),
        modules: files.iter().map(|f| file_stem(f).to_owned()).collect(),
        bytes,
    })
}

/// A newc archive's entries, directories made as files need them.
#[derive(Default)]
struct Archive {
    dirs: BTreeSet<PathBuf>,
    entries: Vec<(PathBuf, u32, Vec<u8>)>,
}

impl Archive {
    fn parents(&mut self, inside: &Path) {
        for dir in inside.ancestors().skip(1) {
            if !dir.as_os_str().is_empty() && self.dirs.insert(dir.to_owned()) {
                self.entries.push((dir.to_owned(), 0o040755, Vec::new()));
            }
        }
    }

    fn bytes(&mut self, inside: &Path, data: &[u8], mode: u32) -> Result<(), InitrdError> {
        self.parents(inside);
        self.entries
            .push((inside.to_owned(), 0o100000 | mode, data.to_vec()));
        Ok(())
    }

    fn file(&mut self, inside: &Path, from: &Path, mode: u32) -> Result<(), InitrdError> {
        let data = std::fs::read(from).map_err(io_error(from))?;
        self.bytes(inside, &data, mode)
    }

    fn symlink(&mut self, inside: &Path, target: &Path) -> Result<(), InitrdError> {
        self.parents(inside);
        let target = target.as_os_str().as_encoded_bytes().to_vec();
        self.entries.push((inside.to_owned(), 0o120777, target));
        Ok(())
    }

    /// Written root-only (it holds nothing secret, but is booted from);
    /// returns its size. Directories sort before what they hold.
    fn write(mut self, out: &Path) -> Result<u64, InitrdError> {
        use std::os::unix::fs::OpenOptionsExt;
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(out)
            .map_err(io_error(out))?;
        let mut w = std::io::BufWriter::new(file);
        for (ino, (path, mode, data)) in self.entries.iter().enumerate() {
            let name = path.to_string_lossy();
            let size = u32::try_from(data.len()).map_err(|_| {
                InitrdError::Unsupported(format!("{name}: too large for a cpio archive"))
            })?;
            let mut entry = cpio::NewcBuilder::new(&name)
                .ino(ino as u32 + 1)
                .mode(*mode)
                .nlink(if *mode & 0o170000 == 0o040000 { 2 } else { 1 })
                .write(&mut w, size);
            entry.write_all(data).map_err(io_error(out))?;
            entry.finish().map_err(io_error(out))?;
        }
        cpio::newc::trailer(&mut w).map_err(io_error(out))?;
        let file = w.into_inner().map_err(|e| io_error(out)(e.into_error()))?;
        file.sync_all().map_err(io_error(out))?;
        Ok(file.metadata().map_err(io_error(out))?.len())
    }
}

#[cfg(test)]
#[path = "initrd_tests.rs"]
mod tests;
