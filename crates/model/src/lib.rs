//! # gemstones-model
//!
//! The gemstone classifiers on libtorch through [`tch`]: CPU here, CUDA
//! where present.
//!
//! - [`ModelConfig`] chooses the network: the tutorial's VGG-like CNN
//!   (Keras' initialisers and parameter count) or a small ResNet; [`Net`]
//!   builds it under a var store, every layer under its own path.
//! - [`Trainer`] trains on a [`gemstones_dataset::ImageSet`] with a
//!   [`TrainConfig`] (Adam or AdamW, schedules, label smoothing, mixup,
//!   clipping, early stopping, [`ProgressiveResize`]), augmenting the next batches on a background
//!   thread, writing checkpoints, history and curves into a [`ModelDir`],
//!   resuming from the last checkpoint, stopping cleanly on a [`StopFlag`].
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
//! Before heavy CPU training, [`tune_malloc`] stops glibc returning large
//! blocks to the kernel (the trainer calls it; it governs the main
//! thread): at 220x220 that saves a third to a half of the step time here.
#![deny(missing_docs)]

mod checkpoint;
mod classifier;
mod device;
mod efficientnet;
mod error;
mod eval;
mod export;
mod fused;
mod interpret;
mod layers;
mod loader;
mod modeldir;
mod nets;
mod optim;
mod report;
mod train;

pub use checkpoint::Checkpoint;
pub use classifier::{Classifier, Prediction};
pub use device::{best_device, tune_malloc};
pub use efficientnet::EfficientNetLiteConfig;
pub use error::{Error, Result};
pub use eval::{ClassMetrics, EvalFiles, Evaluation, Misclassified, TOP_LOSSES_KEPT, evaluate};
pub use export::{EXPORT_FORMAT, EXPORT_INFO, EXPORT_MODULE, ExportFiles, ExportInfo, ExportInput};
pub use interpret::{ConfusableFamily, ConfusedPair, DEFAULT_MIN_CONFUSED, ImageLoss, Interpretation};
pub use modeldir::{ModelDir, ModelSpec, SPEC_FORMAT};
pub use nets::{
    ModelConfig, Net, Precision, ResNetConfig, TutorialCnnConfig, channels_last, to_channels_last,
    trainable_parameters,
};
pub use optim::{OptimizerConfig, OptimizerKind, Schedule};
pub use report::{history_csv, plot_confusion, plot_curves};
pub use train::{
    EarlyStopping, EpochStats, FineTune, ProgressiveResize, StopFlag, StopReason, TrainConfig, TrainReport,
    Trainer, split_indices,
};
