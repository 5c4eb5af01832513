//! The native engine on model directories built here (random weights, a BPE vocabulary trained on
//! a few sentences): no libtorch involved. Agreement with the libtorch decoder is checked by the
//! binary's tests (tests/cli.rs), which have both engines.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use seqkd_runtime::format::{Hypothesis, MASK_SUFFIX, SHAPE_SUFFIX, VALUES_SUFFIX};
use seqkd_runtime::kernels::Threads;
use seqkd_runtime::translator::{LoadError, Precision};
use seqkd_runtime::Translator;
use seqkd_text::vocab::{Vocab, VocabConfig};

const SENTENCES: &[&str] = &[
    "a man is riding a bike down the street",
    "two dogs play in the snow",
    "a woman in a red dress sings",
    "children are playing football in the park",
    "the old man reads a newspaper on a bench",
    "a girl with a blue hat",
    "three people walk along the beach at sunset",
    "a cat sleeps",
];

/// Deterministic pseudo-random weights in [-scale, scale].
fn noise(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

struct Tensors(Vec<(String, Dtype, Vec<usize>, Vec<u8>)>);

impl Tensors {
    fn f32(&mut self, name: &str, shape: &[usize], data: &[f32]) {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.0.push((format!("model.{name}"), Dtype::F32, shape.to_vec(), bytes));
    }
    fn write(&self, path: &Path) {
        let views: Vec<(String, TensorView)> = self
            .0
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        std::fs::write(path, safetensors::serialize(views, None::<HashMap<String, String>>).unwrap())
            .unwrap();
    }
}

/// A Transformer model directory (d 16, 2 heads, 2+1 layers) with random weights. `prune` stores
/// the first encoder FFN matrix compactly with every other weight removed.
fn model_dir(dir: &Path, tied: bool, prune: bool) -> Vocab {
    let vocab = Vocab::train(
        SENTENCES.iter().copied(),
        &VocabConfig { size: 300, min_frequency: 1, ..Default::default() },
    )
    .unwrap();
    vocab.save(&dir.join("vocab.json")).unwrap();
    let (d, ff, v) = (16, 32, vocab.len());
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[data]\ntrain_src = \"nowhere\"\n[model]\narch = \"transformer\"\nd_model = {d}\nn_heads = 2\nd_ff = {ff}\n\
             encoder_layers = 2\ndecoder_layers = 1\ndropout = 0.1\ntied_embeddings = {tied}\n\
             [decode]\nbeam_size = 3\nmax_len_a = 1.0\nmax_len_b = 4\n"
        ),
    )
    .unwrap();
    let mut t = Tensors(Vec::new());
    let mut seed = 1;
    let mut next = |n: usize, scale: f32| {
        seed += 1;
        noise(n, seed, scale)
    };
    let mut linear = |t: &mut Tensors, name: &str, out: usize, inp: usize| {
        t.f32(&format!("{name}.weight"), &[out, inp], &next(out * inp, 0.5));
        t.f32(&format!("{name}.bias"), &[out], &next(out, 0.1));
    };
    let norm = |t: &mut Tensors, name: &str| {
        t.f32(&format!("{name}.weight"), &[d], &vec![1.0; d]);
        t.f32(&format!("{name}.bias"), &[d], &vec![0.0; d]);
    };
    for i in 0..2 {
        let p = format!("encoder.{i}");
        norm(&mut t, &format!("{p}.self_attn_norm"));
        norm(&mut t, &format!("{p}.ffn_norm"));
        for x in ["q", "k", "v", "out"] {
            linear(&mut t, &format!("{p}.self_attn.{x}_proj"), d, d);
        }
        linear(&mut t, &format!("{p}.ffn.fc1"), ff, d);
        linear(&mut t, &format!("{p}.ffn.fc2"), d, ff);
    }
    let p = "decoder.0";
    for n in ["self_attn_norm", "cross_attn_norm", "ffn_norm"] {
        norm(&mut t, &format!("{p}.{n}"));
    }
    for a in ["self_attn", "cross_attn"] {
        for x in ["q", "k", "v", "out"] {
            linear(&mut t, &format!("{p}.{a}.{x}_proj"), d, d);
        }
    }
    linear(&mut t, &format!("{p}.ffn.fc1"), ff, d);
    linear(&mut t, &format!("{p}.ffn.fc2"), d, ff);
    norm(&mut t, "encoder_norm");
    norm(&mut t, "decoder_norm");
    t.f32("src_embed.weight", &[v, d], &noise(v * d, 99, 0.3));
    if !tied {
        t.f32("tgt_embed.weight", &[v, d], &noise(v * d, 98, 0.3));
        linear(&mut t, "out_proj", v, d);
    }
    if prune {
        let name = "model.encoder.0.ffn.fc1.weight";
        let i = t.0.iter().position(|e| e.0 == name).unwrap();
        let (_, _, shape, bytes) = t.0.remove(i);
        let values: Vec<f32> = bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        let mut mask = vec![0u8; values.len().div_ceil(8)];
        let mut kept = Vec::new();
        for (j, w) in values.iter().enumerate() {
            if j % 2 == 0 {
                mask[j / 8] |= 1 << (j % 8);
                kept.push(*w);
            }
        }
        t.0.push((format!("{name}{MASK_SUFFIX}"), Dtype::U8, vec![mask.len()], mask));
        t.0.push((
            format!("{name}{VALUES_SUFFIX}"),
            Dtype::F32,
            vec![kept.len()],
            kept.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
        let shape_bytes = shape.iter().flat_map(|&s| (s as i64).to_le_bytes()).collect();
        t.0.push((format!("{name}{SHAPE_SUFFIX}"), Dtype::I64, vec![2], shape_bytes));
        // The dense equivalent, for comparison.
        let dense: Vec<f32> =
            values.iter().enumerate().map(|(j, w)| if j % 2 == 0 { *w } else { 0.0 }).collect();
        let mut dense_t = Tensors(t.0.clone());
        dense_t.0.retain(|e| !e.0.starts_with(name));
        dense_t.f32("encoder.0.ffn.fc1.weight", &shape, &dense);
        dense_t.write(&dir.join("dense-equivalent.safetensors"));
    }
    t.write(&dir.join("model.safetensors"));
    vocab
}

/// Beam search with `k` called directly (the translator dispatches K = 1 to greedy search).
fn seqkd_runtime_beam(t: &Translator, k: usize) -> Vec<Vec<Hypothesis>> {
    let ids = t.vocab.encode_src_batch(&inputs()).unwrap();
    let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let max_lens: Vec<usize> =
        rows.iter().map(|r| seqkd_runtime::format::max_output_len(&t.cfg, r.len())).collect();
    match &t.model {
        seqkd_runtime::NativeModel::Transformer(m) => {
            seqkd_runtime::search::beam_search(m, &rows, &max_lens, k, t.cfg.length_penalty, 1, Threads(1))
        }
        seqkd_runtime::NativeModel::Lstm(m) => {
            seqkd_runtime::search::beam_search(m, &rows, &max_lens, k, t.cfg.length_penalty, 1, Threads(1))
        }
    }
}

/// An LSTM model directory (embeddings 12, hidden 16, 2 layers, untied) with random weights;
/// `options`: with a bidirectional encoder and the bridge.
fn lstm_model_dir(dir: &Path, options: bool) {
    let vocab = Vocab::train(
        SENTENCES.iter().copied(),
        &VocabConfig { size: 300, min_frequency: 1, ..Default::default() },
    )
    .unwrap();
    vocab.save(&dir.join("vocab.json")).unwrap();
    let (e, h, v) = (12, 16, vocab.len());
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[model]\narch = \"lstm\"\nembed_dim = 12\nhidden = 16\nlayers = 2\ndropout = 0.3\n\
             tied_embeddings = false\nbidirectional = {options}\nbridge = {options}\n\
             [decode]\nbeam_size = 3\nmax_len_a = 1.0\nmax_len_b = 4\n"
        ),
    )
    .unwrap();
    let mut t = Tensors(Vec::new());
    let mut seed = 50;
    let mut param = |t: &mut Tensors, name: &str, shape: &[usize]| {
        seed += 1;
        t.f32(name, shape, &noise(shape.iter().product(), seed, 0.4));
    };
    let directions: &[&str] = if options { &["", "_reverse"] } else { &[""] };
    for (side, first_in, dirs) in [("encoder", e, directions), ("decoder", e + h, &[""][..])] {
        let u = h / dirs.len();
        for l in 0..2 {
            let inp = if l == 0 { first_in } else { h };
            for d in dirs {
                param(&mut t, &format!("{side}.lstm.weight_ih_l{l}{d}"), &[4 * u, inp]);
                param(&mut t, &format!("{side}.lstm.weight_hh_l{l}{d}"), &[4 * u, u]);
                param(&mut t, &format!("{side}.lstm.bias_ih_l{l}{d}"), &[4 * u]);
                param(&mut t, &format!("{side}.lstm.bias_hh_l{l}{d}"), &[4 * u]);
            }
            if options && side == "decoder" {
                for s in ["h", "c"] {
                    param(&mut t, &format!("decoder.bridge.{s}_l{l}.weight"), &[h, h]);
                    param(&mut t, &format!("decoder.bridge.{s}_l{l}.bias"), &[h]);
                }
            }
        }
    }
    param(&mut t, "decoder.attn_score.weight", &[h, h]);
    param(&mut t, "decoder.attn_out.weight", &[h, 2 * h]);
    param(&mut t, "src_embed.weight", &[v, e]);
    param(&mut t, "tgt_embed.weight", &[v, e]);
    param(&mut t, "out_proj.weight", &[v, h]);
    param(&mut t, "out_proj.bias", &[v]);
    t.write(&dir.join("model.safetensors"));
}

