//! Training: the optimisation loop, validation, early stopping and resumable checkpoints.
//!
//! A model directory is self-contained:
//! - `config.toml`   the resolved configuration (resume and decoding take the architecture from it)
//! - `vocab.json`    the joint subword vocabulary
//! - `model.safetensors`  weights of the best validation (perplexity, or greedy BLEU with `select_by = "bleu"`): what `translate` loads
//! - `last.safetensors`   weights + optimiser state + training state: what `--resume` continues from
//! - `metrics.jsonl` one JSON object per log/validation event; `loss.svg` the curves
//!
//! Determinism: the batch order is a function of (seed, epoch) and dropout is reseeded from
//! (seed, step) before every update, so a run resumed from a checkpoint performs exactly the updates
//! the uninterrupted run would have.

pub mod checkpoint;
pub mod optim;
pub mod plot;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use seqkd_text::batching::{BatchConfig, Batcher};
use seqkd_text::corpus::{read_parallel, LineLimits};
use seqkd_text::metrics::{corpus_bleu, BleuConfig};
use seqkd_text::vocab::Vocab;

use crate::batch::Batch;
use crate::config::{Config, OptimizerKind, SelectBy};
use crate::decode::Translator;
use crate::distill::word_kd::WordKd;
use crate::loss::label_smoothed_nll;
use crate::model::{Model, Seq2Seq};
use crate::prune::{self, Masks};
use checkpoint::CheckpointError;
use optim::{inverse_sqrt_lr, Optimizer};

pub use seqkd_runtime::format::{BEST_FILE, CONFIG_FILE, VOCAB_FILE};
pub const LAST_FILE: &str = "last.safetensors";
pub const METRICS_FILE: &str = "metrics.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Corpus(#[from] seqkd_text::corpus::CorpusError),
    #[error(transparent)]
    Vocab(#[from] seqkd_text::vocab::VocabError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Distill(#[from] crate::distill::DistillError),
    #[error("{0}")]
    Other(String),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.into(), source }
}

/// Subword ids of each sentence of one side of a corpus.
type Ids = Vec<Vec<u32>>;

/// Counters that, with the seed, determine the rest of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Updates done.
    pub step: i64,
    pub epoch: u64,
    /// Batches of `epoch` already done.
    pub batch_in_epoch: usize,
    /// Validation perplexity of the kept model (the best so far when selecting by perplexity).
    pub best_valid_ppl: Option<f64>,
    /// Validation greedy BLEU of the kept model.
    #[serde(default)]
    pub best_valid_bleu: Option<f64>,
    /// Validations since the best one.
    pub bad_validations: i64,
    /// SGD's current learning rate (halved on plateaus).
    pub sgd_lr: f64,
    pub finished: bool,
    /// Wall-clock seconds of training over all runs (a resumed run's time budget continues from it).
    #[serde(default)]
    pub train_seconds: f64,
}

/// A model with its variables, on a device.
pub struct LoadedModel {
    pub vs: nn::VarStore,
    pub model: Model,
    pub config: Config,
    pub vocab: Vocab,
}

impl LoadedModel {
    /// Loads `model.safetensors` (or another weights file in the directory) for decoding.
    pub fn load(dir: &Path, device: Device, weights: Option<&str>) -> Result<Self, TrainError> {
        let config = Config::load(&dir.join(CONFIG_FILE))?;
        let vocab = Vocab::load(&dir.join(VOCAB_FILE))?;
        let vs = nn::VarStore::new(device);
        let model = Model::new(&vs.root(), &config.model, vocab.len() as i64);
        let path = dir.join(weights.unwrap_or(BEST_FILE));
        let tensors = load_dense(&path, device)?.0;
        checkpoint::restore_vars(&vs, &tensors, "model.", &path)?;
        Ok(Self { vs, model, config, vocab })
    }

    pub fn num_params(&self) -> i64 {
        self.vs.variables().values().map(|t| t.numel() as i64).sum()
    }

