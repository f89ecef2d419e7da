//! Export a trained model as ONNX (`model.onnx`, for onnxruntime, tract or
//! the `gemstones-predict` crate: no libtorch needed) and TorchScript
//! (`model.pt`, for PyTorch, C++ or tch programs), with its classes and
//! input description (`model.json`).
use std::path::PathBuf;

use clap::Parser;
use gemstones::model::Classifier;

#[derive(Parser, Debug)]
#[command(about = "Write a model directory as ONNX and TorchScript plus a JSON description")]
struct Args {
    /// Model directory (from the train or workflow example).
    #[arg(long)]
    model: PathBuf,
    /// Output folder for model.onnx, model.pt and model.json.
    #[arg(long, default_value = "export")]
    out: PathBuf,
    /// Export for this input side rather than the one the network trained
    /// at (see `evaluate --input-size`; not for the tutorial CNN).
    #[arg(value_parser = clap::value_parser!(u32).range(32..=1024), long)]
    input_size: Option<u32>,
}

fn main() -> anyhow::Result<()> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    gemstones_cli::init_logging();
    let a = Args::parse();
    let mut clf = Classifier::load(&a.model)?;
    if let Some(size) = a.input_size {
        clf = clf.with_input_size(size)?;
    }
    let files = clf.export(&a.out)?;
    if files.unchanged {
        println!("{} already holds this model's export: nothing to do", a.out.display());
        return Ok(());
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
    Ok(())
}
