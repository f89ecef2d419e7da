//! Training, checkpoints, resumption, interruption, NaN handling and
//! prediction on a small synthetic set.
use std::path::Path;
use std::sync::Arc;

use gemstones::augment::AugmentConfig;
use gemstones::dataset::synth::{SynthConfig, write_synthetic_set};
use gemstones::dataset::{ImageSet, PreprocessConfig, preprocess_folder, scan};
use gemstones::model::*;

fn tiny_set(dir: &Path) -> (Arc<ImageSet>, PreprocessConfig) {
    let synth = SynthConfig {
        per_class: 10,
        min_size: 40,
        max_size: 56,
        classes: gemstones::dataset::synth::default_classes().into_iter().take(3).collect(),
        ..SynthConfig::default()
    };
    write_synthetic_set(dir, &synth).unwrap();
    let pre = PreprocessConfig { size: 36, ..PreprocessConfig::default() };
    let p = preprocess_folder(&scan(dir).unwrap(), &pre, &|_| {}, &StopFlag::new()).unwrap();
    assert!(p.problems.is_empty());
    (Arc::new(p.set), pre)
}

fn tiny_model() -> ModelConfig {
    ModelConfig::Resnet(ResNetConfig {
        input_size: 32,
        stem: vec![8, 8, 16],
        widths: vec![16, 32],
        blocks: vec![1, 1],
        dropout: 0.1,
    })
}

fn tiny_train(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 8,
        lr: 3e-3,
        augment: AugmentConfig::tutorial(),
        precision: Precision::F32,
        // Every training in this test binary uses one libtorch thread: the
        // count is one per process and tests run at once, and libtorch's
        // round-off depends on it, so another count would break the
        // bit-for-bit comparisons of whichever tests ran beside it.
        threads: Some(1),
        ..TrainConfig::strong()
    }
}

fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let mut t: Vec<(String, Vec<f32>)> = tch::Tensor::read_safetensors(dir.join("last/weights.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
        .collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

/// Train into `dir` to the end (resuming what is there).
fn train_to_end(
    model: &ModelConfig,
    cfg: &TrainConfig,
    set: &Arc<ImageSet>,
    pre: &PreprocessConfig,
    dir: &Path,
) -> TrainReport {
    Trainer::new(model.clone(), cfg.clone()).unwrap().progress(false).run(set.clone(), pre, dir).unwrap()
}

/// Train into `dir`, raising the stop flag from the first epoch's callback.
fn interrupted_after_one_epoch(
    model: ModelConfig,
    cfg: TrainConfig,
    set: &Arc<ImageSet>,
    pre: &PreprocessConfig,
    dir: &Path,
) -> TrainReport {
    let flag = StopFlag::new();
    let f = flag.clone();
    Trainer::new(model, cfg)
        .unwrap()
        .progress(false)
        .stop_flag(flag)
        .on_epoch(move |_| f.stop())
        .run(set.clone(), pre, dir)
        .unwrap()
}

#[test]
fn training_is_deterministic_resumable_and_interruptible() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, pre) = tiny_set(&tmp.path().join("photos"));
    let full = tmp.path().join("full");
    let r = train_to_end(&tiny_model(), &tiny_train(3), &set, &pre, &full);
    assert_eq!((r.stop, r.history.len(), r.images), (StopReason::Completed, 3, (24, 6)));
    for f in [
        "config.json",
        "classes.json",
        "best.safetensors",
        "last/weights.safetensors",
        "last/optimizer.safetensors",
        "last/state.json",
        "history.json",
        "history.csv",
        "curves.png",
    ] {
        assert!(full.join(f).is_file(), "{f}");
    }
    assert_eq!(image::open(full.join("curves.png")).unwrap().width(), 1200);

    // Interrupted after the first epoch (the flag is raised from the epoch
    // callback), then resumed: the same history and the same weights.
    let part = tmp.path().join("part");
    let r1 = interrupted_after_one_epoch(tiny_model(), tiny_train(3), &set, &pre, &part);
    assert_eq!((r1.stop, r1.history.len()), (StopReason::Interrupted, 1));
    let r2 = train_to_end(&tiny_model(), &tiny_train(3), &set, &pre, &part);
    assert!(r2.resumed);
    assert_eq!(r2.history.len(), 3);
    let strip = |h: &[EpochStats]| {
        h.iter().map(|e| (e.epoch, e.train_loss, e.train_acc, e.val_loss, e.val_top1)).collect::<Vec<_>>()
    };
    assert_eq!(strip(&r2.history), strip(&r.history));
    assert_eq!(weights(&part), weights(&full));

    // Starting over in a directory with a checkpoint is refused, not done.
    let err = Trainer::new(tiny_model(), tiny_train(3))
        .unwrap()
        .progress(false)
        .resume(false)
        .run(set.clone(), &pre, &part)
        .unwrap_err();
    assert!(err.to_string().contains("checkpoint"), "{err}");
    // Another architecture in the same directory is refused too.
    let other = ModelConfig::Resnet(ResNetConfig {
        input_size: 32,
        stem: vec![8, 8, 16],
        widths: vec![24],
        blocks: vec![1],
        dropout: 0.1,
    });
    assert!(
        Trainer::new(other, tiny_train(3)).unwrap().progress(false).run(set.clone(), &pre, &part).is_err()
    );
}

