//! The model directory format: what `seqkd train` writes and both decoding engines read.
//!
//! A model directory holds `config.toml` (the resolved training configuration; decoding needs its
//! `[model]` and `[decode]` tables), `vocab.json` (the joint subword vocabulary) and
//! `model.safetensors` (f32 weights named `model.<parameter>`). A pruned model stores each pruned
//! matrix compactly as `<name>.__mask` (packed bits, LSB first, row-major), `<name>.__values` (the
//! kept weights in row-major order) and `<name>.__shape` (i64). These types live here, in the crate
//! without libtorch, so that the format has one definition; `seqkd-nmt` re-exports them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

pub const CONFIG_FILE: &str = "config.toml";
pub const VOCAB_FILE: &str = "vocab.json";
pub const BEST_FILE: &str = "model.safetensors";
/// Prefix of every model parameter's name in a weights file.
pub const PARAM_PREFIX: &str = "model.";
pub const MASK_SUFFIX: &str = ".__mask";
pub const VALUES_SUFFIX: &str = ".__values";
pub const SHAPE_SUFFIX: &str = ".__shape";
/// An int8 model (`seqkd quantize`) stores a matrix as `<name>.__int8` (i8 `[out, in]`) and
/// `<name>.__scale` (f32 `[out]`, one scale per output channel): `w ≈ scale·int8`.
pub const INT8_SUFFIX: &str = ".__int8";
pub const SCALE_SUFFIX: &str = ".__scale";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformerConfig {
    /// Width of every layer's input and output.
    pub d_model: i64,
    pub n_heads: i64,
    /// Inner width of the feed-forward sub-layers.
    pub d_ff: i64,
    pub encoder_layers: i64,
    pub decoder_layers: i64,
    pub dropout: f64,
    /// Dropout on the attention weights; absent: `dropout` (fairseq's `--attention-dropout`, which
    /// its Transformer recipes leave at 0). With attention dropout libtorch's CPU attention cannot
    /// use its fused kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention_dropout: Option<f64>,
    /// One matrix for source embeddings, target embeddings and the output layer (the vocabulary is joint).
    pub tied_embeddings: bool,
    /// Without `tied_embeddings`: the output layer is the target embedding matrix (no bias of its
    /// own), and only the source embedding is separate (Marian with separate vocabularies).
    #[serde(skip_serializing_if = "is_false")]
    pub tied_output: bool,
    /// A learned bias on the output logits when the output layer is a tied matrix (Marian's
    /// `final_logits_bias`); an untied output layer always has its bias.
    #[serde(skip_serializing_if = "is_false")]
    pub output_bias: bool,
    /// Source vocabulary size when the source has ids of its own (separate vocabularies);
    /// absent: the vocabulary is shared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_vocab_size: Option<i64>,
    /// Pre-norm sub-layers `x + f(LN(x))` with a final LayerNorm per stack (seqkd's default), or
    /// post-norm `LN(x + f(x))` and no final LayerNorm (the original Transformer, Marian, OPUS-MT).
    #[serde(skip_serializing_if = "is_true")]
    pub normalize_before: bool,
    /// The feed-forward non-linearity.
    #[serde(skip_serializing_if = "Activation::is_relu")]
    pub activation: Activation,
    /// Token embeddings are multiplied by √d_model (Vaswani et al.; Marian's `scale_embedding`).
    #[serde(skip_serializing_if = "is_true")]
    pub embed_scale: bool,
    /// How sin and cos share the sinusoidal position vector.
    #[serde(skip_serializing_if = "PositionLayout::is_interleaved")]
    pub positions: PositionLayout,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

/// The feed-forward sub-layer's non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    /// Exact GELU, `x·Φ(x)` (the erf form, as PyTorch's default and `transformers`' `gelu`).
    Gelu,
    /// `x·σ(x)` (SiLU; Marian's and OPUS-MT's `swish`).
    Swish,
}

impl Activation {
    fn is_relu(&self) -> bool {
        *self == Activation::Relu
    }
}

