//! The pure half of `relive-lab bench` (twophase.rs drives the
//! guests): the matrix and its parsing, VM sizing, the figures taken from
//! each run, phase-1 throughput, the table and the targets.

use anyhow::{bail, Context, Result};
use relive_api::report::{FinalDump, PreDumpRound, UpgradeMode};
use serde::Serialize;
use std::fmt::Write as _;

/// Which snapshot the upgrade takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `relivectl live-upgrade --single-phase`: everything dumped in the
    /// stoppage.
    Single,
    /// The default: background pre-dumps, then a final incremental dump.
    Two,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Two => "two",
        }
    }
}

/// What the benchmark runs: every (size, rate, mode).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matrix {
    pub sizes_mib: Vec<u64>,
    /// MiB/s; 0 is idle.
    pub rates: Vec<f64>,
    pub modes: Vec<Mode>,
    /// "disk" and/or "memory" (`relivectl live-upgrade --store`).
    pub stores: Vec<String>,
}

impl Matrix {
    pub fn parse(sizes: &str, rates: &str, modes: &str, stores: &str) -> Result<Matrix> {
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(|w| w.trim().to_owned())
                .filter(|w| !w.is_empty())
                .collect()
        };
        let sizes_mib = list(sizes)
            .iter()
            .map(|s| parse_size(s))
            .collect::<Result<Vec<_>>>()?;
        let rates = list(rates)
            .iter()
            .map(|s| parse_rate(s))
            .collect::<Result<Vec<_>>>()?;
        let modes = list(modes)
            .iter()
            .map(|s| match s.as_str() {
                "single" | "single-phase" => Ok(Mode::Single),
                "two" | "two-phase" => Ok(Mode::Two),
                other => bail!("mode {other:?}: expected single or two"),
            })
            .collect::<Result<Vec<_>>>()?;
        let stores = list(stores);
        if let Some(bad) = stores
            .iter()
            .find(|s| !["disk", "memory"].contains(&s.as_str()))
        {
            bail!("store {bad:?}: expected disk or memory");
        }
        if sizes_mib.is_empty() || rates.is_empty() || modes.is_empty() || stores.is_empty() {
            bail!("--sizes, --rates, --modes and --store each need at least one value");
        }
        Ok(Matrix {
            sizes_mib,
            rates,
            modes,
            stores,
        })
    }
}

/// "64M", "1G", "512" (MiB) -> MiB.
pub fn parse_size(s: &str) -> Result<u64> {
    let (digits, factor) = match s.strip_suffix(['G', 'g']) {
        Some(d) => (d, 1024),
        None => (s.strip_suffix(['M', 'm']).unwrap_or(s), 1),
    };
    let n: u64 = digits
        .parse()
        .with_context(|| format!("size {s:?}: expected e.g. 64M or 1G"))?;
    if n == 0 {
        bail!("size {s:?} is zero");
    }
    Ok(n * factor)
}

/// "idle", "0", "1M", "2.5M", "1G" (per second) -> MiB/s.
pub fn parse_rate(s: &str) -> Result<f64> {
    if s == "idle" {
        return Ok(0.0);
    }
    let (digits, factor) = match s.strip_suffix(['G', 'g']) {
        Some(d) => (d, 1024.0),
        None => (s.strip_suffix(['M', 'm']).unwrap_or(s), 1.0),
    };
    let n: f64 = digits
        .parse()
        .with_context(|| format!("rate {s:?}: expected idle or MiB/s like 1M, 50M"))?;
    if !n.is_finite() || n < 0.0 {
        bail!("rate {s:?} must be >= 0");
    }
    Ok(n * factor)
}

pub fn size_label(mib: u64) -> String {
    if mib >= 1024 && mib.is_multiple_of(1024) {
        format!("{}G", mib / 1024)
    } else {
        format!("{mib}M")
    }
}

pub fn rate_label(mib_per_sec: f64) -> String {
    if mib_per_sec == 0.0 {
        "idle".into()
    } else {
        format!("{mib_per_sec}M/s")
    }
}

/// The bench-busy unit (two-phase runs with a non-idle rate) holds this
/// much, whatever the size under test.
pub const BUSY_MIB: u64 = 64;

