//! KVM when /dev/kvm can run a stock guest, else TCG. On PVM hosts /dev/kvm
//! exists and QEMU starts, but the guest dies with "KVM internal error"
//! (LAB.md), so the only real test is booting a kernel: the probe boots the
//! image's kernel without an initrd and with `panic=-1`, which under
//! working KVM panics on the missing root within seconds and exits QEMU.
//! The verdict is cached per host kernel.

use crate::vm::image::Kernel;
use crate::vm::paths::Paths;
use crate::vm::qemu::Accel;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
struct Cached {
    host_kernel: String,
    accel: Accel,
}

pub fn detect(paths: &Paths, kernel: &Kernel) -> Result<Accel> {
    match std::env::var("RELIVE_LAB_ACCEL").as_deref() {
        Ok("kvm") => return Ok(Accel::Kvm),
        Ok("tcg") => return Ok(Accel::Tcg),
        Ok(other) => bail!("RELIVE_LAB_ACCEL={other}: expected kvm or tcg"),
        Err(_) => {}
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Ok(Accel::Tcg);
    }
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")?
        .trim()
        .to_owned();
    let cache = paths.out.join("accel.json");
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Ok(cached) = serde_json::from_str::<Cached>(&text) {
            if cached.host_kernel == host_kernel {
                return Ok(cached.accel);
            }
        }
    }
    let step = crate::output::step("probing KVM (a kernel boot without a root)");
    let accel = if probe_kvm(paths, kernel)? {
        Accel::Kvm
    } else {
        Accel::Tcg
    };
    step.done_with(&format!("using {accel:?}"));
    std::fs::write(
        &cache,
        serde_json::to_string(&Cached { host_kernel, accel })?,
    )?;
    Ok(accel)
}

fn probe_kvm(paths: &Paths, kernel: &Kernel) -> Result<bool> {
    std::fs::create_dir_all(paths.logs())?;
    let serial = paths.logs().join("kvm-probe.serial.log");
    let _ = std::fs::remove_file(&serial);
    let stderr = std::fs::File::create(paths.logs().join("kvm-probe.stderr"))?;
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "kvm", "-cpu", "host", "-m", "512M", "-smp", "1"])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
        ])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .args(["-append", "console=ttyS0 panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .context("starting qemu-system-x86_64 for the KVM probe")?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let stderr_log = paths.logs().join("kvm-probe.stderr");
    let exited = loop {
        if child.try_wait()?.is_some() {
            break true;
        }
        // A KVM internal error pauses the guest instead of ending QEMU.
        let failed =
            std::fs::read_to_string(&stderr_log).is_ok_and(|e| e.contains("KVM internal error"));
        if failed || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = std::fs::read_to_string(&serial).unwrap_or_default();
    Ok(exited && log.contains("Kernel panic"))
}
