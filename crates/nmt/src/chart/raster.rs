//! The PNG beside every chart's SVG: the same SVG rasterised with `resvg` ([`png`],
//! [`write_svg_and_png`]), its text in a system font, for viewers that show no SVG.
//!
//! Why not plotters' own bitmap backend: its text needs either font-kit (the system's FreeType
//! and Fontconfig C libraries) or a font file bundled and registered by hand, and draws lines
//! without anti-aliasing; resvg finds the system fonts in pure Rust (fontdb) and renders the very
//! SVG a browser shows, so the two files cannot drift apart.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use resvg::usvg::fontdb::Database;
use resvg::{tiny_skia, usvg};

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
        let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="720" height="400"><rect width="100%" height="100%" fill="white"/><polyline fill="none" stroke="#1f77b4" stroke-width="3" points="60,340 360,100 660,200"/><line x1="60" y1="340" x2="660" y2="340" stroke="black"/></svg>"##;
        let (w, h, ink) = drawn(&png(svg, 1.0).unwrap());
        assert_eq!((w, h), (720, 400));
        assert!(ink > 1000, "{ink} non-white pixels: axes and the line at least");
        let (w2, h2, _) = drawn(&png(svg, PNG_SCALE).unwrap());
        assert_eq!((w2, h2), (1440, 800));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.svg");
        write_svg_and_png(&path, svg).unwrap();
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
