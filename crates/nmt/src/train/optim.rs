//! Optimisers with state we own (tch's wrapper cannot read Adam's moments back), so checkpoints
//! hold the full optimiser state and a resumed run continues exactly.
//!
//! Adam (Kingma & Ba 2015), as PyTorch implements it:
//!   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  θ ← θ − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
//! SGD: θ ← θ − lr·g.

use std::collections::HashMap;

use tch::Tensor;

use crate::config::OptimizerKind;

pub struct Optimizer {
    kind: OptimizerKind,
    betas: (f64, f64),
    eps: f64,
    /// Parameters by name, sorted, so state tensors line up across runs.
    params: Vec<(String, Tensor)>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    /// Updates done (Adam's t).
    pub steps: i64,
}

impl Optimizer {
    pub fn new(vars: HashMap<String, Tensor>, kind: OptimizerKind, betas: (f64, f64), eps: f64) -> Self {
        let mut params: Vec<(String, Tensor)> = vars.into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros =
            |params: &[(String, Tensor)]| params.iter().map(|(_, p)| p.zeros_like()).collect::<Vec<_>>();
        let (exp_avg, exp_avg_sq) = match kind {
            OptimizerKind::Adam => (zeros(&params), zeros(&params)),
            OptimizerKind::Sgd => (Vec::new(), Vec::new()),
        };
        Self { kind, betas, eps, params, exp_avg, exp_avg_sq, steps: 0 }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Rescales gradients so their global L2 norm is at most `max_norm`; returns the norm before.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).filter(|g| g.defined()).collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm().unsqueeze(0)).collect();
        let total = Tensor::cat(&norms, 0).norm().double_value(&[]);
        if max_norm > 0.0 && total > max_norm {
            let scale = max_norm / (total + 1e-6);
            tch::no_grad(|| {
                for mut g in grads {
                    let _ = g.g_mul_scalar_(scale);
                }
            });
        }
        total
    }

    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let t = self.steps as f64;
        let (b1, b2) = self.betas;
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                match self.kind {
                    OptimizerKind::Sgd => {
                        let _ = p.g_sub_(&(g * lr));
                    }
                    OptimizerKind::Adam => {
                        // In place, with two temporaries (g², the denominator), as torch.optim.Adam
                        // does on CPU: every extra parameter-sized temporary is a pass over memory.
                        let (m, v) = (&mut self.exp_avg[i], &mut self.exp_avg_sq[i]);
                        let _ = m.lerp_(&g, 1.0 - b1); // β1·m + (1−β1)·g
                        let _ = v.lerp_(&g.square(), 1.0 - b2); // β2·v + (1−β2)·g²
                        let bias1 = 1.0 - b1.powf(t);
                        let bias2 = 1.0 - b2.powf(t);
                        // denom = −(bias1/lr)·(√v/√bias2 + ε), so p + m/denom = p − lr/bias1 · m/(√v̂ + ε).
                        let mut denom = v.sqrt();
                        let _ = denom.g_div_scalar_(bias2.sqrt());
                        let _ = denom.g_add_scalar_(self.eps);
                        let _ = denom.g_mul_scalar_(-bias1 / lr);
                        let _ = p.addcdiv_(&*m, &denom);
                    }
                }
            }
        });
    }

    /// The state tensors, named `exp_avg.<param>` / `exp_avg_sq.<param>`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            if let (Some(m), Some(v)) = (self.exp_avg.get(i), self.exp_avg_sq.get(i)) {
                out.push((format!("exp_avg.{name}"), m.shallow_clone()));
                out.push((format!("exp_avg_sq.{name}"), v.shallow_clone()));
            }
        }
        out
    }

    /// Restores what [`Optimizer::state_tensors`] saved; returns the names that were missing.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, prefix: &str) -> Vec<String> {
        let mut missing = Vec::new();
        tch::no_grad(|| {
            for (i, (name, _)) in self.params.iter().enumerate() {
                for (key, dst) in
                    [("exp_avg", self.exp_avg.get_mut(i)), ("exp_avg_sq", self.exp_avg_sq.get_mut(i))]
                {
                    let Some(dst) = dst else { continue };
                    match tensors.get(&format!("{prefix}{key}.{name}")) {
                        Some(src) => {
                            dst.copy_(src);
                        }
                        None => missing.push(format!("{key}.{name}")),
                    }
                }
            }
        });
        missing
    }

    pub fn kind(&self) -> OptimizerKind {
        self.kind
    }

    /// Number of parameters (elements), for reports.
    pub fn num_params(&self) -> i64 {
        self.params.iter().map(|(_, p)| p.numel() as i64).sum()
    }
}

/// Learning rate at `step` (1-based) for the Adam recipe: linear warmup to `peak`, then
/// `peak · √(warmup / step)` (Vaswani et al. 2017's schedule, parameterised by its peak).
pub fn inverse_sqrt_lr(peak: f64, warmup: i64, step: i64) -> f64 {
    let (s, w) = (step.max(1) as f64, warmup.max(1) as f64);
    peak * (s / w).min((w / s).sqrt())
}

