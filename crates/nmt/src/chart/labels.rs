//! Point labels that do not collide: each label goes to the first of eight places around its
//! point where it overlaps no label placed before it, no marker and nothing outside the plot;
//! a label with no free place is left out (the chart's legend still names every point by colour).

/// An axis-aligned box in pixels, `x0 < x1`, `y0 < y1` (y grows downwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    pub fn around((x, y): (f64, f64), r: f64) -> Rect {
        Rect { x0: x - r, y0: y - r, x1: x + r, y1: y + r }
    }

    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    pub fn inside(&self, o: &Rect) -> bool {
        self.x0 >= o.x0 && self.x1 <= o.x1 && self.y0 >= o.y0 && self.y1 <= o.y1
    }
}

/// The width in pixels of `text` at `font_px`: 0.64 em a character, DejaVu Sans's digit advance
/// (its mixed-case letters average less, about 0.55 em).
pub fn text_width(text: &str, font_px: f64) -> f64 {
    0.64 * font_px * text.chars().count() as f64
}

/// The box of each label (`size[i]` = width, height) beside `anchors[i]`, for markers of
/// half-size `marker_r` at every anchor, all inside `bounds`; `None` where no place is free.
/// Earlier labels are placed first, so the caller lists the most important points first.
pub fn place(anchors: &[(f64, f64)], sizes: &[(f64, f64)], marker_r: f64, bounds: Rect) -> Vec<Option<Rect>> {
    let markers: Vec<Rect> = anchors.iter().map(|&a| Rect::around(a, marker_r)).collect();
    let mut placed: Vec<Rect> = Vec::new();
    let gap = marker_r + 2.0;
    anchors
        .iter()
        .zip(sizes)
        .map(|(&(x, y), &(w, h))| {
            // Right, above-right, above, above-left, left, below-left, below, below-right.
            let candidates = [
                (x + gap, y - h / 2.0),
                (x + gap * 0.7, y - gap * 0.7 - h),
                (x - w / 2.0, y - gap - h),
                (x - gap * 0.7 - w, y - gap * 0.7 - h),
                (x - gap - w, y - h / 2.0),
                (x - gap * 0.7 - w, y + gap * 0.7),
                (x - w / 2.0, y + gap),
                (x + gap * 0.7, y + gap * 0.7),
            ];
            let free = candidates.iter().map(|&(x0, y0)| Rect { x0, y0, x1: x0 + w, y1: y0 + h }).find(|r| {
                r.inside(&bounds)
                    && !markers.iter().any(|m| m.overlaps(r))
                    && !placed.iter().any(|p| p.overlaps(r))
            });
            if let Some(r) = free {
                placed.push(r);
            }
            free
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Rect = Rect { x0: 0.0, y0: 0.0, x1: 400.0, y1: 300.0 };

    #[test]
    fn a_lone_point_is_labelled_on_its_right() {
        let r = place(&[(100.0, 100.0)], &[(20.0, 12.0)], 4.0, BOUNDS)[0].unwrap();
        assert_eq!(r, Rect { x0: 106.0, y0: 94.0, x1: 126.0, y1: 106.0 });
    }

    #[test]
    fn a_point_at_the_right_edge_is_labelled_on_another_side_inside_the_plot() {
        let r = place(&[(398.0, 150.0)], &[(20.0, 12.0)], 4.0, BOUNDS)[0].unwrap();
        assert!(r.inside(&BOUNDS) && r.x1 <= 398.0, "{r:?}");
    }

    #[test]
    fn labels_of_a_dense_cluster_never_overlap_each_other_or_a_marker() {
        // 40 points on a jittered grid 9 px apart: many labels cannot fit.
        let anchors: Vec<(f64, f64)> = (0..40)
            .map(|i| (150.0 + 9.0 * (i % 8) as f64 + (i * 7 % 5) as f64, 120.0 + 9.0 * (i / 8) as f64))
            .collect();
        let sizes = vec![(14.0, 12.0); anchors.len()];
        let placed = place(&anchors, &sizes, 4.0, BOUNDS);
        let boxes: Vec<Rect> = placed.iter().flatten().copied().collect();
        assert!(boxes.len() >= 8, "the cluster's rim gets labels: {}", boxes.len());
        assert!(boxes.len() < anchors.len(), "and some are left out");
        for (i, a) in boxes.iter().enumerate() {
            assert!(a.inside(&BOUNDS));
            assert!(boxes[i + 1..].iter().all(|b| !a.overlaps(b)), "{a:?} overlaps a label");
            assert!(anchors.iter().all(|&p| !a.overlaps(&Rect::around(p, 4.0))), "{a:?} covers a marker");
        }
    }

    #[test]
    fn text_width_grows_with_characters_not_bytes() {
        assert_eq!(text_width("●■", 10.0), text_width("ab", 10.0));
        assert!(text_width("Seq-KD + Word-KD", 12.0) > 100.0);
    }
}
