//! Small line charts as SVG, drawn with plotters: categorical x, linear y
//! from 0, several charts side by side sharing one y scale, the legend in
//! the first, so that they compare at a glance.

use plotters::prelude::*;

#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    /// `#rrggbb`.
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

/// The chart's labels: the title on top, `x` under each x axis (whose
/// categories are the `x_labels`), `y` beside the first y axis.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

const CHART_W: u32 = 360;
const CHART_H: u32 = 300;
const TITLE_H: u32 = 30;

/// `#rrggbb` as plotters' colour; black if it is not one.
fn rgb(hex: &str) -> RGBColor {
    let channel = |i: usize| {
        hex.get(i..i + 2)
            .and_then(|c| u8::from_str_radix(c, 16).ok())
            .unwrap_or(0)
    };
    RGBColor(channel(1), channel(3), channel(5))
}

/// The runs of consecutive values of `points`, as (x, y): a gap (None)
/// ends a run.
fn runs(points: &[Option<f64>]) -> Vec<Vec<(i32, f64)>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    for (x, point) in points.iter().enumerate() {
        match point {
            Some(y) => run.push((x as i32, *y)),
            None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// Renders `charts` side by side, the legend in the first.
pub fn render(labels: Labels<'_>, x_labels: &[String], charts: &[Chart]) -> String {
    let mut svg = String::new();
    if let Err(e) = draw(&mut svg, labels, x_labels, charts) {
        // The figures are printed as text too: the chart only shows them.
        eprintln!("relive-lab: drawing the chart: {e}");
    }
    svg
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(svg: &mut String, labels: Labels<'_>, x_labels: &[String], charts: &[Chart]) -> DrawResult {
    let width = CHART_W * charts.len().max(1) as u32;
    let root = SVGBackend::with_string(svg, (width, CHART_H + TITLE_H)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(labels.title, ("sans-serif", 16))?;
    let y_max = charts
        .iter()
        .flat_map(|c| &c.series)
        .flat_map(|s| s.points.iter().flatten())
        .fold(0.0_f64, |m, &y| m.max(y));
    let y_top = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let n = x_labels.len() as i32;
    let x_label = |x: &i32| {
        usize::try_from(*x)
            .ok()
            .and_then(|i| x_labels.get(i))
            .cloned()
            .unwrap_or_default()
    };
    for (i, (area, chart)) in root
        .split_evenly((1, charts.len().max(1)))
        .iter()
        .zip(charts)
        .enumerate()
    {
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(&chart.title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(45);
        let mut cartesian = builder.build_cartesian_2d(-1..n, 0.0..y_top)?;
        let mut mesh = cartesian.configure_mesh();
        mesh.x_labels(x_labels.len() + 2)
            .x_label_formatter(&x_label)
            .x_desc(labels.x)
            .light_line_style(WHITE);
        if i == 0 {
            mesh.y_desc(labels.y);
        }
        mesh.draw()?;
        for series in &chart.series {
            let color = rgb(series.color);
            let style = ShapeStyle::from(&color).stroke_width(2);
            for (j, run) in runs(&series.points).into_iter().enumerate() {
                let drawn = if series.dashed {
                    cartesian.draw_series(DashedLineSeries::new(run.clone(), 6, 4, style))?
                } else {
                    cartesian.draw_series(LineSeries::new(run.clone(), style))?;
                    cartesian.draw_series(
                        run.iter()
                            .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                    )?
                };
                if i == 0 && j == 0 {
                    drawn
                        .label(series.label.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
                }
            }
        }
        if i == 0 {
            cartesian
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 11))
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_splits_a_line_in_runs() {
        let runs = runs(&[Some(1.0), None, Some(3.0), Some(4.0), None]);
        assert_eq!(runs, vec![vec![(0, 1.0)], vec![(2, 3.0), (3, 4.0)]]);
        assert_eq!(rgb("#1f77b4"), RGBColor(0x1f, 0x77, 0xb4));
    }

    #[test]
    fn renders_every_chart_its_labels_and_the_legend() {
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
                    color: "#444444",
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
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        // plotters writes each text on a line of its own.
        let text = |t: &str| format!(">\n{t}\n<");
        for t in ["idle", "50M/s", "2G", "memory per unit", "stoppage (s)"] {
            assert!(svg.contains(&text(t)), "{t}: {svg}");
        }
        // The legend, once, with the escaped label.
        assert_eq!(svg.matches(&text("two-phase critical")).count(), 1);
        assert!(svg.contains(&text("floor &lt;&amp;&gt;")), "{svg}");
        // Three points per chart where the line has values.
        assert_eq!(svg.matches("<circle").count(), 2 * 3);
    }
}
