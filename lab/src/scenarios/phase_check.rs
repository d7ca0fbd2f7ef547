//! What `upgrade-check` asks of the two-phase snapshot and of the stores,
//! one variant per direction so that both paths run in every test run:
//!
//! - forward (from 6.1): a warm snapshot first (`--prepare`), then a
//!   two-phase upgrade with the memory store. relive-idle (never runs)
//!   must get a clean-skip final dump, relive-busy (dirties faster than a
//!   pre-dump copies) an incremental one after exactly its round cap, the
//!   critical relive-echo must be frozen after and running before the
//!   less critical relive-counter, and both workloads' memory must verify.
//! - backward: a single-phase upgrade, memory store too, with one image of
//!   relive-idle corrupted after its checksum: the new kernel must refuse
//!   it, say so in the report and start relive-idle afresh. (Then
//!   upgrade_check goes back once more, falling back to the disk store.)

use crate::scenarios::upgrade::{Report, UnitReport};
use anyhow::{Context, Result};

pub const IDLE: &str = "relive-idle.service";
pub const BUSY: &str = "relive-busy.service";
const IDLE_PORT: u16 = 7002;
const BUSY_PORT: u16 = 7003;
/// relive-busy.service's PreDumpMaxRounds=.
const BUSY_ROUNDS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    TwoPhaseMemory,
    SinglePhaseMemory,
}

impl Variant {
    pub fn for_direction(from: &str) -> Variant {
        if from == "6.1" {
            Variant::TwoPhaseMemory
        } else {
            Variant::SinglePhaseMemory
        }
    }

    /// Extra `relivectl live-upgrade` flags.
    pub fn flags(self) -> &'static str {
        match self {
            Variant::TwoPhaseMemory => "--store memory",
            Variant::SinglePhaseMemory => "--single-phase --store memory",
        }
    }

    /// The unit whose state this variant loses on purpose.
    pub fn sacrificed(self) -> Option<&'static str> {
        match self {
            Variant::TwoPhaseMemory => None,
            Variant::SinglePhaseMemory => Some(IDLE),
        }
    }
}

/// One verdict: name, ok, detail.
pub type Finding = (String, bool, String);

