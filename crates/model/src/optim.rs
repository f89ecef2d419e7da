//! Adam, AdamW and SGD with momentum, with their state in tensors we can
//! save, so a resumed run continues exactly; and the learning-rate
//! schedules.
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};

use crate::error::{Error, Result};

/// Adam (the tutorial's), AdamW (decoupled weight decay) or SGD with
/// momentum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam; weight decay, if any, is added to the gradient (L2).
    #[default]
    Adam,
    /// AdamW; weight decay shrinks the weights directly.
    AdamW,
    /// SGD with `momentum` (Nesterov's if `nesterov`), as `torch.optim.SGD`;
    /// weight decay is added to the gradient (L2).
    Sgd,
}

/// Optimizer settings (defaults: Keras' Adam; SGD's momentum 0.9,
/// Nesterov's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OptimizerConfig {
    /// Adam, AdamW or SGD.
    pub kind: OptimizerKind,
    /// First-moment decay (Adam, AdamW).
    pub beta1: f64,
    /// Second-moment decay (Adam, AdamW).
    pub beta2: f64,
    /// Denominator epsilon (Keras' 1e-7; Adam, AdamW).
    pub eps: f64,
    /// Momentum (SGD).
    pub momentum: f64,
    /// Nesterov momentum (SGD).
    pub nesterov: bool,
    /// Weight decay.
    pub weight_decay: f64,
    /// Decay batch-norm parameters and biases (one-dimensional variables)
    /// too; fastai and timm exempt them (`false`).
    pub decay_norms_and_biases: bool,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Adam,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.0,
            decay_norms_and_biases: true,
        }
    }
}

/// Learning-rate schedule over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// The base rate throughout (the tutorial).
    #[default]
    Constant,
    /// fastai's one-cycle: cosine warm-up from `lr / div_factor` to `lr`
    /// over `pct_start` of the steps, then cosine down to
    /// `lr / (div_factor * final_div_factor)`.
    OneCycle {
        /// Fraction of steps spent warming up.
        pct_start: f64,
        /// Initial rate is `lr / div_factor`.
        div_factor: f64,
        /// Final rate is the initial rate divided by this.
        final_div_factor: f64,
    },
    /// Linear warm-up over `warmup` of the steps, then cosine to zero.
    Cosine {
        /// Fraction of steps spent warming up.
        warmup: f64,
    },
}

impl Schedule {
    /// fastai's one-cycle defaults.
    pub fn one_cycle() -> Self {
        Self::OneCycle { pct_start: 0.25, div_factor: 25.0, final_div_factor: 1e4 }
    }

    /// The rate at `step` of `total` steps for base rate `lr`.
    pub fn lr(&self, lr: f64, step: usize, total: usize) -> f64 {
        let t = if total <= 1 { 1.0 } else { step as f64 / (total - 1) as f64 };
        let cos = |a: f64, b: f64, p: f64| {
            b + (a - b) * (1.0 + (std::f64::consts::PI * p.clamp(0.0, 1.0)).cos()) / 2.0
        };
        match *self {
            Self::Constant => lr,
            Self::OneCycle { pct_start, div_factor, final_div_factor } => {
                let start = lr / div_factor;
                let end = start / final_div_factor;
                if t < pct_start {
                    cos(start, lr, t / pct_start)
                } else {
                    cos(lr, end, (t - pct_start) / (1.0 - pct_start).max(1e-12))
                }
            }
            Self::Cosine { warmup } => {
                if t < warmup {
                    lr * t / warmup
                } else {
                    cos(lr, 0.0, (t - warmup) / (1.0 - warmup).max(1e-12))
                }
            }
        }
    }
}

/// Adam, AdamW or SGD over a var store's trainable variables, each with its
/// own learning-rate multiplier (discriminative learning rates) and whether
/// it is decayed.
pub(crate) struct Optimizer {
    cfg: OptimizerConfig,
    vars: Vec<(String, Tensor)>,
    lr_scale: Vec<f64>,
    decayed: Vec<bool>,
    /// Adam's first moment; SGD's momentum buffer.
    m: Vec<Tensor>,
    /// Adam's second moment (zeros under SGD).
    v: Vec<Tensor>,
    step: i64,
}

impl Optimizer {
    #[cfg(test)]
    pub(crate) fn new(vs: &nn::VarStore, cfg: OptimizerConfig) -> Self {
        Self::with_lr_scales(vs, cfg, |_| 1.0)
    }

    /// Variable `name` learns at `lr * lr_scale(name)`.
    pub(crate) fn with_lr_scales(
        vs: &nn::VarStore,
        cfg: OptimizerConfig,
        lr_scale: impl Fn(&str) -> f64,
    ) -> Self {
        let mut vars: Vec<(String, Tensor)> =
            vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = |vars: &[(String, Tensor)]| vars.iter().map(|(_, t)| t.zeros_like()).collect();
        let lr_scale = vars.iter().map(|(n, _)| lr_scale(n)).collect();
        let decayed = vars.iter().map(|(_, t)| cfg.decay_norms_and_biases || t.dim() > 1).collect();
        Self { cfg, m: zeros(&vars), v: zeros(&vars), lr_scale, decayed, vars, step: 0 }
    }

