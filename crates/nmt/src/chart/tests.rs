use super::frame::{fitted, log_ticks, tick_label, HEIGHT};
use super::*;

/// The SVG parses, and its PNG is `width × height` at [`PNG_SCALE`].
fn rasterises(svg: &str) -> resvg::tiny_skia::Pixmap {
    let bytes = png(svg, PNG_SCALE).expect("a valid SVG");
    resvg::tiny_skia::Pixmap::decode_png(&bytes).expect("a valid PNG")
}

/// Pixels of the PNG within a small distance of `c` (anti-aliasing blends the edges only).
fn pixels_of(pixmap: &resvg::tiny_skia::Pixmap, c: Rgb) -> usize {
    let near = |a: u8, b: u8| (a as i32 - b as i32).abs() <= 6;
    pixmap
        .pixels()
        .iter()
        .filter(|p| near(p.red(), c[0]) && near(p.green(), c[1]) && near(p.blue(), c[2]))
        .count()
}

/// Whether the SVG has a `<text>` element reading `t` (plotters writes the text on its own line).
fn has_text(svg: &str, t: &str) -> bool {
    svg.contains(&format!("\n{t}\n</text>"))
}

fn hex(c: Rgb) -> String {
    format!("#{:02X}{:02X}{:02X}", c[0], c[1], c[2])
}

fn line(name: &str, colour: Rgb, points: &[(f64, f64)]) -> Line {
    Line { name: name.into(), points: points.to_vec(), stroke: Stroke::solid(colour) }
}

#[test]
fn a_line_chart_draws_every_series_with_its_legend_ticks_and_both_panels() {
    let a = line("from scratch", PALETTE[0], &[(0.0, 5.0), (500.0, 40.0), (1000.0, 55.0)]);
    let b = line("fine-tuned", PALETTE[1], &[(0.0, 55.0), (50.0, 57.0), (100.0, 58.0)]);
    let panels = [
        Panel {
            title: "left".into(),
            x_label: "update".into(),
            y_label: "BLEU".into(),
            lines: vec![a],
            weight: 0.6,
            ..Default::default()
        },
        Panel {
            title: "right".into(),
            x_label: "fine-tuning update".into(),
            y_label: "BLEU".into(),
            lines: vec![b],
            weight: 0.4,
            ..Default::default()
        },
    ];
    let svg = line_chart(&panels, 1000).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
    for text in ["from scratch", "fine-tuned", "left", "right", "update", "fine-tuning update"] {
        assert!(has_text(&svg, text), "{text} missing");
    }
    // Ticks beyond the two ends on the x axis, and the fitted y range: 5 … 55 with a margin.
    for tick in ["200", "400", "600", "800", "1000"] {
        assert!(has_text(&svg, tick), "x tick {tick} missing");
    }
    for c in [PALETTE[0], PALETTE[1]] {
        assert!(svg.matches(&format!("stroke=\"{}\"", hex(c))).count() >= 2, "the line and its legend key");
    }
    let pixmap = rasterises(&svg);
    assert_eq!((pixmap.width(), pixmap.height()), (2 * svg_width(&svg), 2 * HEIGHT));
    for c in [PALETTE[0], PALETTE[1]] {
        assert!(pixels_of(&pixmap, c) > 300, "{} drawn: {}", hex(c), pixels_of(&pixmap, c));
    }
}

/// The `width` attribute of a plotters SVG.
fn svg_width(svg: &str) -> u32 {
    let at = svg.find("width=\"").expect("a width") + 7;
    svg[at..].split('"').next().unwrap().parse().unwrap()
}

#[test]
fn the_right_axis_is_a_log_scale_with_its_own_line() {
    let panel = Panel {
        title: "loss".into(),
        x_label: "update".into(),
        y_label: "loss".into(),
        lines: vec![line("training loss", PALETTE[0], &[(1.0, 6.0), (5.0, 3.0), (10.0, 2.0)])],
        right: Some((
            "perplexity".into(),
            vec![line("validation perplexity", PALETTE[3], &[(5.0, 300.0), (10.0, 12.0)])],
        )),
        weight: 1.0,
    };
    let svg = line_chart(&[panel], 800).unwrap();
    // 1-2-5 ticks between 12/1.15 and 300·1.15 (the x axis, 0 … 10, and the loss axis have none of them).
    for tick in ["20", "50", "100", "200"] {
        assert!(has_text(&svg, tick), "log tick {tick} missing");
    }
    assert!(has_text(&svg, "validation perplexity") && has_text(&svg, "perplexity"));
    assert!(pixels_of(&rasterises(&svg), PALETTE[3]) > 100);
}

