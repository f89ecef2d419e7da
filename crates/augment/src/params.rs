//! Sampled parameters of one augmentation, and the single affine map they
//! make.
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use crate::config::{AugmentConfig, EraseFill};

/// A rectangle of the output to erase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Erase {
    /// First row.
    pub top: u32,
    /// First column.
    pub left: u32,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// The fill.
    pub fill: EraseFill,
    /// Seed of the noise fill.
    pub noise_seed: u64,
}

/// A pointwise operation of TrivialAugment's ([`AugmentConfig::trivial_augment`]),
/// applied to each channel after the colour jitter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointOp {
    /// Keep the `bits` high bits of each value (PIL's `posterize`).
    Posterize {
        /// 1 to 8.
        bits: u8,
    },
    /// Invert each value at or above `threshold` (PIL's `solarize`).
    Solarize {
        /// 0-255.
        threshold: f32,
    },
    /// Stretch each channel's range in the source to 0-255 (PIL's
    /// `autocontrast`).
    AutoContrast,
    /// Equalize each channel's histogram in the source (PIL's `equalize`).
    Equalize,
}

/// Everything sampled for one image: record it to replay the same
/// augmentation later ([`crate::BatchAugmenter::apply`] takes it).
///
/// Names follow Keras' `get_random_transform`: `tx` is the vertical (row)
/// shift and `ty` the horizontal (column) shift, in output pixels; `zx`
/// scales rows and `zy` columns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AugmentParams {
    /// Rotation, degrees.
    pub theta: f32,
    /// Row shift, pixels.
    pub tx: f32,
    /// Column shift, pixels.
    pub ty: f32,
    /// Shear, degrees.
    pub shear: f32,
    /// Row zoom factor.
    pub zx: f32,
    /// Column zoom factor.
    pub zy: f32,
    /// Left-right flip.
    pub flip_horizontal: bool,
    /// Upside-down flip.
    pub flip_vertical: bool,
    /// Keras channel shift (0-255 scale).
    pub channel_shift: Option<f32>,
    /// Keras brightness factor.
    pub brightness: Option<f32>,
    /// Source region `[left, top, width, height]` (as a dataset `CropBox`)
    /// stretched over the output (random resized crop); `None`: the whole
    /// source.
    pub crop: Option<[f32; 4]>,
    /// Jitter factors: brightness, contrast, saturation (1 = unchanged) and
    /// hue shift in turns (0 = unchanged).
    pub jitter: [f32; 4],
    /// Cutout.
    pub erase: Option<Erase>,
    /// TrivialAugment's pointwise operation, if it drew one.
    #[serde(default)]
    pub point: Option<PointOp>,
}

impl Default for AugmentParams {
    fn default() -> Self {
        Self::identity()
    }
}

impl AugmentParams {
    /// Parameters that change nothing.
    pub fn identity() -> Self {
        Self {
            theta: 0.0,
            tx: 0.0,
            ty: 0.0,
            shear: 0.0,
            zx: 1.0,
            zy: 1.0,
            flip_horizontal: false,
            flip_vertical: false,
            channel_shift: None,
            brightness: None,
            crop: None,
            jitter: [1.0, 1.0, 1.0, 0.0],
            erase: None,
            point: None,
        }
    }

