//! Decode every file of one or more folders of class folders: corrupt,
//! truncated, empty and non-image files, duplicates, and duplicates shared
//! between folders (train/test leakage).
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gemstones::cli::exit;
use gemstones::dataset::{DecodeLimits, VerifyReport, cross_split_duplicates, scan, verify};

#[derive(Parser, Debug)]
#[command(about = "Verify images by decoding them; find duplicates and train/test leakage")]
struct Args {
    /// Folders of class folders (give train and test to check leakage).
    #[arg(required = true)]
    folders: Vec<PathBuf>,
    /// Write the full report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<ExitCode> {
    gemstones::cli::exit_quietly_on_closed_pipe();
    let a = Args::parse();
    let mut reports: Vec<(String, VerifyReport)> = Vec::new();
    let mut leaked = 0;
    for f in &a.folders {
        let folder = scan(f)?;
        let r = verify(&folder, &DecodeLimits::default());
        let dups = r.duplicates();
        println!(
            "{}: {} classes, {} images ok, {} problems {:?}, {} duplicate groups ({} redundant files), {} named with another format's extension",
            f.display(),
            folder.classes.len(),
            r.images.len(),
            r.problems.len(),
            r.problem_counts(),
            dups.len(),
            dups.iter().map(|d| d.redundant()).sum::<usize>(),
            r.images.iter().filter(|i| i.extension_mismatch).count()
        );
        for p in &r.problems {
            println!("  {p}");
        }
        if !folder.empty_classes.is_empty() {
            println!("  empty class folders: {:?}", folder.empty_classes);
        }
        reports.push((f.display().to_string(), r));
    }
    if reports.len() > 1 {
        let refs: Vec<(&str, &VerifyReport)> = reports.iter().map(|(n, r)| (n.as_str(), r)).collect();
        let leaks = cross_split_duplicates(&refs);
        leaked = leaks.len();
        println!("{} images appear in more than one folder", leaks.len());
        for l in &leaks {
            let where_: Vec<String> = l.files.iter().map(|(s, p)| format!("{s}: {}", p.display())).collect();
            println!("  {}", where_.join("  ==  "));
        }
    }
    if let Some(j) = a.json {
        std::fs::write(&j, serde_json::to_vec_pretty(&reports)?)?;
    }
    // Exit 3 when a file did not decode or a photo is in two folders.
    let problems = reports.iter().any(|(_, r)| !r.problems.is_empty()) || leaked > 0;
    Ok(exit::problems_if(problems))
}
