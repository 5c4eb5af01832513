//! seqkd's LSTM against an independent PyTorch implementation of the same model
//! (`benches/lstm_reference.py`, which wrote `golden/lstm_reference.safetensors`): the same
//! weights and batches give the same loss and gradients on one batch, and the trainer's own update
//! (`train::step::Update`, what `seqkd train` runs) gives the same loss curve over 300 Adam updates.
//! Two models: the paper's (unidirectional, tied output layer) and one with a bidirectional
//! encoder and the bridge (untied).

use std::collections::HashMap;
use std::path::PathBuf;

use seqkd_nmt::batch::Batch;
use seqkd_nmt::config::{OptimizerKind, TrainConfig};
use seqkd_nmt::loss::label_smoothed_nll;
use seqkd_nmt::model::{LstmConfig, LstmSeq2Seq, Seq2Seq};
use seqkd_nmt::train::method::{CrossEntropy, Unconstrained};
use seqkd_nmt::train::optim::Optimizer;
use seqkd_nmt::train::step::Update;
use seqkd_text::vocab::SPECIAL_IDS;
use serde_json::Value;
use tch::{nn, Device, Tensor};

fn golden() -> (HashMap<String, Tensor>, Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/lstm_reference.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let about = header.metadata().as_ref().unwrap()["about"].clone();
    let tensors = Tensor::read_safetensors(&path).unwrap().into_iter().collect();
    (tensors, serde_json::from_str(&about).unwrap())
}

/// The golden batch `j` of `name`, rebuilt from its sentences by seqkd's `Batch` (which must lay it
/// out exactly as the reference did).
fn batch(g: &HashMap<String, Tensor>, name: &str, j: usize) -> Batch {
    let rows = |t: &Tensor| Vec::<Vec<i64>>::try_from(t).unwrap();
    let strip = |row: &[i64]| -> Vec<u32> {
        row.iter()
            .filter(|&&id| id != SPECIAL_IDS.pad as i64 && id != SPECIAL_IDS.eos as i64)
            .map(|&id| id as u32)
            .collect()
    };
    let srcs: Vec<Vec<u32>> = rows(&g[&format!("{name}.batch{j}.src")]).iter().map(|r| strip(r)).collect();
    let tgts: Vec<Vec<u32>> =
        rows(&g[&format!("{name}.batch{j}.tgt_out")]).iter().map(|r| strip(r)).collect();
    let pairs: Vec<(&[u32], &[u32])> =
        srcs.iter().zip(&tgts).map(|(s, t)| (s.as_slice(), t.as_slice())).collect();
    let batch = Batch::new(&pairs, Device::Cpu);
    for (field, tensor) in [("src", &batch.src), ("tgt_in", &batch.tgt_in), ("tgt_out", &batch.tgt_out)] {
        assert!(
            tensor.equal(&g[&format!("{name}.batch{j}.{field}")]),
            "{name} batch {j}: {field} laid out differently"
        );
    }
    batch
}

