//! Joint subword vocabulary: trained once on both sides of the training corpus, shared by source and
//! target (so embeddings can be tied), saved as `vocab.json` inside a model directory.
//!
//! Built on the `tokenizers` crate. The pipeline is SentencePiece-like and lossless:
//! no normalizer (the text is kept exactly), a Metaspace pre-tokenizer (spaces become `▁` and start
//! a new piece; punctuation and digits are pieces of their own), a BPE or Unigram model, and byte fallback (a character the training text never
//! showed is spelled as `<0xNN>` byte pieces instead of `<unk>`), so `decode(encode(s)) == s` for any
//! `s` without leading whitespace. Decoded output is detokenized text, ready for sacrebleu-style scoring.
//!
//! Ids 0..4 are always `<pad>`, `<s>`, `</s>`, `<unk>` (see [`SpecialIds`]), then the 256 byte pieces,
//! then the learned pieces.
//!
//! An imported teacher (`seqkd import`) brings its own SentencePiece models instead, one per side,
//! over a joint or a per-side model vocabulary ([`crate::spm`]); ids 0..4 keep their meaning. So
//! sources are encoded with [`Vocab::encode_src`] and targets with [`Vocab::encode`], which are the
//! same function for a joint vocabulary.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spm::{SpmError, SpmVocab};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::unigram::{Unigram, UnigramTrainerBuilder};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::punctuation::Punctuation;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;
use tokenizers::{AddedToken, Tokenizer};

pub const PAD: &str = "<pad>";
pub const BOS: &str = "<s>";
pub const EOS: &str = "</s>";
pub const UNK: &str = "<unk>";

pub use crate::specials::{SpecialIds, SPECIAL_IDS};

#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a seqkd vocabulary: {reason}", .path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "vocabulary size must be at least {min} (4 special ids + 256 byte pieces + some pieces), got {got}"
    )]
    TooSmall { min: usize, got: usize },
    #[error("vocabulary training failed: {0}")]
    Training(String),
    #[error("cannot encode text: {0}")]
    Encode(String),
    #[error(transparent)]
    Spm(#[from] SpmError),
}

/// Which subword model to learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SubwordKind {
    /// Byte-pair encoding (Sennrich et al. 2016): the usual choice for NMT.
    #[default]
    Bpe,
    /// Unigram language model (Kudo 2018), as SentencePiece's default.
    Unigram,
}

impl FromStr for SubwordKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bpe" => Ok(Self::Bpe),
            "unigram" => Ok(Self::Unigram),
            _ => Err(format!("unknown subword model '{s}': expected 'bpe' or 'unigram'")),
        }
    }
}

/// How to train a vocabulary.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VocabConfig {
    pub kind: SubwordKind,
    /// Total size including the 4 special ids and 256 byte pieces. 8000 suits Multi30k-sized corpora.
    pub size: usize,
    /// A BPE merge must be seen this often to be learned.
    pub min_frequency: u64,
}

impl Default for VocabConfig {
    fn default() -> Self {
        Self { kind: SubwordKind::Bpe, size: 8000, min_frequency: 2 }
    }
}

/// A trained joint vocabulary, or an imported model's SentencePiece pair.
#[derive(Clone)]
pub struct Vocab {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Joint(Box<Tokenizer>),
    Spm(Box<SpmVocab>),
}

const BYTE_PIECES: usize = 256;
const MIN_SIZE: usize = 4 + BYTE_PIECES + 16;

fn byte_piece(b: u8) -> String {
    format!("<0x{b:02X}>")
}

