//! Loading a model directory and translating text with it: batches by source length (as the
//! libtorch `Translator` does), search, and the hypotheses back in input order.

use std::path::Path;

use rayon::prelude::*;
use seqkd_text::batching::{BatchConfig, Batcher};
use seqkd_text::vocab::{Vocab, VocabError};

use crate::forced::{forced_topk, ForcedTopk};
use crate::format::{
    load_weights, max_output_len, DecodeConfig, FormatError, Hypothesis, ModelConfig, ModelDirConfig,
    BEST_FILE, CONFIG_FILE, VOCAB_FILE,
};
use crate::kernels::Threads;
use crate::lstm::Lstm;
use crate::search::{beam_search_with, greedy, Stopping};
use crate::transformer::Transformer;
use crate::weights::{WeightError, Weights};
use crate::Decoder;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Vocab(#[from] VocabError),
    #[error("{}: {source}", .path.display())]
    Weights { path: std::path::PathBuf, source: WeightError },
    #[error("{}: {reason}", .path.display())]
    Unsupported { path: std::path::PathBuf, reason: String },
    #[error("could not start {threads} threads: {reason}")]
    Threads { threads: usize, reason: String },
}

/// Arithmetic of the matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// As stored: f32, or int8 for a model written by `seqkd quantize`.
    AsStored,
    /// int8 weights (quantized at load time if stored as f32), int8 activations.
    Int8,
}

/// A loaded model of either architecture.
// One value per Translator: the few hundred bytes between the variants are not worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum NativeModel {
    Transformer(Transformer),
    Lstm(Lstm),
}

impl NativeModel {
    /// Loads `dir`'s config and weights (`model.safetensors` unless `weights` names another file).
    pub fn load(
        dir: &Path,
        weights: Option<&str>,
        vocab_size: usize,
    ) -> Result<(Self, ModelDirConfig), LoadError> {
        let cfg = ModelDirConfig::load(&dir.join(CONFIG_FILE))?;
        let path = dir.join(weights.unwrap_or(BEST_FILE));
        let mut w = Weights::new(load_weights(&path)?);
        let build = |w: &mut Weights| -> Result<NativeModel, WeightError> {
            let model = match &cfg.model {
                ModelConfig::Transformer(c) => NativeModel::Transformer(Transformer::load(c, w, vocab_size)?),
                ModelConfig::Lstm(c) => NativeModel::Lstm(Lstm::load(c, w, vocab_size)?),
            };
            w.check_all_used()?;
            Ok(model)
        };
        let model = build(&mut w).map_err(|source| LoadError::Weights { path, source })?;
        Ok((model, cfg))
    }

    pub fn quantized(&self) -> Self {
        match self {
            NativeModel::Transformer(m) => NativeModel::Transformer(m.quantized()),
            NativeModel::Lstm(m) => NativeModel::Lstm(m.quantized()),
        }
    }
}

/// Decodes subword sentences in batches sorted by source length (`cfg.batch_tokens`,
/// `cfg.max_sentences`) with `decode` (a batch's sources → their n-best lists), and returns the
/// n-best lists in input order. Both engines batch through this.
pub fn decode_in_batches(
    ids: &[Vec<u32>],
    cfg: &DecodeConfig,
    on_batch: &mut dyn FnMut(usize),
    mut decode: impl FnMut(&[&[u32]]) -> Vec<Vec<Hypothesis>>,
) -> Vec<Vec<Hypothesis>> {
    let lengths: Vec<(usize, usize)> = ids.iter().map(|s| (s.len(), 0)).collect();
    let batch_cfg = BatchConfig {
        batch_tokens: cfg.batch_tokens,
        max_sentences: cfg.max_sentences,
        ..Default::default()
    };
    let batcher = Batcher::new(&lengths, batch_cfg).expect("decode.batch_tokens validated > 0");
    let mut out = vec![Vec::new(); ids.len()];
    let mut done = 0;
    for batch in batcher.by_source_length() {
        let rows: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
        for (&i, h) in batch.iter().zip(decode(&rows)) {
            out[i] = h;
        }
        done += batch.len();
        on_batch(done);
    }
    out
}

/// Translates text with a natively loaded model directory.
pub struct Translator {
    pub model: NativeModel,
    pub vocab: Vocab,
    /// The model directory's `[decode]` settings; callers override fields as they need.
    pub cfg: DecodeConfig,
    /// Greedy search computes its hypotheses' log-probabilities (true by default); without them
    /// it skips the softmax. Beam search always scores.
    pub scores: bool,
    pool: rayon::ThreadPool,
}

/// What one call decodes with: search settings, hypotheses per sentence, and whether greedy
/// search computes log-probabilities (beam search always does).
struct Search<'a> {
    cfg: &'a DecodeConfig,
    nbest: usize,
    scores: bool,
}

fn search_with<D: Decoder>(
    model: &D,
    rows: &[&[u32]],
    search: &Search,
    threads: Threads,
) -> Vec<Vec<Hypothesis>> {
    let cfg = search.cfg;
    let max_lens: Vec<usize> = rows.iter().map(|r| max_output_len(cfg, r.len())).collect();
    let (beam, lp) = (cfg.beam_size, cfg.length_penalty);
    if beam <= 1 {
        greedy(model, rows, &max_lens, lp, threads, search.scores).into_iter().map(|h| vec![h]).collect()
    } else {
        let stopping = if cfg.hf_stopping { Stopping::Transformers } else { Stopping::Seqkd };
        beam_search_with(model, rows, &max_lens, beam, lp, search.nbest, threads, stopping)
    }
}

