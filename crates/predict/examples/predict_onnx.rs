//! Top-k gem classes of photographs with an exported model (`model.onnx`
//! and `model.json`, from the `export` example), without libtorch:
//!
//! ```text
//! cargo run --release -p gemstones-predict --example predict_onnx -- --model export photo.jpg folder/
//! ```
//!
//! Exit codes as `predict`'s: 0 every photo classified, 3 some could not be
//! read (each is named), 1 none could or the model could not be loaded, 2 a
//! usage error.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use gemstones_cli::exit;
use gemstones_dataset::fsutil::write_atomic;
use gemstones_dataset::outputs::{FileKind, Outputs};
use gemstones_predict::{Predictor, npy_f32};

#[derive(Parser, Debug)]
#[command(about = "Top-k gem classes of photographs with an exported model (no libtorch)")]
struct Args {
    /// Export folder (model.onnx and model.json).
    #[arg(long)]
    model: PathBuf,
    /// Photographs or folders (searched recursively; hidden names skipped).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Classes to show per photograph.
    #[arg(long, short, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=1000))]
    k: u16,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Also write the network's inputs of the photographs read, in order,
    /// as a NumPy .npy array: N x 3 x H x W float32 (for another ONNX
    /// runtime; `numpy.load`). Replaces only an earlier such array.
    #[arg(long)]
    save_inputs: Option<PathBuf>,
    /// Hold less memory (Lite0: a 42 MB peak instead of 55) at the cost of
    /// speed (37 ms a photo instead of 23): see
    /// `gemstones_predict::tune_malloc_for_low_memory`.
    #[arg(long)]
    low_memory: bool,
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(p)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in
            entries.iter().filter(|e| !e.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        {
            collect(e, out)?;
        }
    } else {
        out.push(p.to_path_buf());
    }
    Ok(())
}

fn main() -> anyhow::Result<ExitCode> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    let a = Args::parse();
    // The output rule first (exit 2, as the other examples): never a
    // photograph, never inside the folders read, only over an earlier array.
    if let Some(path) = &a.save_inputs
        && let Err(e) = Outputs::reading(&a.inputs)?.file(path, FileKind::NpyF32)
    {
        return Ok(exit::usage(e));
    }
    if a.low_memory {
        gemstones_predict::tune_malloc_for_low_memory();
    }
    let model = Predictor::load(&a.model)?;
    let mut files = Vec::new();
    for i in &a.inputs {
        collect(i, &mut files)?;
    }
    anyhow::ensure!(!files.is_empty(), "no files found in {:?}", a.inputs);
    let results = model.predict_files(&files, usize::from(a.k));
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
    if let Some(path) = &a.save_inputs {
        let prepared: Vec<_> = files.iter().filter_map(|f| model.prepare_file(f).ok()).collect();
        let images: Vec<_> = prepared.iter().map(|p| &p.image).collect();
        let input = &model.description().input;
        let shape = [images.len(), 3, input.height as usize, input.width as usize];
        write_atomic(path, &npy_f32(&shape, &model.inputs(&images)?))?;
    }
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    anyhow::ensure!(failed < results.len(), "none of the {failed} inputs could be classified");
    Ok(exit::problems_if(failed > 0))
}
