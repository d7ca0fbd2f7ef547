//! `relive-lab image`: the mkosi tree, then the ext4 disk, each rebuilt only
//! when its inputs change.
//!
//! Per release (`Paths::distro`: bookworm in lab/out/, another in
//! lab/out/NAME/), two cache levels, because they cost very different
//! amounts:
//! - the tree (mkosi: debootstrap, packages, initrds; minutes) is keyed by
//!   the mkosi/ configuration (less the other releases' own files), the
//!   mirror and the resolved kernel packages;
//! - the disk (mkfs.ext4 -d; seconds) is keyed by the tree, the overlay
//!   (the lab's ssh key and the workload binaries from target/release,
//!   copied into the tree) and relive's Debian package (scripts/deb),
//!   installed into the tree with dpkg just before mkfs, as an
//!   administrator installs it.

use crate::output;
use crate::vm::apt::{self, Archive, KernelPart};
use crate::vm::distro::Distro;
use crate::vm::paths::Paths;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the way the driver calls mkosi changes, to force a rebuild.
const TREE_RECIPE: &str = "tree-v1";
/// Size of the sparse ext4 disk (the tree uses ~1.4 GB; the rest is room
/// for CRIU images, the journal and logs: the fault matrix's upgrades
/// fill 3 GB).
const DISK_SIZE: &str = "4G";

/// Size of the second disk, mounted on /srv/data from the guest's fstab.
const DATA_DISK_SIZE: &str = "64M";
/// A file on the data disk, for checks that it is mounted.
pub const DATA_DISK_MARKER: (&str, &str) = ("relive-lab-data", "relive lab data disk\n");

/// The lab's workload programs (crate workloads/), copied into
/// /usr/local/bin; their units are in mkosi/mkosi.extra/etc/systemd/system/.
const WORKLOAD_BINARIES: &[&str] = &[
    "relive-counter",
    "relive-echo",
    "relive-dirty",
    "relive-slowfile",
    "relive-fetch",
    "relive-greet",
    "relive-busclient",
];

/// The sources list of the local repository of kernel parts
/// (`Paths::kernel_debs`): in the skeleton tree for mkosi's apt, removed
/// from the tree afterwards (the guest has no such directory).
const KERNEL_DEBS_LIST: &str = "etc/apt/sources.list.d/relive-lab-kernels.list";

/// What `image` produced, saved as lab/out/image.json (lab/out/NAME/).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    /// The Debian release (images built before there were two: bookworm).
    #[serde(default)]
    pub distro: Distro,
    pub tree_hash: String,
    pub disk_hash: String,
    pub disk: PathBuf,
    pub kernels: Vec<Kernel>,
    /// /usr/sbin/relive is in the disk: boots default to init=relive.
    pub has_relive: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kernel {
    /// `uname -r` of this kernel, e.g. 6.1.0-47-amd64.
    pub release: String,
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
}

impl Image {
    /// The image for people: the disk, its kernels, whether relive is in.
    pub fn print(&self) {
        println!("disk: {}", self.disk.display());
        for kernel in &self.kernels {
            println!("kernel: {}", kernel.release);
        }
        println!(
            "relive: {}",
            if self.has_relive {
                "installed"
            } else {
                "absent (boots with systemd)"
            }
        );
    }

    /// The kernel of a series ("6.1", "6.12"), matching whole components so
    /// that 6.1 does not pick 6.12 (nor 6.16).
    pub fn kernel(&self, series: &str) -> Result<&Kernel> {
        let prefix = format!("{series}.");
        self.kernels
            .iter()
            .find(|k| k.release.starts_with(&prefix))
            .with_context(|| {
                let have: Vec<&str> = self.kernels.iter().map(|k| k.release.as_str()).collect();
                format!(
                    "no {series} kernel in the {} image (it has: {})",
                    self.distro.name(),
                    have.join(", ")
                )
            })
    }
}

/// A file the driver adds to the tree before making the disk.
struct OverlayFile {
    src: PathBuf,
    /// Relative to the tree's root.
    dest: String,
    mode: u32,
}

