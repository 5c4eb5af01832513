//! The Transformer of `seqkd_nmt::model::transformer` (pre- or post-norm, with every option of
//! [`TransformerConfig`]), for decoding only.
//!
//! Same weights, same arithmetic, organised for inference:
//! - the encoder runs on the sentences' tokens packed end to end (no padding), each sentence
//!   attending only to itself, which is what the padding mask computes;
//! - q/k/v projections are fused into one matrix product, and the decoder's cross-attention keys
//!   and values are projected once per sentence;
//! - each decoder row keeps its own self-attention cache, so beam search reorders rows by moving
//!   them and copies only the caches of beams that were chosen twice;
//! - beams of one sentence share its encoder memory through a row → sentence index.

use rayon::prelude::*;

use crate::kernels::{
    activate, add_in_place, axpy, dot, layer_norm, layer_norm_into, sinusoid, sinusoid_halves, softmax,
    Linear, Matrix, Threads,
};
use crate::weights::{WeightError, Weights};
use crate::Decoder;
use seqkd_text::vocab::SPECIAL_IDS;

use crate::format::{Activation, PositionLayout, TransformerConfig};

#[derive(Debug, Clone)]
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Norm {
    fn load(w: &mut Weights, name: &str, d: usize) -> Result<Self, WeightError> {
        Ok(Self {
            gamma: w.vector_of(&format!("{name}.weight"), d)?,
            beta: w.vector_of(&format!("{name}.bias"), d)?,
        })
    }
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    attn_norm: Norm,
    qkv: Linear,
    attn_out: Linear,
    ffn_norm: Norm,
    fc1: Linear,
    fc2: Linear,
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    self_norm: Norm,
    self_qkv: Linear,
    self_out: Linear,
    cross_norm: Norm,
    cross_q: Linear,
    cross_kv: Linear,
    cross_out: Linear,
    ffn_norm: Norm,
    fc1: Linear,
    fc2: Linear,
}

#[derive(Debug, Clone)]
pub struct Transformer {
    d: usize,
    heads: usize,
    vocab: usize,
    src_embed: Matrix,
    /// `None` when tied to `src_embed`.
    tgt_embed: Option<Matrix>,
    /// `None` when tied: logits are the target table's rows dotted with the decoder output.
    out_proj: Option<Linear>,
    /// The tied output layer's bias.
    out_bias: Option<Vec<f32>>,
    encoder: Vec<EncoderLayer>,
    /// Pre-norm only.
    encoder_norm: Option<Norm>,
    decoder: Vec<DecoderLayer>,
    decoder_norm: Option<Norm>,
    /// Post-norm sub-layers `LN(x + f(x))` instead of `x + f(LN(x))`.
    post_norm: bool,
    activation: Activation,
    embed_scale: f32,
    positions: PositionLayout,
}

/// One decoder row's self-attention keys and values, per layer `[t, d]`, growing by a row per step.
#[derive(Debug, Clone, Default)]
struct RowCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

/// Decoding state of a batch.
#[derive(Debug)]
pub struct TransformerState {
    /// Per sentence and decoder layer: cross-attention keys and values `[src_len, d]`.
    memory: Vec<Vec<(Vec<f32>, Vec<f32>)>>,
    /// The sentence each live row belongs to.
    row_sentence: Vec<usize>,
    caches: Vec<RowCache>,
    step: usize,
    threads: Threads,
    /// Working buffers of `step`, kept between steps so the decoding loop does not allocate.
    buffers: StepBuffers,
}

#[derive(Debug, Default)]
struct StepBuffers {
    y: Vec<f32>,
    pe: Vec<f32>,
    h: Vec<f32>,
    proj: Vec<f32>,
    ctx: Vec<f32>,
    out: Vec<f32>,
    f: Vec<f32>,
}

