//! The record of a run, one [`EpochStats`] per epoch, and its CSV form.
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss (with augmentation, label smoothing, mixup).
    pub train_loss: f64,
    /// Training accuracy.
    pub train_acc: f64,
    /// Validation loss (plain cross-entropy), if there is a validation set.
    pub val_loss: Option<f64>,
    /// Validation top-1 accuracy.
    pub val_top1: Option<f64>,
    /// Validation top-5 accuracy.
    pub val_top5: Option<f64>,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
    /// Training images per second over the epoch.
    pub images_per_sec: f64,
    /// Fraction of the epoch's training time spent waiting for data.
    pub data_wait: f64,
    /// Side of the training images this epoch (0 in histories written
    /// before progressive resizing existed).
    #[serde(default)]
    pub input_size: u32,
}

/// The history as CSV, one row per epoch.
pub(crate) fn history_csv(history: &[EpochStats]) -> String {
    let mut out = String::from(
        "epoch,train_loss,train_acc,val_loss,val_top1,val_top5,lr,seconds,images_per_sec,data_wait,input_size\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    for h in history {
        let _ = writeln!(
            out,
            "{},{:.6},{:.6},{},{},{},{:.3e},{:.2},{:.2},{:.4},{}",
            h.epoch,
            h.train_loss,
            h.train_acc,
            opt(h.val_loss),
            opt(h.val_top1),
            opt(h.val_top5),
            h.lr,
            h.seconds,
            h.images_per_sec,
            h.data_wait,
            h.input_size
        );
    }
    out
}
