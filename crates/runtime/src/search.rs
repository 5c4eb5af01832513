//! Batched greedy and beam search over any [`Decoder`], with the same rules as the libtorch
//! decoder (`seqkd_nmt::decode`), so both engines give the same translations from the same weights.

use rayon::prelude::*;
use seqkd_text::vocab::SPECIAL_IDS;

use crate::format::Hypothesis;
use crate::kernels::{first_max, log_sum_exp_given_max, Threads};
use crate::Decoder;

/// Log-probability of `logit` in a row with normaliser `lse = max + log Σ exp(x - max)`
/// (libtorch's `log_softmax` subtracts `max` and `log Σ` separately; the last bit may differ).
fn log_prob(logit: f32, lse: f32) -> f32 {
    logit - lse
}

/// Greedy translations of `srcs`; sentence i stops at `</s>` or `max_lens[i]` tokens. Without
/// `scores` the log-probabilities are left at 0: the argmax needs no softmax, and skipping it
/// saves an `exp` per vocabulary entry per row and step.
pub fn greedy<D: Decoder>(
    model: &D,
    srcs: &[&[u32]],
    max_lens: &[usize],
    length_penalty: f64,
    threads: Threads,
    scores: bool,
) -> Vec<Hypothesis> {
    let n = srcs.len();
    let mut state = model.start(srcs, threads);
    let vocab = model.vocab_size();
    let mut search = GreedySearch::new(n, length_penalty);
    let mut prev = vec![SPECIAL_IDS.bos; n];
    let mut logits = Vec::new();
    while !search.is_done() {
        model.step(&mut state, &prev, &mut logits);
        let best: Vec<(u32, f32)> = logits
            .par_chunks_mut(vocab)
            .map(|l| {
                let (best, best_logit) = first_max(l);
                let lp =
                    if scores { log_prob(best_logit, log_sum_exp_given_max(l, best_logit)) } else { 0.0 };
                (best as u32, lp)
            })
            .collect();
        match search.advance(max_lens, |row| best[row]) {
            GreedyStep::Done => break,
            GreedyStep::AllGoOn => prev = best.iter().map(|b| b.0).collect(),
            GreedyStep::Rows(keep) => {
                model.select_rows(&mut state, &keep);
                prev = keep.iter().map(|&r| best[r].0).collect();
            }
        }
    }
    search.into_hypotheses()
}

/// The bookkeeping of batched greedy search, shared by both engines (as [`BeamSearch`] is for beam
/// search): which sentence each decoder row belongs to, the hypotheses so far, and when a sentence
/// stops (`</s>`, or its length limit). Finished sentences leave the batch, so no work is spent on them.
pub struct GreedySearch {
    hyps: Vec<Hypothesis>,
    /// `alive[row]` is the sentence that decoder row `row` belongs to.
    alive: Vec<usize>,
    /// Tokens chosen so far (the step number).
    t: usize,
    length_penalty: f64,
}

/// What the decoder does after a step of [`GreedySearch`].
#[derive(Debug, PartialEq)]
pub enum GreedyStep {
    /// Every row goes on, with the token it chose.
    AllGoOn,
    /// Only these rows (in order) go on: select them from the decoder state.
    Rows(Vec<usize>),
    /// Every sentence has stopped.
    Done,
}

impl GreedySearch {
    pub fn new(sentences: usize, length_penalty: f64) -> Self {
        Self {
            hyps: vec![Hypothesis::default(); sentences],
            alive: (0..sentences).collect(),
            t: 0,
            length_penalty,
        }
    }

    /// Whether every sentence has stopped (at once for an empty batch).
    pub fn is_done(&self) -> bool {
        self.alive.is_empty()
    }

    /// Takes each live row's best token and its log-probability (`best(row)`).
    pub fn advance(&mut self, max_lens: &[usize], best: impl Fn(usize) -> (u32, f32)) -> GreedyStep {
        self.t += 1;
        let mut keep = Vec::with_capacity(self.alive.len());
        for (row, &sent) in self.alive.iter().enumerate() {
            let (token, lp) = best(row);
            let h = &mut self.hyps[sent];
            h.score += lp;
            h.token_logprobs.push(lp);
            if token != SPECIAL_IDS.eos {
                h.tokens.push(token);
                if self.t < max_lens[sent] {
                    keep.push(row);
                }
            }
        }
        if keep.is_empty() {
            self.alive.clear();
            GreedyStep::Done
        } else if keep.len() == self.alive.len() {
            GreedyStep::AllGoOn
        } else {
            self.alive = keep.iter().map(|&r| self.alive[r]).collect();
            GreedyStep::Rows(keep)
        }
    }

