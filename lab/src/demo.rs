//! `relive-lab demo`: boot kernel 6.1 with relive as PID 1, show what it
//! runs, power off. (The live upgrade joins here once relive can do it.)

use crate::boot::{self, Options};
use crate::guest::Init;
use crate::paths::Paths;
use crate::signals::Interrupt;
use crate::ssh;
use crate::stop;
use anyhow::{bail, Result};
use std::time::Duration;

const KERNEL: &str = "6.1";

pub fn demo(paths: &Paths, interrupt: &Interrupt) -> Result<()> {
    let booted = boot::start(paths, &Options::new(KERNEL, Some(Init::Relive)), interrupt)?;
    eprintln!(
        "relive-lab: {} is up with relive after {:.1} s",
        booted.guest.kernel_release,
        booted.guest.ready_secs.unwrap_or_default()
    );
    for command in ["relivectl list-units", "uname -r"] {
        println!("guest# {command}");
        let out = ssh::run(paths, booted.guest.ssh_port, command)?;
        print!("{}", out.stdout);
        eprint!("{}", out.stderr);
        if !out.success() {
            bail!("`{command}` failed in the guest (exit {:?})", out.code);
        }
    }
    let off = stop::poweroff(paths, booted, Duration::from_secs(120), interrupt)?;
    println!("powered off in {:.1} s (QEMU {})", off.secs, off.status);
    if !off.clean() {
        bail!("the guest did not power off cleanly: {off:?}");
    }
    Ok(())
}
