//! `seqkd bench-kd`: what distillation costs, measured with a
//! real teacher on real data, every comparison inside this one process.
//!
//! 1. The Seq-KD teacher pass: beam 5 over `--sentences` training sources, batched (as `seqkd
//!    distill seq-kd` runs it) against one sentence at a time, in sentences/s.
//! 2. The stored top-k file for those sentences: time, and bytes per target position; the size for
//!    the whole corpus follows from its token count.
//! 3. Student training speed (target tokens/s) on the same batches: plain cross-entropy, Word-KD
//!    from the stored top-k, and Word-KD with the live teacher.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use tch::nn;

use seqkd_text::batching::{BatchConfig, Batcher};
use seqkd_text::corpus::{read_parallel, LineLimits};

use crate::batch::Batch;
use crate::config::{DecodeConfig, OptimizerKind, TrainConfig, WordKdConfig};
use crate::decode::Translator;
use crate::distill::word_kd::{write_topk_store, TopkOptions, WordKd};
use crate::distill::PassOptions;
use crate::error::{io_err, Error};
use crate::model::{Model, ModelConfig, TransformerConfig};
use crate::model_dir::LoadedModel;
use crate::train::method::{CrossEntropy, Objective, Unconstrained};
use crate::train::optim::Optimizer;
use crate::train::step::Update;

/// What to measure, and with what.
#[derive(Debug, Clone)]
pub struct Options {
    /// The teacher's model directory.
    pub teacher: PathBuf,
    pub src: PathBuf,
    pub tgt: PathBuf,
    /// Training pairs used (the first N).
    pub sentences: usize,
    /// Of those, how many to also translate one sentence at a time.
    pub single: usize,
    /// Timed student training steps per mode (after 3 untimed).
    pub steps: usize,
    pub threads: i32,
    /// The k of the stored top-k.
    pub k: usize,
    /// Where to write the top-k file (default: a temporary directory, removed afterwards).
    pub work_dir: Option<PathBuf>,
}

