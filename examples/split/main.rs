//! Split a folder of class folders into train/test (the tutorial's 0.9/0.1)
//! or train/val/test folders, stratified and seeded.
use std::path::PathBuf;

use clap::Parser;
use gemstones::dataset::{SmallClassPolicy, SplitConfig, SplitRatios, TransferMode, scan, split_folder};

#[derive(Parser, Debug)]
#[command(about = "Split class folders into train/val/test folders, stratified and seeded")]
struct Args {
    /// Folder of class folders.
    input: PathBuf,
    /// Output folder (gets one folder per split, classes.json, split.json).
    output: PathBuf,
    /// Ratios: two (train, test) or three (train, val, test), summing to 1.
    #[arg(value_parser = gemstones_cli::float_in(0.000001, 1.0), long, num_args = 2..=3, default_values_t = [0.9, 0.1])]
    ratio: Vec<f64>,
    /// Seed (the tutorial's split_folders used 1337).
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// copy (default), move, or link (hard links).
    #[arg(long, value_parser = ["copy", "move", "link"], default_value = "copy")]
    mode: String,
    /// Warn instead of failing when a class is too small for every split.
    #[arg(long)]
    allow_small: bool,
    /// Near-duplicate photos (both perceptual hashes within this many bits)
    /// go to one side of the split; 0 matches only identical hashes.
    #[arg(value_parser = clap::value_parser!(u32).range(0..=64), long, default_value_t = gemstones::dataset::DEFAULT_MAX_DISTANCE)]
    near_distance: u32,
    /// Split photo by photo, as the tutorial did: a photo and its near-copy
    /// may land in train and test.
    #[arg(long)]
    ignore_near_duplicates: bool,
    /// Place one photo per near-duplicate group (the one with the most
    /// pixels; ties: the first by name) and leave the others in the input.
    #[arg(long, conflicts_with = "ignore_near_duplicates")]
    drop_near_duplicates: bool,
}

fn main() -> anyhow::Result<()> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    let a = Args::parse();
    let ratios = match a.ratio[..] {
        [t, s] => SplitRatios::new([("train", t), ("test", s)])?,
        [t, v, s] => SplitRatios::train_val_test(t, v, s)?,
        _ => anyhow::bail!("give two or three ratios"),
    };
    let cfg = SplitConfig {
        ratios,
        seed: a.seed,
        mode: match a.mode.as_str() {
            "move" => TransferMode::Move,
            "link" => TransferMode::HardLink,
            _ => TransferMode::Copy,
        },
        small_class: if a.allow_small { SmallClassPolicy::Warn } else { SmallClassPolicy::Error },
        near_duplicates: (!a.ignore_near_duplicates).then_some(a.near_distance),
        drop_near_duplicates: a.drop_near_duplicates,
    };
    gemstones_cli::exit_on_ctrl_c(
        "stopped: the split is recorded in split.json once planned; run the same command again to finish it",
    );
    let folder = scan(&a.input)?;
    for p in &folder.unusable_names {
        println!("skipped (name not UTF-8; rename it to split it): {}", p.display());
    }
    if let Some(note) = folder.hidden_note() {
        println!("{note}");
    }
    let r = split_folder(&folder, &a.output, &cfg)?;
    for (name, files) in &r.files {
        println!("{name}: {} files", files.len());
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    for u in &r.unreadable {
        println!("warning: not a readable image, split as it is (`verify` says why): {}", u.display());
    }
    for d in &r.dropped {
        println!("left out (a larger near-duplicate was placed): {}", d.display());
    }
    println!(
        "{} near-duplicate groups kept on one side, {} photos left out; {} already in place; record: {}",
        r.groups_kept_together,
        r.dropped.len(),
        r.already_present,
        a.output.join("split.json").display()
    );
    Ok(())
}
