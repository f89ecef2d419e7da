//! Decode, convert to RGB, crop to the gem, resize: one image or a folder.
use std::path::{Path, PathBuf};

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::U8x3;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::class_index::ClassIndex;
use crate::decode::{DecodeLimits, Problem, ProblemKind, decode_bytes, to_rgb_on_white};
use crate::edges::{CannyScratch, EdgeMap, canny_into};
use crate::error::{Error, Result};
use crate::scan::ImageFolder;
use crate::similar::PerceptualHash;
use crate::stop::StopFlag;

/// The tutorial's gem crop: Canny edges on a squashed copy, then the
/// bounding box of the edges.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GemCrop {
    /// Side of the square copy edges are found on (the tutorial's 330).
    pub detect_size: u32,
    /// Canny low threshold on the L1 gradient (the tutorial's 220).
    pub low: i32,
    /// Canny high threshold (the tutorial's 220).
    pub high: i32,
    /// Fewer edge pixels than this fraction of the detection image means
    /// "no gem found": the whole image is used (the tutorial's 1/10000).
    pub min_edge_fraction: f64,
    /// A box narrower or shorter than this fraction of the image is not
    /// trusted either (a speck, a scratch): the whole image is used.
    pub min_box_fraction: f64,
    /// Extra border around the box, as a fraction of its width and height.
    pub margin: f64,
}

impl Default for GemCrop {
    fn default() -> Self {
        Self {
            detect_size: 330,
            low: 220,
            high: 220,
            min_edge_fraction: 1e-4,
            min_box_fraction: 0.05,
            margin: 0.0,
        }
    }
}

/// How a (cropped) image becomes a square.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Stretch to the square, ignoring the aspect ratio (the tutorial).
    #[default]
    Squash,
    /// Keep the aspect ratio, pad with white.
    Pad,
    /// Keep the aspect ratio, cut the longer side's ends.
    CenterCrop,
}

/// Resampling filter of the final resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFilter {
    /// Nearest neighbour.
    Nearest,
    /// Bilinear, antialiased when shrinking (default).
    #[default]
    Bilinear,
    /// Catmull-Rom bicubic.
    CatmullRom,
    /// Lanczos, 3 lobes.
    Lanczos3,
}

impl ResizeFilter {
    fn alg(self) -> ResizeAlg {
        match self {
            Self::Nearest => ResizeAlg::Nearest,
            Self::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
            Self::CatmullRom => ResizeAlg::Convolution(FilterType::CatmullRom),
            Self::Lanczos3 => ResizeAlg::Convolution(FilterType::Lanczos3),
        }
    }
}

/// How photographs become the square RGB images a model sees.
///
/// Defaults follow the tutorial: 220x220, the Canny gem crop, squashed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PreprocessConfig {
    /// Side of the output square (the tutorial's 220).
    pub size: u32,
    /// The gem crop, or `None` for the whole image.
    pub crop: Option<GemCrop>,
    /// Squash, pad or centre-crop to the square.
    pub fit: Fit,
    /// Filter of the final resize.
    pub filter: ResizeFilter,
    /// Decoder limits.
    pub limits: DecodeLimits,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            size: 220,
            crop: Some(GemCrop::default()),
            fit: Fit::Squash,
            filter: ResizeFilter::Bilinear,
            limits: DecodeLimits::default(),
        }
    }
}

impl PreprocessConfig {
    /// Check the values are usable.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: &str| Err(Error::InvalidConfig { reason: reason.into() });
        if !(8..=4096).contains(&self.size) {
            return bad("size must be within 8..=4096");
        }
        if let Some(c) = &self.crop {
            if !(16..=4096).contains(&c.detect_size) {
                return bad("crop.detect_size must be within 16..=4096");
            }
            if !(0.0..1.0).contains(&c.min_edge_fraction) || !(0.0..1.0).contains(&c.min_box_fraction) {
                return bad("crop fractions must be within 0..1");
            }
            if !(0.0..=1.0).contains(&c.margin) {
                return bad("crop.margin must be within 0..=1");
            }
        }
        Ok(())
    }

    /// Bytes of one output image (`size * size * 3`).
    pub fn image_len(&self) -> usize {
        self.size as usize * self.size as usize * 3
    }
}

