//! The tutorial's whole workflow in one call: photographs -> dataset ->
//! augmentation -> training -> evaluation -> prediction -> a report.
//!
//! The default needs no internet and no data: it renders a small synthetic
//! gem catalogue, serves it on loopback as a minerals.net-shaped website,
//! and scrapes it like the real one. Every stage is idempotent, so running
//! again with the same run folder resumes where a previous run stopped
//! (the scrape from its manifest, the training from its checkpoint).
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use gemstones_augment::{ImageView, preview};
use gemstones_dataset::synth::{SynthConfig, default_classes, write_synthetic_set};
use gemstones_dataset::{
    ClassTable, DEFAULT_MAX_DISTANCE, DecodeLimits, ProblemKind, RenameConfig, SplitConfig, SplitRatios,
    TransferMode, count_tree, cross_split_duplicates, near_duplicate_sheet, rename_until, scan, split_folder,
    verify, without_near_copies,
};
use gemstones_model::{Classifier, EpochStats, Precision, Prediction, StopFlag, Trainer, evaluate};
use gemstones_scrape::{DemoSite, FetchConfig, ScrapeConfig, Scraper, SiteProfile};
use serde::{Deserialize, Serialize};

use crate::cli::{EmptyClasses, Preset};
use crate::report::{Headline, Report, Section};

/// Where the photographs come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PhotoSource {
    /// Render a synthetic catalogue, serve it on loopback, scrape it.
    Demo {
        /// Number of classes (at most 8).
        classes: usize,
        /// Images per class.
        per_class: usize,
    },
    /// A folder of class folders (copied into the run folder first: the
    /// original is never renamed or changed).
    Photos {
        /// The folder.
        dir: PathBuf,
    },
    /// Scrape a live site with a built-in or file profile (needs internet).
    Site {
        /// The profile.
        profile: Box<SiteProfile>,
        /// WebDriver URL for browser-rendered profiles.
        webdriver: Option<String>,
        /// At most this many classes.
        max_classes: Option<usize>,
        /// At most this many images per class.
        max_per_class: Option<usize>,
    },
}

/// Everything the workflow does, with the tutorial's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowConfig {
    /// The run folder; everything is written inside it.
    pub run_dir: PathBuf,
    /// The photographs.
    pub source: PhotoSource,
    /// Model and training preset.
    pub preset: Preset,
    /// Epochs (default: the preset's, or 25 on the demo set).
    pub epochs: Option<usize>,
    /// Network input side (default: the preset's, or 96 on the demo set).
    pub input_size: Option<u32>,
    /// Side of the preprocessed images (default: the preset's, or input
    /// size + 1/6 on the demo set).
    pub image_size: Option<u32>,
    /// Seed of everything random.
    pub seed: u64,
    /// Train share of the train/test split (the tutorial's 0.9).
    pub train_fraction: f64,
    /// Test images to predict and show.
    pub predictions: usize,
    /// libtorch threads.
    pub threads: Option<usize>,
    /// Compute precision (default: the preset's; bf16 for the networks
    /// trained from scratch, f32 for EfficientNet-Lite, whose depthwise
    /// convolutions train faster in f32 here).
    pub precision: Option<Precision>,
    /// HTTP manners of the scrape.
    pub fetch: FetchConfig,
    /// Show progress bars on a terminal.
    pub progress: bool,
}

impl WorkflowConfig {
    /// The default: the demo catalogue (8 classes x 40 images, among them
    /// look-alikes such as ruby and red garnet), the ResNet preset sized for
    /// a few minutes of CPU.
    pub fn demo(run_dir: impl Into<PathBuf>) -> Self {
        Self {
            run_dir: run_dir.into(),
            source: PhotoSource::Demo { classes: 8, per_class: 40 },
            preset: Preset::Resnet,
            epochs: None,
            input_size: None,
            image_size: None,
            seed: 1337,
            train_fraction: 0.9,
            predictions: 6,
            threads: None,
            precision: None,
            fetch: FetchConfig { per_host_rps: 50.0, concurrency: 8, ..FetchConfig::default() },
            progress: true,
        }
    }
}

