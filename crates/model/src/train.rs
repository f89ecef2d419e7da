//! Training: configuration, the loop, checkpoints, resume, early stopping,
//! history.
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use gemstones_dataset::StopFlag;
use std::time::Instant;

use gemstones_augment::{AugmentConfig, BatchAugmenter, Normalize, Output};
use gemstones_dataset::{
    ImageSet, PreprocessConfig, SmallClassPolicy, SplitRatios, Stream, group_ids, near_duplicate_groups,
    seed_for, stratified_group_split,
};
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Reduction, Tensor};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::loader::{Loader, LoaderPlan, batches_per_epoch};
use crate::modeldir::{ModelDir, ModelSpec, SPEC_FORMAT, load_weights, read_json, save_weights, write_json};
use crate::nets::{ModelConfig, Net, Precision, channels_last, to_channels_last, trainable_parameters};
use crate::optim::{Adam, OptimizerConfig, OptimizerKind, Schedule};

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
    /// (0: none; see [`Net::freeze_stages`]): the most general features,
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
    /// Adam or AdamW and their settings.
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
        let wd = self.optimizer.weight_decay;
        if !(wd.is_finite() && (0.0..1.0).contains(&wd)) {
            return bad(format!("optimizer.weight_decay must be within 0..1, got {wd}"));
        }
        if !(0.0..0.9).contains(&self.val_fraction) {
            return bad(format!("val_fraction must be within 0..0.9, got {}", self.val_fraction));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad("label_smoothing must be within 0..1".into());
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

/// Why training stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All epochs ran.
    Completed,
    /// Validation loss stopped improving.
    EarlyStopped,
    /// The stop flag was raised (Ctrl-C); the checkpoint is resumable.
    Interrupted,
}

/// What a training run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// One entry per epoch, including epochs of earlier runs when resumed.
    pub history: Vec<EpochStats>,
    /// Epoch (from 1) with the lowest validation loss, whose weights are in
    /// `best.safetensors`.
    pub best_epoch: usize,
    /// Its validation top-1 accuracy.
    pub best_val_top1: Option<f64>,
    /// Why it stopped.
    pub stop: StopReason,
    /// Training and validation image counts.
    pub images: (usize, usize),
    /// Trainable parameters.
    pub parameters: i64,
    /// Whether it continued an earlier run.
    pub resumed: bool,
    /// Wall time of this run, in seconds.
    pub seconds: f64,
    /// The model directory.
    pub model_dir: PathBuf,
}

/// Progress inside an epoch, saved with a mid-epoch checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Running {
    loss_sum: f64,
    correct: f64,
    seen: usize,
    wait: f64,
    busy: f64,
}

/// Saved with every checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainState {
    /// Epoch in progress (0-based) and the next batch in it.
    epoch: usize,
    batch: usize,
    running: Running,
    best_val_loss: f64,
    best_epoch: usize,
    bad_epochs: usize,
    history: Vec<EpochStats>,
    config: TrainConfig,
    train_images: Vec<usize>,
}

