//! BLEU exactly as sacrebleu 2.6.0 computes it (`sacrebleu.metrics.bleu.BLEU`): corpus BLEU,
//! sentence BLEU (`sacrebleu.sentence_bleu`), the four smoothing methods, signatures and the
//! printed score line.
//!
//! This file is the score itself: the configuration, the statistics, `compute_bleu` and the
//! score's fields and printed line. Counting the statistics of hypotheses against references, and
//! the corpus and sentence entry points, are in `bleu_scorer.rs`.
//!
//! The floating-point arithmetic of `BLEU.compute_bleu` is reproduced operation by operation (same
//! order of additions, same `exp`/`log` from the C library), so scores agree with sacrebleu to the
//! last bit, not just to the printed digits.

use std::fmt;
use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

use super::tokenize::TokenizeKind;
use super::{MetricScore, MetricsError, SACREBLEU_VERSION};

/// sacrebleu's default maximum n-gram order (`MAX_NGRAM_ORDER`).
pub const MAX_NGRAM_ORDER: usize = 4;

/// The largest `max_ngram_order` supported (statistics live in fixed arrays of this size).
pub const MAX_SUPPORTED_ORDER: usize = 8;

/// sacrebleu's smoothing methods (Chen & Cherry 2014), with their values.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "method", content = "value")]
pub enum Smoothing {
    /// `none`: an order without matches zeroes the score.
    #[serde(rename = "none")]
    None,
    /// `floor`: orders without matches get `value` matches (default 0.1).
    #[serde(rename = "floor")]
    Floor(f64),
    /// `add-k`: add `value` to matches and totals of orders 2 and up (default 1).
    #[serde(rename = "add-k")]
    AddK(f64),
    /// `exp`: the NIST/mteval-v13a geometric smoothing, sacrebleu's default.
    #[default]
    #[serde(rename = "exp")]
    Exp,
}

impl Smoothing {
    /// `BLEU.SMOOTH_DEFAULTS['floor']`.
    pub const FLOOR_DEFAULT: f64 = 0.1;
    /// `BLEU.SMOOTH_DEFAULTS['add-k']`.
    pub const ADD_K_DEFAULT: f64 = 1.0;

    /// `floor` with sacrebleu's default value 0.1.
    pub fn floor() -> Self {
        Smoothing::Floor(Self::FLOOR_DEFAULT)
    }

    /// `add-k` with sacrebleu's default value 1.
    pub fn add_k() -> Self {
        Smoothing::AddK(Self::ADD_K_DEFAULT)
    }

    /// sacrebleu's `smooth_method` name.
    pub fn method(self) -> &'static str {
        match self {
            Smoothing::None => "none",
            Smoothing::Floor(_) => "floor",
            Smoothing::AddK(_) => "add-k",
            Smoothing::Exp => "exp",
        }
    }

    /// From sacrebleu's `smooth_method` and `smooth_value` (`None`: the method's default).
    pub fn from_method(method: &str, value: Option<f64>) -> Result<Self, MetricsError> {
        match method {
            "none" => Ok(Smoothing::None),
            "exp" => Ok(Smoothing::Exp),
            "floor" => Ok(Smoothing::Floor(value.unwrap_or(Self::FLOOR_DEFAULT))),
            "add-k" => Ok(Smoothing::AddK(value.unwrap_or(Self::ADD_K_DEFAULT))),
            other => Err(MetricsError::InvalidConfig(format!(
                "unknown smooth method {other:?} (supported: exp, floor, add-k, none)"
            ))),
        }
    }

    /// The `smooth:` part of the signature: `exp`, `none`, `floor[0.10]`, `add-k[1.00]`.
    pub fn signature(self) -> String {
        match self {
            Smoothing::None | Smoothing::Exp => self.method().to_string(),
            Smoothing::Floor(v) | Smoothing::AddK(v) => format!("{}[{v:.2}]", self.method()),
        }
    }
}

/// BLEU options; `Default` is sacrebleu's corpus BLEU (`BLEU()` / the command line).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BleuConfig {
    pub tokenize: TokenizeKind,
    pub lowercase: bool,
    pub smooth: Smoothing,
    /// 1..=[`MAX_SUPPORTED_ORDER`]; sacrebleu's default is 4.
    pub max_ngram_order: usize,
    /// Average only over the orders the hypothesis has n-grams of (sacrebleu's `effective_order`;
    /// off for corpus BLEU, on in `sacrebleu.sentence_bleu`).
    pub effective_order: bool,
}