/// The memory store for a run: a region for every unit's images with
/// their pre-dumps (twice the bench units' memory) and the lab's own
/// units, placed at 4 GiB (above QEMU's PCI hole, 128 MiB aligned), and
/// the guest RAM that holds it beside what the run needs anyway (at least
/// 3.5 GiB, so that RAM below 4 GiB ends at 3 GiB and the rest starts at 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryStore {
    pub region_mib: u64,
    pub vm_memory_mib: u64,
}

impl MemoryStore {
    pub fn for_size(size_mib: u64) -> MemoryStore {
        let region_mib = (2 * size_mib * 2 + 2 * BUSY_MIB + 512).div_ceil(128) * 128;
        MemoryStore {
            region_mib,
            vm_memory_mib: vm_memory_mib(size_mib).max(3584) + region_mib,
        }
    }

    /// The kernel's `memmap=` value.
    pub fn memmap(&self) -> String {
        format!("{}M!4G", self.region_mib)
    }
}

/// Guest RAM: both bench units' memory twice over (CRIU's pages in flight
/// and the page cache of the images) plus 1.5 GiB for the system, in
/// 256 MiB steps.
pub fn vm_memory_mib(size_mib: u64) -> u64 {
    (2 * size_mib + 1536).div_ceil(256) * 256
}

/// The disk: the image's 3 GiB (~1.9 GiB free) plus room for two units'
/// images and pre-dumps (twice their memory each) and bench-busy's, in
/// whole GiB.
pub fn disk_bytes(size_mib: u64) -> u64 {
    let mib = 3 * 1024 + 2 * size_mib * 2 + 2 * BUSY_MIB;
    (mib.div_ceil(1024) * 1024) << 20
}

/// One unit file of the benchmark, written into the guest.
pub fn unit_text(
    description: &str,
    size_mib: u64,
    rate: f64,
    busy: bool,
    port: u16,
    priority: u32,
) -> String {
    format!(
        "# Written by relive-lab bench (lab/src/bench/twophase.rs).\n\
         [Unit]\n\
         Description=relive-lab bench: {description}\n\
         After=relive-net.service\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart=/usr/local/bin/relive-dirty --size-mib {size_mib} --dirty-mib-per-sec {rate}{busy} --report-port {port}\n\
         Restart=on-failure\n\
         \n\
         [X-LiveUpgrade]\n\
         Mode=preserve\n\
         Priority={priority}\n",
        busy = if busy { " --busy" } else { "" }
    )
}

/// One bench unit in one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnitFigures {
    /// "critical" or "normal" (or "busy").
    pub role: String,
    pub name: String,
    pub outcome: String,
    /// Frozen on the old kernel until running on the new one.
    pub stoppage_ms: Option<f64>,
    /// What no snapshot scheme can avoid: kexec to relive resumed, plus
    /// the unit's own restore.
    pub floor_ms: Option<f64>,
    pub stoppage_over_floor: Option<f64>,
    pub pre_dump_rounds: usize,
    /// relive's figures for each round.
    pub pre_dumps: Vec<PreDumpRound>,
    pub convergence: String,
    pub final_dump: Option<FinalDump>,
    pub stoppage_bytes: u64,
    pub image_bytes: u64,
    pub dump_ms: f64,
    pub restore_ms: Option<f64>,
    /// Where the stoppage went besides the floor: from its freeze to the
    /// kexec, checking its images, and from relive resumed to its restore
    /// beginning (network locks, rerun units, the restores before it).
    pub verify_ms: Option<f64>,
    pub frozen_to_kexec_ms: Option<f64>,
    pub resumed_to_restore_ms: Option<f64>,
    /// relive-dirty's `verify` after the upgrade.
    pub verified_pages: u64,
    pub corrupt_pages: u64,
    pub first_corrupt: Option<u64>,
    pub pid_before: u32,
    pub pid_after: u32,
    /// Same PID, every page verified, none corrupt.
    pub intact: bool,
}

/// Phase-1 throughput of the busy unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throughput {
    /// Mean ops/s over the 10 whole seconds before phase 1.
    pub before: f64,
    /// Mean ops/s over the whole seconds inside phase 1.
    pub during: f64,
    pub seconds_during: usize,
    /// 1 - during / before.
    pub loss: f64,
}