impl Transformer {
    pub fn load(cfg: &TransformerConfig, w: &mut Weights, vocab: usize) -> Result<Self, WeightError> {
        let d = cfg.d_model as usize;
        let heads = cfg.n_heads as usize;
        if heads == 0 || !d.is_multiple_of(heads) {
            return Err(WeightError::Config(format!("d_model {d} is not divisible by n_heads {heads}")));
        }
        let d_ff = cfg.d_ff as usize;
        let attn = |w: &mut Weights, p: &str, parts: &[&str]| -> Result<Linear, WeightError> {
            let names: Vec<String> = parts.iter().map(|x| format!("{p}.{x}_proj")).collect();
            w.fused_linear(&names, d, d)
        };
        let encoder = (0..cfg.encoder_layers)
            .map(|i| {
                let p = format!("encoder.{i}");
                Ok(EncoderLayer {
                    attn_norm: Norm::load(w, &format!("{p}.self_attn_norm"), d)?,
                    qkv: attn(w, &format!("{p}.self_attn"), &["q", "k", "v"])?,
                    attn_out: attn(w, &format!("{p}.self_attn"), &["out"])?,
                    ffn_norm: Norm::load(w, &format!("{p}.ffn_norm"), d)?,
                    fc1: w.linear_of(&format!("{p}.ffn.fc1"), d_ff, d)?,
                    fc2: w.linear_of(&format!("{p}.ffn.fc2"), d, d_ff)?,
                })
            })
            .collect::<Result<Vec<_>, WeightError>>()?;
        let decoder = (0..cfg.decoder_layers)
            .map(|i| {
                let p = format!("decoder.{i}");
                Ok(DecoderLayer {
                    self_norm: Norm::load(w, &format!("{p}.self_attn_norm"), d)?,
                    self_qkv: attn(w, &format!("{p}.self_attn"), &["q", "k", "v"])?,
                    self_out: attn(w, &format!("{p}.self_attn"), &["out"])?,
                    cross_norm: Norm::load(w, &format!("{p}.cross_attn_norm"), d)?,
                    cross_q: attn(w, &format!("{p}.cross_attn"), &["q"])?,
                    cross_kv: attn(w, &format!("{p}.cross_attn"), &["k", "v"])?,
                    cross_out: attn(w, &format!("{p}.cross_attn"), &["out"])?,
                    ffn_norm: Norm::load(w, &format!("{p}.ffn_norm"), d)?,
                    fc1: w.linear_of(&format!("{p}.ffn.fc1"), d_ff, d)?,
                    fc2: w.linear_of(&format!("{p}.ffn.fc2"), d, d_ff)?,
                })
            })
            .collect::<Result<Vec<_>, WeightError>>()?;
        let src_vocab = cfg.src_vocab_size.map_or(vocab, |n| n as usize);
        let src_embed = w.matrix_of("src_embed.weight", src_vocab, d)?;
        let (tgt_embed, out_proj) = if cfg.tied_embeddings {
            (None, None)
        } else {
            let out = if cfg.tied_output { None } else { Some(w.linear_of("out_proj", vocab, d)?) };
            (Some(w.matrix_of("tgt_embed.weight", vocab, d)?), out)
        };
        let out_bias =
            if out_proj.is_none() && cfg.output_bias { Some(w.vector_of("out_bias", vocab)?) } else { None };
        let pre = cfg.normalize_before;
        Ok(Self {
            d,
            heads,
            vocab,
            src_embed,
            tgt_embed,
            out_proj,
            out_bias,
            encoder,
            encoder_norm: if pre { Some(Norm::load(w, "encoder_norm", d)?) } else { None },
            decoder,
            decoder_norm: if pre { Some(Norm::load(w, "decoder_norm", d)?) } else { None },
            post_norm: !pre,
            activation: cfg.activation,
            embed_scale: if cfg.embed_scale { (d as f32).sqrt() } else { 1.0 },
            positions: cfg.positions,
        })
    }

    /// Token embedding (× √d with `embed_scale`) plus the position's sinusoid `pe`, for one token.
    fn embed_into(&self, table: &Matrix, token: u32, pe: &[f32], out: &mut [f32]) {
        table.row_into(token as usize, out);
        let scale = self.embed_scale;
        for (o, p) in out.iter_mut().zip(pe) {
            *o = *o * scale + p;
        }
    }

    fn position(&self, pos: usize, out: &mut [f32]) {
        match self.positions {
            PositionLayout::Interleaved => sinusoid(pos, out),
            PositionLayout::Halves => sinusoid_halves(pos, out),
        }
    }