/// Builds what is stale and returns the image; `force` rebuilds the tree.
pub fn build_or_reuse(paths: &Paths, force: bool) -> Result<Image> {
    crate::vm::ssh::ensure_key(paths)?;
    let distro = paths.distro;
    let step = output::step(match distro {
        Distro::Bookworm => "mkosi tree".to_owned(),
        other => format!("mkosi tree ({})", other.name()),
    });
    step.detail("resolving the kernel packages");

    let mirror = apt::debian_mirror();
    let archive = Archive::for_distro(distro, &paths.apt_state(), &mirror, force)?;
    let pins = distro.kernel_pins(paths)?;
    let kernels = pins
        .iter()
        .map(|pin| archive.resolve_kernel(pin))
        .collect::<Result<Vec<_>>>()?;
    let mut parts = Vec::new();
    for kernel in &kernels {
        parts.extend(archive.unindexed_kernel_parts(kernel)?);
    }

    let mut tree = Sha256::new();
    tree.update(TREE_RECIPE);
    tree.update(&mirror);
    for kernel in &kernels {
        tree.update(kernel);
    }
    // bookworm's inputs are what they were before there was a second
    // release: its hash (and cached tree) stays the same.
    if distro != Distro::Bookworm {
        tree.update(distro.name());
    }
    for part in &parts {
        tree.update(part.file_name());
    }
    hash_dir(
        &mut tree,
        &paths.mkosi_config(),
        Path::new(""),
        &distro.foreign_files(),
    )?;
    let tree_hash = hex(&tree.finalize());

    let tree_stamp = paths.mkosi_out().join("tree.hash");
    let tree_fresh = !force
        && paths.tree().join("usr").is_dir()
        && std::fs::read_to_string(&tree_stamp).is_ok_and(|h| h.trim() == tree_hash);
    if tree_fresh {
        step.done_with(&format!("up to date ({})", &tree_hash[..12]));
    } else {
        let _ = std::fs::remove_file(&tree_stamp);
        output::log(&format!("kernels: {}", kernels.join(", ")));
        if !parts.is_empty() {
            step.detail("fetching kernel parts the index no longer lists");
            fetch_kernel_parts(paths, &mirror, &parts)?;
        }
        write_skeleton(paths, &mirror, !parts.is_empty())?;
        step.detail("building it with mkosi");
        run_mkosi(paths, &mirror, &kernels)?;
        forget_kernel_debs(paths)?;
        std::fs::write(&tree_stamp, &tree_hash)?;
        step.done_with(&format!("built ({})", &tree_hash[..12]));
    }

    let step = output::step("disk image");

    let overlay = overlay(paths)?;
    let package = relive_package(paths)?;
    let mut disk = Sha256::new();
    disk.update(&tree_hash);
    disk.update(DISK_SIZE);
    if let Some(deb) = &package {
        disk.update(std::fs::read(deb).with_context(|| format!("reading {}", deb.display()))?);
    }
    for file in &overlay {
        disk.update(&file.dest);
        disk.update(file.mode.to_le_bytes());
        disk.update(
            std::fs::read(&file.src).with_context(|| format!("reading {}", file.src.display()))?,
        );
    }
    let disk_hash = hex(&disk.finalize());

    if let Ok(image) = load(paths) {
        if image.disk_hash == disk_hash
            && image.disk.is_file()
            && paths.data_disk().is_file()
            && tree_fresh
        {
            step.done_with(&format!("up to date ({})", &disk_hash[..12]));
            return Ok(image);
        }
    }

    let has_relive = package.is_some();
    step.detail("copying the workloads into the tree");
    apply_overlay(paths, &overlay)?;
    step.detail("installing relive's package into the tree");
    install_package(paths, package.as_deref())?;
    step.detail(&format!("mkfs.ext4 -d, {DISK_SIZE}"));
    make_disk(paths)?;
    make_data_disk(paths)?;
    let kernels = extract_boot(paths)?;
    step.done_with(&format!("made ({})", &disk_hash[..12]));

    let image = Image {
        distro,
        tree_hash,
        disk_hash,
        disk: paths.disk(),
        kernels,
        has_relive,
    };
    std::fs::write(paths.image_stamp(), serde_json::to_string_pretty(&image)?)?;
    Ok(image)
}

