//! seqkd-nmt: the tensor side of seqkd, on libtorch through tch.
//!
//! Data flow: [`batch`] turns subword ids into padded tensors; [`model`] holds the encoder-decoder
//! networks behind one narrow [`model::Seq2Seq`] seam; [`loss`] is label-smoothed cross-entropy;
//! [`train`] runs the optimisation loop with atomic, resumable checkpoints; [`decode`] does batched
//! greedy and beam search over any `Seq2Seq`; [`distill`] holds the paper's three ways for a teacher
//! to teach a student (Word-KD, Seq-KD, Seq-Inter).

pub mod batch;
pub mod config;
pub mod decode;
pub mod distill;
pub mod evaluate;
pub mod loss;
pub mod model;
pub mod pipeline;
pub mod prune;
pub mod report;
pub mod train;

pub use tch::Device;

/// Parses `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(name: &str) -> Result<Device, String> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => name
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Device::Cuda)
            .ok_or_else(|| format!("unknown device '{name}': expected cpu, cuda or cuda:N")),
    }
}
