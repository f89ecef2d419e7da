//! Crash tests of checkpoint writes: a failpoint at every step of replacing
//! the checkpoint and of every atomic file write makes the training process
//! "die" there (a panic caught here); resuming then ends with exactly the
//! weights and history of an uninterrupted run, and nothing half-written or
//! temporary is left in the model directory.
mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use gemstones_augment::AugmentConfig;
use gemstones_dataset::{ImageSet, PreprocessConfig};
use gemstones_model::{ModelConfig, Precision, ResNetConfig, TrainConfig, TrainReport, Trainer};

fn tiny() -> (ModelConfig, TrainConfig) {
    let model = ModelConfig::Resnet(ResNetConfig::tiny());
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 8,
        augment: AugmentConfig::tutorial(),
        precision: Precision::F32,
        threads: Some(1),
        ..TrainConfig::strong()
    };
    (model, cfg)
}

fn train(set: &Arc<ImageSet>, pre: &PreprocessConfig, dir: &Path) -> TrainReport {
    let (model, cfg) = tiny();
    Trainer::new(model, cfg).unwrap().progress(false).run(set.clone(), pre, dir).unwrap()
}

fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let mut t: Vec<(String, Vec<f32>)> = tch::Tensor::read_safetensors(dir.join("last/weights.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1).to_kind(tch::Kind::Float)).unwrap()))
        .collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

/// Names left in `dir` that a finished run must not leave.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walk(dir) {
        let name = e.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "last.new" || name == "last.old" {
            out.push(e.display().to_string());
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn training_survives_a_crash_at_every_checkpoint_write_step() {
    let scenario = fail::FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let (set, pre) = common::tiny_set(tmp.path(), 3, 8, 36);

    let reference_dir = tmp.path().join("reference");
    let reference = train(&set, &pre, &reference_dir);
    let losses =
        |r: &TrainReport| r.history.iter().map(|e| (e.epoch, e.train_loss, e.val_loss)).collect::<Vec<_>>();

    let mut deaths = 0;
    for point in [
        "modeldir::checkpoint-written",
        "modeldir::last-moved-aside",
        "modeldir::last-replaced",
        "fsutil::write-atomic-synced",
    ] {
        for k in 0.. {
            let dir = tmp.path().join(format!("{}-{k}", point.replace(':', "_")));
            fail::cfg(point, &format!("{k}*off->panic")).unwrap();
            let died = catch_unwind(AssertUnwindSafe(|| train(&set, &pre, &dir))).is_err();
            fail::remove(point);
            if !died {
                break;
            }
            deaths += 1;
            let resumed = train(&set, &pre, &dir);
            assert_eq!(losses(&resumed), losses(&reference), "died at {point} #{k}");
            assert_eq!(weights(&dir), weights(&reference_dir), "died at {point} #{k}");
            assert_eq!(leftovers(&dir), Vec::<String>::new(), "died at {point} #{k}");
        }
    }
    // Two checkpoints, one of them replacing another, and every atomic write.
    assert!(deaths >= 2 + 1 + 2 + 10, "{deaths}");
    scenario.teardown();
}

#[test]
fn a_dead_augmentation_thread_is_an_error_not_a_completed_run() {
    let scenario = fail::FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let (set, pre) = common::tiny_set(tmp.path(), 2, 6, 36);
    // The loader thread panics while making its third batch (epoch 2).
    fail::cfg("loader::batch", "2*off->panic(augmentation broke)").unwrap();
    let (model, cfg) = tiny();
    let dir = tmp.path().join("model");
    let result = Trainer::new(model, cfg).unwrap().progress(false).run(set.clone(), &pre, &dir);
    fail::remove("loader::batch");
    let e = result.expect_err("a run whose loader died must not report success").to_string();
    assert!(e.contains("augmentation thread died") && e.contains("augmentation broke"), "{e}");
    // The first epoch's checkpoint is there to resume from, and resuming
    // finishes the run.
    let resumed = train(&set, &pre, &dir);
    assert_eq!(resumed.history.len(), 2);
    scenario.teardown();
}
