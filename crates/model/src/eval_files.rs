//! An [`Evaluation`] written as files: JSON, CSVs, the confusion heatmap,
//! the misclassified and top-losses galleries, the interpretation.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gemstones_dataset::{ImageGrid, ImageSet};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::eval::Evaluation;
use crate::interpret::DEFAULT_MIN_CONFUSED;
use crate::modeldir::{write_atomic, write_json};
use crate::plots::plot_confusion;

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