#[test]
fn resuming_with_other_settings_is_refused_and_a_longer_constant_run_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, pre) = tiny_set(&tmp.path().join("photos"));
    let part = tmp.path().join("part");
    interrupted_after_one_epoch(tiny_model(), tiny_train(3), &set, &pre, &part);
    let config = std::fs::read(part.join("config.json")).unwrap();
    let resume = |cfg: TrainConfig| {
        Trainer::new(tiny_model(), cfg).unwrap().progress(false).run(set.clone(), &pre, &part)
    };
    for (cfg, named) in [
        (TrainConfig { lr: 1e-2, ..tiny_train(3) }, "lr 0.003 -> 0.01"),
        (TrainConfig { batch_size: 4, ..tiny_train(3) }, "batch_size 8 -> 4"),
        (TrainConfig { precision: Precision::Bf16, ..tiny_train(3) }, "precision"),
        // One-cycle depends on the run's length: more epochs are refused.
        (tiny_train(5), "epochs 3 -> 5"),
    ] {
        let err = resume(cfg).unwrap_err().to_string();
        assert!(err.contains(named) && err.contains("other settings"), "{err}");
        assert_eq!(std::fs::read(part.join("config.json")).unwrap(), config, "config.json was overwritten");
    }
    // The thread count is not a setting that refuses a resume. (None, not
    // another count: libtorch's count is one per process, and the other
    // tests here compare runs bit for bit at one thread.)
    let r = resume(TrainConfig { threads: None, ..tiny_train(3) }).unwrap();
    assert_eq!(r.history.len(), 3);
    // Asked for explicitly, other settings are accepted.
    let changed = Trainer::new(tiny_model(), TrainConfig { lr: 1e-2, ..tiny_train(3) })
        .unwrap()
        .progress(false)
        .allow_changed_settings(true)
        .run(set.clone(), &pre, &part);
    assert!(changed.is_ok(), "{changed:?}");

    // With a constant rate, 2 epochs resumed to 3 are the 3-epoch run.
    let constant = |epochs| TrainConfig { schedule: Schedule::Constant, ..tiny_train(epochs) };
    let full = train_to_end(&tiny_model(), &constant(3), &set, &pre, &tmp.path().join("full"));
    let short = tmp.path().join("short");
    train_to_end(&tiny_model(), &constant(2), &set, &pre, &short);
    let longer = train_to_end(&tiny_model(), &constant(3), &set, &pre, &short);
    let losses = |h: &[EpochStats]| h.iter().map(|e| e.train_loss).collect::<Vec<_>>();
    assert_eq!(losses(&longer.history), losses(&full.history));
    assert_eq!(weights(&short), weights(&tmp.path().join("full")));
}

#[test]
fn a_moving_average_of_the_weights_is_validated_and_kept_without_changing_the_training() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, pre) = tiny_set(&tmp.path().join("photos"));
    let last_epoch = |ema| TrainConfig { kept_weights: KeptWeights::LastEpoch, ema, ..tiny_train(3) };
    let averaging = last_epoch(Some(Ema { decay: 0.9 }));
    let (plain_dir, averaged_dir) = (tmp.path().join("plain"), tmp.path().join("averaged"));
    let plain = train_to_end(&tiny_model(), &last_epoch(None), &set, &pre, &plain_dir);
    let averaged = train_to_end(&tiny_model(), &averaging, &set, &pre, &averaged_dir);

    // The optimizer trains the same weights: the same losses, the same checkpoint.
    let losses = |h: &[EpochStats]| h.iter().map(|e| e.train_loss).collect::<Vec<_>>();
    assert_eq!(losses(&averaged.history), losses(&plain.history));
    assert_eq!(weights(&averaged_dir), weights(&plain_dir));
    assert!(!plain_dir.join("last/ema.safetensors").exists());

    // The average is what is kept, and what validation scored.
    let kept = tensors(&averaged_dir.join("best.safetensors"));
    let average = tensors(&averaged_dir.join("last/ema.safetensors"));
    let trained = tensors(&averaged_dir.join("last/weights.safetensors"));
    let same = |a: &tch::Tensor, b: &tch::Tensor| a.equal(b);
    assert!(kept.iter().all(|(name, t)| same(t, &average[name])));
    assert!(kept.iter().any(|(name, t)| !same(t, &trained[name])), "the kept weights are the trained ones");
    let (_, val_idx) = split_indices(&set, &averaging).unwrap();
    let scored = evaluate(&Classifier::load(&averaged_dir).unwrap(), &set, Some(&val_idx)).unwrap();
    let last = averaged.history.last().unwrap();
    assert_eq!(Some(scored.top1), last.val_top1);
    assert_ne!(last.val_loss, plain.history.last().unwrap().val_loss);

    // Interrupted and resumed, the average continues where it was.
    let part = tmp.path().join("part");
    interrupted_after_one_epoch(tiny_model(), averaging.clone(), &set, &pre, &part);
    let resumed = train_to_end(&tiny_model(), &averaging, &set, &pre, &part);
    assert!(resumed.resumed);
    assert_eq!(
        resumed.history.iter().map(|e| e.val_loss).collect::<Vec<_>>(),
        averaged.history.iter().map(|e| e.val_loss).collect::<Vec<_>>()
    );
    let resumed_kept = tensors(&part.join("best.safetensors"));
    assert!(kept.iter().all(|(name, t)| same(t, &resumed_kept[name])));

    // A decay outside 0.9..1 is refused by name.
    let bad = TrainConfig { ema: Some(Ema { decay: 0.5 }), ..tiny_train(3) };
    assert!(Trainer::new(tiny_model(), bad).err().unwrap().to_string().contains("ema.decay"));
}

