//! Helpers the example programs share: presets, progress bars, Ctrl-C,
//! cache building, logging.
use std::path::Path;

use clap::ValueEnum;
use gemstones_augment::Normalize;
use gemstones_dataset::{CacheOutcome, PreprocessConfig, Preprocessed};
use gemstones_model::{
    EfficientNetLiteConfig, FineTune, ModelConfig, OptimizerConfig, OptimizerKind, ProgressiveResize,
    ResNetConfig, Schedule, StopFlag, TrainConfig, TutorialCnnConfig,
};

/// Model and training presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// The tutorial: its CNN at 220x220 (dense 512), Adam 1e-3, its
    /// augmentation.
    Tutorial,
    /// The stronger residual network at 128x128: AdamW, one-cycle, label
    /// smoothing, stronger augmentation, 74 epochs with progressive
    /// resizing (80 to 128 pixels over the first half).
    Resnet,
    /// EfficientNet-Lite0 from its ImageNet weights (`make weights`),
    /// fine-tuned: the new classifier alone first, then the whole network
    /// with smaller learning rates for earlier layers.
    Lite0,
    /// EfficientNet-Lite2 (wider and deeper, 260 px) fine-tuned the same
    /// way: slower per image.
    Lite2,
}

/// Where `make weights` puts the ImageNet checkpoints: `$GEMSTONES_WEIGHTS_DIR`,
/// else `.weights/` in this workspace.
pub fn weights_dir() -> std::path::PathBuf {
    std::env::var_os("GEMSTONES_WEIGHTS_DIR")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".weights"))
}

/// Check a pretrained checkpoint is there before a long run starts, with
/// the command that installs the default ones.
pub fn check_pretrained(train: &TrainConfig) -> gemstones_model::Result<()> {
    match &train.pretrained {
        Some(p) if !p.is_file() => Err(gemstones_model::Error::BadCheckpoint {
            path: p.clone(),
            reason: "not found: `make weights` (python3 scripts/install-weights.py) installs the \
                     EfficientNet-Lite ImageNet checkpoints, or pass --pretrained FILE"
                .into(),
        }),
        _ => Ok(()),
    }
}

/// The fine-tuning recipe of the EfficientNet-Lite presets.
fn fine_tune_recipe(weights: &str) -> TrainConfig {
    TrainConfig {
        epochs: 14,
        batch_size: 32,
        lr: 2e-3,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::AdamW,
            weight_decay: 0.05,
            eps: 1e-8,
            decay_norms_and_biases: false,
            ..OptimizerConfig::default()
        },
        schedule: Schedule::one_cycle(),
        label_smoothing: 0.1,
        grad_clip: Some(5.0),
        augment: gemstones_augment::AugmentConfig::strong(),
        // The Lite weights were trained on (x - 127) / 128.
        normalize: Normalize { mean: [127.0 / 255.0; 3], std: [128.0 / 255.0; 3] },
        progressive: Some(ProgressiveResize { start_size: 160, ramp: 0.4 }),
        pretrained: Some(weights_dir().join(weights)),
        fine_tune: Some(FineTune {
            frozen_epochs: 2,
            first_lr_mult: 0.1,
            last_lr_mult: 0.5,
            frozen_stages: 4,
            keep_bn_statistics: true,
        }),
        // Depthwise convolutions are memory-bound: bf16 trains this network
        // slower than f32 here (measured: 25.8 against 33.3 images/s at 192).
        precision: gemstones_model::Precision::F32,
        ..TrainConfig::tutorial()
    }
}

impl Preset {
    /// The network, training settings and preprocessing of this preset.
    pub fn configs(self) -> (ModelConfig, TrainConfig, PreprocessConfig) {
        match self {
            Self::Tutorial => (
                ModelConfig::Tutorial(TutorialCnnConfig::default()),
                TrainConfig::tutorial(),
                PreprocessConfig::default(),
            ),
            Self::Resnet => (
                ModelConfig::Resnet(ResNetConfig::default()),
                // Small images first: 74 epochs in the time 60 take at full
                // size (measured: 78.9 % against 74.7 % validation top-1).
                TrainConfig {
                    epochs: 74,
                    progressive: Some(ProgressiveResize { start_size: 80, ramp: 0.5 }),
                    ..TrainConfig::strong()
                },
                // Cached a little larger than the network's input, so random
                // crops still hold detail.
                PreprocessConfig { size: 160, ..PreprocessConfig::default() },
            ),
            Self::Lite0 => (
                ModelConfig::EfficientnetLite(EfficientNetLiteConfig {
                    dropout: 0.3,
                    ..EfficientNetLiteConfig::lite0()
                }),
                fine_tune_recipe("efficientnet-lite0-57934424.pth"),
                PreprocessConfig { size: 256, ..PreprocessConfig::default() },
            ),
            Self::Lite2 => (
                // At 224 rather than its native 260: 1.35x cheaper per image.
                ModelConfig::EfficientnetLite(EfficientNetLiteConfig::lite2()).with_input_size(224),
                TrainConfig { epochs: 11, ..fine_tune_recipe("efficientnet-lite2-9656183e.pth") },
                PreprocessConfig { size: 256, ..PreprocessConfig::default() },
            ),
        }
    }
}

