//! Counting BLEU's statistics, and the corpus and sentence BLEU entry points (the score itself is
//! `bleu.rs`).
//!
//! Sentence BLEU is what Seq-Inter calls millions of times, so [`SentenceBleu`] keeps every buffer
//! between calls (no allocation in steady state), counts n-grams through dense integer ids rather
//! than strings (see `ngrams.rs`), and can score many hypotheses against one prepared reference
//! ([`SentenceBleu::score_many`], [`BleuReference`]). [`sentence_bleu_par`] and
//! [`sentence_bleu_grouped_par`] spread that over rayon's threads.

use rayon::prelude::*;

use super::bleu::{compute_bleu, BleuConfig, BleuScore, BleuStats};
use super::ngrams::{Interner, MatchScratch, NgramIndex};
use super::tokenize::Preprocessor;
use super::MetricsError;

/// The prepared n-grams of one segment's reference(s): build once with
/// [`SentenceBleu::prepare_reference`], then score any number of hypotheses against it, from any
/// number of threads ([`SentenceBleu::score_prepared`]).
#[derive(Debug, Clone, Default)]
pub struct BleuReference {
    vocab: Interner,
    index: NgramIndex,
    ref_lens: Vec<u64>,
    // Scratch for building.
    units: Vec<u32>,
    bounds: Vec<(usize, usize)>,
}

impl BleuReference {
    /// Number of references it was built from.
    pub fn nrefs(&self) -> usize {
        self.ref_lens.len()
    }

    /// `BLEU._extract_reference_info` on preprocessed references.
    fn build<'a>(&mut self, pre: &mut Preprocessor, refs: impl Iterator<Item = &'a str>, max_order: usize) {
        self.units.clear();
        self.bounds.clear();
        self.ref_lens.clear();
        let mut first = true;
        for r in refs {
            pre.process(r);
            let words = pre.word_bytes();
            if first {
                // Sized for the first reference; the interner grows if more words follow.
                self.vocab.reset(words.len());
                first = false;
            }
            let start = self.units.len();
            for w in words {
                self.units.push(self.vocab.intern(w));
            }
            self.bounds.push((start, self.units.len()));
            self.ref_lens.push((self.units.len() - start) as u64);
        }
        if first {
            self.vocab.reset(0);
        }
        self.index.build(&self.units, &self.bounds, max_order);
    }

    /// `BLEU._get_closest_ref_len`: the reference length closest to `hyp_len`, the shorter on
    /// ties.
    fn closest_ref_len(&self, hyp_len: u64) -> u64 {
        let mut best: Option<(u64, u64)> = None; // (diff, len)
        for &len in &self.ref_lens {
            let diff = hyp_len.abs_diff(len);
            match best {
                None => best = Some((diff, len)),
                Some((d, l)) => {
                    if diff < d || (diff == d && len < l) {
                        best = Some((diff, len));
                    }
                }
            }
        }
        // sacrebleu returns -1 without references; we never build an empty one.
        best.map_or(0, |(_, l)| l)
    }
}

/// Hypothesis-side scratch, separate from the reference so both can be borrowed at once.
#[derive(Debug, Clone, Default)]
struct HypScratch {
    pre: Preprocessor,
    ids: Vec<u32>,
    matches: MatchScratch,
}

impl HypScratch {
    fn stats(&mut self, hyp: &str, reference: &BleuReference, max_order: usize) -> BleuStats {
        self.ids.clear();
        self.pre.process(hyp);
        let (vocab, index) = (&reference.vocab, &reference.index);
        self.ids.extend(self.pre.word_bytes().map(|w| index.unit_id(vocab.get(w))));
        let mut stats = BleuStats { sys_len: self.ids.len() as u64, ..Default::default() };
        stats.ref_len = reference.closest_ref_len(stats.sys_len);
        reference.index.match_counts(
            &self.ids,
            &mut self.matches,
            &mut stats.correct[..max_order],
            &mut stats.total[..max_order],
        );
        stats
    }
}

