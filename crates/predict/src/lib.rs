//! # gemstones-predict
//!
//! Tell ruby from amethyst from emerald with a model exported by
//! `gemstones` (`Classifier::export`, or the `export` example): a folder
//! with `model.onnx` and `model.json`. Pure Rust: the ONNX graph runs on
//! [tract](https://github.com/sonos/tract), a photograph is prepared with
//! exactly the functions training used (`gemstones-dataset`'s decode and
//! crop to the stone, `gemstones-augment`'s resize), and no libtorch or C++
//! build step is involved.
//!
//! ```no_run
//! use gemstones_predict::Predictor;
//!
//! let model = Predictor::load("export".as_ref())?;
//! for p in model.predict_file("ruby.jpg".as_ref(), 3)? {
//!     println!("{:>20} {:5.1} %", p.class, 100.0 * p.probability);
//! }
//! # Ok::<(), gemstones_predict::Error>(())
//! ```
//!
//! In a dev build, optimise the dependencies (`[profile.dev.package."*"]
//! opt-level = 3`): unoptimised, tract is tens of times slower.
#![deny(missing_docs)]

// The crate README's code blocks compile and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gemstones_augment::{AugmentConfig, AugmentParams, BatchAugmenter, ImageView, Normalize, Output};
use gemstones_dataset::{CropBox, PreprocessConfig, Preprocessor, Problem};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::{
    Datum, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TValue, Tensor, TypedRunnableModel,
    tvec,
};
use tract_onnx::tract_core::transform::get_transform;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file of the export folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `model.json` is not an export description this crate reads.
    #[error("{path}: {reason}")]
    BadDescription {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// tract could not load or run the ONNX model.
    #[error("{path}: ONNX: {reason}")]
    Onnx {
        /// The model file.
        path: PathBuf,
        /// tract's message.
        reason: String,
    },
    /// A photograph could not be read or decoded (names the file).
    #[error("{0}")]
    Photo(Problem),
    /// The dataset crate refused (a preprocessing setting).
    #[error(transparent)]
    Dataset(#[from] gemstones_dataset::Error),
    /// The augment crate refused (an input size).
    #[error(transparent)]
    Augment(#[from] gemstones_augment::Error),
}

/// This crate's results.
pub type Result<T> = std::result::Result<T, Error>;

gemstones_dataset::io_context!(Error);

/// tract's error, naming the model file.
fn onnx_error(path: &Path) -> impl Fn(tract_onnx::prelude::TractError) -> Error + '_ {
    move |e| Error::Onnx { path: path.to_path_buf(), reason: format!("{e:#}") }
}

/// The model's input, as `model.json` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputDescription {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `"NCHW"`.
    pub layout: String,
    /// `"float32"`.
    pub dtype: String,
    /// `"RGB"`.
    pub channels: String,
    /// `[0, 1]`: pixel value / 255.
    pub range: [f32; 2],
}

impl InputDescription {
    /// The one input an export takes, the one this crate feeds: a
    /// `width x height` image as NCHW float32 RGB, values in [0, 1].
    pub fn rgb_float32(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            layout: "NCHW".into(),
            dtype: "float32".into(),
            channels: "RGB".into(),
            range: [0.0, 1.0],
        }
    }
}

/// The parts of an export's `model.json` a predictor needs: the one
/// definition of them, which `gemstones-model`'s `ExportInfo` writes with
/// what only libtorch uses beside it (the network, the TorchScript file,
/// the weights' hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportDescription {
    /// Format version ([`EXPORT_FORMAT`]).
    pub format: u32,
    /// The ONNX file, relative to `model.json`: the input and output the
    /// description gives, the batch dimension free; absent from exports
    /// written before it existed.
    #[serde(default)]
    pub onnx: Option<String>,
    /// The classes, in the order of the model's outputs.
    pub classes: Vec<String>,
    /// The model's input.
    pub input: InputDescription,
    /// The normalisation the model applies itself (recorded; not applied
    /// again).
    pub normalize_inside: Normalize,
    /// How training prepared each photograph before resizing it to the
    /// input: the crop to the stone and the side of the cached image.
    pub preprocess: PreprocessConfig,
}

/// The export format written today ([`ExportDescription::format`]).
pub const EXPORT_FORMAT: u32 = 1;

