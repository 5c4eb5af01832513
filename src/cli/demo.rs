//! `seqkd demo`: the main job on the built-in corpus.
//!
//! Today it runs the pipeline up to a trained model: generate the corpus, check it, learn a joint
//! subword vocabulary, batch the training data, score reference points on the test set, then train
//! a small Transformer on a time budget and score its greedy and beam translations. Distillation
//! and the paper's report join it as they land (issue 4).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{ensure, Context};
use seqkd_text::batching::{BatchConfig, Batcher};
use seqkd_text::corpus::{check_parallel, LineLimits};
use seqkd_text::metrics::{corpus_bleu, corpus_chrf, BleuConfig, ChrfConfig};
use seqkd_text::synth::{self, SynthConfig};
use seqkd_text::vocab::{Vocab, VocabConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory (corpus, vocabulary, report); created if missing.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    #[arg(long, default_value_t = SynthConfig::default().seed)]
    pub seed: u64,
    /// Training pairs to generate.
    #[arg(long, default_value_t = SynthConfig::default().train)]
    pub train: usize,
    /// Joint subword vocabulary size.
    #[arg(long, default_value_t = 2000)]
    pub vocab_size: usize,
    /// Minutes of model training (0 skips training).
    #[arg(long, default_value_t = 4.0)]
    pub train_minutes: f64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut report = String::new();
    let data = args.out.join("data");
    writeln!(report, "# seqkd demo: built-in English→Synthian corpus (seed {})\n", args.seed)?;

    // 1) The corpus.
    let start = Instant::now();
    let cfg = SynthConfig { seed: args.seed, train: args.train, ..SynthConfig::default() };
    let corpus = synth::generate(&cfg);
    super::gen_corpus::write_corpus(&corpus, &data)?;
    writeln!(
        report,
        "1. corpus: {} train / {} valid / {} test pairs in {} ({:.1}s)",
        cfg.train,
        cfg.valid,
        cfg.test,
        data.display(),
        start.elapsed().as_secs_f64()
    )?;

    // 2) Check every split as a user's corpus would be checked.
    for split in ["train", "valid", "test"] {
        let (src, tgt) = (data.join(format!("{split}.en")), data.join(format!("{split}.syn")));
        let check = check_parallel(&src, &tgt, &LineLimits::default())?;
        ensure!(check.is_clean(), "generated corpus has defects: {}", check.problems[0]);
    }
    writeln!(report, "2. check-corpus: all splits clean")?;

    // 3) A joint subword vocabulary over both sides of train.
    let start = Instant::now();
    let vocab_cfg = VocabConfig { size: args.vocab_size, ..Default::default() };
    let vocab = Vocab::train(corpus.train.src.iter().chain(&corpus.train.tgt), &vocab_cfg)?;
    let vocab_path = args.out.join("vocab.json");
    vocab.save(&vocab_path)?;
    let train_secs = start.elapsed().as_secs_f64();
    let src_ids = vocab.encode_batch(&corpus.train.src)?;
    let tgt_ids = vocab.encode_batch(&corpus.train.tgt)?;
    let round_trips = corpus
        .test
        .tgt
        .iter()
        .chain(&corpus.test.src)
        .try_fold(0usize, |n, s| vocab.encode(s).map(|ids| n + usize::from(vocab.decode(&ids) == *s)))?;
    let mean = |ids: &[Vec<u32>]| ids.iter().map(Vec::len).sum::<usize>() as f64 / ids.len().max(1) as f64;
    writeln!(
        report,
        "3. vocabulary: {} ids, trained in {train_secs:.1}s ({}); mean subwords per sentence: \
         source {:.1}, target {:.1}; encode→decode gives back {round_trips}/{} test sentences",
        vocab.len(),
        vocab_path.display(),
        mean(&src_ids),
        mean(&tgt_ids),
        2 * corpus.test.src.len()
    )?;

    // 4) Token-based batches for one epoch.
    let lengths: Vec<(usize, usize)> =
        src_ids.iter().zip(&tgt_ids).map(|(s, t)| (s.len(), t.len())).collect();
    let batcher = Batcher::new(&lengths, BatchConfig::default())?;
    let batches = batcher.epoch(args.seed, 0);
    let real: usize = lengths.iter().map(|(s, t)| s.max(t) + 1).sum();
    let padded: usize = batches
        .iter()
        .map(|b| b.len() * b.iter().map(|&i| lengths[i].0.max(lengths[i].1) + 1).max().unwrap_or(0))
        .sum();
    writeln!(
        report,
        "4. batching: {} batches of ≤ {} tokens per epoch, {:.1}% padding",
        batches.len(),
        BatchConfig::default().batch_tokens,
        100.0 * (padded - real) as f64 / padded.max(1) as f64
    )?;

    // 5) Reference points on test, scored like sacrebleu.
    writeln!(report, "5. reference points on test (sacrebleu 2.6.0 conventions):\n")?;
    writeln!(report, "| hypothesis | BLEU | chrF2 |\n|---|---:|---:|")?;
    let (bleu_cfg, chrf_cfg) = (BleuConfig::default(), ChrfConfig::default());
    for (name, hyps) in [
        ("source copied (no translation)", &corpus.test.src),
        ("the mode: every most likely word choice (ceiling set by ambiguity)", &corpus.test.mode),
    ] {
        let bleu = corpus_bleu(hyps, &corpus.test.tgt, &bleu_cfg).context("scoring")?;
        let chrf = corpus_chrf(hyps, &corpus.test.tgt, &chrf_cfg).context("scoring")?;
        writeln!(report, "| {name} | {:.2} | {:.2} |", bleu.score, chrf.score)?;
    }
    writeln!(report, "\nSignatures: BLEU {} · chrF {}", bleu_cfg.signature(1), chrf_cfg.signature(1))?;

    // 6) A small Transformer trained on a time budget, decoded greedily and with beam 5.
    if args.train_minutes > 0.0 {
        let model_dir = args.out.join("teacher");
        let trained = train_teacher(&args, &data, &vocab_path, &model_dir)?;
        writeln!(report, "\n6. {trained}\n")?;
        writeln!(report, "| decoding | BLEU | chrF2 | source words/s |\n|---|---:|---:|---:|")?;
        let loaded = seqkd_nmt::train::LoadedModel::load(&model_dir, seqkd_nmt::Device::Cpu, None)?;
        let words: usize = corpus.test.src.iter().map(|s| s.split_whitespace().count()).sum();
        for beam in [1, 5] {
            let cfg = seqkd_nmt::config::DecodeConfig { beam_size: beam, ..loaded.config.decode.clone() };
            let translator = seqkd_nmt::decode::Translator {
                model: &loaded.model,
                vocab: &loaded.vocab,
                cfg,
                device: seqkd_nmt::Device::Cpu,
            };
            let start = Instant::now();
            let hyps = translator.translate_text(&corpus.test.src)?;
            let speed = words as f64 / start.elapsed().as_secs_f64();
            let bleu = corpus_bleu(&hyps, &corpus.test.tgt, &bleu_cfg).context("scoring")?;
            let chrf = corpus_chrf(&hyps, &corpus.test.tgt, &chrf_cfg).context("scoring")?;
            let name = if beam == 1 { "greedy".to_string() } else { format!("beam {beam}") };
            writeln!(report, "| {name} | {:.2} | {:.2} | {speed:.0} |", bleu.score, chrf.score)?;
        }
    }

    let report_path = args.out.join("report.md");
    seqkd_text::atomic_write(&report_path, report.as_bytes())
        .with_context(|| format!("writing {}", report_path.display()))?;
    print!("{report}");
    println!("\nreport written to {}", report_path.display());
    Ok(ExitCode::SUCCESS)
}

