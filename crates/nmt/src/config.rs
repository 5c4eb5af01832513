//! `seqkd train --config FILE.toml`: one file with sections `[data] [model] [train] [decode]`
//! and, for Word-KD, `[word_kd]`. Plain data: this module parses and checks settings and imports
//! no method.
//!
//! Every section has defaults (a CPU-sized Transformer recipe); unknown keys are errors, so a typo
//! never silently falls back to a default. The resolved config is copied into the model directory
//! and `--resume` takes the architecture from there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::ModelConfig;
pub use seqkd_runtime::format::DecodeConfig;
use seqkd_text::corpus::LengthFilter;
use seqkd_text::vocab::VocabConfig;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub decode: DecodeConfig,
    /// Word-level knowledge distillation (Kim & Rush §3.1); absent = plain cross-entropy.
    pub word_kd: Option<WordKdConfig>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub train_src: PathBuf,
    pub train_tgt: PathBuf,
    pub valid_src: PathBuf,
    pub valid_tgt: PathBuf,
    /// Joint subword vocabulary, trained on the training data unless `vocab_path` is given.
    pub vocab: VocabConfig,
    /// An existing vocabulary to use instead of training one (e.g. the teacher's, for a student).
    pub vocab_path: Option<PathBuf>,
    /// Training pairs outside these subword lengths/ratio are dropped.
    pub filter: LengthFilter,
    /// Stream the training corpus instead of holding it: its subword ids are written once into the
    /// model directory (`train.src.ids`, `train.tgt.ids`, ~4 bytes a subword) and memory-mapped,
    /// and a vocabulary is trained on the text as it is read. For corpora larger than memory
    /// (docs/scale.md); the batches, and so the trained weights, are the same either way.
    pub stream: bool,
}

/// Which optimiser and learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam; by default with the inverse-square-root schedule (the Transformer recipe).
    Adam,
    /// Plain SGD; by default with the plateau schedule (Luong et al. 2015 / Kim & Rush 2016: lr 1.0,
    /// halving, and `warmup_steps = 0`).
    Sgd,
}

/// How the learning rate moves over a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// Linear warmup to `lr` over `warmup_steps`, then `lr · √(warmup / step)` (Vaswani et al.).
    InverseSqrt,
    /// Linear warmup to `lr` over `warmup_steps`, then constant, halved after every validation
    /// whose `select_by` score did not improve (Luong et al. 2015 with SGD; JoeyNMT's and
    /// OpenNMT's "plateau" schedule for recurrent models with Adam).
    Plateau,
    /// Linear warmup to `lr` over `warmup_steps`, then a half cosine down to `lr / 10` at the last
    /// update of the budget (`max_steps`, or `max_epochs` epochs): nanoGPT's and fairseq's
    /// `cosine`. For a fixed budget of updates it ends at a small rate where inverse-sqrt would
    /// still be at a third of its peak, so the last updates refine instead of wander.
    Cosine,
}

/// Which validation score selects the kept model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectBy {
    /// Perplexity of the validation references, teacher-forced (lower is better).
    #[default]
    Perplexity,
    /// Greedy BLEU on the first `valid_bleu_sentences` validation sentences. The score for a
    /// Seq-KD student: it learns the teacher's mode, so its perplexity on the gold references
    /// rises while its translations still improve (Kim & Rush 2016, Table 1's PPL column).
    Bleu,
}