    /// Sample parameters for an image, as Keras' `get_random_transform`
    /// does (uniform ranges, in Keras' order), then the extras. `src` and
    /// `out` are `(width, height)`.
    pub fn sample(cfg: &AugmentConfig, rng: &mut impl Rng, src: (u32, u32), out: (u32, u32)) -> Self {
        // Row-major inside, as Keras' matrices: (height, width).
        let (src, out) = ((src.1, src.0), (out.1, out.0));
        let (oh, ow) = (out.0 as f32, out.1 as f32);
        let sym = |rng: &mut dyn rand::RngCore, r: f32| if r > 0.0 { rng.random_range(-r..=r) } else { 0.0 };
        let mut p = Self::identity();
        p.theta = sym(rng, cfg.rotation_range);
        if cfg.height_shift_range > 0.0 {
            p.tx = sym(rng, cfg.height_shift_range);
            if cfg.height_shift_range < 1.0 {
                p.tx *= oh;
            }
        }
        if cfg.width_shift_range > 0.0 {
            p.ty = sym(rng, cfg.width_shift_range);
            if cfg.width_shift_range < 1.0 {
                p.ty *= ow;
            }
        }
        p.shear = sym(rng, cfg.shear_range);
        let [zlo, zhi] = cfg.zoom_range;
        if !(zlo == 1.0 && zhi == 1.0) {
            p.zx = rng.random_range(zlo..=zhi);
            p.zy = rng.random_range(zlo..=zhi);
        }
        p.flip_horizontal = cfg.horizontal_flip && rng.random::<f32>() < 0.5;
        p.flip_vertical = cfg.vertical_flip && rng.random::<f32>() < 0.5;
        if cfg.channel_shift_range != 0.0 {
            p.channel_shift = Some(sym(rng, cfg.channel_shift_range));
        }
        if let Some([lo, hi]) = cfg.brightness_range {
            p.brightness = Some(rng.random_range(lo..=hi));
        }
        if let Some(c) = &cfg.random_resized_crop {
            p.crop = Some(random_resized_crop(rng, src, c.scale, c.ratio));
        }
        let j = &cfg.color_jitter;
        let factor = |rng: &mut dyn rand::RngCore, x: f32| {
            if x > 0.0 { rng.random_range((1.0 - x).max(0.0)..=1.0 + x) } else { 1.0 }
        };
        p.jitter =
            [factor(rng, j.brightness), factor(rng, j.contrast), factor(rng, j.saturation), sym(rng, j.hue)];
        if let Some(e) = &cfg.random_erasing
            && rng.random::<f32>() < e.p
        {
            let area = out.0 as f32 * out.1 as f32;
            for _ in 0..10 {
                let a = area * rng.random_range(e.scale[0]..=e.scale[1]);
                let r = log_uniform(rng, e.ratio);
                let h = (a / r).sqrt().round() as u32;
                let w = (a * r).sqrt().round() as u32;
                if h >= 1 && w >= 1 && h < out.0 && w < out.1 {
                    p.erase = Some(Erase {
                        top: rng.random_range(0..=out.0 - h),
                        left: rng.random_range(0..=out.1 - w),
                        height: h,
                        width: w,
                        fill: e.fill,
                        noise_seed: rng.random(),
                    });
                    break;
                }
            }
        }
        if cfg.trivial_augment {
            p.trivial_augment(rng, out);
        }
        p
    }

    /// Draw one of `TrivialAugmentWide`'s operations and its magnitude, and
    /// compose it with the parameters already drawn. `out` is `(height,
    /// width)`.
    fn trivial_augment(&mut self, rng: &mut impl Rng, (oh, ow): (u32, u32)) {
        // torchvision's 31 magnitude bins, from none to the widest.
        let step = rng.random_range(0..=30u8) as f32 / 30.0;
        let signed = |rng: &mut dyn rand::RngCore| if rng.random::<bool>() { step } else { -step };
        // Shifts: torchvision's 32 pixels, at its 224-pixel reference size.
        let shift = 32.0 / 224.0;
        match rng.random_range(0..12u8) {
            0 => {}
            1 => self.shear += signed(rng) * 0.99f32.atan().to_degrees(),
            2 => self.tx += signed(rng) * shift * oh as f32,
            3 => self.ty += signed(rng) * shift * ow as f32,
            4 => self.theta += signed(rng) * 135.0,
            5 => self.jitter[0] *= 1.0 + 0.99 * signed(rng),
            6 => self.jitter[2] *= 1.0 + 0.99 * signed(rng),
            7 => self.jitter[1] *= 1.0 + 0.99 * signed(rng),
            8 => self.point = Some(PointOp::Posterize { bits: 8 - (step * 6.0).round() as u8 }),
            9 => self.point = Some(PointOp::Solarize { threshold: 255.0 * (1.0 - step) }),
            10 => self.point = Some(PointOp::AutoContrast),
            _ => self.point = Some(PointOp::Equalize),
        }
    }

