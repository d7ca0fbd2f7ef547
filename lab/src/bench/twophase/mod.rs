//! `relive-lab bench`: the two-phase snapshot's stoppage against memory
//! size and dirty rate, next to single-phase and to the floor.
//!
//! For each (size, rate, mode) one fresh guest: 6.1 with relive, a
//! writable disk grown for the images, RAM for the memory held. Two
//! relive-dirty units are added over ssh, bench-critical (Priority=900,
//! parked last) and bench-normal (100), each holding `size` and dirtying
//! `rate`; in two-phase runs with a non-idle rate also bench-busy (64 MiB,
//! --busy, 500), whose ops/s tell what phase 1 costs a busy service; with
//! `--small-units N`, N idle units of 4 MiB at 500 (bench-small-NN), as
//! on a real server (target (f)). Once
//! every unit answers `report` (its memory is filled) and 10 s have passed:
//! a detached live upgrade to 6.12 (`--single-phase` for single), relive's
//! report, each unit's `report` and `verify` (every page must be intact,
//! same PID), poweroff.
//!
//! Per unit: stoppage = frozen until running again; floor = kexec until
//! relive resumed plus the unit's own restore (what no snapshot scheme
//! saves); pre-dump rounds, the final dump's kind and the bytes written in
//! the stoppage. The figures go to stdout (table, targets), to JSON and to
//! an SVG plot; a run that fails is recorded and the next one goes on.
//!
//! This file drives the guests; [`matrix`] says what runs, [`figures`]
//! what a run measured, [`summary`] prints it and [`plot`] draws it.

mod figures;
mod floor;
mod matrix;
mod plot;
mod spread;
mod summary;
mod targets;

pub use matrix::Matrix;
pub use summary::{all_good, print_summary};

use crate::output;
use crate::scenarios::upgrade;
use crate::vm::boot::{self, Options};
use crate::vm::guest::Init;
use crate::vm::image::Image;
use crate::vm::paths::Paths;
use crate::vm::signals::Interrupt;
use crate::vm::ssh;
use crate::vm::stop;
use anyhow::{bail, Context, Result};
use figures::{phase1_throughput, Run, UnitFigures};
use matrix::{
    disk_bytes, rate_label, size_label, small_units_mib, unit_text, vm_memory_mib, MemoryStore,
    Mode, BUSY_MIB, GUEST_CPUS, SMALL_MIB,
};
use relive_api::report::UpgradeReport;
use relive_workloads::dirty::{DirtyReport, VerifyReport};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(super) const FROM: &str = "6.1";
pub(super) const TO: &str = "6.12";
/// The workloads run this long before the upgrade, so that bench-busy has
/// a steady "before" to compare phase 1 with.
const SETTLE: Duration = Duration::from_secs(10);

/// One relive-dirty unit of a run.
#[derive(Debug, Clone)]
struct BenchUnit {
    role: &'static str,
    name: String,
    size_mib: u64,
    rate: f64,
    busy: bool,
    port: u16,
    priority: u32,
}

/// The first small unit's report port; the others follow.
const SMALL_PORT: u16 = 7100;
/// The first CPU burner's report port (`--saturate`).
const BURN_PORT: u16 = 7090;

fn bench_units(
    size_mib: u64,
    rate: f64,
    mode: Mode,
    small_units: usize,
    saturate: bool,
) -> Vec<BenchUnit> {
    let mut units = vec![
        BenchUnit {
            role: "critical",
            name: "bench-critical.service".into(),
            size_mib,
            rate,
            busy: false,
            port: 7010,
            priority: 900,
        },
        BenchUnit {
            role: "normal",
            name: "bench-normal.service".into(),
            size_mib,
            rate,
            busy: false,
            port: 7011,
            priority: 100,
        },
    ];
    if mode == Mode::Two && rate > 0.0 {
        units.push(BenchUnit {
            role: "busy",
            name: "bench-busy.service".into(),
            size_mib: BUSY_MIB,
            rate,
            busy: true,
            port: 7012,
            priority: 500,
        });
    }
    // With bench-busy, more CPU-bound services than CPUs: every CPU busy,
    // and a run queue.
    let burners = if saturate { GUEST_CPUS } else { 0 };
    units.extend((0..burners).map(|i| BenchUnit {
        role: "burn",
        name: format!("bench-burn-{}.service", i + 1),
        size_mib: SMALL_MIB,
        rate: 0.0,
        busy: true,
        port: BURN_PORT + i as u16,
        priority: 500,
    }));
    units.extend((0..small_units).map(|i| BenchUnit {
        role: "small",
        name: format!("bench-small-{:02}.service", i + 1),
        size_mib: SMALL_MIB,
        rate: 0.0,
        busy: false,
        port: SMALL_PORT + i as u16,
        priority: 500,
    }));
    units
}