    /// The hypotheses, their scores length-normalised.
    pub fn into_hypotheses(mut self) -> Vec<Hypothesis> {
        for h in &mut self.hyps {
            h.normalize(self.length_penalty);
        }
        self.hyps
    }
}

/// The n-best (≤ `nbest`, best first by length-normalised score) of each sentence.
pub fn beam_search<D: Decoder>(
    model: &D,
    srcs: &[&[u32]],
    max_lens: &[usize],
    beam: usize,
    length_penalty: f64,
    nbest: usize,
    threads: Threads,
) -> Vec<Vec<Hypothesis>> {
    beam_search_with(model, srcs, max_lens, beam, length_penalty, nbest, threads, Stopping::Seqkd)
}

/// [`beam_search`] with a choice of stopping rule.
#[allow(clippy::too_many_arguments)]
pub fn beam_search_with<D: Decoder>(
    model: &D,
    srcs: &[&[u32]],
    max_lens: &[usize],
    beam: usize,
    length_penalty: f64,
    nbest: usize,
    threads: Threads,
    stopping: Stopping,
) -> Vec<Vec<Hypothesis>> {
    let k = beam;
    let vocab = model.vocab_size();
    let mut state = model.start(srcs, threads);
    let mut search = BeamSearch::new(srcs.len(), k, length_penalty).with_stopping(stopping);
    model.select_rows(&mut state, &search.initial_rows());
    let mut prev = vec![SPECIAL_IDS.bos; srcs.len() * k];
    let mut logits = Vec::new();
    loop {
        model.step(&mut state, &prev, &mut logits);
        let scores = search.scores();
        // The best 2K of a sentence's K·V candidates are among each of its rows' best 2K.
        let row_best: Vec<Vec<(usize, f32)>> = logits
            .par_chunks_mut(vocab)
            .zip(scores.par_iter())
            .map(|(l, &score)| {
                if score == f32::NEG_INFINITY {
                    return Vec::new();
                }
                let top = top_indices(l, 2 * k);
                let lse = log_sum_exp_given_max(l, l[top[0]]);
                top.into_iter().map(|tok| (tok, log_prob(l[tok], lse) + score)).collect()
            })
            .collect();
        let next = search.advance(max_lens, vocab, |a, cands| {
            for b in 0..k {
                for &(tok, score) in &row_best[a * k + b] {
                    cands.push((score, b * vocab + tok));
                }
            }
            // Best first; ties to the lower flat index (as a stable top-k over `[K·V]`).
            cands.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            cands.truncate(2 * k);
        });
        match next {
            Some(step) => {
                model.select_rows(&mut state, &step.rows);
                prev = step.tokens;
            }
            None => break,
        }
    }
    search.into_nbest(nbest)
}

/// When beam search ends a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stopping {
    /// seqkd's (fairseq's and CTranslate2's) rule: when K hypotheses have ended with `</s>`, or at
    /// the length limit, where the live beams are answers without `</s>`.
    #[default]
    Seqkd,
    /// `transformers`' `generate` (`early_stopping = false`): the K best ended hypotheses are
    /// kept, replaced by better ones as they come, until the best live beam's score divided by
    /// (tokens so far)^length_penalty no longer beats the worst of K kept; at the length limit
    /// every live beam ends with a forced `</s>` (log-probability 0), as `forced_eos_token_id`
    /// and `max_length` make it. For imported Marian/OPUS-MT models, so that their beam output is
    /// the same as in `transformers`.
    Transformers,
}

/// The bookkeeping of batched beam search, shared by both engines (which differ only in how
/// they score candidates).
///
/// Rows are `sentence × K` (row `a·K + b` is beam b of the a-th live sentence). Each step takes
/// per sentence the best 2K extensions of its K beams; those among the first K that end in `</s>`
/// are final (later-ranked `</s>` are ignored, as in fairseq and CTranslate2), and the best K
/// others continue. A sentence is done when K hypotheses are final or it reaches its maximum
/// length (see [`Stopping`] for `transformers`' rule); done sentences leave the batch. With K = 1
/// and seqkd's rule this is greedy search.
#[derive(Debug)]
pub struct BeamSearch {
    k: usize,
    length_penalty: f64,
    stopping: Stopping,
    t: usize,
    live: Vec<usize>,
    beams: Vec<Hypothesis>,
    scores: Vec<f32>,
    finished: Vec<Vec<Hypothesis>>,
    /// The current sentence's candidates, reused across sentences and steps.
    candidates: Vec<(f32, usize)>,
}

