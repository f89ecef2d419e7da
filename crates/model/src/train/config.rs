//! How to train: [`TrainConfig`] and the settings it is made of.
use std::path::PathBuf;

use gemstones_augment::{AugmentConfig, Normalize};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nets::Precision;
use crate::optim::{OptimizerConfig, OptimizerKind, Schedule};

/// Stop training early on validation loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Epochs without improvement after which training stops (Keras'
    /// meaning: 1 stops after the first epoch that does not improve).
    pub patience: usize,
    /// Smallest decrease that counts as an improvement.
    pub min_delta: f64,
}

/// Progressive resizing (fastai's): the first epochs train on smaller
/// images, which cost less per step, then the side grows to the model's
/// input size, so more epochs fit in the same time. Validation always
/// runs at the full size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProgressiveResize {
    /// Input side of the first epoch (at least 32; at most the model's).
    pub start_size: u32,
    /// Fraction of the epochs (0..=1) over which the side grows in steps
    /// of 16 pixels; the remaining epochs train at the full size.
    pub ramp: f64,
}

impl ProgressiveResize {
    /// The input side of every epoch of a run of `epochs` at `full` size.
    pub fn sizes(&self, full: u32, epochs: usize) -> Vec<u32> {
        let start = self.start_size.min(full);
        let ramp_epochs = (self.ramp.clamp(0.0, 1.0) * epochs as f64).round() as usize;
        (0..epochs)
            .map(|e| {
                if e >= ramp_epochs {
                    return full;
                }
                let grown = f64::from(full - start) * e as f64 / ramp_epochs as f64;
                (start + (grown / 16.0).floor() as u32 * 16).min(full)
            })
            .collect()
    }
}

/// fastai's `fine_tune` for a pretrained body: first train only the new
/// classifier with the body frozen, then everything, the body at smaller
/// learning rates (discriminative: the first layers, which hold the most
/// general features, change least). Each phase runs its own schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FineTune {
    /// Epochs that train only the classifier (body frozen: no gradients,
    /// batch norm on its pretrained statistics).
    pub frozen_epochs: usize,
    /// Learning-rate multiplier of the body's first layer once unfrozen.
    pub first_lr_mult: f64,
    /// Multiplier of its last layer; the layers between get geometrically
    /// spaced multipliers, the classifier 1.
    pub last_lr_mult: f64,
    /// Leading stages of the body that stay frozen after the frozen epochs
    /// (0: none; see [`Net::freeze_stages`](crate::Net::freeze_stages)): the most general features,
    /// and the most expensive layers to back-propagate through.
    #[serde(default)]
    pub frozen_stages: usize,
    /// Keep the body's batch-norm statistics at their pretrained values
    /// after the unfreezing too (Keras' advice for small datasets: the
    /// scales and shifts still learn). Without it the unfrozen layers
    /// normalise with each batch's own statistics, a sudden change of the
    /// features the classifier was trained on.
    #[serde(default)]
    pub keep_bn_statistics: bool,
    /// Multiplier of the base learning rate once the body is unfrozen
    /// (fastai's `fine_tune` halves it: 0.5): the new classifier is
    /// trained by then and the pretrained layers want smaller steps.
    #[serde(default = "one")]
    pub unfrozen_lr_mult: f64,
}

fn one() -> f64 {
    1.0
}

impl FineTune {
    /// The learning-rate multiplier of a variable at `depth` (0: the
    /// body's first layer, 1: its last; `None`: the classifier).
    pub fn lr_mult(&self, depth: Option<f64>) -> f64 {
        match depth {
            None => 1.0,
            Some(d) => self.first_lr_mult * (self.last_lr_mult / self.first_lr_mult).powf(d.clamp(0.0, 1.0)),
        }
    }

    /// The learning rate of `step` of `total`: the schedule runs once over
    /// the frozen steps and once over the rest.
    pub fn lr(&self, schedule: &Schedule, lr: f64, step: usize, frozen_steps: usize, total: usize) -> f64 {
        if step < frozen_steps {
            schedule.lr(lr, step, frozen_steps)
        } else {
            schedule.lr(lr * self.unfrozen_lr_mult, step - frozen_steps, total - frozen_steps)
        }
    }
}

/// One fold of k-fold cross-validation: the validation images are the
/// `fold`-th of `folds` stratified, near-duplicate-aware folds of the set
/// (seeded by the training seed), the training images all the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrossValFold {
    /// Which fold is held out, from 1.
    pub fold: usize,
    /// How many folds (2 to 100; 5 is the usual choice).
    pub folds: usize,
}

