//! The validation images: which they are, and scoring the network on them.
use gemstones_augment::{AugmentConfig, BatchAugmenter, ImageView, Normalize, Output};
use gemstones_dataset::{
    ImageSet, SmallClassPolicy, SplitRatios, group_ids, near_duplicate_groups, stratified_group_folds,
    stratified_group_split,
};
use tch::{Reduction, Tensor};

use super::config::TrainConfig;
use crate::error::{Error, Result};
use crate::nets::{Net, logits_of};

/// The training and validation images of `set` under `cfg`: one fold of
/// `cfg.cross_val` held out, else a stratified split by `cfg.val_fraction`
/// (none at 0); near-duplicates kept on one side, seeded by `cfg.seed`
/// (the one [`Trainer`](crate::Trainer) uses, so an evaluation can find the
/// validation images again).
pub fn split_indices(set: &ImageSet, cfg: &TrainConfig) -> Result<(Vec<usize>, Vec<usize>)> {
    if cfg.cross_val.is_none() && cfg.val_fraction <= 0.0 {
        return Ok(((0..set.len()).collect(), Vec::new()));
    }
    let (parts, held_out) = split_parts(set, cfg)?;
    let val = parts.get(held_out).cloned().unwrap_or_default();
    let mut train: Vec<usize> =
        parts.into_iter().enumerate().filter(|(i, _)| *i != held_out).flat_map(|(_, p)| p).collect();
    train.sort_unstable();
    Ok((train, val))
}

/// The parts the set is split into (the folds, or training and
/// validation) and which one `cfg` holds out.
pub(crate) fn split_parts(set: &ImageSet, cfg: &TrainConfig) -> Result<(Vec<Vec<usize>>, usize)> {
    let labels: Vec<usize> = set.labels().iter().map(|&l| l as usize).collect();
    let groups = match cfg.near_duplicates {
        Some(d) => group_ids(set.len(), &near_duplicate_groups(set.hashes(), d)),
        None => (0..set.len()).collect(),
    };
    Ok(match cfg.cross_val {
        Some(f) => (stratified_group_folds(&labels, &groups, f.folds, cfg.seed)?.splits, f.fold - 1),
        None => {
            let ratios = SplitRatios::train_val(1.0 - cfg.val_fraction)?;
            (stratified_group_split(&labels, &groups, &ratios, cfg.seed, SmallClassPolicy::Warn)?.splits, 1)
        }
    })
}

pub(super) struct ValSet {
    pub(super) x: Vec<f32>,
    pub(super) y: Vec<i64>,
    pub(super) size: i64,
}

impl ValSet {
    pub(super) fn new(set: &ImageSet, idx: &[usize], size: u32, norm: &Normalize) -> Result<Self> {
        let aug = BatchAugmenter::new(AugmentConfig::identity(), 0, size, size)?;
        let views = ImageView::of_set(set, idx)?;
        let keys: Vec<u64> = idx.iter().map(|&i| i as u64).collect();
        let mut x = vec![0f32; idx.len() * aug.image_len()];
        aug.batch(&views, &keys, 0, Output::F32Hwc(&mut x, norm))?;
        Ok(Self { x, y: idx.iter().map(|&i| i64::from(set.labels()[i])).collect(), size: i64::from(size) })
    }

    /// Mean loss, top-1 and top-5 accuracy (None without a validation set).
    pub(super) fn evaluate(&self, net: &Net) -> Result<(Option<f64>, Option<f64>, Option<f64>)> {
        if self.y.is_empty() {
            return Ok((None, None, None));
        }
        let logits = logits_of(net, &self.x, 3 * (self.size * self.size) as usize, self.size)?;
        let y = Tensor::f_from_slice(&self.y)?;
        let loss =
            f64::try_from(logits.f_cross_entropy_loss::<Tensor>(&y, None, Reduction::Mean, -100, 0.0)?)?;
        let rows: Vec<Vec<f32>> = Vec::try_from(&logits).map_err(Error::Torch)?;
        let (top1, top5) = crate::metrics::topk_accuracy(&rows, &self.y);
        Ok((Some(loss), Some(top1), Some(top5)))
    }
}
