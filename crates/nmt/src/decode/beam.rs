//! Batched beam search (K hypotheses per sentence, all sentences in one batch) on libtorch.
//!
//! The search rules and bookkeeping are seqkd-runtime's [`BeamSearch`], shared with the native
//! engine; this file only scores candidates with tensors: one `topk` over each sentence's `K·V`
//! extensions per step. With K = 1 this is exactly greedy search.

use seqkd_runtime::search::{BeamSearch, Stopping};
use seqkd_text::vocab::SPECIAL_IDS;
use tch::{Kind, Tensor};

use crate::model::Seq2Seq;
use seqkd_runtime::format::Hypothesis;

/// The n-best (≤ `nbest`, best first by length-normalised score) of each sentence of `src`.
pub fn beam_search(
    model: &dyn Seq2Seq,
    src: &Tensor,
    max_lens: &[usize],
    beam: usize,
    length_penalty: f64,
    nbest: usize,
) -> Vec<Vec<Hypothesis>> {
    beam_search_with(model, src, max_lens, beam, length_penalty, nbest, Stopping::Seqkd)
}

/// [`beam_search`] with a choice of stopping rule.
pub fn beam_search_with(
    model: &dyn Seq2Seq,
    src: &Tensor,
    max_lens: &[usize],
    beam: usize,
    length_penalty: f64,
    nbest: usize,
    stopping: Stopping,
) -> Vec<Vec<Hypothesis>> {
    let n = src.size()[0] as usize;
    let device = src.device();
    let k = beam;
    let (memory, state) = model.encode(src);
    let mut search = BeamSearch::new(n, k, length_penalty).with_stopping(stopping);
    let rows_of =
        |rows: &[usize]| Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>()).to(device);
    let expand = rows_of(&search.initial_rows());
    let mut memory = memory.select(&expand);
    let mut state = crate::model::DecoderState { rows: state.rows.select(&expand), step: state.step };
    let mut prev = Tensor::full([(n * k) as i64], SPECIAL_IDS.bos as i64, (Kind::Int64, device));
    loop {
        let logp = model.step(&memory, &mut state, &prev); // [live·K, vocab]
        let vocab = logp.size()[1] as usize;
        let live = logp.size()[0] / k as i64;
        // Candidate scores: beam score + token log-prob, flattened per sentence to [live, K·vocab].
        let cand = (logp + Tensor::from_slice(search.scores()).to(device).unsqueeze(1)).view([live, -1]);
        let (top_scores, top_index) = cand.topk((2 * k) as i64, -1, true, true); // [live, 2K]
        let top_scores: Vec<f32> = Vec::try_from(&top_scores.flatten(0, -1)).expect("f32 scores");
        let top_index: Vec<i64> = Vec::try_from(&top_index.flatten(0, -1)).expect("i64 indices");
        let step = search.advance(max_lens, vocab, |a, cands| {
            cands.extend((a * 2 * k..(a + 1) * 2 * k).map(|j| (top_scores[j], top_index[j] as usize)))
        });
        let Some(step) = step else { break };
        let rows = rows_of(&step.rows);
        state.rows = state.rows.select(&rows);
        if step.sentences_left {
            // Beams of one sentence share their memory, so memory only changes when sentences leave.
            memory = memory.select(&rows);
        }
        prev = Tensor::from_slice(&step.tokens.iter().map(|&t| t as i64).collect::<Vec<_>>()).to(device);
    }
    search.into_nbest(nbest)
}
