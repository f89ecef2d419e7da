//! Procedurally rendered gemstones: a small demo dataset made from a seed,
//! so the whole workflow runs with no photographs and no internet.
//!
//! Each class has its own colour and a preferred cut (round brilliant,
//! emerald cut, oval, pear, cushion, trillion); every image varies the cut
//! now and then, the hue and lightness, the light direction, the facet
//! shading and sparkles, the size, rotation and position of the stone, the
//! background tint and gradient, and the canvas size.
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::seed::Stream;

/// A stone cut: the outline the facets are built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cut {
    /// Round brilliant.
    Round,
    /// Oval brilliant.
    Oval,
    /// Emerald (step) cut: an octagonal rectangle.
    Emerald,
    /// Cushion: a rounded square.
    Cushion,
    /// Pear: a teardrop.
    Pear,
    /// Trillion: a rounded triangle.
    Trillion,
}

const CUTS: [Cut; 6] = [Cut::Round, Cut::Oval, Cut::Emerald, Cut::Cushion, Cut::Pear, Cut::Trillion];

/// One class of the demo set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthClass {
    /// Class (folder) name.
    pub name: String,
    /// Base colour.
    pub color: [u8; 3],
    /// The cut used most of the time.
    pub cut: Cut,
}

/// The built-in classes, in this order.
pub fn default_classes() -> Vec<SynthClass> {
    let c = |name: &str, color, cut| SynthClass { name: name.into(), color, cut };
    vec![
        c("Ruby", [196, 18, 48], Cut::Round),
        c("Emerald", [24, 140, 72], Cut::Emerald),
        c("Sapphire", [28, 62, 186], Cut::Oval),
        c("Amethyst", [136, 58, 184], Cut::Pear),
        c("Citrine", [232, 156, 30], Cut::Cushion),
        c("Aquamarine", [112, 196, 216], Cut::Trillion),
        c("Peridot", [150, 196, 40], Cut::Oval),
        c("Garnet Red", [120, 14, 28], Cut::Cushion),
    ]
}

/// How many images, how large, from which seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthConfig {
    /// The classes (default: the first six of [`default_classes`]).
    pub classes: Vec<SynthClass>,
    /// Images per class.
    pub per_class: usize,
    /// Smallest canvas side in pixels.
    pub min_size: u32,
    /// Largest canvas side in pixels.
    pub max_size: u32,
    /// Seed: the same seed renders the same images.
    pub seed: u64,
    /// Probability that an image uses another cut than its class's.
    pub other_cut: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            classes: default_classes().into_iter().take(6).collect(),
            per_class: 40,
            min_size: 140,
            max_size: 260,
            seed: 2024,
            other_cut: 0.25,
        }
    }
}

