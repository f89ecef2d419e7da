//! Evaluate a trained model on a folder of class folders: top-1, top-5,
//! per-class precision/recall/F1, confusion matrix, misclassified gallery.
//! `--runs A B` scores finished cross-validation runs together instead
//! (an ensemble of their fold networks, or `--tta`), fold by fold, without
//! training.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use gemstones::dataset::EmptyClasses;
use gemstones::dataset::outputs::{FolderKind, Outputs};
use gemstones::dataset::{DEFAULT_MAX_DISTANCE, DecodeLimits, scan, verify, without_near_copies};
use gemstones::dataset::{PreprocessConfig, Preprocessed};
use gemstones::model::{
    Classifier, Interpretation, ModelDir, Scoring, check_runs, evaluate, fold_dir, score_runs,
};
use gemstones_cli::exit;

#[derive(Parser, Debug)]
#[command(about = "Evaluate a model directory on a test folder")]
struct Args {
    /// Model directory (from the train or workflow example; an ensemble
    /// directory with ensemble.json averages its members).
    #[arg(long, required_unless_present = "runs")]
    model: Option<PathBuf>,
    /// Instead: finished cross-validation runs (`train --folds`) made on
    /// --photos with the same seed. Fold i is scored by the average of
    /// every run's fold-i network (with --tta, and their mirror images) on
    /// the photos it held out; <out>/crossval.json and .csv get the scores.
    #[arg(long, num_args = 1.., conflicts_with_all = ["model", "train"])]
    runs: Vec<PathBuf>,
    /// Folder of class folders to evaluate on (with --runs: the photos the
    /// runs trained on).
    #[arg(long)]
    photos: PathBuf,
    /// Output folder for metrics.json, CSVs and PNGs.
    #[arg(long, default_value = "eval")]
    out: PathBuf,
    /// Average with the mirror image (test-time augmentation).
    #[arg(long)]
    tta: bool,
    #[command(flatten)]
    side: gemstones_cli::InputSizeArg,
    /// The training photos: also score the "clean test", the photos that
    /// have no near-copy among them (written to `<out>/clean/`).
    #[arg(long)]
    train: Option<PathBuf>,
    /// Images shown in the misclassified and top-losses galleries.
    #[arg(value_parser = gemstones_cli::count_in(0, 10000), long, default_value_t = 48)]
    gallery: usize,
    /// Confusions a pair needs to be listed as most confused (and to join
    /// two classes into a family) in what is printed here; the files use
    /// 2, as fastai's `most_confused` does.
    #[arg(value_parser = clap::value_parser!(u32).range(1..=1000000), long, default_value_t = gemstones::model::DEFAULT_MIN_CONFUSED)]
    min_confused: u32,
}

impl Args {
    /// How the model (or each fold's networks) predicts.
    fn scoring(&self) -> Scoring {
        Scoring { tta: self.tta, input_size: self.side.input_size }
    }
}

fn main() -> anyhow::Result<ExitCode> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    gemstones_cli::init_logging();
    let a = Args::parse();
    // The output rule first (exit 2): the output folder lies outside the
    // photo folders, holds none, and is new, empty or an earlier evaluation.
    let outputs = Outputs::reading(std::iter::once(&a.photos).chain(&a.train))?;
    if let Err(e) = outputs.check_folder(&a.out, FolderKind::EVALUATION) {
        return Ok(exit::usage(e));
    }
    let Some(model) = &a.model else {
        return score_runs_together(&a, &outputs);
    };
    let clf = Classifier::load(model)?.with_scoring(a.scoring())?;
    // The images are preprocessed exactly as the model's training images were.
    let cache = a.out.join(format!("images-{}.cache", clf.spec().preprocess.size));
    // Refused before anything is written when the photos hold a class the
    // model does not know.
    clf.class_ids_of(&scan(&a.photos)?.without_empty_classes()?.classes)?;
    outputs.claim_folder(&a.out, FolderKind::EVALUATION)?;
    let pre = prepared(&a.photos, &clf.spec().preprocess, &cache)?;
    let e = evaluate(&clf, &pre.set, None)?;
    let files = e.write(&a.out, &pre.set, a.gallery)?;
    println!(
        "{} images: top-1 {:.3}, top-5 {:.3}, macro F1 {:.3}, loss {:.3}",
        e.images, e.top1, e.top5, e.macro_f1, e.loss
    );
    print_interpretation(&e.interpret(a.min_confused));
    println!(
        "wrote {}, {}, {}, {}, {}",
        files.metrics.display(),
        files.interpretation.display(),
        files.confusion_png.display(),
        files.misclassified_png.display(),
        files.top_losses_png.display()
    );
    if let Some(train) = &a.train {
        let train_report = verify(&scan(train)?, &DecodeLimits::default());
        let train_hashes: Vec<_> = train_report.images.iter().map(|i| i.perceptual).collect();
        let clean = without_near_copies(pre.set.hashes(), &train_hashes, DEFAULT_MAX_DISTANCE);
        anyhow::ensure!(
            !clean.is_empty(),
            "every photo has a near-copy in {}: no clean test",
            train.display()
        );
        let c = evaluate(&clf, &pre.set, Some(&clean))?;
        let clean_files = c.write(&a.out.join("clean"), &pre.set, a.gallery)?;
        println!(
            "clean test ({} of {} images without a near-copy in {}): top-1 {:.3}, top-5 {:.3}, macro F1 {:.3}; {}",
            c.images,
            e.images,
            train.display(),
            c.top1,
            c.top5,
            c.macro_f1,
            clean_files.metrics.display()
        );
    }
    // One rule with predict: some inputs could not be read -> 3.
    Ok(exit::problems_if(!pre.problems.is_empty()))
}

