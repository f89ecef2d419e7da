//! Training: [`Trainer`] runs a [`TrainConfig`] on an image set into a
//! model directory, checkpointing, resuming and stopping cleanly.
//!
//! - `config`: the settings; `state`: what a checkpoint carries;
//! - `session`: the network, optimizer and plan of one run, and its step;
//! - `validation`: the validation split and its scoring;
//! - `resume`: which changed settings a resumed run accepts;
//! - `ema`: the moving average of the weights a run may keep instead.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub use gemstones_dataset::StopFlag;
use gemstones_dataset::{ImageSet, PreprocessConfig, Stream, seed_for};
use serde::{Deserialize, Serialize};
use tch::Device;
use tch::nn;

mod config;
mod ema;
mod resume;
mod session;
mod state;
mod validation;

pub use config::{CrossValFold, EarlyStopping, Ema, FineTune, KeptWeights, ProgressiveResize, TrainConfig};
pub(crate) use resume::{differences, json_differences};
pub use validation::split_indices;
pub(crate) use validation::split_parts;

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::history::EpochStats;
use crate::layers::to_channels_last;
use crate::loader::{Loader, LoaderPlan};
use crate::modeldir::{HeldOut, ModelDir, ModelSpec, SPEC_FORMAT, load_weights, read_json};
use crate::nets::{ModelConfig, Net, trainable_parameters};
use crate::optim::Optimizer;
use crate::pretrained::PretrainedWeights;
pub(crate) use ema::EmaWeights;
use resume::check_resumable_with;
use session::{EpochEnd, EpochPlan, LoaderInput, Session, early_stopped, train_step};
use state::{Running, TrainState};
use validation::ValSet;

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
    /// Epoch (from 1) whose weights are in `best.safetensors`: the lowest
    /// validation loss, or the last ([`KeptWeights`]).
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
        if set.classes().len() < 2 {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "{} holds {} class(es): a classifier needs at least 2",
                    set.root().display(),
                    set.classes().len()
                ),
            });
        }
        let mdir = ModelDir::new(dir);
        let (train_idx, val_idx) = split_indices(&set, &self.cfg)?;
        if train_idx.len() < 2 {
            return Err(Error::InvalidConfig { reason: format!("only {} training images", train_idx.len()) });
        }
        let held_out = self.held_out(train_idx.len(), val_idx.len());
        let resume_from = self.open_model_dir(&mdir, &set, preprocess, held_out)?;
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
        checkpoint::write_history(&mdir, &session.state.history)?;
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

    /// What this run holds out for validation, for `config.json`.
    fn held_out(&self, training_images: usize, validation_images: usize) -> HeldOut {
        match self.cfg.cross_val {
            Some(f) => {
                HeldOut::CrossValFold { fold: f.fold, folds: f.folds, training_images, validation_images }
            }
            None if validation_images == 0 => HeldOut::Nothing { training_images },
            None => HeldOut::Share { fraction: self.cfg.val_fraction, training_images, validation_images },
        }
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
        held_out: HeldOut,
    ) -> Result<Option<PathBuf>> {
        let spec = ModelSpec {
            format: SPEC_FORMAT,
            model: self.model.clone(),
            precision: self.cfg.precision,
            preprocess: *preprocess,
            normalize: self.cfg.normalize,
            classes: set.classes().names().to_vec(),
            augment: self.cfg.augment.clone(),
            validation: Some(held_out),
        };
        checkpoint::remove_interrupted_writes(mdir)?;
        let resume_from = mdir.resumable();
        if let Some(ckpt) = &resume_from {
            if !self.resume {
                return Err(Error::BadModel {
                    path: ckpt.clone(),
                    reason: "holds a checkpoint; resume it or train into another directory".into(),
                });
            }
            if let Some(reason) = mdir.resume_conflict(&spec.model, &spec.preprocess, Some(&spec.classes))? {
                return Err(Error::BadModel { path: mdir.root().to_path_buf(), reason });
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
            let copied = net.load_pretrained(&vs, &PretrainedWeights::read(path)?)?;
            tracing::info!("loaded {copied} pretrained tensors from {}", path.display());
        }
        let parameters = trainable_parameters(&vs);
        let fine_tune = cfg.fine_tune;
        let mut opt = Optimizer::with_lr_scales(&vs, cfg.optimizer, |name| {
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
        let mut ema_from_checkpoint = None;
        if let Some(ckpt) = resume_from {
            load_weights(&mut vs, &ckpt.join("weights.safetensors"))?;
            let ema_file = ckpt.join(checkpoint::EMA_FILE);
            if let (Some(settings), true) = (cfg.ema, ema_file.exists()) {
                ema_from_checkpoint = Some(EmaWeights::load(&mut vs, &ema_file, settings)?);
            }
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
        // Without a saved average (a fresh run, or one resumed with
        // averaging newly asked for), it starts at the current weights.
        let ema =
            cfg.ema.map(|settings| ema_from_checkpoint.unwrap_or_else(|| EmaWeights::new(&vs, settings)));
        Ok(Session { vs, net, opt, state, ema, parameters })
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
            if let Some(average) = s.ema.as_mut() {
                average.update(step)?;
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
                self.checkpoint(mdir, s)?;
                if let Some(f) = self.on_epoch.as_mut() {
                    f(&stats);
                }
                bar.set_position(0);
                if early_stopped(&cfg, &s.state) {
                    break StopReason::EarlyStopped;
                }
            }
            if self.stop.is_stopped() {
                self.checkpoint(mdir, s)?;
                break StopReason::Interrupted;
            }
        };
        bar.finish_and_clear();
        Ok(stop)
    }

    fn checkpoint(&self, mdir: &ModelDir, s: &Session) -> Result<()> {
        checkpoint::write(mdir, &s.vs, &s.opt, s.ema.as_ref(), &s.state, &s.state.history)
    }

    fn progress_bar(&self, len: u64) -> indicatif::ProgressBar {
        gemstones_dataset::progress_bar(len, "batches", self.progress)
    }
}