impl Default for BleuConfig {
    fn default() -> Self {
        Self {
            tokenize: TokenizeKind::Tok13a,
            lowercase: false,
            smooth: Smoothing::Exp,
            max_ngram_order: MAX_NGRAM_ORDER,
            effective_order: false,
        }
    }
}

impl BleuConfig {
    /// The defaults of `sacrebleu.sentence_bleu`: as corpus BLEU but with effective order.
    pub fn sentence() -> Self {
        Self { effective_order: true, ..Self::default() }
    }

    /// Rejects what sacrebleu would reject or what cannot be computed.
    pub fn validate(&self) -> Result<(), MetricsError> {
        if !(1..=MAX_SUPPORTED_ORDER).contains(&self.max_ngram_order) {
            return Err(MetricsError::InvalidConfig(format!(
                "max_ngram_order must be in 1..={MAX_SUPPORTED_ORDER}, got {}",
                self.max_ngram_order
            )));
        }
        if let Smoothing::Floor(v) | Smoothing::AddK(v) = self.smooth {
            if !v.is_finite() || v < 0.0 {
                return Err(MetricsError::InvalidConfig(format!(
                    "smooth value must be finite and >= 0, got {v}"
                )));
            }
        }
        Ok(())
    }

    /// sacrebleu's signature, e.g. `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`.
    pub fn signature(&self, nrefs: usize) -> String {
        format!(
            "nrefs:{nrefs}|case:{}|eff:{}|tok:{}|smooth:{}|version:{SACREBLEU_VERSION}",
            if self.lowercase { "lc" } else { "mixed" },
            if self.effective_order { "yes" } else { "no" },
            self.tokenize.signature(),
            self.smooth.signature()
        )
    }
}

/// BLEU's sufficient statistics (sacrebleu's `[hyp_len, ref_len] + correct + total`); they add up
/// over segments. Only the first `max_ngram_order` entries of the arrays are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BleuStats {
    pub sys_len: u64,
    pub ref_len: u64,
    pub correct: [u64; MAX_SUPPORTED_ORDER],
    pub total: [u64; MAX_SUPPORTED_ORDER],
}

impl AddAssign<&BleuStats> for BleuStats {
    fn add_assign(&mut self, o: &BleuStats) {
        self.sys_len += o.sys_len;
        self.ref_len += o.ref_len;
        for n in 0..MAX_SUPPORTED_ORDER {
            self.correct[n] += o.correct[n];
            self.total[n] += o.total[n];
        }
    }
}

/// `utils.my_log`: log, floored at -9999999999 for 0.
#[inline]
fn my_log(x: f64) -> f64 {
    if x == 0.0 {
        -9_999_999_999.0
    } else {
        x.ln()
    }
}

/// `BLEU.compute_bleu`, operation for operation: returns (score, precisions, bp).
pub fn compute_bleu(stats: &BleuStats, cfg: &BleuConfig) -> (f64, [f64; MAX_SUPPORTED_ORDER], f64) {
    let max_order = cfg.max_ngram_order.clamp(1, MAX_SUPPORTED_ORDER);
    let (sys_len, ref_len) = (stats.sys_len, stats.ref_len);
    let mut bp = 1.0;
    if sys_len < ref_len {
        bp = if sys_len > 0 { (1.0 - ref_len as f64 / sys_len as f64).exp() } else { 0.0 };
    }
    let mut precisions = [0.0f64; MAX_SUPPORTED_ORDER];
    // Early stop if there are no matches (sacrebleu #141).
    if stats.correct[..max_order].iter().all(|&c| c == 0) {
        return (0.0, precisions, bp);
    }
    let mut correct = [0.0f64; MAX_SUPPORTED_ORDER];
    let mut total = [0.0f64; MAX_SUPPORTED_ORDER];
    for n in 0..max_order {
        correct[n] = stats.correct[n] as f64;
        total[n] = stats.total[n] as f64;
    }
    let mut smooth_mteval = 1.0f64;
    let mut eff_order = max_order;
    for n in 1..=max_order {
        if let Smoothing::AddK(k) = cfg.smooth {
            if n > 1 {
                correct[n - 1] += k;
                total[n - 1] += k;
            }
        }
        if total[n - 1] == 0.0 {
            break;
        }
        if cfg.effective_order {
            eff_order = n;
        }
        if correct[n - 1] == 0.0 {
            match cfg.smooth {
                Smoothing::Exp => {
                    smooth_mteval *= 2.0;
                    precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1]);
                }
                Smoothing::Floor(v) => precisions[n - 1] = 100.0 * v / total[n - 1],
                Smoothing::None | Smoothing::AddK(_) => {}
            }
        } else {
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1];
        }
    }
    // Python's sum(): left to right, starting from the integer 0 (0 + x == x).
    let mut log_sum = 0.0f64;
    for &p in &precisions[..eff_order] {
        log_sum += my_log(p);
    }
    let score = bp * (log_sum / eff_order as f64).exp();
    (score, precisions, bp)
}