/// Exit codes the examples share (README, "Exit codes"): 0 success, 1 an
/// error (the message names the file or URL), 2 a usage error (clap), and
/// these two.
pub mod exit {
    use std::process::ExitCode;

    /// The run finished but found problems: `verify` found undecodable files
    /// or a photo in two folders, `predict` could not read some inputs, a
    /// scrape found no class at all.
    pub const PROBLEMS: u8 = 3;
    /// Stopped by Ctrl-C (128 + SIGINT, as shells expect); the work done is
    /// saved and a re-run resumes it.
    pub const INTERRUPTED: u8 = 130;

    /// `PROBLEMS` when `found` is true, else success.
    pub fn problems_if(found: bool) -> ExitCode {
        if found { ExitCode::from(PROBLEMS) } else { ExitCode::SUCCESS }
    }

    /// `INTERRUPTED` when `stopped` is true, else success.
    pub fn interrupted_if(stopped: bool) -> ExitCode {
        if stopped { ExitCode::from(INTERRUPTED) } else { ExitCode::SUCCESS }
    }
}

/// End quietly when stdout is closed early (`count ... | head -1`), as Unix
/// tools do: restores the default action of SIGPIPE, which the Rust runtime
/// ignores (its `println!` would then panic on the broken pipe). Every file
/// this project writes is written atomically, so dying there loses nothing.
pub fn exit_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called at the start of main, before any other thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Log to stderr through `tracing`, filtered by `RUST_LOG` (default
/// `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// A stop flag raised by Ctrl-C (the first press; a second one kills).
pub fn stop_on_ctrl_c() -> StopFlag {
    let flag = StopFlag::new();
    let f = flag.clone();
    let _ = ctrlc::set_handler(move || {
        if f.is_stopped() {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (Ctrl-C again to kill)...");
        f.stop();
    });
    flag
}

/// Whether class folders without any file become classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyClasses {
    /// Leave them out, with a warning naming them (the default).
    LeaveOut,
    /// Keep them (a model whose class list must match another's).
    Keep,
}

/// Load or build the preprocessed cache of a folder of class folders, with
/// a progress bar.
pub fn prepare(
    folder: &Path,
    cfg: &PreprocessConfig,
    cache: &Path,
    empty: EmptyClasses,
) -> gemstones_dataset::Result<(Preprocessed, CacheOutcome)> {
    let mut scanned = gemstones_dataset::scan(folder)?;
    for name in &scanned.unusable_names {
        tracing::warn!("skipped {}: its name is not valid UTF-8 (rename it to use it)", name.display());
    }
    if !scanned.empty_classes.is_empty() {
        tracing::warn!(
            "{} class folder(s) without files {}: {}",
            scanned.empty_classes.len(),
            if empty == EmptyClasses::Keep { "kept as classes" } else { "left out" },
            scanned.empty_classes.join(", ")
        );
        if empty == EmptyClasses::LeaveOut {
            scanned = scanned.without_empty_classes()?;
        }
    }
    let bar = gemstones_dataset::progress_bar(scanned.files.len() as u64, "images preprocessed", true);
    let out = gemstones_dataset::load_or_build(&scanned, cfg, cache, &|n| bar.inc(n));
    bar.finish_and_clear();
    out
}

/// How a scrape example exits: 130 when Ctrl-C stopped it, 3 (with a
/// warning) when it found no class at all, else 0.
pub fn scrape_exit_code(summary: &gemstones_scrape::ScrapeSummary) -> std::process::ExitCode {
    if summary.stopped {
        return std::process::ExitCode::from(exit::INTERRUPTED);
    }
    if summary.classes == 0 {
        eprintln!(
            "warning: no class found from the start page ({} pages read): check the start URL and the \
             profile's class selectors",
            summary.pages
        );
    }
    exit::problems_if(summary.classes == 0)
}

/// Run a scrape that the first Ctrl-C stops cleanly (downloads in flight
/// finish, the manifest is complete for them).
pub fn scrape_until_ctrl_c(
    scraper: gemstones_scrape::Scraper,
    out: &Path,
) -> gemstones_scrape::Result<gemstones_scrape::ScrapeSummary> {
    scraper.stop_flag(stop_on_ctrl_c()).run_blocking(out)
}