#[test]
fn lstm_batched_equals_one_sentence_at_a_time_with_sources_of_different_lengths() {
    for options in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        lstm_model_dir(dir.path(), options);
        lstm_batched_equals_one_at_a_time(dir.path());
    }
}

fn lstm_batched_equals_one_at_a_time(dir: &Path) {
    for threads in [1, 2] {
        let mut t = Translator::load(dir, None, Precision::AsStored, threads).unwrap();
        let greedy = translate(&mut t, 1, 0, 1);
        assert_same(&translate(&mut t, 1, 1, 1), &greedy, "lstm greedy: batched vs one at a time");
        let beam = translate(&mut t, 3, 0, 3);
        assert_same(&translate(&mut t, 3, 1, 3), &beam, "lstm beam: batched vs one at a time");
        assert_same(&seqkd_runtime_beam(&t, 1), &greedy, "lstm beam K = 1 vs greedy");
        let mut q = Translator::load(dir, None, Precision::Int8, threads).unwrap();
        assert_eq!(translate(&mut q, 3, 0, 3).len(), SENTENCES.len());
    }
}

fn inputs() -> Vec<String> {
    SENTENCES.iter().map(|s| s.to_string()).collect()
}

fn translate(t: &mut Translator, beam: usize, max_sentences: usize, nbest: usize) -> Vec<Vec<Hypothesis>> {
    t.cfg.beam_size = beam;
    t.cfg.max_sentences = max_sentences;
    t.translate(&inputs(), nbest, |_| {}).unwrap()
}

