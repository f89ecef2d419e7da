//! The model directory: configuration, class index, weights, the last
//! checkpoint (weights, optimizer, training state) and the history.
//!
//! ```text
//! model/
//!   config.json          what the model is and how its inputs are made
//!   classes.json         the class index
//!   best.safetensors     the kept weights: the epoch with the lowest validation
//!                        loss, or the last (no validation; `KeptWeights`)
//!   last/                the latest checkpoint, replaced as a whole:
//!     weights.safetensors, optimizer.safetensors, state.json
//!   history.json, history.csv, curves.png
//! ```
use std::path::{Path, PathBuf};

use gemstones_augment::{AugmentConfig, Normalize};
use gemstones_dataset::{ClassIndex, PreprocessConfig, fsutil};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tch::nn;

use crate::error::{Error, IoContext, Result};
use crate::nets::{ModelConfig, Precision};

/// Everything needed to rebuild a model and feed it as it was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Format version of this file.
    pub format: u32,
    /// The network.
    pub model: ModelConfig,
    /// Precision it was trained in (and predicts in by default).
    pub precision: Precision,
    /// How photographs were preprocessed into the training cache.
    pub preprocess: PreprocessConfig,
    /// Input normalisation.
    pub normalize: Normalize,
    /// The classes, in id order.
    pub classes: Vec<String>,
    /// The training augmentation (for the record).
    pub augment: AugmentConfig,
    /// The photos held out to validate while training (absent from files
    /// written before this was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<HeldOut>,
}

/// What a training held out for validation, as `config.json` records it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "held_out")]
pub enum HeldOut {
    /// A stratified share of the photos.
    Share {
        /// The share.
        fraction: f64,
        /// Photos trained on.
        training_images: usize,
        /// Photos validated on.
        validation_images: usize,
    },
    /// One fold of k-fold cross-validation.
    CrossValFold {
        /// Which fold, from 1.
        fold: usize,
        /// Of how many.
        folds: usize,
        /// Photos trained on.
        training_images: usize,
        /// Photos validated on.
        validation_images: usize,
    },
    /// Nothing: a final fit on every photo, no validation split; the
    /// weights are the last epoch's.
    Nothing {
        /// Photos trained on.
        training_images: usize,
    },
}

impl HeldOut {
    /// Photos validated on (0 for a final fit).
    pub fn validation_images(&self) -> usize {
        match *self {
            Self::Share { validation_images, .. } | Self::CrossValFold { validation_images, .. } => {
                validation_images
            }
            Self::Nothing { .. } => 0,
        }
    }
}

impl std::fmt::Display for HeldOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Share { fraction, training_images, validation_images } => write!(
                f,
                "{training_images} photos trained on, {validation_images} ({:.0} %) held out for validation",
                100.0 * fraction
            ),
            Self::CrossValFold { fold, folds, training_images, validation_images } => write!(
                f,
                "{training_images} photos trained on, fold {fold} of {folds} ({validation_images} photos) held out"
            ),
            Self::Nothing { training_images } => {
                write!(f, "final fit: all {training_images} photos trained on, no validation split")
            }
        }
    }
}

/// Current [`ModelSpec::format`].
pub const SPEC_FORMAT: u32 = 1;

/// Paths inside a model directory.
#[derive(Debug, Clone)]
pub struct ModelDir {
    root: PathBuf,
}