/// relive-dirty's `report` and `verify`, asked in the guest.
pub fn workload_script() -> String {
    [IDLE_PORT, BUSY_PORT]
        .iter()
        .map(|p| format!("echo report | timeout 120 nc -N 127.0.0.1 {p}; echo verify | timeout 120 nc -N 127.0.0.1 {p}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The workloads' answers: (report, verify) for idle, then busy.
pub fn parse_workloads(
    text: &str,
) -> Result<
    Vec<(
        relive_workloads::dirty::DirtyReport,
        relive_workloads::dirty::VerifyReport,
    )>,
> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .chunks(2)
        .map(|pair| {
            let report = serde_json::from_str(pair[0]).context("relive-dirty report")?;
            let verify = serde_json::from_str(pair.get(1).context("no verify answer")?)
                .context("relive-dirty verify")?;
            Ok((report, verify))
        })
        .collect()
}

/// The checks of the report for `variant`.
pub fn report_findings(variant: Variant, report: &Report) -> Vec<Finding> {
    let unit = |name: &str| report.units.iter().find(|u| u.name == name);
    let mut found = Vec::new();
    let mut add = |name: &str, ok: bool, detail: String| found.push((name.to_owned(), ok, detail));
    let preserved: Vec<&UnitReport> = report
        .units
        .iter()
        .filter(|u| u.mode == "preserve")
        .collect();
    match variant {
        Variant::TwoPhaseMemory => {
            add(
                "two-phase: mode and store",
                report.mode == "two-phase" && report.store.starts_with("memory store"),
                format!("{}; {}", report.mode, report.store),
            );
            let idle = unit(IDLE);
            add(
                "two-phase: idle unit's final dump is clean-skip",
                idle.is_some_and(|u| u.final_dump == "clean-skip" && !u.pre_dumps.is_empty()),
                idle.map_or("absent".into(), describe),
            );
            let warm = idle.is_some_and(|u| {
                u.pre_dumps
                    .first()
                    .is_some_and(|r| r.started_usec < report.phase1_started_usec)
            });
            add(
                "two-phase: the warm snapshot (--prepare) was topped up",
                warm,
                idle.map_or("absent".into(), |u| {
                    format!(
                        "first round at {} µs, phase 1 from {} µs",
                        u.pre_dumps.first().map_or(0, |r| r.started_usec),
                        report.phase1_started_usec
                    )
                }),
            );
            let busy = unit(BUSY);
            add(
                "two-phase: busy unit stops at its round cap, incremental, restored",
                busy.is_some_and(|u| {
                    u.final_dump == "incremental"
                        && u.convergence
                            .contains(&format!("round cap ({BUSY_ROUNDS})"))
                        && u.outcome == "restored"
                }),
                busy.map_or("absent".into(), describe),
            );
            let (echo, counter) = (unit("relive-echo.service"), unit("relive-counter.service"));
            let ordered = match (echo, counter) {
                (Some(e), Some(c)) => {
                    e.frozen_usec > c.frozen_usec
                        && e.running_usec
                            .zip(c.running_usec)
                            .is_some_and(|(e, c)| e < c)
                }
                _ => false,
            };
            add(
                "two-phase: critical unit frozen last, running first",
                ordered,
                [echo, counter]
                    .iter()
                    .flatten()
                    .map(|u| {
                        format!(
                            "{} (priority {}): frozen {} running {:?} stoppage {:.0} ms",
                            u.name,
                            u.priority,
                            u.frozen_usec,
                            u.running_usec,
                            u.stoppage_ms().unwrap_or(f64::NAN)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        Variant::SinglePhaseMemory => {
            add(
                "single-phase: mode and store",
                report.mode == "single-phase" && report.store.starts_with("memory store"),
                format!("{}; {}", report.mode, report.store),
            );
            let full = preserved
                .iter()
                .all(|u| u.final_dump == "full" && u.pre_dumps.is_empty());
            add(
                "single-phase: every final dump is full, no pre-dumps",
                full,
                preserved
                    .iter()
                    .map(|u| format!("{} {} ({} rounds)", u.name, u.final_dump, u.pre_dumps.len()))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            let idle = unit(IDLE);
            add(
                "corrupt image refused, unit started afresh, reported",
                idle.is_some_and(|u| {
                    u.outcome.starts_with("state lost")
                        && u.outcome.contains("does not match its checksum")
                }),
                idle.map_or("absent".into(), |u| u.outcome.clone()),
            );
        }
    }
    found
}

/// The workloads after the upgrade: memory intact; the same process
/// unless `variant` sacrificed it.
pub fn workload_findings(
    variant: Variant,
    before: &[(
        relive_workloads::dirty::DirtyReport,
        relive_workloads::dirty::VerifyReport,
    )],
    after: &[(
        relive_workloads::dirty::DirtyReport,
        relive_workloads::dirty::VerifyReport,
    )],
) -> Vec<Finding> {
    [IDLE, BUSY]
        .iter()
        .zip(before.iter().zip(after))
        .map(|(name, ((b, _), (a, verify)))| {
            let same = a.pid == b.pid && a.started_unix == b.started_unix;
            let expect_same = variant.sacrificed() != Some(*name);
            let ok = verify.corrupt_pages == 0
                && verify.verified_pages == a.pages
                && same == expect_same;
            (
                format!(
                    "{name}: memory verifies{}",
                    if expect_same {
                        ", same process"
                    } else {
                        ", new process"
                    }
                ),
                ok,
                format!(
                    "pid {} -> {}, {} pages verified, {} corrupt, {} rewrites",
                    b.pid, a.pid, verify.verified_pages, verify.corrupt_pages, a.pages_written
                ),
            )
        })
        .collect()
}

fn describe(u: &UnitReport) -> String {
    format!(
        "{} rounds ({}), final dump {}, {} KiB in the stoppage, {}",
        u.pre_dumps.len(),
        u.convergence,
        u.final_dump,
        u.stoppage_bytes / 1024,
        u.outcome
    )
}
