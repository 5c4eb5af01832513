//! Correctness of the model/search seam on tiny Transformers (d 32, vocab 40, fixed seeds):
//! incremental decoding equals teacher forcing, beam 1 equals greedy, batched equals one by one,
//! a tiny model overfits a tiny corpus, and the same invariants hold on trained models whose
//! hypotheses end with `</s>`, at several length penalties.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use seqkd_nmt::batch::{source_tensor, Batch};
use seqkd_nmt::config::OptimizerKind;
use seqkd_nmt::decode::{beam::beam_search, greedy::greedy};
use seqkd_nmt::loss::label_smoothed_nll;
use seqkd_nmt::model::{LstmConfig, Model, ModelConfig, Seq2Seq, TransformerConfig};
use seqkd_nmt::train::optim::Optimizer;
use tch::{nn, Device, Kind, Tensor};

const VOCAB: i64 = 40;

fn transformer_cfg() -> ModelConfig {
    ModelConfig::Transformer(TransformerConfig {
        d_model: 32,
        n_heads: 4,
        d_ff: 64,
        encoder_layers: 2,
        decoder_layers: 2,
        dropout: 0.0,
        attention_dropout: None,
        tied_embeddings: true,
        ..Default::default()
    })
}

fn lstm_cfg() -> ModelConfig {
    ModelConfig::Lstm(LstmConfig {
        embed_dim: 24,
        hidden: 24,
        layers: 2,
        dropout: 0.0,
        tied_embeddings: true,
        ..Default::default()
    })
}

/// libtorch has one RNG per process and these tests run on parallel threads: whatever draws from
/// it (seeding and initialising a model, dropout) holds this lock, so that a seed fixes a model.
static TORCH_RNG: Mutex<()> = Mutex::new(());

fn torch_rng() -> MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn model(cfg: &ModelConfig, seed: i64) -> (nn::VarStore, Model) {
    tch::set_num_threads(1);
    let _rng = torch_rng();
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = Model::new(&vs.root(), cfg, VOCAB);
    (vs, m)
}

/// Random sentences of ids 4..VOCAB (0..3 are the special ids).
fn sentences(n: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| (0..rng.random_range(2..9)).map(|_| rng.random_range(4..VOCAB as u32)).collect()).collect()
}

