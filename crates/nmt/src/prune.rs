//! Magnitude pruning (See et al. 2016, "Compression of NMT models via pruning"; Kim & Rush 2016 §6):
//! remove the weights of smallest absolute value, then retrain with the pruned weights held at zero.
//!
//! - **What is pruned:** every weight matrix (parameters with two or more dimensions): embeddings,
//!   attention, feed-forward and LSTM weights, the output projection. Biases and LayerNorm gains
//!   and shifts (one dimension) are kept: they are under 1% of the parameters, and zeroing a
//!   LayerNorm gain silences a whole feature.
//! - **Class-blind:** one threshold over all pruned parameters: the R·N smallest magnitudes overall.
//! - **Class-uniform:** the same ratio R within each class. See et al.'s classes are the model's
//!   distinct weight matrices (each layer's recurrent weights, attention, embeddings, softmax); here
//!   each weight tensor is one class.
//!
//! Exactly `round(R · n)` weights are removed (ties broken by position, not by a threshold, so the
//! ratio holds even when many magnitudes are equal). A pruned model directory stores each pruned
//! matrix compactly (see [`crate::model_dir::sparse`]), so its size falls with the ratio; loading
//! restores the dense tensors, and retraining holds the mask: [`Masks`] is the trainer's weight
//! constraint.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::checkpoint;
use crate::error::{io_err, Error};
use crate::model_dir::sparse::compact;
use crate::model_dir::{LoadedModel, BEST_FILE, CONFIG_FILE, VOCAB_FILE};
use crate::train::method::{Start, WeightConstraint};

/// How the pruned weights are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneScheme {
    ClassBlind,
    ClassUniform,
}

impl std::str::FromStr for PruneScheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "class-blind" => Ok(PruneScheme::ClassBlind),
            "class-uniform" => Ok(PruneScheme::ClassUniform),
            _ => Err(format!("'{s}': expected class-blind or class-uniform")),
        }
    }
}

/// Whether a parameter is pruned at all (weight matrices, not biases or LayerNorm).
pub fn is_prunable(t: &Tensor) -> bool {
    t.dim() >= 2
}

/// Where the masks are kept in a resumable checkpoint.
const CHECKPOINT_PREFIX: &str = "mask.";

/// Keep-masks (bool, true = kept) of the pruned parameters, by name.
#[derive(Debug, Default)]
pub struct Masks {
    pub masks: Vec<(String, Tensor)>,
}

impl Masks {
    /// Masks that remove `ratio` of the weights of `params` (name → tensor) by magnitude.
    pub fn by_magnitude(
        params: &[(String, Tensor)],
        ratio: f64,
        scheme: PruneScheme,
    ) -> Result<Masks, String> {
        if !(0.0..1.0).contains(&ratio) {
            return Err(format!("the pruning ratio must be in [0, 1) (got {ratio})"));
        }
        let prunable: Vec<&(String, Tensor)> = params.iter().filter(|(_, t)| is_prunable(t)).collect();
        let keep_largest = |magnitudes: &Tensor, n_prune: i64| -> Tensor {
            // [n] bool: false at the n_prune smallest magnitudes (exact count, ties by position).
            let n = magnitudes.numel() as i64;
            let mask = Tensor::ones([n], (Kind::Bool, magnitudes.device()));
            if n_prune == 0 {
                return mask;
            }
            let (_, smallest) = magnitudes.topk(n_prune, 0, false, true);
            mask.index_fill(0, &smallest, 0)
        };
        let masks = tch::no_grad(|| match scheme {
            PruneScheme::ClassUniform => prunable
                .iter()
                .map(|(name, t)| {
                    let n_prune = (ratio * t.numel() as f64).round() as i64;
                    (name.clone(), keep_largest(&t.abs().flatten(0, -1), n_prune).view_as(t))
                })
                .collect(),
            PruneScheme::ClassBlind => {
                let all =
                    Tensor::cat(&prunable.iter().map(|(_, t)| t.abs().flatten(0, -1)).collect::<Vec<_>>(), 0);
                let n_prune = (ratio * all.numel() as f64).round() as i64;
                let flat = keep_largest(&all, n_prune);
                let mut start = 0i64;
                prunable
                    .iter()
                    .map(|(name, t)| {
                        let n = t.numel() as i64;
                        let m = flat.narrow(0, start, n).view_as(t);
                        start += n;
                        (name.clone(), m)
                    })
                    .collect()
            }
        });
        Ok(Masks { masks })
    }

