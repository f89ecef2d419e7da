//! Predict the class of one image, several, or every image in a folder.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gemstones::model::{Classifier, Scoring};
use gemstones_cli::exit;

#[derive(Parser, Debug)]
#[command(about = "Top-k gem classes of images, as a table or JSON")]
struct Args {
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// Image files or folders (searched recursively).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Classes to show per image.
    #[arg(value_parser = gemstones_cli::count_in(1, 1000), long, short, default_value_t = 3)]
    k: usize,
    /// Average with the mirror image (test-time augmentation).
    #[arg(long)]
    tta: bool,
    #[command(flatten)]
    side: gemstones_cli::InputSizeArg,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn collect(p: &PathBuf, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(p)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            if !e.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                collect(&e, out)?;
            }
        }
    } else {
        out.push(p.clone());
    }
    Ok(())
}

fn main() -> anyhow::Result<ExitCode> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    gemstones_cli::init_logging();
    let a = Args::parse();
    let clf =
        Classifier::load(&a.model)?.with_scoring(Scoring { tta: a.tta, input_size: a.side.input_size })?;
    let mut files = Vec::new();
    for i in &a.inputs {
        collect(i, &mut files)?;
    }
    let results = clf.predict_files(&files, a.k);
    if a.json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(p, r)| match r {
                Ok(preds) => serde_json::json!({ "file": p, "predictions": preds }),
                Err(e) => serde_json::json!({ "file": p, "error": e.to_string() }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for (p, r) in &results {
            match r {
                Ok(preds) => {
                    let top: Vec<String> = preds.iter().map(ToString::to_string).collect();
                    println!("{}\t{}", p.display(), top.join("\t"));
                }
                Err(e) => println!("{}\terror: {e}", p.display()),
            }
        }
    }
    // Exit 1 when no input could be read, 3 when some could not.
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    anyhow::ensure!(
        failed < results.len() || results.is_empty(),
        "none of the {failed} inputs could be classified"
    );
    anyhow::ensure!(!results.is_empty(), "no files found in {:?}", a.inputs);
    Ok(exit::problems_if(failed > 0))
}
