//! `seqkd bench-serve --model DIR --input FILE`: `seqkd serve` under 64 concurrent single-sentence
//! clients on loopback, with and without dynamic batching, against `seqkd translate` in batches
//! (crates/serve/src/bench.rs; figures in docs/serving.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use seqkd_runtime::translator::Precision;
use seqkd_serve::bench::{run as bench, BenchConfig};
use seqkd_text::corpus::{read_lines, LineLimits};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub model: PathBuf,
    /// Source sentences, one per line (e.g. Multi30k test2016.en).
    #[arg(long)]
    pub input: PathBuf,
    /// At most this many of its lines.
    #[arg(long, default_value_t = 1000)]
    pub sentences: usize,
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Decoding threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[arg(long)]
    pub int8: bool,
    /// Beam size of every request (1 = greedy, what a student is served with).
    #[arg(long, default_value_t = 1)]
    pub beam: usize,
    #[arg(long, default_value_t = 4096)]
    pub max_batch_tokens: usize,
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Each server phase stops after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    pub max_seconds: f64,
    /// Rounds of translate vs dynamic batching; the median ratio is reported.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Each client opens a new TCP connection per request (default: one kept-alive connection each).
    #[arg(long)]
    pub connection_per_request: bool,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.clients >= 1 && args.beam >= 1, "--clients and --beam must be >= 1");
    let mut lines = read_lines(&args.input, &LineLimits::ANY_LINE)?;
    lines.truncate(args.sentences);
    anyhow::ensure!(!lines.is_empty(), "{}: no sentences", args.input.display());
    let cfg = BenchConfig {
        clients: args.clients,
        threads: args.threads,
        precision: if args.int8 { Precision::Int8 } else { Precision::AsStored },
        beam: args.beam,
        max_batch_tokens: args.max_batch_tokens,
        max_wait: Duration::from_millis(args.max_wait_ms),
        max_seconds: args.max_seconds,
        rounds: args.rounds,
        keep_alive: !args.connection_per_request,
    };
    let report = bench(&args.model, &lines, &cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let d = &report["serve_dynamic_batching"];
    let n = &report["serve_no_batching"];
    let rate = |v: &serde_json::Value| v["sentences_per_second"].as_f64().unwrap_or(f64::NAN);
    let conns = if args.connection_per_request { "a connection per request" } else { "keep-alive" };
    println!("{} sentences, {} clients ({conns}), beam {}", lines.len(), args.clients, args.beam);
    let rounds = report["rounds"].as_array().cloned().unwrap_or_default();
    let ratios: Vec<String> =
        rounds.iter().map(|r| format!("{:.2}", r["ratio"].as_f64().unwrap_or(f64::NAN))).collect();
    println!("dynamic / translate per round: {} (median round shown)", ratios.join(" "));
    println!(
        "{:<28} {:>10} {:>8} {:>8} {:>8} {:>7} {:>10} {:>10} {:>6}",
        "", "sent/s", "p50 ms", "p95 ms", "p99 ms", "errors", "mismatch", "batch", "busy"
    );
    println!("{:<28} {:>10.1}", "translate (batched)", rate(&report["translate_batched"]));
    for (name, v) in [("serve, dynamic batching", d), ("serve, batching disabled", n)] {
        println!(
            "{name:<28} {:>10.1} {:>8.1} {:>8.1} {:>8.1} {:>7} {:>10} {:>10.2} {:>6.2}",
            rate(v),
            v["p50_ms"].as_f64().unwrap_or(f64::NAN),
            v["p95_ms"].as_f64().unwrap_or(f64::NAN),
            v["p99_ms"].as_f64().unwrap_or(f64::NAN),
            v["errors"],
            v["mismatches"],
            v["mean_batch_sentences"].as_f64().unwrap_or(f64::NAN),
            v["decoder_busy"].as_f64().unwrap_or(f64::NAN),
        );
    }
    println!(
        "dynamic / translate = {:.2}x; dynamic / no batching = {:.2}x",
        report["ratio_dynamic_to_translate"].as_f64().unwrap_or(f64::NAN),
        report["ratio_dynamic_to_no_batching"].as_f64().unwrap_or(f64::NAN)
    );
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        seqkd_text::atomic_write(out, text.as_bytes())?;
    }
    let clean = report["errors_all_rounds"] == 0
        && report["mismatches_all_rounds"] == 0
        && n["errors"] == 0
        && n["mismatches"] == 0;
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
