//! `seqkd pipeline`: the whole experiment of Kim & Rush 2016 as named, resumable stages.
//!
//! vocab → teacher → distill (Seq-KD corpus, Seq-Inter corpus, stored top-k) → students (one per
//! Table 1 row) → Seq-Inter fine-tunes → evaluate → time decoding (all models together) → report.
//!
//! Every stage writes into the run directory and is skipped when its output is complete: a model
//! directory with a `.complete` stamp, a distilled file (which appears only when complete, see
//! [`seqkd_text::resumable`]), an evaluation JSON, `eval/speed.json`. An interrupted stage resumes:
//! training from `last.safetensors`, a teacher pass from its last finished chunk. Combinations are
//! data: each [`Row`] says which corpus its student trains on, whether Word-KD is on, and which
//! model it starts from.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use seqkd_text::corpus::{read_lines, read_parallel, LengthFilter, LineLimits};
use seqkd_text::vocab::{Vocab, VocabConfig};

use crate::config::{Config, DataConfig, DecodeConfig, TrainConfig};
use crate::distill::topk_store::ProbPrecision;
use crate::distill::word_kd::{write_topk_store, TopkOptions, WordKdConfig};
use crate::distill::{self, seq_inter, seq_kd, PassOptions};
use crate::evaluate::{evaluate, time_decoding, DecodingSpeed, Evaluation, TIMED_ROUNDS};
use crate::model::ModelConfig;
use crate::prune::{prune_model_dir, PruneScheme};
use crate::train::{self, LoadedModel, TrainError, TrainOptions, TrainState};

/// The experiment: one TOML file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    pub data: PipelineData,
    /// The teacher's architecture and training recipe.
    pub teacher: Recipe,
    /// Distill an already trained teacher (a `seqkd train` model directory) instead of training
    /// one: `[teacher]` is then ignored but for `decode`, and the teacher's vocabulary becomes the run's.
    pub teacher_model: Option<PathBuf>,
    /// Every student's architecture and training recipe (the same for all rows, so rows compare
    /// methods, not models; but see `distill.seq_kd_label_smoothing`).
    pub student: Recipe,
    /// Seq-Inter fine-tuning, from a trained model's weights (the paper: SGD, learning rate 0.1).
    pub finetune: TrainConfig,
    pub distill: DistillSettings,
    pub eval: EvalSettings,
    /// Table 1 rows to produce; the rows they start from are added. Default: all eight.
    pub rows: Vec<Row>,
    /// Also fine-tune the teacher on its Seq-Inter corpus ("Teacher + Seq-Inter").
    pub teacher_seq_inter: bool,
    /// Pruning and retraining of one student (the paper's Table 3); absent = no pruning stage.
    pub prune: Option<PruneSettings>,
}

/// The pruning stage (See et al. 2016; Kim & Rush Table 3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PruneSettings {
    /// The student pruned (the paper: its best Seq-KD student). It is retrained on its own corpus
    /// with its own loss.
    pub from: Row,
    /// Fractions of the weight matrices removed, in increasing order.
    pub ratios: Vec<f64>,
    pub scheme: PruneScheme,
    /// Prune each ratio from the previous ratio's retrained model (50% → retrain → 80% → …),
    /// which usually beats pruning the unpruned model at once.
    pub iterative: bool,
    /// Retraining under the mask, from the pruned weights.
    pub retrain: TrainConfig,
}

impl Default for PruneSettings {
    fn default() -> Self {
        Self {
            from: Row::SeqKd,
            ratios: vec![0.5, 0.8, 0.85, 0.9],
            scheme: PruneScheme::ClassBlind,
            iterative: true,
            retrain: TrainConfig::default(),
        }
    }
}

/// The directory name of `from` pruned at `ratio` and retrained, e.g. `seq-kd-pruned80`.
pub fn pruned_name(from: Row, ratio: f64) -> String {
    format!("{}-pruned{:02}", from.name(), (100.0 * ratio).round() as i64)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineData {
    pub train_src: PathBuf,
    pub train_tgt: PathBuf,
    pub valid_src: PathBuf,
    pub valid_tgt: PathBuf,
    pub test_src: PathBuf,
    pub test_tgt: PathBuf,
    /// The joint subword vocabulary every model shares (Word-KD needs one vocabulary).
    pub vocab: VocabConfig,
    pub filter: LengthFilter,
}

/// A model and how to train and decode it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recipe {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub decode: DecodeConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillSettings {
    /// Teacher beam for Seq-KD (the paper: 5).
    pub seq_kd_beam: usize,
    /// Teacher K-best for Seq-Inter (the paper: 35).
    pub seq_inter_beam: usize,
    /// Build the Seq-Inter corpus from the first this many training pairs (0 = all): the paper's
    /// own shortcut, since a 35-best pass over everything is the most expensive stage.
    pub seq_inter_sentences: usize,
    /// Tokens per position in the stored top-k files.
    pub top_k: usize,
    pub precision: ProbPrecision,
    /// Word-KD weight α (the paper: 0.5) and teacher temperature.
    pub alpha: f64,
    pub temperature: f64,
    /// Sentences per resumable chunk of a teacher pass.
    pub chunk_sentences: usize,
    /// Label smoothing of the students trained from scratch on the Seq-KD corpus, Seq-KD and
    /// Seq-KD + Word-KD (unset: `student.train`'s). The paper trains them with plain cross-entropy
    /// (0): the teacher's beam output is the mode the student should put its mass on, and
    /// smoothing spreads that mass again, which beam search then has to recover. Fine-tunes and
    /// pruning retraining keep the label smoothing of `finetune` and `prune.retrain`.
    pub seq_kd_label_smoothing: Option<f64>,
}

impl Default for DistillSettings {
    fn default() -> Self {
        Self {
            seq_kd_beam: seq_kd::PAPER_BEAM,
            seq_inter_beam: seq_inter::PAPER_BEAM,
            seq_inter_sentences: 0,
            top_k: 8,
            precision: ProbPrecision::F16,
            alpha: 0.5,
            temperature: 1.0,
            chunk_sentences: 1000,
            seq_kd_label_smoothing: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSettings {
    /// K of the "K = 5" columns.
    pub beam_size: usize,
    /// Padded source tokens per decoding batch.
    pub batch_tokens: usize,
    /// libtorch threads while decoding (0 = its default); the speeds are measured with them.
    pub threads: i64,
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self { beam_size: 5, batch_tokens: 2048, threads: 0 }
    }
}

/// Which corpus a model trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingData {
    Gold,
    SeqKd,
    SeqInter,
}

/// The student rows of the paper's Table 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Row {
    Baseline,
    WordKd,
    SeqKd,
    BaselineSeqInter,
    WordKdSeqInter,
    SeqKdSeqInter,
    SeqKdWordKd,
    SeqKdSeqInterWordKd,
}