/// Same tokens; scores equal up to float rounding (matrix products of different batch sizes may
/// round differently in the last bit).
fn assert_same(a: &[Vec<Hypothesis>], b: &[Vec<Hypothesis>], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert_eq!(x.tokens, y.tokens, "{what}");
        assert!((x.normalized_score - y.normalized_score).abs() < 1e-4, "{what}: {x:?} vs {y:?}");
    }
    assert_eq!(a.iter().flatten().count(), b.iter().flatten().count(), "{what}");
}

#[test]
fn batched_decoding_equals_one_sentence_at_a_time_and_beam_one_equals_greedy() {
    for tied in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        model_dir(dir.path(), tied, false);
        for threads in [1, 2] {
            let mut t = Translator::load(dir.path(), None, Precision::AsStored, threads).unwrap();
            let greedy = translate(&mut t, 1, 0, 1);
            assert!(greedy.iter().all(|h| h.len() == 1 && !h[0].tokens.is_empty()), "{greedy:?}");
            assert_same(&translate(&mut t, 1, 1, 1), &greedy, "greedy: batched vs one at a time");
            let mut t1 = Translator::load(dir.path(), None, Precision::AsStored, threads).unwrap();
            t1.cfg.beam_size = 1;
            assert_same(&seqkd_runtime_beam(&t1, 1), &greedy, "beam search with K = 1 vs greedy");
            let beam = translate(&mut t, 3, 0, 3);
            assert!(beam.iter().all(|h| h.len() == 3), "n-best of 3");
            assert_same(&translate(&mut t, 3, 1, 3), &beam, "beam: batched vs one at a time");
            // The beam's best is at least as good as greedy under the model's own scores.
            for (b, g) in beam.iter().zip(&greedy) {
                assert!(b[0].normalized_score >= g[0].normalized_score - 1e-5);
            }
        }
    }
}

