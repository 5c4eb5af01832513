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
//! matrix compactly in safetensors as `<name>.__mask` (one bit per weight, u8-packed) plus
//! `<name>.__values` (the kept weights, f32), so its size falls with the ratio; loading restores the
//! dense tensors, and training keeps the mask (see [`Masks::apply`]).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use seqkd_runtime::format::{MASK_SUFFIX, SHAPE_SUFFIX, VALUES_SUFFIX};

use crate::train::{checkpoint, LoadedModel, TrainError, BEST_FILE, CONFIG_FILE, VOCAB_FILE};

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

/// The dense shape of a compactly stored tensor, from its i64 tensor `<name>.__shape`.
fn shape_of_compact(tensors: &HashMap<String, Tensor>, name: &str) -> Option<Vec<i64>> {
    let t = tensors.get(&format!("{name}{SHAPE_SUFFIX}"))?;
    Vec::<i64>::try_from(t).ok()
}

/// Packs a bool tensor into bytes (bit i of byte i/8 = element i, little-endian bit order).
fn pack_bits(mask: &Tensor) -> Tensor {
    let bits: Vec<u8> =
        Vec::try_from(mask.flatten(0, -1).to_kind(Kind::Uint8).to_device(tch::Device::Cpu)).expect("u8 mask");
    let mut packed = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        packed[i / 8] |= (b & 1) << (i % 8);
    }
    Tensor::from_slice(&packed)
}

fn unpack_bits(packed: &Tensor, shape: &[i64]) -> Tensor {
    let bytes: Vec<u8> = Vec::try_from(packed.to_device(tch::Device::Cpu)).unwrap_or_default();
    let n: i64 = shape.iter().product();
    let bits: Vec<bool> =
        (0..n as usize).map(|i| bytes.get(i / 8).is_some_and(|b| (b >> (i % 8)) & 1 == 1)).collect();
    Tensor::from_slice(&bits).view(shape).to_device(packed.device())
}

/// The checkpoint tensors of a pruned model, compact: each masked parameter becomes
/// `<name>.__mask` (packed bits), `<name>.__values` (its kept weights, in order) and
/// `<name>.__shape`; the others are stored as they are.
pub fn compact(tensors: &[(String, Tensor)], masks: &Masks, prefix: &str) -> Vec<(String, Tensor)> {
    let by_name: HashMap<&str, &Tensor> = masks.masks.iter().map(|(n, m)| (n.as_str(), m)).collect();
    let mut out = Vec::with_capacity(tensors.len() * 3);
    for (key, t) in tensors {
        match key.strip_prefix(prefix).and_then(|n| by_name.get(n)) {
            Some(mask) => {
                let values = t.masked_select(mask);
                let shape = Tensor::from_slice(&t.size());
                out.push((format!("{key}{MASK_SUFFIX}"), pack_bits(mask)));
                out.push((format!("{key}{VALUES_SUFFIX}"), values));
                out.push((format!("{key}{SHAPE_SUFFIX}"), shape));
            }
            None => out.push((key.clone(), t.shallow_clone())),
        }
    }
    out
}

/// Replaces compactly stored tensors (see [`compact`]) by their dense form, in place. Returns the
/// masks found, named without `prefix` (empty for a dense checkpoint). Errors name the tensor whose
/// parts do not agree.
pub fn densify(tensors: &mut HashMap<String, Tensor>, prefix: &str) -> Result<Masks, String> {
    let names: Vec<String> =
        tensors.keys().filter_map(|k| k.strip_suffix(MASK_SUFFIX).map(str::to_string)).collect();
    let mut masks = Vec::new();
    for name in names {
        let shape = shape_of_compact(tensors, &name).ok_or_else(|| format!("{name}: no {SHAPE_SUFFIX}"))?;
        let bits = tensors.remove(&format!("{name}{MASK_SUFFIX}")).expect("listed");
        let values = tensors
            .remove(&format!("{name}{VALUES_SUFFIX}"))
            .ok_or_else(|| format!("{name}: no {VALUES_SUFFIX}"))?;
        tensors.remove(&format!("{name}{SHAPE_SUFFIX}"));
        let mask = unpack_bits(&bits, &shape);
        let kept = mask.sum(Kind::Int64).int64_value(&[]);
        if kept != values.numel() as i64 {
            return Err(format!(
                "{name}: the mask keeps {kept} weights but {} values are stored",
                values.numel()
            ));
        }
        let dense = Tensor::zeros(&shape, (values.kind(), values.device())).masked_scatter(&mask, &values);
        tensors.insert(name.clone(), dense);
        let param = name.strip_prefix(prefix).unwrap_or(&name).to_string();
        masks.push((param, mask));
    }
    masks.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Masks { masks })
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
) -> Result<PruneSummary, TrainError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { path, source }
    };
    let loaded = LoadedModel::load(model_dir, tch::Device::Cpu, None)?;
    let mut params: Vec<(String, Tensor)> = loaded.vs.variables().into_iter().collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let masks = Masks::by_magnitude(&params, ratio, scheme).map_err(TrainError::Other)?;
    masks.apply(&loaded.vs.variables());
    std::fs::create_dir_all(out).map_err(io(out))?;
    for file in [CONFIG_FILE, VOCAB_FILE] {
        std::fs::copy(model_dir.join(file), out.join(file)).map_err(io(&out.join(file)))?;
    }
    let dense: Vec<(String, Tensor)> =
        params.iter().map(|(n, t)| (format!("model.{n}"), t.detach())).collect();
    let meta = HashMap::from([
        ("pruned_from".to_string(), model_dir.display().to_string()),
        ("prune_ratio".to_string(), ratio.to_string()),
        ("prune_scheme".to_string(), format!("{scheme:?}")),
    ]);
    let weights = out.join(BEST_FILE);
    checkpoint::save(&weights, &compact(&dense, &masks, "model."), meta)?;
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
        let stored = compact(&dense, &masks, "model.");
        let bytes = |ts: &[(String, Tensor)]| {
            ts.iter().map(|(_, t)| t.numel() * t.kind().elt_size_in_bytes()).sum::<usize>()
        };
        assert!(bytes(&stored) * 100 < bytes(&dense) * 35, "{} vs {}", bytes(&stored), bytes(&dense));
        let mut loaded: HashMap<String, Tensor> = stored.into_iter().collect();
        let found = densify(&mut loaded, "model.").unwrap();
        assert_eq!(found.masks.len(), 3);
        for (n, t) in &dense {
            assert!(loaded[n].equal(t), "{n} differs after the round trip");
        }
    }
}
