//! A pre-encoded corpus: the subword ids of every training sentence, written once and then
//! memory-mapped, so that training on a corpus larger than memory only holds what it touches.
//!
//! One file per side (fairseq's `mmap` dataset does the same): sentence i is
//! `ids[offsets[i] .. offsets[i + 1]]`.
//!
//! ```text
//! [ids: u32 × n_ids] [zeros to a multiple of 8] [offsets: u64 × (n + 1)] [footer, 40 bytes]
//! footer: "SEQKDIDS" · version u32 · 0u32 · key u64 · n u64 · n_ids u64      (all little-endian)
//! ```
//!
//! The `key` pins what the ids were made from (the text files and the vocabulary, see
//! [`corpus_key`]); a file whose key differs is stale and is written again, never read.
//! [`encode_parallel`] writes both sides while streaming the text in chunks, so neither the text
//! nor the ids of the whole corpus are ever in memory: only the offsets (8 bytes a sentence).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::corpus::{read_parallel_chunks, CorpusError, LineLimits};
use crate::fnv::Fnv1a;
use crate::vocab::{Vocab, VocabError};

const MAGIC: &[u8; 8] = b"SEQKDIDS";
const VERSION: u32 = 1;
const FOOTER: usize = 40;
/// Sentences encoded at once while writing: bounds the text and ids held (~10 MB).
const CHUNK: usize = 50_000;

#[cfg(not(target_endian = "little"))]
compile_error!("the pre-encoded corpus maps little-endian u32 ids in place");

/// The subword ids of sentences by index: one side of a training corpus, in memory or mapped.
pub trait Sentences {
    fn count(&self) -> usize;
    /// Sentence `i`'s ids (without `</s>`). Panics if `i >= count()`, as slice indexing does.
    fn sentence(&self, i: usize) -> &[u32];
}

impl Sentences for [Vec<u32>] {
    fn count(&self) -> usize {
        self.len()
    }
    fn sentence(&self, i: usize) -> &[u32] {
        &self[i]
    }
}

impl Sentences for Vec<Vec<u32>> {
    fn count(&self) -> usize {
        self.len()
    }
    fn sentence(&self, i: usize) -> &[u32] {
        &self[i]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodedError {
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Vocab(#[from] VocabError),
}

/// Why an existing file cannot be used (it is then written again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    Missing,
    /// Made from other text or another vocabulary.
    Stale,
    /// Not a complete file of this format (a crash cannot leave one: files are renamed into place).
    Corrupt(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Missing => write!(f, "not written yet"),
            Unusable::Stale => write!(f, "made from another corpus or vocabulary"),
            Unusable::Corrupt(why) => write!(f, "unreadable ({why})"),
        }
    }
}

/// One side of a pre-encoded corpus, memory-mapped.
pub struct IdsFile {
    map: memmap2::Mmap,
    n: usize,
    n_ids: usize,
    /// Byte position of the offsets.
    offsets_at: usize,
}

impl IdsFile {
    /// Maps `path` if it is a complete file made with `key`.
    pub fn open(path: &Path, key: u64) -> Result<Self, Unusable> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unusable::Missing),
            Err(e) => return Err(Unusable::Corrupt(e.to_string())),
        };
        // SAFETY: the file is only ever replaced by a rename, never written in place.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Unusable::Corrupt(e.to_string()))?;
        let corrupt = |why: &str| Unusable::Corrupt(why.to_string());
        if map.len() < FOOTER || &map[map.len() - FOOTER..map.len() - FOOTER + 8] != MAGIC {
            return Err(corrupt("no footer"));
        }
        let word = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8 bytes"));
        let footer = map.len() - FOOTER;
        let version = u32::from_le_bytes(map[footer + 8..footer + 12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(Unusable::Stale);
        }
        if word(footer + 16) != key {
            return Err(Unusable::Stale);
        }
        let (n, n_ids) = (word(footer + 24) as usize, word(footer + 32) as usize);
        // Checked arithmetic: a damaged footer must not overflow into a wrong layout.
        let offsets_at = n_ids.checked_mul(4).map(|ids| ids.next_multiple_of(8));
        let end = offsets_at.and_then(|at| n.checked_add(1)?.checked_mul(8)?.checked_add(at));
        let (Some(offsets_at), Some(end)) = (offsets_at, end) else {
            return Err(corrupt("its footer is damaged"));
        };
        if end != footer {
            return Err(corrupt("its length does not match its footer"));
        }
        let ids = Self { map, n, n_ids, offsets_at };
        let offsets = ids.offsets();
        if offsets[0] != 0 || offsets[n] != n_ids as u64 || offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(corrupt("its offsets are not increasing"));
        }
        Ok(ids)
    }

    fn offsets(&self) -> &[u64] {
        bytemuck::cast_slice(&self.map[self.offsets_at..self.offsets_at + 8 * (self.n + 1)])
    }

    /// All ids of all sentences.
    pub fn total_ids(&self) -> usize {
        self.n_ids
    }
}

