//! The LSTM encoder-decoder with Luong global-general attention and input feeding
//! (`seqkd_nmt::model::lstm`, the paper's architecture), for decoding only.
//!
//! - Encoder: each layer's input projections `x·W_ihᵀ` for every token of every sentence in one
//!   matrix product, then the recurrence over time on the sentences still running (sorted longest
//!   first, so they are a prefix of the batch); a sentence's outputs and final `(h, c)` are those
//!   at its own last token, as with libtorch's packed sequences. A bidirectional layer runs the
//!   same recurrence backward in time too (a sentence joins the running prefix at its last token,
//!   from a zero state) and concatenates `[→; ←]`.
//! - The optional bridge maps each layer's final `(h, c)` to the decoder's initial state.
//! - Attention keys `W_a h̄_s` are computed once per sentence.
//! - Decoder rows keep `(h, c)` per layer and `h̃`; beams share their sentence's memory.

use crate::kernels::{add_in_place, axpy, dot, softmax, Linear, Matrix, Threads};
use crate::weights::{WeightError, Weights};
use crate::Decoder;
use seqkd_text::vocab::SPECIAL_IDS;

use crate::format::LstmConfig;

/// One LSTM layer: gates `i, f, g, o` stacked as PyTorch stores them.
#[derive(Debug, Clone)]
struct Cell {
    ih: Linear,
    hh: Linear,
}

#[derive(Debug, Clone)]
pub struct Lstm {
    hidden: usize,
    vocab: usize,
    src_embed: Matrix,
    tgt_embed: Matrix,
    /// Per layer: the forward cell and, bidirectional, the backward one.
    encoder: Vec<Vec<Cell>>,
    /// Per layer `(W_h, W_c)`: `h_0 = tanh(W_h h_enc + b_h)`, `c_0 = W_c c_enc + b_c`.
    bridge: Option<Vec<(Linear, Linear)>>,
    decoder: Vec<Cell>,
    /// `W_a`: keys are `W_a h̄_s`.
    attn_score: Linear,
    /// `W_c` on `[c_t; h_t]`.
    attn_out: Linear,
    /// `W_out h̃ + b` (`W_out` is the target embedding when tied).
    out: Linear,
}

/// `(h, c) ← LSTM cell(gates, c)`: `gates` `[rows, 4H]` are the summed input and recurrent
/// projections; `h` and `c` `[rows, H]` are updated in place.
fn cell_update(gates: &[f32], h: &mut [f32], c: &mut [f32], hidden: usize) {
    let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
    for ((g, h), c) in
        gates.chunks_exact(4 * hidden).zip(h.chunks_exact_mut(hidden)).zip(c.chunks_exact_mut(hidden))
    {
        for j in 0..hidden {
            let (i, f, gg, o) = (g[j], g[hidden + j], g[2 * hidden + j], g[3 * hidden + j]);
            c[j] = sigmoid(f) * c[j] + sigmoid(i) * gg.tanh();
            h[j] = sigmoid(o) * c[j].tanh();
        }
    }
}

/// Per-sentence encoder memory.
#[derive(Debug)]
struct Memory {
    /// `h̄_s` `[S, H]`.
    values: Vec<f32>,
    /// `W_a h̄_s` `[S, H]`.
    keys: Vec<f32>,
}

/// Decoding state of a batch: per row, `(h, c)` of every layer and `h̃`.
#[derive(Debug)]
pub struct LstmState {
    memory: Vec<Memory>,
    row_sentence: Vec<usize>,
    /// Per layer `[rows, H]`.
    h: Vec<Vec<f32>>,
    c: Vec<Vec<f32>>,
    /// `[rows, H]`.
    h_tilde: Vec<f32>,
    threads: Threads,
    /// Working buffers of `step`, kept between steps so the decoding loop does not allocate.
    buffers: StepBuffers,
}

