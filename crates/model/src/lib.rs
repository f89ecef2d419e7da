//! # gemstones-model
//!
//! The gemstone classifiers on libtorch through [`tch`]: CPU here, CUDA
//! where present.
#![deny(missing_docs)]

mod device;
mod error;

pub use device::{best_device, tune_malloc};
pub use error::{Error, Result};
