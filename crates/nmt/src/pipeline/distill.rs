//! The teacher passes (Kim & Rush §3): the Seq-KD corpus, the Seq-Inter corpus and the stored top-k
//! distributions along each corpus a Word-KD row trains on, into `distill/`. A finished output is
//! reused only if its job record matches this teacher, input and settings; checking that needs no
//! teacher loaded, so a rerun of a finished run decodes nothing.

use std::cell::Cell;

use seqkd_text::corpus::{read_lines, LineLimits};
use seqkd_text::vocab::Vocab;

use crate::config::DecodeConfig;
use crate::distill::word_kd::{topk_job, write_topk_store, TopkOptions};
use crate::distill::{self, seq_inter, seq_kd, Engine, Finished, PassOptions, PassStats};
use crate::error::Error;
use crate::model_dir::VOCAB_FILE;
use crate::table1::TrainingData;

use super::context::{topk_file, write_lines, Context, Stage};
use super::progress::{self, Cost};

/// The beam passes decode on the native runtime when the teacher is on the CPU (the same corpus as
/// libtorch's, faster), with the evaluation's threads.
fn pass_options(ctx: &Context) -> PassOptions {
    let on_cpu = matches!(crate::parse_device(&ctx.cfg.teacher.train.device), Ok(tch::Device::Cpu));
    let engine =
        if on_cpu { Engine::Native { threads: ctx.cfg.eval.threads.max(0) as usize } } else { Engine::Torch };
    PassOptions {
        chunk_sentences: ctx.cfg.distill.chunk_sentences,
        progress: ctx.progress,
        engine,
        ..Default::default()
    }
}

/// The teacher's decoding settings with beam `beam`, batched as the evaluation is.
fn decode_with(ctx: &Context, beam: usize) -> DecodeConfig {
    DecodeConfig {
        beam_size: beam,
        batch_tokens: ctx.cfg.eval.batch_tokens,
        ..ctx.cfg.teacher.decode.clone()
    }
}

/// A finished teacher output without a job record (copied in without it, or written by hand) is
/// used as it is; say so, since nothing ties it to this teacher and these settings.
fn note_unrecorded(found: Option<Finished>, out: &std::path::Path, opts: &PassOptions) {
    if found == Some(Finished::Unrecorded) {
        let path = opts.shard.output_path(out);
        eprintln!(
            "[pipeline] note: {} has no job record, so it cannot be checked against this teacher and its \
             settings; it is used as it is",
            path.display()
        );
    }
}

fn log_pass(what: &str, stats: &PassStats) {
    if stats.already_complete {
        return; // the stage line said so
    }
    eprintln!(
        "[pipeline] {what}: {} sentences in {:.1}s ({:.1} sentences/s) → {}",
        stats.processed,
        stats.seconds,
        stats.sentences_per_second(),
        stats.output.display()
    );
}

/// Whether the teacher pass writing the target side of `data`'s corpus for `job` over `n`
/// sentences is finished; what was found is kept in `found` for [`Stage::reuse`].
fn check_finished(
    ctx: &Context,
    found: &Cell<Option<Finished>>,
    data: TrainingData,
    job: &str,
    n: usize,
) -> Result<bool, Error> {
    found.set(distill::finished(&ctx.corpus(data).1, job, n, &pass_options(ctx))?);
    Ok(found.get().is_some())
}

/// §3.2: the teacher's beam-search translation of the training source.
#[derive(Default)]
pub(super) struct SeqKdCorpus {
    found: Cell<Option<Finished>>,
}

impl Stage for SeqKdCorpus {
    fn describe(&self) -> String {
        "distill: Seq-KD corpus (teacher beam search over the training source)".into()
    }

    fn done(&self, ctx: &Context) -> Result<bool, Error> {
        let srcs = &ctx.gold()?.src;
        let job = seq_kd::job(&ctx.teacher_dir, srcs, true, &decode_with(ctx, ctx.cfg.distill.seq_kd_beam))?;
        check_finished(ctx, &self.found, TrainingData::SeqKd, &job, srcs.len())
    }

    fn cost(&self, ctx: &Context) -> Cost {
        let corpus = ctx.corpus_size(TrainingData::SeqKd);
        let beam = ctx.cfg.distill.seq_kd_beam;
        progress::decoding(&ctx.teacher_arch, ctx.vocab_size(), corpus.sentences, corpus.words, &[beam])
    }

    fn reuse(&self, ctx: &mut Context) -> Result<(), Error> {
        note_unrecorded(self.found.get(), &ctx.corpus(TrainingData::SeqKd).1, &pass_options(ctx));
        Ok(())
    }

    fn run(&self, ctx: &mut Context) -> Result<(), Error> {
        ctx.load_teacher()?;
        let (teacher, text) = (ctx.teacher.as_ref().expect("loaded"), ctx.gold()?);
        let decode = decode_with(ctx, ctx.cfg.distill.seq_kd_beam);
        let out = ctx.corpus(TrainingData::SeqKd).1;
        let opts = pass_options(ctx);
        let stats =
            seq_kd::seq_kd(teacher, &ctx.teacher_dir, &text.src, Some(&text.tgt), &decode, &out, &opts)?;
        log_pass("Seq-KD", &stats);
        Ok(())
    }
}

