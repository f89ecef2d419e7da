//! One run's network, optimizer and state, its plan of epochs, and the
//! step that trains on a batch.
use std::sync::Arc;
use std::time::Instant;

use gemstones_augment::BatchAugmenter;
use gemstones_dataset::{ImageSet, Stream, seed_for};
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution};
use rand_pcg::Pcg64Mcg;
use tch::nn::{self, ModuleT};
use tch::{Kind, Reduction, Tensor};

use super::config::{KeptWeights, TrainConfig};
use super::ema::EmaWeights;
use super::state::TrainState;
use super::validation::ValSet;
use crate::error::{Error, Result};
use crate::history::EpochStats;
use crate::layers::channels_last;
use crate::loader::batches_per_epoch;
use crate::modeldir::ModelDir;
use crate::modeldir::save_weights;
use crate::nets::{ModelConfig, Net};
use crate::optim::Optimizer;

/// What a run trains and carries from step to step.
pub(super) struct Session {
    pub(super) vs: nn::VarStore,
    pub(super) net: Net,
    pub(super) opt: Optimizer,
    pub(super) state: TrainState,
    /// The moving average of the weights, validated and kept in their
    /// place, when the run keeps one.
    pub(super) ema: Option<EmaWeights>,
    /// Trainable parameters (for the report).
    pub(super) parameters: i64,
}

/// The steps of a run: per epoch, and the first ones that train only the
/// classifier when fine-tuning.
pub(super) struct Steps {
    pub(super) total: usize,
    pub(super) frozen: usize,
}

/// A run's plan: its steps, and the input size (so the augmenter) of each
/// epoch under progressive resizing.
pub(super) struct EpochPlan {
    pub(super) batches: usize,
    pub(super) steps: Steps,
    /// One augmenter per input size, and the one each epoch uses.
    pub(super) augmenters: Vec<BatchAugmenter>,
    pub(super) epoch_augmenter: Vec<usize>,
}

impl EpochPlan {
    pub(super) fn new(model: &ModelConfig, cfg: &TrainConfig, train_images: usize) -> Result<Self> {
        let size = model.input_size();
        let batches = batches_per_epoch(train_images, cfg.batch_size);
        let epoch_sizes = match cfg.progressive {
            Some(p) if p.start_size < size => {
                if !model.any_input_size() {
                    return Err(Error::InvalidConfig {
                        reason: "progressive resizing needs a network that takes any input size; the \
                                 tutorial CNN's dense layer fixes it"
                            .into(),
                    });
                }
                p.sizes(size, cfg.epochs)
            }
            _ => vec![size; cfg.epochs],
        };
        let mut sizes = epoch_sizes.clone();
        sizes.dedup();
        let augmenters = sizes
            .iter()
            .map(|&s| BatchAugmenter::new(cfg.augment.clone(), seed_for(cfg.seed, Stream::Augment, 0), s, s))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let epoch_augmenter =
            epoch_sizes.iter().map(|s| sizes.iter().position(|x| x == s).unwrap_or(0)).collect();
        let steps = Steps {
            total: batches * cfg.epochs,
            frozen: cfg.fine_tune.map_or(0, |f| f.frozen_epochs * batches),
        };
        Ok(Self { batches, steps, augmenters, epoch_augmenter })
    }
}

/// The training images the loader draws from.
pub(super) struct LoaderInput {
    pub(super) set: Arc<ImageSet>,
    pub(super) train: Vec<usize>,
}

/// How an epoch ended: its index (0-based), the learning rate of its last
/// step and its input size.
pub(super) struct EpochEnd {
    pub(super) epoch: usize,
    pub(super) lr: f64,
    pub(super) input_size: u32,
}

impl Session {
    /// The learning rate of `step`, with the body frozen or not as the
    /// fine-tuning plan says at that step.
    pub(super) fn prepare_step(&mut self, cfg: &TrainConfig, steps: &Steps, step: usize) -> f64 {
        let Some(f) = cfg.fine_tune else { return cfg.schedule.lr(cfg.lr, step, steps.total) };
        self.net.freeze_stages(if step < steps.frozen { usize::MAX } else { f.frozen_stages });
        self.net.keep_bn_statistics(f.keep_bn_statistics);
        if step == steps.frozen && steps.frozen > 0 {
            // The body joins in: a fresh optimizer state for the second
            // phase (the same whether or not a run resumed at this step).
            self.opt.reset();
        }
        f.lr(&cfg.schedule, cfg.lr, step, steps.frozen, steps.total)
    }

