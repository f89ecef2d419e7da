//! Decode every file of one or more folders of class folders: corrupt,
//! truncated, empty and non-image files, exact and near duplicates, and
//! photos shared between folders (train/test leakage), exact or near.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gemstones::dataset::fsutil::write_atomic;
use gemstones::dataset::outputs::{FileKind, Outputs};
use gemstones::dataset::{
    DEFAULT_MAX_DISTANCE, DecodeLimits, NearDuplicateGroup, VerifyReport, cross_split_duplicates,
    cross_split_near_duplicates, near_duplicate_sheet, scan, verify,
};
use gemstones_cli::exit;

#[derive(Parser, Debug)]
#[command(about = "Verify images by decoding them; find duplicates, near-duplicates and train/test leakage")]
struct Args {
    /// Folders of class folders (give train and test to check leakage).
    #[arg(required = true)]
    folders: Vec<PathBuf>,
    /// More folders checked for photos shared with the first ones (`verify
    /// train --against test`).
    #[arg(long)]
    against: Vec<PathBuf>,
    /// Near-duplicates: both perceptual hashes within this many bits.
    #[arg(value_parser = clap::value_parser!(u32).range(0..=64), long, default_value_t = DEFAULT_MAX_DISTANCE)]
    near_distance: u32,
    /// Near-duplicate groups listed per folder (all are in the JSON).
    #[arg(value_parser = gemstones_cli::count_in(0, 1000000), long, default_value_t = 10)]
    show: usize,
    /// Draw the near-duplicate groups (and those across folders) as a
    /// contact sheet PNG here.
    #[arg(long)]
    sheet: Option<PathBuf>,
    /// Groups drawn on the contact sheet (leaks across folders first).
    #[arg(value_parser = gemstones_cli::count_in(1, 10000), long, default_value_t = 60)]
    sheet_groups: usize,
    /// Write the full report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn print_groups(groups: &[NearDuplicateGroup], show: usize) {
    for g in groups.iter().take(show) {
        let files: Vec<String> =
            g.files
                .iter()
                .map(|(split, p)| {
                    if split.is_empty() {
                        p.display().to_string()
                    } else {
                        format!("{split}: {}", p.display())
                    }
                })
                .collect();
        println!("  [distance <= {}] {}", g.max_distance, files.join("  ~  "));
    }
    if groups.len() > show {
        println!("  ... {} more (--show N, or --json)", groups.len() - show);
    }
}

fn main() -> anyhow::Result<ExitCode> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    let a = Args::parse();
    // The output rule first (exit 2, nothing read or written): the sheet
    // and the JSON lie outside the folders and replace only our own files.
    let outputs = Outputs::reading(a.folders.iter().chain(&a.against))?;
    let sheet = a.sheet.iter().map(|p| outputs.file(p, FileKind::Png));
    if let Err(e) =
        sheet.chain(a.json.iter().map(|p| outputs.file(p, FileKind::JsonReport))).collect::<Result<(), _>>()
    {
        return Ok(exit::usage(e));
    }
    let mut reports: Vec<(String, VerifyReport)> = Vec::new();
    let mut near_groups = Vec::new();
    for f in a.folders.iter().chain(&a.against) {
        let folder = scan(f)?;
        let r = verify(&folder, &DecodeLimits::default());
        let dups = r.duplicates();
        let near = r.near_duplicates(a.near_distance);
        println!(
            "{}: {} classes, {} images ok, {} problems {:?}, {} duplicate groups ({} redundant files), \
             {} near-duplicate groups ({} photos), {} named with another format's extension",
            f.display(),
            folder.classes.len(),
            r.images.len(),
            r.problems.len(),
            r.problem_counts(),
            dups.len(),
            dups.iter().map(|d| d.redundant()).sum::<usize>(),
            near.len(),
            near.iter().map(|g| g.files.len()).sum::<usize>(),
            r.images.iter().filter(|i| i.extension_mismatch).count()
        );
        for p in &r.problems {
            println!("  {p}");
        }
        for i in r.images.iter().filter(|i| i.extension_mismatch).take(a.show) {
            println!(
                "  {}: named with another format's extension (its content is {})",
                i.path.display(),
                i.format
            );
        }
        let mismatches = r.images.iter().filter(|i| i.extension_mismatch).count();
        if mismatches > a.show {
            println!(
                "  ... {} more named with another format's extension (--show N, or --json)",
                mismatches - a.show
            );
        }
        if let Some(note) = folder.hidden_note() {
            println!("  {note}");
        }
        if !folder.empty_classes.is_empty() {
            println!("  empty class folders: {:?}", folder.empty_classes);
        }
        let flags = r.quality_counts();
        if !flags.is_empty() {
            let counts: Vec<String> = flags.iter().map(|(f, n)| format!("{f} {n}")).collect();
            println!("  quality flags: {}", counts.join(", "));
            for i in r.images.iter().filter(|i| !i.quality.flags.is_empty()).take(a.show) {
                let names: Vec<&str> = i.quality.flags.iter().map(|f| f.as_str()).collect();
                println!("    {}: {}", i.path.display(), names.join(", "));
            }
        }
        print_groups(&near, a.show);
        near_groups.push((f.display().to_string(), near));
        reports.push((f.display().to_string(), r));
    }
    let mut leaks = Vec::new();
    let mut near_leaks = Vec::new();
    if reports.len() > 1 {
        let refs: Vec<(&str, &VerifyReport)> = reports.iter().map(|(n, r)| (n.as_str(), r)).collect();
        leaks = cross_split_duplicates(&refs);
        println!("{} images appear in more than one folder", leaks.len());
        for l in &leaks {
            let where_: Vec<String> = l.files.iter().map(|(s, p)| format!("{s}: {}", p.display())).collect();
            println!("  {}", where_.join("  ==  "));
        }
        near_leaks = cross_split_near_duplicates(&refs, a.near_distance, true);
        println!("{} near-duplicate groups span more than one folder", near_leaks.len());
        print_groups(&near_leaks, a.show);
    }
    if let Some(sheet) = &a.sheet {
        let mut all: Vec<NearDuplicateGroup> = near_leaks.clone();
        all.extend(near_groups.iter().flat_map(|(_, g)| g.iter().cloned()));
        near_duplicate_sheet(&all, a.sheet_groups, sheet)?;
        println!("contact sheet: {}", sheet.display());
    }
    if let Some(j) = a.json {
        let json = serde_json::json!({
            "written_by": "gemstones verify",
            "folders": reports,
            "near_duplicates": near_groups,
            "leaks": leaks,
            "near_leaks": near_leaks,
        });
        write_atomic(&j, &serde_json::to_vec_pretty(&json)?)?;
    }
    // Exit 3 when a file did not decode or a photo (or a near-copy) is in
    // two folders.
    let problems =
        reports.iter().any(|(_, r)| !r.problems.is_empty()) || !leaks.is_empty() || !near_leaks.is_empty();
    Ok(exit::problems_if(problems))
}
