//! A trained model, loaded from its directory, that classifies photographs
//! with exactly the preprocessing it was trained with.
use std::path::{Path, PathBuf};

use gemstones_augment::{AugmentConfig, AugmentParams, BatchAugmenter, ImageView, Output};
use gemstones_dataset::{ClassIndex, ImageSet, Preprocessor};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::layers::to_channels_last;
use crate::modeldir::{ModelDir, ModelSpec, load_weights};
use crate::nets::Net;
use crate::nets::logits_of;

/// One class and its probability: `gemstones-predict`'s, so both
/// predictors answer in the same type.
pub use gemstones_predict::Prediction;

/// How a [`Classifier`] predicts, beyond its model directory
/// ([`Classifier::with_scoring`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scoring {
    /// Average with the mirror image ([`Classifier::with_tta`]).
    pub tta: bool,
    /// Predict at this input side ([`Classifier::with_input_size`]);
    /// `None`: the side the network trained at.
    pub input_size: Option<u32>,
}

/// A model ready to predict.
///
/// ```no_run
/// let clf = gemstones_model::Classifier::load("model".as_ref())?;
/// for p in clf.predict_file("ruby.jpg".as_ref(), 3)? {
///     println!("{:>20} {:5.1} %", p.class, 100.0 * p.probability);
/// }
/// # Ok::<(), gemstones_model::Error>(())
/// ```
pub struct Classifier {
    spec: ModelSpec,
    classes: ClassIndex,
    net: Net,
    vs: nn::VarStore,
    /// The identity augmentation at the network's input size: renders a
    /// preprocessed image (or its mirror, for TTA) into the input tensor.
    to_input: BatchAugmenter,
    tta: bool,
    weights: PathBuf,
    /// The other networks of an ensemble, whose probabilities are averaged
    /// with this one's (empty for one network).
    others: Vec<Classifier>,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("model", &self.spec.model)
            .field("weights", &self.weights)
            .field("others", &self.others)
            .finish()
    }
}

/// A model directory that is an ensemble holds this file instead of a
/// network: `{"members": ["../lite0", "../lite2"]}`, the member model
/// directories, relative to it.
pub const ENSEMBLE_FILE: &str = "ensemble.json";

/// What [`ENSEMBLE_FILE`] holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleSpec {
    /// The member model directories, relative to the ensemble's.
    pub members: Vec<PathBuf>,
}

impl Classifier {
    /// Load `dir` (its `config.json` and `best.safetensors`, or the last
    /// checkpoint's weights when there is no best yet; or, when it holds
    /// [`ENSEMBLE_FILE`], each member, as [`Classifier::ensemble`]). Errors
    /// name the missing, corrupt or mismatched file.
    pub fn load(dir: &Path) -> Result<Self> {
        let ensemble = dir.join(ENSEMBLE_FILE);
        if !ensemble.exists() {
            return Self::load_network(dir);
        }
        let spec: EnsembleSpec = crate::modeldir::read_json(&ensemble)?;
        let members = spec.members.iter().map(|m| Self::load_network(&dir.join(m))).collect::<Result<_>>()?;
        Self::ensemble(members).map_err(|e| Error::BadModel { path: ensemble, reason: e.to_string() })
    }

    /// One classifier that averages the probabilities of `members` (the
    /// first one's spec is the ensemble's). They must know the same classes
    /// in the same order and prepare photographs alike (the crop and the
    /// cached size; their input sizes may differ).
    pub fn ensemble(members: Vec<Classifier>) -> Result<Self> {
        let mut members = members.into_iter();
        let Some(mut first) = members.next() else {
            return Err(Error::InvalidConfig { reason: "an ensemble needs at least one member".into() });
        };
        for mut member in members {
            let differs = |what: &str| Error::InvalidConfig {
                reason: format!(
                    "{} and {} have different {what}: they cannot form an ensemble",
                    first.weights.display(),
                    member.weights.display()
                ),
            };
            if member.classes != first.classes {
                return Err(differs("classes"));
            }
            if member.spec.preprocess != first.spec.preprocess {
                return Err(differs("preprocessing"));
            }
            first.others.append(&mut member.others);
            first.others.push(member);
        }
        let tta = first.tta;
        Ok(first.with_tta(tta))
    }

    /// Networks averaged (1 for a single network).
    pub fn members(&self) -> usize {
        1 + self.others.len()
    }

