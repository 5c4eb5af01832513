//! Word-level knowledge distillation (Kim & Rush 2016, §3.1; Hinton et al. 2015).
//!
//! At every target position j the student p is trained towards the teacher's distribution q as
//! well as towards the gold token, teacher-forced on the training target:
//!
//! L_WORD-KD = −Σ_j Σ_k q(t_j = k | s, t_<j) · log p(t_j = k | s, t_<j)
//! L         = (1 − α) · L_NLL + α · L_WORD-KD            (the paper: α = 0.5)
//!
//! q comes from a live teacher run in the training loop (no gradients through it), or from a
//! [`TopkStore`] written once by [`write_topk_store`]: the teacher's k most likely tokens at every
//! position, renormalised to sum to one. With k = the vocabulary size both give the same loss.

use std::path::Path;

use tch::{Kind, Tensor};

use seqkd_text::batching::{BatchConfig, Batcher};
use seqkd_text::encoded::Sentences;
use seqkd_text::vocab::{Vocab, SPECIAL_IDS};

use seqkd_runtime::forced::ForcedTopk;

use super::topk_store::{self, ProbPrecision, StoreHeader, TopkStore};
use super::{native_teacher, run_pass, teacher_fingerprint, Engine, PassOptions, PassStats};
use crate::batch::Batch;
use crate::config::WordKdConfig;
use crate::error::Error;
use crate::loss::label_smoothed_nll_of_logp;
use crate::model::Seq2Seq;
use crate::model_dir::LoadedModel;
use crate::train::method::Objective;

/// The teacher's distribution over a batch's target positions.
pub enum TeacherDistribution {
    /// `[batch, len, vocab]` probabilities (live teacher).
    Full(Tensor),
    /// `[batch, len, k]` token ids (i64) and probabilities summing to one per position; padding
    /// positions have probability zero.
    TopK { ids: Tensor, probs: Tensor },
}

/// Summed Word-KD loss over the non-pad positions of `labels`:
/// (1 − α)·(label-smoothed NLL of the gold token) + α·(cross-entropy of q against p).
/// `logits` `[batch, len, vocab]`, `labels` `[batch, len]`. Callers divide by the token count.
pub fn word_kd_loss(
    logits: &Tensor,
    labels: &Tensor,
    teacher: &TeacherDistribution,
    alpha: f64,
    smoothing: f64,
) -> Tensor {
    let logp = logits.log_softmax(-1, Kind::Float); // [batch, len, vocab]
    let mask = labels.ne(SPECIAL_IDS.pad as i64).to_kind(Kind::Float); // [batch, len]
    let gold = label_smoothed_nll_of_logp(&logp, labels, smoothing);
    let kd = match teacher {
        TeacherDistribution::Full(q) => (q * &logp).sum_dim_intlist(-1, false, Kind::Float),
        TeacherDistribution::TopK { ids, probs } => {
            (probs * logp.gather(-1, ids, false)).sum_dim_intlist(-1, false, Kind::Float)
        }
    };
    let kd = -(kd * mask).sum(Kind::Float);
    gold * (1.0 - alpha) + kd * alpha
}

/// Where the teacher's distribution comes from while training.
pub enum WordKd {
    Live { teacher: Box<LoadedModel>, cfg: WordKdConfig },
    Stored { store: TopkStore, cfg: WordKdConfig },
}

impl WordKd {
    /// Opens the teacher or the store of `cfg`, and checks it fits the student's `vocab` and the
    /// training `targets` (target ids of every training pair, in corpus order).
    pub fn open(
        cfg: &WordKdConfig,
        vocab: &Vocab,
        targets: &dyn Sentences,
        device: tch::Device,
    ) -> Result<Self, Error> {
        cfg.validate().map_err(Error::Invalid)?;
        if let Some(dir) = &cfg.teacher {
            let teacher = LoadedModel::load(dir, device, None)
                .map_err(|e| Error::Invalid(format!("word_kd.teacher: {e}")))?;
            if !same_vocabulary(&teacher.vocab, vocab) {
                return Err(Error::Invalid(format!(
                    "word_kd.teacher {}: the teacher's vocabulary differs from the student's; \
                     set data.vocab_path to {}/vocab.json",
                    dir.display(),
                    dir.display()
                )));
            }
            return Ok(WordKd::Live { teacher: Box::new(teacher), cfg: cfg.clone() });
        }
        let path = cfg.topk.as_ref().expect("validated: teacher or topk");
        let store = TopkStore::open(path)?;
        store.check_matches(targets, vocab.len())?;
        if (store.header.temperature - cfg.temperature).abs() > 1e-9 {
            return Err(Error::Invalid(format!(
                "{}: stored at temperature {}, but word_kd.temperature is {}",
                path.display(),
                store.header.temperature,
                cfg.temperature
            )));
        }
        Ok(WordKd::Stored { store, cfg: cfg.clone() })
    }