    /// Forget the moments and the step count (a new phase of training,
    /// e.g. when a frozen body is unfrozen).
    pub(crate) fn reset(&mut self) {
        tch::no_grad(|| {
            for t in self.m.iter_mut().chain(self.v.iter_mut()) {
                let _ = t.zero_();
            }
        });
        self.step = 0;
    }

    pub(crate) fn zero_grad(&mut self) {
        for (_, t) in &mut self.vars {
            t.zero_grad();
        }
    }

    /// Scale gradients so their global norm is at most `max`; returns the
    /// norm before clipping.
    pub(crate) fn clip_grad_norm(&self, max: f64) -> f64 {
        tch::no_grad(|| {
            let grads: Vec<Tensor> =
                self.vars.iter().map(|(_, t)| t.grad()).filter(Tensor::defined).collect();
            let total: f64 = grads
                .iter()
                .map(|g| g.to_kind(Kind::Double).square().sum(Kind::Double).double_value(&[]))
                .sum();
            let norm = total.sqrt();
            if norm > max && norm.is_finite() {
                let scale = max / (norm + 1e-6);
                for mut g in grads {
                    let _ = g.g_mul_scalar_(scale);
                }
            }
            norm
        })
    }

    pub(crate) fn step(&mut self, lr: f64) {
        if self.cfg.kind == OptimizerKind::Sgd {
            return self.sgd_step(lr);
        }
        let c = self.cfg;
        self.step += 1;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2 = 1.0 - c.beta2.powi(self.step as i32);
        tch::no_grad(|| {
            let per_var = self.lr_scale.iter().zip(&self.decayed);
            for ((((_, var), m), v), (&scale, &decayed)) in
                self.vars.iter_mut().zip(&mut self.m).zip(&mut self.v).zip(per_var)
            {
                let mut g = var.grad();
                if !g.defined() {
                    continue;
                }
                let lr = lr * scale;
                let weight_decay = if decayed { c.weight_decay } else { 0.0 };
                if c.kind == OptimizerKind::Adam && weight_decay > 0.0 {
                    g = &g + &*var * weight_decay;
                }
                // In place where libtorch allows, as torch.optim.Adam: two
                // temporaries per tensor instead of eight.
                let _ = m.lerp_(&g, 1.0 - c.beta1);
                let _ = v.g_mul_scalar_(c.beta2);
                let _ = v.addcmul_(&g, &(&g * (1.0 - c.beta2)));
                if c.kind == OptimizerKind::AdamW && weight_decay > 0.0 {
                    let _ = var.g_mul_scalar_(1.0 - lr * weight_decay);
                }
                let mut denom = v.sqrt();
                let _ = denom.g_div_scalar_(bc2.sqrt());
                let _ = denom.g_add_scalar_(c.eps);
                let _ = var.addcdiv_(&(&*m * (-lr / bc1)), &denom);
            }
        });
    }

    /// `torch.optim.SGD` (dampening 0): `buf = momentum * buf + g`, then a
    /// step along `buf`, or along `g + momentum * buf` with Nesterov.
    fn sgd_step(&mut self, lr: f64) {
        let c = self.cfg;
        self.step += 1;
        tch::no_grad(|| {
            let per_var = self.lr_scale.iter().zip(&self.decayed);
            for (((_, var), buf), (&scale, &decayed)) in self.vars.iter_mut().zip(&mut self.m).zip(per_var) {
                let mut g = var.grad();
                if !g.defined() {
                    continue;
                }
                if decayed && c.weight_decay > 0.0 {
                    g = &g + &*var * c.weight_decay;
                }
                let _ = buf.g_mul_scalar_(c.momentum);
                let _ = buf.g_add_(&g);
                let direction = if c.nesterov { &g + &*buf * c.momentum } else { buf.shallow_clone() };
                let _ = var.g_add_(&(direction * (-lr * scale)));
            }
        });
    }

