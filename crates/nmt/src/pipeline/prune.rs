//! The pruning stage (See et al. 2016; Kim & Rush Table 3): a student pruned by magnitude into
//! `pruned/<name>/`, before the training stage retrains it under the mask. Pruning is cheap and
//! deterministic, so anything but the same ratio and scheme of the current source is pruned again.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::Error;
use crate::model_dir::BEST_FILE;
use crate::prune::{prune_model_dir, PruneScheme};
use crate::table1::pruned_name;

use super::context::{newer, Context, Stage};
use super::progress::Cost;

pub(super) struct Prune {
    /// The model pruned: the row's student, or (iterative) the previous ratio's retrained model.
    source: PathBuf,
    ratio: f64,
    scheme: PruneScheme,
    name: String,
    one_shot: PathBuf,
}

impl Prune {
    pub fn new(ctx: &Context, source: PathBuf, ratio: f64) -> Self {
        let pr = ctx.cfg.prune.as_ref().expect("a pruning stage");
        let name = pruned_name(pr.from, ratio);
        Self { source, ratio, scheme: pr.scheme, one_shot: ctx.run.pruned(&name), name }
    }
}

impl Stage for Prune {
    fn describe(&self) -> String {
        format!("prune {} to {:.0}% ({:?})", self.source.display(), 100.0 * self.ratio, self.scheme)
    }

    fn done(&self, _ctx: &Context) -> Result<bool, Error> {
        pruned_as_asked(&self.one_shot, &self.source, self.ratio, self.scheme)
    }

    fn cost(&self, _ctx: &Context) -> Cost {
        Cost::other(1.0) // one pass over the weights
    }

    fn run(&self, _ctx: &mut Context) -> Result<(), Error> {
        let summary = prune_model_dir(&self.source, self.ratio, self.scheme, &self.one_shot)?;
        eprintln!(
            "[pipeline] {}: {} of {} parameters non-zero, {:.2} MB → {:.2} MB",
            self.name,
            summary.nonzero_params,
            summary.params,
            summary.bytes_before as f64 / 1e6,
            summary.bytes_after as f64 / 1e6
        );
        Ok(())
    }
}

/// Whether `one_shot` holds `source` pruned at `ratio` with `scheme`, made after `source` was last
/// trained.
fn pruned_as_asked(one_shot: &Path, source: &Path, ratio: f64, scheme: PruneScheme) -> Result<bool, Error> {
    let weights = one_shot.join(BEST_FILE);
    if !weights.exists() || newer(&source.join(BEST_FILE), &weights) {
        return Ok(false);
    }
    let meta = checkpoint::metadata(&weights)?;
    Ok(meta.get("prune_scheme") == Some(&format!("{scheme:?}"))
        && meta.get("prune_ratio") == Some(&ratio.to_string()))
}
