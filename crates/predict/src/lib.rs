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
#[cfg(all(doctest, feature = "onnx"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

use std::path::{Path, PathBuf};

use gemstones_augment::Normalize;
use gemstones_dataset::{CropBox, PreprocessConfig, Problem};

#[cfg(feature = "onnx")]
mod predictor;
use image::RgbImage;
#[cfg(feature = "onnx")]
pub use predictor::Predictor;
use serde::{Deserialize, Serialize};

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

#[cfg(feature = "onnx")]
gemstones_dataset::io_context!(Error);

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
    /// BLAKE3 of the ONNX file: [`Predictor::load`] refuses another file
    /// under its name (another model's, or a damaged copy). Absent from
    /// exports written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx_blake3: Option<String>,
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

/// The largest input or preprocessing side an export may describe (the
/// training flags' limit): a larger one is a damaged or hostile
/// `model.json`, refused before anything is allocated for it.
pub const MAX_SIDE: u32 = 4096;

impl ExportDescription {
    /// Every field checked against what this crate can run, with a reason
    /// naming the field; returns the ONNX file's name. `Predictor::load`
    /// refuses a description that fails it.
    pub fn check(&self) -> std::result::Result<&str, String> {
        if !FORMATS.contains(&self.format) {
            return Err(format!("export format {} (this crate reads {FORMATS:?})", self.format));
        }
        let Some(onnx) = &self.onnx else {
            return Err("names no ONNX file: an export made before ONNX; export the model again".into());
        };
        if onnx.is_empty() || Path::new(onnx).components().count() != 1 || onnx.starts_with('.') {
            return Err(format!("onnx {onnx:?}: a file name beside model.json"));
        }
        if self.classes.is_empty() {
            return Err("lists no class".into());
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(name) = self.classes.iter().find(|c| c.trim().is_empty() || !seen.insert(c.as_str())) {
            return Err(format!("classes: {name:?} is empty or listed twice"));
        }
        let input = &self.input;
        let fed = InputDescription::rgb_float32(input.width, input.height);
        if (&input.layout, &input.dtype, &input.channels) != (&fed.layout, &fed.dtype, &fed.channels) {
            return Err(format!(
                "input {} {} {}: this crate feeds NCHW float32 RGB",
                input.layout, input.dtype, input.channels
            ));
        }
        if input.range != fed.range {
            return Err(format!("input range {:?}: this crate feeds [0, 1]", input.range));
        }
        for (name, side) in [
            ("input width", input.width),
            ("input height", input.height),
            ("preprocess size", self.preprocess.size),
        ] {
            if !(1..=MAX_SIDE).contains(&side) {
                return Err(format!("{name} {side} is not in 1..={MAX_SIDE}"));
            }
        }
        let n = &self.normalize_inside;
        if n.mean.iter().chain(&n.std).any(|v| !v.is_finite()) || n.std.iter().any(|s| *s <= 0.0) {
            return Err(format!("normalize_inside {n:?}: finite means, positive deviations"));
        }
        Ok(onnx)
    }
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

/// `values` as a NumPy `.npy` file (format 1.0) of little-endian float32
/// in C order with this `shape`: what `numpy.load` reads, and what the
/// output rule recognises as an earlier array (its magic and `'<f4'`).
/// Written by hand: the header is one padded line, not worth a crate.
pub fn npy_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let trailing = if shape.len() == 1 { "," } else { "" };
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}{trailing}), }}", dims.join(", "));
    // Magic (6) + version (2) + length (2) + header + newline: a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * values.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    out
}

/// Softmax in f64 (no overflow whatever the logits), as f32.
#[cfg_attr(not(feature = "onnx"), allow(dead_code))]
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
    fn npy_headers_are_aligned_and_read_back() {
        let bytes = npy_f32(&[2, 3, 1, 1], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(bytes.starts_with(b"\x93NUMPY\x01\x00"));
        let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (2, 3, 1, 1)") && header.ends_with('\n'), "{header}");
        assert_eq!(&bytes[10 + header_len..10 + header_len + 4], &1f32.to_le_bytes());
        assert_eq!(bytes.len(), 10 + header_len + 24);
        assert!(String::from_utf8_lossy(&npy_f32(&[3], &[0.0; 3])).contains("'shape': (3,)"));
    }
}
