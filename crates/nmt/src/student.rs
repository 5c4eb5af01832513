//! Training a model with the paper's methods plugged into the trainer's seams
//! ([`crate::train::method`]): Word-KD's objective when the config has a `[word_kd]` section
//! (Kim & Rush §3.1), and pruning's masks when the run starts from a pruned model (§6, retraining
//! under the mask). Seq-KD and Seq-Inter need nothing here: they change the corpus, not the loss.
//! Without either, this is plain label-smoothed cross-entropy training.

use crate::config::Config;
use crate::distill::word_kd::WordKd;
use crate::error::Error;
use crate::prune::Masks;
use crate::train::method::{CrossEntropy, Method, Objective, RunData, Start, WeightConstraint};
use crate::train::{TrainOptions, TrainState};

/// The objective and constraint a config and a starting point ask for.
pub struct PaperMethods;

impl Method for PaperMethods {
    fn objective(&self, data: &RunData) -> Result<Box<dyn Objective>, Error> {
        Ok(match &data.config.word_kd {
            Some(kd) => Box::new(WordKd::open(kd, data.vocab, data.targets, data.device)?),
            None => Box::new(CrossEntropy),
        })
    }

    fn constraint(&self, start: Start) -> Result<Box<dyn WeightConstraint>, Error> {
        Ok(Box::new(Masks::at_start(start)))
    }
}

/// Trains (or resumes) the model `cfg` describes into `opts.model_dir`; see [`crate::train::train`].
pub fn train(cfg: &Config, opts: &TrainOptions) -> Result<TrainState, Error> {
    crate::train::train(cfg, opts, &PaperMethods)
}
