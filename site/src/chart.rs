//! The full-family speed view, drawn with plotters as SVG. The server draws it for the first paint and the
//! dashboard island draws it again in the browser when a filter changes: one function, both sides.

use crate::model::{fmt_tps, SpeedKind, SpeedPoint};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// Which points the visitor wants to see. `None` means "all".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SpeedFilter {
    pub gpu: Option<String>,
    pub family: Option<String>,
    pub batch: Option<u32>,
    pub kind: Option<SpeedKind>,
}

impl SpeedFilter {
    pub fn keeps(&self, point: &SpeedPoint) -> bool {
        self.gpu.as_ref().is_none_or(|g| *g == point.gpu)
            && self.family.as_ref().is_none_or(|f| *f == point.family)
            && self.batch.is_none_or(|b| b == point.batch)
            && self.kind.is_none_or(|k| k == point.kind)
    }

    pub fn apply<'a>(&self, points: &'a [SpeedPoint]) -> Vec<&'a SpeedPoint> {
        points.iter().filter(|p| self.keeps(p)).collect()
    }
}

/// Colours with at least 4.5:1 contrast on white, and a fill for planning bars that is visibly not a measurement.
const MEASURED: RGBColor = RGBColor(0x0b, 0x5d, 0x57);
const PLANNING_EDGE: RGBColor = RGBColor(0x6b, 0x4e, 0x16);
const PLANNING_FILL: RGBColor = RGBColor(0xf3, 0xe3, 0xbf);
const INK: RGBColor = RGBColor(0x1c, 0x24, 0x2b);

pub const CHART_WIDTH: u32 = 820;
const ROW_HEIGHT: u32 = 30;

/// Draws the bars for `points` as an SVG document. An empty selection draws nothing: the caller says so in words.
pub fn speed_svg(points: &[&SpeedPoint]) -> String {
    if points.is_empty() {
        return String::new();
    }
    let height = 70 + ROW_HEIGHT * points.len() as u32;
    let mut svg = String::new();
    if let Err(error) = draw(points, height, &mut svg) {
        return format!("<p class=\"state\">The chart could not be drawn: {error}</p>");
    }
    // plotters writes a fixed size; let CSS scale it to the column while keeping the aspect.
    svg.replacen(
        &format!("width=\"{CHART_WIDTH}\" height=\"{height}\""),
        "role=\"img\" aria-labelledby=\"speed-chart-title\" preserveAspectRatio=\"xMinYMin meet\"",
        1,
    )
}

fn draw(
    points: &[&SpeedPoint],
    height: u32,
    out: &mut String,
) -> Result<(), Box<dyn std::error::Error>> {
    let max = points
        .iter()
        .map(|p| p.value)
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.22;
    // Plotters counts rows bottom-up; draw the first point at the top.
    let row = |i: usize| points.len() - 1 - i;
    let labels: Vec<String> = (0..points.len())
        .map(|r| bar_label(points[row(r)]))
        .collect();
    let root = SVGBackend::with_string(out, (CHART_WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(52)
        .y_label_area_size(250)
        .build_cartesian_2d(0.0..max, (0..points.len()).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_max_light_lines(1)
        .bold_line_style(RGBColor(0xe6, 0xe8, 0xeb))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .axis_style(INK)
        .label_style(("sans-serif", 17).into_font().color(&INK))
        .x_desc("tokens/s (measured) · planning index (roofline tokens/s)")
        .y_label_formatter(&|value| match value {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_labels(points.len())
        .draw()?;

    let bar = |i: usize| (SegmentValue::Exact(i), SegmentValue::Exact(i + 1));
    for (i, point) in points.iter().enumerate() {
        let i = row(i);
        let (low, high) = bar(i);
        let rect = |style: ShapeStyle| {
            Rectangle::new([(0.0, low.clone()), (point.value, high.clone())], style)
        };
        match point.kind {
            SpeedKind::Measured => chart.draw_series([rect(MEASURED.filled())])?,
            SpeedKind::Planning => {
                chart.draw_series([rect(PLANNING_FILL.filled())])?;
                chart.draw_series([rect(PLANNING_EDGE.stroke_width(2))])?
            }
        };
        let text = match point.kind {
            SpeedKind::Measured => format!("{} tok/s measured", fmt_tps(point.value)),
            SpeedKind::Planning => format!("{} planning", fmt_tps(point.value)),
        };
        chart.draw_series([Text::new(
            text,
            (point.value + max * 0.01, SegmentValue::CenterOf(i)),
            ("sans-serif", 16).into_font().color(&INK),
        )])?;
    }
    root.present()?;
    Ok(())
}

/// "E4B · H200", with the batch where it is not the batch-1 planning case.
fn bar_label(point: &SpeedPoint) -> String {
    let gpu = point.gpu.strip_prefix("NVIDIA ").unwrap_or(&point.gpu);
    if point.batch == 1 {
        format!("{} · {gpu}", point.family)
    } else {
        format!("{} · {gpu} · batch {}", point.family, point.batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(family: &str, gpu: &str, kind: SpeedKind, value: f64) -> SpeedPoint {
        SpeedPoint {
            family: family.into(),
            gpu: gpu.into(),
            batch: 1,
            kind,
            value,
            run_id: None,
        }
    }

    #[test]
    fn filter_keeps_only_matching_points() {
        let points = [
            point("E4B", "L40S", SpeedKind::Measured, 100.0),
            point("E4B", "H100", SpeedKind::Planning, 200.0),
            point("31B", "H100", SpeedKind::Planning, 30.0),
        ];
        let filter = SpeedFilter {
            gpu: Some("H100".into()),
            ..Default::default()
        };
        assert_eq!(filter.apply(&points).len(), 2);
        let filter = SpeedFilter {
            kind: Some(SpeedKind::Measured),
            ..Default::default()
        };
        assert_eq!(filter.apply(&points)[0].gpu, "L40S");
    }

    /// The `y` of the `<text>` element whose content starts with `label`.
    fn y_of(svg: &str, label: &str) -> f64 {
        let at = svg
            .find(&format!(">\n{label}"))
            .unwrap_or_else(|| panic!("no label {label}"));
        let start = svg[..at].rfind(" y=\"").unwrap() + 4;
        svg[start..].split('"').next().unwrap().parse().unwrap()
    }

    #[test]
    fn svg_draws_one_bar_per_point_and_marks_planning() {
        let points = [
            point("E4B", "L40S", SpeedKind::Measured, 123.4),
            point("31B", "H100", SpeedKind::Planning, 45.0),
        ];
        let svg = speed_svg(&points.iter().collect::<Vec<_>>());
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("viewBox").count(), 1, "{svg}");
        assert!(
            svg.starts_with("<svg role=\"img\""),
            "scales to its column: {svg}"
        );
        assert!(svg.contains("123.4 tok/s measured"));
        assert!(svg.contains("45.0 planning\n"), "{svg}");
        assert!(svg.contains("E4B · L40S"));
        // the first point is drawn on top
        assert!(y_of(&svg, "E4B · L40S") < y_of(&svg, "31B · H100"), "{svg}");
        assert!(speed_svg(&[]).is_empty());
    }
}
