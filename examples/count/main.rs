//! Count folders and files like the tutorial's tree report, and images per
//! class per split.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gemstones::dataset::{ClassTable, count_tree, scan};

#[derive(Parser, Debug)]
#[command(about = "Count folders and files (tree report and per-class table)")]
struct Args {
    /// A folder (for example one holding train/ and test/).
    root: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<ExitCode> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    let a = Args::parse();
    let tree = count_tree(&a.root)?;
    // Per-class table over the sub-folders that are themselves class folders.
    let mut splits = Vec::new();
    for child in &tree.children {
        // (A folder whose name is not UTF-8 is counted but not scanned.)
        if !child.children.is_empty() && child.files == 0 && a.root.join(&child.name).is_dir() {
            splits.push((child.name.clone(), scan(a.root.join(&child.name))?));
        }
    }
    if splits.is_empty() {
        splits.push((tree.name.clone(), scan(&a.root)?));
    }
    let refs: Vec<(&str, &gemstones::dataset::ImageFolder)> =
        splits.iter().map(|(n, f)| (n.as_str(), f)).collect();
    let table = ClassTable::new(&refs);
    for (_, folder) in &splits {
        if let Err(pending) = folder.require_no_pending_rename() {
            eprintln!("warning: {pending} (these counts miss those files)");
        }
        for p in &folder.unusable_names {
            eprintln!("skipped (name not UTF-8; rename it): {}", p.display());
        }
        if let Some(note) = folder.hidden_note() {
            eprintln!("{note}");
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "tree": tree, "classes": table }))?);
    } else {
        print!("{}\n{}", tree.to_text(), table.to_text());
    }
    // Exit 3 when an unfinished rename hides files from the counts.
    Ok(gemstones_cli::exit::problems_if(splits.iter().any(|(_, f)| f.require_no_pending_rename().is_err())))
}