    /// Parameters that are not zero (what a pruned model really has).
    pub fn num_nonzero_params(&self) -> i64 {
        self.vs.variables().values().map(|t| t.count_nonzero(None::<i64>).int64_value(&[])).sum()
    }
}

/// A checkpoint's tensors with pruned weights restored to dense form, and the pruning masks found
/// (none for an unpruned model).
pub fn load_dense(path: &Path, device: Device) -> Result<(HashMap<String, Tensor>, Masks), TrainError> {
    let mut tensors = checkpoint::load(path, device)?.tensors;
    let masks = prune::densify(&mut tensors, "model.")
        .map_err(|reason| CheckpointError::Invalid { path: path.into(), reason })?;
    Ok((tensors, masks))
}

/// The weights to save as `model.safetensors`: compact when the model is pruned.
fn weights_to_save(vs: &nn::VarStore, masks: &Masks) -> Vec<(String, Tensor)> {
    let vars = named_vars(vs, "model.");
    if masks.is_empty() {
        vars
    } else {
        prune::compact(&vars, masks, "model.")
    }
}

fn named_vars(vs: &nn::VarStore, prefix: &str) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> =
        vs.variables().into_iter().map(|(k, v)| (format!("{prefix}{k}"), v.detach())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Everything `train` needs besides the config.
pub struct TrainOptions {
    pub model_dir: PathBuf,
    pub resume: bool,
    /// Show a progress bar (off in tests).
    pub progress: bool,
    /// Stop after this many updates in this process (for tests of interruption); None = run to the end.
    pub stop_after: Option<i64>,
}

/// Trains a model as `cfg` says, into `opts.model_dir`. Returns the final state.
pub fn train(cfg: &Config, opts: &TrainOptions) -> Result<TrainState, TrainError> {
    cfg.validate()?;
    let dir = &opts.model_dir;
    let device = crate::parse_device(&cfg.train.device).map_err(TrainError::Other)?;
    if cfg.train.threads > 0 {
        tch::set_num_threads(cfg.train.threads as i32);
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let last_path = dir.join(LAST_FILE);
    let resuming = opts.resume && last_path.exists();
    if !resuming && last_path.exists() {
        return Err(TrainError::Other(format!(
            "{} already holds a training run: pass --resume to continue it, or use another directory",
            dir.display()
        )));
    }
    // A resumed run keeps the recipe it started with (from the model directory); only the budget
    // comes from the new config, so raising max_steps, max_epochs or max_minutes continues a
    // finished run.
    let cfg = if resuming {
        let mut stored = Config::load(&dir.join(CONFIG_FILE))?;
        stored.train.set_budget(&cfg.train);
        stored
    } else {
        cfg.clone()
    };

    // 1) Data and vocabulary.
    let limits = LineLimits::default();
    let train_data = read_parallel(&cfg.data.train_src, &cfg.data.train_tgt, &limits)?;
    let valid_data = read_parallel(&cfg.data.valid_src, &cfg.data.valid_tgt, &limits)?;
    let vocab_path = dir.join(VOCAB_FILE);
    let vocab = if vocab_path.exists() {
        Vocab::load(&vocab_path)?
    } else {
        let init_vocab = cfg.train.init.as_ref().map(|dir| dir.join(VOCAB_FILE));
        let vocab = match cfg.data.vocab_path.as_ref().or(init_vocab.as_ref()) {
            Some(p) => Vocab::load(p)?,
            None => Vocab::train(train_data.src.iter().chain(&train_data.tgt), &cfg.data.vocab)?,
        };
        vocab.save(&vocab_path)?;
        vocab
    };
    let encode = |c: &seqkd_text::corpus::ParallelCorpus| -> Result<(Ids, Ids), TrainError> {
        Ok((vocab.encode_batch(&c.src)?, vocab.encode_batch(&c.tgt)?))
    };
    let (train_src, train_tgt) = encode(&train_data)?;
    let keep = cfg.data.filter.apply(train_src.iter().zip(&train_tgt).map(|(s, t)| (s.len(), t.len())));
    let pairs: Vec<(&[u32], &[u32])> =
        keep.iter().map(|&i| (train_src[i].as_slice(), train_tgt[i].as_slice())).collect();
    let lengths: Vec<(usize, usize)> = pairs.iter().map(|(s, t)| (s.len(), t.len())).collect();
    let batch_cfg = BatchConfig { batch_tokens: cfg.train.batch_tokens, ..Default::default() };
    let batcher = Batcher::new(&lengths, batch_cfg.clone()).map_err(|e| TrainError::Other(e.to_string()))?;
    let (valid_src, valid_tgt) = encode(&valid_data)?;
    let valid_pairs: Vec<(&[u32], &[u32])> =
        valid_src.iter().zip(&valid_tgt).map(|(s, t)| (s.as_slice(), t.as_slice())).collect();

    // 2) Model and optimiser, fresh or from the checkpoint.
    tch::manual_seed(cfg.train.seed as i64);
    let vs = nn::VarStore::new(device);
    let model = Model::new(&vs.root(), &cfg.model, vocab.len() as i64);
    let t = &cfg.train;
    let mut opt = Optimizer::new(vs.variables(), t.optimizer, t.adam_betas, t.adam_eps);
    let mut state = TrainState { sgd_lr: t.lr, ..Default::default() };
    // Pruning masks: a pruned model is retrained with its pruned weights held at zero.
    let mut masks = Masks::default();
    if resuming {
        let loaded = checkpoint::load(&last_path, device)?;
        checkpoint::restore_vars(&vs, &loaded.tensors, "model.", &last_path)?;
        let missing = opt.load_state(&loaded.tensors, "optim.");
        if !missing.is_empty() {
            return Err(CheckpointError::Invalid {
                path: last_path.clone(),
                reason: format!("missing optimiser state {}", missing[0]),
            }
            .into());
        }
        let json = loaded.metadata.get("train_state").ok_or_else(|| CheckpointError::Invalid {
            path: last_path.clone(),
            reason: "no train_state metadata".into(),
        })?;
        state = serde_json::from_str(json)
            .map_err(|e| CheckpointError::Invalid { path: last_path.clone(), reason: e.to_string() })?;
        opt.steps = state.step;
        masks = Masks::from_tensors(&loaded.tensors, "mask.");
    }
    if state.finished {
        if !t.budget_allows_more(state.step, state.epoch, state.train_seconds, state.bad_validations) {
            return Ok(state);
        }
        state.finished = false;
    }
    // Written once the run is known to train (a finished run keeps the budget it was trained with).
    seqkd_text::atomic_write(&dir.join(CONFIG_FILE), cfg.to_toml().as_bytes()).map_err(io_err(dir))?;
    if let (false, Some(init)) = (resuming, &t.init) {
        let path = init.join(BEST_FILE);
        let (tensors, init_masks) = load_dense(&path, device)?;
        checkpoint::restore_vars(&vs, &tensors, "model.", &path)?;
        masks = init_masks;
    }
    let vars = vs.variables();
    let word_kd = match &cfg.word_kd {
        Some(kd) => Some(WordKd::open(kd, &vocab, &train_tgt, device)?),
        None => None,
    };

    let save_last = |opt: &Optimizer, state: &TrainState| -> Result<(), TrainError> {
        let mut tensors = named_vars(&vs, "model.");
        tensors.extend(opt.state_tensors().into_iter().map(|(k, v)| (format!("optim.{k}"), v)));
        tensors.extend(masks.to_tensors("mask."));
        let meta =
            HashMap::from([("train_state".to_string(), serde_json::to_string(state).expect("serializable"))]);
        Ok(checkpoint::save(&last_path, &tensors, meta)?)
    };
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(METRICS_FILE))
        .map_err(io_err(dir))?;
    let mut log = |event: serde_json::Value| -> Result<(), TrainError> {
        writeln!(metrics, "{event}").map_err(io_err(dir))
    };

    let validation = Validation {
        cfg: &cfg,
        vs: &vs,
        model: &model,
        vocab: &vocab,
        pairs: &valid_pairs,
        src_text: &valid_data.src,
        tgt_text: &valid_data.tgt,
        masks: &masks,
        dir,
        device,
    };

    // 3) The loop.
    let total_steps =
        if t.max_steps > 0 { t.max_steps } else { t.max_epochs * batcher.epoch(t.seed, 0).len() as i64 };
    let bar = progress_bar(opts.progress, total_steps as u64, state.step as u64);
    let start = Instant::now();
    let seconds_before = state.train_seconds;
    let (mut window_tokens, mut window_loss, mut window_start) = (0i64, 0f64, Instant::now());
    let steps_this_process_limit = opts.stop_after.map(|n| state.step + n);
    'epochs: loop {
        if t.max_epochs > 0 && state.epoch as i64 >= t.max_epochs {
            break;
        }
        let batches = batcher.epoch(t.seed, state.epoch);
        while state.batch_in_epoch < batches.len() {
            if t.max_steps > 0 && state.step >= t.max_steps {
                break 'epochs;
            }
            state.train_seconds = seconds_before + start.elapsed().as_secs_f64();
            if t.max_minutes > 0.0 && state.train_seconds >= 60.0 * t.max_minutes {
                break 'epochs;
            }
            if steps_this_process_limit.is_some_and(|limit| state.step >= limit) {
                save_last(&opt, &state)?;
                return Ok(state);
            }
            let rows: Vec<(&[u32], &[u32])> =
                batches[state.batch_in_epoch].iter().map(|&i| pairs[i]).collect();
            let batch = Batch::new(&rows, device);
            // Corpus-order indices of the rows (what a stored top-k file is indexed by).
            let sentences: Vec<usize> = batches[state.batch_in_epoch].iter().map(|&i| keep[i]).collect();
            // Dropout masks depend only on (seed, step): resumed runs repeat them exactly.
            tch::manual_seed(t.seed.wrapping_mul(1_000_003).wrapping_add(state.step as u64) as i64);
            opt.zero_grad();
            let logits = model.logits(&batch.src, &batch.tgt_in, true);
            let loss = match &word_kd {
                None => label_smoothed_nll(&logits, &batch.tgt_out, t.label_smoothing),
                Some(kd) => kd.loss(&logits, &batch, &sentences, t.label_smoothing),
            };
            (&loss / batch.n_tgt_tokens as f64).backward();
            masks.apply_to_grads(&vars);
            opt.clip_grad_norm(t.clip_norm);
            let lr = match t.optimizer {
                OptimizerKind::Adam => inverse_sqrt_lr(t.lr, t.warmup_steps, state.step + 1),
                OptimizerKind::Sgd => state.sgd_lr,
            };
            opt.step(lr);
            masks.apply(&vars);
            state.step += 1;
            state.batch_in_epoch += 1;
            window_tokens += batch.n_tgt_tokens;
            window_loss += loss.double_value(&[]);
            bar.inc(1);

            if state.step % 50 == 0 || state.step == 1 {
                let secs = window_start.elapsed().as_secs_f64().max(1e-9);
                let tok_per_s = window_tokens as f64 / secs;
                let avg = window_loss / window_tokens.max(1) as f64;
                bar.set_message(format!("loss {avg:.3} · {tok_per_s:.0} tgt tok/s · lr {lr:.2e}"));
                log(serde_json::json!({"event": "train", "step": state.step, "epoch": state.epoch,
                    "loss": avg, "lr": lr, "tgt_tokens_per_s": tok_per_s, "elapsed_s": seconds_before + start.elapsed().as_secs_f64()}))?;
                (window_tokens, window_loss, window_start) = (0, 0.0, Instant::now());
            }
            if state.step % t.valid_every == 0 {
                let stop = validation.run(&mut state, &mut log)?;
                if let OptimizerKind::Sgd = t.optimizer {
                    if state.bad_validations > 0 {
                        state.sgd_lr /= 2.0;
                    }
                }
                save_last(&opt, &state)?;
                if stop {
                    break 'epochs;
                }
            } else if state.step % t.checkpoint_every == 0 {
                save_last(&opt, &state)?;
            }
        }
        state.epoch += 1;
        state.batch_in_epoch = 0;
    }
    // A final validation (unless one just ran), then mark the run finished.
    if state.step % t.valid_every != 0 {
        validation.run(&mut state, &mut log)?;
    }
    state.finished = true;
    state.train_seconds = seconds_before + start.elapsed().as_secs_f64();
    save_last(&opt, &state)?;
    bar.finish_and_clear();
    plot::write_loss_plot(dir).map_err(io_err(dir))?;
    Ok(state)
}

