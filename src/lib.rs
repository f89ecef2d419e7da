//! # gemstones
//!
//! From gemstone photographs on websites to a trained classifier. This facade
//! re-exports the four crates of the workspace:
//!
//! - [`scrape`]: pages -> image URLs -> files on disk, with a provenance manifest;
//! - [`dataset`]: folders -> checked, renamed, split, decoded, cached datasets;
//! - [`augment`]: decoded images -> augmented batches (Keras-compatible);
//! - [`model`]: batches -> CNNs on libtorch, training, evaluation, prediction.
#![deny(missing_docs)]

// README's and the docs pages' code blocks compile and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
pub struct GuideDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/reliability.md")]
pub struct ReliabilityDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/library.md")]
pub struct LibraryDoctests;

pub mod presets;
pub mod report;
pub mod workflow;

pub use gemstones_augment as augment;
pub use gemstones_dataset as dataset;
pub use gemstones_model as model;
pub use gemstones_scrape as scrape;
