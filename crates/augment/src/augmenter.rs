//! Augment images one at a time or a batch at a time, into caller buffers.
use std::cell::RefCell;
use std::path::Path;

use rand_pcg::Pcg64Mcg;
use rayon::prelude::*;

use crate::color::{Stats, apply_row, is_identity};
use crate::config::{AugmentConfig, Normalize};
use crate::error::{Error, Result};
use crate::params::{AugmentParams, image_rng};
use crate::warp::{FixedMap, ImageView, Sampling, Tables, warp_row};

#[derive(Default)]
struct Scratch {
    tables: Tables,
    row: Vec<u8>,
    f: [Vec<f32>; 3],
}

thread_local! {
    // One set of row buffers per thread: no allocation per image once warm.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The caller's buffer for rendered images, and its layout: one image
/// (`apply`) or a batch of `n` one after another (`batch`, `replay`).
#[derive(Debug)]
pub enum Output<'a> {
    /// `height x width x 3` bytes per image.
    U8Hwc(&'a mut [u8]),
    /// `height x width x 3` floats per image (channels last, the layout
    /// libtorch's CPU convolutions prefer), normalised.
    F32Hwc(&'a mut [f32], &'a Normalize),
    /// `3 x height x width` floats per image (channels first), normalised.
    F32Chw(&'a mut [f32], &'a Normalize),
}

impl Output<'_> {
    fn len(&self) -> usize {
        match self {
            Self::U8Hwc(d) => d.len(),
            Self::F32Hwc(d, _) | Self::F32Chw(d, _) => d.len(),
        }
    }

    fn normalize(&self) -> Option<&Normalize> {
        match self {
            Self::U8Hwc(_) => None,
            Self::F32Hwc(_, n) | Self::F32Chw(_, n) => Some(n),
        }
    }

    /// One buffer of `len` values per image, in order, each with its
    /// layout and normalisation.
    fn per_image(&mut self, len: usize) -> Vec<Out<'_>> {
        let affine = self.normalize().map(Normalize::affine).unwrap_or_default();
        let (scale, bias) = affine;
        match self {
            Self::U8Hwc(d) => d.chunks_mut(len.max(1)).map(Out::U8Hwc).collect(),
            Self::F32Hwc(d, _) => {
                d.chunks_mut(len.max(1)).map(|data| Out::F32Hwc { data, scale, bias }).collect()
            }
            Self::F32Chw(d, _) => {
                d.chunks_mut(len.max(1)).map(|data| Out::F32Chw { data, scale, bias }).collect()
            }
        }
    }
}

