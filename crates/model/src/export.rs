//! Export a trained model for use without this project: a TorchScript
//! module (traced through libtorch, loadable by `torch.jit.load`, C++
//! `torch::jit::load` and tch's `CModule`) and a JSON file beside it with
//! the classes and how photographs become the module's input.
use std::path::{Path, PathBuf};

use gemstones_augment::Normalize;
use gemstones_dataset::{PreprocessConfig, fsutil};
use serde::{Deserialize, Serialize};
use tch::{CModule, Kind, Tensor};

use crate::classifier::Classifier;
use crate::error::Result;
use crate::modeldir::write_json;
use crate::nets::{ModelConfig, Precision};

/// Current [`ExportInfo::format`].
pub const EXPORT_FORMAT: u32 = 1;

/// File name of the TorchScript module in an export folder.
pub const EXPORT_MODULE: &str = "model.pt";
/// File name of the [`ExportInfo`] in an export folder.
pub const EXPORT_INFO: &str = "model.json";

/// What the exported module takes: one tensor `N x 3 x height x width`,
/// float32, RGB, values in [0, 1] (the pixel value / 255).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportInput {
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// Memory order of the dimensions: `"NCHW"`.
    pub layout: String,
    /// Element type: `"float32"`.
    pub dtype: String,
    /// Channel order: `"RGB"`.
    pub channels: String,
    /// The range of the values: `[0, 1]`.
    pub range: [f32; 2],
}

/// `model.json` of an export: everything a program needs beside the
/// module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportInfo {
    /// Format version of this file.
    pub format: u32,
    /// The TorchScript file, relative to this file.
    pub module: String,
    /// The classes, in the order of the module's outputs.
    pub classes: Vec<String>,
    /// The module's input.
    pub input: ExportInput,
    /// The module's output: `"logits"` (`N x classes`; softmax gives
    /// probabilities).
    pub output: String,
    /// The normalisation the module applies itself, `(x - mean) / std`
    /// (recorded, not to be applied again).
    pub normalize_inside: Normalize,
    /// How the training photographs were prepared before being resized to
    /// the input: cropped to the stone (this project's Canny box) and
    /// squashed to `size x size`. A photograph already framed on its stone
    /// can skip the crop.
    pub preprocess: PreprocessConfig,
    /// The network.
    pub model: ModelConfig,
    /// The precision the module computes in (inputs and outputs are
    /// float32 either way).
    pub precision: Precision,
}

/// The files [`Classifier::export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFiles {
    /// The TorchScript module.
    pub module: PathBuf,
    /// Its [`ExportInfo`].
    pub info: PathBuf,
}

impl Classifier {
    /// Write the model as TorchScript (`dir/model.pt`, batch norms folded,
    /// normalisation inside) and its [`ExportInfo`] (`dir/model.json`),
    /// both atomically. The module gives the logits this classifier's
    /// probabilities are the softmax of (without test-time augmentation).
    pub fn export(&self, dir: &Path) -> Result<ExportFiles> {
        let module = self.traced_module()?;
        let files = ExportFiles { module: dir.join(EXPORT_MODULE), info: dir.join(EXPORT_INFO) };
        fsutil::write_atomic_by(&files.module, |tmp| module.save(tmp).map_err(std::io::Error::other))?;
        write_json(&files.info, &self.export_info())?;
        Ok(files)
    }

    /// The network traced on one input at its size; the trace is
    /// batch-size agnostic (no operation reads the batch dimension).
    fn traced_module(&self) -> Result<CModule> {
        let side = i64::from(self.spec().model.input_size());
        // Any values do (only shapes are traced); not random ones, which would
        // draw from libtorch's one generator under a training in this process.
        let example = Tensor::f_full([2, 3, side, side], 0.5, (Kind::Float, tch::Device::Cpu))?;
        let normalize = self.spec().normalize;
        let mean = Tensor::f_from_slice(&normalize.mean)?.f_view([1, 3, 1, 1])?;
        let std = Tensor::f_from_slice(&normalize.std)?.f_view([1, 3, 1, 1])?;
        let net = self.net();
        // Unfused: the module records portable operations only.
        crate::fused::unfused(|| {
            tch::no_grad(|| {
                Ok(CModule::create_by_tracing("GemstoneClassifier", "forward", &[example], &mut |inputs| {
                    let x = (&inputs[0] - &mean) / &std;
                    vec![tch::nn::ModuleT::forward_t(net, &x, false)]
                })?)
            })
        })
    }

    fn export_info(&self) -> ExportInfo {
        let spec = self.spec();
        let side = spec.model.input_size();
        ExportInfo {
            format: EXPORT_FORMAT,
            module: EXPORT_MODULE.into(),
            classes: spec.classes.clone(),
            input: ExportInput {
                width: side,
                height: side,
                layout: "NCHW".into(),
                dtype: "float32".into(),
                channels: "RGB".into(),
                range: [0.0, 1.0],
            },
            output: "logits".into(),
            normalize_inside: spec.normalize,
            preprocess: spec.preprocess,
            model: spec.model.clone(),
            precision: spec.precision,
        }
    }
}