    /// Load one network's model directory.
    fn load_network(dir: &Path) -> Result<Self> {
        let mdir = ModelDir::new(dir);
        let spec = mdir.read_spec()?;
        let classes = ClassIndex::from_ordered(spec.classes.clone())?;
        let classes_file = mdir.classes_path();
        if classes_file.exists() && ClassIndex::load(&classes_file)? != classes {
            return Err(Error::BadModel { path: classes_file, reason: "disagrees with config.json".into() });
        }
        let weights = if mdir.best_path().exists() {
            mdir.best_path()
        } else {
            let last = mdir.last_dir().join("weights.safetensors");
            tracing::warn!(
                "{} has no best.safetensors: using the last checkpoint's weights, {}",
                dir.display(),
                last.display()
            );
            last
        };
        let mut vs = nn::VarStore::new(crate::device::best_device());
        // Building the network draws its (soon replaced) initial weights from
        // libtorch's one generator: under its lock, so a training running in
        // this process keeps the dropout masks its seed gives.
        let mut net = {
            let _rng = crate::device::torch_rng_lock();
            Net::new(&vs.root(), &spec.model, classes.len(), spec.precision)?
        };
        load_weights(&mut vs, &weights)?;
        // Inference only: no gradients (and traceable, see `export`).
        vs.freeze();
        to_channels_last(&vs);
        net.fold_for_inference();
        let s = spec.model.input_size();
        let to_input = BatchAugmenter::new(AugmentConfig::identity(), 0, s, s)?;
        Ok(Self { spec, classes, net, vs, to_input, tta: false, weights, others: Vec::new() })
    }

    /// The model's id of each class of `classes` (for images labelled by
    /// another index, such as a test folder's); an error names every class
    /// the model does not know.
    pub fn class_ids_of(&self, classes: &ClassIndex) -> Result<Vec<usize>> {
        let unknown: Vec<&str> =
            classes.names().iter().filter(|n| self.classes.id(n).is_none()).map(String::as_str).collect();
        if !unknown.is_empty() {
            return Err(Error::InvalidConfig {
                reason: format!("class(es) {unknown:?} of the images are not classes of the model"),
            });
        }
        Ok(classes.names().iter().filter_map(|n| self.classes.id(n)).collect())
    }

    /// Average the predictions of the image and its mirror image (every
    /// member's, in an ensemble).
    pub fn with_tta(mut self, on: bool) -> Self {
        self.tta = on;
        self.others = self.others.into_iter().map(|o| o.with_tta(on)).collect();
        self
    }

