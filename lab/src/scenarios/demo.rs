//! `relive-lab demo`: boot kernel 6.1 with relive as PID 1, start the
//! workloads, show what runs, live-upgrade to 6.12 (detached: the ssh
//! session that asks is itself in a preserved unit), show relive's upgrade
//! report and the new `uname -r`, power off.

use crate::output;
use crate::scenarios::upgrade;
use crate::vm::boot::{self, Options};
use crate::vm::guest::Init;
use crate::vm::image::Image;
use crate::vm::paths::Paths;
use crate::vm::signals::Interrupt;
use crate::vm::ssh;
use crate::vm::stop;
use anyhow::{bail, Result};
use std::time::Duration;

const FROM: &str = "6.1";
const TO: &str = "6.12";

pub fn demo(paths: &Paths, image: &Image, interrupt: &Interrupt) -> Result<()> {
    let to_release = image.kernel(TO)?.release.clone();
    let opts = Options::new(FROM, Some(Init::Relive));
    let mut booted = boot::start(paths, image, &opts, interrupt)?;
    let port = booted.guest.ssh_port;
    show(
        paths,
        port,
        &[
            "relivectl list-units",
            "uname -r",
            "echo report | nc -q1 127.0.0.1 7001",
        ],
    )?;

    let command = format!(
        "relivectl live-upgrade --detach {}",
        upgrade::kernel_args(&to_release)
    );
    output::println(format!("guest# {command}"));
    let (said, _) = upgrade::run_detached(&mut booted, paths, &to_release, interrupt)?;
    output::println(said);
    show(
        paths,
        port,
        &[
            "relivectl upgrade-report",
            "uname -r",
            "echo report | nc -q1 127.0.0.1 7001",
        ],
    )?;

    let off = stop::poweroff(paths, booted, Duration::from_secs(120), interrupt)?;
    output::println(format!(
        "powered off in {:.1} s (QEMU {})",
        off.secs, off.status
    ));
    if !off.clean() {
        bail!("the guest did not power off cleanly: {off:?}");
    }
    Ok(())
}

/// Runs each command in the guest, printing it and its output.
fn show(paths: &Paths, port: u16, commands: &[&str]) -> Result<()> {
    for command in commands {
        output::println(format!("guest# {command}"));
        let out = ssh::run(paths, port, command)?;
        if !out.stdout.trim().is_empty() {
            output::println(out.stdout.trim_end());
        }
        output::log(&format!("stderr: {}", out.stderr.trim_end()));
        if !out.success() {
            bail!("`{command}` failed in the guest (exit {:?})", out.code);
        }
    }
    Ok(())
}