/// A reusable sentence-BLEU scorer: `sacrebleu.sentence_bleu` (with the configuration's options)
/// without allocating once warmed up. One per thread.
#[derive(Debug, Clone)]
pub struct SentenceBleu {
    config: BleuConfig,
    ref_pre: Preprocessor,
    reference: BleuReference,
    hyp: HypScratch,
}

impl SentenceBleu {
    /// A scorer for `config`; use [`BleuConfig::sentence`] for `sacrebleu.sentence_bleu`'s
    /// defaults.
    pub fn new(config: BleuConfig) -> Result<Self, MetricsError> {
        config.validate()?;
        Ok(Self {
            config,
            ref_pre: Preprocessor::new(config.tokenize, config.lowercase),
            reference: BleuReference::default(),
            hyp: HypScratch {
                pre: Preprocessor::new(config.tokenize, config.lowercase),
                ..Default::default()
            },
        })
    }

    pub fn config(&self) -> &BleuConfig {
        &self.config
    }

    /// The BLEU score of `hyp` against one reference.
    #[inline]
    pub fn score(&mut self, hyp: &str, reference: &str) -> f64 {
        compute_bleu(&self.stats(hyp, reference), &self.config).0
    }

    /// Statistics of `hyp` against one reference.
    pub fn stats(&mut self, hyp: &str, reference: &str) -> BleuStats {
        self.stats_multi(hyp, &[reference])
    }

    /// Statistics of `hyp` against several references (n-gram counts: maximum over references;
    /// length: the closest).
    pub fn stats_multi<R: AsRef<str>>(&mut self, hyp: &str, references: &[R]) -> BleuStats {
        let n = self.config.max_ngram_order;
        self.reference.build(&mut self.ref_pre, references.iter().map(|r| r.as_ref()), n);
        self.hyp.stats(hyp, &self.reference, n)
    }

    /// The full sacrebleu `BLEUScore` of `hyp` against `references`.
    pub fn score_full<R: AsRef<str>>(&mut self, hyp: &str, references: &[R]) -> BleuScore {
        let stats = self.stats_multi(hyp, references);
        BleuScore::from_stats(&stats, &self.config, references.len())
    }

    /// Scores every hypothesis of `hyps` against the same `reference`, whose n-grams are counted
    /// once; `out` is cleared and receives one score per hypothesis.
    pub fn score_many<H: AsRef<str>>(&mut self, reference: &str, hyps: &[H], out: &mut Vec<f64>) {
        let n = self.config.max_ngram_order;
        self.reference.build(&mut self.ref_pre, std::iter::once(reference), n);
        out.clear();
        for h in hyps {
            let stats = self.hyp.stats(h.as_ref(), &self.reference, n);
            out.push(compute_bleu(&stats, &self.config).0);
        }
    }

    /// Prepares references for [`SentenceBleu::score_prepared`] (allocates the returned value).
    pub fn prepare_reference<R: AsRef<str>>(&mut self, references: &[R]) -> BleuReference {
        let mut r = BleuReference::default();
        self.prepare_reference_into(references, &mut r);
        r
    }

    /// As [`SentenceBleu::prepare_reference`], reusing `out`'s buffers.
    pub fn prepare_reference_into<R: AsRef<str>>(&mut self, references: &[R], out: &mut BleuReference) {
        out.build(&mut self.ref_pre, references.iter().map(|r| r.as_ref()), self.config.max_ngram_order);
    }

    /// Statistics of `hyp` against a prepared reference. The reference must have been prepared
    /// by a scorer with the same tokenizer, case and order (it is not checked).
    pub fn stats_prepared(&mut self, hyp: &str, reference: &BleuReference) -> BleuStats {
        self.hyp.stats(hyp, reference, self.config.max_ngram_order)
    }

    /// The score of `hyp` against a prepared reference.
    #[inline]
    pub fn score_prepared(&mut self, hyp: &str, reference: &BleuReference) -> f64 {
        compute_bleu(&self.stats_prepared(hyp, reference), &self.config).0
    }
}

