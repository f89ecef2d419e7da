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
use gemstones_dataset::outputs::{FolderKind, Outputs};
use gemstones_dataset::synth::{SynthConfig, default_classes, write_synthetic_set};
use gemstones_dataset::{
    ClassTable, DEFAULT_MAX_DISTANCE, DecodeLimits, ProblemKind, RenameConfig, SplitConfig, SplitRatios,
    TransferMode, count_tree, cross_split_duplicates, near_duplicate_sheet, rename_until, scan, split_folder,
    verify, without_near_copies,
};
use gemstones_dataset::{EmptyClasses, ImageSet, PreprocessConfig, prepare_folder};
use gemstones_model::{
    Classifier, EpochStats, ModelConfig, Precision, Prediction, StopFlag, TrainConfig, TrainReport, Trainer,
    evaluate,
};
use gemstones_scrape::{DemoSite, FetchConfig, ScrapeConfig, Scraper, SiteProfile};
use serde::{Deserialize, Serialize};

use crate::presets::Preset;
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
    /// Share of the training photos held out for validation (default: the
    /// preset's, 0.2). 0 is the final fit: every training photo trains,
    /// with the preset's (cross-validated) epoch count, and the last
    /// epoch's weights are kept; the test split still scores the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_fraction: Option<f64>,
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
            val_fraction: None,
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
    /// The run folder breaks the output rule (inside the photos, holding
    /// them, or a folder that is not an earlier run); nothing was written.
    #[error(transparent)]
    RefusedOutput(gemstones_dataset::Error),
}

fn at<E: std::error::Error + Send + Sync + 'static>(stage: &'static str) -> impl FnOnce(E) -> WorkflowError {
    move |e| WorkflowError::Stage { stage, source: Box::new(e) }
}

