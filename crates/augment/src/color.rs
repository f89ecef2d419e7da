//! Pointwise colour operations on one output row, after the resample.
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::config::EraseFill;
use crate::params::{AugmentParams, PointOp};
use crate::warp::ImageView;

/// Image statistics some colour operations need, from the source image
/// (torchvision measures them on the image it is given, after any warp;
/// here the pipeline renders row by row, so they come from the source).
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    min: f32,
    max: f32,
    mean_grey: f32,
    /// Each channel's `[min, max]` (autocontrast).
    channel_range: [[f32; 2]; 3],
    /// Each channel's equalizing lookup table, when asked for.
    equalize: Option<Box<[[u8; 256]; 3]>>,
}

impl Stats {
    /// Computed only when the parameters need them; the per-channel
    /// histograms only for autocontrast and equalize (a histogram pass
    /// costs more than the min/max/mean one the jitter needs).
    pub(crate) fn of(src: &ImageView<'_>, p: &AugmentParams) -> Option<Self> {
        let per_channel = matches!(p.point, Some(PointOp::AutoContrast | PointOp::Equalize));
        if p.channel_shift.is_none() && p.jitter[1] == 1.0 && !per_channel {
            return None;
        }
        let d = src.data();
        let (mut min, mut max) = (255u8, 0u8);
        let mut grey = 0f64;
        for px in d.chunks_exact(3) {
            min = min.min(px[0]).min(px[1]).min(px[2]);
            max = max.max(px[0]).max(px[1]).max(px[2]);
            grey += f64::from(grey_of(f32::from(px[0]), f32::from(px[1]), f32::from(px[2])));
        }
        let mut stats = Self {
            min: f32::from(min),
            max: f32::from(max),
            mean_grey: (grey / (d.len() / 3).max(1) as f64) as f32,
            channel_range: [[0.0, 255.0]; 3],
            equalize: None,
        };
        if per_channel {
            let mut histogram = [[0u32; 256]; 3];
            for px in d.chunks_exact(3) {
                for k in 0..3 {
                    histogram[k][usize::from(px[k])] += 1;
                }
            }
            stats.channel_range = histogram.map(|h| {
                let lo = h.iter().position(|&n| n > 0).unwrap_or(0);
                let hi = h.iter().rposition(|&n| n > 0).unwrap_or(255);
                [lo as f32, hi as f32]
            });
            if p.point == Some(PointOp::Equalize) {
                stats.equalize = Some(Box::new(histogram.map(|h| equalizer(&h))));
            }
        }
        Some(stats)
    }
}

/// PIL's `ImageOps.equalize` lookup table for one channel's histogram.
fn equalizer(histogram: &[u32; 256]) -> [u8; 256] {
    let identity = std::array::from_fn(|i| i as u8);
    let used: Vec<u64> = histogram.iter().filter(|&&n| n > 0).map(|&n| u64::from(n)).collect();
    let Some(&last) = used.last() else { return identity };
    let step = (used.iter().sum::<u64>() - last) / 255;
    if used.len() <= 1 || step == 0 {
        return identity;
    }
    let mut n = step / 2;
    let mut lut = [0u8; 256];
    for (entry, &count) in lut.iter_mut().zip(histogram) {
        *entry = (n / step).min(255) as u8;
        n += u64::from(count);
    }
    lut
}

/// One channel's value after TrivialAugment's pointwise operation.
#[inline]
fn point_op(op: PointOp, stats: Option<&Stats>, channel: usize, v: f32) -> f32 {
    match (op, stats) {
        (PointOp::Posterize { bits }, _) => {
            let quantum = f32::from(1u16 << (8 - bits.clamp(1, 8)));
            (v / quantum).floor() * quantum
        }
        (PointOp::Solarize { threshold }, _) if v >= threshold => 255.0 - v,
        (PointOp::AutoContrast, Some(s)) => {
            // Pillow's lookup table, truncating as it does, in f64 as Python.
            let [lo, hi] = s.channel_range[channel].map(f64::from);
            let scale = 255.0 / (hi - lo);
            let stretched = (f64::from(v) * scale - lo * scale).floor().clamp(0.0, 255.0);
            if hi > lo { stretched as f32 } else { v }
        }
        (PointOp::Equalize, Some(Stats { equalize: Some(lut), .. })) => {
            f32::from(lut[channel][v.round().clamp(0.0, 255.0) as usize])
        }
        _ => v,
    }
}

