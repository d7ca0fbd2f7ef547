//! What `relive-lab bench` prints: per store a table of both modes side
//! by side, the targets with their measured numbers, the disk/memory
//! ratios, the failed runs.

use super::figures::Run;
use super::matrix::{rate_label, size_label, Matrix, Mode};
use super::targets::targets;
use super::{Outputs, FROM, TO};
use relive_api::report::FinalDump;
use std::fmt::Write as _;

fn find(runs: &[Run], size: u64, rate: f64, mode: Mode) -> Option<&Run> {
    runs.iter()
        .find(|r| r.size_mib == size && r.rate_mib_per_sec == rate && r.mode == mode)
}

fn secs(ms: Option<f64>) -> String {
    ms.map_or("-".into(), |ms| format!("{:.2}", ms / 1000.0))
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}"))
}

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// The table: one row per (size, rate, unit), both modes side by side;
/// floor, rounds, final dump and the MiB written in the stoppage are the
/// two-phase run's.
pub fn table(matrix: &Matrix, runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5} {:>8} {:<9} {:>9} {:>9} {:>7} {:>8} {:>7} {:>6} {:<12} {:>9}  check",
        "size",
        "rate",
        "unit",
        "single s",
        "two s",
        "sgl/two",
        "floor s",
        "2/floor",
        "rounds",
        "final dump",
        "stop MiB"
    );
    for &size in &matrix.sizes_mib {
        for &rate in &matrix.rates {
            for role in ["critical", "normal"] {
                let single = find(runs, size, rate, Mode::Single);
                let two = find(runs, size, rate, Mode::Two);
                let s = single.and_then(|r| r.unit(role));
                let t = two.and_then(|r| r.unit(role));
                let failed: Vec<String> = [single, two]
                    .into_iter()
                    .flatten()
                    .filter(|r| r.error.is_some())
                    .map(|r| format!("{} FAILED", r.mode.label()))
                    .collect();
                let corrupt: Vec<String> = [s, t]
                    .into_iter()
                    .flatten()
                    .filter(|u| !u.intact)
                    .map(|u| {
                        format!(
                            "NOT INTACT ({} corrupt, pid {} -> {})",
                            u.corrupt_pages, u.pid_before, u.pid_after
                        )
                    })
                    .collect();
                let check = if failed.is_empty() && corrupt.is_empty() {
                    "ok".to_owned()
                } else {
                    [failed, corrupt].concat().join("; ")
                };
                let _ = writeln!(
                    out,
                    "{:>5} {:>8} {:<9} {:>9} {:>9} {:>7} {:>8} {:>7} {:>6} {:<12} {:>9}  {check}",
                    size_label(size),
                    rate_label(rate),
                    role,
                    secs(s.and_then(|u| u.stoppage_ms)),
                    secs(t.and_then(|u| u.stoppage_ms)),
                    ratio(div(
                        s.and_then(|u| u.stoppage_ms),
                        t.and_then(|u| u.stoppage_ms)
                    )),
                    secs(t.and_then(|u| u.floor_ms)),
                    ratio(t.and_then(|u| u.stoppage_over_floor)),
                    t.map_or("-".into(), |u| u.pre_dump_rounds.to_string()),
                    t.and_then(|u| u.final_dump).map_or("-", FinalDump::as_str),
                    t.map_or("-".into(), |u| format!(
                        "{:.1}",
                        u.stoppage_bytes as f64 / 1048576.0
                    )),
                );
            }
        }
    }
    out
}

/// The same runs with the memory store and with the disk store, side by
/// side: disk stoppage / memory stoppage per (size, rate, mode, unit).
pub fn store_ratios(matrix: &Matrix, runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5} {:>8} {:<6} {:<9} {:>8} {:>9} {:>11}",
        "size", "rate", "mode", "unit", "disk s", "memory s", "disk/memory"
    );
    let pick = |store: &str, size, rate, mode| {
        runs.iter().find(|r| {
            r.store_requested == store
                && r.size_mib == size
                && r.rate_mib_per_sec == rate
                && r.mode == mode
                && r.error.is_none()
        })
    };
    for &size in &matrix.sizes_mib {
        for &rate in &matrix.rates {
            for &mode in &matrix.modes {
                for role in ["critical", "normal"] {
                    let stoppage = |store| pick(store, size, rate, mode)?.unit(role)?.stoppage_ms;
                    let (disk, memory) = (stoppage("disk"), stoppage("memory"));
                    let _ = writeln!(
                        out,
                        "{:>5} {:>8} {:<6} {:<9} {:>8} {:>9} {:>11}",
                        size_label(size),
                        rate_label(rate),
                        mode.label(),
                        role,
                        secs(disk),
                        secs(memory),
                        ratio(div(disk, memory))
                    );
                }
            }
        }
    }
    out
}

