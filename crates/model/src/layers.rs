//! Layers that follow their input's precision (f32, or bf16 with f32 master
//! weights) and Keras' or He's initialisers.
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use crate::error::Result;
use crate::onnx::{OnnxGraph, Value};

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

/// ReLU6 in place on a fresh layer output.
pub(crate) fn relu6(mut x: Tensor) -> Tensor {
    let _ = x.relu6_();
    x
}

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Padding {
    /// `k / 2` zeros on every side (PyTorch's usual choice).
    Half,
    /// TensorFlow's "same": the output is `ceil(input / stride)` and the
    /// padding that needs goes after the input when it is odd (one more
    /// column on the right than on the left at stride 2), as the
    /// EfficientNet-Lite weights were trained with.
    TfSame,
}

/// A 2-D convolution, square kernel, optional bias, optional groups.
#[derive(Debug)]
pub(crate) struct Conv {
    ws: Tensor,
    bs: Option<Tensor>,
    stride: i64,
    k: i64,
    padding: Padding,
    groups: i64,
    /// Holds the batch norm that followed it (inference only).
    folded: bool,
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
        Self { ws, bs, stride, k, padding: Padding::Half, groups: 1, folded: false }
    }

    /// A convolution with TensorFlow's "same" padding, no bias, He-normal
    /// weights; `groups == cin == cout` makes it depthwise.
    pub(crate) fn tf_same(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, groups: i64) -> Self {
        let ws = p.var("weight", &[cout, cin / groups, k, k], he_normal(cout / groups * k * k));
        Self { ws, bs: None, stride, k, padding: Padding::TfSame, groups, folded: false }
    }

    /// Fold the batch norm that follows this convolution into its weights
    /// and bias, for inference: one pass over the activations fewer. The
    /// folded weights are new tensors (the var store keeps the trained
    /// ones), stored channels-last in `kind`, the compute precision.
    pub(crate) fn fold(&mut self, norm: &mut Norm, kind: tch::Kind) {
        tch::no_grad(|| {
            let (scale, shift) = norm.inference_affine();
            let ws = &self.ws * scale.view([-1, 1, 1, 1]);
            let bs = match &self.bs {
                Some(b) => b * &scale + shift,
                None => shift,
            };
            self.ws = channels_last(&ws).to_kind(kind);
            self.bs = Some(bs.to_kind(kind));
        });
        norm.folded = true;
        self.folded = true;
    }

    /// This convolution, with the batch norm after it (if any) folded in,
    /// as an ONNX node on `x`, in float32.
    pub(crate) fn to_onnx(&self, g: &mut OnnxGraph, x: &Value, norm: Option<&Norm>) -> Result<Value> {
        let (weight, bias) = tch::no_grad(|| -> Result<(Tensor, Option<Tensor>)> {
            let w = self.ws.f_to_kind(Kind::Float)?;
            let b = self.bs.as_ref().map(|b| b.f_to_kind(Kind::Float)).transpose()?;
            Ok(match norm {
                Some(n) if !n.folded => {
                    let (scale, shift) = n.inference_affine();
                    let w = w.f_mul(&scale.f_view([-1, 1, 1, 1])?)?;
                    let b = match b {
                        Some(b) => b.f_mul(&scale)?.f_add(&shift)?,
                        None => shift,
                    };
                    (w, Some(b))
                }
                _ => (w, b),
            })
        })?;
        let pads = match self.padding {
            Padding::Half => [self.k / 2; 4],
            Padding::TfSame => {
                let (top, bottom) = tf_same_padding(x.height, self.k, self.stride);
                let (left, right) = tf_same_padding(x.width, self.k, self.stride);
                [top, left, bottom, right]
            }
        };
        g.conv(x, &weight, bias.as_ref(), self.stride, pads, self.groups)
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        let b = self.bs.as_ref().map(|b| like(b, x));
        let w = like(&self.ws, x);
        self.padded(x, |x, pad| x.conv2d(&w, b.as_ref(), [self.stride; 2], [pad; 2], [1, 1], self.groups))
    }

    /// ReLU6 of the output. Folded, on the CPU, with no gradient wanted
    /// (inference): one fused oneDNN kernel, which nearly doubles
    /// EfficientNet-Lite's bf16 batch inference (see `fused.cpp`);
    /// otherwise the convolution, then ReLU6 in place.
    pub(crate) fn forward_relu6(&self, x: &Tensor) -> Tensor {
        if self.folded
            && x.device() == tch::Device::Cpu
            && !x.requires_grad()
            && crate::fused::enabled(x.kind())
        {
            let b = self.bs.as_ref().map(|b| like(b, x));
            let w = like(&self.ws, x);
            match self.padded(x, |x, pad| {
                crate::fused::conv_relu6(x, &w, b.as_ref(), pad, self.stride, self.groups)
            }) {
                Ok(y) => return y,
                Err(e) => tracing::debug!("fused convolution unavailable ({e}); running it unfused"),
            }
        }
        relu6(self.forward(x))
    }

    /// `conv(input, padding)` with this convolution's padding: symmetric
    /// padding passed on; TensorFlow's asymmetric "same" padding applied to
    /// a copy of the input first.
    fn padded<T>(&self, x: &Tensor, conv: impl Fn(&Tensor, i64) -> T) -> T {
        match self.padding {
            Padding::Half => conv(x, self.k / 2),
            Padding::TfSame => {
                let size = x.size();
                let (height, width) = (size[2], size[3]);
                let (top, bottom) = tf_same_padding(height, self.k, self.stride);
                let (left, right) = tf_same_padding(width, self.k, self.stride);
                if top == bottom && left == right && top == left {
                    conv(x, top)
                } else {
                    conv(&x.constant_pad_nd([left, right, top, bottom]), 0)
                }
            }
        }
    }
}

