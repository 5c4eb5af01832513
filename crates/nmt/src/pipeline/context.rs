//! What the stages share: the [`Stage`] trait, the run directory's files, the [`Context`] (the
//! config, the teacher, the corpora read once, the results later stages build on) and small file
//! helpers.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use serde::Serialize;

use seqkd_text::corpus::{read_parallel, LineLimits, ParallelCorpus};

use crate::config::{Config, DecodeConfig};
use crate::error::{io_err, Error};
use crate::evaluate::Evaluation;
use crate::model::ModelConfig;
use crate::model_dir::{LoadedModel, CONFIG_FILE};
use crate::table1::{pruned_name, Row, TrainingData, TEACHER};

use super::progress::{Corpus, Cost};
use super::PipelineConfig;

/// One step of the experiment.
pub(super) trait Stage {
    /// What the stage does, for its line in the log.
    fn describe(&self) -> String;
    /// The log line when it runs (by default the same).
    fn describe_run(&self) -> String {
        self.describe()
    }
    /// Whether its outputs are complete, so that it is skipped.
    fn done(&self, ctx: &Context) -> Result<bool, Error>;
    /// What running it costs, estimated from the config (see [`super::progress`]).
    fn cost(&self, ctx: &Context) -> Cost;
    /// Makes (or resumes making) its outputs.
    fn run(&self, ctx: &mut Context) -> Result<(), Error>;
    /// What a skipped stage still hands to the later ones (its results, read back).
    fn reuse(&self, _ctx: &mut Context) -> Result<(), Error> {
        Ok(())
    }
}

/// Files of a run directory.
pub(super) struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn vocab(&self) -> PathBuf {
        self.root.join("vocab.json")
    }
    pub fn model(&self, name: &str) -> PathBuf {
        self.root.join("models").join(name)
    }
    pub fn distill(&self, file: &str) -> PathBuf {
        self.root.join("distill").join(file)
    }
    pub fn eval(&self, name: &str) -> PathBuf {
        self.root.join("eval").join(format!("{name}.json"))
    }
    pub fn pruned(&self, name: &str) -> PathBuf {
        self.root.join("pruned").join(name)
    }
}

/// What the stages share: the config, the run directory, the teacher, the corpora read once, and
/// the results that later stages build on.
pub(super) struct Context<'a> {
    pub cfg: &'a PipelineConfig,
    pub run: RunDir,
    pub progress: bool,
    /// The rows to train, each after the row it starts from.
    pub rows: Vec<Row>,
    pub teacher_dir: PathBuf,
    pub teacher_arch: ModelConfig,
    /// The models to evaluate, teacher first.
    pub evaluated: Vec<String>,
    gold: OnceCell<ParallelCorpus>,
    test: OnceCell<ParallelCorpus>,
    /// The teacher, loaded once for the teacher passes and dropped before the students train.
    pub teacher: Option<LoadedModel>,
    pub evaluations: Vec<Evaluation>,
    /// Models the evaluation loaded, kept for the timing stage (None: evaluated in an earlier run).
    pub loaded: Vec<Option<(LoadedModel, DecodeConfig)>>,
}

impl<'a> Context<'a> {
    pub fn new(cfg: &'a PipelineConfig, out: &Path, progress: bool) -> Result<Self, Error> {
        let run = RunDir { root: out.to_path_buf() };
        let (teacher_dir, teacher_arch) = match &cfg.teacher_model {
            Some(dir) => {
                eprintln!("[pipeline] teacher: the trained model in {}", dir.display());
                (dir.clone(), Config::load(&dir.join(CONFIG_FILE))?.model)
            }
            None => (run.model(TEACHER), cfg.teacher.model.clone()),
        };
        let rows = cfg.planned_rows();
        let mut evaluated = vec![TEACHER.to_string()];
        if cfg.teacher_seq_inter {
            evaluated.push(crate::table1::TEACHER_SEQ_INTER.into());
        }
        evaluated.extend(rows.iter().map(|r| r.name().to_string()));
        if let Some(pr) = &cfg.prune {
            evaluated.extend(pr.ratios.iter().map(|&r| pruned_name(pr.from, r)));
        }
        Ok(Self {
            cfg,
            run,
            progress,
            rows,
            teacher_dir,
            teacher_arch,
            evaluated,
            gold: OnceCell::new(),
            test: OnceCell::new(),
            teacher: None,
            evaluations: Vec::new(),
            loaded: Vec::new(),
        })
    }

    /// Whether a planned row trains on `data` (with Word-KD on or off, or either when None).
    pub fn uses(&self, data: TrainingData, word_kd: Option<bool>) -> bool {
        self.rows.iter().any(|r| {
            let (rd, kd, _) = r.recipe();
            rd == data && word_kd.is_none_or(|w| w == kd)
        })
    }

    /// The gold training corpus, read once.
    pub fn gold(&self) -> Result<&ParallelCorpus, Error> {
        let d = &self.cfg.data;
        once(&self.gold, || Ok(read_parallel(&d.train_src, &d.train_tgt, &LineLimits::default())?))
    }

    /// The test set, read once.
    pub fn test(&self) -> Result<&ParallelCorpus, Error> {
        let d = &self.cfg.data;
        once(&self.test, || Ok(read_parallel(&d.test_src, &d.test_tgt, &LineLimits::default())?))
    }