/// What validation needs: the model being trained and the validation set.
struct Validation<'a> {
    cfg: &'a Config,
    vs: &'a nn::VarStore,
    model: &'a Model,
    vocab: &'a Vocab,
    pairs: &'a [(&'a [u32], &'a [u32])],
    src_text: &'a [String],
    tgt_text: &'a [String],
    masks: &'a Masks,
    dir: &'a Path,
    device: Device,
}

impl Validation<'_> {
    /// Perplexity (teacher-forced, no label smoothing) and greedy BLEU on a subset; saves the best
    /// model. Returns true when early stopping says to stop.
    fn run(
        &self,
        state: &mut TrainState,
        log: &mut impl FnMut(serde_json::Value) -> Result<(), TrainError>,
    ) -> Result<bool, TrainError> {
        let Validation { cfg, vs, model, vocab, pairs, src_text, tgt_text, masks, dir, device } = *self;
        let ppl = perplexity(model, pairs, cfg.train.batch_tokens, device);
        let n_bleu = if cfg.train.valid_bleu_sentences == 0 {
            src_text.len()
        } else {
            cfg.train.valid_bleu_sentences.min(src_text.len())
        };
        let mut decode_cfg = cfg.decode.clone();
        decode_cfg.beam_size = 1;
        let translator = Translator { model, vocab, cfg: decode_cfg, device };
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
            checkpoint::save(&dir.join(BEST_FILE), &weights_to_save(vs, masks), meta)?;
        } else {
            state.bad_validations += 1;
        }
        log(serde_json::json!({"event": "valid", "step": state.step, "epoch": state.epoch, "ppl": ppl,
            "bleu_greedy": bleu, "bleu_sentences": n_bleu, "best": improved}))?;
        Ok(cfg.train.patience > 0 && state.bad_validations >= cfg.train.patience)
    }
}

/// Saves this validation's weights as `step-NNNNNNN.safetensors` and deletes all but the newest `keep`.
fn keep_step_checkpoint(vs: &nn::VarStore, dir: &Path, step: i64, keep: usize) -> Result<(), TrainError> {
    if keep == 0 {
        return Ok(());
    }
    checkpoint::save(
        &dir.join(format!("step-{step:07}.safetensors")),
        &named_vars(vs, "model."),
        HashMap::new(),
    )?;
    let mut steps = step_checkpoints(dir).map_err(io_err(dir))?;
    while steps.len() > keep {
        let old = steps.remove(0);
        std::fs::remove_file(&old).map_err(io_err(&old))?;
    }
    Ok(())
}

/// The `step-*.safetensors` files of a model directory, oldest first.
pub fn step_checkpoints(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-") && n.ends_with(".safetensors"))
        })
        .collect();
    out.sort();
    Ok(out)
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

fn progress_bar(show: bool, total: u64, pos: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps · {msg} · ETA {eta}")
            .expect("valid template"),
    );
    bar.set_position(pos);
    bar
}
