//! `relive-lab bench-upgrade`: what a live upgrade costs the services,
//! next to what a cold reboot of the same VM costs them, in one run.
//!
//! - Live upgrade 6.1 -> 6.12 (detached, as in `upgrade-check`): per unit,
//!   relive's own figures from its report (dump, restore, stoppage =
//!   frozen on the old kernel until running on the new one); and from the
//!   host, the largest delay of the echo client's lines on its one
//!   connection (QEMU's user network holds and retransmits them meanwhile).
//! - Cold reboot of the same QEMU (`relivectl reboot`, no -no-reboot): the
//!   echo connection dies with the old kernel, every service starts afresh
//!   (state lost); measured from the reboot request until relive-echo
//!   answers a line on a NEW connection.
//!
//! ratio = reboot blackout / the echo client's largest gap in the upgrade.

use crate::output;
use crate::scenarios::echo_client::EchoClient;
use crate::scenarios::upgrade;
use crate::vm::boot::{self, Options};
use crate::vm::guest::Init;
use crate::vm::image::Image;
use crate::vm::paths::Paths;
use crate::vm::signals::Interrupt;
use crate::vm::ssh;
use crate::vm::stop;
use anyhow::{bail, Result};
use relive_api::report::UnitMode;
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const FROM: &str = "6.1";
const TO: &str = "6.12";

#[derive(Debug, Serialize)]
pub struct Figures {
    pub kernel_from: String,
    pub kernel_to: String,
    pub units: Vec<UnitFigures>,
    /// relive's own figure: the longest frozen-to-running of any unit.
    pub longest_stoppage_ms: f64,
    /// From relive starting the upgrade (after the preflight) to its
    /// report being written, by relive's clock.
    pub upgrade_total_secs: f64,
    /// From the host: the echo client's largest send-to-echo delay.
    pub echo_max_gap_secs: f64,
    pub echo_lines: u64,
    /// From `relivectl reboot` to relive-echo answering a new connection.
    pub reboot_blackout_secs: f64,
    /// relive-counter after the reboot: its count started again.
    pub counter_after_reboot: u64,
    pub reboot_over_upgrade: f64,
    /// The same against relive's own longest stoppage.
    pub reboot_over_stoppage: f64,
}

#[derive(Debug, Serialize)]
pub struct UnitFigures {
    pub name: String,
    pub mode: UnitMode,
    /// relive's words for it (`restored`, `state lost: ...`).
    pub outcome: String,
    pub image_kib: u64,
    pub dump_ms: f64,
    pub restore_ms: Option<f64>,
    pub stoppage_ms: Option<f64>,
}

/// `flags`: more `relivectl live-upgrade` flags (`--minimal-initrd`).
pub fn bench(paths: &Paths, image: &Image, flags: &str, interrupt: &Interrupt) -> Result<Figures> {
    let to_release = image.kernel(TO)?.release.clone();
    let opts = Options {
        allow_reboot: true,
        ..Options::new(FROM, Some(Init::Relive))
    };
    let mut booted = boot::start(paths, image, &opts, interrupt)?;
    let port = booted.guest.ssh_port;

    // The live upgrade, with the echo client on one connection.
    let echo = EchoClient::start(booted.guest.echo_port)?;
    echo.wait_more(5, Duration::from_secs(30))?;
    upgrade::run_detached_with(&mut booted, paths, &to_release, flags, interrupt)?;
    echo.wait_more(5, Duration::from_secs(60))?;
    let stats = echo.finish();
    if let Some(e) = &stats.error {
        bail!("the echo connection broke during the upgrade: {e}");
    }
    let report = upgrade::report(paths, port)?;
    // Not on stdout: the figures (a table, or JSON) are the result.
    output::log(&upgrade::report_table(&report));

    // The cold reboot. The ssh command may die with the guest: the echo
    // answering again is the verdict.
    let step = output::step("cold reboot, until relive-echo answers a new connection");
    let started = Instant::now();
    let _ = ssh::run(paths, port, "relivectl reboot");
    let reboot_blackout =
        wait_echo_answers(booted.guest.echo_port, started, interrupt, &mut booted)?;
    step.done();
    // Left running: the reboot restarted relive-echo before ssh may be up.
    let step = output::step("waiting for ssh");
    upgrade::wait_ssh(paths, port, interrupt)?;
    step.done();
    let counter = upgrade::counter(paths, port)?;
    let off = stop::poweroff(paths, booted, Duration::from_secs(120), interrupt)?;
    if !off.clean() {
        bail!("the guest did not power off cleanly: {off:?}");
    }

    let units = report
        .units
        .iter()
        .filter(|u| matches!(u.mode, UnitMode::Preserve | UnitMode::Restart))
        .map(|u| UnitFigures {
            name: u.name.clone(),
            mode: u.mode,
            outcome: u.outcome.as_ref().map_or("-".into(), ToString::to_string),
            image_kib: u.image_bytes / 1024,
            dump_ms: u.dump_ms,
            restore_ms: u.restore_ms,
            stoppage_ms: u.stoppage_ms(),
        })
        .collect();
    let gap = stats.max_gap.as_secs_f64();
    Ok(Figures {
        kernel_from: report.kernel_from.clone(),
        kernel_to: report.kernel_to.clone(),
        units,
        longest_stoppage_ms: report.longest_stoppage_ms,
        upgrade_total_secs: (report.finished_usec.saturating_sub(report.started_usec)) as f64 / 1e6,
        echo_max_gap_secs: gap,
        echo_lines: stats.echoed,
        reboot_blackout_secs: reboot_blackout,
        counter_after_reboot: counter.counter,
        reboot_over_upgrade: if gap > 0.0 {
            reboot_blackout / gap
        } else {
            0.0
        },
        reboot_over_stoppage: if report.longest_stoppage_ms > 0.0 {
            reboot_blackout * 1000.0 / report.longest_stoppage_ms
        } else {
            0.0
        },
    })
}

