//! Helpers shared by this crate's test binaries (each uses some of them).
#![allow(dead_code)]
use std::path::Path;
use std::sync::Arc;

use gemstones_dataset::synth::{SynthConfig, default_classes, write_synthetic_set};
use gemstones_dataset::{ImageSet, PreprocessConfig, preprocess_folder, scan};

/// `per_class` generated photos of each of the first `classes` gem classes
/// in `dir/photos`, preprocessed to `size x size`.
pub fn tiny_set(
    dir: &Path,
    classes: usize,
    per_class: usize,
    size: u32,
) -> (Arc<ImageSet>, PreprocessConfig) {
    let photos = dir.join("photos");
    let synth = SynthConfig {
        per_class,
        min_size: 40,
        max_size: 56,
        classes: default_classes().into_iter().take(classes).collect(),
        ..SynthConfig::default()
    };
    write_synthetic_set(&photos, &synth).unwrap();
    let pre = PreprocessConfig { size, ..PreprocessConfig::default() };
    let set = preprocess_folder(&scan(&photos).unwrap(), &pre, &|_| {}, &gemstones_dataset::StopFlag::new())
        .unwrap()
        .set;
    (Arc::new(set), pre)
}
