//! Decoding speed of every model, timed together (see [`time_decoding`]) on libtorch and on the
//! native engine (int8 and f32), again whenever any model was evaluated again. Each
//! `eval/<name>.json` is rewritten with its speeds before `eval/speed.json`, which marks the stage
//! complete.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::evaluate::{load_native, time_decoding, EngineSpeeds, NativePrecision, TimedModel, TIMED_ROUNDS};

use super::context::{newer, read_json, write_json, Context, Stage};
use super::progress::{self, Cost, CostKind};

pub(super) struct TimeDecoding;

impl TimeDecoding {
    fn speed_path(ctx: &Context) -> PathBuf {
        ctx.run.root.join("eval").join("speed.json")
    }

    fn settings(ctx: &Context) -> TimingSettings {
        TimingSettings {
            threads: tch::get_num_threads(),
            beam_size: ctx.cfg.eval.beam_size,
            batch_tokens: ctx.cfg.eval.batch_tokens,
            device: ctx.cfg.student.train.device.clone(),
            rounds: TIMED_ROUNDS,
            engines: engines(),
            sentences: ctx.timed_sentences(),
        }
    }

    fn eval_files(ctx: &Context) -> Vec<PathBuf> {
        ctx.evaluated.iter().map(|name| ctx.run.eval(name)).collect()
    }

    /// Puts `speeds`, measured with `threads` on the first `sentences`, into the evaluations.
    fn apply(ctx: &mut Context, speeds: &[EngineSpeeds], threads: i32, sentences: usize) {
        for (e, speed) in ctx.evaluations.iter_mut().zip(speeds) {
            e.timed_sentences = sentences;
            (e.words_per_s_greedy, e.words_per_s_beam) =
                (speed.torch.words_per_s_greedy, speed.torch.words_per_s_beam);
            (e.native_int8, e.native_f32) = (speed.native_int8, speed.native_f32);
            e.threads = threads;
        }
    }
}

impl Stage for TimeDecoding {
    fn describe(&self) -> String {
        format!("time decoding (every model in turn, fastest of {TIMED_ROUNDS} rounds)")
    }

    fn done(&self, ctx: &Context) -> Result<bool, Error> {
        let path = Self::speed_path(ctx);
        let timed = read_json::<SpeedFile>(&path).ok();
        Ok(speeds_current(
            timed.as_ref(),
            &Self::settings(ctx),
            &ctx.evaluated,
            &Self::eval_files(ctx),
            &path,
        ))
    }

    fn cost(&self, ctx: &Context) -> Cost {
        let (mut test, beams) = (ctx.test_size(), [1, ctx.cfg.eval.beam_size]);
        test.sentences = ctx.timed_sentences();
        let libtorch: f64 = (ctx.evaluated.iter())
            .map(|name| {
                progress::decoding(ctx.arch(name), ctx.vocab_size(), test.sentences, test.words, &beams)
            })
            .map(|c| c.seconds)
            .sum();
        // The two native engines together take about 0.7 of libtorch's time.
        let seconds = TIMED_ROUNDS as f64 * libtorch * 1.7;
        Cost { kind: CostKind::Decoding, seconds, cap_seconds: None }
    }

    fn reuse(&self, ctx: &mut Context) -> Result<(), Error> {
        let timed: SpeedFile = read_json(&Self::speed_path(ctx))?;
        let speeds: Vec<EngineSpeeds> = timed.models.into_iter().map(|m| m.speed).collect();
        let settings = Self::settings(ctx);
        Self::apply(ctx, &speeds, settings.threads, settings.sentences);
        Ok(())
    }

    fn run(&self, ctx: &mut Context) -> Result<(), Error> {
        let settings = Self::settings(ctx);
        let loaded = std::mem::take(&mut ctx.loaded);
        let models = (ctx.evaluated.iter().zip(loaded))
            .map(|(name, model)| model.map_or_else(|| ctx.load_for_eval(name), Ok))
            .collect::<Result<Vec<_>, _>>()?;
        let threads = settings.threads.max(1) as usize;
        let mut timed: Vec<TimedModel> = (ctx.evaluated.iter().zip(&models))
            .map(|(name, (torch, decode))| {
                let native = NativePrecision::ALL
                    .into_iter()
                    .filter_map(|p| native(&ctx.model_dir(name), p, threads, decode).map(|n| (p, n)))
                    .collect();
                TimedModel { torch, decode, native }
            })
            .collect();
        let (test, n) = (ctx.test()?, settings.sentences);
        let speeds = time_decoding(&mut timed, &test.src, &test.tgt, n, TIMED_ROUNDS)?;
        drop(timed);
        drop(models);
        Self::apply(ctx, &speeds, settings.threads, n);
        for (e, path) in ctx.evaluations.iter().zip(Self::eval_files(ctx)) {
            write_json(&path, e)?;
        }
        let names = ctx.evaluated.iter().cloned();
        let models = names.zip(speeds).map(|(name, speed)| SpeedRecord { name, speed }).collect();
        write_json(&Self::speed_path(ctx), &SpeedFile { settings, models })
    }
}

/// The engines the stage times, as `eval/speed.json` records them.
fn engines() -> Vec<String> {
    std::iter::once("libtorch")
        .chain(NativePrecision::ALL.map(NativePrecision::name))
        .map(String::from)
        .collect()
}

