//! A scatter chart on a log x axis, for BLEU against decoding speed: each point a [`Mark`]
//! (its shape, filled or hollow, says how it was decoded), the Pareto front of the points as a
//! dashed line, a short tag beside every point where one fits without colliding
//! ([`super::labels`]), and a legend column that spells out tags and shapes.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::frame::{
    draw_mark, font, legend, legend_width, log_ticks, rgb, styled_mesh, svg, Area, DrawResult, Key,
};
use super::frame::{Rgb, Shape, Stroke, GREY, HEIGHT, R, SMALL, SMALL_PX};
use super::labels::{self, Rect};

/// One point.
#[derive(Debug, Clone)]
pub struct Mark {
    pub x: f64,
    pub y: f64,
    pub colour: Rgb,
    pub shape: Shape,
    pub filled: bool,
    /// The short text beside the point (e.g. the model's number in the legend).
    pub tag: String,
}

/// A scatter chart: its marks, and the legend's two parts: what each colour and tag is
/// (`series`: text and colour) and what each kind of marker means (`kinds`).
#[derive(Debug, Clone, Default)]
pub struct Scatter {
    pub x_label: String,
    pub y_label: String,
    pub marks: Vec<Mark>,
    pub series_heading: String,
    pub series: Vec<(String, Rgb)>,
    pub kinds: Vec<(Shape, bool, String)>,
    /// The legend's text for the dashed Pareto front.
    pub front_label: String,
}

/// The points no other point beats on both axes (at least as far right and as high, and
/// strictly so on one), by increasing x: the best y to be had at each x.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let dominated =
        |&(x, y): &(f64, f64)| points.iter().any(|&(ox, oy)| ox >= x && oy >= y && (ox > x || oy > y));
    let mut front: Vec<usize> = (0..points.len()).filter(|&i| !dominated(&points[i])).collect();
    front.sort_by(|&a, &b| points[a].0.total_cmp(&points[b].0));
    front.dedup_by(|a, b| points[*a] == points[*b]);
    front
}

/// The chart as SVG, `width` pixels wide with its legend.
pub fn scatter_chart(s: &Scatter, width: u32) -> std::io::Result<String> {
    let mut entries: Vec<(Key, String)> = vec![(Key::Heading, s.series_heading.clone())];
    entries.extend(s.series.iter().map(|(t, c)| (Key::Mark(Shape::Circle, true, *c), t.clone())));
    entries.push((Key::Heading, String::new()));
    entries.push((Key::Heading, "Markers".into()));
    entries.extend(
        s.kinds.iter().map(|(shape, filled, t)| (Key::Mark(*shape, *filled, [60, 60, 60]), t.clone())),
    );
    let front_stroke = Stroke { colour: GREY, width: 1, dashed: true, dots: false };
    entries.push((Key::Line(front_stroke), s.front_label.clone()));
    let legend_w = legend_width(entries.iter().map(|(_, t)| t.as_str()));
    let plot_w = width.saturating_sub(legend_w).max(300);
    svg((plot_w + legend_w, HEIGHT + 40), |root| {
        let (plot_area, legend_area) = root.split_horizontally(plot_w);
        draw_plot(root, &plot_area, s)?;
        legend(&legend_area, &entries, 40)
    })
}

fn draw_plot(root: &Area, area: &Area, s: &Scatter) -> DrawResult {
    // A log axis has no place for x ≤ 0, and a non-finite point has none at all.
    let marks: Vec<&Mark> =
        s.marks.iter().filter(|m| m.x > 0.0 && m.x.is_finite() && m.y.is_finite()).collect();
    let xs = marks.iter().map(|m| m.x);
    let (x_lo, x_hi) = xs.fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(x), h.max(x)));
    let (x_lo, x_hi) = if x_lo > x_hi { (1.0, 10.0) } else { (x_lo / 1.3, x_hi * 1.3) };
    let y = super::frame::fitted(marks.iter().map(|m| m.y));
    // Room above the highest points for their tags.
    let y = y.start..y.end + 0.04 * (y.end - y.start);
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d((x_lo..x_hi).log_scale().with_key_points(log_ticks(x_lo, x_hi)), y)?;
    styled_mesh(&mut chart.configure_mesh(), &s.x_label, &s.y_label).y_labels(10).draw()?;
    let points: Vec<(f64, f64)> = marks.iter().map(|m| (m.x, m.y)).collect();
    let front = pareto_front(&points);
    chart.draw_series(DashedLineSeries::new(
        front.iter().map(|&i| points[i]).collect::<Vec<_>>(),
        6,
        4,
        rgb(GREY).stroke_width(1),
    ))?;
    let px: Vec<(i32, i32)> = points.iter().map(|p| chart.backend_coord(p)).collect();
    for (m, &at) in marks.iter().zip(&px) {
        draw_mark(root, at, m.shape, m.filled, m.colour)?;
    }
    // Tags: the front's first, then the rest.
    let mut order: Vec<usize> = front.clone();
    order.extend((0..marks.len()).filter(|i| !front.contains(i)));
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let bounds = Rect { x0: xr.start as f64, y0: yr.start as f64, x1: xr.end as f64, y1: yr.end as f64 };
    let anchors: Vec<(f64, f64)> = order.iter().map(|&i| (px[i].0 as f64, px[i].1 as f64)).collect();
    let sizes: Vec<(f64, f64)> =
        order.iter().map(|&i| (labels::text_width(&marks[i].tag, SMALL_PX) + 2.0, SMALL_PX + 2.0)).collect();
    for (&i, rect) in order.iter().zip(labels::place(&anchors, &sizes, (R + 1) as f64, bounds)) {
        let Some(r) = rect else { continue };
        let at = (r.x0 as i32 + 1, ((r.y0 + r.y1) / 2.0) as i32);
        let colour = rgb(marks[i].colour);
        let style = font(SMALL).color(&colour).pos(Pos::new(HPos::Left, VPos::Center));
        root.draw(&Text::new(marks[i].tag.clone(), at, style))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pareto_front_keeps_the_points_nothing_beats_on_both_axes() {
        let points = [(10.0, 60.0), (20.0, 58.0), (15.0, 55.0), (40.0, 50.0), (40.0, 49.0), (5.0, 59.0)];
        // (15, 55) is beaten by (20, 58); (40, 49) by (40, 50); (5, 59) by (10, 60).
        assert_eq!(pareto_front(&points), vec![0, 1, 3]);
        assert_eq!(pareto_front(&[]), Vec::<usize>::new());
        assert_eq!(pareto_front(&[(1.0, 1.0), (1.0, 1.0)]), vec![0], "a duplicate point counts once");
    }
}
