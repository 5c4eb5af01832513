//! Building blocks shared by the models: sinusoidal positions, multi-head attention, feed-forward.

use seqkd_runtime::format::{Activation, PositionLayout};
use seqkd_runtime::kernels::sinusoid_halves;
use tch::nn;
use tch::{Kind, Tensor};

/// "Attention Is All You Need" §3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...).
/// Rows `start .. start + len` of the table, `[len, d_model]`, sin and cos interleaved or in halves
/// (see [`PositionLayout`]). The halves table is computed in f64 and rounded once, as
/// `transformers`' MarianMT computes it (numpy f64), so imported models see its positions.
pub fn sinusoidal_positions(
    start: i64,
    len: i64,
    d_model: i64,
    layout: PositionLayout,
    device: tch::Device,
) -> Tensor {
    if layout == PositionLayout::Halves {
        // The native engine's function, so both engines see the same table.
        let d = d_model as usize;
        let mut table = vec![0f32; len as usize * d];
        for (p, row) in table.chunks_mut(d).enumerate() {
            sinusoid_halves(start as usize + p, row);
        }
        return Tensor::from_slice(&table).view([len, d_model]).to(device);
    }
    let pos = Tensor::arange_start(start, start + len, (Kind::Float, device)).unsqueeze(1); // [len, 1]
    let i = Tensor::arange_start_step(0, d_model, 2, (Kind::Float, device)); // [d/2]
    let freq = (i * (-(10000f64.ln()) / d_model as f64)).exp(); // 1 / 10000^(2i/d)
    let angles = pos * freq.unsqueeze(0); // [len, d/2]
                                          // Interleave sin and cos: [len, d/2, 2] → [len, d].
    Tensor::stack(&[angles.sin(), angles.cos()], 2).view([len, d_model])
}

/// Multi-head attention with separate query/key/value projections (so cross-attention can project
/// the encoder memory once per sentence and cache it).
#[derive(Debug)]
pub struct MultiHeadAttention {
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    out_proj: nn::Linear,
    n_heads: i64,
    d_head: i64,
    dropout: f64,
}

impl MultiHeadAttention {
    pub fn new(p: &nn::Path, d_model: i64, n_heads: i64, dropout: f64) -> Self {
        assert_eq!(d_model % n_heads, 0, "d_model must be divisible by n_heads");
        let lin = |name: &str| nn::linear(p / name, d_model, d_model, Default::default());
        Self {
            q_proj: lin("q_proj"),
            k_proj: lin("k_proj"),
            v_proj: lin("v_proj"),
            out_proj: lin("out_proj"),
            n_heads,
            d_head: d_model / n_heads,
            dropout,
        }
    }

    /// `[batch, len, d_model]` → `[batch, heads, len, d_head]`.
    fn split_heads(&self, x: &Tensor) -> Tensor {
        let (b, len, _) = x.size3().unwrap();
        x.view([b, len, self.n_heads, self.d_head]).transpose(1, 2)
    }

    /// Keys and values of `memory` `[batch, len, d]`, split into heads (cacheable).
    pub fn project_kv(&self, memory: &Tensor) -> (Tensor, Tensor) {
        (self.split_heads(&memory.apply(&self.k_proj)), self.split_heads(&memory.apply(&self.v_proj)))
    }

    /// Attention of `x` `[batch, q_len, d]` over heads-split keys/values `[batch, heads, k_len, d_head]`.
    /// `mask`: bool, broadcastable to `[batch, heads, q_len, k_len]`, true where attending is allowed.
    pub fn attend(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        causal: bool,
        train: bool,
    ) -> Tensor {
        let (b, q_len, _) = x.size3().unwrap();
        let q = self.split_heads(&x.apply(&self.q_proj));
        let dropout = if train { self.dropout } else { 0.0 };
        // libtorch's fused scaled dot-product attention: softmax(QKᵀ/√d_head)·V in one kernel.
        let ctx = Tensor::scaled_dot_product_attention(&q, k, v, mask, dropout, causal, None, false);
        ctx.transpose(1, 2).contiguous().view([b, q_len, self.n_heads * self.d_head]).apply(&self.out_proj)
    }
}

/// Position-wise feed-forward: Linear → activation (ReLU, GELU or swish) → dropout → Linear.
#[derive(Debug)]
pub struct FeedForward {
    fc1: nn::Linear,
    fc2: nn::Linear,
    activation: Activation,
    dropout: f64,
}

impl FeedForward {
    pub fn new(p: &nn::Path, d_model: i64, d_ff: i64, activation: Activation, dropout: f64) -> Self {
        Self {
            fc1: nn::linear(p / "fc1", d_model, d_ff, Default::default()),
            fc2: nn::linear(p / "fc2", d_ff, d_model, Default::default()),
            activation,
            dropout,
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = x.apply(&self.fc1);
        let h = match self.activation {
            Activation::Relu => h.relu(),
            Activation::Gelu => h.gelu("none"),
            Activation::Swish => h.silu(),
        };
        h.dropout(self.dropout, train).apply(&self.fc2)
    }
}

/// Layer normalisation over the last dimension.
pub fn layer_norm(p: &nn::Path, d_model: i64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![d_model], Default::default())
}
