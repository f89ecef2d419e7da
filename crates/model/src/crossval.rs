//! k-fold cross-validation of a training recipe: the photos are cut into k
//! stratified, near-duplicate-aware folds; each fold is held out once while
//! the recipe trains on the others, and is scored with the last epoch's
//! weights (never an epoch picked on the fold itself). The mean and
//! standard deviation over the folds say how a recipe does on photos it was
//! not tuned on, far better than one validation split does.
//!
//! ```text
//! crossval/
//!   fold-1/ ... fold-k/   one model directory per fold, plus fold.json
//!                         (its scores) and validation/ (its evaluation)
//!   crossval.json         every fold's scores, their mean and sd, the recipe
//!   crossval.csv          one row per fold, then mean and sd
//! ```
//!
//! Each fold is a training: a run stopped in fold 3 resumes fold 3's
//! checkpoint, and folds already scored under the same recipe are read
//! back, not trained again.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gemstones_dataset::{ImageSet, PreprocessConfig, StopFlag};
use serde::{Deserialize, Serialize};

use crate::classifier::{Classifier, Scoring};
use crate::error::{Error, IoContext, Result};
use crate::eval::evaluate;
use crate::history::EpochStats;
use crate::modeldir::{read_json, write_atomic, write_json};
use crate::nets::ModelConfig;
use crate::train::{
    CrossValFold, KeptWeights, StopReason, TrainConfig, Trainer, differences, split_indices, split_parts,
};

/// Top-1, top-5 and macro F1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-5 accuracy.
    pub top5: f64,
    /// Mean of the classes' F1 scores.
    pub macro_f1: f64,
}

/// One fold's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldScore {
    /// The fold held out, from 1.
    pub fold: usize,
    /// Photos trained on.
    pub training_images: usize,
    /// Photos scored (the held-out fold).
    pub validation_images: usize,
    /// Its scores, with the last epoch's weights.
    pub scores: Scores,
    /// Epochs trained.
    pub epochs: usize,
    /// Training time summed over the fold's epochs, in seconds.
    pub train_seconds: f64,
}

/// What a fold's `fold.json` holds: the score and what it was made with.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FoldRecord {
    model: ModelConfig,
    train: TrainConfig,
    tta: bool,
    score: FoldScore,
}

/// The folds scored so far and their summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrossValReport {
    /// How many folds the photos were cut into.
    pub folds: usize,
    /// Each fold scored, in order (fewer than `folds` after a stop).
    pub scores: Vec<FoldScore>,
    /// Mean over the scored folds.
    pub mean: Scores,
    /// Sample standard deviation over the scored folds (0 with one fold).
    pub sd: Scores,
    /// The network.
    pub model: ModelConfig,
    /// The recipe (as fold 1 runs it).
    pub train: TrainConfig,
    /// Scored with mirror test-time augmentation.
    pub tta: bool,
    /// Scored at this input side rather than the side the networks trained
    /// at ([`Classifier::with_input_size`]), for a report of [`score_runs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_size: Option<u32>,
    /// Whether every fold is scored (false after Ctrl-C).
    pub complete: bool,
    /// The folder holding the folds and the summary files.
    pub dir: PathBuf,
    /// The cross-validation runs whose fold networks were averaged, for a
    /// report of [`score_runs`] (`model` and `train` are then the first
    /// run's); empty for a recipe's own run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<PathBuf>,
}

type FoldEpochCallback<'a> = Box<dyn FnMut(usize, &EpochStats) + 'a>;

/// Runs k-fold cross-validation of a network and recipe on an image set.
///
/// ```no_run
/// use std::sync::Arc;
/// use gemstones_model::{CrossValidation, ModelConfig, TrainConfig};
/// # fn set() -> gemstones_dataset::ImageSet { unimplemented!() }
/// let cv = CrossValidation::new(ModelConfig::tutorial(), TrainConfig { val_fraction: 0.0, ..TrainConfig::tutorial() }, 5)?
///     .run(Arc::new(set()), &gemstones_dataset::PreprocessConfig::default(), "cv".as_ref())?;
/// println!("top-1 {:.3} +/- {:.3} over {} folds", cv.mean.top1, cv.sd.top1, cv.scores.len());
/// # Ok::<(), gemstones_model::Error>(())
/// ```
pub struct CrossValidation<'a> {
    model: ModelConfig,
    cfg: TrainConfig,
    folds: usize,
    tta: bool,
    stop: StopFlag,
    progress: bool,
    on_epoch: Option<FoldEpochCallback<'a>>,
}

