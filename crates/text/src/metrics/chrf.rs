//! chrF and chrF++ exactly as sacrebleu 2.6.0 computes them (`sacrebleu.metrics.chrf.CHRF`):
//! character n-gram F-score (Popović 2015), optionally with word n-grams (chrF++, Popović 2017).
//!
//! Defaults are sacrebleu's: character order 6, word order 0, beta 2, whitespace removed before
//! extracting character n-grams, and the "effective order" averaging of sacrebleu >= 2.0 rather
//! than chrF++.py's epsilon smoothing. N-grams are counted through dense ids (`ngrams.rs`), and the
//! F-score arithmetic follows `CHRF._compute_f_score` operation by operation.

use std::fmt;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::bleu_scorer::check_streams;
use super::ngrams::{Interner, MatchScratch, NgramIndex};
use super::pystr::{is_py_whitespace, py_lower_into, py_split};
use super::{MetricScore, MetricsError, SACREBLEU_VERSION};

/// chrF options; `Default` is sacrebleu's chrF2 (`CHRF()` / `-m chrf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChrfConfig {
    /// Maximum character n-gram order (`CHRF.CHAR_ORDER` = 6).
    pub char_order: usize,
    /// Maximum word n-gram order (`CHRF.WORD_ORDER` = 0; 2 gives chrF++).
    pub word_order: usize,
    /// Weight of recall relative to precision (`CHRF.BETA` = 2).
    pub beta: u32,
    pub lowercase: bool,
    /// Keep whitespace in character n-grams (sacrebleu's `whitespace`, default off).
    pub whitespace: bool,
    /// chrF++.py-style epsilon smoothing instead of effective-order averaging.
    pub eps_smoothing: bool,
}

impl Default for ChrfConfig {
    fn default() -> Self {
        Self {
            char_order: 6,
            word_order: 0,
            beta: 2,
            lowercase: false,
            whitespace: false,
            eps_smoothing: false,
        }
    }
}

impl ChrfConfig {
    /// chrF++: the defaults with word order 2.
    pub fn chrf_plus_plus() -> Self {
        Self { word_order: 2, ..Self::default() }
    }

    /// Rejects configurations sacrebleu cannot compute (no order at all divides by zero).
    pub fn validate(&self) -> Result<(), MetricsError> {
        if self.char_order + self.word_order == 0 {
            return Err(MetricsError::InvalidConfig("chrF needs char_order + word_order >= 1".into()));
        }
        Ok(())
    }

    /// `chrF2`, `chrF2++`, ...: `chrF{beta}` plus one `+` per word order.
    pub fn name(&self) -> String {
        format!("chrF{}{}", self.beta, "+".repeat(self.word_order))
    }

    /// sacrebleu's signature, e.g. `nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0`.
    pub fn signature(&self, nrefs: usize) -> String {
        format!(
            "nrefs:{nrefs}|case:{}|eff:{}|nc:{}|nw:{}|space:{}|version:{SACREBLEU_VERSION}",
            if self.lowercase { "lc" } else { "mixed" },
            if self.eps_smoothing { "no" } else { "yes" },
            self.char_order,
            self.word_order,
            if self.whitespace { "yes" } else { "no" },
        )
    }

    fn order(&self) -> usize {
        self.char_order + self.word_order
    }

    /// `CHRF._compute_f_score`: `stats` holds `[hyp, ref, match]` per order, character orders
    /// first.
    pub fn f_score(&self, stats: &[u64]) -> f64 {
        const EPS: f64 = 1e-16;
        let factor = (self.beta as f64) * (self.beta as f64);
        let mut score = 0.0f64;
        let mut effective_order = 0u32;
        let (mut avg_prec, mut avg_rec) = (0.0f64, 0.0f64);
        for t in stats.chunks_exact(3).take(self.order()) {
            let (n_hyp, n_ref, n_match) = (t[0], t[1], t[2]);
            // chrF++.py style EPS smoothing (also used by Moses and NLTK)
            let prec = if n_hyp > 0 { n_match as f64 / n_hyp as f64 } else { EPS };
            let rec = if n_ref > 0 { n_match as f64 / n_ref as f64 } else { EPS };
            let denom = factor * prec + rec;
            score += if denom > 0.0 { (1.0 + factor) * prec * rec / denom } else { EPS };
            // sacreBLEU <2.0.0 style effective order smoothing
            if n_hyp > 0 && n_ref > 0 {
                avg_prec += prec;
                avg_rec += rec;
                effective_order += 1;
            }
        }
        if self.eps_smoothing {
            return 100.0 * score / self.order() as f64;
        }
        if effective_order == 0 {
            avg_prec = 0.0;
            avg_rec = 0.0;
        } else {
            avg_prec /= effective_order as f64;
            avg_rec /= effective_order as f64;
        }
        if avg_prec + avg_rec != 0.0 {
            let mut score = (1.0 + factor) * avg_prec * avg_rec;
            score /= (factor * avg_prec) + avg_rec;
            100.0 * score
        } else {
            0.0
        }
    }
}

