//! What `upgrade-check` asks of the two-phase snapshot and of the stores,
//! one variant per direction so that both paths run in every test run:
//!
//! - forward (from the older series, e.g. 6.1 -> 6.12): a warm snapshot first (`--prepare`), then a
//!   two-phase upgrade with the memory store. relive-idle (never runs)
//!   must get a clean-skip final dump, relive-busy (dirties faster than a
//!   pre-dump copies) an incremental one after exactly its round cap, the
//!   critical relive-echo must be frozen after and running before the
//!   less critical relive-counter, and both workloads' memory must verify.
//! - backward (to the older series): a single-phase upgrade, memory store too, with one image of
//!   relive-idle corrupted after its checksum: the new kernel must refuse
//!   it, say so in the report and start relive-idle afresh. (Then
//!   upgrade_check goes back once more, falling back to the disk store.)

use crate::scenarios::upgrade::outcome_text;
use anyhow::{Context, Result};
use relive_api::report::{FinalDump, Outcome, UnitMode, UnitRecord, UpgradeMode, UpgradeReport};

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
    /// Forward (to a newer series) or backward.
    pub fn for_direction(from: &str, to: &str) -> Variant {
        if crate::vm::apt::version_cmp(from, to).is_lt() {
            Variant::TwoPhaseMemory
        } else {
            Variant::SinglePhaseMemory
        }
    }

    /// Extra `relivectl live-upgrade` flags.
    pub fn flags(self) -> &'static str {
        match self {
            // relive's minimal initrd this way, the distribution's back;
            // lazy restores this way, whole restores back.
            Variant::TwoPhaseMemory => "--store memory --minimal-initrd --lazy-restore",
            Variant::SinglePhaseMemory => "--single-phase --store memory",
        }
    }

    /// StartLiveUpgrade's options when this variant asks through busctl
    /// rather than relivectl (the same request as `flags`).
    pub fn bus_options(self) -> Option<&'static [(&'static str, &'static str)]> {
        match self {
            Variant::TwoPhaseMemory => None,
            Variant::SinglePhaseMemory => Some(&[("single-phase", "yes"), ("store", "memory")]),
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
pub fn report_findings(variant: Variant, report: &UpgradeReport) -> Vec<Finding> {
    let unit = |name: &str| report.units.iter().find(|u| u.name == name);
    let mut found = Vec::new();
    let mut add = |name: &str, ok: bool, detail: String| found.push((name.to_owned(), ok, detail));
    let preserved: Vec<&UnitRecord> = report
        .units
        .iter()
        .filter(|u| u.mode == UnitMode::Preserve)
        .collect();
    // The report names its store only in words (`UpgradeReport::store`):
    // "memory store (...)" or "disk store (...)".
    match variant {
        Variant::TwoPhaseMemory => {
            add(
                "two-phase: mode and store",
                report.mode == Some(UpgradeMode::TwoPhase)
                    && report.store.starts_with("memory store"),
                format!("{}; {}", mode_text(report), report.store),
            );
            let idle = unit(IDLE);
            add(
                "two-phase: idle unit's final dump is clean-skip",
                idle.is_some_and(|u| {
                    u.final_dump == Some(FinalDump::CleanSkip) && !u.pre_dumps.is_empty()
                }),
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
            // The warm snapshot's rounds came before phase 1; the upgrade's
            // own rounds must have run to the cap (a busy unit never
            // converges).
            let busy = unit(BUSY);
            let rounds_in_phase1 = |u: &UnitRecord| {
                u.pre_dumps
                    .iter()
                    .filter(|r| r.started_usec >= report.phase1_started_usec)
                    .count()
            };
            add(
                "two-phase: busy unit stops at its round cap, incremental, restored",
                busy.is_some_and(|u| {
                    u.final_dump == Some(FinalDump::Incremental)
                        && rounds_in_phase1(u) == BUSY_ROUNDS
                        && u.outcome == Some(Outcome::Restored)
                }),
                busy.map_or("absent".into(), |u| {
                    format!("{} in phase 1; {}", rounds_in_phase1(u), describe(u))
                }),
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
                report.mode == Some(UpgradeMode::SinglePhase)
                    && report.store.starts_with("memory store"),
                format!("{}; {}", mode_text(report), report.store),
            );
            let full = preserved
                .iter()
                .all(|u| u.final_dump == Some(FinalDump::Full) && u.pre_dumps.is_empty());
            add(
                "single-phase: every final dump is full, no pre-dumps",
                full,
                preserved
                    .iter()
                    .map(|u| {
                        format!(
                            "{} {} ({} rounds)",
                            u.name,
                            final_dump_text(u),
                            u.pre_dumps.len()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            let idle = unit(IDLE);
            add(
                "corrupt image refused, unit started afresh, reported",
                idle.is_some_and(|u| {
                    matches!(&u.outcome, Some(Outcome::Lost { reason })
                        if reason.contains("does not match its checksum"))
                }),
                idle.map_or("absent".into(), outcome_text),
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

fn describe(u: &UnitRecord) -> String {
    format!(
        "{} rounds ({}), final dump {}, {} KiB in the stoppage, {}",
        u.pre_dumps.len(),
        u.convergence,
        final_dump_text(u),
        u.stoppage_bytes / 1024,
        outcome_text(u)
    )
}

fn final_dump_text(u: &UnitRecord) -> &'static str {
    u.final_dump.map_or("-", FinalDump::as_str)
}

fn mode_text(report: &UpgradeReport) -> &'static str {
    report.mode.map_or("-", UpgradeMode::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const PHASE1: u64 = 1_000_000_000;

    /// A unit as relive writes it (relive 0.1's strings), frozen at
    /// `frozen` and running again at `running` (seconds after PHASE1).
    fn unit(name: &str, priority: u16, frozen: u64, running: u64, extra: Value) -> Value {
        let mut u = json!({
            "name": name,
            "mode": "preserve",
            "priority": priority,
            "frozen_usec": PHASE1 + frozen * 1_000_000,
            "running_usec": PHASE1 + running * 1_000_000,
            "outcome": "restored",
            "final_dump": "incremental",
        });
        u.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        u
    }

    fn round(n: u32, started: u64) -> Value {
        json!({"round": n, "started_usec": started, "duration_ms": 800.0,
               "frozen_ms": 3.0, "pages_written": 100, "bytes": 409600, "ran": true})
    }

    fn two_phase_report() -> UpgradeReport {
        let text = json!({
            "kernel_from": "6.1.0-47-amd64",
            "kernel_to": "6.12.117+deb12-amd64",
            "started_usec": PHASE1,
            "kexec_usec": PHASE1 + 20_000_000,
            "resumed_usec": PHASE1 + 30_000_000,
            "finished_usec": PHASE1 + 40_000_000,
            "mode": "two-phase",
            "phase1_started_usec": PHASE1,
            "phase1_ended_usec": PHASE1 + 10_000_000,
            "store": "memory store (/dev/pmem0, memmap=512M!1G)",
            "total_image_bytes": 1 << 20,
            "longest_stoppage_ms": 20000.0,
            "clock": "wall clock",
            "units": [
                unit(IDLE, 100, 11, 35, json!({
                    "final_dump": "clean-skip",
                    "pre_dumps": [round(1, PHASE1 - 60_000_000), round(2, PHASE1 + 1)],
                    "convergence": "converged: no task ran since round 1",
                })),
                unit(BUSY, 100, 12, 36, json!({
                    "pre_dumps": [round(1, PHASE1 - 60_000_000), round(2, PHASE1 + 1),
                                  round(3, PHASE1 + 2), round(4, PHASE1 + 3)],
                    "convergence": format!("round cap ({BUSY_ROUNDS}) reached"),
                })),
                unit("relive-counter.service", 500, 13, 34, json!({})),
                unit("relive-echo.service", 900, 14, 33, json!({})),
                {"name": "systemd-udevd.service", "mode": "restart", "outcome": "restarted"},
            ],
        });
        serde_json::from_value(text).expect("relive's report decodes")
    }

    fn failed(findings: &[Finding]) -> Vec<String> {
        findings
            .iter()
            .filter(|(_, ok, _)| !ok)
            .map(|(name, _, detail)| format!("{name}: {detail}"))
            .collect()
    }

    #[test]
    fn forward_is_two_phase_backward_single_phase() {
        assert_eq!(
            Variant::for_direction("6.1", "6.12"),
            Variant::TwoPhaseMemory
        );
        assert_eq!(
            Variant::for_direction("6.12", "6.1"),
            Variant::SinglePhaseMemory
        );
        assert_eq!(
            Variant::for_direction("6.12", "6.19"),
            Variant::TwoPhaseMemory
        );
        assert_eq!(
            Variant::for_direction("6.19", "6.16"),
            Variant::SinglePhaseMemory
        );
    }

    #[test]
    fn a_good_two_phase_report_passes() {
        let report = two_phase_report();
        let found = report_findings(Variant::TwoPhaseMemory, &report);
        assert_eq!(found.len(), 5);
        assert_eq!(failed(&found), Vec::<String>::new());
    }

    #[test]
    fn a_full_final_dump_or_a_lost_unit_fails_the_two_phase_checks() {
        let mut report = two_phase_report();
        report.units[0].final_dump = Some(FinalDump::Full);
        report.units[1].outcome = Some(Outcome::Lost {
            reason: "restore failed".into(),
        });
        report.mode = Some(UpgradeMode::SinglePhase);
        let failed = failed(&report_findings(Variant::TwoPhaseMemory, &report));
        assert_eq!(failed.len(), 3, "{failed:?}");
        assert!(failed[0].starts_with("two-phase: mode and store"));
        assert!(failed[1].contains("final dump full"), "{failed:?}");
        assert!(
            failed[2].contains("state lost: restore failed"),
            "{failed:?}"
        );
    }

    #[test]
    fn the_corrupt_image_must_be_reported_as_lost() {
        let mut report = two_phase_report();
        report.mode = Some(UpgradeMode::SinglePhase);
        for u in &mut report.units {
            u.pre_dumps.clear();
            u.final_dump = (u.mode == UnitMode::Preserve).then_some(FinalDump::Full);
        }
        let lost =
            "state lost: images refused: pages-1.img does not match its checksum; started afresh";
        report.units[0].outcome = Some(Outcome::parse(lost));
        let found = report_findings(Variant::SinglePhaseMemory, &report);
        assert_eq!(failed(&found), Vec::<String>::new());
        assert_eq!(found[2].2, lost);

        report.units[0].outcome = Some(Outcome::Restored);
        let failed = failed(&report_findings(Variant::SinglePhaseMemory, &report));
        assert_eq!(
            failed,
            ["corrupt image refused, unit started afresh, reported: restored"]
        );
    }
}
