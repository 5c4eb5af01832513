//! Compact storage of pruned weights in safetensors. A pruned matrix `<name>` is stored as
//! `<name>.__mask` (one bit per weight, u8-packed, little-endian bit order), `<name>.__values`
//! (the kept weights, f32, in order) and `<name>.__shape` (its dense shape, i64), so a model
//! directory's size falls with the pruning ratio. Loading restores the dense tensors and hands
//! back the keep-masks (true = kept), which retraining under the mask holds at zero. The runtime
//! reads the same layout (`seqkd_runtime::format`).

use std::collections::HashMap;

use tch::{Kind, Tensor};

use seqkd_runtime::format::{MASK_SUFFIX, SHAPE_SUFFIX, VALUES_SUFFIX};

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

/// The checkpoint tensors of a pruned model, compact: each parameter with a keep-mask in `masks`
/// (named without `prefix`) becomes `<name>.__mask`, `<name>.__values` and `<name>.__shape`; the
/// others are stored as they are.
pub fn compact(
    tensors: &[(String, Tensor)],
    masks: &[(String, Tensor)],
    prefix: &str,
) -> Vec<(String, Tensor)> {
    let by_name: HashMap<&str, &Tensor> = masks.iter().map(|(n, m)| (n.as_str(), m)).collect();
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
/// keep-masks found, named without `prefix`, sorted (empty for a dense checkpoint). Errors name the
/// tensor whose parts do not agree.
pub fn densify(tensors: &mut HashMap<String, Tensor>, prefix: &str) -> Result<Vec<(String, Tensor)>, String> {
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
    Ok(masks)
}