/// A chrF result, as sacrebleu's `CHRFScore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChrfScore {
    pub score: f64,
    /// Summed `[hyp, ref, match]` counts per order (character orders, then word orders).
    pub stats: Vec<u64>,
    pub config: ChrfConfig,
    pub nrefs: usize,
}

impl ChrfScore {
    /// `chrF2`, `chrF2++`, ...
    pub fn name(&self) -> String {
        self.config.name()
    }

    pub fn signature(&self) -> String {
        self.config.signature(self.nrefs)
    }

    /// What the sacrebleu command line prints with `-f text -w width`: `chrF2|<signature> = 51.2`.
    pub fn format_with_signature(&self, width: usize) -> String {
        format!("{}|{} = {:.width$}", self.name(), self.signature(), self.score)
    }

    /// The JSON object of `sacrebleu -f json -w width`.
    pub fn to_metric_score(&self, width: usize) -> MetricScore {
        MetricScore::new(&self.name(), self.score, width, self.signature(), None)
    }
}

/// `str(score)` in sacrebleu: `chrF2 = 51.23`.
impl fmt::Display for ChrfScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {:.2}", self.name(), self.score)
    }
}

/// `string.punctuation`, which chrF++ strips from word edges.
#[inline]
fn is_ascii_punct(c: char) -> bool {
    c.is_ascii_punctuation()
}

/// `CHRF._remove_punctuation`: one punctuation character is split off the end of a word, or
/// else off its start (so `(hi)` gives `(hi` and `)`, sacrebleu issue #124).
fn remove_punctuation<'a>(sent: &'a str, out: &mut Vec<&'a str>) {
    out.clear();
    for w in py_split(sent) {
        let mut chars = w.chars();
        let first = chars.next();
        let last = chars.next_back();
        match (first, last) {
            (Some(_), None) => out.push(w),
            (Some(f), Some(l)) => {
                if is_ascii_punct(l) {
                    out.push(&w[..w.len() - l.len_utf8()]);
                    out.push(&w[w.len() - l.len_utf8()..]);
                } else if is_ascii_punct(f) {
                    out.push(&w[..f.len_utf8()]);
                    out.push(&w[f.len_utf8()..]);
                } else {
                    out.push(w);
                }
            }
            (None, _) => {}
        }
    }
}

/// A reusable chrF scorer (buffers kept between segments). One per thread.
#[derive(Debug, Clone, Default)]
pub struct ChrfScorer {
    config: ChrfConfig,
    hyp_text: String,
    ref_text: String,
    hyp_chars: Vec<u32>,
    ref_chars: Vec<u32>,
    ids: Vec<u32>,
    index: NgramIndex,
    vocab: Interner,
    matches: MatchScratch,
    counts: Vec<u64>,
    stats: Vec<u64>,
    best: Vec<u64>,
}

impl ChrfScorer {
    pub fn new(config: ChrfConfig) -> Result<Self, MetricsError> {
        config.validate()?;
        Ok(Self { config, ..Default::default() })
    }

    pub fn config(&self) -> &ChrfConfig {
        &self.config
    }

    /// `_preprocess_segment` (optional lowercasing) into `out`.
    fn preprocess(lowercase: bool, s: &str, out: &mut String) {
        out.clear();
        if lowercase {
            py_lower_into(s, out);
        } else {
            out.push_str(s);
        }
    }

    /// Characters of `extract_all_char_ngrams`: whitespace removed unless configured otherwise.
    fn chars(whitespace: bool, s: &str, out: &mut Vec<u32>) {
        out.clear();
        out.extend(s.chars().filter(|&c| whitespace || !is_py_whitespace(c)).map(|c| c as u32));
    }

