//! `seqkd pipeline`: the whole experiment of Kim & Rush 2016 as a list of named, resumable stages.
//!
//! vocab → teacher → distill (Seq-KD corpus, Seq-Inter corpus, stored top-k) → students (one per
//! Table 1 row) → Seq-Inter fine-tunes → prune and retrain → evaluate → time decoding (all models
//! together) → report.
//!
//! Each [`Stage`] names its outputs in the run directory, says whether they are complete, and makes
//! them; [`run`] walks the list, skipping complete stages: a model directory with a `.complete`
//! stamp, a distilled file (which appears only when complete, see [`seqkd_text::resumable`]), an
//! evaluation JSON, `eval/speed.json`. An interrupted stage resumes: training from
//! `last.safetensors`, a teacher pass from its last finished chunk. Combinations are data: each
//! [`Row`] says which corpus its student trains on, whether Word-KD is on, and which model it
//! starts from ([`crate::table1`]).

mod config;
mod context;
mod distill;
mod evaluate;
mod progress;
mod prune;
mod report;
mod reuse;
mod speed;
mod train;
mod vocab;

use std::path::Path;
use std::time::Instant;

use crate::error::{io_err, Error};
use crate::evaluate::Evaluation;
use crate::table1::TrainingData;
use context::{Context, Stage};
use progress::Status;

use crate::table1::pruned_name;
pub use config::{DistillSettings, EvalSettings, PipelineConfig, PipelineData, PruneSettings, Recipe};
pub use train::{completed_state, COMPLETE_STAMP};

/// Runs (or resumes) the pipeline into `out`; returns every model's evaluation, teacher first.
pub fn run(cfg: &PipelineConfig, out: &Path, progress: bool) -> Result<Vec<Evaluation>, Error> {
    cfg.validate()?;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let toml = toml::to_string_pretty(&cfg.with_absolute_paths()).unwrap_or_default();
    seqkd_text::atomic_write(&out.join("pipeline.toml"), toml.as_bytes()).map_err(io_err(out))?;
    let imported = import_teacher(cfg, out)?;
    let cfg = imported.as_ref().unwrap_or(cfg);
    let mut ctx = Context::new(cfg, out, progress)?;
    let stages = stages(cfg, &ctx);
    // Which stages will run, for the estimate of the time left: a stage found complete now is
    // expected to be skipped (one whose check fails now is left to fail when its turn comes).
    let costs: Vec<_> = stages.iter().map(|s| s.cost(&ctx)).collect();
    let mut status: Vec<Status> = (stages.iter())
        .map(|s| if s.done(&ctx).unwrap_or(false) { Status::Skipped } else { Status::ToRun })
        .collect();
    let start = Instant::now();
    for (i, stage) in stages.iter().enumerate() {
        let done = stage.done(&ctx)?;
        status[i] = if done { Status::Skipped } else { Status::ToRun };
        let what = if done { stage.describe() } else { stage.describe_run() };
        eprintln!("[pipeline] {}", progress::line(i, &what, &costs, &status, start.elapsed()));
        let started = Instant::now();
        if done {
            stage.reuse(&mut ctx)?;
        } else {
            stage.run(&mut ctx)?;
            status[i] = Status::Ran(started.elapsed().as_secs_f64());
        }
    }
    let ran = status.iter().filter(|s| matches!(s, Status::Ran(_))).count();
    eprintln!(
        "[pipeline] {} stages in {} ({ran} run, {} complete already)",
        stages.len(),
        progress::clock(start.elapsed()),
        stages.len() - ran
    );
    Ok(ctx.evaluations)
}

/// With `[teacher] import`, the imported teacher in `out/models/teacher` (imported once) and the
/// config that distills it as a given teacher (`teacher_model`).
fn import_teacher(cfg: &PipelineConfig, out: &Path) -> Result<Option<PipelineConfig>, Error> {
    let Some(from) = &cfg.teacher.import else { return Ok(None) };
    let dir = out.join("models").join(crate::table1::TEACHER);
    if dir.join(crate::model_dir::BEST_FILE).is_file() && dir.join(crate::model_dir::VOCAB_FILE).is_file() {
        eprintln!("[pipeline] teacher: imported from {} earlier ({})", from.display(), dir.display());
    } else {
        let m = crate::import::marian::import(from, &dir)?;
        eprintln!(
            "[pipeline] teacher: imported {} ({} parameters, vocabulary {}) into {}",
            from.display(),
            m.parameters,
            m.tgt_vocab,
            dir.display()
        );
    }
    let mut cfg = cfg.clone();
    cfg.teacher_model = Some(dir);
    cfg.teacher.import = None;
    // The search rule of the model's own toolkit, so Seq-KD's corpus is its beam output.
    cfg.teacher.decode.hf_stopping = true;
    Ok(Some(cfg))
}

/// The stages of `cfg`'s experiment, in order.
fn stages(cfg: &PipelineConfig, ctx: &Context) -> Vec<Box<dyn Stage>> {
    let mut stages: Vec<Box<dyn Stage>> = vec![Box::new(vocab::Vocabulary)];
    if cfg.teacher_model.is_none() {
        stages.push(Box::new(train::Train::teacher(ctx)));
    }
    if ctx.uses(TrainingData::SeqKd, None) {
        stages.push(Box::new(distill::SeqKdCorpus::default()));
    }
    if ctx.uses(TrainingData::SeqInter, None) || cfg.teacher_seq_inter {
        stages.push(Box::new(distill::SeqInterCorpus::default()));
    }
    for data in [TrainingData::Gold, TrainingData::SeqKd, TrainingData::SeqInter] {
        if ctx.uses(data, Some(true)) {
            stages.push(Box::new(distill::TopkStore { data, k: cfg.distill.top_k }));
        }
    }
    stages.extend(ctx.rows.iter().map(|&row| Box::new(train::Train::student(ctx, row)) as Box<dyn Stage>));
    if cfg.teacher_seq_inter {
        stages.push(Box::new(train::Train::teacher_seq_inter(ctx)));
    }
    if let Some(pr) = &cfg.prune {
        let mut source = ctx.run.model(pr.from.name());
        for &ratio in &pr.ratios {
            let name = pruned_name(pr.from, ratio);
            stages.push(Box::new(prune::Prune::new(ctx, source.clone(), ratio)));
            stages.push(Box::new(train::Train::pruned(ctx, &name)));
            if pr.iterative {
                source = ctx.run.model(&name);
            }
        }
    }
    stages.extend(ctx.evaluated.iter().map(|name| Box::new(evaluate::Evaluate::new(name)) as Box<dyn Stage>));
    stages.push(Box::new(speed::TimeDecoding));
    stages.push(Box::new(report::Report));
    stages
}
