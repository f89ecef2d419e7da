//! The whole tutorial in one run: photographs (a synthetic catalogue served
//! and scraped on loopback by default; `--photos DIR` or `--site` for real
//! ones) -> verify, rename, split, count -> preprocess, cache, augmentation
//! preview -> train -> evaluate and predict -> `report.html`.
//!
//! Run it again with the same `--run-dir` to resume after Ctrl-C.
#[path = "../shared/mod.rs"]
mod shared;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use gemstones::model::Precision;
use gemstones::presets::Preset;
use gemstones::scrape::SiteProfile;
use gemstones::workflow::{PhotoSource, WorkflowConfig, WorkflowError, run};
use gemstones_cli::{exit, init_logging, stop_on_ctrl_c};
use shared::preset_parser;

#[derive(Parser, Debug)]
#[command(about = "The whole gemstones workflow, from photographs to a report")]
struct Args {
    /// Run folder: everything is written here (reuse it to resume).
    #[arg(long, default_value = "runs/demo")]
    run_dir: PathBuf,
    /// Start from a folder of class folders instead of the demo catalogue
    /// (e.g. ../shared/datasets/gemstones/train). It is copied, never changed.
    #[arg(long, conflicts_with = "site")]
    photos: Option<PathBuf>,
    /// Scrape a live site instead (needs internet): `minerals-net`,
    /// `rasavgems` (with --webdriver), or a profile file (.toml/.json).
    #[arg(long)]
    site: Option<String>,
    /// WebDriver URL for browser-rendered sites (chromedriver: http://localhost:9515).
    #[arg(long)]
    webdriver: Option<String>,
    /// With --site: at most this many classes and images per class.
    #[arg(value_parser = gemstones_cli::count_in(1, 1000000), long, num_args = 2, value_names = ["CLASSES", "PER_CLASS"])]
    site_limit: Option<Vec<usize>>,
    /// Requests per second per host when scraping.
    #[arg(value_parser = gemstones_cli::float_in(0.001, 10000.0), long, default_value_t = 1.0)]
    rps: f64,
    /// Demo catalogue: number of classes (2-8) and images per class.
    #[arg(value_parser = gemstones_cli::count_in(1, 10000), long, num_args = 2, value_names = ["CLASSES", "PER_CLASS"], default_values_t = [8, 40])]
    demo: Vec<usize>,
    /// Model and training preset (lite0: the one for real photographs).
    #[arg(long, value_parser = preset_parser(), default_value = "resnet")]
    preset: Preset,
    /// Epochs (default: 25 on the demo set, else the preset's).
    #[arg(value_parser = gemstones_cli::count_in(1, 10000), long)]
    epochs: Option<usize>,
    /// Network input side in pixels (default: 96 on the demo set, else the preset's).
    #[arg(value_parser = clap::value_parser!(u32).range(16..=1024), long)]
    size: Option<u32>,
    /// Side of the preprocessed, cached images (default: a little above --size).
    #[arg(value_parser = clap::value_parser!(u32).range(16..=4096), long)]
    image_size: Option<u32>,
    /// Seed of the catalogue, split, augmentation and weights.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Train share of the train/test split (the tutorial's 0.9).
    #[arg(value_parser = gemstones_cli::float_in(0.01, 0.99), long, default_value_t = 0.9)]
    train_fraction: f64,
    /// Validation share of the training photos (default: the preset's,
    /// 0.2); 0 is the final fit on every training photo, last epoch kept.
    #[arg(value_parser = gemstones_cli::float_in(0.0, 0.9), long)]
    val_fraction: Option<f64>,
    /// libtorch threads (default: one per core).
    #[arg(value_parser = gemstones_cli::count_in(1, 1024), long)]
    threads: Option<usize>,
    /// Compute precision (default: the preset's: bf16, f32 for lite0/lite2).
    #[arg(long)]
    precision: Option<Precision>,
}

fn main() -> anyhow::Result<ExitCode> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    init_logging();
    let a = Args::parse();
    let demo_classes = gemstones::dataset::synth::default_classes().len();
    if !(2..=demo_classes).contains(&a.demo[0]) {
        Args::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                format!("--demo: the demo catalogue has 2 to {demo_classes} classes, not {}", a.demo[0]),
            )
            .exit();
    }
    let mut cfg = WorkflowConfig::demo(&a.run_dir);
    cfg.source = if let Some(dir) = &a.photos {
        PhotoSource::Photos { dir: dir.clone() }
    } else if let Some(site) = &a.site {
        let profile = match SiteProfile::builtin(site) {
            Some(p) => p,
            None => SiteProfile::load(site.as_ref())?,
        };
        let limit = a.site_limit.clone().unwrap_or_default();
        PhotoSource::Site {
            profile: Box::new(profile),
            webdriver: a.webdriver.clone(),
            max_classes: limit.first().copied(),
            max_per_class: limit.get(1).copied(),
        }
    } else {
        PhotoSource::Demo { classes: a.demo[0], per_class: a.demo[1] }
    };
    if a.site.is_some() {
        cfg.fetch.per_host_rps = a.rps;
        cfg.fetch.concurrency = 4;
    }
    cfg.preset = a.preset;
    cfg.epochs = a.epochs;
    cfg.input_size = a.size;
    cfg.image_size = a.image_size;
    cfg.seed = a.seed;
    cfg.train_fraction = a.train_fraction;
    cfg.val_fraction = a.val_fraction;
    cfg.threads = a.threads;
    cfg.precision = a.precision;
    println!("gemstones workflow -> {}", a.run_dir.display());
    let out = match run(&cfg, stop_on_ctrl_c(), &mut |line| println!("{line}")) {
        Err(WorkflowError::Stopped) => {
            eprintln!("stopped: run again with the same folder to resume");
            return Ok(ExitCode::from(exit::INTERRUPTED));
        }
        Err(WorkflowError::RefusedOutput(e)) => return Ok(exit::usage(e)),
        other => other?,
    };
    println!(
        "\ndone in {:.0} s: test top-1 {:.1} %, top-5 {:.1} % on {} images\nmodel:  {}\nreport: {}",
        out.seconds,
        100.0 * out.test_top1,
        100.0 * out.test_top5,
        out.test_images,
        out.model_dir.display(),
        out.report.display()
    );
    Ok(ExitCode::SUCCESS)
}
