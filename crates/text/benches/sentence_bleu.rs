//! Throughput of sentence BLEU (sacrebleu.sentence_bleu defaults: 13a, exp smoothing, effective
//! order), the hot path of Seq-Inter: 1,000,000 (hypothesis, reference) pairs single-threaded,
//! with rayon, and as groups of 35 hypotheses per reference; plus the 13a tokenizer alone.
//!
//! References are multi30k's German training sentences from `SEQKD_DATA` (synthetic sentences if
//! the data is absent); hypotheses are perturbed copies (dropped, swapped and replaced words), like
//! beam-search outputs. Run (plain `fn main`, `harness = false` in Cargo.toml):
//!
//!     cargo bench -p seqkd-text --bench sentence_bleu            # 1M pairs
//!     SEQKD_BENCH_PAIRS=200000 cargo bench -p seqkd-text --bench sentence_bleu
//!
//! Built with the test harness instead (no `[[bench]]` entry), the same code runs as a test:
//! `SEQKD_BENCH_PAIRS=1000000 cargo test --release -p seqkd-text --bench sentence_bleu -- --nocapture`.

use seqkd_text::splitmix::SplitMix64;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use seqkd_text::metrics::{
    sentence_bleu_grouped_par, sentence_bleu_par, BleuConfig, Preprocessor, SentenceBleu, TokenizeKind,
};

/// Distinct pairs generated; the measured pairs cycle through them.
const DISTINCT: usize = 100_000;
/// Hypotheses per reference in the grouped measurement (Seq-Inter's beam / n-best size).
const GROUP: usize = 35;

fn references() -> Vec<String> {
    let data = std::env::var_os("SEQKD_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let path = data.join("multi30k/train.de");
    if let Ok(text) = std::fs::read_to_string(&path) {
        println!("references: {} ({} lines)", path.display(), text.lines().count());
        return text.lines().map(str::to_string).collect();
    }
    println!("references: synthetic ({} not found)", path.display());
    let vocab: Vec<String> = (0..5000).map(|i| format!("wort{i}")).collect();
    let punct = [",", ".", "!", "?", "\"", "(", ")", "3.5", "-"];
    let mut rng = SplitMix64(7);
    (0..29_000)
        .map(|_| {
            let n = 5 + rng.below(20);
            let mut words: Vec<&str> =
                (0..n).map(|_| vocab[rng.below(300) * rng.below(17) % 5000].as_str()).collect();
            if rng.below(3) == 0 {
                words.push(punct[rng.below(punct.len())]);
            }
            words.join(" ") + "."
        })
        .collect()
}

/// A beam-search-like variant of `line`: some words dropped, swapped or replaced.
fn perturb(line: &str, rng: &mut SplitMix64, filler: &[&str]) -> String {
    let mut words: Vec<&str> = line.split(' ').collect();
    for _ in 0..1 + rng.below(3) {
        let n = words.len();
        match rng.below(3) {
            0 if n > 1 => {
                words.remove(rng.below(n));
            }
            1 if n > 1 => {
                let i = rng.below(n - 1);
                words.swap(i, i + 1);
            }
            _ => {
                let i = rng.below(n);
                words[i] = filler[rng.below(filler.len())];
            }
        }
    }
    words.join(" ")
}

fn rate(n: usize, secs: f64) -> String {
    format!("{:>10.0} pairs/s ({n} pairs in {secs:.3} s)", n as f64 / secs)
}

fn run(pairs: usize) {
    let refs = references();
    let filler = ["der", "die", "das", "ein", "Mann", "Frau", "Hund", "läuft", ",", "."];
    let mut rng = SplitMix64(42);
    let distinct = DISTINCT.min(pairs.max(1));
    let pair_refs: Vec<&str> = (0..distinct).map(|i| refs[i % refs.len()].as_str()).collect();
    let pair_hyps: Vec<String> = pair_refs.iter().map(|r| perturb(r, &mut rng, &filler)).collect();
    let hyps: Vec<&str> = (0..pairs).map(|i| pair_hyps[i % distinct].as_str()).collect();
    let refs_1m: Vec<&str> = (0..pairs).map(|i| pair_refs[i % distinct]).collect();
    let cfg = BleuConfig::sentence();
    println!("threads: {}", rayon::current_num_threads());

    // 13a tokenizer alone (both sides of each pair).
    let mut pre = Preprocessor::new(TokenizeKind::Tok13a, false);
    let t = Instant::now();
    let mut bytes = 0usize;
    for (h, r) in hyps.iter().zip(&refs_1m) {
        for line in [h, r] {
            bytes += pre.run(line).len();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    black_box(bytes);
    println!("13a tokenizer, 1 thread:        {:>10.0} lines/s", 2.0 * pairs as f64 / secs);

    // Single-threaded, one reusable scorer.
    let mut scorer = SentenceBleu::new(cfg).expect("valid config");
    let t = Instant::now();
    let mut sum = 0.0;
    for (h, r) in hyps.iter().zip(&refs_1m) {
        sum += scorer.score(h, r);
    }
    let single = t.elapsed().as_secs_f64();
    println!("sentence BLEU, 1 thread:        {}", rate(pairs, single));

    // rayon over all pairs.
    let t = Instant::now();
    let scores = sentence_bleu_par(&hyps, &refs_1m, &cfg).expect("same lengths");
    let par = t.elapsed().as_secs_f64();
    println!("sentence BLEU, rayon:           {}", rate(pairs, par));
    let par_sum: f64 = scores.iter().sum();
    assert!((par_sum - sum).abs() <= 1e-6 * sum.abs().max(1.0), "parallel and sequential scores differ");
    println!("mean sentence BLEU: {:.4}", sum / pairs as f64);

    // Seq-Inter's shape: GROUP hypotheses per reference, the reference's n-grams counted once.
    let n_groups = pairs / GROUP;
    let groups: Vec<Vec<String>> = (0..n_groups.min(DISTINCT))
        .map(|g| (0..GROUP).map(|_| perturb(pair_refs[g % distinct], &mut rng, &filler)).collect())
        .collect();
    let group_refs: Vec<&str> = (0..n_groups).map(|g| pair_refs[g % distinct]).collect();
    let group_hyps: Vec<&Vec<String>> = (0..n_groups).map(|g| &groups[g % groups.len()]).collect();
    let t = Instant::now();
    let mut out = Vec::new();
    for (hs, r) in group_hyps.iter().zip(&group_refs) {
        scorer.score_many(r, hs, &mut out);
        black_box(&out);
    }
    let grouped = t.elapsed().as_secs_f64();
    println!("grouped x{GROUP}, 1 thread:         {}", rate(n_groups * GROUP, grouped));
    let t = Instant::now();
    let res = sentence_bleu_grouped_par(&group_hyps, &group_refs, &cfg).expect("same lengths");
    let grouped_par = t.elapsed().as_secs_f64();
    black_box(res);
    println!("grouped x{GROUP}, rayon:            {}", rate(n_groups * GROUP, grouped_par));
}

fn pairs_from_env() -> usize {
    std::env::var("SEQKD_BENCH_PAIRS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000)
}

#[cfg_attr(test, allow(dead_code))]
fn main() {
    run(pairs_from_env());
}

/// With the default test harness (no `harness = false`), the benchmark runs as a test; it is
/// small unless `SEQKD_BENCH_PAIRS` says otherwise.
#[test]
fn sentence_bleu_throughput() {
    let pairs = std::env::var("SEQKD_BENCH_PAIRS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    run(pairs);
}