/// Where one image's pixels go.
enum Out<'a> {
    /// `height x width x 3` bytes.
    U8Hwc(&'a mut [u8]),
    /// `3 x height x width` floats, `x * scale + bias` per channel.
    F32Chw { data: &'a mut [f32], scale: [f32; 3], bias: [f32; 3] },
    /// `height x width x 3` floats (channels-last), normalised likewise.
    F32Hwc { data: &'a mut [f32], scale: [f32; 3], bias: [f32; 3] },
}

/// Samples parameters from `(seed, epoch, index)` and renders augmented
/// images of a fixed output size, alone or as a batch (in parallel with
/// rayon), straight into the caller's buffer.
///
/// The same seed gives the same pixels whatever the thread count or batch
/// composition: each image's parameters depend only on the seed, the epoch
/// and the image's index.
///
/// ```
/// use gemstones_augment::{AugmentConfig, BatchAugmenter, ImageView, Normalize, Output};
/// let aug = BatchAugmenter::new(AugmentConfig::tutorial(), 42, 32, 32)?;
/// let pixels = vec![128u8; 40 * 40 * 3];
/// let img = ImageView::new(&pixels, 40, 40)?;
/// let mut batch = vec![0f32; 2 * 3 * 32 * 32];
/// aug.batch(&[img, img], &[0, 1], 0, Output::F32Chw(&mut batch, &Normalize::default()))?;
/// assert!(batch.iter().all(|&v| (v - 128.0 / 255.0).abs() < 1e-6));
/// # Ok::<(), gemstones_augment::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchAugmenter {
    cfg: AugmentConfig,
    seed: u64,
    /// Output `(height, width)`: row-major, as the sampled parameters and
    /// the warp index it.
    out: (u32, u32),
}

impl BatchAugmenter {
    /// An augmenter producing `out_width x out_height` images.
    pub fn new(cfg: AugmentConfig, seed: u64, out_width: u32, out_height: u32) -> Result<Self> {
        cfg.validate()?;
        if out_height == 0 || out_width == 0 {
            return Err(Error::InvalidConfig { reason: "output size must be positive".into() });
        }
        Ok(Self { cfg, seed, out: (out_height, out_width) })
    }

    /// The configuration.
    pub fn config(&self) -> &AugmentConfig {
        &self.cfg
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Output `(width, height)`.
    pub fn output_size(&self) -> (u32, u32) {
        (self.out.1, self.out.0)
    }

    /// Values in one output image (`3 * height * width`).
    pub fn image_len(&self) -> usize {
        3 * self.out.0 as usize * self.out.1 as usize
    }

    /// The parameters image `index` gets in epoch `epoch`.
    pub fn sample(&self, epoch: u64, index: u64, src: &ImageView<'_>) -> AugmentParams {
        let mut rng = image_rng(self.seed, epoch, index);
        AugmentParams::sample(&self.cfg, &mut rng, (src.width(), src.height()), self.output_size())
    }

    fn sampling(&self) -> Sampling {
        Sampling {
            fill: self.cfg.fill_mode,
            cval: self.cfg.cval.round() as u8,
            interp: self.cfg.interpolation,
        }
    }

    /// Render one image with `params` into `out` (one image's worth).
    pub fn apply(&self, src: ImageView<'_>, params: &AugmentParams, out: Output<'_>) -> Result<()> {
        self.replay(&[src], std::slice::from_ref(params), out)
    }

    /// Augment a batch into `out`, in parallel: `indices[i]` is the
    /// dataset index of `sources[i]` (with the seed and `epoch` it draws
    /// the image's parameters, so the pixels do not depend on the thread
    /// count or the batch). Returns the parameters used, in batch order
    /// (for [`Self::replay`]).
    pub fn batch(
        &self,
        sources: &[ImageView<'_>],
        indices: &[u64],
        epoch: u64,
        out: Output<'_>,
    ) -> Result<Vec<AugmentParams>> {
        let params = self.batch_params(sources, indices, epoch)?;
        self.replay(sources, &params, out)?;
        Ok(params)
    }

    /// Render a batch with given (recorded) parameters into `out`, in
    /// parallel.
    pub fn replay(
        &self,
        sources: &[ImageView<'_>],
        params: &[AugmentParams],
        mut out: Output<'_>,
    ) -> Result<()> {
        if let Some(norm) = out.normalize() {
            norm.validate()?;
        }
        let len = self.image_len();
        check_batch(sources.len(), params.len(), out.len(), len)?;
        out.per_image(len).into_par_iter().zip(sources.par_iter().zip(params.par_iter())).for_each(
            |(o, (src, p))| {
                SCRATCH.with_borrow_mut(|s| self.render(*src, p, o, s));
            },
        );
        Ok(())
    }

    fn batch_params(
        &self,
        sources: &[ImageView<'_>],
        indices: &[u64],
        epoch: u64,
    ) -> Result<Vec<AugmentParams>> {
        if sources.len() != indices.len() {
            return Err(Error::InvalidConfig {
                reason: format!("{} images but {} indices", sources.len(), indices.len()),
            });
        }
        Ok(sources.iter().zip(indices).map(|(s, &i)| self.sample(epoch, i, s)).collect())
    }

    fn render(&self, src: ImageView<'_>, p: &AugmentParams, mut out: Out<'_>, s: &mut Scratch) {
        let (oh, ow) = (self.out.0 as usize, self.out.1 as usize);
        let map = FixedMap::new(p.source_map((src.width(), src.height()), self.output_size()));
        let smp = self.sampling();
        s.tables.build(&src, &map, (oh, ow), smp.fill);
        let color = !is_identity(p);
        let stats = if color { Stats::of(&src, p) } else { None };
        let mut noise: Option<Pcg64Mcg> = None;
        s.row.resize(ow * 3, 0);
        for f in &mut s.f {
            f.resize(ow, 0.0);
        }
        for row in 0..oh {
            match (&mut out, color) {
                (Out::U8Hwc(o), false) => {
                    warp_row(&src, &map, &s.tables, row, smp, &mut o[row * ow * 3..(row + 1) * ow * 3]);
                }
                (Out::F32Hwc { data, scale, bias }, false) => {
                    warp_row(&src, &map, &s.tables, row, smp, &mut s.row);
                    let dst = &mut data[row * ow * 3..(row + 1) * ow * 3];
                    for (d, px) in dst.chunks_exact_mut(3).zip(s.row.chunks_exact(3)) {
                        for k in 0..3 {
                            d[k] = f32::from(px[k]) * scale[k] + bias[k];
                        }
                    }
                }
                (Out::F32Chw { data, scale, bias }, false) => {
                    warp_row(&src, &map, &s.tables, row, smp, &mut s.row);
                    let plane = oh * ow;
                    for k in 0..3 {
                        let dst = &mut data[k * plane + row * ow..k * plane + (row + 1) * ow];
                        let (sc, bi) = (scale[k], bias[k]);
                        for (d, px) in dst.iter_mut().zip(s.row.chunks_exact(3)) {
                            *d = f32::from(px[k]) * sc + bi;
                        }
                    }
                }
                (_, true) => {
                    warp_row(&src, &map, &s.tables, row, smp, &mut s.row);
                    let [f0, f1, f2] = &mut s.f;
                    for (((px, a), b), c) in
                        s.row.chunks_exact(3).zip(f0.iter_mut()).zip(f1.iter_mut()).zip(f2.iter_mut())
                    {
                        *a = f32::from(px[0]);
                        *b = f32::from(px[1]);
                        *c = f32::from(px[2]);
                    }
                    apply_row(p, stats.as_ref(), row, &mut s.f, &mut noise);
                    write_f32_row(&mut out, row, ow, oh, &s.f);
                }
            }
        }
    }
}

fn write_f32_row(out: &mut Out<'_>, row: usize, ow: usize, oh: usize, f: &[Vec<f32>; 3]) {
    match out {
        Out::U8Hwc(o) => {
            let dst = &mut o[row * ow * 3..(row + 1) * ow * 3];
            for (((d, &r), &g), &b) in dst.chunks_exact_mut(3).zip(&f[0]).zip(&f[1]).zip(&f[2]) {
                d[0] = (r + 0.5) as u8;
                d[1] = (g + 0.5) as u8;
                d[2] = (b + 0.5) as u8;
            }
        }
        Out::F32Chw { data, scale, bias } => {
            let plane = oh * ow;
            for k in 0..3 {
                let dst = &mut data[k * plane + row * ow..k * plane + (row + 1) * ow];
                let (sc, bi) = (scale[k], bias[k]);
                for (d, &v) in dst.iter_mut().zip(&f[k]) {
                    *d = v * sc + bi;
                }
            }
        }
        Out::F32Hwc { data, scale, bias } => {
            let dst = &mut data[row * ow * 3..(row + 1) * ow * 3];
            for (i, d) in dst.chunks_exact_mut(3).enumerate() {
                for k in 0..3 {
                    d[k] = f[k][i] * scale[k] + bias[k];
                }
            }
        }
    }
}

fn check_len(got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::BadOutput { got, want });
    }
    Ok(())
}

fn check_batch(sources: usize, params: usize, out: usize, len: usize) -> Result<()> {
    if sources != params {
        return Err(Error::InvalidConfig { reason: format!("{sources} images but {params} parameter sets") });
    }
    check_len(out, sources * len)
}

/// Write the tutorial's figure: the original and `n` augmented versions of
/// one image side by side, as a PNG.
pub fn preview(src: ImageView<'_>, cfg: &AugmentConfig, seed: u64, n: usize, path: &Path) -> Result<()> {
    let (h, w) = (src.height(), src.width());
    let aug = BatchAugmenter::new(cfg.clone(), seed, w, h)?;
    let mut grid = gemstones_dataset::ImageGrid::new(h.max(w).min(256), (n + 1).min(4));
    let original = image::RgbImage::from_raw(w, h, src.data().to_vec())
        .ok_or_else(|| Error::Preview { path: path.into(), reason: "bad source buffer".into() })?;
    grid.push(&original, "original");
    let mut buf = vec![0u8; aug.image_len()];
    for i in 0..n {
        let p = aug.sample(0, i as u64, &src);
        aug.apply(src, &p, Output::U8Hwc(&mut buf))?;
        let img = image::RgbImage::from_raw(w, h, buf.clone())
            .ok_or_else(|| Error::Preview { path: path.into(), reason: "bad output buffer".into() })?;
        grid.push(&img, format!("augmented {}", i + 1));
    }
    grid.save_png(path).map_err(|e| Error::Preview { path: path.into(), reason: e.to_string() })
}
