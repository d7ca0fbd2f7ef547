//! CRIU from Debian's next release for a trixie guest (`--criu forky`).
//!
//! Debian 13 ships CRIU 4.1.1, which cannot checkpoint on kernels from
//! 6.16 on (it asks SO_PASSCRED of TCP sockets, which those kernels
//! refuse; fixed in 4.2), so with trixie's own CRIU a live upgrade can
//! leave 6.12 for 6.16-6.19 but never come back or go further. forky
//! (Debian 14, testing) has CRIU 4.2.1, built against libraries that need
//! only trixie's glibc: the lab fetches it with apt from a private state
//! (apt checks every file against forky's signed index) and installs it
//! in the running guest with dpkg, as an administrator would install a
//! backport. The image itself keeps trixie's CRIU.

use crate::output;
use crate::vm::apt::{self, Archive};
use crate::vm::distro::Distro;
use crate::vm::paths::Paths;
use crate::vm::ssh;
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The suite CRIU comes from.
pub const SUITE: &str = "forky";

/// Which CRIU a guest runs (`--criu`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CriuFrom {
    /// The image's own: the release's CRIU.
    #[default]
    Release,
    /// forky's, installed in the booted guest (trixie guests only).
    Forky,
}

impl CriuFrom {
    /// An error unless this CRIU installs on `distro`: forky's needs
    /// glibc 2.38, which bookworm (2.36) does not have.
    pub fn check_distro(self, distro: Distro) -> Result<()> {
        if self == CriuFrom::Forky && distro != Distro::Trixie {
            bail!(
                "--criu forky needs --distro trixie: forky's CRIU needs glibc 2.38, {} has 2.36",
                distro.name()
            );
        }
        Ok(())
    }
}

/// CRIU and the libraries of its that trixie has too old or not at all
/// (libnl 3.12, libnet9); libnl's route and genl parts depend on libnl-3
/// of their exact version, so they go along where the guest has them.
const PACKAGES: [&str; 4] = ["criu", "libcompel1", "libnet9", "libnl-3-200"];
const LIBNL_PARTS: [&str; 2] = ["libnl-route-3-200", "libnl-genl-3-200"];

/// Where the packages are copied in the guest.
const GUEST_DIR: &str = "/var/cache/relive-lab/criu-forky";

/// The .debs, downloaded (again, each run: a few MiB) into
/// lab/out/trixie/criu-forky/.
pub fn fetch(paths: &Paths) -> Result<Vec<PathBuf>> {
    let step = output::step(format!("fetching CRIU from {SUITE}"));
    let state = paths.image_out().join(format!("apt-{SUITE}"));
    let sources = apt::sources_list(&apt::debian_mirror(), &[SUITE.to_owned()]);
    let archive = Archive::private(&state, &sources, false)?;
    let dest = paths.image_out().join(format!("criu-{SUITE}"));
    let _ = std::fs::remove_dir_all(&dest);
    let wanted: Vec<String> = PACKAGES
        .iter()
        .chain(LIBNL_PARTS.iter())
        .map(|p| p.to_string())
        .collect();
    archive.download(&wanted, &dest)?;
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dest)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    if debs.len() != wanted.len() {
        bail!(
            "apt downloaded {} packages of {} into {}",
            debs.len(),
            wanted.len(),
            dest.display()
        );
    }
    step.done_with(&names(&debs).join(" "));
    Ok(debs)
}

/// Installs `debs` in the guest on `port` (libnl's parts only where the
/// guest has them) and returns what `criu --version` says there.
pub fn install(paths: &Paths, port: u16, debs: &[PathBuf]) -> Result<String> {
    let step = output::step(format!("installing {SUITE}'s CRIU in the guest"));
    ssh::run(paths, port, &format!("mkdir -p {GUEST_DIR}"))?;
    for deb in debs {
        copy_in(paths, port, deb)?;
    }
    let optional = LIBNL_PARTS
        .iter()
        .map(|p| format!("dpkg -s {p} >/dev/null 2>&1 && ls {p}_*.deb"))
        .collect::<Vec<_>>()
        .join("; ");
    let required = PACKAGES
        .iter()
        .map(|p| format!("{p}_*.deb"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = ssh::run(
        paths,
        port,
        &format!(
            "cd {GUEST_DIR} && dpkg -i {required} $({optional}) >/dev/null && criu --version | head -1"
        ),
    )?;
    if !out.success() {
        bail!("dpkg -i in the guest failed: {}", out.stderr.trim());
    }
    let version = out.stdout.trim().to_owned();
    step.done_with(&version);
    Ok(version)
}

fn copy_in(paths: &Paths, port: u16, deb: &Path) -> Result<()> {
    let name = deb.file_name().context("a .deb without a name")?;
    let status = ssh::command(paths, port)
        .arg(format!("cat > {GUEST_DIR}/{}", name.to_string_lossy()))
        .stdin(File::open(deb).with_context(|| format!("opening {}", deb.display()))?)
        .stdout(Stdio::null())
        .status()
        .context("running ssh")?;
    if !status.success() {
        bail!("copying {} into the guest failed ({status})", deb.display());
    }
    Ok(())
}

fn names(debs: &[PathBuf]) -> Vec<String> {
    debs.iter()
        .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}
