//! `seqkd bench`: fixed-size speed measurements, side by side with the same work in PyTorch.
//!
//! What is measured (shared/notes/frameworks.md defines the first two; `benches/pytorch_reference.py`
//! does exactly the same work in PyTorch):
//! 1. Training step: Transformer d256, 4 heads, FFN 1024, 3+3 layers, tied vocabulary of 8000; a batch
//!    of 64 pairs of 23 random subword ids, so source, decoder input and labels are all 64 × 24 (the
//!    `</s>`/`<s>` included) and a step learns 64 × 24 target tokens; label smoothing 0.1, dropout 0.1,
//!    our [`Optimizer`] (Adam) with gradient clipping at 1.0. Twice: f32, and bf16 mixed precision
//!    (`[train] precision = "bf16"`), against PyTorch f32 and `torch.autocast("cpu", torch.bfloat16)`.
//! 2. Greedy decoding, fixed work: the same 64 × 24 source batch, one `encode`, then exactly 24
//!    `Seq2Seq::step` calls with argmax (no early stop).
//! 3. Real decoding through [`Translator`] (greedy and beam 5) on random sentences of 10–30 words,
//!    batched and one sentence at a time, with at most as many output tokens as source tokens (the
//!    model is untrained, so this bounds the work). Throughput is in source subword tokens/s.
//! 4. Peak resident memory of this process.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use seqkd_text::splitmix::SplitMix64;
use seqkd_text::vocab::{SubwordKind, Vocab, VocabConfig, SPECIAL_IDS};

use super::{peak_rss_mib, sync, time_per_call};
use crate::batch::Batch;
use crate::config::{DecodeConfig, OptimizerKind, Precision, TrainConfig};
use crate::decode::Translator;
use crate::error::Error;
use crate::model::{Seq2Seq, Transformer, TransformerConfig};
use crate::train::method::{CrossEntropy, Unconstrained};
use crate::train::optim::Optimizer;
use crate::train::step::{Phase, Update};

const SEED: i64 = 1234;
const VOCAB: i64 = 8000;
const BATCH: i64 = 64;
/// Tensor length of every side: 23 ids plus `</s>` (source, labels) or `<s>` (decoder input).
const LEN: i64 = 24;
const LABEL_SMOOTHING: f64 = 0.1;
const CLIP_NORM: f64 = 1.0;
/// Constant: the learning rate does not change the cost of a step.
const LR: f64 = 5e-4;
const BEAM: usize = 5;
const DECODE_BATCH_TOKENS: usize = 2048;
const SCRIPT: &str = "benches/pytorch_reference.py";

/// What to measure, and with what.
#[derive(Debug, Clone)]
pub struct Options {
    /// Timed training steps, and timed batches of fixed-work greedy decoding.
    pub steps: usize,
    /// Untimed warm-up steps (and batches) before the timed ones.
    pub warmup: usize,
    /// Intra-op threads, here and in the PyTorch reference.
    pub threads: usize,
    /// cpu, cuda or cuda:N (here and in the PyTorch reference).
    pub device: String,
    /// Do not run the PyTorch reference.
    pub no_pytorch: bool,
    /// Python with torch 2.13 (default: .venv/bin/python if it exists, else python3).
    pub python: Option<PathBuf>,
    /// The PyTorch reference script (default: benches/pytorch_reference.py of this checkout).
    pub script: Option<PathBuf>,
    /// Random source sentences for the batched Translator runs.
    pub sentences: usize,
    /// How many of those to also translate one sentence at a time.
    pub single: usize,
}