    /// The affine map from output pixel `(row, col)` to source coordinates:
    /// `[r, c] = m * [row, col, 1]`, composing, from the output inwards,
    /// the flips (Keras flips after its affine transform), Keras' affine
    /// transform about the centre (rotation, shift, shear, zoom, as in
    /// `keras_preprocessing.image.apply_affine_transform`), and the resize
    /// of the source (or its random crop) to the output size.
    /// `src` and `out` are `(width, height)`.
    pub fn source_map(&self, src: (u32, u32), out: (u32, u32)) -> [[f64; 3]; 2] {
        let (wo, ho) = (f64::from(out.0), f64::from(out.1));
        // Flips in output coordinates.
        let flip: M3 = [
            [
                if self.flip_vertical { -1.0 } else { 1.0 },
                0.0,
                if self.flip_vertical { ho - 1.0 } else { 0.0 },
            ],
            [
                0.0,
                if self.flip_horizontal { -1.0 } else { 1.0 },
                if self.flip_horizontal { wo - 1.0 } else { 0.0 },
            ],
            [0.0, 0.0, 1.0],
        ];
        // Keras: rotation . shift . shear . zoom, about (h/2 + 0.5, w/2 + 0.5).
        let t = f64::from(self.theta).to_radians();
        let s = f64::from(self.shear).to_radians();
        let rot: M3 = [[t.cos(), -t.sin(), 0.0], [t.sin(), t.cos(), 0.0], [0.0, 0.0, 1.0]];
        let shift: M3 = [[1.0, 0.0, f64::from(self.tx)], [0.0, 1.0, f64::from(self.ty)], [0.0, 0.0, 1.0]];
        let shear: M3 = [[1.0, -s.sin(), 0.0], [0.0, s.cos(), 0.0], [0.0, 0.0, 1.0]];
        let zoom: M3 = [[f64::from(self.zx), 0.0, 0.0], [0.0, f64::from(self.zy), 0.0], [0.0, 0.0, 1.0]];
        let (oy, ox) = (ho / 2.0 + 0.5, wo / 2.0 + 0.5);
        let to_centre: M3 = [[1.0, 0.0, oy], [0.0, 1.0, ox], [0.0, 0.0, 1.0]];
        let from_centre: M3 = [[1.0, 0.0, -oy], [0.0, 1.0, -ox], [0.0, 0.0, 1.0]];
        let keras =
            mul(&mul(&mul(&mul(&mul(&mul(&to_centre, &rot), &shift), &shear), &zoom), &from_centre), &flip);
        let keras_identity = self.theta == 0.0
            && self.tx == 0.0
            && self.ty == 0.0
            && self.shear == 0.0
            && self.zx == 1.0
            && self.zy == 1.0;
        let k = if keras_identity { flip } else { keras };
        // Output grid -> source region, pixel centres aligned.
        let [left, top, cw, ch] =
            self.crop.map_or([0.0, 0.0, f64::from(src.0), f64::from(src.1)], |c| c.map(f64::from));
        let (sy, sx) = (ch / ho, cw / wo);
        let resize: M3 = [[sy, 0.0, top + 0.5 * sy - 0.5], [0.0, sx, left + 0.5 * sx - 0.5], [0.0, 0.0, 1.0]];
        let m = mul(&resize, &k);
        [m[0], m[1]]
    }
}

type M3 = [[f64; 3]; 3];