/// The image last built, without checking whether it is stale.
pub fn load(paths: &Paths) -> Result<Image> {
    let text = std::fs::read_to_string(paths.image_stamp()).with_context(|| {
        format!(
            "no {} image yet: run `relive-lab image --distro {}`",
            paths.distro.name(),
            paths.distro.name()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

/// Kernel parts the archive's index no longer lists (`Archive::
/// unindexed_kernel_parts`), fetched from the pool by apt's own
/// downloader into a local repository with its Packages file. The index
/// has no hash of them to check: the download is over the same mirror as
/// the rest, and each file is kept once fetched.
fn fetch_kernel_parts(paths: &Paths, mirror: &str, parts: &[KernelPart]) -> Result<()> {
    let dir = paths.kernel_debs();
    std::fs::create_dir_all(&dir)?;
    let wanted: Vec<String> = parts.iter().map(KernelPart::file_name).collect();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".deb") && !wanted.iter().any(|w| *w == name) {
            std::fs::remove_file(&path)?;
        }
    }
    let mut index = String::new();
    for part in parts {
        let deb = dir.join(part.file_name());
        if !deb.is_file() {
            output::warn(&format!(
                "{} {} is not in the archive's index: fetching it from the pool",
                part.package, part.version
            ));
            let partial = deb.with_extension("deb.partial");
            let mut get = Command::new("/usr/lib/apt/apt-helper");
            get.arg("download-file").arg(part.url(mirror)).arg(&partial);
            output::run(&mut get, &format!("downloading {}", part.file_name()))?;
            std::fs::rename(&partial, &deb)?;
        }
        let control = Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .output()
            .context("running dpkg-deb")?;
        if !control.status.success() {
            bail!(
                "{} is no Debian package: {}",
                deb.display(),
                String::from_utf8_lossy(&control.stderr).trim()
            );
        }
        let bytes = std::fs::read(&deb)?;
        index += String::from_utf8_lossy(&control.stdout).trim_end();
        index += &format!(
            "\nFilename: ./{}\nSize: {}\nSHA256: {}\n\n",
            part.file_name(),
            bytes.len(),
            hex(&Sha256::digest(&bytes))
        );
    }
    std::fs::write(dir.join("Packages"), index)?;
    Ok(())
}

/// The skeleton tree mkosi copies in before its apt runs: a sources list
/// per extra suite of the release (trixie-backports, kept in the image as
/// a server that runs a backports kernel has it) and, with `kernel_debs`,
/// the local repository of kernel parts (`copy:`, so that apt copies the
/// files into the image's cache, where the chrooted dpkg finds them).
fn write_skeleton(paths: &Paths, mirror: &str, kernel_debs: bool) -> Result<()> {
    let skeleton = paths.skeleton();
    let _ = std::fs::remove_dir_all(&skeleton);
    let mut files: Vec<(String, String)> = paths
        .distro
        .extra_suites()
        .iter()
        .map(|suite| {
            (
                format!("etc/apt/sources.list.d/{suite}.list"),
                format!("deb {mirror} {suite} main\n"),
            )
        })
        .collect();
    if kernel_debs {
        files.push((
            KERNEL_DEBS_LIST.to_owned(),
            format!(
                "deb [trusted=yes] copy:{} ./\n",
                paths.kernel_debs().display()
            ),
        ));
    }
    // None (bookworm): no skeleton, mkosi runs as it always did.
    for (rel, text) in files {
        let path = skeleton.join(rel);
        std::fs::create_dir_all(path.parent().context("skeleton file has no parent")?)?;
        std::fs::write(path, text)?;
    }
    Ok(())
}

/// Removes the local repository of kernel parts from the built tree: its
/// sources list and its lists (the installed packages stay).
fn forget_kernel_debs(paths: &Paths) -> Result<()> {
    let tree = paths.tree();
    let _ = std::fs::remove_file(tree.join(KERNEL_DEBS_LIST));
    let lists = tree.join("var/lib/apt/lists");
    // apt names a list after its URI's path, `/` as `_`.
    let prefix = paths.kernel_debs().display().to_string().replace('/', "_");
    if let Ok(entries) = std::fs::read_dir(&lists) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

/// Runs mkosi in a private mount namespace with a tmpfs over
/// /run/systemd/nspawn: /run is not a tmpfs on these hosts and nspawn would
/// leave a directory behind there on every call. The release comes from
/// the command line (`--release` overrides mkosi.conf's Release=), with
/// its own settings file if it has one (`Distro::mkosi_overlay`).
fn run_mkosi(paths: &Paths, mirror: &str, kernels: &[String]) -> Result<()> {
    std::fs::create_dir_all(paths.mkosi_out())?;
    std::fs::create_dir_all("/run/systemd/nspawn")?;
    let out = paths.mkosi_out();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs tmpfs /run/systemd/nspawn && exec \"$@\"")
        .args(["sh", "mkosi", "--force"])
        .arg(format!("--release={}", paths.distro.name()))
        .arg(format!("--mirror={mirror}"))
        .arg(format!("--output={}", paths.tree().display()))
        .arg("--workspace-dir")
        .arg(&out);
    if let Some(overlay) = paths.distro.mkosi_overlay(paths) {
        cmd.arg(format!("@{}", overlay.display()));
    }
    if paths.skeleton().is_dir() {
        cmd.arg(format!("--skeleton-tree={}", paths.skeleton().display()));
    }
    for kernel in kernels {
        cmd.arg(format!("--package={kernel}"));
    }
    cmd.arg("build").current_dir(paths.mkosi_config());
    output::run(&mut cmd, "mkosi")
}

fn overlay(paths: &Paths) -> Result<Vec<OverlayFile>> {
    let mut files = vec![OverlayFile {
        src: paths.ssh_key().with_extension("pub"),
        dest: "root/.ssh/authorized_keys".into(),
        mode: 0o600,
    }];
    let release = paths.target().join("release");
    for name in WORKLOAD_BINARIES {
        let src = release.join(name);
        if src.is_file() {
            files.push(OverlayFile {
                src,
                dest: format!("usr/local/bin/{name}"),
                mode: 0o755,
            });
        }
    }
    Ok(files)
}

/// Removes every overlay destination (so a binary deleted from target/
/// leaves the image too), then copies in the current ones.
fn apply_overlay(paths: &Paths, files: &[OverlayFile]) -> Result<()> {
    let tree = paths.tree();
    let known = WORKLOAD_BINARIES
        .iter()
        .map(|n| format!("usr/local/bin/{n}"));
    for dest in known {
        let _ = std::fs::remove_file(tree.join(dest));
    }
    for file in files {
        let dest = tree.join(&file.dest);
        let parent = dest.parent().context("overlay path has no parent")?;
        std::fs::create_dir_all(parent)?;
        if file.dest.starts_with("root/.ssh/") {
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))?;
        }
        std::fs::copy(&file.src, &dest)
            .with_context(|| format!("copying {} to {}", file.src.display(), dest.display()))?;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(file.mode))?;
    }
    Ok(())
}