/// A crop box in source pixels: left, top, width, height.
pub type CropBox = [u32; 4];

/// Turns decoded photographs into model-ready squares, reusing its buffers.
pub struct Preprocessor {
    cfg: PreprocessConfig,
    resizer: Resizer,
    canny: CannyScratch,
    edges: EdgeMap,
    detect: Vec<u8>,
    pad: Vec<u8>,
}

impl Preprocessor {
    /// A preprocessor for `cfg` (validated).
    pub fn new(cfg: PreprocessConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            resizer: Resizer::new(),
            canny: CannyScratch::default(),
            edges: EdgeMap { width: 0, height: 0, edges: Vec::new() },
            detect: Vec::new(),
            pad: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PreprocessConfig {
        &self.cfg
    }

    /// Decode an encoded image (any supported format, by content) and
    /// preprocess it into `out` (`size * size * 3` bytes, RGB, row-major).
    /// Returns the crop box used (`None`: whole image), or the file's
    /// [`Problem`]; a buffer of the wrong size is the caller's error
    /// ([`Error::BadBuffer`]), not a problem of the file.
    pub fn process_bytes_into(
        &mut self,
        bytes: &[u8],
        path: &Path,
        out: &mut [u8],
    ) -> Result<std::result::Result<Option<CropBox>, Problem>> {
        Ok(self.process_and_hash_bytes_into(bytes, path, out)?.map(|(crop, _)| crop))
    }

    /// [`Preprocessor::process_bytes_into`], also returning the perceptual
    /// hash of the photo as decoded (from the same decode).
    pub fn process_and_hash_bytes_into(
        &mut self,
        bytes: &[u8],
        path: &Path,
        out: &mut [u8],
    ) -> Result<std::result::Result<(Option<CropBox>, PerceptualHash), Problem>> {
        self.check_buffer(out)?;
        let decoded = match decode_bytes(bytes, path, &self.cfg.limits) {
            Ok(d) => d,
            Err(problem) => return Ok(Err(problem)),
        };
        let hash = PerceptualHash::of(&decoded.image);
        let rgb = to_rgb_on_white(decoded.image);
        Ok(self.process_rgb_into(&rgb, out).map(|crop| (crop, hash)).map_err(|e| Problem {
            path: path.to_path_buf(),
            kind: ProblemKind::Corrupt,
            detail: e.to_string(),
        }))
    }

    /// A caller's output buffer must hold exactly one image.
    fn check_buffer(&self, out: &[u8]) -> Result<()> {
        let want = self.cfg.image_len();
        if out.len() != want {
            return Err(Error::BadBuffer { got: out.len(), want });
        }
        Ok(())
    }

    /// Read and preprocess one file into a new image.
    pub fn process_file(&mut self, path: impl AsRef<Path>) -> std::result::Result<RgbImage, Problem> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Problem {
            path: path.to_path_buf(),
            kind: ProblemKind::Unreadable,
            detail: e.to_string(),
        })?;
        let s = self.cfg.size;
        let mut out = RgbImage::new(s, s);
        // The buffer is made here at the right size: only the file can fail.
        match self.process_bytes_into(&bytes, path, &mut out) {
            Ok(result) => result.map(|_| out),
            Err(e) => Err(Problem {
                path: path.to_path_buf(),
                kind: ProblemKind::Unsupported,
                detail: e.to_string(),
            }),
        }
    }

    /// Preprocess an RGB image into `out`.
    ///
    /// With the gem crop and [`Fit::Squash`], the output is resampled from
    /// the crop box of the square detection image, as the tutorial does:
    /// that image already holds the source at about the output's
    /// resolution, so this costs one small resize instead of a second pass
    /// over a large photograph. The detection image is made with OpenCV's
    /// bilinear interpolation (as the tutorial's `cv2.resize`), antialiased
    /// when it shrinks the photograph more than twofold, so large photographs
    /// do not alias. Other fits resample from the source (they need its true
    /// aspect ratio).
    pub fn process_rgb_into(&mut self, rgb: &RgbImage, out: &mut [u8]) -> Result<Option<CropBox>> {
        let (w, h) = rgb.dimensions();
        self.check_buffer(out)?;
        let size = self.cfg.size;
        let opts = ResizeOptions::new().resize_alg(self.cfg.filter.alg());
        let Some(c) = self.cfg.crop else {
            let src = TypedImageRef::<U8x3>::from_buffer(w, h, rgb.as_raw()).map_err(resize_err)?;
            self.fit_into(&src, [0.0, 0.0, f64::from(w), f64::from(h)], out)?;
            return Ok(None);
        };
        let found = self.gem_box(rgb, &c)?;
        let d = f64::from(c.detect_size);
        let (sx, sy) = (f64::from(w) / d, f64::from(h) / d);
        let crop = found.map(|[x0, y0, x1, y1]| {
            let l = (x0 * sx).floor().max(0.0) as u32;
            let t = (y0 * sy).floor().max(0.0) as u32;
            let r = ((x1 * sx).ceil() as u32).clamp(l + 1, w);
            let b = ((y1 * sy).ceil() as u32).clamp(t + 1, h);
            [l, t, r - l, b - t]
        });
        if self.cfg.fit == Fit::Squash {
            let [x0, y0, x1, y1] = found.unwrap_or([0.0, 0.0, d, d]);
            let detect = std::mem::take(&mut self.detect);
            let result = (|| {
                let src = TypedImageRef::<U8x3>::from_buffer(c.detect_size, c.detect_size, &detect)
                    .map_err(resize_err)?;
                let mut dst = TypedImage::<U8x3>::from_buffer(size, size, out).map_err(resize_err)?;
                self.resizer
                    .resize_typed(&src, &mut dst, &opts.crop(x0, y0, x1 - x0, y1 - y0))
                    .map_err(resize_err)
            })();
            self.detect = detect;
            result?;
        } else {
            let [l, t, cw, ch] = crop.unwrap_or([0, 0, w, h]);
            let src = TypedImageRef::<U8x3>::from_buffer(w, h, rgb.as_raw()).map_err(resize_err)?;
            self.fit_into(&src, [l.into(), t.into(), cw.into(), ch.into()], out)?;
        }
        Ok(crop)
    }

    /// Resize the `[left, top, width, height]` box of `src` into `out` by
    /// the configured fit.
    fn fit_into(
        &mut self,
        src: &TypedImageRef<'_, U8x3>,
        [cl, ct, cw, ch]: [f64; 4],
        out: &mut [u8],
    ) -> Result<()> {
        let size = self.cfg.size;
        let opts = ResizeOptions::new().resize_alg(self.cfg.filter.alg());
        match self.cfg.fit {
            Fit::Squash => {
                let mut dst = TypedImage::<U8x3>::from_buffer(size, size, out).map_err(resize_err)?;
                self.resizer.resize_typed(src, &mut dst, &opts.crop(cl, ct, cw, ch)).map_err(resize_err)?;
            }
            Fit::CenterCrop => {
                let side = cw.min(ch);
                let (l, t) = (cl + (cw - side) / 2.0, ct + (ch - side) / 2.0);
                let mut dst = TypedImage::<U8x3>::from_buffer(size, size, out).map_err(resize_err)?;
                self.resizer.resize_typed(src, &mut dst, &opts.crop(l, t, side, side)).map_err(resize_err)?;
            }
            Fit::Pad => {
                let scale = f64::from(size) / cw.max(ch);
                let dw = ((cw * scale).round() as u32).clamp(1, size);
                let dh = ((ch * scale).round() as u32).clamp(1, size);
                self.pad.resize(dw as usize * dh as usize * 3, 0);
                let pad = &mut self.pad[..dw as usize * dh as usize * 3];
                let mut dst = TypedImage::<U8x3>::from_buffer(dw, dh, pad).map_err(resize_err)?;
                self.resizer.resize_typed(src, &mut dst, &opts.crop(cl, ct, cw, ch)).map_err(resize_err)?;
                out.fill(255);
                let (ox, oy) = (((size - dw) / 2) as usize, ((size - dh) / 2) as usize);
                let row = dw as usize * 3;
                for y in 0..dh as usize {
                    let d = ((oy + y) * size as usize + ox) * 3;
                    out[d..d + row].copy_from_slice(&self.pad[y * row..(y + 1) * row]);
                }
            }
        }
        Ok(())
    }

    /// The gem's box in detection-image pixels `[x0, y0, x1, y1]` (x1, y1
    /// exclusive, margin added), or `None` when too few edges.
    fn gem_box(&mut self, rgb: &RgbImage, c: &GemCrop) -> Result<Option<[f64; 4]>> {
        let (w, h) = rgb.dimensions();
        let d = c.detect_size;
        // Fully overwritten by the resize: no need to clear.
        self.detect.resize(d as usize * d as usize * 3, 0);
        let src = TypedImageRef::<U8x3>::from_buffer(w, h, rgb.as_raw()).map_err(resize_err)?;
        let mut dst = TypedImage::<U8x3>::from_buffer(d, d, &mut self.detect).map_err(resize_err)?;
        let shrink = (f64::from(w) / f64::from(d)).max(f64::from(h) / f64::from(d));
        let alg = if shrink > 2.0 {
            ResizeAlg::Convolution(FilterType::Bilinear)
        } else {
            // OpenCV's INTER_LINEAR, as the tutorial's cv2.resize before Canny.
            ResizeAlg::Interpolation(FilterType::Bilinear)
        };
        self.resizer
            .resize_typed(&src, &mut dst, &ResizeOptions::new().resize_alg(alg))
            .map_err(resize_err)?;
        let du = d as usize;
        canny_into(&self.detect, du, du, 3, c.low, c.high, &mut self.canny, &mut self.edges);
        // The tutorial crops when count_nonzero(edges) > edges.size / 10000.
        if self.edges.count() as f64 <= c.min_edge_fraction * (du * du) as f64 {
            return Ok(None);
        }
        let Some((x0, y0, x1, y1)) = self.edges.bbox() else { return Ok(None) };
        let (bw, bh) = ((x1 - x0 + 1) as f64, (y1 - y0 + 1) as f64);
        if bw < c.min_box_fraction * du as f64 || bh < c.min_box_fraction * du as f64 {
            return Ok(None);
        }
        let (mx, my) = (bw * c.margin, bh * c.margin);
        let df = du as f64;
        Ok(Some([
            (x0 as f64 - mx).max(0.0),
            (y0 as f64 - my).max(0.0),
            ((x1 + 1) as f64 + mx).min(df),
            ((y1 + 1) as f64 + my).min(df),
        ]))
    }
}