    /// Zeroes the pruned weights of `params` (and, when they exist, their gradients). Called after
    /// every optimiser update while retraining; masking the gradient before the update as well keeps
    /// Adam's moments of pruned weights at zero, so they never push a weight back.
    pub fn apply(&self, params: &HashMap<String, Tensor>) {
        tch::no_grad(|| {
            for (name, mask) in &self.masks {
                if let Some(p) = params.get(name) {
                    let mut p = p.shallow_clone();
                    let _ = p.g_mul_(mask);
                }
            }
        });
    }

    /// Zeroes the gradients of pruned weights (before clipping and the optimiser step).
    pub fn apply_to_grads(&self, params: &HashMap<String, Tensor>) {
        tch::no_grad(|| {
            for (name, mask) in &self.masks {
                if let Some(p) = params.get(name) {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.g_mul_(mask);
                    }
                }
            }
        });
    }

    /// Pruned weights / prunable weights.
    pub fn ratio(&self) -> f64 {
        let (mut kept, mut total) = (0i64, 0i64);
        for (_, m) in &self.masks {
            kept += m.sum(Kind::Int64).int64_value(&[]);
            total += m.numel() as i64;
        }
        1.0 - kept as f64 / total.max(1) as f64
    }

    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// The masks of a run's starting point: those saved in its resumable checkpoint, or the
    /// keep-masks of a pruned model it starts from (none when it starts from a dense model).
    pub fn at_start(start: Start) -> Masks {
        match start {
            Start::Scratch => Masks::default(),
            Start::Init { masks } => {
                Masks { masks: masks.iter().map(|(n, m)| (n.clone(), m.shallow_clone())).collect() }
            }
            Start::Resumed { checkpoint } => Masks::from_tensors(checkpoint, CHECKPOINT_PREFIX),
        }
    }

    /// The masks as checkpoint tensors `<prefix><name>` (u8 0/1), for resumable retraining.
    pub fn to_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        self.masks.iter().map(|(n, m)| (format!("{prefix}{n}"), m.to_kind(Kind::Uint8))).collect()
    }

    /// Masks saved by [`Masks::to_tensors`] under `prefix`.
    pub fn from_tensors(tensors: &HashMap<String, Tensor>, prefix: &str) -> Masks {
        let mut masks: Vec<(String, Tensor)> = tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(prefix).map(|n| (n.to_string(), t.to_kind(Kind::Bool))))
            .collect();
        masks.sort_by(|a, b| a.0.cmp(&b.0));
        Masks { masks }
    }
}

/// Retraining a pruned model: its pruned weights stay at exactly zero.
impl WeightConstraint for Masks {
    fn constrain_grads(&self, vars: &HashMap<String, Tensor>) {
        self.apply_to_grads(vars);
    }
    fn constrain(&self, vars: &HashMap<String, Tensor>) {
        self.apply(vars);
    }
    fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        self.to_tensors(CHECKPOINT_PREFIX)
    }
    /// Compact storage, so a retrained pruned model stays small on disk.
    fn stored_weights(&self, vars: Vec<(String, Tensor)>, prefix: &str) -> Vec<(String, Tensor)> {
        if self.is_empty() {
            vars
        } else {
            compact(&vars, &self.masks, prefix)
        }
    }
}

