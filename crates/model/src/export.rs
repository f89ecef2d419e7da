//! Export a trained model for use without this project: an ONNX model
//! (for onnxruntime, tract, the `gemstones-predict` crate, any ONNX
//! runtime: no libtorch at the receiving end), a TorchScript module (traced
//! through libtorch, loadable by `torch.jit.load`, C++ `torch::jit::load`
//! and tch's `CModule`), and a JSON file beside them with the classes and
//! how photographs become the models' input.
use std::path::{Path, PathBuf};

use gemstones_dataset::fsutil;
use gemstones_dataset::outputs::{FolderKind, Outputs};
pub use gemstones_predict::{ExportDescription, InputDescription};
use serde::{Deserialize, Serialize};
use tch::{CModule, Kind, Tensor};

use crate::classifier::Classifier;
use crate::error::{Error, Result};
use crate::modeldir::{write_atomic, write_json};
use crate::nets::{ModelConfig, Net, Precision};
use crate::onnx::OnnxGraph;

/// Name of the ONNX model's input.
pub const ONNX_INPUT: &str = "image";
/// Name of the ONNX model's output.
pub const ONNX_OUTPUT: &str = "logits";

/// Current [`ExportDescription::format`], the one `gemstones-predict`
/// reads.
pub use gemstones_predict::EXPORT_FORMAT;

/// File name of the TorchScript module in an export folder.
pub const EXPORT_MODULE: &str = "model.pt";
/// File name of the ONNX model in an export folder.
pub const EXPORT_ONNX: &str = "model.onnx";
/// File name of the [`ExportInfo`] in an export folder.
pub const EXPORT_INFO: &str = "model.json";

/// `model.json` of an export: everything a program needs beside the
/// module. The part a predictor without libtorch needs is
/// `gemstones-predict`'s [`ExportDescription`], written flat in the same
/// object; the rest is what only this crate uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportInfo {
    /// The format, the ONNX file (opset [`ONNX_OPSET`](crate::ONNX_OPSET),
    /// float32, inputs [`ONNX_INPUT`], outputs [`ONNX_OUTPUT`]), the
    /// classes in the order of the outputs, the input (`N x 3 x height x
    /// width`, float32, RGB, values in [0, 1]: the pixel value / 255), the
    /// normalisation the models apply themselves (recorded, not to be
    /// applied again) and how the training photographs were prepared
    /// before being resized to the input: cropped to the stone (this
    /// project's Canny box) and squashed to `size x size`. A photograph
    /// already framed on its stone can skip the crop.
    #[serde(flatten)]
    pub description: ExportDescription,
    /// The TorchScript file, relative to this file.
    pub module: String,
    /// The module's output: `"logits"` (`N x classes`; softmax gives
    /// probabilities).
    pub output: String,
    /// The network.
    pub model: ModelConfig,
    /// BLAKE3 of the weights (every variable by name, as little-endian
    /// float32): tells two exports of the same network apart. Empty in
    /// exports written before it existed.
    #[serde(default)]
    pub weights_blake3: String,
    /// The precision the module computes in (inputs and outputs are
    /// float32 either way).
    pub precision: Precision,
}

/// The files [`Classifier::export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFiles {
    /// The TorchScript module.
    pub module: PathBuf,
    /// The ONNX model.
    pub onnx: PathBuf,
    /// Its [`ExportInfo`].
    pub info: PathBuf,
    /// The folder already held this very export (same weights and
    /// description): nothing was written.
    pub unchanged: bool,
}

