//! sacrebleu's `13a` tokenizer without regular expressions: each `re.sub` of its
//! `TokenizerRegexp` is a byte loop reproducing `re.sub`'s leftmost, non-overlapping scan for its
//! two-character pattern, then a byte-level `' '.join(line.split())` that knows Python's
//! whitespace (also what the `none` tokenizer's word split uses).

/// `[0-9]` in a Python `str` pattern is ASCII digits only (not `\d`).
#[inline(always)]
pub(super) fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

#[inline(always)]
pub(super) fn is_period_comma(b: u8) -> bool {
    b == b'.' || b == b','
}

/// Output of the 13a pass: words appended to `out` (space-separated) with their spans.
pub(super) struct WordSink<'a> {
    out: &'a mut Vec<u8>,
    spans: &'a mut Vec<(u32, u32)>,
    /// Start of the word being written, if any.
    open: Option<usize>,
}

impl WordSink<'_> {
    #[inline(always)]
    fn push(&mut self, b: u8) {
        if self.open.is_none() {
            if !self.out.is_empty() {
                self.out.push(b' ');
            }
            self.open = Some(self.out.len());
        }
        self.out.push(b);
    }

    #[inline(always)]
    fn push_slice(&mut self, s: &[u8]) {
        if self.open.is_none() {
            if !self.out.is_empty() {
                self.out.push(b' ');
            }
            self.open = Some(self.out.len());
        }
        self.out.extend_from_slice(s);
    }

    #[inline(always)]
    fn end(&mut self) {
        if let Some(start) = self.open.take() {
            self.spans.push((start as u32, self.out.len() as u32));
        }
    }

    /// `b` as a word of its own.
    #[inline(always)]
    fn single(&mut self, b: u8) {
        self.end();
        self.push(b);
        self.end();
    }
}

/// Byte classes of the 13a pass.
pub(super) const PLAIN: u8 = 0;
pub(super) const WS: u8 = 1; // ASCII whitespace
pub(super) const MAYBE_WS: u8 = 2; // first byte of a multi-byte character that may be whitespace
pub(super) const PUNCT: u8 = 3; // 13a's first character class
pub(super) const PERIOD_COMMA: u8 = 4;
pub(super) const DASH: u8 = 5;

pub(super) const CLASS_13A: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if matches!(c, b'\t'..=b'\r' | 0x1c..=b' ') {
            WS
        } else if matches!(c, 0xc2 | 0xe1 | 0xe2 | 0xe3) {
            MAYBE_WS
        } else if matches!(c, b'{'..=b'~' | b'['..=b'`' | b'!'..=b'&' | b'('..=b'+' | b':'..=b'@' | b'/') {
            // `[\{-\~\[-\` -\&\(-\+\:-\@\/]` minus the space, which is WS
            PUNCT
        } else if c == b'.' || c == b',' {
            PERIOD_COMMA
        } else if c == b'-' {
            DASH
        } else {
            PLAIN
        };
        b += 1;
    }
    t
};

/// sacrebleu's four `re.sub`s and `' '.join(line.split())`, in one pass over the bytes of the
/// (already rewritten) line; the words go to `sink`.
///
/// The substitutions only ever insert spaces, so the result is the line's non-whitespace
/// characters cut at some boundaries. Working out where each substitution cuts, given that the
/// earlier ones ran first and that `re.sub`'s matches do not overlap, gives these rules (`T` is
/// `' ' + line + ' '`):
///
/// 1. `([\{-\~\[-\` -\&\(-\+\:-\@\/])` → ` \1 `: those characters are words of their own.
/// 2. and 3. Periods and commas, taken as maximal runs `T[s..=e]` of `[.,]` of length L, with
///    `dp` = `T[s-1]` is a digit, `dn` = `T[e+1]` is a digit:
///    `([^0-9])([\.,])` → `\1 \2 ` matches the run's elements at even offsets if `!dp` (the first
///    one together with its predecessor), at odd offsets if `dp`, each as the second item of a
///    match (an element consumed as a second item cannot start the next match). That cuts between
///    all elements, before the run if `!dp`, and after it if `a2` = (`!dp` and L odd) or (`dp` and
///    L even). `([\.,])([^0-9])` → ` \1 \2` then matches every element followed by a space (all
///    but possibly the last) and the last one if `a2` or `!dn`, cutting before and after it.
///    Altogether: for L = 1 the character is a word of its own unless `dp && dn` (`3.5`); for
///    L >= 2 every element is a word of its own, except that the last one stays joined to the
///    digit after it if `dn && !a2`.
/// 4. `([0-9])(-)` → `\1 \2 `: a `-` after a digit is a word of its own (the substitutions before
///    never put a space between a digit and a following `-`).
///
/// The unit tests check this against a literal transcription of the four `re.sub`s on random
/// strings; `tests/metrics_golden.rs` against sacrebleu.
pub(super) fn words_13a(t: &[u8], sink: &mut WordSink<'_>) {
    let n = t.len();
    let mut i = 0;
    while i < n {
        let b = t[i];
        match CLASS_13A[b as usize] {
            PLAIN => {
                // Copy the run of plain bytes at once.
                let mut j = i + 1;
                while j < n && CLASS_13A[t[j] as usize] == PLAIN {
                    j += 1;
                }
                sink.push_slice(&t[i..j]);
                i = j;
            }
            WS => {
                sink.end();
                i += 1;
            }
            MAYBE_WS => {
                let w = ws_len(t, i);
                if w > 0 {
                    sink.end();
                    i += w;
                } else {
                    sink.push(b);
                    i += 1;
                }
            }
            PUNCT => {
                sink.single(b);
                i += 1;
            }
            DASH => {
                if i > 0 && is_digit(t[i - 1]) {
                    sink.single(b);
                } else {
                    sink.push(b);
                }
                i += 1;
            }
            _ => {
                // PERIOD_COMMA: the maximal run t[i..=e].
                let mut e = i;
                while e + 1 < n && is_period_comma(t[e + 1]) {
                    e += 1;
                }
                let len = e - i + 1;
                let dp = i > 0 && is_digit(t[i - 1]);
                let dn = e + 1 < n && is_digit(t[e + 1]);
                if len == 1 {
                    if dp && dn {
                        sink.push(b);
                    } else {
                        sink.single(b);
                    }
                } else {
                    let a2 = if dp { len % 2 == 0 } else { len % 2 == 1 };
                    for &c in &t[i..e] {
                        sink.single(c);
                    }
                    if a2 || !dn {
                        sink.single(t[e]);
                    } else {
                        sink.end();
                        sink.push(t[e]);
                    }
                }
                i = e + 1;
            }
        }
    }
    sink.end();
}