/// The export formats this crate reads.
const FORMATS: [u32; 1] = [EXPORT_FORMAT];

/// One class and its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Class name.
    pub class: String,
    /// Its id (position in the model's outputs).
    pub id: usize,
    /// Softmax probability.
    pub probability: f64,
}

impl Prediction {
    /// The `k` most probable classes of one row of probabilities, most
    /// probable first, ties in class order (`k` is clamped to
    /// 1..=classes); `classes` names the row's entries. Both predictors
    /// (this crate's and `gemstones-model`'s `Classifier`) rank with this.
    pub fn top_k(probabilities: &[f32], classes: &[String], k: usize) -> Vec<Prediction> {
        let k = k.clamp(1, probabilities.len().max(1));
        gemstones_dataset::ranking(probabilities)
            .into_iter()
            .take(k)
            .map(|id| Prediction {
                class: classes.get(id).cloned().unwrap_or_default(),
                id,
                probability: f64::from(probabilities[id]),
            })
            .collect()
    }
}

/// `Ruby 93.1 %`: the class and its probability in percent.
impl std::fmt::Display for Prediction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:.1} %", self.class, 100.0 * self.probability)
    }
}

/// A photograph as the model sees it: cropped to the stone and resized as
/// in training (`preprocess.size` square), before the resize to the input.
#[derive(Debug, Clone)]
pub struct PreparedPhoto {
    /// The prepared image.
    pub image: RgbImage,
    /// The box of the photograph it was cropped to (`None`: the whole
    /// photograph).
    pub crop: Option<CropBox>,
}

/// A loaded export, ready to predict. Cheap to share between threads
/// (`&self` everywhere; the plan is reference-counted). The network runs
/// on the calling thread.
#[derive(Debug, Clone)]
pub struct Predictor {
    description: ExportDescription,
    plan: Arc<TypedRunnableModel>,
    to_input: Arc<BatchAugmenter>,
    onnx_path: PathBuf,
}

impl Predictor {
    /// Load an export folder: `model.json` and the ONNX file it names.
    /// Errors name the missing, unreadable or unsupported file.
    pub fn load(dir: &Path) -> Result<Self> {
        let json_path = dir.join("model.json");
        let bytes =
            std::fs::read(&json_path).map_err(|source| Error::Io { path: json_path.clone(), source })?;
        let description: ExportDescription = serde_json::from_slice(&bytes)
            .map_err(|e| Error::BadDescription { path: json_path.clone(), reason: e.to_string() })?;
        let bad = |reason: String| Error::BadDescription { path: json_path.clone(), reason };
        if !FORMATS.contains(&description.format) {
            return Err(bad(format!("export format {} (this crate reads {FORMATS:?})", description.format)));
        }
        let Some(onnx) = &description.onnx else {
            return Err(bad("names no ONNX file: an export made before ONNX; export the model again".into()));
        };
        let input = &description.input;
        let fed = InputDescription::rgb_float32(input.width, input.height);
        if (&input.layout, &input.dtype, &input.channels) != (&fed.layout, &fed.dtype, &fed.channels) {
            return Err(bad(format!(
                "input {} {} {}: this crate feeds NCHW float32 RGB",
                input.layout, input.dtype, input.channels
            )));
        }
        let onnx_path = dir.join(onnx);
        let plan = load_plan(&onnx_path, input)?;
        let to_input = BatchAugmenter::new(AugmentConfig::identity(), 0, input.width, input.height)?;
        Ok(Self { description, plan, to_input: Arc::new(to_input), onnx_path })
    }

    /// What `model.json` says.
    pub fn description(&self) -> &ExportDescription {
        &self.description
    }

    /// The classes, in output order.
    pub fn classes(&self) -> &[String] {
        &self.description.classes
    }

    /// Decode a photograph's bytes (any supported format, by content) and
    /// prepare it as training did; `name` names it in errors.
    pub fn prepare_bytes(&self, bytes: &[u8], name: &Path) -> Result<PreparedPhoto> {
        let mut pp = Preprocessor::new(self.description.preprocess)?;
        let s = self.description.preprocess.size;
        let mut image = RgbImage::new(s, s);
        let crop = pp.process_bytes_into(bytes, name, &mut image)?.map_err(Error::Photo)?;
        Ok(PreparedPhoto { image, crop })
    }

