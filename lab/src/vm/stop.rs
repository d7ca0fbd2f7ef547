//! `relive-lab stop`: power the guest off from inside (its init's poweroff
//! command over ssh) and wait for QEMU to exit; kill QEMU if it does not.

use crate::output;
use crate::vm::boot::Booted;
use crate::vm::guest::Guest;
use crate::vm::paths::Paths;
use crate::vm::qemu;
use crate::vm::signals::Interrupt;
use crate::vm::ssh;
use anyhow::{bail, Result};
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// What the kernel prints last when it powers the machine off.
const POWER_DOWN_LINE: &str = "reboot: Power down";
/// A dying PID 1 (or any panic) with `panic=-1 -no-reboot` also ends QEMU
/// with status 0: the serial log tells the two apart.
const PANIC_LINE: &str = "Kernel panic";

#[derive(Debug)]
pub struct Stopped {
    pub secs: f64,
    /// The serial log ends with the kernel's power-down message.
    pub powered_off: bool,
    /// `e2fsck -fn` of a writable disk after shutdown: clean or not.
    pub fsck_clean: Option<bool>,
}

pub fn stop(paths: &Paths, timeout: Duration) -> Result<Option<Stopped>> {
    let Some(guest) = Guest::load(paths)? else {
        return Ok(None);
    };
    if !guest.alive() {
        Guest::clear(paths)?;
        output::warn(&format!("QEMU (pid {}) was already gone", guest.qemu_pid));
        return Ok(None);
    }
    if guest.ready_secs.is_none() {
        // Never became ready (its `boot` died): nobody to ask to power off.
        qemu::kill_pid(guest.qemu_pid, &guest.serial_log);
        Guest::clear(paths)?;
        bail!(
            "the guest (QEMU pid {}) never became ready; QEMU was killed",
            guest.qemu_pid
        );
    }
    let started = Instant::now();
    let command = guest.init.poweroff_command();
    let step = output::step(format!("powering off (`{command}` in the guest)"));
    // The connection usually drops as the guest goes down: ssh's own
    // status says little, QEMU exiting says it all.
    let _ = output::status(ssh::command(paths, guest.ssh_port).arg(command));

    let deadline = Instant::now() + timeout;
    while guest.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    if guest.alive() {
        qemu::kill_pid(guest.qemu_pid, &guest.serial_log);
        Guest::clear(paths)?;
        bail!(
            "the guest did not power off within {timeout:?} after `{command}`; QEMU (pid {}) was killed; serial log {}",
            guest.qemu_pid,
            guest.serial_log.display()
        );
    }
    let secs = started.elapsed().as_secs_f64();
    Guest::clear(paths)?;
    step.done();

    let log = std::fs::read_to_string(&guest.serial_log).unwrap_or_default();
    let powered_off = log.contains(POWER_DOWN_LINE);
    let fsck_clean = if guest.snapshot {
        None
    } else {
        Some(fsck_clean(&guest.disk)?)
    };
    Ok(Some(Stopped {
        secs,
        powered_off,
        fsck_clean,
    }))
}

/// What `stop` prints; false when the guest did not go down cleanly.
pub fn print(stopped: Option<&Stopped>) -> bool {
    let Some(stopped) = stopped else {
        println!("no guest running");
        return true;
    };
    println!(
        "stopped in {:.1} s; kernel power-down message: {}",
        stopped.secs,
        if stopped.powered_off { "yes" } else { "no" }
    );
    if let Some(clean) = stopped.fsck_clean {
        println!("file system: {}", if clean { "clean" } else { "NOT clean" });
    }
    stopped.powered_off && stopped.fsck_clean != Some(false)
}

/// Read-only forced check of the writable disk the guest used (what it
/// found is in the log).
fn fsck_clean(disk: &Path) -> Result<bool> {
    let step = output::step("checking the file system (e2fsck -fn)");
    let clean = output::status(Command::new("e2fsck").arg("-fn").arg(disk))?.success();
    if clean {
        step.done_with("clean");
    } else {
        step.failed("NOT clean");
    }
    Ok(clean)
}

/// How a guest this process owns went down.
#[derive(Debug)]
pub struct PoweredOff {
    /// From the poweroff command to QEMU's exit.
    pub secs: f64,
    pub status: ExitStatus,
    /// The kernel's power-down message is in the serial log.
    pub power_down_line: bool,
    /// A kernel panic is in the serial log.
    pub panicked: bool,
    /// `e2fsck -fn` of a writable disk: clean or not.
    pub fsck_clean: Option<bool>,
}

impl PoweredOff {
    /// QEMU exited 0 after the kernel's power-down, no panic, and the
    /// file system (when writable) is clean.
    pub fn clean(&self) -> bool {
        self.status.success()
            && self.power_down_line
            && !self.panicked
            && self.fsck_clean != Some(false)
    }
}

/// Runs the init's poweroff in a guest whose QEMU we own and waits on
/// QEMU's exit status; on timeout the guard kills QEMU.
pub fn poweroff(
    paths: &Paths,
    booted: Booted,
    timeout: Duration,
    interrupt: &Interrupt,
) -> Result<PoweredOff> {
    let command = booted.guest.init.poweroff_command();
    poweroff_with(paths, booted, command, timeout, interrupt)
}

/// `poweroff` with another command than the init's own (`kill -s RTMIN+4 1`
/// once relivectl is gone).
pub fn poweroff_with(
    paths: &Paths,
    booted: Booted,
    command: &str,
    timeout: Duration,
    interrupt: &Interrupt,
) -> Result<PoweredOff> {
    let Booted { mut qemu, guest } = booted;
    let step = output::step(format!("powering off (`{command}` in the guest)"));
    let started = Instant::now();
    // The connection may drop as the guest goes down: QEMU's exit is the
    // verdict, not ssh's status.
    let _ = ssh::run(paths, guest.ssh_port, command);
    let status = loop {
        if let Some(status) = qemu.try_wait()? {
            break status;
        }
        if let Err(e) = interrupt.check() {
            Guest::clear(paths)?;
            return Err(e);
        }
        if started.elapsed() > timeout {
            drop(qemu);
            Guest::clear(paths)?;
            bail!(
                "the guest did not power off within {timeout:?} after `{command}`; QEMU was killed; serial log {}",
                guest.serial_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let secs = started.elapsed().as_secs_f64();
    Guest::clear(paths)?;
    step.finish(status.success());
    let log = std::fs::read_to_string(&guest.serial_log).unwrap_or_default();
    let fsck_clean = if guest.snapshot {
        None
    } else {
        Some(fsck_clean(&guest.disk)?)
    };
    Ok(PoweredOff {
        secs,
        status,
        power_down_line: log.contains(POWER_DOWN_LINE),
        panicked: log.contains(PANIC_LINE),
        fsck_clean,
    })
}
