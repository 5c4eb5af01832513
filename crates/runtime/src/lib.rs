//! `seqkd-runtime`: translation with seqkd models on the CPU, without libtorch.
//!
//! The deployment path for distilled students. It loads a model directory as `seqkd train`
//! writes it (dense, pruned or int8-quantized; see [`format`]) and translates with batched greedy
//! or beam search ([`search`], the same rules as the libtorch decoder) through f32 kernels
//! ([`dense`]) or int8 ones ([`int8`]: AVX-512 VNNI or AVX2, chosen at run time).
//!
//! Data flow: [`Translator`] (text → subword batches by source length) → [`search`] →
//! [`Decoder`] (the model seam: encode once, then one step per target token) → [`kernels`].

pub mod dense;
pub mod forced;
pub mod format;
pub mod int8;
pub mod kernels;
pub mod lstm;
pub mod quantize;
pub mod search;
pub mod threads;
pub mod transformer;
pub mod translator;
pub mod weights;

pub use translator::{NativeModel, Translator};

/// The seam between search and a model, as in Marian: search sees a batch of decoder rows, each
/// extending one hypothesis, and never what the model keeps per row.
pub trait Decoder: Sync {
    type State;

    fn vocab_size(&self) -> usize;

    /// Encodes the sources (subword ids, `</s>` not included) and returns the decoding state
    /// with one row per sentence, before the first step. Its matrix products use `threads`.
    fn start(&self, srcs: &[&[u32]], threads: kernels::Threads) -> Self::State;

    /// One step: `prev` holds the last token of every row; writes the logits `[rows, vocab]`.
    fn step(&self, state: &mut Self::State, prev: &[u32], logits: &mut Vec<f32>);

    /// Reorders, repeats or drops rows: new row i continues old row `parents[i]`.
    fn select_rows(&self, state: &mut Self::State, parents: &[usize]);
}