/// What [`prune_model_dir`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PruneSummary {
    pub ratio: f64,
    pub scheme: PruneScheme,
    /// Fraction of the weight matrices actually removed (equals `ratio` up to rounding).
    pub pruned_fraction: f64,
    pub params: i64,
    pub nonzero_params: i64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Prunes the model in `model_dir` (dense or already pruned: pruned weights stay pruned, being the
/// smallest) into a new model directory `out` with compact weights.
pub fn prune_model_dir(
    model_dir: &Path,
    ratio: f64,
    scheme: PruneScheme,
    out: &Path,
) -> Result<PruneSummary, Error> {
    let loaded = LoadedModel::load(model_dir, tch::Device::Cpu, None)?;
    let mut params: Vec<(String, Tensor)> = loaded.vs.variables().into_iter().collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let masks = Masks::by_magnitude(&params, ratio, scheme).map_err(Error::Invalid)?;
    masks.apply(&loaded.vs.variables());
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    for file in [CONFIG_FILE, VOCAB_FILE] {
        let to = out.join(file);
        std::fs::copy(model_dir.join(file), &to).map_err(io_err(&to))?;
    }
    let dense: Vec<(String, Tensor)> =
        params.iter().map(|(n, t)| (format!("model.{n}"), t.detach())).collect();
    let meta = HashMap::from([
        ("pruned_from".to_string(), model_dir.display().to_string()),
        ("prune_ratio".to_string(), ratio.to_string()),
        ("prune_scheme".to_string(), format!("{scheme:?}")),
    ]);
    let weights = out.join(BEST_FILE);
    checkpoint::save(&weights, &compact(&dense, &masks.masks, "model."), meta)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok(PruneSummary {
        ratio,
        scheme,
        pruned_fraction: masks.ratio(),
        params: loaded.num_params(),
        nonzero_params: loaded.num_nonzero_params(),
        bytes_before: size(&model_dir.join(BEST_FILE)),
        bytes_after: size(&weights),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Vec<(String, Tensor)> {
        tch::manual_seed(3);
        let opts = (Kind::Float, tch::Device::Cpu);
        vec![
            ("a.weight".into(), Tensor::randn([30, 17], opts) * 0.1),
            ("a.bias".into(), Tensor::randn([30], opts)),
            ("b.weight".into(), Tensor::randn([11, 13], opts) * 3.0),
            // Many equal magnitudes: a threshold would remove all or none of them.
            ("c.weight".into(), Tensor::ones([8, 8], opts)),
        ]
    }

    fn zeros(t: &Tensor) -> i64 {
        t.eq(0.0).sum(Kind::Int64).int64_value(&[])
    }

    #[test]
    fn prune_hits_the_ratio_exactly_for_both_schemes() {
        let p = params();
        let prunable: i64 = p.iter().filter(|(_, t)| is_prunable(t)).map(|(_, t)| t.numel() as i64).sum();
        for ratio in [0.0, 0.5, 0.8, 0.9] {
            for scheme in [PruneScheme::ClassBlind, PruneScheme::ClassUniform] {
                let masks = Masks::by_magnitude(&p, ratio, scheme).unwrap();
                let vars: HashMap<String, Tensor> = p.iter().map(|(n, t)| (n.clone(), t.copy())).collect();
                masks.apply(&vars);
                let pruned: i64 = masks.masks.iter().map(|(n, _)| zeros(&vars[n])).sum();
                let want = (ratio * prunable as f64).round() as i64;
                assert!((pruned - want).abs() <= 3, "{scheme:?} {ratio}: {pruned} vs {want}");
                assert_eq!(zeros(&vars["a.bias"]), 0, "biases are never pruned");
                if scheme == PruneScheme::ClassUniform {
                    for (n, t) in p.iter().filter(|(_, t)| is_prunable(t)) {
                        let want = (ratio * t.numel() as f64).round() as i64;
                        assert_eq!(zeros(&vars[n]), want, "{n} at {ratio}");
                    }
                }
            }
        }
        // Class-blind removes the small-magnitude matrix first; class-uniform spreads the cut.
        let blind = Masks::by_magnitude(&p, 0.5, PruneScheme::ClassBlind).unwrap();
        let kept = |name: &str| {
            blind.masks.iter().find(|(n, _)| n == name).unwrap().1.sum(Kind::Int64).int64_value(&[])
        };
        // 358 of 717 go; a.weight (scale 0.1) loses far more than half, b.weight (scale 3) almost none.
        assert!(kept("a.weight") < 30 * 17 / 2, "{}", kept("a.weight"));
        assert!(kept("b.weight") > 11 * 13 * 9 / 10, "{}", kept("b.weight"));
    }

    #[test]
    fn compact_storage_round_trips_and_shrinks() {
        let p = params();
        let masks = Masks::by_magnitude(&p, 0.8, PruneScheme::ClassBlind).unwrap();
        let vars: HashMap<String, Tensor> = p.iter().map(|(n, t)| (n.clone(), t.copy())).collect();
        masks.apply(&vars);
        let dense: Vec<(String, Tensor)> =
            p.iter().map(|(n, _)| (format!("model.{n}"), vars[n].shallow_clone())).collect();
        let stored = compact(&dense, &masks.masks, "model.");
        let bytes = |ts: &[(String, Tensor)]| {
            ts.iter().map(|(_, t)| t.numel() * t.kind().elt_size_in_bytes()).sum::<usize>()
        };
        assert!(bytes(&stored) * 100 < bytes(&dense) * 35, "{} vs {}", bytes(&stored), bytes(&dense));
        let mut loaded: HashMap<String, Tensor> = stored.into_iter().collect();
        let found = crate::model_dir::sparse::densify(&mut loaded, "model.").unwrap();
        assert_eq!(found.len(), 3);
        for (n, t) in &dense {
            assert!(loaded[n].equal(t), "{n} differs after the round trip");
        }
    }
}
