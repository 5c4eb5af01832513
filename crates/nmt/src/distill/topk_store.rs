//! Stored teacher distributions for Word-KD: the teacher's top-k token ids and probabilities at every
//! target position of a corpus, in one compact, memory-mapped file.
//!
//! Running the teacher inside the student's training loop costs a teacher forward pass per update;
//! storing its top-k once makes Word-KD as cheap as plain cross-entropy (Marian, fairseq, OpenNMT
//! and CTranslate2 users ask for exactly this).
//!
//! Layout (little-endian):
//! ```text
//! records   for each sentence, for each target position j = 1..m+1 (y1..ym, </s>):
//!           k ids (u16 when the vocabulary has ≤ 65,536 ids, else u32), then k probs (f16 or f32),
//!           best first
//! index     u32 positions per sentence (m+1), n of them
//! header    JSON (StoreHeader)
//! u64       header length;   8 bytes  magic "SEQKDTK1"
//! ```
//! Records come first so the file can be written sentence by sentence and resumed
//! ([`seqkd_text::resumable`]); the index and header are appended when the pass is complete.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use seqkd_text::encoded::Sentences;
use seqkd_text::fnv::Fnv1a;

use crate::error::Error;

const MAGIC: &[u8; 8] = b"SEQKDTK1";

/// How probabilities are stored: f16 halves the file and keeps 3 significant digits, plenty for soft
/// targets; f32 is exact (used to check stored against live Word-KD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbPrecision {
    F16,
    F32,
}

impl ProbPrecision {
    fn bytes(self) -> usize {
        match self {
            ProbPrecision::F16 => 2,
            ProbPrecision::F32 => 4,
        }
    }
}

/// What the store holds and how it was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoreHeader {
    pub version: u32,
    pub k: usize,
    pub vocab_size: usize,
    pub precision: ProbPrecision,
    /// Softmax temperature the teacher's distribution was taken at.
    pub temperature: f64,
    pub n_sentences: usize,
    pub n_positions: u64,
    /// FNV-1a of the target subword ids the teacher was forced on: training checks it, so a store
    /// can never be applied to another corpus or vocabulary.
    pub targets_hash: u64,
    /// The teacher's model directory, for the record.
    pub teacher: String,
}

impl StoreHeader {
    pub fn id_bytes(&self) -> usize {
        if self.vocab_size <= 1 << 16 {
            2
        } else {
            4
        }
    }

    /// Bytes of one target position's record.
    pub fn record_bytes(&self) -> usize {
        self.k * (self.id_bytes() + self.precision.bytes())
    }
}

/// FNV-1a over the target ids, sentence by sentence (a sentence boundary hashes as `u32::MAX`).
pub fn targets_hash(targets: &(impl Sentences + ?Sized)) -> u64 {
    let mut h = Fnv1a::new();
    for i in 0..targets.count() {
        for &id in targets.sentence(i).iter().chain(&[u32::MAX]) {
            h.bytes(&id.to_le_bytes());
        }
    }
    h.finish()
}