impl Translator {
    /// Loads `dir` to run on `threads` threads (0 = all cores).
    pub fn load(
        dir: &Path,
        weights: Option<&str>,
        precision: Precision,
        threads: usize,
    ) -> Result<Self, LoadError> {
        let vocab = Vocab::load(&dir.join(VOCAB_FILE))?;
        let (model, cfg) = NativeModel::load(dir, weights, vocab.len())?;
        let model = if precision == Precision::Int8 { model.quantized() } else { model };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| LoadError::Threads { threads, reason: e.to_string() })?;
        Ok(Self { model, vocab, cfg: cfg.decode, scores: true, pool })
    }

    /// `nbest` ≤ beam size hypotheses per sentence (1 with greedy search), in input order.
    /// `on_batch(done)` is called after each batch with the number of sentences finished so far.
    pub fn translate(
        &self,
        srcs: &[String],
        nbest: usize,
        on_batch: impl FnMut(usize),
    ) -> Result<Vec<Vec<Hypothesis>>, VocabError> {
        let ids = self.vocab.encode_src_batch(srcs)?;
        Ok(self.translate_ids(&ids, &self.cfg, nbest, self.scores, on_batch))
    }

    /// [`translate`](Self::translate) for sources already encoded, with search settings `cfg`
    /// instead of the model's (a server's per-request beam size, say) and `scores` instead of
    /// [`Self::scores`].
    pub fn translate_ids(
        &self,
        ids: &[Vec<u32>],
        cfg: &DecodeConfig,
        nbest: usize,
        scores: bool,
        mut on_batch: impl FnMut(usize),
    ) -> Vec<Vec<Hypothesis>> {
        let search = Search { cfg, nbest, scores };
        decode_in_batches(ids, cfg, &mut on_batch, |rows| {
            self.pool.install(|| self.decode_batch(rows, &search))
        })
    }

    /// One batch. Sentences are independent: given enough of them, each thread decodes its own
    /// share (every T-th sentence of the length-sorted batch, so shares have similar lengths) with
    /// single-threaded kernels, which scales better than splitting every small matrix product; a
    /// few sentences (one at a time, a beam) share each product across the threads instead.
    fn decode_batch(&self, rows: &[&[u32]], search: &Search) -> Vec<Vec<Hypothesis>> {
        self.in_shares(rows.len(), |share, threads| {
            let sub: Vec<&[u32]> = share.iter().map(|&i| rows[i]).collect();
            self.search(&sub, search, threads)
        })
    }

    /// `work(share, threads)` over the rows `0..n` of a batch, split as [`Self::decode_batch`]
    /// describes; its per-row results come back in row order.
    fn in_shares<T: Send + Default + Clone>(
        &self,
        n: usize,
        work: impl Fn(&[usize], Threads) -> Vec<T> + Sync,
    ) -> Vec<T> {
        let threads = self.pool.current_num_threads();
        if threads < 2 || n < 2 * threads {
            return work(&(0..n).collect::<Vec<_>>(), Threads(threads));
        }
        let shares: Vec<Vec<usize>> = (0..threads).map(|t| (t..n).step_by(threads).collect()).collect();
        let results: Vec<Vec<T>> = shares.par_iter().map(|share| work(share, Threads(1))).collect();
        let mut out = vec![T::default(); n];
        for (share, part) in shares.iter().zip(results) {
            for (&i, r) in share.iter().zip(part) {
                out[i] = r;
            }
        }
        out
    }

    /// Teacher-forced top-k over (`srcs`, `tgts`) subword ids ([`crate::forced`]), in batches of
    /// `batch_tokens` padded tokens sorted by source length; results in input order.
    pub fn forced_topk_ids(
        &self,
        srcs: &[Vec<u32>],
        tgts: &[Vec<u32>],
        k: usize,
        temperature: f32,
        batch_tokens: usize,
    ) -> Vec<ForcedTopk> {
        assert_eq!(srcs.len(), tgts.len(), "one target per source");
        let lengths: Vec<(usize, usize)> = srcs.iter().zip(tgts).map(|(s, t)| (s.len(), t.len())).collect();
        let batch_cfg = BatchConfig { batch_tokens: batch_tokens.max(1), ..Default::default() };
        let batcher = Batcher::new(&lengths, batch_cfg).expect("batch_tokens > 0");
        let mut out = vec![ForcedTopk::default(); srcs.len()];
        for batch in batcher.by_source_length() {
            let scored = self.pool.install(|| {
                self.in_shares(batch.len(), |share, threads| {
                    let s: Vec<&[u32]> = share.iter().map(|&r| srcs[batch[r]].as_slice()).collect();
                    let t: Vec<&[u32]> = share.iter().map(|&r| tgts[batch[r]].as_slice()).collect();
                    match &self.model {
                        NativeModel::Transformer(m) => forced_topk(m, &s, &t, k, temperature, threads),
                        NativeModel::Lstm(m) => forced_topk(m, &s, &t, k, temperature, threads),
                    }
                })
            });
            for (&i, f) in batch.iter().zip(scored) {
                out[i] = f;
            }
        }
        out
    }

    fn search(&self, rows: &[&[u32]], search: &Search, threads: Threads) -> Vec<Vec<Hypothesis>> {
        match &self.model {
            NativeModel::Transformer(m) => search_with(m, rows, search, threads),
            NativeModel::Lstm(m) => search_with(m, rows, search, threads),
        }
    }

    /// 1-best detokenized translations, in input order.
    pub fn translate_text(&self, srcs: &[String]) -> Result<Vec<String>, VocabError> {
        Ok(self
            .translate(srcs, 1, |_| {})?
            .iter()
            .map(|h| h.first().map(|h| self.vocab.decode(&h.tokens)).unwrap_or_default())
            .collect())
    }
}