impl ModelDir {
    /// A model directory at `root` (not created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.json`.
    pub fn spec_path(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `classes.json`.
    pub fn classes_path(&self) -> PathBuf {
        self.root.join("classes.json")
    }

    /// `best.safetensors`.
    pub fn best_path(&self) -> PathBuf {
        self.root.join("best.safetensors")
    }

    /// The latest checkpoint directory.
    pub fn last_dir(&self) -> PathBuf {
        self.root.join("last")
    }

    /// `history.json`.
    pub fn history_json(&self) -> PathBuf {
        self.root.join("history.json")
    }

    /// `history.csv`.
    pub fn history_csv(&self) -> PathBuf {
        self.root.join("history.csv")
    }

    /// `curves.png`.
    pub fn curves_png(&self) -> PathBuf {
        self.root.join("curves.png")
    }

    /// Read `config.json`.
    pub fn read_spec(&self) -> Result<ModelSpec> {
        let path = self.spec_path();
        if !path.exists() {
            return Err(Error::BadModel {
                path,
                reason: "missing: not a model directory (no config.json)".into(),
            });
        }
        let spec: ModelSpec = read_json(&path)?;
        if spec.format != SPEC_FORMAT {
            return Err(Error::BadModel {
                path,
                reason: format!("format {} (this build reads {SPEC_FORMAT})", spec.format),
            });
        }
        spec.model.validate().map_err(|e| Error::BadModel { path, reason: e.to_string() })?;
        Ok(spec)
    }

    /// The checkpoint to resume from: `last/`, or `last.old/` if a crash
    /// happened while `last/` was being replaced.
    pub(crate) fn resumable(&self) -> Option<PathBuf> {
        let last = self.last_dir();
        if last.join("state.json").exists() {
            return Some(last);
        }
        let old = self.root.join("last.old");
        old.join("state.json").exists().then_some(old)
    }

    /// What keeps a checkpoint in this directory from being resumed as a
    /// run of `model` on images prepared by `preprocess` (with `classes`,
    /// when known): each difference named, or `None` when there is no
    /// checkpoint's `config.json` or it matches. Cheap: a program can ask
    /// before preprocessing anything.
    pub fn resume_conflict(
        &self,
        model: &ModelConfig,
        preprocess: &PreprocessConfig,
        classes: Option<&[String]>,
    ) -> Result<Option<String>> {
        if !self.spec_path().exists() || self.resumable().is_none() {
            return Ok(None);
        }
        let old = self.read_spec()?;
        let mut differs = Vec::new();
        if old.model != *model {
            if old.model.name() == model.name() {
                let changes: Vec<String> =
                    crate::train::json_differences(&old.model, model).into_iter().map(|(_, c)| c).collect();
                differs.push(format!("the {} network's {}", model.name(), changes.join(", ")));
            } else {
                differs.push(format!("network {} -> {}", old.model.name(), model.name()));
            }
        }
        if old.preprocess != *preprocess {
            if old.preprocess.size == preprocess.size {
                differs.push("other preprocessing (crop, fit or filter)".to_string());
            } else {
                differs.push(format!("image size {} -> {}", old.preprocess.size, preprocess.size));
            }
        }
        if let Some(classes) = classes.filter(|c| *c != old.classes.as_slice()) {
            differs.push(format!("{} classes -> {}", old.classes.len(), classes.len()));
        }
        Ok((!differs.is_empty()).then(|| {
            format!(
                "holds a checkpoint of another model ({}); train into another directory",
                differs.join(", ")
            )
        }))
    }

    /// Write `config.json` and `classes.json`.
    pub fn write_spec(&self, spec: &ModelSpec) -> Result<()> {
        std::fs::create_dir_all(&self.root).at(&self.root)?;
        write_json(&self.spec_path(), spec)?;
        ClassIndex::from_ordered(spec.classes.clone())?.save(self.classes_path())?;
        Ok(())
    }
}

/// Save a var store's weights as safetensors, atomically.
pub(crate) fn save_weights(vs: &nn::VarStore, path: &Path) -> Result<()> {
    // Channels-last variables are saved in standard layout.
    let named: Vec<(String, tch::Tensor)> =
        vs.variables().into_iter().map(|(n, t)| (n, t.contiguous())).collect();
    write_safetensors_atomic(&named, path)
}

/// Load weights into a var store, with a clear error for a missing,
/// corrupt or mismatched file.
pub(crate) fn load_weights(vs: &mut nn::VarStore, path: &Path) -> Result<()> {
    if !path.exists() {
        return Err(Error::BadModel { path: path.to_path_buf(), reason: "missing weights file".into() });
    }
    let tensors = tch::Tensor::read_safetensors(path).map_err(|e| Error::BadModel {
        path: path.to_path_buf(),
        reason: format!("unreadable weights: {e}"),
    })?;
    let mut by_name: std::collections::HashMap<String, tch::Tensor> = tensors.into_iter().collect();
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vs.variables() {
            let src = by_name.remove(&name).ok_or_else(|| Error::BadModel {
                path: path.to_path_buf(),
                reason: format!("no tensor {name}: weights of another model?"),
            })?;
            if src.size() != var.size() {
                return Err(Error::BadModel {
                    path: path.to_path_buf(),
                    reason: format!(
                        "{name} has shape {:?}, the model needs {:?} (another class count or architecture?)",
                        src.size(),
                        var.size()
                    ),
                });
            }
            if src.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
                return Err(Error::BadModel {
                    path: path.to_path_buf(),
                    reason: format!("{name} holds NaN or infinite values: damaged or diverged weights"),
                });
            }
            var.f_copy_(&src)?;
        }
        Ok(())
    })?;
    if let Some(extra) = by_name.keys().next() {
        return Err(Error::BadModel {
            path: path.to_path_buf(),
            reason: format!("unexpected tensor {extra}: weights of another model?"),
        });
    }
    Ok(())
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).at(path)?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json { path: path.to_path_buf(), source })
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
    write_atomic(path, &bytes)
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(fsutil::write_atomic(path, bytes)?)
}

/// Write a safetensors file atomically (see [`fsutil::write_atomic_by`]).
pub(crate) fn write_safetensors_atomic(named: &[(String, tch::Tensor)], path: &Path) -> Result<()> {
    Ok(fsutil::write_atomic_by(path, |tmp| {
        tch::Tensor::write_safetensors(named, tmp).map_err(std::io::Error::other)
    })?)
}
