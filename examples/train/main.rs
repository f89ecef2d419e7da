//! Train a gem classifier from a folder of class folders into a model
//! directory: preprocessing cache, stratified validation split,
//! augmentation, checkpoints (resumable; Ctrl-C stops cleanly), history and
//! curves, and an evaluation of the best weights on the validation images.
//! `--val-fraction 0` is the final fit on every photo (last epoch's
//! weights); `--folds 5` scores the recipe by 5-fold cross-validation
//! instead of training one model.
#[path = "../shared/mod.rs"]
mod shared;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use gemstones::dataset::outputs::{FileKind, FolderKind, Outputs};
use gemstones::dataset::{EmptyClasses, prepare_folder, scan};
use gemstones::model::{
    Classifier, CrossValidation, Ema, EpochStats, ModelDir, OptimizerKind, Precision, ProgressiveResize,
    StopReason, Trainer, evaluate, fold_dir, split_indices,
};
use gemstones::presets::{Preset, check_pretrained};
use gemstones_cli::{exit, init_logging, stop_on_ctrl_c};
use shared::preset_parser;

/// SGD's weight decay when --optimizer sgd comes without --weight-decay:
/// L2 as torch.optim.SGD's, so the presets' AdamW decay (0.05) would be far
/// too strong; 5e-4 is the usual fine-tuning value (torchvision, timm).
const SGD_WEIGHT_DECAY: f64 = 5e-4;

