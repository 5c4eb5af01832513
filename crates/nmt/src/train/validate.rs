//! Validation while training: perplexity of the validation references (teacher-forced) and greedy
//! BLEU on a subset; the best validation's weights become the kept model, and early stopping
//! counts the validations since.

use std::collections::HashMap;
use std::path::Path;

use tch::{nn, Device};

use seqkd_text::batching::{BatchConfig, Batcher};
use seqkd_text::metrics::{corpus_bleu, BleuConfig};
use seqkd_text::vocab::Vocab;

use super::method::WeightConstraint;
use super::metrics::{MetricsLog, Record};
use super::state::TrainState;
use crate::batch::Batch;
use crate::checkpoint;
use crate::config::{Config, SelectBy};
use crate::decode::Translator;
use crate::error::{io_err, Error};
use crate::loss::label_smoothed_nll;
use crate::model::{Model, Seq2Seq};
use crate::model_dir::{named_vars, step_checkpoint, step_checkpoints, BEST_FILE};

/// What validation needs: the model being trained and the validation set.
pub(super) struct Validation<'a> {
    pub cfg: &'a Config,
    pub vs: &'a nn::VarStore,
    pub model: &'a Model,
    pub vocab: &'a Vocab,
    pub pairs: &'a [(&'a [u32], &'a [u32])],
    pub src_text: &'a [String],
    pub tgt_text: &'a [String],
    pub constraint: &'a dyn WeightConstraint,
    pub dir: &'a Path,
    pub device: Device,
}

impl Validation<'_> {
    /// Validates, saves the best model, logs the record. Returns true when early stopping says to stop.
    pub fn run(&self, state: &mut TrainState, log: &mut MetricsLog) -> Result<bool, Error> {
        let Validation { cfg, vs, model, vocab, pairs, src_text, tgt_text, constraint, dir, device } = *self;
        let ppl = perplexity(model, pairs, cfg.train.batch_tokens, device);
        let n_bleu = if cfg.train.valid_bleu_sentences == 0 {
            src_text.len()
        } else {
            cfg.train.valid_bleu_sentences.min(src_text.len())
        };
        let mut decode_cfg = cfg.decode.clone();
        decode_cfg.beam_size = 1;
        let translator = Translator { model, vocab, cfg: decode_cfg, device, scores: false };
        let hyps = translator.translate_text(&src_text[..n_bleu])?;
        let bleu =
            corpus_bleu(&hyps, &tgt_text[..n_bleu], &BleuConfig::default()).map(|b| b.score).unwrap_or(0.0);
        keep_step_checkpoint(vs, dir, state.step, cfg.train.keep_checkpoints)?;
        let improved = match cfg.train.select_by {
            SelectBy::Perplexity => state.best_valid_ppl.is_none_or(|best| ppl < best),
            SelectBy::Bleu => state.best_valid_bleu.is_none_or(|best| bleu > best),
        };
        if improved {
            state.best_valid_ppl = Some(ppl);
            state.best_valid_bleu = Some(bleu);
            state.bad_validations = 0;
            let meta = HashMap::from([("step".to_string(), state.step.to_string())]);
            let weights = constraint.stored_weights(named_vars(vs, "model."), "model.");
            checkpoint::save(&dir.join(BEST_FILE), &weights, meta)?;
        } else {
            state.bad_validations += 1;
        }
        log.write(&Record::Valid {
            step: state.step,
            epoch: state.epoch,
            ppl,
            bleu_greedy: bleu,
            bleu_sentences: n_bleu,
            best: improved,
        })?;
        Ok(cfg.train.patience > 0 && state.bad_validations >= cfg.train.patience)
    }
}

/// Saves this validation's weights as `step-NNNNNNN.safetensors` and deletes all but the newest `keep`.
fn keep_step_checkpoint(vs: &nn::VarStore, dir: &Path, step: i64, keep: usize) -> Result<(), Error> {
    if keep == 0 {
        return Ok(());
    }
    checkpoint::save(&step_checkpoint(dir, step), &named_vars(vs, "model."), HashMap::new())?;
    let mut steps = step_checkpoints(dir).map_err(io_err(dir))?;
    while steps.len() > keep {
        let old = steps.remove(0);
        std::fs::remove_file(&old).map_err(io_err(&old))?;
    }
    Ok(())
}

/// Per-token perplexity of `pairs` under `model`, teacher-forced, batched.
pub fn perplexity(
    model: &dyn Seq2Seq,
    pairs: &[(&[u32], &[u32])],
    batch_tokens: usize,
    device: Device,
) -> f64 {
    let lengths: Vec<(usize, usize)> = pairs.iter().map(|(s, t)| (s.len(), t.len())).collect();
    let batcher =
        Batcher::new(&lengths, BatchConfig { batch_tokens, ..Default::default() }).expect("validated");
    let (mut nll, mut tokens) = (0f64, 0i64);
    tch::no_grad(|| {
        for idx in batcher.epoch(0, 0) {
            let rows: Vec<(&[u32], &[u32])> = idx.iter().map(|&i| pairs[i]).collect();
            let batch = Batch::new(&rows, device);
            let logits = model.logits(&batch.src, &batch.tgt_in, false);
            nll += label_smoothed_nll(&logits, &batch.tgt_out, 0.0).double_value(&[]);
            tokens += batch.n_tgt_tokens;
        }
    });
    (nll / tokens.max(1) as f64).exp()
}
