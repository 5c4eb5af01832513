//! `seqkd bench-serve`: the server under load, against `seqkd translate` on the same sentences.
//!
//! In one process and one run: (1) the sentences translated in batches, as `seqkd translate
//! --engine native` does (the throughput ceiling); (2) a real server on a loopback port with
//! dynamic batching, `clients` concurrent clients each sending one sentence per request; (3) the
//! same server with batching disabled. Every served translation must equal (1)'s; the report gives
//! sentences/s, latency percentiles, errors, and the two ratios the design is judged by.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seqkd_runtime::translator::{Precision, Translator};
use serde_json::{json, Value};

use crate::batcher::BatchLimits;
use crate::client;
use crate::service::{RequestLimits, Service};

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub clients: usize,
    pub threads: usize,
    pub precision: Precision,
    /// Beam size of every request (and of the batch baseline).
    pub beam: usize,
    pub max_batch_tokens: usize,
    pub max_wait: Duration,
    /// Each phase stops after this long even if sentences remain.
    pub max_seconds: f64,
}

#[derive(Debug, Clone)]
pub struct Load {
    pub sentences: usize,
    pub errors: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Served translations that differ from the batch baseline's.
    pub mismatches: usize,
    pub mean_batch: f64,
}

impl Load {
    fn json(&self) -> Value {
        json!({
            "sentences": self.sentences, "errors": self.errors, "seconds": self.seconds,
            "sentences_per_second": self.per_second, "p50_ms": self.p50_ms, "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms, "mismatches": self.mismatches, "mean_batch_sentences": self.mean_batch,
        })
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `clients` threads send `lines` one per request until all are sent or `max_seconds` pass.
fn drive(addr: SocketAddr, lines: &[String], expected: &[String], cfg: &BenchConfig) -> (Load, usize) {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(lines.len()));
    let deadline = Instant::now() + Duration::from_secs_f64(cfg.max_seconds);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..cfg.clients {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= lines.len() || Instant::now() > deadline {
                    break;
                }
                let sent = Instant::now();
                let r =
                    client::post_json(addr, "/v1/translate", &json!({ "text": lines[i], "beam": cfg.beam }));
                let ms = sent.elapsed().as_secs_f64() * 1e3;
                let text = match r {
                    Ok(r) if r.status == 200 => {
                        r.json()["translations"][0]["text"].as_str().map(String::from)
                    }
                    _ => None,
                };
                results.lock().unwrap().push((i, ms, text));
            });
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let results = results.into_inner().unwrap();
    let errors = results.iter().filter(|r| r.2.is_none()).count();
    let mismatches =
        results.iter().filter(|(i, _, t)| t.as_ref().is_some_and(|t| *t != expected[*i])).count();
    let mut ms: Vec<f64> = results.iter().filter(|r| r.2.is_some()).map(|r| r.1).collect();
    ms.sort_by(f64::total_cmp);
    let ok = ms.len();
    let load = Load {
        sentences: ok,
        errors,
        seconds,
        per_second: ok as f64 / seconds,
        p50_ms: percentile(&ms, 50.0),
        p95_ms: percentile(&ms, 95.0),
        p99_ms: percentile(&ms, 99.0),
        mismatches,
        mean_batch: 0.0,
    };
    (load, results.len())
}

/// Mean sentences per decoded batch, from the service's histogram.
fn mean_batch(service: &Service) -> f64 {
    let text = service.metrics.render();
    let get = |name: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
    };
    get("seqkd_batch_sentences_sum ") / get("seqkd_batch_sentences_count ").max(1.0)
}

/// A server on a free loopback port for the duration of `f`.
fn with_server<T>(service: Service, f: impl FnOnce(SocketAddr, &Service) -> T) -> std::io::Result<T> {
    let service = Arc::new(service);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(crate::server::serve(listener, Arc::clone(&service), async {
        let _ = stopped.await;
    }));
    let out = f(addr, &service);
    let _ = stop.send(());
    runtime.block_on(server).map_err(std::io::Error::other)??;
    Ok(out)
}

/// Runs the three phases on `lines`; the report as JSON.
pub fn run(model: &Path, lines: &[String], cfg: &BenchConfig) -> Result<Value, Box<dyn std::error::Error>> {
    let load = || Translator::load(model, None, cfg.precision, cfg.threads);
    let mut batch = load()?;
    batch.cfg.beam_size = cfg.beam;
    batch.scores = false;
    let start = Instant::now();
    let expected: Vec<String> = batch
        .translate(lines, 1, |_| {})?
        .iter()
        .map(|h| h.first().map(|h| batch.vocab.decode(&h.tokens)).unwrap_or_default())
        .collect();
    let batch_seconds = start.elapsed().as_secs_f64();
    let batch_rate = lines.len() as f64 / batch_seconds;
    drop(batch);

    let limits = RequestLimits::default();
    let mut phases = Vec::new();
    for batching in [true, false] {
        let batcher = BatchLimits {
            max_batch_tokens: cfg.max_batch_tokens,
            max_wait: cfg.max_wait,
            max_queue_sentences: 4 * cfg.clients.max(limits.max_request_sentences),
            batching,
        };
        let service = Service::new(load()?, batcher, limits, ("src".into(), "tgt".into()));
        let (mut result, _) = with_server(service, |addr, service| {
            let (mut load, sent) = drive(addr, lines, &expected, cfg);
            load.mean_batch = mean_batch(service);
            (load, sent)
        })?;
        result.mean_batch = (result.mean_batch * 100.0).round() / 100.0;
        phases.push(result);
    }
    let (dynamic, single) = (&phases[0], &phases[1]);
    Ok(json!({
        "sentences": lines.len(),
        "clients": cfg.clients,
        "threads": cfg.threads,
        "beam": cfg.beam,
        "int8": cfg.precision == Precision::Int8,
        "max_batch_tokens": cfg.max_batch_tokens,
        "max_wait_ms": cfg.max_wait.as_millis() as u64,
        "translate_batched": { "seconds": batch_seconds, "sentences_per_second": batch_rate },
        "serve_dynamic_batching": dynamic.json(),
        "serve_no_batching": single.json(),
        "ratio_dynamic_to_translate": dynamic.per_second / batch_rate,
        "ratio_dynamic_to_no_batching": dynamic.per_second / single.per_second,
    }))
}
