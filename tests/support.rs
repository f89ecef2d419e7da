//! Helpers shared by the test binaries (`integration` and `fuzz`).
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gemstones::dataset::{PreprocessConfig, preprocess_folder, scan};
use gemstones::model::{ModelConfig, Precision, ResNetConfig, TrainConfig, Trainer};

pub use gemstones_testkit::tiny_photos;

/// A model directory (`dir/model`) trained for one epoch on two tiny
/// classes: something real to predict with, damage and reload.
pub fn tiny_model_dir(dir: &Path) -> PathBuf {
    tiny_model_dir_seeded(dir, TrainConfig::strong().seed)
}

/// [`tiny_model_dir`] with another seed: another model of the same shape.
pub fn tiny_model_dir_seeded(dir: &Path, seed: u64) -> PathBuf {
    let pre = PreprocessConfig { size: 36, ..PreprocessConfig::default() };
    let set = preprocess_folder(
        &scan(tiny_photos(dir, 2, 6)).unwrap(),
        &pre,
        &|_| {},
        &gemstones::dataset::StopFlag::new(),
    )
    .unwrap()
    .set;
    let model = ModelConfig::Resnet(ResNetConfig::tiny());
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 4,
        threads: Some(1),
        precision: Precision::F32,
        seed,
        ..TrainConfig::strong()
    };
    let out = dir.join("model");
    Trainer::new(model, cfg).unwrap().progress(false).run(Arc::new(set), &pre, &out).unwrap();
    out
}
