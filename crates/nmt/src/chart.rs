//! The SVG charts of a model directory (`loss.svg`) and of the report (`curves.svg`,
//! `bleu-speed.svg`): plain SVG written by hand, one frame for all of them.

use std::fmt::Write as _;

/// An SVG of `w` × `h` on white, with the x axis along the bottom margin `m` and the y axis along
/// the left one; the caller writes the rest and closes it with `</svg>`.
pub fn frame(w: f64, h: f64, m: f64, font_size: u32) -> String {
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="{font_size}"><rect width="100%" height="100%" fill="white"/>"#
    );
    let _ = write!(
        out,
        r#"<line x1="{m}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{m}" y1="{m}" x2="{m}" y2="{}" stroke="black"/>"#,
        h - m,
        w - m,
        h - m,
        h - m
    );
    out
}

/// A named polyline: (legend, points, colour).
pub type Series<'a> = (&'a str, &'a [(f64, f64)], &'a str);

/// A line chart of `series` from (0, 0), with a legend at the top left.
pub fn line_chart(x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (w, h, m) = (720.0, 400.0, 60.0);
    let points = series.iter().flat_map(|s| s.1.iter());
    let (mut x_max, mut y_max) = (1.0f64, 0.1f64);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    let sx = |x: f64| m + x / x_max * (w - 2.0 * m);
    let sy = |y: f64| h - m - y / y_max * (h - 2.0 * m);
    let mut out = frame(w, h, m, 12);
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{x_label} (max {x_max:.0})</text><text x="10" y="{}">{y_label} {y_max:.2}</text><text x="10" y="{}">0</text>"#,
        w / 2.0,
        h - 15.0,
        m,
        h - m
    );
    for (i, (name, pts, color)) in series.iter().enumerate() {
        let path: Vec<String> = pts.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" fill="{color}">{name}</text>"#,
            m + 10.0 + 200.0 * (i / 4) as f64,
            m - 35.0 + 12.0 * (i % 4) as f64
        );
    }
    out.push_str("</svg>\n");
    out
}