    /// Predict at another input side than the network trained at (every
    /// member's, in an ensemble): timm's `test_input_size`, torchvision's
    /// larger evaluation crops. A random-resized-crop augmentation shows
    /// the network its objects larger than a whole photograph at the same
    /// side does, so a larger side at test time can make up for it (Touvron
    /// et al., "Fixing the train-test resolution discrepancy", 2019). The
    /// spec then gives this side (an ONNX export follows it). An error for
    /// a network whose dense layer fixes its input size (the tutorial
    /// CNN's) or a side below 32.
    pub fn with_input_size(mut self, size: u32) -> Result<Self> {
        if !self.spec.model.any_input_size() || size < 32 {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "{}: cannot predict at {size}x{size} (a network that takes any input side, at least 32)",
                    self.weights.display()
                ),
            });
        }
        self.spec.model = self.spec.model.clone().with_input_size(size);
        self.to_input = BatchAugmenter::new(AugmentConfig::identity(), 0, size, size)?;
        self.others = self.others.into_iter().map(|o| o.with_input_size(size)).collect::<Result<_>>()?;
        Ok(self)
    }

    /// Predict as `scoring` says: [`with_tta`](Self::with_tta), then
    /// [`with_input_size`](Self::with_input_size) if it gives a side.
    pub fn with_scoring(self, scoring: Scoring) -> Result<Self> {
        let clf = self.with_tta(scoring.tta);
        match scoring.input_size {
            Some(size) => clf.with_input_size(size),
            None => Ok(clf),
        }
    }

    /// What the model is and how its inputs are made.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The classes.
    pub fn classes(&self) -> &ClassIndex {
        &self.classes
    }

    /// The network, prepared for inference.
    pub(crate) fn net(&self) -> &Net {
        &self.net
    }

    /// The network's variables.
    pub(crate) fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Top-`k` classes of an image file (any supported format, by content).
    pub fn predict_file(&self, path: &Path, k: usize) -> Result<Vec<Prediction>> {
        let mut pp = Preprocessor::new(self.spec.preprocess)?;
        let img = pp.process_file(path).map_err(|p| Error::BadImage {
            path: path.to_path_buf(),
            reason: format!("{}: {}", p.kind, p.detail),
        })?;
        self.top_k(&self.probabilities_of_prepared(&[img])?, k)
            .pop()
            .ok_or_else(|| Error::BadImage { path: path.to_path_buf(), reason: "no prediction".into() })
    }

    /// Top-`k` classes of a decoded photograph.
    pub fn predict_rgb(&self, photo: &RgbImage, k: usize) -> Result<Vec<Prediction>> {
        let mut pp = Preprocessor::new(self.spec.preprocess)?;
        let s = self.spec.preprocess.size;
        let mut out = RgbImage::new(s, s);
        pp.process_rgb_into(photo, &mut out)?;
        Ok(self.top_k(&self.probabilities_of_prepared(&[out])?, k).pop().unwrap_or_default())
    }

    /// Top-`k` classes of many files, batched; each file's own result.
    pub fn predict_files(&self, paths: &[PathBuf], k: usize) -> Vec<(PathBuf, Result<Vec<Prediction>>)> {
        let mut pp = match Preprocessor::new(self.spec.preprocess) {
            Ok(p) => p,
            Err(e) => {
                let msg = e.to_string();
                return paths
                    .iter()
                    .map(|p| (p.clone(), Err(Error::InvalidConfig { reason: msg.clone() })))
                    .collect();
            }
        };
        let mut results: Vec<(PathBuf, Result<Vec<Prediction>>)> = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(64) {
            let mut ok = Vec::new();
            let mut slots = Vec::new();
            for p in chunk {
                match pp.process_file(p) {
                    Ok(img) => {
                        slots.push(results.len());
                        results.push((p.clone(), Ok(Vec::new())));
                        ok.push(img);
                    }
                    Err(e) => results.push((
                        p.clone(),
                        Err(Error::BadImage { path: p.clone(), reason: format!("{}: {}", e.kind, e.detail) }),
                    )),
                }
            }
            if ok.is_empty() {
                continue;
            }
            match self.probabilities_of_prepared(&ok) {
                Ok(probs) => {
                    for (slot, preds) in slots.into_iter().zip(self.top_k(&probs, k)) {
                        results[slot].1 = Ok(preds);
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for slot in slots {
                        results[slot].1 = Err(Error::InvalidConfig { reason: msg.clone() });
                    }
                }
            }
        }
        results
    }

    /// Softmax probabilities (`n x classes`) of images already preprocessed
    /// as the model's spec says (for example from a dataset cache built with
    /// the same configuration).
    pub fn probabilities_of_set(&self, set: &ImageSet, idx: &[usize]) -> Result<Tensor> {
        if set.size() != self.spec.preprocess.size {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "images are {0}x{0}, the model's preprocessing makes {1}x{1}",
                    set.size(),
                    self.spec.preprocess.size
                ),
            });
        }
        self.probabilities(&ImageView::of_set(set, idx)?)
    }

    /// Top-`k` classes of a photograph already prepared as the model's
    /// spec says (cropped and resized, as [`Preprocessor`] makes it).
    pub fn predict_prepared(&self, photo: &RgbImage, k: usize) -> Result<Vec<Prediction>> {
        Ok(self
            .top_k(&self.probabilities_of_prepared(std::slice::from_ref(photo))?, k)
            .pop()
            .unwrap_or_default())
    }

    /// Softmax probabilities (`n x classes`) of photographs already
    /// prepared as the model's spec says, in one batch.
    pub fn probabilities_of_prepared(&self, imgs: &[RgbImage]) -> Result<Tensor> {
        let views: std::result::Result<Vec<ImageView<'_>>, _> =
            imgs.iter().map(ImageView::from_rgb).collect();
        self.probabilities(&views?)
    }

    /// The members' probabilities, averaged.
    fn probabilities(&self, views: &[ImageView<'_>]) -> Result<Tensor> {
        let mut sum = self.probabilities_of_network(views)?;
        for other in &self.others {
            sum = sum.f_add(&other.probabilities_of_network(views)?)?;
        }
        Ok(if self.others.is_empty() { sum } else { sum.f_div_scalar(self.members() as f64)? })
    }

    /// This network's probabilities (with its mirror image's, under TTA).
    fn probabilities_of_network(&self, views: &[ImageView<'_>]) -> Result<Tensor> {
        let len = self.to_input.image_len();
        let s = i64::from(self.spec.model.input_size());
        let mut x = vec![0f32; views.len() * len];
        let mut run = |flip: bool| -> Result<Tensor> {
            let params =
                vec![AugmentParams { flip_horizontal: flip, ..AugmentParams::identity() }; views.len()];
            self.to_input.replay(views, &params, Output::F32Hwc(&mut x, &self.spec.normalize))?;
            Ok(logits_of(&self.net, &x, len, s)?.f_softmax(-1, Kind::Float)?)
        };
        let probs = run(false)?;
        if self.tta { Ok((probs + run(true)?) * 0.5) } else { Ok(probs) }
    }

    /// The `k` most probable classes of each row.
    pub fn top_k(&self, probs: &Tensor, k: usize) -> Vec<Vec<Prediction>> {
        let rows: Vec<Vec<f32>> = Vec::try_from(probs).unwrap_or_default();
        rows.iter().map(|row| Prediction::top_k(row, self.classes.names(), k)).collect()
    }
}