/// The arithmetic of a training step's forward and backward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    Fp32,
    /// Mixed precision: matmuls in bf16 under libtorch's CPU autocast (the ops on its
    /// lower-precision list), the loss in f32, weights, gradients and Adam's moments in f32.
    /// CPU only; CPUs with AVX512-BF16 or AMX run bf16 matmuls at about twice the f32 rate.
    Bf16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub optimizer: OptimizerKind,
    /// Unset: `inverse-sqrt` for Adam, `plateau` for SGD.
    pub lr_schedule: Option<LrSchedule>,
    /// Peak learning rate (Adam, reached after `warmup_steps`) or the initial one (SGD).
    pub lr: f64,
    pub warmup_steps: i64,
    pub adam_betas: (f64, f64),
    pub adam_eps: f64,
    pub label_smoothing: f64,
    /// Gradients are rescaled so their global L2 norm is at most this (0 = no clipping).
    pub clip_norm: f64,
    /// Padded tokens per batch (see `seqkd_text::batching`).
    pub batch_tokens: usize,
    /// Stop after this many updates (0 = no limit)...
    pub max_steps: i64,
    /// ...or this many epochs (0 = no limit). At least one of the two must be set.
    pub max_epochs: i64,
    /// ...or this much wall-clock training time in this process, in minutes (0 = no limit).
    /// A time budget makes "what trains best in an hour" reproducible as a config.
    pub max_minutes: f64,
    /// Validate (loss, perplexity, greedy BLEU) and checkpoint every this many updates.
    pub valid_every: i64,
    /// Score at most this many validation sentences with greedy BLEU (0 = all).
    pub valid_bleu_sentences: usize,
    /// The validation score that picks the kept model (`model.safetensors`) and that patience and
    /// SGD's learning-rate halving watch.
    pub select_by: SelectBy,
    /// Stop when the `select_by` score has not improved for this many validations (0 = never).
    pub patience: i64,
    /// Save the resumable checkpoint every this many updates (besides each validation).
    pub checkpoint_every: i64,
    /// Keep the weights of the last this many validations as `step-NNNNNNN.safetensors`, for
    /// checkpoint averaging (`seqkd average`); 0 keeps none.
    pub keep_checkpoints: usize,
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Intra-op threads for libtorch on CPU (0 = libtorch's default).
    pub threads: i64,
    /// Start from the best weights of this model directory instead of a random initialisation
    /// (fine-tuning, e.g. on a Seq-Inter corpus). Its vocabulary is used unless data.vocab_path is set.
    pub init: Option<PathBuf>,
    /// `fp32` (default) or `bf16` (mixed precision; see [`Precision`]).
    pub precision: Precision,
}

impl TrainConfig {
    /// The schedule in force: the configured one or the optimizer's own.
    pub fn schedule(&self) -> LrSchedule {
        self.lr_schedule.unwrap_or(match self.optimizer {
            OptimizerKind::Adam => LrSchedule::InverseSqrt,
            OptimizerKind::Sgd => LrSchedule::Plateau,
        })
    }

    /// Takes `other`'s budget (updates, epochs, minutes): what a resumed run may change.
    pub fn set_budget(&mut self, other: &TrainConfig) {
        (self.max_steps, self.max_epochs, self.max_minutes) =
            (other.max_steps, other.max_epochs, other.max_minutes);
    }

    pub fn same_budget(&self, other: &TrainConfig) -> bool {
        (self.max_steps, self.max_epochs, self.max_minutes)
            == (other.max_steps, other.max_epochs, other.max_minutes)
    }

    /// Whether a run that has done `step` updates, `epoch` epochs and `seconds` of training, with
    /// `bad_validations` since its best, would train further under this config.
    pub fn budget_allows_more(&self, step: i64, epoch: u64, seconds: f64, bad_validations: i64) -> bool {
        (self.max_steps <= 0 || step < self.max_steps)
            && (self.max_epochs <= 0 || (epoch as i64) < self.max_epochs)
            && (self.max_minutes <= 0.0 || seconds < 60.0 * self.max_minutes)
            && (self.patience <= 0 || bad_validations < self.patience)
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Adam,
            lr_schedule: None,
            lr: 1e-3,
            warmup_steps: 1000,
            adam_betas: (0.9, 0.98),
            adam_eps: 1e-9,
            label_smoothing: 0.1,
            clip_norm: 1.0,
            batch_tokens: 4096,
            max_steps: 0,
            max_epochs: 10,
            max_minutes: 0.0,
            valid_every: 500,
            valid_bleu_sentences: 500,
            select_by: SelectBy::Perplexity,
            patience: 0,
            checkpoint_every: 200,
            keep_checkpoints: 5,
            seed: 1,
            device: "cpu".into(),
            threads: 0,
            init: None,
            precision: Precision::Fp32,
        }
    }
}

/// Word-KD settings: the `[word_kd]` section of a training config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WordKdConfig {
    /// Weight of the teacher term; the paper uses 0.5 (0 = plain NLL, 1 = teacher only).
    pub alpha: f64,
    /// The teacher's distribution is softmax(z / temperature); 1 = the teacher as it is. A stored
    /// top-k file records the temperature it was made with, and it must match.
    pub temperature: f64,
    /// A live teacher: its model directory (it must share the student's vocabulary).
    pub teacher: Option<PathBuf>,
    /// Stored teacher distributions (`seqkd distill topk`) for this config's training corpus.
    pub topk: Option<PathBuf>,
}

