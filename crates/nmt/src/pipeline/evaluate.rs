//! The evaluation stage of one model: BLEU with greedy and beam search, perplexity and mode mass
//! on the test set, into `eval/<name>.json` with the translations beside it. A model trained again
//! after its evaluation is evaluated again.

use std::path::PathBuf;

use seqkd_text::corpus::{read_lines, LineLimits};

use crate::error::{io_err, Error};
use crate::evaluate::{evaluate, Evaluation};
use crate::model_dir::BEST_FILE;

use super::context::{newer, read_json, set_threads, write_json, write_lines, Context, Stage};
use super::progress::{self, Cost};

pub(super) struct Evaluate {
    name: String,
}

impl Evaluate {
    pub fn new(name: &str) -> Self {
        Self { name: name.to_string() }
    }
}

/// The translations kept beside an evaluation: `eval/<name>.greedy.txt` and `.beam<K>.txt`.
fn outputs(json: &std::path::Path, beam_size: usize) -> [PathBuf; 2] {
    [json.with_extension("greedy.txt"), json.with_extension(format!("beam{beam_size}.txt"))]
}

impl Stage for Evaluate {
    fn describe(&self) -> String {
        format!("evaluate {}", self.name)
    }

    fn done(&self, ctx: &Context) -> Result<bool, Error> {
        let path = ctx.run.eval(&self.name);
        Ok(path.exists() && !newer(&ctx.model_dir(&self.name).join(BEST_FILE), &path))
    }

    fn cost(&self, ctx: &Context) -> Cost {
        let (test, beams) = (ctx.test_size(), [1, ctx.cfg.eval.beam_size]);
        progress::decoding(ctx.arch(&self.name), ctx.vocab_size(), test.sentences, test.words, &beams)
    }

    fn reuse(&self, ctx: &mut Context) -> Result<(), Error> {
        set_threads(ctx.cfg.eval.threads);
        let mut e: Evaluation = read_json(&ctx.run.eval(&self.name))?;
        // The report's bootstrap intervals need the translations; missing ones, or ones of
        // another length, only leave those intervals out.
        let n = ctx.test()?.tgt.len();
        let kept = |file: &PathBuf| {
            let lines = read_lines(file, &LineLimits::ANY_LINE).ok();
            lines.filter(|l| l.len() == n).unwrap_or_default()
        };
        let [greedy, beam] = outputs(&ctx.run.eval(&self.name), e.beam_size);
        (e.greedy_output, e.beam_output) = (kept(&greedy), kept(&beam));
        ctx.evaluations.push(e);
        ctx.loaded.push(None);
        Ok(())
    }

    fn run(&self, ctx: &mut Context) -> Result<(), Error> {
        set_threads(ctx.cfg.eval.threads);
        let path = ctx.run.eval(&self.name);
        let (model, decode) = ctx.load_for_eval(&self.name)?;
        let test = ctx.test()?;
        let e = evaluate(&self.name, &model, &test.src, &test.tgt, &decode)?;
        std::fs::create_dir_all(path.parent().expect("eval dir")).map_err(io_err(&path))?;
        let [greedy, beam] = outputs(&path, ctx.cfg.eval.beam_size);
        write_lines(&greedy, &e.greedy_output)?;
        write_lines(&beam, &e.beam_output)?;
        write_json(&path, &e)?;
        ctx.evaluations.push(e);
        ctx.loaded.push(Some((model, decode)));
        Ok(())
    }
}