    /// Read and prepare one photograph file.
    pub fn prepare_file(&self, path: &Path) -> Result<PreparedPhoto> {
        let bytes = std::fs::read(path).at(path)?;
        self.prepare_bytes(&bytes, path)
    }

    /// The network's input for prepared photographs: `N x 3 x height x
    /// width` float32, RGB, pixel / 255 (the model normalises itself), as
    /// training resized them. Feed it to another ONNX runtime to get the
    /// same logits.
    pub fn inputs(&self, photos: &[&RgbImage]) -> Result<Vec<f32>> {
        let views =
            photos.iter().map(|p| ImageView::from_rgb(p)).collect::<std::result::Result<Vec<_>, _>>()?;
        let mut x = vec![0f32; views.len() * self.to_input.image_len()];
        let params = vec![AugmentParams::identity(); views.len()];
        let unit = Normalize { mean: [0.0; 3], std: [1.0; 3] };
        self.to_input.replay(&views, &params, Output::F32Chw(&mut x, &unit))?;
        Ok(x)
    }

    /// Softmax probabilities of prepared photographs, one row each. The
    /// plan is made for one photograph (see `load_plan`), so they go
    /// through the network one by one.
    pub fn probabilities(&self, photos: &[&RgbImage]) -> Result<Vec<Vec<f32>>> {
        photos.iter().map(|photo| self.probabilities_of_one(photo)).collect()
    }

    /// Softmax probabilities of one prepared photograph.
    fn probabilities_of_one(&self, photo: &RgbImage) -> Result<Vec<f32>> {
        let x = self.inputs(&[photo])?;
        let input = &self.description.input;
        let shape = [1, 3, input.height as usize, input.width as usize];
        let fail = onnx_error(&self.onnx_path);
        let tensor = Tensor::from_shape(&shape, &x).map_err(&fail)?;
        let outputs = self.plan.run(tvec!(TValue::from(tensor))).map_err(&fail)?;
        let Some(first) = outputs.first() else {
            return Err(Error::Onnx {
                path: self.onnx_path.clone(),
                reason: "the model has no output".into(),
            });
        };
        let logits = first.to_plain_array_view::<f32>().map_err(&fail)?;
        Ok(softmax(logits.iter().copied()))
    }

    /// The `k` most probable classes of a row of probabilities (`k` is
    /// clamped to 1..=classes).
    pub fn top_k(&self, probabilities: &[f32], k: usize) -> Vec<Prediction> {
        Prediction::top_k(probabilities, self.classes(), k)
    }

    /// Top-`k` classes of one photograph file.
    pub fn predict_file(&self, path: &Path, k: usize) -> Result<Vec<Prediction>> {
        let photo = self.prepare_file(path)?;
        self.predict_prepared(&photo.image, k)
    }

    /// Top-`k` classes of a photograph's bytes (`name` names it in errors).
    pub fn predict_bytes(&self, bytes: &[u8], name: &Path, k: usize) -> Result<Vec<Prediction>> {
        let photo = self.prepare_bytes(bytes, name)?;
        self.predict_prepared(&photo.image, k)
    }

    /// Top-`k` classes of a prepared photograph.
    pub fn predict_prepared(&self, photo: &RgbImage, k: usize) -> Result<Vec<Prediction>> {
        Ok(self.top_k(&self.probabilities_of_one(photo)?, k))
    }

    /// Top-`k` classes of many files, each file's own result, in order (as
    /// `Classifier::predict_files`).
    pub fn predict_files(&self, paths: &[PathBuf], k: usize) -> Vec<(PathBuf, Result<Vec<Prediction>>)> {
        paths.iter().map(|path| (path.clone(), self.predict_file(path, k))).collect()
    }
}

