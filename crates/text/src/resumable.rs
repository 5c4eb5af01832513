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
    #[error(
        "{}: another process ({owner}) is writing this output; if it is gone, delete {}",
        .path.display(),
        .lock.display()
    )]
    Locked { path: PathBuf, lock: PathBuf, owner: String },
    #[error("cannot merge {}: {reason}", .path.display())]
    Merge { path: PathBuf, reason: String },
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
    _lock: Lock,
}

/// What `<out>.job` records next to a complete output: the job that made it, and which sentences
/// of the corpus it holds (a shard holds a range; merging checks the ranges join up).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobRecord {
    pub job: String,
    /// Sentences `[first, end)` of a corpus of `total`.
    pub first: usize,
    pub end: usize,
    pub total: usize,
}

impl JobRecord {
    pub fn path(out: &Path) -> PathBuf {
        sibling(out, ".job")
    }

    /// The record of the complete output `out` (None for outputs written before records existed).
    pub fn read(out: &Path) -> Result<Option<JobRecord>, ResumableError> {
        let path = Self::path(out);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| ResumableError::Corrupt { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ResumableError::Io { path, source }),
        }
    }

    fn write(&self, out: &Path) -> Result<(), ResumableError> {
        let path = Self::path(out);
        let json = serde_json::to_string_pretty(self).expect("serializable");
        crate::atomic_write(&path, json.as_bytes()).map_err(|source| ResumableError::Io { path, source })
    }
}

/// `<out>.lock`: one writer per output. It records host and pid; a lock left by a killed process
/// on this host is taken over, one from another host must be deleted by hand (shared filesystems).
struct Lock {
    path: PathBuf,
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

impl Lock {
    fn acquire(out: &Path) -> Result<Lock, ResumableError> {
        let path = sibling(out, ".lock");
        let me = format!("{} pid {}", this_host(), std::process::id());
        let io = |source| ResumableError::Io { path: path.clone(), source };
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(me.as_bytes()).map_err(io)?;
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = match owner.rsplit_once(" pid ") {
                        Some((host, pid)) if host == this_host() => {
                            Path::new("/proc").join(pid.trim()).exists() && pid.trim() != "0"
                        }
                        // Another host, or unreadable: assume alive.
                        _ => true,
                    };
                    if alive {
                        return Err(ResumableError::Locked { path: out.into(), lock: path.clone(), owner });
                    }
                    std::fs::remove_file(&path).map_err(io)?;
                }
                Err(e) => return Err(io(e)),
            }
        }
        Err(ResumableError::Locked { path: out.into(), lock: path.clone(), owner: "unknown".into() })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
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
        let lock = Lock::acquire(out)?;
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
        Ok(Self { out: out.to_path_buf(), partial_path, progress_path, file, progress, _lock: lock })
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

    /// Appends a trailer (e.g. an index), records `record` in `<out>.job`, and moves the complete
    /// file to its final name. (Killed in between, a rerun finds the output complete and cleans up.)
    pub fn finish(mut self, trailer: &[u8], record: &JobRecord) -> Result<PathBuf, ResumableError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ResumableError::Io { path, source }
        };
        self.file.write_all(trailer).map_err(io(&self.partial_path))?;
        self.file.sync_all().map_err(io(&self.partial_path))?;
        record.write(&self.out)?;
        std::fs::rename(&self.partial_path, &self.out).map_err(io(&self.out))?;
        remove_if_present(&self.progress_path)?;
        Ok(self.out.clone())
    }
}

fn remove_if_present(path: &Path) -> Result<(), ResumableError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ResumableError::Io { path: path.into(), source }),
    }
}