impl Row {
    pub const ALL: [Row; 8] = [
        Row::Baseline,
        Row::WordKd,
        Row::SeqKd,
        Row::BaselineSeqInter,
        Row::WordKdSeqInter,
        Row::SeqKdSeqInter,
        Row::SeqKdWordKd,
        Row::SeqKdSeqInterWordKd,
    ];

    /// Directory and file name.
    pub fn name(self) -> &'static str {
        match self {
            Row::Baseline => "baseline",
            Row::WordKd => "word-kd",
            Row::SeqKd => "seq-kd",
            Row::BaselineSeqInter => "baseline+seq-inter",
            Row::WordKdSeqInter => "word-kd+seq-inter",
            Row::SeqKdSeqInter => "seq-kd+seq-inter",
            Row::SeqKdWordKd => "seq-kd+word-kd",
            Row::SeqKdSeqInterWordKd => "seq-kd+seq-inter+word-kd",
        }
    }

    /// As the paper's Table 1 writes it.
    pub fn label(self) -> &'static str {
        match self {
            Row::Baseline => "Baseline",
            Row::WordKd => "Word-KD",
            Row::SeqKd => "Seq-KD",
            Row::BaselineSeqInter => "Baseline + Seq-Inter",
            Row::WordKdSeqInter => "Word-KD + Seq-Inter",
            Row::SeqKdSeqInter => "Seq-KD + Seq-Inter",
            Row::SeqKdWordKd => "Seq-KD + Word-KD",
            Row::SeqKdSeqInterWordKd => "Seq-KD + Seq-Inter + Word-KD",
        }
    }

    /// The corpus the row trains on, whether Word-KD is on, and the row it is fine-tuned from.
    /// "X + Seq-Inter" is X fine-tuned on the Seq-Inter corpus with X's own loss; "Seq-KD + Word-KD"
    /// puts the teacher's soft targets along the Seq-KD targets.
    pub fn recipe(self) -> (TrainingData, bool, Option<Row>) {
        use TrainingData::*;
        match self {
            Row::Baseline => (Gold, false, None),
            Row::WordKd => (Gold, true, None),
            Row::SeqKd => (SeqKd, false, None),
            Row::SeqKdWordKd => (SeqKd, true, None),
            Row::BaselineSeqInter => (SeqInter, false, Some(Row::Baseline)),
            Row::WordKdSeqInter => (SeqInter, true, Some(Row::WordKd)),
            Row::SeqKdSeqInter => (SeqInter, false, Some(Row::SeqKd)),
            Row::SeqKdSeqInterWordKd => (SeqInter, true, Some(Row::SeqKdWordKd)),
        }
    }
}

pub const TEACHER: &str = "teacher";
pub const TEACHER_SEQ_INTER: &str = "teacher+seq-inter";
/// Written into a model directory when its training stage is complete (holds the TrainState).
pub const COMPLETE_STAMP: &str = ".complete";

impl PipelineConfig {
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TrainError::Io { path: path.into(), source })?;
        let mut cfg: PipelineConfig =
            toml::from_str(&text).map_err(|e| TrainError::Other(format!("{}: {}", path.display(), e)))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let d = &mut cfg.data;
        for p in [
            &mut d.train_src,
            &mut d.train_tgt,
            &mut d.valid_src,
            &mut d.valid_tgt,
            &mut d.test_src,
            &mut d.test_tgt,
        ] {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        }
        if let Some(p) = cfg.teacher_model.as_mut().filter(|p| p.is_relative()) {
            *p = base.join(&*p);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The training recipe of a student trained from scratch on `data`.
    pub fn student_train(&self, data: TrainingData) -> TrainConfig {
        let mut train = self.student.train.clone();
        if let (TrainingData::SeqKd, Some(smoothing)) = (data, self.distill.seq_kd_label_smoothing) {
            train.label_smoothing = smoothing;
        }
        train
    }

    /// The rows to run, each after the rows it starts from.
    pub fn planned_rows(&self) -> Vec<Row> {
        let mut requested: Vec<Row> =
            if self.rows.is_empty() { Row::ALL.to_vec() } else { self.rows.clone() };
        requested.extend(self.prune.as_ref().map(|p| p.from));
        let mut rows: Vec<Row> = requested.iter().flat_map(|&r| [r.recipe().2, Some(r)]).flatten().collect();
        rows.sort_by_key(|r| Row::ALL.iter().position(|a| a == r));
        rows.dedup();
        // Row::ALL lists every row after the row it starts from.
        rows
    }

    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Other(m));
        let d = &self.data;
        for (key, p) in [
            ("data.train_src", &d.train_src),
            ("data.train_tgt", &d.train_tgt),
            ("data.valid_src", &d.valid_src),
            ("data.valid_tgt", &d.valid_tgt),
            ("data.test_src", &d.test_src),
            ("data.test_tgt", &d.test_tgt),
        ] {
            if p.as_os_str().is_empty() {
                return bad(format!("{key} is not set"));
            }
        }
        let s = &self.distill;
        if s.seq_kd_beam == 0 || s.seq_inter_beam == 0 || s.top_k == 0 || s.chunk_sentences == 0 {
            return bad("distill.seq_kd_beam, seq_inter_beam, top_k and chunk_sentences must be >= 1".into());
        }
        if self.eval.beam_size == 0 || self.eval.batch_tokens == 0 {
            return bad("eval.beam_size and eval.batch_tokens must be >= 1".into());
        }
        // Each stage's config must be valid before hours are spent on the stages before it.
        let probe = |recipe: &Recipe, train: &TrainConfig, what: &str| {
            let cfg = Config { model: recipe.model.clone(), train: train.clone(), ..Default::default() };
            cfg.validate().map_err(|e| TrainError::Other(format!("{what}: {e}")))
        };
        if self.teacher_model.is_none() {
            probe(&self.teacher, &self.teacher.train, "teacher")?;
        }
        probe(&self.student, &self.student.train, "student")?;
        if s.seq_kd_label_smoothing.is_some() {
            probe(&self.student, &self.student_train(TrainingData::SeqKd), "distill.seq_kd_label_smoothing")?;
            if !self
                .planned_rows()
                .iter()
                .any(|r| r.recipe().0 == TrainingData::SeqKd && r.recipe().2.is_none())
            {
                return bad("distill.seq_kd_label_smoothing is set, but no row trains on the Seq-KD corpus \
                            from scratch (seq-kd, seq-kd+word-kd)"
                    .into());
            }
        }
        probe(&self.student, &self.finetune, "finetune")?;
        WordKdConfig { alpha: s.alpha, temperature: s.temperature, topk: Some("x".into()), teacher: None }
            .validate()
            .map_err(TrainError::Other)?;
        if let Some(p) = &self.prune {
            probe(&self.student, &p.retrain, "prune.retrain")?;
            if p.ratios.is_empty() || p.ratios.iter().any(|r| !(0.0..1.0).contains(r)) {
                return bad(format!("prune.ratios must be in [0, 1) and not empty (got {:?})", p.ratios));
            }
            if p.ratios.windows(2).any(|w| w[0] >= w[1]) {
                return bad(format!("prune.ratios must increase (got {:?})", p.ratios));
            }
        }
        Ok(())
    }
}

