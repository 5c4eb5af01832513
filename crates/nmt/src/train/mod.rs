//! Training: the optimisation loop, validation, early stopping and resumable checkpoints, into a
//! model directory (see [`crate::model_dir`]).
//!
//! The loop is: one [`step::Update`], a validation every `valid_every` updates (which keeps the best
//! model and may stop early), a resumable checkpoint every `checkpoint_every`, until the budget of
//! updates, epochs or minutes is spent. What is minimised and what constrains the weights come from
//! a [`method::Method`]: the trainer knows nothing of distillation or pruning.
//!
//! Determinism: the batch order is a function of (seed, epoch) and dropout is reseeded from
//! (seed, step) before every update, so a run resumed from a checkpoint performs exactly the updates
//! the uninterrupted run would have.

pub mod data;
pub mod data_parallel;
pub mod method;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod state;
pub mod step;
mod validate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::{nn, Tensor};

use crate::batch::Batch;
use crate::checkpoint::{self, CheckpointError};
use crate::config::{Config, LrSchedule, TrainConfig};
use crate::error::{io_err, Error};
use crate::model::{Model, ModelConfig};
use crate::model_dir::{load_dense, named_vars, BEST_FILE, CONFIG_FILE, LAST_FILE};
use data::{Role, RunCorpora};
use data_parallel::{DataParallel, DataParallelConfig};
use method::{Method, RunData, Start, WeightConstraint};
use metrics::{MetricsLog, Record};
use optim::{cosine_lr, inverse_sqrt_lr, warmup_lr, Optimizer};
use validate::Validation;

pub use state::TrainState;
pub use validate::perplexity;

/// Everything `train` needs besides the config.
pub struct TrainOptions {
    pub model_dir: PathBuf,
    pub resume: bool,
    /// Show a progress bar (off in tests).
    pub progress: bool,
    /// Stop after this many updates in this process (for tests of interruption); None = run to the end.
    pub stop_after: Option<i64>,
    /// Train as one process of a data-parallel run (see [`data_parallel`]); None = alone.
    pub data_parallel: Option<DataParallelConfig>,
}