    /// The end of an epoch: validate, record its statistics (its wall
    /// time from `epoch_start`, validation included; the clock then
    /// restarts for the next epoch), keep the weights when they are the
    /// best so far. With a moving average, the average is what is
    /// validated and kept.
    pub(super) fn finish_epoch(
        &mut self,
        cfg: &TrainConfig,
        val: &ValSet,
        end: EpochEnd,
        epoch_start: &mut Instant,
        mdir: &ModelDir,
    ) -> Result<EpochStats> {
        let (val_loss, top1, top5) = with_kept_weights(&mut self.ema, || val.evaluate(&self.net))?;
        let seconds = epoch_start.elapsed().as_secs_f64();
        *epoch_start = Instant::now();
        let running = std::mem::take(&mut self.state.running);
        let train_time = (running.wait + running.busy).max(1e-9);
        let stats = EpochStats {
            epoch: end.epoch + 1,
            train_loss: running.loss(),
            train_acc: running.accuracy(),
            val_loss,
            val_top1: top1,
            val_top5: top5,
            lr: end.lr,
            seconds,
            images_per_sec: running.seen as f64 / train_time,
            data_wait: running.wait / train_time,
            input_size: end.input_size,
        };
        let state = &mut self.state;
        state.epoch = end.epoch + 1;
        state.batch = 0;
        let monitored = val_loss.unwrap_or(stats.train_loss);
        let min_delta = cfg.early_stopping.map_or(0.0, |e| e.min_delta);
        let improved = monitored < state.best_val_loss - min_delta;
        if improved {
            state.best_val_loss = monitored;
            state.bad_epochs = 0;
        } else {
            state.bad_epochs += 1;
        }
        let keep = match cfg.kept_weights {
            KeptWeights::BestValidation => improved || val_loss.is_none(),
            KeptWeights::LastEpoch => true,
        };
        if keep {
            state.best_epoch = stats.epoch;
            with_kept_weights(&mut self.ema, || save_weights(&self.vs, &mdir.best_path()))?;
        }
        state.history.push(stats.clone());
        Ok(stats)
    }
}

/// Run `f` on the weights a run keeps: the moving average if there is one
/// (put in the var store for `f`), else the trained weights.
fn with_kept_weights<T>(ema: &mut Option<EmaWeights>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match ema {
        Some(average) => average.in_place_of_weights(f),
        None => f(),
    }
}

pub(super) fn early_stopped(cfg: &TrainConfig, state: &TrainState) -> bool {
    cfg.early_stopping.is_some_and(|e| state.bad_epochs >= e.patience.max(1))
}

/// One optimisation step; returns the batch's mean loss and the number of
/// correct predictions (mixup: weighted by lambda).
pub(super) fn train_step(
    net: &Net,
    opt: &mut Optimizer,
    cfg: &TrainConfig,
    batch: &crate::loader::Batch,
    lr: f64,
    step: usize,
) -> Result<(f64, f64)> {
    let s = i64::from(batch.size);
    let n = batch.n as i64;
    let x = Tensor::f_from_slice(&batch.x)?
        .f_view([n, s, s, 3])?
        .f_permute([0, 3, 1, 2])?
        .f_to_device(net.device())?;
    let y = Tensor::f_from_slice(&batch.y)?.f_to_device(net.device())?;
    // Dropout masks and mixup from (seed, step): a resumed run repeats them.
    // The generator is held until the forward pass has drawn its masks.
    let rng_guard = crate::device::torch_rng_lock();
    tch::manual_seed(seed_for(cfg.seed, Stream::Dropout, step as u64) as i64);
    let ce = |logits: &Tensor, target: &Tensor| {
        logits.f_cross_entropy_loss::<Tensor>(target, None, Reduction::Mean, -100, cfg.label_smoothing)
    };
    let (loss, correct) = if let Some(alpha) = cfg.mixup {
        let mut rng = Pcg64Mcg::seed_from_u64(seed_for(cfg.seed, Stream::Mixup, step as u64));
        let lam = Beta::new(alpha, alpha).map_or(1.0, |b| b.sample(&mut rng));
        let mut perm: Vec<i64> = (0..n).collect();
        for i in (1..perm.len()).rev() {
            perm.swap(i, rng.random_range(0..=i));
        }
        let perm = Tensor::f_from_slice(&perm)?.f_to_device(net.device())?;
        let x2 = x.f_index_select(0, &perm)?;
        let xm = channels_last(&(&x * lam + &x2 * (1.0 - lam)));
        let y2 = y.f_index_select(0, &perm)?;
        let logits = net.forward_t(&xm, true);
        let loss = ce(&logits, &y)? * lam + ce(&logits, &y2)? * (1.0 - lam);
        let pred = logits.argmax(-1, false);
        let c = f64::try_from(pred.eq_tensor(&y).to_kind(Kind::Float).sum(Kind::Float))? * lam
            + f64::try_from(pred.eq_tensor(&y2).to_kind(Kind::Float).sum(Kind::Float))? * (1.0 - lam);
        (loss, c)
    } else {
        let logits = net.forward_t(&x, true);
        let loss = ce(&logits, &y)?;
        let c = f64::try_from(logits.argmax(-1, false).eq_tensor(&y).to_kind(Kind::Float).sum(Kind::Float))?;
        (loss, c)
    };
    drop(rng_guard);
    let value = f64::try_from(&loss)?;
    if !value.is_finite() {
        return Ok((value, correct));
    }
    opt.zero_grad();
    loss.f_backward()?;
    if let Some(max) = cfg.grad_clip {
        opt.clip_grad_norm(max);
    }
    opt.step(lr);
    Ok((value, correct))
}
