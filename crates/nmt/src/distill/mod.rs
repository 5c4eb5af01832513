//! Knowledge distillation (Kim & Rush 2016): what a teacher writes for its students.
//!
//! - [`word_kd`] (§3.1): the student matches the teacher's per-token distribution, from a live teacher
//!   in the training loop or from a [`topk_store`] written once by a teacher-forced pass.
//! - [`seq_kd`] (§3.2): the teacher's beam-search translation of the training source becomes the
//!   student's target side.
//! - [`seq_inter`] (§3.3): of the teacher's K-best list, the hypothesis closest to the reference
//!   (smoothed sentence BLEU) becomes the target for fine-tuning.
//!
//! Every teacher pass goes over the corpus in fixed chunks, in order, appending to a
//! [`ResumableOutput`]: a killed pass continues where it stopped, and `--shard i/N` gives each of N
//! processes a contiguous run of chunks whose outputs concatenate to the unsharded output.

pub mod seq_inter;
pub mod seq_kd;
pub mod topk_store;
pub mod word_kd;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use seqkd_text::resumable::{check_complete, JobRecord, ResumableOutput, Shard};

use seqkd_text::corpus::Lines;
use seqkd_text::fnv::Fnv1a;

use crate::config::DecodeConfig;
use seqkd_runtime::translator::{Precision, Translator as NativeTranslator};

use crate::decode::{Hypothesis, Translator};
use crate::error::Error;
use crate::model_dir::{LoadedModel, BEST_FILE};

/// How a teacher pass walks the corpus.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// Sentences per chunk: the unit of progress that survives a kill (and of sharding).
    pub chunk_sentences: usize,
    pub shard: Shard,
    /// Show a progress bar with sentences/s and ETA.
    pub progress: bool,
    /// What runs the teacher: its beam passes (Seq-KD, Seq-Inter) and its top-k scoring.
    pub engine: Engine,
}

impl PassOptions {
    /// The sentences this shard decodes of an `n`-sentence pass: its whole chunks, contiguous.
    /// A shard reads only these lines of its source ([`seqkd_text::corpus::LineWindow`]).
    pub fn shard_sentences(&self, n: usize) -> Range<usize> {
        let c = self.chunk_sentences.max(1);
        let chunks = self.shard.chunks(n.div_ceil(c));
        (chunks.start * c).min(n)..(chunks.end * c).min(n)
    }
}

impl Default for PassOptions {
    fn default() -> Self {
        Self { chunk_sentences: 1000, shard: Shard::default(), progress: false, engine: Engine::Torch }
    }
}

/// The engine of a beam pass. Both apply the same search rules to the same weights, so an f32
/// pass writes the same corpus with either (tests/cli.rs checks it line for line), and a pass
/// may be resumed with the other engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// libtorch, on the teacher's device.
    Torch,
    /// seqkd's native CPU runtime (crates/runtime) with this many threads (0 = all cores): f32 as
    /// stored (speed against libtorch: docs/distillation.md, "Engines").
    Native { threads: usize },
}

/// What one run of a pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassStats {
    /// Sentences this shard owns.
    pub sentences: usize,
    /// Sentences processed by this run (the rest were done by an earlier, interrupted run).
    pub processed: usize,
    pub seconds: f64,
    /// True when the output was already complete and nothing ran.
    pub already_complete: bool,
    /// The file written: `out`, or `out.shard-i-of-N`.
    pub output: PathBuf,
    /// Of `seconds`, the time spent choosing among the n-best (Seq-Inter's sentence BLEU).
    pub choose_seconds: f64,
}

impl PassStats {
    pub fn sentences_per_second(&self) -> f64 {
        self.processed as f64 / self.seconds.max(1e-9)
    }
}