fn mul(a: &M3, b: &M3) -> M3 {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

fn log_uniform(rng: &mut impl Rng, [lo, hi]: [f32; 2]) -> f32 {
    let (a, b) = (lo.ln(), hi.ln());
    if a < b { rng.random_range(a..=b).exp() } else { lo }
}

/// torchvision's `RandomResizedCrop.get_params`: up to ten tries at a box of
/// the sampled area and ratio inside the image, else a centre crop with the
/// ratio clamped to the range. `[left, top, width, height]` of an image of
/// `(h, w)`.
fn random_resized_crop(rng: &mut impl Rng, (h, w): (u32, u32), scale: [f32; 2], ratio: [f32; 2]) -> [f32; 4] {
    let (hf, wf) = (h as f32, w as f32);
    let area = hf * wf;
    for _ in 0..10 {
        let target = area * rng.random_range(scale[0]..=scale[1]);
        let r = log_uniform(rng, ratio);
        let cw = (target * r).sqrt().round();
        let ch = (target / r).sqrt().round();
        if cw >= 1.0 && ch >= 1.0 && cw <= wf && ch <= hf {
            let top = rng.random_range(0..=(h - ch as u32)) as f32;
            let left = rng.random_range(0..=(w - cw as u32)) as f32;
            return [left, top, cw, ch];
        }
    }
    let in_ratio = wf / hf;
    let (ch, cw) = if in_ratio < ratio[0] {
        ((wf / ratio[0]).round(), wf)
    } else if in_ratio > ratio[1] {
        (hf, (hf * ratio[1]).round())
    } else {
        (hf, wf)
    };
    [((wf - cw) / 2.0).floor(), ((hf - ch) / 2.0).floor(), cw, ch]
}

/// The generator for image `index` of epoch `epoch`: independent of batch
/// composition and thread count.
pub fn image_rng(seed: u64, epoch: u64, index: u64) -> Pcg64Mcg {
    use gemstones_dataset::derive_seed;
    Pcg64Mcg::seed_from_u64(derive_seed(derive_seed(seed, epoch), index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(m: &[[f64; 3]; 2], r: f64, c: f64) -> (f64, f64) {
        (m[0][0] * r + m[0][1] * c + m[0][2], m[1][0] * r + m[1][1] * c + m[1][2])
    }

    #[test]
    fn identity_maps_each_pixel_to_itself() {
        let m = AugmentParams::identity().source_map((10, 20), (10, 20));
        assert_eq!(m, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);
    }

    #[test]
    fn flips_and_resize_map_pixel_centres() {
        let p = AugmentParams { flip_horizontal: true, ..AugmentParams::identity() };
        // 5 wide, 4 high: column 0 of row 1 reads column 4.
        assert_eq!(apply(&p.source_map((5, 4), (5, 4)), 1.0, 0.0), (1.0, 4.0));
        // Halving: output pixel 0 covers source pixels 0 and 1 -> centre 0.5.
        let m = AugmentParams::identity().source_map((8, 8), (4, 4));
        assert_eq!(apply(&m, 0.0, 3.0), (0.5, 6.5));
    }

    #[test]
    fn keras_rotation_turns_about_the_centre() {
        // 90 degrees: output (r, c) reads input R(90)(r - o, c - o) + o,
        // i.e. (o - (c - o), o + (r - o)), with o = h/2 + 0.5 = 3.5 as in
        // Keras: (1, 2) -> (5, 1).
        let p = AugmentParams { theta: 90.0, ..AugmentParams::identity() };
        let m = p.source_map((6, 6), (6, 6));
        let (r, c) = apply(&m, 1.0, 2.0);
        assert!((r - 5.0).abs() < 1e-9 && (c - 1.0).abs() < 1e-9, "{r} {c}");
    }

    #[test]
    fn sampling_is_deterministic_and_in_range() {
        let cfg = AugmentConfig::tutorial();
        let a = AugmentParams::sample(&cfg, &mut image_rng(1, 2, 3), (220, 220), (220, 220));
        let b = AugmentParams::sample(&cfg, &mut image_rng(1, 2, 3), (220, 220), (220, 220));
        let c = AugmentParams::sample(&cfg, &mut image_rng(1, 2, 4), (220, 220), (220, 220));
        assert_eq!(a, b);
        assert_ne!(a, c);
        for i in 0..500 {
            let p = AugmentParams::sample(&cfg, &mut image_rng(9, 0, i), (220, 220), (220, 220));
            assert!(
                p.theta.abs() <= 25.0 && p.tx.abs() <= 22.0 && p.ty.abs() <= 22.0 && p.shear.abs() <= 0.2
            );
            assert!((0.9..=1.1).contains(&p.zx) && (0.9..=1.1).contains(&p.zy) && p.zx != p.zy);
            assert!(!p.flip_vertical && p.crop.is_none() && p.erase.is_none());
        }
    }

    #[test]
    fn random_resized_crop_stays_inside() {
        let mut rng = image_rng(0, 0, 0);
        for _ in 0..1000 {
            // An image 60 wide and 100 high.
            let [l, t, w, h] = random_resized_crop(&mut rng, (100, 60), [0.08, 1.0], [0.75, 1.333]);
            assert!(t >= 0.0 && l >= 0.0 && t + h <= 100.0 && l + w <= 60.0 && h >= 1.0 && w >= 1.0);
        }
    }
}