impl Running {
    /// Count one step: its mean loss and correct predictions over `n`
    /// images, the time spent waiting for the batch and computing it.
    fn add(
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

    fn loss(&self) -> f64 {
        self.loss_sum / self.seen.max(1) as f64
    }

    fn accuracy(&self) -> f64 {
        self.correct / self.seen.max(1) as f64
    }

    /// For the progress bar.
    fn summary(&self) -> String {
        format!("loss {:.3} acc {:.3}", self.loss(), self.accuracy())
    }
}

/// What a run trains and carries from step to step.
struct Session {
    vs: nn::VarStore,
    net: Net,
    opt: Adam,
    state: TrainState,
    /// Trainable parameters (for the report).
    parameters: i64,
}

/// The steps of a run: per epoch, and the first ones that train only the
/// classifier when fine-tuning.
struct Steps {
    total: usize,
    frozen: usize,
}

/// A run's plan: its steps, and the input size (so the augmenter) of each
/// epoch under progressive resizing.
struct EpochPlan {
    batches: usize,
    steps: Steps,
    /// One augmenter per input size, and the one each epoch uses.
    augmenters: Vec<BatchAugmenter>,
    epoch_augmenter: Vec<usize>,
}

impl EpochPlan {
    fn new(model: &ModelConfig, cfg: &TrainConfig, train_images: usize) -> Result<Self> {
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
struct LoaderInput {
    set: Arc<ImageSet>,
    train: Vec<usize>,
}

/// How an epoch ended: its index (0-based), the learning rate of its last
/// step and its input size.
struct EpochEnd {
    epoch: usize,
    lr: f64,
    input_size: u32,
}

impl Session {
    /// The learning rate of `step`, with the body frozen or not as the
    /// fine-tuning plan says at that step.
    fn prepare_step(&mut self, cfg: &TrainConfig, steps: &Steps, step: usize) -> f64 {
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
    /// best so far.
    fn finish_epoch(
        &mut self,
        cfg: &TrainConfig,
        val: &ValSet,
        end: EpochEnd,
        epoch_start: &mut Instant,
        mdir: &ModelDir,
    ) -> Result<EpochStats> {
        let (val_loss, top1, top5) = val.evaluate(&self.net)?;
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
        if monitored < state.best_val_loss - min_delta {
            state.best_val_loss = monitored;
            state.best_epoch = stats.epoch;
            state.bad_epochs = 0;
            save_weights(&self.vs, &mdir.best_path())?;
        } else {
            state.bad_epochs += 1;
        }
        state.history.push(stats.clone());
        Ok(stats)
    }
}

type EpochCallback<'a> = Box<dyn FnMut(&EpochStats) + 'a>;

/// Trains a [`ModelConfig`] on an [`ImageSet`] into a model directory.
///
/// ```no_run
/// use std::sync::Arc;
/// use gemstones_model::{ModelConfig, TrainConfig, Trainer};
/// # fn set() -> gemstones_dataset::ImageSet { unimplemented!() }
/// let report = Trainer::new(ModelConfig::tutorial(), TrainConfig::tutorial())?
///     .run(Arc::new(set()), &gemstones_dataset::PreprocessConfig::default(), "model".as_ref())?;
/// println!("best epoch {} ({:?} top-1)", report.best_epoch, report.best_val_top1);
/// # Ok::<(), gemstones_model::Error>(())
/// ```
pub struct Trainer<'a> {
    model: ModelConfig,
    cfg: TrainConfig,
    resume: bool,
    allow_changed_settings: bool,
    stop: StopFlag,
    on_epoch: Option<EpochCallback<'a>>,
    progress: bool,
}

impl<'a> Trainer<'a> {
    /// A trainer for this network and configuration.
    pub fn new(model: ModelConfig, cfg: TrainConfig) -> Result<Self> {
        model.validate()?;
        cfg.validate()?;
        Ok(Self {
            model,
            cfg,
            resume: true,
            allow_changed_settings: false,
            stop: StopFlag::new(),
            on_epoch: None,
            progress: true,
        })
    }

    /// Continue from the directory's last checkpoint if there is one
    /// (default true). With `false`, a directory that holds a checkpoint is
    /// an error rather than being overwritten.
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Resume a checkpoint even under other training settings (fastai's
    /// "fit again with a lower rate"): the differences are logged as a
    /// warning and the new settings apply from the next step. Off by
    /// default: a resumed run refuses settings that would silently make it
    /// another experiment.
    pub fn allow_changed_settings(mut self, allow: bool) -> Self {
        self.allow_changed_settings = allow;
        self
    }

    /// The flag that stops the run cleanly.
    pub fn stop_flag(mut self, flag: StopFlag) -> Self {
        self.stop = flag;
        self
    }

    /// Called after every epoch.
    pub fn on_epoch(mut self, f: impl FnMut(&EpochStats) + 'a) -> Self {
        self.on_epoch = Some(Box::new(f));
        self
    }

    /// Show a progress bar on a terminal (default true; never drawn when
    /// stderr is not a terminal).
    pub fn progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    /// Train on `set` (preprocessed with `preprocess`, recorded so
    /// prediction repeats it) into `dir`.
    pub fn run(
        mut self,
        set: Arc<ImageSet>,
        preprocess: &PreprocessConfig,
        dir: &Path,
    ) -> Result<TrainReport> {
        let started = Instant::now();
        self.set_up_threads();
        let mdir = ModelDir::new(dir);
        let resume_from = self.open_model_dir(&mdir, &set, preprocess)?;
        let (train_idx, val_idx) = split_indices(&set, &self.cfg)?;
        if train_idx.len() < 2 {
            return Err(Error::InvalidConfig { reason: format!("only {} training images", train_idx.len()) });
        }
        let mut session = self.start_session(set.classes().len(), &train_idx, resume_from.as_deref())?;
        let plan = EpochPlan::new(&self.model, &self.cfg, train_idx.len())?;
        let val = ValSet::new(&set, &val_idx, self.model.input_size(), &self.cfg.normalize)?;
        let stop = if session.state.epoch >= self.cfg.epochs {
            StopReason::Completed
        } else if early_stopped(&self.cfg, &session.state) {
            StopReason::EarlyStopped
        } else {
            self.train_epochs(&mut session, plan, LoaderInput { set, train: train_idx.clone() }, &val, &mdir)?
        };
        // Again at the end: a run that died writing them after its last
        // checkpoint resumes with nothing left to train.
        crate::report::write_history(&mdir, &session.state.history)?;
        let state = session.state;
        let best_val_top1 =
            state.history.iter().find(|h| h.epoch == state.best_epoch).and_then(|h| h.val_top1);
        Ok(TrainReport {
            history: state.history,
            best_epoch: state.best_epoch,
            best_val_top1,
            stop,
            images: (train_idx.len(), val_idx.len()),
            parameters: session.parameters,
            resumed: resume_from.is_some(),
            seconds: started.elapsed().as_secs_f64(),
            model_dir: dir.to_path_buf(),
        })
    }

    /// libtorch's thread count, and a warning when glibc's allocator
    /// cannot be tuned for this thread.
    fn set_up_threads(&self) {
        if crate::device::tune_malloc()
            && crate::device::on_main_thread() == Some(false)
            && crate::device::best_device() == Device::Cpu
        {
            tracing::warn!(
                "training on a thread other than main: glibc maps and unmaps this thread's blocks above \
                 64 MB every step, which slows CPU training at large inputs; train on the main thread"
            );
        }
        if let Some(t) = self.cfg.threads {
            tch::set_num_threads(t as i32);
        }
    }

    /// Check the model directory can take this run (a checkpoint in it is
    /// resumed only when asked, only of the same model, classes and
    /// preprocessing, and only under the same settings unless allowed),
    /// write the spec, and return the checkpoint to resume, if any.
    fn open_model_dir(
        &self,
        mdir: &ModelDir,
        set: &ImageSet,
        preprocess: &PreprocessConfig,
    ) -> Result<Option<PathBuf>> {
        let spec = ModelSpec {
            format: SPEC_FORMAT,
            model: self.model.clone(),
            precision: self.cfg.precision,
            preprocess: *preprocess,
            normalize: self.cfg.normalize,
            classes: set.classes().names().to_vec(),
            augment: self.cfg.augment.clone(),
        };
        mdir.remove_interrupted_checkpoint_writes()?;
        let resume_from = mdir.resumable();
        if let Some(ckpt) = &resume_from {
            if !self.resume {
                return Err(Error::BadModel {
                    path: ckpt.clone(),
                    reason: "holds a checkpoint; resume it or train into another directory".into(),
                });
            }
            let old = mdir.read_spec()?;
            if old.model != spec.model || old.classes != spec.classes || old.preprocess != spec.preprocess {
                return Err(Error::BadModel {
                    path: mdir.spec_path(),
                    reason: "the checkpoint is of another model, class list or preprocessing; train into another directory".into(),
                });
            }
            let saved: TrainState = read_json(&ckpt.join("state.json"))?;
            match check_resumable_with(&saved.config, &self.cfg, &ckpt.join("state.json")) {
                Err(e) if self.allow_changed_settings => tracing::warn!("continuing as asked: {e}"),
                other => other?,
            }
        }
        mdir.write_spec(&spec)?;
        Ok(resume_from)
    }

    /// The network (seeded, pretrained weights loaded when asked), its
    /// optimizer and the training state: fresh, or restored from
    /// `resume_from`.
    fn start_session(
        &self,
        classes: usize,
        train_idx: &[usize],
        resume_from: Option<&Path>,
    ) -> Result<Session> {
        let cfg = &self.cfg;
        // CUDA when libtorch has it and a GPU is present, else the CPU.
        let mut vs = nn::VarStore::new(crate::device::best_device());
        let net = {
            let _rng = crate::device::torch_rng_lock();
            tch::manual_seed(seed_for(cfg.seed, Stream::WeightInit, 0) as i64);
            Net::new(&vs.root(), &self.model, classes, cfg.precision)?
        };
        if cfg.fine_tune.is_some() && !net.is_pretrainable() {
            return Err(Error::InvalidConfig {
                reason: format!("fine_tune needs a pretrained network; {} has none", self.model.name()),
            });
        }
        if let (Some(path), None) = (&cfg.pretrained, resume_from) {
            let copied = net.load_pretrained(&vs, &Checkpoint::read(path)?)?;
            tracing::info!("loaded {copied} pretrained tensors from {}", path.display());
        }
        let parameters = trainable_parameters(&vs);
        let fine_tune = cfg.fine_tune;
        let mut opt = Adam::with_lr_scales(&vs, cfg.optimizer, |name| {
            fine_tune.map_or(1.0, |f| f.lr_mult(net.depth_of(name)))
        });
        let mut state = TrainState {
            epoch: 0,
            batch: 0,
            running: Running::default(),
            best_val_loss: f64::INFINITY,
            best_epoch: 0,
            bad_epochs: 0,
            history: Vec::new(),
            config: cfg.clone(),
            train_images: train_idx.to_vec(),
        };
        if let Some(ckpt) = resume_from {
            load_weights(&mut vs, &ckpt.join("weights.safetensors"))?;
            opt.load(&ckpt.join("optimizer.safetensors"))?;
            state = read_json(&ckpt.join("state.json"))?;
            // Changed only by a longer run with a constant schedule, or when
            // allowed.
            state.config = cfg.clone();
            if state.train_images != train_idx {
                return Err(Error::BadModel {
                    path: ckpt.to_path_buf(),
                    reason: "checkpoint was made with another split of the data".into(),
                });
            }
        }
        to_channels_last(&vs);
        Ok(Session { vs, net, opt, state, parameters })
    }

    /// The epoch loop: a step per batch from the background loader; at
    /// each epoch's end validate, keep the best weights, checkpoint; stop
    /// early, on Ctrl-C (after a checkpoint), or when the epochs are done.
    fn train_epochs(
        &mut self,
        s: &mut Session,
        plan: EpochPlan,
        data: LoaderInput,
        val: &ValSet,
        mdir: &ModelDir,
    ) -> Result<StopReason> {
        let cfg = self.cfg.clone();
        let mut loader = Loader::spawn(LoaderPlan {
            set: data.set,
            train: Arc::new(data.train),
            augmenters: plan.augmenters,
            epoch_augmenter: plan.epoch_augmenter,
            normalize: cfg.normalize,
            batch_size: cfg.batch_size,
            seed: cfg.seed,
            start: (s.state.epoch, s.state.batch),
            end_epoch: cfg.epochs,
            threads: cfg.augment_threads,
            prefetch: 2,
        })?;
        let bar = self.progress_bar(plan.batches as u64);
        bar.set_position(s.state.batch as u64);
        let mut epoch_start = Instant::now();
        let stop = loop {
            let wait_start = Instant::now();
            let Some(batch) = loader.next() else { break StopReason::Completed };
            let batch = batch?;
            let busy_start = Instant::now();
            let step = batch.epoch * plan.batches + batch.index;
            let lr = s.prepare_step(&cfg, &plan.steps, step);
            let (loss, correct) = train_step(&s.net, &mut s.opt, &cfg, &batch, lr, step)?;
            if !loss.is_finite() {
                return Err(Error::NonFiniteLoss { epoch: batch.epoch + 1, batch: batch.index, loss });
            }
            s.state.running.add(loss, correct, batch.n, busy_start - wait_start, busy_start.elapsed());
            s.state.batch = batch.index + 1;
            let (epoch, input_size) = (batch.epoch, batch.size);
            loader.recycle(batch.x);
            bar.inc(1);
            bar.set_message(format!("epoch {}/{} {}", epoch + 1, cfg.epochs, s.state.running.summary()));
            if s.state.batch == plan.batches {
                let stats =
                    s.finish_epoch(&cfg, val, EpochEnd { epoch, lr, input_size }, &mut epoch_start, mdir)?;
                self.checkpoint(mdir, &s.vs, &s.opt, &s.state)?;
                if let Some(f) = self.on_epoch.as_mut() {
                    f(&stats);
                }
                bar.set_position(0);
                if early_stopped(&cfg, &s.state) {
                    break StopReason::EarlyStopped;
                }
            }
            if self.stop.is_stopped() {
                self.checkpoint(mdir, &s.vs, &s.opt, &s.state)?;
                break StopReason::Interrupted;
            }
        };
        bar.finish_and_clear();
        Ok(stop)
    }

    fn checkpoint(&self, mdir: &ModelDir, vs: &nn::VarStore, opt: &Adam, state: &TrainState) -> Result<()> {
        mdir.replace_last(|d| {
            save_weights(vs, &d.join("weights.safetensors"))?;
            opt.save(&d.join("optimizer.safetensors"))?;
            write_json(&d.join("state.json"), state)
        })?;
        crate::report::write_history(mdir, &state.history)
    }

    fn progress_bar(&self, len: u64) -> indicatif::ProgressBar {
        gemstones_dataset::progress_bar(len, "batches", self.progress)
    }
}

/// Settings that only change speed, or are read only at the start of a
/// run (the pretrained weights' path): resuming with other values is fine.
const SETTINGS_FREE_ON_RESUME: [&str; 3] = ["threads", "augment_threads", "pretrained"];

/// Refuse to resume a run saved with `saved` settings under `new` ones that
/// would make the result another experiment (a mix of two learning rates,
/// batch sizes, precisions...), listing what differs. A longer run
/// (`epochs` raised) is allowed when nothing depends on the total length:
/// a constant learning rate and no progressive resizing; it is logged.
fn check_resumable_with(saved: &TrainConfig, new: &TrainConfig, state_file: &Path) -> Result<()> {
    let as_map = |c: &TrainConfig| match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (old_json, new_json) = (as_map(saved), as_map(new));
    let length_free = new.schedule == Schedule::Constant && new.progressive.is_none();
    let mut changed = Vec::new();
    for (key, new_value) in &new_json {
        let old_value = old_json.get(key).unwrap_or(&serde_json::Value::Null);
        if old_value == new_value || SETTINGS_FREE_ON_RESUME.contains(&key.as_str()) {
            continue;
        }
        if key == "epochs" && length_free && new.epochs > saved.epochs {
            tracing::info!(
                "resuming to {} epochs instead of {}: with a constant learning rate this is the longer run",
                new.epochs,
                saved.epochs
            );
            continue;
        }
        changed.push(format!("{key} {old_value} -> {new_value}"));
    }
    if changed.is_empty() {
        return Ok(());
    }
    let hint = if length_free {
        ""
    } else {
        " (more epochs need a constant learning rate, no progressive resizing)"
    };
    Err(Error::BadModel {
        path: state_file.to_path_buf(),
        reason: format!(
            "the checkpoint was trained with other settings: {}; resume with the same settings or train into \
             another directory{hint}",
            changed.join(", ")
        ),
    })
}

/// The training and validation images of `set` under `cfg`: a stratified
/// split by `cfg.val_fraction`, seeded by `cfg.seed` (the one [`Trainer`]
/// uses, so an evaluation can find the validation images again).
pub fn split_indices(set: &ImageSet, cfg: &TrainConfig) -> Result<(Vec<usize>, Vec<usize>)> {
    if cfg.val_fraction <= 0.0 {
        return Ok(((0..set.len()).collect(), Vec::new()));
    }
    let labels: Vec<usize> = set.labels().iter().map(|&l| l as usize).collect();
    let ratios = SplitRatios::train_val(1.0 - cfg.val_fraction)?;
    let groups = match cfg.near_duplicates {
        Some(d) => group_ids(set.len(), &near_duplicate_groups(set.hashes(), d)),
        None => (0..set.len()).collect(),
    };
    let split = stratified_group_split(&labels, &groups, &ratios, cfg.seed, SmallClassPolicy::Warn)?;
    let mut it = split.splits.into_iter();
    Ok((it.next().unwrap_or_default(), it.next().unwrap_or_default()))
}

fn early_stopped(cfg: &TrainConfig, state: &TrainState) -> bool {
    cfg.early_stopping.is_some_and(|e| state.bad_epochs >= e.patience.max(1))
}

/// One optimisation step; returns the batch's mean loss and the number of
/// correct predictions (mixup: weighted by lambda).
fn train_step(
    net: &Net,
    opt: &mut Adam,
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

/// The validation images, resized and normalised once.
struct ValSet {
    x: Vec<f32>,
    y: Vec<i64>,
    size: i64,
}

impl ValSet {
    fn new(set: &ImageSet, idx: &[usize], size: u32, norm: &Normalize) -> Result<Self> {
        let aug = BatchAugmenter::new(AugmentConfig::identity(), 0, size, size)?;
        let views = crate::loader::views_of(set, idx)?;
        let keys: Vec<u64> = idx.iter().map(|&i| i as u64).collect();
        let mut x = vec![0f32; idx.len() * aug.image_len()];
        aug.batch(&views, &keys, 0, Output::F32Hwc(&mut x, norm))?;
        Ok(Self { x, y: idx.iter().map(|&i| i64::from(set.labels()[i])).collect(), size: i64::from(size) })
    }

    /// Mean loss, top-1 and top-5 accuracy (None without a validation set).
    fn evaluate(&self, net: &Net) -> Result<(Option<f64>, Option<f64>, Option<f64>)> {
        if self.y.is_empty() {
            return Ok((None, None, None));
        }
        let logits = logits_of(net, &self.x, 3 * (self.size * self.size) as usize, self.size)?;
        let y = Tensor::f_from_slice(&self.y)?;
        let loss =
            f64::try_from(logits.f_cross_entropy_loss::<Tensor>(&y, None, Reduction::Mean, -100, 0.0)?)?;
        let rows: Vec<Vec<f32>> = Vec::try_from(&logits).map_err(Error::Torch)?;
        let (top1, top5) = crate::eval::topk_accuracy(&rows, &self.y);
        Ok((Some(loss), Some(top1), Some(top5)))
    }
}

/// Logits of many channels-last images, in chunks, without gradients.
pub(crate) fn logits_of(net: &Net, x: &[f32], img_len: usize, size: i64) -> Result<Tensor> {
    let n = x.len() / img_len;
    tch::no_grad(|| {
        let mut outs = Vec::new();
        for start in (0..n).step_by(64) {
            let end = (start + 64).min(n);
            let t = Tensor::f_from_slice(&x[start * img_len..end * img_len])?
                .f_view([(end - start) as i64, size, size, 3])?
                .f_permute([0, 3, 1, 2])?;
            outs.push(net.forward_t(&t, false).f_to_device(Device::Cpu)?);
        }
        Ok(Tensor::f_cat(&outs, 0)?)
    })
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