/// Render image `index` of class `class` (deterministic in the config's
/// seed, the class and the index).
pub fn render_gem(cfg: &SynthConfig, class: usize, index: usize) -> Result<RgbImage> {
    let Some(spec) = cfg.classes.get(class) else {
        return Err(Error::InvalidConfig { reason: format!("class {class} of {}", cfg.classes.len()) });
    };
    if cfg.min_size < 16 || cfg.max_size < cfg.min_size {
        return Err(Error::InvalidConfig { reason: "need 16 <= min_size <= max_size".into() });
    }
    let mut rng = Pcg64Mcg::seed_from_u64(crate::seed::seed_for(
        cfg.seed,
        Stream::SyntheticGem,
        ((class as u64) << 32) | index as u64,
    ));
    let w = rng.random_range(cfg.min_size..=cfg.max_size);
    let h = if rng.random_bool(0.7) { w } else { rng.random_range(cfg.min_size..=cfg.max_size) };
    let cut = if rng.random_bool(cfg.other_cut.clamp(0.0, 1.0)) {
        CUTS[rng.random_range(0..CUTS.len())]
    } else {
        spec.cut
    };

    // Render at twice the size and shrink: cheap antialiasing.
    let (sw, sh) = (w * 2, h * 2);
    let tint: [f32; 3] = std::array::from_fn(|_| rng.random_range(-12.0..6.0));
    let bg_top = rng.random_range(232.0..255.0f32);
    let bg_bottom = bg_top - rng.random_range(0.0..28.0f32);
    let mut img = RgbImage::from_fn(sw, sh, |_, y| {
        let t = y as f32 / sh as f32;
        let v = bg_top + (bg_bottom - bg_top) * t;
        Rgb(std::array::from_fn(|k| (v + tint[k]).clamp(0.0, 255.0) as u8))
    });

    let side = sw.min(sh) as f32;
    let radius = side * 0.5 * rng.random_range(0.5..0.86f32);
    let cx = sw as f32 / 2.0 + rng.random_range(-0.12..0.12f32) * side;
    let cy = sh as f32 / 2.0 + rng.random_range(-0.12..0.12f32) * side;
    let angle = rng.random_range(0.0..std::f32::consts::TAU);
    let light = rng.random_range(0.0..std::f32::consts::TAU);
    let light_strength = rng.random_range(0.35..0.75f32);
    let lift = rng.random_range(0.8..1.2f32);
    let base: [f32; 3] = std::array::from_fn(|k| {
        (f32::from(spec.color[k]) * lift + rng.random_range(-14.0..14.0f32)).clamp(0.0, 255.0)
    });

    let outline: Vec<(f32, f32)> = outline(cut)
        .into_iter()
        .map(|(x, y)| {
            let (s, c) = angle.sin_cos();
            (cx + radius * (x * c - y * s), cy + radius * (x * s + y * c))
        })
        .collect();

    // Soft shadow below-right of the stone.
    let shadow: Vec<(f32, f32)> =
        outline.iter().map(|&(x, y)| (x + radius * 0.06, y + radius * 0.08)).collect();
    fill_convex(&mut img, &shadow, |p| Rgb(p.0.map(|v| (f32::from(v) * 0.8) as u8)));

    // Facets: outer ring, inner ring, table.
    let ring = |s: f32| -> Vec<(f32, f32)> {
        outline.iter().map(|&(x, y)| (cx + (x - cx) * s, cy + (y - cy) * s)).collect()
    };
    let (r1, r2) = (ring(0.74), ring(0.46));
    let n = outline.len();
    for (band, (outer, inner)) in [(&outline, &r1), (&r1, &r2)].into_iter().enumerate() {
        for i in 0..n {
            let j = (i + 1) % n;
            let quad = [outer[i], outer[j], inner[j], inner[i]];
            let mx = (outer[i].0 + outer[j].0) / 2.0 - cx;
            let my = (outer[i].1 + outer[j].1) / 2.0 - cy;
            let facing = (my.atan2(mx) - light).cos();
            let shade = 0.62
                + light_strength * facing * if band == 0 { 1.0 } else { 0.6 }
                + rng.random_range(-0.08..0.08f32);
            fill_convex(&mut img, &quad, |_| {
                Rgb(std::array::from_fn(|k| (base[k] * shade).clamp(0.0, 255.0) as u8))
            });
        }
    }
    let table_shade = 0.9 + rng.random_range(-0.1..0.15f32);
    fill_convex(&mut img, &r2, |_| {
        Rgb(std::array::from_fn(|k| (base[k] * table_shade).clamp(0.0, 255.0) as u8))
    });

    // Sparkles: small bright spots on the stone.
    for _ in 0..rng.random_range(2..7) {
        let t = rng.random_range(0.0..std::f32::consts::TAU);
        let r = radius * rng.random_range(0.0..0.7f32);
        let (px, py) = (cx + r * t.cos(), cy + r * t.sin());
        let s = radius * rng.random_range(0.02..0.06f32);
        let spot = [(px - s, py), (px, py - s), (px + s, py), (px, py + s)];
        fill_convex(&mut img, &spot, |p| Rgb(p.0.map(|v| v.saturating_add(120))));
    }

    // Sensor noise.
    for p in img.pixels_mut() {
        let d = rng.random_range(-5i16..=5);
        for v in &mut p.0 {
            *v = (i16::from(*v) + d).clamp(0, 255) as u8;
        }
    }
    Ok(image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle))
}