/// Where the figures go.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub json: PathBuf,
    pub svg: PathBuf,
}

impl Outputs {
    /// lab/out/bench-twophase.json and .svg unless given.
    pub fn new(paths: &Paths, json: Option<PathBuf>, svg: Option<PathBuf>) -> Outputs {
        let json = json.unwrap_or_else(|| paths.out.join("bench-twophase.json"));
        let svg = svg.unwrap_or_else(|| json.with_extension("svg"));
        Outputs { json, svg }
    }
}

#[derive(Debug, Serialize)]
struct Document<'a> {
    matrix: &'a Matrix,
    runs: &'a [Run],
    targets: Vec<targets::Target>,
}

/// Runs the whole matrix; the JSON and the SVG are rewritten after each
/// run, so an interrupted benchmark keeps what it measured.
pub fn bench(
    paths: &Paths,
    image: &Image,
    matrix: &Matrix,
    outputs: &Outputs,
    interrupt: &Interrupt,
) -> Result<Vec<Run>> {
    let to_release = image.kernel(TO)?.release.clone();
    let total = matrix.stores.len()
        * matrix.sizes_mib.len()
        * matrix.rates.len()
        * matrix.modes.len()
        * matrix.repeat;
    let mut runs = Vec::new();
    for store in &matrix.stores {
        for &size in &matrix.sizes_mib {
            for &rate in &matrix.rates {
                for mode in matrix.modes.iter().flat_map(|&m| vec![m; matrix.repeat]) {
                    let step = output::step(format!(
                        "run {}/{total}: {} per unit, {}, {}-phase, {store} store",
                        runs.len() + 1,
                        size_label(size),
                        rate_label(rate),
                        mode.label()
                    ));
                    let mut run =
                        empty_run(size, rate, mode, store, matrix.small_units, matrix.saturate);
                    run.minimal_initrd = matrix.minimal_initrd;
                    run.lazy_restore = matrix.lazy_restore;
                    let result = run_one(paths, image, &mut run, store, &to_release, interrupt);
                    // QEMU is gone by now (powered off, or killed by its guard).
                    // The disk copy grows with the size (up to 12 GiB) and the
                    // next run makes its own: not kept.
                    let _ = std::fs::remove_file(paths.writable_disk());
                    if let Err(e) = result {
                        interrupt.check()?;
                        output::warn(&format!("run FAILED: {e:#}"));
                        run.error = Some(format!("{e:#}"));
                    }
                    step.finish(run.error.is_none() && run.units.iter().all(|u| u.intact));
                    runs.push(run);
                    write_outputs(matrix, &runs, outputs)?;
                }
            }
        }
    }
    Ok(runs)
}

fn empty_run(
    size: u64,
    rate: f64,
    mode: Mode,
    store: &str,
    small_units: usize,
    saturated: bool,
) -> Run {
    let small_mib = small_units_mib(small_units);
    let vm_memory_mib = match store {
        "memory" => MemoryStore::for_size(size, small_mib).vm_memory_mib,
        _ => vm_memory_mib(size, small_mib),
    };
    Run {
        size_mib: size,
        rate_mib_per_sec: rate,
        mode,
        error: None,
        report_mode: None,
        store: String::new(),
        store_requested: store.to_owned(),
        phase1_secs: 0.0,
        vm_memory_mib,
        disk_bytes: disk_bytes(size, small_mib),
        small_units,
        units: Vec::new(),
        throughput: None,
        saturated,
        phase1_cpu: None,
        kernel_boot: None,
        minimal_initrd: false,
        lazy_restore: false,
    }
}