    /// A sub-layer's input: `LN(x)` (pre-norm) or `x` itself (post-norm), into `h`.
    fn sublayer_input(&self, x: &[f32], norm: &Norm, h: &mut Vec<f32>) {
        if self.post_norm {
            h.clear();
            h.extend_from_slice(x);
        } else {
            layer_norm_into(x, &norm.gamma, &norm.beta, h);
        }
    }

    /// The residual: `x += f` (pre-norm), or `x = LN(x + f)` (post-norm).
    fn residual(&self, x: &mut [f32], f: &[f32], norm: &Norm) {
        add_in_place(x, f);
        if self.post_norm {
            layer_norm(x, &norm.gamma, &norm.beta);
        }
    }

    fn final_norm(norm: &Option<Norm>, x: &mut [f32]) {
        if let Some(n) = norm {
            layer_norm(x, &n.gamma, &n.beta);
        }
    }

    /// Encoder over sentences packed end to end: `[Σ len, d]` memory and each sentence's range.
    fn encode(&self, srcs: &[&[u32]], threads: Threads) -> (Vec<f32>, Vec<std::ops::Range<usize>>) {
        let d = self.d;
        let mut ranges = Vec::with_capacity(srcs.len());
        let mut total = 0;
        for s in srcs {
            ranges.push(total..total + s.len() + 1); // + `</s>`
            total += s.len() + 1;
        }
        let mut x = vec![0f32; total * d];
        let longest = ranges.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut positions = vec![0f32; longest * d];
        for (pos, pe) in positions.chunks_mut(d).enumerate() {
            self.position(pos, pe);
        }
        for (s, r) in srcs.iter().zip(&ranges) {
            for (pos, tok) in s.iter().copied().chain([SPECIAL_IDS.eos]).enumerate() {
                let row = r.start + pos;
                self.embed_into(
                    &self.src_embed,
                    tok,
                    &positions[pos * d..(pos + 1) * d],
                    &mut x[row * d..(row + 1) * d],
                );
            }
        }
        let (mut h, mut qkv, mut ctx, mut out, mut f) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for layer in &self.encoder {
            self.sublayer_input(&x, &layer.attn_norm, &mut h);
            layer.qkv.forward(&h, total, &mut qkv, threads);
            ctx.clear();
            ctx.resize(total * d, 0.0);
            self.self_attention_packed(&qkv, &ranges, &mut ctx);
            layer.attn_out.forward(&ctx, total, &mut out, threads);
            self.residual(&mut x, &out, &layer.attn_norm);
            self.sublayer_input(&x, &layer.ffn_norm, &mut h);
            layer.fc1.forward(&h, total, &mut f, threads);
            activate(self.activation, &mut f);
            layer.fc2.forward(&f, total, &mut out, threads);
            self.residual(&mut x, &out, &layer.ffn_norm);
        }
        Self::final_norm(&self.encoder_norm, &mut x);
        (x, ranges)
    }

    /// Full self-attention within each sentence; `qkv` rows are `[q | k | v]`.
    fn self_attention_packed(&self, qkv: &[f32], ranges: &[std::ops::Range<usize>], ctx: &mut [f32]) {
        let d = self.d;
        let dh = d / self.heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let mut scores = Vec::new();
        for r in ranges {
            let len = r.len();
            for h in 0..self.heads {
                for i in r.clone() {
                    let q = &qkv[i * 3 * d + h * dh..][..dh];
                    scores.clear();
                    scores.extend(r.clone().map(|j| dot(q, &qkv[j * 3 * d + d + h * dh..][..dh]) * scale));
                    softmax(&mut scores);
                    let c = &mut ctx[i * d + h * dh..][..dh];
                    for (jj, p) in scores.iter().enumerate().take(len) {
                        axpy(*p, &qkv[(r.start + jj) * 3 * d + 2 * d + h * dh..][..dh], c);
                    }
                }
            }
        }
    }

