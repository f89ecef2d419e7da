//! # gemstones-dataset
//!
//! The tutorial's dataset steps, done so that no file is ever lost and
//! training is fed from a fast, parallel decode path:
//!
//! - [`scan`] a folder of class folders into a [`ClassIndex`] and files;
//! - [`verify`] every file by decoding its content ([`VerifyReport`]: corrupt,
//!   truncated, empty, non-image files, decompression bombs) and find
//!   duplicates, within a folder and [across splits](cross_split_duplicates);
//! - [`rename`] files to `<class>_<n>.<ext>` from a [`RenamePlan`] that never
//!   overwrites and survives interruption;
//! - split by [`SplitRatios`], stratified and seeded, on disk
//!   ([`split_folder`]) or in memory ([`stratified_split`]);
//! - [`count_tree`] and [`ClassTable`]: what landed where;
//! - [`preprocess_folder`]: decode, RGB, Canny gem crop ([`canny`]), resize,
//!   in parallel, into an [`ImageSet`]; [`load_or_build`] caches it in one
//!   binary file that is rebuilt when its sources or settings change;
//! - [`ImageGrid`]: captioned PNG sheets; [`synth`]: procedurally rendered
//!   gems for a demo set that needs no photographs.
//!
//! ```no_run
//! use gemstones_dataset as ds;
//! let folder = ds::scan("photos")?;
//! let report = ds::verify(&folder, &ds::DecodeLimits::default());
//! for p in &report.problems {
//!     eprintln!("skipping {p}");
//! }
//! let split = ds::split_folder(&folder, "data", &ds::SplitConfig::default())?;
//! let train = ds::scan("data/train")?;
//! let (pre, _) = ds::load_or_build(&train, &ds::PreprocessConfig::default(), "data/train.cache".as_ref(), &|_| {}, &ds::StopFlag::new())?;
//! println!("{} images of {} classes", pre.set.len(), pre.set.classes().len());
//! # Ok::<(), ds::Error>(())
//! ```
#![deny(missing_docs)]

// The crate README's code blocks compile and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// CPU feature sets the hot loops are compiled for (chosen at run time);
/// the portable build only has SSE2.
macro_rules! simd_targets {
    ($item:item) => {
        #[multiversion::multiversion(targets(
            "x86_64+avx512f+avx512bw+avx512vl+avx2+fma",
            "x86_64+avx2+fma"
        ))]
        $item
    };
}

mod cache;
mod class_index;
mod count;
mod decode;
mod edges;
mod error;
pub mod fsutil;
mod grid;
pub mod outputs;
mod preprocess;
mod progress;
mod quality;
mod rename;
mod scan;
mod seed;
mod similar;
mod split;
mod stop;
pub mod synth;
mod verify;

pub use cache::{
    CacheOutcome, CachedSet, EmptyClasses, fingerprint, load_cache, load_or_build, prepare_folder, save_cache,
};
pub use class_index::{ClassIndex, ranking};
pub use count::{ClassTable, TreeCount, count_tree};
pub use decode::{DecodeLimits, Problem, ProblemKind, decode_rgb};
pub use edges::{CannyScratch, EdgeMap, canny, canny_into};
pub use error::{Error, Result};
pub use grid::{ImageGrid, font_bytes, save_png};
pub use preprocess::{
    CropBox, Fit, GemCrop, ImageSet, PreprocessConfig, Preprocessed, Preprocessor, ResizeFilter,
    preprocess_folder,
};
pub use progress::progress_bar;
pub use quality::{Quality, QualityFlag, QualityLimits};
pub use rename::{
    RenameConfig, RenameMove, RenamePlan, RenameSummary, pending_rename, plan_rename, rename, rename_until,
    resume_rename,
};
pub use scan::{FileEntry, ImageFolder, journal_path, scan};
pub use seed::{Stream, derive_seed, seed_for};
pub use similar::{
    DEFAULT_MAX_DISTANCE, PerceptualHash, group_ids, near_duplicate_groups, without_near_copies,
};
pub use split::{
    SmallClassPolicy, SplitConfig, SplitIndices, SplitRatios, SplitReport, TransferMode, split_folder,
    stratified_group_folds, stratified_group_split, stratified_split,
};
pub use stop::StopFlag;
pub use verify::{
    DuplicateGroup, ImageInfo, NearDuplicateGroup, VerifyReport, cross_split_duplicates,
    cross_split_near_duplicates, near_duplicate_sheet, photo_health, verify,
};
