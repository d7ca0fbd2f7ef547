//! What `upgrade-check`, `demo` and `bench-upgrade` share: starting a
//! detached live upgrade in the guest, waiting for its outcome on the
//! serial console, relive's upgrade report, and the preserved units' PIDs.

use crate::output;
use crate::vm::boot::Booted;
use crate::vm::paths::Paths;
use crate::vm::signals::Interrupt;
use crate::vm::ssh;
use anyhow::{bail, Context, Result};
use relive_api::plan::Plan;
use relive_api::report::{UnitRecord, UpgradeReport};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The lab's preserved units (mkosi/README.md), in no particular order.
pub const PRESERVED: &[&str] = &[
    "ssh.service",
    "nginx.service",
    "relive-slowfile.service",
    "redis-server.service",
    "relive-echo.service",
    "relive-counter.service",
    "dbus.service",
    "relive-busclient.service",
];

/// relive's serial lines (snapshot/src/park.rs, restore/src/resume.rs):
/// the end of an upgrade on the new kernel, and of an abort on the old one.
pub const COMPLETE_LINE: &str = "complete; longest stoppage";
pub const ABORTED_LINE: &str = "live upgrade aborted";
pub const UNDONE_LINE: &str = "every service runs on the old kernel again";

/// Under TCG an upgrade takes ~50 s; a slow host triples that.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(400);

/// The guest's paths of a kernel and its initrd (the image's /boot).
pub fn kernel_args(release: &str) -> String {
    format!("--kernel /boot/vmlinuz-{release} --initrd /boot/initrd.img-{release} --reuse-cmdline")
}

/// The lab's kernel command line without the memory store's reservation
/// (vm/boot.rs has the rest): for `--append`, to make the memory store
/// unusable for the next kernel.
pub const CMDLINE_WITHOUT_STORE: &str =
    "console=ttyS0 quiet root=/dev/vda rw net.ifnames=0 panic=-1 init=/usr/sbin/relive";

/// `relivectl live-upgrade` to `release` with `flags`; the running
/// kernel's command line is reused unless the flags give one (--append).
pub fn upgrade_command(release: &str, flags: &str) -> String {
    let kernel = if flags.contains("--append") {
        format!("--kernel /boot/vmlinuz-{release} --initrd /boot/initrd.img-{release}")
    } else {
        kernel_args(release)
    };
    format!("relivectl live-upgrade {kernel} {flags}")
}

/// `relivectl live-upgrade --detach`: returns after relive's preflight
/// (which must pass); relive goes on once this ssh session is gone. The
/// session runs inside ssh.service, a preserved unit, so it cannot wait for
/// the outcome: the serial console tells it (`wait_serial`).
pub fn start_detached(paths: &Paths, port: u16, release: &str) -> Result<String> {
    start_detached_with(paths, port, release, "")
}

/// As [`start_detached`], with more `relivectl live-upgrade` flags.
pub fn start_detached_with(paths: &Paths, port: u16, release: &str, flags: &str) -> Result<String> {
    let out = ssh::run(
        paths,
        port,
        &upgrade_command(release, &format!("--detach {flags}")),
    )?;
    if !out.success() {
        bail!(
            "relivectl live-upgrade --detach failed (exit {:?}): {}{}",
            out.code,
            out.stdout,
            out.stderr
        );
    }
    Ok(format!("{}{}", out.stdout, out.stderr).trim().to_owned())
}

/// The serial log's length now: later waits look only past it.
pub fn serial_mark(booted: &Booted) -> usize {
    std::fs::read(&booted.qemu.config.serial_log).map_or(0, |b| b.len())
}

/// Starts a detached upgrade to `release` and waits until relive reports
/// it complete and ssh answers again; returns what `relivectl` said and the
/// time from the request until ssh answered.
pub fn run_detached(
    booted: &mut Booted,
    paths: &Paths,
    release: &str,
    interrupt: &Interrupt,
) -> Result<(String, Duration)> {
    run_detached_with(booted, paths, release, "", interrupt)
}

/// As [`run_detached`], with more `relivectl live-upgrade` flags.
pub fn run_detached_with(
    booted: &mut Booted,
    paths: &Paths,
    release: &str,
    flags: &str,
    interrupt: &Interrupt,
) -> Result<(String, Duration)> {
    run_detached_within(booted, paths, release, flags, UPGRADE_TIMEOUT, interrupt)
}

/// As [`run_detached_with`], waiting for relive at most `timeout` (big
/// guests take longer).
pub fn run_detached_within(
    booted: &mut Booted,
    paths: &Paths,
    release: &str,
    flags: &str,
    timeout: Duration,
    interrupt: &Interrupt,
) -> Result<(String, Duration)> {
    let label = format!("live upgrade to {release} {flags}")
        .trim_end()
        .to_owned();
    run_detached_by(booted, paths, &label, timeout, interrupt, |paths, port| {
        let said = start_detached_with(paths, port, release, flags)?;
        output::log(&format!("relivectl live-upgrade --detach said: {said}"));
        Ok(said)
    })
}