/// Trains a model as `cfg` says, into `opts.model_dir`, minimising `method`'s objective under its
/// weight constraint. Returns the final state.
pub fn train(cfg: &Config, opts: &TrainOptions, method: &dyn Method) -> Result<TrainState, Error> {
    let (cfg, resuming) = run_config(cfg, opts)?;
    let dir = &opts.model_dir;
    let dp = opts.data_parallel.as_ref().map(DataParallel::join).transpose()?;
    let leader = dp.as_ref().is_none_or(DataParallel::is_leader);
    let data = load_corpora(&cfg, dir, dp.as_ref())?;
    let cfg = fit_to_vocab(cfg, &data.vocab)?;
    let device = crate::parse_device(&cfg.train.device).map_err(Error::Invalid)?;
    let last_path = dir.join(LAST_FILE);
    let t = &cfg.train;
    let valid_pairs = data.valid_pairs();

    let Begun { vs, model, mut opt, mut state, constraint } =
        begin(&cfg, dir, data.vocab.len() as i64, resuming, method, leader)?;
    if let Some(dp) = &dp {
        dp.check_same(&run_facts(&cfg, resuming, &state, &vs), "the recipe, budget or checkpoint")?;
    }
    if state.finished {
        return Ok(state); // and the budget allows no more
    }
    let objective =
        method.objective(&RunData { config: &cfg, vocab: &data.vocab, targets: &data.train_tgt, device })?;
    let vars = vs.variables();
    let update = step::Update {
        model: &model,
        vars: &vars,
        objective: &*objective,
        constraint: &*constraint,
        train: t,
        data_parallel: dp.as_ref(),
    };
    if let Some(dp) = &dp {
        data_parallel::define_grads(&vars);
        dp.broadcast_weights(&vars)?;
    }
    let save_last = |opt: &Optimizer, state: &TrainState| -> Result<(), Error> {
        if !leader {
            return Ok(());
        }
        let mut tensors = named_vars(&vs, "model.");
        tensors.extend(opt.state_tensors().into_iter().map(|(k, v)| (format!("optim.{k}"), v)));
        tensors.extend(constraint.checkpoint_tensors());
        let meta =
            HashMap::from([("train_state".to_string(), serde_json::to_string(state).expect("serializable"))]);
        Ok(checkpoint::save(&last_path, &tensors, meta)?)
    };
    let mut log = if leader { MetricsLog::open(dir)? } else { MetricsLog::discard() };
    let validation = Validation {
        cfg: &cfg,
        vs: &vs,
        model: &model,
        vocab: &data.vocab,
        pairs: &valid_pairs,
        src_text: &data.valid.src,
        tgt_text: &data.valid.tgt,
        constraint: &*constraint,
        dir,
        device,
    };

    // The loop: step, validate, checkpoint, stop.
    let total_steps =
        if t.max_steps > 0 { t.max_steps } else { t.max_epochs * data.batcher.epoch(t.seed, 0).len() as i64 };
    let bar = progress_bar(opts.progress && leader, total_steps as u64, state.step as u64);
    let clock = Clock { start: Instant::now(), before: state.train_seconds };
    let mut window = Window::new();
    let stop_at = opts.stop_after.map(|n| state.step + n);
    let schedule = t.schedule();
    // A run from `[train] init` (a fine-tune, a pruned model's retraining) validates its starting
    // weights first, so that they are a candidate for the kept model: a fine-tune that only hurts
    // on validation keeps the weights it started from.
    if leader && t.init.is_some() && state.step == 0 && state.best_valid_ppl.is_none() {
        validation.run(&mut state, &mut log)?;
        save_last(&opt, &state)?;
    }
    'epochs: while t.max_epochs <= 0 || (state.epoch as i64) < t.max_epochs {
        let batches = data.batcher.epoch(t.seed, state.epoch);
        while state.batch_in_epoch < batches.len() {
            state.train_seconds = clock.seconds();
            if (t.max_steps > 0 && state.step >= t.max_steps) || out_of_time(t, &state, dp.as_ref())? {
                break 'epochs;
            }
            if stop_at.is_some_and(|limit| state.step >= limit) {
                save_last(&opt, &state)?;
                return Ok(state);
            }
            let rows = &batches[state.batch_in_epoch];
            let (batch, sentences, batch_tokens) = share_of(rows, dp.as_ref(), &data, device);
            let lr = match schedule {
                LrSchedule::InverseSqrt => inverse_sqrt_lr(t.lr, t.warmup_steps, state.step + 1),
                LrSchedule::Plateau => warmup_lr(state.plateau_lr, t.warmup_steps, state.step + 1),
                LrSchedule::Cosine => cosine_lr(t.lr, t.warmup_steps, total_steps, state.step + 1),
            };
            let share = step::Share { batch: batch.as_ref(), sentences: &sentences, batch_tokens };
            let loss = update.run_share(&mut opt, &share, state.step, lr)?;
            state.step += 1;
            state.batch_in_epoch += 1;
            window.add(batch_tokens, loss);
            bar.inc(1);

            if state.step % 50 == 0 || state.step == 1 {
                let record = window.record(&state, lr, clock.seconds());
                if let Record::Train { loss, tgt_tokens_per_s, .. } = &record {
                    bar.set_message(format!(
                        "loss {loss:.3} · {tgt_tokens_per_s:.0} tgt tok/s · lr {lr:.2e}"
                    ));
                }
                log.write(&record)?;
            }
            if state.step % t.valid_every == 0 {
                let save = |state: &TrainState| save_last(&opt, state);
                if validation_point(&validation, &mut state, &mut log, dp.as_ref(), schedule, save)? {
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
    if !leader {
        state.finished = true;
        return Ok(state);
    }
    if state.step % t.valid_every != 0 {
        validation.run(&mut state, &mut log)?;
    }
    state.finished = true;
    state.train_seconds = clock.seconds();
    save_last(&opt, &state)?;
    bar.finish_and_clear();
    plot::write_loss_plot(dir).map_err(io_err(dir))?;
    Ok(state)
}

/// A model on a vocabulary with separate source and target ids (an imported teacher's, for a
/// student that must share it): the source embedding gets the source size, and a tied model ties
/// the target embedding to the output layer only.
fn fit_to_vocab(mut cfg: Config, vocab: &seqkd_text::vocab::Vocab) -> Result<Config, Error> {
    if vocab.is_shared() {
        return Ok(cfg);
    }
    match &mut cfg.model {
        ModelConfig::Transformer(t) => {
            t.src_vocab_size = Some(vocab.src_len() as i64);
            if t.tied_embeddings {
                t.tied_embeddings = false;
                t.tied_output = true;
            }
            Ok(cfg)
        }
        ModelConfig::Lstm(_) => Err(Error::Invalid(
            "the vocabulary has separate source and target ids (an imported teacher's); LSTM models \
             need one joint vocabulary: train a Transformer student, or a vocabulary of its own"
                .into(),
        )),
    }
}

/// A run's model, optimiser, state and weight constraint, ready for its first update.
struct Begun {
    vs: nn::VarStore,
    model: Model,
    opt: Optimizer,
    state: TrainState,
    constraint: Box<dyn WeightConstraint>,
}

/// The model and optimiser, fresh or from the checkpoint, and the method's constraint from where
/// the run starts. A finished run whose budget allows no more comes back with `state.finished`.
fn begin(
    cfg: &Config,
    dir: &Path,
    vocab_len: i64,
    resuming: bool,
    method: &dyn Method,
    leader: bool,
) -> Result<Begun, Error> {
    let t = &cfg.train;
    let device = crate::parse_device(&t.device).map_err(Error::Invalid)?;
    let last_path = dir.join(LAST_FILE);
    tch::manual_seed(t.seed as i64);
    let vs = nn::VarStore::new(device);
    let model = Model::new(&vs.root(), &cfg.model, vocab_len);
    let mut opt = Optimizer::new(vs.variables(), t.optimizer, t.adam_betas, t.adam_eps);
    let mut state = TrainState { plateau_lr: t.lr, ..Default::default() };
    let mut constraint = None;
    if resuming {
        let loaded = checkpoint::load(&last_path, device)?;
        state = restore(&vs, &mut opt, &loaded.tensors, &loaded.metadata, &last_path)?;
        constraint = Some(method.constraint(Start::Resumed { checkpoint: &loaded.tensors })?);
    }
    if state.finished {
        if !t.budget_allows_more(state.step, state.epoch, state.train_seconds, state.bad_validations) {
            let constraint = constraint.expect("only a resumed run is finished");
            return Ok(Begun { vs, model, opt, state, constraint });
        }
        state.finished = false;
    }
    // Written once the run is known to train (a finished run keeps the budget it was trained with).
    if leader {
        seqkd_text::atomic_write(&dir.join(CONFIG_FILE), cfg.to_toml().as_bytes()).map_err(io_err(dir))?;
    }
    let constraint: Box<dyn WeightConstraint> = match (constraint, &t.init) {
        (Some(c), _) => c,
        (None, Some(init)) => {
            let path = init.join(BEST_FILE);
            let (tensors, masks) = load_dense(&path, device)?;
            checkpoint::restore_vars(&vs, &tensors, "model.", &path)?;
            method.constraint(Start::Init { masks: &masks })?
        }
        (None, None) => method.constraint(Start::Scratch)?,
    };
    Ok(Begun { vs, model, opt, state, constraint })
}

/// The config a run in `opts.model_dir` trains with, and whether it resumes one: a resumed run
/// keeps the recipe it started with (from the model directory); only the budget comes from the new
/// config, so raising max_steps, max_epochs or max_minutes continues a finished run.
fn run_config(cfg: &Config, opts: &TrainOptions) -> Result<(Config, bool), Error> {
    cfg.validate()?;
    let dir = &opts.model_dir;
    if cfg.train.threads > 0 {
        tch::set_num_threads(cfg.train.threads as i32);
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let last_path = dir.join(LAST_FILE);
    let resuming = opts.resume && last_path.exists();
    if !resuming && last_path.exists() {
        return Err(Error::Conflict(format!(
            "{} already holds a training run: pass --resume to continue it, or use another directory",
            dir.display()
        )));
    }
    if !resuming {
        return Ok((cfg.clone(), false));
    }
    let mut stored = Config::load(&dir.join(CONFIG_FILE))?;
    stored.train.set_budget(&cfg.train);
    Ok((stored, true))
}

/// Restores the weights, the optimiser state and the training state of a resumable checkpoint.
fn restore(
    vs: &nn::VarStore,
    opt: &mut Optimizer,
    tensors: &HashMap<String, Tensor>,
    metadata: &HashMap<String, String>,
    path: &std::path::Path,
) -> Result<TrainState, Error> {
    let invalid = |reason: String| CheckpointError::Invalid { path: path.into(), reason };
    checkpoint::restore_vars(vs, tensors, "model.", path)?;
    let missing = opt.load_state(tensors, "optim.");
    if let Some(first) = missing.first() {
        return Err(invalid(format!("missing optimiser state {first}")).into());
    }
    let json = metadata.get("train_state").ok_or_else(|| invalid("no train_state metadata".into()))?;
    let state: TrainState = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
    opt.steps = state.step;
    Ok(state)
}

/// A validation point: the leader validates (which may stop the run, or halve SGD's learning
/// rate) and saves the checkpoint; every rank learns the outcome. Returns whether to stop.
fn validation_point(
    validation: &Validation,
    state: &mut TrainState,
    log: &mut MetricsLog,
    dp: Option<&DataParallel>,
    schedule: LrSchedule,
    save: impl FnOnce(&TrainState) -> Result<(), Error>,
) -> Result<bool, Error> {
    let mut stop = false;
    if dp.is_none_or(DataParallel::is_leader) {
        stop = validation.run(state, log)?;
        if schedule == LrSchedule::Plateau && state.bad_validations > 0 {
            state.plateau_lr /= 2.0;
        }
        save(state)?;
    }
    if let Some(dp) = dp {
        let mut decided = [stop as u8 as f64, state.plateau_lr];
        dp.broadcast_values(&mut decided)?;
        (stop, state.plateau_lr) = (decided[0] != 0.0, decided[1]);
    }
    Ok(stop)
}

/// What every rank of a data-parallel run must agree on, as exact f64s: the model and training
/// sections of the config (hashed; data paths may differ between machines), whether the run
/// resumes, from which update, and the number of weights.
fn run_facts(cfg: &Config, resuming: bool, state: &TrainState, vs: &nn::VarStore) -> Vec<f64> {
    use std::hash::{Hash, Hasher};
    // DefaultHasher::new() has fixed keys: the same text hashes alike in every process.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    toml::to_string(&cfg.model).unwrap_or_default().hash(&mut h);
    toml::to_string(&cfg.train).unwrap_or_default().hash(&mut h);
    let hash = h.finish();
    let weights: i64 = vs.variables().values().map(Tensor::numel).map(|n| n as i64).sum();
    vec![
        (hash >> 32) as f64,
        (hash & 0xffff_ffff) as f64,
        resuming as u8 as f64,
        state.step as f64,
        weights as f64,
    ]
}

/// The run's corpora. In a data-parallel run the leader prepares the model directory (the
/// vocabulary, a streamed corpus's ids) and the other ranks then read it.
fn load_corpora(cfg: &Config, dir: &Path, dp: Option<&DataParallel>) -> Result<RunCorpora, Error> {
    // Rank 0 tells the others whether it succeeded, so that its failure (a corpus defect, say)
    // stops them at once instead of at the timeout.
    match dp {
        Some(dp) if !dp.is_leader() => {
            let mut ready = [0.0];
            dp.broadcast_values(&mut ready)?;
            if ready[0] == 0.0 {
                return Err(Error::Invalid(format!(
                    "rank 0 could not prepare the run's data in {} (its error is in its own output)",
                    dir.display()
                )));
            }
            RunCorpora::load(cfg, dir, Role::Reader)
        }
        _ => {
            let data = RunCorpora::load(cfg, dir, Role::Writer);
            if let Some(dp) = dp {
                dp.broadcast_values(&mut [data.is_ok() as u8 as f64])?;
            }
            data
        }
    }
}

/// Whether the time budget is spent; in a data-parallel run, by the leader's clock.
fn out_of_time(t: &TrainConfig, state: &TrainState, dp: Option<&DataParallel>) -> Result<bool, Error> {
    if t.max_minutes <= 0.0 {
        return Ok(false);
    }
    let mut spent = [(state.train_seconds >= 60.0 * t.max_minutes) as u8 as f64];
    if let Some(dp) = dp {
        dp.broadcast_values(&mut spent)?;
    }
    Ok(spent[0] != 0.0)
}

/// This process's rows of the global batch `rows` (all of them, or its data-parallel share): the
/// batch (None if the share is empty), their corpus-order indices (what a stored top-k file is
/// indexed by), and the labels (`y1 .. ym </s>`) of the whole batch, which its loss is divided by.
fn share_of(
    rows: &[usize],
    dp: Option<&DataParallel>,
    data: &RunCorpora,
    device: tch::Device,
) -> (Option<Batch>, Vec<usize>, i64) {
    let mine: std::borrow::Cow<[usize]> = dp.map_or(rows.into(), |dp| dp.share(rows).into());
    let batch = (!mine.is_empty())
        .then(|| Batch::new(&mine.iter().map(|&k| data.pair(k)).collect::<Vec<_>>(), device));
    let sentences = mine.iter().map(|&k| data.keep[k]).collect();
    let batch_tokens = rows.iter().map(|&k| data.pair(k).1.len() as i64 + 1).sum();
    (batch, sentences, batch_tokens)
}

/// Training seconds over all runs: this process's plus those the checkpoint recorded.
struct Clock {
    start: Instant,
    before: f64,
}

impl Clock {
    fn seconds(&self) -> f64 {
        self.before + self.start.elapsed().as_secs_f64()
    }
}

/// Loss and throughput since the last train record.
struct Window {
    tokens: i64,
    loss: f64,
    start: Instant,
}

impl Window {
    fn new() -> Self {
        Self { tokens: 0, loss: 0.0, start: Instant::now() }
    }

    fn add(&mut self, tokens: i64, loss: f64) {
        self.tokens += tokens;
        self.loss += loss;
    }

    /// The record of the window, which starts again.
    fn record(&mut self, state: &TrainState, lr: f64, elapsed_s: f64) -> Record {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let record = Record::Train {
            step: state.step,
            epoch: state.epoch,
            loss: self.loss / self.tokens.max(1) as f64,
            lr,
            tgt_tokens_per_s: self.tokens as f64 / secs,
            elapsed_s,
        };
        *self = Window::new();
        record
    }
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