    /// Loads the teacher into `self.teacher` on first use, with the evaluation's threads.
    pub fn load_teacher(&mut self) -> Result<(), Error> {
        if self.teacher.is_none() {
            set_threads(self.cfg.eval.threads);
            let device = crate::parse_device(&self.cfg.teacher.train.device).map_err(Error::Invalid)?;
            self.teacher = Some(LoadedModel::load(&self.teacher_dir, device, None)?);
        }
        Ok(())
    }

    /// The training corpus (source, target) of `data` in this run.
    pub fn corpus(&self, data: TrainingData) -> (PathBuf, PathBuf) {
        let d = &self.cfg.data;
        match data {
            TrainingData::Gold => (d.train_src.clone(), d.train_tgt.clone()),
            TrainingData::SeqKd => (d.train_src.clone(), self.run.distill("seq-kd.tgt")),
            TrainingData::SeqInter => (self.run.distill("seq-inter.src"), self.run.distill("seq-inter.tgt")),
        }
    }

    /// `name`'s model, loaded for decoding the test set with the evaluation's settings.
    pub fn load_for_eval(&self, name: &str) -> Result<(LoadedModel, DecodeConfig), Error> {
        let device = crate::parse_device(&self.cfg.student.train.device).map_err(Error::Invalid)?;
        let model = LoadedModel::load(&self.model_dir(name), device, None)?;
        let decode = DecodeConfig {
            beam_size: self.cfg.eval.beam_size,
            batch_tokens: self.cfg.eval.batch_tokens,
            ..model.config.decode.clone()
        };
        Ok((model, decode))
    }

    /// The sentences and mean words (the longer side) of `data`'s training corpus, as far as
    /// known before it exists (the distilled corpora have the gold corpus's sentences).
    pub fn corpus_size(&self, data: TrainingData) -> Corpus {
        let gold = self.gold().ok();
        let sentences = gold.map_or(0, |g| g.src.len());
        let words = gold.map_or(0.0, |g| {
            let longer = g.src.iter().zip(&g.tgt).map(|(s, t)| words(s).max(words(t)));
            longer.sum::<usize>() as f64 / sentences.max(1) as f64
        });
        let sentences = match (data, self.cfg.distill.seq_inter_sentences) {
            (TrainingData::SeqInter, n) if n > 0 => n.min(sentences),
            _ => sentences,
        };
        Corpus { sentences, words }
    }

    /// How many of the first test sentences the decoding speeds are timed on.
    pub fn timed_sentences(&self) -> usize {
        let all = self.test().map_or(0, |t| t.src.len());
        match self.cfg.eval.timing_sentences {
            0 => all,
            n => n.min(all),
        }
    }

    /// The test set's sentences and mean source words.
    pub fn test_size(&self) -> Corpus {
        let test = self.test().ok();
        let sentences = test.map_or(0, |t| t.src.len());
        let total: usize = test.map_or(0, |t| t.src.iter().map(|s| words(s)).sum());
        Corpus { sentences, words: total as f64 / sentences.max(1) as f64 }
    }

    /// The subword vocabulary's size, as the config asks for it.
    pub fn vocab_size(&self) -> usize {
        self.cfg.data.vocab.size
    }

    /// The architecture of the evaluated model `name`.
    pub fn arch(&self, name: &str) -> &ModelConfig {
        if name.starts_with(TEACHER) {
            &self.teacher_arch
        } else {
            &self.cfg.student.model
        }
    }

    /// The directory of a model the pipeline evaluates: the teacher's may lie outside the run.
    pub fn model_dir(&self, name: &str) -> PathBuf {
        if name == TEACHER {
            self.teacher_dir.clone()
        } else {
            self.run.model(name)
        }
    }
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// The stored top-k file along the corpus of `data`.
pub(super) fn topk_file(data: TrainingData) -> &'static str {
    match data {
        TrainingData::Gold => "topk-gold.bin",
        TrainingData::SeqKd => "topk-seq-kd.bin",
        TrainingData::SeqInter => "topk-seq-inter.bin",
    }
}

/// The value of `cell`, made by `make` the first time.
pub(super) fn once<T>(cell: &OnceCell<T>, make: impl FnOnce() -> Result<T, Error>) -> Result<&T, Error> {
    if cell.get().is_none() {
        let _ = cell.set(make()?);
    }
    Ok(cell.get().expect("set"))
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|e| Error::BadFile { path: path.into(), reason: e.to_string() })
}

pub(super) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let json = serde_json::to_string_pretty(value).expect("serializable");
    seqkd_text::atomic_write(path, json.as_bytes()).map_err(io_err(path))
}

pub(super) fn write_lines(path: &Path, lines: &[String]) -> Result<(), Error> {
    let mut text = lines.join("\n");
    text.push('\n');
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    seqkd_text::atomic_write(path, text.as_bytes()).map_err(io_err(path))
}

pub(super) fn set_threads(threads: i64) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
}

/// Whether `a` was modified after `b` (false when either is missing).
pub(super) fn newer(a: &Path, b: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(a), modified(b)), (Some(a), Some(b)) if a > b)
}