#[derive(Parser, Debug)]
#[command(about = "Train a gem classifier from a folder of class folders")]
struct Args {
    /// Folder of class folders (`<Class Name>/*.jpg`).
    #[arg(long)]
    photos: PathBuf,
    /// Model directory to write (resumed if it holds a checkpoint).
    #[arg(long, default_value = "runs/model")]
    out: PathBuf,
    /// Preset: the tutorial's CNN and recipe, the stronger ResNet, or a
    /// fine-tuned EfficientNet-Lite (lite0: the one for real photographs).
    #[arg(long, value_parser = preset_parser(), default_value = "tutorial")]
    preset: Preset,
    /// Epochs (default: the preset's).
    #[arg(value_parser = gemstones_cli::count_in(1, 10000), long)]
    epochs: Option<usize>,
    /// Batch size (default: the preset's, 32).
    #[arg(value_parser = gemstones_cli::count_in(1, 4096), long)]
    batch_size: Option<usize>,
    /// Base learning rate (default: the preset's).
    #[arg(value_parser = gemstones_cli::float_in(1e-8, 10.0), long)]
    lr: Option<f64>,
    /// Network input side in pixels (default: the preset's).
    #[arg(value_parser = clap::value_parser!(u32).range(16..=1024), long)]
    input_size: Option<u32>,
    /// Side of the cached, preprocessed images (default: the preset's).
    #[arg(value_parser = clap::value_parser!(u32).range(16..=4096), long)]
    image_size: Option<u32>,
    /// Progressive resizing: train the first epochs at this side, growing
    /// in steps of 16 to the input size (default: the preset's, 80 for
    /// resnet, 160 for the lite presets, off for tutorial; 0 turns it off).
    #[arg(value_parser = gemstones_cli::side_or_off(16, 1024), long)]
    progressive: Option<u32>,
    /// Fraction of the epochs progressive resizing grows over (default: the
    /// preset's, 0.5 for resnet, 0.4 for the lite presets; else 0.5).
    #[arg(value_parser = gemstones_cli::float_in(0.0, 1.0), long)]
    progressive_ramp: Option<f64>,
    /// Validation fraction held out, stratified (default 0.2; 0: the final
    /// fit, on every photo, keeping the last epoch's weights).
    #[arg(value_parser = gemstones_cli::float_in(0.0, 0.9), long)]
    val_fraction: Option<f64>,
    /// Score the recipe by k-fold cross-validation instead: stratified,
    /// near-duplicate-aware folds seeded by --seed; fold i trains into
    /// <out>/fold-i and is scored with its last epoch; <out>/crossval.json
    /// and .csv hold each fold's top-1, top-5, macro F1 and their mean and
    /// sd. Resumable fold by fold.
    #[arg(value_parser = gemstones_cli::count_in(2, 20), long, conflicts_with = "val_fraction")]
    folds: Option<usize>,
    /// Seed of the split, data order, augmentation and weights.
    #[arg(long)]
    seed: Option<u64>,
    /// Compute precision: bf16 (fast on CPUs with AVX512-BF16) or f32.
    #[arg(long)]
    precision: Option<Precision>,
    /// libtorch threads (default: one per core).
    #[arg(value_parser = gemstones_cli::count_in(1, 1024), long)]
    threads: Option<usize>,
    /// Where the preprocessing cache goes (default: `<out>/../<folder name>-<size>.cache`).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Start over instead of resuming a checkpoint in --out (refused if one exists).
    #[arg(long)]
    no_resume: bool,
    /// Evaluate with test-time augmentation (average with the mirror image).
    #[arg(long)]
    tta: bool,
    /// Pretrained checkpoint to start from (PyTorch .pth or .safetensors;
    /// default for the lite presets: the ImageNet weights `make weights`
    /// installs).
    #[arg(long)]
    pretrained: Option<PathBuf>,
    /// Epochs that train only the new classifier before the whole network
    /// (lite presets; default 2).
    #[arg(value_parser = gemstones_cli::count_in(0, 10000), long)]
    frozen_epochs: Option<usize>,
    /// Leading stages of the pretrained body kept frozen after that (lite
    /// presets; default 4 of 9).
    #[arg(value_parser = gemstones_cli::count_in(0, 16), long)]
    frozen_stages: Option<usize>,
    /// Let the unfrozen layers' batch norm update its statistics from the
    /// batches (lite presets keep ImageNet's: Keras' advice, measured
    /// better here).
    #[arg(long)]
    update_bn_statistics: bool,
    /// Multiplier of the learning rate once the body is unfrozen (lite
    /// presets; fastai's fine_tune uses 0.5).
    #[arg(value_parser = gemstones_cli::float_in(1e-6, 100.0), long)]
    unfrozen_lr_mult: Option<f64>,
    /// Resume a checkpoint in --out even with other settings (say, a lower
    /// --lr to train on): without this, a resume under changed settings is
    /// refused, naming each difference.
    #[arg(long)]
    allow_changed_settings: bool,
    /// Keep class folders without any photo as (unlearnable) classes
    /// instead of leaving them out with a warning.
    #[arg(long)]
    keep_empty_classes: bool,
    /// Mixup with this Beta(alpha, alpha) (0 turns it off; default: the
    /// preset's, off).
    #[arg(value_parser = gemstones_cli::float_in(0.0, 100.0), long)]
    mixup: Option<f64>,
    /// Dropout rate before the classifier (default: the preset's).
    #[arg(value_parser = gemstones_cli::float_in(0.0, 0.99), long)]
    dropout: Option<f64>,
    /// Optimizer instead of the preset's: adam, adamw or sgd (Nesterov
    /// momentum 0.9, as `torch.optim.SGD`).
    #[arg(long, value_parser = shared::optimizer_parser())]
    optimizer: Option<OptimizerKind>,
    /// Weight decay of the optimizer (default: the preset's, or 5e-4 with
    /// --optimizer sgd, whose decay is L2 as torch.optim.SGD's; never on
    /// norms and biases unless the preset says so).
    #[arg(value_parser = gemstones_cli::float_in(0.0, 1.0), long)]
    weight_decay: Option<f64>,
    /// Validate and keep an exponential moving average of the weights
    /// with this decay per step (0.9 to 1; timm's model EMA) instead of
    /// the trained weights themselves; 0 turns it off (default: the
    /// preset's, 0.995 for lite0, else off).
    #[arg(value_parser = gemstones_cli::float_in(0.0, 0.99999), long)]
    ema: Option<f64>,
    /// Augmentation settings from a JSON file, replacing the preset's
    /// (the `augment` object of a model directory's `config.json` is one;
    /// fields left out take their "off" values).
    #[arg(long)]
    augment: Option<PathBuf>,
}

