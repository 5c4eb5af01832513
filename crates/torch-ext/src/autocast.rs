//! CPU autocast: inside an [`Autocast`] region, libtorch runs the ops on its lower-precision list
//! (matmuls, linear layers, bmm, convolutions) in bf16, casting each weight once per region; ops
//! off its lists follow their inputs, so a bf16 `log_softmax` stays bf16 unless its input is cast
//! to f32 first (the trainer does). Weights, gradients and optimiser state
//! stay f32: this is mixed precision with f32 master weights, as in PyTorch's
//! `torch.autocast("cpu", dtype=torch.bfloat16)`. Backward follows the forward's dtypes, so it
//! runs outside the region.
//!
//! The switch is thread-local, like libtorch's: a region covers only the thread that opened it.

use std::ffi::c_char;

use crate::{check, TorchError};

extern "C" {
    fn seqkd_ext_autocast_enter(kind: i32) -> *mut c_char;
    fn seqkd_ext_autocast_exit() -> *mut c_char;
    fn seqkd_ext_autocast_enabled() -> i32;
}

/// The lower precision a region computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowPrecision {
    BFloat16,
    Half,
}

/// An open autocast region on this thread; dropping it closes the region.
#[must_use = "the region closes when the guard drops"]
pub struct Autocast {
    // Not Send: the region belongs to the thread that opened it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Autocast {
    /// Opens a CPU autocast region computing in `precision`.
    pub fn cpu(precision: LowPrecision) -> Result<Self, TorchError> {
        let kind = match precision {
            LowPrecision::BFloat16 => 0,
            LowPrecision::Half => 1,
        };
        // SAFETY: no arguments besides a plain integer; errors come back as messages.
        check(unsafe { seqkd_ext_autocast_enter(kind) })?;
        Ok(Self { _not_send: std::marker::PhantomData })
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: pairs with the enter in `cpu`; the shim catches C++ exceptions.
        if let Err(e) = check(unsafe { seqkd_ext_autocast_exit() }) {
            panic!("leaving a libtorch autocast region failed: {e}");
        }
    }
}

/// Whether CPU autocast is on for this thread.
pub fn enabled() -> bool {
    // SAFETY: reads a thread-local flag.
    unsafe { seqkd_ext_autocast_enabled() != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn matmuls_run_in_bf16_inside_a_region_and_in_f32_after_it() {
        let a = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
        assert!(!enabled());
        {
            let _region = Autocast::cpu(LowPrecision::BFloat16).unwrap();
            assert!(enabled());
            let c = a.matmul(&b);
            assert_eq!(c.kind(), Kind::BFloat16);
            // Ops off the CPU lists follow their input: a loss must cast its logits to f32 itself.
            assert_eq!(c.log_softmax(-1, None::<Kind>).kind(), Kind::BFloat16);
            assert_eq!(c.to_kind(Kind::Float).log_softmax(-1, None::<Kind>).kind(), Kind::Float);
            let exact = a.to_kind(Kind::BFloat16).matmul(&b.to_kind(Kind::BFloat16));
            assert_eq!((c - exact).abs().max().double_value(&[]), 0.0);
        }
        assert!(!enabled());
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
    }

    #[test]
    fn gradients_of_f32_weights_stay_f32() {
        let w = Tensor::randn([8, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let x = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        let loss = {
            let _region = Autocast::cpu(LowPrecision::BFloat16).unwrap();
            x.matmul(&w).to_kind(Kind::Float).sum(None::<Kind>)
        };
        loss.backward();
        let g = w.grad();
        assert_eq!(g.kind(), Kind::Float);
        // d/dw sum(x w) = x^T 1, computed from bf16-rounded x.
        let want = x.to_kind(Kind::BFloat16).to_kind(Kind::Float).sum_dim_intlist(
            [0i64].as_slice(),
            false,
            None::<Kind>,
        );
        let got = g.sum_dim_intlist([1i64].as_slice(), false, None::<Kind>) / 3.0;
        assert!((got - want).abs().max().double_value(&[]) < 0.05);
    }
}