/// The token sequences of an n-best list.
fn tokens_of(hyps: &[seqkd_nmt::decode::Hypothesis]) -> Vec<Vec<u32>> {
    hyps.iter().map(|h| h.tokens.clone()).collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn incremental_steps_match_teacher_forced_logits() {
    for cfg in [transformer_cfg(), lstm_cfg()] {
        let (_vs, m) = model(&cfg, 1);
        let src = sentences(3, 1);
        let tgt = sentences(3, 2);
        let pairs: Vec<(&[u32], &[u32])> =
            src.iter().zip(&tgt).map(|(s, t)| (s.as_slice(), t.as_slice())).collect();
        let batch = Batch::new(&pairs, Device::Cpu);
        tch::no_grad(|| {
            let full = m.logits(&batch.src, &batch.tgt_in, false).log_softmax(-1, Kind::Float);
            let (memory, mut state) = m.encode(&batch.src);
            for t in 0..batch.tgt_in.size()[1] {
                let step = m.step(&memory, &mut state, &batch.tgt_in.select(1, t));
                assert!(max_diff(&step, &full.select(1, t)) < 1e-4, "{cfg:?}: step {t} differs");
            }
        });
    }
}

#[test]
fn beam_of_one_equals_greedy() {
    for cfg in [transformer_cfg(), lstm_cfg()] {
        let (_vs, m) = model(&cfg, 2);
        let src = sentences(6, 3);
        let rows: Vec<&[u32]> = src.iter().map(Vec::as_slice).collect();
        let x = source_tensor(&rows, Device::Cpu);
        let max_lens: Vec<usize> = src.iter().map(|s| s.len() + 5).collect();
        tch::no_grad(|| {
            let g = greedy(&m, &x, &max_lens, 1.0, true);
            let b = beam_search(&m, &x, &max_lens, 1, 1.0, 1);
            let unscored = greedy(&m, &x, &max_lens, 1.0, false);
            for ((g, b), u) in g.iter().zip(&b).zip(&unscored) {
                assert_eq!(g.tokens, b[0].tokens, "{cfg:?}");
                assert_eq!(u.tokens, g.tokens, "{cfg:?}: greedy without scores");
                assert!((g.score - b[0].score).abs() < 1e-4);
            }
        });
    }
}

#[test]
fn batched_decoding_equals_one_sentence_at_a_time() {
    for cfg in [transformer_cfg(), lstm_cfg()] {
        let (_vs, m) = model(&cfg, 3);
        let src = sentences(7, 4);
        let rows: Vec<&[u32]> = src.iter().map(Vec::as_slice).collect();
        let max_lens: Vec<usize> = src.iter().map(|s| s.len() + 5).collect();
        tch::no_grad(|| {
            let x = source_tensor(&rows, Device::Cpu);
            let g = greedy(&m, &x, &max_lens, 1.0, true);
            let b = beam_search(&m, &x, &max_lens, 4, 1.0, 4);
            for i in 0..src.len() {
                let xi = source_tensor(&rows[i..=i], Device::Cpu);
                assert_eq!(
                    greedy(&m, &xi, &max_lens[i..=i], 1.0, true)[0].tokens,
                    g[i].tokens,
                    "{cfg:?} greedy {i}"
                );
                let bi = beam_search(&m, &xi, &max_lens[i..=i], 4, 1.0, 4);
                assert_eq!(tokens_of(&bi[0]), tokens_of(&b[i]), "{cfg:?} beam {i}");
            }
        });
    }
}

#[test]
fn beam_returns_k_sorted_hypotheses_whose_token_scores_add_up() {
    let (_vs, m) = model(&transformer_cfg(), 4);
    let src = sentences(5, 5);
    let rows: Vec<&[u32]> = src.iter().map(Vec::as_slice).collect();
    let max_lens: Vec<usize> = src.iter().map(|s| s.len() + 5).collect();
    tch::no_grad(|| {
        let x = source_tensor(&rows, Device::Cpu);
        for hyps in beam_search(&m, &x, &max_lens, 5, 1.0, 5) {
            assert_eq!(hyps.len(), 5);
            assert!(hyps.windows(2).all(|w| w[0].normalized_score >= w[1].normalized_score));
            for h in &hyps {
                let sum: f32 = h.token_logprobs.iter().sum();
                assert!((sum - h.score).abs() < 1e-3);
            }
        }
    });
}

/// A tiny model trained to NLL < 0.05 on 24 random pairs, with those pairs.
fn overfit(cfg: &ModelConfig, seed: i64) -> (nn::VarStore, Model, Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let (vs, m) = model(cfg, seed);
    let src = sentences(24, 6);
    let tgt = sentences(24, 7);
    let pairs: Vec<(&[u32], &[u32])> =
        src.iter().zip(&tgt).map(|(s, t)| (s.as_slice(), t.as_slice())).collect();
    let batch = Batch::new(&pairs, Device::Cpu);
    let vars: HashMap<String, Tensor> = vs.variables();
    let mut opt = Optimizer::new(vars, OptimizerKind::Adam, (0.9, 0.98), 1e-9);
    let mut nll = f64::INFINITY;
    for _ in 0..600 {
        opt.zero_grad();
        let loss = label_smoothed_nll(&m.logits(&batch.src, &batch.tgt_in, true), &batch.tgt_out, 0.0)
            / batch.n_tgt_tokens as f64;
        loss.backward();
        opt.step(1e-2);
        nll = loss.double_value(&[]);
        if nll < 0.01 {
            break;
        }
    }
    assert!(nll < 0.05, "{cfg:?}: NLL per token still {nll}");
    (vs, m, src, tgt)
}

fn brnn_cfg() -> ModelConfig {
    let ModelConfig::Lstm(l) = lstm_cfg() else { unreachable!() };
    ModelConfig::Lstm(LstmConfig { bidirectional: true, bridge: true, ..l })
}

#[test]
fn tiny_model_overfits_tiny_corpus() {
    for cfg in [transformer_cfg(), lstm_cfg()] {
        let (_vs, m, src, tgt) = overfit(&cfg, 5);
        // Greedy decoding reproduces the training targets.
        let rows: Vec<&[u32]> = src.iter().map(Vec::as_slice).collect();
        let max_lens = vec![12; src.len()];
        let out = tch::no_grad(|| greedy(&m, &source_tensor(&rows, Device::Cpu), &max_lens, 1.0, true));
        let correct = out.iter().zip(&tgt).filter(|(h, t)| &h.tokens == *t).count();
        assert!(correct >= 22, "{cfg:?}: only {correct}/24 training targets reproduced");
    }
}

/// The search invariants again on trained models, which end their hypotheses with `</s>` (an
/// untrained one rarely does, so the finishing paths would go untested), at several length
/// penalties: beam 1 equals greedy, and batched equals one sentence at a time, greedy and beam 4.
#[test]
fn search_invariants_hold_on_trained_models_at_every_length_penalty() {
    for cfg in [transformer_cfg(), lstm_cfg(), brnn_cfg()] {
        let (_vs, m, src, _tgt) = overfit(&cfg, 8);
        let rows: Vec<&[u32]> = src.iter().map(Vec::as_slice).collect();
        let max_lens = vec![12; src.len()];
        tch::no_grad(|| {
            let x = source_tensor(&rows, Device::Cpu);
            for lp in [0.0, 0.6, 1.0, 1.5] {
                let g = greedy(&m, &x, &max_lens, lp, true);
                let unscored = greedy(&m, &x, &max_lens, lp, false);
                let same = g.iter().zip(&unscored).all(|(g, u)| g.tokens == u.tokens);
                assert!(same, "{cfg:?} lp {lp}: greedy without scores chose other tokens");
                let finished = g.iter().filter(|h| h.token_logprobs.len() == h.tokens.len() + 1).count();
                assert!(finished >= 22, "{cfg:?} lp {lp}: only {finished}/24 greedy outputs ended with </s>");
                let b1 = beam_search(&m, &x, &max_lens, 1, lp, 1);
                let b4 = beam_search(&m, &x, &max_lens, 4, lp, 4);
                for i in 0..src.len() {
                    assert_eq!(g[i].tokens, b1[i][0].tokens, "{cfg:?} lp {lp}: beam 1 vs greedy, row {i}");
                    assert!((g[i].score - b1[i][0].score).abs() < 1e-4);
                    let xi = source_tensor(&rows[i..=i], Device::Cpu);
                    let gi = greedy(&m, &xi, &max_lens[i..=i], lp, true);
                    assert_eq!(gi[0].tokens, g[i].tokens, "{cfg:?} lp {lp}: greedy row {i}");
                    let bi = beam_search(&m, &xi, &max_lens[i..=i], 4, lp, 4);
                    assert_eq!(tokens_of(&bi[0]), tokens_of(&b4[i]), "{cfg:?} lp {lp}: beam 4 row {i}");
                    assert!(b4[i].windows(2).all(|w| w[0].normalized_score >= w[1].normalized_score));
                }
            }
        });
    }
}

/// `attention_dropout` reaches the attention layers, apart from `dropout`: with only attention
/// dropout, two training-mode passes differ; with neither, they are equal.
#[test]
fn attention_dropout_is_its_own_option() {
    let with = |attention_dropout| {
        let ModelConfig::Transformer(t) = transformer_cfg() else { unreachable!() };
        ModelConfig::Transformer(TransformerConfig { dropout: 0.0, attention_dropout, ..t })
    };
    let src = sentences(3, 1);
    let tgt = sentences(3, 2);
    let pairs: Vec<(&[u32], &[u32])> =
        src.iter().zip(&tgt).map(|(s, t)| (s.as_slice(), t.as_slice())).collect();
    let batch = Batch::new(&pairs, Device::Cpu);
    for (attention_dropout, same) in [(Some(0.0), true), (None, true), (Some(0.5), false)] {
        let (_vs, m) = model(&with(attention_dropout), 1);
        let _rng = torch_rng();
        let (a, b) = tch::no_grad(|| {
            (m.logits(&batch.src, &batch.tgt_in, true), m.logits(&batch.src, &batch.tgt_in, true))
        });
        assert_eq!(max_diff(&a, &b) < 1e-6, same, "attention_dropout {attention_dropout:?}");
    }
}
