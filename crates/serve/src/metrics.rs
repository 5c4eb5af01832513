//! `GET /metrics`: the server's counters in the Prometheus text format.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: String,
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub sentences: Counter,
    pub source_tokens: Counter,
    pub cancelled_sentences: Counter,
    pub queue_sentences: Gauge,
    pub batch_sentences: Histogram,
    pub decode_seconds: Histogram,
    pub request_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("seqkd");
        let requests = Family::<RequestLabels, Counter>::default();
        let sentences = Counter::default();
        let source_tokens = Counter::default();
        let cancelled_sentences = Counter::default();
        let queue_sentences = Gauge::default();
        let batch_sentences = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        // 1 ms … ~33 s.
        let decode_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let request_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register("requests", "HTTP requests by endpoint and status", requests.clone());
        registry.register("sentences", "Sentences translated", sentences.clone());
        registry.register("source_tokens", "Source subword tokens translated", source_tokens.clone());
        registry.register(
            "cancelled_sentences",
            "Queued sentences dropped because their request was cancelled",
            cancelled_sentences.clone(),
        );
        registry.register("queue_sentences", "Sentences waiting to be decoded", queue_sentences.clone());
        registry.register("batch_sentences", "Sentences per decoded batch", batch_sentences.clone());
        registry.register("decode_seconds", "Time to decode one batch", decode_seconds.clone());
        registry.register(
            "request_duration_seconds",
            "Time from a translation request's arrival to its response",
            request_seconds.clone(),
        );
        Self {
            registry,
            requests,
            sentences,
            source_tokens,
            cancelled_sentences,
            queue_sentences,
            batch_sentences,
            decode_seconds,
            request_seconds,
        }
    }

    pub fn request(&self, endpoint: &str, status: u16) {
        self.requests.get_or_create(&RequestLabels { endpoint: endpoint.into(), status }).inc();
    }

    /// The exposition text (`text/plain; version=0.0.4` compatible, OpenMetrics-style `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
