//! Small line charts as hand-written SVG (no plotting crate for one
//! figure): categorical x, linear y from 0, several charts side by side
//! sharing one y scale and one legend, so that they compare at a glance.

use std::fmt::Write as _;

#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub color: &'static str,
    pub dashed: bool,
    /// One value per x label; None leaves a gap in the line.
    pub points: Vec<Option<f64>>,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub series: Vec<Series>,
}

const CHART_W: f64 = 340.0;
const CHART_H: f64 = 260.0;
const LEFT: f64 = 55.0;
const RIGHT: f64 = 15.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 45.0;
const LEGEND_H: f64 = 28.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round step giving about five ticks up to `max` (1, 2 or 5 × 10^k).
fn tick_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// The chart's labels: the title on top, `x` under each x axis (whose
/// categories are the `x_labels`), `y` beside the first y axis.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

/// Renders `charts` side by side, the legend (from the first chart's
/// series) on top.
pub fn render(labels: Labels<'_>, x_labels: &[String], charts: &[Chart]) -> String {
    let Labels {
        title,
        x: x_title,
        y: y_label,
    } = labels;
    let max = charts
        .iter()
        .flat_map(|c| &c.series)
        .flat_map(|s| s.points.iter().flatten())
        .fold(0.0f64, |m, &v| m.max(v));
    let step = tick_step(if max > 0.0 { max } else { 1.0 });
    let top_value = ((if max > 0.0 { max } else { 1.0 }) / step).ceil() * step;
    // Wide enough for the charts and for the title (~7.5 px a character
    // at 13 px bold).
    let width = (CHART_W * charts.len().max(1) as f64 + 10.0)
        .max(20.0 + 7.5 * title.chars().count() as f64);
    // Legend items (from the first chart's series) wrap into rows.
    let legend = charts.first().map_or(&[][..], |c| &c.series[..]);
    let mut placed = Vec::new();
    let (mut x, mut row) = (10.0, 0.0);
    for s in legend {
        let item_w = 34.0 + 6.5 * s.label.chars().count() as f64;
        if x > 10.0 && x + item_w > width {
            (x, row) = (10.0, row + 1.0);
        }
        placed.push((s, x, LEGEND_H + 4.0 + 18.0 * row));
        x += item_w;
    }
    let legend_h = LEGEND_H + 18.0 * row;
    let height = CHART_H + legend_h + 20.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="16" font-size="13" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for (s, x, y) in placed {
        let dash = if s.dashed {
            r#" stroke-dasharray="5,3""#
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            r#"<line x1="{x}" y1="{y}" x2="{x2}" y2="{y}" stroke="{c}" stroke-width="2"{dash}/><text x="{tx}" y="{ty}">{l}</text>"#,
            x2 = x + 20.0,
            c = s.color,
            tx = x + 24.0,
            ty = y + 4.0,
            l = escape(&s.label)
        );
    }
    for (i, chart) in charts.iter().enumerate() {
        let ox = i as f64 * CHART_W + LEFT;
        let oy = legend_h + 20.0 + TOP;
        let w = CHART_W - LEFT - RIGHT;
        let h = CHART_H - TOP - BOTTOM;
        // Categories centred in equal slots, off the axes.
        let px = |k: usize| ox + w * (k as f64 + 0.5) / x_labels.len().max(1) as f64;
        let py = |v: f64| oy + h - h * v / top_value;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{}</text>"#,
            ox + w / 2.0,
            oy - 10.0,
            escape(&chart.title)
        );
        // Axes, y ticks with grid lines, x labels.
        let _ = writeln!(
            svg,
            r##"<path d="M{ox},{oy} V{b} H{r}" fill="none" stroke="#000"/>"##,
            b = oy + h,
            r = ox + w
        );
        // Enough decimals to tell the ticks apart (0.2, 0.4 but 10, 20).
        let decimals = (-step.log10().floor()).max(0.0) as usize;
        let mut v = 0.0;
        while v <= top_value + step / 2.0 {
            let _ = writeln!(
                svg,
                r##"<line x1="{ox}" y1="{y}" x2="{r}" y2="{y}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end">{v:.decimals$}</text>"##,
                y = py(v),
                r = ox + w,
                tx = ox - 4.0,
                ty = py(v) + 4.0,
            );
            v += step;
        }
        for (k, label) in x_labels.iter().enumerate() {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                px(k),
                oy + h + 15.0,
                escape(label)
            );
        }
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            ox + w / 2.0,
            oy + h + 32.0,
            escape(x_title)
        );
        if i == 0 {
            let _ = writeln!(
                svg,
                r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">{}</text>"#,
                ox - 40.0,
                oy + h / 2.0,
                escape(y_label)
            );
        }
        // One polyline per run of consecutive points, and a dot per point.
        for s in &chart.series {
            let dash = if s.dashed {
                r#" stroke-dasharray="5,3""#
            } else {
                ""
            };
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for (k, p) in s.points.iter().enumerate() {
                match p {
                    Some(v) => runs.last_mut().expect("never empty").push((px(k), py(*v))),
                    None => runs.push(Vec::new()),
                }
            }
            for run in runs.iter().filter(|r| !r.is_empty()) {
                let points: Vec<String> =
                    run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = writeln!(
                    svg,
                    r#"<polyline class="series" data-label="{l}" points="{p}" fill="none" stroke="{c}" stroke-width="2"{dash}/>"#,
                    l = escape(&s.label),
                    p = points.join(" "),
                    c = s.color
                );
                if !s.dashed {
                    for (x, y) in run {
                        let _ = writeln!(
                            svg,
                            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{}"/>"#,
                            s.color
                        );
                    }
                }
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(10.0), 2.0);
        assert_eq!(tick_step(47.0), 10.0);
        assert_eq!(tick_step(0.9), 0.2);
    }

    #[test]
    fn renders_every_series_with_gaps_and_dashes() {
        let chart = |title: &str| Chart {
            title: title.into(),
            series: vec![
                Series {
                    label: "two-phase critical".into(),
                    color: "#1f77b4",
                    dashed: false,
                    points: vec![Some(1.0), None, Some(3.0), Some(4.0)],
                },
                Series {
                    label: "floor <&>".into(),
                    color: "#444",
                    dashed: true,
                    points: vec![Some(0.5); 4],
                },
            ],
        };
        let labels: Vec<String> = ["64M", "256M", "1G", "2G"].map(String::from).into();
        let text = Labels {
            title: "t",
            x: "memory per unit",
            y: "stoppage (s)",
        };
        let svg = render(text, &labels, &[chart("idle"), chart("50M/s")]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        // Per chart: the gap splits the solid line in two, the floor is one.
        assert_eq!(svg.matches(r#"data-label="two-phase critical""#).count(), 4);
        assert_eq!(svg.matches("stroke-dasharray").count(), 2 + 1);
        assert!(svg.contains("floor &lt;&amp;&gt;"));
        assert!(svg.contains(">idle<") && svg.contains(">50M/s<") && svg.contains(">2G<"));
        assert!(svg.contains(">memory per unit<") && svg.contains(">stoppage (s)<"));
        assert!(svg.contains(">memory per unit<") && svg.contains(">stoppage (s)<"));
        assert_eq!(svg.matches("<circle").count(), 2 * 3);
    }
}
