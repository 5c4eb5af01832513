//! A run's data: the training and validation corpora read and checked, the vocabulary (the model
//! directory's, a given one, the init model's, or one trained on the training data), subword ids,
//! the length filter and the batcher.
//!
//! The training ids are held in memory, or with `[data] stream` memory-mapped from the model
//! directory (`train.src.ids`, `train.tgt.ids`; [`seqkd_text::encoded`]), written once from the
//! text as it streams past and written again whenever the text or the vocabulary changes.

use std::path::Path;

use seqkd_text::batching::{BatchConfig, Batcher};
use seqkd_text::corpus::{read_parallel, walk_checked, LineLimits, ParallelCorpus};
use seqkd_text::encoded::{self, IdsFile, Sentences, Unusable};
use seqkd_text::vocab::Vocab;

use crate::config::Config;
use crate::error::Error;
use crate::model_dir::VOCAB_FILE;

/// Subword ids of each sentence of one side of a corpus.
pub type Ids = Vec<Vec<u32>>;

/// The streamed training ids of a model directory, one file per side.
pub const TRAIN_IDS_FILES: [&str; 2] = ["train.src.ids", "train.tgt.ids"];

/// One side of the training corpus: ids in memory, or mapped from the model directory.
pub enum TrainSide {
    Memory(Ids),
    Mapped(IdsFile),
}

impl Sentences for TrainSide {
    fn count(&self) -> usize {
        match self {
            TrainSide::Memory(ids) => ids.len(),
            TrainSide::Mapped(ids) => ids.count(),
        }
    }
    fn sentence(&self, i: usize) -> &[u32] {
        match self {
            TrainSide::Memory(ids) => &ids[i],
            TrainSide::Mapped(ids) => ids.sentence(i),
        }
    }
}

pub struct RunCorpora {
    pub vocab: Vocab,
    /// Training ids of every pair, in corpus order.
    pub train_src: TrainSide,
    pub train_tgt: TrainSide,
    /// Corpus indices of the pairs the length filter keeps; batches index into this list.
    pub keep: Vec<usize>,
    pub batcher: Batcher,
    pub valid: ParallelCorpus,
    pub valid_src: Ids,
    pub valid_tgt: Ids,
}

/// Who prepares the model directory's files: a data-parallel run's other ranks only read what
/// its leader wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Writer,
    Reader,
}

impl RunCorpora {
    /// Reads the corpora of `cfg` and the vocabulary of the model directory `dir` (saving it there
    /// on a first run; with `[data] stream`, the encoded training corpus too).
    pub fn load(cfg: &Config, dir: &Path, role: Role) -> Result<Self, Error> {
        let limits = LineLimits::default();
        let d = &cfg.data;
        let (vocab, train_src, train_tgt) = if d.stream {
            let vocab = run_vocab(cfg, dir, || {
                // The text is checked whole first, so that no vocabulary is kept from a bad corpus.
                walk_checked(&d.train_src, &d.train_tgt, &limits)?;
                Ok(Vocab::train_on_files(&[&d.train_src, &d.train_tgt], &d.vocab)?)
            })?;
            let (src, tgt) = mapped_train_ids(cfg, dir, &vocab, role, &limits)?;
            (vocab, TrainSide::Mapped(src), TrainSide::Mapped(tgt))
        } else {
            let train_data = read_parallel(&d.train_src, &d.train_tgt, &limits)?;
            let vocab = run_vocab(cfg, dir, || {
                Ok(Vocab::train(train_data.src.iter().chain(&train_data.tgt), &d.vocab)?)
            })?;
            let (src, tgt) = (vocab.encode_src_batch(&train_data.src)?, vocab.encode_batch(&train_data.tgt)?);
            (vocab, TrainSide::Memory(src), TrainSide::Memory(tgt))
        };
        let length = |i: usize| (train_src.sentence(i).len(), train_tgt.sentence(i).len());
        let keep = d.filter.apply((0..train_src.count()).map(length));
        let lengths: Vec<(usize, usize)> = keep.iter().map(|&i| length(i)).collect();
        let batch_cfg = BatchConfig { batch_tokens: cfg.train.batch_tokens, ..Default::default() };
        let batcher = Batcher::new(&lengths, batch_cfg).map_err(|e| Error::Invalid(e.to_string()))?;
        let valid = read_parallel(&d.valid_src, &d.valid_tgt, &limits)?;
        let (valid_src, valid_tgt) = (vocab.encode_src_batch(&valid.src)?, vocab.encode_batch(&valid.tgt)?);
        Ok(Self { vocab, train_src, train_tgt, keep, batcher, valid, valid_src, valid_tgt })
    }