impl Sentences for IdsFile {
    fn count(&self) -> usize {
        self.n
    }
    fn sentence(&self, i: usize) -> &[u32] {
        let offsets = self.offsets();
        let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
        bytemuck::cast_slice(&self.map[4 * a..4 * b])
    }
}

/// Writes one side: ids as they come, then the offsets and the footer, then renames it into place.
pub struct IdsWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    offsets: Vec<u64>,
}

impl IdsWriter {
    pub fn create(path: &Path) -> Result<Self, EncodedError> {
        let io = |source| EncodedError::Io { path: path.into(), source };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let out = BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(io)?);
        Ok(Self { out, tmp, path: path.into(), offsets: vec![0] })
    }

    pub fn push(&mut self, ids: &[u32]) -> Result<(), EncodedError> {
        self.out.write_all(bytemuck::cast_slice(ids)).map_err(|source| self.io(source))?;
        let end = self.offsets.last().copied().unwrap_or(0) + ids.len() as u64;
        self.offsets.push(end);
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> EncodedError {
        EncodedError::Io { path: self.tmp.clone(), source }
    }

    /// Completes the file under `key` and renames it into place.
    pub fn finish(mut self, key: u64) -> Result<(), EncodedError> {
        let n_ids = *self.offsets.last().expect("starts with 0");
        let pad = ((4 * n_ids).next_multiple_of(8) - 4 * n_ids) as usize;
        let mut tail = vec![0u8; pad];
        tail.extend(self.offsets.iter().flat_map(|o| o.to_le_bytes()));
        tail.extend(MAGIC);
        tail.extend(VERSION.to_le_bytes());
        tail.extend(0u32.to_le_bytes());
        for word in [key, self.offsets.len() as u64 - 1, n_ids] {
            tail.extend(word.to_le_bytes());
        }
        self.out.write_all(&tail).map_err(|e| self.io(e))?;
        self.out.flush().map_err(|e| self.io(e))?;
        self.out.get_ref().sync_all().map_err(|e| self.io(e))?;
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|source| EncodedError::Io { path: self.path.clone(), source })
    }
}

impl Drop for IdsWriter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp); // gone already after a successful rename
    }
}

/// The key of a corpus encoded with a vocabulary: the two text files (path, length, modification
/// time, and on Unix inode and status-change time, so an edited, replaced or `cp -p`-copied file
/// is encoded again), the vocabulary's bytes, the line limits the text was checked with, and
/// seqkd's version (a new release may encode differently).
pub fn corpus_key(
    src: &Path,
    tgt: &Path,
    vocab_bytes: &[u8],
    limits: &LineLimits,
) -> Result<u64, EncodedError> {
    let mut h = Fnv1a::new();
    h.bytes(env!("CARGO_PKG_VERSION").as_bytes());
    for path in [src, tgt] {
        let meta =
            std::fs::metadata(path).map_err(|source| EncodedError::Io { path: path.into(), source })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            h.word(meta.ino());
            h.word(meta.ctime() as u64);
            h.word(meta.ctime_nsec() as u64);
        }
        let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        h.bytes(path.as_os_str().as_encoded_bytes());
        h.word(meta.len());
        h.word(modified.map_or(0, |d| d.as_nanos() as u64));
    }
    h.words(vocab_bytes);
    h.word(limits.max_chars as u64);
    h.word(limits.allow_empty as u64);
    Ok(h.finish())
}

