//! Token-based batching: groups sentence pairs into batches of about `batch_tokens` padded tokens.
//!
//! Between vocab and model in the data flow. Batches are sized by tokens, not sentences, because
//! the cost of a step (and its memory) grows with the padded batch size `n × max_len`. Pairs of
//! similar length are grouped (bucketing) so little compute is spent on padding, yet every epoch
//! sees a different order: the training order is shuffled with a seed, split into pools, each pool
//! is sorted by length and cut into batches, and the batches are shuffled again. The result depends
//! only on `(seed, epoch)`, so a resumed run can regenerate an epoch and skip the batches it did.
//!
//! Batches hold indices into the corpus; turning them into tensors is the model side's job.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Padded tokens per batch, counted as `sentences × (longest side + 1)` (the +1 is `</s>`).
    pub batch_tokens: usize,
    /// Upper bound on sentences per batch, whatever their length (0 = none).
    pub max_sentences: usize,
    /// How many batches' worth of pairs are sorted together: larger pools pad less, smaller pools
    /// shuffle more. 100 is fairseq's and Marian's order of magnitude (`--maxi-batch 100`).
    pub pool_batches: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { batch_tokens: 4096, max_sentences: 0, pool_batches: 100 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch_tokens must be > 0 (got 0)")]
    ZeroBatchTokens,
    #[error("pool_batches must be > 0 (got 0)")]
    ZeroPool,
}

/// Builds the batches of a corpus from its `(src_len, tgt_len)` token counts.
#[derive(Debug, Clone)]
pub struct Batcher {
    lengths: Vec<(u32, u32)>,
    cfg: BatchConfig,
}

impl Batcher {
    pub fn new(lengths: &[(usize, usize)], cfg: BatchConfig) -> Result<Self, BatchError> {
        if cfg.batch_tokens == 0 {
            return Err(BatchError::ZeroBatchTokens);
        }
        if cfg.pool_batches == 0 {
            return Err(BatchError::ZeroPool);
        }
        let lengths = lengths.iter().map(|&(s, t)| (s as u32, t as u32)).collect();
        Ok(Self { lengths, cfg })
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Padded length of one pair: the longer side plus `</s>`.
    fn padded_len(&self, i: usize) -> usize {
        let (s, t) = self.lengths[i];
        s.max(t) as usize + 1
    }

    /// The training batches of `epoch`, a deterministic function of `(seed, epoch)`.
    pub fn epoch(&self, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
        // One ChaCha stream per epoch: epochs are independent and any one can be regenerated alone.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(epoch);

        // 1) Shuffle all pairs.
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut rng);

        // 2) Sort each pool by length, so a batch holds pairs of similar length.
        let mean_len = (order.iter().map(|&i| self.padded_len(i)).sum::<usize>() / self.len().max(1)).max(1);
        let pool = (self.cfg.pool_batches * self.cfg.batch_tokens / mean_len).max(1);
        let mut batches = Vec::new();
        for chunk in order.chunks_mut(pool) {
            chunk.sort_by_key(|&i| (self.padded_len(i), self.lengths[i].1, self.lengths[i].0));
            batches.extend(self.cut(chunk, |i| self.padded_len(i)));
        }

        // 3) Shuffle the batches, so the epoch does not go short-to-long within each pool.
        batches.shuffle(&mut rng);
        batches
    }

    /// Batches for decoding: sorted by source length (longest first, so memory peaks at once),
    /// sized by source tokens only. Callers restore the input order from the indices.
    pub fn by_source_length(&self) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.lengths[i].0));
        self.cut(&order, |i| self.lengths[i].0 as usize + 1)
    }

    /// Cuts an ordered run of pairs into batches whose padded size stays within the budget.
    /// A pair longer than the whole budget gets a batch of its own rather than being dropped.
    fn cut(&self, order: &[usize], len_of: impl Fn(usize) -> usize) -> Vec<Vec<usize>> {
        let mut batches = Vec::new();
        let mut batch: Vec<usize> = Vec::new();
        let mut longest = 0;
        for &i in order {
            let len = len_of(i);
            let new_longest = longest.max(len);
            let too_many = self.cfg.max_sentences > 0 && batch.len() >= self.cfg.max_sentences;
            if !batch.is_empty() && (new_longest * (batch.len() + 1) > self.cfg.batch_tokens || too_many) {
                batches.push(std::mem::take(&mut batch));
                longest = len;
            } else {
                longest = new_longest;
            }
            batch.push(i);
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(n: usize) -> Vec<(usize, usize)> {
        // Deterministic spread of lengths 1..=40.
        (0..n).map(|i| ((i * 7919) % 40 + 1, (i * 104729) % 37 + 1)).collect()
    }

    fn batcher(batch_tokens: usize) -> Batcher {
        Batcher::new(&lengths(1000), BatchConfig { batch_tokens, max_sentences: 0, pool_batches: 10 })
            .unwrap()
    }

    #[test]
    fn every_pair_appears_once_per_epoch() {
        let b = batcher(200);
        for epoch in 0..3 {
            let mut seen: Vec<usize> = b.epoch(7, epoch).concat();
            seen.sort_unstable();
            assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn batches_respect_the_token_budget() {
        let b = batcher(200);
        for batch in b.epoch(1, 0) {
            let longest = batch.iter().map(|&i| b.padded_len(i)).max().unwrap();
            assert!(longest * batch.len() <= 200 || batch.len() == 1);
        }
        let capped = Batcher::new(
            &lengths(100),
            BatchConfig { batch_tokens: 10_000, max_sentences: 8, pool_batches: 4 },
        )
        .unwrap();
        assert!(capped.epoch(0, 0).iter().all(|b| b.len() <= 8));
    }

    #[test]
    fn same_seed_and_epoch_give_same_batches_and_epochs_differ() {
        let b = batcher(300);
        assert_eq!(b.epoch(42, 3), b.epoch(42, 3));
        assert_ne!(b.epoch(42, 3), b.epoch(42, 4));
        assert_ne!(b.epoch(42, 3), b.epoch(43, 3));
    }

    #[test]
    fn bucketing_pads_less_than_random_batches() {
        let b = batcher(400);
        let padding = |batches: &[Vec<usize>]| -> usize {
            batches
                .iter()
                .map(|batch| {
                    let longest = batch.iter().map(|&i| b.padded_len(i)).max().unwrap();
                    batch.iter().map(|&i| longest - b.padded_len(i)).sum::<usize>()
                })
                .sum()
        };
        let bucketed = padding(&b.epoch(5, 0));
        // Same sizes, no sorting: a pool of one batch.
        let unsorted = Batcher::new(
            &lengths(1000),
            BatchConfig { batch_tokens: 400, max_sentences: 0, pool_batches: 1 },
        )
        .unwrap();
        assert!(bucketed * 2 < padding(&unsorted.epoch(5, 0)), "bucketing should at least halve padding");
    }

    #[test]
    fn over_long_pair_gets_its_own_batch_and_decoding_order_is_longest_first() {
        let b =
            Batcher::new(&[(3, 3), (50, 2), (4, 4)], BatchConfig { batch_tokens: 10, ..Default::default() })
                .unwrap();
        assert_eq!(b.by_source_length(), vec![vec![1], vec![2, 0]]);
    }

    #[test]
    fn zero_budget_is_an_error() {
        let cfg = BatchConfig { batch_tokens: 0, ..Default::default() };
        assert_eq!(Batcher::new(&[], cfg).unwrap_err(), BatchError::ZeroBatchTokens);
    }
}
