//! A run's data: the training and validation corpora read and checked, the vocabulary (the model
//! directory's, a given one, the init model's, or one trained on the training data), subword ids,
//! the length filter and the batcher.

use std::path::Path;

use seqkd_text::batching::{BatchConfig, Batcher};
use seqkd_text::corpus::{read_parallel, LineLimits, ParallelCorpus};
use seqkd_text::vocab::Vocab;

use crate::config::Config;
use crate::error::Error;
use crate::model_dir::VOCAB_FILE;

/// Subword ids of each sentence of one side of a corpus.
pub type Ids = Vec<Vec<u32>>;

pub struct RunCorpora {
    pub vocab: Vocab,
    /// Training ids of every pair, in corpus order.
    pub train_src: Ids,
    pub train_tgt: Ids,
    /// Corpus indices of the pairs the length filter keeps; batches index into this list.
    pub keep: Vec<usize>,
    pub batcher: Batcher,
    pub valid: ParallelCorpus,
    pub valid_src: Ids,
    pub valid_tgt: Ids,
}

impl RunCorpora {
    /// Reads the corpora of `cfg` and the vocabulary of the model directory `dir` (saving it there
    /// on a first run).
    pub fn load(cfg: &Config, dir: &Path) -> Result<Self, Error> {
        let limits = LineLimits::default();
        let train_data = read_parallel(&cfg.data.train_src, &cfg.data.train_tgt, &limits)?;
        let valid = read_parallel(&cfg.data.valid_src, &cfg.data.valid_tgt, &limits)?;
        let vocab_path = dir.join(VOCAB_FILE);
        let vocab = if vocab_path.exists() {
            Vocab::load(&vocab_path)?
        } else {
            let init_vocab = cfg.train.init.as_ref().map(|dir| dir.join(VOCAB_FILE));
            let vocab = match cfg.data.vocab_path.as_ref().or(init_vocab.as_ref()) {
                Some(p) => Vocab::load(p)?,
                None => Vocab::train(train_data.src.iter().chain(&train_data.tgt), &cfg.data.vocab)?,
            };
            vocab.save(&vocab_path)?;
            vocab
        };
        let (train_src, train_tgt) =
            (vocab.encode_src_batch(&train_data.src)?, vocab.encode_batch(&train_data.tgt)?);
        let keep = cfg.data.filter.apply(train_src.iter().zip(&train_tgt).map(|(s, t)| (s.len(), t.len())));
        let lengths: Vec<(usize, usize)> =
            keep.iter().map(|&i| (train_src[i].len(), train_tgt[i].len())).collect();
        let batch_cfg = BatchConfig { batch_tokens: cfg.train.batch_tokens, ..Default::default() };
        let batcher = Batcher::new(&lengths, batch_cfg).map_err(|e| Error::Invalid(e.to_string()))?;
        let (valid_src, valid_tgt) = (vocab.encode_src_batch(&valid.src)?, vocab.encode_batch(&valid.tgt)?);
        Ok(Self { vocab, train_src, train_tgt, keep, batcher, valid, valid_src, valid_tgt })
    }

    /// The kept training pairs, in the order the batcher indexes them.
    pub fn train_pairs(&self) -> Vec<(&[u32], &[u32])> {
        self.keep.iter().map(|&i| (self.train_src[i].as_slice(), self.train_tgt[i].as_slice())).collect()
    }

    pub fn valid_pairs(&self) -> Vec<(&[u32], &[u32])> {
        self.valid_src.iter().zip(&self.valid_tgt).map(|(s, t)| (s.as_slice(), t.as_slice())).collect()
    }
}