    /// Kept training pair `k` (an index of the batcher's, not of the corpus).
    pub fn pair(&self, k: usize) -> (&[u32], &[u32]) {
        let i = self.keep[k];
        (self.train_src.sentence(i), self.train_tgt.sentence(i))
    }

    pub fn valid_pairs(&self) -> Vec<(&[u32], &[u32])> {
        self.valid_src.iter().zip(&self.valid_tgt).map(|(s, t)| (s.as_slice(), t.as_slice())).collect()
    }
}

/// The run's vocabulary: the model directory's; else the given one or the init model's, or one
/// trained by `train`; saved into the model directory.
fn run_vocab(cfg: &Config, dir: &Path, train: impl FnOnce() -> Result<Vocab, Error>) -> Result<Vocab, Error> {
    let vocab_path = dir.join(VOCAB_FILE);
    if vocab_path.exists() {
        return Ok(Vocab::load(&vocab_path)?);
    }
    let init_vocab = cfg.train.init.as_ref().map(|dir| dir.join(VOCAB_FILE));
    let vocab = match cfg.data.vocab_path.as_ref().or(init_vocab.as_ref()) {
        Some(p) => Vocab::load(p)?,
        None => train()?,
    };
    vocab.save(&vocab_path)?;
    Ok(vocab)
}

/// The model directory's encoded training corpus, (re)written by the writer when it is missing or
/// stale, then mapped.
fn mapped_train_ids(
    cfg: &Config,
    dir: &Path,
    vocab: &Vocab,
    role: Role,
    limits: &LineLimits,
) -> Result<(IdsFile, IdsFile), Error> {
    let d = &cfg.data;
    let vocab_path = dir.join(VOCAB_FILE);
    let vocab_bytes = std::fs::read(&vocab_path).map_err(|source| Error::Io { path: vocab_path, source })?;
    let key = encoded::corpus_key(&d.train_src, &d.train_tgt, &vocab_bytes, limits)?;
    let paths = TRAIN_IDS_FILES.map(|name| dir.join(name));
    // The two files, or the one that cannot be used and why.
    let open = || -> Result<(IdsFile, IdsFile), (&Path, Unusable)> {
        let src = IdsFile::open(&paths[0], key).map_err(|why| (paths[0].as_path(), why))?;
        let tgt = IdsFile::open(&paths[1], key).map_err(|why| (paths[1].as_path(), why))?;
        if src.count() != tgt.count() {
            let why = format!("{} sentences, but {} on the source side", tgt.count(), src.count());
            return Err((paths[1].as_path(), Unusable::Corrupt(why)));
        }
        Ok((src, tgt))
    };
    match (open(), role) {
        (Ok(ids), _) => Ok(ids),
        (Err((path, why)), Role::Reader) => Err(Error::Invalid(format!(
            "{}: the encoded training corpus is {why}; rank 0 writes it before the others read it",
            path.display()
        ))),
        (Err((path, why)), Role::Writer) => {
            if why != Unusable::Missing {
                eprintln!("{}: {why}; encoding the training corpus again", path.display());
            }
            encoded::encode_parallel(&d.train_src, &d.train_tgt, limits, vocab, (&paths[0], &paths[1]), key)?;
            open()
                .map_err(|(path, why)| Error::Invalid(format!("{}: just written, yet {why}", path.display())))
        }
    }
}
