//! The whole run's progress on stderr: "stage n of N", the time since the run started and an
//! estimate of the time left.
//!
//! Each stage's cost is estimated from the config before it runs ([`Cost`]): training from its
//! updates and the model's arithmetic per token, a teacher pass or an evaluation from its sentences,
//! their words and the beam, in seconds of a reference machine (2 CPU cores). The estimate is then
//! calibrated on the stages this run has finished ([`remaining`]): the measured seconds over the
//! estimated ones, per kind of work (training, decoding) once a stage of that kind has finished,
//! else over all finished stages. Stages found complete (skipped) cost nothing. A plain-data leaf:
//! the stages compute their costs with the functions here, and the pipeline prints [`line`] before
//! each stage.

use std::time::Duration;

use crate::config::TrainConfig;
use crate::model::ModelConfig;

/// What a stage mostly spends its time on; each kind is calibrated on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostKind {
    /// Updates: forward and backward passes over batches (a teacher forward pass too).
    Training,
    /// Greedy and beam search.
    Decoding,
    /// Anything else (the vocabulary, pruning, the report): short.
    Other,
}

/// A stage's estimated cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub kind: CostKind,
    /// Seconds on the reference machine.
    pub seconds: f64,
    /// A wall-clock budget the stage stops at (`train.max_minutes`), whatever the estimate says.
    pub cap_seconds: Option<f64>,
}

impl Cost {
    pub fn other(seconds: f64) -> Self {
        Self { kind: CostKind::Other, seconds, cap_seconds: None }
    }
}

/// Floating-point operations of one forward step per target token (with its source token),
/// counting a multiply-add as 2: the weight matrices a token passes through, the output layer
/// over `vocab` included. A proxy for a model's cost per token; sizes in `model` are the config's.
pub fn flops_per_token(model: &ModelConfig, vocab: usize) -> f64 {
    let v = vocab as f64;
    let weights = match model {
        ModelConfig::Transformer(t) => {
            let (d, ff) = (t.d_model as f64, t.d_ff as f64);
            let encoder = t.encoder_layers as f64 * (4.0 * d * d + 2.0 * d * ff);
            // Self-attention, attention over the source, feed-forward.
            let decoder = t.decoder_layers as f64 * (8.0 * d * d + 2.0 * d * ff);
            encoder + decoder + d * v
        }
        ModelConfig::Lstm(l) => {
            let (e, h, layers) = (l.embed_dim as f64, l.hidden as f64, l.layers as f64);
            let lstm = |first_input: f64| 4.0 * h * (first_input + h) + (layers - 1.0) * 8.0 * h * h;
            // Input feeding widens the decoder's first layer; attention: W_a and W_c.
            lstm(e) + lstm(e + h) + 3.0 * h * h + h * v
        }
    };
    2.0 * weights
}

/// The reference machine: seconds per update besides the arithmetic (batching, optimiser,
/// validation), and floating-point operations per second of training (forward and backward).
const UPDATE_OVERHEAD_S: f64 = 0.04;
const TRAINING_FLOPS: f64 = 9e10;
/// The same for search: seconds per hypothesis and source word besides the arithmetic, and
/// operations per second.
const SEARCH_OVERHEAD_S: f64 = 1e-5;
const SEARCH_FLOPS: f64 = 1.3e11;
/// Subword tokens per word, for the updates of an epoch.
const TOKENS_PER_WORD: f64 = 1.3;

/// What a training stage knows of its data: sentence pairs and mean words per sentence (the
/// longer side).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Corpus {
    pub sentences: usize,
    pub words: f64,
}

/// The updates `train` will make on `corpus` (the first of its budgets to run out; an epoch of
/// batches of `batch_tokens` padded tokens).
pub fn updates(train: &TrainConfig, corpus: Corpus) -> f64 {
    let tokens = corpus.sentences as f64 * (corpus.words * TOKENS_PER_WORD + 1.0);
    let per_epoch = (tokens / train.batch_tokens.max(1) as f64).ceil().max(1.0);
    let budgets = [
        (train.max_steps > 0).then_some(train.max_steps as f64),
        (train.max_epochs > 0).then_some(train.max_epochs as f64 * per_epoch),
    ];
    budgets.into_iter().flatten().fold(f64::INFINITY, f64::min).min(1e12)
}

