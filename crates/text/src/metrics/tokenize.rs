//! sacrebleu 2.6.0's BLEU tokenizers `none`, `13a` (the default), `intl` and `char`, with
//! identical output.
//!
//! `13a` is the hot path of sentence BLEU, so it does not use regular expressions: each `re.sub`
//! of sacrebleu's `TokenizerRegexp` is a hand-written byte loop that reproduces `re.sub`'s
//! leftmost, non-overlapping scan for its two-character pattern, followed by a byte-level
//! `' '.join(line.split())` that knows Python's whitespace. The tests compare it with a literal
//! character-by-character transcription on random strings, and `tests/metrics_golden.rs` with
//! sacrebleu itself.
//!
//! `intl` uses the `regex` crate's `\p{P}`, `\p{S}` and `\p{N}` (Unicode 16.0) plus the characters
//! Unicode 17.0 added to them, which sacrebleu's `regex` module knows (see `EXTRA_P`).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::pystr::{is_py_whitespace, py_lower_into, py_normalize_into, py_rstrip};
use super::MetricsError;

mod tok13a;

pub use tok13a::tokenize_13a;
use tok13a::{split_words, Buffers13a};

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
        TokenizeKind::Tok13a => out.push_str(&tokenize_13a(line)),
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
// intl
// ---------------------------------------------------------------------------------------------

/// Characters that sacrebleu's `regex` module (2026.11.19, Unicode 17.0) puts in `\p{P}`, `\p{S}`
/// and `\p{N}` but the `regex` crate (Unicode 16.0) does not yet: all assigned in Unicode 17.
/// Checked code point by code point in `tests/metrics_golden.rs`.
const EXTRA_P: &str = r"\x{2E60}-\x{2E63}\x{10ED0}";
const EXTRA_S: &str = r"\x{20C1}-\x{20C4}\x{2B96}\x{FBC3}-\x{FBD2}\x{FD90}-\x{FD91}\x{FDC8}-\x{FDCE}\x{10EC9}-\x{10ECA}\x{10ED1}-\x{10ED8}\x{1CCFA}-\x{1CCFC}\x{1CEBA}-\x{1CED0}\x{1CED2}-\x{1CED4}\x{1CEDD}-\x{1CEFD}\x{1D1EB}-\x{1D1FF}\x{1D253}-\x{1D25A}\x{1D25D}-\x{1D25E}\x{1D260}-\x{1D27F}\x{1DB00}-\x{1DB1C}\x{1F1AE}\x{1F6D8}-\x{1F6D9}\x{1F777}-\x{1F77A}\x{1F7DA}-\x{1F7DB}\x{1F7F1}-\x{1F7FF}\x{1F8D0}-\x{1F8D8}\x{1FA54}-\x{1FA57}\x{1FA8A}-\x{1FA8E}\x{1FAC8}\x{1FACC}-\x{1FACD}\x{1FADD}\x{1FAEA}-\x{1FAEB}\x{1FAEF}\x{1FAF9}-\x{1FAFA}\x{1FBFA}";
const EXTRA_N: &str =
    r"\x{11DE0}-\x{11DE9}\x{1246F}\x{12475}-\x{1247F}\x{12550}-\x{12686}\x{16FF4}-\x{16FF6}";

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
/// The result is the list of words BLEU counts, available joined by single spaces
/// ([`Preprocessor::run`]) and one by one ([`Preprocessor::words`]).
#[derive(Debug, Clone, Default)]
pub struct Preprocessor {
    pub kind: TokenizeKind,
    pub lowercase: bool,
    lower: String,
    tok13a: Buffers13a,
    intl: String,
    out: Vec<u8>,
    spans: Vec<(u32, u32)>,
}

impl Preprocessor {
    pub fn new(kind: TokenizeKind, lowercase: bool) -> Self {
        Self { kind, lowercase, ..Default::default() }
    }

    /// Preprocesses `line`; the words are then in [`Preprocessor::word_bytes`].
    pub(crate) fn process(&mut self, line: &str) {
        let line = if self.lowercase {
            self.lower.clear();
            py_lower_into(line, &mut self.lower);
            self.lower.as_str()
        } else {
            line
        };
        let line = py_rstrip(line);
        self.out.clear();
        self.spans.clear();
        match self.kind {
            TokenizeKind::None => split_words(line.as_bytes(), &mut self.out, &mut self.spans),
            TokenizeKind::Tok13a => self.tok13a.run(line, &mut self.out, &mut self.spans),
            TokenizeKind::Intl => {
                self.intl.clear();
                tokenize_intl_into(line, &mut self.intl);
                split_words(self.intl.as_bytes(), &mut self.out, &mut self.spans);
            }
            TokenizeKind::Char => {
                // ' '.join(chars) then split(): the non-whitespace characters.
                let mut buf = [0u8; 4];
                for c in line.chars().filter(|&c| !is_py_whitespace(c)) {
                    if !self.out.is_empty() {
                        self.out.push(b' ');
                    }
                    let at = self.out.len();
                    self.out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    self.spans.push((at as u32, self.out.len() as u32));
                }
            }
        }
    }