/// Sinusoidal positions: PE(p, 2i) = sin(p·ω_i) and PE(p, 2i+1) = cos(p·ω_i), ω_i = 10000^(-2i/d),
/// either interleaved in that order (Vaswani et al., seqkd's own models) or as `[sin(p·ω) | cos(p·ω)]`
/// halves (fairseq, Marian, `transformers`' MarianMT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionLayout {
    #[default]
    Interleaved,
    Halves,
}

impl PositionLayout {
    fn is_interleaved(&self) -> bool {
        *self == PositionLayout::Interleaved
    }
}

impl TransformerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.d_model <= 0 || self.n_heads <= 0 || self.d_model % self.n_heads != 0 {
            return Err(format!(
                "d_model ({}) must be a positive multiple of n_heads ({})",
                self.d_model, self.n_heads
            ));
        }
        if self.encoder_layers <= 0 || self.decoder_layers <= 0 || self.d_ff <= 0 {
            return Err("encoder_layers, decoder_layers and d_ff must be >= 1".into());
        }
        if self.d_model % 2 != 0 {
            return Err(format!("d_model ({}) must be even (sinusoidal positions)", self.d_model));
        }
        if self.tied_embeddings && self.src_vocab_size.is_some() {
            return Err("tied_embeddings needs one vocabulary: drop src_vocab_size or untie".into());
        }
        if let Some(n) = self.src_vocab_size.filter(|&n| n < 4) {
            return Err(format!("src_vocab_size ({n}) must be >= 4"));
        }
        for (name, p) in [("dropout", Some(self.dropout)), ("attention_dropout", self.attention_dropout)] {
            if let Some(p) = p.filter(|p| !(0.0..1.0).contains(p)) {
                return Err(format!("{name} ({p}) must be in [0, 1)"));
            }
        }
        Ok(())
    }
}