    pub fn config(&self) -> &WordKdConfig {
        match self {
            WordKd::Live { cfg, .. } | WordKd::Stored { cfg, .. } => cfg,
        }
    }

    /// q for `batch`, whose rows are the training pairs `sentences` (indices in corpus order).
    pub fn distribution(&self, batch: &Batch, sentences: &[usize]) -> TeacherDistribution {
        match self {
            WordKd::Live { teacher, cfg } => tch::no_grad(|| {
                let logits = teacher.model.logits(&batch.src, &batch.tgt_in, false);
                TeacherDistribution::Full((logits / cfg.temperature).softmax(-1, Kind::Float))
            }),
            WordKd::Stored { store, .. } => {
                let (rows, len) = (sentences.len(), batch.tgt_out.size()[1] as usize);
                let k = store.header.k;
                let mut ids = vec![0i64; rows * len * k];
                let mut probs = vec![0f32; rows * len * k];
                for (r, &s) in sentences.iter().enumerate() {
                    for j in 0..store.positions(s) {
                        let at = (r * len + j) * k;
                        let (ids, probs) = (&mut ids[at..at + k], &mut probs[at..at + k]);
                        store.read(s, j, ids, probs);
                        // The top k carry less than all the mass: renormalise so α keeps its meaning.
                        let total: f32 = probs.iter().sum();
                        if total > 0.0 {
                            probs.iter_mut().for_each(|p| *p /= total);
                        }
                    }
                }
                let device = batch.tgt_out.device();
                let shape = [rows as i64, len as i64, k as i64];
                TeacherDistribution::TopK {
                    ids: Tensor::from_slice(&ids).view(shape).to(device),
                    probs: Tensor::from_slice(&probs).view(shape).to(device),
                }
            }
        }
    }

    /// The summed training loss of `logits` on `batch` (see [`word_kd_loss`]).
    pub fn loss(&self, logits: &Tensor, batch: &Batch, sentences: &[usize], smoothing: f64) -> Tensor {
        let q = self.distribution(batch, sentences);
        word_kd_loss(logits, &batch.tgt_out, &q, self.config().alpha, smoothing)
    }
}

/// Word-KD is the objective of the students it teaches.
impl Objective for WordKd {
    fn loss(&self, logits: &Tensor, batch: &Batch, sentences: &[usize], label_smoothing: f64) -> Tensor {
        WordKd::loss(self, logits, batch, sentences, label_smoothing)
    }
}

fn same_vocabulary(a: &Vocab, b: &Vocab) -> bool {
    a.len() == b.len() && (0..a.len() as u32).all(|id| a.id_to_piece(id) == b.id_to_piece(id))
}

/// Options of a stored top-k pass.
#[derive(Debug, Clone)]
pub struct TopkOptions {
    pub k: usize,
    pub temperature: f64,
    pub precision: ProbPrecision,
    /// Padded tokens per teacher batch.
    pub batch_tokens: usize,
}

impl Default for TopkOptions {
    fn default() -> Self {
        Self { k: 8, temperature: 1.0, precision: ProbPrecision::F16, batch_tokens: 4096 }
    }
}

/// The job record of a top-k pass over the teacher's subword ids of the source and target sides
/// (see [`super::finished`]).
pub fn topk_job(
    teacher_dir: &Path,
    src_ids: &[Vec<u32>],
    tgt_ids: &[Vec<u32>],
    topk: &TopkOptions,
) -> Result<String, Error> {
    Ok(format!(
        "topk k={} T={} {:?}; {}; targets hash {:016x}; sources hash {:016x}",
        topk.k,
        topk.temperature,
        topk.precision,
        teacher_fingerprint(teacher_dir)?,
        topk_store::targets_hash(tgt_ids),
        topk_store::targets_hash(src_ids)
    ))
}

