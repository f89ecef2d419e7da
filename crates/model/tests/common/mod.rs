//! Helpers shared by this crate's test binaries (each uses some of them).
#![allow(dead_code)]
use std::path::Path;
use std::sync::Arc;

use gemstones_dataset::{ImageSet, PreprocessConfig, preprocess_folder, scan};

/// `per_class` generated photos of each of the first `classes` gem classes
/// in `dir/photos`, preprocessed to `size x size`.
pub fn tiny_set(
    dir: &Path,
    classes: usize,
    per_class: usize,
    size: u32,
) -> (Arc<ImageSet>, PreprocessConfig) {
    let photos = gemstones_testkit::tiny_photos(dir, classes, per_class);
    let pre = PreprocessConfig { size, ..PreprocessConfig::default() };
    let set = preprocess_folder(&scan(&photos).unwrap(), &pre, &|_| {}, &gemstones_dataset::StopFlag::new())
        .unwrap()
        .set;
    (Arc::new(set), pre)
}