/// The package scripts/deb left in target/debian, if any.
fn relive_package(paths: &Paths) -> Result<Option<PathBuf>> {
    let dir = paths.target().join("debian");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    let mut debs = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("relive_") && name.ends_with("_amd64.deb") {
            debs.push(path);
        }
    }
    match debs.len() {
        0 | 1 => Ok(debs.pop()),
        _ => bail!(
            "{} holds several relive packages; run scripts/deb (it keeps one)",
            dir.display()
        ),
    }
}

/// `dpkg -i` inside the tree (its maintainer scripts run there, as on a
/// server); without a package, a relive installed before is purged.
fn install_package(paths: &Paths, deb: Option<&Path>) -> Result<()> {
    let tree = paths.tree();
    let mut dpkg = Command::new("chroot");
    dpkg.arg(&tree);
    let staged = tree.join("var/cache/relive-lab.deb");
    match deb {
        Some(deb) => {
            std::fs::copy(deb, &staged)
                .with_context(|| format!("copying {} into the tree", deb.display()))?;
            dpkg.args(["dpkg", "-i", "/var/cache/relive-lab.deb"]);
        }
        None => {
            dpkg.args(["dpkg", "--purge", "relive"]);
        }
    }
    let result = output::run(&mut dpkg, "dpkg in the image's tree");
    let _ = std::fs::remove_file(&staged);
    result
}