/// Seconds from `started` until a new connection to relive-echo gets its
/// line back. QEMU's forward accepts even while nothing listens in the
/// guest (then resets or stays silent), so only an echoed line counts.
fn wait_echo_answers(
    port: u16,
    started: Instant,
    interrupt: &Interrupt,
    booted: &mut boot::Booted,
) -> Result<f64> {
    // relivectl reboot returns before the services stop: the old
    // relive-echo answers for a while yet. The blackout ends only once it
    // has gone and a new one answers.
    let mut gone = false;
    loop {
        interrupt.check()?;
        if let Some(status) = booted.qemu.try_wait()? {
            bail!("QEMU exited ({status}) during the reboot");
        }
        let answered = echo_once(port);
        if answered && gone {
            return Ok(started.elapsed().as_secs_f64());
        }
        gone |= !answered;
        if started.elapsed() > Duration::from_secs(300) {
            bail!("relive-echo did not answer within 300 s of the reboot");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn echo_once(port: u16) -> bool {
    let line = "after the reboot\n";
    let attempt = || -> std::io::Result<bool> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        (&stream).write_all(line.as_bytes())?;
        let mut back = String::new();
        BufReader::new(&stream).read_line(&mut back)?;
        Ok(back == line)
    };
    attempt().unwrap_or(false)
}

pub fn print_table(f: &Figures) {
    println!();
    println!(
        "live upgrade {} -> {} vs cold reboot (one run, TCG)",
        f.kernel_from, f.kernel_to
    );
    println!(
        "  {:<26} {:<8} {:>9} {:>8} {:>10} {:>11}  outcome",
        "unit", "mode", "image KiB", "dump ms", "restore ms", "stoppage ms"
    );
    for u in &f.units {
        println!(
            "  {:<26} {:<8} {:>9} {:>8.0} {:>10} {:>11}  {}",
            u.name,
            u.mode.as_str(),
            u.image_kib,
            u.dump_ms,
            u.restore_ms.map_or("-".into(), |r| format!("{r:.0}")),
            u.stoppage_ms.map_or("-".into(), |s| format!("{s:.0}")),
            u.outcome
        );
    }
    println!(
        "  live upgrade, relive's longest stoppage:      {:>7.1} s",
        f.longest_stoppage_ms / 1000.0
    );
    println!(
        "  live upgrade, relive's start to its report:   {:>7.1} s",
        f.upgrade_total_secs
    );
    println!(
        "  live upgrade, echo client's largest gap:       {:>7.1} s  (same connection, {} lines, none lost)",
        f.echo_max_gap_secs, f.echo_lines
    );
    println!(
        "  cold reboot, request to echo on a new conn.:  {:>7.1} s  (state lost: counter restarted at {})",
        f.reboot_blackout_secs, f.counter_after_reboot
    );
    println!(
        "  reboot blackout / upgrade echo gap:            {:>7.2}",
        f.reboot_over_upgrade
    );
    println!(
        "  reboot blackout / relive's longest stoppage:   {:>7.2}",
        f.reboot_over_stoppage
    );
}
