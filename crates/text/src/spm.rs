//! SentencePiece vocabularies as OPUS-MT / Marian models ship them: a unigram `.spm` model per
//! side (`source.spm`, `target.spm`) and a model vocabulary that gives each piece its embedding
//! row (`vocab.json`, joint or one per side). Encoding follows `transformers`' `MarianTokenizer`
//! exactly:
//!
//! 1. the text is split on its special tokens written literally (`</s>`, `<unk>`, `<pad>`: the
//!    tokenizer's added tokens), which become their own ids;
//! 2. each remaining chunk loses a leading language code `>>xx<<` (a token of its own, looked up
//!    in the model vocabulary), then is encoded by the side's SentencePiece model: its normalizer
//!    (the precompiled `nmt_nfkc` character map, extra spaces removed, spaces escaped as `▁`, the
//!    dummy prefix) and the unigram model's best segmentation;
//! 3. pieces map to model ids through the model vocabulary; a piece it lacks is `<unk>`. An
//!    unknown span is spelled, as SentencePiece spells it, by its own text, so a joint vocabulary
//!    may still know it from the other side's model.
//!
//! The SentencePiece normalizer and unigram search are the `tokenizers` crate's (`Precompiled`,
//! `Unigram`), assembled the way `transformers`' own slow-to-fast converter does; the `.spm`
//! protobuf is read with the `sentencepiece-model` crate (a pure-Rust reader, so no C++
//! SentencePiece library has to be built). Decoding concatenates the pieces, turns `▁` into spaces
//! and strips the ends, as `MarianTokenizer.decode(skip_special_tokens=True)` does.
//!
//! A vocabulary of this kind is stored inside seqkd's `vocab.json` as
//! `{"sentencepiece": {...}}` (see [`SpmVocab::to_json`]), with both tokenizers embedded, so a
//! model directory stays self-contained.

use std::collections::HashMap;
use std::str::FromStr;

use sentencepiece_model::{ModelType, SentencePieceModel, Type};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::{NormalizerWrapper, Precompiled, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::Split;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{SplitDelimiterBehavior, Tokenizer};

use crate::specials::SPECIAL_IDS;

/// Why a SentencePiece model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpmError {
    #[error("not a SentencePiece model: {0}")]
    Parse(String),
    #[error("unsupported SentencePiece model: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Build(String),
}

/// One side (source or target): its SentencePiece tokenizer and where its pieces live in the model.
#[derive(Clone)]
struct Side {
    /// Unigram over the `.spm` pieces, ids = SentencePiece ids.
    tokenizer: Tokenizer,
    /// SentencePiece id → model id (`<unk>` where the model vocabulary lacks the piece).
    to_model: Vec<u32>,
    /// Model id → piece.
    pieces: Vec<String>,
    /// Piece → model id (for special tokens and language codes written in the text).
    ids: HashMap<String, u32>,
}