/// The photos preprocessed as a model's were (cached in `cache`), the
/// skipped ones printed.
fn prepared(photos: &Path, preprocess: &PreprocessConfig, cache: &Path) -> anyhow::Result<Preprocessed> {
    let (pre, _) = gemstones::dataset::prepare_folder(
        photos,
        preprocess,
        cache,
        EmptyClasses::LeaveOut,
        true,
        // Short enough that Ctrl-C may simply end it: every file is
        // written atomically.
        &gemstones::dataset::StopFlag::new(),
    )?;
    for p in &pre.problems {
        println!("skipped {p}");
    }
    Ok(pre)
}

/// `--runs`: the runs' fold networks scored together, fold by fold.
fn score_runs_together(a: &Args, outputs: &Outputs) -> anyhow::Result<ExitCode> {
    let first = a.runs.first().context("--runs names no run")?;
    check_runs(&a.runs)?;
    // The runs' preprocessing, from a fold's config.json (no network loaded).
    let preprocess = ModelDir::new(fold_dir(first, 1)).read_spec()?.preprocess;
    outputs.claim_folder(&a.out, FolderKind::EVALUATION)?;
    let pre = prepared(&a.photos, &preprocess, &a.out.join(format!("images-{}.cache", preprocess.size)))?;
    let report = score_runs(&a.runs, &pre.set, a.scoring(), &a.out)?;
    for s in &report.scores {
        println!(
            "fold {}: top-1 {:.3}, top-5 {:.3}, macro F1 {:.3} ({} photos held out)",
            s.fold, s.scores.top1, s.scores.top5, s.scores.macro_f1, s.validation_images
        );
    }
    let what = if a.runs.len() > 1 { format!("ensemble of {} runs", a.runs.len()) } else { "one run".into() };
    let at = a.side.input_size.map(|s| format!(", at {s}x{s}")).unwrap_or_default();
    println!(
        "{what}{}{at}: {report}; wrote {}",
        if a.tta { ", mirror TTA" } else { "" },
        report.csv_path().display()
    );
    Ok(exit::problems_if(!pre.problems.is_empty()))
}

fn print_interpretation(i: &Interpretation) {
    println!(
        "most confused (at least {} times): true -> predicted, images, share of the true class",
        i.min_count
    );
    for p in i.most_confused.iter().take(15) {
        println!("  {:>20} -> {:<20} {:>3} {:>5.1} %", p.true_class, p.predicted, p.count, 100.0 * p.share);
    }
    println!("confusable families: classes, images, accuracy inside the family, errors that stay inside");
    for f in &i.families {
        println!(
            "  {} ({} images): {:.1} %, {:.0} %",
            f.classes.join(", "),
            f.images,
            100.0 * f.within_accuracy,
            100.0 * f.errors_inside
        );
    }
    println!("worst classes by F1: class, F1, precision, recall, images");
    for m in i.classes_by_f1.iter().take(10) {
        println!("  {:>20} {:.2} {:.2} {:.2} {:>3}", m.class, m.f1, m.precision, m.recall, m.support);
    }
}