/// `sacrebleu.sentence_bleu(hyp, refs, ...)` with `config`'s options (see
/// [`BleuConfig::sentence`] for its defaults). For many calls use [`SentenceBleu`].
pub fn sentence_bleu<R: AsRef<str>>(
    hyp: &str,
    references: &[R],
    config: &BleuConfig,
) -> Result<BleuScore, MetricsError> {
    if references.is_empty() {
        return Err(MetricsError::NoReferences);
    }
    Ok(SentenceBleu::new(*config)?.score_full(hyp, references))
}

/// Sentence BLEU of every pair `(hyps[i], refs[i])`, in parallel (rayon), one score per pair.
pub fn sentence_bleu_par<H, R>(hyps: &[H], refs: &[R], config: &BleuConfig) -> Result<Vec<f64>, MetricsError>
where
    H: AsRef<str> + Sync,
    R: AsRef<str> + Sync,
{
    config.validate()?;
    if hyps.len() != refs.len() {
        return Err(MetricsError::LengthMismatch { hyps: hyps.len(), refs: refs.len() });
    }
    let scorer = SentenceBleu::new(*config)?;
    Ok(hyps
        .par_iter()
        .zip(refs.par_iter())
        .with_min_len(256)
        .map_init(|| scorer.clone(), |s, (h, r)| s.score(h.as_ref(), r.as_ref()))
        .collect())
}

/// Sentence BLEU of every hypothesis of `hyp_groups[i]` against `refs[i]` (e.g. the n-best list
/// of each source sentence), in parallel; each reference is prepared once. The result has the
/// shape of `hyp_groups`.
pub fn sentence_bleu_grouped_par<G, H, R>(
    hyp_groups: &[G],
    refs: &[R],
    config: &BleuConfig,
) -> Result<Vec<Vec<f64>>, MetricsError>
where
    G: AsRef<[H]> + Sync,
    H: AsRef<str> + Sync,
    R: AsRef<str> + Sync,
{
    if hyp_groups.len() != refs.len() {
        return Err(MetricsError::LengthMismatch { hyps: hyp_groups.len(), refs: refs.len() });
    }
    let scorer = SentenceBleu::new(*config)?;
    Ok(hyp_groups
        .par_iter()
        .zip(refs.par_iter())
        .with_min_len(16)
        .map_init(
            || scorer.clone(),
            |s, (g, r)| {
                let mut out = Vec::with_capacity(g.as_ref().len());
                s.score_many(r.as_ref(), g.as_ref(), &mut out);
                out
            },
        )
        .collect())
}

/// Corpus BLEU against several reference streams (`ref_streams[k][i]` is the k-th reference of
/// segment i), as `BLEU(...).corpus_score(hyps, ref_streams)`.
pub fn corpus_bleu_multi<H, R>(
    hyps: &[H],
    ref_streams: &[&[R]],
    config: &BleuConfig,
) -> Result<BleuScore, MetricsError>
where
    H: AsRef<str> + Sync,
    R: AsRef<str> + Sync,
{
    config.validate()?;
    check_streams(hyps.len(), ref_streams.iter().map(|s| s.len()))?;
    let scorer = SentenceBleu::new(*config)?;
    let nrefs = ref_streams.len();
    let stats = (0..hyps.len())
        .into_par_iter()
        .with_min_len(64)
        .map_init(
            || (scorer.clone(), Vec::with_capacity(nrefs)),
            |(s, refs), i| {
                refs.clear();
                refs.extend(ref_streams.iter().map(|stream| stream[i].as_ref()));
                s.stats_multi(hyps[i].as_ref(), refs)
            },
        )
        .reduce(BleuStats::default, |mut a, b| {
            a += &b;
            a
        });
    Ok(BleuScore::from_stats(&stats, config, nrefs))
}