    /// Attention of one query `q` `[d]` over `len` keys/values `[len, d]` (row stride `stride`),
    /// all heads, into `out` `[d]`.
    fn attend(&self, q: &[f32], k: &[f32], v: &[f32], len: usize, stride: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { attend_avx512(self.heads, q, k, v, len, stride, out) };
        }
        attend_body(self.heads, q, k, v, len, stride, out)
    }

    /// Runs `f(row)` for every row, on the pool's threads when there is enough work.
    fn for_rows(
        threads: Threads,
        rows: usize,
        out: &mut [f32],
        width: usize,
        f: impl Fn(usize, &mut [f32]) + Sync,
    ) {
        if threads.0 > 1 && rows > 1 {
            out.par_chunks_mut(width).enumerate().for_each(|(r, o)| f(r, o));
        } else {
            out.chunks_mut(width).enumerate().for_each(|(r, o)| f(r, o));
        }
    }

    /// Returns the model with its weight matrices quantized to int8.
    pub fn quantized(&self) -> Self {
        let q = |l: &Linear| Linear { weight: l.weight.quantize(), bias: l.bias.clone() };
        let mut m = self.clone();
        for l in &mut m.encoder {
            for lin in [&mut l.qkv, &mut l.attn_out, &mut l.fc1, &mut l.fc2] {
                *lin = q(lin);
            }
        }
        for l in &mut m.decoder {
            for lin in [
                &mut l.self_qkv,
                &mut l.self_out,
                &mut l.cross_q,
                &mut l.cross_kv,
                &mut l.cross_out,
                &mut l.fc1,
                &mut l.fc2,
            ] {
                *lin = q(lin);
            }
        }
        m.src_embed = m.src_embed.quantize();
        m.tgt_embed = m.tgt_embed.as_ref().map(Matrix::quantize);
        m.out_proj = m.out_proj.as_ref().map(q);
        m
    }
}

