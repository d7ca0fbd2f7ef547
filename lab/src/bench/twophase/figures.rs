//! The figures of one `relive-lab bench` run: per bench unit its
//! stoppage, floor, pre-dump rounds and final dump, and the busy unit's
//! throughput during phase 1.

use super::matrix::Mode;
use relive_api::report::{FinalDump, PreDumpRound, UpgradeMode};
use serde::Serialize;

/// One bench unit in one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnitFigures {
    /// "critical" or "normal" (or "busy", or "small").
    pub role: String,
    pub name: String,
    pub outcome: String,
    /// Frozen on the old kernel until running on the new one.
    pub stoppage_ms: Option<f64>,
    /// What no snapshot scheme can avoid: kexec to relive resumed, plus
    /// the unit's own restore.
    pub floor_ms: Option<f64>,
    pub stoppage_over_floor: Option<f64>,
    /// What relive cannot shorten: the new kernel's boot, from the kexec
    /// to relive running in it (the targets' floor).
    pub boot_floor_ms: Option<f64>,
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
    /// kexec, and from relive resumed to its restore beginning (network
    /// locks, rerun units, the restores before it). Checking its images
    /// runs beside (`verify_ms`, not a part of the sum): the restore's own
    /// time holds what the restored tasks waited for the verdict.
    pub verify_ms: Option<f64>,
    pub frozen_to_kexec_ms: Option<f64>,
    pub resumed_to_restore_ms: Option<f64>,
    /// Restored lazily: from running again to its last page served
    /// (relive's report), and the bytes served then.
    pub lazy_tail_ms: Option<f64>,
    pub lazy_served_bytes: Option<u64>,
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
    /// Small idle units beside the bench units (target (f)).
    pub small_units: usize,
    pub units: Vec<UnitFigures>,
    /// bench-busy's ops/s (two-phase runs with a non-idle rate).
    pub throughput: Option<Throughput>,
    /// CPU-bound units kept every guest CPU busy (`--saturate`).
    pub saturated: bool,
    /// What relive's report says phase 1 cost: CRIU's CPU time, the
    /// services' wait for a CPU.
    pub phase1_cpu: Option<relive_api::report::Phase1Cpu>,
    /// Where the new kernel's boot went (relive's report).
    pub kernel_boot: Option<relive_api::report::KernelBoot>,
    /// The upgrade asked for relive's minimal initrd.
    pub minimal_initrd: bool,
    /// The upgrade asked for lazy restores.
    #[serde(default)]
    pub lazy_restore: bool,
}

impl Run {
    /// "64M idle two": its size, rate and mode.
    pub fn label(&self) -> String {
        format!(
            "{} {} {}",
            super::matrix::size_label(self.size_mib),
            super::matrix::rate_label(self.rate_mib_per_sec),
            self.mode.label()
        )
    }

    pub fn unit(&self, role: &str) -> Option<&UnitFigures> {
        self.units.iter().find(|u| u.role == role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
