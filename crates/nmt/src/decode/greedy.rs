//! Batched greedy search: at each step every live sentence takes its most likely next token;
//! finished sentences are dropped from the batch so no work is spent on them.

use seqkd_text::vocab::SPECIAL_IDS;
use tch::{Kind, Tensor};

use super::Hypothesis;
use crate::model::Seq2Seq;

/// Greedy translations of `src` `[n, src_len]`; sentence i stops at `</s>` or `max_lens[i]` tokens.
pub fn greedy(model: &dyn Seq2Seq, src: &Tensor, max_lens: &[usize], length_penalty: f64) -> Vec<Hypothesis> {
    let n = src.size()[0] as usize;
    let device = src.device();
    let (mut memory, mut state) = model.encode(src);
    let mut hyps = vec![Hypothesis::default(); n];
    // `alive[row]` is the sentence that decoder row `row` belongs to.
    let mut alive: Vec<usize> = (0..n).collect();
    let mut prev = Tensor::full([n as i64], SPECIAL_IDS.bos as i64, (Kind::Int64, device));
    let mut t = 0;
    while !alive.is_empty() {
        let logp = model.step(&memory, &mut state, &prev); // [rows, vocab]
        let (best_lp, best_tok) = logp.max_dim(-1, false); // [rows], [rows]
        let toks: Vec<i64> = Vec::try_from(&best_tok).expect("i64 tokens");
        let lps: Vec<f32> = Vec::try_from(&best_lp.to_kind(Kind::Float)).expect("f32 log-probs");
        t += 1;
        let mut keep = Vec::with_capacity(alive.len());
        for (row, &sent) in alive.iter().enumerate() {
            let h = &mut hyps[sent];
            h.score += lps[row];
            h.token_logprobs.push(lps[row]);
            if toks[row] != SPECIAL_IDS.eos as i64 {
                h.tokens.push(toks[row] as u32);
                if t < max_lens[sent] {
                    keep.push(row);
                }
            }
        }
        if keep.len() < alive.len() {
            if keep.is_empty() {
                break;
            }
            let index = Tensor::from_slice(&keep.iter().map(|&r| r as i64).collect::<Vec<_>>()).to(device);
            memory = memory.select(&index);
            state.rows = state.rows.select(&index);
            prev = best_tok.index_select(0, &index);
            alive = keep.iter().map(|&r| alive[r]).collect();
        } else {
            prev = best_tok;
        }
    }
    for h in &mut hyps {
        h.normalize(length_penalty);
    }
    hyps
}