/// Keep an exponential moving average of the weights and validate it, and
/// keep it as the model, in their place (timm's `ModelEmaV2`, Keras'
/// `use_ema`). The optimizer still trains the weights themselves, so the
/// run is the same run; only what is scored and kept changes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ema {
    /// How much of the average each step keeps (0.9 to 1 exclusive; the
    /// rest is the new weights): 0.995 averages over the last ~200 steps.
    /// Warmed up as timm's: `min(decay, (1 + step) / (10 + step))`.
    pub decay: f64,
}

/// Which weights a training keeps as the model (`best.safetensors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptWeights {
    /// The epoch with the lowest validation loss (Keras'
    /// `save_best_only`); without validation images, the last epoch.
    #[default]
    BestValidation,
    /// The last epoch, whatever validation says: a cross-validation fold
    /// scores the recipe, not an epoch chosen on the fold it is scored on.
    LastEpoch,
}

impl KeptWeights {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step (the tutorial's 32).
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Adam, AdamW or SGD and their settings.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Label smoothing of the cross-entropy (0: none).
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this.
    pub grad_clip: Option<f64>,
    /// Stop when validation loss stops improving.
    pub early_stopping: Option<EarlyStopping>,
    /// Mixup with this Beta(alpha, alpha) parameter.
    pub mixup: Option<f64>,
    /// Training augmentation.
    pub augment: AugmentConfig,
    /// Input normalisation.
    pub normalize: Normalize,
    /// Fraction of the images held out, stratified, for validation (the
    /// tutorial's 0.2).
    pub val_fraction: f64,
    /// Keep near-duplicate images (both perceptual hashes of the
    /// preprocessed images within this many bits) on one side of the
    /// validation split, so validation never scores a copy of a training
    /// image; `None`: image by image (the tutorial's way).
    pub near_duplicates: Option<u32>,
    /// Validate on one fold of k-fold cross-validation instead of a
    /// `val_fraction` share (which must then be 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross_val: Option<CrossValFold>,
    /// The weights kept as the model: the best epoch on validation, or the
    /// last.
    #[serde(skip_serializing_if = "KeptWeights::is_default")]
    pub kept_weights: KeptWeights,
    /// Validate and keep a moving average of the weights (off by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ema: Option<Ema>,
    /// Seed of the split, the data order, the augmentation, the initial
    /// weights and dropout.
    pub seed: u64,
    /// f32 or bf16 compute.
    pub precision: Precision,
    /// libtorch threads (default: libtorch's choice, one per core). The
    /// data pipeline gives the same batches whatever this is, but libtorch
    /// splits its sums by thread, so a run repeats bit for bit only at the
    /// same count (another count differs in round-off). The count is one per
    /// process: trainings running at once in one process should ask for the
    /// same, or each changes the other's.
    pub threads: Option<usize>,
    /// Threads augmenting the next batches.
    pub augment_threads: usize,
    /// Train the first epochs on smaller images (off by default).
    pub progressive: Option<ProgressiveResize>,
    /// Start from these pretrained weights (a PyTorch checkpoint or
    /// safetensors; EfficientNet-Lite only). Read once at the start of a
    /// run, never on resume; the model directory does not need it later.
    pub pretrained: Option<PathBuf>,
    /// Freeze, then unfreeze with discriminative learning rates.
    pub fine_tune: Option<FineTune>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self::tutorial()
    }
}

impl TrainConfig {
    /// The tutorial: Adam at 1e-3, constant, batch 32, its augmentation,
    /// 20 % validation, plain cross-entropy.
    pub fn tutorial() -> Self {
        Self {
            epochs: 40,
            batch_size: 32,
            lr: 1e-3,
            optimizer: OptimizerConfig::default(),
            schedule: Schedule::Constant,
            label_smoothing: 0.0,
            grad_clip: None,
            early_stopping: None,
            mixup: None,
            augment: AugmentConfig::tutorial(),
            normalize: Normalize::default(),
            val_fraction: 0.2,
            near_duplicates: Some(gemstones_dataset::DEFAULT_MAX_DISTANCE),
            cross_val: None,
            kept_weights: KeptWeights::BestValidation,
            ema: None,
            seed: 1337,
            precision: Precision::Bf16,
            threads: None,
            augment_threads: 1,
            progressive: None,
            pretrained: None,
            fine_tune: None,
        }
    }

