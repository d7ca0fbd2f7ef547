//! `relive-lab boot`: start the image in QEMU in the background and return
//! once the guest is ready, or fail with the serial log's tail (the guard in
//! `Qemu` kills the guest on every failure path).

use crate::output;
use crate::vm::accel;
use crate::vm::disk;
use crate::vm::guest::{Guest, Init};
use crate::vm::image::Image;
use crate::vm::paths::Paths;
use crate::vm::qemu::{self, Qemu};
use crate::vm::signals::Interrupt;
use crate::vm::ssh;
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The memory store's region: 512 MiB at 1 GiB, inside the RAM of every
/// lab VM (at least 2 GiB).
pub const MEMORY_STORE: &str = "512M!1G";

/// The line relive prints on the serial console once the default target is
/// reached (relive's readiness signal; systemd's is sshd answering).
pub const RELIVE_READY_LINE: &str = "reached target multi-user.target";

/// Between readiness probes (a failed ssh probe costs ~0.1 s of host time
/// and nothing in the guest: see `ssh::probe_command`).
const POLL_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct Options {
    /// A series of the image's release ("6.1", "6.12", ...).
    pub kernel: String,
    /// None: relive when the image has it, else systemd.
    pub init: Option<Init>,
    /// Boot a writable copy of the disk instead of `-snapshot`.
    pub writable: bool,
    /// With `writable`: boot the copy the previous writable boot left, as
    /// that boot left it, instead of a fresh copy of the image.
    pub reuse_copy: bool,
    /// Name PID 1 with init= on the kernel command line. Without it the
    /// kernel starts /sbin/init (systemd), as GRUB's default entry does.
    pub init_on_cmdline: bool,
    pub timeout: Duration,
    /// Units written into the writable copy before it boots (tests only:
    /// the image itself stays the same for every boot).
    pub extra_units: Vec<disk::ExtraUnit>,
    pub ready_when: ReadyWhen,
    /// Without QEMU's -no-reboot: a guest reboot boots the same kernel
    /// again in the same QEMU (and panic=-1 would loop: bench only).
    pub allow_reboot: bool,
    /// Guest RAM, QEMU's `-m` syntax.
    pub memory: String,
    /// The memory store's `memmap=` region (SIZE!OFFSET) on the kernel
    /// command line.
    pub memory_store: String,
    /// Grow the writable copy's file system to this many bytes before the
    /// boot (room for big CRIU images); never shrinks.
    pub disk_bytes: Option<u64>,
}

impl Options {
    pub fn new(kernel: &str, init: Option<Init>) -> Options {
        Options {
            kernel: kernel.to_owned(),
            init,
            writable: false,
            reuse_copy: false,
            init_on_cmdline: true,
            timeout: Duration::from_secs(300),
            extra_units: Vec::new(),
            ready_when: ReadyWhen::Usable,
            allow_reboot: false,
            memory: "2G".into(),
            memory_store: MEMORY_STORE.into(),
            disk_bytes: None,
        }
    }
}

/// When `start` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyWhen {
    /// relive: its serial line, then ssh answering; systemd: ssh answering.
    Usable,
    /// The same test for both inits, for bench-boot: an ssh command in
    /// which the init says multi-user.target is active succeeds.
    TargetActive,
}

/// What "ready" means, checked in order.
#[derive(Debug, Clone, Copy)]
enum Readiness {
    /// This line has appeared in the serial log.
    SerialLine(&'static str),
    /// sshd accepts the lab key and runs `true`.
    Ssh,
    /// sshd answers and the init reports multi-user.target active.
    TargetActive(Init),
}

fn readiness(init: Init, when: ReadyWhen) -> Vec<Readiness> {
    match (when, init) {
        (ReadyWhen::TargetActive, init) => vec![Readiness::TargetActive(init)],
        // The `ssh` verb must work right after `boot`, so ssh is checked
        // after relive's own line too.
        (ReadyWhen::Usable, Init::Relive) => {
            vec![Readiness::SerialLine(RELIVE_READY_LINE), Readiness::Ssh]
        }
        (ReadyWhen::Usable, Init::Systemd) => vec![Readiness::Ssh],
    }
}

/// A ready guest whose QEMU this process owns: dropping it kills QEMU.
#[derive(Debug)]
pub struct Booted {
    pub qemu: Qemu,
    pub guest: Guest,
}

/// `relive-lab boot`: starts the guest and leaves it running for later
/// invocations (found through guest.json).
pub fn boot(paths: &Paths, image: &Image, opts: &Options, interrupt: &Interrupt) -> Result<Guest> {
    let booted = start(paths, image, opts, interrupt)?;
    booted.qemu.detach();
    Ok(booted.guest)
}

/// Boots a guest of `image` and waits until it is ready; the caller owns
/// QEMU (and must `Guest::clear` once done with it).
pub fn start(
    paths: &Paths,
    image: &Image,
    opts: &Options,
    interrupt: &Interrupt,
) -> Result<Booted> {
    if let Some(guest) = Guest::load(paths)? {
        if guest.alive() {
            bail!(
                "a guest is already running (QEMU pid {}, kernel {}): `relive-lab stop` first",
                guest.qemu_pid,
                guest.kernel_release
            );
        }
        Guest::clear(paths)?;
    }

    let kernel = image.kernel(&opts.kernel)?.clone();
    let init = match opts.init {
        Some(Init::Relive) if !image.has_relive => {
            bail!(
                "the image has no relive: build its package (scripts/deb), then `relive-lab image`"
            )
        }
        Some(init) => init,
        None if image.has_relive => Init::Relive,
        None => Init::Systemd,
    };
    let accel = accel::detect(paths, &kernel)?;

    std::fs::create_dir_all(paths.logs())?;
    std::fs::create_dir_all(paths.run_dir())?;
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    // "-host2" for one of several guests (`Paths::for_guest`).
    let guest_name = paths
        .run
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("run"))
        .unwrap_or_default();
    let run_name = format!("{stamp}-{}-{init:?}{guest_name}", kernel.release).to_lowercase();
    let serial_log = paths.logs().join(format!("serial-{run_name}.log"));
    let qemu_stderr = paths.logs().join(format!("qemu-{run_name}.stderr"));

