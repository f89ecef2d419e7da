//! Training checkpoints: `last/` in a model directory (weights, optimizer
//! state, training state), replaced as a whole, and the history files
//! written with each. The one place that writes a checkpoint.
use std::path::Path;

use gemstones_dataset::fsutil;
use serde::Serialize;
use tch::nn;

use crate::error::{IoContext, Result};
use crate::history::{EpochStats, history_csv};
use crate::modeldir::{ModelDir, save_weights, write_atomic, write_json};
use crate::optim::Optimizer;
use crate::plots::plot_curves;
use crate::train::EmaWeights;

/// The moving average of the weights in `last/`, when a run keeps one.
pub(crate) const EMA_FILE: &str = "ema.safetensors";

/// Write a checkpoint of a run into `last/` (its weights, its optimizer,
/// the moving average of its weights if it keeps one, and `state`), then
/// the history beside it.
pub(crate) fn write<S: Serialize>(
    dir: &ModelDir,
    vs: &nn::VarStore,
    opt: &Optimizer,
    ema: Option<&EmaWeights>,
    state: &S,
    history: &[EpochStats],
) -> Result<()> {
    replace_last(dir, |d| {
        save_weights(vs, &d.join("weights.safetensors"))?;
        opt.save(&d.join("optimizer.safetensors"))?;
        if let Some(average) = ema {
            average.save(&d.join(EMA_FILE))?;
        }
        write_json(&d.join("state.json"), state)
    })?;
    write_history(dir, history)
}

/// Write `history.json`, `history.csv` and `curves.png`.
pub(crate) fn write_history(dir: &ModelDir, history: &[EpochStats]) -> Result<()> {
    write_json(&dir.history_json(), &history)?;
    write_atomic(&dir.history_csv(), history_csv(history).as_bytes())?;
    if !history.is_empty() {
        plot_curves(history, &dir.curves_png())?;
    }
    Ok(())
}

/// Remove what a checkpoint replacement that died left behind: a
/// partial `last.new/`, and `last.old/` once `last/` is whole.
pub(crate) fn remove_interrupted_writes(dir: &ModelDir) -> Result<()> {
    let new = dir.root().join("last.new");
    if new.exists() {
        std::fs::remove_dir_all(&new).at(&new)?;
    }
    let old = dir.root().join("last.old");
    if dir.last_dir().join("state.json").exists() && old.exists() {
        std::fs::remove_dir_all(&old).at(&old)?;
    }
    Ok(())
}

/// Replace `last/` with a checkpoint written by `write` into a fresh
/// directory: the old checkpoint stays whole until the new one is.
fn replace_last(dir: &ModelDir, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let new = dir.root().join("last.new");
    let old = dir.root().join("last.old");
    let last = dir.last_dir();
    if new.exists() {
        std::fs::remove_dir_all(&new).at(&new)?;
    }
    std::fs::create_dir_all(&new).at(&new)?;
    write(&new)?;
    fail::fail_point!("modeldir::checkpoint-written");
    if last.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).at(&old)?;
        }
        std::fs::rename(&last, &old).at(&last)?;
        fail::fail_point!("modeldir::last-moved-aside");
    }
    std::fs::rename(&new, &last).at(&new)?;
    fsutil::sync_dir(dir.root()).at(dir.root())?;
    fail::fail_point!("modeldir::last-replaced");
    if old.exists() {
        std::fs::remove_dir_all(&old).at(&old)?;
    }
    Ok(())
}