impl Default for TransformerConfig {
    /// The 3+3-layer d256 model that JoeyNMT's Multi30k recipe uses, sized for CPU training.
    fn default() -> Self {
        Self {
            d_model: 256,
            n_heads: 4,
            d_ff: 1024,
            encoder_layers: 3,
            decoder_layers: 3,
            dropout: 0.1,
            attention_dropout: None,
            tied_embeddings: true,
            tied_output: false,
            output_bias: false,
            src_vocab_size: None,
            normalize_before: true,
            activation: Activation::Relu,
            embed_scale: true,
            positions: PositionLayout::Interleaved,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LstmConfig {
    /// Width of the source and target word embeddings.
    pub embed_dim: i64,
    /// Width of every LSTM layer, of the attention and of `h̃`.
    pub hidden: i64,
    /// Stacked LSTM layers, the same number in encoder and decoder.
    pub layers: i64,
    pub dropout: f64,
    /// The output layer's matrix is the target embedding matrix (needs `embed_dim == hidden`).
    /// The source embedding is always separate.
    pub tied_embeddings: bool,
    /// A bidirectional encoder (OpenNMT's `brnn`): each layer runs forward and backward with
    /// `hidden / 2` units each, and its outputs and final states are the two concatenated, so the
    /// attention and the decoder still see `hidden` (needs an even `hidden`). Off in the paper.
    pub bidirectional: bool,
    /// A learned bridge from the encoder's final state to the decoder's initial state, per layer:
    /// `h_0 = tanh(W_h h_enc + b_h)`, `c_0 = W_c c_enc + b_c`. Off in the paper (the decoder starts
    /// from the encoder's final `(h, c)` as it is).
    pub bridge: bool,
}

impl Default for LstmConfig {
    /// A small 2×256 model, sized for CPU training.
    fn default() -> Self {
        Self {
            embed_dim: 256,
            hidden: 256,
            layers: 2,
            dropout: 0.2,
            tied_embeddings: true,
            bidirectional: false,
            bridge: false,
        }
    }
}

impl LstmConfig {
    /// Kim & Rush (2016)'s teacher, Luong et al. (2015)'s model: 4 layers × 1000 units, 1000-wide
    /// embeddings, dropout 0.3 (seq2seq-attn's default), untied output layer.
    pub fn kim_rush_teacher() -> Self {
        Self {
            embed_dim: 1000,
            hidden: 1000,
            layers: 4,
            dropout: 0.3,
            tied_embeddings: false,
            ..Self::default()
        }
    }

    /// Kim & Rush (2016)'s main student: 2 layers × 500 units, 500-wide embeddings, dropout 0.3,
    /// untied output layer.
    pub fn kim_rush_student() -> Self {
        Self {
            embed_dim: 500,
            hidden: 500,
            layers: 2,
            dropout: 0.3,
            tied_embeddings: false,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.embed_dim < 1 || self.hidden < 1 || self.layers < 1 {
            return Err(format!(
                "lstm: embed_dim ({}), hidden ({}) and layers ({}) must be positive",
                self.embed_dim, self.hidden, self.layers
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("lstm: dropout must be in [0, 1), got {}", self.dropout));
        }
        if self.tied_embeddings && self.embed_dim != self.hidden {
            return Err(format!(
                "lstm: tied_embeddings needs embed_dim == hidden (the output layer reads h̃), \
                 got embed_dim {} and hidden {}",
                self.embed_dim, self.hidden
            ));
        }
        if self.bidirectional && self.hidden % 2 != 0 {
            return Err(format!(
                "lstm: a bidirectional encoder splits hidden between its two directions, so hidden \
                 must be even, got {}",
                self.hidden
            ));
        }
        Ok(())
    }
}

/// Which network, with its sizes. Stored in the model directory's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "lowercase", deny_unknown_fields)]
pub enum ModelConfig {
    Transformer(TransformerConfig),
    Lstm(LstmConfig),
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Transformer(TransformerConfig::default())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeConfig {
    /// 1 = greedy.
    pub beam_size: usize,
    /// Hypothesis scores are divided by length^length_penalty (0 = raw log-probability, 1 = per-token average).
    pub length_penalty: f64,
    /// A translation may be at most `max_len_a * src_len + max_len_b` tokens long.
    pub max_len_a: f64,
    pub max_len_b: usize,
    /// Padded source tokens per decoding batch.
    pub batch_tokens: usize,
    /// At most this many sentences per decoding batch (0 = no limit; 1 = one sentence at a time).
    pub max_sentences: usize,
    /// Beam search stops a sentence as `transformers`' `generate` does (with `early_stopping =
    /// false`): once no live beam can still beat the worst of K finished ones, scoring finished
    /// hypotheses by their length including `</s>`. Set for imported Marian models, so that seqkd's
    /// beam output equals theirs; seqkd's own rule otherwise (see `search::BeamSearch`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hf_stopping: bool,
}

impl DecodeConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.beam_size == 0 || self.batch_tokens == 0 {
            return Err(format!(
                "decode.beam_size ({}) and decode.batch_tokens ({}) must be >= 1",
                self.beam_size, self.batch_tokens
            ));
        }
        if !(self.max_len_a.is_finite() && self.max_len_a >= 0.0 && self.length_penalty.is_finite()) {
            return Err("decode.max_len_a must be finite and >= 0, decode.length_penalty finite".into());
        }
        Ok(())
    }
}

impl Default for DecodeConfig {
    fn default() -> Self {
        Self {
            beam_size: 5,
            length_penalty: 1.0,
            max_len_a: 1.5,
            max_len_b: 10,
            batch_tokens: 2048,
            max_sentences: 0,
            hf_stopping: false,
        }
    }
}

/// One output sequence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hypothesis {
    /// Subword ids, without `<s>`/`</s>`.
    pub tokens: Vec<u32>,
    /// Log-probability of each emitted token, the final `</s>` included when it was emitted.
    pub token_logprobs: Vec<f32>,
    /// Sum of `token_logprobs`.
    pub score: f32,
    /// `score / len^length_penalty`, what beam search ranks by.
    pub normalized_score: f32,
}

impl Hypothesis {
    pub fn normalize(&mut self, length_penalty: f64) {
        let len = self.token_logprobs.len().max(1) as f64;
        self.normalized_score = (self.score as f64 / len.powf(length_penalty)) as f32;
    }
}

/// Maximum output length for a source of `src_len` subwords.
pub fn max_output_len(cfg: &DecodeConfig, src_len: usize) -> usize {
    (cfg.max_len_a * src_len as f64).ceil() as usize + cfg.max_len_b
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {reason}", .path.display())]
    Invalid { path: PathBuf, reason: String },
}

/// The parts of a model directory's `config.toml` that decoding needs; other tables are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelDirConfig {
    pub model: ModelConfig,
    #[serde(default)]
    pub decode: DecodeConfig,
}

impl ModelDirConfig {
    pub fn load(path: &Path) -> Result<Self, FormatError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| FormatError::Io { path: path.into(), source })?;
        // Only `[model]` and `[decode]`: the training tables may name files that do not exist here.
        let mut table: toml::Table = toml::from_str(&text)
            .map_err(|e| FormatError::Invalid { path: path.into(), reason: e.to_string() })?;
        table.retain(|k, _| k == "model" || k == "decode");
        let cfg: Self = table.try_into().map_err(|e: toml::de::Error| FormatError::Invalid {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let model = match &cfg.model {
            ModelConfig::Transformer(m) => m.validate(),
            ModelConfig::Lstm(m) => m.validate(),
        };
        model
            .map_err(|e| format!("model: {e}"))
            .and_then(|()| cfg.decode.validate())
            .map_err(|reason| FormatError::Invalid { path: path.into(), reason })?;
        Ok(cfg)
    }
}

/// A dense f32 tensor: row-major data and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A parameter as stored: f32, or an int8 matrix with per-row scales.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    F32(DenseTensor),
    Int8 { rows: usize, cols: usize, q: Vec<i8>, scales: Vec<f32> },
}

/// Reads a weights file into parameters by name (without [`PARAM_PREFIX`]), restoring compactly
/// stored pruned matrices to their dense form.
pub fn load_weights(path: &Path) -> Result<HashMap<String, Param>, FormatError> {
    let invalid = |reason: String| FormatError::Invalid { path: path.into(), reason };
    let bytes = std::fs::read(path).map_err(|source| FormatError::Io { path: path.into(), source })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| invalid(format!("not a safetensors file: {e}")))?;
    let mut dense = HashMap::new();
    let mut compact: HashMap<String, [Option<safetensors::tensor::TensorView>; 3]> = HashMap::new();
    let mut int8: HashMap<String, [Option<safetensors::tensor::TensorView>; 2]> = HashMap::new();
    for (key, view) in st.tensors() {
        let Some(name) = key.strip_prefix(PARAM_PREFIX) else { continue };
        if let Some(base) = name.strip_suffix(INT8_SUFFIX) {
            int8.entry(base.to_string()).or_default()[0] = Some(view);
            continue;
        }
        if let Some(base) = name.strip_suffix(SCALE_SUFFIX) {
            int8.entry(base.to_string()).or_default()[1] = Some(view);
            continue;
        }
        let part = [MASK_SUFFIX, VALUES_SUFFIX, SHAPE_SUFFIX].iter().position(|s| name.ends_with(s));
        match part {
            Some(i) => {
                let base = &name[..name.len() - [MASK_SUFFIX, VALUES_SUFFIX, SHAPE_SUFFIX][i].len()];
                compact.entry(base.to_string()).or_default()[i] = Some(view);
            }
            None => {
                let data = f32_data(&view).map_err(|r| invalid(format!("{key}: {r}")))?;
                dense
                    .insert(name.to_string(), Param::F32(DenseTensor { shape: view.shape().to_vec(), data }));
            }
        }
    }
    for (name, [mask, values, shape]) in compact {
        let missing = |what: &str| invalid(format!("{PARAM_PREFIX}{name}: pruned weights without {what}"));
        let (mask, values, shape) = (
            mask.ok_or_else(|| missing(MASK_SUFFIX))?,
            values.ok_or_else(|| missing(VALUES_SUFFIX))?,
            shape.ok_or_else(|| missing(SHAPE_SUFFIX))?,
        );
        if shape.dtype() != Dtype::I64 || mask.dtype() != Dtype::U8 {
            return Err(invalid(format!(
                "{PARAM_PREFIX}{name}: pruned weights with a mask or shape of the wrong type"
            )));
        }
        let shape: Vec<usize> = shape
            .data()
            .chunks_exact(8)
            .map(|b| usize::try_from(i64::from_le_bytes(b.try_into().expect("8 bytes"))))
            .collect::<Result<_, _>>()
            .map_err(|_| invalid(format!("{PARAM_PREFIX}{name}: negative dimension in {SHAPE_SUFFIX}")))?;
        let values = f32_data(&values).map_err(|r| invalid(format!("{PARAM_PREFIX}{name}: {r}")))?;
        let numel = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| invalid(format!("{PARAM_PREFIX}{name}: {SHAPE_SUFFIX} {shape:?} is too large")))?;
        let bits = mask.data();
        if bits.len() * 8 < numel {
            return Err(invalid(format!(
                "{PARAM_PREFIX}{name}: the mask has {} bits for {numel} weights",
                bits.len() * 8
            )));
        }
        let mut data = vec![0f32; numel];
        let mut next = values.iter();
        for (i, w) in data.iter_mut().enumerate() {
            if (bits[i / 8] >> (i % 8)) & 1 == 1 {
                *w = *next.next().ok_or_else(|| {
                    invalid(format!(
                        "{PARAM_PREFIX}{name}: the mask keeps more weights than the {} stored",
                        values.len()
                    ))
                })?;
            }
        }
        if next.next().is_some() {
            return Err(invalid(format!("{PARAM_PREFIX}{name}: more values stored than the mask keeps")));
        }
        dense.insert(name, Param::F32(DenseTensor { shape, data }));
    }
    for (name, [q, scales]) in int8 {
        let bad = |what: &str| invalid(format!("{PARAM_PREFIX}{name}: int8 weights {what}"));
        let (q, scales) =
            (q.ok_or_else(|| bad("without their values"))?, scales.ok_or_else(|| bad("without scales"))?);
        let (&[rows, cols], Dtype::I8, Dtype::F32) = (q.shape(), q.dtype(), scales.dtype()) else {
            return Err(bad("that are not an i8 matrix with f32 scales"));
        };
        let scales = f32_data(&scales).map_err(|r| bad(&r))?;
        if scales.len() != rows {
            return Err(bad(&format!("with {} scales for {rows} rows", scales.len())));
        }
        let q = q.data().iter().map(|&b| b as i8).collect();
        dense.insert(name, Param::Int8 { rows, cols, q, scales });
    }
    Ok(dense)
}