#[test]
fn progressive_resizing_grows_the_input_and_resumes_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, pre) = tiny_set(&tmp.path().join("photos"));
    let model = ModelConfig::Resnet(ResNetConfig {
        input_size: 48,
        stem: vec![8, 8, 16],
        widths: vec![16, 32],
        blocks: vec![1, 1],
        dropout: 0.1,
    });
    let cfg =
        TrainConfig { progressive: Some(ProgressiveResize { start_size: 32, ramp: 0.67 }), ..tiny_train(3) };
    let full = tmp.path().join("full");
    let r = train_to_end(&model, &cfg, &set, &pre, &full);
    assert_eq!(r.history.iter().map(|e| e.input_size).collect::<Vec<_>>(), [32, 32, 48]);
    assert!(r.history.iter().all(|e| e.val_top1.is_some()));
    // Interrupted in the small-image phase and resumed: the same run.
    let part = tmp.path().join("part");
    let r1 = interrupted_after_one_epoch(model.clone(), cfg.clone(), &set, &pre, &part);
    assert_eq!(r1.history.len(), 1);
    let r2 = train_to_end(&model, &cfg, &set, &pre, &part);
    let sizes_losses = |h: &[EpochStats]| h.iter().map(|e| (e.input_size, e.train_loss)).collect::<Vec<_>>();
    assert_eq!(sizes_losses(&r2.history), sizes_losses(&r.history));
    assert_eq!(weights(&part), weights(&full));
    // The tutorial CNN's dense layer fixes its input size: refused.
    let tut = ModelConfig::Tutorial(TutorialCnnConfig { input_size: 64, ..Default::default() });
    let err =
        Trainer::new(tut, cfg).unwrap().progress(false).run(set, &pre, &tmp.path().join("t")).unwrap_err();
    assert!(err.to_string().contains("progressive"), "{err}");
}

#[test]
fn early_stopping_stops_after_patience_epochs_without_improvement() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, pre) = tiny_set(&tmp.path().join("photos"));
    // No later epoch can improve on the first by 100: with patience 2 the
    // run stops after the second epoch without improvement (Keras' meaning).
    let cfg = TrainConfig {
        early_stopping: Some(EarlyStopping { patience: 2, min_delta: 100.0 }),
        ..tiny_train(10)
    };
    let r = Trainer::new(tiny_model(), cfg)
        .unwrap()
        .progress(false)
        .run(set, &pre, &tmp.path().join("m"))
        .unwrap();
    assert_eq!((r.stop, r.history.len(), r.best_epoch), (StopReason::EarlyStopped, 3, 1));
}

#[test]
fn a_loss_that_turns_nan_stops_with_the_last_good_checkpoint_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, pre) = tiny_set(&tmp.path().join("photos"));
    let dir = tmp.path().join("model");
    train_to_end(&tiny_model(), &tiny_train(1), &set, &pre, &dir);
    let before = weights(&dir);
    // Continue with an absurd learning rate: the weights blow up.
    let wild = TrainConfig {
        lr: 1e12,
        schedule: Schedule::Constant,
        grad_clip: None,
        label_smoothing: 0.0,
        ..tiny_train(4)
    };
    let err = Trainer::new(tiny_model(), wild)
        .unwrap()
        .progress(false)
        .allow_changed_settings(true)
        .run(set.clone(), &pre, &dir)
        .unwrap_err();
    assert!(matches!(err, Error::NonFiniteLoss { .. }), "{err}");
    assert!(err.to_string().contains("last good checkpoint kept"));
    assert_eq!(weights(&dir), before);
    assert!(before.iter().all(|(_, v)| v.iter().all(|x| x.is_finite())));
}

