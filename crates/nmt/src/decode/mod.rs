//! Decoding: batched greedy and beam search over any [`Seq2Seq`], and [`Translator`], which takes
//! text in, batches it by source length, and gives translations back in input order.

pub mod beam;
pub mod greedy;

use seqkd_runtime::translator::decode_in_batches;
use seqkd_text::vocab::Vocab;
use tch::Device;

use crate::batch::source_tensor;
use crate::config::DecodeConfig;
use crate::model::Seq2Seq;

pub use seqkd_runtime::format::{max_output_len, Hypothesis};
pub use seqkd_runtime::search::Stopping;

/// The beam search stopping rule a decoding config asks for.
pub fn stopping(cfg: &DecodeConfig) -> Stopping {
    if cfg.hf_stopping {
        Stopping::Transformers
    } else {
        Stopping::Seqkd
    }
}

/// Translates text with a model: the n-best hypotheses of every input line, in input order.
pub struct Translator<'a> {
    pub model: &'a dyn Seq2Seq,
    pub vocab: &'a Vocab,
    pub cfg: DecodeConfig,
    pub device: Device,
    /// Greedy search computes its hypotheses' log-probabilities; without them it skips the
    /// softmax (beam search always scores), as the native engine's `Translator::scores`.
    pub scores: bool,
}

impl Translator<'_> {
    /// `nbest` ≤ beam size hypotheses per sentence (1 with greedy search). `on_batch(done)` is called
    /// after each batch with the number of sentences finished so far.
    pub fn translate(
        &self,
        srcs: &[String],
        nbest: usize,
        mut on_batch: impl FnMut(usize),
    ) -> Result<Vec<Vec<Hypothesis>>, seqkd_text::vocab::VocabError> {
        let ids = self.vocab.encode_src_batch(srcs)?;
        Ok(tch::no_grad(|| {
            decode_in_batches(&ids, &self.cfg, &mut on_batch, |rows| {
                let src = source_tensor(rows, self.device);
                let max_lens: Vec<usize> = rows.iter().map(|r| max_output_len(&self.cfg, r.len())).collect();
                if self.cfg.beam_size == 1 {
                    greedy::greedy(self.model, &src, &max_lens, self.cfg.length_penalty, self.scores)
                        .into_iter()
                        .map(|h| vec![h])
                        .collect()
                } else {
                    beam::beam_search_with(
                        self.model,
                        &src,
                        &max_lens,
                        self.cfg.beam_size,
                        self.cfg.length_penalty,
                        nbest,
                        stopping(&self.cfg),
                    )
                }
            })
        }))
    }

    /// 1-best detokenized translations, in input order.
    pub fn translate_text(&self, srcs: &[String]) -> Result<Vec<String>, seqkd_text::vocab::VocabError> {
        Ok(self
            .translate(srcs, 1, |_| {})?
            .iter()
            .map(|h| h.first().map(|h| self.vocab.decode(&h.tokens)).unwrap_or_default())
            .collect())
    }
}