#[test]
fn greedy_hypotheses_carry_consistent_scores() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path(), true, false);
    let mut t = Translator::load(dir.path(), None, Precision::AsStored, 1).unwrap();
    for h in translate(&mut t, 1, 0, 1).iter().flatten() {
        let sum: f32 = h.token_logprobs.iter().sum();
        assert!((sum - h.score).abs() < 1e-4);
        assert!(h.token_logprobs.iter().all(|&lp| lp <= 0.0));
        // Stops at `</s>` (one more log-prob than tokens) or at the length limit.
        assert!(h.token_logprobs.len() == h.tokens.len() + 1 || h.tokens.len() >= 4);
    }
    // Without scores: the same translations, log-probabilities left at 0.
    let scored = translate(&mut t, 1, 0, 1);
    t.scores = false;
    let unscored = translate(&mut t, 1, 0, 1);
    for (a, b) in scored.iter().flatten().zip(unscored.iter().flatten()) {
        assert_eq!(a.tokens, b.tokens);
        assert!(b.token_logprobs.iter().all(|&lp| lp == 0.0));
    }
}

#[test]
fn a_pruned_model_loads_as_its_dense_equivalent() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path(), true, true);
    let mut compact = Translator::load(dir.path(), None, Precision::AsStored, 1).unwrap();
    let mut dense =
        Translator::load(dir.path(), Some("dense-equivalent.safetensors"), Precision::AsStored, 1).unwrap();
    assert_eq!(translate(&mut compact, 3, 0, 3), translate(&mut dense, 3, 0, 3));
}

#[test]
fn quantized_directory_decodes_as_int8_at_load_and_is_a_quarter_of_the_size() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path(), false, true);
    let out = dir.path().join("int8");
    let summary = seqkd_runtime::quantize::quantize_model_dir(dir.path(), &out).unwrap();
    assert_eq!(summary.matrices, 2 * 6 + 10 + 3, "every weight matrix is int8");
    // A quarter for the matrices; this toy model's f32 biases and norms make the whole ~40%.
    assert!(summary.bytes_after * 100 < summary.bytes_before * 45, "{summary:?}");
    let mut stored = Translator::load(&out, None, Precision::AsStored, 1).unwrap();
    let mut at_load = Translator::load(dir.path(), None, Precision::Int8, 1).unwrap();
    let mut f32 = Translator::load(dir.path(), None, Precision::AsStored, 1).unwrap();
    let int8 = translate(&mut stored, 3, 0, 1);
    assert_eq!(int8, translate(&mut at_load, 3, 0, 1));
    // int8 scores stay close to f32 on the first token (before paths can diverge).
    for (q, f) in translate(&mut stored, 1, 0, 1).iter().zip(translate(&mut f32, 1, 0, 1)) {
        if q[0].tokens.first() == f[0].tokens.first() {
            assert!((q[0].token_logprobs[0] - f[0].token_logprobs[0]).abs() < 0.1);
        }
    }
}