/// Mean ops/s inside phase 1 against the 10 s before it, from
/// relive-dirty's per-second series (whole seconds only; seconds missing
/// from the series are left out, a second in which the unit did not run
/// is in it as 0).
pub fn phase1_throughput(
    series: &[(u64, u64)],
    started_usec: u64,
    ended_usec: u64,
) -> Option<Throughput> {
    let first_inside = started_usec.div_ceil(1_000_000);
    let end = ended_usec / 1_000_000; // seconds s with s + 1 <= end inside
    let before_end = started_usec / 1_000_000;
    let mean = |from: u64, to: u64| -> Option<(f64, usize)> {
        let values: Vec<u64> = series
            .iter()
            .filter(|(s, _)| (from..to).contains(s))
            .map(|&(_, n)| n)
            .collect();
        (!values.is_empty()).then(|| {
            (
                values.iter().sum::<u64>() as f64 / values.len() as f64,
                values.len(),
            )
        })
    };
    let (before, _) = mean(before_end.saturating_sub(10), before_end)?;
    let (during, seconds_during) = mean(first_inside, end)?;
    (before > 0.0).then(|| Throughput {
        before,
        during,
        seconds_during,
        loss: 1.0 - during / before,
    })
}

/// One (size, rate, mode) run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub size_mib: u64,
    pub rate_mib_per_sec: f64,
    pub mode: Mode,
    /// Why the run failed; then the figures below are partial or empty.
    pub error: Option<String>,
    /// What relive's report says it did, and the store it used.
    pub report_mode: Option<UpgradeMode>,
    pub store: String,
    /// The store asked for: "disk" or "memory".
    pub store_requested: String,
    pub phase1_secs: f64,
    pub vm_memory_mib: u64,
    pub disk_bytes: u64,
    pub units: Vec<UnitFigures>,
    /// bench-busy's ops/s (two-phase runs with a non-idle rate).
    pub throughput: Option<Throughput>,
}

impl Run {
    pub fn unit(&self, role: &str) -> Option<&UnitFigures> {
        self.units.iter().find(|u| u.role == role)
    }
}

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

/// One target's verdict, with the numbers it rests on.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    /// None: the matrix did not measure what it needs.
    pub met: Option<bool>,
    pub measured: String,
}

impl Target {
    pub fn line(&self) -> String {
        let verdict = match self.met {
            Some(true) => "met",
            Some(false) => "not met",
            None => "not measured",
        };
        format!("{}: {} — {verdict}", self.name, self.measured)
    }
}