/// Runs `chunk_output` over this shard's chunks of an `n`-sentence corpus, in order, appending each
/// chunk's bytes to the shard's output; `trailer` is appended when all are done. `job` describes the
/// inputs and options so a rerun with different ones cannot append to this output.
pub(crate) fn run_pass(
    out: &Path,
    job: &str,
    n: usize,
    opts: &PassOptions,
    trailer: impl FnOnce() -> Vec<u8>,
    mut chunk_output: impl FnMut(Range<usize>) -> Result<Vec<u8>, Error>,
) -> Result<PassStats, Error> {
    if opts.chunk_sentences == 0 {
        return Err(Error::Invalid("chunk size must be >= 1 sentence".into()));
    }
    let path = opts.shard.output_path(out);
    let n_chunks = n.div_ceil(opts.chunk_sentences);
    let chunks = opts.shard.chunks(n_chunks);
    let sentence_range = |c: usize| c * opts.chunk_sentences..((c + 1) * opts.chunk_sentences).min(n);
    let owned = opts.shard_sentences(n).len();
    let mut stats = PassStats { sentences: owned, output: path.clone(), ..Default::default() };
    let job = pass_job(job, n, opts);
    if path.exists() {
        check_complete(&path, &job)?;
        stats.already_complete = true;
        return Ok(stats);
    }
    let mut writer = ResumableOutput::open(&path, &job)?;
    let done_before: usize = chunks.clone().take(writer.chunks_done()).map(|c| sentence_range(c).len()).sum();
    let bar = if opts.progress {
        let bar = indicatif::ProgressBar::new(owned as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} sentences · {per_sec} · ETA {eta} · {msg}",
            )
            .expect("valid template"),
        );
        bar.set_position(done_before as u64);
        bar.reset_eta();
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_message(path.display().to_string());
    let start = Instant::now();
    for c in chunks.clone().skip(writer.chunks_done()) {
        let range = sentence_range(c);
        let len = range.len();
        let bytes = chunk_output(range)?;
        writer.append_chunk(&bytes)?;
        stats.processed += len;
        bar.inc(len as u64);
    }
    bar.finish_and_clear();
    // The trailer describes the whole corpus, so only a single (unsharded) output carries it.
    let trailer = if opts.shard.count == 1 { trailer() } else { Vec::new() };
    let first = opts.shard_sentences(n).start;
    let record = JobRecord { job, first, end: first + owned, total: n };
    writer.finish(&trailer, &record)?;
    stats.seconds = start.elapsed().as_secs_f64();
    Ok(stats)
}

/// The job record `run_pass` keeps beside its output: the pass's own description and the chunking.
fn pass_job(job: &str, n: usize, opts: &PassOptions) -> String {
    format!("{job}; sentences={n}; chunk={}; shard={}", opts.chunk_sentences, opts.shard)
}

/// A finished pass output, as [`finished`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Its job record matches the job.
    Checked,
    /// It has no job record (written by hand, or copied in without it): taken as it is.
    Unrecorded,
}

/// Whether this shard's output of the `n`-sentence pass `job` is finished (None: absent, to be run).
/// A finished output written by another job is refused. Needs no teacher loaded, so a rerun of a
/// finished run checks its corpora without decoding anything.
pub fn finished(out: &Path, job: &str, n: usize, opts: &PassOptions) -> Result<Option<Finished>, Error> {
    let path = opts.shard.output_path(out);
    if !path.exists() {
        return Ok(None);
    }
    let recorded = check_complete(&path, &pass_job(job, n, opts))?;
    Ok(Some(if recorded { Finished::Checked } else { Finished::Unrecorded }))
}

/// What a beam pass over `srcs` is, for its job record: the pass (`what`), teacher weights, source
/// text and search settings.
pub(crate) fn beam_job(
    what: &str,
    teacher_dir: &Path,
    srcs: &(impl Lines + ?Sized),
    decode: &DecodeConfig,
) -> Result<String, Error> {
    Ok(format!(
        "{what}; {}; source hash {:016x}; beam={} lp={} max_len={}x+{}",
        teacher_fingerprint(teacher_dir)?,
        srcs.text_hash(),
        decode.beam_size,
        decode.length_penalty,
        decode.max_len_a,
        decode.max_len_b
    ))
}

/// A fingerprint of a teacher: a hash of its weights, so a pass resumed after the teacher changed
/// (retrained, same size) refuses to mix two teachers' outputs.
pub(crate) fn teacher_fingerprint(dir: &Path) -> Result<String, Error> {
    let path = dir.join(BEST_FILE);
    let bytes = std::fs::read(&path).map_err(crate::error::io_err(&path))?;
    let mut h = Fnv1a::new();
    h.words(&bytes);
    Ok(format!("teacher weights {:016x}", h.finish()))
}