/// A BLEU result, as sacrebleu's `BLEUScore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BleuScore {
    pub score: f64,
    /// Matching n-grams per order. (sacrebleu's `counts` additionally includes the `k` of add-k
    /// smoothing for orders >= 2; these are the raw counts.)
    pub counts: Vec<u64>,
    /// Hypothesis n-grams per order (raw, see `counts`).
    pub totals: Vec<u64>,
    pub precisions: Vec<f64>,
    pub bp: f64,
    pub sys_len: u64,
    pub ref_len: u64,
    pub config: BleuConfig,
    pub nrefs: usize,
}

impl BleuScore {
    /// From summed statistics.
    pub fn from_stats(stats: &BleuStats, config: &BleuConfig, nrefs: usize) -> Self {
        let n = config.max_ngram_order.clamp(1, MAX_SUPPORTED_ORDER);
        let (score, precisions, bp) = compute_bleu(stats, config);
        Self {
            score,
            counts: stats.correct[..n].to_vec(),
            totals: stats.total[..n].to_vec(),
            precisions: precisions[..n].to_vec(),
            bp,
            sys_len: stats.sys_len,
            ref_len: stats.ref_len,
            config: *config,
            nrefs,
        }
    }

    /// The statistics the score was computed from: rescore them with another smoothing or
    /// effective order through [`BleuScore::from_stats`].
    pub fn stats(&self) -> BleuStats {
        let mut st = BleuStats { sys_len: self.sys_len, ref_len: self.ref_len, ..Default::default() };
        for (n, (&c, &t)) in self.counts.iter().zip(&self.totals).take(MAX_SUPPORTED_ORDER).enumerate() {
            st.correct[n] = c;
            st.total[n] = t;
        }
        st
    }

    /// `sys_len / ref_len`, 0 without reference words.
    pub fn ratio(&self) -> f64 {
        if self.ref_len == 0 {
            0.0
        } else {
            self.sys_len as f64 / self.ref_len as f64
        }
    }

    /// The part after the score: `65.3/40.1/27.0/18.9 (BP = 1.000 ratio = 1.012 hyp_len = 12345
    /// ref_len = 12201)`.
    pub fn verbose(&self) -> String {
        let prec: Vec<String> = self.precisions.iter().map(|p| format!("{p:.1}")).collect();
        format!(
            "{} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
            prec.join("/"),
            self.bp,
            self.ratio(),
            self.sys_len,
            self.ref_len
        )
    }

    /// The signature for the configuration and number of references.
    pub fn signature(&self) -> String {
        self.config.signature(self.nrefs)
    }

    /// What the sacrebleu command line prints with `-f text -w width` (its default width is
    /// [`super::CLI_WIDTH`]): `BLEU|<signature> = 34.1 65.3/...`.
    pub fn format_with_signature(&self, width: usize) -> String {
        format!("BLEU|{} = {:.width$} {}", self.signature(), self.score, self.verbose())
    }

    /// The JSON object of `sacrebleu -f json -w width`.
    pub fn to_metric_score(&self, width: usize) -> MetricScore {
        MetricScore::new("BLEU", self.score, width, self.signature(), Some(self.verbose()))
    }
}

/// `str(score)` in sacrebleu: `BLEU = 34.12 65.3/40.1/27.0/18.9 (BP = 1.000 ratio = 1.012 ...)`.
impl fmt::Display for BleuScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BLEU = {:.2} {}", self.score, self.verbose())
    }
}