    if (!opts.extra_units.is_empty() || opts.disk_bytes.is_some()) && !opts.writable {
        bail!("extra units and a disk size need a writable disk");
    }
    if !opts.init_on_cmdline && init != Init::Systemd {
        bail!("without init= the kernel starts /sbin/init, which is systemd");
    }
    let disk = if opts.writable && opts.reuse_copy {
        let copy = paths.writable_disk();
        if !copy.is_file() {
            bail!(
                "no writable copy left by a previous boot at {}",
                copy.display()
            );
        }
        copy
    } else if opts.writable {
        let step = output::step("copying the disk for a writable boot");
        let copy = paths.writable_disk();
        disk::copy_sparse(&image.disk, &copy)?;
        disk::copy_sparse(&paths.data_disk(), &paths.writable_data_disk())?;
        if let Some(bytes) = opts.disk_bytes {
            step.detail(&format!("growing it to {} MiB", bytes >> 20));
            grow_disk(&copy, bytes)?;
        }
        if !opts.extra_units.is_empty() {
            step.detail("adding units with debugfs");
            disk::add_units(paths, &copy, &opts.extra_units)?;
        }
        step.done();
        copy
    } else {
        image.disk.clone()
    };

    let [ssh_port, echo_port, greet_port] = qemu::free_ports()?;
    let config = qemu::Config {
        accel,
        kernel: kernel.vmlinuz.clone(),
        initrd: kernel.initrd.clone(),
        // net.ifnames=0: the NIC is eth0 under both inits (no udev rename
        // racing ifupdown's networking.service). panic=-1 with QEMU's -no-reboot: a
        // dying PID 1 ends QEMU at once instead of hanging until timeout.
        // memmap=: RAM the kernel leaves alone, relive's memory store for
        // live upgrades (/dev/pmem0; 128 MiB aligned inside usable RAM).
        append: format!(
            "console=ttyS0 quiet root=/dev/vda rw net.ifnames=0 panic=-1 memmap={}{}",
            opts.memory_store,
            if opts.init_on_cmdline {
                format!(" init={}", init.path())
            } else {
                String::new()
            }
        ),
        disk: disk.clone(),
        data_disk: if opts.writable {
            paths.writable_data_disk()
        } else {
            paths.data_disk()
        },
        snapshot: !opts.writable,
        ssh_port,
        echo_port,
        greet_port,
        serial_log: serial_log.clone(),
        stderr_log: qemu_stderr.clone(),
        allow_reboot: opts.allow_reboot,
        memory: opts.memory.clone(),
    };
    output::log(&format!(
        "QEMU: {:?}; serial log {}",
        config.command(),
        serial_log.display()
    ));
    let what = format!(
        "{} with {} ({})",
        kernel.release,
        format!("{init:?}").to_lowercase(),
        format!("{accel:?}").to_uppercase()
    );
    let started = Instant::now();
    let mut qemu = Qemu::spawn(config)?;
    // Recorded before waiting, so that a guest whose driver was SIGKILLed
    // is still found (and stopped) by the next invocation.
    let mut guest = Guest {
        qemu_pid: qemu.pid(),
        ssh_port: qemu.config.ssh_port,
        echo_port: qemu.config.echo_port,
        greet_port: qemu.config.greet_port,
        serial_log,
        qemu_stderr,
        distro: image.distro,
        kernel_series: opts.kernel.clone(),
        kernel_release: kernel.release,
        init,
        accel,
        disk,
        snapshot: !opts.writable,
        ready_secs: None,
    };
    guest.save(paths)?;
    if let Err(e) = wait_ready(
        paths,
        &mut qemu,
        &what,
        &readiness(init, opts.ready_when),
        started,
        opts.timeout,
        interrupt,
    ) {
        let report = failure_report(&qemu);
        drop(qemu); // kills the guest
        Guest::clear(paths)?;
        return Err(anyhow!("{e:#}\n{report}"));
    }
    guest.ready_secs = Some(started.elapsed().as_secs_f64());
    guest.save(paths)?;
    Ok(Booted { qemu, guest })
}

