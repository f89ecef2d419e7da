//! Evaluation: top-1/top-5, per-class precision, recall and F1, the
//! confusion matrix and the misclassified stones, as files.
use std::path::PathBuf;

use gemstones_dataset::ImageSet;
use serde::{Deserialize, Serialize};

use crate::classifier::Classifier;
use crate::error::{Error, Result};
use crate::metrics::{ranking, topk_accuracy};

/// Metrics of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Class name.
    pub class: String,
    /// Of the images predicted as this class, the fraction that are.
    pub precision: f64,
    /// Of the images of this class, the fraction predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Images of this class.
    pub support: usize,
}

/// An image the model got wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Misclassified {
    /// Its index in the evaluated set.
    pub index: usize,
    /// Its source file (relative to the set's root).
    pub file: PathBuf,
    /// The true class.
    pub true_class: String,
    /// The predicted class.
    pub predicted: String,
    /// The predicted class's probability.
    pub confidence: f64,
    /// The true class's probability.
    pub true_probability: f64,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-5 accuracy.
    pub top5: f64,
    /// Unweighted mean F1 over classes present.
    pub macro_f1: f64,
    /// The classes, in id order.
    pub classes: Vec<String>,
    /// Per-class metrics, in id order.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u32>>,
    /// Wrong predictions, most confident first.
    pub misclassified: Vec<Misclassified>,
    /// The images with the highest loss (right or wrong), highest first,
    /// up to [`TOP_LOSSES_KEPT`].
    #[serde(default)]
    pub top_losses: Vec<ImageLoss>,
}

/// How many of the highest-loss images an [`Evaluation`] keeps.
pub const TOP_LOSSES_KEPT: usize = 100;

/// Evaluate a classifier on (a subset of) a preprocessed image set whose
/// classes are named like the model's (the set may hold fewer classes).
pub fn evaluate(clf: &Classifier, set: &ImageSet, indices: Option<&[usize]>) -> Result<Evaluation> {
    let all: Vec<usize>;
    let idx = match indices {
        Some(i) => i,
        None => {
            all = (0..set.len()).collect();
            &all
        }
    };
    if let Some(&index) = idx.iter().find(|&&i| i >= set.len()) {
        return Err(gemstones_dataset::Error::ImageIndex { index, len: set.len() }.into());
    }
    // The set's labels in the model's class ids.
    let map = clf.class_ids_of(set.classes())?;
    let labels: Vec<i64> = idx.iter().map(|&i| map[set.labels()[i] as usize] as i64).collect();
    let probs = clf.probabilities_of_set(set, idx)?;
    let n = idx.len();
    let c = clf.classes().len();
    let rows: Vec<Vec<f32>> = Vec::try_from(&probs).map_err(Error::Torch)?;
    let mut confusion = vec![vec![0u32; c]; c];
    let (top1, top5) = topk_accuracy(&rows, &labels);
    let mut top_losses = Vec::with_capacity(n);
    for (k, row) in rows.iter().enumerate() {
        let truth = labels[k] as usize;
        let pred = ranking(row).first().copied().unwrap_or(0);
        confusion[truth][pred] += 1;
        top_losses.push(ImageLoss {
            index: idx[k],
            file: set.files()[idx[k]].clone(),
            true_class: clf.classes().name(truth).unwrap_or("?").into(),
            predicted: clf.classes().name(pred).unwrap_or("?").into(),
            probability: f64::from(row[pred]),
            true_probability: f64::from(row[truth]),
            loss: -f64::from(row[truth]).max(1e-12).ln(),
        });
    }
    // Mean cross-entropy: the mean of the images' losses.
    let loss = top_losses.iter().map(|l| l.loss).sum::<f64>() / n.max(1) as f64;
    let mut misclassified: Vec<Misclassified> = top_losses
        .iter()
        .filter(|l| l.true_class != l.predicted)
        .map(|l| Misclassified {
            index: l.index,
            file: l.file.clone(),
            true_class: l.true_class.clone(),
            predicted: l.predicted.clone(),
            confidence: l.probability,
            true_probability: l.true_probability,
        })
        .collect();
    misclassified.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    top_losses.sort_by(|a, b| b.loss.total_cmp(&a.loss).then(a.index.cmp(&b.index)));
    top_losses.truncate(TOP_LOSSES_KEPT);
    let per_class: Vec<ClassMetrics> = (0..c)
        .map(|j| {
            let tp = f64::from(confusion[j][j]);
            let predicted: u32 = confusion.iter().map(|r| r[j]).sum();
            let support: u32 = confusion[j].iter().sum();
            let precision = if predicted > 0 { tp / f64::from(predicted) } else { 0.0 };
            let recall = if support > 0 { tp / f64::from(support) } else { 0.0 };
            let f1 =
                if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            ClassMetrics {
                class: clf.classes().name(j).unwrap_or("?").into(),
                precision,
                recall,
                f1,
                support: support as usize,
            }
        })
        .collect();
    let present: Vec<&ClassMetrics> = per_class.iter().filter(|m| m.support > 0).collect();
    let macro_f1 = if present.is_empty() {
        0.0
    } else {
        present.iter().map(|m| m.f1).sum::<f64>() / present.len() as f64
    };
    Ok(Evaluation {
        images: n,
        loss,
        top1,
        top5,
        macro_f1,
        classes: clf.classes().names().to_vec(),
        per_class,
        confusion,
        misclassified,
        top_losses,
    })
}

/// One evaluated image with its loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageLoss {
    /// Its index in the evaluated set.
    pub index: usize,
    /// Its source file (relative to the set's root).
    pub file: PathBuf,
    /// The true class.
    pub true_class: String,
    /// The predicted class.
    pub predicted: String,
    /// The predicted class's probability.
    pub probability: f64,
    /// The true class's probability.
    pub true_probability: f64,
    /// Cross-entropy of this image, `-ln(true_probability)`.
    pub loss: f64,
}
