//! Batched greedy search on libtorch: at each step every live sentence takes its most likely next
//! token. The bookkeeping (which rows go on, when a sentence stops) is seqkd-runtime's
//! [`GreedySearch`], shared with the native engine; this file only runs the model.

use seqkd_text::vocab::SPECIAL_IDS;
use tch::{Device, Kind, Tensor};

use crate::model::Seq2Seq;
use seqkd_runtime::format::Hypothesis;
use seqkd_runtime::kernels::first_max;
use seqkd_runtime::search::{GreedySearch, GreedyStep};

/// Greedy translations of `src` `[n, src_len]`; sentence i stops at `</s>` or `max_lens[i]` tokens.
/// Without `scores` the hypotheses' log-probabilities are 0 and the softmax over the vocabulary is
/// skipped: the argmax of the logits is the argmax of the log-probabilities.
pub fn greedy(
    model: &dyn Seq2Seq,
    src: &Tensor,
    max_lens: &[usize],
    length_penalty: f64,
    scores: bool,
) -> Vec<Hypothesis> {
    let n = src.size()[0] as usize;
    let device = src.device();
    let (mut memory, mut state) = model.encode(src);
    let mut search = GreedySearch::new(n, length_penalty);
    let mut prev = Tensor::full([n as i64], SPECIAL_IDS.bos as i64, (Kind::Int64, device));
    // The CPU argmax's copy of the logits, reused from step to step.
    let mut logits_buf = Vec::new();
    while !search.is_done() {
        let (best_tok, toks, lps) = if scores {
            let logp = model.step(&memory, &mut state, &prev); // [rows, vocab]
            let (best_lp, best_tok) = logp.max_dim(-1, false); // [rows], [rows]
            let toks = Vec::<i64>::try_from(&best_tok).expect("i64 tokens");
            (best_tok, toks, Vec::try_from(&best_lp.to_kind(Kind::Float)).expect("f32 log-probs"))
        } else {
            let logits = model.step_logits(&memory, &mut state, &prev);
            let (best_tok, toks) = argmax(&logits, &mut logits_buf);
            (best_tok, toks, Vec::new())
        };
        let lp = |row: usize| if scores { lps[row] } else { 0.0 };
        match search.advance(max_lens, |row| (toks[row] as u32, lp(row))) {
            GreedyStep::Done => break,
            GreedyStep::AllGoOn => prev = best_tok,
            GreedyStep::Rows(keep) => {
                let index =
                    Tensor::from_slice(&keep.iter().map(|&r| r as i64).collect::<Vec<_>>()).to(device);
                memory = memory.select(&index);
                state.rows = state.rows.select(&index);
                prev = best_tok.index_select(0, &index);
            }
        }
    }
    search.into_hypotheses()
}

/// The first maximum of each row of `logits` `[rows, vocab]`, as a tensor `[rows]` (i64) on the
/// logits' device and as a `Vec`. On the CPU it is seqkd-runtime's vectorised scan over a copy of
/// the logits into `buf`: libtorch's `argmax` over the last dimension is a scalar loop (in a
/// profile of the demo's student, 7.6% of greedy decoding; the scan that replaced it, 3.2%).
fn argmax(logits: &Tensor, buf: &mut Vec<f32>) -> (Tensor, Vec<i64>) {
    if logits.device() != Device::Cpu {
        let best = logits.argmax(-1, false);
        let toks = Vec::try_from(&best).expect("i64 tokens");
        return (best, toks);
    }
    let logits = logits.to_kind(Kind::Float).contiguous();
    let (rows, vocab) = logits.size2().expect("[rows, vocab] logits");
    let numel = (rows * vocab) as usize;
    buf.resize(numel, 0.0);
    logits.copy_data(buf, numel);
    let toks: Vec<i64> = buf.chunks(vocab.max(1) as usize).map(|row| first_max(row).0 as i64).collect();
    (Tensor::from_slice(&toks), toks)
}
