//! The crate's error type.
use std::path::PathBuf;

/// Everything that can go wrong in `gemstones-augment`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid augmentation setting: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// An image buffer does not match its stated size.
    #[error("image buffer has {got} bytes, {width}x{height} RGB needs {want}")]
    BadImage {
        /// Stated width.
        width: u32,
        /// Stated height.
        height: u32,
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        want: usize,
    },
    /// An output buffer has the wrong length for the batch.
    #[error("output buffer holds {got} values, the batch needs {want}")]
    BadOutput {
        /// Values given.
        got: usize,
        /// Values needed.
        want: usize,
    },
    /// An image set could not give an image (an index beyond it).
    #[error(transparent)]
    Dataset(#[from] gemstones_dataset::Error),
    /// Writing a preview failed.
    #[error("{path}: {reason}")]
    Preview {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
