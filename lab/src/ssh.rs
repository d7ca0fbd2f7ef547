//! ssh into the guest through QEMU's hostfwd on 127.0.0.1, with the lab's
//! own key (generated once into lab/out/ssh/, baked into the image).

use crate::paths::Paths;
use anyhow::{bail, Context, Result};
use std::process::{Command, Stdio};

/// Creates the lab's key pair unless it exists.
pub fn ensure_key(paths: &Paths) -> Result<()> {
    let key = paths.ssh_key();
    if key.is_file() && key.with_extension("pub").is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(key.parent().context("key path")?)?;
    let _ = std::fs::remove_file(&key);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "relive-lab", "-f"])
        .arg(&key)
        .stdin(Stdio::null())
        .status()
        .context("running ssh-keygen")?;
    if !status.success() {
        bail!("ssh-keygen failed ({status})");
    }
    Ok(())
}

/// `ssh` to root in the guest on `port`, options set, command not yet
/// added. Host keys are not checked: every image has the same ones, every
/// run gets a new port, and the peer is our own guest on 127.0.0.1.
pub fn command(paths: &Paths, port: u16) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.arg("-i")
        .arg(paths.ssh_key())
        .args(["-p", &port.to_string()])
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=6",
            "root@127.0.0.1",
        ]);
    cmd
}

/// True when sshd in the guest accepts our key and runs a command.
pub fn probe(paths: &Paths, port: u16) -> bool {
    command(paths, port)
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
