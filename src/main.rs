//! `seqkd`: train NMT teachers and distill them into small fast students (Kim & Rush 2016).
//!
//! A thin layer over the library crates: parse the command line, run one command, print its
//! error once (with its causes) and exit 2 on failure.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    keep_freed_tensor_memory();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`seqkd ... | head`) is not an error worth reporting.
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("seqkd: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// libtorch frees and reallocates the same large buffers (activations, logits, gradients) on every
/// step. glibc serves blocks over its dynamic mmap threshold with fresh `mmap`s and returns them on
/// free, so each step page-faults its working set back in: a third of training time was kernel
/// time (docs/training.md). Keeping freed memory in the heap removes that; the peak resident size
/// is what it was, it is just not given back between steps. `MALLOC_*` variables still override.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_tensor_memory() {
    const MIB: libc::c_int = 1 << 20;
    let set = |param: libc::c_int, env: &str, value: libc::c_int| {
        if std::env::var_os(env).is_none() {
            // SAFETY: mallopt only sets allocator parameters; called before any threads start.
            unsafe { libc::mallopt(param, value) };
        }
    };
    set(libc::M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 1024 * MIB);
    set(libc::M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 1024 * MIB);
    set(libc::M_TOP_PAD, "MALLOC_TOP_PAD_", 256 * MIB);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_tensor_memory() {}