/// Outline of a cut, centred on the origin, radius about 1, convex.
fn outline(cut: Cut) -> Vec<(f32, f32)> {
    use std::f32::consts::{PI, TAU};
    let circle = |n: usize, rx: f32, ry: f32| -> Vec<(f32, f32)> {
        (0..n).map(|i| i as f32 * TAU / n as f32).map(|t| (rx * t.cos(), ry * t.sin())).collect()
    };
    match cut {
        Cut::Round => circle(16, 1.0, 1.0),
        Cut::Oval => circle(16, 1.0, 0.7),
        Cut::Emerald => {
            let (a, b, c) = (1.0, 0.68, 0.22);
            vec![
                (a - c, -b),
                (a, -b + c),
                (a, b - c),
                (a - c, b),
                (-a + c, b),
                (-a, b - c),
                (-a, -b + c),
                (-a + c, -b),
            ]
        }
        Cut::Cushion => (0..16)
            .map(|i| i as f32 * TAU / 16.0)
            .map(|t| {
                let (c, s) = (t.cos(), t.sin());
                (c.signum() * c.abs().powf(0.5), s.signum() * s.abs().powf(0.5))
            })
            .map(|(x, y)| (x * 0.9, y * 0.9))
            .collect(),
        Cut::Pear => {
            let mut v: Vec<(f32, f32)> = (0..13)
                .map(|i| PI * 0.35 + i as f32 * PI * 1.3 / 12.0)
                .map(|t| (-0.25 + 0.72 * t.cos(), 0.72 * t.sin()))
                .collect();
            v.push((1.0, 0.0));
            v
        }
        Cut::Trillion => (0..12)
            .map(|i| i as f32 * TAU / 12.0)
            .map(|t| {
                // Radius dips between the three corners.
                let r = 0.78 + 0.22 * (3.0 * t).cos();
                (r * t.cos(), r * t.sin())
            })
            .collect(),
    }
}

/// Fill a convex polygon, mapping each covered pixel through `f`.
fn fill_convex(img: &mut RgbImage, poly: &[(f32, f32)], f: impl Fn(Rgb<u8>) -> Rgb<u8>) {
    let (w, h) = img.dimensions();
    let minx = poly.iter().map(|p| p.0).fold(f32::MAX, f32::min).floor().max(0.0) as u32;
    let maxx = poly.iter().map(|p| p.0).fold(f32::MIN, f32::max).ceil().min(w as f32 - 1.0).max(0.0) as u32;
    let miny = poly.iter().map(|p| p.1).fold(f32::MAX, f32::min).floor().max(0.0) as u32;
    let maxy = poly.iter().map(|p| p.1).fold(f32::MIN, f32::max).ceil().min(h as f32 - 1.0).max(0.0) as u32;
    // Orientation-independent inside test: all edge cross products share a sign.
    let inside = |x: f32, y: f32| {
        let mut sign = 0.0f32;
        for i in 0..poly.len() {
            let (a, b) = (poly[i], poly[(i + 1) % poly.len()]);
            let cross = (b.0 - a.0) * (y - a.1) - (b.1 - a.1) * (x - a.0);
            if cross != 0.0 {
                if sign == 0.0 {
                    sign = cross.signum();
                } else if cross.signum() != sign {
                    return false;
                }
            }
        }
        true
    };
    for y in miny..=maxy {
        for x in minx..=maxx {
            if inside(x as f32 + 0.5, y as f32 + 0.5) {
                let p = *img.get_pixel(x, y);
                img.put_pixel(x, y, f(p));
            }
        }
    }
}