/// The measurements, and the PyTorch reference's when it ran.
#[derive(Debug, Serialize)]
pub struct Report {
    pub device: String,
    pub threads: usize,
    pub steps: usize,
    pub warmup: usize,
    pub params: i64,
    pub train: TrainResult,
    /// The same step in bf16 mixed precision (CPU only; None on CUDA).
    pub train_bf16: Option<TrainResult>,
    pub greedy_fixed: GreedyResult,
    pub translate: Vec<DecodeRun>,
    /// VmHWM of this process (the PyTorch reference runs in its own process).
    pub peak_rss_mib: Option<f64>,
    pub pytorch: Option<PyResult>,
    /// Why there are no PyTorch numbers, when there are none.
    pub pytorch_note: Option<String>,
    /// seqkd / PyTorch target tokens/s (> 1: seqkd is faster).
    pub ratio_train_tokens_per_s: Option<f64>,
    /// seqkd bf16 / PyTorch f32, and seqkd bf16 / PyTorch autocast bf16 (target tokens/s).
    pub ratio_train_bf16_vs_pytorch_fp32: Option<f64>,
    pub ratio_train_bf16_vs_pytorch_bf16: Option<f64>,
    pub ratio_greedy_tokens_per_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct TrainResult {
    pub ms_per_step: f64,
    pub tgt_tokens_per_step: i64,
    pub tgt_tokens_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct GreedyResult {
    pub ms_per_batch: f64,
    pub tgt_tokens_per_batch: i64,
    pub tgt_tokens_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct DecodeRun {
    pub search: String,
    pub batched: bool,
    pub sentences: usize,
    pub src_tokens: usize,
    pub out_tokens: usize,
    pub secs: f64,
    pub src_tokens_per_s: f64,
}

/// What `benches/pytorch_reference.py` prints (it may print more).
#[derive(Debug, Serialize, Deserialize)]
pub struct PyResult {
    pub train_ms_per_step: f64,
    pub train_tgt_tokens_per_s: f64,
    #[serde(default)]
    pub train_bf16_ms_per_step: Option<f64>,
    #[serde(default)]
    pub train_bf16_tgt_tokens_per_s: Option<f64>,
    pub greedy_ms_per_batch: f64,
    pub greedy_tgt_tokens_per_s: f64,
    pub torch_version: String,
    pub threads: i64,
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
}

/// Runs every measurement (and the PyTorch reference, unless `no_pytorch`).
pub fn run(args: &Options) -> Result<Report, Error> {
    let check = |ok: bool, what: String| if ok { Ok(()) } else { Err(Error::Invalid(what)) };
    check(args.steps >= 1, "--steps must be >= 1".into())?;
    check((1..=1024).contains(&args.threads), "--threads must be between 1 and 1024".into())?;
    check(args.sentences >= 1, "--sentences must be >= 1".into())?;
    check(
        args.single <= args.sentences,
        format!("--single ({}) exceeds --sentences ({})", args.single, args.sentences),
    )?;
    let device = crate::parse_device(&args.device).map_err(Error::Invalid)?;
    if let Device::Cuda(i) = device {
        check(
            tch::Cuda::is_available(),
            format!("--device {}: CUDA is not available to this libtorch", args.device),
        )?;
        check(
            (i as i64) < tch::Cuda::device_count(),
            format!("--device {}: only {} CUDA device(s)", args.device, tch::Cuda::device_count()),
        )?;
    }
    let script = if args.no_pytorch { None } else { reference_script(args)? };
    tch::set_num_threads(args.threads as i32);

    // Both sides of the batch: the same 64 × 23 random ids as the PyTorch script draws.
    tch::manual_seed(SEED);
    let src_ids = random_ids();
    let tgt_ids = random_ids();
    let pairs: Vec<(&[u32], &[u32])> =
        src_ids.iter().zip(&tgt_ids).map(|(s, t)| (s.as_slice(), t.as_slice())).collect();
    let batch = Batch::new(&pairs, device);
    assert!(batch.src.size() == [BATCH, LEN] && batch.tgt_out.size() == [BATCH, LEN], "the batch's shape");

    eprintln!("seqkd bench: training ({} warm-up + {} timed steps)...", args.warmup, args.steps);
    let (params, train) = bench_train(&batch, device, args.steps, args.warmup, Precision::Fp32);
    let train_bf16 = (device == Device::Cpu).then(|| {
        eprintln!("seqkd bench: training in bf16 mixed precision...");
        bench_train(&batch, device, args.steps, args.warmup, Precision::Bf16).1
    });

    // A fresh seeded model for decoding, so the decoding work does not depend on --steps.
    tch::manual_seed(SEED + 1);
    let vs = nn::VarStore::new(device);
    let model = Transformer::new(&vs.root(), &model_config(), VOCAB);
    eprintln!("seqkd bench: greedy decoding, fixed work...");
    let greedy_fixed = bench_greedy_fixed(&model, &batch.src, device, args.steps, args.warmup);
    eprintln!("seqkd bench: decoding {} random sentences through Translator...", args.sentences);
    let translate = bench_translator(&model, device, args.sentences, args.single)?;
    let peak_rss_mib = peak_rss_mib();

    let (pytorch, pytorch_note) = if args.no_pytorch {
        (None, Some("skipped (--no-pytorch)".to_string()))
    } else {
        eprintln!("seqkd bench: running the PyTorch reference...");
        match run_pytorch(args, script.as_deref()) {
            Ok(r) => (Some(r), None),
            Err(note) => (None, Some(note)),
        }
    };
    let ratio = |ours: f64, theirs: f64| (theirs > 0.0).then(|| ours / theirs);
    Ok(Report {
        device: args.device.clone(),
        threads: args.threads,
        steps: args.steps,
        warmup: args.warmup,
        params,
        ratio_train_tokens_per_s: pytorch
            .as_ref()
            .and_then(|p| ratio(train.tgt_tokens_per_s, p.train_tgt_tokens_per_s)),
        ratio_train_bf16_vs_pytorch_fp32: pytorch
            .as_ref()
            .zip(train_bf16.as_ref())
            .and_then(|(p, b)| ratio(b.tgt_tokens_per_s, p.train_tgt_tokens_per_s)),
        ratio_train_bf16_vs_pytorch_bf16: pytorch
            .as_ref()
            .zip(train_bf16.as_ref())
            .and_then(|(p, b)| ratio(b.tgt_tokens_per_s, p.train_bf16_tgt_tokens_per_s?)),
        ratio_greedy_tokens_per_s: pytorch
            .as_ref()
            .and_then(|p| ratio(greedy_fixed.tgt_tokens_per_s, p.greedy_tgt_tokens_per_s)),
        train,
        train_bf16,
        greedy_fixed,
        translate,
        peak_rss_mib,
        pytorch,
        pytorch_note,
    })
}

/// JoeyNMT's Multi30k size (3+3 layers, d 256), the default.
fn model_config() -> TransformerConfig {
    TransformerConfig::default()
}

/// `[64][23]` ids in `4 .. 8000` from libtorch's default generator (the same draw as
/// `torch.randint(4, 8000, (64, 23), generator=torch.Generator().manual_seed(1234))`).
fn random_ids() -> Vec<Vec<u32>> {
    let ids =
        Tensor::randint_low(SPECIAL_IDS.unk as i64 + 1, VOCAB, [BATCH, LEN - 1], (Kind::Int64, Device::Cpu));
    let rows: Vec<Vec<i64>> = Vec::try_from(&ids).expect("a 2-d i64 tensor converts");
    rows.into_iter().map(|r| r.into_iter().map(|id| id as u32).collect()).collect()
}

fn bench_train(
    batch: &Batch,
    device: Device,
    steps: usize,
    warmup: usize,
    precision: Precision,
) -> (i64, TrainResult) {
    tch::manual_seed(SEED);
    let vs = nn::VarStore::new(device);
    let model = Transformer::new(&vs.root(), &model_config(), VOCAB);
    let mut opt = Optimizer::new(vs.variables(), OptimizerKind::Adam, (0.9, 0.98), 1e-9);
    let train = TrainConfig {
        label_smoothing: LABEL_SMOOTHING,
        clip_norm: CLIP_NORM,
        precision,
        ..Default::default()
    };
    let vars = vs.variables();
    // The update `seqkd train` runs, plain cross-entropy as in the PyTorch reference.
    let update = Update {
        model: &model,
        vars: &vars,
        objective: &CrossEntropy,
        constraint: &Unconstrained,
        train: &train,
        data_parallel: None,
    };
    let mut step = 0;
    let secs = time_per_call(device, steps, warmup, || {
        update.run(&mut opt, batch, &[], step, LR);
        step += 1;
    });
    // Where a step's time goes (the same update, timed by phase), printed to stderr for profiling.
    let mut phases = [0f64; 4];
    for _ in 0..steps {
        let mut last = Instant::now();
        update.run_with(&mut opt, batch, &[], step, LR, |phase| {
            phases[phase as usize] += 1000.0 * last.elapsed().as_secs_f64() / steps as f64;
            last = Instant::now();
        });
        step += 1;
    }
    eprintln!(
        "seqkd bench: training step phases, {precision:?} (ms): forward+loss {:.1}, backward {:.1}, clip {:.1}, optimizer {:.1}",
        phases[Phase::Forward as usize], phases[Phase::Backward as usize], phases[Phase::Clip as usize], phases[Phase::Optimizer as usize]
    );
    let result = TrainResult {
        ms_per_step: 1000.0 * secs,
        tgt_tokens_per_step: batch.n_tgt_tokens,
        tgt_tokens_per_s: batch.n_tgt_tokens as f64 / secs,
    };
    (opt.num_params(), result)
}

/// One encoder pass, then exactly `LEN` decoder steps feeding back the argmax (no early stop).
// PyTorch runs this under `torch.inference_mode()`; tch offers `no_grad`, as `Translator` uses.
fn bench_greedy_fixed(
    model: &Transformer,
    src: &Tensor,
    device: Device,
    steps: usize,
    warmup: usize,
) -> GreedyResult {
    let n = src.size()[0];
    let secs = tch::no_grad(|| {
        time_per_call(device, steps, warmup, || {
            let (memory, mut state) = model.encode(src);
            let mut prev = Tensor::full([n], SPECIAL_IDS.bos as i64, (Kind::Int64, device));
            for _ in 0..LEN {
                let logp = model.step(&memory, &mut state, &prev);
                prev = logp.argmax(-1, false);
            }
        })
    });
    let tokens = n * LEN;
    GreedyResult {
        ms_per_batch: 1000.0 * secs,
        tgt_tokens_per_batch: tokens,
        tgt_tokens_per_s: tokens as f64 / secs,
    }
}

/// Sentences of 10–30 words drawn from 500 random lowercase words, and a BPE vocabulary trained on
/// other sentences of the same words, so that (nearly) every word is one subword.
fn random_text(sentences: usize) -> Result<(Vocab, Vec<String>), Error> {
    let mut rng = SplitMix64(SEED as u64);
    let mut words: Vec<String> = Vec::new();
    while words.len() < 500 {
        let len = rng.range(3, 8);
        let w: String = (0..len).map(|_| (b'a' + rng.range(0, 25) as u8) as char).collect();
        if !words.contains(&w) {
            words.push(w);
        }
    }
    let sentence = |rng: &mut SplitMix64| {
        let len = rng.range(10, 30);
        (0..len).map(|_| words[rng.range(0, words.len() - 1)].as_str()).collect::<Vec<_>>().join(" ")
    };
    let corpus: Vec<String> = (0..4000).map(|_| sentence(&mut rng)).collect();
    let vocab_cfg = VocabConfig { kind: SubwordKind::Bpe, size: 4000, min_frequency: 2 };
    let vocab = Vocab::train(corpus.iter(), &vocab_cfg)?;
    let srcs = (0..sentences).map(|_| sentence(&mut rng)).collect();
    Ok((vocab, srcs))
}

fn bench_translator(
    model: &Transformer,
    device: Device,
    sentences: usize,
    single: usize,
) -> Result<Vec<DecodeRun>, Error> {
    let (vocab, srcs) = random_text(sentences)?;
    let src_tokens: Vec<usize> = vocab.encode_src_batch(&srcs)?.iter().map(Vec::len).collect();
    let mut runs = Vec::new();
    for beam in [1, BEAM] {
        // Output at most as long as the source: an untrained model rarely emits `</s>`.
        let cfg = DecodeConfig {
            beam_size: beam,
            max_len_a: 1.0,
            max_len_b: 0,
            batch_tokens: DECODE_BATCH_TOKENS,
            ..Default::default()
        };
        let translator = Translator { model, vocab: &vocab, cfg, device, scores: false };
        let search = if beam == 1 { "greedy".to_string() } else { format!("beam {beam}") };
        translator.translate(&srcs[..srcs.len().min(8)], 1, |_| {})?;
        let mut measure = |batched: bool, n: usize| -> Result<(), Error> {
            let start = Instant::now();
            let hyps = if batched {
                translator.translate(&srcs[..n], 1, |_| {})?
            } else {
                let mut all = Vec::with_capacity(n);
                for s in &srcs[..n] {
                    all.extend(translator.translate(std::slice::from_ref(s), 1, |_| {})?);
                }
                all
            };
            sync(device);
            let secs = start.elapsed().as_secs_f64();
            let src: usize = src_tokens[..n].iter().sum();
            let out = hyps.iter().filter_map(|h| h.first()).map(|h| h.token_logprobs.len()).sum();
            runs.push(DecodeRun {
                search: search.clone(),
                batched,
                sentences: n,
                src_tokens: src,
                out_tokens: out,
                secs,
                src_tokens_per_s: src as f64 / secs.max(1e-9),
            });
            Ok(())
        };
        measure(true, srcs.len())?;
        if single > 0 {
            measure(false, single)?;
        }
    }
    Ok(runs)
}

/// `rel` in the current directory, else in this checkout (where the binary was built).
fn locate(rel: &str) -> Option<PathBuf> {
    [Path::new(".").join(rel), Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)]
        .into_iter()
        .find(|p| p.exists())
}

/// The reference script: `--script` (an error if missing), else the default one if it is found.
fn reference_script(args: &Options) -> Result<Option<PathBuf>, Error> {
    match &args.script {
        Some(p) if p.is_file() => Ok(Some(p.clone())),
        Some(p) => Err(Error::Invalid(format!("--script {}: no such file", p.display()))),
        None => Ok(locate(SCRIPT)),
    }
}

/// The reference's numbers, or (as `Err`) why there are none.
fn run_pytorch(args: &Options, script: Option<&Path>) -> Result<PyResult, String> {
    let Some(script) = script else {
        return Err(format!("PyTorch reference not run: {SCRIPT} not found"));
    };
    let python =
        args.python.clone().or_else(|| locate(".venv/bin/python")).unwrap_or_else(|| "python3".into());
    let output = Command::new(&python)
        .arg(script)
        .args(["--threads", &args.threads.to_string()])
        .args(["--steps", &args.steps.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--device", &args.device])
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("PyTorch reference not run: python '{}' not found", python.display()));
        }
        Err(e) => {
            return Err(format!("PyTorch reference not run: cannot start '{}': {e}", python.display()));
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if stderr.contains("No module named 'torch'") {
            return Err(format!(
                "PyTorch reference not run: torch is not installed for '{}'",
                python.display()
            ));
        }
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(format!("PyTorch reference failed ({}): {}", output.status, tail.join(" | ")));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(last)
        .map_err(|e| format!("PyTorch reference printed no result JSON ({e}): '{last}'"))
}

impl Report {
    /// The report as a Markdown table.
    pub fn markdown(&self) -> String {
        let r = self;
        let mut out = String::new();
        let py = r.pytorch.as_ref();
        let torch =
            py.map_or(String::new(), |p| format!(", PyTorch {} with {} threads", p.torch_version, p.threads));
        let _ = writeln!(
            out,
            "## seqkd bench: {}, threads {}, {} timed steps after {} warm-up \
             (seqkd: tch 0.26 / libtorch 2.13{torch})\n",
            r.device, r.threads, r.steps, r.warmup
        );
        let _ = writeln!(
            out,
            "Transformer d256, 4 heads, FFN 1024, 3+3 layers, tied vocabulary 8000: {:.2}M parameters.\n",
            r.params as f64 / 1e6
        );
        let _ = writeln!(out, "| measurement | seqkd | PyTorch | seqkd / PyTorch |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        let opt = |v: Option<f64>, digits: usize| v.map_or("–".to_string(), |v| format!("{v:.digits$}"));
        let t = &r.train;
        let _ = writeln!(
            out,
            "| training, 64 × 24 pairs: ms/step | {:.1} | {} | |",
            t.ms_per_step,
            opt(py.map(|p| p.train_ms_per_step), 1)
        );
        let _ = writeln!(
            out,
            "| training: target tokens/s ({} per step) | {:.0} | {} | {} |",
            t.tgt_tokens_per_step,
            t.tgt_tokens_per_s,
            opt(py.map(|p| p.train_tgt_tokens_per_s), 0),
            opt(r.ratio_train_tokens_per_s, 2)
        );
        if let Some(b) = &r.train_bf16 {
            let _ = writeln!(
                out,
                "| training bf16 mixed precision: target tokens/s (PyTorch: autocast bf16) | {:.0} | {} | {} |",
                b.tgt_tokens_per_s,
                opt(py.and_then(|p| p.train_bf16_tgt_tokens_per_s), 0),
                opt(r.ratio_train_bf16_vs_pytorch_bf16, 2)
            );
            let _ = writeln!(
                out,
                "| training: seqkd bf16 / PyTorch f32 | | | {} |",
                opt(r.ratio_train_bf16_vs_pytorch_fp32, 2)
            );
        }
        let g = &r.greedy_fixed;
        let _ = writeln!(
            out,
            "| greedy, 64 × 24 steps: ms/batch | {:.1} | {} | |",
            g.ms_per_batch,
            opt(py.map(|p| p.greedy_ms_per_batch), 1)
        );
        let _ = writeln!(
            out,
            "| greedy: target tokens/s ({} per batch) | {:.0} | {} | {} |",
            g.tgt_tokens_per_batch,
            g.tgt_tokens_per_s,
            opt(py.map(|p| p.greedy_tgt_tokens_per_s), 0),
            opt(r.ratio_greedy_tokens_per_s, 2)
        );
        for d in &r.translate {
            let how = if d.batched {
                format!("batched ({DECODE_BATCH_TOKENS} tokens)")
            } else {
                "one at a time".into()
            };
            let _ = writeln!(
                out,
                "| Translator {}, {how}, {} sentences: source tokens/s | {:.0} | – | |",
                d.search, d.sentences, d.src_tokens_per_s
            );
        }
        let _ = writeln!(
            out,
            "| peak RSS (MiB) | {} | {} | |",
            opt(r.peak_rss_mib, 0),
            opt(py.and_then(|p| p.peak_rss_mib), 0)
        );
        out.push('\n');
        for d in &r.translate {
            let _ = writeln!(
                out,
                "- Translator {} {}: {} source tokens → {} output tokens in {:.2} s",
                d.search,
                if d.batched { "batched" } else { "one at a time" },
                d.src_tokens,
                d.out_tokens,
                d.secs
            );
        }
        if let Some(note) = &r.pytorch_note {
            let _ = writeln!(out, "- {note}");
        }
        out
    }
}
