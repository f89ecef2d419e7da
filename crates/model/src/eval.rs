//! Evaluation: top-1/top-5, per-class precision, recall and F1, the
//! confusion matrix and the misclassified stones, as files.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gemstones_dataset::{ImageGrid, ImageSet};
use serde::{Deserialize, Serialize};

use crate::classifier::Classifier;
use crate::error::{Error, Result};
use crate::interpret::{DEFAULT_MIN_CONFUSED, ImageLoss};
use crate::modeldir::{write_atomic, write_json};
use crate::report::plot_confusion;

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

/// Class ids of one row of scores, best first; equal scores in class-id
/// order. The one ranking behind every top-1/top-k figure (validation
/// during training, [`evaluate`], [`Classifier::top_k`]), so they cannot
/// disagree on ties.
pub(crate) fn ranking(row: &[f32]) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..row.len()).collect();
    // Stable: ties keep the lower id first.
    ids.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    ids
}

/// Top-1 and top-5 accuracy of rows of scores against labels.
pub(crate) fn topk_accuracy(rows: &[Vec<f32>], labels: &[i64]) -> (f64, f64) {
    let (mut top1, mut top5) = (0usize, 0usize);
    for (row, &label) in rows.iter().zip(labels) {
        let order = ranking(row);
        top1 += usize::from(order.first().is_some_and(|&c| c as i64 == label));
        top5 += usize::from(order.iter().take(5).any(|&c| c as i64 == label));
    }
    let n = labels.len().max(1) as f64;
    (top1 as f64 / n, top5 as f64 / n)
}

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

/// The files [`Evaluation::write`] made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalFiles {
    /// `metrics.json`: everything.
    pub metrics: PathBuf,
    /// `per_class.csv`.
    pub per_class: PathBuf,
    /// `confusion.csv`.
    pub confusion_csv: PathBuf,
    /// `confusion.png`.
    pub confusion_png: PathBuf,
    /// `misclassified.csv`.
    pub misclassified_csv: PathBuf,
    /// `misclassified.png`: the wrong ones, labelled "true / predicted".
    pub misclassified_png: PathBuf,
    /// `interpretation.json`: [`Evaluation::interpret`] with
    /// [`DEFAULT_MIN_CONFUSED`].
    pub interpretation: PathBuf,
    /// `most_confused.csv`: true, predicted, count, share.
    pub most_confused_csv: PathBuf,
    /// `top_losses.png`: the highest-loss images, labelled "true /
    /// predicted probability / loss" (fastai's `plot_top_losses`).
    pub top_losses_png: PathBuf,
}

impl Evaluation {
    /// Write JSON, CSVs and PNGs into `dir`; the gallery shows up to
    /// `gallery` misclassified images from `set`.
    pub fn write(&self, dir: &Path, set: &ImageSet, gallery: usize) -> Result<EvalFiles> {
        let files = EvalFiles {
            metrics: dir.join("metrics.json"),
            per_class: dir.join("per_class.csv"),
            confusion_csv: dir.join("confusion.csv"),
            confusion_png: dir.join("confusion.png"),
            misclassified_csv: dir.join("misclassified.csv"),
            misclassified_png: dir.join("misclassified.png"),
            interpretation: dir.join("interpretation.json"),
            most_confused_csv: dir.join("most_confused.csv"),
            top_losses_png: dir.join("top_losses.png"),
        };
        write_json(&files.metrics, self)?;
        let mut pc = String::from("class,precision,recall,f1,support\n");
        for m in &self.per_class {
            let _ = writeln!(
                pc,
                "{},{:.4},{:.4},{:.4},{}",
                csv_field(&m.class),
                m.precision,
                m.recall,
                m.f1,
                m.support
            );
        }
        write_atomic(&files.per_class, pc.as_bytes())?;
        let mut cm = String::from("true\\predicted");
        for c in &self.classes {
            let _ = write!(cm, ",{}", csv_field(c));
        }
        cm.push('\n');
        for (c, row) in self.classes.iter().zip(&self.confusion) {
            let _ = write!(cm, "{}", csv_field(c));
            for v in row {
                let _ = write!(cm, ",{v}");
            }
            cm.push('\n');
        }
        write_atomic(&files.confusion_csv, cm.as_bytes())?;
        let mut mc = String::from("file,true_class,predicted,confidence,true_probability\n");
        for m in &self.misclassified {
            let _ = writeln!(
                mc,
                "{},{},{},{:.4},{:.4}",
                csv_field(&m.file.to_string_lossy()),
                csv_field(&m.true_class),
                csv_field(&m.predicted),
                m.confidence,
                m.true_probability
            );
        }
        write_atomic(&files.misclassified_csv, mc.as_bytes())?;
        plot_confusion(&self.classes, &self.confusion, &files.confusion_png)?;
        let mut grid = ImageGrid::new(128, 6).title(format!(
            "misclassified: {} of {} (true / predicted, confidence)",
            self.misclassified.len(),
            self.images
        ));
        for m in self.misclassified.iter().take(gallery) {
            if let Some(img) = set.to_rgb_image(m.index) {
                grid.push(&img, format!("{} /\n{} {:.0}%", m.true_class, m.predicted, 100.0 * m.confidence));
            }
        }
        grid.save_png(&files.misclassified_png)?;
        self.write_interpretation(&files, set, gallery)?;
        Ok(files)
    }

    fn write_interpretation(&self, files: &EvalFiles, set: &ImageSet, gallery: usize) -> Result<()> {
        let interpretation = self.interpret(DEFAULT_MIN_CONFUSED);
        write_json(&files.interpretation, &interpretation)?;
        let mut csv = String::from("true_class,predicted,count,share\n");
        for p in &interpretation.most_confused {
            let _ = writeln!(
                csv,
                "{},{},{},{:.4}",
                csv_field(&p.true_class),
                csv_field(&p.predicted),
                p.count,
                p.share
            );
        }
        write_atomic(&files.most_confused_csv, csv.as_bytes())?;
        let mut grid = ImageGrid::new(128, 6).title(format!(
            "highest losses of {} images: true class / predicted as, probability / loss",
            self.images
        ));
        for l in self.top_losses.iter().take(gallery) {
            if let Some(img) = set.to_rgb_image(l.index) {
                grid.push(
                    &img,
                    format!("{}\nas {} {:.2}\nloss {:.2}", l.true_class, l.predicted, l.probability, l.loss),
                );
            }
        }
        grid.save_png(&files.top_losses_png)?;
        Ok(())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}
