//! What the paper measures of every model (Kim & Rush 2016, Tables 1 and 2): BLEU with greedy
//! (K = 1) and beam (K = 5) search, perplexity of the test references, the probability the model
//! gives its own beam output p(t = ŷ) ("mode mass"), parameters, and decoding speed in source
//! words per second for K = 1 and K = 5.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use seqkd_text::metrics::{corpus_bleu, corpus_chrf, BleuConfig, ChrfConfig};

use crate::config::DecodeConfig;
use crate::decode::Translator;
use crate::train::{perplexity, LoadedModel, TrainError};

/// One model's row of the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    pub name: String,
    /// Non-zero parameters.
    pub params: i64,
    pub bleu_greedy: f64,
    pub bleu_beam: f64,
    pub chrf_beam: f64,
    pub beam_size: usize,
    /// Perplexity of the test references under the model (teacher-forced).
    pub ppl: f64,
    /// Mean over test sentences of p(t = ŷ | s) for the model's own beam output ŷ.
    pub mode_mass: f64,
    pub words_per_s_greedy: f64,
    pub words_per_s_beam: f64,
    /// libtorch threads the speeds were measured with.
    pub threads: i32,
    pub sentences: usize,
    /// Output of greedy and beam search, one line per test sentence.
    #[serde(skip)]
    pub greedy_output: Vec<String>,
    #[serde(skip)]
    pub beam_output: Vec<String>,
}

/// Each decoding speed is the fastest of this many passes: one timed pass of a model varied by
/// ±20% on a shared 2-core machine, which is more than the differences Table 2 is about.
const TIMED_PASSES: usize = 3;

/// Evaluates `model` on (`srcs`, `refs`) with greedy and `decode.beam_size`-beam search.
pub fn evaluate(
    name: &str,
    model: &LoadedModel,
    srcs: &[String],
    refs: &[String],
    decode: &DecodeConfig,
) -> Result<Evaluation, TrainError> {
    let device = model.vs.device();
    let words: usize = srcs.iter().map(|s| s.split_whitespace().count()).sum();
    let bleu = |hyps: &[String]| corpus_bleu(hyps, refs, &BleuConfig::default()).map(|b| b.score);
    let run = |beam: usize| -> Result<(Vec<crate::decode::Hypothesis>, f64), TrainError> {
        let cfg = DecodeConfig { beam_size: beam, ..decode.clone() };
        let translator = Translator { model: &model.model, vocab: &model.vocab, cfg, device };
        let mut hyps = None;
        let mut fastest = f64::INFINITY;
        for _ in 0..TIMED_PASSES {
            let start = Instant::now();
            let pass = translator.translate(srcs, 1, |_| {})?;
            fastest = fastest.min(start.elapsed().as_secs_f64());
            hyps.get_or_insert(pass);
        }
        let hyps = hyps.expect("at least one pass");
        Ok((hyps.into_iter().map(|mut h| h.swap_remove(0)).collect(), words as f64 / fastest.max(1e-9)))
    };
    let text = |hyps: &[crate::decode::Hypothesis]| -> Vec<String> {
        hyps.iter().map(|h| model.vocab.decode(&h.tokens)).collect()
    };
    let (greedy, words_per_s_greedy) = run(1)?;
    let (beam, words_per_s_beam) = run(decode.beam_size)?;
    let (greedy_output, beam_output) = (text(&greedy), text(&beam));
    let mode_mass = beam.iter().map(|h| (h.score as f64).exp()).sum::<f64>() / beam.len().max(1) as f64;
    let src_ids = model.vocab.encode_batch(srcs)?;
    let ref_ids = model.vocab.encode_batch(refs)?;
    let pairs: Vec<(&[u32], &[u32])> =
        src_ids.iter().zip(&ref_ids).map(|(s, t)| (s.as_slice(), t.as_slice())).collect();
    let metric = |e: seqkd_text::metrics::MetricsError| TrainError::Other(e.to_string());
    Ok(Evaluation {
        name: name.to_string(),
        params: model.num_nonzero_params(),
        bleu_greedy: bleu(&greedy_output).map_err(metric)?,
        bleu_beam: bleu(&beam_output).map_err(metric)?,
        chrf_beam: corpus_chrf(&beam_output, refs, &ChrfConfig::default()).map_err(metric)?.score,
        beam_size: decode.beam_size,
        ppl: perplexity(&model.model, &pairs, decode.batch_tokens.max(512), device),
        mode_mass,
        words_per_s_greedy,
        words_per_s_beam,
        threads: tch::get_num_threads(),
        sentences: srcs.len(),
        greedy_output,
        beam_output,
    })
}
