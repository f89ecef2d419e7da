//! The TorchScript export of each network the project trains, reloaded
//! through tch's `CModule`, gives the classifier's outputs to round-off.
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gemstones_augment::{AugmentConfig, AugmentParams, BatchAugmenter, ImageView, Normalize, Output};
use gemstones_dataset::{ImageSet, PreprocessConfig};
use gemstones_model::{
    Classifier, EfficientNetLiteConfig, ExportInfo, ModelConfig, Precision, ResNetConfig, TrainConfig,
    Trainer, TutorialCnnConfig,
};
use tch::{CModule, Kind, Tensor};

const PREPROCESSED: u32 = 40;

fn train(
    model: ModelConfig,
    precision: Precision,
    pretrained: Option<PathBuf>,
    set: &Arc<ImageSet>,
    pre: &PreprocessConfig,
    dir: &Path,
) {
    let cfg = TrainConfig {
        pretrained,
        epochs: 1,
        batch_size: 5,
        threads: Some(1),
        precision,
        // Not the identity: the module must apply it.
        normalize: Normalize { mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3] },
        ..TrainConfig::strong()
    };
    Trainer::new(model, cfg).unwrap().progress(false).run(set.clone(), pre, dir).unwrap();
}

/// The images as the exported module takes them: resized to the input
/// side, RGB, 0-1, NCHW.
fn module_input(set: &ImageSet, side: u32) -> Tensor {
    let resize = BatchAugmenter::new(AugmentConfig::identity(), 0, side, side).unwrap();
    let all: Vec<usize> = (0..set.len()).collect();
    let views = ImageView::of_set(set, &all).unwrap();
    let mut x = vec![0f32; views.len() * resize.image_len()];
    let params = vec![AugmentParams::identity(); views.len()];
    resize.replay(&views, &params, Output::F32Hwc(&mut x, &Normalize::default())).unwrap();
    Tensor::from_slice(&x)
        .view([views.len() as i64, i64::from(side), i64::from(side), 3])
        .permute([0, 3, 1, 2])
}

fn check_export(model: ModelConfig, precision: Precision, pretrained: Option<PathBuf>, tolerance: f64) {
    let tmp = tempfile::tempdir().unwrap();
    let (set, pre) = common::tiny_set(tmp.path(), 3, 5, PREPROCESSED);
    let model_dir = tmp.path().join("model");
    train(model, precision, pretrained, &set, &pre, &model_dir);
    let clf = Classifier::load(&model_dir).unwrap();
    let files = clf.export(&tmp.path().join("export")).unwrap();

    let json = std::fs::read(&files.info).unwrap();
    let info: ExportInfo = serde_json::from_slice(&json).unwrap();
    // One flat object: what a predictor reads beside what only libtorch
    // uses, so either crate reads the other's fields by name.
    let raw: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert!(raw["classes"].is_array() && raw["input"]["width"].is_u64() && raw["model"].is_object(), "{raw}");
    let description: gemstones_predict::ExportDescription = serde_json::from_slice(&json).unwrap();
    assert_eq!(description, info.description);
    assert_eq!(info.description.classes, clf.spec().classes);
    assert_eq!(info.description.input.width, clf.spec().model.input_size());
    assert_eq!(info.description.normalize_inside, clf.spec().normalize);
    assert_eq!(files.module, tmp.path().join("export").join(&info.module));
    // Portable operations only: the Classifier's fused oneDNN convolution
    // (CPU inference) is not what the trace records.
    let code = traced_code(&files.module);
    assert!(code.contains("torch._convolution("), "{code}");
    assert!(!code.contains("mkldnn"), "the export calls a oneDNN-only kernel: {code}");

    // Reloaded through tch, in another module object, at another batch
    // size than the one traced (2).
    let module = CModule::load(&files.module).unwrap();
    let idx: Vec<usize> = (0..set.len()).collect();
    let expected = clf.probabilities_of_set(&set, &idx).unwrap();
    // The check can fail: the images' predictions differ far more than
    // the tolerance (a network whose outputs ignore its input would pass
    // any export).
    let spread =
        f64::try_from(expected.amax([0], false).f_sub(&expected.amin([0], false)).unwrap().max()).unwrap();
    assert!(spread > 10.0 * tolerance, "predictions hardly depend on the image (spread {spread})");
    let logits =
        tch::no_grad(|| module.forward_ts(&[module_input(&set, info.description.input.width)])).unwrap();
    assert_eq!(logits.size(), [set.len() as i64, 3]);
    let got = logits.softmax(-1, Kind::Float);
    let diff = f64::try_from((&got - &expected).abs().max()).unwrap();
    assert!(diff < tolerance, "{:?} {precision:?}: export differs by {diff}", info.model.name());
}

/// The TorchScript code of an exported module (`<archive>/code/*.py`).
fn traced_code(module: &std::path::Path) -> String {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(module).unwrap()).unwrap();
    let mut code = String::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let name = file.name().unwrap().into_owned();
        if name.contains("/code/") && name.ends_with(".py") {
            std::io::Read::read_to_string(&mut file, &mut code).unwrap();
        }
    }
    code
}

#[test]
fn exported_tutorial_cnn_predicts_like_the_classifier() {
    let model = ModelConfig::Tutorial(TutorialCnnConfig { input_size: 36, dense: 16, dropout: 0.5 });
    check_export(model, Precision::F32, None, 1e-5);
}

#[test]
fn exported_resnet_predicts_like_the_classifier_in_both_precisions() {
    let model = ModelConfig::Resnet(ResNetConfig::tiny());
    check_export(model.clone(), Precision::F32, None, 1e-5);
    check_export(model, Precision::Bf16, None, 1e-3);
}

#[test]
fn exported_efficientnet_lite_predicts_like_the_classifier() {
    // From the ImageNet weights: a freshly initialised body gives nearly
    // the same output for every image.
    let Some(weights) = gemstones_testkit::lite0_weights() else { return };
    let model = ModelConfig::EfficientnetLite(EfficientNetLiteConfig {
        input_size: 32,
        ..EfficientNetLiteConfig::lite0()
    });
    check_export(model, Precision::F32, Some(weights), 1e-5);
}