/// Trains the demo's Transformer (d 128, 2+2 layers) for `args.train_minutes` on the generated corpus.
fn train_teacher(args: &Args, data: &Path, vocab: &Path, model_dir: &Path) -> anyhow::Result<String> {
    use seqkd_nmt::config::Config;
    use seqkd_nmt::model::{ModelConfig, TransformerConfig};
    let mut cfg = Config::default();
    cfg.data.train_src = data.join("train.en");
    cfg.data.train_tgt = data.join("train.syn");
    cfg.data.valid_src = data.join("valid.en");
    cfg.data.valid_tgt = data.join("valid.syn");
    cfg.data.vocab_path = Some(vocab.to_path_buf());
    cfg.model = ModelConfig::Transformer(TransformerConfig {
        d_model: 128,
        n_heads: 4,
        d_ff: 512,
        encoder_layers: 2,
        decoder_layers: 2,
        ..Default::default()
    });
    cfg.train.lr = 2e-3;
    cfg.train.warmup_steps = 200;
    cfg.train.batch_tokens = 2048;
    cfg.train.max_epochs = 0;
    cfg.train.max_minutes = args.train_minutes;
    cfg.train.valid_every = 200;
    cfg.train.valid_bleu_sentences = 200;
    cfg.train.seed = args.seed;
    // A rerun of the demo starts the model afresh.
    if model_dir.exists() {
        std::fs::remove_dir_all(model_dir).with_context(|| format!("removing {}", model_dir.display()))?;
    }
    let opts = seqkd_nmt::train::TrainOptions {
        model_dir: model_dir.to_path_buf(),
        resume: false,
        progress: true,
        stop_after: None,
    };
    let start = Instant::now();
    let state = seqkd_nmt::train::train(&cfg, &opts)?;
    Ok(format!(
        "model: Transformer d128 2+2 layers, {} updates ({} epochs) in {:.1} min, best validation perplexity {:.2} ({})",
        state.step,
        state.epoch,
        start.elapsed().as_secs_f64() / 60.0,
        state.best_valid_ppl.unwrap_or(f64::NAN),
        model_dir.display()
    ))
}