impl Vocab {
    /// Learns a vocabulary from sentences (typically every source and target line of the training corpus).
    pub fn train<I, S>(sentences: I, cfg: &VocabConfig) -> Result<Self, VocabError>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        if cfg.size < MIN_SIZE {
            return Err(VocabError::TooSmall { min: MIN_SIZE, got: cfg.size });
        }
        let specials: Vec<AddedToken> =
            [PAD, BOS, EOS, UNK].into_iter().map(|t| AddedToken::from(t.to_string(), true)).collect();
        // The byte pieces are appended after training, so the trainer learns `size - 256` pieces.
        let learned_size = cfg.size - BYTE_PIECES;
        let (model, mut trainer): (tokenizers::models::ModelWrapper, TrainerWrapper) = match cfg.kind {
            SubwordKind::Bpe => (
                BPE::builder()
                    .unk_token(UNK.into())
                    .build()
                    .map_err(|e| VocabError::Training(e.to_string()))?
                    .into(),
                BpeTrainerBuilder::new()
                    .vocab_size(learned_size)
                    .min_frequency(cfg.min_frequency)
                    .special_tokens(specials)
                    .show_progress(false)
                    .build()
                    .into(),
            ),
            SubwordKind::Unigram => (
                Unigram::default().into(),
                UnigramTrainerBuilder::default()
                    .vocab_size(learned_size as u32)
                    .special_tokens(specials)
                    .unk_token(Some(UNK.into()))
                    .show_progress(false)
                    .build()
                    .map_err(|e| VocabError::Training(e.to_string()))?
                    .into(),
            ),
        };
        let mut tokenizer = Tokenizer::new(model);
        tokenizer.with_pre_tokenizer(Some(pre_tokenizer()));
        tokenizer.train(&mut trainer, sentences).map_err(|e| VocabError::Training(e.to_string()))?;
        let tokenizer = with_byte_fallback(&tokenizer, cfg.kind)?;
        let vocab = Self { inner: Inner::Joint(Box::new(tokenizer)) };
        vocab.check_specials(Path::new("<trained>"))?;
        Ok(vocab)
    }

    /// Learns a vocabulary from every line of `paths`, one file after the other, streamed: memory
    /// grows with the distinct words, not with the corpus. The caller checks the lines first
    /// ([`crate::corpus::check_lines`]); this reads them as they are.
    pub fn train_on_files(paths: &[&Path], cfg: &VocabConfig) -> Result<Self, VocabError> {
        use std::io::BufRead;
        let failed = std::sync::Mutex::new(None);
        let lines = paths.iter().flat_map(|&path| {
            let reader = fs::File::open(path).map(|f| std::io::BufReader::with_capacity(1 << 20, f));
            let lines: Box<dyn Iterator<Item = std::io::Result<String>> + Send> = match reader {
                Ok(r) => Box::new(r.lines()),
                Err(e) => Box::new(std::iter::once(Err(e))),
            };
            let failed = &failed;
            lines.map_while(move |line| {
                line.map_err(|source| {
                    let mut slot = failed.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(VocabError::Io { path: path.into(), source });
                })
                .ok()
            })
        });
        let vocab = Self::train(lines, cfg);
        match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => vocab,
        }
    }

    /// An imported model's SentencePiece vocabulary.
    pub fn from_spm(spm: SpmVocab) -> Self {
        Self { inner: Inner::Spm(Box::new(spm)) }
    }

    /// Loads `vocab.json` written by [`Vocab::save`].
    pub fn load(path: &Path) -> Result<Self, VocabError> {
        let bytes = fs::read(path).map_err(|source| VocabError::Io { path: path.into(), source })?;
        let invalid = |reason: String| VocabError::Invalid { path: path.into(), reason };
        let spm = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|mut v| v.get_mut("sentencepiece").map(Value::take));
        if let Some(spm) = spm {
            let spm = SpmVocab::from_json(spm).map_err(|e| invalid(e.to_string()))?;
            return Ok(Self::from_spm(spm));
        }
        let tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| invalid(e.to_string()))?;
        let vocab = Self { inner: Inner::Joint(Box::new(tokenizer)) };
        vocab.check_specials(path)?;
        Ok(vocab)
    }

    /// Writes the vocabulary atomically (temp file + rename), so a crash never leaves half a file.
    pub fn save(&self, path: &Path) -> Result<(), VocabError> {
        let invalid = |reason: String| VocabError::Invalid { path: path.into(), reason };
        let json = match &self.inner {
            Inner::Joint(t) => t.to_string(true).map_err(|e| invalid(e.to_string()))?,
            Inner::Spm(s) => s.to_json()?.to_string(),
        };
        crate::atomic_write(path, json.as_bytes())
            .map_err(|source| VocabError::Io { path: path.into(), source })
    }

    /// The joint tokenizer (`None` for an imported SentencePiece pair).
    fn joint(&self) -> Option<&Tokenizer> {
        match &self.inner {
            Inner::Joint(t) => Some(t),
            Inner::Spm(_) => None,
        }
    }

    fn check_specials(&self, path: &Path) -> Result<(), VocabError> {
        let Some(tokenizer) = self.joint() else { return Ok(()) };
        let ids = SPECIAL_IDS;
        for (token, want) in [(PAD, ids.pad), (BOS, ids.bos), (EOS, ids.eos), (UNK, ids.unk)] {
            let got = tokenizer.token_to_id(token);
            if got != Some(want) {
                return Err(VocabError::Invalid {
                    path: path.into(),
                    reason: format!("special token {token} has id {got:?}, expected {want}"),
                });
            }
        }
        Ok(())
    }

    /// Number of target ids (the output-layer size; for a joint vocabulary every embedding's).
    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::Joint(t) => t.get_vocab_size(true),
            Inner::Spm(s) => s.target_len(),
        }
    }

    /// Number of source ids (the source embedding's size).
    pub fn src_len(&self) -> usize {
        match &self.inner {
            Inner::Joint(t) => t.get_vocab_size(true),
            Inner::Spm(s) => s.source_len(),
        }
    }

    /// Whether source and target share one id space (a joint vocabulary, or a shared imported one).
    pub fn is_shared(&self) -> bool {
        match &self.inner {
            Inner::Joint(_) => true,
            Inner::Spm(s) => s.is_shared(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn specials(&self) -> SpecialIds {
        SPECIAL_IDS
    }

    /// Subword ids of one target sentence, without `<s>`/`</s>`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, VocabError> {
        match &self.inner {
            Inner::Joint(t) => {
                let enc = t.encode_fast(text, false).map_err(|e| VocabError::Encode(e.to_string()))?;
                Ok(enc.get_ids().to_vec())
            }
            Inner::Spm(s) => Ok(s.encode_target(text)?),
        }
    }

    /// Subword ids of one source sentence, without `</s>`.
    pub fn encode_src(&self, text: &str) -> Result<Vec<u32>, VocabError> {
        match &self.inner {
            Inner::Joint(_) => self.encode(text),
            Inner::Spm(s) => Ok(s.encode_source(text)?),
        }
    }

    /// Encodes many target sentences in parallel; output order is input order.
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>, VocabError> {
        use rayon::prelude::*;
        texts.par_iter().map(|t| self.encode(t.as_ref())).collect()
    }

    /// Encodes many source sentences in parallel; output order is input order.
    pub fn encode_src_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>, VocabError> {
        use rayon::prelude::*;
        texts.par_iter().map(|t| self.encode_src(t.as_ref())).collect()
    }

    /// The pieces of one sentence (source side when `source`), for inspection (`▁` marks a
    /// preceding space).
    pub fn pieces(&self, text: &str, source: bool) -> Result<Vec<String>, VocabError> {
        match &self.inner {
            Inner::Joint(t) => {
                let enc = t.encode(text, false).map_err(|e| VocabError::Encode(e.to_string()))?;
                Ok(enc.get_tokens().to_vec())
            }
            Inner::Spm(s) => {
                let ids = if source { s.encode_source(text)? } else { s.encode_target(text)? };
                let piece = |id| if source { s.source_piece(id) } else { s.target_piece(id) };
                Ok(ids.into_iter().map(|id| piece(id).unwrap_or(UNK).to_string()).collect())
            }
        }
    }

    /// Detokenized text of target ids; `<pad>`, `<s>` and `</s>` are dropped, unknown ids too
    /// (and, for an imported vocabulary, `<unk>`, as `MarianTokenizer` drops it).
    pub fn decode(&self, ids: &[u32]) -> String {
        let tokenizer = match &self.inner {
            Inner::Joint(t) => t,
            Inner::Spm(s) => return s.decode(ids),
        };
        let ids: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&id| id != SPECIAL_IDS.pad && id != SPECIAL_IDS.bos && id != SPECIAL_IDS.eos)
            .filter(|&id| (id as usize) < self.len())
            .collect();
        // Decoding valid ids cannot fail with this decoder; fall back to an empty line rather than panic.
        tokenizer.decode(&ids, false).unwrap_or_default()
    }

    /// The target piece of an id.
    pub fn id_to_piece(&self, id: u32) -> Option<String> {
        match &self.inner {
            Inner::Joint(t) => t.id_to_token(id),
            Inner::Spm(s) => s.target_piece(id).map(str::to_string),
        }
    }
}

