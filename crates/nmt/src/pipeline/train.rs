//! The training stage: a teacher, a student row, a Seq-Inter fine-tune or a pruned model's
//! retraining, each into `models/<name>/`; skipped when its `.complete` stamp is there and the
//! config still describes it, refused when the config changed since.

use std::time::Instant;

use crate::checkpoint;
use crate::config::{Config, DataConfig, TrainConfig, WordKdConfig};
use crate::error::{io_err, Error};
use crate::model::ModelConfig;
use crate::model_dir::{BEST_FILE, CONFIG_FILE, LAST_FILE};
use crate::table1::{Row, TrainingData, TEACHER, TEACHER_SEQ_INTER};
use crate::train::{TrainOptions, TrainState};

use super::context::{newer, read_json, topk_file, Context, Stage};
use super::progress::{self, Cost};
use super::reuse::recipe_changes;

/// Written into a model directory when its training stage is complete (holds the TrainState).
pub const COMPLETE_STAMP: &str = ".complete";

/// Trains (or resumes) the model `name` with `config`.
pub(super) struct Train {
    name: String,
    config: Config,
    /// The corpus it trains on.
    data: TrainingData,
}

impl Train {
    /// A model of the run trained on `(src, tgt)` of `data`.
    fn new(
        ctx: &Context,
        name: &str,
        model: &ModelConfig,
        train: &TrainConfig,
        data: TrainingData,
        word_kd: bool,
        init: Option<std::path::PathBuf>,
    ) -> Self {
        let (cfg, d) = (ctx.cfg, &ctx.cfg.data);
        let (src, tgt) = ctx.corpus(data);
        let word_kd = word_kd.then(|| WordKdConfig {
            alpha: cfg.distill.alpha,
            temperature: cfg.distill.temperature,
            teacher: None,
            topk: Some(ctx.run.distill(topk_file(data))),
        });
        let config = Config {
            data: DataConfig {
                train_src: src,
                train_tgt: tgt,
                valid_src: d.valid_src.clone(),
                valid_tgt: d.valid_tgt.clone(),
                vocab: d.vocab.clone(),
                vocab_path: Some(ctx.run.vocab()),
                filter: d.filter,
                stream: d.stream,
            },
            model: model.clone(),
            train: TrainConfig { init, ..train.clone() },
            decode: if name.starts_with(TEACHER) {
                cfg.teacher.decode.clone()
            } else {
                cfg.student.decode.clone()
            },
            word_kd,
        };
        Self { name: name.to_string(), config, data }
    }

    pub fn teacher(ctx: &Context) -> Self {
        let t = &ctx.cfg.teacher;
        Self::new(ctx, TEACHER, &t.model, &t.train, TrainingData::Gold, false, None)
    }

    /// A Table 1 row: trained from scratch, or fine-tuned from the row it starts from.
    pub fn student(ctx: &Context, row: Row) -> Self {
        let (data, word_kd, init) = row.recipe();
        let cfg = ctx.cfg;
        let (train, init) = match init {
            Some(from) => (cfg.finetune.clone(), Some(ctx.run.model(from.name()))),
            None => (cfg.student_train(data), None),
        };
        Self::new(ctx, row.name(), &cfg.student.model, &train, data, word_kd, init)
    }

    /// The teacher fine-tuned on its Seq-Inter corpus.
    pub fn teacher_seq_inter(ctx: &Context) -> Self {
        let (arch, finetune, init) = (&ctx.teacher_arch, &ctx.cfg.finetune, Some(ctx.teacher_dir.clone()));
        Self::new(ctx, TEACHER_SEQ_INTER, arch, finetune, TrainingData::SeqInter, false, init)
    }

    /// The pruned model `name` retrained under its mask, on its row's corpus with its row's loss.
    pub fn pruned(ctx: &Context, name: &str) -> Self {
        let pr = ctx.cfg.prune.as_ref().expect("a pruning stage");
        let (data, word_kd, _) = pr.from.recipe();
        let one_shot = Some(ctx.run.pruned(name));
        Self::new(ctx, name, &ctx.cfg.student.model, &pr.retrain, data, word_kd, one_shot)
    }
}

impl Stage for Train {
    fn describe(&self) -> String {
        format!("train {}", self.name)
    }

    fn describe_run(&self) -> String {
        let (name, c) = (&self.name, &self.config);
        let what = match (&c.train.init, &c.word_kd) {
            (Some(from), _) => {
                format!("fine-tune {name} from {}", seqkd_text::paths::shown_from_here(from).display())
            }
            (None, Some(_)) => format!("train {name} (with Word-KD)"),
            (None, None) => format!("train {name}"),
        };
        format!("{what} on {}", seqkd_text::paths::shown_from_here(&c.data.train_tgt).display())
    }

