//! Batched greedy search on libtorch: at each step every live sentence takes its most likely next
//! token. The bookkeeping (which rows go on, when a sentence stops) is seqkd-runtime's
//! [`GreedySearch`], shared with the native engine; this file only runs the model.

use seqkd_text::vocab::SPECIAL_IDS;
use tch::{Kind, Tensor};

use crate::model::Seq2Seq;
use seqkd_runtime::format::Hypothesis;
use seqkd_runtime::search::{GreedySearch, GreedyStep};

/// Greedy translations of `src` `[n, src_len]`; sentence i stops at `</s>` or `max_lens[i]` tokens.
pub fn greedy(model: &dyn Seq2Seq, src: &Tensor, max_lens: &[usize], length_penalty: f64) -> Vec<Hypothesis> {
    let n = src.size()[0] as usize;
    let device = src.device();
    let (mut memory, mut state) = model.encode(src);
    let mut search = GreedySearch::new(n, length_penalty);
    let mut prev = Tensor::full([n as i64], SPECIAL_IDS.bos as i64, (Kind::Int64, device));
    while !search.is_done() {
        let logp = model.step(&memory, &mut state, &prev); // [rows, vocab]
        let (best_lp, best_tok) = logp.max_dim(-1, false); // [rows], [rows]
        let toks: Vec<i64> = Vec::try_from(&best_tok).expect("i64 tokens");
        let lps: Vec<f32> = Vec::try_from(&best_lp.to_kind(Kind::Float)).expect("f32 log-probs");
        match search.advance(max_lens, |row| (toks[row] as u32, lps[row])) {
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
