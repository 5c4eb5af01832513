//! Every chart seqkd draws, through one module: a model's `loss.svg`, the report's `curves.svg`
//! and `bleu-speed.svg`. The caller says *what* to draw as plain data ([`Panel`]s of [`Line`]s,
//! a [`Scatter`] of [`Mark`]s); plotters lays it out as SVG, with ticks and a grid on every axis,
//! log axes where asked, and the legend in its own column beside the plots, never on them; and
//! [`raster`] turns that same SVG into the PNG beside it ([`write_svg_and_png`]).

mod labels;
mod raster;
mod scatter;

use std::error::Error as StdError;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub use raster::{fonts_available, png, write_svg_and_png, PNG_SCALE};
pub use scatter::{pareto_front, scatter_chart, Mark, Scatter, Shape};

/// A colour, red-green-blue.
pub type Rgb = [u8; 3];

pub const BLACK: Rgb = [0, 0, 0];
pub const GREY: Rgb = [127, 127, 127];
/// Colours for the series after the teacher (black) and the baseline (grey): matplotlib's tab10
/// without its grey, distinct for most colour-blind readers.
pub const PALETTE: [Rgb; 9] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [188, 189, 34],
    [23, 190, 207],
];

/// How a line is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stroke {
    pub colour: Rgb,
    pub width: u32,
    pub dashed: bool,
    /// A dot at every point (for sparse series such as validation scores).
    pub dots: bool,
}

impl Stroke {
    pub fn solid(colour: Rgb) -> Self {
        Stroke { colour, width: 2, dashed: false, dots: false }
    }
}

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

pub(crate) type DrawResult = Result<(), Box<dyn StdError>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Font sizes as plotters counts them (the SVG's `font-size` is this ÷ 1.24).
const TEXT: f64 = 15.0;
const SMALL: f64 = 13.5;
/// The pixel height of [`TEXT`] and [`SMALL`] text.
const TEXT_PX: f64 = TEXT / 1.24;
const SMALL_PX: f64 = SMALL / 1.24;
pub(crate) const HEIGHT: u32 = 440;

pub(crate) fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

fn font(size: f64) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&RGBColor(30, 30, 30))
}

/// An SVG of `size` on white, drawn by `draw`.
pub(crate) fn svg(size: (u32, u32), draw: impl FnOnce(&Area) -> DrawResult) -> std::io::Result<String> {
    let io = |e: Box<dyn StdError>| std::io::Error::other(format!("drawing a chart: {e}"));
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| io(e.into()))?;
        draw(&root).map_err(io)?;
        root.present().map_err(|e| io(e.into()))?;
    }
    Ok(out)
}

/// `lo..hi` of `values` with a 6% margin on each side (never below 0 for non-negative data);
/// `0..1` without values.
pub(crate) fn fitted(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    if lo > hi {
        return 0.0..1.0;
    }
    let margin = if hi > lo { 0.06 * (hi - lo) } else { 0.5f64.max(0.05 * hi.abs()) };
    let floor = if lo >= 0.0 { 0.0 } else { f64::MIN };
    (lo - margin).max(floor)..hi + margin
}

/// Tick values for a log axis over `lo..hi`: the 1-2-5 steps of each decade; where the range is
/// too narrow for three of those, every integer multiple of the decade; narrower still, even
/// 1-2-5 steps as on a linear axis.
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let ticks = |mantissas: &[f64]| -> Vec<f64> {
        let (e0, e1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        (e0..=e1)
            .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
            .filter(|v| (lo..=hi).contains(v))
            .collect()
    };
    let coarse = ticks(&[1.0, 2.0, 5.0]);
    if coarse.len() >= 3 {
        return coarse;
    }
    let fine = ticks(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    if fine.len() >= 3 || hi <= lo || hi.is_nan() || lo.is_nan() {
        return fine;
    }
    let raw = (hi - lo) / 4.0;
    let decade = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * decade).find(|s| *s >= raw).unwrap_or(10.0 * decade);
    let first = (lo / step).ceil() as i64;
    (first..).map(|i| i as f64 * step).take_while(|v| *v <= hi).collect()
}

/// A tick label: `20k` for round thousands from 10,000, whole numbers without decimals, others
/// with up to two.
pub(crate) fn tick_label(v: f64) -> String {
    if v.abs() >= 10_000.0 && (v / 1000.0).fract() == 0.0 {
        format!("{}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A legend entry: the key drawn before its text.
pub(crate) enum Key {
    Line(Stroke),
    Mark(Shape, bool, Rgb),
    Heading,
}

/// The legend column: entries top to bottom from `y0`.
pub(crate) fn legend(area: &Area, entries: &[(Key, String)], y0: i32) -> DrawResult {
    let step = (SMALL_PX * 1.7) as i32;
    for (i, (key, text)) in entries.iter().enumerate() {
        let y = y0 + step * i as i32;
        let x_text = match key {
            Key::Heading => 8,
            _ => 44,
        };
        match key {
            Key::Line(s) => {
                let style = rgb(s.colour).stroke_width(s.width);
                if s.dashed {
                    area.draw(&PathElement::new(vec![(8, y), (15, y)], style))?;
                    area.draw(&PathElement::new(vec![(21, y), (28, y)], style))?;
                    area.draw(&PathElement::new(vec![(34, y), (38, y)], style))?;
                } else {
                    area.draw(&PathElement::new(vec![(8, y), (38, y)], style))?;
                }
                if s.dots {
                    area.draw(&Circle::new((23, y), 3, rgb(s.colour).filled()))?;
                }
            }
            Key::Mark(shape, filled, c) => scatter::draw_mark(area, (23, y), *shape, *filled, *c)?,
            Key::Heading => {}
        }
        let size = if matches!(key, Key::Heading) { TEXT } else { SMALL };
        area.draw(&Text::new(text.clone(), (x_text, y), font(size).pos(Pos::new(HPos::Left, VPos::Center))))?;
    }
    Ok(())
}

/// The width of a legend column for `texts`.
pub(crate) fn legend_width<'a>(texts: impl Iterator<Item = &'a str>) -> u32 {
    let widest = texts.map(|t| labels::text_width(t, SMALL_PX)).fold(0.0, f64::max);
    (56.0 + widest).clamp(150.0, 360.0) as u32
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
/// for the right axis): dashed, or solid with a dot at each point when its stroke asks for them.
macro_rules! draw_line {
    ($chart:ident . $draw:ident, $line:expr) => {{
        let line: &Line = $line;
        let s = line.stroke;
        let style = rgb(s.colour).stroke_width(s.width);
        if s.dashed {
            $chart.$draw(DashedLineSeries::new(line.points.clone(), 7, 5, style))?;
        } else {
            $chart.$draw(LineSeries::new(line.points.clone(), style).point_size(if s.dots {
                3
            } else {
                0
            }))?;
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
    chart
        .configure_mesh()
        .x_desc(&p.x_label)
        .y_desc(&p.y_label)
        .x_labels(8)
        .y_labels(8)
        .label_style(font(SMALL))
        .axis_desc_style(font(TEXT))
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(242, 242, 242))
        .max_light_lines(1)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests;