/// Files of a run directory.
struct RunDir {
    root: PathBuf,
}

impl RunDir {
    fn vocab(&self) -> PathBuf {
        self.root.join("vocab.json")
    }
    fn model(&self, name: &str) -> PathBuf {
        self.root.join("models").join(name)
    }
    fn distill(&self, file: &str) -> PathBuf {
        self.root.join("distill").join(file)
    }
    fn eval(&self, name: &str) -> PathBuf {
        self.root.join("eval").join(format!("{name}.json"))
    }
}

/// Runs (or resumes) the pipeline into `out`; returns every model's evaluation, teacher first.
pub fn run(cfg: &PipelineConfig, out: &Path, progress: bool) -> Result<Vec<Evaluation>, TrainError> {
    cfg.validate()?;
    let run = RunDir { root: out.to_path_buf() };
    let io = train::io_err;
    std::fs::create_dir_all(out).map_err(io(out))?;
    seqkd_text::atomic_write(
        &out.join("pipeline.toml"),
        toml::to_string_pretty(cfg).unwrap_or_default().as_bytes(),
    )
    .map_err(io(out))?;
    let stage = |name: &str, done: bool| {
        eprintln!("[pipeline] {name}{}", if done { ": done already, skipped" } else { "" });
    };
    let d = &cfg.data;

    // 1) One joint vocabulary for every model.
    let vocab_path = run.vocab();
    stage("vocabulary", vocab_path.exists());
    if let (false, Some(teacher)) = (vocab_path.exists(), &cfg.teacher_model) {
        Vocab::load(&teacher.join(train::VOCAB_FILE))?.save(&vocab_path)?;
    } else if !vocab_path.exists() {
        let train = read_parallel(&d.train_src, &d.train_tgt, &LineLimits::default())?;
        Vocab::train(train.src.iter().chain(&train.tgt), &d.vocab)?.save(&vocab_path)?;
    }

    // 2) The teacher.
    let gold = (d.train_src.clone(), d.train_tgt.clone());
    let (teacher_dir, teacher_arch) = match &cfg.teacher_model {
        Some(dir) => {
            eprintln!("[pipeline] teacher: the trained model in {}", dir.display());
            (dir.clone(), Config::load(&dir.join(train::CONFIG_FILE))?.model)
        }
        None => {
            train_stage(
                cfg,
                &run,
                TEACHER,
                &cfg.teacher.model,
                &cfg.teacher.train,
                &gold,
                None,
                None,
                progress,
            )?;
            (run.model(TEACHER), cfg.teacher.model.clone())
        }
    };

    // 3) What the teacher writes for the students.
    let rows = cfg.planned_rows();
    let uses = |data: TrainingData, word_kd: Option<bool>| {
        rows.iter().any(|r| {
            let (rd, kd, _) = r.recipe();
            rd == data && word_kd.is_none_or(|w| w == kd)
        })
    };
    let need_seq_kd = uses(TrainingData::SeqKd, None);
    let need_seq_inter = uses(TrainingData::SeqInter, None) || cfg.teacher_seq_inter;
    // The gold training text, read once for whichever teacher passes need it.
    let mut gold_text: Option<seqkd_text::corpus::ParallelCorpus> = None;
    let read_gold = |cache: &mut Option<seqkd_text::corpus::ParallelCorpus>| -> Result<(), TrainError> {
        if cache.is_none() {
            *cache = Some(read_parallel(&d.train_src, &d.train_tgt, &LineLimits::default())?);
        }
        Ok(())
    };
    let teacher = || {
        LoadedModel::load(
            &teacher_dir,
            crate::parse_device(&cfg.teacher.train.device).map_err(TrainError::Other)?,
            None,
        )
    };
    let pass_opts =
        PassOptions { chunk_sentences: cfg.distill.chunk_sentences, progress, ..Default::default() };
    let mut loaded_teacher: Option<LoadedModel> = None;
    let teacher_once = |loaded: &mut Option<LoadedModel>| -> Result<(), TrainError> {
        if loaded.is_none() {
            set_threads(cfg.eval.threads);
            *loaded = Some(teacher()?);
        }
        Ok(())
    };
    let decode_with = |beam: usize| DecodeConfig {
        beam_size: beam,
        batch_tokens: cfg.eval.batch_tokens,
        ..cfg.teacher.decode.clone()
    };

    let seq_kd_corpus = (d.train_src.clone(), run.distill("seq-kd.tgt"));
    if need_seq_kd {
        read_gold(&mut gold_text)?;
        let text = gold_text.as_ref().expect("read");
        let (srcs, refs) = (&text.src, &text.tgt);
        let decode = decode_with(cfg.distill.seq_kd_beam);
        // A finished corpus is reused only if its job record matches this teacher, source and beam.
        let job = seq_kd::job(&teacher_dir, srcs, true, &decode)?;
        let found = distill::finished(&seq_kd_corpus.1, &job, srcs.len(), &pass_opts)?;
        stage("distill: Seq-KD corpus (teacher beam search over the training source)", found.is_some());
        note_unrecorded(found, &seq_kd_corpus.1, &pass_opts);
        if found.is_none() {
            teacher_once(&mut loaded_teacher)?;
            let t = loaded_teacher.as_ref().expect("loaded");
            let stats =
                seq_kd::seq_kd(t, &teacher_dir, srcs, Some(refs), &decode, &seq_kd_corpus.1, &pass_opts)?;
            log_pass("Seq-KD", &stats);
        }
    }

    let seq_inter_corpus = (run.distill("seq-inter.src"), run.distill("seq-inter.tgt"));
    if need_seq_inter {
        read_gold(&mut gold_text)?;
        let text = gold_text.as_ref().expect("read");
        let n = match cfg.distill.seq_inter_sentences {
            0 => text.src.len(),
            n => n.min(text.src.len()),
        };
        let (srcs, refs) = (&text.src[..n], &text.tgt[..n]);
        let decode = decode_with(cfg.distill.seq_inter_beam);
        // Reused only if its job record matches, as the Seq-KD corpus.
        let job = seq_inter::job(&teacher_dir, srcs, refs, &decode)?;
        let found = distill::finished(&seq_inter_corpus.1, &job, n, &pass_opts)?;
        stage("distill: Seq-Inter corpus (teacher K-best, closest to the reference)", found.is_some());
        note_unrecorded(found, &seq_inter_corpus.1, &pass_opts);
        if found.is_none() {
            write_lines(&seq_inter_corpus.0, srcs)?;
            write_lines(&run.distill("seq-inter.ref"), refs)?;
            teacher_once(&mut loaded_teacher)?;
            let t = loaded_teacher.as_ref().expect("loaded");
            let stats =
                seq_inter::seq_inter(t, &teacher_dir, srcs, refs, &decode, &seq_inter_corpus.1, &pass_opts)?;
            log_pass("Seq-Inter", &stats);
        }
    }

    // Stored top-k along each corpus a Word-KD row trains on.
    let corpus_of = |data: TrainingData| match data {
        TrainingData::Gold => (gold.clone(), "topk-gold.bin"),
        TrainingData::SeqKd => (seq_kd_corpus.clone(), "topk-seq-kd.bin"),
        TrainingData::SeqInter => (seq_inter_corpus.clone(), "topk-seq-inter.bin"),
    };
    for data in [TrainingData::Gold, TrainingData::SeqKd, TrainingData::SeqInter] {
        if !uses(data, Some(true)) {
            continue;
        }
        let ((src, tgt), file) = corpus_of(data);
        let store = run.distill(file);
        stage(
            &format!("distill: stored top-{} teacher distributions for {file}", cfg.distill.top_k),
            store.exists(),
        );
        // Its job record hashes both sides as the teacher tokenizes them, so a finished store is
        // checked by the pass itself, which returns at once when the record matches.
        teacher_once(&mut loaded_teacher)?;
        let owned;
        let (srcs, tgts): (&[String], &[String]) = if data == TrainingData::Gold {
            read_gold(&mut gold_text)?;
            let text = gold_text.as_ref().expect("read");
            (&text.src, &text.tgt)
        } else {
            owned = (read_lines(&src, &LineLimits::default())?, read_lines(&tgt, &LineLimits::default())?);
            (&owned.0, &owned.1)
        };
        let topk = TopkOptions {
            k: cfg.distill.top_k,
            temperature: cfg.distill.temperature,
            precision: cfg.distill.precision,
            batch_tokens: cfg.eval.batch_tokens.max(1024),
        };
        let t = loaded_teacher.as_ref().expect("loaded");
        let stats = write_topk_store(t, &teacher_dir, srcs, tgts, &topk, &store, &pass_opts)?;
        log_pass("top-k", &stats);
    }
    drop(loaded_teacher);

    // Word-KD for a student: from the top-k store made along its training corpus.
    let stored_word_kd = |topk_file: &str| WordKdConfig {
        alpha: cfg.distill.alpha,
        temperature: cfg.distill.temperature,
        teacher: None,
        topk: Some(run.distill(topk_file)),
    };

    // 4) The students, each after the row it starts from; then the teacher's own Seq-Inter fine-tune.
    for &row in &rows {
        let (data, word_kd, init) = row.recipe();
        let ((src, tgt), file) = corpus_of(data);
        let kd = word_kd.then(|| stored_word_kd(file));
        let (train_cfg, init_dir) = match init {
            Some(from) => (cfg.finetune.clone(), Some(run.model(from.name()))),
            None => (cfg.student_train(data), None),
        };
        train_stage(
            cfg,
            &run,
            row.name(),
            &cfg.student.model,
            &train_cfg,
            &(src, tgt),
            kd,
            init_dir,
            progress,
        )?;
    }
    if cfg.teacher_seq_inter {
        let finetune = &cfg.finetune;
        let init = Some(teacher_dir.clone());
        train_stage(
            cfg,
            &run,
            TEACHER_SEQ_INTER,
            &teacher_arch,
            finetune,
            &seq_inter_corpus,
            None,
            init,
            progress,
        )?;
    }

    // 5) Pruning (Table 3): prune a student, retrain it under the mask, for each ratio.
    let mut pruned = Vec::new();
    if let Some(pr) = &cfg.prune {
        let (data, word_kd, _) = pr.from.recipe();
        let ((src, tgt), file) = corpus_of(data);
        let kd = word_kd.then(|| stored_word_kd(file));
        let mut source = run.model(pr.from.name());
        for &ratio in &pr.ratios {
            let name = pruned_name(pr.from, ratio);
            let one_shot = run.root.join("pruned").join(&name);
            let done = pruned_as_asked(&one_shot, &source, ratio, pr.scheme)?;
            stage(&format!("prune {} to {:.0}% ({:?})", source.display(), 100.0 * ratio, pr.scheme), done);
            if !done {
                let summary = prune_model_dir(&source, ratio, pr.scheme, &one_shot)?;
                eprintln!(
                    "[pipeline] {name}: {} of {} parameters non-zero, {:.2} MB → {:.2} MB",
                    summary.nonzero_params,
                    summary.params,
                    summary.bytes_before as f64 / 1e6,
                    summary.bytes_after as f64 / 1e6
                );
            }
            let (model_cfg, train_cfg) = (&cfg.student.model, &pr.retrain);
            let pair = (src.clone(), tgt.clone());
            train_stage(cfg, &run, &name, model_cfg, train_cfg, &pair, kd.clone(), Some(one_shot), progress)?;
            if pr.iterative {
                source = run.model(&name);
            }
            pruned.push(name);
        }
    }

    // 6) Evaluate every model on the test set.
    let mut names = vec![TEACHER.to_string()];
    if cfg.teacher_seq_inter {
        names.push(TEACHER_SEQ_INTER.into());
    }
    names.extend(rows.iter().map(|r| r.name().to_string()));
    names.extend(pruned);
    let test = read_parallel(&d.test_src, &d.test_tgt, &LineLimits::default())?;
    let device = crate::parse_device(&cfg.student.train.device).map_err(TrainError::Other)?;
    let model_dir = |name: &str| if name == TEACHER { teacher_dir.clone() } else { run.model(name) };
    let load = |name: &str| -> Result<(LoadedModel, DecodeConfig), TrainError> {
        let model = LoadedModel::load(&model_dir(name), device, None)?;
        let decode = DecodeConfig {
            beam_size: cfg.eval.beam_size,
            batch_tokens: cfg.eval.batch_tokens,
            ..model.config.decode.clone()
        };
        Ok((model, decode))
    };
    let mut evaluations = Vec::new();
    // Models loaded for evaluation are kept for the timing stage, which needs all of them.
    let mut loaded = Vec::new();
    set_threads(cfg.eval.threads);
    for name in &names {
        let path = run.eval(name);
        // A model trained again after its evaluation is evaluated again.
        let current = path.exists() && !newer(&model_dir(name).join(train::BEST_FILE), &path);
        stage(&format!("evaluate {name}"), current);
        let evaluation = if current {
            loaded.push(None);
            let mut e: Evaluation = read_json(&path)?;
            // The translations are kept beside the JSON; the report's bootstrap intervals need
            // them. Missing ones, or ones of another length, only leave those intervals out.
            let kept = |file: PathBuf| {
                let lines = read_lines(&file, &LineLimits::ANY_LINE).ok();
                lines.filter(|l| l.len() == test.tgt.len()).unwrap_or_default()
            };
            e.greedy_output = kept(path.with_extension("greedy.txt"));
            e.beam_output = kept(path.with_extension(format!("beam{}.txt", e.beam_size)));
            e
        } else {
            let (model, decode) = load(name)?;
            let e = evaluate(name, &model, &test.src, &test.tgt, &decode)?;
            std::fs::create_dir_all(path.parent().expect("eval dir")).map_err(io(&path))?;
            write_lines(&path.with_extension("greedy.txt"), &e.greedy_output)?;
            write_lines(&path.with_extension(format!("beam{}.txt", cfg.eval.beam_size)), &e.beam_output)?;
            write_json(&path, &e)?;
            loaded.push(Some((model, decode)));
            e
        };
        evaluations.push(evaluation);
    }

    // 7) Decoding speed of every model, timed together (see time_decoding), again whenever any
    // model was evaluated again. Each eval/<name>.json is rewritten with its speeds before
    // eval/speed.json, which marks the stage complete.
    let speed_path = run.root.join("eval").join("speed.json");
    let settings = TimingSettings {
        threads: tch::get_num_threads(),
        beam_size: cfg.eval.beam_size,
        batch_tokens: cfg.eval.batch_tokens,
        device: cfg.student.train.device.clone(),
        rounds: TIMED_ROUNDS,
    };
    let eval_files: Vec<PathBuf> = names.iter().map(|name| run.eval(name)).collect();
    let timed = read_json::<SpeedFile>(&speed_path).ok();
    let current = speeds_current(timed.as_ref(), &settings, &names, &eval_files, &speed_path);
    stage(&format!("time decoding (every model in turn, fastest of {TIMED_ROUNDS} rounds)"), current);
    let speeds = match timed {
        Some(timed) if current => timed.models.into_iter().map(|m| m.speed).collect(),
        _ => {
            let models = (names.iter().zip(loaded))
                .map(|(name, model)| model.map_or_else(|| load(name), Ok))
                .collect::<Result<Vec<_>, _>>()?;
            time_decoding(&models, &test.src, TIMED_ROUNDS)?
        }
    };
    for (e, speed) in evaluations.iter_mut().zip(&speeds) {
        (e.words_per_s_greedy, e.words_per_s_beam) = (speed.words_per_s_greedy, speed.words_per_s_beam);
        e.threads = settings.threads;
    }
    if !current {
        for (e, path) in evaluations.iter().zip(&eval_files) {
            write_json(path, e)?;
        }
        let models = names.iter().zip(speeds).map(|(name, speed)| TimedModel { name: name.clone(), speed });
        write_json(&speed_path, &SpeedFile { settings, models: models.collect() })?;
    }

    // 8) The report.
    stage("report", false);
    crate::report::write(out, cfg, &evaluations, &test.tgt)?;
    Ok(evaluations)
}

