//! The ONNX export against the libtorch classifier: for each network family
//! (the tutorial CNN, ResNet, EfficientNet-Lite), a model trained a little
//! (so its batch norms hold real statistics to fold) is exported, loaded by
//! the pure-Rust predictor, and must give the classifier's top-1 on every
//! photo, generated and real, with probabilities within 1e-3.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gemstones_augment::AugmentConfig;
use gemstones_dataset::{PreprocessConfig, StopFlag, preprocess_folder, scan};
use gemstones_model::*;
use gemstones_predict::Predictor;

/// Photos to compare on: the generated training photos and, where the real
/// dataset is present, one photo of each of its first 12 classes.
fn photos(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = scan(dir).unwrap().files.into_iter().map(|f| f.path).collect();
    if let Some(real) = gemstones_testkit::shared_train_dir() {
        let folder = scan(&real).unwrap();
        for class in 0..12u32 {
            if let Some(f) = folder.files.iter().find(|f| f.class == class as usize) {
                files.push(f.path.clone());
            }
        }
    } else {
        gemstones_testkit::skip_or_fail(
            "onnx parity on real photos",
            "../shared/datasets/gemstones/train not found",
        );
    }
    files
}

/// Train `model` two epochs on three generated classes into `dir/model`.
fn trained(dir: &Path, model: ModelConfig, precision: Precision, size: u32) -> PathBuf {
    let photos = gemstones_testkit::tiny_photos(dir, 3, 8);
    let pre = PreprocessConfig { size, ..PreprocessConfig::default() };
    let set = preprocess_folder(&scan(&photos).unwrap(), &pre, &|_| {}, &StopFlag::new()).unwrap().set;
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 8,
        threads: Some(1),
        precision,
        val_fraction: 0.0,
        augment: AugmentConfig::tutorial(),
        ..TrainConfig::strong()
    };
    let out = dir.join("model");
    Trainer::new(model, cfg).unwrap().progress(false).run(Arc::new(set), &pre, &out).unwrap();
    out
}

/// The largest difference of probability between the two paths, after
/// checking they agree on every photo's top-1.
fn compare(clf: &Classifier, onnx: &Predictor, photos: &[PathBuf]) -> f64 {
    let mut worst = 0f64;
    let k = clf.classes().len();
    for (path, result) in clf.predict_files(photos, k) {
        let want = result.unwrap();
        let got = onnx.predict_file(&path, k).unwrap();
        assert_eq!(got[0].class, want[0].class, "{}: top-1 differs ({want:?} vs {got:?})", path.display());
        for w in &want {
            let g = got.iter().find(|g| g.id == w.id).unwrap();
            worst = worst.max((g.probability - w.probability).abs());
        }
    }
    worst
}

fn export_and_compare(name: &str, model: ModelConfig, precision: Precision, size: u32) {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = trained(dir.path(), model, precision, size);
    let clf = Classifier::load(&model_dir).unwrap();
    let export = dir.path().join("export");
    let files = clf.export(&export).unwrap();
    let bytes = std::fs::read(&files.onnx).unwrap();
    assert!(bytes.len() > 1000, "{name}: model.onnx is {} bytes", bytes.len());
    let info: ExportInfo = serde_json::from_slice(&std::fs::read(&files.info).unwrap()).unwrap();
    assert_eq!(info.description.onnx.as_deref(), Some(EXPORT_ONNX));
    let onnx = Predictor::load(&export).unwrap();
    assert_eq!(onnx.classes(), clf.classes().names());
    let photos = photos(&dir.path().join("photos"));
    match precision {
        Precision::F32 => {
            let worst = compare(&clf, &onnx, &photos);
            assert!(worst < 1e-3, "{name}: probabilities differ by up to {worst}");
        }
        Precision::Bf16 => {
            // The export computes in f32: the same weights run in f32 by the
            // classifier give the same answers.
            let spec = model_dir.join("config.json");
            let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&spec).unwrap()).unwrap();
            json["precision"] = "f32".into();
            std::fs::write(&spec, serde_json::to_vec(&json).unwrap()).unwrap();
            let f32_clf = Classifier::load(&model_dir).unwrap();
            let worst = compare(&f32_clf, &onnx, &photos);
            assert!(
                worst < 1e-3,
                "{name} (trained in bf16, exported f32): probabilities differ by up to {worst}"
            );
        }
    }
    // Many photos at once give each photo the answer it gets alone.
    let batch = onnx.predict_files(&photos, 3);
    for (path, result) in batch {
        let alone = onnx.predict_file(&path, 3).unwrap();
        let together = result.unwrap();
        assert_eq!(alone[0].id, together[0].id);
        assert!((alone[0].probability - together[0].probability).abs() < 1e-5);
    }
}

#[test]
fn tutorial_cnn_exports_to_onnx_with_the_classifiers_answers_bf16_included() {
    let model = ModelConfig::Tutorial(TutorialCnnConfig {
        input_size: 64,
        dense: 32,
        ..TutorialCnnConfig::default()
    });
    export_and_compare("tutorial", model.clone(), Precision::F32, 72);
    export_and_compare("tutorial", model, Precision::Bf16, 72);
}

#[test]
fn resnet_exports_to_onnx_with_the_classifiers_answers() {
    export_and_compare("resnet", ModelConfig::Resnet(ResNetConfig::tiny()), Precision::F32, 36);
}

#[test]
fn efficientnet_lite_exports_to_onnx_with_the_classifiers_answers() {
    // Lite0's layers at a small, odd input side: TensorFlow's asymmetric
    // "same" padding on every stride-2 layer.
    let model = ModelConfig::EfficientnetLite(EfficientNetLiteConfig {
        input_size: 67,
        ..EfficientNetLiteConfig::lite0()
    });
    export_and_compare("lite0", model, Precision::F32, 72);
}

#[test]
fn an_odd_resnet_input_exports_its_partial_pooling_windows() {
    let model = ModelConfig::Resnet(ResNetConfig { input_size: 44, ..ResNetConfig::tiny() });
    export_and_compare("resnet at 44", model, Precision::F32, 48);
}