/// The three targets, from whatever the runs measured.
pub fn targets(runs: &[Run]) -> Vec<Target> {
    let ok = |r: &&Run| r.error.is_none();
    let stoppage = |r: Option<&Run>, role: &str| r.and_then(|r| r.unit(role)?.stoppage_ms);

    // (a) A mostly idle 1 GiB unit: single-phase stoppage / two-phase.
    let mut ratios = Vec::new();
    for role in ["critical", "normal"] {
        let single = find(runs, 1024, 0.0, Mode::Single).filter(ok);
        let two = find(runs, 1024, 0.0, Mode::Two).filter(ok);
        if let Some(r) = div(stoppage(single, role), stoppage(two, role)) {
            ratios.push((role, r));
        }
    }
    let a = Target {
        name: "(a) idle 1G unit, single/two stoppage >= 5x".into(),
        met: (!ratios.is_empty()).then(|| ratios.iter().all(|&(_, r)| r >= 5.0)),
        measured: if ratios.is_empty() {
            "needs size 1G, rate idle, both modes".into()
        } else {
            ratios
                .iter()
                .map(|(role, r)| format!("{role} {r:.2}x"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    };

    // (b) The critical unit, idle, two-phase: near the floor at every size
    // and about the same at every size.
    let mut per_size: Vec<(u64, f64, f64)> = runs
        .iter()
        .filter(|r| ok(r) && r.mode == Mode::Two && r.rate_mib_per_sec == 0.0)
        .filter_map(|r| {
            let u = r.unit("critical")?;
            Some((r.size_mib, u.stoppage_ms?, u.stoppage_over_floor?))
        })
        .collect();
    per_size.sort_by_key(|&(size, _, _)| size);
    let b = if per_size.is_empty() {
        Target {
            name: "(b) critical idle unit, two-phase stoppage/floor <= 1.2 at each size, spread <= 10 %"
                .into(),
            met: None,
            measured: "needs two-phase runs at rate idle".into(),
        }
    } else {
        let max = per_size.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        let min = per_size.iter().map(|p| p.1).fold(f64::MAX, f64::min);
        let spread = if min > 0.0 {
            max / min - 1.0
        } else {
            f64::INFINITY
        };
        let near = per_size.iter().all(|p| p.2 <= 1.2);
        Target {
            name: "(b) critical idle unit, two-phase stoppage/floor <= 1.2 at each size, spread <= 10 %"
                .into(),
            met: Some(near && spread <= 0.10),
            measured: format!(
                "stoppage/floor {}; max/min across sizes {:.2} ({:+.0} %)",
                per_size
                    .iter()
                    .map(|(s, _, f)| format!("{} {f:.2}", size_label(*s)))
                    .collect::<Vec<_>>()
                    .join(", "),
                max / min,
                spread * 100.0
            ),
        }
    };

    // (c) Throughput of a busy unit while phase 1 runs.
    let losses: Vec<(u64, f64, Throughput)> = runs
        .iter()
        .filter(|r| ok(r))
        .filter_map(|r| Some((r.size_mib, r.rate_mib_per_sec, r.throughput?)))
        .collect();
    let c = Target {
        name: "(c) busy unit's throughput loss during phase 1 <= 3 %".into(),
        met: (!losses.is_empty()).then(|| losses.iter().all(|l| l.2.loss <= 0.03)),
        measured: if losses.is_empty() {
            "needs two-phase runs with a non-idle rate".into()
        } else {
            losses
                .iter()
                .map(|(s, r, t)| {
                    format!(
                        "{} {} {:.1} % ({:.0} -> {:.0} ops/s over {} s)",
                        size_label(*s),
                        rate_label(*r),
                        t.loss * 100.0,
                        t.before,
                        t.during,
                        t.seconds_during
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
    };
    vec![a, b, c]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_parses() {
        let m = Matrix::parse("64M,1G, 2G", "idle,1M,50M,2.5", "single,two", "disk").unwrap();
        assert_eq!(m.sizes_mib, vec![64, 1024, 2048]);
        assert_eq!(m.rates, vec![0.0, 1.0, 50.0, 2.5]);
        assert_eq!(m.modes, vec![Mode::Single, Mode::Two]);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("1T").is_err());
        assert!(parse_size("0M").is_err());
        assert!(parse_rate("-1M").is_err());
        assert!(Matrix::parse("64M", "idle", "three", "disk").is_err());
        assert!(Matrix::parse("", "idle", "two", "disk").is_err());
        let err = Matrix::parse("64M", "idle", "two", "nfs").unwrap_err();
        assert!(err.to_string().contains("expected disk or memory"), "{err}");
    }

    #[test]
    fn labels_read_back() {
        assert_eq!(size_label(1024), "1G");
        assert_eq!(size_label(256), "256M");
        assert_eq!(rate_label(0.0), "idle");
        assert_eq!(rate_label(50.0), "50M/s");
        assert_eq!(parse_size(&size_label(2048)).unwrap(), 2048);
    }

    #[test]
    fn vm_memory_and_disk_grow_with_the_size() {
        // 2 * 64 + 1536 = 1664, rounded up to 1792.
        assert_eq!(vm_memory_mib(64), 1792);
        assert_eq!(vm_memory_mib(256), 2048);
        assert_eq!(vm_memory_mib(1024), 3584);
        assert_eq!(vm_memory_mib(2048), 5632);
        assert_eq!(disk_bytes(64), 4 << 30);
        // 3072 + 8192 + 128 MiB -> 12 GiB.
        assert_eq!(disk_bytes(2048), 12 << 30);
    }

    #[test]
    fn unit_text_carries_size_rate_port_priority() {
        let text = unit_text("busy", 64, 50.0, true, 7012, 500);
        assert!(text.contains(
            "ExecStart=/usr/local/bin/relive-dirty --size-mib 64 --dirty-mib-per-sec 50 --busy --report-port 7012\n"
        ));
        assert!(text.contains("[X-LiveUpgrade]\nMode=preserve\nPriority=500\n"));
        let idle = unit_text("critical", 1024, 0.0, false, 7010, 900);
        assert!(idle.contains("--dirty-mib-per-sec 0 --report-port 7010"));
    }

    #[test]
    fn phase1_throughput_compares_whole_seconds() {
        // 1000 ops/s before; phase 1 from 100.5 s to 104.2 s: whole seconds
        // 101, 102, 103 inside; 102 lost half its work, 103 all of it.
        let mut series: Vec<(u64, u64)> = (85..100).map(|s| (s, 1000)).collect();
        series.extend([(100, 1000), (101, 1000), (102, 500), (103, 0), (104, 1000)]);
        let t = phase1_throughput(&series, 100_500_000, 104_200_000).unwrap();
        assert_eq!(t.before, 1000.0);
        assert_eq!(t.seconds_during, 3);
        assert_eq!(t.during, 500.0);
        assert!((t.loss - 0.5).abs() < 1e-9);
        // Phase 1 shorter than a whole second, or no history: no figure.
        assert_eq!(phase1_throughput(&series, 100_100_000, 100_900_000), None);
        assert_eq!(
            phase1_throughput(&series[..0], 100_500_000, 104_200_000),
            None
        );
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
            size_mib: size,
            rate_mib_per_sec: rate,
            mode,
            error: None,
            report_mode: None,
            store: "disk".into(),
            store_requested: "disk".into(),
            phase1_secs: 0.0,
            vm_memory_mib: 0,
            disk_bytes: 0,
            units: vec![unit("critical"), unit("normal")],
            throughput: None,
        }
    }

    #[test]
    fn targets_are_evaluated_from_the_figures() {
        let mut runs = vec![
            run(256, 0.0, Mode::Single, 20_000.0, 1000.0),
            run(256, 0.0, Mode::Two, 1100.0, 1000.0),
            run(1024, 0.0, Mode::Single, 60_000.0, 1000.0),
            run(1024, 0.0, Mode::Two, 1150.0, 1000.0),
        ];
        let mut busy = run(1024, 50.0, Mode::Two, 3000.0, 1000.0);
        busy.throughput = Some(Throughput {
            before: 1000.0,
            during: 980.0,
            seconds_during: 30,
            loss: 0.02,
        });
        runs.push(busy);
        let t = targets(&runs);
        assert_eq!(t[0].met, Some(true), "{}", t[0].line());
        assert!(
            t[0].measured.contains("critical 52.17x"),
            "{}",
            t[0].measured
        );
        assert_eq!(t[1].met, Some(true), "{}", t[1].line());
        assert!(t[1].measured.contains("1.05 (+5 %)"), "{}", t[1].measured);
        assert_eq!(t[2].met, Some(true), "{}", t[2].line());

        // 1G two-phase near its floor but 25 % slower than 256M: (b) fails;
        // a 4 % loss fails (c).
        runs[3] = run(1024, 0.0, Mode::Two, 1375.0, 1250.0);
        runs[4].throughput.as_mut().unwrap().loss = 0.04;
        let t = targets(&runs);
        assert_eq!(t[1].met, Some(false), "{}", t[1].line());
        assert_eq!(t[2].met, Some(false), "{}", t[2].line());
        assert!(t[2].line().ends_with("not met"));

        // Nothing measured: no verdict, said so.
        let t = targets(&[]);
        assert!(t.iter().all(|t| t.met.is_none()));
        assert!(t[0].line().contains("not measured"));
    }

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
    fn the_memory_store_region_holds_the_images_above_the_pci_hole() {
        let m = MemoryStore::for_size(1024);
        assert_eq!(m.region_mib, 4736);
        assert_eq!(m.memmap(), "4736M!4G");
        // RAM above 4 GiB is vm - 3 GiB: the region fits, with room to spare.
        assert!(m.vm_memory_mib - 3072 >= m.region_mib + 512, "{m:?}");
        assert!(Matrix::parse("64M", "idle", "two", "disk,tape").is_err());
        assert_eq!(
            Matrix::parse("64M", "idle", "two", "disk,memory")
                .unwrap()
                .stores,
            ["disk", "memory"]
        );
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
}