#[test]
fn a_model_directory_predicts_and_bad_ones_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let (set, pre) = tiny_set(&photos);
    let dir = tmp.path().join("model");
    train_to_end(&tiny_model(), &tiny_train(2), &set, &pre, &dir);

    // Moved to another place (another machine), it still loads.
    let moved = tmp.path().join("elsewhere");
    std::fs::rename(&dir, &moved).unwrap();
    let clf = Classifier::load(&moved).unwrap().with_tta(true);
    assert_eq!(clf.classes().names(), ["Emerald", "Ruby", "Sapphire"]);
    let file = scan(&photos).unwrap().files[0].path.clone();
    let preds = clf.predict_file(&file, 2).unwrap();
    assert_eq!(preds.len(), 2);
    assert!(preds[0].probability >= preds[1].probability);
    let sum: f64 = clf.predict_file(&file, 3).unwrap().iter().map(|p| p.probability).sum();
    assert!((sum - 1.0).abs() < 1e-4, "{sum}");
    // At another input side: the native side changes nothing, a larger one
    // (the whole 36-pixel cached image, not resized to 32) another input.
    let all: Vec<usize> = (0..set.len()).collect();
    let native = clf.probabilities_of_set(&set, &all).unwrap();
    let at = |side: u32| Classifier::load(&moved).unwrap().with_tta(true).with_input_size(side);
    assert_eq!(at(32).unwrap().probabilities_of_set(&set, &all).unwrap(), native);
    let at_36 = at(36).unwrap();
    assert_eq!(at_36.spec().model.input_size(), 36);
    assert_ne!(at_36.probabilities_of_set(&set, &all).unwrap(), native);
    assert_eq!(at_36.predict_file(&file, 3).unwrap().len(), 3);
    let err = at(16).unwrap_err().to_string();
    assert!(err.contains("16x16") && err.contains("best.safetensors"), "{err}");
    // A config.json asking for a network no one could build is refused by
    // name before anything is allocated.
    let mdir = ModelDir::new(&moved);
    let trained_spec = mdir.read_spec().unwrap();
    mdir.write_spec(&ModelSpec {
        model: trained_spec.model.clone().with_input_size(100_000),
        ..trained_spec.clone()
    })
    .unwrap();
    let err = Classifier::load(&moved).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("config.json") && err.contains("input_size 100000"), "{err}");
    mdir.write_spec(&trained_spec).unwrap();
    let batch = clf.predict_files(&[file.clone(), tmp.path().join("nope.jpg")], 1);
    assert!(batch[0].1.is_ok() && batch[1].1.as_ref().unwrap_err().to_string().contains("nope.jpg"));
    let eval = evaluate(&clf, &set, None).unwrap();
    assert_eq!(eval.images, 30);
    assert_eq!(eval.confusion.iter().flatten().sum::<u32>(), 30);
    let files = eval.write(&tmp.path().join("eval"), &set, 12).unwrap();
    // An index beyond the set is an error naming it, not a panic.
    let beyond = evaluate(&clf, &set, Some(&[0, 30])).unwrap_err().to_string();
    assert!(beyond.contains("image 30") && beyond.contains("30 images"), "{beyond}");
    assert!(set.image(30).is_err() && set.to_rgb_image(30).is_none());
    let metrics: serde_json::Value = serde_json::from_slice(&std::fs::read(&files.metrics).unwrap()).unwrap();
    assert_eq!(metrics["images"], 30);
    assert!(image::open(&files.confusion_png).is_ok() && image::open(&files.misclassified_png).is_ok());
    assert!(image::open(&files.top_losses_png).is_ok());
    // The top losses are every image here (30 < TOP_LOSSES_KEPT), highest
    // first, each the cross-entropy of its true class; the wrong ones are
    // exactly the misclassified.
    assert_eq!(eval.top_losses.len(), 30);
    assert!(eval.top_losses.windows(2).all(|w| w[0].loss >= w[1].loss));
    let mean_loss = eval.top_losses.iter().map(|l| l.loss).sum::<f64>() / 30.0;
    assert!((mean_loss - eval.loss).abs() < 1e-4, "{mean_loss} vs {}", eval.loss);
    let wrong = eval.top_losses.iter().filter(|l| l.true_class != l.predicted).count();
    assert_eq!(wrong, eval.misclassified.len());
    let interpretation: gemstones::model::Interpretation =
        serde_json::from_slice(&std::fs::read(&files.interpretation).unwrap()).unwrap();
    assert_eq!(interpretation, eval.interpret(gemstones::model::DEFAULT_MIN_CONFUSED));
    let confused_csv = std::fs::read_to_string(&files.most_confused_csv).unwrap();
    assert_eq!(confused_csv.lines().count(), 1 + interpretation.most_confused.len());

    // Missing, corrupt and mismatched files give errors naming the file.
    let e = Classifier::load(&tmp.path().join("nothing")).unwrap_err().to_string();
    assert!(e.contains("config.json"), "{e}");
    std::fs::write(moved.join("best.safetensors"), b"not safetensors").unwrap();
    let e = Classifier::load(&moved).unwrap_err().to_string();
    assert!(e.contains("best.safetensors"), "{e}");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(moved.join("config.json")).unwrap()).unwrap();
    spec["classes"].as_array_mut().unwrap().push("Opal".into());
    std::fs::write(moved.join("config.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    std::fs::remove_file(moved.join("best.safetensors")).unwrap();
    let e = Classifier::load(&moved).unwrap_err().to_string();
    assert!(e.contains("classes.json") || e.contains("shape"), "{e}");
}

fn tensors(file: &Path) -> std::collections::BTreeMap<String, tch::Tensor> {
    tch::Tensor::read_safetensors(file).unwrap().into_iter().collect()
}

#[test]
fn fine_tuning_lite0_trains_the_head_first_then_everything_and_resumes_the_same() {
    let Some(pretrained) = gemstones_testkit::lite0_weights() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (set, pre) = tiny_set(&tmp.path().join("photos"));
    let model = ModelConfig::lite0().with_input_size(32);
    let cfg = TrainConfig {
        lr: 2e-3,
        pretrained: Some(pretrained.clone()),
        fine_tune: Some(FineTune {
            frozen_epochs: 1,
            first_lr_mult: 0.1,
            last_lr_mult: 0.5,
            frozen_stages: 0,
            keep_bn_statistics: false,
            unfrozen_lr_mult: 0.5,
        }),
        optimizer: OptimizerConfig {
            decay_norms_and_biases: false,
            weight_decay: 0.01,
            ..tiny_train(1).optimizer
        },
        ..tiny_train(3)
    };
    let imagenet = PretrainedWeights::read(&pretrained).unwrap();

    // Interrupted after the frozen epoch: only the classifier moved; the
    // body, batch-norm statistics included, is still ImageNet's.
    let part = tmp.path().join("part");
    let r1 = interrupted_after_one_epoch(model.clone(), cfg.clone(), &set, &pre, &part);
    assert_eq!(r1.history.len(), 1);
    let after_frozen = tensors(&part.join("last/weights.safetensors"));
    assert_eq!(after_frozen["_fc.weight"].size(), [3, 1280], "a new head for our 3 classes");
    for name in
        ["_conv_stem.weight", "_blocks.7._depthwise_conv.weight", "_bn1.running_mean", "_bn1.running_var"]
    {
        assert!(after_frozen[name].equal(imagenet.get(name).unwrap()), "{name} changed while frozen");
    }

    // Resumed into the unfrozen phase: everything learns.
    let r2 = train_to_end(&model, &cfg, &set, &pre, &part);
    assert!(r2.resumed && r2.history.len() == 3);
    let last = tensors(&part.join("last/weights.safetensors"));
    for name in ["_conv_stem.weight", "_blocks.7._depthwise_conv.weight", "_bn1.running_mean"] {
        assert!(!last[name].equal(imagenet.get(name).unwrap()), "{name} did not change once unfrozen");
    }

    // The same as an uninterrupted run, step for step (the optimizer's
    // fresh start at the unfreezing is part of the run, not of resuming).
    let full = tmp.path().join("full");
    let r = train_to_end(&model, &cfg, &set, &pre, &full);
    let strip = |h: &[EpochStats]| h.iter().map(|e| (e.train_loss, e.val_loss)).collect::<Vec<_>>();
    assert_eq!(strip(&r.history), strip(&r2.history));
    assert_eq!(weights(&full), weights(&part));

    // Leading stages kept frozen after the frozen epochs: the stem and the
    // first MBConv stage stay ImageNet's, the second stage learns.
    let ft2 = FineTune { frozen_stages: 2, ..cfg.fine_tune.unwrap() };
    let partly = tmp.path().join("partly");
    Trainer::new(model.clone(), TrainConfig { fine_tune: Some(ft2), epochs: 2, ..cfg.clone() })
        .unwrap()
        .progress(false)
        .run(set.clone(), &pre, &partly)
        .unwrap();
    let w = tensors(&partly.join("last/weights.safetensors"));
    for name in [
        "_conv_stem.weight",
        "_bn0.running_mean",
        "_blocks.0._depthwise_conv.weight",
        "_blocks.0._bn1.running_var",
    ] {
        assert!(w[name].equal(imagenet.get(name).unwrap()), "{name} of a frozen stage changed");
    }
    for name in ["_blocks.1._depthwise_conv.weight", "_blocks.1._bn1.running_var", "_conv_head.weight"] {
        assert!(!w[name].equal(imagenet.get(name).unwrap()), "{name} of a trained stage did not change");
    }

    // Batch-norm statistics kept (Keras' advice): after the unfreezing the
    // whole body learns, its scales and shifts too, but every running
    // mean and variance stays ImageNet's.
    let ft3 = FineTune { keep_bn_statistics: true, ..cfg.fine_tune.unwrap() };
    let kept = tmp.path().join("kept");
    Trainer::new(model.clone(), TrainConfig { fine_tune: Some(ft3), epochs: 2, ..cfg.clone() })
        .unwrap()
        .progress(false)
        .run(set.clone(), &pre, &kept)
        .unwrap();
    let w = tensors(&kept.join("last/weights.safetensors"));
    for name in ["_bn0.running_mean", "_blocks.7._bn1.running_var", "_bn1.running_mean"] {
        assert!(w[name].equal(imagenet.get(name).unwrap()), "{name} changed with the statistics kept");
    }
    for name in ["_conv_stem.weight", "_bn0.weight", "_blocks.7._bn1.bias", "_conv_head.weight"] {
        assert!(!w[name].equal(imagenet.get(name).unwrap()), "{name} did not learn with the statistics kept");
    }

    // The model directory predicts without the pretrained file.
    let spec = std::fs::read_to_string(full.join("config.json")).unwrap();
    assert!(!spec.contains(".pth"), "config.json refers to the pretrained file: {spec}");
    let clf = Classifier::load(&full).unwrap();
    let eval = evaluate(&clf, &set, None).unwrap();
    assert_eq!(eval.images, 30);
    // It learned: on its photos (without augmentation) the loss is below
    // chance, ln 3 for three classes. (The per-epoch training loss of nine
    // augmented steps is too noisy to compare.)
    assert!(eval.loss < 3f64.ln(), "loss {} after fine-tuning", eval.loss);
}

#[test]
fn fine_tuning_needs_a_pretrainable_network_and_a_real_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, pre) = tiny_set(&tmp.path().join("photos"));
    let ft = FineTune {
        frozen_epochs: 1,
        first_lr_mult: 0.1,
        last_lr_mult: 0.5,
        frozen_stages: 0,
        keep_bn_statistics: false,
        unfrozen_lr_mult: 1.0,
    };
    let err = Trainer::new(tiny_model(), TrainConfig { fine_tune: Some(ft), ..tiny_train(2) })
        .unwrap()
        .progress(false)
        .run(set.clone(), &pre, &tmp.path().join("a"))
        .unwrap_err();
    assert!(err.to_string().contains("fine_tune needs a pretrained network"), "{err}");
    let bad = tmp.path().join("weights.pth");
    std::fs::write(&bad, b"PK\x03\x04 not really a zip").unwrap();
    let cfg = TrainConfig { pretrained: Some(bad.clone()), fine_tune: Some(ft), ..tiny_train(2) };
    let err = Trainer::new(ModelConfig::lite0().with_input_size(32), cfg)
        .unwrap()
        .progress(false)
        .run(set, &pre, &tmp.path().join("b"))
        .unwrap_err();
    assert!(err.to_string().contains("weights.pth"), "{err}");
    // A frozen phase as long as the run is refused up front.
    let cfg = TrainConfig { fine_tune: Some(FineTune { frozen_epochs: 2, ..ft }), ..tiny_train(2) };
    assert!(cfg.validate().is_err());
}

