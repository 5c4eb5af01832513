//! Parallel corpora: one sentence per line, line i of the source aligned with line i of the target.
//!
//! First step of the data flow (corpus → vocab → batches → model). Reading validates as it goes and
//! every defect names its file and line, because a corpus that is off by one line silently trains a
//! useless model: mismatched line counts, invalid UTF-8, empty lines, CR line endings, NUL bytes and
//! absurdly long lines. [`check_parallel`] lists every problem (for `seqkd check-corpus`);
//! [`read_parallel`] stops at the first. [`LengthFilter`] drops training pairs by length and ratio.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Limits a line must respect.
#[derive(Debug, Clone, Copy)]
pub struct LineLimits {
    /// Longer lines are reported as defects. 2048 characters is ~400 words: far beyond any sentence
    /// an NMT model trains on, so such a line is almost always a broken file (a missing newline,
    /// a paragraph, binary data).
    pub max_chars: usize,
    /// Whether an empty (or whitespace-only) line is a defect. It is in training corpora; a system
    /// output may legitimately contain an empty translation.
    pub allow_empty: bool,
}

impl Default for LineLimits {
    fn default() -> Self {
        Self { max_chars: 2048, allow_empty: false }
    }
}

impl LineLimits {
    /// For text to translate or score rather than train on: empty lines (empty translations) and
    /// lines of any length are fine.
    pub const ANY_LINE: Self = Self { max_chars: usize::MAX, allow_empty: true };
}

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Defect {
    InvalidUtf8 {
        byte_offset: usize,
    },
    EmptyLine,
    CarriageReturn,
    NulByte,
    TooLong {
        chars: usize,
        max: usize,
    },
    /// This file has fewer lines than its partner: it ends at `line - 1`.
    MissingLine {
        partner: PathBuf,
        partner_lines: usize,
    },
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defect::InvalidUtf8 { byte_offset } => {
                write!(f, "invalid UTF-8 at byte {} of the line; convert the file to UTF-8", byte_offset + 1)
            }
            Defect::EmptyLine => write!(f, "empty line; remove the pair from both files"),
            Defect::CarriageReturn => {
                write!(f, "carriage return (\\r): Windows line endings? convert with `dos2unix`")
            }
            Defect::NulByte => write!(f, "NUL byte in the line; is this a binary file?"),
            Defect::TooLong { chars, max } => write!(f, "line has {chars} characters (limit {max})"),
            Defect::MissingLine { partner, partner_lines } => write!(
                f,
                "file ends here, but {} has {partner_lines} lines: the files are not aligned",
                partner.display()
            ),
        }
    }
}

/// A defect at a file and line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: PathBuf,
    pub line: usize,
    #[serde(flatten)]
    pub defect: Defect,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.defect)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Defect(Problem),
    /// A caller's callback stopped the walk (its own error is returned instead).
    #[error("stopped by the caller")]
    Stopped,
}

/// One checked line: its text, or the defect found in it.
fn check_line<'a>(raw: &'a [u8], limits: &LineLimits) -> Result<&'a str, Defect> {
    let text = std::str::from_utf8(raw).map_err(|e| Defect::InvalidUtf8 { byte_offset: e.valid_up_to() })?;
    if text.contains('\r') {
        return Err(Defect::CarriageReturn);
    }
    if text.contains('\0') {
        return Err(Defect::NulByte);
    }
    if !limits.allow_empty && text.trim().is_empty() {
        return Err(Defect::EmptyLine);
    }
    // Counting chars is only needed when the byte length could exceed the limit.
    if raw.len() > limits.max_chars {
        let chars = text.chars().count();
        if chars > limits.max_chars {
            return Err(Defect::TooLong { chars, max: limits.max_chars });
        }
    }
    Ok(text)
}

/// Reads lines as raw bytes (so invalid UTF-8 is reported, not a read error), without the `\n`.
struct RawLines {
    reader: BufReader<File>,
    path: PathBuf,
    buf: Vec<u8>,
    line: usize,
}

impl RawLines {
    fn open(path: &Path) -> Result<Self, CorpusError> {
        let file = File::open(path).map_err(|source| CorpusError::Io { path: path.into(), source })?;
        Ok(Self {
            reader: BufReader::with_capacity(1 << 20, file),
            path: path.into(),
            buf: Vec::new(),
            line: 0,
        })
    }