fn resize_err(e: impl std::fmt::Display) -> Error {
    Error::InvalidConfig { reason: format!("resize: {e}") }
}

/// Preprocessed images of a dataset in memory: labels, source files and
/// pixels (`size x size` RGB, row-major, one after another).
#[derive(Debug, Clone, PartialEq)]
///
/// Its parts agree (one label, file, crop and hash per image, labels
/// within the classes, `size x size x 3` bytes per image): they are read
/// through methods and set only by [`ImageSet::from_parts`], the
/// preprocessing and the cache.
pub struct ImageSet {
    pub(crate) classes: ClassIndex,
    pub(crate) size: u32,
    pub(crate) labels: Vec<u32>,
    pub(crate) files: Vec<PathBuf>,
    pub(crate) crops: Vec<Option<CropBox>>,
    pub(crate) root: PathBuf,
    pub(crate) hashes: Vec<PerceptualHash>,
    pub(crate) pixels: Vec<u8>,
}

impl ImageSet {
    /// Assemble a set from parts; `pixels` must hold `labels.len()` images.
    /// The perceptual hashes are those of the preprocessed images.
    pub fn from_parts(
        classes: ClassIndex,
        size: u32,
        labels: Vec<u32>,
        files: Vec<PathBuf>,
        root: PathBuf,
        pixels: Vec<u8>,
    ) -> Result<Self> {
        let mut set = Self::from_cache(classes, size, labels, files, root, Vec::new(), pixels)?;
        set.hashes = (0..set.len()).into_par_iter().map(|i| set.hash_of_pixels(i)).collect();
        Ok(set)
    }