/// Write the demo set as JPEG files, `out/<Class>/<class>-<cut>-<n>.jpg`.
/// Existing files are never replaced: an existing identical file is kept,
/// a different one is an error. Returns the files written, by class.
pub fn write_synthetic_set(out: impl AsRef<Path>, cfg: &SynthConfig) -> Result<Vec<PathBuf>> {
    let out = out.as_ref();
    let mut written = Vec::new();
    for (c, spec) in cfg.classes.iter().enumerate() {
        let dir = out.join(&spec.name);
        std::fs::create_dir_all(&dir).at(&dir)?;
        for i in 0..cfg.per_class {
            let img = render_gem(cfg, c, i)?;
            let path = dir.join(format!("{}-{i:04}.jpg", spec.name.to_lowercase().replace(' ', "-")));
            let bytes =
                encode_jpeg(&img, 90).map_err(|source| Error::Image { path: path.clone(), source })?;
            if path.exists() {
                if std::fs::read(&path).at(&path)? != bytes {
                    return Err(Error::WouldOverwrite { path });
                }
            } else {
                crate::fsutil::write_atomic(&path, &bytes)?;
            }
            written.push(path);
        }
    }
    Ok(written)
}

/// Encode an RGB image as JPEG bytes.
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> std::result::Result<Vec<u8>, image::ImageError> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(img)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_pixels_other_seed_other_pixels() {
        let cfg = SynthConfig::default();
        let a = render_gem(&cfg, 0, 3).unwrap();
        assert_eq!(a, render_gem(&cfg, 0, 3).unwrap());
        assert_ne!(a, render_gem(&cfg, 0, 4).unwrap());
        let other = SynthConfig { seed: 1, ..SynthConfig::default() };
        assert_ne!(a, render_gem(&other, 0, 3).unwrap());
        assert!((140..=260).contains(&a.width()));
    }

    #[test]
    fn stones_carry_their_class_colour() {
        // The mean colour of the darker (stone) pixels is nearest its class's.
        let cfg = SynthConfig { other_cut: 0.0, ..SynthConfig::default() };
        for (c, spec) in cfg.classes.iter().enumerate() {
            let img = render_gem(&cfg, c, 0).unwrap();
            let mut sum = [0f64; 3];
            let mut n = 0.0;
            for p in img.pixels() {
                if p.0.iter().map(|&v| u32::from(v)).sum::<u32>() < 3 * 200
                    && p.0.iter().max() != p.0.iter().min()
                {
                    for k in 0..3 {
                        sum[k] += f64::from(p[k]);
                    }
                    n += 1.0;
                }
            }
            let mean = sum.map(|s| s / n);
            let nearest = cfg
                .classes
                .iter()
                .enumerate()
                .min_by(|a, b| {
                    let d = |s: &SynthClass| {
                        (0..3).map(|k| (f64::from(s.color[k]) * 0.75 - mean[k]).powi(2)).sum::<f64>()
                    };
                    d(a.1).total_cmp(&d(b.1))
                })
                .map(|x| x.0);
            assert_eq!(nearest, Some(c), "{}: mean {mean:?}", spec.name);
        }
    }

    #[test]
    fn writes_a_folder_per_class_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SynthConfig { per_class: 2, ..SynthConfig::default() };
        let files = write_synthetic_set(dir.path(), &cfg).unwrap();
        assert_eq!(files.len(), 12);
        assert_eq!(write_synthetic_set(dir.path(), &cfg).unwrap(), files);
        std::fs::write(&files[0], b"user's own file").unwrap();
        assert!(matches!(write_synthetic_set(dir.path(), &cfg), Err(Error::WouldOverwrite { .. })));
        assert_eq!(std::fs::read(&files[0]).unwrap(), b"user's own file");
    }
}
