//! Data-parallel training: `world` processes share every global batch and sum their gradients,
//!
//! g = (1 / N) · Σ_r Σ_{(s,t) ∈ B_r} ∇ ℓ(s, t),   N = target tokens of B = ∪_r B_r,
//!
//! so each update equals the single-process update on the whole batch B (to float rounding), with
//! each process computing a 1/world share. Rank r takes rows r, r + world, r + 2·world, … of the
//! batcher's batch (whose rows are sorted by length, so the shares pad alike); it backpropagates
//! its summed loss divided by N, and one all-reduce of all gradients (flattened into one buffer,
//! as DDP's buckets, with the loss sum riding along) gives every rank the same g. Every rank then
//! applies the same clipping and optimiser step, so the weights stay identical without being sent.
//!
//! The collective is c10d's Gloo (`seqkd_torch_ext::group`), the backend of `torch.distributed`
//! on CPUs; NCCL sits behind the same c10d interface for GPUs. Rank 0 (the leader) alone
//! validates, logs and writes the model directory; it tells the others when the run stops.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use seqkd_torch_ext::group::{Group, Rendezvous};
use tch::{Kind, Tensor};

use crate::error::Error;

/// How a training process joins a data-parallel run (torchrun's RANK, WORLD_SIZE, MASTER_ADDR,
/// MASTER_PORT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataParallelConfig {
    pub rank: usize,
    pub world: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// How long to wait for the other processes (at the start, and in each collective).
    pub timeout: Duration,
}

/// This process's place in a data-parallel run.
pub struct DataParallel {
    group: Group,
    /// The gradients' all-reduce buffer (every gradient, then the loss), made at the first update
    /// and reused: the update copies into it and back, and allocates nothing.
    flat: RefCell<Option<Tensor>>,
}

fn comm(e: seqkd_torch_ext::TorchError) -> Error {
    Error::Invalid(format!("data-parallel collective failed: {e}"))
}

impl DataParallel {
    /// Joins the run: blocks until all `world` processes have met at the master's address.
    pub fn join(c: &DataParallelConfig) -> Result<Self, Error> {
        let r = Rendezvous {
            host: c.master_addr.clone(),
            port: c.master_port,
            rank: c.rank,
            world: c.world,
            timeout: c.timeout,
        };
        let group = Group::join(&r).map_err(|e| {
            Error::Invalid(format!(
                "rank {} of {} could not join the run at {}:{}: {e}",
                c.rank, c.world, c.master_addr, c.master_port
            ))
        })?;
        Ok(Self { group, flat: RefCell::new(None) })
    }

    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    pub fn world(&self) -> usize {
        self.group.world()
    }

    pub fn is_leader(&self) -> bool {
        self.rank() == 0
    }

    /// This rank's rows of a global batch.
    pub fn share<T: Copy>(&self, rows: &[T]) -> Vec<T> {
        rows.iter().copied().skip(self.rank()).step_by(self.world()).collect()
    }

    /// The leader's `values`, on every rank.
    pub fn broadcast_values(&self, values: &mut [f64]) -> Result<(), Error> {
        let mut t = Tensor::from_slice(values);
        self.group.broadcast(&mut t, 0).map_err(comm)?;
        values.copy_from_slice(&Vec::<f64>::try_from(&t).expect("a 1-d f64 tensor"));
        Ok(())
    }

    /// Fails on every rank, with the same error, unless every rank's `facts` equal the leader's
    /// (a rank started with other flags or another config would call the collectives a different
    /// number of times, or with other sizes, and hang until the timeout).
    pub fn check_same(&self, facts: &[f64], what: &str) -> Result<(), Error> {
        let mut leaders = facts.to_vec();
        self.broadcast_values(&mut leaders)?;
        let mut differ = Tensor::from_slice(&[(leaders != facts) as u8 as f64]);
        self.group.all_reduce_sum(&mut differ).map_err(comm)?;
        let n = differ.double_value(&[0]);
        if n > 0.0 {
            return Err(Error::Invalid(format!(
                "{n} of the {} ranks differ from rank 0 in {what}: start every rank with the same \
                 config, flags and model directory",
                self.world()
            )));
        }
        Ok(())
    }