/// A pair of SentencePiece models over a model vocabulary (see the module documentation).
#[derive(Clone)]
pub struct SpmVocab {
    source: Side,
    target: Side,
    shared: bool,
    /// Strings that are tokens of their own when they appear in the text.
    special_tokens: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SideJson {
    tokenizer: Value,
    to_model: Vec<u32>,
    /// Absent on the target side of a shared vocabulary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pieces: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpmJson {
    source: SideJson,
    target: SideJson,
    special_tokens: Vec<String>,
}

/// Piece names that text can never contain, for SentencePiece's control, unknown and unused pieces,
/// which SentencePiece never matches against text (the unigram model would otherwise).
fn unmatchable(id: usize) -> String {
    format!("\u{FFFF}spm-reserved-{id}\u{FFFF}")
}

/// Builds the `tokenizers` pipeline that encodes like `SentencePieceProcessor.encode` on `bytes`.
fn spm_tokenizer(bytes: &[u8]) -> Result<Tokenizer, SpmError> {
    let model = SentencePieceModel::from_slice(bytes).map_err(|e| SpmError::Parse(e.to_string()))?;
    let trainer = model.trainer().cloned().unwrap_or_default();
    if trainer.model_type() != ModelType::Unigram {
        return Err(SpmError::Unsupported(format!(
            "model type {:?} (only unigram models, as OPUS-MT's, are supported)",
            trainer.model_type()
        )));
    }
    if trainer.byte_fallback() {
        return Err(SpmError::Unsupported("byte_fallback = true".into()));
    }
    if trainer.treat_whitespace_as_suffix() {
        return Err(SpmError::Unsupported("treat_whitespace_as_suffix = true".into()));
    }
    let mut vocab = Vec::with_capacity(model.pieces().len());
    let mut user_defined = Vec::new();
    for (id, p) in model.pieces().iter().enumerate() {
        let piece = match p.r#type() {
            Type::Normal => p.piece().to_string(),
            Type::UserDefined => {
                user_defined.push(p.piece().to_string());
                p.piece().to_string()
            }
            Type::Unknown | Type::Control | Type::Unused => unmatchable(id),
            Type::Byte => return Err(SpmError::Unsupported("byte pieces".into())),
        };
        vocab.push((piece, p.score() as f64));
    }
    let unk = trainer.unk_id();
    if unk < 0 || unk as usize >= vocab.len() {
        return Err(SpmError::Parse(format!("unk_id {unk} is not a piece")));
    }
    let unigram =
        Unigram::from(vocab, Some(unk as usize), false).map_err(|e| SpmError::Build(e.to_string()))?;
    let mut tokenizer = Tokenizer::new(unigram);

    // The normalizer, in SentencePiece's order.
    let spec = model.normalizer().cloned().unwrap_or_default();
    let replace = |pattern: &str, regex: bool, with: &str| -> Result<NormalizerWrapper, SpmError> {
        let r = if regex {
            Replace::new(tokenizers::normalizers::replace::ReplacePattern::Regex(pattern.into()), with)
        } else {
            Replace::new(pattern, with)
        };
        r.map(NormalizerWrapper::Replace).map_err(|e| SpmError::Build(e.to_string()))
    };
    let mut normalizers = Vec::new();
    if !spec.precompiled_charsmap().is_empty() {
        let map =
            Precompiled::from(spec.precompiled_charsmap()).map_err(|e| SpmError::Parse(e.to_string()))?;
        normalizers.push(NormalizerWrapper::Precompiled(map));
    }
    if spec.remove_extra_whitespaces() {
        // Only spaces count: SentencePiece leaves other whitespace alone.
        normalizers.push(replace(r"\A +| +\z", true, "")?);
        normalizers.push(replace(" {2,}", true, " ")?);
    }
    if spec.escape_whitespaces() {
        normalizers.push(replace(" ", false, "▁")?);
    }
    if spec.add_dummy_prefix() {
        // Metaspace adds no prefix to text that already starts with `▁`; SentencePiece does.
        normalizers.push(replace(r"\A▁", true, "▁▁")?);
    }
    tokenizer
        .with_normalizer(Some(NormalizerSequence::new(normalizers)))
        .map_err(|e| SpmError::Build(e.to_string()))?;
    let mut pre = Vec::new();
    if spec.add_dummy_prefix() {
        pre.push(PreTokenizerWrapper::Metaspace(Metaspace::new('▁', PrependScheme::Always, false)));
    }
    if !user_defined.is_empty() {
        // SentencePiece emits user-defined pieces whole.
        user_defined.sort_by_key(|p| std::cmp::Reverse(p.len()));
        let pattern = user_defined.iter().map(|p| regex::escape(p)).collect::<Vec<_>>().join("|");
        let split = Split::new(
            tokenizers::pre_tokenizers::split::SplitPattern::Regex(pattern),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| SpmError::Build(e.to_string()))?;
        pre.push(PreTokenizerWrapper::Split(split));
    }
    if !pre.is_empty() {
        tokenizer.with_pre_tokenizer(Some(PreTokenizerSequence::new(pre)));
    }
    Ok(tokenizer)
}

impl Side {
    fn new(tokenizer: Tokenizer, to_model: Vec<u32>, pieces: Vec<String>) -> Self {
        // Model id 0 (padding) is never a token of the text: `<pad>` written in the text is the
        // id after it, which an importer gives the same row.
        let ids = pieces.iter().enumerate().skip(1).map(|(i, p)| (p.clone(), i as u32)).collect();
        Self { tokenizer, to_model, pieces, ids }
    }

