//! `seqkd bench-serve`: the server under load, against `seqkd translate` on the same sentences.
//!
//! In one process and one run: (1) the sentences translated in batches, as `seqkd translate
//! --engine native` does (the throughput ceiling); (2) a real server on a loopback port with
//! dynamic batching, `clients` concurrent clients each sending one sentence per request; (3) the
//! same server with batching disabled. (1) and (2) alternate for `rounds` rounds (a phase lasts
//! well under a second on 2 cores, so one round is noisy); the ratio reported is the median of
//! the rounds' ratios, and its round's figures are shown. Every served translation must equal
//! (1)'s; the report gives sentences/s, latency percentiles, errors, and the two ratios the
//! design is judged by. Clients keep their connection alive, as client libraries' sessions do,
//! unless `keep_alive` is off (one TCP connection per request).

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
    /// Rounds of (1) and (2); the median ratio is reported.
    pub rounds: usize,
    /// Each client reuses one connection (else one per request).
    pub keep_alive: bool,
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
    /// Fraction of the phase's wall time the decoder spent decoding.
    pub decoder_busy: f64,
}

impl Load {
    fn json(&self) -> Value {
        json!({
            "sentences": self.sentences, "errors": self.errors, "seconds": self.seconds,
            "sentences_per_second": self.per_second, "p50_ms": self.p50_ms, "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms, "mismatches": self.mismatches, "mean_batch_sentences": self.mean_batch,
            "decoder_busy": self.decoder_busy,
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
            s.spawn(|| {
                let mut conn: Option<client::Connection> = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= lines.len() || Instant::now() > deadline {
                        break;
                    }
                    let sent = Instant::now();
                    // No scores, as `seqkd translate` computes none by default.
                    let body = json!({ "text": lines[i], "beam": cfg.beam, "scores": false });
                    let r = if cfg.keep_alive {
                        post_kept_alive(&mut conn, addr, &body)
                    } else {
                        client::post_json(addr, "/v1/translate", &body)
                    };
                    let ms = sent.elapsed().as_secs_f64() * 1e3;
                    let text = match r {
                        Ok(r) if r.status == 200 => {
                            r.json()["translations"][0]["text"].as_str().map(String::from)
                        }
                        _ => None,
                    };
                    results.lock().unwrap().push((i, ms, text));
                }
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
        decoder_busy: 0.0,
    };
    (load, results.len())
}

/// POSTs `body` over `conn`, opened on first use; a connection that failed is dropped, so the
/// next request opens a new one.
fn post_kept_alive(
    conn: &mut Option<client::Connection>,
    addr: SocketAddr,
    body: &Value,
) -> std::io::Result<client::Response> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(client::Connection::open(addr)?),
    };
    let r = c.post_json("/v1/translate", body);
    if r.is_err() {
        *conn = None;
    }
    r
}

/// Mean sentences per decoded batch and seconds spent decoding, from the service's histograms.
fn batch_stats(service: &Service) -> (f64, f64) {
    let text = service.metrics.render();
    let get = |name: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
    };
    let mean = get("seqkd_batch_sentences_sum ") / get("seqkd_batch_sentences_count ").max(1.0);
    (mean, get("seqkd_decode_seconds_sum "))
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

/// (1): `lines` translated in batches by `batch`; the translations and sentences/s.
fn translate_batched(
    batch: &Translator,
    lines: &[String],
) -> Result<(Vec<String>, f64), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let out = batch
        .translate(lines, 1, |_| {})?
        .iter()
        .map(|h| h.first().map(|h| batch.vocab.decode(&h.tokens)).unwrap_or_default())
        .collect();
    Ok((out, lines.len() as f64 / start.elapsed().as_secs_f64()))
}

/// (2) or (3): a fresh server under the clients' load.
fn serve_phase(
    model: &Path,
    lines: &[String],
    expected: &[String],
    cfg: &BenchConfig,
    batching: bool,
) -> Result<Load, Box<dyn std::error::Error>> {
    let limits = RequestLimits::default();
    let batcher = BatchLimits {
        max_batch_tokens: cfg.max_batch_tokens,
        max_wait: cfg.max_wait,
        max_queue_sentences: 4 * cfg.clients.max(limits.max_request_sentences),
        batching,
    };
    let translator = Translator::load(model, None, cfg.precision, cfg.threads)?;
    let service = Service::new(translator, batcher, limits, ("src".into(), "tgt".into()));
    let mut load = with_server(service, |addr, service| {
        let (mut load, _) = drive(addr, lines, expected, cfg);
        let (mean, decoding) = batch_stats(service);
        load.mean_batch = mean;
        load.decoder_busy = decoding / load.seconds;
        load
    })?;
    load.mean_batch = (load.mean_batch * 100.0).round() / 100.0;
    Ok(load)
}

/// Runs the phases on `lines`; the report as JSON.
pub fn run(model: &Path, lines: &[String], cfg: &BenchConfig) -> Result<Value, Box<dyn std::error::Error>> {
    let mut batch = Translator::load(model, None, cfg.precision, cfg.threads)?;
    batch.cfg.beam_size = cfg.beam;
    batch.scores = false;
    let mut rounds = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..cfg.rounds.max(1) {
        let (translations, batch_rate) = translate_batched(&batch, lines)?;
        expected = translations;
        let dynamic = serve_phase(model, lines, &expected, cfg, true)?;
        rounds.push((batch_rate, dynamic));
    }
    let single = serve_phase(model, lines, &expected, cfg, false)?;
    let ratios: Vec<f64> = rounds.iter().map(|(b, d)| d.per_second / b).collect();
    let mut order: Vec<usize> = (0..rounds.len()).collect();
    order.sort_by(|&a, &b| ratios[a].total_cmp(&ratios[b]));
    let median = order[order.len() / 2];
    let (batch_rate, dynamic) = &rounds[median];
    let errors: usize = rounds.iter().map(|(_, d)| d.errors).sum();
    let mismatches: usize = rounds.iter().map(|(_, d)| d.mismatches).sum();
    let per_round: Vec<Value> = rounds
        .iter()
        .zip(&ratios)
        .map(|((b, d), r)| json!({ "translate_per_second": b, "dynamic_per_second": d.per_second, "ratio": r }))
        .collect();
    Ok(json!({
        "sentences": lines.len(),
        "clients": cfg.clients,
        "threads": cfg.threads,
        "beam": cfg.beam,
        "int8": cfg.precision == Precision::Int8,
        "max_batch_tokens": cfg.max_batch_tokens,
        "max_wait_ms": cfg.max_wait.as_millis() as u64,
        "keep_alive": cfg.keep_alive,
        "rounds": per_round,
        "errors_all_rounds": errors,
        "mismatches_all_rounds": mismatches,
        "translate_batched": { "sentences_per_second": batch_rate },
        "serve_dynamic_batching": dynamic.json(),
        "serve_no_batching": single.json(),
        "ratio_dynamic_to_translate": ratios[median],
        "ratio_dynamic_to_no_batching": dynamic.per_second / single.per_second,
    }))
}
