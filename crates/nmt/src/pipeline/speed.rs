//! Decoding speed of every model, timed together (see [`time_decoding`]), again whenever any model
//! was evaluated again. Each `eval/<name>.json` is rewritten with its speeds before
//! `eval/speed.json`, which marks the stage complete.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::evaluate::{time_decoding, DecodingSpeed, TIMED_ROUNDS};

use super::context::{newer, read_json, write_json, Context, Stage};

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
        }
    }

    fn eval_files(ctx: &Context) -> Vec<PathBuf> {
        ctx.evaluated.iter().map(|name| ctx.run.eval(name)).collect()
    }

    /// Puts `speeds`, measured with `threads`, into the evaluations.
    fn apply(ctx: &mut Context, speeds: &[DecodingSpeed], threads: i32) {
        for (e, speed) in ctx.evaluations.iter_mut().zip(speeds) {
            (e.words_per_s_greedy, e.words_per_s_beam) = (speed.words_per_s_greedy, speed.words_per_s_beam);
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

    fn reuse(&self, ctx: &mut Context) -> Result<(), Error> {
        let timed: SpeedFile = read_json(&Self::speed_path(ctx))?;
        let speeds: Vec<DecodingSpeed> = timed.models.into_iter().map(|m| m.speed).collect();
        Self::apply(ctx, &speeds, Self::settings(ctx).threads);
        Ok(())
    }

    fn run(&self, ctx: &mut Context) -> Result<(), Error> {
        let settings = Self::settings(ctx);
        let loaded = std::mem::take(&mut ctx.loaded);
        let models = (ctx.evaluated.iter().zip(loaded))
            .map(|(name, model)| model.map_or_else(|| ctx.load_for_eval(name), Ok))
            .collect::<Result<Vec<_>, _>>()?;
        let speeds = time_decoding(&models, &ctx.test()?.src, TIMED_ROUNDS)?;
        drop(models);
        Self::apply(ctx, &speeds, settings.threads);
        for (e, path) in ctx.evaluations.iter().zip(Self::eval_files(ctx)) {
            write_json(&path, e)?;
        }
        let names = ctx.evaluated.iter().cloned();
        let models = names.zip(speeds).map(|(name, speed)| TimedModel { name, speed }).collect();
        write_json(&Self::speed_path(ctx), &SpeedFile { settings, models })
    }
}

/// eval/speed.json: how the models were timed, and their speeds.
#[derive(Serialize, Deserialize)]
struct SpeedFile {
    settings: TimingSettings,
    models: Vec<TimedModel>,
}

/// What the speeds depend on besides the models: timed again when any of it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TimingSettings {
    threads: i32,
    beam_size: usize,
    batch_tokens: usize,
    device: String,
    rounds: usize,
}

#[derive(Serialize, Deserialize)]
struct TimedModel {
    name: String,
    #[serde(flatten)]
    speed: DecodingSpeed,
}

/// Whether `timed` (read from `speed_path`) holds the speeds of `names`, in order, timed with
/// `settings`, and was written after each of their evaluations (`eval_files`): a model evaluated
/// again is timed again, together with all the others.
fn speeds_current(
    timed: Option<&SpeedFile>,
    settings: &TimingSettings,
    names: &[String],
    eval_files: &[PathBuf],
    speed_path: &Path,
) -> bool {
    timed.is_some_and(|t| t.settings == *settings && t.models.iter().map(|m| &m.name).eq(names))
        && eval_files.iter().all(|eval| !newer(eval, speed_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_are_timed_again_when_a_model_or_a_timing_setting_changed() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["teacher".to_string(), "seq-kd".to_string()];
        let evals: Vec<PathBuf> = names.iter().map(|n| dir.path().join(format!("{n}.json"))).collect();
        let speed_path = dir.path().join("speed.json");
        let settings =
            TimingSettings { threads: 2, beam_size: 5, batch_tokens: 4096, device: "cpu".into(), rounds: 3 };
        let speed = DecodingSpeed { words_per_s_greedy: 2.0, words_per_s_beam: 1.0 };
        let timed = |names: &[&str], settings: &TimingSettings| SpeedFile {
            settings: settings.clone(),
            models: names.iter().map(|n| TimedModel { name: n.to_string(), speed }).collect(),
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
        let one_thread = TimingSettings { threads: 1, ..settings.clone() };
        assert!(!current(Some(&timed(&["teacher", "seq-kd"], &one_thread))), "other threads");
        // A model evaluated again (or a run killed after rewriting the evaluations).
        at(&evals[1], 300);
        assert!(!current(Some(&timed(&["teacher", "seq-kd"], &settings))));
    }
}