/// Where each bench unit's stoppage went, per run (the small units are
/// summed up in their own line): frozen -> kexec on the old kernel, the
/// floor (kexec -> relive running), relive running -> its restore began
/// (what ran before it), the image check, the restore, and for a lazy
/// restore its tail (running again -> its last page served).
pub fn breakdown(runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5} {:>8} {:<6} {:<9} {:>9} {:>12} {:>8} {:>14} {:>9} {:>9} {:>9}",
        "size",
        "rate",
        "mode",
        "unit",
        "stoppage",
        "frozen>kexec",
        "floor",
        "resumed>restore",
        "check",
        "restore",
        "lazy tail"
    );
    for run in runs.iter().filter(|r| r.error.is_none()) {
        for u in run.units.iter().filter(|u| u.role != "small") {
            let _ = writeln!(
                out,
                "{:>5} {:>8} {:<6} {:<9} {:>9} {:>12} {:>8} {:>14} {:>9} {:>9} {:>9}",
                size_label(run.size_mib),
                rate_label(run.rate_mib_per_sec),
                run.mode.label(),
                u.role,
                secs(u.stoppage_ms),
                secs(u.frozen_to_kexec_ms),
                secs(u.boot_floor_ms),
                secs(u.resumed_to_restore_ms),
                secs(u.verify_ms),
                secs(u.restore_ms),
                secs(u.lazy_tail_ms),
            );
        }
    }
    out
}

/// The table, then one line per target.
pub fn print_summary(matrix: &Matrix, runs: &[Run], outputs: &Outputs) {
    println!();
    for store in &matrix.stores {
        let runs: Vec<Run> = runs
            .iter()
            .filter(|r| &r.store_requested == store)
            .cloned()
            .collect();
        println!(
            "two-phase vs single-phase stoppage, {FROM} -> {TO}, {store} store (seconds; floor = kexec to relive resumed + the unit's restore; the targets' floor is kexec to relive resumed)"
        );
        println!(
            "floor, rounds, final dump and stop MiB (written in the stoppage) are the two-phase run's"
        );
        print!("{}", table(matrix, &runs));
        for line in runs.iter().filter_map(small_units_line) {
            println!("{line}");
        }
        for run in &runs {
            if let Some(cost) = &run.phase1_cpu {
                println!(
                    "{} {}{}: {}",
                    size_label(run.size_mib),
                    rate_label(run.rate_mib_per_sec),
                    if run.saturated {
                        ", every CPU busy"
                    } else {
                        ""
                    },
                    cost.summary()
                );
            }
        }
        println!();
        println!("where the stoppage went (seconds; the check overlaps the restore; lazy tail: a lazy restore's last page served after the unit ran again)");
        print!("{}", breakdown(&runs));
        println!();
        let floors: Vec<String> = runs.iter().filter_map(super::floor::line).collect();
        if !floors.is_empty() {
            println!("where the floor went (seconds, by the new kernel's clock and log)");
            for line in floors {
                println!("{line}");
            }
            println!();
        }
        let spread = super::spread::spread(&runs);
        if !spread.is_empty() {
            println!("the spread of the repeated runs (seconds: median (fewest .. most))");
            print!("{spread}");
            println!();
        }
        for target in targets(&runs) {
            println!("{store} store {}", target.line());
        }
        println!();
    }
    if matrix.stores.len() > 1 {
        println!("memory store vs disk store, same runs otherwise");
        print!("{}", store_ratios(matrix, runs));
        println!();
    }
    for run in runs {
        if let Some(e) = &run.error {
            println!(
                "FAILED {} {} {}-phase: {e}",
                size_label(run.size_mib),
                rate_label(run.rate_mib_per_sec),
                run.mode.label()
            );
        }
    }
    println!("figures: {}", outputs.json.display());
    println!("plot:    {}", outputs.svg.display());
}

/// The small units of a run in one line: their stoppages (fewest, median,
/// most seconds), the floor, where the slowest one's went, and any that
/// did not come back intact.
fn small_units_line(run: &Run) -> Option<String> {
    let smalls: Vec<_> = run.units.iter().filter(|u| u.role == "small").collect();
    let mut stoppages: Vec<f64> = smalls.iter().filter_map(|u| u.stoppage_ms).collect();
    stoppages.sort_by(f64::total_cmp);
    let (first, last) = (stoppages.first()?, stoppages.last()?);
    let slowest = smalls
        .iter()
        .find(|u| u.stoppage_ms == Some(*last))
        .expect("the longest stoppage is a small unit's");
    let broken = smalls.iter().filter(|u| !u.intact).count();
    Some(format!(
        "{} {} {}-phase, {} small units: stoppage {:.2} / {:.2} / {:.2} s (fewest / median / most), floor {} s; \
         the slowest ({}): frozen -> kexec {} s, resumed -> its restore {} s, restore {} s; {}",
        size_label(run.size_mib),
        rate_label(run.rate_mib_per_sec),
        run.mode.label(),
        smalls.len(),
        first / 1000.0,
        stoppages[stoppages.len() / 2] / 1000.0,
        last / 1000.0,
        secs(slowest.boot_floor_ms),
        slowest.name,
        secs(slowest.frozen_to_kexec_ms),
        secs(slowest.resumed_to_restore_ms),
        secs(slowest.restore_ms),
        if broken == 0 {
            "all intact".to_owned()
        } else {
            format!("{broken} NOT INTACT")
        }
    ))
}

