//! `seqkd serve --model DIR`: the model as an HTTP translation service on the native runtime, with
//! dynamic batching (crates/serve; docs/serving.md).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use seqkd_runtime::translator::Precision;
use seqkd_serve::{BatchLimits, RequestLimits, ServeConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory (a student, or any seqkd model; quantized ones too).
    #[arg(long)]
    pub model: PathBuf,
    /// int8 weights and activations (quantized at load unless the model is int8 already).
    #[arg(long)]
    pub int8: bool,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// 0 = any free port (the bound address is printed: `listening on http://ADDR`).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Decoding threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Source tokens per dynamic batch (sentences of many requests decoded together).
    #[arg(long, default_value_t = 4096)]
    pub max_batch_tokens: usize,
    /// How long a request may wait for others to join its batch.
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Decode each request on its own (the baseline of `seqkd bench-serve`).
    #[arg(long)]
    pub no_batching: bool,
    /// Sentences waiting beyond which requests get 503 with Retry-After.
    #[arg(long, default_value_t = 2048)]
    pub max_queue_sentences: usize,
    #[arg(long, default_value_t = 64)]
    pub max_request_sentences: usize,
    #[arg(long, default_value_t = 2000)]
    pub max_sentence_chars: usize,
    /// Largest beam a request may ask for.
    #[arg(long, default_value_t = 8)]
    pub max_beam: usize,
    /// Seconds a client has to send its request body (then 408).
    #[arg(long, default_value_t = 10)]
    pub body_timeout_s: u64,
    /// Language codes for the LibreTranslate API (default: the extensions of the model's training
    /// files, `train.en` → `en`).
    #[arg(long)]
    pub source_lang: Option<String>,
    #[arg(long)]
    pub target_lang: Option<String>,
}

impl Args {
    pub fn config(&self) -> anyhow::Result<ServeConfig> {
        anyhow::ensure!(self.max_batch_tokens >= 1, "--max-batch-tokens must be >= 1");
        anyhow::ensure!(
            self.max_request_sentences >= 1 && self.max_sentence_chars >= 1 && self.max_beam >= 1,
            "--max-request-sentences, --max-sentence-chars and --max-beam must be >= 1"
        );
        anyhow::ensure!(
            self.max_queue_sentences >= self.max_request_sentences,
            "--max-queue-sentences ({}) must hold one full request (--max-request-sentences {})",
            self.max_queue_sentences,
            self.max_request_sentences
        );
        Ok(ServeConfig {
            addr: SocketAddr::new(self.host, self.port),
            precision: if self.int8 { Precision::Int8 } else { Precision::AsStored },
            threads: self.threads,
            batching: BatchLimits {
                max_batch_tokens: self.max_batch_tokens,
                max_wait: Duration::from_millis(self.max_wait_ms),
                max_queue_sentences: self.max_queue_sentences,
                batching: !self.no_batching,
            },
            limits: RequestLimits {
                max_request_sentences: self.max_request_sentences,
                max_sentence_chars: self.max_sentence_chars,
                max_beam: self.max_beam,
                body_timeout: Duration::from_secs(self.body_timeout_s),
            },
            source_lang: self.source_lang.clone(),
            target_lang: self.target_lang.clone(),
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = args.config()?;
    seqkd_serve::init_logging();
    seqkd_serve::run(&args.model, cfg)
        .map_err(|e| anyhow::anyhow!("serving {}: {e}", args.model.display()))?;
    Ok(ExitCode::SUCCESS)
}