impl<'a> CrossValidation<'a> {
    /// `folds`-fold cross-validation of `model` trained with `cfg` (whose
    /// `val_fraction` must be 0: the folds choose the validation photos).
    pub fn new(model: ModelConfig, cfg: TrainConfig, folds: usize) -> Result<Self> {
        let first = Self::fold_config(&cfg, 1, folds);
        model.validate()?;
        first.validate()?;
        Ok(Self { model, cfg, folds, tta: false, stop: StopFlag::new(), progress: true, on_epoch: None })
    }

    /// Score with mirror test-time augmentation too.
    pub fn with_tta(mut self, tta: bool) -> Self {
        self.tta = tta;
        self
    }

    /// The flag that stops the run cleanly (within the current fold's
    /// epoch; that fold resumes next time).
    pub fn stop_flag(mut self, flag: StopFlag) -> Self {
        self.stop = flag;
        self
    }

    /// Progress bars on a terminal (default true).
    pub fn progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    /// Called after every epoch of every fold, with the fold (from 1).
    pub fn on_epoch(mut self, f: impl FnMut(usize, &EpochStats) + 'a) -> Self {
        self.on_epoch = Some(Box::new(f));
        self
    }

    /// The recipe of one fold: `cfg` validating on that fold, keeping
    /// the last epoch's weights.
    fn fold_config(cfg: &TrainConfig, fold: usize, folds: usize) -> TrainConfig {
        TrainConfig {
            cross_val: Some(CrossValFold { fold, folds }),
            kept_weights: KeptWeights::LastEpoch,
            ..cfg.clone()
        }
    }

    /// Train and score every fold not scored yet under this recipe into
    /// `dir/fold-<i>`, writing `dir/crossval.json` and `.csv` after each.
    pub fn run(
        mut self,
        set: Arc<ImageSet>,
        preprocess: &PreprocessConfig,
        dir: &Path,
    ) -> Result<CrossValReport> {
        self.check_folds(&set)?;
        let mut scores = Vec::new();
        let mut complete = true;
        for fold in 1..=self.folds {
            let cfg = Self::fold_config(&self.cfg, fold, self.folds);
            let fold_dir = fold_dir(dir, fold);
            let score = match self.scored_before(&fold_dir, &cfg)? {
                Some(score) => score,
                None => match self.train_and_score(&set, preprocess, &fold_dir, cfg)? {
                    Some(score) => score,
                    None => {
                        complete = false;
                        break;
                    }
                },
            };
            scores.push(score);
            self.summary(&scores, false, dir).write()?;
        }
        let report = self.summary(&scores, complete, dir);
        report.write()?;
        Ok(report)
    }

    /// Refuse, before any fold trains, a fold that would hold out no photo
    /// or train on fewer than two (a batch needs two), naming it.
    fn check_folds(&self, set: &ImageSet) -> Result<()> {
        // One split of the folds serves every fold's check.
        let (folds, _) = split_parts(set, &Self::fold_config(&self.cfg, 1, self.folds))?;
        let placed: usize = folds.iter().map(Vec::len).sum();
        for fold in 1..=self.folds {
            let held_out = folds.get(fold - 1).map_or(&[][..], Vec::as_slice);
            let train_len = placed - held_out.len();
            if held_out.is_empty() || train_len < 2 {
                return Err(Error::InvalidConfig {
                    reason: format!(
                        "fold {fold} of {} would hold out {} and train on {} of the {} photos: too few photos \
                         (near-copies count as one) for {} folds; use fewer folds",
                        self.folds,
                        held_out.len(),
                        train_len,
                        set.len(),
                        self.folds
                    ),
                });
            }
        }
        Ok(())
    }

    /// The fold's score from its `fold.json` when it was made with this
    /// very recipe.
    fn scored_before(&self, fold_dir: &Path, cfg: &TrainConfig) -> Result<Option<FoldScore>> {
        let path = fold_dir.join("fold.json");
        if !path.exists() {
            return Ok(None);
        }
        let record: FoldRecord = read_json(&path)?;
        let same = record.model == self.model && same_recipe(&record.train, cfg) && record.tta == self.tta;
        Ok(same.then_some(record.score))
    }

