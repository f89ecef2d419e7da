//! Image-quality flags in CleanVision's spirit, computed from the decode
//! `verify` already does: very blurry, very dark, washed out, tiny,
//! extreme aspect ratio, nearly one colour, grayscale among colour photos.
//!
//! Gem photos are mostly a stone on a white or light-grey background, so
//! "light" is normal here: washed out means no dark tones at all, not a
//! bright mean. Thresholds were set on the real training folder so that
//! only its outliers are flagged (docs/guide.md, "Dataset health").
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
/// brightness 34, chroma 1.0; 99th of the darkest tones 185; docs/guide.md).
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
    /// Mean grey level (0-255), over a grid of at least 64 pixels a side.
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
        let histogram = sampled_histogram(px, w, h);
        let (brightness, contrast) = mean_and_deviation(&histogram);
        let fifth = histogram.iter().sum::<u32>() as usize / 20;
        let mut seen = 0;
        let darkest_tones = (0..=255u8)
            .find(|&v| {
                seen += histogram[v as usize] as usize;
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

/// How many pixels have each grey level. Four partial histograms filled
/// in turn, then added: a plain background is a long run of one level,
/// and one histogram would make each increment wait for the last (written
/// by hand for the flags' cost goal, docs/guide.md "Dataset health").
fn histogram(px: &[u8]) -> [u32; 256] {
    let mut parts = [[0u32; 256]; 4];
    let mut quads = px.chunks_exact(4);
    for q in &mut quads {
        for (part, &p) in parts.iter_mut().zip(q) {
            part[p as usize] += 1;
        }
    }
    for &p in quads.remainder() {
        parts[0][p as usize] += 1;
    }
    std::array::from_fn(|level| parts.iter().map(|part| part[level]).sum())
}

/// Side of the grid [`sampled_histogram`] keeps, at least: the grey
/// levels' mean, spread and 5th percentile need a few thousand pixels,
/// not every one (as [`chroma`]).
const HISTOGRAM_SIDE: usize = 64;

/// The [`histogram`] of every `s`-th pixel of every `s`-th row of a
/// `w x h` grey image, `s` keeping at least [`HISTOGRAM_SIDE`] pixels on
/// the shorter side.
fn sampled_histogram(px: &[u8], w: usize, h: usize) -> [u32; 256] {
    let step = (w.min(h) / HISTOGRAM_SIDE).max(1);
    if step == 1 || w == 0 {
        return histogram(px);
    }
    let sample: Vec<u8> =
        px.chunks_exact(w).step_by(step).flat_map(|row| row.iter().step_by(step).copied()).collect();
    histogram(&sample)
}

/// Mean and standard deviation of the grey levels, from their histogram
/// (exact integer sums; a float sum over every pixel cannot be
/// vectorised and was most of the flags' cost).
fn mean_and_deviation(histogram: &[u32; 256]) -> (f32, f32) {
    let (mut n, mut sum, mut sum2) = (0u64, 0u64, 0u64);
    for (level, &count) in (0u64..).zip(histogram) {
        n += u64::from(count);
        sum += level * u64::from(count);
        sum2 += level * level * u64::from(count);
    }
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = sum as f64 / n as f64;
    let variance = (sum2 as f64 / n as f64 - mean * mean).max(0.0);
    (mean as f32, variance.sqrt() as f32)
}

/// Columns summed at a time in [`laplacian_variance`]: squares of at most
/// 1020 (four neighbours of 255) times this stay within a `u32`.
const LAPLACIAN_CHUNK: usize = 1024;

simd_targets! {
/// Variance of the 4-neighbour Laplacian over the interior pixels. Each
/// row is five shifted slices zipped together, summed in 32-bit integers
/// a chunk at a time, so the loop vectorises (this pass and the float
/// sums were the flags' cost).
fn laplacian_variance(px: &[u8], w: usize, h: usize) -> f32 {
    if w < 3 || h < 3 {
        return 0.0;
    }
    let (mut sum, mut sum2) = (0i64, 0u64);
    for y in 1..h - 1 {
        let row = |dy: usize, dx: usize| &px[(y + dy - 1) * w + dx..][..w - 2];
        let (up, left, centre, right, down) = (row(0, 1), row(1, 0), row(1, 1), row(1, 2), row(2, 1));
        for start in (0..w - 2).step_by(LAPLACIAN_CHUNK) {
            let end = (start + LAPLACIAN_CHUNK).min(w - 2);
            let (mut s, mut s2) = (0i32, 0u32);
            let neighbours =
                up[start..end].iter().zip(&down[start..end]).zip(&left[start..end]).zip(&right[start..end]);
            for ((((&u, &d), &l), &r), &c) in neighbours.zip(&centre[start..end]) {
                let l = i32::from(u) + i32::from(d) + i32::from(l) + i32::from(r) - 4 * i32::from(c);
                s += l;
                s2 += (l * l) as u32;
            }
            sum += i64::from(s);
            sum2 += u64::from(s2);
        }
    }
    let n = ((w - 2) * (h - 2)) as f64;
    let mean = sum as f64 / n;
    (sum2 as f64 / n - mean * mean) as f32
}
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
        for p in crate::similar::every_nth_pixel(row, step) {
            let (hi, lo) = (p[0].max(p[1]).max(p[2]), p[0].min(p[1]).min(p[2]));
            sum += (hi - lo) as u64;
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { sum as f32 / n as f32 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_grey(w: usize, h: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
        // Runs of one level (a background) and noise (a subject).
        (0..w * h).map(|i| if i % 7 < 3 { 250 } else { rng.random() }).collect()
    }

    #[test]
    fn grey_statistics_equal_their_definitions() {
        for (w, h) in [(1, 1), (5, 3), (250, 231), (2100, 4)] {
            let px = random_grey(w, h, w as u64);
            let mut naive = [0u32; 256];
            px.iter().for_each(|&p| naive[p as usize] += 1);
            let histogram = histogram(&px);
            assert_eq!(histogram, naive);
            let n = px.len() as f64;
            let mean = px.iter().map(|&p| f64::from(p)).sum::<f64>() / n;
            let sd = (px.iter().map(|&p| (f64::from(p) - mean).powi(2)).sum::<f64>() / n).sqrt();
            let (m, d) = mean_and_deviation(&histogram);
            assert!((f64::from(m) - mean).abs() < 1e-3 && (f64::from(d) - sd).abs() < 1e-3, "{w}x{h}");
        }
    }

    #[test]
    fn laplacian_variance_equals_its_definition_on_wide_rows() {
        for (w, h) in [(3, 3), (17, 9), (2100, 5)] {
            let px = random_grey(w, h, 9 + w as u64);
            let at = |x: usize, y: usize| f64::from(px[y * w + x]);
            let laplacians: Vec<f64> = (1..h - 1)
                .flat_map(|y| (1..w - 1).map(move |x| (x, y)))
                .map(|(x, y)| at(x, y - 1) + at(x, y + 1) + at(x - 1, y) + at(x + 1, y) - 4.0 * at(x, y))
                .collect();
            let n = laplacians.len() as f64;
            let mean = laplacians.iter().sum::<f64>() / n;
            let variance = laplacians.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n;
            let ours = f64::from(laplacian_variance(&px, w, h));
            assert!((ours - variance).abs() < 1e-4 * variance.max(1.0), "{w}x{h}: {ours} vs {variance}");
        }
        assert_eq!(laplacian_variance(&[1, 2, 3, 4], 2, 2), 0.0);
    }
}