    /// What the residual network is trained with: AdamW with weight decay,
    /// one-cycle, label smoothing, gradient clipping, stronger augmentation.
    pub fn strong() -> Self {
        Self {
            epochs: 60,
            batch_size: 32,
            lr: 3e-3,
            optimizer: OptimizerConfig {
                kind: OptimizerKind::AdamW,
                weight_decay: 0.05,
                eps: 1e-8,
                ..OptimizerConfig::default()
            },
            schedule: Schedule::one_cycle(),
            label_smoothing: 0.1,
            grad_clip: Some(5.0),
            augment: AugmentConfig::strong(),
            normalize: Normalize::imagenet(),
            ..Self::tutorial()
        }
    }

    /// Check the values are usable.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidConfig { reason });
        if self.epochs == 0 || self.batch_size < 2 {
            return bad("epochs must be >= 1 and batch_size >= 2".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be > 0, got {}", self.lr));
        }
        let momentum = self.optimizer.momentum;
        if !(0.0..1.0).contains(&momentum) {
            return bad(format!("optimizer.momentum must be within 0..1, got {momentum}"));
        }
        let wd = self.optimizer.weight_decay;
        if !(wd.is_finite() && (0.0..1.0).contains(&wd)) {
            return bad(format!("optimizer.weight_decay must be within 0..1, got {wd}"));
        }
        if !(0.0..0.9).contains(&self.val_fraction) {
            return bad(format!("val_fraction must be within 0..0.9, got {}", self.val_fraction));
        }
        if let Some(f) = self.cross_val {
            if !(2..=100).contains(&f.folds) || !(1..=f.folds).contains(&f.fold) {
                return bad(format!(
                    "cross_val: fold {} of {} (2 to 100 folds, fold from 1)",
                    f.fold, f.folds
                ));
            }
            if self.val_fraction > 0.0 {
                return bad(format!(
                    "cross_val and val_fraction ({}) both choose validation images: set val_fraction to 0",
                    self.val_fraction
                ));
            }
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad("label_smoothing must be within 0..1".into());
        }
        if let Some(e) = self.ema
            && !(0.9..1.0).contains(&e.decay)
        {
            return bad(format!("ema.decay must be within 0.9..1, got {}", e.decay));
        }
        if self.mixup.is_some_and(|a| !(a > 0.0 && a.is_finite())) {
            return bad("mixup alpha must be > 0".into());
        }
        if let Some(p) = self.progressive
            && (p.start_size < 32 || !(0.0..=1.0).contains(&p.ramp))
        {
            return bad(format!(
                "progressive resizing needs start_size >= 32 and ramp within 0..=1, got {} and {}",
                p.start_size, p.ramp
            ));
        }
        if let Some(f) = self.fine_tune {
            if f.frozen_epochs >= self.epochs {
                return bad(format!(
                    "fine_tune.frozen_epochs ({}) must be below epochs ({})",
                    f.frozen_epochs, self.epochs
                ));
            }
            let mult_ok = |m: f64| m > 0.0 && m <= 1.0;
            if ![f.first_lr_mult, f.last_lr_mult, f.unfrozen_lr_mult].into_iter().all(mult_ok) {
                return bad("fine_tune learning-rate multipliers must be within (0, 1]".into());
            }
        }
        self.augment.validate()?;
        self.normalize.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progressive_sizes_grow_in_steps_of_16_then_stay_full() {
        let p = ProgressiveResize { start_size: 96, ramp: 0.5 };
        assert_eq!(p.sizes(160, 8), [96, 112, 128, 144, 160, 160, 160, 160]);
        assert_eq!(p.sizes(128, 4), [96, 112, 128, 128]);
        // No ramp: full size throughout; a start above the full size is capped.
        assert_eq!(ProgressiveResize { start_size: 96, ramp: 0.0 }.sizes(128, 3), [128; 3]);
        assert_eq!(ProgressiveResize { start_size: 200, ramp: 1.0 }.sizes(128, 2), [128; 2]);
        let bad = TrainConfig {
            progressive: Some(ProgressiveResize { start_size: 8, ramp: 0.5 }),
            ..TrainConfig::strong()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_weight_decay_outside_0_to_1_is_refused_by_name() {
        for wd in [-0.1, 1.5, f64::NAN] {
            let mut cfg = TrainConfig::strong();
            cfg.optimizer.weight_decay = wd;
            assert!(cfg.validate().unwrap_err().to_string().contains("weight_decay"), "{wd}");
        }
        let mut cfg = TrainConfig::strong();
        cfg.optimizer.weight_decay = 0.2;
        cfg.validate().unwrap();
    }
}
