//! The crate's error type.
use std::path::PathBuf;

/// Everything that can go wrong in `gemstones-model`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file could not be read or written.
    #[error("{path}: JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A model directory is missing a file or holds an inconsistent one.
    #[error("{path}: {reason}")]
    BadModel {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An output folder holds another model's files (or is not a folder):
    /// nothing was written.
    #[error("{path}: {reason}")]
    OutputInUse {
        /// The folder or file at fault.
        path: PathBuf,
        /// What it holds, and what to do.
        reason: String,
    },
    /// A checkpoint (PyTorch or safetensors) is unreadable, or lacks a
    /// tensor or has one of the wrong shape.
    #[error("{path}: {reason}")]
    BadPretrained {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong (naming the tensor where one is at fault).
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The training loss became NaN or infinite; the last good checkpoint
    /// was kept.
    #[error("loss became {loss} at epoch {epoch}, batch {batch}; stopped (last good checkpoint kept)")]
    NonFiniteLoss {
        /// Epoch (1-based).
        epoch: usize,
        /// Batch within the epoch (0-based).
        batch: usize,
        /// The value.
        loss: f64,
    },
    /// An image could not be read or preprocessed for prediction.
    #[error("{path}: {reason}")]
    BadImage {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The background thread that augments the next batches died; the
    /// last checkpoint was kept.
    #[error("the augmentation thread died ({reason}); stopped (last good checkpoint kept)")]
    LoaderDied {
        /// Its panic message.
        reason: String,
    },
    /// A dataset operation failed.
    #[error(transparent)]
    Dataset(#[from] gemstones_dataset::Error),
    /// An augmentation operation failed.
    #[error(transparent)]
    Augment(#[from] gemstones_augment::Error),
    /// Drawing a plot failed.
    #[error("{path}: plot: {reason}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

gemstones_dataset::io_context!(Error);