#[test]
fn wrong_model_directories_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path(), true, false);
    let error = |e: LoadError| e.to_string();
    // A parameter missing from the weights is named.
    let cfg = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    std::fs::write(dir.path().join("config.toml"), cfg.replace("encoder_layers = 2", "encoder_layers = 3"))
        .unwrap();
    let e = error(Translator::load(dir.path(), None, Precision::AsStored, 1).err().unwrap());
    assert!(e.contains("encoder.2.self_attn_norm.weight"), "{e}");
    // A config of the other architecture names what is missing.
    std::fs::write(dir.path().join("config.toml"), "[model]\narch = \"lstm\"\n").unwrap();
    let e = error(Translator::load(dir.path(), None, Precision::AsStored, 1).err().unwrap());
    assert!(e.contains("no parameter encoder.lstm.weight_ih_l0"), "{e}");
    // Fewer layers in the config than in the weights: the unused parameters are named.
    std::fs::write(dir.path().join("config.toml"), cfg.replace("encoder_layers = 2", "encoder_layers = 1"))
        .unwrap();
    let e = error(Translator::load(dir.path(), None, Precision::AsStored, 1).err().unwrap());
    assert!(e.contains("encoder.1.") && e.contains("does not use"), "{e}");
    // Impossible decoding settings are refused at load, not met by a panic later.
    std::fs::write(dir.path().join("config.toml"), cfg.replace("[decode]", "[decode]\nbatch_tokens = 0"))
        .unwrap();
    let e = error(Translator::load(dir.path(), None, Precision::AsStored, 1).err().unwrap());
    assert!(e.contains("batch_tokens"), "{e}");
    // A truncated weights file names the file.
    std::fs::write(dir.path().join("config.toml"), cfg).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), b"garbage").unwrap();
    let e = error(Translator::load(dir.path(), None, Precision::AsStored, 1).err().unwrap());
    assert!(e.contains("model.safetensors"), "{e}");
}

/// Teacher-forced top-k ([`seqkd_runtime::forced`]) on greedy search's own output: at every
/// position the most likely token is the one greedy chose, with the probability greedy scored it
/// with; whole batches equal one sentence at a time; probabilities are sorted and sum to ≤ 1.
#[test]
fn teacher_forced_top_k_on_greedy_output_finds_greedy_choices_for_both_architectures() {
    for arch in ["transformer", "lstm"] {
        let dir = tempfile::tempdir().unwrap();
        if arch == "transformer" {
            model_dir(dir.path(), false, false);
        } else {
            lstm_model_dir(dir.path(), true);
        }
        for threads in [1, 2] {
            let mut t = Translator::load(dir.path(), None, Precision::AsStored, threads).unwrap();
            let greedy = translate(&mut t, 1, 0, 1);
            let srcs = t.vocab.encode_src_batch(&inputs()).unwrap();
            let tgts: Vec<Vec<u32>> = greedy.iter().map(|h| h[0].tokens.clone()).collect();
            let k = 4;
            let batched = t.forced_topk_ids(&srcs, &tgts, k, 1.0, 4096);
            for (i, (scored, h)) in batched.iter().zip(&greedy).enumerate() {
                let h = &h[0];
                // Positions: every token, plus `</s>` (scored even when greedy stopped at the limit).
                assert_eq!(scored.positions(k), h.tokens.len() + 1, "{arch} sentence {i}");
                let chosen = h.tokens.iter().copied().chain([seqkd_text::vocab::SPECIAL_IDS.eos]);
                for (j, (tok, lp)) in chosen.zip(&h.token_logprobs).enumerate() {
                    assert_eq!(scored.ids[j * k], tok, "{arch} sentence {i} position {j}");
                    assert!((scored.probs[j * k].ln() - lp).abs() < 1e-4, "{arch} {i}:{j}");
                }
                for p in scored.probs.chunks(k) {
                    assert!(p.windows(2).all(|w| w[0] >= w[1]) && p.iter().sum::<f32>() <= 1.0 + 1e-5);
                }
            }
            // One sentence per batch, and a temperature: at T = 2 the ranking stays and
            // p_T(a) / p_T(b) = sqrt(p(a) / p(b)).
            let single = t.forced_topk_ids(&srcs, &tgts, k, 1.0, 1);
            for (a, b) in batched.iter().zip(&single) {
                assert_eq!(a.ids, b.ids, "{arch}: batched vs one at a time");
                assert!(a.probs.iter().zip(&b.probs).all(|(x, y)| (x - y).abs() < 1e-5));
            }
            let hot = t.forced_topk_ids(&srcs, &tgts, k, 2.0, 4096);
            for (a, b) in batched.iter().zip(&hot) {
                assert_eq!(a.ids, b.ids, "{arch}: T = 2 keeps the ranking");
                for (x, y) in a.probs.chunks(k).zip(b.probs.chunks(k)) {
                    for r in 1..k {
                        let (want, got) = ((x[r] / x[0]).sqrt(), y[r] / y[0]);
                        assert!((want - got).abs() < 1e-4 * want.max(1e-3), "{arch}: {x:?} at T = 2 {y:?}");
                    }
                }
            }
        }
    }
}
