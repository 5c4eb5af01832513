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
    /// The same speeds on the native engine (seqkd-runtime) with int8 and with f32 matrix
    /// products, on as many threads (None: not timed, or a model the runtime cannot load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_int8: Option<DecodingSpeed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_f32: Option<DecodingSpeed>,
    /// libtorch threads the speeds were measured with.
    pub threads: i32,
    /// Test sentences the speeds were measured on (the first ones; 0 in files of earlier
    /// versions, which timed all of them).
    #[serde(default)]
    pub timed_sentences: usize,
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
    let src_ids = model.vocab.encode_src_batch(srcs)?;
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
        native_int8: None,
        native_f32: None,
        threads: tch::get_num_threads(),
        timed_sentences: 0,
        sentences: srcs.len(),
        greedy_output,
        beam_output,
    })
}

fn translator<'a>(model: &'a LoadedModel, decode: &DecodeConfig, beam_size: usize) -> Translator<'a> {
    let cfg = DecodeConfig { beam_size, ..decode.clone() };
    Translator { model: &model.model, vocab: &model.vocab, cfg, device: model.vs.device(), scores: false }
}

/// Rounds of [`time_decoding`] in a report: one timed pass of a model varies by ±20% on a shared
/// 2-core machine, more than the differences Table 2 is about; the fastest of 3 is steadier.
pub const TIMED_ROUNDS: usize = 3;

/// A model's decoding speed in source words per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecodingSpeed {
    pub words_per_s_greedy: f64,
    pub words_per_s_beam: f64,
    /// Test BLEU of the engine's own output with K = 1 and K = beam, for the native engines
    /// (their int8 output differs a little from libtorch's; f32 should match it): None for
    /// libtorch (Table 1 has it) and in files of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bleu: Option<[f64; 2]>,
}

/// The native engine's arithmetic in Table 2: int8 (what a user would deploy) and f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativePrecision {
    Int8,
    F32,
}

impl NativePrecision {
    pub const ALL: [NativePrecision; 2] = [NativePrecision::Int8, NativePrecision::F32];

    /// Its name in `eval/speed.json`'s settings.
    pub fn name(self) -> &'static str {
        match self {
            NativePrecision::Int8 => "native-int8",
            NativePrecision::F32 => "native-f32",
        }
    }
}

/// A model's decoding speeds on every engine [`time_decoding`] timed it with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EngineSpeeds {
    /// libtorch: the speeds the paper's claims are decided on.
    #[serde(flatten)]
    pub torch: DecodingSpeed,
    /// The native engine (seqkd-runtime, no libtorch, on the CPU) with int8 matrix products; None
    /// when it was not timed (files of earlier versions) or could not load the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_int8: Option<DecodingSpeed>,
    /// The same with f32 matrix products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_f32: Option<DecodingSpeed>,
}

/// One model as [`time_decoding`] times it: on libtorch with its decoding settings, and on the
/// native engine in each precision it was loaded with (see [`load_native`]).
pub struct TimedModel<'a> {
    pub torch: &'a LoadedModel,
    pub decode: &'a DecodeConfig,
    pub native: Vec<(NativePrecision, seqkd_runtime::Translator)>,
}

/// The model directory `dir` on the native engine with `precision` and `threads`, decoding as
/// `decode` says. Greedy search skips its softmax, as `seqkd translate --engine native` does when
/// no scores are printed: the speed a user of the native engine gets.
pub fn load_native(
    dir: &std::path::Path,
    precision: NativePrecision,
    threads: usize,
    decode: &DecodeConfig,
) -> Result<seqkd_runtime::Translator, seqkd_runtime::translator::LoadError> {
    let precision = match precision {
        NativePrecision::Int8 => seqkd_runtime::translator::Precision::Int8,
        NativePrecision::F32 => seqkd_runtime::translator::Precision::AsStored,
    };
    let mut native = seqkd_runtime::Translator::load(dir, None, precision, threads)?;
    native.cfg = decode.clone();
    native.scores = false;
    Ok(native)
}

