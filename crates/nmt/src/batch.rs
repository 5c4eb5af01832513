//! Padded tensors from subword ids: the shapes every model and the decoder agree on.
//!
//! Source: `x1 .. xn </s>`; decoder input: `<s> y1 .. ym`; decoder output (the labels): `y1 .. ym </s>`.
//! Padding is id 0 everywhere ([`seqkd_text::vocab::SPECIAL_IDS`]).

use seqkd_text::vocab::SPECIAL_IDS;
use tch::{Device, Tensor};

/// One training batch.
#[derive(Debug)]
pub struct Batch {
    /// `[batch, src_len]`, i64.
    pub src: Tensor,
    /// `[batch, tgt_len]`: `<s> y1 .. ym`, padded.
    pub tgt_in: Tensor,
    /// `[batch, tgt_len]`: `y1 .. ym </s>`, padded.
    pub tgt_out: Tensor,
    /// Non-pad labels in `tgt_out` (what the loss is normalised by).
    pub n_tgt_tokens: i64,
}

/// Right-pads sequences into a `[len(seqs), max_len]` i64 tensor.
pub fn pad(seqs: &[Vec<i64>], device: Device) -> Tensor {
    let width = seqs.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut flat = vec![SPECIAL_IDS.pad as i64; seqs.len() * width];
    for (row, seq) in seqs.iter().enumerate() {
        flat[row * width..row * width + seq.len()].copy_from_slice(seq);
    }
    Tensor::from_slice(&flat).view([seqs.len() as i64, width as i64]).to(device)
}

/// Source rows `x1 .. xn </s>`.
pub fn source_tensor(srcs: &[&[u32]], device: Device) -> Tensor {
    let rows: Vec<Vec<i64>> = srcs
        .iter()
        .map(|s| s.iter().map(|&id| id as i64).chain([SPECIAL_IDS.eos as i64]).collect())
        .collect();
    pad(&rows, device)
}

impl Batch {
    pub fn new(pairs: &[(&[u32], &[u32])], device: Device) -> Self {
        let srcs: Vec<&[u32]> = pairs.iter().map(|p| p.0).collect();
        let ids = |t: &[u32]| t.iter().map(|&id| id as i64).collect::<Vec<_>>();
        let tgt_in: Vec<Vec<i64>> =
            pairs.iter().map(|(_, t)| [SPECIAL_IDS.bos as i64].into_iter().chain(ids(t)).collect()).collect();
        let tgt_out: Vec<Vec<i64>> =
            pairs.iter().map(|(_, t)| ids(t).into_iter().chain([SPECIAL_IDS.eos as i64]).collect()).collect();
        let n_tgt_tokens = tgt_out.iter().map(|t| t.len() as i64).sum();
        Self {
            src: source_tensor(&srcs, device),
            tgt_in: pad(&tgt_in, device),
            tgt_out: pad(&tgt_out, device),
            n_tgt_tokens,
        }
    }

    /// `[batch, src_len]` bool: true at real (non-pad) source positions.
    pub fn src_mask(src: &Tensor) -> Tensor {
        src.ne(SPECIAL_IDS.pad as i64)
    }
}
