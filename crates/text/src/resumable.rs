//! Output files built chunk by chunk, in order, that survive being killed at any instant.
//!
//! Teacher passes over a whole training set (Seq-KD, Seq-Inter, stored top-k) take hours on real
//! data, so an interrupted pass must continue where it stopped with no line lost, duplicated or
//! misaligned. The bytes go to `<out>.partial`; after every chunk the file is synced and the number
//! of chunks and bytes written is recorded atomically in `<out>.progress`. On reopening, the partial
//! file is cut back to the recorded length (dropping a chunk that was half-written when the process
//! died) and the job continues with the next chunk. `finish` renames the partial file to `<out>`,
//! so `<out>` exists only when complete.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ResumableError {
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{}: it belongs to a different job ({found}); this job is ({expected}). \
         Delete {} and its .partial file to start this job afresh",
        .path.display(),
        .path.display()
    )]
    OtherJob { path: PathBuf, found: String, expected: String },
    #[error("{}: corrupt progress file ({reason}); delete it and the .partial file to start afresh", .path.display())]
    Corrupt { path: PathBuf, reason: String },
}

/// What `<out>.progress` records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Progress {
    /// Describes the job (inputs and options), so a rerun with other options cannot append to it.
    job: String,
    chunks_done: usize,
    bytes: u64,
}

/// An output file being written chunk by chunk.
pub struct ResumableOutput {
    out: PathBuf,
    partial_path: PathBuf,
    progress_path: PathBuf,
    file: File,
    progress: Progress,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

impl ResumableOutput {
    /// Opens the job writing `out`, resuming it if a previous run of the same `job` left progress.
    pub fn open(out: &Path, job: &str) -> Result<Self, ResumableError> {
        let partial_path = sibling(out, ".partial");
        let progress_path = sibling(out, ".progress");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ResumableError::Io { path, source }
        };
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let progress = match std::fs::read_to_string(&progress_path) {
            Ok(text) => {
                let p: Progress = serde_json::from_str(&text).map_err(|e| ResumableError::Corrupt {
                    path: progress_path.clone(),
                    reason: e.to_string(),
                })?;
                if p.job != job {
                    return Err(ResumableError::OtherJob {
                        path: progress_path,
                        found: p.job,
                        expected: job.to_string(),
                    });
                }
                p
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Progress { job: job.to_string(), chunks_done: 0, bytes: 0 }
            }
            Err(e) => return Err(ResumableError::Io { path: progress_path, source: e }),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial_path)
            .map_err(io(&partial_path))?;
        let len = file.metadata().map_err(io(&partial_path))?.len();
        if len < progress.bytes {
            return Err(ResumableError::Corrupt {
                path: progress_path,
                reason: format!(
                    "it records {} bytes but {} has {len}",
                    progress.bytes,
                    partial_path.display()
                ),
            });
        }
        // Drop whatever a killed run wrote after its last recorded chunk.
        file.set_len(progress.bytes).map_err(io(&partial_path))?;
        file.seek(SeekFrom::End(0)).map_err(io(&partial_path))?;
        Ok(Self { out: out.to_path_buf(), partial_path, progress_path, file, progress })
    }

    /// Chunks already written (by this run or an earlier one).
    pub fn chunks_done(&self) -> usize {
        self.progress.chunks_done
    }

    /// Appends one chunk and records it durably.
    pub fn append_chunk(&mut self, bytes: &[u8]) -> Result<(), ResumableError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ResumableError::Io { path, source }
        };
        self.file.write_all(bytes).map_err(io(&self.partial_path))?;
        self.file.sync_data().map_err(io(&self.partial_path))?;
        self.progress.chunks_done += 1;
        self.progress.bytes += bytes.len() as u64;
        let json = serde_json::to_string(&self.progress).expect("serializable");
        crate::atomic_write(&self.progress_path, json.as_bytes()).map_err(io(&self.progress_path))
    }

    /// Appends a trailer (e.g. an index) and moves the complete file to its final name.
    pub fn finish(mut self, trailer: &[u8]) -> Result<PathBuf, ResumableError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ResumableError::Io { path, source }
        };
        self.file.write_all(trailer).map_err(io(&self.partial_path))?;
        self.file.sync_all().map_err(io(&self.partial_path))?;
        std::fs::rename(&self.partial_path, &self.out).map_err(io(&self.out))?;
        std::fs::remove_file(&self.progress_path).map_err(io(&self.progress_path))?;
        Ok(self.out)
    }
}

/// Which contiguous part of a corpus one process handles: `--shard i/N`.
///
/// Shards are whole chunks of a global chunking, so every sentence is decoded in the same batch as in
/// an unsharded run and the merged shards equal the unsharded output byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a shard: write i/N with 0 <= i < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) =
            (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The chunks `[first, last)` of `n_chunks` this shard owns.
    pub fn chunks(&self, n_chunks: usize) -> std::ops::Range<usize> {
        (self.index * n_chunks / self.count)..((self.index + 1) * n_chunks / self.count)
    }

    /// The file a shard writes: `<out>.shard-i-of-N` (just `<out>` when unsharded).
    pub fn output_path(&self, out: &Path) -> PathBuf {
        if self.count == 1 {
            out.to_path_buf()
        } else {
            sibling(out, &format!(".shard-{}-of-{}", self.index, self.count))
        }
    }
}

/// Concatenates the complete shards `0..count` of `out` into `out` (atomically); the shard files
/// are removed afterwards. Errors name the first missing shard.
pub fn merge_shards(out: &Path, count: usize) -> Result<(), ResumableError> {
    let paths: Vec<PathBuf> = (0..count).map(|index| Shard { index, count }.output_path(out)).collect();
    let mut bytes = Vec::new();
    for path in &paths {
        let mut part =
            std::fs::read(path).map_err(|source| ResumableError::Io { path: path.clone(), source })?;
        bytes.append(&mut part);
    }
    crate::atomic_write(out, &bytes).map_err(|source| ResumableError::Io { path: out.into(), source })?;
    for path in &paths {
        std::fs::remove_file(path).map_err(|source| ResumableError::Io { path: path.clone(), source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_written_chunk_is_dropped_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.txt");
        let mut w = ResumableOutput::open(&out, "job").unwrap();
        w.append_chunk(b"a\nb\n").unwrap();
        // A crash in the middle of the second chunk: bytes written, progress not recorded.
        w.file.write_all(b"c\n").unwrap();
        drop(w);
        let mut w = ResumableOutput::open(&out, "job").unwrap();
        assert_eq!(w.chunks_done(), 1);
        w.append_chunk(b"c\nd\n").unwrap();
        w.finish(b"").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "a\nb\nc\nd\n");
        assert!(!sibling(&out, ".progress").exists());
    }

    #[test]
    fn another_job_cannot_append() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.txt");
        ResumableOutput::open(&out, "beam 5").unwrap().append_chunk(b"x\n").unwrap();
        let err = ResumableOutput::open(&out, "beam 35").err().unwrap().to_string();
        assert!(err.contains("different job") && err.contains("beam 5"), "{err}");
    }

    #[test]
    fn shards_cover_every_chunk_once_in_order() {
        for n_chunks in [0, 1, 5, 17] {
            for count in 1..6 {
                let covered: Vec<usize> =
                    (0..count).flat_map(|index| Shard { index, count }.chunks(n_chunks)).collect();
                assert_eq!(covered, (0..n_chunks).collect::<Vec<_>>());
            }
        }
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard { index: 2, count: 4 });
        assert!("4/4".parse::<Shard>().is_err() && "x".parse::<Shard>().is_err());
    }
}
