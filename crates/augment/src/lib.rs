//! # gemstones-augment
//!
//! The tutorial's Keras `ImageDataGenerator` in Rust, and more, correct to
//! the pixel and fast enough that training never waits for it.
//!
//! - [`AugmentConfig`] takes Keras' parameters with Keras' meaning
//!   (rotation, shifts, shear in degrees, independent x/y zoom, flips, fill
//!   modes, brightness, channel shift); [`AugmentConfig::tutorial`] is the
//!   tutorial's generator. Extras: random resized crop, colour jitter (hue
//!   off by default), cutout, TrivialAugment ([`AugmentConfig::trivial`]).
//! - Rotation, shift, shear, zoom, flips and resize compose into one affine
//!   map ([`AugmentParams::source_map`]) and each image is resampled once.
//! - [`BatchAugmenter`] writes batches straight into a caller's buffer, as
//!   normalised `f32` NCHW or `u8` NHWC, in parallel with rayon, with no
//!   allocation per image; every image's parameters come from
//!   `(seed, epoch, index)`, so the pixels do not depend on the thread
//!   count, and they can be recorded and replayed.
//! - [`preview`] writes the tutorial's "original + augmented" figure.
//!
//! ```
//! use gemstones_augment::{AugmentConfig, BatchAugmenter, ImageView, Output};
//! let aug = BatchAugmenter::new(AugmentConfig::tutorial(), 7, 64, 64)?;
//! let pixels = vec![200u8; 64 * 64 * 3];
//! let src = ImageView::new(&pixels, 64, 64)?;
//! let params = aug.sample(0, 3, &src); // epoch 0, image 3
//! let mut out = vec![0u8; aug.image_len()];
//! aug.apply(src, &params, Output::U8Hwc(&mut out))?;
//! assert!(out.iter().all(|&v| v == 200)); // a flat image stays flat
//! # Ok::<(), gemstones_augment::Error>(())
//! ```
#![deny(missing_docs)]

// The crate README's code blocks compile and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod augmenter;
mod color;
mod config;
mod error;
mod params;
mod warp;

pub use augmenter::{BatchAugmenter, Output, preview};
pub use config::{
    AugmentConfig, ColorJitter, EraseFill, FillMode, Interpolation, Normalize, RandomErasing,
    RandomResizedCrop, keras_zoom,
};
pub use error::{Error, Result};
pub use params::{AugmentParams, Erase, PointOp, image_rng};
pub use warp::ImageView;
