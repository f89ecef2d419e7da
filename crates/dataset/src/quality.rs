//! Image-quality flags in CleanVision's spirit, computed from the decode
//! `verify` already does: very blurry, very dark, washed out, tiny,
//! extreme aspect ratio, nearly one colour, grayscale among colour photos.
//!
//! Gem photos are mostly a stone on a white or light-grey background, so
//! "light" is normal here: washed out means no dark tones at all, not a
//! bright mean. Thresholds were set on the real training folder so that
//! only its outliers are flagged (README, "Dataset health").
use image::DynamicImage;
use serde::{Deserialize, Serialize};

use crate::similar::grey;

/// One quality problem of a photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityFlag {
    /// Little fine detail anywhere: the variance of the Laplacian of the
    /// grey image (at most 128 px on its shorter side) is below
    /// [`QualityLimits::min_sharpness`].
    Blurry,
    /// The mean grey level is below [`QualityLimits::max_dark_mean`].
    Dark,
    /// No dark tones: the 5th percentile of the grey levels is above
    /// [`QualityLimits::min_washed_out_floor`].
    WashedOut,
    /// The shorter side is below [`QualityLimits::min_side`] pixels.
    Tiny,
    /// The longer side is more than [`QualityLimits::max_aspect`] times the
    /// shorter.
    ExtremeAspect,
    /// Nearly one colour: the grey levels' standard deviation is below
    /// [`QualityLimits::min_contrast`].
    NearlyOneColour,
    /// No colour: the mean chroma (max - min of R, G, B) is below
    /// [`QualityLimits::min_chroma`].
    Grayscale,
}

impl QualityFlag {
    /// A short stable name (`blurry`, `washed_out`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blurry => "blurry",
            Self::Dark => "dark",
            Self::WashedOut => "washed_out",
            Self::Tiny => "tiny",
            Self::ExtremeAspect => "extreme_aspect",
            Self::NearlyOneColour => "nearly_one_colour",
            Self::Grayscale => "grayscale",
        }
    }
}

impl std::fmt::Display for QualityFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where each flag starts. The defaults flag about 1 % of the real
/// training folder or less each (its 0.5th percentiles: sharpness 29,
/// brightness 34, chroma 1.0; 99th of the darkest tones 185; README).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QualityLimits {
    /// Variance of the Laplacian below this: blurry.
    pub min_sharpness: f32,
    /// Mean grey level below this: dark.
    pub max_dark_mean: f32,
    /// 5th percentile of grey levels above this: washed out.
    pub min_washed_out_floor: u8,
    /// Shorter side below this: tiny.
    pub min_side: u32,
    /// Longer over shorter side above this: extreme aspect.
    pub max_aspect: f32,
    /// Standard deviation of grey levels below this: nearly one colour.
    pub min_contrast: f32,
    /// Mean chroma below this: grayscale.
    pub min_chroma: f32,
}

impl Default for QualityLimits {
    fn default() -> Self {
        Self {
            min_sharpness: 20.0,
            max_dark_mean: 40.0,
            min_washed_out_floor: 200,
            min_side: 64,
            max_aspect: 3.0,
            min_contrast: 6.0,
            min_chroma: 1.5,
        }
    }
}

/// The measurements behind the flags, and the flags.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Quality {
    /// Variance of the Laplacian of the grey image.
    pub sharpness: f32,
    /// Mean grey level (0-255).
    pub brightness: f32,
    /// 5th percentile of the grey levels.
    pub darkest_tones: u8,
    /// Standard deviation of the grey levels.
    pub contrast: f32,
    /// Mean of max - min of R, G, B over the pixels.
    pub chroma: f32,
    /// The flags raised under the limits used.
    pub flags: Vec<QualityFlag>,
}

impl Quality {
    /// Measure a decoded image and flag it under `limits`.
    pub fn of(image: &DynamicImage, limits: &QualityLimits) -> Self {
        Self::of_grey(image, &grey(image), limits)
    }