    /// The next line's bytes, or None at the end of the file. A final line without `\n` counts.
    fn next_line(&mut self) -> Result<Option<&[u8]>, CorpusError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| CorpusError::Io { path: self.path.clone(), source })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        Ok(Some(&self.buf))
    }

    /// Counts the remaining lines (to report how long the longer file is).
    fn count_rest(&mut self) -> Result<usize, CorpusError> {
        while self.next_line()?.is_some() {}
        Ok(self.line)
    }
}

/// A source file and its aligned target file, read into memory.
#[derive(Debug, Clone, Default)]
pub struct ParallelCorpus {
    pub src: Vec<String>,
    pub tgt: Vec<String>,
}

impl ParallelCorpus {
    pub fn len(&self) -> usize {
        self.src.len()
    }

    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
    }

    /// Pairs as `(src, tgt)` string slices.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.src.iter().map(String::as_str).zip(self.tgt.iter().map(String::as_str))
    }
}

/// What [`check_parallel`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Line pairs read (the shorter file's length).
    pub pairs: usize,
    /// Every defect found, at most `MAX_REPORTED` of them; `total_problems` counts all.
    pub problems: Vec<Problem>,
    pub total_problems: usize,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.total_problems == 0
    }
}

const MAX_REPORTED: usize = 1000;

/// Walks both files in lockstep and reports every defect (never stops early, never panics).
pub fn check_parallel(src: &Path, tgt: &Path, limits: &LineLimits) -> Result<CheckReport, CorpusError> {
    let mut report = CheckReport::default();
    walk_parallel(
        src,
        tgt,
        limits,
        |problem| {
            report.total_problems += 1;
            if report.problems.len() < MAX_REPORTED {
                report.problems.push(problem);
            }
            Ok(())
        },
        |_, _| {
            report.pairs += 1;
            Ok(())
        },
    )?;
    Ok(report)
}

/// Reads a parallel corpus, failing at the first defect with its file and line.
pub fn read_parallel(src: &Path, tgt: &Path, limits: &LineLimits) -> Result<ParallelCorpus, CorpusError> {
    let mut corpus = ParallelCorpus::default();
    read_parallel_chunks(src, tgt, limits, usize::MAX, |whole| -> Result<(), CorpusError> {
        corpus = whole;
        Ok(())
    })?;
    Ok(corpus)
}

/// Checks a parallel corpus line by line without holding it, failing at the first defect with
/// its file and line. Returns the number of pairs.
pub fn walk_checked(src: &Path, tgt: &Path, limits: &LineLimits) -> Result<usize, CorpusError> {
    let mut pairs = 0;
    walk_parallel(
        src,
        tgt,
        limits,
        |problem| Err(CorpusError::Defect(problem)),
        |_, _| {
            pairs += 1;
            Ok(())
        },
    )?;
    Ok(pairs)
}

/// Streams a parallel corpus in chunks of up to `chunk` pairs, in order, without holding more than
/// one chunk; fails at the first defect with its file and line, as [`read_parallel`] does.
/// Returns the number of pairs.
pub fn read_parallel_chunks<E: From<CorpusError>>(
    src: &Path,
    tgt: &Path,
    limits: &LineLimits,
    chunk: usize,
    mut on_chunk: impl FnMut(ParallelCorpus) -> Result<(), E>,
) -> Result<usize, E> {
    let (chunk, mut pairs) = (chunk.max(1), 0);
    let mut corpus = ParallelCorpus::default();
    let mut failed = None;
    walk_parallel(
        src,
        tgt,
        limits,
        |problem| Err(CorpusError::Defect(problem)),
        |s, t| {
            corpus.src.push(s.to_owned());
            corpus.tgt.push(t.to_owned());
            pairs += 1;
            if corpus.len() == chunk {
                if let Err(e) = on_chunk(std::mem::take(&mut corpus)) {
                    failed = Some(e);
                    return Err(CorpusError::Stopped);
                }
            }
            Ok(())
        },
    )
    .map_err(|e| match (e, failed.take()) {
        (CorpusError::Stopped, Some(stopped)) => stopped,
        (e, _) => E::from(e),
    })?;
    if !corpus.is_empty() {
        on_chunk(corpus)?;
    }
    Ok(pairs)
}

