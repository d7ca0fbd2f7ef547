//! The running guest, as lab/out/run/guest.json: `boot` writes it and
//! returns, later `ssh`, `status` and `stop` invocations read it.

use crate::vm::distro::Distro;
use crate::vm::paths::Paths;
use crate::vm::qemu::{self, Accel};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The guest's PID 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    Systemd,
    Relive,
}

impl Init {
    /// Both are in the same image; the kernel command line picks one.
    pub fn path(self) -> &'static str {
        match self {
            Init::Systemd => "/lib/systemd/systemd",
            Init::Relive => "/usr/sbin/relive",
        }
    }

    /// A command that succeeds once the init has reached (and still has)
    /// multi-user.target active: the same question asked of both inits.
    pub fn target_active_command(self) -> &'static str {
        match self {
            Init::Systemd => "systemctl is-active --quiet multi-user.target",
            Init::Relive => "relivectl is-active --quiet multi-user.target",
        }
    }

    /// What powers the guest off cleanly.
    pub fn poweroff_command(self) -> &'static str {
        match self {
            // It prints "Failed to connect to bus" (dbus is masked) and
            // then uses systemd's private socket.
            Init::Systemd => "systemctl poweroff",
            Init::Relive => "relivectl poweroff",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Guest {
    pub qemu_pid: u32,
    pub ssh_port: u16,
    /// Host port forwarded to relive-echo in the guest (0: none).
    #[serde(default)]
    pub echo_port: u16,
    /// Host port forwarded to relive-greet.socket in the guest (0: none).
    #[serde(default)]
    pub greet_port: u16,
    pub serial_log: PathBuf,
    pub qemu_stderr: PathBuf,
    /// The release of the image it booted (guests booted before there
    /// were two: bookworm).
    #[serde(default)]
    pub distro: Distro,
    /// A series of the release's kernels list ("6.1", "6.12", ...), as
    /// given to `boot --kernel`.
    pub kernel_series: String,
    /// What `uname -r` should print in the guest.
    pub kernel_release: String,
    pub init: Init,
    pub accel: Accel,
    pub disk: PathBuf,
    /// Writes go to QEMU's temporary overlay, not to `disk`.
    pub snapshot: bool,
    /// Seconds from QEMU's start to readiness; None while booting (or if
    /// the `boot` that started it died before the guest was ready).
    pub ready_secs: Option<f64>,
}

impl Guest {
    pub fn load(paths: &Paths) -> Result<Option<Guest>> {
        let file = paths.guest_state();
        match std::fs::read_to_string(&file) {
            Ok(text) => Ok(Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", file.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
        }
    }

    /// The running guest, or an error saying there is none.
    pub fn running(paths: &Paths) -> Result<Guest> {
        match Guest::load(paths)? {
            Some(guest) if guest.alive() => Ok(guest),
            _ => anyhow::bail!(
                "no guest is running: start one with `relive-lab boot --kernel 6.1|6.12`"
            ),
        }
    }

    pub fn save(&self, paths: &Paths) -> Result<()> {
        std::fs::create_dir_all(paths.run_dir())?;
        let tmp = paths.guest_state().with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)?;
        std::fs::rename(&tmp, paths.guest_state())?;
        Ok(())
    }

    pub fn clear(paths: &Paths) -> Result<()> {
        match std::fs::remove_file(paths.guest_state()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    pub fn alive(&self) -> bool {
        qemu::is_our_qemu(self.qemu_pid, &self.serial_log)
    }

    /// What `boot` prints once the guest is ready.
    pub fn ready_line(&self) -> String {
        format!(
            "ready in {:.1} s: kernel {}, init {:?}, ssh port {}, echo port {}, serial log {}",
            self.ready_secs.unwrap_or_default(),
            self.kernel_release,
            self.init,
            self.ssh_port,
            self.echo_port,
            self.serial_log.display()
        )
    }

    /// `relive-lab status`: the running guest, or that there is none.
    pub fn print_status(paths: &Paths, json: bool) -> Result<()> {
        match Guest::load(paths)?.filter(Guest::alive) {
            None if json => println!("{{\"running\":false}}"),
            None => println!("no guest running"),
            Some(guest) if json => {
                let mut value = serde_json::to_value(&guest)?;
                value["running"] = true.into();
                println!("{value}");
            }
            Some(guest) => println!(
                "{}: QEMU pid {}, {}, kernel {}, init {:?}, {:?}, ssh port {}, serial log {}",
                if guest.ready_secs.is_some() {
                    "running"
                } else {
                    "booting"
                },
                guest.qemu_pid,
                guest.distro.name(),
                guest.kernel_release,
                guest.init,
                guest.accel,
                guest.ssh_port,
                guest.serial_log.display()
            ),
        }
        Ok(())
    }
}
