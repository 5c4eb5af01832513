//! The report stage: the pipeline gathers what its stages made into [`Results`] and
//! [`crate::report`] writes `report.md`, `report.json` and the plots. It always runs.

use crate::error::Error;
use crate::model_dir::BEST_FILE;
use crate::report::{Pruning, Results, Training};
use crate::train::metrics::{self, Record};

use super::context::{Context, Stage};
use super::progress::Cost;
use super::train::completed_state;

pub(super) struct Report;

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
        Ok(())
    }
}