/// Runs the teacher teacher-forced over (`srcs`, `tgts`) and stores its top-k distribution at every
/// target position in `out` (resumable; not shardable: one forward pass per batch is cheap next to
/// the beam searches of Seq-KD).
pub fn write_topk_store(
    teacher: &LoadedModel,
    teacher_dir: &Path,
    srcs: &[String],
    tgts: &[String],
    topk: &TopkOptions,
    out: &Path,
    opts: &PassOptions,
) -> Result<PassStats, Error> {
    if srcs.len() != tgts.len() {
        return Err(Error::Invalid(format!("{} source lines but {} target lines", srcs.len(), tgts.len())));
    }
    if opts.shard.count != 1 {
        return Err(Error::Invalid("a top-k store is written by one process (no --shard)".into()));
    }
    let vocab_size = teacher.vocab.len();
    if topk.temperature <= 0.0 || !topk.temperature.is_finite() {
        return Err(Error::Invalid(format!("temperature must be > 0 (got {})", topk.temperature)));
    }
    if topk.k == 0 || topk.k > vocab_size {
        return Err(Error::Invalid(format!("k must be in 1..={vocab_size} (got {})", topk.k)));
    }
    let src_ids = teacher.vocab.encode_src_batch(srcs)?;
    let tgt_ids = teacher.vocab.encode_batch(tgts)?;
    let header = StoreHeader {
        version: 1,
        k: topk.k,
        vocab_size,
        precision: topk.precision,
        temperature: topk.temperature,
        n_sentences: srcs.len(),
        n_positions: tgt_ids.iter().map(|t| t.len() as u64 + 1).sum(),
        targets_hash: topk_store::targets_hash(&tgt_ids),
        teacher: teacher_dir.display().to_string(),
    };
    if topk.batch_tokens == 0 {
        return Err(Error::Invalid("batch tokens must be >= 1".into()));
    }
    let job = topk_job(teacher_dir, &src_ids, &tgt_ids, topk)?;
    let trailer = || topk_store::trailer(&header, &tgt_ids);
    let mut scorer = forced_scorer(teacher, teacher_dir, topk, opts.engine)?;
    run_pass(out, &job, srcs.len(), opts, trailer, |range| {
        let scored = scorer(&src_ids[range.clone()], &tgt_ids[range])?;
        let mut bytes = Vec::new();
        for sentence in &scored {
            for (ids, probs) in sentence.ids.chunks_exact(topk.k).zip(sentence.probs.chunks_exact(topk.k)) {
                topk_store::encode_position(&header, ids, probs, &mut bytes);
            }
        }
        Ok(bytes)
    })
}

/// Sources and targets (subword ids) → their teacher-forced top-k, in input order.
type ScoreFn<'a> = Box<dyn FnMut(&[Vec<u32>], &[Vec<u32>]) -> Result<Vec<ForcedTopk>, Error> + 'a>;

/// The teacher's teacher-forced top-k as `engine` computes it. Both take the same softmax of the
/// same weights' logits, so an f32 store has the same ids, and probabilities to float rounding,
/// with either (tests/cli.rs checks it).
fn forced_scorer<'a>(
    teacher: &'a LoadedModel,
    teacher_dir: &Path,
    topk: &'a TopkOptions,
    engine: Engine,
) -> Result<ScoreFn<'a>, Error> {
    match engine {
        Engine::Torch => Ok(Box::new(move |srcs, tgts| Ok(torch_topk(teacher, topk, srcs, tgts)))),
        Engine::Native { threads } => {
            let t = native_teacher(teacher, teacher_dir, threads)?;
            Ok(Box::new(move |srcs, tgts| {
                Ok(t.forced_topk_ids(srcs, tgts, topk.k, topk.temperature as f32, topk.batch_tokens))
            }))
        }
    }
}

