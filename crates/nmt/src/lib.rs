//! seqkd-nmt: the tensor side of seqkd, on libtorch through tch.
//!
//! Data flow, bottom up (each layer imports only the ones below it; `tests/architecture.rs`
//! checks that no module imports, directly or not, one that imports it):
//!
//! - plain data: [`batch`] turns subword ids into padded tensors, [`loss`] is label-smoothed
//!   cross-entropy, [`model`] holds the encoder-decoder networks behind one narrow
//!   [`model::Seq2Seq`] seam, [`config`] the training settings, [`table1`] the paper's rows;
//! - storage: [`checkpoint`] (atomic safetensors), [`model_dir`] (a model directory, compact
//!   pruned weights), [`import`] (teachers from other toolkits), [`error`] (the crate's error type);
//! - [`decode`]: batched greedy and beam search over any `Seq2Seq`;
//! - [`train`]: the optimisation loop, with two seams, an objective and a weight constraint;
//! - the paper's methods on those seams: [`distill`] (Word-KD, Seq-KD, Seq-Inter), [`prune`];
//!   [`student`] plugs them into the trainer;
//! - [`evaluate`], [`report`] (Tables 1–3 from a results value) and [`pipeline`] (the experiment
//!   as a list of resumable stages).

pub mod batch;
pub mod chart;
pub mod config;
pub mod loss;
pub mod model;
pub mod table1;

pub mod checkpoint;
pub mod error;
pub mod import;
pub mod model_dir;

pub mod decode;
pub mod train;

pub mod distill;
pub mod prune;
pub mod student;

pub mod evaluate;
pub mod pipeline;

pub mod bench;
pub mod report;

pub use config::parse_device;
pub use error::{Error, Result};

pub use tch::Device;