/// eval/speed.json: how the models were timed, and their speeds.
#[derive(Serialize, Deserialize)]
struct SpeedFile {
    settings: TimingSettings,
    models: Vec<TimedModel>,
}

/// What the speeds depend on besides the models: timed again when any of it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TimingSettings {
    threads: i32,
    beam_size: usize,
    batch_tokens: usize,
    device: String,
    rounds: usize,
}

#[derive(Serialize, Deserialize)]
struct TimedModel {
    name: String,
    #[serde(flatten)]
    speed: DecodingSpeed,
}

/// Whether `timed` (read from `speed_path`) holds the speeds of `names`, in order, timed with
/// `settings`, and was written after each of their evaluations (`eval_files`): a model evaluated
/// again is timed again, together with all the others.
fn speeds_current(
    timed: Option<&SpeedFile>,
    settings: &TimingSettings,
    names: &[String],
    eval_files: &[PathBuf],
    speed_path: &Path,
) -> bool {
    timed.is_some_and(|t| t.settings == *settings && t.models.iter().map(|m| &m.name).eq(names))
        && eval_files.iter().all(|eval| !newer(eval, speed_path))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(train::io_err(path))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Other(format!("{}: {e}", path.display())))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let json = serde_json::to_string_pretty(value).expect("serializable");
    seqkd_text::atomic_write(path, json.as_bytes()).map_err(train::io_err(path))
}