/// A dataset step's result, its cancellation by Ctrl-C as
/// [`WorkflowError::Stopped`], any other error named after `stage`.
fn stopped_or<T>(result: gemstones_dataset::Result<T>, stage: &'static str) -> Result<T, WorkflowError> {
    match result {
        Err(gemstones_dataset::Error::Cancelled) => Err(WorkflowError::Stopped),
        other => other.map_err(at(stage)),
    }
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

/// The demo catalogue's settings, in one place: small images and a short
/// run (25 epochs at 96 px are too short for progressive resizing to pay),
/// sized for a few minutes of CPU.
mod demo {
    /// Network input side.
    pub const INPUT_SIZE: u32 = 96;
    /// Epochs.
    pub const EPOCHS: usize = 25;
    /// Side of the preprocessed images: a sixth above the input, so random
    /// crops keep detail.
    pub fn image_size(input: u32) -> u32 {
        input + input / 6
    }
    /// Photographs rendered per class at most (the synthetic catalogue has
    /// eight looks).
    pub const MAX_CLASSES: usize = 8;
    /// Near-duplicate contact sheet: groups shown at most.
    pub const SHEET_GROUPS: usize = 40;
}

/// Run the workflow. `say` receives one line per step (for printing).
///
/// The stages, each a function below: collect the photographs, build the
/// dataset (verify, quarantine, rename, split, count), preprocess and
/// cache, train, evaluate and predict; then the report.
pub fn run(
    cfg: &WorkflowConfig,
    stop: StopFlag,
    say: &mut dyn FnMut(&str),
) -> Result<WorkflowOutcome, WorkflowError> {
    let started = Instant::now();
    claim_run_dir(cfg)?;
    check_settings(cfg)?;
    let mut w = Stages { cfg, run: &cfg.run_dir, stop, say, report: Report::new("gemstones workflow") };
    let photos = w.timed("photographs", Stages::collect_photos)?;
    let data = w.timed("dataset", |w| w.build_dataset(&photos))?;
    let prepared = w.timed("preprocess", |w| w.preprocess(&data))?;
    let trained = w.timed("training", |w| w.train(&prepared))?;
    let mut outcome = w.timed("evaluation", |w| w.evaluate(&data, &prepared, &trained))?;
    w.report.write(&outcome.report, w.run).map_err(at("report"))?;
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// What every stage shares: the settings, the run folder, Ctrl-C, the
/// printer and the report being assembled.
struct Stages<'a> {
    cfg: &'a WorkflowConfig,
    run: &'a Path,
    stop: StopFlag,
    say: &'a mut dyn FnMut(&str),
    report: Report,
}

/// The dataset stage's result: the split folders.
struct DataSplit {
    train_dir: PathBuf,
    test_dir: PathBuf,
    test_folder: gemstones_dataset::ImageFolder,
}

/// The preprocessing stage's result: the resolved settings and the cached
/// images.
struct Prepared {
    model: ModelConfig,
    train: TrainConfig,
    preprocess: PreprocessConfig,
    train_set: Arc<ImageSet>,
    test_set: ImageSet,
}

/// The training stage's result.
struct Trained {
    model_dir: PathBuf,
    report: TrainReport,
}

impl Stages<'_> {
    fn say(&mut self, line: &str) {
        (self.say)(line)
    }

    /// Run one stage and record its wall time in the report.
    fn timed<T>(
        &mut self,
        name: &str,
        stage: impl FnOnce(&mut Self) -> Result<T, WorkflowError>,
    ) -> Result<T, WorkflowError> {
        let t = Instant::now();
        let out = stage(self)?;
        self.report.timing(name, t.elapsed().as_secs_f64());
        Ok(out)
    }

    fn stopped_check(&self) -> Result<(), WorkflowError> {
        if self.stop.is_stopped() { Err(WorkflowError::Stopped) } else { Ok(()) }
    }

    /// Stages 1-3, the photographs, into `<run>/photos`: the demo catalogue
    /// rendered, served and scraped, a folder copied, or a site scraped.
    /// Done once: a marker records that the folder is complete.
    fn collect_photos(&mut self) -> Result<PathBuf, WorkflowError> {
        let photos = self.run.join("photos");
        let done = self.run.join(".stages").join("photos");
        if done.exists() {
            self.say(&format!(
                "photographs: already collected by an earlier run (delete {} to collect again)",
                done.display()
            ));
            return Ok(photos);
        }
        match &self.cfg.source {
            PhotoSource::Demo { classes, per_class } => self.scrape_demo(*classes, *per_class, &photos)?,
            PhotoSource::Photos { dir } => self.import_photos(dir, &photos)?,
            PhotoSource::Site { profile, webdriver, max_classes, max_per_class } => {
                let sc = ScrapeConfig {
                    webdriver: webdriver.clone(),
                    max_classes: *max_classes,
                    max_images_per_class: *max_per_class,
                    ..self.scrape_config()
                };
                let summary = self.scrape((**profile).clone(), sc, &photos)?;
                self.say(&format!(
                    "scraped {}: {} saved, failures {:?}",
                    profile.start_url, summary.saved, summary.failed
                ));
                self.report.push(Section::scrape(&summary, Some(profile.start_url.as_str())));
            }
        }
        self.stopped_check()?;
        std::fs::create_dir_all(self.run.join(".stages")).map_err(at("setup"))?;
        std::fs::write(&done, b"").map_err(at("setup"))?;
        Ok(photos)
    }

    /// Render the synthetic catalogue, serve it on loopback as a
    /// minerals.net-shaped site, and scrape it like the real one.
    fn scrape_demo(&mut self, classes: usize, per_class: usize, photos: &Path) -> Result<(), WorkflowError> {
        let synth = SynthConfig {
            classes: default_classes().into_iter().take(classes.clamp(2, demo::MAX_CLASSES)).collect(),
            per_class,
            seed: self.cfg.seed,
            ..SynthConfig::default()
        };
        let catalogue = self.run.join("catalogue");
        let files = write_synthetic_set(&catalogue, &synth).map_err(at("render demo catalogue"))?;
        self.say(&format!(
            "rendered {} synthetic gem photographs of {} classes into {}",
            files.len(),
            synth.classes.len(),
            catalogue.display()
        ));
        let site = DemoSite::start(&catalogue).map_err(at("serve demo catalogue"))?;
        self.say(&format!("serving them on {} as a minerals.net-shaped catalogue", site.start_url()));
        let summary =
            self.scrape(SiteProfile::minerals_net_at(site.start_url()), self.scrape_config(), photos)?;
        self.say(&format!(
            "scraped {} pages: {} images found, {} saved, {} already there, {} duplicates, failures {:?}",
            summary.pages,
            summary.images_found,
            summary.saved,
            summary.already_done,
            summary.duplicates,
            summary.failed
        ));
        self.report.push(Section::scrape(&summary, Some(site.start_url().as_str())));
        Ok(())
    }

    /// Copy a folder of class folders in (the original is never renamed or
    /// changed). The copy is a split with a single part, `all`: the split's
    /// recorded plan makes it resumable and crash-safe; the part's folder
    /// then becomes `photos` in one rename.
    fn import_photos(&mut self, dir: &Path, photos: &Path) -> Result<(), WorkflowError> {
        let folder = scan(dir).map_err(at("scan photos"))?;
        let staging = self.run.join("photos-import");
        let copy = SplitConfig {
            ratios: SplitRatios::new([("all", 1.0)]).map_err(at("copy photos"))?,
            // One part: nothing to keep together.
            near_duplicates: None,
            ..SplitConfig::default()
        };
        let out = split_folder(&folder, &staging, &copy).map_err(at("copy photos"))?;
        if !photos.exists() {
            std::fs::rename(staging.join("all"), photos).map_err(at("copy photos"))?;
        }
        self.say(&format!(
            "copied {} photographs of {} classes from {}",
            out.files.iter().map(|f| f.1.len()).sum::<usize>(),
            folder.classes.len(),
            dir.display()
        ));
        Ok(())
    }

    /// The scrape settings every source shares.
    fn scrape_config(&self) -> ScrapeConfig {
        ScrapeConfig { fetch: self.cfg.fetch.clone(), progress: self.cfg.progress, ..ScrapeConfig::default() }
    }

    fn scrape(
        &self,
        profile: SiteProfile,
        sc: ScrapeConfig,
        out: &Path,
    ) -> Result<gemstones_scrape::ScrapeSummary, WorkflowError> {
        let scraper = Scraper::new(profile, sc).map_err(at("scrape"))?.stop_flag(self.stop.clone());
        scraper.run_blocking(out).map_err(at("scrape"))
    }

    /// Stage 4: verify (undecodable files to a quarantine folder, never deleted),
    /// rename to `<class>_<n>.<ext>`, split train/test keeping
    /// near-duplicates together, count, and look for leaks.
    fn build_dataset(&mut self, photos: &Path) -> Result<DataSplit, WorkflowError> {
        let folder = scan(photos).map_err(at("scan"))?;
        let checked = verify(&folder, &DecodeLimits::default());
        let dups = checked.duplicates();
        // Drawn now, before renaming (the sheet's captions are these names).
        let near = checked.near_duplicates(DEFAULT_MAX_DISTANCE);
        let sheet = self.run.join("near-duplicates.png");
        let sheet = if near.is_empty() {
            None
        } else {
            near_duplicate_sheet(&near, demo::SHEET_GROUPS, &sheet).map_err(at("near-duplicates"))?;
            Some(sheet.as_path())
        };
        self.say(&format!(
            "verified {} files: {} images, {} problems, {} duplicate groups",
            folder.files.len(),
            checked.images.len(),
            checked.problems.len(),
            dups.len()
        ));
        self.quarantine(&checked.problems, photos)?;
        let renamed = stopped_or(rename_until(photos, &RenameConfig::default(), &self.stop), "rename")?;
        self.say(&format!(
            "renamed {} files to <class>_<n>.<ext> ({} already named)",
            renamed.renamed, renamed.kept
        ));
        let data = self.run.join("data");
        let split_cfg = SplitConfig {
            ratios: SplitRatios::train_test(self.cfg.train_fraction).map_err(at("split"))?,
            seed: self.cfg.seed,
            mode: TransferMode::Copy,
            ..SplitConfig::default()
        };
        let split =
            split_folder(&scan(photos).map_err(at("split"))?, &data, &split_cfg).map_err(at("split"))?;
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
        self.say(&format!(
            "split {:.0}/{:.0} % into {}: {} train, {} test images; {} duplicates across splits",
            self.cfg.train_fraction * 100.0,
            (1.0 - self.cfg.train_fraction) * 100.0,
            data.display(),
            table.totals()[0],
            table.totals()[1],
            leaks.len()
        ));
        self.report.push(Section::dataset(&checked, &dups, &renamed, &split, &tree, &table, &leaks));
        let quality = checked.quality_counts();
        self.say(&format!(
            "{} near-duplicate groups ({} kept on one side of the split); quality flags {quality:?}",
            near.len(),
            split.groups_kept_together,
        ));
        self.report.push(Section::near_duplicates(&near, split.groups_kept_together, &quality, sheet));
        Ok(DataSplit { train_dir, test_dir, test_folder })
    }

    /// Move undecodable files to `<run>/quarantine` (never deleted). Names
    /// that are not UTF-8 were skipped by the scan and stay where they are.
    fn quarantine(
        &self,
        problems: &[gemstones_dataset::Problem],
        photos: &Path,
    ) -> Result<(), WorkflowError> {
        let movable = |p: &&gemstones_dataset::Problem| {
            !matches!(p.kind, ProblemKind::NameNotUtf8 | ProblemKind::RenamePending)
        };
        for p in problems.iter().filter(movable) {
            let q = self.run.join("quarantine").join(p.path.strip_prefix(photos).unwrap_or(&p.path));
            if let Some(parent) = q.parent() {
                std::fs::create_dir_all(parent).map_err(at("quarantine"))?;
            }
            std::fs::rename(&p.path, &q).map_err(at("quarantine"))?;
        }
        Ok(())
    }

    /// The preset's settings with the workflow's overrides (and the demo's
    /// sizes on the demo catalogue).
    fn settings(&self) -> (ModelConfig, TrainConfig, PreprocessConfig) {
        let cfg = self.cfg;
        let (model, mut train, mut pre) = cfg.preset.configs();
        let on_demo = matches!(cfg.source, PhotoSource::Demo { .. });
        let input = cfg.input_size.unwrap_or(if on_demo { demo::INPUT_SIZE } else { model.input_size() });
        pre.size =
            cfg.image_size.unwrap_or(if on_demo { demo::image_size(input) } else { pre.size.max(input) });
        train.epochs = cfg.epochs.unwrap_or(if on_demo { demo::EPOCHS } else { train.epochs });
        if on_demo {
            train.progressive = None;
        }
        train.val_fraction = cfg.val_fraction.unwrap_or(train.val_fraction);
        train.seed = cfg.seed;
        train.threads = cfg.threads;
        train.precision = cfg.precision.unwrap_or(train.precision);
        (model.with_input_size(input), train, pre)
    }

    /// Stage 5: preprocess (gem crop, resize) and cache both splits; draw the
    /// augmentation preview.
    fn preprocess(&mut self, data: &DataSplit) -> Result<Prepared, WorkflowError> {
        let (model, train, pre) = self.settings();
        crate::presets::check_pretrained(&train).map_err(at("train"))?;
        let cache_dir = self.run.join("cache");
        let cached = |dir: &Path, name: &str| {
            prepare_folder(
                dir,
                &pre,
                &cache_dir.join(name),
                EmptyClasses::LeaveOut,
                self.cfg.progress,
                &self.stop,
            )
        };
        let (train_set, _) = stopped_or(cached(&data.train_dir, "train.cache"), "preprocess train")?;
        let (test_set, _) = stopped_or(cached(&data.test_dir, "test.cache"), "preprocess test")?;
        self.say(&format!(
            "preprocessed (gem crop, {0}x{0}) and cached {1} train and {2} test images in {3}",
            pre.size,
            train_set.set.len(),
            test_set.set.len(),
            cache_dir.display()
        ));
        let preview_png = self.run.join("augment_preview.png");
        if !train_set.set.is_empty() {
            let first = train_set.set.image(0).map_err(at("augmentation preview"))?;
            let img = ImageView::new(first, pre.size, pre.size).map_err(at("augmentation preview"))?;
            preview(img, &train.augment, self.cfg.seed, 6, &preview_png)
                .map_err(at("augmentation preview"))?;
            self.say(&format!("augmentation preview: {}", preview_png.display()));
        }
        self.report.push(Section::augment(&preview_png, &train.augment));
        Ok(Prepared {
            model,
            train,
            preprocess: pre,
            train_set: Arc::new(train_set.set),
            test_set: test_set.set,
        })
    }

    /// Stage 6: train (resumes a checkpoint of an earlier run), printing each
    /// epoch.
    fn train(&mut self, p: &Prepared) -> Result<Trained, WorkflowError> {
        let model_dir = self.run.join("model");
        let input = p.model.input_size();
        self.say(&format!(
            "training {} ({input}x{input} input) for {} epochs, batch {}, {:?}",
            p.model.name(),
            p.train.epochs,
            p.train.batch_size,
            p.train.precision
        ));
        let say = &mut *self.say;
        let report = Trainer::new(p.model.clone(), p.train.clone())
            .map_err(at("train"))?
            .stop_flag(self.stop.clone())
            .progress(self.cfg.progress)
            .on_epoch(|e| say(&epoch_line(e)))
            .run(p.train_set.clone(), &p.preprocess, &model_dir)
            .map_err(at("train"))?;
        if report.stop == gemstones_model::StopReason::Interrupted {
            return Err(WorkflowError::Stopped);
        }
        let kept = if report.images.1 == 0 {
            format!("final fit on all {} training photos, last epoch kept", report.images.0)
        } else {
            format!("best epoch {}", report.best_epoch)
        };
        self.say(&format!(
            "trained: {kept} of {}, {:.0} s; curves: {}",
            report.history.len(),
            report.seconds,
            model_dir.join("curves.png").display()
        ));
        self.report.push(Section::training(&report, &p.model, &p.train, &model_dir.join("curves.png")));
        Ok(Trained { model_dir, report })
    }

    /// Stage 7: evaluate on the test split, in full and without the photos that
    /// have a near-copy in the training data; predict a few test photos;
    /// the report's headline.
    fn evaluate(
        &mut self,
        data: &DataSplit,
        p: &Prepared,
        t: &Trained,
    ) -> Result<WorkflowOutcome, WorkflowError> {
        let clf = Classifier::load(&t.model_dir).map_err(at("evaluate"))?.with_tta(true);
        let eval = evaluate(&clf, &p.test_set, None).map_err(at("evaluate"))?;
        let eval_dir = self.run.join("eval");
        let files = eval.write(&eval_dir, &p.test_set, 36).map_err(at("evaluate"))?;
        self.say(&format!(
            "test split ({} images): top-1 {:.3}, top-5 {:.3}, macro F1 {:.3}; {}",
            eval.images,
            eval.top1,
            eval.top5,
            eval.macro_f1,
            eval_dir.display()
        ));
        let clean = without_near_copies(p.test_set.hashes(), p.train_set.hashes(), DEFAULT_MAX_DISTANCE);
        let clean_eval = if clean.is_empty() {
            None
        } else {
            Some(evaluate(&clf, &p.test_set, Some(&clean)).map_err(at("evaluate"))?)
        };
        if let Some(c) = &clean_eval {
            self.say(&format!(
                "clean test ({} of {} images, no near-copy in train): top-1 {:.3}, top-5 {:.3}, macro F1 {:.3}",
                c.images, eval.images, c.top1, c.top5, c.macro_f1
            ));
        }
        let predictions = self.predict_examples(&clf, &data.test_folder)?;
        let input = p.model.input_size();
        self.report.headline(Headline {
            test_top1: eval.top1,
            test_top5: eval.top5,
            macro_f1: eval.macro_f1,
            test_images: eval.images,
            clean_test: clean_eval.as_ref().map(|c| (c.images, c.top1)),
            classes: clf.classes().len(),
            training_seconds: t.report.history.iter().map(|e| e.seconds).sum(),
            model: format!(
                "{}, {} parameters, {input}x{input} input, {:?}",
                p.model.name(),
                crate::report::thousands(t.report.parameters),
                p.train.precision
            ),
            files: vec![
                ("model directory (predict, evaluate, export)".into(), t.model_dir.clone()),
                ("test metrics".into(), files.metrics.clone()),
                ("most confused".into(), files.most_confused_csv.clone()),
                ("predictions".into(), self.run.join("predictions.json")),
            ],
        });
        self.report.push(Section::evaluation(&eval, clean_eval.as_ref(), &files, &predictions, self.run));
        Ok(WorkflowOutcome {
            report: self.run.join("report.html"),
            test_images: eval.images,
            test_top1: eval.top1,
            test_top5: eval.top5,
            clean_test_images: clean.len(),
            clean_test_top1: clean_eval.as_ref().map_or(f64::NAN, |c| c.top1),
            model_dir: t.model_dir.clone(),
            seconds: 0.0,
        })
    }

    /// Predict `predictions` test photos spread over the split, print them
    /// and save them to `predictions.json`.
    fn predict_examples(
        &mut self,
        clf: &Classifier,
        test_folder: &gemstones_dataset::ImageFolder,
    ) -> Result<Vec<(PathBuf, String, Vec<Prediction>)>, WorkflowError> {
        let wanted = self.cfg.predictions;
        let picks: Vec<PathBuf> = test_folder
            .files
            .iter()
            .step_by((test_folder.files.len() / wanted.max(1)).max(1))
            .take(wanted)
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
            self.say(&format!(
                "  predict {} (true {truth}): {}",
                p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
                top.join(", ")
            ));
        }
        crate::report::write_json(&self.run.join("predictions.json"), &predictions).map_err(at("predict"))?;
        Ok(predictions)
    }
}

/// One epoch as the workflow prints it.
fn epoch_line(e: &EpochStats) -> String {
    format!(
        "  epoch {:3}: loss {:.3} acc {:.3} | val loss {} top-1 {} | {:.1} s",
        e.epoch,
        e.train_loss,
        e.train_acc,
        e.val_loss.map_or("-".into(), |v| format!("{v:.3}")),
        e.val_top1.map_or("-".into(), |v| format!("{v:.3}")),
        e.seconds
    )
}

/// The output rule for the run folder: outside the photos it copies, not
/// holding them, and new, empty or an earlier run; then marked as a run.
fn claim_run_dir(cfg: &WorkflowConfig) -> Result<(), WorkflowError> {
    let photos = match &cfg.source {
        PhotoSource::Photos { dir } => Some(dir),
        _ => None,
    };
    let outputs = Outputs::reading(photos).map_err(WorkflowError::RefusedOutput)?;
    outputs.claim_folder(&cfg.run_dir, FolderKind::RUN).map_err(|e| match e {
        refused @ gemstones_dataset::Error::RefusedOutput { .. } => WorkflowError::RefusedOutput(refused),
        other => at("setup")(other),
    })
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