/// Named tensors as raw little-endian bytes, for [`write_safetensors`].
pub type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

/// Writes `tensors` and `metadata` to `path` as one safetensors file, atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &[RawTensor],
    metadata: HashMap<String, String>,
) -> Result<(), FormatError> {
    let invalid = |reason: String| FormatError::Invalid { path: path.into(), reason };
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| invalid(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| invalid(e.to_string()))?;
    seqkd_text::atomic_write(path, &bytes).map_err(|source| FormatError::Io { path: path.into(), source })
}

fn f32_data(view: &safetensors::tensor::TensorView) -> Result<Vec<f32>, String> {
    if view.dtype() != Dtype::F32 {
        return Err(format!("expected f32 weights, found {:?}", view.dtype()));
    }
    Ok(view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_dropout_defaults_to_dropout_and_is_range_checked() {
        let old: TransformerConfig = toml::from_str("dropout = 0.3").unwrap();
        assert_eq!(old.attention_dropout, None, "configs written before the option still load");
        assert!(
            !toml::to_string(&old).unwrap().contains("attention_dropout"),
            "and are written back unchanged"
        );
        let new: TransformerConfig = toml::from_str("dropout = 0.3\nattention_dropout = 0.0").unwrap();
        assert_eq!(new.attention_dropout, Some(0.0));
        assert!(new.validate().is_ok());
        let bad = TransformerConfig { attention_dropout: Some(1.0), ..new };
        assert!(bad.validate().unwrap_err().contains("attention_dropout"));
        assert!(TransformerConfig { dropout: -0.1, ..old }.validate().is_err());
    }
}