/// `dir`'s model on the native engine, or None (with a note) when the runtime cannot load it:
/// its native columns stay empty.
fn native(
    dir: &Path,
    precision: NativePrecision,
    threads: usize,
    decode: &crate::config::DecodeConfig,
) -> Option<seqkd_runtime::Translator> {
    load_native(dir, precision, threads, decode)
        .inspect_err(|e| {
            eprintln!("[pipeline] note: not timed on the {} engine: {e}", precision.name());
        })
        .ok()
}

/// eval/speed.json: how the models were timed, and their speeds.
#[derive(Serialize, Deserialize)]
struct SpeedFile {
    settings: TimingSettings,
    models: Vec<SpeedRecord>,
}

/// What the speeds depend on besides the models: timed again when any of it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TimingSettings {
    threads: i32,
    beam_size: usize,
    batch_tokens: usize,
    device: String,
    rounds: usize,
    /// libtorch and the native engines (absent from files of earlier versions, which timed
    /// libtorch alone: their models are timed again).
    #[serde(default)]
    engines: Vec<String>,
    /// The first this many test sentences were timed (0 in files of earlier versions: all).
    #[serde(default)]
    sentences: usize,
}

#[derive(Serialize, Deserialize)]
struct SpeedRecord {
    name: String,
    #[serde(flatten)]
    speed: EngineSpeeds,
}

/// Whether `timed` (read from `speed_path`) holds the speeds of `names`, in order, timed with
/// `settings`, with the native engines' BLEU, and was written after each of their evaluations
/// (`eval_files`): a model evaluated again is timed again, together with all the others.
fn speeds_current(
    timed: Option<&SpeedFile>,
    settings: &TimingSettings,
    names: &[String],
    eval_files: &[PathBuf],
    speed_path: &Path,
) -> bool {
    // Native speeds without the BLEU of their output were timed by an earlier version.
    let scored = |t: &SpeedFile| {
        t.models
            .iter()
            .all(|m| [m.speed.native_int8, m.speed.native_f32].iter().flatten().all(|s| s.bleu.is_some()))
    };
    timed.is_some_and(|t| t.settings == *settings && t.models.iter().map(|m| &m.name).eq(names) && scored(t))
        && eval_files.iter().all(|eval| !newer(eval, speed_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::DecodingSpeed;

    #[test]
    fn speeds_are_timed_again_when_a_model_or_a_timing_setting_changed() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["teacher".to_string(), "seq-kd".to_string()];
        let evals: Vec<PathBuf> = names.iter().map(|n| dir.path().join(format!("{n}.json"))).collect();
        let speed_path = dir.path().join("speed.json");
        let settings = TimingSettings {
            threads: 2,
            beam_size: 5,
            batch_tokens: 4096,
            device: "cpu".into(),
            rounds: 3,
            engines: engines(),
            sentences: 1000,
        };
        let pair = DecodingSpeed { words_per_s_greedy: 2.0, words_per_s_beam: 1.0, bleu: None };
        let scored = DecodingSpeed { bleu: Some([30.0, 31.0]), ..pair };
        let speed = EngineSpeeds { torch: pair, native_int8: Some(scored), native_f32: None };
        let timed = |names: &[&str], settings: &TimingSettings| SpeedFile {
            settings: settings.clone(),
            models: names.iter().map(|n| SpeedRecord { name: n.to_string(), speed }).collect(),
        };
        let at = |path: &Path, seconds: u64| {
            let time = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
            std::fs::File::create(path).unwrap().set_modified(time).unwrap();
        };
        evals.iter().for_each(|e| at(e, 100));
        at(&speed_path, 200);
        let current = |t: Option<&SpeedFile>| speeds_current(t, &settings, &names, &evals, &speed_path);
        assert!(current(Some(&timed(&["teacher", "seq-kd"], &settings))));
        assert!(!current(None), "never timed");
        assert!(!current(Some(&timed(&["seq-kd", "teacher"], &settings))), "other order");
        assert!(!current(Some(&timed(&["teacher"], &settings))), "a model added since");
        let mut unscored = timed(&["teacher", "seq-kd"], &settings);
        unscored.models[1].speed.native_int8 = Some(pair);
        assert!(!current(Some(&unscored)), "native speeds timed without scoring their output");
        let one_thread = TimingSettings { threads: 1, ..settings.clone() };
        assert!(!current(Some(&timed(&["teacher", "seq-kd"], &one_thread))), "other threads");
        // A file of an earlier version (libtorch alone, no native speeds) still reads, and its
        // models are timed again on every engine.
        let old = r#"{"settings": {"threads": 2, "beam_size": 5, "batch_tokens": 4096, "device": "cpu", "rounds": 3},
            "models": [{"name": "teacher", "words_per_s_greedy": 2.0, "words_per_s_beam": 1.0},
                       {"name": "seq-kd", "words_per_s_greedy": 2.0, "words_per_s_beam": 1.0}]}"#;
        let old: SpeedFile = serde_json::from_str(old).unwrap();
        assert_eq!(old.models[1].speed, EngineSpeeds { torch: pair, native_int8: None, native_f32: None });
        assert!(!current(Some(&old)), "timed on libtorch alone");
        let json = serde_json::to_value(timed(&["teacher"], &settings)).unwrap();
        assert_eq!(json["models"][0]["native_int8"]["words_per_s_beam"], 1.0);
        assert!(json["models"][0].get("native_f32").is_none(), "{json}");
        // A model evaluated again (or a run killed after rewriting the evaluations).
        at(&evals[1], 300);
        assert!(!current(Some(&timed(&["teacher", "seq-kd"], &settings))));
    }
}
