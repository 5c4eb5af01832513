//! Decoding: batched greedy and beam search over any [`Seq2Seq`], and [`Translator`], which takes
//! text in, batches it by source length, and gives translations back in input order.

pub mod beam;
pub mod greedy;

use seqkd_text::batching::{BatchConfig, Batcher};
use seqkd_text::vocab::Vocab;
use tch::Device;

use crate::batch::source_tensor;
use crate::config::DecodeConfig;
use crate::model::Seq2Seq;

pub use seqkd_runtime::format::{max_output_len, Hypothesis};

/// Translates text with a model: the n-best hypotheses of every input line, in input order.
pub struct Translator<'a> {
    pub model: &'a dyn Seq2Seq,
    pub vocab: &'a Vocab,
    pub cfg: DecodeConfig,
    pub device: Device,
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
        let ids = self.vocab.encode_batch(srcs)?;
        let lengths: Vec<(usize, usize)> = ids.iter().map(|s| (s.len(), 0)).collect();
        let batch_cfg = BatchConfig {
            batch_tokens: self.cfg.batch_tokens,
            max_sentences: self.cfg.max_sentences,
            ..Default::default()
        };
        let batcher = Batcher::new(&lengths, batch_cfg).expect("decode.batch_tokens validated > 0");
        let mut out = vec![Vec::new(); srcs.len()];
        let mut done = 0;
        tch::no_grad(|| {
            for batch in batcher.by_source_length() {
                let rows: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
                let src = source_tensor(&rows, self.device);
                let max_lens: Vec<usize> = rows.iter().map(|r| max_output_len(&self.cfg, r.len())).collect();
                let hyps = if self.cfg.beam_size == 1 {
                    greedy::greedy(self.model, &src, &max_lens, self.cfg.length_penalty)
                        .into_iter()
                        .map(|h| vec![h])
                        .collect()
                } else {
                    beam::beam_search(
                        self.model,
                        &src,
                        &max_lens,
                        self.cfg.beam_size,
                        self.cfg.length_penalty,
                        nbest,
                    )
                };
                for (i, h) in batch.iter().zip(hyps) {
                    out[*i] = h.into_iter().take(nbest.max(1)).collect();
                }
                done += batch.len();
                on_batch(done);
            }
        });
        Ok(out)
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
