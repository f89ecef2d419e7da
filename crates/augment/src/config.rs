//! What to augment, with Keras' parameter names and meanings.
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How points outside the source image are filled (Keras' `fill_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillMode {
    /// Repeat the edge pixel: `aaaa|abcd|dddd` (Keras' default).
    #[default]
    Nearest,
    /// A constant colour ([`AugmentConfig::cval`]) outside the image.
    Constant,
    /// Mirror about the edge: `dcba|abcd|dcba`.
    Reflect,
    /// Repeat the image: `abcd|abcd|abcd`.
    Wrap,
}

/// Resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Nearest neighbour (Keras' `interpolation_order=0`).
    Nearest,
    /// Bilinear (Keras' default `interpolation_order=1`).
    #[default]
    Bilinear,
}

/// torchvision's `RandomResizedCrop`: a random region of the source (area
/// fraction and aspect ratio sampled) is stretched over the output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomResizedCrop {
    /// Range of the region's area as a fraction of the image.
    pub scale: [f32; 2],
    /// Range of the region's aspect ratio (width / height), sampled
    /// log-uniformly.
    pub ratio: [f32; 2],
}

impl Default for RandomResizedCrop {
    fn default() -> Self {
        Self { scale: [0.08, 1.0], ratio: [3.0 / 4.0, 4.0 / 3.0] }
    }
}

/// Colour jitter, each factor sampled uniformly in `[1 - x, 1 + x]`
/// (hue: a shift in `[-x, x]` turns of the colour wheel), applied in the
/// order brightness, contrast, saturation, hue.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColorJitter {
    /// Brightness spread (multiplies pixel values).
    pub brightness: f32,
    /// Contrast spread (blends with the image's mean grey).
    pub contrast: f32,
    /// Saturation spread (blends with each pixel's grey).
    pub saturation: f32,
    /// Hue spread in turns, at most 0.5. Off in every preset: colour is what
    /// tells many gem classes apart.
    pub hue: f32,
}

/// What an erased rectangle is filled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EraseFill {
    /// One colour.
    Constant([u8; 3]),
    /// Random pixels (from the image's own seeded generator).
    Noise,
}

/// torchvision's `RandomErasing` (cutout): with probability `p`, a random
/// rectangle of the output is filled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomErasing {
    /// Probability of erasing.
    pub p: f32,
    /// Range of the rectangle's area as a fraction of the image.
    pub scale: [f32; 2],
    /// Range of its aspect ratio, sampled log-uniformly.
    pub ratio: [f32; 2],
    /// The fill.
    pub fill: EraseFill,
}

impl Default for RandomErasing {
    fn default() -> Self {
        Self { p: 0.5, scale: [0.02, 0.33], ratio: [0.3, 3.3], fill: EraseFill::Constant([0, 0, 0]) }
    }
}