/// The shared loop of [`check_parallel`], [`read_parallel`], [`walk_checked`] and
/// [`read_parallel_chunks`]: `on_problem` decides whether a defect stops the walk; `on_pair`
/// receives each pair whose two lines are both clean (and may stop it too).
fn walk_parallel(
    src: &Path,
    tgt: &Path,
    limits: &LineLimits,
    mut on_problem: impl FnMut(Problem) -> Result<(), CorpusError>,
    mut on_pair: impl FnMut(&str, &str) -> Result<(), CorpusError>,
) -> Result<(), CorpusError> {
    let mut src_lines = RawLines::open(src)?;
    let mut tgt_lines = RawLines::open(tgt)?;
    loop {
        let s = src_lines.next_line()?.map(|raw| check_line(raw, limits).map(str::to_owned));
        let t = tgt_lines.next_line()?.map(|raw| check_line(raw, limits).map(str::to_owned));
        let line = src_lines.line.max(tgt_lines.line);
        match (s, t) {
            (None, None) => return Ok(()),
            (Some(_), None) | (None, Some(_)) => {
                // One file ended early: report where, with the partner's full length.
                let (short, long) = if src_lines.line < line {
                    (&mut src_lines, &mut tgt_lines)
                } else {
                    (&mut tgt_lines, &mut src_lines)
                };
                let partner_lines = long.count_rest()?;
                return on_problem(Problem {
                    path: short.path.clone(),
                    line: short.line + 1,
                    defect: Defect::MissingLine { partner: long.path.clone(), partner_lines },
                });
            }
            (Some(s), Some(t)) => {
                let mut clean = true;
                if let Err(defect) = &s {
                    clean = false;
                    on_problem(Problem { path: src.into(), line, defect: defect.clone() })?;
                }
                if let Err(defect) = &t {
                    clean = false;
                    on_problem(Problem { path: tgt.into(), line, defect: defect.clone() })?;
                }
                if clean {
                    if let (Ok(s), Ok(t)) = (s, t) {
                        on_pair(&s, &t)?;
                    }
                }
            }
        }
    }
}

/// Checks a one-sided text file line by line without holding it, failing at the first defect with
/// its line. Returns the number of lines.
pub fn check_lines(path: &Path, limits: &LineLimits) -> Result<usize, CorpusError> {
    let mut lines = RawLines::open(path)?;
    while let Some(raw) = lines.next_line()? {
        if let Err(defect) = check_line(raw, limits) {
            return Err(CorpusError::Defect(Problem { path: path.into(), line: lines.line, defect }));
        }
    }
    Ok(lines.line)
}

/// Reads a one-sided text file (system output, references, input to translate), checking each line.
pub fn read_lines(path: &Path, limits: &LineLimits) -> Result<Vec<String>, CorpusError> {
    let mut lines = RawLines::open(path)?;
    let mut out = Vec::new();
    while let Some(raw) = lines.next_line()? {
        match check_line(raw, limits) {
            Ok(text) => out.push(text.to_owned()),
            Err(defect) => {
                return Err(CorpusError::Defect(Problem { path: path.into(), line: lines.line, defect }))
            }
        }
    }
    Ok(out)
}

/// The lines of a text by index, as a teacher pass reads them: all of a file's lines held, or
/// only a window of them ([`LineWindow`]).
pub trait Lines {
    /// Lines in the whole text (not only the window).
    fn count(&self) -> usize;
    /// Lines `range` of the whole text. Panics outside what is held, as slice indexing does.
    fn slice(&self, range: Range<usize>) -> &[String];
    /// FNV-1a of every line followed by `\n`: what a pass's job record pins its text with.
    fn text_hash(&self) -> u64;
    fn line(&self, i: usize) -> &str {
        &self.slice(i..i + 1)[0]
    }
}

/// The job-record hash of lines (see [`Lines::text_hash`]).
fn hash_lines<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut h = crate::fnv::Fnv1a::new();
    for line in lines {
        h.bytes(line);
        h.bytes(b"\n");
    }
    h.finish()
}

impl Lines for [String] {
    fn count(&self) -> usize {
        self.len()
    }
    fn slice(&self, range: Range<usize>) -> &[String] {
        &self[range]
    }
    fn text_hash(&self) -> u64 {
        hash_lines(self.iter().map(String::as_bytes))
    }
}

impl Lines for Vec<String> {
    fn count(&self) -> usize {
        self.len()
    }
    fn slice(&self, range: Range<usize>) -> &[String] {
        &self[range]
    }
    fn text_hash(&self) -> u64 {
        self.as_slice().text_hash()
    }
}

/// A window of a text file's lines: a shard of a teacher pass holds only its own sentences, yet
/// knows the whole file's line count and hash (read first, streamed). Every line is checked, as
/// [`read_lines`] does.
#[derive(Debug, Clone)]
pub struct LineWindow {
    path: PathBuf,
    count: usize,
    hash: u64,
    first: usize,
    lines: Vec<String>,
}

