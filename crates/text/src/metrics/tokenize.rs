//! sacrebleu 2.6.0's BLEU tokenizers `none`, `13a` (the default), `intl` and `char`, with
//! identical output.
//!
//! `13a` is the hot path of sentence BLEU, so it is not a chain of regex substitutions as in
//! sacrebleu but one pass over the characters through five small streaming stages. Each stage is
//! a literal transcription of one `re.sub` call of `TokenizerRegexp` (or of the final
//! `' '.join(line.split())`): a 2-character pattern is matched by holding back one character,
//! exactly like `re.sub`'s leftmost, non-overlapping scan, and the stages are fused only by
//! feeding each one's output into the next. See [`tokenize_13a_into`].
//!
//! `intl` uses the `regex` crate's `\p{P}`, `\p{S}` and `\p{N}` (Unicode 16.0) plus the characters
//! Unicode 17.0 added to them, which sacrebleu's `regex` module knows (see `EXTRA_P`).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::pystr::{is_py_whitespace, py_normalize_into};
use super::MetricsError;

/// A sacrebleu tokenizer, by its signature name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TokenizeKind {
    /// `none`: the line as it is; words are what `str.split()` finds.
    #[serde(rename = "none")]
    None,
    /// `13a`: mteval-v13a.pl's tokenization, sacrebleu's default.
    #[default]
    #[serde(rename = "13a")]
    Tok13a,
    /// `intl`: mteval-v14.pl's international tokenization (Unicode punctuation and symbols).
    #[serde(rename = "intl")]
    Intl,
    /// `char`: every character is a token.
    #[serde(rename = "char")]
    Char,
}

impl TokenizeKind {
    /// The name sacrebleu uses in signatures and on its command line (`-tok`).
    pub fn signature(self) -> &'static str {
        match self {
            TokenizeKind::None => "none",
            TokenizeKind::Tok13a => "13a",
            TokenizeKind::Intl => "intl",
            TokenizeKind::Char => "char",
        }
    }
}

impl fmt::Display for TokenizeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.signature())
    }
}

impl FromStr for TokenizeKind {
    type Err = MetricsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(TokenizeKind::None),
            "13a" => Ok(TokenizeKind::Tok13a),
            "intl" => Ok(TokenizeKind::Intl),
            "char" => Ok(TokenizeKind::Char),
            other => Err(MetricsError::InvalidConfig(format!(
                "unknown tokenizer {other:?} (supported: none, 13a, intl, char)"
            ))),
        }
    }
}

