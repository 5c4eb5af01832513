//! The report stage: the pipeline gathers what its stages made into [`Results`] and
//! [`crate::report`] writes `report.md`, `report.json` and the plots. It always runs.

use crate::error::{io_err, Error};
use crate::model_dir::BEST_FILE;
use crate::report::{Pruning, Results, Start, Training};
use crate::table1::{Row, TEACHER, TEACHER_SEQ_INTER};
use crate::train::metrics::{self, Record};

use super::context::{Context, Stage};
use super::progress::Cost;
use super::train::completed_state;

pub(super) struct Report;

/// The validation BLEU of the update a model kept (the last one marked best).
fn kept_bleu(records: &[Record]) -> Option<f64> {
    records.iter().rev().find_map(|r| match r {
        Record::Valid { bleu_greedy, best: true, .. } => Some(*bleu_greedy),
        _ => None,
    })
}

/// Where the model `name` started: the teacher for its Seq-Inter fine-tune, a row's parent for
/// a fine-tuned row (the parent's kept weights, whose BLEU `kept` gives), the pruning source for
/// a pruned model (its pruned weights' BLEU is its own update-0 validation, when it has one).
fn start(ctx: &Context, name: &str, kept: impl Fn(&str) -> Option<f64>) -> Option<Start> {
    if name == TEACHER_SEQ_INTER {
        return Some(Start { bleu: kept(TEACHER) });
    }
    if let Some(parent) = Row::ALL.iter().find(|r| r.name() == name).and_then(|r| r.recipe().2) {
        return Some(Start { bleu: kept(parent.name()) });
    }
    let pruning = ctx.cfg.prune.as_ref()?;
    name.starts_with(&format!("{}-pruned", pruning.from.name())).then_some(Start { bleu: None })
}

/// What the run directory holds of the model `name`'s training (`records`: its metrics).
fn training(ctx: &Context, name: &str, records: &[Record], start: Option<Start>) -> Training {
    let dir = ctx.run.model(name);
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
        start,
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
        let refs = ctx.test()?.tgt.clone();
        let ctx = &*ctx;
        let names: Vec<&str> = ctx.evaluations.iter().map(|e| e.name.as_str()).collect();
        // Each model's metrics.jsonl in the run, read once: its curve, the starting point of the
        // models fine-tuned from it, its loss plot.
        let records: Vec<Option<Vec<Record>>> =
            names.iter().map(|n| metrics::read(&ctx.run.model(n)).ok()).collect();
        let kept = |name: &str| {
            let dir = ctx.model_dir(name);
            match names.iter().position(|n| *n == name) {
                Some(i) if dir == ctx.run.model(name) => records[i].as_deref().and_then(kept_bleu),
                // A teacher from another directory (`teacher_model`).
                _ => metrics::read(&dir).ok().as_deref().and_then(kept_bleu),
            }
        };
        let cfg = ctx.cfg;
        let results = Results {
            test_set: seqkd_text::paths::shown_from_here(&cfg.data.test_tgt),
            beam_size: cfg.eval.beam_size,
            training: (names.iter().zip(&records))
                .map(|(n, r)| training(ctx, n, r.as_deref().unwrap_or_default(), start(ctx, n, kept)))
                .collect(),
            evaluations: ctx.evaluations.clone(),
            pruning: cfg.prune.as_ref().map(|p| Pruning {
                from: p.from,
                ratios: p.ratios.clone(),
                scheme: p.scheme,
                iterative: p.iterative,
            }),
            refs,
        };
        crate::report::write(&ctx.run.root, &results)?;
        // Each model's loss.svg/.png again, so that a resumed run's pictures are those of the
        // current code (training draws them once, when it finishes).
        for (name, records) in names.iter().zip(&records) {
            if let Some(records) = records {
                let dir = ctx.run.model(name);
                crate::train::plot::write_loss_plot_of(&dir, records).map_err(io_err(&dir))?;
            }
        }
        Ok(())
    }
}