    fn build(spm: &[u8], pieces: Vec<String>) -> Result<Self, SpmError> {
        let tokenizer = spm_tokenizer(spm)?;
        let by_piece: HashMap<&str, u32> =
            pieces.iter().enumerate().skip(1).map(|(i, p)| (p.as_str(), i as u32)).collect();
        let n = tokenizer.get_vocab_size(false);
        let to_model = (0..n as u32)
            .map(|id| {
                tokenizer
                    .id_to_token(id)
                    .and_then(|p| by_piece.get(p.as_str()).copied())
                    .unwrap_or(SPECIAL_IDS.unk)
            })
            .collect();
        Ok(Self::new(tokenizer, to_model, pieces))
    }

    fn lookup(&self, token: &str) -> u32 {
        self.ids.get(token).copied().unwrap_or(SPECIAL_IDS.unk)
    }

    /// `MarianTokenizer._tokenize` of one chunk between special tokens.
    fn encode_chunk(&self, chunk: &str, out: &mut Vec<u32>) -> Result<(), SpmError> {
        let mut text = chunk;
        if let Some(end) = text.strip_prefix(">>").and_then(|rest| rest.find("<<")) {
            out.push(self.lookup(&text[..end + 4]));
            text = &text[end + 4..];
        }
        let bad = |e: tokenizers::Error| SpmError::Build(e.to_string());
        let enc = self.tokenizer.encode_fast(text, false).map_err(bad)?;
        let to_model = |id: u32| self.to_model.get(id as usize).copied().unwrap_or(SPECIAL_IDS.unk);
        if enc.get_ids().iter().all(|&id| to_model(id) != SPECIAL_IDS.unk) {
            out.extend(enc.get_ids().iter().map(|&id| to_model(id)));
            return Ok(());
        }
        // SentencePiece spells an unknown span as its own (normalized) text, which the model
        // vocabulary may still have (a joint vocabulary has the other side's pieces). Only the
        // full encoding has the pieces' text.
        let enc = self.tokenizer.encode(text, false).map_err(bad)?;
        for (&id, piece) in enc.get_ids().iter().zip(enc.get_tokens()) {
            let model_id = to_model(id);
            out.push(if model_id == SPECIAL_IDS.unk { self.lookup(piece) } else { model_id });
        }
        Ok(())
    }
}

impl SpmVocab {
    /// From the two `.spm` models and the model vocabularies (model id → piece; `target_pieces`
    /// `None` when the vocabulary is shared). Ids 0..4 of the model vocabulary must be seqkd's
    /// specials: padding, decoder start, `</s>`, `<unk>`.
    pub fn build(
        source_spm: &[u8],
        target_spm: &[u8],
        source_pieces: Vec<String>,
        target_pieces: Option<Vec<String>>,
        special_tokens: Vec<String>,
    ) -> Result<Self, SpmError> {
        let shared = target_pieces.is_none();
        let source = Side::build(source_spm, source_pieces.clone())
            .map_err(|e| SpmError::Build(format!("source.spm: {e}")))?;
        let target = Side::build(target_spm, target_pieces.unwrap_or(source_pieces))
            .map_err(|e| SpmError::Build(format!("target.spm: {e}")))?;
        Ok(Self { source, target, shared, special_tokens })
    }

    /// Model ids of a source sentence (no `</s>`).
    pub fn encode_source(&self, text: &str) -> Result<Vec<u32>, SpmError> {
        self.encode(&self.source, text)
    }

    /// Model ids of a target sentence (no `</s>`).
    pub fn encode_target(&self, text: &str) -> Result<Vec<u32>, SpmError> {
        self.encode(&self.target, text)
    }