fn main() -> anyhow::Result<ExitCode> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    init_logging();
    let a = Args::parse();
    let (mut model, mut train, mut pre) = a.preset.configs();
    if let Some(s) = a.input_size {
        model = model.with_input_size(s);
    }
    if let Some(rate) = a.dropout {
        model = model.with_dropout(rate);
    }
    if let Some(kind) = a.optimizer {
        train.optimizer.kind = kind;
    }
    train.optimizer.weight_decay = match (a.weight_decay, a.optimizer) {
        (Some(wd), _) => wd,
        (None, Some(OptimizerKind::Sgd)) => SGD_WEIGHT_DECAY,
        (None, _) => train.optimizer.weight_decay,
    };
    if let Some(s) = a.image_size {
        pre.size = s;
    }
    train.epochs = a.epochs.unwrap_or(train.epochs);
    train.batch_size = a.batch_size.unwrap_or(train.batch_size);
    train.lr = a.lr.unwrap_or(train.lr);
    train.val_fraction = if a.folds.is_some() { 0.0 } else { a.val_fraction.unwrap_or(train.val_fraction) };
    train.seed = a.seed.unwrap_or(train.seed);
    train.threads = a.threads.or(train.threads);
    match (a.progressive, train.progressive) {
        (Some(0), _) => train.progressive = None,
        (Some(start_size), p) => {
            let ramp = a.progressive_ramp.or(p.map(|p| p.ramp)).unwrap_or(0.5);
            train.progressive = Some(ProgressiveResize { start_size, ramp });
        }
        (None, Some(p)) => {
            train.progressive = Some(ProgressiveResize { ramp: a.progressive_ramp.unwrap_or(p.ramp), ..p })
        }
        (None, None) => {}
    }
    if let Some(p) = &a.pretrained {
        train.pretrained = Some(p.clone());
    }
    if let Some(f) = train.fine_tune.as_mut() {
        f.frozen_epochs = a.frozen_epochs.unwrap_or(f.frozen_epochs);
        f.frozen_stages = a.frozen_stages.unwrap_or(f.frozen_stages);
        f.keep_bn_statistics &= !a.update_bn_statistics;
        f.unfrozen_lr_mult = a.unfrozen_lr_mult.unwrap_or(f.unfrozen_lr_mult);
    }
    if let Some(alpha) = a.mixup {
        train.mixup = (alpha > 0.0).then_some(alpha);
    }
    if let Some(decay) = a.ema {
        train.ema = (decay > 0.0).then_some(Ema { decay });
    }
    if let Some(path) = &a.augment {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        train.augment = serde_json::from_str(&text)
            .with_context(|| format!("{} is not augmentation settings", path.display()))?;
    }
    check_pretrained(&train)?;
    if let Some(p) = a.precision {
        train.precision = p;
    }
    // Settings the flags' ranges cannot judge alone (a validation share
    // that leaves too little to train on) are refused before any work.
    model.validate()?;
    train.validate()?;
    let name =
        a.photos.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "photos".into());
    let cache = a.cache.clone().unwrap_or_else(|| {
        a.out.parent().unwrap_or(&a.out).join(format!("{}-{}.cache", name.replace(' ', "_"), pre.size))
    });
    // The output rule first (exit 2, nothing written): the model directory
    // and the cache lie outside the photos and replace only our own files.
    let inputs = [Some(&a.photos), a.pretrained.as_ref(), a.augment.as_ref()];
    let outputs = Outputs::reading(inputs.into_iter().flatten())?;
    let checked =
        outputs.check_folder(&a.out, FolderKind::MODEL).and_then(|()| outputs.file(&cache, FileKind::Cache));
    if let Err(e) = checked {
        return Ok(exit::usage(e));
    }
    // Refusals that need no preprocessing come before it: nothing (no cache,
    // no model file) is written for a run that cannot start.
    let scanned = scan(&a.photos)?;
    scanned.require_no_pending_rename()?;
    let classes = scanned.without_empty_classes()?.classes.len();
    anyhow::ensure!(
        classes >= 2,
        "{} holds {classes} class(es) with photos: a classifier needs at least 2",
        a.photos.display()
    );
    let model_dirs: Vec<PathBuf> = match a.folds {
        Some(k) => (1..=k).map(|i| fold_dir(&a.out, i)).collect(),
        None => vec![a.out.clone()],
    };
    for dir in model_dirs.iter().filter(|_| !a.no_resume) {
        if let Some(reason) = ModelDir::new(dir).resume_conflict(&model, &pre, None)? {
            anyhow::bail!("{}: {reason}", dir.display());
        }
    }
    outputs.claim_folder(&a.out, FolderKind::MODEL)?;
    let stop = stop_on_ctrl_c();
    let empty = if a.keep_empty_classes { EmptyClasses::Keep } else { EmptyClasses::LeaveOut };
    let (prepared, outcome) = match prepare_folder(&a.photos, &pre, &cache, empty, true, &stop) {
        Err(gemstones::dataset::Error::Cancelled) => {
            eprintln!("stopped while preprocessing (no cache written); run again to build it");
            return Ok(ExitCode::from(exit::INTERRUPTED));
        }
        other => other.with_context(|| format!("preparing {}", a.photos.display()))?,
    };
    println!(
        "dataset: {} images of {} classes ({}x{}; cache {:?}: {})",
        prepared.set.len(),
        prepared.set.classes().len(),
        pre.size,
        pre.size,
        outcome,
        cache.display()
    );
    for p in prepared.problems.iter().take(10) {
        println!("  skipped {p}");
    }
    let set = Arc::new(prepared.set);
    println!(
        "model: {} ({}x{} input), {} epochs, batch {}, lr {}, {:?}",
        model.name(),
        model.input_size(),
        model.input_size(),
        train.epochs,
        train.batch_size,
        train.lr,
        train.precision
    );
    if let Some(folds) = a.folds {
        let cv = CrossValidation::new(model, train, folds)?
            .with_tta(a.tta)
            .stop_flag(stop)
            .on_epoch(|fold, e| println!("fold {fold} {}", epoch_line(e)))
            .run(set, &pre, &a.out)?;
        for s in &cv.scores {
            println!(
                "fold {}: top-1 {:.3}, top-5 {:.3}, macro F1 {:.3} ({} photos held out, {} trained on, {:.0} s)",
                s.fold,
                s.scores.top1,
                s.scores.top5,
                s.scores.macro_f1,
                s.validation_images,
                s.training_images,
                s.train_seconds
            );
        }
        println!("cross-validation: {cv}; {}", cv.json_path().display());
        return Ok(exit::interrupted_if(!cv.complete));
    }
    let report = Trainer::new(model, train.clone())?
        .resume(!a.no_resume)
        .allow_changed_settings(a.allow_changed_settings)
        .stop_flag(stop)
        .on_epoch(|e| println!("{}", epoch_line(e)))
        .run(set.clone(), &pre, &a.out)?;
    println!(
        "{:?} after {} epochs in {:.0} s ({} parameters); best epoch {} (val top-1 {})",
        report.stop,
        report.history.len(),
        report.seconds,
        report.parameters,
        report.best_epoch,
        report.best_val_top1.map_or("-".into(), |v| format!("{:.3}", v))
    );
    let (_, val) = split_indices(&set, &train)?;
    if !val.is_empty() {
        let clf = Classifier::load(&a.out)?.with_tta(a.tta);
        let eval = evaluate(&clf, &set, Some(&val))?;
        let files = eval.write(&a.out.join("validation"), &set, 48)?;
        println!(
            "validation ({} images, best weights{}): top-1 {:.3}, top-5 {:.3}, macro F1 {:.3}; {}",
            eval.images,
            if a.tta { ", mirror TTA" } else { "" },
            eval.top1,
            eval.top5,
            eval.macro_f1,
            files.metrics.display()
        );
    }
    if let Some(held_out) = ModelDir::new(&a.out).read_spec()?.validation {
        println!("held out: {held_out}");
    }
    println!("model directory: {}", a.out.display());
    // Exit 130 after Ctrl-C: the checkpoint is saved, a re-run resumes.
    Ok(exit::interrupted_if(report.stop == StopReason::Interrupted))
}

/// One epoch's figures, as each line of the log shows them.
fn epoch_line(e: &EpochStats) -> String {
    format!(
        "epoch {:3} @{} loss {:.4} acc {:.3} | val loss {} top1 {} top5 {} | lr {:.2e} | {:.1}s, {:.1} img/s, data wait {:.1}%",
        e.epoch,
        e.input_size,
        e.train_loss,
        e.train_acc,
        e.val_loss.map_or("-".into(), |v| format!("{v:.4}")),
        e.val_top1.map_or("-".into(), |v| format!("{v:.3}")),
        e.val_top5.map_or("-".into(), |v| format!("{v:.3}")),
        e.lr,
        e.seconds,
        e.images_per_sec,
        100.0 * e.data_wait
    )
}