    /// [`Quality::of`] with the image's grey sample already made.
    pub(crate) fn of_grey(image: &DynamicImage, g: &image::GrayImage, limits: &QualityLimits) -> Self {
        let (w, h) = (g.width() as usize, g.height() as usize);
        let px = g.as_raw();
        let n = px.len().max(1) as f32;
        let brightness = px.iter().map(|&p| p as f32).sum::<f32>() / n;
        let contrast = (px.iter().map(|&p| (p as f32 - brightness).powi(2)).sum::<f32>() / n).sqrt();
        let mut histogram = [0usize; 256];
        for &p in px {
            histogram[p as usize] += 1;
        }
        let fifth = px.len() / 20;
        let mut seen = 0;
        let darkest_tones = (0..=255u8)
            .find(|&v| {
                seen += histogram[v as usize];
                seen > fifth
            })
            .unwrap_or(255);
        let mut q = Self {
            sharpness: laplacian_variance(px, w, h),
            brightness,
            darkest_tones,
            contrast,
            chroma: chroma(image),
            flags: Vec::new(),
        };
        let (side, long) = (image.width().min(image.height()), image.width().max(image.height()));
        let checks = [
            (QualityFlag::Blurry, q.sharpness < limits.min_sharpness && q.contrast >= limits.min_contrast),
            (QualityFlag::Dark, q.brightness < limits.max_dark_mean),
            (QualityFlag::WashedOut, q.darkest_tones > limits.min_washed_out_floor),
            (QualityFlag::Tiny, side < limits.min_side),
            (QualityFlag::ExtremeAspect, long as f32 > limits.max_aspect * side.max(1) as f32),
            (QualityFlag::NearlyOneColour, q.contrast < limits.min_contrast),
            (QualityFlag::Grayscale, q.chroma < limits.min_chroma),
        ];
        q.flags = checks.into_iter().filter(|c| c.1).map(|c| c.0).collect();
        q
    }
}

/// Variance of the 4-neighbour Laplacian over the interior pixels
/// (integer sums over row slices: this pass was most of the flags' cost).
fn laplacian_variance(px: &[u8], w: usize, h: usize) -> f32 {
    if w < 3 || h < 3 {
        return 0.0;
    }
    let (mut sum, mut sum2) = (0i64, 0i64);
    for y in 1..h - 1 {
        let (up, row, down) =
            (&px[(y - 1) * w..y * w], &px[y * w..(y + 1) * w], &px[(y + 1) * w..(y + 2) * w]);
        for x in 1..w - 1 {
            let l = up[x] as i32 + down[x] as i32 + row[x - 1] as i32 + row[x + 1] as i32 - 4 * row[x] as i32;
            sum += l as i64;
            sum2 += (l * l) as i64;
        }
    }
    let n = ((w - 2) * (h - 2)) as f64;
    let mean = sum as f64 / n;
    (sum2 as f64 / n - mean * mean) as f32
}

/// Mean chroma (max - min of R, G, B) over a grid of about 64x64 pixels
/// (a mean needs no more; a pass over every pixel was most of the cost).
fn chroma(image: &DynamicImage) -> f32 {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let step = (w.min(h) / 64).max(1);
    let rgb;
    let raw = match image {
        DynamicImage::ImageRgb8(i) => i.as_raw(),
        _ => {
            rgb = image.to_rgb8();
            rgb.as_raw()
        }
    };
    let (mut sum, mut n) = (0u64, 0u64);
    for row in raw.chunks_exact(w.max(1) * 3).step_by(step) {
        for p in row.chunks_exact(3).step_by(step) {
            let (hi, lo) = (p[0].max(p[1]).max(p[2]), p[0].min(p[1]).min(p[2]));
            sum += (hi - lo) as u64;
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { sum as f32 / n as f32 }
}
