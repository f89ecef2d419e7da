//! The tutorial's figure: one photograph and six augmented versions.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gemstones::augment::{AugmentConfig, ImageView, preview};
use gemstones::dataset::outputs::{FileKind, Outputs};
use gemstones::dataset::{PreprocessConfig, Preprocessor};

#[derive(Parser, Debug)]
#[command(about = "Write a PNG of an image and N augmented versions of it")]
struct Args {
    /// The photograph (preprocessed first: gem crop, resize).
    image: PathBuf,
    /// The PNG to write.
    #[arg(long, default_value = "augment_preview.png")]
    out: PathBuf,
    /// tutorial (Keras' ImageDataGenerator as in the tutorial), strong, or
    /// trivial (TrivialAugment with crop, flips and cutout).
    #[arg(long, value_parser = ["tutorial", "strong", "trivial"], default_value = "tutorial")]
    preset: String,
    /// Augmented versions.
    #[arg(value_parser = gemstones_cli::count_in(1, 64), long, default_value_t = 6)]
    n: usize,
    /// Side of the preprocessed image.
    #[arg(value_parser = clap::value_parser!(u32).range(8..=2048), long, default_value_t = 220)]
    size: u32,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> anyhow::Result<ExitCode> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    let a = Args::parse();
    // The output rule first (exit 2): never over the photograph itself, nor
    // over any file but an earlier figure.
    if let Err(e) = Outputs::reading([&a.image])?.file(&a.out, FileKind::Png) {
        return Ok(gemstones_cli::exit::usage(e));
    }
    let mut pp = Preprocessor::new(PreprocessConfig { size: a.size, ..PreprocessConfig::default() })?;
    let img = pp.process_file(&a.image).map_err(|p| anyhow::anyhow!("{p}"))?;
    let cfg = match a.preset.as_str() {
        "strong" => AugmentConfig::strong(),
        "trivial" => AugmentConfig::trivial(),
        _ => AugmentConfig::tutorial(),
    };
    preview(ImageView::from_rgb(&img)?, &cfg, a.seed, a.n, &a.out)?;
    println!("{}", a.out.display());
    Ok(ExitCode::SUCCESS)
}
