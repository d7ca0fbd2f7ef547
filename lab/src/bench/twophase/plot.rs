//! The SVG of `relive-lab bench`: one chart per store and dirty rate,
//! stoppage against memory size, a line per mode and unit.

use super::figures::Run;
use super::matrix::{rate_label, size_label, Matrix, Mode};
use crate::bench::svg;

/// One chart per (store, rate): stoppage (s) against size, a line per
/// (mode, unit), the critical unit's floor dashed.
pub fn plot(matrix: &Matrix, runs: &[Run]) -> String {
    let labels: Vec<String> = matrix.sizes_mib.iter().map(|&s| size_label(s)).collect();
    let value = |store: &str, size: u64, rate: f64, mode: Mode, role: &str, floor: bool| {
        let run = runs.iter().find(|r| {
            r.store_requested == store
                && r.size_mib == size
                && r.rate_mib_per_sec == rate
                && r.mode == mode
                && r.error.is_none()
        })?;
        let unit = run.unit(role)?;
        let ms = if floor {
            unit.floor_ms
        } else {
            unit.stoppage_ms
        }?;
        Some(ms / 1000.0)
    };
    let lines: [(Mode, &str, &'static str); 4] = [
        (Mode::Single, "critical", "#d62728"),
        (Mode::Single, "normal", "#ff9896"),
        (Mode::Two, "critical", "#1f77b4"),
        (Mode::Two, "normal", "#9ecae1"),
    ];
    let cells: Vec<(&str, f64)> = matrix
        .stores
        .iter()
        .flat_map(|s| matrix.rates.iter().map(move |&r| (s.as_str(), r)))
        .collect();
    let charts: Vec<svg::Chart> = cells
        .iter()
        .map(|&(store, rate)| {
            let mut series: Vec<svg::Series> = lines
                .iter()
                .filter(|(mode, _, _)| matrix.modes.contains(mode))
                .map(|&(mode, role, color)| svg::Series {
                    label: format!("{}-phase {role}", mode.label()),
                    color,
                    dashed: false,
                    points: matrix
                        .sizes_mib
                        .iter()
                        .map(|&s| value(store, s, rate, mode, role, false))
                        .collect(),
                })
                .collect();
            // The floor of the two-phase run (single's where there is none).
            series.push(svg::Series {
                label: "floor (kexec + restore), critical".into(),
                color: "#444444",
                dashed: true,
                points: matrix
                    .sizes_mib
                    .iter()
                    .map(|&s| {
                        value(store, s, rate, Mode::Two, "critical", true)
                            .or_else(|| value(store, s, rate, Mode::Single, "critical", true))
                    })
                    .collect(),
            });
            svg::Chart {
                title: format!("{store} store, dirty rate {}", rate_label(rate)),
                series,
            }
        })
        .collect();
    let text = svg::Labels {
        title: "live-upgrade stoppage per unit vs memory size (relive-lab bench)",
        x: "memory per unit",
        y: "stoppage (s)",
    };
    svg::render(text, &labels, &charts)
}

#[cfg(test)]
mod tests {
    use super::super::figures::UnitFigures;
    use super::super::{all_good, empty_run};
    use super::*;

    #[test]
    fn the_plot_has_a_chart_per_rate_and_a_line_per_mode_and_unit() {
        let matrix = Matrix::parse("64M,1G", "idle,50M", "single,two", "disk").unwrap();
        let mut runs = Vec::new();
        for &size in &matrix.sizes_mib {
            for &rate in &matrix.rates {
                for &mode in &matrix.modes {
                    let mut run = empty_run(size, rate, mode, "disk", 0, false);
                    for role in ["critical", "normal"] {
                        run.units.push(UnitFigures {
                            role: role.into(),
                            stoppage_ms: Some(size as f64 * 10.0),
                            floor_ms: Some(1000.0),
                            intact: true,
                            ..UnitFigures::default()
                        });
                    }
                    runs.push(run);
                }
            }
        }
        let svg = plot(&matrix, &runs);
        // plotters writes each text on a line of its own.
        let text = |t: &str| format!(">\n{t}\n<");
        assert!(svg.contains(&text("disk store, dirty rate idle")), "{svg}");
        assert!(svg.contains(&text("disk store, dirty rate 50M/s")), "{svg}");
        for (label, color) in [
            ("single-phase critical", "#D62728"),
            ("single-phase normal", "#FF9896"),
            ("two-phase critical", "#1F77B4"),
            ("two-phase normal", "#9ECAE1"),
        ] {
            // In the legend once; its line in each chart and the legend's.
            assert_eq!(svg.matches(&text(label)).count(), 1, "{label}");
            let lines = svg
                .lines()
                .filter(|l| l.starts_with("<polyline") && l.contains(color))
                .count();
            assert_eq!(lines, 2 + 1, "{label}");
        }
        assert!(svg.contains(&text("floor (kexec + restore), critical")));
        assert!(svg.contains(&text("64M")) && svg.contains(&text("1G")));
        // 1G at 10 ms/MiB is the largest value: 10.24 s, a tick above it.
        assert!(
            svg.contains(&text("10.0")) || svg.contains(&text("10")),
            "{svg}"
        );
        assert!(all_good(&runs));
    }
}