    /// The segment statistics of `hyp` (`_compute_segment_statistics`): against each reference,
    /// keeping the first with the best F-score. Returns `[hyp, ref, match]` per order.
    pub fn segment_stats<R: AsRef<str>>(&mut self, hyp: &str, references: &[R]) -> &[u64] {
        let cfg = self.config;
        let order = cfg.order();
        Self::preprocess(cfg.lowercase, hyp, &mut self.hyp_text);
        Self::chars(cfg.whitespace, &self.hyp_text, &mut self.hyp_chars);
        self.best.clear();
        self.best.resize(3 * order, 0);
        let mut best_f = -1.0f64;
        let mut hyp_words = Vec::new();
        for r in references {
            self.stats.clear();
            self.stats.resize(3 * order, 0);
            Self::preprocess(cfg.lowercase, r.as_ref(), &mut self.ref_text);
            Self::chars(cfg.whitespace, &self.ref_text, &mut self.ref_chars);
            // Character n-grams.
            if cfg.char_order > 0 {
                let n_ref = self.ref_chars.len();
                self.index.build(&self.ref_chars, &[(0, n_ref)], cfg.char_order);
                self.ids.clear();
                self.ids.extend(self.hyp_chars.iter().map(|&c| self.index.unit_id(c)));
                Self::collect(
                    &self.index,
                    &self.ids,
                    &mut self.matches,
                    &mut self.counts,
                    &mut self.stats[..3 * cfg.char_order],
                );
            }
            // Word n-grams (chrF++).
            if cfg.word_order > 0 {
                let mut ref_words = Vec::new();
                remove_punctuation(&self.ref_text, &mut ref_words);
                self.vocab.reset(ref_words.len());
                self.ids.clear();
                self.ids.extend(ref_words.iter().map(|w| self.vocab.intern(w.as_bytes())));
                let n_ref = self.ids.len();
                self.index.build(&self.ids, &[(0, n_ref)], cfg.word_order);
                remove_punctuation(&self.hyp_text, &mut hyp_words);
                self.ids.clear();
                let (vocab, index) = (&self.vocab, &self.index);
                self.ids.extend(hyp_words.iter().map(|w| index.unit_id(vocab.get(w.as_bytes()))));
                Self::collect(
                    &self.index,
                    &self.ids,
                    &mut self.matches,
                    &mut self.counts,
                    &mut self.stats[3 * cfg.char_order..],
                );
            }
            let f = cfg.f_score(&self.stats);
            if f > best_f {
                best_f = f;
                std::mem::swap(&mut self.best, &mut self.stats);
            }
        }
        &self.best
    }

    /// `_get_match_statistics` for every order of `index`: `[hyp, ref, match]` triples.
    fn collect(
        index: &NgramIndex,
        hyp_ids: &[u32],
        scratch: &mut MatchScratch,
        counts: &mut Vec<u64>,
        out: &mut [u64],
    ) {
        let orders = out.len() / 3;
        counts.clear();
        counts.resize(2 * orders, 0);
        let (correct, total) = counts.split_at_mut(orders);
        index.match_counts(hyp_ids, scratch, correct, total);
        for n in 1..=orders {
            let t = &mut out[3 * (n - 1)..3 * n];
            // Don't count hits if no reference exists for that n-gram order.
            t[0] = if index.has_order(n) { total[n - 1] } else { 0 };
            t[1] = index.ref_total(n);
            t[2] = correct[n - 1];
        }
    }

    /// sentence chrF of `hyp` against `references`.
    pub fn score<R: AsRef<str>>(&mut self, hyp: &str, references: &[R]) -> f64 {
        let cfg = self.config;
        let stats = self.segment_stats(hyp, references);
        cfg.f_score(stats)
    }
}

/// `sacrebleu.sentence_chrf(hyp, refs, ...)` with `config`'s options.
pub fn sentence_chrf<R: AsRef<str>>(
    hyp: &str,
    references: &[R],
    config: &ChrfConfig,
) -> Result<ChrfScore, MetricsError> {
    if references.is_empty() {
        return Err(MetricsError::NoReferences);
    }
    let mut s = ChrfScorer::new(*config)?;
    let stats = s.segment_stats(hyp, references).to_vec();
    Ok(ChrfScore { score: config.f_score(&stats), stats, config: *config, nrefs: references.len() })
}

