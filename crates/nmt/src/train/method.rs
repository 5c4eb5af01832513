//! The trainer's two seams, so that training knows nothing of the methods built on it:
//!
//! - an [`Objective`]: the loss on a batch. Plain training minimises label-smoothed cross-entropy
//!   ([`CrossEntropy`]); Word-KD's interpolation with a teacher's distribution
//!   (Kim & Rush §3.1, in the distillation module) is another objective.
//! - a [`WeightConstraint`] applied around every optimiser step. Plain training has none
//!   ([`Unconstrained`]); retraining a pruned model holds its pruned weights at zero
//!   (the pruning module's masks).
//!
//! A [`Method`] builds both for one run; the student module's is the method that reads a config's
//! `[word_kd]` section and a pruned starting model.

use std::collections::HashMap;

use tch::{Device, Tensor};

use seqkd_text::encoded::Sentences;
use seqkd_text::vocab::Vocab;

use crate::batch::Batch;
use crate::config::Config;
use crate::error::Error;
use crate::loss::label_smoothed_nll;

/// The loss a run minimises.
pub trait Objective {
    /// The summed loss of `logits` `[batch, len, vocab]` on `batch`, whose rows are the training
    /// pairs `sentences` (indices in corpus order); the trainer divides it by the target tokens.
    fn loss(&self, logits: &Tensor, batch: &Batch, sentences: &[usize], label_smoothing: f64) -> Tensor;
}

/// Label-smoothed cross-entropy against the gold target (see [`crate::loss`]).
pub struct CrossEntropy;

impl Objective for CrossEntropy {
    fn loss(&self, logits: &Tensor, batch: &Batch, _sentences: &[usize], label_smoothing: f64) -> Tensor {
        label_smoothed_nll(logits, &batch.tgt_out, label_smoothing)
    }
}

/// A constraint on the weights, kept through every update.
pub trait WeightConstraint {
    /// Before clipping and the optimiser step: removes from the gradients what the constraint forbids.
    fn constrain_grads(&self, vars: &HashMap<String, Tensor>);
    /// After every optimiser step: puts the weights back inside the constraint.
    fn constrain(&self, vars: &HashMap<String, Tensor>);
    /// What the resumable checkpoint keeps of the constraint (restored through [`Start::Resumed`]).
    fn checkpoint_tensors(&self) -> Vec<(String, Tensor)>;
    /// The form in which the kept model's weights (`<prefix><name>`) are saved.
    fn stored_weights(&self, vars: Vec<(String, Tensor)>, prefix: &str) -> Vec<(String, Tensor)>;
}

/// No constraint: the weights are saved as they are.
pub struct Unconstrained;

impl WeightConstraint for Unconstrained {
    fn constrain_grads(&self, _vars: &HashMap<String, Tensor>) {}
    fn constrain(&self, _vars: &HashMap<String, Tensor>) {}
    fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
    fn stored_weights(&self, vars: Vec<(String, Tensor)>, _prefix: &str) -> Vec<(String, Tensor)> {
        vars
    }
}

/// Where a run starts from, for its method to set up the constraint.
pub enum Start<'a> {
    /// A random initialisation.
    Scratch,
    /// `[train] init`: the keep-masks of the starting model's compactly stored weights (none for a
    /// dense model; see [`crate::model_dir::sparse`]).
    Init { masks: &'a [(String, Tensor)] },
    /// A resumed run: the tensors of its last checkpoint.
    Resumed { checkpoint: &'a HashMap<String, Tensor> },
}

/// What the objective may need of the run: the student's vocabulary and the target ids of every
/// training pair in corpus order (a stored top-k file is checked against them).
pub struct RunData<'a> {
    pub config: &'a Config,
    pub vocab: &'a Vocab,
    pub targets: &'a dyn Sentences,
    pub device: Device,
}

/// A training method: the objective and the weight constraint of one run.
pub trait Method {
    fn objective(&self, data: &RunData) -> Result<Box<dyn Objective>, Error>;
    fn constraint(&self, start: Start) -> Result<Box<dyn WeightConstraint>, Error>;
}