impl Default for WordKdConfig {
    fn default() -> Self {
        Self { alpha: 0.5, temperature: 1.0, teacher: None, topk: None }
    }
}

impl WordKdConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(format!("word_kd.alpha must be in [0, 1] (got {})", self.alpha));
        }
        if self.temperature <= 0.0 || !self.temperature.is_finite() {
            return Err(format!("word_kd.temperature must be > 0 (got {})", self.temperature));
        }
        match (&self.teacher, &self.topk) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err("word_kd needs exactly one of word_kd.teacher (a live teacher's model directory) \
                      or word_kd.topk (a stored top-k file)"
                .into()),
        }
    }
}

/// Parses `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(name: &str) -> Result<tch::Device, String> {
    match name {
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" => Ok(tch::Device::Cuda(0)),
        _ => name
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(tch::Device::Cuda)
            .ok_or_else(|| format!("unknown device '{name}': expected cpu, cuda or cuda:N")),
    }
}

/// Makes each relative, non-empty path of `paths` relative to `base` (a config file's directory).
pub fn resolve_relative<'a>(base: &Path, paths: impl IntoIterator<Item = &'a mut PathBuf>) {
    for p in paths {
        if p.is_relative() && !p.as_os_str().is_empty() {
            *p = base.join(&*p);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", .path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.into(), source })?;
        let cfg: Config = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Relative data paths in a config file are relative to the file's directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        resolve_relative(base, self.paths_mut());
    }

    /// Every file or directory the config names (the unset ones left out).
    pub fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let d = &mut self.data;
        let data = [&mut d.train_src, &mut d.train_tgt, &mut d.valid_src, &mut d.valid_tgt];
        let kd = self.word_kd.as_mut().into_iter().flat_map(|kd| [&mut kd.teacher, &mut kd.topk]);
        let optional = [&mut d.vocab_path, &mut self.train.init].into_iter().chain(kd).flatten();
        data.into_iter().filter(|p| !p.as_os_str().is_empty()).chain(optional).collect()
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks once what the rest of the code relies on; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let t = &self.train;
        if t.batch_tokens == 0 {
            return bad("train.batch_tokens must be > 0 (got 0)".into());
        }
        if t.max_steps <= 0 && t.max_epochs <= 0 && t.max_minutes <= 0.0 {
            return bad("set train.max_steps, train.max_epochs or train.max_minutes (all are 0)".into());
        }
        if self.train.schedule() == LrSchedule::Cosine && t.max_steps <= 0 && t.max_epochs <= 0 {
            return bad("train.lr_schedule = \"cosine\" decays over the budget: set train.max_steps \
                        or train.max_epochs, not only train.max_minutes"
                .into());
        }
        if t.lr <= 0.0 || !t.lr.is_finite() {
            return bad(format!("train.lr must be > 0 (got {})", t.lr));
        }
        if !(0.0..1.0).contains(&t.label_smoothing) {
            return bad(format!("train.label_smoothing must be in [0, 1) (got {})", t.label_smoothing));
        }
        if t.valid_every <= 0 || t.checkpoint_every <= 0 {
            return bad("train.valid_every and train.checkpoint_every must be > 0".into());
        }
        let device =
            parse_device(&t.device).map_err(|e| ConfigError::Invalid(format!("train.device: {e}")))?;
        if t.precision == Precision::Bf16 && device != tch::Device::Cpu {
            return bad(format!(
                "train.precision = \"bf16\" is CPU autocast; train.device is {} (use fp32 there)",
                t.device
            ));
        }
        self.decode.validate().map_err(ConfigError::Invalid)?;
        if let Some(kd) = &self.word_kd {
            kd.validate().map_err(ConfigError::Invalid)?;
        }
        match &self.model {
            ModelConfig::Transformer(m) => {
                m.validate().map_err(|e| ConfigError::Invalid(format!("model: {e}")))?
            }
            ModelConfig::Lstm(m) => m.validate().map_err(|e| ConfigError::Invalid(format!("model: {e}")))?,
        }
        Ok(())
    }
}