/// The libtorch pass: one padded forward pass per batch of `topk.batch_tokens`, softmax, top-k.
fn torch_topk(
    teacher: &LoadedModel,
    topk: &TopkOptions,
    srcs: &[Vec<u32>],
    tgts: &[Vec<u32>],
) -> Vec<ForcedTopk> {
    let device = teacher.vs.device();
    let lengths: Vec<(usize, usize)> = srcs.iter().zip(tgts).map(|(s, t)| (s.len(), t.len())).collect();
    let batcher =
        Batcher::new(&lengths, BatchConfig { batch_tokens: topk.batch_tokens, ..Default::default() })
            .expect("write_topk_store checked batch_tokens > 0");
    let mut out = vec![ForcedTopk::default(); srcs.len()];
    let k = topk.k;
    tch::no_grad(|| {
        for rows in batcher.by_source_length() {
            let pairs: Vec<(&[u32], &[u32])> =
                rows.iter().map(|&r| (srcs[r].as_slice(), tgts[r].as_slice())).collect();
            let batch = Batch::new(&pairs, device);
            let logits = teacher.model.logits(&batch.src, &batch.tgt_in, false);
            let q = (logits / topk.temperature).softmax(-1, Kind::Float);
            let (probs, ids) = q.topk(k as i64, -1, true, true); // [rows, len, k]
            let len = probs.size()[1] as usize;
            let probs: Vec<f32> =
                Vec::try_from(probs.flatten(0, -1).to_device(tch::Device::Cpu)).expect("f32 probabilities");
            let ids: Vec<i64> =
                Vec::try_from(ids.flatten(0, -1).to_device(tch::Device::Cpu)).expect("i64 ids");
            for (b, &r) in rows.iter().enumerate() {
                let span = b * len * k..(b * len + tgts[r].len() + 1) * k;
                // Ids index a vocabulary of at most u32::MAX entries.
                let ids = ids[span.clone()].iter().map(|&id| id as u32).collect();
                out[r] = ForcedTopk { ids, probs: probs[span].to_vec() };
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn word_kd_loss_matches_a_hand_computation() {
        // One sentence, two positions (the second is padding), vocabulary of 3.
        let logits = Tensor::from_slice(&[1.0f32, 2.0, 0.5, 9.0, 9.0, 9.0]).view([1, 2, 3]);
        let labels = Tensor::from_slice(&[1i64, 0]).view([1, 2]);
        let q = [0.2f64, 0.7, 0.1];
        let teacher =
            TeacherDistribution::Full(Tensor::from_slice(&[0.2f32, 0.7, 0.1, 0.3, 0.3, 0.4]).view([1, 2, 3]));
        let z = [1.0f64, 2.0, 0.5];
        let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
        let logp: Vec<f64> = z.iter().map(|v| v - lse).collect();
        let nll = -logp[1];
        let ce: f64 = -(0..3).map(|k| q[k] * logp[k]).sum::<f64>();
        for (alpha, smoothing) in [(0.0, 0.0), (0.5, 0.0), (1.0, 0.0), (0.5, 0.1)] {
            let smoothed = (1.0 - smoothing) * nll + smoothing * -(logp.iter().sum::<f64>() / 3.0);
            let want = (1.0 - alpha) * smoothed + alpha * ce;
            let got = word_kd_loss(&logits, &labels, &teacher, alpha, smoothing).double_value(&[]);
            assert!(close(got, want, 1e-6), "alpha {alpha} eps {smoothing}: {got} vs {want}");
        }
    }

    #[test]
    fn word_kd_alpha_zero_is_the_label_smoothed_nll() {
        tch::manual_seed(0);
        let logits = Tensor::randn([3, 5, 11], (Kind::Float, tch::Device::Cpu));
        let labels = Tensor::from_slice(&[4i64, 5, 6, 2, 0, 7, 2, 0, 0, 0, 8, 9, 10, 3, 2]).view([3, 5]);
        let q = TeacherDistribution::Full(Tensor::rand([3, 5, 11], (Kind::Float, tch::Device::Cpu)));
        for smoothing in [0.0, 0.1] {
            let want = crate::loss::label_smoothed_nll(&logits, &labels, smoothing).double_value(&[]);
            let got = word_kd_loss(&logits, &labels, &q, 0.0, smoothing).double_value(&[]);
            assert!(close(got, want, 1e-5), "{got} vs {want}");
        }
    }

    #[test]
    fn top_k_with_k_equal_to_the_vocabulary_is_the_full_distribution() {
        tch::manual_seed(1);
        let logits = Tensor::randn([2, 4, 7], (Kind::Float, tch::Device::Cpu));
        let labels = Tensor::from_slice(&[3i64, 4, 2, 0, 5, 6, 1, 2]).view([2, 4]);
        let q = Tensor::randn([2, 4, 7], (Kind::Float, tch::Device::Cpu)).softmax(-1, Kind::Float);
        let (probs, ids) = q.topk(7, -1, true, true);
        let pad = labels.ne(0).unsqueeze(-1).to_kind(Kind::Float);
        let full = word_kd_loss(&logits, &labels, &TeacherDistribution::Full(q), 0.5, 0.1);
        let top =
            word_kd_loss(&logits, &labels, &TeacherDistribution::TopK { ids, probs: probs * pad }, 0.5, 0.1);
        assert!(close(full.double_value(&[]), top.double_value(&[]), 1e-6));
    }
}