/// A failure, naming the stage it happened in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// A stage failed.
    #[error("{stage}: {source}")]
    Stage {
        /// The stage (`scrape`, `split`, `train`, ...).
        stage: &'static str,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The run folder was made with other settings.
    #[error("{path}: made with other settings ({reason}); use another run folder")]
    Mismatch {
        /// The recorded settings.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// Stopped by Ctrl-C; run again with the same folder to resume.
    #[error("stopped; run again with the same run folder to resume")]
    Stopped,
}

fn at<E: std::error::Error + Send + Sync + 'static>(stage: &'static str) -> impl FnOnce(E) -> WorkflowError {
    move |e| WorkflowError::Stage { stage, source: Box::new(e) }
}

/// What the workflow produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkflowOutcome {
    /// The HTML report.
    pub report: PathBuf,
    /// Test images evaluated.
    pub test_images: usize,
    /// Top-1 accuracy on the test split.
    pub test_top1: f64,
    /// Top-5 accuracy on the test split.
    pub test_top5: f64,
    /// Test images without a near-copy in the training data.
    pub clean_test_images: usize,
    /// Top-1 accuracy on those ("clean test"; NaN when there are none).
    pub clean_test_top1: f64,
    /// The trained model directory.
    pub model_dir: PathBuf,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Run the workflow. `say` receives one line per step (for printing).