/// Byte classes for Python's `str.split()` on UTF-8: 1 = ASCII whitespace (`\t\n\x0b\x0c\r`,
/// `\x1c`-`\x1f`, space), 2 = first byte of a multi-byte character that may be whitespace
/// (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000).
pub(super) const WS_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if matches!(c, b'\t'..=b'\r' | 0x1c..=b' ') {
            1
        } else if matches!(c, 0xc2 | 0xe1 | 0xe2 | 0xe3) {
            2
        } else {
            0
        };
        b += 1;
    }
    t
};

/// Length in bytes of the whitespace character starting at `s[i]`, or 0 if it is not one.
#[inline(always)]
pub(super) fn ws_len(s: &[u8], i: usize) -> usize {
    match WS_CLASS[s[i] as usize] {
        0 => 0,
        1 => 1,
        _ => {
            let b1 = s.get(i + 1).copied().unwrap_or(0);
            let b2 = s.get(i + 2).copied().unwrap_or(0);
            match (s[i], b1, b2) {
                (0xc2, 0x85 | 0xa0, _) => 2,
                (0xe1, 0x9a, 0x80) | (0xe2, 0x80, 0x80..=0x8a | 0xa8 | 0xa9 | 0xaf) | (0xe2, 0x81, 0x9f) => 3,
                (0xe3, 0x80, 0x80) => 3,
                _ => 0,
            }
        }
    }
}

/// `' '.join(s.split())` appended to `out` (which holds earlier words, if any), with the byte
/// span of every word in `out`.
pub(super) fn split_words(s: &[u8], out: &mut Vec<u8>, spans: &mut Vec<(u32, u32)>) {
    let n = s.len();
    let mut i = 0;
    while i < n {
        let w = ws_len(s, i);
        if w > 0 {
            i += w;
            continue;
        }
        let start = i;
        i += 1;
        while i < n && ws_len(s, i) == 0 {
            i += 1;
        }
        if !out.is_empty() {
            out.push(b' ');
        }
        let at = out.len();
        out.extend_from_slice(&s[start..i]);
        spans.push((at as u32, out.len() as u32));
    }
}

/// `old.replace(pat, rep)` into `buf`, reusing `tmp`; Python's and Rust's `replace` agree
/// (left to right, non-overlapping, no rescan of the replacement).
pub(super) fn replace_in_place(buf: &mut String, tmp: &mut String, pat: &str, rep: &str) {
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

/// Buffers of the 13a tokenizer, kept between calls (only used by lines that need rewriting).
#[derive(Debug, Clone, Default)]
pub(super) struct Buffers13a {
    rewrite: String,
    rewrite_tmp: String,
}

impl Buffers13a {
    /// sacrebleu's `Tokenizer13a()(line)`, as words appended to `out` with their spans.
    ///
    /// sacrebleu first rewrites the line (`<skipped>` → "", `-\n` → "", `\n` → " ", and if there
    /// is an `&`: `&quot;` `&amp;` `&lt;` `&gt;` in that order, each a full `str.replace`), pads
    /// it with a space on both sides and applies four `re.sub`s (see [`words_13a`]).
    pub(super) fn run(&mut self, line: &str, out: &mut Vec<u8>, spans: &mut Vec<(u32, u32)>) {
        let mut line = line;
        // A fold without early exit, so that it compiles to SIMD: this test runs on every line.
        let rewrite = line.bytes().fold(false, |acc, b| acc | (b == b'<') | (b == b'\n') | (b == b'&'));
        if rewrite {
            let (buf, tmp) = (&mut self.rewrite, &mut self.rewrite_tmp);
            buf.clear();
            buf.push_str(line);
            replace_in_place(buf, tmp, "<skipped>", "");
            replace_in_place(buf, tmp, "-\n", "");
            replace_in_place(buf, tmp, "\n", " ");
            if buf.contains('&') {
                replace_in_place(buf, tmp, "&quot;", "\"");
                replace_in_place(buf, tmp, "&amp;", "&");
                replace_in_place(buf, tmp, "&lt;", "<");
                replace_in_place(buf, tmp, "&gt;", ">");
            }
            line = buf.as_str();
        }
        words_13a(line.as_bytes(), &mut WordSink { out, spans, open: None });
    }
}

/// sacrebleu's `Tokenizer13a()(line)`. For many lines use [`Preprocessor`], which reuses its
/// buffers.
pub fn tokenize_13a(line: &str) -> String {
    let mut out = Vec::new();
    Buffers13a::default().run(line, &mut out, &mut Vec::new());
    bytes_to_string(out)
}

/// The tokenizers only insert ASCII spaces at character boundaries and cut at whitespace
/// characters, so their output is valid UTF-8; the lossy fallback is unreachable.
pub(super) fn bytes_to_string(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