/// The trainer's validation split keeps near-duplicate images on one side.
#[test]
fn the_validation_split_never_scores_a_copy_of_a_training_image() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let synth = SynthConfig {
        per_class: 10,
        min_size: 120,
        max_size: 160,
        classes: gemstones::dataset::synth::default_classes().into_iter().take(2).collect(),
        ..SynthConfig::default()
    };
    write_synthetic_set(&photos, &synth).unwrap();
    // Three resized copies of each of the first class's first four photos.
    let class = scan(&photos).unwrap().classes.names()[0].clone();
    let originals: Vec<_> = scan(&photos)
        .unwrap()
        .files
        .iter()
        .filter(|f| f.class == 0)
        .take(4)
        .map(|f| f.path.clone())
        .collect();
    for (n, p) in originals.iter().enumerate() {
        let img = image::open(p).unwrap().to_rgb8();
        for (k, scale) in [90u32, 75, 60].into_iter().enumerate() {
            let (w, h) = (img.width() * scale / 100, img.height() * scale / 100);
            let copy = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
            copy.save(photos.join(&class).join(format!("copy-{n}-{k}.png"))).unwrap();
        }
    }
    let pre = PreprocessConfig { size: 48, ..PreprocessConfig::default() };
    let set = preprocess_folder(&scan(&photos).unwrap(), &pre, &|_| {}, &StopFlag::new()).unwrap().set;
    let groups = gemstones::dataset::near_duplicate_groups(set.hashes(), 4);
    assert!(groups.len() >= 4 && groups.iter().all(|g| g.len() >= 4), "{groups:?}");
    let cfg = TrainConfig { val_fraction: 0.5, ..TrainConfig::strong() };
    let (train, val) = split_indices(&set, &cfg).unwrap();
    for g in &groups {
        assert!(g.iter().all(|i| train.contains(i)) || g.iter().all(|i| val.contains(i)), "{g:?} split");
    }
    // Image by image (the tutorial's way), some copy lands on each side.
    let (train, val) = split_indices(&set, &TrainConfig { near_duplicates: None, ..cfg }).unwrap();
    assert!(groups.iter().any(|g| g.iter().any(|i| train.contains(i)) && g.iter().any(|i| val.contains(i))));
}

