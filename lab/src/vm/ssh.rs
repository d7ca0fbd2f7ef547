//! ssh into the guest through QEMU's hostfwd on 127.0.0.1, with the lab's
//! own key (generated once into lab/out/ssh/, baked into the image).

use crate::output;
use crate::vm::paths::Paths;
use anyhow::{bail, Context, Result};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Creates the lab's key pair unless it exists.
pub fn ensure_key(paths: &Paths) -> Result<()> {
    let key = paths.ssh_key();
    if key.is_file() && key.with_extension("pub").is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(key.parent().context("key path")?)?;
    let _ = std::fs::remove_file(&key);
    output::run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "relive-lab", "-f"])
            .arg(&key),
        "ssh-keygen",
    )
}

/// `ssh` to root in the guest on `port`, options set, command not yet
/// added. Host keys are not checked: every image has the same ones, every
/// run gets a new port, and the peer is our own guest on 127.0.0.1.
pub fn command(paths: &Paths, port: u16) -> Command {
    command_with_timeout(paths, port, 10)
}

/// Readiness probes: before the guest's network is up, QEMU accepts the
/// connection on the host side and the guest never answers, so a probe
/// waits for the whole connect timeout. A short one keeps probes (and the
/// boot times measured with them) from lagging readiness by up to 10 s; an
/// answering sshd sends its banner well within it, even under TCG.
const PROBE_CONNECT_TIMEOUT_SECS: u32 = 3;

fn command_with_timeout(paths: &Paths, port: u16, connect_timeout: u32) -> Command {
    let mut cmd = base(paths, port, connect_timeout);
    // A dead guest ends the command within 30 s.
    cmd.args([
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=6",
        "root@127.0.0.1",
    ]);
    cmd
}

/// An interactive login session that must outlive a live upgrade: no keepalive (the guest is
/// silent for tens of seconds under TCG while its sshd is parked; QEMU's
/// user network holds the host side of the connection meanwhile).
pub fn interactive(paths: &Paths, port: u16) -> Command {
    let mut cmd = base(paths, port, 10);
    // -tt: a pty in the guest although our stdin is a pipe.
    cmd.args(["-o", "ServerAliveInterval=0", "-tt", "root@127.0.0.1"]);
    cmd
}

fn base(paths: &Paths, port: u16, connect_timeout: u32) -> Command {
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
            &format!("ConnectTimeout={connect_timeout}"),
        ]);
    cmd
}

/// True when sshd in the guest accepts our key and runs a command.
pub fn probe(paths: &Paths, port: u16) -> bool {
    probe_command(paths, port, "true")
}

/// True when sshd answers and `script` succeeds in the guest.
pub fn probe_command(paths: &Paths, port: u16, script: &str) -> bool {
    // A login costs ~1 s of TCG time; the banner says whether to try one.
    if !banner(port) {
        return false;
    }
    command_with_timeout(paths, port, PROBE_CONNECT_TIMEOUT_SECS)
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True when sshd's banner (`SSH-…`) arrives within a second. QEMU's port
/// forward accepts at once whatever the guest's state: without a listening
/// sshd the connection is closed (the guest resets it) or stays silent
/// (no network yet), both of which fail here quickly.
fn banner(port: u16) -> bool {
    use std::io::Read;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let wait = Duration::from_secs(1);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, wait) else {
        return false;
    };
    let mut start = [0u8; 4];
    stream.set_read_timeout(Some(wait)).is_ok()
        && stream.read_exact(&mut start).is_ok()
        && &start == b"SSH-"
}

/// What a command run in the guest printed, and how it ended.
#[derive(Debug)]
pub struct Output {
    /// None when ssh itself failed to run (connection, not the command).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `script` with the guest's shell and collects its output (ssh's own
/// exit status 255 means the connection failed, which is reported as an
/// error rather than as the command's status).
pub fn run(paths: &Paths, port: u16, script: &str) -> Result<Output> {
    run_with(command(paths, port), script)
}

/// As [`run`], for a command whose connection crosses a live upgrade
/// (`relivectl live-upgrade` followed from ssh): the guest is silent
/// while its sshd is parked and the new kernel boots, longer than
/// [`command`]'s 30 s keepalive under a slow TCG host, so keepalives
/// give up only after three minutes.
pub fn run_across_upgrade(paths: &Paths, port: u16, script: &str) -> Result<Output> {
    let mut cmd = base(paths, port, 10);
    cmd.args([
        "-o",
        "ServerAliveInterval=10",
        "-o",
        "ServerAliveCountMax=18",
        "root@127.0.0.1",
    ]);
    run_with(cmd, script)
}

fn run_with(mut cmd: Command, script: &str) -> Result<Output> {
    output::log(&format!("ssh: {script}"));
    let out = cmd
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .context("running ssh")?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    output::log(&format!("ssh: {}", out.status));
    if out.status.code() == Some(255) {
        bail!("ssh to the guest failed: {}", stderr.trim());
    }
    Ok(Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    })
}