    fn done(&self, ctx: &Context) -> Result<bool, Error> {
        Ok(check_reusable(&ctx.run.model(&self.name), &self.config)?.is_some())
    }

    fn cost(&self, ctx: &Context) -> Cost {
        let c = &self.config;
        let done = resumed_from(&ctx.run.model(&self.name));
        progress::training(&c.model, ctx.vocab_size(), &c.train, ctx.corpus_size(self.data), done)
    }

    fn run(&self, ctx: &mut Context) -> Result<(), Error> {
        // The teacher passes are over: give its memory to training.
        ctx.teacher = None;
        let dir = ctx.run.model(&self.name);
        let stamp = dir.join(COMPLETE_STAMP);
        if stamp.exists() {
            eprintln!(
                "[pipeline] {}: the config raised its budget; continuing from its last checkpoint",
                self.name
            );
        }
        let start = Instant::now();
        let opts = TrainOptions {
            model_dir: dir,
            resume: true,
            progress: ctx.progress,
            stop_after: None,
            data_parallel: None,
        };
        let state = crate::student::train(&self.config, &opts)?;
        eprintln!(
            "[pipeline] {}: {} updates; kept model: validation perplexity {:.2}, greedy BLEU {:.2} ({:.1} min in this run)",
            self.name,
            state.step,
            state.best_valid_ppl.unwrap_or(f64::NAN),
            state.best_valid_bleu.unwrap_or(f64::NAN),
            start.elapsed().as_secs_f64() / 60.0
        );
        let json = serde_json::to_string(&state).expect("serializable");
        seqkd_text::atomic_write(&stamp, json.as_bytes()).map_err(io_err(&stamp))
    }
}

/// The updates and training seconds the resumable checkpoint of `model_dir` holds: what a rerun
/// of its stage continues from ((0, 0) when there is none).
fn resumed_from(model_dir: &std::path::Path) -> (i64, f64) {
    let meta = checkpoint::metadata(&model_dir.join(LAST_FILE)).ok();
    let state = meta.and_then(|m| serde_json::from_str::<TrainState>(m.get("train_state")?).ok());
    state.map_or((0, 0.0), |s| (s.step, s.train_seconds))
}

/// The training state a model directory's stamp records (None when the stage has not finished).
pub fn completed_state(model_dir: &std::path::Path) -> Option<TrainState> {
    read_json(&model_dir.join(COMPLETE_STAMP)).ok()
}

/// Whether the stage training `config` into `dir` is done (its state), still to run (None: a new
/// directory, an interrupted run, or a finished one whose budget the config raised, which
/// continues from its last checkpoint), or refused: a finished stage is otherwise skipped and a
/// resumed one keeps the recipe it started with, so an edited config (or a retrained starting
/// model) would silently keep the old model.
fn check_reusable(dir: &std::path::Path, config: &Config) -> Result<Option<TrainState>, Error> {
    let stored_path = dir.join(CONFIG_FILE);
    if !stored_path.exists() {
        return Ok(None);
    }
    let stored = Config::load(&stored_path)?;
    let mut reasons = recipe_changes(&stored, config);
    let stamp = dir.join(COMPLETE_STAMP);
    let done: Option<TrainState> = stamp.exists().then(|| read_json(&stamp)).transpose()?;
    if let Some(s) = done.as_ref().filter(|_| !stored.train.same_budget(&config.train)) {
        if !config.train.budget_allows_more(s.step, s.epoch, s.train_seconds, s.bad_validations) {
            reasons.push(format!(
                "it trained {} updates ({} epochs, {:.1} minutes), beyond the budget the config now gives",
                s.step,
                s.epoch,
                s.train_seconds / 60.0
            ));
        }
    }
    // When the stage started (or finished): its starting weights must be older.
    let since = if stamp.exists() { stamp } else { stored_path };
    if let Some(init) = config.train.init.as_ref().map(|init| init.join(BEST_FILE)) {
        if newer(&init, &since) {
            reasons.push(format!("it starts from {}, which changed after it was trained", init.display()));
        }
    }
    if !reasons.is_empty() {
        return Err(Error::Conflict(format!(
            "{} no longer matches the config ({}): delete that directory to train it again, or \
             restore the old settings",
            dir.display(),
            reasons.join("; ")
        )));
    }
    Ok(done.filter(|_| stored.train.same_budget(&config.train)))
}