/// Learning rate at `step` (1-based) for the plateau schedule: linear warmup to `current` (the
/// configured rate, halved on each plateau since), then `current`.
pub fn warmup_lr(current: f64, warmup: i64, step: i64) -> f64 {
    current * (step.max(1) as f64 / warmup.max(1) as f64).min(1.0)
}

/// Learning rate at `step` (1-based) for the cosine schedule: linear warmup to `peak`, then a half
/// cosine from `peak` at the end of the warmup to `peak / 10` at step `total`, and `peak / 10` after.
pub fn cosine_lr(peak: f64, warmup: i64, total: i64, step: i64) -> f64 {
    let (floor, w) = (peak / 10.0, warmup.max(0));
    if step <= w {
        return peak * step.max(1) as f64 / w.max(1) as f64;
    }
    let progress = ((step - w) as f64 / (total - w).max(1) as f64).min(1.0);
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn adam_matches_a_hand_computed_step() {
        let p = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let mut opt = Optimizer::new(
            HashMap::from([("w".to_string(), p.shallow_clone())]),
            OptimizerKind::Adam,
            (0.9, 0.999),
            1e-8,
        );
        let loss = (&p * &p).sum(Kind::Float); // grad = 2p = [2, -4]
        loss.backward();
        opt.step(0.1);
        // First Adam step moves each weight by lr·sign(g) (m̂ = g, v̂ = g²).
        let got: Vec<f32> = Vec::try_from(&p.detach()).unwrap();
        assert!((got[0] - 0.9).abs() < 1e-6 && (got[1] + 1.9).abs() < 1e-6, "{got:?}");
    }

    #[test]
    fn adam_in_place_matches_the_textbook_formula_over_many_steps() {
        tch::manual_seed(7);
        let opts = (Kind::Float, tch::Device::Cpu);
        let p = Tensor::randn([5, 3], opts).set_requires_grad(true);
        let (b1, b2, eps, lr) = (0.9, 0.98, 1e-9, 3e-3);
        let mut opt = Optimizer::new(
            HashMap::from([("w".to_string(), p.shallow_clone())]),
            OptimizerKind::Adam,
            (b1, b2),
            eps,
        );
        let (mut q, mut m, mut v) =
            (p.detach().copy(), Tensor::zeros([5, 3], opts), Tensor::zeros([5, 3], opts));
        for t in 1..=20 {
            let target = Tensor::randn([5, 3], opts);
            opt.zero_grad();
            let loss = (&p - &target).square().sum(Kind::Float);
            loss.backward();
            let g = (&q - &target) * 2.0;
            m = &m * b1 + &g * (1.0 - b1);
            v = &v * b2 + g.square() * (1.0 - b2);
            let (c1, c2) = (1.0 - f64::powi(b1, t), 1.0 - f64::powi(b2, t));
            q = &q - (&m / c1) / ((&v / c2).sqrt() + eps) * lr;
            opt.step(lr);
        }
        let diff = (p.detach() - q).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn cosine_warms_up_then_halves_at_mid_budget_and_ends_at_a_tenth() {
        let at = |step| cosine_lr(1e-3, 100, 1100, step);
        assert!((at(50) - 5e-4).abs() < 1e-12);
        assert!((at(100) - 1e-3).abs() < 1e-12);
        assert!((at(600) - 5.5e-4).abs() < 1e-12, "{}", at(600));
        assert!((at(1100) - 1e-4).abs() < 1e-12);
        assert!((at(5000) - 1e-4).abs() < 1e-12, "after the budget it stays at the floor");
        assert!((1..1100).all(|s| at(s + 1) <= at(s) || s < 100), "decreasing after the warmup");
        assert!((cosine_lr(1e-3, 0, 10, 1) - 0.975e-3).abs() < 1e-5, "no warmup: starts at the peak");
    }

    #[test]
    fn inverse_sqrt_peaks_at_warmup() {
        assert!((inverse_sqrt_lr(1e-3, 100, 50) - 5e-4).abs() < 1e-12);
        assert!((inverse_sqrt_lr(1e-3, 100, 100) - 1e-3).abs() < 1e-12);
        assert!((inverse_sqrt_lr(1e-3, 100, 400) - 5e-4).abs() < 1e-12);
    }

    #[test]
    fn plateau_warms_up_then_holds() {
        assert!((warmup_lr(1e-3, 100, 50) - 5e-4).abs() < 1e-12);
        assert!((warmup_lr(1e-3, 100, 100) - 1e-3).abs() < 1e-12);
        assert!((warmup_lr(1e-3, 100, 4000) - 1e-3).abs() < 1e-12);
        assert!((warmup_lr(1.0, 0, 1) - 1.0).abs() < 1e-12);
    }
}