/// Trade speed for memory: fix glibc's mmap threshold at its default
/// 128 KB, so every large block goes back to the system when freed.
///
/// Loading copies the weights a few times (the ONNX protobuf, tract's
/// model, its packed plan) and frees each copy, and every photo allocates
/// each layer's output afresh (Lite0: 83 blocks of 64 KB or more, 46 MB in
/// all, at most 7 MB alive at once). By default glibc raises its mmap
/// threshold to the largest block freed and serves those blocks from a
/// heap that keeps its fragments: fast, but the process holds 52-56 MB.
/// With this call each block is mapped and unmapped: peak memory 41-42 MB,
/// but every photo pays the page faults (Lite0, 224 px: 37 ms from the
/// photo's bytes to the top-5 instead of 23). Measured with
/// `scripts/bench-predict.sh`;
/// no setting of glibc's thresholds gave both. It changes a process-wide
/// setting, so it is for programs whose main job is prediction and whose
/// memory matters more than their speed (the `demo_page` example calls it,
/// `predict_onnx --low-memory` does); this crate never calls it. Returns
/// whether glibc accepted it (always `false` off glibc).
pub fn tune_malloc_for_low_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes an allocator parameter; it is
        // thread-safe and has no memory-safety preconditions.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// The ONNX model, planned for one photograph of the input's size, with
/// its convolutions channel-last.
///
/// Both choices are measured (`scripts/bench-predict.sh`, Lite0 at 224 px,
/// one thread, network alone): with the batch dimension left symbolic,
/// tract cannot use its depthwise kernels (they need a concrete shape) and
/// took 132.7 ms a photo; a batch of one took 28.6 ms, and channel-last
/// convolutions 21.1 ms. A plan for batches of 32 ran 8.4 photos a second
/// against 46 for one photo at a time, so there is no batch plan. tract's
/// own two-thread pool (tract-linalg's `multithread-mm`) took 22.0 to 20.4
/// ms, too little to be worth a thread pool per predictor.
fn load_plan(path: &Path, input: &InputDescription) -> Result<Arc<TypedRunnableModel>> {
    let fail = onnx_error(path);
    let one_photo =
        InferenceFact::dt_shape(f32::datum_type(), tvec![1, 3, input.height as usize, input.width as usize]);
    let mut model = tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|m| m.with_input_fact(0, one_photo))
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .map_err(&fail)?;
    let channel_last = get_transform("conv_nhwc").map_err(&fail)?.ok_or_else(|| Error::Onnx {
        path: path.to_path_buf(),
        reason: "this tract has no conv_nhwc transform".into(),
    })?;
    model.transform(&*channel_last).map_err(&fail)?;
    model.into_optimized().and_then(|m| m.into_runnable()).map_err(&fail)
}

/// Softmax in f64 (no overflow whatever the logits), as f32.
fn softmax(logits: impl Iterator<Item = f32> + Clone) -> Vec<f32> {
    let max = logits.clone().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.map(|l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax([1000.0f32, 1000.0, 0.0].into_iter());
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - 0.5).abs() < 1e-6 && p[2] < 1e-30);
    }

    #[test]
    fn top_k_ranks_by_probability_ties_in_class_order_and_clamps_k() {
        let classes: Vec<String> = ["Ruby", "Emerald", "Amethyst"].map(String::from).into();
        let top = Prediction::top_k(&[0.2, 0.4, 0.4], &classes, 2);
        let ids: Vec<usize> = top.iter().map(|p| p.id).collect();
        assert_eq!(ids, [1, 2]);
        assert_eq!(top[0].class, "Emerald");
        assert_eq!(Prediction::top_k(&[0.2, 0.4, 0.4], &classes, 0).len(), 1);
        assert_eq!(Prediction::top_k(&[0.2, 0.4, 0.4], &classes, 9).len(), 3);
        assert_eq!(top[0].to_string(), "Emerald 40.0 %");
    }

    #[test]
    fn an_input_this_crate_does_not_feed_is_refused_by_name() {
        let mut description = ExportDescription {
            format: EXPORT_FORMAT,
            onnx: Some("model.onnx".into()),
            classes: vec!["Ruby".into()],
            input: InputDescription::rgb_float32(224, 224),
            normalize_inside: Normalize { mean: [0.5; 3], std: [0.5; 3] },
            preprocess: PreprocessConfig::default(),
        };
        description.input.layout = "NHWC".into();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.json"), serde_json::to_vec(&description).unwrap()).unwrap();
        let err = Predictor::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::BadDescription { .. }), "{err}");
        assert!(err.to_string().contains("input NHWC float32 RGB"), "{err}");
    }

    #[test]
    fn a_missing_export_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Predictor::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("model.json"), "{err}");
        std::fs::write(dir.path().join("model.json"), "{\"format\": 7}").unwrap();
        let err = Predictor::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::BadDescription { .. }), "{err}");
    }
}
