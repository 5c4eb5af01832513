//! Line charts: [`Panel`]s of named [`Line`]s side by side, each with its own axes and, if
//! asked, a second y axis on a log scale; one legend for all of them in a column on the right.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::frame::{
    fitted, font, legend, legend_width, log_ticks, rgb, styled_mesh, svg, tick_label, Area, DrawResult, Key,
    Stroke,
};
use super::frame::{HEIGHT, SMALL, TEXT, TEXT_PX};

/// A named series of (x, y) points, in the legend under its name.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub stroke: Stroke,
}

/// One plot of a line chart: its own axes, and optionally a second y axis on the right, on a
/// log scale (for perplexities), with its own lines.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub lines: Vec<Line>,
    pub right: Option<(String, Vec<Line>)>,
    /// The panel's share of the chart's width (panels are laid out left to right).
    pub weight: f64,
}

/// Panels side by side, `width` pixels in all with the legend, which lists every line once (by
/// name, in the order they first appear) in a column on the right.
pub fn line_chart(panels: &[Panel], width: u32) -> std::io::Result<String> {
    let mut entries: Vec<(Key, String)> = Vec::new();
    for line in panels.iter().flat_map(|p| p.lines.iter().chain(p.right.iter().flat_map(|r| r.1.iter()))) {
        if !entries.iter().any(|(_, n)| *n == line.name) {
            entries.push((Key::Line(line.stroke), line.name.clone()));
        }
    }
    let legend_w = legend_width(entries.iter().map(|(_, n)| n.as_str()));
    let plots_w = width.saturating_sub(legend_w).max(200);
    let total: f64 = panels.iter().map(|p| p.weight.max(0.01)).sum();
    svg((plots_w + legend_w, HEIGHT), |root| {
        let (mut rest, legend_area) = root.split_horizontally(plots_w);
        for (i, panel) in panels.iter().enumerate() {
            let area = if i + 1 == panels.len() {
                rest.clone()
            } else {
                let (a, b) =
                    rest.split_horizontally((plots_w as f64 * panel.weight.max(0.01) / total) as u32);
                rest = b;
                a
            };
            draw_panel(&area, panel)?;
        }
        legend(&legend_area, &entries, 40)
    })
}

/// Draws the [`Line`] `$line` through `$chart.$draw` (`draw_series`, or `draw_secondary_series`
/// for the right axis): dashed or solid, with a filled dot at each point when its stroke asks.
macro_rules! draw_line {
    ($chart:ident . $draw:ident, $line:expr) => {{
        let line: &Line = $line;
        let s = line.stroke;
        let style = rgb(s.colour).stroke_width(s.width);
        if s.dashed {
            $chart.$draw(DashedLineSeries::new(line.points.clone(), 7, 5, style))?;
        } else {
            $chart.$draw(LineSeries::new(line.points.clone(), style))?;
        }
        if s.dots {
            $chart.$draw(line.points.iter().map(|&p| Circle::new(p, 3, rgb(s.colour).filled())))?;
        }
    }};
}

fn draw_panel(area: &Area, p: &Panel) -> DrawResult {
    let xs = p
        .lines
        .iter()
        .chain(p.right.iter().flat_map(|r| r.1.iter()))
        .flat_map(|l| l.points.iter().map(|q| q.0));
    let x_max = xs.fold(1.0f64, f64::max);
    let y = fitted(p.lines.iter().flat_map(|l| l.points.iter().map(|q| q.1)));
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&p.title, font(TEXT))
        .margin(12)
        .x_label_area_size(TEXT_PX as u32 * 4)
        .y_label_area_size(TEXT_PX as u32 * 5);
    if p.right.is_some() {
        builder.right_y_label_area_size(TEXT_PX as u32 * 5);
    }
    let chart = builder.build_cartesian_2d(0.0..x_max * 1.02, y)?;
    let Some((label, right)) = &p.right else {
        let mut chart = chart;
        mesh(&mut chart, p)?;
        for line in &p.lines {
            draw_line!(chart.draw_series, line);
        }
        return Ok(());
    };
    // Perplexities: a log axis from below the least to above the greatest. The secondary axis
    // is set before the mesh is drawn, so that the right label area shows its ticks alone.
    let positive =
        right.iter().flat_map(|l| l.points.iter().map(|q| q.1)).filter(|v| *v > 0.0 && v.is_finite());
    let (lo, hi) = positive.fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    let (lo, hi) = if lo > hi { (1.0, 10.0) } else { (lo / 1.15, hi * 1.15) };
    let mut dual =
        chart.set_secondary_coord(0.0..x_max * 1.02, (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)));
    mesh(&mut dual, p)?;
    dual.configure_secondary_axes()
        .y_desc(label)
        .label_style(font(SMALL))
        .axis_desc_style(font(TEXT))
        .y_label_formatter(&|v| tick_label(*v))
        .draw()?;
    for line in &p.lines {
        draw_line!(dual.draw_series, line);
    }
    for line in right {
        draw_line!(dual.draw_secondary_series, line);
    }
    Ok(())
}

/// The panel's axes: ticks and labels on both, a light grid, the axis titles.
fn mesh(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    p: &Panel,
) -> DrawResult {
    styled_mesh(&mut chart.configure_mesh(), &p.x_label, &p.y_label).x_labels(8).y_labels(8).draw()?;
    Ok(())
}