/// One guest, one upgrade; fills `run` as it goes.
fn run_one(
    paths: &Paths,
    image: &Image,
    run: &mut Run,
    store: &str,
    to_release: &str,
    interrupt: &Interrupt,
) -> Result<()> {
    let mut opts = Options {
        writable: true,
        memory: format!("{}M", run.vm_memory_mib),
        disk_bytes: Some(run.disk_bytes),
        ..Options::new(FROM, Some(Init::Relive))
    };
    if store == "memory" {
        opts.memory_store =
            MemoryStore::for_size(run.size_mib, small_units_mib(run.small_units)).memmap();
    }
    let mut booted = boot::start(paths, image, &opts, interrupt)?;
    let port = booted.guest.ssh_port;
    let units = bench_units(
        run.size_mib,
        run.rate_mib_per_sec,
        run.mode,
        run.small_units,
        run.saturated,
    );
    let step = output::step(format!(
        "starting the {} bench units, filling their memory",
        units.len()
    ));
    install(paths, port, &units)?;
    let before = wait_reports(paths, port, &units, interrupt)?;
    step.done();
    let step = output::step(format!("letting them run {} s", SETTLE.as_secs()));
    let settle = Instant::now();
    while settle.elapsed() < SETTLE {
        interrupt.check()?;
        std::thread::sleep(Duration::from_millis(250));
    }
    step.done();

    // The more memory, the longer the dumps and restores under TCG.
    let held: u64 = units.iter().map(|u| u.size_mib).sum();
    let timeout = Duration::from_secs(600 + held / 2);
    // The store named, not relive's "auto": every run measures the same.
    let mut flags = match run.mode {
        Mode::Single => format!("--single-phase --store {store}"),
        Mode::Two => format!("--store {store}"),
    };
    if run.minimal_initrd {
        flags.push_str(" --minimal-initrd");
    }
    if run.lazy_restore {
        flags.push_str(" --lazy-restore");
    }
    upgrade::run_detached_within(&mut booted, paths, to_release, &flags, timeout, interrupt)?;
    let report = upgrade::report(paths, port)?;
    // Where the time before the first restore went, for the breakdown.
    output::log(&upgrade::report_table(&report));
    run.report_mode = report.mode;
    run.store = report.store.clone();
    run.phase1_cpu = report.phase1_cpu.clone();
    run.kernel_boot = report.new_kernel_boot.clone();
    if report.phase1_ended_usec > report.phase1_started_usec && report.phase1_started_usec > 0 {
        run.phase1_secs = (report.phase1_ended_usec - report.phase1_started_usec) as f64 / 1e6;
    }

    let afters = ask_each::<DirtyReport>(paths, port, &units, "report")?;
    let verifies = ask_each::<VerifyReport>(paths, port, &units, "verify")?;
    for (((unit, before), after), verify) in units.iter().zip(&before).zip(afters).zip(verifies) {
        for (what, e) in [
            ("report", after.as_ref().err()),
            ("verify", verify.as_ref().err()),
        ] {
            if let Some(e) = e {
                output::warn(&format!("{} {what} after the upgrade: {e:#}", unit.name));
            }
        }
        let after = after.ok();
        let verify = verify.ok();
        // bench-busy's, not the burners' (also --busy).
        if unit.role == "busy" {
            run.throughput = after.as_ref().and_then(|a| {
                phase1_throughput(
                    &a.ops_per_sec,
                    report.phase1_started_usec,
                    report.phase1_ended_usec,
                )
            });
        }
        let figures = unit_figures(unit, &report, before, after.as_ref(), verify.as_ref());
        if !figures.intact {
            output::warn(&format!(
                "{} NOT INTACT: {} corrupt pages (first {:?}), PID {} -> {}",
                unit.name,
                figures.corrupt_pages,
                figures.first_corrupt,
                figures.pid_before,
                figures.pid_after
            ));
        }
        run.units.push(figures);
    }

    let off = stop::poweroff(paths, booted, Duration::from_secs(300), interrupt)?;
    if !off.clean() {
        bail!("the guest did not power off cleanly: {off:?}");
    }
    Ok(())
}

