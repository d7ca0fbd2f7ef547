//! Starting QEMU, and making sure none outlives a failed command: `Qemu`
//! kills its guest on drop (error, timeout, interrupt, panic) unless the
//! guest has been handed over to guest.json with `detach`.

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

/// Where relive-echo (workloads/) listens in the guest.
pub const GUEST_ECHO_PORT: u16 = 7000;
/// Where relive-greet.socket (mkosi.extra/) listens in the guest.
pub const GUEST_GREET_PORT: u16 = 7020;

/// One guest's QEMU command line, in parts.
#[derive(Debug, Clone)]
pub struct Config {
    pub accel: Accel,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
    pub disk: PathBuf,
    /// The second disk (/dev/vdb in the guest).
    pub data_disk: PathBuf,
    /// Guest writes go to a temporary overlay (`-snapshot`): the disk stays
    /// pristine.
    pub snapshot: bool,
    pub ssh_port: u16,
    /// Host port forwarded to the guest's relive-echo (port 7000).
    pub echo_port: u16,
    /// Host port forwarded to the guest's relive-greet.socket (7020).
    pub greet_port: u16,
    pub serial_log: PathBuf,
    pub stderr_log: PathBuf,
    /// A guest reboot restarts the guest in the same QEMU (bench-upgrade's
    /// cold reboot) instead of ending QEMU.
    pub allow_reboot: bool,
    /// Guest RAM in QEMU's `-m` syntax ("2G", "5632M").
    pub memory: String,
}

impl Config {
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("qemu-system-x86_64");
        match self.accel {
            Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
            // /dev/kvm on these hosts cannot run a stock guest (LAB.md).
            Accel::Tcg => cmd.args(["-accel", "tcg,thread=multi", "-cpu", "max"]),
        };
        cmd.args(["-smp", "2", "-m", &self.memory])
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-monitor",
                "none",
            ])
            .arg("-serial")
            .arg(format!("file:{}", self.serial_log.display()))
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&self.initrd)
            .arg("-append")
            .arg(&self.append)
            .arg("-drive")
            .arg(format!("file={},if=virtio,format=raw", self.disk.display()))
            .arg("-drive")
            .arg(format!(
                "file={},if=virtio,format=raw",
                self.data_disk.display()
            ))
            .arg("-netdev")
            .arg(format!(
                "user,id=net0,hostfwd=tcp:127.0.0.1:{}-:22,hostfwd=tcp:127.0.0.1:{}-:{GUEST_ECHO_PORT},hostfwd=tcp:127.0.0.1:{}-:{GUEST_GREET_PORT}",
                self.ssh_port, self.echo_port, self.greet_port
            ))
            .args(["-device", "virtio-net-pci,netdev=net0"]);
        if self.snapshot {
            cmd.arg("-snapshot");
        }
        if !self.allow_reboot {
            // Guest reboots end QEMU instead of looping; kexec is not a reset.
            cmd.arg("-no-reboot");
        }
        cmd
    }
}

/// A QEMU process this invocation started.
#[derive(Debug)]
pub struct Qemu {
    child: Option<Child>,
    pid: u32,
    pub config: Config,
}

impl Qemu {
    pub fn spawn(config: Config) -> Result<Qemu> {
        let stderr = File::create(&config.stderr_log)
            .with_context(|| format!("creating {}", config.stderr_log.display()))?;
        let child = config
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            // Its own process group: a Ctrl-C in the terminal reaches only
            // the driver, which then kills QEMU itself (or leaves a booted
            // guest alone after `boot` returned).
            .process_group(0)
            .spawn()
            .context("starting qemu-system-x86_64")?;
        let pid = child.id();
        Ok(Qemu {
            child: Some(child),
            pid,
            config,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some(status)` once QEMU has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match &mut self.child {
            Some(child) => Ok(child.try_wait()?),
            None => bail!("QEMU was detached"),
        }
    }

    /// Leaves the guest running after this process exits; from now on it
    /// is found through guest.json.
    pub fn detach(mut self) -> u32 {
        self.child = None;
        self.pid
    }

    /// QEMU's stderr so far (why it refused to start, usually).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.config.stderr_log).unwrap_or_default()
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            if let Ok(None) = child.try_wait() {
                crate::output::warn(&format!("killing QEMU (pid {})", self.pid));
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Whether `pid` is a live (not zombie) QEMU started with `serial_log`, so
/// a PID reused by another process is never signalled.
pub fn is_our_qemu(pid: u32, serial_log: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if state == Some("Z") {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let needle = format!("file:{}", serial_log.display());
    cmdline
        .split(|&b| b == 0)
        .any(|arg| arg == needle.as_bytes())
}

/// Ends a QEMU that is not our child: SIGTERM, then SIGKILL after 5 s.
pub fn kill_pid(pid: u32, serial_log: &Path) {
    let target = Pid::from_raw(pid as i32);
    for signal in [Signal::SIGTERM, Signal::SIGKILL] {
        if !is_our_qemu(pid, serial_log) {
            return;
        }
        let _ = kill(target, signal);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && is_our_qemu(pid, serial_log) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Distinct free TCP ports on 127.0.0.1 for the hostfwds (the kernel
/// picks them, all held at once so they differ; QEMU binds them a moment
/// later).
pub fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port");
    let held = (0..N).map(|_| bind()).collect::<Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&held) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guard must kill its process when the driver panics, not only on
    /// orderly errors (a stand-in `sleep` plays QEMU).
    #[test]
    fn guard_kills_its_process_when_the_driver_panics() {
        let child = Command::new("sleep").arg("600").spawn().unwrap();
        let pid = child.id();
        let config = Config {
            accel: Accel::Tcg,
            kernel: PathBuf::new(),
            initrd: PathBuf::new(),
            append: String::new(),
            disk: PathBuf::new(),
            data_disk: PathBuf::new(),
            snapshot: true,
            ssh_port: 0,
            echo_port: 0,
            greet_port: 0,
            serial_log: PathBuf::new(),
            stderr_log: PathBuf::new(),
            allow_reboot: false,
            memory: "2G".into(),
        };
        let result = std::panic::catch_unwind(move || {
            let _qemu = Qemu {
                child: Some(child),
                pid,
                config,
            };
            panic!("driver bug");
        });
        assert!(result.is_err());
        // Killed and reaped: the PID is gone, not even a zombie.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