/// The n-best lists of sentences, from either engine.
type BeamFn<'a> = Box<dyn Fn(&[String]) -> Result<Vec<Vec<Hypothesis>>, Error> + 'a>;

/// The teacher (loaded from `teacher_dir`) as `engine` decodes it with `decode`.
fn beam_engine<'a>(
    teacher: &'a LoadedModel,
    teacher_dir: &Path,
    decode: &DecodeConfig,
    nbest: usize,
    engine: Engine,
) -> Result<BeamFn<'a>, Error> {
    let device = teacher.vs.device();
    match engine {
        Engine::Torch => {
            let t = Translator {
                model: &teacher.model,
                vocab: &teacher.vocab,
                cfg: decode.clone(),
                device,
                scores: true,
            };
            Ok(Box::new(move |srcs| Ok(t.translate(srcs, nbest, |_| {})?)))
        }
        Engine::Native { threads } => {
            let mut t = native_teacher(teacher, teacher_dir, threads)?;
            t.cfg = decode.clone();
            Ok(Box::new(move |srcs| Ok(t.translate(srcs, nbest, |_| {})?)))
        }
    }
}

/// The teacher on the native engine (f32 as stored, `threads` threads; 0 = all cores), refused
/// with a message naming `--engine torch` when the teacher is not on the CPU or is a model the
/// native runtime cannot load.
pub(crate) fn native_teacher(
    teacher: &LoadedModel,
    teacher_dir: &Path,
    threads: usize,
) -> Result<NativeTranslator, Error> {
    let device = teacher.vs.device();
    if device != tch::Device::Cpu {
        return Err(Error::Invalid(format!(
            "the native engine runs on the CPU only (the teacher is on {device:?}): use --engine torch"
        )));
    }
    NativeTranslator::load(teacher_dir, None, Precision::AsStored, threads).map_err(|e| {
        Error::Invalid(format!(
            "the native engine cannot load the teacher {} ({e}): use --engine torch",
            teacher_dir.display()
        ))
    })
}

/// Beam search over `srcs` with the teacher, choosing one hypothesis text per sentence with
/// `choose(index, nbest_texts)`; writes one line per source line. Shared by Seq-KD and Seq-Inter;
/// `job` is the pass's [`beam_job`].
#[allow(clippy::too_many_arguments)] // internal: each caller passes its own arguments straight through
pub(crate) fn beam_pass(
    teacher: &LoadedModel,
    teacher_dir: &Path,
    srcs: &(impl Lines + ?Sized),
    decode: &DecodeConfig,
    nbest: usize,
    out: &Path,
    job: &str,
    opts: &PassOptions,
    mut choose: impl FnMut(usize, &[String]) -> String,
) -> Result<PassStats, Error> {
    let translate = beam_engine(teacher, teacher_dir, decode, nbest, opts.engine)?;
    let mut choosing = std::time::Duration::ZERO;
    let mut stats = run_pass(out, job, srcs.count(), opts, Vec::new, |range| {
        let start = range.start;
        let hyps = translate(srcs.slice(range))?;
        let mut bytes = Vec::new();
        for (i, nbest) in hyps.iter().enumerate() {
            let texts: Vec<String> =
                nbest.iter().map(|h| one_line(&teacher.vocab.decode(&h.tokens))).collect();
            let chosen = Instant::now();
            bytes.extend_from_slice(choose(start + i, &texts).as_bytes());
            choosing += chosen.elapsed();
            bytes.push(b'\n');
        }
        Ok(bytes)
    })?;
    stats.choose_seconds = choosing.as_secs_f64();
    Ok(stats)
}

/// A translation as one line of a corpus file: a byte-fallback newline, CR or NUL becomes a space
/// (`seqkd_text::corpus` rejects them).
fn one_line(text: &str) -> String {
    if text.contains(['\n', '\r', '\0']) {
        text.replace(['\n', '\r', '\0'], " ")
    } else {
        text.to_string()
    }
}