/// Training `model` with `train` on `corpus`, of which `done` (updates, seconds) were made by an
/// earlier, interrupted run of the stage.
pub fn training(
    model: &ModelConfig,
    vocab: usize,
    train: &TrainConfig,
    corpus: Corpus,
    done: (i64, f64),
) -> Cost {
    let per_update =
        UPDATE_OVERHEAD_S + 3.0 * train.batch_tokens as f64 * flops_per_token(model, vocab) / TRAINING_FLOPS;
    let left = (updates(train, corpus) - done.0 as f64).max(0.0);
    let cap = (train.max_minutes > 0.0).then_some((60.0 * train.max_minutes - done.1).max(0.0));
    Cost { kind: CostKind::Training, seconds: left * per_update, cap_seconds: cap }
}

/// A forward pass of `model` over `corpus` with its references (the stored top-k distributions).
pub fn forward(model: &ModelConfig, vocab: usize, corpus: Corpus) -> Cost {
    let tokens = corpus.sentences as f64 * (corpus.words * TOKENS_PER_WORD + 1.0);
    Cost {
        kind: CostKind::Training,
        seconds: tokens * flops_per_token(model, vocab) / TRAINING_FLOPS,
        cap_seconds: None,
    }
}

/// Searches with `model` over `sentences` of `words` source words each, with each beam of
/// `beams` (1 = greedy): the teacher passes, an evaluation, the timing rounds.
pub fn decoding(model: &ModelConfig, vocab: usize, sentences: usize, words: f64, beams: &[usize]) -> Cost {
    let hypotheses: usize = beams.iter().sum();
    let per_word = SEARCH_OVERHEAD_S + flops_per_token(model, vocab) / SEARCH_FLOPS;
    Cost {
        kind: CostKind::Decoding,
        seconds: sentences as f64 * words * hypotheses as f64 * per_word,
        cap_seconds: None,
    }
}

/// Where a stage stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Status {
    /// Still to run (or running now).
    ToRun,
    /// Complete already, so skipped (or expected to be): it costs nothing.
    Skipped,
    /// Run in this process, in this many seconds.
    Ran(f64),
}

/// The time left, and how the estimate was made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub seconds: f64,
    /// Finished stages the estimate is calibrated on (0: the config's estimate as it is).
    pub calibrated_on: usize,
}

/// Finished stages whose estimates add up to less than this many seconds calibrate nothing: their
/// measured time is mostly fixed costs (loading a model), not the work estimated.
const MIN_CALIBRATION_S: f64 = 5.0;

/// The seconds left for the stages still to run, from their `costs` scaled by how the finished
/// ones compared with theirs: per kind of work where a finished stage of that kind allows it, else
/// over all finished stages, else as estimated.
pub fn remaining(costs: &[Cost], status: &[Status]) -> Estimate {
    let ran: Vec<(&Cost, f64)> = costs
        .iter()
        .zip(status)
        .filter_map(|(c, s)| match s {
            Status::Ran(seconds) => Some((c, *seconds)),
            _ => None,
        })
        .collect();
    let ratio = |of: &dyn Fn(&Cost) -> bool| {
        let (estimated, measured) = ran
            .iter()
            .filter(|(c, _)| of(c))
            .fold((0.0, 0.0), |(e, m), (c, seconds)| (e + c.seconds, m + seconds));
        (estimated >= MIN_CALIBRATION_S).then(|| measured / estimated)
    };
    let overall = ratio(&|_| true);
    let seconds = costs
        .iter()
        .zip(status)
        .filter(|(_, s)| **s == Status::ToRun)
        .map(|(c, _)| {
            let scale = ratio(&|d: &Cost| d.kind == c.kind).or(overall).unwrap_or(1.0);
            let estimate = c.seconds * scale;
            c.cap_seconds.map_or(estimate, |cap| estimate.min(cap))
        })
        .sum();
    let calibrated_on = if overall.is_some() { ran.len() } else { 0 };
    Estimate { seconds, calibrated_on }
}

