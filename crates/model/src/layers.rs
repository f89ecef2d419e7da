//! Layers that follow their input's precision (f32, or bf16 with f32 master
//! weights) and Keras' or He's initialisers.
use tch::Tensor;
use tch::nn::{self, Init};

/// Keras' `glorot_uniform`: U(-b, b), b = sqrt(6 / (fan_in + fan_out)).
pub(crate) fn glorot_uniform(fan_in: i64, fan_out: i64) -> Init {
    let b = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Init::Uniform { lo: -b, up: b }
}

/// He normal for ReLU nets: N(0, sqrt(2 / fan_out)), as torchvision's ResNet.
pub(crate) fn he_normal(fan_out: i64) -> Init {
    Init::Randn { mean: 0.0, stdev: (2.0 / fan_out as f64).sqrt() }
}

/// The weight in the input's floating kind.
fn like(w: &Tensor, x: &Tensor) -> Tensor {
    if x.kind() == w.kind() { w.shallow_clone() } else { w.to_kind(x.kind()) }
}

/// A 2-D convolution, square kernel, optional bias.
#[derive(Debug)]
pub(crate) struct Conv {
    ws: Tensor,
    bs: Option<Tensor>,
    stride: i64,
    padding: i64,
}

/// How a convolution's weights start.
pub(crate) enum ConvInit {
    /// Keras' default (Glorot uniform weights, zero bias).
    Keras,
    /// He normal, no bias (followed by batch norm).
    He,
}

impl Conv {
    pub(crate) fn new(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, init: ConvInit) -> Self {
        let (ws_init, bias) = match init {
            ConvInit::Keras => (glorot_uniform(cin * k * k, cout * k * k), true),
            ConvInit::He => (he_normal(cout * k * k), false),
        };
        let ws = p.var("weight", &[cout, cin, k, k], ws_init);
        let bs = bias.then(|| p.var("bias", &[cout], Init::Const(0.0)));
        Self { ws, bs, stride, padding: k / 2 }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        let b = self.bs.as_ref().map(|b| like(b, x));
        x.conv2d(&like(&self.ws, x), b.as_ref(), [self.stride; 2], [self.padding; 2], [1, 1], 1)
    }
}

/// A fully connected layer.
#[derive(Debug)]
pub(crate) struct Dense {
    ws: Tensor,
    bs: Tensor,
}

impl Dense {
    /// Keras' default initialisation (Glorot uniform, zero bias).
    pub(crate) fn keras(p: nn::Path, din: i64, dout: i64) -> Self {
        Self {
            ws: p.var("weight", &[dout, din], glorot_uniform(din, dout)),
            bs: p.var("bias", &[dout], Init::Const(0.0)),
        }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&like(&self.ws, x), Some(&like(&self.bs, x)))
    }
}

/// Batch normalisation (f32 statistics and parameters, any input kind).
#[derive(Debug)]
pub(crate) struct Norm {
    bn: nn::BatchNorm,
}

impl Norm {
    /// `zero` starts the scale at 0 (the last norm of a residual branch, so
    /// every block starts as the identity).
    pub(crate) fn new(p: nn::Path, c: i64, zero: bool) -> Self {
        let cfg =
            nn::BatchNormConfig { ws_init: Init::Const(if zero { 0.0 } else { 1.0 }), ..Default::default() };
        Self { bn: nn::batch_norm2d(p, c, cfg) }
    }

    /// Works on f32 and bf16 input alike (libtorch's CPU batch norm takes
    /// bf16 input with f32 parameters and statistics).
    pub(crate) fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        use tch::nn::ModuleT;
        self.bn.forward_t(x, train)
    }
}