#[test]
fn training_on_one_class_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let photos = crate::support::tiny_photos(dir.path(), 1, 4);
    let pre = PreprocessConfig { size: 36, ..PreprocessConfig::default() };
    let set = preprocess_folder(&scan(&photos).unwrap(), &pre, &|_| {}, &StopFlag::new()).unwrap().set;
    let out = dir.path().join("model");
    let err = Trainer::new(tiny_model(), tiny_train(1))
        .unwrap()
        .progress(false)
        .run(Arc::new(set), &pre, &out)
        .unwrap_err();
    assert!(err.to_string().contains("holds 1 class(es): a classifier needs at least 2"), "{err}");
    assert!(!out.exists(), "the trainer wrote into the model directory before refusing");
}

/// k-fold cross-validation: every photo is scored exactly once, by a fold
/// that never trained on it, with the last epoch's weights; a run stopped
/// in fold 2 resumes there and ends with the scores of an unbroken run.
#[test]
fn cross_validation_scores_each_photo_once_and_resumes_fold_by_fold() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, pre) = tiny_set(&tmp.path().join("photos"));
    let cfg = TrainConfig { val_fraction: 0.0, ..tiny_train(2) };
    let cv = |dir: &Path, stop: Option<StopFlag>| {
        let mut c = CrossValidation::new(tiny_model(), cfg.clone(), 3).unwrap().progress(false);
        if let Some(flag) = stop {
            let f = flag.clone();
            c = c.stop_flag(flag).on_epoch(move |fold, _| {
                if fold == 2 {
                    f.stop()
                }
            });
        }
        c.run(set.clone(), &pre, dir).unwrap()
    };
    let whole = cv(&tmp.path().join("cv"), None);
    assert!(whole.complete);
    assert_eq!(whole.scores.len(), 3);
    let mut scored = Vec::new();
    for s in &whole.scores {
        let fold_dir = tmp.path().join(format!("cv/fold-{}", s.fold));
        let fold_cfg =
            TrainConfig { cross_val: Some(CrossValFold { fold: s.fold, folds: 3 }), ..cfg.clone() };
        let (train, val) = split_indices(&set, &fold_cfg).unwrap();
        assert!(val.iter().all(|i| !train.contains(i)));
        assert_eq!((train.len(), val.len()), (s.training_images, s.validation_images));
        scored.extend(val.iter().copied());
        let spec = ModelDir::new(&fold_dir).read_spec().unwrap();
        assert_eq!(
            spec.validation,
            Some(HeldOut::CrossValFold {
                fold: s.fold,
                folds: 3,
                training_images: train.len(),
                validation_images: val.len()
            })
        );
        // Kept: the last epoch, not the best on the fold it is scored on.
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fold_dir.join("last/state.json")).unwrap()).unwrap();
        assert_eq!(state["best_epoch"], 2);
        let eval = evaluate(&Classifier::load(&fold_dir).unwrap(), &set, Some(&val)).unwrap();
        assert_eq!(eval.top1, s.scores.top1);
    }
    scored.sort_unstable();
    assert_eq!(scored, (0..set.len()).collect::<Vec<_>>(), "each photo scored once");
    let top1: Vec<f64> = whole.scores.iter().map(|s| s.scores.top1).collect();
    assert!((whole.mean.top1 - top1.iter().sum::<f64>() / 3.0).abs() < 1e-12);
    let csv = std::fs::read_to_string(whole.csv_path()).unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(csv.lines().nth(4).unwrap().starts_with("mean,"), "{csv}");
    let json: CrossValReport = serde_json::from_slice(&std::fs::read(whole.json_path()).unwrap()).unwrap();
    assert_eq!(json.scores, whole.scores);

    let dir = tmp.path().join("cv-stopped");
    let stopped = cv(&dir, Some(StopFlag::new()));
    assert!(!stopped.complete);
    // Everything but the time taken.
    let results = |scores: &[FoldScore]| -> Vec<String> {
        scores
            .iter()
            .map(|s| format!("{} {} {:?} {}", s.fold, s.validation_images, s.scores, s.epochs))
            .collect()
    };
    assert_eq!(results(&stopped.scores), results(&whole.scores[..1]));
    let fold1 = std::fs::read(dir.join("fold-1/last/state.json")).unwrap();
    let resumed = cv(&dir, None);
    assert!(resumed.complete);
    assert_eq!(results(&resumed.scores), results(&whole.scores), "resumed folds score as an unbroken run");
    assert_eq!(std::fs::read(dir.join("fold-1/last/state.json")).unwrap(), fold1, "fold 1 trained again");

    // Another recipe in the same folder is refused by the fold's checkpoint.
    let other = CrossValidation::new(tiny_model(), TrainConfig { lr: 1e-2, ..cfg.clone() }, 3).unwrap();
    let err = other.progress(false).run(set.clone(), &pre, &dir).unwrap_err();
    assert!(err.to_string().contains("lr 0.003 -> 0.01"), "{err}");
    // val_fraction and folds both choosing validation photos is refused.
    assert!(CrossValidation::new(tiny_model(), tiny_train(2), 3).is_err());
}

