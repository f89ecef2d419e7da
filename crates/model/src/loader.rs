//! A bounded background pipeline: the next batches are augmented on their
//! own thread while the current one trains.
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use gemstones_augment::{BatchAugmenter, ImageView, Normalize, Output};
use gemstones_dataset::{ImageSet, Stream, seed_for};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64Mcg;

use crate::error::{Error, Result};

/// One augmented batch, channels-last.
pub(crate) struct Batch {
    pub epoch: usize,
    pub index: usize,
    pub n: usize,
    /// Side of the images (progressive resizing changes it between epochs).
    pub size: u32,
    pub x: Vec<f32>,
    pub y: Vec<i64>,
}

/// The order of the training images in `epoch` (seeded, so a resumed run
/// sees the same order).
pub(crate) fn epoch_order(train: &[usize], seed: u64, epoch: usize) -> Vec<usize> {
    let mut order = train.to_vec();
    let mut rng = Pcg64Mcg::seed_from_u64(seed_for(seed, Stream::EpochOrder, epoch as u64));
    order.shuffle(&mut rng);
    order
}

/// Batches of an epoch: full batches, and a last partial one unless it has
/// a single image (batch norm needs two).
pub(crate) fn batches_per_epoch(n: usize, batch: usize) -> usize {
    n / batch + usize::from(n % batch >= 2)
}

pub(crate) struct Loader {
    rx: Option<Receiver<Result<Batch>>>,
    recycle: SyncSender<Vec<f32>>,
    handle: Option<JoinHandle<()>>,
}

pub(crate) struct LoaderPlan {
    pub set: Arc<ImageSet>,
    pub train: Arc<Vec<usize>>,
    /// One augmenter per input size, and the one each epoch uses
    /// (`epoch_augmenter[epoch]`; the last entry for later epochs).
    pub augmenters: Vec<BatchAugmenter>,
    pub epoch_augmenter: Vec<usize>,
    pub normalize: Normalize,
    pub batch_size: usize,
    pub seed: u64,
    /// First epoch (0-based) and its first batch; last epoch (exclusive).
    pub start: (usize, usize),
    pub end_epoch: usize,
    pub threads: usize,
    pub prefetch: usize,
}

impl Loader {
    pub(crate) fn spawn(plan: LoaderPlan) -> Result<Self> {
        let (tx, rx) = sync_channel::<Result<Batch>>(plan.prefetch.max(1));
        let (recycle, returned) = sync_channel::<Vec<f32>>(plan.prefetch + 2);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(plan.threads.max(1))
            .thread_name(|i| format!("gemstones-augment-{i}"))
            .build()
            .map_err(|e| Error::InvalidConfig { reason: format!("augmentation threads: {e}") })?;
        let handle = std::thread::Builder::new()
            .name("gemstones-loader".into())
            .spawn(move || pool.install(|| produce(plan, tx, returned)))
            .map_err(|source| Error::Io { path: "<loader thread>".into(), source })?;
        Ok(Self { rx: Some(rx), recycle, handle: Some(handle) })
    }

    /// The next batch, or `None` when the planned epochs are done; an
    /// error if the augmentation thread died (a panic there must not end
    /// the training as if it had completed).
    pub(crate) fn next(&mut self) -> Option<Result<Batch>> {
        if let Ok(batch) = self.rx.as_ref()?.recv() {
            return Some(batch);
        }
        // The producer is gone: it finished, or it died.
        self.rx.take();
        match self.handle.take().map(JoinHandle::join) {
            Some(Err(panic)) => Some(Err(Error::LoaderDied { reason: panic_message(panic.as_ref()) })),
            _ => None,
        }
    }

    /// Give a batch buffer back for reuse.
    pub(crate) fn recycle(&self, buf: Vec<f32>) {
        let _ = self.recycle.try_send(buf);
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Closing the channel stops the producer at its next send.
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

fn produce(plan: LoaderPlan, tx: SyncSender<Result<Batch>>, returned: Receiver<Vec<f32>>) {
    for epoch in plan.start.0..plan.end_epoch {
        let which = plan.epoch_augmenter.get(epoch).or(plan.epoch_augmenter.last()).copied().unwrap_or(0);
        let Some(augmenter) = plan.augmenters.get(which) else {
            let _ = tx.send(Err(Error::InvalidConfig { reason: "no augmenter for an epoch".into() }));
            return;
        };
        let len = augmenter.image_len();
        let out_size = augmenter.output_size().0;
        let order = epoch_order(&plan.train, plan.seed, epoch);
        let nb = batches_per_epoch(order.len(), plan.batch_size);
        let first = if epoch == plan.start.0 { plan.start.1 } else { 0 };
        for b in first..nb {
            fail::fail_point!("loader::batch");
            let idx = &order[b * plan.batch_size..((b + 1) * plan.batch_size).min(order.len())];
            let n = idx.len();
            let mut x = returned.try_recv().unwrap_or_default();
            x.resize(n * len, 0.0);
            let keys: Vec<u64> = idx.iter().map(|&i| i as u64).collect();
            let result = ImageView::of_set(&plan.set, idx).map_err(Error::from).and_then(|v| {
                augmenter
                    .batch(&v, &keys, epoch as u64, Output::F32Hwc(&mut x, &plan.normalize))
                    .map(|_params| ())
                    .map_err(Error::from)
            });
            let y = idx.iter().map(|&i| i64::from(plan.set.labels()[i])).collect();
            let msg = result.map(|()| Batch { epoch, index: b, n, size: out_size, x, y });
            let failed = msg.is_err();
            if tx.send(msg).is_err() || failed {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_orders_are_seeded_permutations() {
        let train: Vec<usize> = (0..50).collect();
        let a = epoch_order(&train, 1, 0);
        assert_eq!(a, epoch_order(&train, 1, 0));
        assert_ne!(a, epoch_order(&train, 1, 1));
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, train);
        // A last batch of one image is dropped (batch norm needs two).
        assert_eq!(batches_per_epoch(64, 32), 2);
        assert_eq!(batches_per_epoch(65, 32), 2);
        assert_eq!(batches_per_epoch(66, 32), 3);
    }
}
