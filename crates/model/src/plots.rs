//! Plots a person looks at: the accuracy and loss curves, the
//! confusion-matrix heatmap.
use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::history::EpochStats;

static FONT: Once = Once::new();

/// Plotters draws text with the bundled DejaVu Sans (no system fonts).
fn register_font() {
    FONT.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let _ = plotters::style::register_font("sans-serif", style, gemstones_dataset::font_bytes());
        }
    });
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot { path: path.to_path_buf(), reason: e.to_string() }
}

/// Write a drawn RGB canvas as the workspace's PNG (atomic, marked as ours).
fn save_png(pixels: Vec<u8>, (w, h): (u32, u32), path: &Path) -> Result<()> {
    let img = image::RgbImage::from_raw(w, h, pixels)
        .ok_or_else(|| plot_err(path, "canvas size does not match its buffer"))?;
    Ok(gemstones_dataset::save_png(&img, path)?)
}

/// The tutorial's two plots side by side: accuracy and loss per epoch,
/// training against validation.
pub(crate) fn plot_curves(history: &[EpochStats], path: &Path) -> Result<()> {
    register_font();
    let (w, h) = (1200, 460);
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let (left, right) = root.split_horizontally(600);
        let n = history.len().max(2) as f64;
        let series = |f: &dyn Fn(&EpochStats) -> Option<f64>| -> Vec<(f64, f64)> {
            history.iter().filter_map(|h| f(h).map(|v| (h.epoch as f64, v))).collect()
        };
        type Points = Vec<(f64, f64)>;
        let panels: [(&str, Points, Points); 2] = [
            ("accuracy", series(&|h| Some(h.train_acc)), series(&|h| h.val_top1)),
            ("loss", series(&|h| Some(h.train_loss)), series(&|h| h.val_loss)),
        ];
        for (area, (name, train, val)) in [left, right].into_iter().zip(panels) {
            let ymax = train.iter().chain(&val).map(|p| p.1).fold(0.0f64, f64::max);
            let ymax = if name == "accuracy" { 1.0 } else { (ymax * 1.05).max(1e-3) };
            let mut chart = ChartBuilder::on(&area)
                .caption(format!("model {name}"), ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(48)
                .build_cartesian_2d(1.0..n, 0.0..ymax)
                .map_err(|e| plot_err(path, e))?;
            chart
                .configure_mesh()
                .x_label_formatter(&|x| format!("{x:.0}"))
                .x_desc("epoch")
                .y_desc(name)
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(|e| plot_err(path, e))?;
            for (label, pts, color) in [("train", train, BLUE), ("validation", val, RED)] {
                if pts.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(|e| plot_err(path, e))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 2, color.filled())))
                    .map_err(|e| plot_err(path, e))?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .position(if name == "accuracy" {
                    SeriesLabelPosition::LowerRight
                } else {
                    SeriesLabelPosition::UpperRight
                })
                .draw()
                .map_err(|e| plot_err(path, e))?;
        }
        root.present().map_err(|e| plot_err(path, e))?;
    }
    save_png(pixels, (w, h), path)
}

/// Whether a count's digits fit inside a cell (a digit of DejaVu Sans is
/// about 0.64 em wide): with many classes the cells show only colour.
fn count_fits(v: u32, cell: u32, font_px: f64) -> bool {
    let digits = v.to_string().len() as f64;
    digits * 0.64 * font_px + 2.0 <= f64::from(cell)
}

