//! [`Predictor`]: an export run on tract (the crate's `onnx` feature, on
//! by default).
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gemstones_augment::{AugmentConfig, AugmentParams, BatchAugmenter, ImageView, Normalize, Output};
use gemstones_dataset::Preprocessor;
use image::RgbImage;
use tract_onnx::prelude::{
    Datum, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TValue, Tensor, TypedRunnableModel,
    tvec,
};
use tract_onnx::tract_core::transform::get_transform;

use crate::{
    Error, ExportDescription, InputDescription, IoContext, Prediction, PreparedPhoto, Result, softmax,
};

/// tract's error, naming the model file.
fn onnx_error(path: &Path) -> impl Fn(tract_onnx::prelude::TractError) -> Error + '_ {
    move |e| Error::Onnx { path: path.to_path_buf(), reason: format!("{e:#}") }
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
        let onnx = description.check().map_err(bad)?;
        let onnx_path = dir.join(onnx);
        if let Some(recorded) = &description.onnx_blake3 {
            // Streamed: the whole file in memory would raise the
            // predictor's peak by the network's size.
            let mut hasher = blake3::Hasher::new();
            hasher.update_reader(std::fs::File::open(&onnx_path).at(&onnx_path)?).at(&onnx_path)?;
            if hasher.finalize().to_hex().as_str() != recorded {
                return Err(Error::BadDescription {
                    path: onnx_path,
                    reason: format!(
                        "is not the ONNX file {} describes (its BLAKE3 differs): another model's, or damaged; \
                         export the model again",
                        json_path.display()
                    ),
                });
            }
        }
        let input = &description.input;
        let plan = load_plan(&onnx_path, input)?;
        let outputs = output_count(&plan).map_err(onnx_error(&onnx_path))?;
        if outputs != Some(description.classes.len()) {
            return Err(bad(format!(
                "lists {} classes but {} gives {} outputs: model.json and the ONNX file are of different models",
                description.classes.len(),
                onnx_path.display(),
                outputs.map_or("an unknown number of".into(), |n| n.to_string())
            )));
        }
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

/// How many values the plan's first output has per photograph (`None`
/// when tract cannot tell).
fn output_count(plan: &TypedRunnableModel) -> tract_onnx::prelude::TractResult<Option<usize>> {
    let model = plan.model();
    let outlet = model.output_outlets()?.first().copied();
    let Some(outlet) = outlet else { return Ok(None) };
    let fact = model.outlet_fact(outlet)?;
    Ok(fact.shape.as_concrete().and_then(|dims| dims.last().copied()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EXPORT_FORMAT;
    use gemstones_dataset::PreprocessConfig;

    #[test]
    fn an_input_this_crate_does_not_feed_is_refused_by_name() {
        let mut description = ExportDescription {
            format: EXPORT_FORMAT,
            onnx: Some("model.onnx".into()),
            onnx_blake3: None,
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
