//! The Transformer encoder-decoder (Vaswani et al. 2017), pre-norm (Wang et al. 2019): each
//! sub-layer is `x + dropout(sublayer(LayerNorm(x)))`, with a final LayerNorm on each stack, which
//! trains stably without a long warmup. Sinusoidal positions; with the joint vocabulary the source
//! embedding, target embedding and output projection can be one matrix (`tied_embeddings`).
//! Students may use a shallower decoder than encoder (`decoder_layers < encoder_layers`).

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
    /// `None` when tied: the output layer is `src_embed`'s matrix, transposed.
    out_proj: Option<nn::Linear>,
    encoder: Vec<EncoderLayer>,
    encoder_norm: nn::LayerNorm,
    decoder: Vec<DecoderLayer>,
    decoder_norm: nn::LayerNorm,
    cfg: TransformerConfig,
}

impl Transformer {
    pub fn new(p: &nn::Path, cfg: &TransformerConfig, vocab_size: i64) -> Self {
        let d = cfg.d_model;
        // Embeddings scaled by √d at use, so they start with unit-variance rows of size 1/√d.
        let emb_cfg = nn::EmbeddingConfig {
            ws_init: nn::Init::Randn { mean: 0., stdev: (d as f64).powf(-0.5) },
            ..Default::default()
        };
        let src_embed = nn::embedding(p / "src_embed", vocab_size, d, emb_cfg);
        let (tgt_embed, out_proj) = if cfg.tied_embeddings {
            (None, None)
        } else {
            (
                Some(nn::embedding(p / "tgt_embed", vocab_size, d, emb_cfg)),
                Some(nn::linear(p / "out_proj", d, vocab_size, Default::default())),
            )
        };
        let attn_drop = cfg.attention_dropout.unwrap_or(cfg.dropout);
        let encoder = (0..cfg.encoder_layers)
            .map(|i| {
                let p = p / "encoder" / i;
                EncoderLayer {
                    self_attn_norm: layer_norm(&(&p / "self_attn_norm"), d),
                    self_attn: MultiHeadAttention::new(&(&p / "self_attn"), d, cfg.n_heads, attn_drop),
                    ffn_norm: layer_norm(&(&p / "ffn_norm"), d),
                    ffn: FeedForward::new(&(&p / "ffn"), d, cfg.d_ff, cfg.dropout),
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
                    ffn: FeedForward::new(&(&p / "ffn"), d, cfg.d_ff, cfg.dropout),
                }
            })
            .collect();
        Self {
            src_embed,
            tgt_embed,
            out_proj,
            encoder,
            encoder_norm: layer_norm(&(p / "encoder_norm"), d),
            decoder,
            decoder_norm: layer_norm(&(p / "decoder_norm"), d),
            cfg: cfg.clone(),
        }
    }

    /// Token embeddings × √d_model plus positions `start ..`: `[batch, len]` → `[batch, len, d]`.
    fn embed(&self, table: &nn::Embedding, tokens: &Tensor, start: i64, train: bool) -> Tensor {
        let (_, len) = tokens.size2().unwrap();
        let d = self.cfg.d_model;
        let x =
            tokens.apply(table) * (d as f64).sqrt() + sinusoidal_positions(start, len, d, tokens.device());
        x.dropout(self.cfg.dropout, train)
    }

    fn tgt_table(&self) -> &nn::Embedding {
        self.tgt_embed.as_ref().unwrap_or(&self.src_embed)
    }

    fn project_out(&self, y: &Tensor) -> Tensor {
        match &self.out_proj {
            Some(lin) => y.apply(lin),
            None => y.matmul(&self.src_embed.ws.tr()),
        }
    }

    /// Encoder: src `[batch, src_len]` → memory `[batch, src_len, d]`, key mask `[batch, 1, 1, src_len]`.
    fn encode_t(&self, src: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mask = Batch::src_mask(src).unsqueeze(1).unsqueeze(1);
        let mut x = self.embed(&self.src_embed, src, 0, train);
        for layer in &self.encoder {
            let h = layer.self_attn_norm.forward(&x);
            let (k, v) = layer.self_attn.project_kv(&h);
            x = x + layer
                .self_attn
                .attend(&h, &k, &v, Some(&mask), false, train)
                .dropout(self.cfg.dropout, train);
            let h = layer.ffn_norm.forward(&x);
            x = x + layer.ffn.forward_t(&h, train).dropout(self.cfg.dropout, train);
        }
        (self.encoder_norm.forward(&x), mask)
    }
}

impl Seq2Seq for Transformer {
    fn logits(&self, src: &Tensor, tgt_in: &Tensor, train: bool) -> Tensor {
        let (memory, mask) = self.encode_t(src, train);
        let drop = self.cfg.dropout;
        let mut y = self.embed(self.tgt_table(), tgt_in, 0, train);
        for layer in &self.decoder {
            // 1) Masked self-attention: position j sees positions ≤ j.
            let h = layer.self_attn_norm.forward(&y);
            let (k, v) = layer.self_attn.project_kv(&h);
            y = y + layer.self_attn.attend(&h, &k, &v, None, true, train).dropout(drop, train);
            // 2) Attention over the source.
            let h = layer.cross_attn_norm.forward(&y);
            let (k, v) = layer.cross_attn.project_kv(&memory);
            y = y + layer.cross_attn.attend(&h, &k, &v, Some(&mask), false, train).dropout(drop, train);
            // 3) Feed-forward.
            let h = layer.ffn_norm.forward(&y);
            y = y + layer.ffn.forward_t(&h, train).dropout(drop, train);
        }
        self.project_out(&self.decoder_norm.forward(&y))
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

    fn step(&self, memory: &Rows, state: &mut DecoderState, prev: &Tensor) -> Tensor {
        let mask = &memory.0[0];
        let mut y = self.embed(self.tgt_table(), &prev.unsqueeze(1), state.step, false); // [n, 1, d]
        for (i, layer) in self.decoder.iter().enumerate() {
            let h = layer.self_attn_norm.forward(&y);
            let (k_new, v_new) = layer.self_attn.project_kv(&h);
            let k = Tensor::cat(&[&state.rows.0[2 * i], &k_new], 2);
            let v = Tensor::cat(&[&state.rows.0[2 * i + 1], &v_new], 2);
            // The new position attends to every cached one: no causal mask needed.
            y = y + layer.self_attn.attend(&h, &k, &v, None, false, false);
            state.rows.0[2 * i] = k;
            state.rows.0[2 * i + 1] = v;
            let h = layer.cross_attn_norm.forward(&y);
            y = y + layer.cross_attn.attend(
                &h,
                &memory.0[1 + 2 * i],
                &memory.0[2 + 2 * i],
                Some(mask),
                false,
                false,
            );
            let h = layer.ffn_norm.forward(&y);
            y = y + layer.ffn.forward_t(&h, false);
        }
        state.step += 1;
        self.project_out(&self.decoder_norm.forward(&y)).squeeze_dim(1).log_softmax(-1, Kind::Float)
    }
}