/// Every run completed and every unit came back intact.
pub fn all_good(runs: &[Run]) -> bool {
    runs.iter()
        .all(|r| r.error.is_none() && r.units.iter().all(|u| u.intact))
}

#[cfg(test)]
mod tests {
    use super::super::figures::UnitFigures;
    use super::*;

    #[test]
    fn the_table_shows_both_modes_and_flags_corruption() {
        let matrix = Matrix::parse("1G", "idle", "single,two", "disk").unwrap();
        let mut runs = vec![
            run(1024, 0.0, Mode::Single, 60_000.0, 1000.0),
            run(1024, 0.0, Mode::Two, 1200.0, 1000.0),
        ];
        runs[1].units[1].intact = false;
        runs[1].units[1].corrupt_pages = 2;
        let text = table(&matrix, &runs);
        let critical = text.lines().find(|l| l.contains("critical")).unwrap();
        assert!(
            critical.contains("60.00") && critical.contains("1.20"),
            "{critical}"
        );
        assert!(critical.contains("50.00"), "{critical}");
        assert!(critical.ends_with("ok"), "{critical}");
        let normal = text.lines().find(|l| l.contains("normal")).unwrap();
        assert!(normal.contains("NOT INTACT (2 corrupt"), "{normal}");
    }

    #[test]
    fn the_breakdown_has_a_row_per_bench_unit() {
        let mut r = run(1024, 0.0, Mode::Two, 12_000.0, 10_000.0);
        r.units[0].frozen_to_kexec_ms = Some(700.0);
        r.units[0].boot_floor_ms = Some(10_000.0);
        r.units[0].restore_ms = Some(1_250.0);
        r.units[0].lazy_tail_ms = Some(3_400.0);
        let text = breakdown(&[r]);
        let critical = text.lines().find(|l| l.contains("critical")).unwrap();
        let cells: Vec<&str> = critical.split_whitespace().collect();
        assert_eq!(
            cells,
            ["1G", "idle", "two", "critical", "12.00", "0.70", "10.00", "-", "-", "1.25", "3.40"]
        );
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn small_units_fit_in_one_line() {
        let mut r = run(1024, 0.0, Mode::Two, 12_000.0, 10_000.0);
        assert_eq!(small_units_line(&r), None);
        r.small_units = 3;
        for (i, ms) in [14_000.0, 11_000.0, 12_500.0].into_iter().enumerate() {
            r.units.push(UnitFigures {
                role: "small".into(),
                name: format!("bench-small-0{}.service", i + 1),
                stoppage_ms: Some(ms),
                boot_floor_ms: Some(10_000.0),
                intact: i != 1,
                ..UnitFigures::default()
            });
        }
        let line = small_units_line(&r).unwrap();
        assert!(
            line.starts_with("1G idle two-phase, 3 small units: stoppage 11.00 / 12.50 / 14.00 s"),
            "{line}"
        );
        assert!(line.contains("floor 10.00 s; the slowest (bench-small-01.service)"));
        assert!(line.ends_with("1 NOT INTACT"), "{line}");
    }

    #[test]
    fn store_ratios_put_disk_over_memory() {
        let matrix = Matrix::parse("1G", "idle", "two", "disk,memory").unwrap();
        let disk = run(1024, 0.0, Mode::Two, 30_000.0, 10_000.0);
        let mut memory = run(1024, 0.0, Mode::Two, 15_000.0, 10_000.0);
        memory.store_requested = "memory".into();
        let text = store_ratios(&matrix, &[disk, memory]);
        let critical = text.lines().find(|l| l.contains("critical")).unwrap();
        assert!(critical.trim_end().ends_with("2.00"), "{text}");
    }

    fn run(size: u64, rate: f64, mode: Mode, critical_ms: f64, floor_ms: f64) -> Run {
        let unit = |role: &str| UnitFigures {
            role: role.into(),
            stoppage_ms: Some(critical_ms),
            floor_ms: Some(floor_ms),
            stoppage_over_floor: Some(critical_ms / floor_ms),
            intact: true,
            ..UnitFigures::default()
        };
        Run {
            store: "disk".into(),
            units: vec![unit("critical"), unit("normal")],
            ..super::super::empty_run(size, rate, mode, "disk", 0, false)
        }
    }
}