/// Augmentation settings. The fields up to `interpolation` are Keras'
/// `ImageDataGenerator` arguments with Keras' meaning; the rest are the
/// extras users of torchvision and fastai expect.
///
/// ```
/// use gemstones_augment::AugmentConfig;
/// let keras = AugmentConfig::tutorial();
/// assert_eq!(keras.rotation_range, 25.0);
/// assert_eq!(keras.zoom_range, [0.9, 1.1]);
/// ```
///
/// Read from a file (`train --augment`), a misspelt setting is an error
/// naming it, never a silently ignored line; a setting left out is off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Rotation, degrees, sampled in `[-x, x]`.
    pub rotation_range: f32,
    /// Horizontal shift: a fraction of the width when below 1, else pixels;
    /// sampled in `[-x, x]`.
    pub width_shift_range: f32,
    /// Vertical shift: a fraction of the height when below 1, else pixels.
    pub height_shift_range: f32,
    /// Shear angle in degrees (as in Keras, not radians), in `[-x, x]`.
    pub shear_range: f32,
    /// Zoom range `[lo, hi]`; Keras' `zoom_range=z` is `[1 - z, 1 + z]`. The
    /// two axes are sampled independently. As in Keras, a factor above 1
    /// shows more of the image (zooms out).
    pub zoom_range: [f32; 2],
    /// Flip left-right with probability 1/2.
    pub horizontal_flip: bool,
    /// Flip upside down with probability 1/2.
    pub vertical_flip: bool,
    /// How points outside the image are filled.
    pub fill_mode: FillMode,
    /// The constant colour for [`FillMode::Constant`], 0-255.
    pub cval: f32,
    /// Keras' `brightness_range`: a factor sampled in `[lo, hi]`
    /// multiplies every pixel (PIL's `ImageEnhance.Brightness`).
    pub brightness_range: Option<[f32; 2]>,
    /// Keras' `channel_shift_range`: one offset in `[-x, x]` (0-255 scale)
    /// added to every channel, clipped to the image's own min and max.
    pub channel_shift_range: f32,
    /// Resampling filter.
    pub interpolation: Interpolation,
    /// A random resized crop before the Keras transform.
    pub random_resized_crop: Option<RandomResizedCrop>,
    /// Colour jitter after it.
    pub color_jitter: ColorJitter,
    /// Cutout last.
    pub random_erasing: Option<RandomErasing>,
    /// TrivialAugment (Müller and Hutter, 2021) as torchvision's
    /// `TrivialAugmentWide`: each image also gets one operation drawn
    /// uniformly from identity, shear, row and column shift, rotation,
    /// brightness, saturation, contrast, posterize, solarize, autocontrast
    /// and equalize, at a magnitude drawn uniformly from 31 steps between
    /// none and the operation's widest (shear 0.99, shift 32/224 of the
    /// side, rotation 135 degrees, factors 1 ± 0.99, 8 to 2 bits,
    /// threshold 255 to 0). It composes with the settings above; see
    /// [`AugmentConfig::trivial`]. Sharpness, the one operation left out,
    /// needs a pixel's neighbours, which this row-wise pipeline does not
    /// keep.
    pub trivial_augment: bool,
}

impl Default for AugmentConfig {
    /// No augmentation at all (the identity); see [`AugmentConfig::tutorial`].
    fn default() -> Self {
        Self {
            rotation_range: 0.0,
            width_shift_range: 0.0,
            height_shift_range: 0.0,
            shear_range: 0.0,
            zoom_range: [1.0, 1.0],
            horizontal_flip: false,
            vertical_flip: false,
            fill_mode: FillMode::Nearest,
            cval: 0.0,
            brightness_range: None,
            channel_shift_range: 0.0,
            interpolation: Interpolation::Bilinear,
            random_resized_crop: None,
            color_jitter: ColorJitter::default(),
            random_erasing: None,
            trivial_augment: false,
        }
    }
}

impl AugmentConfig {
    /// No augmentation: the output is the input (resized if the output size
    /// differs). For validation and prediction.
    pub fn identity() -> Self {
        Self::default()
    }

    /// The tutorial's generator: `ImageDataGenerator(rotation_range=25,
    /// zoom_range=0.1, width_shift_range=0.1, height_shift_range=0.1,
    /// shear_range=0.2, horizontal_flip=True)`.
    pub fn tutorial() -> Self {
        Self {
            rotation_range: 25.0,
            width_shift_range: 0.1,
            height_shift_range: 0.1,
            shear_range: 0.2,
            zoom_range: keras_zoom(0.1),
            horizontal_flip: true,
            ..Self::default()
        }
    }