    /// Train one fold (resuming its checkpoint) and score it; `None` when
    /// stopped.
    fn train_and_score(
        &mut self,
        set: &Arc<ImageSet>,
        preprocess: &PreprocessConfig,
        fold_dir: &Path,
        cfg: TrainConfig,
    ) -> Result<Option<FoldScore>> {
        let fold = cfg.cross_val.map_or(0, |f| f.fold);
        let mut trainer = Trainer::new(self.model.clone(), cfg.clone())?
            .stop_flag(self.stop.clone())
            .progress(self.progress);
        if let Some(callback) = self.on_epoch.as_mut() {
            trainer = trainer.on_epoch(move |e| callback(fold, e));
        }
        let report = trainer.run(set.clone(), preprocess, fold_dir)?;
        if report.stop == StopReason::Interrupted {
            return Ok(None);
        }
        let (_, val) = split_indices(set, &cfg)?;
        let clf = Classifier::load(fold_dir)?.with_tta(self.tta);
        let eval = evaluate(&clf, set, Some(&val))?;
        eval.write(&fold_dir.join("validation"), set, 24)?;
        let score = FoldScore {
            fold,
            training_images: report.images.0,
            validation_images: report.images.1,
            scores: Scores { top1: eval.top1, top5: eval.top5, macro_f1: eval.macro_f1 },
            epochs: report.history.len(),
            train_seconds: report.history.iter().map(|e| e.seconds).sum(),
        };
        let record =
            FoldRecord { model: self.model.clone(), train: cfg, tta: self.tta, score: score.clone() };
        write_json(&fold_dir.join("fold.json"), &record)?;
        Ok(Some(score))
    }

    fn summary(&self, scores: &[FoldScore], complete: bool, dir: &Path) -> CrossValReport {
        let (mean, sd) = mean_and_sd(scores);
        CrossValReport {
            folds: self.folds,
            scores: scores.to_vec(),
            mean,
            sd,
            model: self.model.clone(),
            train: Self::fold_config(&self.cfg, 1, self.folds),
            tta: self.tta,
            input_size: None,
            complete,
            dir: dir.to_path_buf(),
            runs: Vec::new(),
        }
    }
}

/// Refuse, naming it, a run among `runs` that is not a cross-validation
/// run (no `crossval.json`): what [`score_runs`] checks first, for a
/// program to check before it writes anything.
pub fn check_runs(runs: &[PathBuf]) -> Result<()> {
    match runs.iter().find(|run| !run.join("crossval.json").exists()) {
        Some(plain) => Err(Error::InvalidConfig {
            reason: format!(
                "{}: not a cross-validation run (no crossval.json): train it with --folds",
                plain.display()
            ),
        }),
        None => Ok(()),
    }
}

/// Score finished cross-validation runs made on the same folds (the same
/// photos and seed) together, without training: fold i is scored by the
/// ensemble of every run's `fold-<i>` network ([`Classifier::ensemble`]),
/// with mirror TTA or at another input side as `scoring` says. One run
/// with [`Scoring::tta`] scores TTA alone. Each fold is scored on the
/// photos its networks never trained on; the report goes to `out`
/// (`crossval.json`, `.csv`), its training time is the members' sum.
/// Folds a run has not finished yet are left out (`complete` is then
/// false).
pub fn score_runs(runs: &[PathBuf], set: &ImageSet, scoring: Scoring, out: &Path) -> Result<CrossValReport> {
    let Some(first) = runs.first() else {
        return Err(Error::InvalidConfig { reason: "no cross-validation run to score".into() });
    };
    check_runs(runs)?;
    let finished: CrossValReport = read_json(&first.join("crossval.json"))?;
    let mut scores = Vec::new();
    let mut recipe = None;
    let mut unfinished = Vec::new();
    for fold in 1..=finished.folds {
        let fold_files: Vec<PathBuf> = runs.iter().map(|run| fold_dir(run, fold).join("fold.json")).collect();
        unfinished = runs.iter().zip(&fold_files).filter(|(_, f)| !f.exists()).map(|(run, _)| run).collect();
        if !unfinished.is_empty() {
            break; // a run not finished yet: the folds before are scored
        }
        let records = fold_files.iter().map(|f| read_json::<FoldRecord>(f)).collect::<Result<Vec<_>>>()?;
        let (_, val) = split_indices(set, &records[0].train)?;
        for (run, record) in runs.iter().zip(&records).skip(1) {
            if split_indices(set, &record.train)?.1 != val {
                return Err(Error::InvalidConfig {
                    reason: format!(
                        "{} held out other photos in fold {fold} than {}: runs must share their folds",
                        run.display(),
                        first.display()
                    ),
                });
            }
        }
        let members =
            runs.iter().map(|run| Classifier::load(&fold_dir(run, fold))).collect::<Result<Vec<_>>>()?;
        let clf = Classifier::ensemble(members)?.with_scoring(scoring)?;
        let eval = evaluate(&clf, set, Some(&val))?;
        scores.push(FoldScore {
            fold,
            training_images: records[0].score.training_images,
            validation_images: val.len(),
            scores: Scores { top1: eval.top1, top5: eval.top5, macro_f1: eval.macro_f1 },
            epochs: records[0].score.epochs,
            train_seconds: records.iter().map(|r| r.score.train_seconds).sum(),
        });
        recipe.get_or_insert_with(|| (records[0].model.clone(), records[0].train.clone()));
    }
    let Some((model, train)) = recipe else {
        let names: Vec<String> = unfinished.iter().map(|run| run.display().to_string()).collect();
        return Err(Error::InvalidConfig {
            reason: format!("{} has not finished its first fold: nothing to score yet", names.join(" and ")),
        });
    };
    let (mean, sd) = mean_and_sd(&scores);
    let report = CrossValReport {
        folds: finished.folds,
        complete: scores.len() == finished.folds,
        mean,
        sd,
        scores,
        model,
        train,
        tta: scoring.tta,
        input_size: scoring.input_size,
        dir: out.to_path_buf(),
        runs: runs.to_vec(),
    };
    report.write()?;
    Ok(report)
}