/// Runs the three measurements; returns them as Markdown tables.
pub fn run(args: &Options) -> Result<String, Error> {
    let mut out = String::new();
    tch::set_num_threads(args.threads);
    let device = tch::Device::Cpu;
    let teacher = LoadedModel::load(&args.teacher, device, None)?;
    let mut corpus = read_parallel(&args.src, &args.tgt, &LineLimits::default())?;
    corpus.src.truncate(args.sentences);
    corpus.tgt.truncate(args.sentences);
    let n = corpus.src.len();
    let _ = writeln!(
        out,
        "# seqkd bench-kd: teacher {} on {n} pairs of {}, {} thread(s)\n",
        args.teacher.display(),
        args.src.display(),
        args.threads
    );

    // 1) The Seq-KD teacher pass, batched against one sentence at a time.
    let decode = DecodeConfig { beam_size: 5, ..teacher.config.decode.clone() };
    let translator =
        Translator { model: &teacher.model, vocab: &teacher.vocab, cfg: decode, device, scores: true };
    let start = Instant::now();
    translator.translate(&corpus.src, 1, |_| {})?;
    let batched = n as f64 / start.elapsed().as_secs_f64();
    let single_n = args.single.min(n);
    let start = Instant::now();
    for s in &corpus.src[..single_n] {
        translator.translate(std::slice::from_ref(s), 1, |_| {})?;
    }
    let single = single_n as f64 / start.elapsed().as_secs_f64();
    let _ = writeln!(out, "| Seq-KD teacher pass (beam 5) | sentences/s |\n|---|---:|");
    let _ = writeln!(
        out,
        "| batched ({} padded source tokens per batch) | {batched:.1} |",
        translator.cfg.batch_tokens
    );
    let _ = writeln!(out, "| one sentence at a time ({single_n} sentences) | {single:.1} |");
    let _ = writeln!(out, "| batched / one at a time | {:.1}× |\n", batched / single);

    // 2) The stored top-k file.
    let dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("seqkd-bench-kd-{}", std::process::id())));
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let store_path = dir.join(format!("bench-top{}.bin", args.k));
    let _ = std::fs::remove_file(&store_path);
    let topk = TopkOptions { k: args.k, ..Default::default() };
    let stats = write_topk_store(
        &teacher,
        &args.teacher,
        &corpus.src,
        &corpus.tgt,
        &topk,
        &store_path,
        &PassOptions::default(),
    )?;
    let bytes = std::fs::metadata(&store_path).map_err(io_err(&store_path))?.len();
    let tgt_ids = teacher.vocab.encode_batch(&corpus.tgt)?;
    let positions: usize = tgt_ids.iter().map(|t| t.len() + 1).sum();
    let _ = writeln!(out, "| stored top-{} | value |\n|---|---:|", args.k);
    let _ = writeln!(out, "| teacher-forced pass | {:.1} sentences/s |", stats.sentences_per_second());
    let _ = writeln!(
        out,
        "| file | {:.2} MB for {positions} target positions ({:.1} bytes each) |\n",
        bytes as f64 / 1e6,
        bytes as f64 / positions as f64
    );

    // 3) Student training: the same batches with each loss.
    let src_ids = teacher.vocab.encode_src_batch(&corpus.src)?;
    let lengths: Vec<(usize, usize)> =
        src_ids.iter().zip(&tgt_ids).map(|(s, t)| (s.len(), t.len())).collect();
    let batches = Batcher::new(&lengths, BatchConfig { batch_tokens: 4096, ..Default::default() })
        .map_err(|e| Error::Invalid(e.to_string()))?
        .epoch(1, 0);
    let student_cfg = ModelConfig::Transformer(TransformerConfig {
        d_model: 128,
        n_heads: 4,
        d_ff: 512,
        encoder_layers: 2,
        decoder_layers: 1,
        ..Default::default()
    });
    let stored = WordKd::open(
        &WordKdConfig { topk: Some(store_path.clone()), ..Default::default() },
        &teacher.vocab,
        &tgt_ids,
        device,
    )?;
    let live = WordKd::open(
        &WordKdConfig { teacher: Some(args.teacher.clone()), ..Default::default() },
        &teacher.vocab,
        &tgt_ids,
        device,
    )?;
    let mut speeds = Vec::new();
    let objectives: [(&str, &dyn Objective); 3] = [
        ("cross-entropy (gold)", &CrossEntropy),
        ("Word-KD, stored top-k", &stored),
        ("Word-KD, live teacher", &live),
    ];
    let train = TrainConfig { label_smoothing: 0.1, clip_norm: 1.0, ..Default::default() };
    for (name, objective) in objectives {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(device);
        let model = Model::new(&vs.root(), &student_cfg, teacher.vocab.len() as i64);
        let mut opt = Optimizer::new(vs.variables(), OptimizerKind::Adam, (0.9, 0.98), 1e-9);
        let vars = vs.variables();
        // The update `seqkd train` runs, with each objective.
        let update = Update {
            model: &model,
            vars: &vars,
            objective,
            constraint: &Unconstrained,
            train: &train,
            data_parallel: None,
        };
        let (mut tokens, mut secs) = (0i64, 0f64);
        for (i, rows) in batches.iter().cycle().take(args.steps + 3).enumerate() {
            let start = Instant::now();
            let pairs: Vec<(&[u32], &[u32])> =
                rows.iter().map(|&r| (src_ids[r].as_slice(), tgt_ids[r].as_slice())).collect();
            let batch = Batch::new(&pairs, device);
            update.run(&mut opt, &batch, rows, i as i64, 5e-4);
            if i >= 3 {
                tokens += batch.n_tgt_tokens;
                secs += start.elapsed().as_secs_f64();
            }
        }
        speeds.push((name, tokens as f64 / secs));
    }
    let _ = writeln!(out, "| student training (d128, 2+1 layers), same batches | target tokens/s | vs cross-entropy |\n|---|---:|---:|");
    for (name, speed) in &speeds {
        let _ = writeln!(out, "| {name} | {speed:.0} | {:.2}× |", speed / speeds[0].1);
    }
    if args.work_dir.is_none() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    Ok(out)
}