/// seqkd's model with the reference's weights (every variable, and nothing else).
fn model(g: &HashMap<String, Tensor>, name: &str, c: &Value) -> (nn::VarStore, LstmSeq2Seq) {
    let cfg = LstmConfig {
        embed_dim: c["embed_dim"].as_i64().unwrap(),
        hidden: c["hidden"].as_i64().unwrap(),
        layers: c["layers"].as_i64().unwrap(),
        dropout: 0.0,
        tied_embeddings: c["tied_embeddings"].as_bool().unwrap(),
        bidirectional: c["bidirectional"].as_bool().unwrap(),
        bridge: c["bridge"].as_bool().unwrap(),
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let m = LstmSeq2Seq::new(&vs.root(), &cfg, c["vocab"].as_i64().unwrap());
    let prefix = format!("{name}.weight.");
    let wanted = g.keys().filter(|k| k.starts_with(&prefix)).count();
    assert_eq!(vs.variables().len(), wanted, "{name}: seqkd and the reference have different parameters");
    tch::no_grad(|| {
        for (k, mut v) in vs.variables() {
            let w =
                g.get(&format!("{prefix}{k}")).unwrap_or_else(|| panic!("{name}: the reference has no {k}"));
            v.copy_(w);
        }
    });
    (vs, m)
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

#[test]
fn loss_and_gradients_on_one_batch_equal_pytorch() {
    tch::set_num_threads(1);
    let (g, about) = golden();
    let smoothing = about["label_smoothing"].as_f64().unwrap();
    for (name, c) in about["configs"].as_object().unwrap() {
        let (vs, m) = model(&g, name, c);
        let b = batch(&g, name, 0);
        let loss = label_smoothed_nll(&m.logits(&b.src, &b.tgt_in, true), &b.tgt_out, smoothing)
            / b.n_tgt_tokens as f64;
        loss.backward();
        let (got, want) = (loss.double_value(&[]), g[&format!("{name}.loss")].double_value(&[0]));
        assert!((got - want).abs() < 1e-5, "{name}: loss {got} vs PyTorch {want}");
        let mut worst = (0.0, String::new());
        for (k, v) in vs.variables() {
            let want = &g[&format!("{name}.grad.{k}")];
            let diff = max_abs(&(v.grad() - want)) / max_abs(want).max(1e-3);
            if diff > worst.0 {
                worst = (diff, k);
            }
        }
        // Relative to each gradient's largest entry: float32 summation order, nothing more.
        assert!(
            worst.0 < 1e-4,
            "{name}: gradient of {} differs from PyTorch's by {:.2e} (relative)",
            worst.1,
            worst.0
        );
        eprintln!(
            "{name}: loss {got:.7} (PyTorch {want:.7}); worst relative gradient difference {:.1e} ({})",
            worst.0, worst.1
        );
    }
}

#[test]
fn training_curve_of_the_trainers_update_equals_pytorch() {
    tch::set_num_threads(1);
    let (g, about) = golden();
    let train = TrainConfig {
        label_smoothing: about["label_smoothing"].as_f64().unwrap(),
        clip_norm: about["clip_norm"].as_f64().unwrap(),
        adam_betas: (about["betas"][0].as_f64().unwrap(), about["betas"][1].as_f64().unwrap()),
        adam_eps: about["eps"].as_f64().unwrap(),
        ..TrainConfig::default()
    };
    let (lr, updates) = (about["lr"].as_f64().unwrap(), about["updates"].as_u64().unwrap() as usize);
    let n_batches = about["batches"].as_u64().unwrap() as usize;
    for (name, c) in about["configs"].as_object().unwrap() {
        let (vs, m) = model(&g, name, c);
        let batches: Vec<Batch> = (0..n_batches).map(|j| batch(&g, name, j)).collect();
        let vars = vs.variables();
        let mut opt = Optimizer::new(vs.variables(), OptimizerKind::Adam, train.adam_betas, train.adam_eps);
        let update = Update {
            model: &m,
            vars: &vars,
            objective: &CrossEntropy,
            constraint: &Unconstrained,
            train: &train,
            data_parallel: None,
        };
        let want = Vec::<f64>::try_from(&g[&format!("{name}.curve")]).unwrap();
        let mut worst = (0.0f64, 0);
        for (step, want) in want.iter().enumerate().take(updates) {
            let b = &batches[step % n_batches];
            let sentences: Vec<usize> = (0..b.src.size()[0] as usize).collect();
            let got = update.run(&mut opt, b, &sentences, step as i64, lr) / b.n_tgt_tokens as f64;
            let diff = (got - want).abs() / want.abs();
            if diff > worst.0 {
                worst = (diff, step);
            }
        }
        assert!(
            worst.0 < 1e-4,
            "{name}: loss at update {} differs from PyTorch's by {:.2e} (relative)",
            worst.1,
            worst.0
        );
        let (first, last) = (want[0], want[updates - 1]);
        assert!(last < first - 0.5, "{name}: the reference curve must fall ({first} -> {last})");
        eprintln!("{name}: {updates} updates, loss {first:.4} -> {last:.4}; worst relative difference {:.1e} at update {}", worst.0, worst.1);
    }
}