fn set_threads(threads: i64) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
}

/// A finished teacher output without a job record (copied in without it, or written by hand) is
/// used as it is; say so, since nothing ties it to this teacher and these settings.
fn note_unrecorded(found: Option<distill::Finished>, out: &Path, opts: &PassOptions) {
    if found == Some(distill::Finished::Unrecorded) {
        let path = opts.shard.output_path(out);
        eprintln!(
            "[pipeline] note: {} has no job record, so it cannot be checked against this teacher and its \
             settings; it is used as it is",
            path.display()
        );
    }
}

fn log_pass(what: &str, stats: &crate::distill::PassStats) {
    if stats.already_complete {
        return; // the stage line said so
    }
    eprintln!(
        "[pipeline] {what}: {} sentences in {:.1}s ({:.1} sentences/s) → {}",
        stats.processed,
        stats.seconds,
        stats.sentences_per_second(),
        stats.output.display()
    );
}

fn write_lines(path: &Path, lines: &[String]) -> Result<(), TrainError> {
    let mut text = lines.join("\n");
    text.push('\n');
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| TrainError::Io { path: dir.into(), source })?;
    }
    seqkd_text::atomic_write(path, text.as_bytes())
        .map_err(|source| TrainError::Io { path: path.into(), source })
}

/// Trains (or resumes, or skips) the model `name` on `(src, tgt)`.
#[allow(clippy::too_many_arguments)]
fn train_stage(
    cfg: &PipelineConfig,
    run: &RunDir,
    name: &str,
    model: &ModelConfig,
    train_cfg: &TrainConfig,
    (src, tgt): &(PathBuf, PathBuf),
    word_kd: Option<WordKdConfig>,
    init: Option<PathBuf>,
    progress: bool,
) -> Result<TrainState, TrainError> {
    let dir = run.model(name);
    let d = &cfg.data;
    let config = Config {
        data: DataConfig {
            train_src: src.clone(),
            train_tgt: tgt.clone(),
            valid_src: d.valid_src.clone(),
            valid_tgt: d.valid_tgt.clone(),
            vocab: d.vocab.clone(),
            vocab_path: Some(run.vocab()),
            filter: d.filter,
        },
        model: model.clone(),
        train: TrainConfig { init: init.clone(), ..train_cfg.clone() },
        decode: if name.starts_with(TEACHER) {
            cfg.teacher.decode.clone()
        } else {
            cfg.student.decode.clone()
        },
        word_kd: word_kd.clone(),
    };
    if let Some(state) = check_reusable(&dir, &config)? {
        eprintln!("[pipeline] train {name}: done already, skipped");
        return Ok(state);
    }
    let stamp = dir.join(COMPLETE_STAMP);
    if stamp.exists() {
        eprintln!("[pipeline] {name}: the config raised its budget; continuing from its last checkpoint");
    }
    let what = match (&init, &word_kd) {
        (Some(from), _) => format!("fine-tune {name} from {}", from.display()),
        (None, Some(_)) => format!("train {name} (with Word-KD)"),
        (None, None) => format!("train {name}"),
    };
    eprintln!("[pipeline] {what} on {}", tgt.display());
    let start = Instant::now();
    let opts = TrainOptions { model_dir: dir.clone(), resume: true, progress, stop_after: None };
    let state = train::train(&config, &opts)?;
    eprintln!(
        "[pipeline] {name}: {} updates; kept model: validation perplexity {:.2}, greedy BLEU {:.2} ({:.1} min in this run)",
        state.step,
        state.best_valid_ppl.unwrap_or(f64::NAN),
        state.best_valid_bleu.unwrap_or(f64::NAN),
        start.elapsed().as_secs_f64() / 60.0
    );
    let json = serde_json::to_string(&state).expect("serializable");
    seqkd_text::atomic_write(&stamp, json.as_bytes())
        .map_err(|source| TrainError::Io { path: stamp, source })?;
    Ok(state)
}