/// §3.3: of the teacher's K-best list, the hypothesis closest to the reference, over the first
/// `distill.seq_inter_sentences` training pairs.
#[derive(Default)]
pub(super) struct SeqInterCorpus {
    found: Cell<Option<Finished>>,
}

impl SeqInterCorpus {
    fn pairs<'c>(&self, ctx: &'c Context) -> Result<(&'c [String], &'c [String]), Error> {
        let text = ctx.gold()?;
        let n = match ctx.cfg.distill.seq_inter_sentences {
            0 => text.src.len(),
            n => n.min(text.src.len()),
        };
        Ok((&text.src[..n], &text.tgt[..n]))
    }
}

impl Stage for SeqInterCorpus {
    fn describe(&self) -> String {
        "distill: Seq-Inter corpus (teacher K-best, closest to the reference)".into()
    }

    fn done(&self, ctx: &Context) -> Result<bool, Error> {
        let (srcs, refs) = self.pairs(ctx)?;
        let job =
            seq_inter::job(&ctx.teacher_dir, srcs, refs, &decode_with(ctx, ctx.cfg.distill.seq_inter_beam))?;
        check_finished(ctx, &self.found, TrainingData::SeqInter, &job, srcs.len())
    }

    fn cost(&self, ctx: &Context) -> Cost {
        let corpus = ctx.corpus_size(TrainingData::SeqInter);
        let beam = ctx.cfg.distill.seq_inter_beam;
        progress::decoding(&ctx.teacher_arch, ctx.vocab_size(), corpus.sentences, corpus.words, &[beam])
    }

    fn reuse(&self, ctx: &mut Context) -> Result<(), Error> {
        note_unrecorded(self.found.get(), &ctx.corpus(TrainingData::SeqInter).1, &pass_options(ctx));
        Ok(())
    }

    fn run(&self, ctx: &mut Context) -> Result<(), Error> {
        let (src_file, out) = ctx.corpus(TrainingData::SeqInter);
        let (srcs, refs) = self.pairs(ctx)?;
        write_lines(&src_file, srcs)?;
        write_lines(&ctx.run.distill("seq-inter.ref"), refs)?;
        ctx.load_teacher()?;
        let (srcs, refs) = self.pairs(ctx)?;
        let teacher = ctx.teacher.as_ref().expect("loaded");
        let decode = decode_with(ctx, ctx.cfg.distill.seq_inter_beam);
        let opts = pass_options(ctx);
        let stats = seq_inter::seq_inter(teacher, &ctx.teacher_dir, srcs, refs, &decode, &out, &opts)?;
        log_pass("Seq-Inter", &stats);
        Ok(())
    }
}

/// §3.1 with a stored teacher: its top-k distribution at every target position of the corpus of
/// `data`, for the Word-KD rows that train on it.
pub(super) struct TopkStore {
    pub data: TrainingData,
    /// The k of the top-k.
    pub k: usize,
}

impl TopkStore {
    fn options(ctx: &Context) -> TopkOptions {
        let d = &ctx.cfg.distill;
        TopkOptions {
            k: d.top_k,
            temperature: d.temperature,
            precision: d.precision,
            batch_tokens: ctx.cfg.eval.batch_tokens.max(1024),
        }
    }

    /// The corpus the store goes along (the gold one is read once for all stages).
    fn with_corpus<T>(
        &self,
        ctx: &Context,
        f: impl FnOnce(&[String], &[String]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if self.data == TrainingData::Gold {
            let text = ctx.gold()?;
            return f(&text.src, &text.tgt);
        }
        let (src, tgt) = ctx.corpus(self.data);
        let limits = LineLimits::default();
        f(&read_lines(&src, &limits)?, &read_lines(&tgt, &limits)?)
    }
}

impl Stage for TopkStore {
    fn describe(&self) -> String {
        format!("distill: stored top-{} teacher distributions for {}", self.k, topk_file(self.data))
    }

    fn done(&self, ctx: &Context) -> Result<bool, Error> {
        let store = ctx.run.distill(topk_file(self.data));
        if !store.exists() {
            return Ok(false);
        }
        let vocab = Vocab::load(&ctx.teacher_dir.join(VOCAB_FILE))?;
        self.with_corpus(ctx, |srcs, tgts| {
            let job = topk_job(
                &ctx.teacher_dir,
                &vocab.encode_src_batch(srcs)?,
                &vocab.encode_batch(tgts)?,
                &Self::options(ctx),
            )?;
            Ok(distill::finished(&store, &job, srcs.len(), &pass_options(ctx))?.is_some())
        })
    }

    fn cost(&self, ctx: &Context) -> Cost {
        progress::forward(&ctx.teacher_arch, ctx.vocab_size(), ctx.corpus_size(self.data))
    }

    fn run(&self, ctx: &mut Context) -> Result<(), Error> {
        ctx.load_teacher()?;
        let (teacher, store) = (ctx.teacher.as_ref().expect("loaded"), ctx.run.distill(topk_file(self.data)));
        let stats = self.with_corpus(ctx, |srcs, tgts| {
            write_topk_store(
                teacher,
                &ctx.teacher_dir,
                srcs,
                tgts,
                &Self::options(ctx),
                &store,
                &pass_options(ctx),
            )
        })?;
        log_pass("top-k", &stats);
        Ok(())
    }
}