/// What the decoder does next: continue row `rows[i]` with `tokens[i]`.
#[derive(Debug)]
pub struct BeamStep {
    pub rows: Vec<usize>,
    pub tokens: Vec<u32>,
    /// Some sentences finished: rows of per-sentence state (encoder memory) must be selected too.
    pub sentences_left: bool,
}

impl BeamSearch {
    pub fn new(sentences: usize, k: usize, length_penalty: f64) -> Self {
        Self {
            k,
            length_penalty,
            stopping: Stopping::Seqkd,
            t: 0,
            live: (0..sentences).collect(),
            beams: vec![Hypothesis::default(); sentences * k],
            // Only beam 0 starts alive, so the first step does not pick K copies of the same token.
            scores: (0..sentences * k).map(|r| if r % k == 0 { 0.0 } else { f32::NEG_INFINITY }).collect(),
            finished: vec![Vec::new(); sentences],
            candidates: Vec::with_capacity(2 * k * k),
        }
    }

    pub fn with_stopping(mut self, stopping: Stopping) -> Self {
        self.stopping = stopping;
        self
    }

    /// Keeps the K best of `finished` and `hyp` (`transformers`' rule).
    fn keep_best(&self, finished: &mut Vec<Hypothesis>, hyp: Hypothesis) {
        let at = finished.partition_point(|h| h.normalized_score >= hyp.normalized_score);
        finished.insert(at, hyp);
        finished.truncate(self.k);
    }

    /// Under `transformers`' rule, whether sentence `sent` is done after this step: K ended and
    /// the best live beam (`best`, its raw score) cannot beat the worst of them.
    fn transformers_done(&self, sent: usize, best: Option<f32>) -> bool {
        let finished = &self.finished[sent];
        let Some(best) = best else { return true };
        if finished.len() < self.k {
            return false;
        }
        let worst = finished.last().map_or(f32::NEG_INFINITY, |h| h.normalized_score);
        let best = (best as f64 / (self.t as f64).powf(self.length_penalty)) as f32;
        best <= worst
    }

    /// Every sentence's row repeated K times: `[0,0,..,1,1,..]`.
    pub fn initial_rows(&self) -> Vec<usize> {
        (0..self.live.len()).flat_map(|s| std::iter::repeat_n(s, self.k)).collect()
    }

