//! Export a trained model as ONNX (`model.onnx`, for onnxruntime, tract or
//! the `gemstones-predict` crate: no libtorch needed) and TorchScript
//! (`model.pt`, for PyTorch, C++ or tch programs), with its classes and
//! input description (`model.json`).
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gemstones::dataset::outputs::{FolderKind, Outputs};
use gemstones::model::{Classifier, Scoring};

#[derive(Parser, Debug)]
#[command(about = "Write a model directory as ONNX and TorchScript plus a JSON description")]
struct Args {
    /// Model directory (from the train or workflow example).
    #[arg(long)]
    model: PathBuf,
    /// Output folder for model.onnx, model.pt and model.json.
    #[arg(long, default_value = "export")]
    out: PathBuf,
    #[command(flatten)]
    side: gemstones_cli::InputSizeArg,
}

fn main() -> anyhow::Result<ExitCode> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    gemstones_cli::init_logging();
    let a = Args::parse();
    // The output rule first (exit 2): a new or empty folder, or an earlier
    // export; never the model directory itself.
    let outputs = Outputs::reading([&a.model])?;
    if let Err(e) = outputs.check_folder(&a.out, FolderKind::EXPORT) {
        return Ok(gemstones_cli::exit::usage(e));
    }
    let clf = Classifier::load(&a.model)?
        .with_scoring(Scoring { input_size: a.side.input_size, ..Scoring::default() })?;
    let files = clf.export(&a.out)?;
    if files.unchanged {
        println!("{} already holds this model's export: nothing to do", a.out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let side = clf.spec().model.input_size();
    println!(
        "wrote {} and {} ({}, {} classes; input N x 3 x {side} x {side} float32 RGB in [0, 1], normalised \
         inside; output logits) and {}",
        files.onnx.display(),
        files.module.display(),
        clf.spec().model.name(),
        clf.classes().len(),
        files.info.display()
    );
    Ok(ExitCode::SUCCESS)
}