/// A confusion-matrix heatmap: rows are true classes, columns predicted,
/// each cell shaded by the fraction of its row, class names on both axes;
/// counts centred in the cells where they fit (colour only at 87 classes,
/// where the most-confused list says the numbers).
pub(crate) fn plot_confusion(classes: &[String], matrix: &[Vec<u32>], path: &Path) -> Result<()> {
    register_font();
    let n = classes.len();
    let cell = if n > 40 {
        11
    } else if n > 15 {
        18
    } else {
        40
    };
    let label_w = 150u32;
    let side = label_w + (n as u32) * cell + 20;
    let (w, h) = (side + 30, side + 40);
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let font_px = (cell as f64 * 0.85).clamp(9.0, 14.0);
        let style = ("sans-serif", font_px).into_font().color(&BLACK);
        root.draw(&Text::new(
            "true class (rows) / predicted class (columns)",
            (label_w as i32, 6),
            ("sans-serif", 16),
        ))
        .map_err(|e| plot_err(path, e))?;
        let top = 30 + label_w as i32;
        for (i, row) in matrix.iter().enumerate() {
            let total: u32 = row.iter().sum();
            for (j, &v) in row.iter().enumerate() {
                let frac = if total > 0 { f64::from(v) / f64::from(total) } else { 0.0 };
                let shade = (255.0 * (1.0 - frac)) as u8;
                let color = if v == 0 {
                    // Empty cells light grey: the grid stays visible.
                    RGBColor(246, 246, 246)
                } else if i == j {
                    RGBColor(shade, 255 - (255 - shade) / 3, shade)
                } else {
                    RGBColor(255, shade, shade)
                };
                let (x0, y0) = (label_w as i32 + (j as u32 * cell) as i32, top + (i as u32 * cell) as i32);
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell as i32 - 1, y0 + cell as i32 - 1)],
                    color.filled(),
                ))
                .map_err(|e| plot_err(path, e))?;
                if v > 0 && count_fits(v, cell, font_px) {
                    // Centred in its cell; white on the darkest shades.
                    let ink = if frac > 0.6 { WHITE } else { BLACK };
                    let centred = ("sans-serif", font_px)
                        .into_font()
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    let centre = (x0 + cell as i32 / 2, y0 + cell as i32 / 2);
                    root.draw(&Text::new(v.to_string(), centre, centred)).map_err(|e| plot_err(path, e))?;
                }
            }
            let name: String = classes[i].chars().take(22).collect();
            let middle = top + (i as u32 * cell) as i32 + cell as i32 / 2;
            let label = style.clone().pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(name, (4, middle), label)).map_err(|e| plot_err(path, e))?;
        }
        for (j, c) in classes.iter().enumerate() {
            let name: String = c.chars().take(22).collect();
            // Rotated text grows upwards from its left edge: centre the
            // line's height on the column.
            let x = label_w as i32 + (j as u32 * cell) as i32 + ((f64::from(cell) - font_px) / 2.0) as i32;
            let rotated = style.clone().transform(FontTransform::Rotate270);
            root.draw(&Text::new(name, (x, top - 4), rotated)).map_err(|e| plot_err(path, e))?;
        }
        root.present().map_err(|e| plot_err(path, e))?;
    }
    save_png(pixels, (w, h), path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::history_csv;

    fn stats(epoch: usize) -> EpochStats {
        EpochStats {
            epoch,
            train_loss: 2.0 / epoch as f64,
            train_acc: 0.2 * epoch as f64,
            val_loss: Some(2.2 / epoch as f64),
            val_top1: Some(0.18 * epoch as f64),
            val_top5: Some(0.5),
            lr: 1e-3,
            seconds: 1.0,
            images_per_sec: 10.0,
            data_wait: 0.01,
            input_size: 64,
        }
    }

    #[test]
    fn curves_and_confusion_are_written_as_png() {
        let dir = tempfile::tempdir().unwrap();
        let h: Vec<EpochStats> = (1..=4).map(stats).collect();
        let p = dir.path().join("curves.png");
        plot_curves(&h, &p).unwrap();
        assert_eq!(image::open(&p).unwrap().width(), 1200);
        let csv = history_csv(&h);
        assert_eq!(csv.lines().count(), 5);
        assert!(csv.lines().nth(1).unwrap().starts_with("1,2.000000,0.200000,2.200000,0.180000,0.500000,"));
        let classes: Vec<String> = ["Ruby", "Garnet Red", "Émeraude"].map(String::from).to_vec();
        let m = vec![vec![5, 1, 0], vec![2, 3, 0], vec![0, 0, 6]];
        let c = dir.path().join("confusion.png");
        plot_confusion(&classes, &m, &c).unwrap();
        assert!(image::open(&c).unwrap().width() > 150);
    }
}