    /// The tutorial's generator plus what a fastai or torchvision user
    /// would add for training from scratch: vertical flips (a gem has no
    /// up), stronger rotation, reflection fill, a mild random resized crop,
    /// light brightness/contrast/saturation jitter (never hue), and cutout.
    pub fn strong() -> Self {
        Self {
            rotation_range: 30.0,
            width_shift_range: 0.1,
            height_shift_range: 0.1,
            shear_range: 5.0,
            zoom_range: keras_zoom(0.1),
            horizontal_flip: true,
            vertical_flip: true,
            fill_mode: FillMode::Reflect,
            random_resized_crop: Some(RandomResizedCrop { scale: [0.5, 1.0], ratio: [0.8, 1.25] }),
            color_jitter: ColorJitter { brightness: 0.15, contrast: 0.15, saturation: 0.1, hue: 0.0 },
            random_erasing: Some(RandomErasing { p: 0.25, scale: [0.02, 0.15], ..RandomErasing::default() }),
            ..Self::default()
        }
    }

    /// torchvision's TrivialAugment recipe: the random resized crop,
    /// flips, reflection fill and cutout of [`AugmentConfig::strong`], with
    /// [`AugmentConfig::trivial_augment`] in place of its hand-set ranges
    /// (rotation, shifts, shear, zoom, colour jitter).
    pub fn trivial() -> Self {
        let strong = Self::strong();
        Self {
            horizontal_flip: true,
            vertical_flip: true,
            fill_mode: strong.fill_mode,
            random_resized_crop: strong.random_resized_crop,
            random_erasing: strong.random_erasing,
            trivial_augment: true,
            ..Self::default()
        }
    }

    /// Whether no parameter changes anything.
    pub fn is_identity(&self) -> bool {
        *self
            == Self {
                fill_mode: self.fill_mode,
                cval: self.cval,
                interpolation: self.interpolation,
                ..Self::default()
            }
    }

    /// Check every value is in range.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidConfig { reason });
        let finite_nonneg = [
            ("rotation_range", self.rotation_range),
            ("width_shift_range", self.width_shift_range),
            ("height_shift_range", self.height_shift_range),
            ("shear_range", self.shear_range),
            ("channel_shift_range", self.channel_shift_range),
            ("color_jitter.brightness", self.color_jitter.brightness),
            ("color_jitter.contrast", self.color_jitter.contrast),
            ("color_jitter.saturation", self.color_jitter.saturation),
            ("color_jitter.hue", self.color_jitter.hue),
        ];
        for (name, v) in finite_nonneg {
            if !v.is_finite() || v < 0.0 {
                return bad(format!("{name} must be a finite number >= 0, got {v}"));
            }
        }
        if self.rotation_range > 180.0 || self.shear_range >= 90.0 {
            return bad("rotation_range must be <= 180 and shear_range < 90 degrees".into());
        }
        let [lo, hi] = self.zoom_range;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
            return bad(format!("zoom_range must be 0 < lo <= hi, got [{lo}, {hi}]"));
        }
        if let Some([lo, hi]) = self.brightness_range
            && !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo <= hi)
        {
            return bad(format!("brightness_range must be 0 <= lo <= hi, got [{lo}, {hi}]"));
        }
        if !(0.0..=255.0).contains(&self.cval) {
            return bad(format!("cval must be within 0..=255, got {}", self.cval));
        }
        if self.color_jitter.hue > 0.5 {
            return bad("color_jitter.hue must be <= 0.5".into());
        }
        for (name, v) in [
            ("color_jitter.brightness", self.color_jitter.brightness),
            ("color_jitter.contrast", self.color_jitter.contrast),
            ("color_jitter.saturation", self.color_jitter.saturation),
        ] {
            if v > 1.0 {
                return bad(format!("{name} must be <= 1, got {v}"));
            }
        }
        let range = |name: &str, [lo, hi]: [f32; 2], max: f32| -> Result<()> {
            if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi && hi <= max) {
                return Err(Error::InvalidConfig {
                    reason: format!("{name} must be 0 < lo <= hi <= {max}, got [{lo}, {hi}]"),
                });
            }
            Ok(())
        };
        if let Some(c) = &self.random_resized_crop {
            range("random_resized_crop.scale", c.scale, 1.0)?;
            range("random_resized_crop.ratio", c.ratio, f32::MAX)?;
        }
        if let Some(e) = &self.random_erasing {
            if !(0.0..=1.0).contains(&e.p) {
                return bad(format!("random_erasing.p must be within 0..=1, got {}", e.p));
            }
            range("random_erasing.scale", e.scale, 1.0)?;
            range("random_erasing.ratio", e.ratio, f32::MAX)?;
        }
        Ok(())
    }
}

