//! Teacher-forced scoring: the model's distribution at every position of a given target,
//!
//! q(· | s, t_<j) = softmax(z_j / T),   j = 1 … m+1   (t_1 … t_m, then `</s>`)
//!
//! keeping the k most likely tokens of each position, best first. This is the teacher pass behind
//! Word-KD's stored top-k (Kim & Rush 2016, §3.1; `seqkd distill topk`): the libtorch engine runs
//! it as one padded forward pass per batch; here the decoder steps through the target with the
//! gold token as its input, as search does with its own choices, so both architectures (and int8
//! weights) score through the same [`Decoder`] seam, and each position's vocabulary-wide logits
//! are reduced to k entries while still in cache.

use seqkd_text::vocab::SPECIAL_IDS;

use crate::kernels::{softmax_top, Threads};
use crate::search::top_indices;
use crate::Decoder;

/// The k most likely tokens at every target position of one sentence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForcedTopk {
    /// `[positions × k]` token ids, best first within each position.
    pub ids: Vec<u32>,
    /// `[positions × k]` their probabilities under the full softmax (not renormalised).
    pub probs: Vec<f32>,
}

impl ForcedTopk {
    /// Positions scored: the target's subwords plus `</s>`.
    pub fn positions(&self, k: usize) -> usize {
        self.ids.len() / k.max(1)
    }
}

/// Scores every target `tgts[i]` (subword ids, `</s>` not included) given its source `srcs[i]`,
/// teacher-forced, and keeps the `k` most likely tokens of each position at `temperature`.
/// Results are in input order. Rows leave the batch as their targets end.
pub fn forced_topk<D: Decoder>(
    model: &D,
    srcs: &[&[u32]],
    tgts: &[&[u32]],
    k: usize,
    temperature: f32,
    threads: Threads,
) -> Vec<ForcedTopk> {
    assert_eq!(srcs.len(), tgts.len(), "one target per source");
    let vocab = model.vocab_size();
    let k = k.clamp(1, vocab.max(1));
    // Longest target first: the rows still running are always a prefix of the batch.
    let mut order: Vec<usize> = (0..srcs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tgts[i].len()));
    let sorted: Vec<&[u32]> = order.iter().map(|&i| srcs[i]).collect();
    let mut out: Vec<ForcedTopk> = tgts
        .iter()
        .map(|t| ForcedTopk {
            ids: Vec::with_capacity((t.len() + 1) * k),
            probs: Vec::with_capacity((t.len() + 1) * k),
        })
        .collect();
    if srcs.is_empty() {
        return out;
    }
    let mut state = model.start(&sorted, threads);
    let mut live = order.len();
    let mut prev = vec![SPECIAL_IDS.bos; live];
    let mut logits = Vec::new();
    let longest = tgts[order[0]].len();
    for j in 0..=longest {
        model.step(&mut state, &prev, &mut logits);
        for (r, row) in logits.chunks_mut(vocab).take(live).enumerate() {
            let scored = &mut out[order[r]];
            if temperature != 1.0 {
                for z in row.iter_mut() {
                    *z /= temperature;
                }
            }
            let best = if k <= 64 { top_indices(row, k) } else { all_sorted(row, k) };
            softmax_top(row, &best, |id, p| {
                scored.ids.push(id as u32);
                scored.probs.push(p);
            });
        }
        // Row r has positions 0..=len: it is done after position len.
        let still = order[..live].iter().take_while(|&&i| tgts[i].len() > j).count();
        if still == 0 {
            break;
        }
        if still < live {
            model.select_rows(&mut state, &(0..still).collect::<Vec<_>>());
            live = still;
        }
        prev.truncate(live);
        for (r, p) in prev.iter_mut().enumerate() {
            *p = tgts[order[r]][j];
        }
    }
    out
}

/// The `k` largest of `row`, largest first, lower index first among equals, by sorting: for the
/// large k (a full distribution) where [`top_indices`]' insertion would be quadratic.
fn all_sorted(row: &[f32], k: usize) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..row.len()).collect();
    ids.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    ids.truncate(k);
    ids
}