/// Encodes a parallel corpus into `src_out` and `tgt_out` under `key`, streaming it in chunks
/// (source sentences as sources, with the vocabulary's source tags, as training encodes them).
/// The text is checked line by line; the first defect fails with its file and line before either
/// file is renamed into place. Returns the number of pairs. (The mapped ids are trusted to be
/// below the vocabulary's size: the files are seqkd's own, renamed into place only when complete.)
pub fn encode_parallel(
    src: &Path,
    tgt: &Path,
    limits: &LineLimits,
    vocab: &Vocab,
    (src_out, tgt_out): (&Path, &Path),
    key: u64,
) -> Result<usize, EncodedError> {
    let (mut src_ids, mut tgt_ids) = (IdsWriter::create(src_out)?, IdsWriter::create(tgt_out)?);
    let pairs = read_parallel_chunks(src, tgt, limits, CHUNK, |chunk| -> Result<(), EncodedError> {
        for ids in vocab.encode_src_batch(&chunk.src)? {
            src_ids.push(&ids)?;
        }
        for ids in vocab.encode_batch(&chunk.tgt)? {
            tgt_ids.push(&ids)?;
        }
        Ok(())
    })?;
    src_ids.finish(key)?;
    tgt_ids.finish(key)?;
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, sentences: &[Vec<u32>], key: u64) {
        let mut w = IdsWriter::create(path).unwrap();
        for s in sentences {
            w.push(s).unwrap();
        }
        w.finish(key).unwrap();
    }

    #[test]
    fn written_sentences_read_back_by_index_and_the_key_guards_staleness() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("side.ids");
        // An odd number of ids, so the offsets need padding; an empty sentence in the middle.
        let sentences = vec![vec![5, 6, 7], vec![], vec![u32::MAX, 0], vec![9, 9, 9, 9, 9, 9, 9, 9, 9, 9]];
        write(&path, &sentences, 42);
        let ids = IdsFile::open(&path, 42).unwrap();
        assert_eq!(ids.count(), 4);
        assert_eq!(ids.total_ids(), 15);
        for (i, s) in sentences.iter().enumerate() {
            assert_eq!(ids.sentence(i), s.as_slice());
        }
        assert_eq!(IdsFile::open(&path, 43).err(), Some(Unusable::Stale));
        assert_eq!(IdsFile::open(&dir.path().join("none"), 42).err(), Some(Unusable::Missing));
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn truncated_or_foreign_files_are_unusable_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("side.ids");
        write(&path, &[vec![1, 2, 3], vec![4]], 7);
        let bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        for part in [&bytes[..0], &bytes[..3], &bytes[..n - 1], &bytes[..n - FOOTER - 1], &bytes[4..]] {
            std::fs::write(&path, part).unwrap();
            assert!(matches!(IdsFile::open(&path, 7), Err(Unusable::Corrupt(_))), "{} bytes", part.len());
        }
        // A file whose footer is intact but whose offsets were damaged.
        let mut damaged = bytes.clone();
        damaged[16..24].copy_from_slice(&100u64.to_le_bytes());
        std::fs::write(&path, &damaged).unwrap();
        assert!(matches!(IdsFile::open(&path, 7), Err(Unusable::Corrupt(_))));
    }

    #[test]
    fn a_dropped_writer_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = IdsWriter::create(&dir.path().join("side.ids")).unwrap();
        w.push(&[1, 2]).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn encoding_in_chunks_equals_encoding_in_memory_and_a_defect_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let (src, tgt) = (dir.path().join("train.en"), dir.path().join("train.de"));
        let en: Vec<String> = (0..120).map(|i| format!("the cat number {i} sat on mat {}", i % 7)).collect();
        let de: Vec<String> =
            (0..120).map(|i| format!("die katze nummer {i} sass auf matte {}", i % 7)).collect();
        std::fs::write(&src, en.join("\n") + "\n").unwrap();
        std::fs::write(&tgt, de.join("\n") + "\n").unwrap();
        let vocab = Vocab::train(
            en.iter().chain(&de),
            &crate::vocab::VocabConfig { size: 300, ..Default::default() },
        )
        .unwrap();
        let outs = (dir.path().join("src.ids"), dir.path().join("tgt.ids"));
        let limits = LineLimits::default();
        let key = corpus_key(&src, &tgt, b"vocab", &limits).unwrap();
        // Chunks of 50 sentences: the last one is partial.
        let pairs = read_parallel_chunks(&src, &tgt, &limits, 50, |c| -> Result<(), EncodedError> {
            assert!(c.len() == 50 || c.len() == 20);
            Ok(())
        })
        .unwrap();
        assert_eq!(pairs, 120);
        assert_eq!(encode_parallel(&src, &tgt, &limits, &vocab, (&outs.0, &outs.1), key).unwrap(), 120);
        let (s, t) = (IdsFile::open(&outs.0, key).unwrap(), IdsFile::open(&outs.1, key).unwrap());
        let (s_mem, t_mem) = (vocab.encode_src_batch(&en).unwrap(), vocab.encode_batch(&de).unwrap());
        assert!(
            (0..120).all(|i| s.sentence(i) == s_mem[i].as_slice() && t.sentence(i) == t_mem[i].as_slice())
        );

        // An edited file changes the key; a defect fails with file and line and writes nothing.
        let mut bad = de.clone();
        bad[76] = String::new();
        std::fs::write(&tgt, bad.join("\n") + "\n").unwrap();
        assert_ne!(corpus_key(&src, &tgt, b"vocab", &limits).unwrap(), key);
        let (a, b) = (dir.path().join("a.ids"), dir.path().join("b.ids"));
        let err = encode_parallel(&src, &tgt, &limits, &vocab, (&a, &b), key).unwrap_err().to_string();
        assert!(err.contains("train.de:77") && err.contains("empty line"), "{err}");
        assert!(!a.exists() && !b.exists());
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 4, "no temporary file left");
    }
}