impl Classifier {
    /// Write the model as ONNX (`dir/model.onnx`: batch norms folded into
    /// the convolutions, normalisation inside, float32 whatever precision
    /// it trained in, any batch size), as TorchScript (`dir/model.pt`) and
    /// its [`ExportInfo`] (`dir/model.json`), each atomically. Both models
    /// give the logits this classifier's probabilities are the softmax of
    /// (without test-time augmentation).
    ///
    /// The folder follows the output rule
    /// ([`gemstones_dataset::outputs`]): it must be new, empty or an
    /// earlier export, and is marked as an export before anything else is
    /// written. A folder that already holds this export is left as it is
    /// ([`ExportFiles::unchanged`]); one that holds another model's
    /// complete export is refused ([`Error::OutputInUse`]) before anything
    /// is written; an export interrupted before its `model.json` (written
    /// last) is finished.
    pub fn export(&self, dir: &Path) -> Result<ExportFiles> {
        if self.members() > 1 {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "an ensemble of {} networks exports one network at a time: export each member's model directory",
                    self.members()
                ),
            });
        }
        Outputs::default().check_folder(dir, FolderKind::EXPORT)?;
        let onnx = self.onnx_model()?;
        let info = self.export_info(&onnx)?;
        let mut files = ExportFiles {
            module: dir.join(EXPORT_MODULE),
            onnx: dir.join(EXPORT_ONNX),
            info: dir.join(EXPORT_INFO),
            unchanged: false,
        };
        if export_present(dir, &files, &info)? {
            files.unchanged = true;
            return Ok(files);
        }
        Outputs::default().claim_folder(dir, FolderKind::EXPORT)?;
        let module = self.traced_module()?;
        fsutil::write_atomic_by(&files.module, |tmp| module.save(tmp).map_err(std::io::Error::other))?;
        write_atomic(&files.onnx, &onnx)?;
        // Last: an export whose model.json exists is complete.
        write_json(&files.info, &info)?;
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

    /// The inference graph as a serialised ONNX model: the network rebuilt
    /// in float32 from this classifier's weights, batch norms folded as it
    /// is written, `(x - mean) / std` first.
    pub(crate) fn onnx_model(&self) -> Result<Vec<u8>> {
        let spec = self.spec();
        let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let net = {
            // Its initial weights are replaced at once; drawn under the lock
            // so a training in this process keeps its random stream.
            let _rng = crate::device::torch_rng_lock();
            Net::new(&vs.root(), &spec.model, self.classes().len(), Precision::F32)?
        };
        vs.copy(self.var_store())?;
        let side = i64::from(spec.model.input_size());
        let mut g = OnnxGraph::default();
        let image = g.input(ONNX_INPUT, 3, side, side);
        let x = g.normalize(&image, spec.normalize.mean, spec.normalize.std)?;
        let logits = net.to_onnx(&mut g, &x)?;
        let doc = format!(
            "{} gem classifier, {} classes; input {ONNX_INPUT}: N x 3 x {side} x {side} float32 RGB in [0, 1]; \
             output {ONNX_OUTPUT}: N x {} logits (see model.json)",
            spec.model.name(),
            spec.classes.len(),
            spec.classes.len()
        );
        Ok(g.finish(&logits, ONNX_OUTPUT, &doc))
    }

    /// The description of an export whose ONNX file is `onnx`.
    fn export_info(&self, onnx: &[u8]) -> Result<ExportInfo> {
        let spec = self.spec();
        let side = spec.model.input_size();
        Ok(ExportInfo {
            description: ExportDescription {
                format: EXPORT_FORMAT,
                onnx: Some(EXPORT_ONNX.into()),
                onnx_blake3: Some(blake3::hash(onnx).to_hex().to_string()),
                classes: spec.classes.clone(),
                input: InputDescription::rgb_float32(side, side),
                normalize_inside: spec.normalize,
                preprocess: spec.preprocess,
            },
            module: EXPORT_MODULE.into(),
            output: "logits".into(),
            model: spec.model.clone(),
            precision: spec.precision,
            weights_blake3: self.weights_blake3()?,
        })
    }

    /// BLAKE3 of every variable, in name order, as little-endian float32.
    fn weights_blake3(&self) -> Result<String> {
        let mut hasher = blake3::Hasher::new();
        let mut vars = self.var_store().variables().into_iter().collect::<Vec<_>>();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in vars {
            let values: Vec<f32> = Vec::try_from(t.f_to_kind(Kind::Float)?.f_flatten(0, -1)?)?;
            hasher.update(name.as_bytes());
            for v in values {
                hasher.update(&v.to_le_bytes());
            }
        }
        Ok(hasher.finalize().to_hex().to_string())
    }
}

/// Whether `dir` (an export folder by the output rule) already holds
/// exactly this export: `Ok(false)` when it holds no complete export (none
/// yet, or one interrupted before its `model.json`, which is written last),
/// an error when it holds another model's or an older one.
fn export_present(dir: &Path, files: &ExportFiles, info: &ExportInfo) -> Result<bool> {
    if !files.info.exists() {
        return Ok(false);
    }
    let same = files.module.exists()
        && files.onnx.exists()
        && std::fs::read(&files.info)
            .ok()
            .and_then(|b| serde_json::from_slice::<ExportInfo>(&b).ok())
            .is_some_and(|old| old == *info);
    if same {
        return Ok(true);
    }
    Err(Error::OutputInUse {
        path: dir.to_path_buf(),
        reason: "holds another model's export (model.onnx, model.pt, model.json), or an older one: export \
                 into another folder or remove it"
            .into(),
    })
}