    /// Save the moments and the step count.
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = Vec::with_capacity(2 * self.vars.len() + 1);
        for ((name, _), (m, v)) in self.vars.iter().zip(self.m.iter().zip(&self.v)) {
            named.push((format!("m.{name}"), m.contiguous()));
            named.push((format!("v.{name}"), v.contiguous()));
        }
        named.push(("step".into(), Tensor::from_slice(&[self.step])));
        crate::modeldir::write_safetensors_atomic(&named, path)
    }

    /// Load state written by [`Optimizer::save`] for the same variables.
    pub(crate) fn load(&mut self, path: &Path) -> Result<()> {
        let bad = |reason: String| Error::BadModel { path: path.to_path_buf(), reason };
        let tensors: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(path)?.into_iter().collect();
        let step = tensors.get("step").ok_or_else(|| bad("no step counter".into()))?;
        let step = i64::try_from(step).map_err(|e| bad(e.to_string()))?;
        tch::no_grad(|| -> Result<()> {
            for ((name, _), (m, v)) in self.vars.iter().zip(self.m.iter_mut().zip(self.v.iter_mut())) {
                for (prefix, dst) in [("m", &mut *m), ("v", &mut *v)] {
                    let src = tensors
                        .get(&format!("{prefix}.{name}"))
                        .ok_or_else(|| bad(format!("no {prefix}.{name}")))?;
                    if src.size() != dst.size() {
                        return Err(bad(format!(
                            "{prefix}.{name} has shape {:?}, expected {:?}",
                            src.size(),
                            dst.size()
                        )));
                    }
                    dst.f_copy_(src)?;
                }
            }
            Ok(())
        })?;
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_start_peak_and_end_where_they_should() {
        let oc = Schedule::one_cycle();
        let (lr, n) = (1e-3, 1001);
        assert!((oc.lr(lr, 0, n) - lr / 25.0).abs() < 1e-12);
        assert!((oc.lr(lr, 250, n) - lr).abs() < 1e-9);
        assert!((oc.lr(lr, 1000, n) - lr / 25.0 / 1e4).abs() < 1e-12);
        let cos = Schedule::Cosine { warmup: 0.1 };
        assert_eq!(cos.lr(lr, 0, n), 0.0);
        assert!((cos.lr(lr, 100, n) - lr).abs() < 1e-9);
        assert!(cos.lr(lr, 1000, n).abs() < 1e-12);
        assert_eq!(Schedule::Constant.lr(lr, 500, n), lr);
    }

    #[test]
    fn adam_minimises_a_quadratic_and_its_state_round_trips() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let x = vs.root().var("x", &[3], nn::Init::Const(5.0));
        let mut opt = Optimizer::new(&vs, OptimizerConfig::default());
        for _ in 0..300 {
            opt.zero_grad();
            let loss = (&x - Tensor::from_slice(&[1.0f32, -2.0, 3.0])).square().sum(Kind::Float);
            loss.backward();
            opt.step(0.1);
        }
        let got: Vec<f32> = Vec::try_from(&x).unwrap();
        assert!(got.iter().zip([1.0, -2.0, 3.0]).all(|(a, b)| (a - b).abs() < 0.05), "{got:?}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("opt.safetensors");
        opt.save(&p).unwrap();
        let mut other = Optimizer::new(&vs, OptimizerConfig::default());
        other.load(&p).unwrap();
        assert_eq!(other.step, 300);
        assert!(other.m[0].allclose(&opt.m[0], 0.0, 0.0, false));
    }

    /// The same updates as libtorch's own `torch::optim::Adam`, `AdamW` and
    /// `SGD` (which `tch::nn::Adam`/`AdamW`/`Sgd` drive), step after step.
    #[test]
    fn matches_libtorchs_adam_adamw_and_sgd() {
        use tch::nn::OptimizerConfig as _;
        let runs = [
            (OptimizerKind::Adam, 0.0, true),
            (OptimizerKind::AdamW, 0.05, true),
            (OptimizerKind::Sgd, 0.0, false),
            (OptimizerKind::Sgd, 0.01, true),
        ];
        for (kind, wd, nesterov) in runs {
            let target = Tensor::from_slice(&[1.0f32, -2.0, 3.0, 0.5]);
            let ours_vs = nn::VarStore::new(tch::Device::Cpu);
            let ours_x = ours_vs.root().var("x", &[4], nn::Init::Const(0.7));
            let cfg =
                OptimizerConfig { kind, weight_decay: wd, eps: 1e-8, nesterov, ..OptimizerConfig::default() };
            let mut ours = Optimizer::new(&ours_vs, cfg);
            let ref_vs = nn::VarStore::new(tch::Device::Cpu);
            let ref_x = ref_vs.root().var("x", &[4], nn::Init::Const(0.7));
            let mut reference = match kind {
                OptimizerKind::Adam => nn::Adam::default().build(&ref_vs, 0.01).unwrap(),
                OptimizerKind::AdamW => nn::AdamW { wd, ..Default::default() }.build(&ref_vs, 0.01).unwrap(),
                OptimizerKind::Sgd => {
                    nn::Sgd { momentum: 0.9, dampening: 0.0, wd, nesterov }.build(&ref_vs, 0.01).unwrap()
                }
            };
            for _ in 0..50 {
                ours.zero_grad();
                (&ours_x - &target).pow_tensor_scalar(3).abs().sum(Kind::Float).backward();
                ours.step(0.01);
                reference.zero_grad();
                (&ref_x - &target).pow_tensor_scalar(3).abs().sum(Kind::Float).backward();
                reference.step();
            }
            assert!(ours_x.allclose(&ref_x, 1e-5, 1e-6, false), "{kind:?}: {ours_x} vs {ref_x}");
            assert!(!ours_x.allclose(
                &Tensor::full([4], 0.7, (Kind::Float, tch::Device::Cpu)),
                1e-3,
                1e-3,
                false
            ));
        }
    }
}