/// Keras' `zoom_range=z` as a range: `[1 - z, 1 + z]`.
pub fn keras_zoom(z: f32) -> [f32; 2] {
    [1.0 - z, 1.0 + z]
}

/// Per-channel normalisation of `f32` outputs: `(x / 255 - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    /// Channel means, 0-1 scale.
    pub mean: [f32; 3],
    /// Channel standard deviations, 0-1 scale.
    pub std: [f32; 3],
}

impl Default for Normalize {
    /// `x / 255` (mean 0, std 1).
    fn default() -> Self {
        Self { mean: [0.0; 3], std: [1.0; 3] }
    }
}

impl Normalize {
    /// ImageNet's statistics.
    pub fn imagenet() -> Self {
        Self { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }
    }

    /// Scale and bias per channel so that `x * scale + bias` normalises a
    /// 0-255 value.
    pub(crate) fn affine(&self) -> ([f32; 3], [f32; 3]) {
        let scale = std::array::from_fn(|k| 1.0 / (255.0 * self.std[k]));
        let bias = std::array::from_fn(|k| -self.mean[k] / self.std[k]);
        (scale, bias)
    }

    /// Check the deviations are positive.
    pub fn validate(&self) -> Result<()> {
        if self.std.iter().chain(&self.mean).any(|v| !v.is_finite()) || self.std.iter().any(|&s| s <= 0.0) {
            return Err(Error::InvalidConfig {
                reason: format!("normalisation needs finite values and std > 0: {self:?}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_tutorial_matches_keras() {
        for c in [
            AugmentConfig::identity(),
            AugmentConfig::tutorial(),
            AugmentConfig::strong(),
            AugmentConfig::trivial(),
        ] {
            c.validate().unwrap();
        }
        let t = AugmentConfig::trivial();
        assert!(t.trivial_augment && t.rotation_range == 0.0 && t.color_jitter == ColorJitter::default());
        assert!(!AugmentConfig::strong().trivial_augment && !t.is_identity());
        let t = AugmentConfig::tutorial();
        assert_eq!((t.width_shift_range, t.height_shift_range, t.shear_range), (0.1, 0.1, 0.2));
        assert!(t.horizontal_flip && !t.vertical_flip && t.fill_mode == FillMode::Nearest);
        assert!(AugmentConfig::identity().is_identity() && !t.is_identity());
        // Hue stays off in every preset.
        assert_eq!(AugmentConfig::strong().color_jitter.hue, 0.0);
    }

    #[test]
    fn settings_read_from_json_refuse_unknown_names_and_default_the_missing() {
        let strong = AugmentConfig::strong();
        let text = serde_json::to_string(&strong).unwrap();
        assert_eq!(serde_json::from_str::<AugmentConfig>(&text).unwrap(), strong);
        let partial: AugmentConfig = serde_json::from_str(r#"{"horizontal_flip": true}"#).unwrap();
        assert_eq!(partial, AugmentConfig { horizontal_flip: true, ..AugmentConfig::default() });
        for typo in [r#"{"rotaton_range": 30}"#, r#"{"color_jitter": {"brightnes": 0.2}}"#] {
            let e = serde_json::from_str::<AugmentConfig>(typo).unwrap_err().to_string();
            assert!(e.contains("unknown field"), "{e}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let c = AugmentConfig { zoom_range: [1.2, 0.8], ..AugmentConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("zoom_range"));
        let c = AugmentConfig { rotation_range: f32::NAN, ..AugmentConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("rotation_range"));
        assert!(Normalize { mean: [0.0; 3], std: [1.0, 0.0, 1.0] }.validate().is_err());
    }
}
