//! The report stage: the pipeline gathers what its stages made into [`Results`] and
//! [`crate::report`] writes `report.md`, `report.json` and the plots. It always runs.

use crate::error::{io_err, Error};
use crate::model_dir::{BEST_FILE, METRICS_FILE};
use crate::report::{Pruning, Results, Start, Training};
use crate::table1::{Row, TEACHER, TEACHER_SEQ_INTER};
use crate::train::metrics::{self, Record};

use super::context::{Context, Stage};
use super::progress::Cost;
use super::train::completed_state;

pub(super) struct Report;

/// The validation BLEU of the update a model kept (the last one marked best).
fn kept_bleu(ctx: &Context, name: &str) -> Option<f64> {
    // The model's own directory: the teacher's may be outside the run (`teacher_model`).
    let records = metrics::read(&ctx.model_dir(name)).ok()?;
    records.iter().rev().find_map(|r| match r {
        Record::Valid { bleu_greedy, best: true, .. } => Some(*bleu_greedy),
        _ => None,
    })
}

/// Where the model `name` started: the teacher for its Seq-Inter fine-tune, a row's parent for
/// a fine-tuned row (the parent's kept weights), the pruning source for a pruned model (whose
/// pruned weights were not validated).
fn start(ctx: &Context, name: &str) -> Option<Start> {
    if name == TEACHER_SEQ_INTER {
        return Some(Start { bleu: kept_bleu(ctx, TEACHER) });
    }
    if let Some(parent) = Row::ALL.iter().find(|r| r.name() == name).and_then(|r| r.recipe().2) {
        return Some(Start { bleu: kept_bleu(ctx, parent.name()) });
    }
    let pruning = ctx.cfg.prune.as_ref()?;
    name.starts_with(&format!("{}-pruned", pruning.from.name())).then_some(Start { bleu: None })
}

/// What the run directory holds of the model `name`'s training.
fn training(ctx: &Context, name: &str) -> Training {
    let dir = ctx.run.model(name);
    let records = metrics::read(&dir).unwrap_or_default();
    let valid_bleu = records
        .iter()
        .filter_map(|r| match r {
            Record::Valid { step, bleu_greedy, .. } => Some((*step as f64, *bleu_greedy)),
            Record::Train { .. } => None,
        })
        .collect();
    Training {
        finished: completed_state(&dir).map(|s| (s.step, s.train_seconds)),
        valid_bleu,
        weight_bytes: std::fs::metadata(dir.join(BEST_FILE)).map(|m| m.len()).unwrap_or(0),
        start: start(ctx, name),
    }
}

impl Stage for Report {
    fn describe(&self) -> String {
        "report".into()
    }

    fn done(&self, _ctx: &Context) -> Result<bool, Error> {
        Ok(false)
    }

    fn cost(&self, ctx: &Context) -> Cost {
        // The bootstrap intervals of three claims, then the plots.
        Cost::other(2.0 + 0.003 * ctx.test_size().sentences as f64)
    }

    fn run(&self, ctx: &mut Context) -> Result<(), Error> {
        let cfg = ctx.cfg;
        let results = Results {
            test_set: seqkd_text::paths::shown_from_here(&cfg.data.test_tgt),
            beam_size: cfg.eval.beam_size,
            training: ctx.evaluations.iter().map(|e| training(ctx, &e.name)).collect(),
            evaluations: ctx.evaluations.clone(),
            pruning: cfg.prune.as_ref().map(|p| Pruning {
                from: p.from,
                ratios: p.ratios.clone(),
                scheme: p.scheme,
                iterative: p.iterative,
            }),
            refs: ctx.test()?.tgt.clone(),
        };
        crate::report::write(&ctx.run.root, &results)?;
        // Each model's loss.svg/.png again, so that a resumed run's pictures are those of the
        // current code (training draws them once, when it finishes).
        for name in &ctx.evaluated {
            let dir = ctx.run.model(name);
            if dir.join(METRICS_FILE).exists() {
                crate::train::plot::write_loss_plot(&dir).map_err(io_err(&dir))?;
            }
        }
        Ok(())
    }
}