/// Times greedy and `decode.beam_size`-beam decoding of the first `timed` of `srcs` by every
/// model, on libtorch and on the native engines it carries, interleaved: each of `passes` rounds decodes with every model in
/// turn (first all on libtorch, exactly as when libtorch was the only engine timed, then all on
/// each native engine), and a (model, engine, beam)'s speed is its fastest round.
///
/// Why interleaved: on a shared machine the speed of one model drifts by ±20% over minutes, so
/// models timed one after another, minutes apart, compare badly (the same Multi30k teacher and
/// student measured 9.4× and, two minutes later, 14.2×). Within a round every model sees the
/// same machine, and the fastest round is the one least disturbed.
///
/// The native engines' output of the last round, completed (untimed) with the rest of `srcs`, is
/// scored against `refs`: their BLEU is on the same sentences as libtorch's.
pub fn time_decoding(
    models: &mut [TimedModel],
    srcs: &[String],
    refs: &[String],
    timed: usize,
    passes: usize,
) -> Result<Vec<EngineSpeeds>, Error> {
    let (srcs, rest) = srcs.split_at(timed.min(srcs.len()));
    let words: usize = srcs.iter().map(|s| s.split_whitespace().count()).sum();
    // Seconds of the fastest round per model: libtorch, then each native precision; [greedy, beam].
    let engines = 1 + NativePrecision::ALL.len();
    let mut fastest = vec![vec![[f64::INFINITY; 2]; engines]; models.len()];
    let time = |best: &mut f64, decode: &mut dyn FnMut() -> Result<(), Error>| -> Result<(), Error> {
        let start = Instant::now();
        decode()?;
        *best = best.min(start.elapsed().as_secs_f64());
        Ok(())
    };
    // The last round's native output per (model, engine, K=1|beam), scored after the timing so
    // that scoring does not disturb the rounds.
    let mut last_output: Vec<(usize, usize, usize, Vec<Vec<seqkd_runtime::format::Hypothesis>>)> = Vec::new();
    let passes = passes.max(1);
    for round in 0..passes {
        for (m, best) in models.iter().zip(&mut fastest) {
            for (beam, best) in [1, m.decode.beam_size].into_iter().zip(best[0].iter_mut()) {
                time(best, &mut || {
                    Ok(translator(m.torch, m.decode, beam).translate(srcs, 1, |_| {}).map(drop)?)
                })?;
            }
        }
        for (e, precision) in NativePrecision::ALL.into_iter().enumerate() {
            for (i, (m, best)) in models.iter_mut().zip(&mut fastest).enumerate() {
                let beam_size = m.decode.beam_size;
                let Some((_, native)) = m.native.iter_mut().find(|(p, _)| *p == precision) else { continue };
                for (k, beam) in [1, beam_size].into_iter().enumerate() {
                    native.cfg.beam_size = beam;
                    let mut output = Vec::new();
                    time(&mut best[1 + e][k], &mut || {
                        output = native.translate(srcs, 1, |_| {})?;
                        Ok(())
                    })?;
                    if round + 1 == passes {
                        output.extend(native.translate(rest, 1, |_| {})?);
                        last_output.push((i, 1 + e, k, output));
                    }
                }
            }
        }
    }
    // BLEU of each (model, engine)'s output, [greedy, beam].
    let mut native_bleu = vec![vec![[f64::NAN; 2]; engines]; models.len()];
    for (i, engine, k, output) in last_output {
        let precision = NativePrecision::ALL[engine - 1];
        let (_, native) = models[i].native.iter().find(|(p, _)| *p == precision).expect("decoded with it");
        let text: Vec<String> = output
            .iter()
            .map(|h| h.first().map(|h| native.vocab.decode(&h.tokens)).unwrap_or_default())
            .collect();
        native_bleu[i][engine][k] = corpus_bleu(&text, refs, &BleuConfig::default())?.score;
    }
    let speed = |[greedy, beam]: [f64; 2]| DecodingSpeed {
        words_per_s_greedy: words as f64 / greedy.max(1e-9),
        words_per_s_beam: words as f64 / beam.max(1e-9),
        bleu: None,
    };
    let native = |engines: &[[f64; 2]], bleu: &[[f64; 2]], precision: NativePrecision| {
        let at = 1 + NativePrecision::ALL.iter().position(|p| *p == precision).expect("listed");
        let [greedy, beam] = engines[at];
        (greedy.is_finite() && beam.is_finite())
            .then(|| DecodingSpeed { bleu: Some(bleu[at]), ..speed([greedy, beam]) })
    };
    Ok(fastest
        .iter()
        .zip(&native_bleu)
        .map(|(engines, bleu)| EngineSpeeds {
            torch: speed(engines[0]),
            native_int8: native(engines, bleu, NativePrecision::Int8),
            native_f32: native(engines, bleu, NativePrecision::F32),
        })
        .collect())
}