    /// [`ImageSet::from_parts`] with the source photos' hashes known (or
    /// empty, to be filled by the caller).
    pub(crate) fn from_cache(
        classes: ClassIndex,
        size: u32,
        labels: Vec<u32>,
        files: Vec<PathBuf>,
        root: PathBuf,
        hashes: Vec<PerceptualHash>,
        pixels: Vec<u8>,
    ) -> Result<Self> {
        let n = labels.len();
        let len = size as usize * size as usize * 3;
        if files.len() != n || pixels.len() != n * len {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "{n} labels, {} files and {} pixel bytes do not agree",
                    files.len(),
                    pixels.len()
                ),
            });
        }
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= classes.len()) {
            return Err(Error::InvalidConfig {
                reason: format!("label {bad} but only {} classes", classes.len()),
            });
        }
        if !hashes.is_empty() && hashes.len() != n {
            return Err(Error::InvalidConfig { reason: format!("{} hashes for {n} images", hashes.len()) });
        }
        Ok(Self { classes, size, labels, files, crops: vec![None; n], root, hashes, pixels })
    }

    /// The perceptual hash of preprocessed image `i` (when the source
    /// photo's is not known).
    fn hash_of_pixels(&self, i: usize) -> PerceptualHash {
        self.to_rgb_image(i)
            .map(|rgb| PerceptualHash::of(&image::DynamicImage::ImageRgb8(rgb)))
            .unwrap_or_default()
    }

    /// The classes.
    pub fn classes(&self) -> &ClassIndex {
        &self.classes
    }

    /// Side of every image, pixels.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Class id of each image.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Source file of each image, relative to [`ImageSet::root`].
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Crop box used for each image (`None`: the whole image).
    pub fn crops(&self) -> &[Option<CropBox>] {
        &self.crops
    }

    /// The folder the files were read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Perceptual hash of each source photo as decoded (before cropping),
    /// for near-duplicates.
    pub fn hashes(&self) -> &[PerceptualHash] {
        &self.hashes
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes of one image.
    pub fn image_len(&self) -> usize {
        self.size as usize * self.size as usize * 3
    }

    /// Pixels of image `i` (`size * size * 3` bytes, RGB, row-major);
    /// [`Error::ImageIndex`] beyond the end.
    pub fn image(&self, i: usize) -> Result<&[u8]> {
        let n = self.image_len();
        self.pixels.get(i * n..(i + 1) * n).ok_or(Error::ImageIndex { index: i, len: self.len() })
    }

    /// All pixels, image after image.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Image `i` as an [`RgbImage`] (a copy), or `None` if out of range.
    pub fn to_rgb_image(&self, i: usize) -> Option<RgbImage> {
        RgbImage::from_raw(self.size, self.size, self.image(i).ok()?.to_vec())
    }

    /// Number of images per class id.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }
}