pub fn run(
    cfg: &WorkflowConfig,
    stop: StopFlag,
    say: &mut dyn FnMut(&str),
) -> Result<WorkflowOutcome, WorkflowError> {
    let started = Instant::now();
    let run = &cfg.run_dir;
    std::fs::create_dir_all(run).map_err(at("setup"))?;
    check_settings(cfg)?;
    let mut report = Report::new("gemstones workflow");
    let photos = run.join("photos");

    // 1-3. Photographs: demo catalogue served and scraped, a folder, or a site.
    let t = Instant::now();
    let photos_done = run.join(".stages").join("photos");
    if photos_done.exists() {
        say(&format!(
            "photographs: already collected by an earlier run (delete {} to collect again)",
            photos_done.display()
        ));
    } else {
        match &cfg.source {
            PhotoSource::Demo { classes, per_class } => {
                let synth = SynthConfig {
                    classes: default_classes().into_iter().take((*classes).clamp(2, 8)).collect(),
                    per_class: *per_class,
                    seed: cfg.seed,
                    ..SynthConfig::default()
                };
                let catalogue = run.join("catalogue");
                let files = write_synthetic_set(&catalogue, &synth).map_err(at("render demo catalogue"))?;
                say(&format!(
                    "rendered {} synthetic gem photographs of {} classes into {}",
                    files.len(),
                    synth.classes.len(),
                    catalogue.display()
                ));
                let site = DemoSite::start(&catalogue).map_err(at("serve demo catalogue"))?;
                say(&format!("serving them on {} as a minerals.net-shaped catalogue", site.start_url()));
                let profile = SiteProfile::minerals_net_at(site.start_url());
                let summary = scrape(profile, cfg, None, None, None, &photos, &stop)?;
                say(&format!(
                    "scraped {} pages: {} images found, {} saved, {} already there, {} duplicates, failures {:?}",
                    summary.pages,
                    summary.images_found,
                    summary.saved,
                    summary.already_done,
                    summary.duplicates,
                    summary.failed
                ));
                report.push(Section::scrape(&summary, Some(site.start_url().as_str())));
            }
            PhotoSource::Photos { dir } => {
                let folder = scan(dir).map_err(at("scan photos"))?;
                let out = split_folder(
                    &folder,
                    run.join("photos-import"),
                    &SplitConfig {
                        ratios: SplitRatios::new([("all", 1.0)]).map_err(at("copy photos"))?,
                        ..SplitConfig::default()
                    },
                )
                .map_err(at("copy photos"))?;
                if !photos.exists() {
                    std::fs::rename(run.join("photos-import/all"), &photos).map_err(at("copy photos"))?;
                }
                say(&format!(
                    "copied {} photographs of {} classes from {}",
                    out.files.iter().map(|f| f.1.len()).sum::<usize>(),
                    folder.classes.len(),
                    dir.display()
                ));
            }
            PhotoSource::Site { profile, webdriver, max_classes, max_per_class } => {
                let summary = scrape(
                    (**profile).clone(),
                    cfg,
                    webdriver.clone(),
                    *max_classes,
                    *max_per_class,
                    &photos,
                    &stop,
                )?;
                say(&format!(
                    "scraped {}: {} saved, failures {:?}",
                    profile.start_url, summary.saved, summary.failed
                ));
                report.push(Section::scrape(&summary, Some(profile.start_url.as_str())));
            }
        }
        if stop.is_stopped() {
            return Err(WorkflowError::Stopped);
        }
        std::fs::create_dir_all(run.join(".stages")).map_err(at("setup"))?;
        std::fs::write(&photos_done, b"").map_err(at("setup"))?;
    }
    report.timing("photographs", t.elapsed().as_secs_f64());

    // 4. Verify, rename, split, count.
    let t = Instant::now();
    let folder = scan(&photos).map_err(at("scan"))?;
    let checked = verify(&folder, &DecodeLimits::default());
    let dups = checked.duplicates();
    // Drawn now, before renaming (the sheet's captions are these names).
    let near = checked.near_duplicates(DEFAULT_MAX_DISTANCE);
    let sheet = run.join("near-duplicates.png");
    let sheet = if near.is_empty() {
        None
    } else {
        near_duplicate_sheet(&near, 40, &sheet).map_err(at("near-duplicates"))?;
        Some(sheet.as_path())
    };
    say(&format!(
        "verified {} files: {} images, {} problems, {} duplicate groups",
        folder.files.len(),
        checked.images.len(),
        checked.problems.len(),
        dups.len()
    ));
    // Undecodable files go to a quarantine folder (never deleted).
    // (Names that are not UTF-8 were skipped by the scan and stay where they are.)
    let in_place = |p: &&gemstones_dataset::Problem| {
        !matches!(p.kind, ProblemKind::NameNotUtf8 | ProblemKind::RenamePending)
    };
    for p in checked.problems.iter().filter(in_place) {
        let q = run.join("quarantine").join(p.path.strip_prefix(&photos).unwrap_or(&p.path));
        if let Some(parent) = q.parent() {
            std::fs::create_dir_all(parent).map_err(at("quarantine"))?;
        }
        std::fs::rename(&p.path, &q).map_err(at("quarantine"))?;
    }
    let renamed = match rename_until(&photos, &RenameConfig::default(), &stop) {
        Err(gemstones_dataset::Error::Cancelled) => return Err(WorkflowError::Stopped),
        other => other.map_err(at("rename"))?,
    };
    say(&format!("renamed {} files to <class>_<n>.<ext> ({} already named)", renamed.renamed, renamed.kept));
    let data = run.join("data");
    let split_cfg = SplitConfig {
        ratios: SplitRatios::train_test(cfg.train_fraction).map_err(at("split"))?,
        seed: cfg.seed,
        mode: TransferMode::Copy,
        ..SplitConfig::default()
    };
    let split = split_folder(&scan(&photos).map_err(at("split"))?, &data, &split_cfg).map_err(at("split"))?;
    let (train_dir, test_dir) = (data.join("train"), data.join("test"));
    let (train_folder, test_folder) =
        (scan(&train_dir).map_err(at("count"))?, scan(&test_dir).map_err(at("count"))?);
    let lim = DecodeLimits::default();
    let leaks = cross_split_duplicates(&[
        ("train", &verify(&train_folder, &lim)),
        ("test", &verify(&test_folder, &lim)),
    ]);
    let tree = count_tree(&data).map_err(at("count"))?;
    let table = ClassTable::new(&[("train", &train_folder), ("test", &test_folder)]);
    say(&format!(
        "split {:.0}/{:.0} % into {}: {} train, {} test images; {} duplicates across splits",
        cfg.train_fraction * 100.0,
        (1.0 - cfg.train_fraction) * 100.0,
        data.display(),
        table.totals()[0],
        table.totals()[1],
        leaks.len()
    ));
    report.push(Section::dataset(&checked, &dups, &renamed, &split, &tree, &table, &leaks));
    let quality = checked.quality_counts();
    say(&format!(
        "{} near-duplicate groups ({} kept on one side of the split); quality flags {quality:?}",
        near.len(),
        split.groups_kept_together,
    ));
    report.push(Section::near_duplicates(&near, split.groups_kept_together, &quality, sheet));
    report.timing("dataset", t.elapsed().as_secs_f64());

    // 5. Preprocess and cache; augmentation preview.
    let t = Instant::now();
    let (model_cfg, mut train_cfg, mut pre) = cfg.preset.configs();
    let demo = matches!(cfg.source, PhotoSource::Demo { .. });
    let input = cfg.input_size.unwrap_or(if demo { 96 } else { model_cfg.input_size() });
    let model_cfg = model_cfg.with_input_size(input);
    pre.size = cfg.image_size.unwrap_or(if demo { input + input / 6 } else { pre.size.max(input) });
    train_cfg.epochs = cfg.epochs.unwrap_or(if demo { 25 } else { train_cfg.epochs });
    if demo {
        // 25 epochs at 96 px: too short a run for small images first to pay.
        train_cfg.progressive = None;
    }
    train_cfg.seed = cfg.seed;
    train_cfg.threads = cfg.threads;
    train_cfg.precision = cfg.precision.unwrap_or(train_cfg.precision);
    crate::cli::check_pretrained(&train_cfg).map_err(at("train"))?;
    let cache_dir = run.join("cache");
    let (train_set, _) =
        crate::cli::prepare(&train_dir, &pre, &cache_dir.join("train.cache"), EmptyClasses::LeaveOut)
            .map_err(at("preprocess train"))?;
    let (test_set, _) =
        crate::cli::prepare(&test_dir, &pre, &cache_dir.join("test.cache"), EmptyClasses::LeaveOut)
            .map_err(at("preprocess test"))?;
    say(&format!(
        "preprocessed (gem crop, {0}x{0}) and cached {1} train and {2} test images in {3}",
        pre.size,
        train_set.set.len(),
        test_set.set.len(),
        cache_dir.display()
    ));
    let preview_png = run.join("augment_preview.png");
    if !train_set.set.is_empty() {
        let img =
            ImageView::new(train_set.set.image(0).map_err(at("augmentation preview"))?, pre.size, pre.size)
                .map_err(at("augmentation preview"))?;
        preview(img, &train_cfg.augment, cfg.seed, 6, &preview_png).map_err(at("augmentation preview"))?;
        say(&format!("augmentation preview: {}", preview_png.display()));
    }
    report.push(Section::augment(&preview_png, &train_cfg.augment));
    report.timing("preprocess", t.elapsed().as_secs_f64());

    // 6. Train.
    let t = Instant::now();
    let model_dir = run.join("model");
    let set = Arc::new(train_set.set);
    let mut epochs: Vec<EpochStats> = Vec::new();
    say(&format!(
        "training {} ({}x{} input) for {} epochs, batch {}, {:?}",
        model_cfg.name(),
        input,
        input,
        train_cfg.epochs,
        train_cfg.batch_size,
        train_cfg.precision
    ));
    let trained = Trainer::new(model_cfg.clone(), train_cfg.clone())
        .map_err(at("train"))?
        .stop_flag(stop.clone())
        .progress(cfg.progress)
        .on_epoch(|e| {
            epochs.push(e.clone());
            say(&format!(
                "  epoch {:3}: loss {:.3} acc {:.3} | val loss {} top-1 {} | {:.1} s",
                e.epoch,
                e.train_loss,
                e.train_acc,
                e.val_loss.map_or("-".into(), |v| format!("{v:.3}")),
                e.val_top1.map_or("-".into(), |v| format!("{v:.3}")),
                e.seconds
            ))
        })
        .run(set.clone(), &pre, &model_dir)
        .map_err(at("train"))?;
    if trained.stop == gemstones_model::StopReason::Interrupted {
        return Err(WorkflowError::Stopped);
    }
    say(&format!(
        "trained: best epoch {} of {}, {:.0} s; curves: {}",
        trained.best_epoch,
        trained.history.len(),
        trained.seconds,
        model_dir.join("curves.png").display()
    ));
    report.push(Section::training(&trained, &model_cfg, &train_cfg, &model_dir.join("curves.png")));
    report.timing("training", t.elapsed().as_secs_f64());

    // 7. Evaluate on the test split; predict a few test images.
    let t = Instant::now();
    let clf = Classifier::load(&model_dir).map_err(at("evaluate"))?.with_tta(true);
    let eval = evaluate(&clf, &test_set.set, None).map_err(at("evaluate"))?;
    let eval_dir = run.join("eval");
    let files = eval.write(&eval_dir, &test_set.set, 36).map_err(at("evaluate"))?;
    say(&format!(
        "test split ({} images): top-1 {:.3}, top-5 {:.3}, macro F1 {:.3}; {}",
        eval.images,
        eval.top1,
        eval.top5,
        eval.macro_f1,
        eval_dir.display()
    ));
    // The same, without test photos that have a near-copy in the training data.
    let clean = without_near_copies(&test_set.set.hashes, &set.hashes, DEFAULT_MAX_DISTANCE);
    let clean_eval = if clean.is_empty() {
        None
    } else {
        Some(evaluate(&clf, &test_set.set, Some(&clean)).map_err(at("evaluate"))?)
    };
    if let Some(c) = &clean_eval {
        say(&format!(
            "clean test ({} of {} images, no near-copy in train): top-1 {:.3}, top-5 {:.3}, macro F1 {:.3}",
            c.images, eval.images, c.top1, c.top5, c.macro_f1
        ));
    }
    let picks: Vec<PathBuf> = test_folder
        .files
        .iter()
        .step_by((test_folder.files.len() / cfg.predictions.max(1)).max(1))
        .take(cfg.predictions)
        .map(|f| f.path.clone())
        .collect();
    let predictions: Vec<(PathBuf, String, Vec<Prediction>)> = clf
        .predict_files(&picks, 3)
        .into_iter()
        .zip(&picks)
        .filter_map(|((p, r), orig)| {
            let truth = orig
                .parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            r.ok().map(|preds| (p, truth, preds))
        })
        .collect();
    for (p, truth, preds) in &predictions {
        let top: Vec<String> =
            preds.iter().map(|x| format!("{} {:.0}%", x.class, 100.0 * x.probability)).collect();
        say(&format!(
            "  predict {} (true {truth}): {}",
            p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            top.join(", ")
        ));
    }
    crate::report::write_json(&run.join("predictions.json"), &predictions).map_err(at("predict"))?;
    report.headline(Headline {
        test_top1: eval.top1,
        test_top5: eval.top5,
        macro_f1: eval.macro_f1,
        test_images: eval.images,
        clean_test: clean_eval.as_ref().map(|c| (c.images, c.top1)),
        classes: clf.classes().len(),
        training_seconds: trained.history.iter().map(|e| e.seconds).sum(),
        model: format!(
            "{}, {} parameters, {input}x{input} input, {:?}",
            model_cfg.name(),
            crate::report::thousands(trained.parameters),
            train_cfg.precision
        ),
        files: vec![
            ("model directory (predict, evaluate, export)".into(), model_dir.clone()),
            ("test metrics".into(), files.metrics.clone()),
            ("most confused".into(), files.most_confused_csv.clone()),
            ("predictions".into(), run.join("predictions.json")),
        ],
    });
    report.push(Section::evaluation(&eval, clean_eval.as_ref(), &files, &predictions, run));
    report.timing("evaluation", t.elapsed().as_secs_f64());

    let html = run.join("report.html");
    report.write(&html, run).map_err(at("report"))?;
    Ok(WorkflowOutcome {
        report: html,
        test_images: eval.images,
        test_top1: eval.top1,
        test_top5: eval.top5,
        clean_test_images: clean.len(),
        clean_test_top1: clean_eval.as_ref().map_or(f64::NAN, |c| c.top1),
        model_dir,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn scrape(
    profile: SiteProfile,
    cfg: &WorkflowConfig,
    webdriver: Option<String>,
    max_classes: Option<usize>,
    max_per_class: Option<usize>,
    out: &Path,
    stop: &StopFlag,
) -> Result<gemstones_scrape::ScrapeSummary, WorkflowError> {
    let sc = ScrapeConfig {
        fetch: cfg.fetch.clone(),
        webdriver,
        max_classes,
        max_images_per_class: max_per_class,
        progress: cfg.progress,
        ..ScrapeConfig::default()
    };
    let scraper = Scraper::new(profile, sc).map_err(at("scrape"))?.stop_flag(stop.clone());
    scraper.run_blocking(out).map_err(at("scrape"))
}

/// Record the settings in `workflow.json`; refuse a run folder made with
/// other settings (resuming it would mix two experiments).
fn check_settings(cfg: &WorkflowConfig) -> Result<(), WorkflowError> {
    let path = cfg.run_dir.join("workflow.json");
    let mut mine = serde_json::to_value(cfg).map_err(at("settings"))?;
    // Progress bars, thread counts and where the folder is do not change
    // results.
    for k in ["progress", "threads", "run_dir"] {
        mine.as_object_mut().map(|o| o.remove(k));
    }
    if path.exists() {
        let old: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).map_err(at("settings"))?).map_err(at("settings"))?;
        if old != mine {
            let diff: Vec<String> = mine
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| old.get(k.as_str()) != Some(v))
                .map(|(k, _)| k.clone())
                .collect();
            return Err(WorkflowError::Mismatch { path, reason: format!("{} differ", diff.join(", ")) });
        }
        return Ok(());
    }
    crate::report::write_json(&path, &mine).map_err(at("settings"))
}
