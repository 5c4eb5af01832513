//! The experiment's one TOML file (`seqkd pipeline --config`): the data, the teacher's and the
//! students' recipes, the distillation and evaluation settings, which Table 1 rows to run, and
//! the optional pruning stage. Relative data paths are relative to the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use seqkd_text::corpus::LengthFilter;
use seqkd_text::vocab::VocabConfig;

use crate::config::{resolve_relative, Config, DecodeConfig, TrainConfig, WordKdConfig};
use crate::distill::topk_store::ProbPrecision;
use crate::distill::{seq_inter, seq_kd};
use crate::error::{io_err, Error};
use crate::model::ModelConfig;
use crate::prune::PruneScheme;
use crate::table1::{Row, TrainingData};

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
    /// Every training run streams its corpus from memory-mapped subword ids (`[data] stream`).
    pub stream: bool,
}

/// A model and how to train and decode it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recipe {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub decode: DecodeConfig,
    /// Teacher only: a Marian / OPUS-MT model in the Hugging Face layout, imported into the run
    /// (`models/teacher`, as `seqkd import --format marian-hf` does) instead of trained; its
    /// vocabulary becomes the run's and beam search follows `transformers`' stopping rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<PathBuf>,
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
    /// Time the decoding speeds (Table 2) on the first this many test sentences (0 = all of them).
    /// BLEU is always scored on the whole test set; a large test set narrows the bootstrap
    /// intervals, and timing 3 rounds on 3 engines of all of it would cost more than it tells.
    pub timing_sentences: usize,
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self { beam_size: 5, batch_tokens: 2048, threads: 0, timing_sentences: 0 }
    }
}

impl PipelineConfig {
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let mut cfg: PipelineConfig =
            toml::from_str(&text).map_err(|e| Error::BadFile { path: path.into(), reason: e.to_string() })?;
        resolve_relative(path.parent().unwrap_or(Path::new(".")), cfg.paths_mut());
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as a run directory keeps it (`pipeline.toml`): data paths and the teacher made
    /// absolute, so that `seqkd pipeline --config OUT/pipeline.toml`, which reads paths relative
    /// to the file, finds the same files wherever it is started from.
    pub fn with_absolute_paths(&self) -> Self {
        let mut cfg = self.clone();
        for p in cfg.paths_mut() {
            if let Ok(abs) = std::path::absolute(&*p) {
                *p = abs;
            }
        }
        cfg
    }

    /// The paths of the files and directories the config reads: the data, and the teacher.
    fn paths_mut(&mut self) -> impl Iterator<Item = &mut PathBuf> {
        let d = &mut self.data;
        [
            &mut d.train_src,
            &mut d.train_tgt,
            &mut d.valid_src,
            &mut d.valid_tgt,
            &mut d.test_src,
            &mut d.test_tgt,
        ]
        .into_iter()
        .chain(&mut self.teacher_model)
        .chain(&mut self.teacher.import)
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

    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Invalid(m));
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
            cfg.validate().map_err(|e| Error::Invalid(format!("{what}: {e}")))
        };
        if self.student.import.is_some() {
            return bad("student.import: only the teacher can be imported".into());
        }
        if self.teacher.import.is_some() && self.teacher_model.is_some() {
            return bad("set teacher.import or teacher_model, not both".into());
        }
        if self.teacher_model.is_none() && self.teacher.import.is_none() {
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
            .map_err(Error::Invalid)?;
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
    fn the_config_a_run_keeps_reads_back_to_the_same_files_from_inside_the_run_directory() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut cfg = PipelineConfig::load(&configs.join("multi30k-kd.toml")).unwrap();
        // As a config read from the working directory holds them: relative to it.
        cfg.data.train_src = "data/train.en".into();
        cfg.teacher_model = Some("runs/teacher".into());
        let run = tempfile::tempdir().unwrap();
        let saved = run.path().join("pipeline.toml");
        std::fs::write(&saved, toml::to_string_pretty(&cfg.with_absolute_paths()).unwrap()).unwrap();
        let again = PipelineConfig::load(&saved).unwrap();
        let abs = |p: &Path| std::path::absolute(p).unwrap();
        assert_eq!(again.data.train_src, abs(&cfg.data.train_src));
        assert_eq!(again.data.test_tgt, abs(&cfg.data.test_tgt));
        assert_eq!(again.data.train_src, std::env::current_dir().unwrap().join("data/train.en"));
        assert_eq!(again.teacher_model, Some(std::env::current_dir().unwrap().join("runs/teacher")));
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