/// The outcome of [`preprocess_folder`]: the images that worked and the
/// files that did not.
#[derive(Debug, Clone)]
pub struct Preprocessed {
    /// The usable images.
    pub set: ImageSet,
    /// Files skipped, with the reason.
    pub problems: Vec<Problem>,
}

/// Preprocess every file of a scanned folder, in parallel (rayon), skipping
/// and reporting files that do not decode. Calls `progress(1)` after each
/// file, from any thread. Once `stop` is raised the files not started are
/// skipped and the result is [`Error::Cancelled`](crate::Error::Cancelled).
pub fn preprocess_folder(
    folder: &ImageFolder,
    cfg: &PreprocessConfig,
    progress: &(dyn Fn(u64) + Sync),
    stop: &StopFlag,
) -> Result<Preprocessed> {
    cfg.validate()?;
    folder.require_no_pending_rename()?;
    let len = cfg.image_len();
    let n = folder.files.len();
    let mut pixels = crate::fsutil::big_zeroed(n * len);
    type FileResult = std::result::Result<(Option<CropBox>, PerceptualHash), Problem>;
    let results: Vec<Result<FileResult>> = pixels
        .par_chunks_mut(len.max(1))
        .zip(folder.files.par_iter())
        .map_init(
            || Preprocessor::new(*cfg),
            |pp, (out, f)| {
                if stop.is_stopped() {
                    return Err(Error::Cancelled);
                }
                let pp = pp.as_mut().map_err(|e| Error::InvalidConfig { reason: e.to_string() })?;
                let r = match std::fs::read(&f.path) {
                    Ok(bytes) => pp.process_and_hash_bytes_into(&bytes, &f.path, out),
                    Err(e) => Ok(Err(Problem {
                        path: f.path.clone(),
                        kind: ProblemKind::Unreadable,
                        detail: e.to_string(),
                    })),
                };
                progress(1);
                r
            },
        )
        .collect();
    if stop.is_stopped() {
        return Err(Error::Cancelled);
    }
    let results = results.into_iter().collect::<Result<Vec<FileResult>>>()?;
    let mut labels = Vec::with_capacity(n);
    let mut files = Vec::with_capacity(n);
    let mut crops = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    let mut problems = Vec::new();
    let mut write = 0;
    for (i, (r, f)) in results.into_iter().zip(&folder.files).enumerate() {
        match r {
            Ok((crop, hash)) => {
                if write != i {
                    pixels.copy_within(i * len..(i + 1) * len, write * len);
                }
                write += 1;
                labels.push(f.class as u32);
                files.push(f.path.strip_prefix(&folder.root).unwrap_or(&f.path).to_path_buf());
                crops.push(crop);
                hashes.push(hash);
            }
            Err(p) => problems.push(p),
        }
    }
    pixels.truncate(write * len);
    let set = ImageSet {
        classes: folder.classes.clone(),
        size: cfg.size,
        labels,
        files,
        crops,
        root: folder.root.clone(),
        hashes,
        pixels,
    };
    Ok(Preprocessed { set, problems })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(w: u32, h: u32, gem: (u32, u32, u32, u32)) -> RgbImage {
        let mut img = RgbImage::from_pixel(w, h, image::Rgb([250, 250, 250]));
        for y in gem.1..gem.1 + gem.3 {
            for x in gem.0..gem.0 + gem.2 {
                img.put_pixel(x, y, image::Rgb([160, 20, 40]));
            }
        }
        img
    }

    #[test]
    fn crop_finds_the_gem_and_maps_back_to_source_pixels() {
        let img = photo(600, 400, (200, 100, 150, 120));
        let mut pp = Preprocessor::new(PreprocessConfig::default()).unwrap();
        let mut out = vec![0; pp.config().image_len()];
        let [l, t, w, h] = pp.process_rgb_into(&img, &mut out).unwrap().unwrap();
        // Within about two detection pixels (600/330, 400/330 source pixels each).
        assert!((l as i32 - 200).abs() <= 4 && (t as i32 - 100).abs() <= 3, "{l} {t}");
        assert!((w as i32 - 150).abs() <= 8 && (h as i32 - 120).abs() <= 6, "{w} {h}");
        // The output is the gem: its centre is gem-red.
        let c = (110 * 220 + 110) * 3;
        assert_eq!(&out[c..c + 3], &[160, 20, 40]);
    }

    #[test]
    fn blank_image_falls_back_to_the_whole_image() {
        let img = RgbImage::from_pixel(100, 80, image::Rgb([200, 200, 200]));
        let mut pp = Preprocessor::new(PreprocessConfig::default()).unwrap();
        let mut out = vec![0; pp.config().image_len()];
        assert_eq!(pp.process_rgb_into(&img, &mut out).unwrap(), None);
        assert!(out.iter().all(|&v| v == 200));
    }

    #[test]
    fn pad_keeps_aspect_with_white_borders() {
        let img = RgbImage::from_pixel(200, 100, image::Rgb([10, 20, 30]));
        let cfg = PreprocessConfig { size: 20, crop: None, fit: Fit::Pad, ..Default::default() };
        let mut pp = Preprocessor::new(cfg).unwrap();
        let mut out = vec![0; cfg.image_len()];
        pp.process_rgb_into(&img, &mut out).unwrap();
        assert_eq!(&out[0..3], &[255, 255, 255]); // top padding
        let mid = (10 * 20 + 10) * 3;
        assert_eq!(&out[mid..mid + 3], &[10, 20, 30]);
    }

    #[test]
    fn config_is_validated() {
        assert!(PreprocessConfig { size: 0, ..Default::default() }.validate().is_err());
        let c = GemCrop { margin: 2.0, ..Default::default() };
        assert!(PreprocessConfig { crop: Some(c), ..Default::default() }.validate().is_err());
    }
}