    fn encode(&self, side: &Side, text: &str) -> Result<Vec<u32>, SpmError> {
        let mut out = Vec::new();
        let mut rest = text;
        // Split on the special tokens, leftmost and longest first (the added-tokens trie).
        while !rest.is_empty() {
            let found = rest.char_indices().find_map(|(at, _)| {
                self.special_tokens
                    .iter()
                    .filter(|t| rest[at..].starts_with(t.as_str()))
                    .max_by_key(|t| t.len())
                    .map(|t| (at, t))
            });
            let Some((at, token)) = found else { break };
            if at > 0 {
                side.encode_chunk(&rest[..at], &mut out)?;
            }
            out.push(side.lookup(token));
            rest = &rest[at + token.len()..];
        }
        if !rest.is_empty() {
            side.encode_chunk(rest, &mut out)?;
        }
        Ok(out)
    }

    /// Whether source and target share one model vocabulary.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    pub fn source_len(&self) -> usize {
        self.source.pieces.len()
    }

    pub fn target_len(&self) -> usize {
        self.target.pieces.len()
    }

    pub fn target_piece(&self, id: u32) -> Option<&str> {
        self.target.pieces.get(id as usize).map(String::as_str)
    }

    pub fn source_piece(&self, id: u32) -> Option<&str> {
        self.source.pieces.get(id as usize).map(String::as_str)
    }

    /// Detokenized text of target ids: the special tokens (and ids past the vocabulary) dropped,
    /// the pieces joined, `▁` as spaces, both ends stripped of whitespace (Python's `str.strip`).
    pub fn decode(&self, ids: &[u32]) -> String {
        let specials = [SPECIAL_IDS.pad, SPECIAL_IDS.bos, SPECIAL_IDS.eos, SPECIAL_IDS.unk];
        let mut text = String::new();
        for &id in ids.iter().filter(|id| !specials.contains(id)) {
            match self.target.pieces.get(id as usize) {
                Some(p) if !self.special_tokens.contains(p) => text.push_str(p),
                _ => {}
            }
        }
        let text = text.replace('▁', " ");
        text.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)).to_string()
    }

    /// The form stored in `vocab.json`.
    pub fn to_json(&self) -> Result<Value, SpmError> {
        let side = |s: &Side, pieces: bool| -> Result<SideJson, SpmError> {
            let json = s.tokenizer.to_string(false).map_err(|e| SpmError::Build(e.to_string()))?;
            Ok(SideJson {
                tokenizer: serde_json::from_str(&json).map_err(|e| SpmError::Build(e.to_string()))?,
                to_model: s.to_model.clone(),
                pieces: pieces.then(|| s.pieces.clone()),
            })
        };
        let json = SpmJson {
            source: side(&self.source, true)?,
            target: side(&self.target, !self.shared)?,
            special_tokens: self.special_tokens.clone(),
        };
        Ok(serde_json::json!({ "sentencepiece": json }))
    }

    /// Reads [`SpmVocab::to_json`]'s form (the value under `"sentencepiece"`).
    pub fn from_json(value: Value) -> Result<Self, SpmError> {
        let json: SpmJson = serde_json::from_value(value).map_err(|e| SpmError::Parse(e.to_string()))?;
        let tok = |v: &Value| {
            Tokenizer::from_str(&v.to_string()).map_err(|e| SpmError::Parse(format!("tokenizer: {e}")))
        };
        let source_pieces =
            json.source.pieces.ok_or_else(|| SpmError::Parse("the source side has no pieces".into()))?;
        let shared = json.target.pieces.is_none();
        let target_pieces = json.target.pieces.unwrap_or_else(|| source_pieces.clone());
        for (name, pieces) in [("source", &source_pieces), ("target", &target_pieces)] {
            if pieces.len() < 4 {
                return Err(SpmError::Parse(format!("the {name} vocabulary has {} ids", pieces.len())));
            }
        }
        let check =
            |name: &str, to_model: &[u32], n: usize| match to_model.iter().find(|&&id| id as usize >= n) {
                Some(id) => Err(SpmError::Parse(format!("{name} piece maps to id {id} of {n}"))),
                None => Ok(()),
            };
        check("a source", &json.source.to_model, source_pieces.len())?;
        check("a target", &json.target.to_model, target_pieces.len())?;
        Ok(Self {
            source: Side::new(tok(&json.source.tokenizer)?, json.source.to_model, source_pieces),
            target: Side::new(tok(&json.target.tokenizer)?, json.target.to_model, target_pieces),
            shared,
            special_tokens: json.special_tokens,
        })
    }
}
