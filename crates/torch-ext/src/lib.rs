//! What tch does not expose, through a small C++ shim compiled against the same libtorch
//! (`cpp/torch_ext.cpp`):
//!
//! - [`autocast`]: CPU mixed precision, the switch behind `torch.autocast("cpu", torch.bfloat16)`;
//! - [`group`]: a c10d Gloo process group (all-reduce, broadcast) for data-parallel training.

pub mod autocast;
pub mod group;

use std::ffi::{c_char, CStr};

extern "C" {
    fn seqkd_ext_free_string(s: *mut c_char);
}

/// A libtorch exception, as its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchError(pub String);

impl std::fmt::Display for TorchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TorchError {}

/// The shim's convention: null is success, anything else a message to take and free.
fn check(message: *mut c_char) -> Result<(), TorchError> {
    if message.is_null() {
        return Ok(());
    }
    // SAFETY: the shim returns a NUL-terminated string from strdup, owned by the caller.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    unsafe { seqkd_ext_free_string(message) };
    Err(TorchError(text))
}