/// Exactly what sacrebleu's tokenizer object returns for `line` (`tokenizer(line)`).
///
/// This is the tokenizer alone; BLEU lowercases (optionally) and `rstrip()`s first, see
/// [`Preprocessor`]. `none` returns the line unchanged, `char` joins *all* characters (whitespace
/// included) with spaces, as sacrebleu does.
pub fn tokenize(kind: TokenizeKind, line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 4 + 8);
    match kind {
        TokenizeKind::None => out.push_str(line),
        TokenizeKind::Tok13a => tokenize_13a_into(line, &mut out, &mut String::new(), &mut String::new()),
        TokenizeKind::Intl => tokenize_intl_into(line, &mut out),
        TokenizeKind::Char => {
            for (i, c) in line.chars().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push(c);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 13a
// ---------------------------------------------------------------------------------------------

/// The character class of 13a's first substitution, `[\{-\~\[-\` -\&\(-\+\:-\@\/]`: space and
/// all ASCII punctuation except `'`, `,`, `-` and `.`, which have rules of their own.
#[inline]
fn is_13a_punct(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// `[0-9]` in a Python `str` pattern: ASCII digits only (not `\d`).
#[inline]
fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

/// One stage of the streaming 13a pipeline.
trait Sink {
    fn put(&mut self, c: char);
    fn finish(&mut self);
}

/// `' '.join(line.split())`: drops leading and trailing whitespace, one space between words.
struct Collapse<'a> {
    out: &'a mut String,
    /// A word was written and whitespace followed it: the next word needs a separator.
    gap: bool,
    started: bool,
}

impl Sink for Collapse<'_> {
    #[inline(always)]
    fn put(&mut self, c: char) {
        if is_py_whitespace(c) {
            self.gap = self.started;
        } else {
            if self.gap {
                self.out.push(' ');
                self.gap = false;
            }
            self.out.push(c);
            self.started = true;
        }
    }
    fn finish(&mut self) {}
}

/// A 2-character `re.sub(pattern, repl)` as a stream: `held` is the character at the scan
/// position; when the next one arrives, either the pair matches (emit the replacement, resume
/// after the pair) or the held character is emitted unchanged and the scan moves by one. That is
/// precisely `re.sub`'s leftmost, non-overlapping search for a fixed-width pattern.
macro_rules! pair_stage {
    ($name:ident, |$x:ident, $c:ident| $matches:expr, |$nx:ident| $emit:expr) => {
        struct $name<S: Sink> {
            next: S,
            held: Option<char>,
        }

        impl<S: Sink> Sink for $name<S> {
            #[inline(always)]
            fn put(&mut self, $c: char) {
                match self.held {
                    None => self.held = Some($c),
                    Some($x) => {
                        if $matches {
                            let $nx = &mut self.next;
                            $emit;
                            self.held = None;
                        } else {
                            self.next.put($x);
                            self.held = Some($c);
                        }
                    }
                }
            }
            fn finish(&mut self) {
                if let Some(x) = self.held.take() {
                    self.next.put(x);
                }
                self.next.finish();
            }
        }
    };
}

// `([0-9])(-)` → `\1 \2 `: tokenize dash when preceded by a digit.
pair_stage!(DigitDash, |x, c| is_digit(x) && c == '-', |n| {
    n.put(x);
    n.put(' ');
    n.put('-');
    n.put(' ');
});

// `([\.,])([^0-9])` → ` \1 \2`: tokenize period and comma unless followed by a digit.
pair_stage!(PeriodCommaBeforeNonDigit, |x, c| (x == '.' || x == ',') && !is_digit(c), |n| {
    n.put(' ');
    n.put(x);
    n.put(' ');
    n.put(c);
});

// `([^0-9])([\.,])` → `\1 \2 `: tokenize period and comma unless preceded by a digit.
pair_stage!(NonDigitBeforePeriodComma, |x, c| !is_digit(x) && (c == '.' || c == ','), |n| {
    n.put(x);
    n.put(' ');
    n.put(c);
    n.put(' ');
});

/// `([\{-\~\[-\` -\&\(-\+\:-\@\/])` → ` \1 `: one character at a time, no state.
struct Punct<S: Sink> {
    next: S,
}

impl<S: Sink> Sink for Punct<S> {
    #[inline(always)]
    fn put(&mut self, c: char) {
        if is_13a_punct(c) {
            self.next.put(' ');
            self.next.put(c);
            self.next.put(' ');
        } else {
            self.next.put(c);
        }
    }
    fn finish(&mut self) {
        self.next.finish();
    }
}

/// `old.replace(pat, rep)` into `buf`, reusing `tmp`; Python's and Rust's `replace` agree
/// (left to right, non-overlapping, no rescan of the replacement).
fn replace_in_place(buf: &mut String, tmp: &mut String, pat: &str, rep: &str) {
    if !buf.contains(pat) {
        return;
    }
    tmp.clear();
    let mut last = 0;
    for (i, _) in buf.match_indices(pat) {
        tmp.push_str(&buf[last..i]);
        tmp.push_str(rep);
        last = i + pat.len();
    }
    tmp.push_str(&buf[last..]);
    std::mem::swap(buf, tmp);
}

/// Appends sacrebleu's `Tokenizer13a()(line)` to `out`. `scratch1` and `scratch2` are only used
/// (and only grow) when the line contains `<skipped>`, a newline or `&`.
///
/// sacrebleu first rewrites the line (`<skipped>` → "", `-\n` → "", `\n` → " ", and if there is
/// an `&`: `&quot;` `&amp;` `&lt;` `&gt;` in that order, each a full `str.replace`), pads it with
/// a space on both sides and applies four `re.sub`s and a whitespace collapse. The rewrites are
/// done here the same way (they are rare); the rest is one pass.
pub fn tokenize_13a_into(line: &str, out: &mut String, scratch1: &mut String, scratch2: &mut String) {
    let needs_rewrite = line.bytes().any(|b| b == b'<' || b == b'\n' || b == b'&');
    let line = if needs_rewrite {
        scratch1.clear();
        scratch1.push_str(line);
        replace_in_place(scratch1, scratch2, "<skipped>", "");
        replace_in_place(scratch1, scratch2, "-\n", "");
        replace_in_place(scratch1, scratch2, "\n", " ");
        if scratch1.contains('&') {
            replace_in_place(scratch1, scratch2, "&quot;", "\"");
            replace_in_place(scratch1, scratch2, "&amp;", "&");
            replace_in_place(scratch1, scratch2, "&lt;", "<");
            replace_in_place(scratch1, scratch2, "&gt;", ">");
        }
        scratch1.as_str()
    } else {
        line
    };
    out.reserve(line.len() + line.len() / 4 + 2);
    let collapse = Collapse { out, gap: false, started: false };
    let mut pipeline = Punct {
        next: NonDigitBeforePeriodComma {
            next: PeriodCommaBeforeNonDigit { next: DigitDash { next: collapse, held: None }, held: None },
            held: None,
        },
    };
    // f' {line} '
    pipeline.put(' ');
    for c in line.chars() {
        pipeline.put(c);
    }
    pipeline.put(' ');
    pipeline.finish();
}

/// sacrebleu's `Tokenizer13a()(line)`.
pub fn tokenize_13a(line: &str) -> String {
    let mut out = String::new();
    tokenize_13a_into(line, &mut out, &mut String::new(), &mut String::new());
    out
}

// ---------------------------------------------------------------------------------------------
// intl
// ---------------------------------------------------------------------------------------------

/// Characters that sacrebleu's `regex` module (2026.11.19, Unicode 17.0) puts in `\p{P}`, `\p{S}`
/// and `\p{N}` but the `regex` crate (Unicode 16.0) does not yet: all assigned in Unicode 17.
/// Checked code point by code point in `tests/metrics_golden.rs`.
const EXTRA_P: &str = r"\x{2E60}-\x{2E63}\x{10ED0}";
const EXTRA_S: &str = r"\x{20C1}-\x{20C4}\x{2B96}\x{FBC3}-\x{FBD2}\x{FD90}-\x{FD91}\x{FDC8}-\x{FDCE}\x{10EC9}-\x{10ECA}\x{10ED1}-\x{10ED8}\x{1CCFA}-\x{1CCFC}\x{1CEBA}-\x{1CED0}\x{1CED2}-\x{1CED4}\x{1CEDD}-\x{1CEFD}\x{1D1EB}-\x{1D1FF}\x{1D253}-\x{1D25A}\x{1D25D}-\x{1D25E}\x{1D260}-\x{1D27F}\x{1DB00}-\x{1DB1C}\x{1F1AE}\x{1F6D8}-\x{1F6D9}\x{1F777}-\x{1F77A}\x{1F7DA}-\x{1F7DB}\x{1F7F1}-\x{1F7FF}\x{1F8D0}-\x{1F8D8}\x{1FA54}-\x{1FA57}\x{1FA8A}-\x{1FA8E}\x{1FAC8}\x{1FACC}-\x{1FACD}\x{1FADD}\x{1FAEA}-\x{1FAEB}\x{1FAEF}\x{1FAF9}-\x{1FAFA}\x{1FBFA}";
const EXTRA_N: &str = r"\x{11DE0}-\x{11DE9}\x{1246F}\x{12475}-\x{1247F}\x{12550}-\x{12686}\x{16FF4}-\x{16FF6}";

fn intl_regexes() -> &'static [(Regex, &'static str); 3] {
    static RES: OnceLock<[(Regex, &'static str); 3]> = OnceLock::new();
    RES.get_or_init(|| {
        let re = |p: String| Regex::new(&p).expect("static intl pattern compiles");
        let p = format!(r"[\p{{P}}{EXTRA_P}]");
        let s = format!(r"[\p{{S}}{EXTRA_S}]");
        let not_n = format!(r"[^\p{{N}}{EXTRA_N}]");
        [
            // Separate out punctuations preceded by a non-digit: (\P{N})(\p{P})
            (re(format!("({not_n})({p})")), "${1} ${2} "),
            // Separate out punctuations followed by a non-digit: (\p{P})(\P{N})
            (re(format!("({p})({not_n})")), " ${1} ${2}"),
            // Separate out symbols: (\p{S})
            (re(format!("({s})")), " ${1} "),
        ]
    })
}

/// Appends sacrebleu's `TokenizerV14International()(line)` to `out`.
///
/// The `regex` crate's `replace_all` has the same leftmost-first, non-overlapping semantics as
/// Python's `regex.sub` for these fixed-width patterns.
pub fn tokenize_intl_into(line: &str, out: &mut String) {
    let [(r1, s1), (r2, s2), (r3, s3)] = intl_regexes();
    let a = r1.replace_all(line, *s1);
    let b = r2.replace_all(&a, *s2);
    let c = r3.replace_all(&b, *s3);
    py_normalize_into(&c, out);
}

// ---------------------------------------------------------------------------------------------
// BLEU's preprocessing
// ---------------------------------------------------------------------------------------------

/// BLEU's `_preprocess_segment` (optional `str.lower()`, `rstrip()`, tokenizer) followed by the
/// `str.split()` of n-gram extraction, with reusable buffers: after a few calls it no longer
/// allocates.
///
/// The output is always normalized to words separated by single spaces (for `none` and `char`
/// too), which is what `split()` sees, so [`Preprocessor::run`]'s result can be split on `' '`.
#[derive(Debug, Clone, Default)]
pub struct Preprocessor {
    pub kind: TokenizeKind,
    pub lowercase: bool,
    lower: String,
    scratch1: String,
    scratch2: String,
    out: String,
}

impl Preprocessor {
    pub fn new(kind: TokenizeKind, lowercase: bool) -> Self {
        Self { kind, lowercase, ..Default::default() }
    }

    /// The words of `line` as BLEU counts them, joined by single spaces.
    pub fn run(&mut self, line: &str) -> &str {
        let line = if self.lowercase {
            self.lower.clear();
            super::pystr::py_lower_into(line, &mut self.lower);
            self.lower.as_str()
        } else {
            line
        };
        let line = super::pystr::py_rstrip(line);
        self.out.clear();
        match self.kind {
            TokenizeKind::None => py_normalize_into(line, &mut self.out),
            TokenizeKind::Tok13a => {
                tokenize_13a_into(line, &mut self.out, &mut self.scratch1, &mut self.scratch2)
            }
            TokenizeKind::Intl => tokenize_intl_into(line, &mut self.out),
            TokenizeKind::Char => {
                // ' '.join(chars) then split(): the non-whitespace characters.
                for c in line.chars().filter(|&c| !is_py_whitespace(c)) {
                    if !self.out.is_empty() {
                        self.out.push(' ');
                    }
                    self.out.push(c);
                }
            }
        }
        &self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected outputs printed by sacrebleu 2.6.0 (`Tokenizer13a()(s)`).
    #[test]
    fn tok_13a_matches_sacrebleu() {
        let cases: &[(&str, &str)] = &[
            ("Hello, world!", "Hello , world !"),
            ("It costs $3.50, or 3,50 €.", "It costs $ 3.50 , or 3,50 € ."),
            ("1999-2000 and x-5 and 5-x", "1999 - 2000 and x-5 and 5 - x"),
            ("a.,5 ..5 ,.x 5., .5", "a . ,5 . .5 , . x 5 . , . 5"),
            ("&quot;Hi&quot; &amp;amp; &amp;quot; &lt;b&gt;", "\" Hi \" & amp ; & quot ; < b >"),
            ("foo<skipped>bar <skip<skipped>ped>", "foobar < skipped >"),
            ("hy-\nphen\nnew", "hyphen new"),
            ("\u{1c}a\u{85}b\u{a0}c\u{200b}d", "a b c\u{200b}d"),
            ("U.S.A. z.B. e.g., Nr.5", "U . S . A . z . B . e . g . , Nr . 5"),
            ("don't 'quote' `tick`", "don't 'quote' ` tick `"),
            ("", ""),
            ("   ", ""),
        ];
        for (input, want) in cases {
            assert_eq!(tokenize_13a(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn tok_13a_ascii_classes() {
        // Every printable ASCII character between two letters (sacrebleu 2.6.0 output).
        let all: String = (0x21u8..0x7f).map(|b| format!("a{}b", b as char)).collect::<Vec<_>>().join(" ");
        let got = tokenize_13a(&all);
        let expected_singles: Vec<char> = "!\"#$%&()*+/:;<=>?@[\\]^_`{|}~".chars().collect();
        for c in expected_singles {
            assert!(got.contains(&format!("a {c} b")), "{c:?} should be split: {got}");
        }
        assert!(got.contains("a'b") && got.contains("a-b") && got.contains("a . b") && got.contains("a , b"));
    }

    #[test]
    fn other_tokenizers_match_sacrebleu() {
        assert_eq!(
            tokenize(TokenizeKind::Intl, "„Hallo“, sagte er – 3.5 € (1,5%)!"),
            "„ Hallo “ , sagte er – 3.5 € ( 1,5 % ) !"
        );
        assert_eq!(tokenize(TokenizeKind::Char, "ab c"), "a b   c");
        assert_eq!(tokenize(TokenizeKind::None, " a  b "), " a  b ");
        let mut p = Preprocessor::new(TokenizeKind::Char, true);
        assert_eq!(p.run("Ab c\u{1c}"), "a b c");
    }
}