#[test]
fn fitted_ranges_and_ticks() {
    let r = fitted([61.0, 68.0].into_iter());
    assert!((r.start - 60.58).abs() < 1e-9 && (r.end - 68.42).abs() < 1e-9, "{r:?}");
    assert_eq!(fitted([0.5, 10.0].into_iter()).start, 0.0, "non-negative data stays non-negative");
    assert_eq!(fitted(std::iter::empty()), 0.0..1.0);
    assert_eq!(fitted([3.0].into_iter()), 2.5..3.5, "a single value gets a range");
    assert_eq!(log_ticks(4000.0, 90000.0), vec![5000.0, 10000.0, 20000.0, 50000.0]);
    assert_eq!(log_ticks(11.0, 19.0), vec![12.0, 14.0, 16.0, 18.0], "within a decade: even steps");
    assert_eq!(log_ticks(2.5, 7.5), vec![3.0, 4.0, 5.0, 6.0, 7.0]);
    assert_eq!(tick_label(20000.0), "20k");
    assert_eq!(tick_label(5000.0), "5000");
    assert_eq!(tick_label(57.5), "57.5");
    assert_eq!(tick_label(0.25), "0.25");
}

#[test]
fn a_scatter_marks_every_point_tags_them_and_draws_the_pareto_front() {
    let mark = |x: f64, y: f64, c: Rgb, shape: Shape, filled: bool, tag: &str| Mark {
        x,
        y,
        colour: c,
        shape,
        filled,
        tag: tag.into(),
    };
    let marks = vec![
        mark(6000.0, 61.0, BLACK, Shape::Square, true, "1"),
        mark(27000.0, 60.8, BLACK, Shape::Circle, true, "1"),
        mark(52000.0, 55.6, GREY, Shape::Circle, true, "2"),
        mark(104000.0, 55.6, GREY, Shape::Circle, false, "2"),
        mark(54000.0, 58.5, PALETTE[0], Shape::Circle, true, "3"),
    ];
    let scatter = Scatter {
        x_label: "source words/s (log scale)".into(),
        y_label: "test BLEU".into(),
        marks,
        series_heading: "Models".into(),
        series: vec![
            ("1  Teacher".into(), BLACK),
            ("2  Baseline".into(), GREY),
            ("3  Seq-KD".into(), PALETTE[0]),
        ],
        kinds: vec![(Shape::Circle, true, "K=1".into()), (Shape::Square, true, "K=5".into())],
        front_label: "Pareto front (best BLEU at each speed)".into(),
    };
    let svg = scatter_chart(&scatter, 1000).unwrap();
    for text in
        ["1  Teacher", "3  Seq-KD", "Markers", "K=5", "Pareto front (best BLEU at each speed)", "test BLEU"]
    {
        assert!(has_text(&svg, text), "{text} missing");
    }
    // Log-x ticks and a y axis fitted to 55.6 … 61 (not from 0).
    for tick in ["5000", "10k", "20k", "50k", "100k", "56", "60"] {
        assert!(has_text(&svg, tick), "tick {tick} missing");
    }
    assert!(!has_text(&svg, "0"), "the BLEU axis does not start at 0");
    // Every point tagged (they are far apart): 1, 1, 2, 2, 3 beside the markers.
    for (tag, marks) in [("1", 2), ("2", 2), ("3", 1)] {
        assert_eq!(svg.matches(&format!("\n{tag}\n</text>")).count(), marks, "tag {tag}");
    }
    let pixmap = rasterises(&svg);
    assert!(pixels_of(&pixmap, PALETTE[0]) > 30, "the Seq-KD point");
}