fn metaspace() -> Metaspace {
    Metaspace::new('▁', PrependScheme::Always, true)
}

/// Spaces become `▁`; punctuation and digits become pieces of their own, so the vocabulary is not
/// spent on every word+comma combination. Decoding concatenates pieces, so this stays lossless.
fn pre_tokenizer() -> PreTokenizerWrapper {
    PreTokenizerWrapper::Sequence(PreTokenizerSequence::new(vec![
        PreTokenizerWrapper::Metaspace(metaspace()),
        PreTokenizerWrapper::Punctuation(Punctuation::new(SplitDelimiterBehavior::Isolated)),
        PreTokenizerWrapper::Digits(Digits::new(true)),
    ]))
}

/// Adds the 256 `<0xNN>` pieces to a trained model and turns on byte fallback.
///
/// The trainers cannot do this themselves, so the model is edited in its JSON form (the format
/// `tokenizers` guarantees to keep loading) and loaded back.
fn with_byte_fallback(tokenizer: &Tokenizer, kind: SubwordKind) -> Result<Tokenizer, VocabError> {
    let bad = |reason: String| VocabError::Training(format!("adding byte fallback: {reason}"));
    let json = tokenizer.to_string(false).map_err(|e| bad(e.to_string()))?;
    let mut root: Value = serde_json::from_str(&json).map_err(|e| bad(e.to_string()))?;
    let model = root.get_mut("model").ok_or_else(|| bad("no model".into()))?;
    model["byte_fallback"] = Value::Bool(true);
    match kind {
        SubwordKind::Bpe => {
            let vocab = model["vocab"].as_object_mut().ok_or_else(|| bad("no BPE vocab".into()))?;
            // Shift learned ids up by 256 so the byte pieces sit right after the specials.
            let shift = |id: u64| if id >= 4 { id + BYTE_PIECES as u64 } else { id };
            for v in vocab.values_mut() {
                let id = v.as_u64().ok_or_else(|| bad("non-integer id".into()))?;
                *v = Value::from(shift(id));
            }
            let existing: HashSet<String> = vocab.keys().cloned().collect();
            for b in 0..=255u8 {
                let piece = byte_piece(b);
                if existing.contains(&piece) {
                    return Err(bad(format!("training text contained the literal piece {piece}")));
                }
                vocab.insert(piece, Value::from(4 + b as u64));
            }
        }
        SubwordKind::Unigram => {
            let pieces = model["vocab"].as_array_mut().ok_or_else(|| bad("no Unigram vocab".into()))?;
            // Byte pieces get a very low score so they are used only for characters nothing else covers.
            let lowest =
                pieces.iter().filter_map(|p| p.get(1).and_then(Value::as_f64)).fold(0.0f64, f64::min);
            let bytes: Vec<Value> = (0..=255u8)
                .map(|b| Value::Array(vec![Value::from(byte_piece(b)), Value::from(lowest - 10.0)]))
                .collect();
            let tail = pieces.split_off(4);
            pieces.extend(bytes);
            pieces.extend(tail);
        }
    }
    let decoder = DecoderWrapper::Sequence(DecoderSequence::new(vec![
        DecoderWrapper::ByteFallback(ByteFallback::default()),
        DecoderWrapper::Metaspace(metaspace()),
    ]));
    root["decoder"] = serde_json::to_value(&decoder).map_err(|e| bad(e.to_string()))?;
    let mut out = Tokenizer::from_str(&root.to_string()).map_err(|e| bad(e.to_string()))?;
    // Keep the special tokens' ids stable: they are added tokens too.
    out.with_decoder(Some(decoder));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences() -> Vec<String> {
        let base = [
            "A man in a blue shirt is standing on a ladder.",
            "Zwei Männer stehen am Herd und bereiten Essen zu.",
            "The little girl climbs into a wooden playhouse.",
            "Ein Mädchen in einem Karateanzug bricht einen Stock.",
            "Five people in winter jackets and helmets stand in the snow.",
        ];
        (0..40).flat_map(|_| base.iter().map(|s| s.to_string())).collect()
    }

    #[test]
    fn specials_have_fixed_ids_and_round_trip_is_lossless() {
        for kind in [SubwordKind::Bpe, SubwordKind::Unigram] {
            let cfg = VocabConfig { kind, size: 400, min_frequency: 1 };
            let vocab = Vocab::train(sentences().iter(), &cfg).unwrap();
            assert_eq!(vocab.joint().unwrap().token_to_id("<0x41>"), Some(4 + 0x41), "{kind:?}");
            for text in sentences().iter().take(5).map(String::as_str).chain([
                "unseen characters: 日本語 😀 ß ÄÖÜ «quotes» – dash",
                "two  spaces and a trailing space ",
                "",
            ]) {
                let ids = vocab.encode(text).unwrap();
                assert!(!ids.contains(&SPECIAL_IDS.unk), "{kind:?}: unk in {text:?}");
                assert_eq!(vocab.decode(&ids), text, "{kind:?}");
            }
        }
    }

    #[test]
    fn save_load_gives_same_encoding() {
        let cfg = VocabConfig { size: 300, min_frequency: 1, ..Default::default() };
        let vocab = Vocab::train(sentences().iter(), &cfg).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vocab.json");
        vocab.save(&path).unwrap();
        let loaded = Vocab::load(&path).unwrap();
        let text = "A man climbs into a blue playhouse.";
        assert_eq!(vocab.encode(text).unwrap(), loaded.encode(text).unwrap());
        assert_eq!(loaded.len(), vocab.len());
    }

    #[test]
    fn training_on_streamed_files_equals_training_on_the_lines_in_memory() {
        let cfg = VocabConfig { size: 300, min_frequency: 1, ..Default::default() };
        let lines = sentences();
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
        let half = lines.len() / 2;
        fs::write(&a, lines[..half].join("\n")).unwrap();
        fs::write(&b, lines[half..].join("\n") + "\n").unwrap();
        let streamed = Vocab::train_on_files(&[&a, &b], &cfg).unwrap();
        let (p, q) = (dir.path().join("p.json"), dir.path().join("q.json"));
        streamed.save(&p).unwrap();
        Vocab::train(lines.iter(), &cfg).unwrap().save(&q).unwrap();
        assert_eq!(fs::read(&p).unwrap(), fs::read(&q).unwrap());
        let missing = dir.path().join("missing.txt");
        let err = Vocab::train_on_files(&[&a, &missing], &cfg).err().unwrap().to_string();
        assert!(err.contains("missing.txt"), "{err}");
    }

    #[test]
    fn too_small_size_is_an_error_not_a_panic() {
        let cfg = VocabConfig { size: 10, ..Default::default() };
        assert!(matches!(Vocab::train(sentences().iter(), &cfg), Err(VocabError::TooSmall { .. })));
    }

    #[test]
    fn loading_garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vocab.json");
        fs::write(&path, b"{not json").unwrap();
        let err = Vocab::load(&path).err().unwrap().to_string();
        assert!(err.contains("vocab.json"), "{err}");
    }
}