/// Appends the records of one target position (`ids`/`probs`: k values, best first) to `out`.
pub fn encode_position(header: &StoreHeader, ids: &[u32], probs: &[f32], out: &mut Vec<u8>) {
    debug_assert_eq!(ids.len(), header.k);
    for &id in ids {
        if header.id_bytes() == 2 {
            out.extend_from_slice(&(id as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
    for &p in probs {
        match header.precision {
            ProbPrecision::F16 => out.extend_from_slice(&half::f16::from_f32(p).to_le_bytes()),
            ProbPrecision::F32 => out.extend_from_slice(&p.to_le_bytes()),
        }
    }
}

/// The index and header written after the records of all `targets` (subword ids without `</s>`).
pub fn trailer(header: &StoreHeader, targets: &(impl Sentences + ?Sized)) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 * targets.count() + 512);
    for i in 0..targets.count() {
        out.extend_from_slice(&(targets.sentence(i).len() as u32 + 1).to_le_bytes());
    }
    let json = serde_json::to_vec(header).expect("serializable");
    out.extend_from_slice(&json);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(MAGIC);
    out
}

/// A store opened for reading (memory-mapped).
pub struct TopkStore {
    pub header: StoreHeader,
    pub path: PathBuf,
    map: memmap2::Mmap,
    /// Position offsets: sentence i has positions `offsets[i]..offsets[i+1]`.
    offsets: Vec<u64>,
}

impl TopkStore {
    pub fn open(path: &Path) -> Result<Self, Error> {
        let invalid = |reason: String| Error::BadFile {
            path: path.into(),
            reason: format!("not a complete seqkd top-k store ({reason})"),
        };
        let file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.into(), source })?;
        // SAFETY: the store is written once (atomically renamed into place) and never modified.
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io { path: path.into(), source })?;
        let len = map.len();
        if len < 16 || &map[len - 8..] != MAGIC {
            return Err(invalid("no SEQKDTK1 trailer: the pass that writes it did not finish".into()));
        }
        let json_len = u64::from_le_bytes(map[len - 16..len - 8].try_into().expect("8 bytes")) as usize;
        let json_start =
            (len - 16).checked_sub(json_len).ok_or_else(|| invalid("bad header length".into()))?;
        let header: StoreHeader = serde_json::from_slice(&map[json_start..len - 16])
            .map_err(|e| invalid(format!("bad header: {e}")))?;
        if header.version != 1 {
            return Err(invalid(format!("version {} (this seqkd reads version 1)", header.version)));
        }
        if header.k == 0 || header.vocab_size == 0 {
            return Err(invalid("k and vocab_size must be positive".into()));
        }
        let index_start = header
            .n_sentences
            .checked_mul(4)
            .and_then(|bytes| json_start.checked_sub(bytes))
            .ok_or_else(|| invalid("index larger than the file".into()))?;
        let mut offsets = Vec::with_capacity(header.n_sentences + 1);
        offsets.push(0u64);
        for chunk in map[index_start..json_start].chunks_exact(4) {
            let n = u32::from_le_bytes(chunk.try_into().expect("4 bytes")) as u64;
            offsets.push(offsets.last().expect("non-empty") + n);
        }
        let positions = *offsets.last().expect("non-empty");
        let record_bytes = (positions as usize).checked_mul(header.record_bytes());
        if positions != header.n_positions || record_bytes != Some(index_start) {
            return Err(invalid(format!(
                "{positions} positions of {} bytes do not fill the {index_start} record bytes",
                header.record_bytes()
            )));
        }
        Ok(Self { header, path: path.into(), map, offsets })
    }

    pub fn n_sentences(&self) -> usize {
        self.header.n_sentences
    }

    /// Target positions (subwords + `</s>`) stored for sentence `i`.
    pub fn positions(&self, i: usize) -> usize {
        (self.offsets[i + 1] - self.offsets[i]) as usize
    }

    /// Copies position `j` of sentence `i` into `ids` and `probs` (k values each).
    pub fn read(&self, i: usize, j: usize, ids: &mut [i64], probs: &mut [f32]) {
        let h = &self.header;
        let start = (self.offsets[i] as usize + j) * h.record_bytes();
        let (id_bytes, k) = (h.id_bytes(), h.k);
        let id_part = &self.map[start..start + k * id_bytes];
        for (slot, b) in ids.iter_mut().zip(id_part.chunks_exact(id_bytes)) {
            *slot = if id_bytes == 2 {
                u16::from_le_bytes([b[0], b[1]]) as i64
            } else {
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64
            };
        }
        let prob_part = &self.map[start + k * id_bytes..start + h.record_bytes()];
        match h.precision {
            ProbPrecision::F16 => {
                for (slot, b) in probs.iter_mut().zip(prob_part.chunks_exact(2)) {
                    *slot = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            ProbPrecision::F32 => {
                for (slot, b) in probs.iter_mut().zip(prob_part.chunks_exact(4)) {
                    *slot = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        }
    }

    /// Checks that this store was made for `targets` (the training corpus's target ids, in corpus
    /// order) with a vocabulary of `vocab_size` ids.
    pub fn check_matches(&self, targets: &(impl Sentences + ?Sized), vocab_size: usize) -> Result<(), Error> {
        let invalid = |reason: String| Error::BadFile {
            path: self.path.clone(),
            reason: format!("not a complete seqkd top-k store ({reason})"),
        };
        if self.header.vocab_size != vocab_size {
            return Err(invalid(format!(
                "made with a vocabulary of {} ids, the model has {vocab_size}: use the teacher's vocabulary",
                self.header.vocab_size
            )));
        }
        if self.header.n_sentences != targets.count() {
            return Err(invalid(format!(
                "holds {} sentences, the training corpus has {}: was it made for another corpus?",
                self.header.n_sentences,
                targets.count()
            )));
        }
        if let Some(i) = (0..targets.count()).find(|&i| self.positions(i) != targets.sentence(i).len() + 1) {
            return Err(invalid(format!(
                "sentence {} has {} stored positions but {} target subwords + </s>: made for another corpus",
                i + 1,
                self.positions(i),
                targets.sentence(i).len()
            )));
        }
        if self.header.targets_hash != targets_hash(targets) {
            return Err(invalid(
                "made for other target sentences (the hash of the target ids differs)".into(),
            ));
        }
        // Every stored id must index the vocabulary (a damaged file must not reach `gather`).
        let (k, id_bytes, record) = (self.header.k, self.header.id_bytes(), self.header.record_bytes());
        let damaged = self.map[..self.header.n_positions as usize * record]
            .chunks_exact(record)
            .flat_map(|r| r[..k * id_bytes].chunks_exact(id_bytes))
            .any(|b| {
                let id = if id_bytes == 2 {
                    u16::from_le_bytes([b[0], b[1]]) as usize
                } else {
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
                };
                id >= vocab_size
            });
        if damaged {
            return Err(invalid(format!("holds token ids outside the vocabulary of {vocab_size}: damaged")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(k: usize, vocab_size: usize, precision: ProbPrecision, targets: &[Vec<u32>]) -> StoreHeader {
        StoreHeader {
            version: 1,
            k,
            vocab_size,
            precision,
            temperature: 1.0,
            n_sentences: targets.len(),
            n_positions: targets.iter().map(|t| t.len() as u64 + 1).sum(),
            targets_hash: targets_hash(targets),
            teacher: "test".into(),
        }
    }

    #[test]
    fn store_round_trips_ids_and_probabilities() {
        let targets = vec![vec![5, 6, 7], vec![], vec![9]];
        for (precision, vocab_size) in [(ProbPrecision::F32, 100), (ProbPrecision::F16, 70_000)] {
            let h = header(3, vocab_size, precision, &targets);
            let mut bytes = Vec::new();
            let mut expected = Vec::new();
            for (i, t) in targets.iter().enumerate() {
                for j in 0..=t.len() {
                    let ids = [(i * 10 + j) as u32, 69_999.min(vocab_size as u32 - 1), 3];
                    let probs = [0.5f32, 0.25, 0.125 + j as f32 / 1024.0];
                    encode_position(&h, &ids, &probs, &mut bytes);
                    expected.push((i, j, ids, probs));
                }
            }
            bytes.extend(trailer(&h, &targets));
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.topk");
            std::fs::write(&path, &bytes).unwrap();
            let store = TopkStore::open(&path).unwrap();
            assert_eq!(store.header, h);
            store.check_matches(&targets, vocab_size).unwrap();
            let (mut ids, mut probs) = ([0i64; 3], [0f32; 3]);
            for (i, j, want_ids, want_probs) in expected {
                store.read(i, j, &mut ids, &mut probs);
                assert_eq!(ids, want_ids.map(i64::from));
                for (p, q) in probs.iter().zip(want_probs) {
                    assert!((p - q).abs() <= q * 1e-3, "{p} vs {q}");
                }
            }
            // Another corpus is refused, by sentence count, by length and by content.
            assert!(store.check_matches(&targets[..2], vocab_size).is_err());
            let err = store.check_matches(&vec![vec![5, 6, 7], vec![], vec![8]], vocab_size).unwrap_err();
            assert!(err.to_string().contains("hash"), "{err}");
            assert!(store.check_matches(&targets, vocab_size + 1).is_err());
        }
    }

    #[test]
    fn an_unfinished_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.topk");
        std::fs::write(&path, b"half a file").unwrap();
        let err = TopkStore::open(&path).err().unwrap().to_string();
        assert!(err.contains("did not finish"), "{err}");
    }
}
