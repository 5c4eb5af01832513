//! The state every handler shares: the batcher, the vocabulary, the limits, the counters.

use std::sync::Arc;
use std::time::Duration;

use seqkd_runtime::translator::Translator;
use seqkd_text::vocab::Vocab;

use crate::batcher::{BatchLimits, Batcher, Options};
use crate::metrics::Metrics;

/// What one request may ask for.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_request_sentences: usize,
    pub max_sentence_chars: usize,
    pub max_beam: usize,
    /// A client that has not sent its whole body by then gets 408.
    pub body_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_request_sentences: 64,
            max_sentence_chars: 2000,
            max_beam: 8,
            body_timeout: Duration::from_secs(10),
        }
    }
}

impl RequestLimits {
    /// Bytes a request body may have: its sentences at 4 UTF-8 bytes a character, JSON escaping
    /// (up to 6 bytes for a control character) and the fields around them.
    pub fn max_body_bytes(&self) -> usize {
        self.max_request_sentences * (self.max_sentence_chars * 6 + 16) + 4096
    }
}

/// The state every handler shares.
pub struct Service {
    pub batcher: Batcher,
    pub vocab: Vocab,
    pub metrics: Arc<Metrics>,
    pub limits: RequestLimits,
    /// The model's beam size: a request that names none gets it.
    pub default_beam: usize,
    /// (source, target) language codes, for the LibreTranslate endpoints.
    pub langs: (String, String),
}

impl Service {
    /// Serves `translator`; its vocabulary encodes and decodes, its `[decode]` settings (beam size,
    /// length penalty, maximum lengths) are the defaults a request may change the beam of.
    pub fn new(
        translator: Translator,
        batching: BatchLimits,
        limits: RequestLimits,
        langs: (String, String),
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        let vocab = translator.vocab.clone();
        let default_beam = translator.cfg.beam_size;
        let translator = Arc::new(translator);
        let decode = Arc::new(move |ids: &[Vec<u32>], o: Options| {
            let mut cfg = translator.cfg.clone();
            cfg.beam_size = o.beam;
            translator.translate_ids(ids, &cfg, o.nbest, o.scores, |_| {})
        });
        let batcher = Batcher::start(batching, Arc::clone(&metrics), decode);
        Self { batcher, vocab, metrics, limits, default_beam, langs }
    }
}