#[derive(Debug, Default)]
struct StepBuffers {
    x: Vec<f32>,
    gates: Vec<f32>,
    rec: Vec<f32>,
    ch: Vec<f32>,
    scores: Vec<f32>,
    h_tilde: Vec<f32>,
}

impl Lstm {
    pub fn load(cfg: &LstmConfig, w: &mut Weights, vocab: usize) -> Result<Self, WeightError> {
        cfg.validate().map_err(WeightError::Config)?;
        let (e, h) = (cfg.embed_dim as usize, cfg.hidden as usize);
        // The first decoder layer reads [emb; h̃] (input feeding).
        // Layer i of `side`, direction `suffix` ("" or "_reverse"), with `units` per direction.
        let cell = |w: &mut Weights, side: &str, i: i64, suffix: &str, inp: usize, units: usize| {
            let p = format!("{side}.lstm");
            let (wi, bi) = (format!("{p}.weight_ih_l{i}{suffix}"), format!("{p}.bias_ih_l{i}{suffix}"));
            let (wh, bh) = (format!("{p}.weight_hh_l{i}{suffix}"), format!("{p}.bias_hh_l{i}{suffix}"));
            Ok::<_, WeightError>(Cell {
                ih: w.linear_named_of(&wi, Some(&bi), 4 * units, inp)?,
                hh: w.linear_named_of(&wh, Some(&bh), 4 * units, units)?,
            })
        };
        let directions: &[&str] = if cfg.bidirectional { &["", "_reverse"] } else { &[""] };
        let units = h / directions.len();
        let mut encoder = Vec::new();
        for i in 0..cfg.layers {
            let inp = if i == 0 { e } else { h };
            encoder.push(
                directions.iter().map(|d| cell(w, "encoder", i, d, inp, units)).collect::<Result<_, _>>()?,
            );
        }
        let decoder = (0..cfg.layers)
            .map(|i| cell(w, "decoder", i, "", if i == 0 { e + h } else { h }, h))
            .collect::<Result<Vec<_>, _>>()?;
        let bridge = match cfg.bridge {
            false => None,
            true => Some(
                (0..cfg.layers)
                    .map(|i| {
                        let of =
                            |w: &mut Weights, s: &str| w.linear_of(&format!("decoder.bridge.{s}_l{i}"), h, h);
                        Ok((of(w, "h")?, of(w, "c")?))
                    })
                    .collect::<Result<Vec<_>, WeightError>>()?,
            ),
        };
        let tgt_embed = w.matrix_of("tgt_embed.weight", vocab, e)?;
        let out = if cfg.tied_embeddings {
            Linear { weight: tgt_embed.clone(), bias: Some(w.vector_of("out_proj.bias", vocab)?) }
        } else {
            w.linear_of("out_proj", vocab, h)?
        };
        Ok(Self {
            hidden: h,
            vocab,
            src_embed: w.matrix_of("src_embed.weight", vocab, e)?,
            tgt_embed,
            encoder,
            bridge,
            decoder,
            attn_score: w.linear_named_of("decoder.attn_score.weight", None, h, h)?,
            attn_out: w.linear_named_of("decoder.attn_out.weight", None, h, 2 * h)?,
            out,
        })
    }

    /// Returns the model with its weight matrices quantized to int8.
    pub fn quantized(&self) -> Self {
        let q = |l: &Linear| Linear { weight: l.weight.quantize(), bias: l.bias.clone() };
        let mut m = self.clone();
        for cell in m.encoder.iter_mut().flatten().chain(m.decoder.iter_mut()) {
            cell.ih = q(&cell.ih);
            cell.hh = q(&cell.hh);
        }
        for (bh, bc) in m.bridge.iter_mut().flatten() {
            (*bh, *bc) = (q(bh), q(bc));
        }
        m.src_embed = m.src_embed.quantize();
        m.tgt_embed = m.tgt_embed.quantize();
        m.attn_score = q(&m.attn_score);
        m.attn_out = q(&m.attn_out);
        m.out = q(&m.out);
        m
    }
}

