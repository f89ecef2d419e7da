//! An ONNX graph built node by node from a network's inference pass: the
//! networks describe themselves through it (`to_onnx` beside each
//! `forward`), [`Classifier::export`](crate::Classifier::export) writes the
//! result as `model.onnx`. Opset 13, float32 throughout, a dynamic batch
//! dimension `N`; shapes are tracked here because TensorFlow's "same"
//! padding and the pooling sizes depend on them.
use prost::Message;
use tch::{Kind, Tensor};

use crate::onnx_proto::{
    ATTRIBUTE_INT, ATTRIBUTE_INTS, AttributeProto, DATA_TYPE_FLOAT, Dimension, DimensionValue, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto,
    ValueInfoProto,
};

use crate::error::Result;

/// The operator set the export uses (ONNX 1.8, 2020; every runtime since).
pub const ONNX_OPSET: i64 = 13;
/// The IR version that goes with [`ONNX_OPSET`].
const IR_VERSION: i64 = 7;

/// A feature map in the graph: its name and `channels x height x width`
/// (the batch dimension is `N`). After pooling to a vector, height and
/// width are 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Value {
    pub(crate) name: String,
    pub(crate) channels: i64,
    pub(crate) height: i64,
    pub(crate) width: i64,
}

impl Value {
    fn with(&self, name: String, channels: i64, height: i64, width: i64) -> Self {
        Self { name, channels, height, width }
    }

    fn renamed(&self, name: String) -> Self {
        Self { name, ..self.clone() }
    }
}

/// A pooling window: side, stride and padding (before and after, the
/// same on both axes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) kernel: i64,
    pub(crate) stride: i64,
    pub(crate) pad: i64,
}

/// Nodes and weights of the graph being built.
#[derive(Default)]
pub(crate) struct OnnxGraph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    input: Option<ValueInfoProto>,
    counter: usize,
    /// The bounds every Clip shares (0 and 6), made by the first.
    relu6_bounds: Option<(String, String)>,
}

