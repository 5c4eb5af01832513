//! One training update, written once: `seqkd train` runs it in its loop and `seqkd bench` times it.

use std::collections::HashMap;

use tch::Tensor;

use super::method::{Objective, WeightConstraint};
use super::optim::Optimizer;
use crate::batch::Batch;
use crate::config::TrainConfig;
use crate::model::Seq2Seq;

/// What every update of a run shares.
pub struct Update<'a> {
    pub model: &'a dyn Seq2Seq,
    /// The model's variables by name (what the constraint acts on).
    pub vars: &'a HashMap<String, Tensor>,
    pub objective: &'a dyn Objective,
    pub constraint: &'a dyn WeightConstraint,
    pub train: &'a TrainConfig,
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
        mut done: impl FnMut(Phase),
    ) -> f64 {
        let t = self.train;
        // Dropout masks depend only on (seed, step): resumed runs repeat them exactly.
        tch::manual_seed(t.seed.wrapping_mul(1_000_003).wrapping_add(step as u64) as i64);
        opt.zero_grad();
        let logits = self.model.logits(&batch.src, &batch.tgt_in, true);
        let loss = self.objective.loss(&logits, batch, sentences, t.label_smoothing);
        done(Phase::Forward);
        (&loss / batch.n_tgt_tokens as f64).backward();
        self.constraint.constrain_grads(self.vars);
        done(Phase::Backward);
        opt.clip_grad_norm(t.clip_norm);
        done(Phase::Clip);
        opt.step(lr);
        self.constraint.constrain(self.vars);
        done(Phase::Optimizer);
        loss.double_value(&[])
    }
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
