//! The disk copy a `--writable` boot runs on, and units added to it
//! without mounting it (debugfs), so tests can boot with a unit the image
//! does not have.

use crate::output;
use crate::vm::paths::Paths;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// A unit file added to one boot's disk, enabled in multi-user.target.wants
/// unless it is a template or `enable` is false.
#[derive(Debug, Clone)]
pub struct ExtraUnit {
    pub name: String,
    pub text: String,
    pub enable: bool,
}

/// A sparse copy: the 4 GB disk holds ~1.4 GB of data.
pub fn copy_sparse(from: &Path, to: &Path) -> Result<()> {
    output::run(
        Command::new("cp").arg("--sparse=always").arg(from).arg(to),
        &format!("copying {} to {}", from.display(), to.display()),
    )
}

/// Writes `units` into the (unmounted) ext4 disk with debugfs, root-owned
/// and enabled through /etc/systemd/system/multi-user.target.wants/.
pub fn add_units(paths: &Paths, disk: &Path, units: &[ExtraUnit]) -> Result<()> {
    if units.is_empty() {
        return Ok(());
    }
    let staging = paths.run_dir().join("extra-units");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let mut script = String::new();
    for unit in units {
        let local = staging.join(&unit.name);
        std::fs::write(&local, &unit.text)?;
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o644))?;
        // debugfs `write` takes mode and owner from the local file (root's).
        script += &format!(
            "cd /etc/systemd/system\nwrite {} {}\n",
            local.display(),
            unit.name
        );
        if unit.enable {
            script += &format!(
                "cd multi-user.target.wants\nsymlink {name} /etc/systemd/system/{name}\n",
                name = unit.name
            );
        }
    }
    let out = Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg("-")
        .arg(disk)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .expect("stdin is piped")
                .write_all(script.as_bytes())?;
            child.wait_with_output()
        })
        .context("running debugfs")?;
    // debugfs exits 0 even when a command fails; its complaints name the
    // command ("write: ...", "symlink: ...").
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs "))
        .collect();
    if !out.status.success() || !complaints.is_empty() {
        bail!(
            "adding units to {} with debugfs failed ({}): {}",
            disk.display(),
            out.status,
            complaints.join("; ")
        );
    }
    Ok(())
}
