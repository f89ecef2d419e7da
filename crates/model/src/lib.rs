//! # gemstones-model
//!
//! The gemstone classifiers on libtorch through [`tch`]: CPU here, CUDA
//! where present.
//!
//! - [`ModelConfig`] chooses the network: the tutorial's VGG-like CNN
//!   (Keras' initialisers and parameter count) or a small ResNet; [`Net`]
//!   builds it under a var store, every layer under its own path.
//! - [`Trainer`] trains on a [`gemstones_dataset::ImageSet`] with a
//!   [`TrainConfig`] (Adam, AdamW or SGD, schedules, label smoothing, mixup,
//!   clipping, early stopping, [`ProgressiveResize`], a moving average of
//!   the weights: [`Ema`]), augmenting the next batches on a background
//!   thread, writing checkpoints, history and curves into a [`ModelDir`],
//!   resuming from the last checkpoint, stopping cleanly on a [`StopFlag`].
//! - [`CrossValidation`] scores a recipe by k-fold cross-validation
//!   (stratified, near-duplicate-aware folds; mean and standard deviation
//!   of top-1, top-5 and macro F1), resumable fold by fold.
//! - [`evaluate`] measures a [`Classifier`] (top-1, top-5, per-class F1,
//!   confusion matrix, misclassified stones, highest losses),
//!   [`Evaluation::interpret`] reads it (most-confused pairs, confusable
//!   families, classes by F1) and [`Evaluation::write`] saves it all as
//!   JSON, CSV and PNG.
//! - [`Classifier::load`] reads a model directory on any machine and
//!   predicts photographs with the preprocessing it was trained with;
//!   [`Classifier::export`] writes it as TorchScript with an
//!   [`ExportInfo`] for PyTorch, C++ or other tch programs.
//!
//! The trainer sets glibc's allocator to keep large blocks (at 220x220
//! that saves a third to a half of the CPU step time); train on the main
//! thread, whose heap that setting governs.
//!
//! Predict with a trained model directory (the `train` example, or
//! [`Trainer::run`], makes one):
//!
//! ```no_run
//! use gemstones_model::Classifier;
//!
//! let clf = Classifier::load("runs/lite0".as_ref())?;
//! for p in clf.predict_file("ruby.jpg".as_ref(), 3)? {
//!     println!("{:>20} {:5.1} %", p.class, 100.0 * p.probability);
//! }
//! # Ok::<(), gemstones_model::Error>(())
//! ```
//!
//! Building a program on this crate needs libtorch 2.13 (`LIBTORCH`, see
//! the workspace README, "Using the crates from another project"). In a
//! dev build, optimise the dependencies (`[profile.dev.package."*"]
//! opt-level = 3`): unoptimised, decoding and augmenting photos dominate
//! every step.
#![deny(missing_docs)]

// The crate README's code blocks compile and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

// Modules in dependency order: each uses only those above it.
mod checkpoint;
mod classifier;
mod crossval;
mod device;
mod efficientnet;
mod error;
mod eval;
mod eval_files;
mod export;
mod fused;
mod history;
mod interpret;
mod layers;
mod loader;
mod metrics;
mod modeldir;
mod nets;
mod onnx;
mod onnx_proto;
mod optim;
mod plots;
mod pretrained;
mod train;

/// The tensor library this crate's API takes and returns (`Tensor`,
/// `Device`, `nn::VarStore`), re-exported so a program uses the same
/// version without naming it.
pub use tch;

pub use classifier::{Classifier, ENSEMBLE_FILE, EnsembleSpec, Prediction, Scoring};
pub use crossval::{CrossValReport, CrossValidation, FoldScore, Scores, check_runs, fold_dir, score_runs};
pub use device::best_device;
pub use efficientnet::EfficientNetLiteConfig;
pub use error::{Error, Result};
pub use eval::{ClassMetrics, Evaluation, ImageLoss, Misclassified, TOP_LOSSES_KEPT, evaluate};
pub use eval_files::EvalFiles;
pub use export::{
    EXPORT_FORMAT, EXPORT_INFO, EXPORT_MODULE, EXPORT_ONNX, ExportDescription, ExportFiles, ExportInfo,
    InputDescription, ONNX_INPUT, ONNX_OUTPUT,
};
pub use history::EpochStats;
pub use interpret::{ConfusableFamily, ConfusedPair, DEFAULT_MIN_CONFUSED, Interpretation};
pub use modeldir::{HeldOut, ModelDir, ModelSpec, SPEC_FORMAT};
pub use nets::{ModelConfig, Net, Precision, ResNetConfig, TutorialCnnConfig};
pub use onnx::ONNX_OPSET;
pub use optim::{OptimizerConfig, OptimizerKind, Schedule};
pub use pretrained::PretrainedWeights;
pub use train::{
    CrossValFold, EarlyStopping, Ema, FineTune, KeptWeights, ProgressiveResize, StopFlag, StopReason,
    TrainConfig, TrainReport, Trainer, split_indices,
};

/// Not part of the API: helpers the workspace's own benchmarks and tests
/// call (memory layout, parameter counts, the allocator setting the
/// trainer applies). They may change in any release.
#[doc(hidden)]
pub mod internals {
    pub use crate::device::tune_malloc;
    pub use crate::layers::{channels_last, to_channels_last};
    pub use crate::nets::trainable_parameters;
}
