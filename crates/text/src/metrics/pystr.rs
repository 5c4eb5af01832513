//! The few Python `str` operations sacrebleu's results depend on, with Python's exact semantics:
//! `str.isspace`, `str.split()`, `str.rstrip()` and `str.lower()` (CPython 3.11, Unicode 14.0).
//!
//! Rust's own versions differ in ways that change scores: `char::is_whitespace` is false for the
//! separators U+001C..U+001F that Python splits on, and Rust 1.95 lowercases letters assigned after
//! Unicode 14 (e.g. U+A7CB, U+1C89) that CPython 3.11 leaves alone.

/// Python's `str.isspace()` for one character: bidirectional class WS, B or S, or category Zs.
///
/// Differs from [`char::is_whitespace`] only on U+001C..U+001F (file/group/record/unit
/// separators), which Python treats as whitespace and Rust does not.
#[inline]
pub fn is_py_whitespace(c: char) -> bool {
    match c {
        '\t'..='\r' | '\u{1c}'..=' ' => true,
        c if (c as u32) < 0x85 => false,
        '\u{85}'
        | '\u{a0}'
        | '\u{1680}'
        | '\u{2000}'..='\u{200a}'
        | '\u{2028}'
        | '\u{2029}'
        | '\u{202f}'
        | '\u{205f}'
        | '\u{3000}' => true,
        _ => false,
    }
}

/// Python's `s.split()` (no argument): runs of whitespace separate words, no empty words.
pub fn py_split(s: &str) -> impl Iterator<Item = &str> + Clone {
    s.split(is_py_whitespace).filter(|w| !w.is_empty())
}

/// Python's `s.rstrip()` (no argument).
#[inline]
pub fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_whitespace)
}

/// Appends Python's `' '.join(s.split())` to `out`: words separated by one ASCII space.
pub fn py_normalize_into(s: &str, out: &mut String) {
    for (i, w) in py_split(s).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
}

/// Code points that Rust lowercases but CPython 3.11 does not, because they were given a
/// lowercase mapping after Unicode 14.0 (CPython 3.11's `unicodedata.unidata_version`). Checked
/// code point by code point against Python in `tests/metrics_golden.rs`.
const PY_NOT_LOWERED: &[(char, char)] = &[
    ('\u{1c89}', '\u{1c89}'),   // CYRILLIC CAPITAL LETTER TJE (Unicode 16)
    ('\u{a7cb}', '\u{a7cc}'),   // LATIN CAPITAL LETTER RAMS HORN, S WITH DIAGONAL STROKE (16)
    ('\u{a7ce}', '\u{a7ce}'),   // LATIN CAPITAL LETTER PHARYNGEAL VOICED FRICATIVE (17)
    ('\u{a7d2}', '\u{a7d2}'),   // LATIN CAPITAL LETTER DOUBLE THORN (17)
    ('\u{a7d4}', '\u{a7d4}'),   // LATIN CAPITAL LETTER DOUBLE WYNN (17)
    ('\u{a7da}', '\u{a7da}'),   // LATIN CAPITAL LETTER LAMBDA (16)
    ('\u{a7dc}', '\u{a7dc}'),   // LATIN CAPITAL LETTER LAMBDA WITH STROKE (16)
    ('\u{10d50}', '\u{10d65}'), // GARAY CAPITAL LETTERS (16)
    ('\u{16ea0}', '\u{16eb8}'), // BERIA ERFE CAPITAL LETTERS (17)
];

#[inline]
fn py_not_lowered(c: char) -> bool {
    (c as u32) >= 0x1c89 && PY_NOT_LOWERED.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

/// Appends Python's `s.lower()` to `out`.
///
/// Rust's `str::to_lowercase` implements the same rules as CPython (full case mappings such as
/// 'İ' → "i̇", and the contextual final sigma: 'Σ' → 'ς' after a cased letter and not before one,
/// skipping case-ignorable characters on both sides), so this defers to it and only undoes the
/// mappings of letters newer than CPython 3.11's Unicode database.
pub fn py_lower_into(s: &str, out: &mut String) {
    if s.is_ascii() {
        // The hot case: no allocation, byte-wise.
        out.extend(s.bytes().map(|b| b.to_ascii_lowercase() as char));
        return;
    }
    if !s.contains('\u{3a3}') {
        // Without a capital sigma, lowercasing is context-free: map char by char.
        for c in s.chars() {
            if py_not_lowered(c) {
                out.push(c);
            } else {
                out.extend(c.to_lowercase());
            }
        }
        return;
    }
    // Capital sigma: its context rule needs the cased / case-ignorable properties, which only
    // `str::to_lowercase` knows. It maps every other char exactly as `char::to_lowercase` does,
    // so walking both in step lets us undo the post-Unicode-14 mappings.
    let full = s.to_lowercase();
    let mut lowered = full.chars();
    for c in s.chars() {
        let n = if c == '\u{3a3}' { 1 } else { c.to_lowercase().count() };
        if py_not_lowered(c) {
            out.push(c);
            lowered.nth(n - 1);
        } else {
            out.extend(lowered.by_ref().take(n));
        }
    }
}

/// Python's `s.lower()`.
pub fn py_lower(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    py_lower_into(s, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_matches_python_isspace() {
        // The full list of `c.isspace()` code points in CPython 3.11.
        let py: Vec<u32> = vec![
            0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001,
            0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f,
            0x205f, 0x3000,
        ];
        let ours: Vec<u32> = (0..=0x10ffffu32)
            .filter_map(char::from_u32)
            .filter(|&c| is_py_whitespace(c))
            .map(|c| c as u32)
            .collect();
        assert_eq!(ours, py);
    }

    #[test]
    fn split_and_strip() {
        let s = "\u{1c}a\u{1f}b\u{85}c\u{a0} d\u{200b}e \u{3000}";
        assert_eq!(py_split(s).collect::<Vec<_>>(), ["a", "b", "c", "d\u{200b}e"]);
        assert_eq!(py_rstrip(s), "\u{1c}a\u{1f}b\u{85}c\u{a0} d\u{200b}e");
        let mut out = String::new();
        py_normalize_into("  x \t y\u{1e}z ", &mut out);
        assert_eq!(out, "x y z");
    }

    #[test]
    fn lower_like_python() {
        // Expected values printed by CPython 3.11.
        assert_eq!(py_lower("ΌΣΟΣ ΣΑΣ. Σ aΣ Σa İ ǅ"), "όσος σας. σ aς σa i\u{307} ǆ");
        assert_eq!(py_lower("ÄÖÜ ẞ Straße"), "äöü ß straße");
        assert_eq!(py_lower("\u{a7cb}\u{1c89}X"), "\u{a7cb}\u{1c89}x");
    }
}