/// For an output that exists: checks that `job` made it, and removes what a run killed between its
/// last rename and its clean-up left behind. Errors when another job made it; returns whether a
/// job record vouched for it (false: an output without one, taken as it is).
pub fn check_complete(out: &Path, job: &str) -> Result<bool, ResumableError> {
    let record = JobRecord::read(out)?;
    if let Some(record) = &record {
        if record.job != job {
            return Err(ResumableError::OtherJob {
                path: out.into(),
                found: record.job.clone(),
                expected: job.into(),
            });
        }
    }
    remove_if_present(&sibling(out, ".progress"))?;
    remove_if_present(&sibling(out, ".partial"))?;
    Ok(record.is_some())
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

/// Concatenates the complete shards `0..count` of `out` into `out` (atomically), after checking that
/// they were made by the same job and that their sentence ranges join up to the whole corpus; the
/// shard files are removed afterwards. Errors name the first missing or mismatched shard.
pub fn merge_shards(out: &Path, count: usize) -> Result<(), ResumableError> {
    let bad = |reason: String| ResumableError::Merge { path: out.into(), reason };
    if count < 2 {
        return Err(bad(format!("--shards must be at least 2 (got {count})")));
    }
    let paths: Vec<PathBuf> = (0..count).map(|index| Shard { index, count }.output_path(out)).collect();
    let mut records = Vec::with_capacity(count);
    for path in &paths {
        if !path.exists() {
            return Err(bad(format!("{} is missing or not finished", path.display())));
        }
        let record =
            JobRecord::read(path)?.ok_or_else(|| bad(format!("{} has no .job record", path.display())))?;
        records.push(record);
    }
    // Jobs differ only in their shard part; ranges must tile 0..total in order.
    let strip = |job: &str| job.rsplit_once("; shard=").map(|(j, _)| j.to_string()).unwrap_or(job.into());
    let mut next = 0;
    for (path, r) in paths.iter().zip(&records) {
        if strip(&r.job) != strip(&records[0].job) || r.total != records[0].total {
            return Err(bad(format!(
                "{} was made by another job ({}) than shard 0 ({})",
                path.display(),
                r.job,
                records[0].job
            )));
        }
        if r.first != next {
            return Err(bad(format!(
                "{} starts at sentence {} but the shards before end at {next}",
                path.display(),
                r.first
            )));
        }
        next = r.end;
    }
    if next != records[0].total {
        return Err(bad(format!("the shards end at sentence {next} of {}", records[0].total)));
    }
    let mut bytes = Vec::new();
    for path in &paths {
        let mut part =
            std::fs::read(path).map_err(|source| ResumableError::Io { path: path.clone(), source })?;
        bytes.append(&mut part);
    }
    let merged =
        JobRecord { job: format!("{}; shard=0/1", strip(&records[0].job)), first: 0, end: next, total: next };
    merged.write(out)?;
    crate::atomic_write(out, &bytes).map_err(|source| ResumableError::Io { path: out.into(), source })?;
    for path in &paths {
        remove_if_present(path)?;
        remove_if_present(&JobRecord::path(path))?;
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
        w.finish(b"", &JobRecord { job: "job".into(), first: 0, end: 4, total: 4 }).unwrap();
        assert!(check_complete(&out, "job").unwrap(), "its record vouches for it");
        assert!(check_complete(&out, "other job").is_err());
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
    fn a_second_writer_is_refused_while_the_first_holds_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.txt");
        let first = ResumableOutput::open(&out, "job").unwrap();
        let err = ResumableOutput::open(&out, "job").err().unwrap().to_string();
        assert!(err.contains("another process"), "{err}");
        drop(first);
        // A lock left by a dead process of this host is taken over.
        std::fs::write(sibling(&out, ".lock"), format!("{} pid 0", this_host())).unwrap();
        ResumableOutput::open(&out, "job").unwrap();
    }

    #[test]
    fn merge_checks_that_the_shards_join_up() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.txt");
        let write = |index: usize, first: usize, end: usize, job: &str| {
            let shard = Shard { index, count: 2 };
            let mut w = ResumableOutput::open(&shard.output_path(&out), job).unwrap();
            w.append_chunk(format!("{first}-{end}\n").as_bytes()).unwrap();
            w.finish(b"", &JobRecord { job: format!("{job}; shard={shard}"), first, end, total: 10 })
                .unwrap();
        };
        write(0, 0, 5, "beam 5");
        assert!(merge_shards(&out, 2).unwrap_err().to_string().contains("missing"));
        write(1, 6, 10, "beam 5");
        assert!(merge_shards(&out, 2).unwrap_err().to_string().contains("starts at sentence 6"));
        std::fs::remove_file(Shard { index: 1, count: 2 }.output_path(&out)).unwrap();
        write(1, 5, 10, "beam 4");
        assert!(merge_shards(&out, 2).unwrap_err().to_string().contains("another job"));
        std::fs::remove_file(Shard { index: 1, count: 2 }.output_path(&out)).unwrap();
        write(1, 5, 10, "beam 5");
        assert!(merge_shards(&out, 1).is_err());
        merge_shards(&out, 2).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "0-5\n5-10\n");
        assert_eq!(JobRecord::read(&out).unwrap().unwrap().job, "beam 5; shard=0/1");
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
