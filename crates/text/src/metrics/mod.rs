//! Translation metrics, identical to sacrebleu 2.6.0: BLEU (corpus and sentence level, all four
//! smoothing methods, tokenizers `13a`, `intl`, `char`, `none`) and chrF / chrF++; and the paired
//! bootstrap interval of a BLEU difference (`bootstrap`).
//!
//! "Identical" means the same numbers to the last bit on the same platform (same float operations
//! in the same order, same C library `exp`/`log`), the same signatures, the same printed lines and
//! the same `sacrebleu -f json` objects. `tests/metrics_golden.rs` checks this against numbers
//! produced by `scripts/sacrebleu_golden.py` on real corpora.
//!
//! ```
//! use seqkd_text::metrics::{corpus_bleu, corpus_chrf, BleuConfig, ChrfConfig, SentenceBleu};
//!
//! let hyps = ["The cat sat on the mat.", "Hello, world!"];
//! let refs = ["The cat sat on a mat.", "Hello world!"];
//! let bleu = corpus_bleu(&hyps, &refs, &BleuConfig::default()).unwrap();
//! assert_eq!(bleu.to_string(),
//!     "BLEU = 40.15 81.8/55.6/28.6/20.0 (BP = 1.000 ratio = 1.100 hyp_len = 11 ref_len = 10)");
//! assert_eq!(corpus_chrf(&hyps, &refs, &ChrfConfig::default()).unwrap().to_string(), "chrF2 = 68.67");
//!
//! // Sentence BLEU as sacrebleu.sentence_bleu (effective order, exp smoothing), reusable scorer.
//! let mut scorer = SentenceBleu::new(BleuConfig::sentence()).unwrap();
//! let s = scorer.score("The cat sat on the mat.", "The cat sat on a mat.");
//! assert!((s - 48.892302243490086).abs() < 1e-12);
//! ```
//!
//! Python-side details mirrored here: `str.split`/`isspace` (which include U+001C..U+001F),
//! `str.lower` of CPython 3.11 (Unicode 14; Rust's is Unicode 17, see `pystr.rs`), the `regex`
//! module's Unicode 17 classes for `intl`, and CPython 3.11's plain left-to-right `sum()` (3.12+
//! sums floats with compensation, which can move sentence BLEU in the last bit). Checked code
//! point by code point against Python in `tests/metrics_golden.rs`.

pub mod bleu;
pub mod bleu_scorer;
pub mod bootstrap;
pub mod chrf;
mod ngrams;
pub mod pystr;
pub mod tokenize;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

pub use bleu::{BleuConfig, BleuScore, BleuStats, Smoothing, MAX_NGRAM_ORDER};
pub use bleu_scorer::{
    corpus_bleu, corpus_bleu_multi, sentence_bleu, sentence_bleu_grouped_par, sentence_bleu_par,
    BleuReference, SentenceBleu,
};
pub use bootstrap::{paired_bootstrap_bleu, BleuDifference};
pub use chrf::{corpus_chrf, corpus_chrf_multi, sentence_chrf, ChrfConfig, ChrfScore, ChrfScorer};
pub use tokenize::{tokenize, Preprocessor, TokenizeKind};

/// The sacrebleu version whose results this module reproduces (it appears in signatures).
pub const SACREBLEU_VERSION: &str = "2.6.0";

/// What can go wrong when scoring.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    #[error(
        "hypotheses and references have different numbers of lines: {hyps} hypotheses, {refs} references"
    )]
    LengthMismatch { hyps: usize, refs: usize },
    /// sacrebleu refuses an empty test set ("Test set ... contains no sentence").
    #[error("empty corpus: there are no hypotheses to score")]
    EmptyCorpus,
    #[error("no references given")]
    NoReferences,
    #[error("invalid metric configuration: {0}")]
    InvalidConfig(String),
}

/// The number of decimals the sacrebleu command line prints by default (`--width 1`); `str(score)`
/// in Python uses 2.
pub const CLI_WIDTH: usize = 1;

/// One entry of `sacrebleu -f json`'s output: `name`, `score` (rounded to `--width` decimals, as
/// sacrebleu prints it), `signature`, `verbose_score` (BLEU only) and then every `key:value` of
/// the signature as a string field (`nrefs`, `case`, `eff`, `tok`, `smooth`, `version` for BLEU;
/// `nrefs`, `case`, `eff`, `nc`, `nw`, `space`, `version` for chrF), in that order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MetricScore {
    /// `BLEU`, `chrF2`, `chrF2++`, ...
    pub name: String,
    pub score: f64,
    pub signature: String,
    #[serde(default)]
    pub verbose_score: Option<String>,
}

impl MetricScore {
    /// `score` is rounded as sacrebleu does: `float(f"{score:.{width}f}")`.
    pub fn new(
        name: &str,
        score: f64,
        width: usize,
        signature: String,
        verbose_score: Option<String>,
    ) -> Self {
        let rounded = format!("{score:.width$}").parse().unwrap_or(score);
        Self { name: name.to_string(), score: rounded, signature, verbose_score }
    }

    /// The signature's `key:value` pairs, in order.
    pub fn signature_fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.signature.split('|').filter_map(|kv| kv.split_once(':'))
    }

    /// sacrebleu's JSON text for this score (`json.dumps(d, indent=1, ensure_ascii=False)`).
    pub fn to_json_pretty(&self) -> String {
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        // Serializing a map of strings and a float into memory cannot fail.
        self.serialize(&mut ser).expect("MetricScore serializes");
        String::from_utf8(buf).expect("serde_json writes UTF-8")
    }
}

impl Serialize for MetricScore {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("score", &self.score)?;
        m.serialize_entry("signature", &self.signature)?;
        if let Some(v) = &self.verbose_score {
            m.serialize_entry("verbose_score", v)?;
        }
        for (k, v) in self.signature_fields() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_like_sacrebleu() {
        let hyps = ["The cat sat on the mat.", "Hello, world!"];
        let refs = ["The cat sat on a mat.", "Hello world!"];
        let b = corpus_bleu(&hyps, &refs, &BleuConfig::default()).unwrap().to_metric_score(CLI_WIDTH);
        // `sacrebleu r.txt -i h.txt -m bleu -f json`
        let want = r#"{
 "name": "BLEU",
 "score": 40.1,
 "signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
 "verbose_score": "81.8/55.6/28.6/20.0 (BP = 1.000 ratio = 1.100 hyp_len = 11 ref_len = 10)",
 "nrefs": "1",
 "case": "mixed",
 "eff": "no",
 "tok": "13a",
 "smooth": "exp",
 "version": "2.6.0"
}"#;
        assert_eq!(b.to_json_pretty(), want);
        let c = corpus_chrf(&hyps, &refs, &ChrfConfig::default()).unwrap().to_metric_score(CLI_WIDTH);
        let v: serde_json::Value = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(v["name"], "chrF2");
        assert_eq!(v["score"], 68.7);
        assert_eq!(v["nc"], "6");
        assert!(v.get("verbose_score").is_none());
        let back: MetricScore = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }
}