/// `relivectl live-upgrade` without --detach, from an ssh session, as an
/// administrator types it: the session (ssh.service) is preserved, so
/// relivectl lets go of relive before it is checkpointed, is restored
/// with it and prints the outcome; this ssh command returns only then,
/// with the upgrade's exit status. Returns what it printed.
pub fn run_followed(
    booted: &mut Booted,
    paths: &Paths,
    release: &str,
    newest: bool,
    flags: &str,
    interrupt: &Interrupt,
) -> Result<(String, Duration)> {
    // The newest kernel of the image is what --latest picks; a hop of a
    // chain to an older one names its release.
    let target = if newest {
        "--latest".to_owned()
    } else {
        format!("--release {release}")
    };
    let command = format!("relivectl live-upgrade {target} --reuse-cmdline {flags}");
    let label = format!("live upgrade {target} (to {release}) {flags}, followed by relivectl")
        .trim_end()
        .to_owned();
    run_detached_by(
        booted,
        paths,
        &label,
        UPGRADE_TIMEOUT,
        interrupt,
        |paths, port| {
            let out = ssh::run_across_upgrade(paths, port, &command)?;
            let said = checked(out, "relivectl live-upgrade")?;
            if !said.contains(&format!("-> {release}")) {
                bail!("relivectl live-upgrade did not follow the upgrade to its end: {said}");
            }
            Ok(said)
        },
    )
}

/// Through D-Bus instead of relivectl: busctl calls relive's
/// StartLiveUpgrade on systemd's name and object on the system bus, as
/// any D-Bus client can. `options` are the method's a{ss} (store,
/// single-phase).
pub fn run_detached_busctl(
    booted: &mut Booted,
    paths: &Paths,
    release: &str,
    options: &[(&str, &str)],
    interrupt: &Interrupt,
) -> Result<(String, Duration)> {
    let mut dict = format!("{}", options.len());
    for (key, value) in options {
        dict += &format!(" {key} {value}");
    }
    let command = format!(
        "busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.relive.Manager1 \
         StartLiveUpgrade 'sssba{{ss}}' /boot/vmlinuz-{release} /boot/initrd.img-{release} '' true {dict}"
    );
    let label = format!("live upgrade to {release} (busctl StartLiveUpgrade)");
    run_detached_by(
        booted,
        paths,
        &label,
        UPGRADE_TIMEOUT,
        interrupt,
        |paths, port| run_checked(paths, port, &command, "busctl StartLiveUpgrade"),
    )
}

/// Runs `command` over ssh, logs what it said, and fails unless it exited 0.
fn run_checked(paths: &Paths, port: u16, command: &str, what: &str) -> Result<String> {
    checked(ssh::run(paths, port, command)?, what)
}

/// Logs what a command said, and fails unless it exited 0.
fn checked(out: ssh::Output, what: &str) -> Result<String> {
    output::log(&format!("{what} said: {}{}", out.stdout, out.stderr));
    if !out.success() {
        bail!(
            "{what} failed (exit {:?}): {}{}",
            out.code,
            out.stdout,
            out.stderr
        );
    }
    Ok(out.stdout.trim().to_owned())
}

/// Starts an upgrade with `start` and waits until relive reports it
/// complete and ssh answers again.
fn run_detached_by(
    booted: &mut Booted,
    paths: &Paths,
    label: &str,
    timeout: Duration,
    interrupt: &Interrupt,
    start: impl FnOnce(&Paths, u16) -> Result<String>,
) -> Result<(String, Duration)> {
    let port = booted.guest.ssh_port;
    let mark = serial_mark(booted);
    let started = Instant::now();
    let step = output::step(label.to_owned());
    let said = start(paths, port)?;
    step.detail("waiting for relive to say it is complete");
    wait_serial_within(
        booted,
        mark,
        &[COMPLETE_LINE],
        &[ABORTED_LINE],
        timeout,
        interrupt,
    )?;
    step.detail("waiting for ssh");
    wait_ssh(paths, port, interrupt)?;
    step.done();
    Ok((said, started.elapsed()))
}

/// Waits until every one of `needles` appears in the serial log after
/// `mark`; fails early on an `unwanted` line, a kernel panic or QEMU's exit.
pub fn wait_serial(
    booted: &mut Booted,
    mark: usize,
    needles: &[&str],
    unwanted: &[&str],
    interrupt: &Interrupt,
) -> Result<Duration> {
    wait_serial_within(booted, mark, needles, unwanted, UPGRADE_TIMEOUT, interrupt)
}

