//! Batched beam search (K hypotheses per sentence, all sentences in one batch).
//!
//! Rows of the decoder are `sentence × K` (row `a·K + k` is beam k of the a-th live sentence). Each
//! step scores every extension of every beam, keeps per sentence the best 2K candidates, finalises
//! those ending in `</s>` and continues with the best K others. A sentence is done when K hypotheses
//! are final (fairseq's criterion) or it reaches its maximum length; done sentences leave the batch.
//! With K = 1 this is exactly greedy search.

use seqkd_text::vocab::SPECIAL_IDS;
use tch::{Kind, Tensor};

use super::Hypothesis;
use crate::model::Seq2Seq;

/// The n-best (≤ `nbest`, best first by length-normalised score) of each sentence of `src`.
pub fn beam_search(
    model: &dyn Seq2Seq,
    src: &Tensor,
    max_lens: &[usize],
    beam: usize,
    length_penalty: f64,
    nbest: usize,
) -> Vec<Vec<Hypothesis>> {
    let n = src.size()[0] as usize;
    let device = src.device();
    let k = beam;
    let (memory, state) = model.encode(src);
    // Repeat every sentence's rows K times: [0,0,..,1,1,..].
    let expand =
        Tensor::arange(n as i64, (Kind::Int64, device)).repeat_interleave_self_int(k as i64, 0, None);
    let mut memory = memory.select(&expand);
    let mut state = crate::model::DecoderState { rows: state.rows.select(&expand), step: state.step };

    let mut finished: Vec<Vec<Hypothesis>> = vec![Vec::new(); n];
    // Live sentences, and per row: tokens, log-probs and total score so far.
    let mut live: Vec<usize> = (0..n).collect();
    let mut beams: Vec<Hypothesis> = vec![Hypothesis::default(); n * k];
    // Only beam 0 starts alive, so the first step does not pick K copies of the same token.
    let mut scores: Vec<f32> = (0..n * k).map(|r| if r % k == 0 { 0.0 } else { f32::NEG_INFINITY }).collect();
    let mut prev = Tensor::full([(n * k) as i64], SPECIAL_IDS.bos as i64, (Kind::Int64, device));
    let mut t = 0;

    while !live.is_empty() {
        let logp = model.step(&memory, &mut state, &prev); // [live·K, vocab]
        let vocab = logp.size()[1];
        t += 1;
        // Candidate scores: beam score + token log-prob, flattened per sentence to [live, K·vocab].
        let cand = (logp + Tensor::from_slice(&scores).to(device).unsqueeze(1)).view([live.len() as i64, -1]);
        let (top_scores, top_index) = cand.topk((2 * k) as i64, -1, true, true); // [live, 2K]
        let top_scores: Vec<f32> = Vec::try_from(&top_scores.flatten(0, -1)).expect("f32 scores");
        let top_index: Vec<i64> = Vec::try_from(&top_index.flatten(0, -1)).expect("i64 indices");

        let mut next_rows: Vec<i64> = Vec::with_capacity(live.len() * k);
        let mut next_tokens: Vec<i64> = Vec::with_capacity(live.len() * k);
        let mut next_beams: Vec<Hypothesis> = Vec::with_capacity(live.len() * k);
        let mut next_scores: Vec<f32> = Vec::with_capacity(live.len() * k);
        let mut next_live = Vec::with_capacity(live.len());
        for (a, &sent) in live.iter().enumerate() {
            let mut continuing = Vec::with_capacity(k);
            for j in 0..2 * k {
                let score = top_scores[a * 2 * k + j];
                if score == f32::NEG_INFINITY {
                    break;
                }
                let flat = top_index[a * 2 * k + j];
                let parent = a * k + (flat / vocab) as usize;
                let token = flat % vocab;
                let mut hyp = beams[parent].clone();
                hyp.token_logprobs.push(score - scores[parent]);
                hyp.score = score;
                if token == SPECIAL_IDS.eos as i64 {
                    hyp.normalize(length_penalty);
                    finished[sent].push(hyp);
                    if finished[sent].len() >= k {
                        break;
                    }
                } else {
                    hyp.tokens.push(token as u32);
                    continuing.push((parent, token, hyp));
                    if continuing.len() == k {
                        break;
                    }
                }
            }
            let at_limit = t >= max_lens[sent];
            if finished[sent].len() >= k || at_limit || continuing.is_empty() {
                if finished[sent].len() < k {
                    // Out of length: the unfinished beams are the answers (without `</s>`).
                    for (_, _, mut hyp) in continuing {
                        hyp.normalize(length_penalty);
                        finished[sent].push(hyp);
                    }
                }
                continue;
            }
            // Fewer than K continuations can only happen when candidates run out; repeat the last
            // with -inf score so the row layout stays sentence × K.
            while continuing.len() < k {
                let (parent, token, mut hyp) = continuing.last().cloned().expect("non-empty");
                hyp.score = f32::NEG_INFINITY;
                continuing.push((parent, token, hyp));
            }
            next_live.push(sent);
            for (parent, token, hyp) in continuing {
                next_rows.push(parent as i64);
                next_tokens.push(token);
                next_scores.push(hyp.score);
                next_beams.push(hyp);
            }
        }
        if next_live.is_empty() {
            break;
        }
        let rows = Tensor::from_slice(&next_rows).to(device);
        state.rows = state.rows.select(&rows);
        if next_live.len() < live.len() {
            // Beams of one sentence share their memory, so memory only changes when sentences leave.
            memory = memory.select(&rows);
        }
        prev = Tensor::from_slice(&next_tokens).to(device);
        live = next_live;
        beams = next_beams;
        scores = next_scores;
    }
    finished
        .into_iter()
        .map(|mut hyps| {
            hyps.sort_by(|a, b| b.normalized_score.total_cmp(&a.normalized_score));
            hyps.truncate(nbest.max(1));
            hyps
        })
        .collect()
}