/// TensorFlow's "same" padding of one dimension: (before, after).
pub(crate) fn tf_same_padding(input: i64, k: i64, stride: i64) -> (i64, i64) {
    let out = (input + stride - 1) / stride;
    let total = ((out - 1) * stride + k - input).max(0);
    (total / 2, total - total / 2)
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

    /// This layer as an ONNX node on `x`.
    pub(crate) fn to_onnx(&self, g: &mut OnnxGraph, x: &Value) -> Result<Value> {
        g.dense(x, &self.ws, &self.bs)
    }
}

/// Batch normalisation (f32 statistics and parameters, any input kind).
#[derive(Debug)]
pub(crate) struct Norm {
    bn: nn::BatchNorm,
    eps: f64,
    /// Folded into the convolution before it (inference only): the
    /// identity from then on.
    folded: bool,
}

impl Norm {
    /// `zero` starts the scale at 0 (the last norm of a residual branch, so
    /// every block starts as the identity).
    pub(crate) fn new(p: nn::Path, c: i64, zero: bool) -> Self {
        let cfg =
            nn::BatchNormConfig { ws_init: Init::Const(if zero { 0.0 } else { 1.0 }), ..Default::default() };
        let eps = cfg.eps;
        Self { bn: nn::batch_norm2d(p, c, cfg), eps, folded: false }
    }

    /// With TensorFlow's epsilon and momentum (PyTorch's meaning of
    /// momentum: the weight of the new batch's statistics).
    pub(crate) fn with_eps_momentum(p: nn::Path, c: i64, eps: f64, momentum: f64) -> Self {
        let cfg = nn::BatchNormConfig { eps, momentum, ..Default::default() };
        Self { bn: nn::batch_norm2d(p, c, cfg), eps, folded: false }
    }

    /// Works on f32 and bf16 input alike (libtorch's CPU batch norm takes
    /// bf16 input with f32 parameters and statistics).
    pub(crate) fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        use tch::nn::ModuleT;
        if self.folded {
            return x.shallow_clone();
        }
        self.bn.forward_t(x, train)
    }

    /// Folded into the convolution before it.
    pub(crate) fn is_folded(&self) -> bool {
        self.folded
    }

    /// Per-channel `(scale, shift)` with which this norm, at inference,
    /// maps `x` to `x * scale + shift`.
    fn inference_affine(&self) -> (Tensor, Tensor) {
        let scale = (&self.bn.running_var + self.eps).rsqrt();
        let scale = match &self.bn.ws {
            Some(w) => scale * w,
            None => scale,
        };
        let shift = -(&self.bn.running_mean * &scale);
        let shift = match &self.bn.bs {
            Some(b) => shift + b,
            None => shift,
        };
        (scale.detach(), shift.detach())
    }
}

/// Store every 4-D parameter in channels-last layout (NHWC in memory), the
/// layout oneDNN's CPU convolutions are fastest in; the tensors keep their
/// NCHW shape.
pub fn to_channels_last(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 {
                let cl = channels_last(&v);
                v.set_data(&cl);
            }
        }
    });
}

/// The same tensor in channels-last memory layout.
pub fn channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}