/// As [`wait_serial`], for at most `timeout` (big guests take longer).
pub fn wait_serial_within(
    booted: &mut Booted,
    mark: usize,
    needles: &[&str],
    unwanted: &[&str],
    timeout: Duration,
    interrupt: &Interrupt,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        interrupt.check()?;
        let log = std::fs::read(&booted.qemu.config.serial_log).unwrap_or_default();
        let new = String::from_utf8_lossy(log.get(mark..).unwrap_or_default());
        if needles.iter().all(|n| new.contains(n)) {
            return Ok(started.elapsed());
        }
        if let Some(line) = new.lines().find(|l| unwanted.iter().any(|u| l.contains(u))) {
            bail!(
                "waiting for {needles:?}, the serial log said: {}",
                line.trim()
            );
        }
        if new.contains("Kernel panic") {
            bail!(
                "kernel panic (serial log {})",
                booted.guest.serial_log.display()
            );
        }
        if let Some(status) = booted.qemu.try_wait()? {
            bail!("QEMU exited ({status}) during the upgrade");
        }
        if started.elapsed() > timeout {
            bail!(
                "no {needles:?} in the serial log {} after {timeout:?}",
                booted.guest.serial_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until sshd answers again (after the upgrade's stoppage).
pub fn wait_ssh(paths: &Paths, port: u16, interrupt: &Interrupt) -> Result<()> {
    let started = Instant::now();
    while !ssh::probe(paths, port) {
        interrupt.check()?;
        if started.elapsed() > Duration::from_secs(120) {
            bail!("ssh does not answer after the upgrade");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// `relivectl live-upgrade --dry-run --json` to `release` with `flags`:
/// whether the preflight passed, and the plan (printed either way).
pub fn dry_run(paths: &Paths, port: u16, release: &str, flags: &str) -> Result<(bool, Plan)> {
    let out = ssh::run(
        paths,
        port,
        &upgrade_command(release, &format!("--dry-run --json {flags}")),
    )?;
    let plan = serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("parsing the --dry-run plan: {}", out.stderr.trim()))?;
    Ok((out.success(), plan))
}

/// `relivectl --json upgrade-report`: what the last upgrade did.
pub fn report(paths: &Paths, port: u16) -> Result<UpgradeReport> {
    let out = ssh::run(paths, port, "relivectl --json upgrade-report")?;
    if !out.success() {
        bail!("relivectl upgrade-report failed: {}", out.stderr.trim());
    }
    serde_json::from_str(out.stdout.trim()).context("parsing relivectl --json upgrade-report")
}

/// relive-counter's report (workloads/), asked in the guest.
pub fn counter(paths: &Paths, port: u16) -> Result<relive_workloads::Report> {
    let out = ssh::run(paths, port, "echo report | nc -q1 127.0.0.1 7001")?;
    relive_workloads::Report::parse(out.stdout.trim())
        .with_context(|| format!("relive-counter said {:?}", out.stdout.trim()))
}

/// A unit's outcome as relive words it, `-` for none yet.
pub fn outcome_text(u: &UnitRecord) -> String {
    u.outcome.as_ref().map_or("-".into(), ToString::to_string)
}

/// The upgrade report as a table on stdout.
pub fn print_report(report: &UpgradeReport) {
    output::println(report_table(report));
}

/// The upgrade report as a table: per unit, mode, outcome, images, dump,
/// restore and stoppage.
pub fn report_table(report: &UpgradeReport) -> String {
    let mut table = format!(
        "upgrade {} -> {}: {} units, images {}, longest stoppage {:.0} ms, \
         freeze-to-finish {:.1} s (kexec at +{:.1} s, resumed at +{:.1} s, restoring from +{:.1} s)",
        report.kernel_from,
        report.kernel_to,
        report.units.len(),
        relive_api::human(report.total_image_bytes),
        report.longest_stoppage_ms,
        secs_between(report.started_usec, report.finished_usec),
        secs_between(report.started_usec, report.kexec_usec),
        secs_between(report.started_usec, report.resumed_usec),
        secs_between(report.started_usec, report.restores_started_usec),
    );
    if let Some(boot) = &report.new_kernel_boot {
        let _ = write!(table, "\n  the new kernel's boot: {boot}");
    }
    if !report.before_restores.is_empty() {
        let steps: Vec<String> = report
            .before_restores
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = write!(
            table,
            "\n  before the first restore (from resumed): {}",
            steps.join(", ")
        );
    }
    let _ = write!(
        table,
        "\n  {:<34} {:<9} {:>4} {:>7} {:>9} {:>9} {:>11} {:>11}  outcome",
        "unit", "mode", "prio", "pid", "image KiB", "dump ms", "restore ms", "stoppage ms"
    );
    for u in &report.units {
        let _ = write!(
            table,
            "\n  {:<34} {:<9} {:>4} {:>7} {:>9} {:>9} {:>11} {:>11}  {}",
            u.name,
            u.mode.as_str(),
            u.priority,
            u.main_pid,
            u.image_bytes / 1024,
            format!("{:.0}", u.dump_ms),
            u.restore_ms.map_or("-".into(), |r| format!("{r:.0}")),
            u.stoppage_ms().map_or("-".into(), |s| format!("{s:.0}")),
            outcome_text(u)
        );
    }
    table
}

fn secs_between(from: u64, to: u64) -> f64 {
    if to > from {
        (to - from) as f64 / 1e6
    } else {
        0.0
    }
}
