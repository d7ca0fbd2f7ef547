//! The spread of repeated runs (`relive-lab bench --repeat N`): under
//! TCG one run's figures move by seconds from the next's, so a change of
//! under a second is told apart only by the median of several, beside
//! their fewest and most.

use super::figures::{Run, UnitFigures};
use std::fmt::Write as _;

/// Each bench unit's figures over the runs of one (size, rate, mode)
/// that ran more than once: "median (fewest .. most)" seconds. Empty
/// when no combination ran twice.
pub fn spread(runs: &[Run]) -> String {
    let mut out = String::new();
    let good: Vec<&Run> = runs.iter().filter(|r| r.error.is_none()).collect();
    let mut seen: Vec<(u64, u64, &str)> = Vec::new();
    for run in &good {
        let key = (
            run.size_mib,
            run.rate_mib_per_sec.to_bits(),
            run.mode.label(),
        );
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let same: Vec<&&Run> = good
            .iter()
            .filter(|r| (r.size_mib, r.rate_mib_per_sec.to_bits(), r.mode.label()) == key)
            .collect();
        if same.len() < 2 {
            continue;
        }
        for role in ["critical", "normal"] {
            let units: Vec<&UnitFigures> = same.iter().filter_map(|r| r.unit(role)).collect();
            let over = |u: &UnitFigures| Some(u.stoppage_ms? - u.boot_floor_ms?);
            let figures = [
                ("stoppage", spread_of(&units, |u| u.stoppage_ms, false)),
                ("floor", spread_of(&units, |u| u.boot_floor_ms, false)),
                ("over the floor", spread_of(&units, over, true)),
                (
                    "resumed>restore",
                    spread_of(&units, |u| u.resumed_to_restore_ms, false),
                ),
                ("restore", spread_of(&units, |u| u.restore_ms, false)),
            ];
            let listed: Vec<String> = figures
                .iter()
                .filter_map(|(name, figure)| Some(format!("{name} {}", figure.as_ref()?)))
                .collect();
            let _ = writeln!(
                out,
                "{} {role} ({} runs): {}",
                run.label(),
                units.len(),
                listed.join(", ")
            );
        }
    }
    out
}

/// "11.20 (9.80 .. 13.00)" seconds of a figure over `units`; None when
/// no unit has it. `signed`: with a sign, as a difference.
fn spread_of(
    units: &[&UnitFigures],
    figure: impl Fn(&UnitFigures) -> Option<f64>,
    signed: bool,
) -> Option<String> {
    let mut values: Vec<f64> = units.iter().filter_map(|u| figure(u)).collect();
    values.sort_by(f64::total_cmp);
    let (first, last) = (values.first()?, values.last()?);
    let middle = values.len() / 2;
    let median = match values.len() % 2 {
        0 => (values[middle - 1] + values[middle]) / 2.0,
        _ => values[middle],
    };
    let shown = |ms: f64| match signed {
        true => format!("{:+.2}", ms / 1000.0),
        false => format!("{:.2}", ms / 1000.0),
    };
    Some(format!(
        "{} ({} .. {})",
        shown(median),
        shown(*first),
        shown(*last)
    ))
}

#[cfg(test)]
mod tests {
    use super::super::matrix::Mode;
    use super::*;

    fn run(critical_ms: f64, floor_ms: f64) -> Run {
        let unit = |role: &str| UnitFigures {
            role: role.into(),
            stoppage_ms: Some(critical_ms),
            boot_floor_ms: Some(floor_ms),
            intact: true,
            ..UnitFigures::default()
        };
        Run {
            units: vec![unit("critical"), unit("normal")],
            ..super::super::empty_run(64, 0.0, Mode::Two, "disk", 0, false)
        }
    }

    #[test]
    fn repeated_runs_give_their_median_fewest_and_most() {
        let runs = [
            run(22_000.0, 12_000.0),
            run(24_000.0, 11_000.0),
            run(19_000.0, 10_000.0),
        ];
        let text = spread(&runs);
        let critical = text.lines().find(|l| l.contains("critical")).unwrap();
        assert_eq!(
            critical,
            "64M idle two critical (3 runs): stoppage 22.00 (19.00 .. 24.00), \
             floor 11.00 (10.00 .. 12.00), over the floor +10.00 (+9.00 .. +13.00)"
        );
    }

    #[test]
    fn single_runs_have_no_spread() {
        assert_eq!(spread(&[run(22_000.0, 12_000.0)]), "");
    }
}
