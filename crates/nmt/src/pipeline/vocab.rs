//! The run's one joint subword vocabulary, which every model shares (Word-KD needs one
//! vocabulary): the given teacher's, or one trained on the training corpus.

use seqkd_text::corpus::{walk_checked, LineLimits};
use seqkd_text::vocab::Vocab;

use crate::error::Error;
use crate::model_dir::VOCAB_FILE;

use crate::table1::TrainingData;

use super::context::{Context, Stage};
use super::progress::Cost;

pub(super) struct Vocabulary;

impl Stage for Vocabulary {
    fn describe(&self) -> String {
        "vocabulary".into()
    }

    fn done(&self, ctx: &Context) -> Result<bool, Error> {
        Ok(ctx.run.vocab().exists())
    }

    fn cost(&self, ctx: &Context) -> Cost {
        if ctx.cfg.teacher_model.is_some() {
            return Cost::other(0.0); // the teacher's, copied
        }
        // BPE training over both sides: about 5 µs a word on the reference machine.
        let corpus = ctx.corpus_size(TrainingData::Gold);
        Cost::other(2.0 * corpus.sentences as f64 * corpus.words * 5e-6)
    }

    fn run(&self, ctx: &mut Context) -> Result<(), Error> {
        let (d, path) = (&ctx.cfg.data, ctx.run.vocab());
        match &ctx.cfg.teacher_model {
            Some(teacher) => Vocab::load(&teacher.join(VOCAB_FILE))?.save(&path)?,
            None => {
                walk_checked(&d.train_src, &d.train_tgt, &LineLimits::default())?;
                Vocab::train_on_files(&[&d.train_src, &d.train_tgt], &d.vocab)?.save(&path)?
            }
        }
        Ok(())
    }
}
