//! Host prerequisites: root, QEMU, mkosi and what mkosi runs. On first use
//! the missing Debian packages are installed with the same script CI calls
//! (`lab/install-prereqs.sh`, embedded here so the binary works from
//! anywhere).

use crate::output;
use anyhow::{bail, Result};
use std::path::PathBuf;
use std::process::Command;

const INSTALL_SCRIPT: &str = include_str!("../../install-prereqs.sh");
const INSTALL_HINT: &str = "sudo bash lab/install-prereqs.sh";

/// Programs the lab runs, each with the package that provides it.
const TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86 (bookworm-backports)"),
    ("mkosi", "mkosi"),
    ("debootstrap", "debootstrap"),
    ("systemd-nspawn", "systemd-container"),
    ("mkfs.ext4", "e2fsprogs"),
    ("e2fsck", "e2fsprogs"),
    ("debugfs", "e2fsprogs"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("unshare", "util-linux"),
    ("apt-cache", "apt"),
    // Building relive itself: its CRIU client is generated from Debian's
    // /usr/include/criu/rpc.proto with protoc.
    ("criu", "criu"),
    ("protoc", "protobuf-compiler"),
    // relive links libseccomp (seccomp filters); an absolute path is
    // looked up as itself.
    ("/usr/include/seccomp.h", "libseccomp-dev"),
    // `relive-lab check` drives services with Ansible's systemd_service.
    ("ansible-playbook", "ansible-core"),
    // `relive-lab fleet` checks each guest's metrics with promtool.
    ("promtool", "prometheus"),
];

/// Looks a program up in $PATH and the sbin directories (which a non-login
/// root shell may lack).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|candidate| candidate.is_file());
    found
}

fn missing() -> Vec<&'static (&'static str, &'static str)> {
    TOOLS
        .iter()
        .filter(|(tool, _)| which(tool).is_none())
        .collect()
}

/// Fails with the install command unless everything is there, after trying
/// to install what is missing.
pub fn ensure_prerequisites() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "relive-lab must run as root (mkosi, systemd-nspawn and the image files need it); \
             try `sudo -E $(which cargo) run --release -p relive-lab -- ...`"
        );
    }
    let absent = missing();
    if absent.is_empty() {
        output::step("checking prerequisites").done_with("all present");
        return Ok(());
    }
    let names: Vec<&str> = absent.iter().map(|(tool, _)| *tool).collect();
    let step = output::step(format!("installing prerequisites ({})", names.join(", ")));
    for (tool, package) in &absent {
        output::log(&format!("missing: {tool}, from {package}"));
    }
    let status = output::status(Command::new("bash").arg("-c").arg(INSTALL_SCRIPT))?;
    let still = missing();
    if !status.success() || !still.is_empty() {
        let names: Vec<&str> = still.iter().map(|(t, _)| *t).collect();
        bail!(
            "prerequisites missing ({}); install them with: {INSTALL_HINT}",
            names.join(", ")
        );
    }
    step.done();
    Ok(())
}
