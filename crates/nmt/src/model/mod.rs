//! The encoder-decoder models and the narrow seam decoding and distillation use.
//!
//! As in Marian, search sees a model only through [`Seq2Seq`]: encode a batch once, then step one
//! target token at a time. All per-hypothesis state (encoder memory, attention caches, LSTM states)
//! lives in [`Rows`]: lists of tensors whose first dimension is the hypothesis, so beam search can
//! reorder or drop hypotheses with one `index_select` without knowing what the tensors mean.

pub mod layers;
pub mod lstm;
pub mod transformer;

use tch::{nn, Kind, Tensor};

pub use lstm::LstmSeq2Seq;
pub use seqkd_runtime::format::{LstmConfig, ModelConfig, TransformerConfig};
pub use transformer::Transformer;

/// Tensors indexed by hypothesis on their first dimension.
#[derive(Debug)]
pub struct Rows(pub Vec<Tensor>);

impl Rows {
    /// Keeps (and reorders, or repeats) the rows given by `index` (`[n]`, i64).
    pub fn select(&self, index: &Tensor) -> Rows {
        Rows(self.0.iter().map(|t| t.index_select(0, index)).collect())
    }
}

/// Decoder state between steps: per-hypothesis tensors plus the number of tokens consumed.
#[derive(Debug)]
pub struct DecoderState {
    pub rows: Rows,
    pub step: i64,
}

/// The model/search seam.
pub trait Seq2Seq {
    /// Teacher-forced logits: src `[batch, src_len]`, tgt_in `[batch, tgt_len]` → `[batch, tgt_len, vocab]`.
    fn logits(&self, src: &Tensor, tgt_in: &Tensor, train: bool) -> Tensor;

    /// Runs the encoder once for decoding: the encoder memory and the decoder's initial state.
    fn encode(&self, src: &Tensor) -> (Rows, DecoderState);

    /// One decoding step: `prev` `[n]` are the last tokens of the n live hypotheses; returns
    /// the output layer's logits `[n, vocab]` and advances `state`. Greedy search without scores
    /// needs only their argmax, and skips the softmax.
    fn step_logits(&self, memory: &Rows, state: &mut DecoderState, prev: &Tensor) -> Tensor;

    /// [`Self::step_logits`] as log-probabilities `[n, vocab]` (f32).
    fn step(&self, memory: &Rows, state: &mut DecoderState, prev: &Tensor) -> Tensor {
        self.step_logits(memory, state, prev).log_softmax(-1, Kind::Float)
    }
}

/// A model of either architecture, built under a `VarStore` path.
// One per process: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Model {
    Transformer(Transformer),
    Lstm(LstmSeq2Seq),
}

impl Model {
    pub fn new(p: &nn::Path, cfg: &ModelConfig, vocab_size: i64) -> Self {
        match cfg {
            ModelConfig::Transformer(c) => Model::Transformer(Transformer::new(p, c, vocab_size)),
            ModelConfig::Lstm(c) => Model::Lstm(LstmSeq2Seq::new(p, c, vocab_size)),
        }
    }

    fn inner(&self) -> &dyn Seq2Seq {
        match self {
            Model::Transformer(m) => m,
            Model::Lstm(m) => m,
        }
    }
}

impl Seq2Seq for Model {
    fn logits(&self, src: &Tensor, tgt_in: &Tensor, train: bool) -> Tensor {
        self.inner().logits(src, tgt_in, train)
    }
    fn encode(&self, src: &Tensor) -> (Rows, DecoderState) {
        self.inner().encode(src)
    }
    fn step_logits(&self, memory: &Rows, state: &mut DecoderState, prev: &Tensor) -> Tensor {
        self.inner().step_logits(memory, state, prev)
    }
}
