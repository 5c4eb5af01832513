//! What every chart shares: colours and strokes, fonts, the SVG canvas, fitted ranges and
//! ticks, markers, and the legend column.

use std::error::Error as StdError;

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::labels;

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

/// A marker's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Circle,
    Square,
}

pub(crate) type DrawResult = Result<(), Box<dyn StdError>>;
pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Font sizes as plotters counts them (the SVG's `font-size` is this ÷ 1.24).
pub(super) const TEXT: f64 = 15.0;
pub(super) const SMALL: f64 = 13.5;
/// The pixel height of [`TEXT`] and [`SMALL`] text.
pub(super) const TEXT_PX: f64 = TEXT / 1.24;
pub(super) const SMALL_PX: f64 = SMALL / 1.24;
pub(crate) const HEIGHT: u32 = 440;

pub(crate) fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

pub(super) fn font(size: f64) -> TextStyle<'static> {
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

/// `lo..hi` of the finite `values` with a 6% margin on each side, at least 1 tall, never below 0
/// for non-negative data; `0..1` without values.
pub(crate) fn fitted(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    if lo > hi {
        return 0.0..1.0;
    }
    // At least 1 unit tall, so that near-equal values get no ticks finer than their labels.
    let margin = (0.06 * (hi - lo)).max(0.5 - (hi - lo) / 2.0);
    let floor = if lo >= 0.0 { 0.0 } else { f64::MIN };
    (lo - margin).max(floor)..hi + margin
}

/// Tick values for a log axis over `lo..hi`: the 1-2-5 steps of each decade; where the range is
/// too narrow for three of those, every integer multiple of the decade; narrower still, even
/// 1-2-5 steps as on a linear axis.
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi.is_finite() && lo < hi) {
        return Vec::new();
    }
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
    if fine.len() >= 3 {
        return fine;
    }
    let raw = (hi - lo) / 4.0;
    let decade = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * decade).find(|s| *s >= raw).unwrap_or(10.0 * decade);
    let first = (lo / step).ceil() as i64;
    (first..).map(|i| i as f64 * step).take_while(|v| *v <= hi).collect()
}

/// The axes every chart draws: titles, tick labels by [`tick_label`], a light grid.
pub(super) fn styled_mesh<'m, 'a, 'b, X, Y, DB: DrawingBackend>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
    x_label: &str,
    y_label: &str,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    fn tick(v: &f64) -> String {
        tick_label(*v)
    }
    mesh.x_desc(x_label)
        .y_desc(y_label)
        .label_style(font(SMALL))
        .axis_desc_style(font(TEXT))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(242, 242, 242))
        .max_light_lines(1)
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
            Key::Mark(shape, filled, c) => draw_mark(area, (23, y), *shape, *filled, *c)?,
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

/// Marker half-size in pixels.
pub(super) const R: i32 = 5;

pub(super) fn draw_mark(area: &Area, (x, y): (i32, i32), shape: Shape, filled: bool, c: Rgb) -> DrawResult {
    let (style, inner) =
        if filled { (rgb(c).filled(), None) } else { (rgb(c).stroke_width(2), Some(WHITE.filled())) };
    match shape {
        Shape::Circle => {
            if let Some(white) = inner {
                area.draw(&Circle::new((x, y), R, white))?;
            }
            area.draw(&Circle::new((x, y), R, style))?;
        }
        Shape::Square => {
            let corners = [(x - R + 1, y - R + 1), (x + R - 1, y + R - 1)];
            if let Some(white) = inner {
                area.draw(&Rectangle::new(corners, white))?;
            }
            area.draw(&Rectangle::new(corners, style))?;
        }
    }
    Ok(())
}
