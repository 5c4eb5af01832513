//! seqkd-text: everything in seqkd that works on text, with no tensors.
//!
//! The data flow starts here: [`corpus`] reads and validates parallel files ([`encoded`] keeps
//! their subword ids on disk, memory-mapped, for corpora larger than memory), [`vocab`] trains and
//! applies a joint subword vocabulary, [`batching`] groups sentence pairs into token-sized batches,
//! and [`metrics`] scores translations exactly as sacrebleu 2.6.0 does. [`synth`] generates the
//! built-in corpus that the demo and the tests use; [`paths`] shows paths as a person reads them.

pub mod batching;
pub mod corpus;
pub mod encoded;
pub mod fnv;
pub mod metrics;
pub mod paths;
pub mod resumable;
pub mod specials;
pub mod splitmix;
pub mod spm;
pub mod synth;
pub mod vocab;

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so readers
/// (and a rerun after a crash) see either the old file or the new one, never a partial write.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