impl Decoder for Lstm {
    type State = LstmState;

    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn start(&self, srcs: &[&[u32]], threads: Threads) -> LstmState {
        let hd = self.hidden;
        let n = srcs.len();
        let lens: Vec<usize> = srcs.iter().map(|s| s.len() + 1).collect(); // + `</s>`
                                                                           // Longest first, so the sentences still running at step t are a prefix.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
        let longest = order.first().map_or(0, |&i| lens[i]);
        // Time-major packed layout: step t holds the running sentences in `order`.
        let running: Vec<usize> =
            (0..longest).map(|t| order.iter().take_while(|&&i| lens[i] > t).count()).collect();
        let offsets: Vec<usize> =
            running.iter().scan(0, |acc, &r| Some(std::mem::replace(acc, *acc + r))).collect();
        let total: usize = running.iter().sum();
        let e = self.src_embed.cols();
        let mut x = vec![0f32; total * e];
        for t in 0..longest {
            for (slot, &i) in order.iter().take(running[t]).enumerate() {
                let tok = srcs[i].get(t).copied().unwrap_or(SPECIAL_IDS.eos);
                let row = offsets[t] + slot;
                self.src_embed.row_into(tok as usize, &mut x[row * e..(row + 1) * e]);
            }
        }
        let (mut pre, mut rec) = (Vec::new(), Vec::new());
        let (mut h_final, mut c_final) = (Vec::new(), Vec::new());
        for layer in &self.encoder {
            let u = hd / layer.len(); // units per direction
            let mut out = vec![0f32; total * hd]; // per row [→; ←]
            let (mut h_layer, mut c_layer) = (vec![0f32; n * hd], vec![0f32; n * hd]);
            for (d, cell) in layer.iter().enumerate() {
                cell.ih.forward(&x, total, &mut pre, threads);
                let (mut h, mut c) = (vec![0f32; n * u], vec![0f32; n * u]);
                // Backward, a sentence's rows join the running prefix at its last token, from zero.
                let times: Vec<usize> =
                    if d == 0 { (0..longest).collect() } else { (0..longest).rev().collect() };
                for t in times {
                    let r = running[t];
                    cell.hh.forward(&h[..r * u], r, &mut rec, threads);
                    add_in_place(&mut rec, &pre[offsets[t] * 4 * u..(offsets[t] + r) * 4 * u]);
                    cell_update(&rec, &mut h[..r * u], &mut c[..r * u], u);
                    for slot in 0..r {
                        let row = offsets[t] + slot;
                        out[row * hd + d * u..row * hd + (d + 1) * u]
                            .copy_from_slice(&h[slot * u..(slot + 1) * u]);
                    }
                }
                for slot in 0..n {
                    let to = slot * hd + d * u..slot * hd + (d + 1) * u;
                    h_layer[to.clone()].copy_from_slice(&h[slot * u..(slot + 1) * u]);
                    c_layer[to].copy_from_slice(&c[slot * u..(slot + 1) * u]);
                }
            }
            h_final.push(h_layer);
            c_final.push(c_layer);
            x = out;
        }
        // Per sentence (input order): values, keys, and the decoder's initial state.
        let mut memory = Vec::with_capacity(n);
        let mut slot_of = vec![0; n];
        for (slot, &i) in order.iter().enumerate() {
            slot_of[i] = slot;
        }
        let mut keys = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            let slot = slot_of[i];
            let mut values = Vec::with_capacity(len * hd);
            for offset in &offsets[..len] {
                let row = offset + slot;
                values.extend_from_slice(&x[row * hd..(row + 1) * hd]);
            }
            self.attn_score.forward(&values, len, &mut keys, Threads(1));
            memory.push(Memory { values, keys: keys.clone() });
        }
        let reorder = |per_slot: &Vec<f32>| -> Vec<f32> {
            (0..n).flat_map(|i| per_slot[slot_of[i] * hd..(slot_of[i] + 1) * hd].iter().copied()).collect()
        };
        let (mut h, mut c): (Vec<Vec<f32>>, Vec<Vec<f32>>) =
            (h_final.iter().map(reorder).collect(), c_final.iter().map(reorder).collect());
        if let Some(bridge) = &self.bridge {
            let mut y = Vec::new();
            for ((h, c), (bh, bc)) in h.iter_mut().zip(&mut c).zip(bridge) {
                bh.forward(h, n, &mut y, threads);
                h.iter_mut().zip(&y).for_each(|(h, y)| *h = y.tanh());
                bc.forward(c, n, &mut y, threads);
                c.copy_from_slice(&y);
            }
        }
        LstmState {
            memory,
            row_sentence: (0..n).collect(),
            h,
            c,
            h_tilde: vec![0f32; n * hd],
            threads,
            buffers: StepBuffers::default(),
        }
    }

    fn step(&self, state: &mut LstmState, prev: &[u32], logits: &mut Vec<f32>) {
        let hd = self.hidden;
        let threads = state.threads;
        let rows = prev.len();
        let e = self.tgt_embed.cols();
        let mut buffers = std::mem::take(&mut state.buffers);
        let StepBuffers { x, gates, rec, ch, scores, h_tilde } = &mut buffers;
        // Input feeding: the first layer reads [emb(y_{t-1}); h̃_{t-1}].
        x.resize(rows * (e + hd), 0.0);
        for (r, &tok) in prev.iter().enumerate() {
            let row = &mut x[r * (e + hd)..(r + 1) * (e + hd)];
            self.tgt_embed.row_into(tok as usize, &mut row[..e]);
            row[e..].copy_from_slice(&state.h_tilde[r * hd..(r + 1) * hd]);
        }
        for (l, cell) in self.decoder.iter().enumerate() {
            // Layer l reads layer l-1's new h (the input feed for layer 0) and updates its own.
            let (below, this) = state.h.split_at_mut(l);
            let input = below.last().unwrap_or(x);
            cell.ih.forward(input, rows, gates, threads);
            cell.hh.forward(&this[0], rows, rec, threads);
            add_in_place(gates, rec);
            cell_update(gates, &mut this[0], &mut state.c[l], hd);
        }
        // Global attention over the row's source: a_t = softmax(keys·h_t), c_t = Σ a_t(s) h̄_s.
        let h_t = state.h.last().expect("at least one layer");
        ch.clear();
        ch.resize(rows * 2 * hd, 0.0); // [c_t; h_t], c_t accumulated from zero
        for r in 0..rows {
            let mem = &state.memory[state.row_sentence[r]];
            let q = &h_t[r * hd..(r + 1) * hd];
            scores.clear();
            scores.extend(mem.keys.chunks_exact(hd).map(|k| dot(k, q)));
            softmax(scores);
            let out = &mut ch[r * 2 * hd..(r + 1) * 2 * hd];
            for (a, v) in scores.iter().zip(mem.values.chunks_exact(hd)) {
                axpy(*a, v, &mut out[..hd]);
            }
            out[hd..].copy_from_slice(q);
        }
        // h̃_t = tanh(W_c [c_t; h_t]); logits = W_out h̃_t + b.
        self.attn_out.forward(ch, rows, h_tilde, threads);
        for v in h_tilde.iter_mut() {
            *v = v.tanh();
        }
        self.out.forward(h_tilde, rows, logits, threads);
        std::mem::swap(&mut state.h_tilde, h_tilde);
        state.buffers = buffers;
    }

    fn select_rows(&self, state: &mut LstmState, parents: &[usize]) {
        let hd = self.hidden;
        let gather = |v: &Vec<f32>| -> Vec<f32> {
            parents.iter().flat_map(|&p| v[p * hd..(p + 1) * hd].iter().copied()).collect()
        };
        state.row_sentence = parents.iter().map(|&p| state.row_sentence[p]).collect();
        state.h = state.h.iter().map(gather).collect();
        state.c = state.c.iter().map(gather).collect();
        state.h_tilde = gather(&state.h_tilde);
    }
}