/// Grows the (unmounted) ext4 disk file to `bytes`, sparse, and its file
/// system with it; a disk already that big is left alone.
fn grow_disk(disk: &Path, bytes: u64) -> Result<()> {
    if std::fs::metadata(disk)?.len() >= bytes {
        return Ok(());
    }
    // resize2fs wants a freshly checked file system; -p repairs nothing
    // that needs a human (and a fresh copy needs nothing).
    let steps: [(&str, Vec<String>); 3] = [
        ("e2fsck", vec!["-fp".into()]),
        ("truncate", vec!["-s".into(), bytes.to_string()]),
        ("resize2fs", vec![]),
    ];
    for (program, args) in steps {
        let out = Command::new(program)
            .args(&args)
            .arg(disk)
            .output()
            .with_context(|| format!("running {program}"))?;
        // e2fsck exits 1 when it corrected something: still usable.
        let ok = out.status.success() || (program == "e2fsck" && out.status.code() == Some(1));
        if !ok {
            bail!(
                "{program} {} failed ({}): {}",
                disk.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// Waits for each readiness in turn, each a step: `booting WHAT` until
/// the first, `waiting for ssh` after relive's line.
fn wait_ready(
    paths: &Paths,
    qemu: &mut Qemu,
    what: &str,
    steps: &[Readiness],
    started: Instant,
    timeout: Duration,
    interrupt: &Interrupt,
) -> Result<()> {
    for (i, step) in steps.iter().enumerate() {
        let shown = output::step(match (i, step) {
            (0, Readiness::SerialLine(_)) => format!("booting {what}"),
            (0, Readiness::Ssh) => format!("booting {what} until ssh answers"),
            (_, Readiness::Ssh) => "waiting for ssh".into(),
            (_, Readiness::SerialLine(line)) => format!("waiting for `{line}`"),
            (_, Readiness::TargetActive(_)) => {
                format!("booting {what} until multi-user.target is active")
            }
        });
        loop {
            interrupt.check()?;
            if let Some(status) = qemu.try_wait()? {
                bail!("QEMU exited ({status}) before the guest was ready");
            }
            let done = match step {
                Readiness::SerialLine(line) => std::fs::read_to_string(&qemu.config.serial_log)
                    .is_ok_and(|log| log.contains(line)),
                Readiness::Ssh => ssh::probe(paths, qemu.config.ssh_port),
                Readiness::TargetActive(init) => {
                    ssh::probe_command(paths, qemu.config.ssh_port, init.target_active_command())
                }
            };
            if done {
                output::log(&format!(
                    "{step:?} after {:.1} s",
                    started.elapsed().as_secs_f64()
                ));
                shown.done();
                break;
            }
            if started.elapsed() > timeout {
                bail!("timed out after {timeout:?} waiting for {step:?}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    Ok(())
}

/// The serial log's tail and QEMU's stderr, for a failed boot.
pub fn failure_report(qemu: &Qemu) -> String {
    let log = std::fs::read_to_string(&qemu.config.serial_log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    format!(
        "serial log {} ends with:\n{tail}\nQEMU stderr:\n{}",
        qemu.config.serial_log.display(),
        qemu.stderr()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small ext4 file grows, file system included; a bigger size than
    /// asked is left alone.
    #[test]
    fn grow_disk_grows_the_file_system() {
        if crate::vm::prereq::which("mkfs.ext4").is_none()
            || crate::vm::prereq::which("resize2fs").is_none()
        {
            eprintln!("skipped: no e2fsprogs");
            return;
        }
        let dir = std::env::temp_dir().join(format!("relive-lab-grow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let disk = dir.join("disk.raw");
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&disk)
            .arg("32M")
            .output()
            .unwrap();
        assert!(made.status.success());
        grow_disk(&disk, 64 << 20).unwrap();
        assert_eq!(std::fs::metadata(&disk).unwrap().len(), 64 << 20);
        let out = Command::new("dumpe2fs")
            .arg("-h")
            .arg(&disk)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let blocks: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("Block count:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let size: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("Block size:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(blocks * size, 64 << 20);
        grow_disk(&disk, 48 << 20).unwrap();
        assert_eq!(std::fs::metadata(&disk).unwrap().len(), 64 << 20);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