/// The body of [`Transformer::attend`], inlined into a copy compiled for AVX-512 (the small dot
/// products and updates of attention vectorise 4× wider than on baseline x86-64).
#[inline(always)]
fn attend_body(heads: usize, q: &[f32], k: &[f32], v: &[f32], len: usize, stride: usize, out: &mut [f32]) {
    // One score buffer per thread, reused: this runs for every row, layer and step.
    thread_local! {
        static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCORES.with_borrow_mut(|scores| {
        scores.resize(len, 0.0);
        attend_heads(heads, q, k, v, stride, scores, out)
    })
}

/// [`attend_body`] with the score buffer (`len` long) supplied.
#[inline(always)]
fn attend_heads(
    heads: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    stride: usize,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let dh = q.len() / heads;
    let scale = 1.0 / (dh as f32).sqrt();
    out.fill(0.0);
    for h in 0..heads {
        let qh = &q[h * dh..(h + 1) * dh];
        for (t, s) in scores.iter_mut().enumerate() {
            *s = dot(qh, &k[t * stride + h * dh..][..dh]) * scale;
        }
        softmax(scores);
        let oh = &mut out[h * dh..(h + 1) * dh];
        for (t, p) in scores.iter().enumerate() {
            axpy(*p, &v[t * stride + h * dh..][..dh], oh);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn attend_avx512(
    heads: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    len: usize,
    stride: usize,
    out: &mut [f32],
) {
    attend_body(heads, q, k, v, len, stride, out)
}

impl Decoder for Transformer {
    type State = TransformerState;

    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn start(&self, srcs: &[&[u32]], threads: Threads) -> TransformerState {
        let d = self.d;
        let (memory, ranges) = self.encode(srcs, threads);
        let total = memory.len() / d;
        let mut per_sentence: Vec<Vec<(Vec<f32>, Vec<f32>)>> = vec![Vec::new(); srcs.len()];
        let mut kv = Vec::new();
        for layer in &self.decoder {
            layer.cross_kv.forward(&memory, total, &mut kv, threads);
            for (s, r) in ranges.iter().enumerate() {
                let (mut k, mut v) = (Vec::with_capacity(r.len() * d), Vec::with_capacity(r.len() * d));
                for row in r.clone() {
                    k.extend_from_slice(&kv[row * 2 * d..row * 2 * d + d]);
                    v.extend_from_slice(&kv[row * 2 * d + d..(row + 1) * 2 * d]);
                }
                per_sentence[s].push((k, v));
            }
        }
        let layers = self.decoder.len();
        TransformerState {
            memory: per_sentence,
            row_sentence: (0..srcs.len()).collect(),
            caches: vec![RowCache { k: vec![Vec::new(); layers], v: vec![Vec::new(); layers] }; srcs.len()],
            step: 0,
            threads,
            buffers: StepBuffers::default(),
        }
    }

    fn step(&self, state: &mut TransformerState, prev: &[u32], logits: &mut Vec<f32>) {
        let d = self.d;
        let threads = state.threads;
        let rows = prev.len();
        debug_assert_eq!(rows, state.row_sentence.len());
        let table = self.tgt_embed.as_ref().unwrap_or(&self.src_embed);
        let mut buffers = std::mem::take(&mut state.buffers);
        let StepBuffers { y, pe, h, proj, ctx, out, f } = &mut buffers;
        y.resize(rows * d, 0.0);
        ctx.resize(rows * d, 0.0);
        pe.resize(d, 0.0);
        self.position(state.step, pe);
        for (r, &tok) in prev.iter().enumerate() {
            self.embed_into(table, tok, pe, &mut y[r * d..(r + 1) * d]);
        }
        for (li, layer) in self.decoder.iter().enumerate() {
            // Self-attention over this row's previous positions and the new one.
            self.sublayer_input(y, &layer.self_norm, h);
            layer.self_qkv.forward(h, rows, proj, threads);
            for (r, cache) in state.caches.iter_mut().enumerate() {
                cache.k[li].extend_from_slice(&proj[r * 3 * d + d..r * 3 * d + 2 * d]);
                cache.v[li].extend_from_slice(&proj[r * 3 * d + 2 * d..(r + 1) * 3 * d]);
            }
            let caches = &state.caches;
            let t = state.step + 1;
            Self::for_rows(threads, rows, ctx, d, |r, o| {
                self.attend(&proj[r * 3 * d..r * 3 * d + d], &caches[r].k[li], &caches[r].v[li], t, d, o)
            });
            layer.self_out.forward(ctx, rows, out, threads);
            self.residual(y, out, &layer.self_norm);
            // Attention over the source.
            self.sublayer_input(y, &layer.cross_norm, h);
            layer.cross_q.forward(h, rows, proj, threads);
            let (memory, row_sentence) = (&state.memory, &state.row_sentence);
            Self::for_rows(threads, rows, ctx, d, |r, o| {
                let (k, v) = &memory[row_sentence[r]][li];
                self.attend(&proj[r * d..(r + 1) * d], k, v, k.len() / d, d, o)
            });
            layer.cross_out.forward(ctx, rows, out, threads);
            self.residual(y, out, &layer.cross_norm);
            // Feed-forward.
            self.sublayer_input(y, &layer.ffn_norm, h);
            layer.fc1.forward(h, rows, f, threads);
            activate(self.activation, f);
            layer.fc2.forward(f, rows, out, threads);
            self.residual(y, out, &layer.ffn_norm);
        }
        Self::final_norm(&self.decoder_norm, y);
        match &self.out_proj {
            Some(lin) => lin.forward(y, rows, logits, threads),
            None => table.apply(y, rows, logits, self.out_bias.as_deref(), threads),
        }
        state.step += 1;
        state.buffers = buffers;
    }

    fn select_rows(&self, state: &mut TransformerState, parents: &[usize]) {
        state.row_sentence = parents.iter().map(|&p| state.row_sentence[p]).collect();
        let mut old: Vec<Option<RowCache>> =
            std::mem::take(&mut state.caches).into_iter().map(Some).collect();
        // A parent's cache is moved to its last child and copied for the others. The copies are
        // written into the caches of the rows that have no child, reusing their grown buffers: in a
        // beam step there are as many of those as copies, so it neither allocates nor regrows a
        // copy from its exact length (a plain clone did both).
        let mut last_use = vec![usize::MAX; old.len()];
        for (i, &p) in parents.iter().enumerate() {
            last_use[p] = i;
        }
        let mut spare: Vec<RowCache> = last_use
            .iter()
            .zip(&mut old)
            .filter(|(u, _)| **u == usize::MAX)
            .filter_map(|(_, c)| c.take())
            .collect();
        // A parent's last use comes after all its copies, so one pass in order works.
        state.caches = parents
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                if last_use[p] == i {
                    return old[p].take().expect("moved once");
                }
                let from = old[p].as_ref().expect("not yet moved");
                let mut copy = spare.pop().unwrap_or_default();
                copy.k.clone_from(&from.k);
                copy.v.clone_from(&from.v);
                copy
            })
            .collect();
    }
}