/// Writes the units into the guest and starts them.
fn install(paths: &Paths, port: u16, units: &[BenchUnit]) -> Result<()> {
    let mut script = String::from("set -e\n");
    for u in units {
        let text = unit_text(u.role, u.size_mib, u.rate, u.busy, u.port, u.priority);
        script += &format!(
            "cat >/etc/systemd/system/{} <<'RELIVE_LAB_EOF'\n{text}RELIVE_LAB_EOF\n",
            u.name
        );
    }
    let names: Vec<&str> = units.iter().map(|u| u.name.as_str()).collect();
    script += &format!(
        "relivectl daemon-reload\nrelivectl start {}\n",
        names.join(" ")
    );
    let out = ssh::run(paths, port, &script)?;
    if !out.success() {
        bail!(
            "installing the bench units failed (exit {:?}): {}{}",
            out.code,
            out.stdout,
            out.stderr
        );
    }
    Ok(())
}

/// Asks every unit's relive-dirty in the guest, one after another in one
/// ssh command (a login per unit would take minutes with 80 units under
/// emulation): one answer per unit, in order. `nc -N` closes its side
/// after the request and exits when relive-dirty closes its own: a
/// request sent while the memory is still being filled waits for the
/// fill, and a `verify` of GiBs under TCG is not cut short (as `-q1`
/// would).
fn ask_each<T: DeserializeOwned>(
    paths: &Paths,
    port: u16,
    units: &[BenchUnit],
    request: &str,
) -> Result<Vec<Result<T>>> {
    let ports: Vec<String> = units.iter().map(|u| u.port.to_string()).collect();
    let out = ssh::run(
        paths,
        port,
        &format!(
            "for p in {}; do echo {request} | timeout 900 nc -N 127.0.0.1 $p | head -n 1 | \
             grep . || echo \"no answer from port $p\"; done",
            ports.join(" ")
        ),
    )?;
    if !out.success() {
        bail!(
            "`{request}` to the bench units: exit {:?}, {}",
            out.code,
            out.stderr.trim()
        );
    }
    let lines: Vec<&str> = out.stdout.lines().collect();
    Ok(units
        .iter()
        .enumerate()
        .map(|(i, unit)| {
            let line = lines.get(i).copied().unwrap_or_default().trim();
            serde_json::from_str(line).with_context(|| {
                format!(
                    "`{request}` to {} (127.0.0.1:{}): {line:?}",
                    unit.name, unit.port
                )
            })
        })
        .collect())
}

