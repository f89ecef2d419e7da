//! What a run carries from checkpoint to checkpoint.
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use crate::history::EpochStats;

/// Progress inside an epoch, saved with a mid-epoch checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Running {
    pub(super) loss_sum: f64,
    pub(super) correct: f64,
    pub(super) seen: usize,
    pub(super) wait: f64,
    pub(super) busy: f64,
}

/// Saved with every checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TrainState {
    /// Epoch in progress (0-based) and the next batch in it.
    pub(super) epoch: usize,
    pub(super) batch: usize,
    pub(super) running: Running,
    pub(super) best_val_loss: f64,
    pub(super) best_epoch: usize,
    pub(super) bad_epochs: usize,
    pub(super) history: Vec<EpochStats>,
    pub(super) config: TrainConfig,
    pub(super) train_images: Vec<usize>,
}

impl Running {
    /// Count one step: its mean loss and correct predictions over `n`
    /// images, the time spent waiting for the batch and computing it.
    pub(super) fn add(
        &mut self,
        loss: f64,
        correct: f64,
        n: usize,
        wait: std::time::Duration,
        busy: std::time::Duration,
    ) {
        self.loss_sum += loss * n as f64;
        self.correct += correct;
        self.seen += n;
        self.wait += wait.as_secs_f64();
        self.busy += busy.as_secs_f64();
    }

    pub(super) fn loss(&self) -> f64 {
        self.loss_sum / self.seen.max(1) as f64
    }

    pub(super) fn accuracy(&self) -> f64 {
        self.correct / self.seen.max(1) as f64
    }

    /// For the progress bar.
    pub(super) fn summary(&self) -> String {
        format!("loss {:.3} acc {:.3}", self.loss(), self.accuracy())
    }
}
