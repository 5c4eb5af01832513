//! The Transformer encoder-decoder (Vaswani et al. 2017), pre-norm by default (Wang et al. 2019):
//! each sub-layer is `x + dropout(sublayer(LayerNorm(x)))`, with a final LayerNorm on each stack,
//! which trains stably without a long warmup; post-norm `LayerNorm(x + dropout(sublayer(x)))`
//! (`normalize_before = false`) as the original and Marian's. Sinusoidal positions; with the joint
//! vocabulary the source embedding, target embedding and output projection can be one matrix
//! (`tied_embeddings`). Students may use a shallower decoder than encoder. The options an imported
//! OPUS-MT teacher needs (activation, embedding scale, position layout, output bias, separate
//! vocabularies) are [`TransformerConfig`]'s.

// Residuals are written `x = x + f(x)`, not `x += f(x)`: on tch tensors `+=` is an in-place add,
// which would overwrite a value autograd saved for the backward pass.
#![allow(clippy::assign_op_pattern)]

use seqkd_runtime::format::TransformerConfig;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::layers::{layer_norm, sinusoidal_positions, FeedForward, MultiHeadAttention};
use super::{DecoderState, Rows, Seq2Seq};
use crate::batch::Batch;

#[derive(Debug)]
struct EncoderLayer {
    self_attn_norm: nn::LayerNorm,
    self_attn: MultiHeadAttention,
    ffn_norm: nn::LayerNorm,
    ffn: FeedForward,
}

#[derive(Debug)]
struct DecoderLayer {
    self_attn_norm: nn::LayerNorm,
    self_attn: MultiHeadAttention,
    cross_attn_norm: nn::LayerNorm,
    cross_attn: MultiHeadAttention,
    ffn_norm: nn::LayerNorm,
    ffn: FeedForward,
}

#[derive(Debug)]
pub struct Transformer {
    src_embed: nn::Embedding,
    /// `None` when tied to `src_embed`.
    tgt_embed: Option<nn::Embedding>,
    /// `None` when tied: the output layer is the target embedding matrix, transposed.
    out_proj: Option<nn::Linear>,
    /// The tied output layer's bias (`output_bias`).
    out_bias: Option<Tensor>,
    encoder: Vec<EncoderLayer>,
    /// Pre-norm only.
    encoder_norm: Option<nn::LayerNorm>,
    decoder: Vec<DecoderLayer>,
    decoder_norm: Option<nn::LayerNorm>,
    /// Rows `0 .. POSITION_CACHE` of the position table, computed once: a decoding step would
    /// otherwise rebuild its row with half a dozen small tensor ops.
    positions: Tensor,
    cfg: TransformerConfig,
}

/// Positions kept in [`Transformer::positions`]; longer sequences compute the rest as they go.
const POSITION_CACHE: i64 = 1024;