/// Two fold recipes are the same when they differ at most in settings that
/// change speed, not results (those a resumed training accepts).
fn same_recipe(a: &TrainConfig, b: &TrainConfig) -> bool {
    differences(a, b).is_empty()
}

/// Fold `fold`'s model directory in a cross-validation run's folder `dir`
/// (`dir/fold-<fold>`, from 1).
pub fn fold_dir(dir: &Path, fold: usize) -> PathBuf {
    dir.join(format!("fold-{fold}"))
}

/// The folds' mean scores and their sample standard deviations.
fn mean_and_sd(scores: &[FoldScore]) -> (Scores, Scores) {
    let column = |f: fn(&Scores) -> f64| scores.iter().map(|s| f(&s.scores)).collect::<Vec<_>>();
    let (top1, top5, f1) = (column(|s| s.top1), column(|s| s.top5), column(|s| s.macro_f1));
    (
        Scores { top1: mean(&top1), top5: mean(&top5), macro_f1: mean(&f1) },
        Scores { top1: sample_sd(&top1), top5: sample_sd(&top5), macro_f1: sample_sd(&f1) },
    )
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 }
}

/// Standard deviation with n - 1 (the folds are a sample of the splits
/// one could have made); 0 below two values.
fn sample_sd(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

impl CrossValReport {
    /// `crossval.json`.
    pub fn json_path(&self) -> PathBuf {
        self.dir.join("crossval.json")
    }

    /// `crossval.csv`.
    pub fn csv_path(&self) -> PathBuf {
        self.dir.join("crossval.csv")
    }

    /// Write `crossval.json` and `crossval.csv` (each replaced as a whole).
    pub fn write(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).at(&self.dir)?;
        write_json(&self.json_path(), self)?;
        write_atomic(&self.csv_path(), self.csv().as_bytes())
    }

    /// One row per fold, then the mean and the standard deviation.
    pub fn csv(&self) -> String {
        let mut out =
            String::from("fold,training_images,validation_images,top1,top5,macro_f1,epochs,train_seconds\n");
        for s in &self.scores {
            out.push_str(&format!(
                "{},{},{},{:.4},{:.4},{:.4},{},{:.0}\n",
                s.fold,
                s.training_images,
                s.validation_images,
                s.scores.top1,
                s.scores.top5,
                s.scores.macro_f1,
                s.epochs,
                s.train_seconds
            ));
        }
        for (name, v) in [("mean", self.mean), ("sd", self.sd)] {
            out.push_str(&format!("{name},,,{:.4},{:.4},{:.4},,\n", v.top1, v.top5, v.macro_f1));
        }
        out
    }
}

impl std::fmt::Display for CrossValReport {
    /// `top-1 0.812 +/- 0.012, top-5 ..., macro F1 ... (5 of 5 folds)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "top-1 {:.3} +/- {:.3}, top-5 {:.3} +/- {:.3}, macro F1 {:.3} +/- {:.3} ({} of {} folds)",
            self.mean.top1,
            self.sd.top1,
            self.mean.top5,
            self.sd.top5,
            self.mean.macro_f1,
            self.sd.macro_f1,
            self.scores.len(),
            self.folds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_sd() {
        assert_eq!(mean(&[]), 0.0);
        assert_eq!(sample_sd(&[0.7]), 0.0);
        let xs = [0.8, 0.82, 0.78, 0.81, 0.79];
        assert!((mean(&xs) - 0.8).abs() < 1e-12);
        // Sum of squares 0.001 over 4.
        assert!((sample_sd(&xs) - (0.001f64 / 4.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn speed_settings_do_not_make_another_recipe() {
        let a = TrainConfig::tutorial();
        let faster = TrainConfig { threads: Some(2), augment_threads: 3, ..a.clone() };
        assert!(same_recipe(&a, &faster));
        assert!(!same_recipe(&a, &TrainConfig { lr: 0.5, ..a.clone() }));
    }
}