impl OnnxGraph {
    /// A name not used yet, starting with `prefix`.
    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}_{}", self.counter)
    }

    /// The graph's input: `N x channels x height x width` float32.
    pub(crate) fn input(&mut self, name: &str, channels: i64, height: i64, width: i64) -> Value {
        self.input = Some(value_info(name, &[None, Some(channels), Some(height), Some(width)]));
        Value { name: name.into(), channels, height, width }
    }

    /// A float32 constant (any layout in memory; written in logical
    /// order).
    pub(crate) fn constant(&mut self, prefix: &str, t: &Tensor) -> Result<String> {
        let name = self.fresh(prefix);
        let flat = t.f_to_kind(Kind::Float)?.f_contiguous()?.f_view([-1])?;
        let values: Vec<f32> = Vec::try_from(&flat)?;
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: t.size(),
            data_type: DATA_TYPE_FLOAT,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        Ok(name)
    }

    fn node(&mut self, op: &str, inputs: &[&str], attributes: Vec<AttributeProto>) -> String {
        let output = self.fresh(&op.to_lowercase());
        self.node_into(op, inputs, attributes, output)
    }

    fn node_into(
        &mut self,
        op: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
        output: String,
    ) -> String {
        self.nodes.push(NodeProto {
            name: format!("{output}_node"),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            attribute: attributes,
        });
        output
    }

    /// `(x - mean) / std`, per channel.
    pub(crate) fn normalize(&mut self, x: &Value, mean: [f32; 3], std: [f32; 3]) -> Result<Value> {
        let mean = self.constant("mean", &Tensor::f_from_slice(&mean)?.f_view([1, 3, 1, 1])?)?;
        let std = self.constant("std", &Tensor::f_from_slice(&std)?.f_view([1, 3, 1, 1])?)?;
        let centred = self.node("Sub", &[&x.name, &mean], vec![]);
        let out = self.node("Div", &[&centred, &std], vec![]);
        Ok(x.renamed(out))
    }

    /// A convolution: `weight` is `out x in/groups x k x k`, `pads`
    /// top, left, bottom, right.
    pub(crate) fn conv(
        &mut self,
        x: &Value,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: i64,
        pads: [i64; 4],
        groups: i64,
    ) -> Result<Value> {
        let size = weight.size();
        let (channels, kernel) = (size[0], size[2]);
        let w = self.constant("weight", weight)?;
        let mut inputs = vec![x.name.clone(), w];
        if let Some(b) = bias {
            inputs.push(self.constant("bias", b)?);
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let out = self.node(
            "Conv",
            &inputs,
            vec![
                ints("kernel_shape", &[kernel, kernel]),
                ints("strides", &[stride, stride]),
                ints("pads", &pads),
                ints("dilations", &[1, 1]),
                int("group", groups),
            ],
        );
        let height = (x.height + pads[0] + pads[2] - kernel) / stride + 1;
        let width = (x.width + pads[1] + pads[3] - kernel) / stride + 1;
        Ok(x.with(out, channels, height, width))
    }

    pub(crate) fn relu(&mut self, x: &Value) -> Value {
        let out = self.node("Relu", &[&x.name], vec![]);
        x.renamed(out)
    }

    /// `min(max(x, 0), 6)` (opset 13's Clip takes its bounds as inputs).
    pub(crate) fn relu6(&mut self, x: &Value) -> Result<Value> {
        let (lo, hi) = match self.relu6_bounds.clone() {
            Some(bounds) => bounds,
            None => {
                let bounds =
                    (self.constant("zero", &Tensor::from(0f32))?, self.constant("six", &Tensor::from(6f32))?);
                self.relu6_bounds = Some(bounds.clone());
                bounds
            }
        };
        let out = self.node("Clip", &[&x.name, &lo, &hi], vec![]);
        Ok(x.renamed(out))
    }

    pub(crate) fn add(&mut self, a: &Value, b: &Value) -> Value {
        let out = self.node("Add", &[&a.name, &b.name], vec![]);
        a.renamed(out)
    }

    /// Max pooling, PyTorch's floor rounding of the output size.
    pub(crate) fn max_pool(&mut self, x: &Value, w: Window) -> Value {
        self.pool("MaxPool", x, w, false)
    }

    /// Average pooling over the window's pixels inside the input; `ceil`:
    /// a last, partial window where the input does not divide evenly (as
    /// PyTorch's `ceil_mode`).
    pub(crate) fn average_pool(&mut self, x: &Value, w: Window, ceil: bool) -> Value {
        self.pool("AveragePool", x, w, ceil)
    }

    /// The sum over each window (an average pooling times the window's
    /// area): what tch's `avg_pool2d_default` computes, as it passes a
    /// divisor of 1.
    pub(crate) fn sum_pool(&mut self, x: &Value, w: Window) -> Result<Value> {
        let mean = self.average_pool(x, w, false);
        let area = self.constant("area", &Tensor::from((w.kernel * w.kernel) as f32))?;
        let out = self.node("Mul", &[&mean.name, &area], vec![]);
        Ok(mean.renamed(out))
    }

    fn pool(&mut self, op: &str, x: &Value, w: Window, ceil: bool) -> Value {
        let side = |n: i64| {
            let span = n + 2 * w.pad - w.kernel;
            let out = if ceil { (span + w.stride - 1) / w.stride + 1 } else { span / w.stride + 1 };
            // PyTorch: the last window starts inside the input or its
            // leading padding.
            if ceil && (out - 1) * w.stride >= n + w.pad { out - 1 } else { out }
        };
        let (height, width) = (side(x.height), side(x.width));
        // ceil_mode only where it changes the size: runtimes that lack it
        // then still read every model this project makes at even sizes.
        let ceil_matters = ceil && (height, width) != (side_floor(x.height, w), side_floor(x.width, w));
        let mut attributes = vec![
            ints("kernel_shape", &[w.kernel, w.kernel]),
            ints("strides", &[w.stride, w.stride]),
            ints("pads", &[w.pad; 4]),
        ];
        if ceil_matters {
            attributes.push(int("ceil_mode", 1));
        }
        if op == "AveragePool" {
            attributes.push(int("count_include_pad", 0));
        }
        let out = self.node(op, &[&x.name], attributes);
        x.with(out, x.channels, height, width)
    }

    /// The mean of each channel, as an `N x channels` matrix.
    pub(crate) fn global_average_pool(&mut self, x: &Value) -> Value {
        let pooled = self.node("GlobalAveragePool", &[&x.name], vec![]);
        self.flatten(&x.with(pooled, x.channels, 1, 1))
    }

    /// `N x (channels * height * width)`, in channel, row, column order.
    pub(crate) fn flatten(&mut self, x: &Value) -> Value {
        let out = self.node("Flatten", &[&x.name], vec![int("axis", 1)]);
        x.with(out, x.channels * x.height * x.width, 1, 1)
    }

    /// `x * weight^T + bias` with `weight` `out x in`.
    pub(crate) fn dense(&mut self, x: &Value, weight: &Tensor, bias: &Tensor) -> Result<Value> {
        let w = self.constant("weight", weight)?;
        let b = self.constant("bias", bias)?;
        let out = self.node("Gemm", &[&x.name, &w, &b], vec![int("transB", 1)]);
        Ok(x.with(out, weight.size()[0], 1, 1))
    }

    /// The serialised model with `output` as its `N x classes` output,
    /// named `output_name`.
    pub(crate) fn finish(mut self, output: &Value, output_name: &str, doc: &str) -> Vec<u8> {
        self.node_into("Identity", &[&output.name], vec![], output_name.into());
        let graph = GraphProto {
            name: "gemstone_classifier".into(),
            node: self.nodes,
            initializer: self.initializers,
            input: self.input.into_iter().collect(),
            output: vec![value_info(output_name, &[None, Some(output.channels)])],
        };
        let model = ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: ONNX_OPSET }],
            producer_name: "gemstones".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(graph),
        };
        model.encode_to_vec()
    }
}