#[inline]
fn grey_of(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Whether the parameters change colours at all (else the row is copied
/// as it was resampled).
pub(crate) fn is_identity(p: &AugmentParams) -> bool {
    p.channel_shift.is_none()
        && p.brightness.is_none()
        && p.jitter == [1.0, 1.0, 1.0, 0.0]
        && p.erase.is_none()
        && p.point.is_none()
}

/// Apply the colour operations to one row (`0..=255` floats, modified in
/// place): Keras channel shift and brightness, then jitter (brightness,
/// contrast, saturation, hue), then TrivialAugment's pointwise operation,
/// then cutout.
pub(crate) fn apply_row(
    p: &AugmentParams,
    stats: Option<&Stats>,
    row: usize,
    ch: &mut [Vec<f32>; 3],
    cval_rng: &mut Option<Pcg64Mcg>,
) {
    let n = ch[0].len();
    let [r, g, b] = ch;
    if let (Some(s), Some(st)) = (p.channel_shift, stats) {
        for v in r.iter_mut().chain(g.iter_mut()).chain(b.iter_mut()) {
            *v = (*v + s).clamp(st.min, st.max);
        }
    }
    if let Some(k) = p.brightness {
        for v in r.iter_mut().chain(g.iter_mut()).chain(b.iter_mut()) {
            *v = (*v * k).clamp(0.0, 255.0);
        }
    }
    let [jb, jc, js, jh] = p.jitter;
    if jb != 1.0 {
        for v in r.iter_mut().chain(g.iter_mut()).chain(b.iter_mut()) {
            *v = (*v * jb).clamp(0.0, 255.0);
        }
    }
    if jc != 1.0 {
        // The mean grey after the brightness change, as torchvision measures
        // it on the image it is given.
        let m = stats.map_or(127.5, |s| (s.mean_grey * jb).min(255.0));
        for v in r.iter_mut().chain(g.iter_mut()).chain(b.iter_mut()) {
            *v = (m + jc * (*v - m)).clamp(0.0, 255.0);
        }
    }
    if js != 1.0 {
        for i in 0..n {
            let grey = grey_of(r[i], g[i], b[i]);
            r[i] = (grey + js * (r[i] - grey)).clamp(0.0, 255.0);
            g[i] = (grey + js * (g[i] - grey)).clamp(0.0, 255.0);
            b[i] = (grey + js * (b[i] - grey)).clamp(0.0, 255.0);
        }
    }
    if jh != 0.0 {
        for i in 0..n {
            let [x, y, z] = hue_shift([r[i], g[i], b[i]], jh);
            r[i] = x;
            g[i] = y;
            b[i] = z;
        }
    }
    if let Some(op) = p.point {
        for (k, chan) in [&mut *r, &mut *g, &mut *b].into_iter().enumerate() {
            for v in chan.iter_mut() {
                *v = point_op(op, stats, k, *v);
            }
        }
    }
    if let Some(e) = &p.erase {
        let rows = e.top as usize..(e.top + e.height) as usize;
        if rows.contains(&row) {
            let cols = e.left as usize..((e.left + e.width) as usize).min(n);
            match e.fill {
                EraseFill::Constant(c) => {
                    for (k, chan) in [r, g, b].into_iter().enumerate() {
                        chan[cols.clone()].fill(f32::from(c[k]));
                    }
                }
                EraseFill::Noise => {
                    let rng = cval_rng.get_or_insert_with(|| Pcg64Mcg::seed_from_u64(e.noise_seed));
                    for i in cols {
                        for chan in [&mut *r, &mut *g, &mut *b] {
                            chan[i] = f32::from(rng.random::<u8>());
                        }
                    }
                }
            }
        }
    }
}

/// Rotate the hue of an RGB pixel (0-255) by `shift` turns.
fn hue_shift([r, g, b]: [f32; 3], shift: f32) -> [f32; 3] {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    if delta <= 0.0 {
        return [r, g, b];
    }
    let h = if max == r {
        ((g - b) / delta).rem_euclid(6.0)
    } else if max == g {
        (b - r) / delta + 2.0
    } else {
        (r - g) / delta + 4.0
    };
    let h = (h / 6.0 + shift).rem_euclid(1.0) * 6.0;
    let (v, s) = (max, delta / max);
    let f = h - h.floor();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match h as u32 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hue_shift_turns_the_colour_wheel() {
        let close = |a: [f32; 3], b: [f32; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3);
        assert!(close(hue_shift([255.0, 0.0, 0.0], 1.0 / 3.0), [0.0, 255.0, 0.0]));
        assert!(close(hue_shift([255.0, 0.0, 0.0], -1.0 / 3.0), [0.0, 0.0, 255.0]));
        assert!(close(hue_shift([90.0, 90.0, 90.0], 0.2), [90.0, 90.0, 90.0]));
        assert!(close(hue_shift([200.0, 100.0, 50.0], 1.0), [200.0, 100.0, 50.0]));
    }
}