/// Corpus chrF against several reference streams (`ref_streams[k][i]` is the k-th reference of
/// segment i), as `CHRF(...).corpus_score(hyps, ref_streams)`.
pub fn corpus_chrf_multi<H, R>(
    hyps: &[H],
    ref_streams: &[&[R]],
    config: &ChrfConfig,
) -> Result<ChrfScore, MetricsError>
where
    H: AsRef<str> + Sync,
    R: AsRef<str> + Sync,
{
    config.validate()?;
    check_streams(hyps.len(), ref_streams.iter().map(|s| s.len()))?;
    let width = 3 * config.order();
    let scorer = ChrfScorer::new(*config)?;
    let stats = (0..hyps.len())
        .into_par_iter()
        .with_min_len(64)
        .fold(
            || (scorer.clone(), Vec::with_capacity(ref_streams.len()), vec![0u64; width]),
            |(mut s, mut refs, mut acc), i| {
                refs.clear();
                refs.extend(ref_streams.iter().map(|stream| stream[i].as_ref()));
                for (a, b) in acc.iter_mut().zip(s.segment_stats(hyps[i].as_ref(), &refs)) {
                    *a += b;
                }
                (s, refs, acc)
            },
        )
        .map(|(_, _, acc)| acc)
        .reduce(
            || vec![0u64; width],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += y;
                }
                a
            },
        );
    Ok(ChrfScore { score: config.f_score(&stats), stats, config: *config, nrefs: ref_streams.len() })
}

/// Corpus chrF with one reference per segment: `sacrebleu.corpus_chrf(hyps, [refs], ...)`.
pub fn corpus_chrf<H, R>(hyps: &[H], refs: &[R], config: &ChrfConfig) -> Result<ChrfScore, MetricsError>
where
    H: AsRef<str> + Sync,
    R: AsRef<str> + Sync,
{
    corpus_chrf_multi(hyps, &[refs], config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Expected values printed by sacrebleu 2.6.0.
    #[test]
    fn chrf_matches_sacrebleu() {
        let hyps = ["The cat sat on the mat.", "Hello, world!"];
        let refs = ["The cat sat on a mat.", "Hello world!"];
        let s = corpus_chrf(&hyps, &refs, &ChrfConfig::default()).unwrap();
        assert_eq!(s.signature(), "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0");
        assert_eq!(s.to_string(), "chrF2 = 68.67");
        assert_eq!(s.format_with_signature(1), format!("chrF2|{} = 68.7", s.signature()));
        let pp = corpus_chrf(&hyps, &refs, &ChrfConfig::chrf_plus_plus()).unwrap();
        assert_eq!(pp.to_string(), "chrF2++ = 70.16");
        let two = ["The cat sat on a mat.", "The cat is on the mat."];
        let sc = sentence_chrf("The cat sat on the mat.", &two, &ChrfConfig::default()).unwrap();
        assert!(close(sc.score, 71.42247563033848), "{}", sc.score);
        for (h, r) in [("", ""), ("a", ""), ("", "a")] {
            assert_eq!(sentence_chrf(h, &[r], &ChrfConfig::default()).unwrap().score, 0.0);
        }
    }

    #[test]
    fn any_input_scores_without_panicking() {
        let alphabet =
            ["a", "b", "A", " ", ".", ",", "(", "Σ", "İ", "\u{1c}", "\u{a0}", "€", "\u{301}", "\u{0}", "'"];
        let mut state = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut random = || -> String {
            let len = (next() % 10) as usize;
            (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect()
        };
        for k in 0..1000 {
            let cfg = ChrfConfig {
                char_order: k % 7,
                word_order: 1 + k % 3,
                beta: (k % 4) as u32,
                lowercase: k % 2 == 0,
                whitespace: k % 5 == 0,
                eps_smoothing: k % 3 == 0,
            };
            let (h, r1, r2) = (random(), random(), random());
            let s = sentence_chrf(&h, &[r1.as_str(), r2.as_str()], &cfg).unwrap();
            assert!((0.0..=100.0 + 1e-9).contains(&s.score), "{} for {h:?} / {r1:?}", s.score);
        }
        assert!(ChrfConfig { char_order: 0, word_order: 0, ..ChrfConfig::default() }.validate().is_err());
    }

    #[test]
    fn punctuation_split_like_sacrebleu() {
        let mut out = Vec::new();
        remove_punctuation("(hi) \"quoted\" a . ab, (x é.", &mut out);
        assert_eq!(out, ["(hi", ")", "\"quoted", "\"", "a", ".", "ab", ",", "(", "x", "é", "."]);
    }
}