/// Corpus BLEU with one reference per segment: `sacrebleu.corpus_bleu(hyps, [refs], ...)`.
pub fn corpus_bleu<H, R>(hyps: &[H], refs: &[R], config: &BleuConfig) -> Result<BleuScore, MetricsError>
where
    H: AsRef<str> + Sync,
    R: AsRef<str> + Sync,
{
    corpus_bleu_multi(hyps, &[refs], config)
}

/// The checks of sacrebleu's command line: references exist, the corpus is not empty, and every
/// stream has one line per hypothesis.
pub(crate) fn check_streams(
    n_hyps: usize,
    mut stream_lens: impl ExactSizeIterator<Item = usize>,
) -> Result<(), MetricsError> {
    if stream_lens.len() == 0 {
        return Err(MetricsError::NoReferences);
    }
    if let Some(refs) = stream_lens.find(|&n| n != n_hyps) {
        return Err(MetricsError::LengthMismatch { hyps: n_hyps, refs });
    }
    if n_hyps == 0 {
        return Err(MetricsError::EmptyCorpus);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::bleu::{Smoothing, MAX_SUPPORTED_ORDER};
    use crate::metrics::tokenize::TokenizeKind;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Expected values printed by sacrebleu 2.6.0 (`sacrebleu.sentence_bleu(h, [r], ...)`).
    #[test]
    fn sentence_bleu_matches_sacrebleu() {
        // (hyp, ref, [exp, floor, add-k, none])
        let cases: &[(&str, &str, [f64; 4])] = &[
            (
                "The cat sat on the mat.",
                "The cat sat on a mat.",
                [48.892302243490086, 48.892302243490086, 59.15463685222679, 48.892302243490086],
            ),
            ("", "The cat.", [0.0; 4]),
            ("", "", [0.0; 4]),
            ("a", "a", [100.00000000000004; 4]),
            ("the the the the", "the cat", [15.97357760615681, 8.034284189446518, 31.947155212313625, 0.0]),
            (
                "Hello, world!",
                "Hello world!",
                [35.35533905932737, 18.803015465431972, 50.000000000000014, 0.0],
            ),
            (
                "It is 3.5% (approx.)",
                "It is 3.5 % approx.",
                [41.11336169005198, 41.11336169005198, 50.86989136546122, 41.11336169005198],
            ),
            ("a b c d e", "a b c d e f g h", [54.88116360940266; 4]),
        ];
        let mut scorers: Vec<SentenceBleu> = ["exp", "floor", "add-k", "none"]
            .iter()
            .map(|m| {
                let smooth = Smoothing::from_method(m, None).unwrap();
                SentenceBleu::new(BleuConfig { smooth, ..BleuConfig::sentence() }).unwrap()
            })
            .collect();
        for &(h, r, want) in cases {
            for (s, w) in scorers.iter_mut().zip(want) {
                let got = s.score(h, r);
                assert!(close(got, w), "{h:?} vs {r:?} ({:?}): got {got}, want {w}", s.config().smooth);
                assert_eq!(got, sentence_bleu(h, &[r], s.config()).unwrap().score);
            }
        }
        let mut s = SentenceBleu::new(BleuConfig::sentence()).unwrap();
        let two = ["a cat sat on a mat", "the cat is on the mat"];
        assert!(close(s.score_full("the cat sat on the mat", &two).score, 53.7284965911771));
        let mut out = Vec::new();
        s.score_many("The cat sat on a mat.", &["The cat sat on the mat.", "", "Hello, world!"], &mut out);
        assert!(close(out[0], 48.892302243490086) && out[1] == 0.0 && out[2] == 0.0, "{out:?}");
    }

    #[test]
    fn corpus_bleu_multi_reference() {
        let hyps = ["the cat sat on the mat", "x"];
        let r1 = ["a cat sat on a mat", "y"];
        let r2 = ["the cat is on the mat", "x z"];
        let s = corpus_bleu_multi(&hyps, &[&r1[..], &r2[..]], &BleuConfig::default()).unwrap();
        assert!(close(s.score, 53.7284965911771));
        assert_eq!(
            s.to_string(),
            "BLEU = 53.73 100.0/100.0/50.0/16.7 (BP = 1.000 ratio = 1.000 hyp_len = 7 ref_len = 7)"
        );
        assert!(s.signature().starts_with("nrefs:2|"));
    }

    #[test]
    fn corpus_bleu_line_and_signature() {
        let hyps = ["The cat sat on the mat.", "Hello, world!"];
        let refs = ["The cat sat on a mat.", "Hello world!"];
        let s = corpus_bleu(&hyps, &refs, &BleuConfig::default()).unwrap();
        assert_eq!(s.signature(), "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
        assert_eq!(
            s.to_string(),
            "BLEU = 40.15 81.8/55.6/28.6/20.0 (BP = 1.000 ratio = 1.100 hyp_len = 11 ref_len = 10)"
        );
        assert_eq!(
            s.format_with_signature(1),
            "BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0 = 40.1 81.8/55.6/28.6/20.0 \
             (BP = 1.000 ratio = 1.100 hyp_len = 11 ref_len = 10)"
        );
        let cfg = BleuConfig { smooth: Smoothing::floor(), lowercase: true, ..BleuConfig::default() };
        assert_eq!(cfg.signature(1), "nrefs:1|case:lc|eff:no|tok:13a|smooth:floor[0.10]|version:2.6.0");
    }

    #[test]
    fn any_input_scores_without_panicking() {
        let alphabet = [
            "a",
            "b",
            "A",
            " ",
            ".",
            ",",
            "-",
            "5",
            "&amp;",
            "<skipped>",
            "\n",
            "Σ",
            "İ",
            "\u{1c}",
            "\u{a0}",
            "€",
            "\u{301}",
            "\u{0}",
            "\u{10ffff}",
            "(",
            "\"",
            "'",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut random = || -> String {
            let len = (next() % 12) as usize;
            (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect()
        };
        let kinds = [TokenizeKind::None, TokenizeKind::Tok13a, TokenizeKind::Intl, TokenizeKind::Char];
        let smooths = [Smoothing::Exp, Smoothing::floor(), Smoothing::add_k(), Smoothing::None];
        for k in 0..2000 {
            let cfg = BleuConfig {
                tokenize: kinds[k % 4],
                lowercase: k % 3 == 0,
                smooth: smooths[(k / 4) % 4],
                max_ngram_order: 1 + k % MAX_SUPPORTED_ORDER,
                effective_order: k % 2 == 0,
            };
            let mut s = SentenceBleu::new(cfg).unwrap();
            let (h, r1, r2) = (random(), random(), random());
            let score = s.score(&h, &r1);
            assert!((0.0..=100.0 + 1e-9).contains(&score), "{score} for {h:?} / {r1:?}");
            let multi = s.score_full(&h, &[r1.as_str(), r2.as_str()]);
            assert!(multi.score >= 0.0 && multi.to_string().starts_with("BLEU = "));
            // A reference prepared for a lower order must not break a scorer of a higher one.
            let mut low = SentenceBleu::new(BleuConfig { max_ngram_order: 1, ..cfg }).unwrap();
            let prepared = low.prepare_reference(&[r1.as_str()]);
            assert!(s.score_prepared(&h, &prepared).is_finite());
        }
    }

    #[test]
    fn errors_and_empty_input() {
        let cfg = BleuConfig::default();
        let e = corpus_bleu(&["a"], &["a", "b"], &cfg).unwrap_err();
        assert!(e.to_string().contains('1') && e.to_string().contains('2'), "{e}");
        assert!(matches!(corpus_bleu::<&str, &str>(&[], &[], &cfg), Err(MetricsError::EmptyCorpus)));
        let s = corpus_bleu(&["", ""], &["a b", ""], &cfg).unwrap();
        assert_eq!(s.score, 0.0);
        assert_eq!(
            s.to_string(),
            "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 0.000 ratio = 0.000 hyp_len = 0 ref_len = 2)"
        );
        assert!(SentenceBleu::new(BleuConfig { max_ngram_order: 0, ..cfg }).is_err());
    }
}