    /// Gives every rank the leader's weights (so that all start from the same point).
    pub fn broadcast_weights(&self, vars: &HashMap<String, Tensor>) -> Result<(), Error> {
        let params = by_name(vars);
        let mut flat = flatten(&params);
        self.group.broadcast(&mut flat, 0).map_err(comm)?;
        tch::no_grad(|| unflatten_into(&flat, &params));
        Ok(())
    }

    /// Sums every variable's gradient over the ranks, in place, and returns the sum of each
    /// rank's `loss`. Gradients must be defined (see [`define_grads`]).
    pub fn all_reduce_grads(&self, vars: &HashMap<String, Tensor>, loss: f64) -> Result<f64, Error> {
        let grads: Vec<Tensor> =
            by_name(vars).into_iter().filter(|v| v.requires_grad()).map(Tensor::grad).collect();
        let refs: Vec<&Tensor> = grads.iter().collect();
        let n: i64 = refs.iter().map(|g| g.numel() as i64).sum();
        let mut slot = self.flat.borrow_mut();
        if slot.as_ref().is_none_or(|f| f.size() != [n + 1]) {
            *slot = Some(Tensor::zeros([n + 1], (Kind::Float, tch::Device::Cpu)));
        }
        let flat = slot.as_mut().expect("made above");
        flatten_into(&refs, &flat.narrow(0, 0, n));
        let _ = flat.narrow(0, n, 1).fill_(loss);
        self.group.all_reduce_sum(flat).map_err(comm)?;
        unflatten_into(&flat.narrow(0, 0, n), &refs);
        Ok(flat.double_value(&[n]))
    }
}

/// The variables in name order: the same order on every rank (a HashMap's is not).
fn by_name(vars: &HashMap<String, Tensor>) -> Vec<&Tensor> {
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    names.into_iter().map(|n| &vars[n]).collect()
}

/// Gives every variable a zero gradient, so that a rank whose share of a batch is empty (or a
/// variable its share did not reach) still takes part in the all-reduce.
pub fn define_grads(vars: &HashMap<String, Tensor>) {
    let zero = vars
        .values()
        .filter(|v| v.requires_grad())
        .map(|p| p.sum(Kind::Float) * 0.0)
        .fold(Tensor::from(0f32), |a, b| a + b);
    zero.backward();
}

fn flatten(ts: &[&Tensor]) -> Tensor {
    let n: i64 = ts.iter().map(|t| t.numel() as i64).sum();
    let flat = Tensor::zeros([n], (Kind::Float, tch::Device::Cpu));
    flatten_into(ts, &flat);
    flat
}

/// Copies `ts` one after another into `flat`.
fn flatten_into(ts: &[&Tensor], flat: &Tensor) {
    let mut at = 0;
    for t in ts {
        let n = t.numel() as i64;
        flat.narrow(0, at, n).copy_(&t.detach().reshape([-1]));
        at += n;
    }
}

/// Copies consecutive slices of `flat` back into `ts`.
fn unflatten_into(flat: &Tensor, ts: &[&Tensor]) {
    let mut at = 0;
    for t in ts {
        let n = t.numel() as i64;
        let mut dst = t.shallow_clone();
        dst.copy_(&flat.narrow(0, at, n).view_as(t));
        at += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_and_back_restores_every_tensor() {
        let a = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([2, 2]);
        let b = Tensor::from_slice(&[5f32]);
        let flat = flatten(&[&a, &b]);
        assert_eq!(Vec::<f32>::try_from(&flat).unwrap(), vec![1., 2., 3., 4., 5.]);
        let (x, y) = (
            Tensor::zeros([2, 2], (Kind::Float, tch::Device::Cpu)),
            Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)),
        );
        unflatten_into(&(flat * 2.0), &[&x, &y]);
        assert_eq!(Vec::<f32>::try_from(&x.view([-1])).unwrap(), vec![2., 4., 6., 8.]);
        assert_eq!(Vec::<f32>::try_from(&y).unwrap(), vec![10.]);
    }
}