/// The training state a model directory's stamp records (None when the stage has not finished).
pub fn completed_state(model_dir: &Path) -> Option<TrainState> {
    read_json(&model_dir.join(COMPLETE_STAMP)).ok()
}

/// Whether the stage training `config` into `dir` is done (its state), still to run (None: a new
/// directory, an interrupted run, or a finished one whose budget the config raised, which
/// continues from its last checkpoint), or refused: a finished stage is otherwise skipped and a
/// resumed one keeps the recipe it started with, so an edited config (or a retrained starting
/// model) would silently keep the old model.
fn check_reusable(dir: &Path, config: &Config) -> Result<Option<TrainState>, TrainError> {
    let stored_path = dir.join(train::CONFIG_FILE);
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
    if let Some(init) = config.train.init.as_ref().map(|init| init.join(train::BEST_FILE)) {
        if newer(&init, &since) {
            reasons.push(format!("it starts from {}, which changed after it was trained", init.display()));
        }
    }
    if !reasons.is_empty() {
        return Err(TrainError::Other(format!(
            "{} no longer matches the config ({}): delete that directory to train it again, or \
             restore the old settings",
            dir.display(),
            reasons.join("; ")
        )));
    }
    Ok(done.filter(|_| stored.train.same_budget(&config.train)))
}

/// Whether `one_shot` holds `source` pruned at `ratio` with `scheme`, made after `source` was last
/// trained (pruning is cheap and deterministic, so anything else is pruned again).
fn pruned_as_asked(
    one_shot: &Path,
    source: &Path,
    ratio: f64,
    scheme: PruneScheme,
) -> Result<bool, TrainError> {
    let weights = one_shot.join(train::BEST_FILE);
    if !weights.exists() || newer(&source.join(train::BEST_FILE), &weights) {
        return Ok(false);
    }
    let meta = crate::train::checkpoint::metadata(&weights)?;
    Ok(meta.get("prune_scheme") == Some(&format!("{scheme:?}"))
        && meta.get("prune_ratio") == Some(&ratio.to_string()))
}

/// Whether `a` was modified after `b` (false when either is missing).
fn newer(a: &Path, b: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(a), modified(b)), (Some(a), Some(b)) if a > b)
}

/// The settings that differ between two training configs, as `key: old → new`, leaving out the
/// budget (a raised one continues the run) and what does not change the trained model: threads,
/// device, decoding, checkpoint bookkeeping, and where an input lives (two paths to the same file,
/// or to equal files or model directories, as in a run directory copied elsewhere).
fn recipe_changes(old: &Config, new: &Config) -> Vec<String> {
    let normalize = |c: &Config| {
        let mut c = c.clone();
        c.decode = DecodeConfig::default();
        let t = &mut c.train;
        t.set_budget(&TrainConfig {
            max_steps: 0,
            max_epochs: 0,
            max_minutes: 0.0,
            ..TrainConfig::default()
        });
        (t.threads, t.device, t.keep_checkpoints) = (0, String::new(), 0);
        (t.checkpoint_every, t.valid_bleu_sentences) = (1, 0);
        c
    };
    let (mut old, new) = (normalize(old), normalize(new));
    let mut new_inputs = new.clone();
    for (a, b) in old.paths_mut().into_iter().zip(new_inputs.paths_mut()) {
        if same_input(a, b) {
            a.clone_from(b);
        }
    }
    let mut changes = Vec::new();
    let json = |c: &Config| serde_json::to_value(c).expect("serializable");
    json_changes("", &json(&old), &json(&new), &mut changes);
    changes
}

