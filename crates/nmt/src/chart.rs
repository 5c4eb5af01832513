//! The SVG charts of a model directory (`loss.svg`) and of the report (`curves.svg`,
//! `bleu-speed.svg`): plain SVG written by hand, one frame for all of them; and their PNG
//! rasterisation ([`png`], [`write_svg_and_png`]) with `resvg`, for viewers that show no SVG.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use resvg::usvg::fontdb::Database;
use resvg::{tiny_skia, usvg};

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

/// Pixels per SVG unit of the PNGs [`write_svg_and_png`] writes: 2, so that their 11–12 px
/// text stays legible on high-density screens and when a viewer scales the image up.
pub const PNG_SCALE: f32 = 2.0;

/// Families tried, in order, for the charts' `sans-serif` text; failing all of them, the first
/// family of the first installed font.
const SANS_SERIF: [&str; 6] =
    ["DejaVu Sans", "Liberation Sans", "Noto Sans", "Arial", "Helvetica", "FreeSans"];

/// The system's fonts, loaded once per process, with the generic families the charts use mapped
/// to an installed family (fontdb maps `sans-serif` to Arial and `serif` to Times New Roman,
/// which a Linux machine rarely has, and text in a family with no font is left out).
fn system_fonts() -> Arc<Database> {
    static FONTS: OnceLock<Arc<Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = Database::new();
            db.load_system_fonts();
            let installed = |family: &str| db.faces().any(|f| f.families.iter().any(|(n, _)| n == family));
            let family =
                SANS_SERIF.iter().find(|f| installed(f)).map(|f| f.to_string()).or_else(|| {
                    db.faces().next().and_then(|f| f.families.first()).map(|(name, _)| name.clone())
                });
            match family {
                Some(family) => {
                    db.set_sans_serif_family(family.clone());
                    db.set_serif_family(family);
                }
                None => eprintln!("note: no system font found; the PNG charts are drawn without their text"),
            }
            Arc::new(db)
        })
        .clone()
}

/// Whether a font was found for the charts' text (without one the PNGs have no text).
pub fn fonts_available() -> bool {
    !system_fonts().is_empty()
}

/// `svg` rasterised to PNG bytes, `scale` pixels per SVG unit, with the system's fonts (see
/// [`system_fonts`]; with none installed the PNG is still made, without its text).
pub fn png(svg: &str, scale: f32) -> Result<Vec<u8>, String> {
    png_with_fonts(svg, scale, system_fonts())
}

fn png_with_fonts(svg: &str, scale: f32, fonts: Arc<Database>) -> Result<Vec<u8>, String> {
    let opt = usvg::Options { fontdb: fonts, ..Default::default() };
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| format!("invalid SVG: {e}"))?;
    let size = tree.size().to_int_size().scale_by(scale).ok_or("an empty SVG")?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("an empty SVG")?;
    resvg::render(&tree, tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| format!("encoding the PNG: {e}"))
}

/// Writes `svg` to `path` and its rasterisation at [`PNG_SCALE`] beside it (the same name with
/// `.png`), each atomically.
pub fn write_svg_and_png(path: &Path, svg: &str) -> std::io::Result<()> {
    seqkd_text::atomic_write(path, svg.as_bytes())?;
    let png = png(svg, PNG_SCALE).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    seqkd_text::atomic_write(&path.with_extension("png"), &png)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pixels of a PNG that are not the white background.
    fn drawn(png: &[u8]) -> (u32, u32, usize) {
        let pixmap = tiny_skia::Pixmap::decode_png(png).expect("a valid PNG");
        let ink =
            pixmap.pixels().iter().filter(|p| (p.red(), p.green(), p.blue()) != (255, 255, 255)).count();
        (pixmap.width(), pixmap.height(), ink)
    }

    /// `text` on a white 200 × 100 canvas, in the charts' font.
    fn text_only(text: &str) -> String {
        format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="10" y="50">{text}</text></svg>"#
        )
    }

    #[test]
    fn a_chart_rasterises_to_a_png_of_its_size_times_the_scale_with_its_lines_and_text() {
        let points = [(0.0, 1.0), (50.0, 3.0), (100.0, 2.0)];
        let svg = line_chart("step", "loss", &[("train", &points, "#1f77b4")]);
        let (w, h, ink) = drawn(&png(&svg, 1.0).unwrap());
        assert_eq!((w, h), (720, 400));
        assert!(ink > 1000, "{ink} non-white pixels: axes and the line at least");
        let (w2, h2, _) = drawn(&png(&svg, PNG_SCALE).unwrap());
        assert_eq!((w2, h2), (1440, 800));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.svg");
        write_svg_and_png(&path, &svg).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), svg);
        assert_eq!(drawn(&std::fs::read(path.with_extension("png")).unwrap()).0, 1440);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }

    #[test]
    fn text_is_drawn_with_a_system_font_and_left_out_without_one() {
        let svg = text_only("validation BLEU");
        let (_, _, blank) = drawn(&png(&text_only(""), 1.0).unwrap());
        assert_eq!(blank, 0, "a white canvas");
        // No font at all: still a valid PNG, without the text (and no panic).
        let (w, h, ink) = drawn(&png_with_fonts(&svg, 1.0, Arc::new(Database::new())).unwrap());
        assert_eq!((w, h, ink), (200, 100, 0));
        if fonts_available() {
            let (_, _, ink) = drawn(&png(&svg, 1.0).unwrap());
            assert!(ink > 50, "the text was drawn: {ink} non-white pixels");
        } else {
            eprintln!("no system font installed: the text-drawing check is skipped");
        }
    }

    #[test]
    fn an_invalid_svg_is_an_error() {
        assert!(png("<svg", 1.0).is_err());
    }
}
