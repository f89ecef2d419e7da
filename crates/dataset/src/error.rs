//! The crate's error type.
use std::path::PathBuf;

/// Everything that can go wrong in `gemstones-dataset`.
///
/// File errors carry the path they concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading, writing, listing or renaming a file or folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file could not be decoded or encoded as an image.
    #[error("{path}: image: {source}")]
    Image {
        /// The file.
        path: PathBuf,
        /// The decoder's or encoder's error.
        source: image::ImageError,
    },
    /// A JSON file could not be read or written.
    #[error("{path}: JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A folder that should hold one sub-folder per class does not exist or
    /// is not a folder.
    #[error("{path}: not a folder of class folders")]
    NotAFolder {
        /// The path given.
        path: PathBuf,
    },
    /// A caller's output buffer does not hold exactly one image.
    #[error("output buffer has {got} bytes, an image takes {want}")]
    BadBuffer {
        /// Its length.
        got: usize,
        /// One image's length.
        want: usize,
    },
    /// A dataset root holds no class folders.
    #[error("{path}: no class folders found")]
    NoClasses {
        /// The root folder.
        path: PathBuf,
    },
    /// A dataset root's class folders are all empty.
    #[error("{path}: all {count} class folder(s) are empty: put photographs in them")]
    AllClassesEmpty {
        /// The root folder.
        path: PathBuf,
        /// How many class folders it holds.
        count: usize,
    },
    /// A name was not in the class index.
    #[error("unknown class {name:?}")]
    UnknownClass {
        /// The name looked up.
        name: String,
    },
    /// A class index file is malformed (duplicate or empty names).
    #[error("{path}: invalid class index: {reason}")]
    InvalidClassIndex {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Split ratios that are negative, all zero, or do not sum to 1.
    #[error("invalid split ratios: {reason}")]
    InvalidRatios {
        /// What is wrong.
        reason: String,
    },
    /// A class has too few files to give every split with a non-zero ratio
    /// at least one file (see `SmallClassPolicy`).
    #[error("class {class:?} has {files} file(s), too few for {splits} non-empty splits")]
    ClassTooSmall {
        /// The class name.
        class: String,
        /// How many files it has.
        files: usize,
        /// How many splits need a file.
        splits: usize,
    },
    /// A destination file exists with different content; nothing was
    /// overwritten.
    #[error("{path}: exists with different content; refusing to overwrite")]
    WouldOverwrite {
        /// The existing file.
        path: PathBuf,
    },
    /// An output path breaks the output rule ([`crate::outputs`]): it is an
    /// input or lies inside one, holds one, or holds something that is not
    /// this program's own earlier output. Nothing was written.
    #[error("{path}: refused as an output: {reason}")]
    RefusedOutput {
        /// The output path as given.
        path: PathBuf,
        /// Why, and what to do instead.
        reason: String,
    },
    /// A split's output folder cannot be used (not empty, another split,
    /// inside the source) or a planned file vanished.
    #[error("{path}: split: {reason}")]
    SplitOutput {
        /// The output folder or file concerned.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// A rename plan could not be made or finished safely.
    #[error("{path}: rename: {reason}")]
    Rename {
        /// The folder or file concerned.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The operation was cancelled (for example by Ctrl-C) before it
    /// finished; re-running it completes the work.
    #[error("cancelled; re-run to complete")]
    Cancelled,
    /// A cache file is not a gemstones cache, has another version, or is
    /// damaged.
    #[error("{path}: bad cache file: {reason}")]
    BadCache {
        /// The cache file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A preprocessing or dataset option is out of range.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// An image index beyond the end of a set.
    #[error("image {index} asked of a set of {len} images")]
    ImageIndex {
        /// The index asked for.
        index: usize,
        /// Images in the set.
        len: usize,
    },
    /// Nothing usable: every file failed to decode, or a folder is empty.
    #[error("{path}: no usable images")]
    NoImages {
        /// The folder.
        path: PathBuf,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Defines the crate-private `IoContext` trait for a crate's error enum
/// (named by `$error`, with an `Io { path, source }` variant): `.at(path)`
/// on an `std::io::Result` attaches the path. Every workspace crate's error
/// module calls it once, so the helper is written once.
#[doc(hidden)]
#[macro_export]
macro_rules! io_context {
    ($error:ident) => {
        /// Attach a path to an [`std::io::Error`].
        pub(crate) trait IoContext<T> {
            fn at(self, path: impl Into<std::path::PathBuf>) -> std::result::Result<T, $error>;
        }

        impl<T> IoContext<T> for std::io::Result<T> {
            fn at(self, path: impl Into<std::path::PathBuf>) -> std::result::Result<T, $error> {
                self.map_err(|source| $error::Io { path: path.into(), source })
            }
        }
    };
}

io_context!(Error);