impl Transformer {
    pub fn new(p: &nn::Path, cfg: &TransformerConfig, vocab_size: i64) -> Self {
        let d = cfg.d_model;
        // Embeddings scaled by √d at use, so they start with unit-variance rows of size 1/√d.
        let emb_cfg = nn::EmbeddingConfig {
            ws_init: nn::Init::Randn { mean: 0., stdev: (d as f64).powf(-0.5) },
            ..Default::default()
        };
        let src_vocab = cfg.src_vocab_size.unwrap_or(vocab_size);
        let src_embed = nn::embedding(p / "src_embed", src_vocab, d, emb_cfg);
        let (tgt_embed, out_proj) = if cfg.tied_embeddings {
            (None, None)
        } else {
            let out =
                (!cfg.tied_output).then(|| nn::linear(p / "out_proj", d, vocab_size, Default::default()));
            (Some(nn::embedding(p / "tgt_embed", vocab_size, d, emb_cfg)), out)
        };
        let out_bias = (out_proj.is_none() && cfg.output_bias)
            .then(|| p.var("out_bias", &[vocab_size], nn::Init::Const(0.0)));
        let (act, pre) = (cfg.activation, cfg.normalize_before);
        let attn_drop = cfg.attention_dropout.unwrap_or(cfg.dropout);
        let encoder = (0..cfg.encoder_layers)
            .map(|i| {
                let p = p / "encoder" / i;
                EncoderLayer {
                    self_attn_norm: layer_norm(&(&p / "self_attn_norm"), d),
                    self_attn: MultiHeadAttention::new(&(&p / "self_attn"), d, cfg.n_heads, attn_drop),
                    ffn_norm: layer_norm(&(&p / "ffn_norm"), d),
                    ffn: FeedForward::new(&(&p / "ffn"), d, cfg.d_ff, act, cfg.dropout),
                }
            })
            .collect();
        let decoder = (0..cfg.decoder_layers)
            .map(|i| {
                let p = p / "decoder" / i;
                DecoderLayer {
                    self_attn_norm: layer_norm(&(&p / "self_attn_norm"), d),
                    self_attn: MultiHeadAttention::new(&(&p / "self_attn"), d, cfg.n_heads, attn_drop),
                    cross_attn_norm: layer_norm(&(&p / "cross_attn_norm"), d),
                    cross_attn: MultiHeadAttention::new(&(&p / "cross_attn"), d, cfg.n_heads, attn_drop),
                    ffn_norm: layer_norm(&(&p / "ffn_norm"), d),
                    ffn: FeedForward::new(&(&p / "ffn"), d, cfg.d_ff, act, cfg.dropout),
                }
            })
            .collect();
        Self {
            src_embed,
            tgt_embed,
            out_proj,
            out_bias,
            encoder,
            encoder_norm: pre.then(|| layer_norm(&(p / "encoder_norm"), d)),
            decoder,
            decoder_norm: pre.then(|| layer_norm(&(p / "decoder_norm"), d)),
            positions: sinusoidal_positions(0, POSITION_CACHE, d, cfg.positions, p.device()),
            cfg: cfg.clone(),
        }
    }

    /// Token embeddings (× √d_model with `embed_scale`) plus positions `start ..`:
    /// `[batch, len]` → `[batch, len, d]`.
    fn embed(&self, table: &nn::Embedding, tokens: &Tensor, start: i64, train: bool) -> Tensor {
        let (_, len) = tokens.size2().unwrap();
        let d = self.cfg.d_model;
        let scale = if self.cfg.embed_scale { (d as f64).sqrt() } else { 1.0 };
        let pos = if start + len <= POSITION_CACHE {
            self.positions.narrow(0, start, len)
        } else {
            sinusoidal_positions(start, len, d, self.cfg.positions, tokens.device())
        };
        let x = tokens.apply(table) * scale + pos;
        x.dropout(self.cfg.dropout, train)
    }

    /// One residual sub-layer around `f`: `x + f(LN(x))` (pre-norm) or `LN(x + f(x))` (post-norm).
    fn sublayer(&self, x: &Tensor, norm: &nn::LayerNorm, f: impl FnOnce(&Tensor) -> Tensor) -> Tensor {
        if self.cfg.normalize_before {
            x + f(&norm.forward(x))
        } else {
            norm.forward(&(x + f(x)))
        }
    }

    fn final_norm(norm: &Option<nn::LayerNorm>, x: Tensor) -> Tensor {
        match norm {
            Some(n) => n.forward(&x),
            None => x,
        }
    }

    fn tgt_table(&self) -> &nn::Embedding {
        self.tgt_embed.as_ref().unwrap_or(&self.src_embed)
    }

    fn project_out(&self, y: &Tensor) -> Tensor {
        let logits = match &self.out_proj {
            Some(lin) => return y.apply(lin),
            None => y.matmul(&self.tgt_table().ws.tr()),
        };
        match &self.out_bias {
            Some(b) => logits + b,
            None => logits,
        }
    }

