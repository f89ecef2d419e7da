//! The crate's error type.
use std::path::PathBuf;

/// Everything that can go wrong in `gemstones-scrape`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A setting is out of its range (the message names it and the range).
    #[error("invalid scrape setting: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The output path is not a folder.
    #[error("{path}: is a file, not a folder: scrape into a folder")]
    OutputNotAFolder {
        /// The path given as output.
        path: PathBuf,
    },
    /// Writing a photo failed (the workspace's no-clobber writer).
    #[error(transparent)]
    File(#[from] gemstones_dataset::Error),
    /// A site profile file could not be parsed or is inconsistent.
    #[error("{path}: bad site profile: {reason}")]
    Profile {
        /// The profile file (or `<built-in>`).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A CSS selector in a profile does not parse.
    #[error("bad CSS selector {selector:?}: {reason}")]
    Selector {
        /// The selector.
        selector: String,
        /// The parser's message.
        reason: String,
    },
    /// A URL could not be parsed.
    #[error("bad URL {url:?}: {reason}")]
    Url {
        /// The text.
        url: String,
        /// The parser's message.
        reason: String,
    },
    /// Fetching a page failed for good (after retries).
    #[error("{url}: {reason}")]
    Fetch {
        /// The page.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
    /// A WebDriver session or command failed.
    #[error("WebDriver {url}: {reason}")]
    WebDriver {
        /// The WebDriver or page URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The manifest could not be read or written.
    #[error("{path}: manifest: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

gemstones_dataset::io_context!(Error);
