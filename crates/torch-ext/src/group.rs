//! A c10d process group on Gloo: the collective behind `torch.distributed` on CPUs (NCCL takes
//! its place on GPUs behind the same c10d `Backend` interface). Processes meet through a
//! TCPStore that rank 0 serves at `host:port`, as `torchrun`'s MASTER_ADDR/MASTER_PORT.
//!
//! Collectives act on one contiguous CPU tensor in place and block until every rank has joined;
//! every rank must call them in the same order.

use std::ffi::{c_char, c_void, CString};
use std::time::Duration;

use tch::Tensor;

use crate::{check, TorchError};

extern "C" {
    fn seqkd_ext_group_new(
        host: *const c_char,
        port: i32,
        rank: i32,
        world: i32,
        timeout_ms: i64,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn seqkd_ext_group_free(group: *mut c_void);
    fn seqkd_ext_all_reduce_sum(group: *mut c_void, tensor: *mut torch_sys::C_tensor) -> *mut c_char;
    fn seqkd_ext_broadcast(group: *mut c_void, tensor: *mut torch_sys::C_tensor, root: i32) -> *mut c_char;
}

/// Where and how a process joins its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    /// Rank 0's address (it serves the store). Each process's Gloo binds the interface named by
    /// GLOO_SOCKET_IFNAME, else loopback when this address is loopback, else the address of this
    /// machine's hostname (as torch.distributed does).
    pub host: String,
    pub port: u16,
    pub rank: usize,
    pub world: usize,
    /// How long to wait for the others, at the rendezvous and in each collective.
    pub timeout: Duration,
}

/// This process's membership of a Gloo group.
pub struct Group {
    raw: *mut c_void,
    rank: usize,
    world: usize,
}

impl Group {
    /// Joins the group: blocks until all `world` ranks have connected, or the timeout.
    pub fn join(r: &Rendezvous) -> Result<Self, TorchError> {
        if r.world == 0 || r.rank >= r.world {
            return Err(TorchError(format!("rank {} is not in a group of {}", r.rank, r.world)));
        }
        let host = CString::new(r.host.as_str()).map_err(|_| TorchError("host has a NUL byte".into()))?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid C string and out-pointer; the shim catches C++ exceptions.
        check(unsafe {
            seqkd_ext_group_new(
                host.as_ptr(),
                r.port as i32,
                r.rank as i32,
                r.world as i32,
                r.timeout.as_millis() as i64,
                &mut raw,
            )
        })?;
        Ok(Self { raw, rank: r.rank, world: r.world })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world(&self) -> usize {
        self.world
    }

    /// Replaces `t` by its sum over the ranks.
    pub fn all_reduce_sum(&self, t: &mut Tensor) -> Result<(), TorchError> {
        contiguous_cpu(t)?;
        // SAFETY: `raw` is a live group; `t` is a valid at::Tensor the call only reads and fills.
        check(unsafe { seqkd_ext_all_reduce_sum(self.raw, t.as_mut_ptr()) })
    }

    /// Replaces `t` by rank `root`'s.
    pub fn broadcast(&self, t: &mut Tensor, root: usize) -> Result<(), TorchError> {
        contiguous_cpu(t)?;
        // SAFETY: as in all_reduce_sum.
        check(unsafe { seqkd_ext_broadcast(self.raw, t.as_mut_ptr(), root as i32) })
    }
}

fn contiguous_cpu(t: &Tensor) -> Result<(), TorchError> {
    if t.device() != tch::Device::Cpu || !t.is_contiguous() {
        return Err(TorchError("collectives here take contiguous CPU tensors".into()));
    }
    Ok(())
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: created by seqkd_ext_group_new, freed once.
        unsafe { seqkd_ext_group_free(self.raw) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    #[test]
    fn two_ranks_sum_and_broadcast() {
        let port = free_port();
        let ranks: Vec<_> = (0..2)
            .map(|rank| {
                std::thread::spawn(move || {
                    let r = Rendezvous {
                        host: "127.0.0.1".into(),
                        port,
                        rank,
                        world: 2,
                        timeout: Duration::from_secs(30),
                    };
                    let g = Group::join(&r).unwrap();
                    let mut t = Tensor::from_slice(&[1.0f32 + rank as f32, 10.0 * rank as f32]);
                    g.all_reduce_sum(&mut t).unwrap();
                    let mut b = Tensor::full([3], rank as f64 + 5.0, (Kind::Float, Device::Cpu));
                    g.broadcast(&mut b, 1).unwrap();
                    (Vec::<f32>::try_from(&t).unwrap(), Vec::<f32>::try_from(&b).unwrap())
                })
            })
            .collect();
        for h in ranks {
            let (sum, b) = h.join().unwrap();
            assert_eq!(sum, vec![3.0, 10.0]);
            assert_eq!(b, vec![6.0; 3]);
        }
    }

    #[test]
    fn a_rank_outside_the_group_is_an_error() {
        let r = Rendezvous {
            host: "127.0.0.1".into(),
            port: 1,
            rank: 2,
            world: 2,
            timeout: Duration::from_secs(1),
        };
        assert!(Group::join(&r).is_err());
    }
}