    /// The words of the last processed line, as UTF-8 bytes.
    #[inline]
    pub(crate) fn word_bytes(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.spans.iter().map(|&(s, e)| &self.out[s as usize..e as usize])
    }

    /// The words of `line` as BLEU counts them, joined by single spaces.
    pub fn run(&mut self, line: &str) -> &str {
        self.process(line);
        // Valid UTF-8 by construction (see `bytes_to_string`).
        if std::str::from_utf8(&self.out).is_err() {
            self.out = String::from_utf8_lossy(&self.out).into_owned().into_bytes();
        }
        std::str::from_utf8(&self.out).unwrap_or_default()
    }

    /// The words of `line` as BLEU counts them.
    pub fn words(&mut self, line: &str) -> impl Iterator<Item = &str> + '_ {
        self.run(line).split(' ').filter(|w| !w.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A literal, character-by-character transcription of sacrebleu's 13a: each `re.sub` is a
    /// streaming stage holding back one character, which is exactly `re.sub`'s scan for a
    /// 2-character pattern. Slow but obviously right; the byte loops are checked against it.
    mod reference {
        use crate::metrics::pystr::is_py_whitespace;

        /// The character class of 13a's first substitution, `[\{-\~\[-\` -\&\(-\+\:-\@\/]`: space and
        /// all ASCII punctuation except `'`, `,`, `-` and `.`, which have rules of their own.
        #[inline]
        fn is_13a_punct(c: char) -> bool {
            matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
        }

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

        pub(super) fn tokenize_13a(line: &str) -> String {
            let mut line = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
            if line.contains('&') {
                line = line
                    .replace("&quot;", "\"")
                    .replace("&amp;", "&")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">");
            }
            let mut out = String::new();
            let collapse = Collapse { out: &mut out, gap: false, started: false };
            let mut pipeline = Punct {
                next: NonDigitBeforePeriodComma {
                    next: PeriodCommaBeforeNonDigit {
                        next: DigitDash { next: collapse, held: None },
                        held: None,
                    },
                    held: None,
                },
            };
            for c in std::iter::once(' ').chain(line.chars()).chain(std::iter::once(' ')) {
                pipeline.put(c);
            }
            pipeline.finish();
            out
        }
    }

    #[test]
    fn tok_13a_equals_literal_transcription_on_random_strings() {
        // An alphabet dense in everything 13a reacts to.
        let alphabet: Vec<&str> = vec![
            ".",
            ",",
            "-",
            "0",
            "5",
            "9",
            "a",
            "Z",
            " ",
            "  ",
            "\n",
            "-\n",
            "&",
            "&quot;",
            "&amp;",
            "&lt;",
            "&gt;",
            "<skipped>",
            "<",
            ">",
            ";",
            "'",
            "\"",
            "(",
            "$",
            "ä",
            "€",
            "…",
            "\u{a0}",
            "\u{85}",
            "\u{1c}",
            "\u{2009}",
            "\u{3000}",
            "\u{200b}",
            "\t",
            "/",
            "`",
            "~",
            "é",
        ];
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // And one dense in runs of periods, commas and dashes between digits and letters.
        let runs: Vec<&str> = vec![".", ".", ",", ",", "-", "1", "2", "x", " ", "(", "é", "\u{a0}"];
        let mut pre = Preprocessor::new(TokenizeKind::Tok13a, false);
        for k in 0..60_000 {
            let alpha = if k % 2 == 0 { &alphabet } else { &runs };
            let len = (next() % 24) as usize;
            let s: String = (0..len).map(|_| alpha[(next() % alpha.len() as u64) as usize]).collect();
            let want = reference::tokenize_13a(&s);
            assert_eq!(tokenize_13a(&s), want, "input {s:?}");
            // The preprocessor also rstrips first; tokenizing the rstripped line is what it must equal.
            assert_eq!(
                pre.run(&s),
                reference::tokenize_13a(crate::metrics::pystr::py_rstrip(&s)),
                "input {s:?}"
            );
        }
    }

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