fn side_floor(n: i64, w: Window) -> i64 {
    (n + 2 * w.pad - w.kernel) / w.stride + 1
}

/// A float32 tensor type; `None` dimensions are the batch `N`.
fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => DimensionValue::DimValue(*v),
                None => DimensionValue::DimParam("N".into()),
            }),
        })
        .collect();
    let tensor = TensorTypeProto { elem_type: DATA_TYPE_FLOAT, shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto { name: name.into(), r#type: Some(TypeProto { tensor_type: Some(tensor) }) }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: ATTRIBUTE_INTS,
        ints: values.to_vec(),
        ..AttributeProto::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: ATTRIBUTE_INT, i: value, ..AttributeProto::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::efficientnet::EfficientNetLiteConfig;
    use crate::nets::{ModelConfig, Net, Precision, ResNetConfig, TutorialCnnConfig};
    use tch::nn::ModuleT;
    use tract_onnx::prelude::{Framework, InferenceModelExt, IntoRunnable, tvec};

    fn run_onnx(bytes: &[u8], x: &[f32], shape: &[usize]) -> Vec<f32> {
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let t = tract_onnx::prelude::Tensor::from_shape(shape, x).unwrap();
        let out = plan.run(tvec!(t.into())).unwrap();
        out[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect()
    }

    /// Each network family's graph computes what its forward pass does
    /// (fresh weights; the integration tests compare trained ones).
    #[test]
    fn every_network_graph_computes_its_forward_pass() {
        let configs = [
            ModelConfig::Tutorial(TutorialCnnConfig {
                input_size: 64,
                dense: 32,
                ..TutorialCnnConfig::default()
            }),
            ModelConfig::Resnet(ResNetConfig { input_size: 40, ..ResNetConfig::tiny() }),
            ModelConfig::EfficientnetLite(EfficientNetLiteConfig {
                input_size: 45,
                ..EfficientNetLiteConfig::lite0()
            }),
        ];
        for cfg in configs {
            let vs = tch::nn::VarStore::new(tch::Device::Cpu);
            let net = Net::new(&vs.root(), &cfg, 3, Precision::F32).unwrap();
            let side = i64::from(cfg.input_size());
            let n = (2 * 3 * side * side) as usize;
            let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
            let xt = Tensor::from_slice(&x).view([2, 3, side, side]);
            let want: Vec<f32> = Vec::try_from(net.forward_t(&xt, false).flatten(0, -1)).unwrap();
            let mut g = OnnxGraph::default();
            let input = g.input("image", 3, side, side);
            let y = net.to_onnx(&mut g, &input).unwrap();
            let got = run_onnx(&g.finish(&y, "logits", ""), &x, &[2, 3, side as usize, side as usize]);
            assert_eq!(want.len(), got.len());
            let diff = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-4, "{}: {want:?} against {got:?}", cfg.name());
        }
    }
}