/// Finished cross-validation runs scored together, without training: fold
/// by fold, the ensemble of their networks is the average of their
/// probabilities on the photos that fold held out; a run paired with itself
/// scores as it did alone; runs on other folds are refused. An ensemble
/// directory loads as one `Classifier`, which refuses to export.
#[test]
fn cross_validation_runs_score_together_as_an_ensemble() {
    let tmp = tempfile::tempdir().unwrap();
    let (set, pre) = tiny_set(&tmp.path().join("photos"));
    let cfg = TrainConfig { val_fraction: 0.0, ..tiny_train(1) };
    let cv = |name: &str, cfg: TrainConfig| {
        let dir = tmp.path().join(name);
        CrossValidation::new(tiny_model(), cfg, 2)
            .unwrap()
            .progress(false)
            .run(set.clone(), &pre, &dir)
            .unwrap();
        dir
    };
    let a = cv("a", cfg.clone());
    let b = cv("b", TrainConfig { lr: 1e-2, ..cfg.clone() });
    let alone: CrossValReport =
        serde_json::from_slice(&std::fs::read(a.join("crossval.json")).unwrap()).unwrap();
    let top1 = |r: &CrossValReport| r.scores.iter().map(|s| s.scores.top1).collect::<Vec<_>>();

    let twice =
        score_runs(&[a.clone(), a.clone()], &set, Scoring::default(), &tmp.path().join("aa")).unwrap();
    assert_eq!(top1(&twice), top1(&alone), "a network averaged with itself is itself");

    let both = score_runs(&[a.clone(), b.clone()], &set, Scoring::default(), &tmp.path().join("ab")).unwrap();
    assert!(both.complete && both.scores.len() == 2 && both.runs == [a.clone(), b.clone()]);
    for s in &both.scores {
        let fold = |run: &Path| Classifier::load(&run.join(format!("fold-{}", s.fold))).unwrap();
        let fold_cfg =
            TrainConfig { cross_val: Some(CrossValFold { fold: s.fold, folds: 2 }), ..cfg.clone() };
        let (_, val) = split_indices(&set, &fold_cfg).unwrap();
        let (pa, pb) = (
            fold(&a).probabilities_of_set(&set, &val).unwrap(),
            fold(&b).probabilities_of_set(&set, &val).unwrap(),
        );
        let ensemble = Classifier::ensemble(vec![fold(&a), fold(&b)]).unwrap();
        assert_eq!(ensemble.members(), 2);
        let averaged = ensemble.probabilities_of_set(&set, &val).unwrap();
        let gap = (averaged - (pa + pb) / 2.0).abs().max().double_value(&[]);
        assert!(gap < 1e-6, "fold {}: the ensemble is not the members' average ({gap})", s.fold);
        assert_eq!(evaluate(&ensemble, &set, Some(&val)).unwrap().top1, s.scores.top1);
        assert_eq!(s.validation_images, val.len());
    }
    assert!(tmp.path().join("ab/crossval.csv").is_file());

    let only_a = std::slice::from_ref(&a);
    let with_tta = Scoring { tta: true, ..Scoring::default() };
    let tta = score_runs(only_a, &set, with_tta, &tmp.path().join("a-tta")).unwrap();
    let fold1 = || Classifier::load(&a.join("fold-1")).unwrap();
    let (_, val) = split_indices(
        &set,
        &TrainConfig { cross_val: Some(CrossValFold { fold: 1, folds: 2 }), ..cfg.clone() },
    )
    .unwrap();
    assert!(tta.tta && tta.input_size.is_none());
    assert_eq!(tta.scores[0].scores.top1, evaluate(&fold1().with_tta(true), &set, Some(&val)).unwrap().top1);

    // At another input side: each fold network predicts at that side.
    let at_36 = Scoring { input_size: Some(36), ..Scoring::default() };
    let larger = score_runs(only_a, &set, at_36, &tmp.path().join("a-36")).unwrap();
    assert_eq!(larger.input_size, Some(36));
    let fold1_at_36 = fold1().with_input_size(36).unwrap();
    assert_eq!(fold1_at_36.spec().model.input_size(), 36);
    assert_eq!(larger.scores[0].scores.top1, evaluate(&fold1_at_36, &set, Some(&val)).unwrap().top1);

    let other_folds = cv("c", TrainConfig { seed: cfg.seed + 1, ..cfg.clone() });
    let err =
        score_runs(&[a.clone(), other_folds], &set, Scoring::default(), &tmp.path().join("ac")).unwrap_err();
    assert!(err.to_string().contains("runs must share their folds"), "{err}");

    // An ensemble directory: one Classifier over its members.
    let dir = tmp.path().join("ensemble");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = EnsembleSpec { members: vec!["../a/fold-1".into(), "../b/fold-1".into()] };
    std::fs::write(dir.join(ENSEMBLE_FILE), serde_json::to_vec(&spec).unwrap()).unwrap();
    let loaded = Classifier::load(&dir).unwrap();
    assert_eq!(loaded.members(), 2);
    let err = loaded.export(&tmp.path().join("export")).unwrap_err();
    assert!(err.to_string().contains("ensemble of 2 networks"), "{err}");
    assert!(!tmp.path().join("export").exists());
    std::fs::write(dir.join(ENSEMBLE_FILE), r#"{"members": ["../nowhere"]}"#).unwrap();
    let err = Classifier::load(&dir).unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
}