    /// Score so far of every live row.
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }

    /// One step. `candidates(a, buffer)` puts the a-th live sentence's best 2K extensions into
    /// the (empty) buffer as `(score, b·vocab + token)`, best first. Returns `None` when every
    /// sentence is done.
    pub fn advance(
        &mut self,
        max_lens: &[usize],
        vocab: usize,
        mut candidates: impl FnMut(usize, &mut Vec<(f32, usize)>),
    ) -> Option<BeamStep> {
        let k = self.k;
        let mut cands = std::mem::take(&mut self.candidates);
        self.t += 1;
        let live = std::mem::take(&mut self.live);
        let mut rows = Vec::with_capacity(live.len() * k);
        let mut tokens = Vec::with_capacity(live.len() * k);
        let mut next_beams = Vec::with_capacity(live.len() * k);
        let mut next_scores = Vec::with_capacity(live.len() * k);
        for (a, &sent) in live.iter().enumerate() {
            let mut continuing: Vec<(usize, u32, Hypothesis)> = Vec::with_capacity(k);
            cands.clear();
            candidates(a, &mut cands);
            for (rank, &(score, flat)) in cands.iter().enumerate() {
                if score == f32::NEG_INFINITY {
                    break;
                }
                let parent = a * k + flat / vocab;
                let token = (flat % vocab) as u32;
                if token == SPECIAL_IDS.eos {
                    if rank < k {
                        let mut hyp = self.beams[parent].clone();
                        hyp.token_logprobs.push(score - self.scores[parent]);
                        hyp.score = score;
                        hyp.normalize(self.length_penalty);
                        if self.stopping == Stopping::Transformers {
                            let mut finished = std::mem::take(&mut self.finished[sent]);
                            self.keep_best(&mut finished, hyp);
                            self.finished[sent] = finished;
                            continue;
                        }
                        self.finished[sent].push(hyp);
                        if self.finished[sent].len() >= k {
                            break;
                        }
                    }
                    continue;
                }
                let mut hyp = self.beams[parent].clone();
                hyp.token_logprobs.push(score - self.scores[parent]);
                hyp.score = score;
                hyp.tokens.push(token);
                continuing.push((parent, token, hyp));
                if continuing.len() == k {
                    break;
                }
            }
            let at_limit = self.t >= max_lens[sent];
            if self.stopping == Stopping::Transformers {
                let best = continuing.first().map(|c| c.2.score);
                if !self.transformers_done(sent, best) && at_limit {
                    // The forced `</s>` at `max_length`: every live beam ends, with log-prob 0.
                    let mut finished = std::mem::take(&mut self.finished[sent]);
                    for (_, _, mut hyp) in continuing.drain(..) {
                        hyp.token_logprobs.push(0.0);
                        hyp.normalize(self.length_penalty);
                        self.keep_best(&mut finished, hyp);
                    }
                    self.finished[sent] = finished;
                }
                if self.transformers_done(sent, continuing.first().map(|c| c.2.score)) || at_limit {
                    if self.finished[sent].is_empty() {
                        self.finished[sent].push(Hypothesis {
                            score: f32::NEG_INFINITY,
                            normalized_score: f32::NEG_INFINITY,
                            ..Default::default()
                        });
                    }
                    continue;
                }
            } else if self.finished[sent].len() >= k || at_limit || continuing.is_empty() {
                if self.finished[sent].len() < k {
                    // Out of length: the unfinished beams are the answers (without `</s>`).
                    for (_, _, mut hyp) in continuing {
                        hyp.normalize(self.length_penalty);
                        self.finished[sent].push(hyp);
                    }
                }
                if self.finished[sent].is_empty() {
                    // Every extension was impossible (-inf; only with broken weights): answer an
                    // empty translation rather than none, so outputs stay one per input.
                    let impossible = f32::NEG_INFINITY;
                    self.finished[sent].push(Hypothesis {
                        score: impossible,
                        normalized_score: impossible,
                        ..Default::default()
                    });
                }
                continue;
            }
            // Fewer than K continuations only when candidates run out: repeat the last with a
            // -inf score so the row layout stays sentence × K.
            while continuing.len() < k {
                let (parent, token, mut hyp) = continuing.last().cloned().expect("non-empty");
                hyp.score = f32::NEG_INFINITY;
                continuing.push((parent, token, hyp));
            }
            self.live.push(sent);
            for (parent, token, hyp) in continuing {
                rows.push(parent);
                tokens.push(token);
                next_scores.push(hyp.score);
                next_beams.push(hyp);
            }
        }
        self.candidates = cands;
        if self.live.is_empty() {
            return None;
        }
        self.beams = next_beams;
        self.scores = next_scores;
        Some(BeamStep { rows, tokens, sentences_left: self.live.len() < live.len() })
    }

    /// Each sentence's hypotheses, best first, at most `nbest`.
    pub fn into_nbest(self, nbest: usize) -> Vec<Vec<Hypothesis>> {
        self.finished
            .into_iter()
            .map(|mut hyps| {
                hyps.sort_by(|a, b| b.normalized_score.total_cmp(&a.normalized_score));
                hyps.truncate(nbest.max(1));
                hyps
            })
            .collect()
    }
}

/// Indices of the `n` largest values, largest first, lower index first among equals.
pub(crate) fn top_indices(values: &[f32], n: usize) -> Vec<usize> {
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(n + 1);
    let consider = |i: usize, v: f32, best: &mut Vec<(f32, usize)>| {
        if best.len() < n || v > best[best.len() - 1].0 {
            let pos = best.partition_point(|&(b, _)| b >= v);
            best.insert(pos, (v, i));
            best.truncate(n);
        }
    };
    // Most chunks hold nothing above the current n-th best: skip them on their maximum.
    const CHUNK: usize = 32;
    for (c, chunk) in values.chunks(CHUNK).enumerate() {
        let threshold = if best.len() < n { f32::NEG_INFINITY } else { best[best.len() - 1].0 };
        if best.len() == n && chunk.iter().copied().fold(f32::NEG_INFINITY, f32::max) <= threshold {
            continue;
        }
        for (i, &v) in chunk.iter().enumerate() {
            consider(c * CHUNK + i, v, &mut best);
        }
    }
    best.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::top_indices;

    #[test]
    fn top_indices_keeps_the_largest_and_the_first_of_equals() {
        let v = [0.5, 3.0, -1.0, 3.0, 2.0, 7.0];
        assert_eq!(top_indices(&v, 3), vec![5, 1, 3]);
        let long: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 1009) as f32).collect();
        let mut sorted: Vec<usize> = (0..1000).collect();
        sorted.sort_by(|&a, &b| long[b].total_cmp(&long[a]).then(a.cmp(&b)));
        assert_eq!(top_indices(&long, 10), sorted[..10]);
        assert_eq!(top_indices(&v, 1), vec![5]);
        assert_eq!(top_indices(&v, 10).len(), 6);
    }
}
