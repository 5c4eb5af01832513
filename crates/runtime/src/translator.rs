//! Loading a model directory and translating text with it: batches by source length (as the
//! libtorch `Translator` does), search, and the hypotheses back in input order.

use std::path::Path;

use seqkd_text::batching::{BatchConfig, Batcher};
use seqkd_text::vocab::{Vocab, VocabError};

use crate::format::{
    load_weights, max_output_len, DecodeConfig, FormatError, Hypothesis, ModelConfig, ModelDirConfig,
    BEST_FILE, CONFIG_FILE, VOCAB_FILE,
};
use crate::kernels::Threads;
use crate::lstm::Lstm;
use crate::search::{beam_search, greedy};
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
        let model = match &cfg.model {
            ModelConfig::Transformer(c) => NativeModel::Transformer(
                Transformer::load(c, &mut w, vocab_size)
                    .map_err(|source| LoadError::Weights { path, source })?,
            ),
            ModelConfig::Lstm(c) => NativeModel::Lstm(
                Lstm::load(c, &mut w, vocab_size).map_err(|source| LoadError::Weights { path, source })?,
            ),
        };
        Ok((model, cfg))
    }

    pub fn quantized(&self) -> Self {
        match self {
            NativeModel::Transformer(m) => NativeModel::Transformer(m.quantized()),
            NativeModel::Lstm(m) => NativeModel::Lstm(m.quantized()),
        }
    }

    fn set_threads(&mut self, threads: Threads) {
        match self {
            NativeModel::Transformer(m) => m.set_threads(threads),
            NativeModel::Lstm(m) => m.set_threads(threads),
        }
    }
}

/// Decodes subword sentences in batches sorted by source length (`cfg.batch_tokens`,
/// `cfg.max_sentences`) with `decode` (a batch's sources → their n-best lists), and returns the
/// n-best lists (≤ `nbest` each) in input order. Both engines batch through this.
pub fn decode_in_batches(
    ids: &[Vec<u32>],
    cfg: &DecodeConfig,
    nbest: usize,
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
        for (&i, mut h) in batch.iter().zip(decode(&rows)) {
            h.truncate(nbest.max(1));
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
    pool: rayon::ThreadPool,
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
        let (mut model, cfg) = NativeModel::load(dir, weights, vocab.len())?;
        if precision == Precision::Int8 {
            model = model.quantized();
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| LoadError::Threads { threads, reason: e.to_string() })?;
        model.set_threads(Threads(pool.current_num_threads()));
        Ok(Self { model, vocab, cfg: cfg.decode, pool })
    }

    /// `nbest` ≤ beam size hypotheses per sentence (1 with greedy search), in input order.
    /// `on_batch(done)` is called after each batch with the number of sentences finished so far.
    pub fn translate(
        &self,
        srcs: &[String],
        nbest: usize,
        mut on_batch: impl FnMut(usize),
    ) -> Result<Vec<Vec<Hypothesis>>, VocabError> {
        let ids = self.vocab.encode_batch(srcs)?;
        Ok(decode_in_batches(&ids, &self.cfg, nbest, &mut on_batch, |rows| {
            self.pool.install(|| match &self.model {
                NativeModel::Transformer(m) => self.search(m, rows, nbest),
                NativeModel::Lstm(m) => self.search(m, rows, nbest),
            })
        }))
    }

    fn search<D: Decoder>(&self, model: &D, rows: &[&[u32]], nbest: usize) -> Vec<Vec<Hypothesis>> {
        let max_lens: Vec<usize> = rows.iter().map(|r| max_output_len(&self.cfg, r.len())).collect();
        if self.cfg.beam_size <= 1 {
            greedy(model, rows, &max_lens, self.cfg.length_penalty).into_iter().map(|h| vec![h]).collect()
        } else {
            beam_search(model, rows, &max_lens, self.cfg.beam_size, self.cfg.length_penalty, nbest)
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