    /// Encoder: src `[batch, src_len]` → memory `[batch, src_len, d]`, key mask `[batch, 1, 1, src_len]`.
    fn encode_t(&self, src: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mask = Batch::src_mask(src).unsqueeze(1).unsqueeze(1);
        let drop = self.cfg.dropout;
        let mut x = self.embed(&self.src_embed, src, 0, train);
        for layer in &self.encoder {
            x = self.sublayer(&x, &layer.self_attn_norm, |h| {
                let (k, v) = layer.self_attn.project_kv(h);
                layer.self_attn.attend(h, &k, &v, Some(&mask), false, train).dropout(drop, train)
            });
            x = self.sublayer(&x, &layer.ffn_norm, |h| layer.ffn.forward_t(h, train).dropout(drop, train));
        }
        (Self::final_norm(&self.encoder_norm, x), mask)
    }
}

impl Seq2Seq for Transformer {
    fn logits(&self, src: &Tensor, tgt_in: &Tensor, train: bool) -> Tensor {
        let (memory, mask) = self.encode_t(src, train);
        let drop = self.cfg.dropout;
        let mut y = self.embed(self.tgt_table(), tgt_in, 0, train);
        for layer in &self.decoder {
            // 1) Masked self-attention: position j sees positions ≤ j.
            y = self.sublayer(&y, &layer.self_attn_norm, |h| {
                let (k, v) = layer.self_attn.project_kv(h);
                layer.self_attn.attend(h, &k, &v, None, true, train).dropout(drop, train)
            });
            // 2) Attention over the source.
            y = self.sublayer(&y, &layer.cross_attn_norm, |h| {
                let (k, v) = layer.cross_attn.project_kv(&memory);
                layer.cross_attn.attend(h, &k, &v, Some(&mask), false, train).dropout(drop, train)
            });
            // 3) Feed-forward.
            y = self.sublayer(&y, &layer.ffn_norm, |h| layer.ffn.forward_t(h, train).dropout(drop, train));
        }
        self.project_out(&Self::final_norm(&self.decoder_norm, y))
    }

    /// Memory rows: `[mask, (cross_k, cross_v) per layer]`; state rows: `(self_k, self_v)` per layer,
    /// each `[n, heads, t, d_head]`, growing by one position per step.
    fn encode(&self, src: &Tensor) -> (Rows, DecoderState) {
        let (memory, mask) = self.encode_t(src, false);
        let n = src.size()[0];
        let mut mem = vec![mask];
        let mut cache = Vec::new();
        let d_head = self.cfg.d_model / self.cfg.n_heads;
        for layer in &self.decoder {
            let (k, v) = layer.cross_attn.project_kv(&memory);
            mem.push(k);
            mem.push(v);
            let empty = Tensor::zeros([n, self.cfg.n_heads, 0, d_head], (Kind::Float, src.device()));
            cache.push(empty.shallow_clone());
            cache.push(empty);
        }
        (Rows(mem), DecoderState { rows: Rows(cache), step: 0 })
    }

    fn step_logits(&self, memory: &Rows, state: &mut DecoderState, prev: &Tensor) -> Tensor {
        let mask = &memory.0[0];
        let mut y = self.embed(self.tgt_table(), &prev.unsqueeze(1), state.step, false); // [n, 1, d]
        for (i, layer) in self.decoder.iter().enumerate() {
            let rows = &mut state.rows.0;
            y = self.sublayer(&y, &layer.self_attn_norm, |h| {
                let (k_new, v_new) = layer.self_attn.project_kv(h);
                let k = Tensor::cat(&[&rows[2 * i], &k_new], 2);
                let v = Tensor::cat(&[&rows[2 * i + 1], &v_new], 2);
                // The new position attends to every cached one: no causal mask needed.
                let out = layer.self_attn.attend(h, &k, &v, None, false, false);
                rows[2 * i] = k;
                rows[2 * i + 1] = v;
                out
            });
            let (k, v) = (&memory.0[1 + 2 * i], &memory.0[2 + 2 * i]);
            y = self.sublayer(&y, &layer.cross_attn_norm, |h| {
                layer.cross_attn.attend(h, k, v, Some(mask), false, false)
            });
            y = self.sublayer(&y, &layer.ffn_norm, |h| layer.ffn.forward_t(h, false));
        }
        state.step += 1;
        let y = Self::final_norm(&self.decoder_norm, y);
        self.project_out(&y).squeeze_dim(1)
    }
}
