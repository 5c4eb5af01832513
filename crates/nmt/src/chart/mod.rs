//! Every chart seqkd draws, through one module: a model's `loss.svg`, the report's `curves.svg`
//! and `bleu-speed.svg`. The caller says *what* to draw as plain data ([`Panel`]s of [`Line`]s,
//! a [`Scatter`] of [`Mark`]s); plotters lays it out as SVG ([`lines`], [`scatter`], on the
//! shared [`frame`]), with ticks and a grid on every axis, log axes where asked, and the legend
//! in its own column beside the plots, never on them; and [`raster`] turns that same SVG into the
//! PNG beside it ([`write_svg_and_png`]).

mod frame;
mod labels;
mod lines;
mod raster;
mod scatter;

pub use frame::{Rgb, Shape, Stroke, BLACK, GREY, PALETTE};
pub use lines::{line_chart, Line, Panel};
pub use raster::{fonts_available, png, write_svg_and_png, PNG_SCALE};
pub use scatter::{pareto_front, scatter_chart, Mark, Scatter};

#[cfg(test)]
mod tests;