/// Every unit's first report: its memory is filled and it answers.
fn wait_reports(
    paths: &Paths,
    port: u16,
    units: &[BenchUnit],
    interrupt: &Interrupt,
) -> Result<Vec<DirtyReport>> {
    let started = Instant::now();
    loop {
        interrupt.check()?;
        let answers = ask_each::<DirtyReport>(paths, port, units, "report")?;
        match answers.into_iter().collect::<Result<Vec<_>>>() {
            Ok(reports) => {
                output::note(&format!(
                    "{} units answer ({} MiB in all) after {:.0} s",
                    reports.len(),
                    reports.iter().map(|r| r.size_mib).sum::<u64>(),
                    started.elapsed().as_secs_f64()
                ));
                return Ok(reports);
            }
            Err(e) if started.elapsed() > Duration::from_secs(900) => {
                return Err(e.context("a bench unit never answered `report`"))
            }
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

fn unit_figures(
    unit: &BenchUnit,
    report: &UpgradeReport,
    before: &DirtyReport,
    after: Option<&DirtyReport>,
    verify: Option<&VerifyReport>,
) -> UnitFigures {
    let mut f = UnitFigures {
        role: unit.role.into(),
        name: unit.name.clone(),
        outcome: "missing from relive's report".into(),
        pid_before: before.pid,
        pid_after: after.map_or(0, |a| a.pid),
        verified_pages: verify.map_or(0, |v| v.verified_pages),
        corrupt_pages: verify.map_or(0, |v| v.corrupt_pages),
        first_corrupt: verify.and_then(|v| v.first_corrupt),
        ..UnitFigures::default()
    };
    f.intact = verify.is_some_and(|v| v.corrupt_pages == 0 && v.verified_pages == before.pages)
        && f.pid_after == f.pid_before;
    let Some(u) = report.units.iter().find(|u| u.name == unit.name) else {
        return f;
    };
    f.outcome = u.outcome.as_ref().map_or("-".into(), ToString::to_string);
    f.stoppage_ms = u.stoppage_ms();
    f.floor_ms = u.restore_ms.and_then(|restore| {
        (report.resumed_usec > report.kexec_usec && report.kexec_usec > 0)
            .then(|| (report.resumed_usec - report.kexec_usec) as f64 / 1000.0 + restore)
    });
    f.boot_floor_ms = (report.resumed_usec > report.kexec_usec && report.kexec_usec > 0)
        .then(|| (report.resumed_usec - report.kexec_usec) as f64 / 1000.0);
    f.stoppage_over_floor = match (f.stoppage_ms, f.floor_ms) {
        (Some(s), Some(floor)) if floor > 0.0 => Some(s / floor),
        _ => None,
    };
    f.pre_dump_rounds = u.pre_dumps.len();
    f.pre_dumps = u.pre_dumps.clone();
    f.convergence = u.convergence.clone();
    f.final_dump = u.final_dump;
    f.stoppage_bytes = u.stoppage_bytes;
    f.image_bytes = u.image_bytes;
    f.dump_ms = u.dump_ms;
    f.restore_ms = u.restore_ms;
    f.verify_ms = u.verify_ms;
    f.lazy_tail_ms = u.lazy.as_ref().and_then(|l| l.tail_ms);
    f.lazy_served_bytes = u.lazy.as_ref().map(|l| l.served_bytes);
    let ms = |from: u64, to: u64| (from > 0 && to >= from).then(|| (to - from) as f64 / 1000.0);
    f.frozen_to_kexec_ms = ms(u.frozen_usec, report.kexec_usec);
    // The check runs beside the restore (and ahead of it): what the
    // restored tasks waited for its verdict is in restore_ms already.
    f.resumed_to_restore_ms = match (u.running_usec, u.restore_ms) {
        (Some(running), Some(restore)) => {
            ms(report.resumed_usec, running).map(|since| since - restore)
        }
        _ => None,
    };
    f
}

fn write_outputs(matrix: &Matrix, runs: &[Run], outputs: &Outputs) -> Result<()> {
    let doc = Document {
        matrix,
        runs,
        targets: targets::targets(runs),
    };
    write(&outputs.json, &serde_json::to_string_pretty(&doc)?)?;
    write(&outputs.svg, &plot::plot(matrix, runs))
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_unit_only_in_two_phase_runs_with_a_rate() {
        let roles = |rate, mode| -> Vec<&str> {
            bench_units(1024, rate, mode, 0, false)
                .iter()
                .map(|u| u.role)
                .collect()
        };
        assert_eq!(roles(0.0, Mode::Two), ["critical", "normal"]);
        assert_eq!(roles(50.0, Mode::Single), ["critical", "normal"]);
        assert_eq!(roles(50.0, Mode::Two), ["critical", "normal", "busy"]);
        let busy = &bench_units(1024, 50.0, Mode::Two, 0, false)[2];
        assert_eq!(
            (busy.size_mib, busy.port, busy.priority),
            (BUSY_MIB, 7012, 500)
        );
        let with_smalls = bench_units(1024, 0.0, Mode::Two, 80, false);
        assert_eq!(with_smalls.len(), 82);
        let last = &with_smalls[81];
        assert_eq!(
            (last.name.as_str(), last.port, last.size_mib, last.role),
            ("bench-small-80.service", 7179, SMALL_MIB, "small")
        );
        // --saturate: bench-busy and a CPU-bound unit per guest CPU.
        let saturated = bench_units(64, 1.0, Mode::Two, 0, true);
        let busy: Vec<(&str, u16)> = saturated
            .iter()
            .filter(|u| u.busy)
            .map(|u| (u.name.as_str(), u.port))
            .collect();
        assert_eq!(
            busy,
            [
                ("bench-busy.service", 7012),
                ("bench-burn-1.service", 7090),
                ("bench-burn-2.service", 7091)
            ]
        );
    }

    #[test]
    fn outputs_default_next_to_each_other() {
        let paths = Paths {
            root: PathBuf::from("/r"),
            out: PathBuf::from("/r/lab/out"),
            run: PathBuf::from("/r/lab/out/run"),
            distro: Default::default(),
        };
        let o = Outputs::new(&paths, None, None);
        assert_eq!(o.json, PathBuf::from("/r/lab/out/bench-twophase.json"));
        assert_eq!(o.svg, PathBuf::from("/r/lab/out/bench-twophase.svg"));
        let o = Outputs::new(&paths, Some("/tmp/x.json".into()), None);
        assert_eq!(o.svg, PathBuf::from("/tmp/x.svg"));
    }
}