/// Whether two paths name the same input: the same file, files with equal bytes, or model
/// directories with equal weights.
fn same_input(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) if x == y => return true,
        (Ok(_), Ok(_)) => {}
        _ => return false,
    }
    let (a, b) = if a.is_dir() && b.is_dir() {
        (a.join(train::BEST_FILE), b.join(train::BEST_FILE))
    } else {
        (a.to_path_buf(), b.to_path_buf())
    };
    let len = |p: &Path| std::fs::metadata(p).ok().filter(|m| m.is_file()).map(|m| m.len());
    len(&a).is_some() && len(&a) == len(&b) && same_bytes(&a, &b).unwrap_or(false)
}

fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let open = |p: &Path| std::fs::File::open(p).map(std::io::BufReader::new);
    let (mut a, mut b) = (open(a)?, open(b)?);
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(b.read(&mut y)? == 0);
        }
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
}

fn json_changes(key: &str, old: &serde_json::Value, new: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let sub = if key.is_empty() { k.clone() } else { format!("{key}.{k}") };
                let (x, y) = (a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null));
                json_changes(&sub, x, y, out);
            }
        }
        _ if old != new => out.push(format!("{key}: {old} → {new}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_rows_put_every_row_after_the_one_it_starts_from() {
        let cfg =
            PipelineConfig { rows: vec![Row::SeqKdSeqInterWordKd, Row::Baseline], ..Default::default() };
        assert_eq!(cfg.planned_rows(), vec![Row::Baseline, Row::SeqKdWordKd, Row::SeqKdSeqInterWordKd]);
        let all = PipelineConfig::default().planned_rows();
        assert_eq!(all.len(), 8);
        for (i, row) in all.iter().enumerate() {
            if let Some(from) = row.recipe().2 {
                assert!(all[..i].contains(&from), "{row:?} before {from:?}");
            }
        }
    }

    #[test]
    fn seq_kd_label_smoothing_applies_to_the_students_trained_from_scratch_on_the_seq_kd_corpus() {
        let mut cfg = PipelineConfig::default();
        cfg.student.train.label_smoothing = 0.1;
        for data in [TrainingData::Gold, TrainingData::SeqKd, TrainingData::SeqInter] {
            assert_eq!(cfg.student_train(data).label_smoothing, 0.1, "unset: the students' own");
        }
        cfg.distill.seq_kd_label_smoothing = Some(0.0);
        assert_eq!(cfg.student_train(TrainingData::SeqKd).label_smoothing, 0.0);
        assert_eq!(cfg.student_train(TrainingData::Gold).label_smoothing, 0.1);
        assert_eq!(cfg.student_train(TrainingData::SeqInter).label_smoothing, 0.1);
        let mut other = cfg.student_train(TrainingData::SeqKd);
        other.label_smoothing = cfg.student.train.label_smoothing;
        let toml = |t: &TrainConfig| toml::to_string(t).unwrap();
        assert_eq!(toml(&other), toml(&cfg.student.train), "nothing else differs");
    }

    #[test]
    fn speeds_are_timed_again_when_a_model_or_a_timing_setting_changed() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["teacher".to_string(), "seq-kd".to_string()];
        let evals: Vec<PathBuf> = names.iter().map(|n| dir.path().join(format!("{n}.json"))).collect();
        let speed_path = dir.path().join("speed.json");
        let settings =
            TimingSettings { threads: 2, beam_size: 5, batch_tokens: 4096, device: "cpu".into(), rounds: 3 };
        let speed = DecodingSpeed { words_per_s_greedy: 2.0, words_per_s_beam: 1.0 };
        let timed = |names: &[&str], settings: &TimingSettings| SpeedFile {
            settings: settings.clone(),
            models: names.iter().map(|n| TimedModel { name: n.to_string(), speed }).collect(),
        };
        let at = |path: &Path, seconds: u64| {
            let time = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
            std::fs::File::create(path).unwrap().set_modified(time).unwrap();
        };
        evals.iter().for_each(|e| at(e, 100));
        at(&speed_path, 200);
        let current = |t: Option<&SpeedFile>| speeds_current(t, &settings, &names, &evals, &speed_path);
        assert!(current(Some(&timed(&["teacher", "seq-kd"], &settings))));
        assert!(!current(None), "never timed");
        assert!(!current(Some(&timed(&["seq-kd", "teacher"], &settings))), "other order");
        assert!(!current(Some(&timed(&["teacher"], &settings))), "a model added since");
        let one_thread = TimingSettings { threads: 1, ..settings.clone() };
        assert!(!current(Some(&timed(&["teacher", "seq-kd"], &one_thread))), "other threads");
        // A model evaluated again (or a run killed after rewriting the evaluations).
        at(&evals[1], 300);
        assert!(!current(Some(&timed(&["teacher", "seq-kd"], &settings))));
    }

    #[test]
    fn recipe_changes_name_what_changes_the_model_and_nothing_else() {
        let old = Config::default();
        let mut new = old.clone();
        new.train.threads = 7;
        new.train.keep_checkpoints = 3;
        new.decode.beam_size = 12;
        assert_eq!(recipe_changes(&old, &new), Vec::<String>::new());
        new.train.max_steps = 4000; // a budget: a raised one continues the run
        assert_eq!(recipe_changes(&old, &new), Vec::<String>::new());
        new.train.lr = 0.5;
        new.data.train_tgt = "distill/seq-kd.tgt".into();
        let changes = recipe_changes(&old, &new);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0], format!("data.train_tgt: \"\" → \"distill/seq-kd.tgt\""));
        assert_eq!(changes[1], format!("train.lr: {} → 0.5", old.train.lr));
    }

    #[test]
    fn an_input_moved_or_copied_elsewhere_is_the_same_input() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (dir.path().join("a.txt"), dir.path().join("b.txt"), dir.path().join("c.txt"));
        std::fs::write(&a, "ein Hund\n").unwrap();
        std::fs::write(&b, "ein Hund\n").unwrap();
        std::fs::write(&c, "ein Pferd\n").unwrap();
        let with_target = |p: &Path| {
            let mut cfg = Config::default();
            cfg.data.train_tgt = p.to_path_buf();
            cfg
        };
        let dotted = dir.path().join(".").join("a.txt");
        assert!(recipe_changes(&with_target(&a), &with_target(&dotted)).is_empty());
        assert!(recipe_changes(&with_target(&a), &with_target(&b)).is_empty());
        let changed = recipe_changes(&with_target(&a), &with_target(&c));
        assert!(changed.len() == 1 && changed[0].starts_with("data.train_tgt:"), "{changed:?}");
        let missing = recipe_changes(&with_target(&a), &with_target(&dir.path().join("gone.txt")));
        assert_eq!(missing.len(), 1, "{missing:?}");
    }

    #[test]
    fn the_shipped_multi30k_configs_parse_and_plan_their_rows() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let cfg = PipelineConfig::load(&configs.join("multi30k-kd.toml")).unwrap();
        assert_eq!(cfg.planned_rows(), Row::ALL.to_vec());
        assert_eq!(cfg.distill.seq_inter_beam, 35);
        assert_eq!(cfg.prune.as_ref().unwrap().ratios, [0.5, 0.65, 0.8, 0.85, 0.9]);
        let lstm = PipelineConfig::load(&configs.join("multi30k-kd-lstm.toml")).unwrap();
        assert_eq!(lstm.planned_rows(), vec![Row::Baseline, Row::SeqKd]);
        assert!(matches!(lstm.student.model, ModelConfig::Lstm(_)));
        let long = PipelineConfig::load(&configs.join("multi30k-kd-long.toml")).unwrap();
        assert_eq!(long.planned_rows(), vec![Row::Baseline, Row::SeqKd]);
        assert_eq!(long.student.train.max_steps, 2 * cfg.student.train.max_steps);
        assert_eq!(long.student.model, cfg.student.model);
        let strong = PipelineConfig::load(&configs.join("multi30k-kd-strong.toml")).unwrap();
        assert_eq!(strong.planned_rows(), vec![Row::Baseline, Row::SeqKd]);
        assert_eq!(strong.teacher.model, cfg.teacher.model);
        // It continues the 60-minute teacher of multi30k-kd.toml, which stopped at 2,086 updates.
        assert!(strong.teacher.train.max_steps > 2086);
        // Its students are the -long run's, trained on past its 4,000 updates.
        assert_eq!(strong.student.model, long.student.model);
        assert!(strong.student.train.max_steps > long.student.train.max_steps);
        assert_eq!(strong.student.train.select_by, crate::config::SelectBy::Bleu);
        // The -strong run's teacher, Seq-KD corpus and 4,000-update baseline; only the Seq-KD
        // student's loss differs (plain cross-entropy).
        let plain = PipelineConfig::load(&configs.join("multi30k-kd-plain-ce.toml")).unwrap();
        assert_eq!(plain.planned_rows(), strong.planned_rows());
        assert_eq!(
            (&plain.teacher.model, &plain.student.model),
            (&strong.teacher.model, &strong.student.model)
        );
        assert_eq!(plain.student.train.max_steps, long.student.train.max_steps);
        let budget = |mut t: TrainConfig| {
            t.max_steps = 0;
            toml::to_string(&t).unwrap()
        };
        assert_eq!(budget(plain.student.train.clone()), budget(strong.student.train.clone()));
        assert_eq!(toml::to_string(&plain.data).unwrap(), toml::to_string(&strong.data).unwrap());
        assert_eq!(plain.distill.seq_kd_beam, strong.distill.seq_kd_beam);
        assert_eq!(plain.distill.seq_kd_label_smoothing, Some(0.0));
        assert_eq!(plain.student_train(TrainingData::Gold).label_smoothing, 0.1);
        let toml = |r: &Recipe| toml::to_string(r).unwrap();
        assert_eq!(toml(&plain.teacher), toml(&strong.teacher));
        // The -strong run's teacher and Seq-KD corpus with smaller students.
        let small = PipelineConfig::load(&configs.join("multi30k-kd-small.toml")).unwrap();
        assert_eq!(toml(&small.teacher), toml(&strong.teacher));
        assert_eq!(toml::to_string(&small.data).unwrap(), toml::to_string(&strong.data).unwrap());
        let width = |m: &ModelConfig| match m {
            ModelConfig::Transformer(t) => t.d_model,
            ModelConfig::Lstm(_) => unreachable!("Transformer students"),
        };
        assert!(width(&small.student.model) < width(&strong.student.model));
        // ... and students between the two, with the small run's recipe.
        let mid = PipelineConfig::load(&configs.join("multi30k-kd-mid.toml")).unwrap();
        assert_eq!(toml(&mid.teacher), toml(&strong.teacher));
        assert_eq!(toml::to_string(&mid.data).unwrap(), toml::to_string(&small.data).unwrap());
        assert_eq!(
            toml::to_string(&mid.student.train).unwrap(),
            toml::to_string(&small.student.train).unwrap()
        );
        let (lo, hi) = (width(&small.student.model), width(&strong.student.model));
        assert!(lo < width(&mid.student.model) && width(&mid.student.model) < hi);
        // The small run again with another seed, and nothing else changed.
        let mut seed2 = PipelineConfig::load(&configs.join("multi30k-kd-small-seed2.toml")).unwrap();
        assert_eq!((seed2.student.train.seed, small.student.train.seed), (2, 1));
        seed2.student.train.seed = small.student.train.seed;
        assert_eq!(toml::to_string(&seed2).unwrap(), toml::to_string(&small).unwrap());
        // The small run's Seq-KD student with its layers moved from the encoder to the decoder.
        let mut deep = PipelineConfig::load(&configs.join("multi30k-kd-small-deep-decoder.toml")).unwrap();
        assert_eq!(deep.rows, vec![Row::SeqKd]);
        let layers = |r: &Recipe| match &r.model {
            ModelConfig::Transformer(t) => (t.encoder_layers, t.decoder_layers),
            ModelConfig::Lstm(_) => unreachable!("Transformer students"),
        };
        assert_eq!((layers(&deep.student), layers(&small.student)), ((1, 2), (2, 1)));
        (deep.rows, deep.student.model) = (small.rows.clone(), small.student.model.clone());
        assert_eq!(toml::to_string(&deep).unwrap(), toml::to_string(&small).unwrap());
    }
}
