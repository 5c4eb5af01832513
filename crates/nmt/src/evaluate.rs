//! What the paper measures of every model (Kim & Rush 2016, Tables 1 and 2): BLEU with greedy
//! (K = 1) and beam (K = 5) search, perplexity of the test references, the probability the model
//! gives its own beam output p(t = ŷ) ("mode mass"), parameters, and decoding speed in source
//! words per second for K = 1 and K = 5.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use seqkd_text::metrics::{corpus_bleu, corpus_chrf, BleuConfig, ChrfConfig};

use crate::config::DecodeConfig;
use crate::decode::Translator;
use crate::error::Error;
use crate::model_dir::LoadedModel;
use crate::train::perplexity;

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
    /// Source words/s with K = 1 and K = `beam_size`, from [`time_decoding`].
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

/// Evaluates `model` on (`srcs`, `refs`) with greedy and `decode.beam_size`-beam search. The
/// decoding speeds are left at 0: [`time_decoding`] measures them for every model of a report
/// together, so that their ratios are not skewed by when each model happened to be evaluated.
pub fn evaluate(
    name: &str,
    model: &LoadedModel,
    srcs: &[String],
    refs: &[String],
    decode: &DecodeConfig,
) -> Result<Evaluation, Error> {
    let bleu = |hyps: &[String]| corpus_bleu(hyps, refs, &BleuConfig::default()).map(|b| b.score);
    let run = |beam: usize| -> Result<Vec<crate::decode::Hypothesis>, Error> {
        let hyps = translator(model, decode, beam).translate(srcs, 1, |_| {})?;
        Ok(hyps.into_iter().map(|mut h| h.swap_remove(0)).collect())
    };
    let text = |hyps: &[crate::decode::Hypothesis]| -> Vec<String> {
        hyps.iter().map(|h| model.vocab.decode(&h.tokens)).collect()
    };
    let (greedy, beam) = (run(1)?, run(decode.beam_size)?);
    let (greedy_output, beam_output) = (text(&greedy), text(&beam));
    let mode_mass = beam.iter().map(|h| (h.score as f64).exp()).sum::<f64>() / beam.len().max(1) as f64;
    let src_ids = model.vocab.encode_batch(srcs)?;
    let ref_ids = model.vocab.encode_batch(refs)?;
    let pairs: Vec<(&[u32], &[u32])> =
        src_ids.iter().zip(&ref_ids).map(|(s, t)| (s.as_slice(), t.as_slice())).collect();
    Ok(Evaluation {
        name: name.to_string(),
        params: model.num_nonzero_params(),
        bleu_greedy: bleu(&greedy_output)?,
        bleu_beam: bleu(&beam_output)?,
        chrf_beam: corpus_chrf(&beam_output, refs, &ChrfConfig::default())?.score,
        beam_size: decode.beam_size,
        ppl: perplexity(&model.model, &pairs, decode.batch_tokens.max(512), model.vs.device()),
        mode_mass,
        words_per_s_greedy: 0.0,
        words_per_s_beam: 0.0,
        threads: tch::get_num_threads(),
        sentences: srcs.len(),
        greedy_output,
        beam_output,
    })
}

fn translator<'a>(model: &'a LoadedModel, decode: &DecodeConfig, beam_size: usize) -> Translator<'a> {
    let cfg = DecodeConfig { beam_size, ..decode.clone() };
    Translator { model: &model.model, vocab: &model.vocab, cfg, device: model.vs.device() }
}

/// Rounds of [`time_decoding`] in a report: one timed pass of a model varies by ±20% on a shared
/// 2-core machine, more than the differences Table 2 is about; the fastest of 3 is steadier.
pub const TIMED_ROUNDS: usize = 3;

/// A model's decoding speed in source words per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecodingSpeed {
    pub words_per_s_greedy: f64,
    pub words_per_s_beam: f64,
}

/// Times greedy and `decode.beam_size`-beam decoding of `srcs` by every (model, its decoding
/// settings), interleaved: each of `passes` rounds decodes with every model in turn, and a model's
/// speed is its fastest round.
///
/// Why interleaved: on a shared machine the speed of one model drifts by ±20% over minutes, so
/// models timed one after another, minutes apart, compare badly (the same Multi30k teacher and
/// student measured 9.4× and, two minutes later, 14.2×). Within a round every model sees the
/// same machine, and the fastest round is the one least disturbed.
pub fn time_decoding(
    models: &[(LoadedModel, DecodeConfig)],
    srcs: &[String],
    passes: usize,
) -> Result<Vec<DecodingSpeed>, Error> {
    let words: usize = srcs.iter().map(|s| s.split_whitespace().count()).sum();
    let mut fastest = vec![[f64::INFINITY; 2]; models.len()];
    for _ in 0..passes.max(1) {
        for ((model, decode), best) in models.iter().zip(&mut fastest) {
            for (beam, best) in [1, decode.beam_size].into_iter().zip(best.iter_mut()) {
                let start = Instant::now();
                translator(model, decode, beam).translate(srcs, 1, |_| {})?;
                *best = best.min(start.elapsed().as_secs_f64());
            }
        }
    }
    let per_s = |seconds: f64| words as f64 / seconds.max(1e-9);
    Ok(fastest
        .into_iter()
        .map(|[greedy, beam]| DecodingSpeed {
            words_per_s_greedy: per_s(greedy),
            words_per_s_beam: per_s(beam),
        })
        .collect())
}