/// `mkfs.ext4 -d` makes the disk from the tree without a loop mount. The
/// inode tables are initialised now so the guest's ext4lazyinit thread does
/// not spend TCG time on them.
fn make_disk(paths: &Paths) -> Result<()> {
    let tmp = paths.disk().with_extension("raw.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args([
        "-q",
        "-F",
        "-L",
        "relive-root",
        "-E",
        "lazy_itable_init=0,lazy_journal_init=0",
        "-d",
    ])
    .arg(paths.tree())
    .arg(&tmp)
    .arg(DISK_SIZE);
    output::run(
        &mut mkfs,
        &format!("mkfs.ext4 -d {}", paths.tree().display()),
    )?;
    std::fs::rename(&tmp, paths.disk())?;
    Ok(())
}

/// The second disk: ext4 labelled relive-data holding DATA_DISK_MARKER.
fn make_data_disk(paths: &Paths) -> Result<()> {
    let staging = paths.image_out().join("data-disk");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let (name, text) = DATA_DISK_MARKER;
    std::fs::write(staging.join(name), text)?;
    let tmp = paths.data_disk().with_extension("raw.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-L", "relive-data", "-d"])
        .arg(&staging)
        .arg(&tmp)
        .arg(DATA_DISK_SIZE);
    output::run(&mut mkfs, "mkfs.ext4 (the data disk)")?;
    std::fs::rename(&tmp, paths.data_disk())?;
    Ok(())
}

/// Copies /boot's kernels and initrds out of the tree for QEMU's direct
/// kernel boot.
fn extract_boot(paths: &Paths) -> Result<Vec<Kernel>> {
    let boot = paths.boot();
    let _ = std::fs::remove_dir_all(&boot);
    std::fs::create_dir_all(&boot)?;
    let tree_boot = paths.tree().join("boot");
    let mut kernels = Vec::new();
    for entry in
        std::fs::read_dir(&tree_boot).with_context(|| format!("reading {}", tree_boot.display()))?
    {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(release) = name.strip_prefix("vmlinuz-") else {
            continue;
        };
        let initrd_name = format!("initrd.img-{release}");
        if !tree_boot.join(&initrd_name).is_file() {
            bail!(
                "{} has no initrd ({initrd_name})",
                tree_boot.join(&name).display()
            );
        }
        let vmlinuz = boot.join(&name);
        let initrd = boot.join(&initrd_name);
        std::fs::copy(tree_boot.join(&name), &vmlinuz)?;
        std::fs::copy(tree_boot.join(&initrd_name), &initrd)?;
        kernels.push(Kernel {
            release: release.to_owned(),
            vmlinuz,
            initrd,
        });
    }
    if kernels.is_empty() {
        bail!("no kernel in {}", tree_boot.display());
    }
    kernels.sort_by(|a, b| apt::version_cmp(&a.release, &b.release));
    Ok(kernels)
}

/// Hashes a directory's names, types, modes and contents, in sorted order
/// (README files left out, and the top-level names in `skip`).
fn hash_dir(hasher: &mut Sha256, dir: &Path, rel: &Path, skip: &[&str]) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        // Documentation does not change the image.
        if entry.file_name().to_string_lossy().ends_with(".md") {
            continue;
        }
        if rel.as_os_str().is_empty() && skip.iter().any(|s| entry.file_name() == **s) {
            continue;
        }
        let path = entry.path();
        let rel = rel.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&path)?;
        hasher.update(rel.as_os_str().as_encoded_bytes());
        hasher.update(meta.mode().to_le_bytes());
        if meta.is_dir() {
            hash_dir(hasher, &path, &rel, skip)?;
        } else if meta.is_symlink() {
            hasher.update(std::fs::read_link(&path)?.as_os_str().as_encoded_bytes());
        } else {
            hasher.update(std::fs::read(&path)?);
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
