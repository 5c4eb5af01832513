//! One training update, written once: `seqkd train` runs it in its loop and `seqkd bench` times it.

use std::collections::HashMap;

use seqkd_torch_ext::autocast::{Autocast, LowPrecision};
use tch::{Kind, Tensor};

use super::data_parallel::DataParallel;
use super::method::{Objective, WeightConstraint};
use super::optim::Optimizer;
use crate::batch::Batch;
use crate::config::{Precision, TrainConfig};
use crate::error::Error;
use crate::model::Seq2Seq;

/// What every update of a run shares.
pub struct Update<'a> {
    pub model: &'a dyn Seq2Seq,
    /// The model's variables by name (what the constraint acts on).
    pub vars: &'a HashMap<String, Tensor>,
    pub objective: &'a dyn Objective,
    pub constraint: &'a dyn WeightConstraint,
    pub train: &'a TrainConfig,
    /// The run's other processes, when it is data-parallel.
    pub data_parallel: Option<&'a DataParallel>,
}

impl Update<'_> {
    /// Update number `step` (0-based) at learning rate `lr` on `batch`, whose rows are the training
    /// pairs `sentences`: dropout reseeded from (seed, step), forward, loss, backward, the
    /// constraint on the gradients, clipping, the optimiser step, the constraint on the weights.
    /// Returns the summed loss of the batch.
    pub fn run(&self, opt: &mut Optimizer, batch: &Batch, sentences: &[usize], step: i64, lr: f64) -> f64 {
        self.run_with(opt, batch, sentences, step, lr, |_| {})
    }

    /// [`Update::run`], calling `done(phase)` as each phase ends (for profiling).
    pub fn run_with(
        &self,
        opt: &mut Optimizer,
        batch: &Batch,
        sentences: &[usize],
        step: i64,
        lr: f64,
        done: impl FnMut(Phase),
    ) -> f64 {
        assert!(self.data_parallel.is_none(), "a data-parallel update goes through run_share");
        let share = Share { batch: Some(batch), sentences, batch_tokens: batch.n_tgt_tokens };
        self.update(opt, &share, step, lr, done).expect("no collectives without data parallelism")
    }

    /// Update number `step` of a data-parallel run, from this rank's share of the global batch
    /// (see [`super::data_parallel`]). Returns the summed loss of the whole global batch.
    pub fn run_share(&self, opt: &mut Optimizer, share: &Share, step: i64, lr: f64) -> Result<f64, Error> {
        self.update(opt, share, step, lr, |_| {})
    }

    fn update(
        &self,
        opt: &mut Optimizer,
        share: &Share,
        step: i64,
        lr: f64,
        mut done: impl FnMut(Phase),
    ) -> Result<f64, Error> {
        let t = self.train;
        // Dropout masks depend only on (seed, step, rank): resumed runs repeat them exactly, and
        // the ranks of a data-parallel run draw different masks.
        let rank = self.data_parallel.map_or(0, |d| d.rank() as u64);
        let seed = t
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(step as u64)
            .wrapping_add(rank.wrapping_mul(0x9E37_79B9));
        tch::manual_seed(seed as i64);
        opt.zero_grad();
        let loss = share.batch.map(|batch| {
            let logits = {
                // bf16: the model's forward pass under CPU autocast; the loss (and a live teacher)
                // outside it, in f32. Backward follows the forward's dtypes, and the gradients
                // land in the f32 weights.
                let _region = (t.precision == Precision::Bf16)
                    .then(|| Autocast::cpu(LowPrecision::BFloat16).expect("libtorch's CPU autocast"));
                self.model.logits(&batch.src, &batch.tgt_in, true).to_kind(Kind::Float)
            };
            let loss = self.objective.loss(&logits, batch, share.sentences, t.label_smoothing);
            done(Phase::Forward);
            (&loss / share.batch_tokens as f64).backward();
            loss
        });
        let mut loss = loss.as_ref().map_or(0.0, |l| l.double_value(&[]));
        if let Some(dp) = self.data_parallel {
            loss = dp.all_reduce_grads(self.vars, loss)?; // the whole batch's
        }
        self.constraint.constrain_grads(self.vars);
        done(Phase::Backward);
        opt.clip_grad_norm(t.clip_norm);
        done(Phase::Clip);
        opt.step(lr);
        self.constraint.constrain(self.vars);
        done(Phase::Optimizer);
        Ok(loss)
    }
}

/// One rank's part of a global batch.
pub struct Share<'a> {
    /// Its rows (None when the global batch has fewer rows than there are ranks).
    pub batch: Option<&'a Batch>,
    /// Corpus-order indices of those rows.
    pub sentences: &'a [usize],
    /// Target tokens of the whole global batch: what the summed loss is divided by.
    pub batch_tokens: i64,
}

/// The phases of an update, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Forward pass and loss.
    Forward,
    /// Backward pass (and the constraint on the gradients).
    Backward,
    /// Gradient clipping.
    Clip,
    /// The optimiser step (and the constraint on the weights).
    Optimizer,
}