impl LineWindow {
    /// Reads `path` twice, streamed: once to check, count and hash its lines, then to keep the
    /// lines of `window(count)` (and to check that the file is still the one hashed).
    pub fn read(
        path: &Path,
        limits: &LineLimits,
        window: impl FnOnce(usize) -> Range<usize>,
    ) -> Result<Self, CorpusError> {
        let mut raw = RawLines::open(path)?;
        let mut h = crate::fnv::Fnv1a::new();
        while let Some(bytes) = raw.next_line()? {
            if let Err(defect) = check_line(bytes, limits) {
                return Err(CorpusError::Defect(Problem { path: path.into(), line: raw.line, defect }));
            }
            h.bytes(bytes);
            h.bytes(b"\n");
        }
        let (count, hash) = (raw.line, h.finish());
        let keep = window(count);
        let keep = keep.start.min(count)..keep.end.min(count);
        // The second pass reads the whole file again and rehashes it, so a file rewritten in
        // between (even with clean lines) fails instead of mixing two texts under one job.
        let mut raw = RawLines::open(path)?;
        let mut lines = Vec::with_capacity(keep.len());
        let mut again = crate::fnv::Fnv1a::new();
        let mut line = 0;
        while let Some(bytes) = raw.next_line()? {
            line += 1;
            again.bytes(bytes);
            again.bytes(b"\n");
            if keep.contains(&(line - 1)) {
                let text = check_line(bytes, limits)
                    .map_err(|defect| CorpusError::Defect(Problem { path: path.into(), line, defect }))?;
                lines.push(text.to_owned());
            }
        }
        if line != count || again.finish() != hash {
            return Err(CorpusError::Io {
                path: path.into(),
                source: std::io::Error::other("the file changed while it was read; run again"),
            });
        }
        Ok(Self { path: path.into(), count, hash, first: keep.start, lines })
    }

    /// The lines held: `first .. first + held`.
    pub fn held(&self) -> Range<usize> {
        self.first..self.first + self.lines.len()
    }
}

impl Lines for LineWindow {
    fn count(&self) -> usize {
        self.count
    }
    fn slice(&self, range: Range<usize>) -> &[String] {
        let held = self.held();
        assert!(
            held.start <= range.start && range.end <= held.end,
            "lines {range:?} of {} asked for, but only {held:?} are held",
            self.path.display()
        );
        &self.lines[range.start - self.first..range.end - self.first]
    }
    fn text_hash(&self) -> u64 {
        self.hash
    }
}

/// Training-pair filter by length (in tokens of whatever unit the caller counts, usually subwords).
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LengthFilter {
    /// Pairs with a side shorter than this are dropped.
    pub min_len: usize,
    /// Pairs with a side longer than this are dropped (it bounds the memory of one batch).
    pub max_len: usize,
    /// Pairs whose longer side is more than this many times the shorter are dropped; 9 is the
    /// default of Moses' `clean-corpus-n.perl`, lenient enough for subword counts of short sentences.
    pub max_ratio: f64,
}

impl Default for LengthFilter {
    fn default() -> Self {
        Self { min_len: 1, max_len: 200, max_ratio: 9.0 }
    }
}

impl LengthFilter {
    pub fn keep(&self, src_len: usize, tgt_len: usize) -> bool {
        let (short, long) = (src_len.min(tgt_len), src_len.max(tgt_len));
        short >= self.min_len && long <= self.max_len && (long as f64) <= self.max_ratio * short.max(1) as f64
    }

    /// Indices of the pairs to keep, in order.
    pub fn apply(&self, lengths: impl IntoIterator<Item = (usize, usize)>) -> Vec<usize> {
        lengths.into_iter().enumerate().filter(|(_, (s, t))| self.keep(*s, *t)).map(|(i, _)| i).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn write_pair(src: &[u8], tgt: &[u8]) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (s, t) = (dir.path().join("train.src"), dir.path().join("train.tgt"));
        std::fs::write(&s, src).unwrap();
        std::fs::write(&t, tgt).unwrap();
        (dir, s, t)
    }