/// A duration as `42s`, `3m05s` or `1h02m`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The log line of stage `at` (0-based) of `status.len()`, `elapsed` into the run.
pub fn line(at: usize, what: &str, costs: &[Cost], status: &[Status], elapsed: Duration) -> String {
    let n = status.len();
    if status[at] == Status::Skipped {
        return format!("stage {} of {n}: {what}: done already, skipped", at + 1);
    }
    let left = remaining(costs, status);
    let how = match left.calibrated_on {
        0 => "estimated from the config".to_string(),
        1 => "calibrated on the 1 stage run so far".to_string(),
        k => format!("calibrated on the {k} stages run so far"),
    };
    format!(
        "stage {} of {n}: {what} ({} elapsed, about {} left in all, {how})",
        at + 1,
        clock(elapsed),
        clock(Duration::from_secs_f64(left.seconds.max(0.0)))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LstmConfig, TransformerConfig};

    fn cost(kind: CostKind, seconds: f64) -> Cost {
        Cost { kind, seconds, cap_seconds: None }
    }

    #[test]
    fn the_cost_per_token_grows_with_width_depth_and_vocabulary() {
        let t = |d, ff, enc, dec| {
            ModelConfig::Transformer(TransformerConfig {
                d_model: d,
                d_ff: ff,
                encoder_layers: enc,
                decoder_layers: dec,
                ..Default::default()
            })
        };
        // d 128, d_ff 512, 2+2 layers, 2,000 subwords: 2 × (2·196,608 + 2·262,144 + 256,000).
        assert_eq!(flops_per_token(&t(128, 512, 2, 2), 2000), 2.0 * (393_216.0 + 524_288.0 + 256_000.0));
        assert!(flops_per_token(&t(256, 1024, 2, 2), 2000) > 3.0 * flops_per_token(&t(128, 512, 2, 2), 2000));
        assert!(flops_per_token(&t(128, 512, 2, 1), 2000) < flops_per_token(&t(128, 512, 2, 2), 2000));
        assert!(flops_per_token(&t(128, 512, 2, 2), 8000) > flops_per_token(&t(128, 512, 2, 2), 2000));
        let lstm =
            |h| ModelConfig::Lstm(LstmConfig { embed_dim: h, hidden: h, layers: 2, ..Default::default() });
        // Encoder 4h·2h + 8h², decoder 4h·3h + 8h², attention 3h², output h·V.
        let h = 100.0;
        assert_eq!(
            flops_per_token(&lstm(100), 1000),
            2.0 * (16.0 * h * h + 20.0 * h * h + 3.0 * h * h + h * 1000.0)
        );
    }

    #[test]
    fn training_costs_the_first_budget_to_run_out() {
        let corpus = Corpus { sentences: 10_000, words: 9.0 };
        // 10,000 × (9 × 1.3 + 1) = 127,000 tokens: 62 full batches of 2,048 and one more.
        let train = |max_steps, max_epochs| TrainConfig {
            max_steps,
            max_epochs,
            batch_tokens: 2048,
            ..Default::default()
        };
        assert_eq!(updates(&train(0, 2), corpus), 126.0);
        assert_eq!(updates(&train(100, 2), corpus), 100.0);
        assert_eq!(updates(&train(500, 2), corpus), 126.0);
        assert_eq!(updates(&train(500, 0), corpus), 500.0);
        let model = ModelConfig::default();
        let cost = |train: &TrainConfig, done| training(&model, 2000, train, corpus, done);
        let (short, long) = (cost(&train(100, 0), (0, 0.0)), cost(&train(200, 0), (0, 0.0)));
        assert_eq!(short.kind, CostKind::Training);
        assert!((long.seconds / short.seconds - 2.0).abs() < 1e-9, "{short:?} {long:?}");
        // Resumed halfway: half the cost left; finished: none.
        assert!((cost(&train(200, 0), (100, 30.0)).seconds - short.seconds).abs() < 1e-9);
        assert_eq!(cost(&train(200, 0), (200, 60.0)).seconds, 0.0);
        let timed = TrainConfig { max_minutes: 1.5, ..train(100, 0) };
        assert_eq!(cost(&timed, (0, 0.0)).cap_seconds, Some(90.0));
        assert_eq!(cost(&timed, (10, 30.0)).cap_seconds, Some(60.0));
        // A beam of 5 searches five hypotheses per sentence: greedy + beam is 6× greedy.
        let greedy = decoding(&model, 2000, 1000, 12.0, &[1]);
        assert!((decoding(&model, 2000, 1000, 12.0, &[1, 5]).seconds / greedy.seconds - 6.0).abs() < 1e-9);
    }

    #[test]
    fn the_estimate_is_calibrated_on_finished_stages_of_the_same_kind_first() {
        use CostKind::*;
        let costs = [cost(Training, 100.0), cost(Training, 50.0), cost(Decoding, 20.0), cost(Other, 1.0)];
        // Nothing run yet: the config's estimate.
        let fresh = remaining(&costs, &[Status::ToRun; 4]);
        assert_eq!(fresh, Estimate { seconds: 171.0, calibrated_on: 0 });
        // The first training stage took twice its estimate: so will the second; decoding, not yet
        // timed, scales with the overall ratio (2×) too.
        let s = [Status::Ran(200.0), Status::ToRun, Status::ToRun, Status::ToRun];
        assert_eq!(remaining(&costs, &s), Estimate { seconds: 100.0 + 40.0 + 2.0, calibrated_on: 1 });
        // Skipped (complete) stages cost nothing and calibrate nothing.
        let s = [Status::Skipped, Status::Skipped, Status::ToRun, Status::ToRun];
        assert_eq!(remaining(&costs, &s), Estimate { seconds: 21.0, calibrated_on: 0 });
        // Decoding measured at half its estimate, training at 2×: each kind keeps its own ratio.
        let costs = [cost(Training, 100.0), cost(Decoding, 20.0), cost(Training, 50.0), cost(Decoding, 20.0)];
        let s = [Status::Ran(200.0), Status::Ran(10.0), Status::ToRun, Status::ToRun];
        assert_eq!(remaining(&costs, &s), Estimate { seconds: 100.0 + 10.0, calibrated_on: 2 });
        // A stage too short to say anything (loading a model) calibrates nothing.
        let s = [Status::Skipped, Status::Ran(30.0), Status::ToRun, Status::ToRun];
        let costs_short = [costs[0], cost(Decoding, 2.0), costs[2], costs[3]];
        assert_eq!(remaining(&costs_short, &s), Estimate { seconds: 70.0, calibrated_on: 0 });
        // A time budget caps a training stage however slow the machine.
        let capped = [cost(Training, 100.0), Cost { cap_seconds: Some(60.0), ..cost(Training, 100.0) }];
        assert_eq!(remaining(&capped, &[Status::Ran(300.0), Status::ToRun]).seconds, 60.0);
    }

    #[test]
    fn the_log_line_names_the_stage_the_time_so_far_and_the_time_left() {
        let costs = [Cost::other(10.0), cost(CostKind::Training, 100.0), cost(CostKind::Training, 300.0)];
        let status = [Status::Ran(20.0), Status::ToRun, Status::Skipped];
        assert_eq!(
            line(1, "train baseline", &costs, &status, Duration::from_secs(21)),
            "stage 2 of 3: train baseline (21s elapsed, about 3m20s left in all, calibrated on the 1 stage run so far)"
        );
        assert_eq!(
            line(2, "train seq-kd", &costs, &status, Duration::ZERO),
            "stage 3 of 3: train seq-kd: done already, skipped"
        );
        assert_eq!(
            line(0, "vocabulary", &costs, &[Status::ToRun; 3], Duration::ZERO),
            "stage 1 of 3: vocabulary (0s elapsed, about 6m50s left in all, estimated from the config)"
        );
        assert_eq!(clock(Duration::from_secs(3725)), "1h02m");
    }
}