    #[test]
    fn a_line_window_holds_its_lines_and_knows_the_whole_files_count_and_hash() {
        let (_dir, s, _) = write_pair(b"a b\nc d\ne f\ng h\ni j", b"");
        let all = read_lines(&s, &LineLimits::default()).unwrap();
        let mut seen = None;
        let w = LineWindow::read(&s, &LineLimits::default(), |n| {
            seen = Some(n);
            1..3
        })
        .unwrap();
        assert_eq!(seen, Some(5));
        assert_eq!((w.count(), w.held()), (5, 1..3));
        assert_eq!(w.text_hash(), all.text_hash());
        assert_eq!(w.slice(1..3), &all[1..3]);
        assert_eq!(w.line(2), "e f");
        let past = LineWindow::read(&s, &LineLimits::default(), |_| 4..9).unwrap();
        assert_eq!((past.held(), past.slice(4..5)), (4..5, &all[4..5]));
        assert!(std::panic::catch_unwind(|| w.slice(0..2).len()).is_err());

        let (_dir, bad, _) = write_pair(b"a\n\nb\n", b"");
        let err = LineWindow::read(&bad, &LineLimits::default(), |_| 0..1).unwrap_err().to_string();
        assert!(err.contains("train.src:2: empty line"), "{err}");
    }

    fn first_error(src: &[u8], tgt: &[u8]) -> String {
        let (_dir, s, t) = write_pair(src, tgt);
        read_parallel(&s, &t, &LineLimits::default()).unwrap_err().to_string()
    }

    #[test]
    fn clean_files_read_with_or_without_final_newline() {
        let (_dir, s, t) = write_pair(b"a b\nc d\n", b"x y\nz w");
        let corpus = read_parallel(&s, &t, &LineLimits::default()).unwrap();
        assert_eq!(corpus.src, ["a b", "c d"]);
        assert_eq!(corpus.tgt, ["x y", "z w"]);
        assert!(check_parallel(&s, &t, &LineLimits::default()).unwrap().is_clean());
    }

    #[test]
    fn each_defect_names_file_and_line() {
        let err = first_error(b"a\nb\nc\n", b"x\ny\n");
        assert!(err.contains("train.tgt:3: file ends here") && err.contains("has 3 lines"), "{err}");
        let err = first_error(b"a\n\xff\xfe\n", b"x\ny\n");
        assert!(err.contains("train.src:2: invalid UTF-8 at byte 1"), "{err}");
        let err = first_error(b"a\n", b"  \n");
        assert!(err.contains("train.tgt:1: empty line"), "{err}");
        let err = first_error(b"a\r\nb\r\n", b"x\ny\n");
        assert!(err.contains("train.src:1: carriage return"), "{err}");
        let err = first_error(b"a\nb\0\n", b"x\ny\n");
        assert!(err.contains("train.src:2: NUL byte"), "{err}");
        let long = "w ".repeat(3000);
        let err = first_error(format!("a\n{long}\n").as_bytes(), b"x\ny\n");
        assert!(err.contains("train.src:2: line has 6000 characters (limit 2048)"), "{err}");
    }

    #[test]
    fn check_reports_every_problem_and_the_clean_pairs() {
        let (_dir, s, t) = write_pair(b"a\n\nc\r\nd\ne\n", b"x\ny\nz\n\n");
        let report = check_parallel(&s, &t, &LineLimits::default()).unwrap();
        let got: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(report.total_problems, 4, "{got:#?}");
        assert!(got[0].ends_with("train.src:2: empty line; remove the pair from both files"));
        assert!(got[1].contains("train.src:3: carriage return"));
        assert!(got[2].contains("train.tgt:4: empty line"));
        assert!(got[3].contains("train.tgt:5: file ends here"));
        assert_eq!(report.pairs, 1);
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.en");
        let err = read_parallel(&missing, &missing, &LineLimits::default()).unwrap_err().to_string();
        assert!(err.contains("nope.en"), "{err}");
    }

    #[test]
    fn length_filter_drops_by_length_and_ratio() {
        let filter = LengthFilter { min_len: 1, max_len: 10, max_ratio: 2.0 };
        assert_eq!(filter.apply([(3, 4), (0, 2), (11, 10), (2, 5), (5, 10)]), [0, 4]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Arbitrary bytes never panic the reader: either pairs come back or an error names a line.
        #[test]
        fn arbitrary_bytes_never_panic(
            src in proptest::collection::vec(any::<u8>(), 0..400),
            tgt in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..400),
        ) {
            let (_dir, s, t) = write_pair(&src, &tgt);
            let limits = LineLimits { max_chars: 50, allow_empty: false };
            let report = check_parallel(&s, &t, &limits).unwrap();
            match read_parallel(&s, &t, &limits) {
                Ok(corpus) => {
                    prop_assert!(report.is_clean());
                    prop_assert_eq!(corpus.src.len(), corpus.tgt.len());
                    prop_assert_eq!(corpus.len(), report.pairs);
                }
                Err(CorpusError::Defect(p)) => {
                    prop_assert_eq!(&p, &report.problems[0]);
                    prop_assert!(p.line >= 1);
                }
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }
    }
}
