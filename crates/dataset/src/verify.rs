//! Verify every file of a folder by decoding it, and find duplicates.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use image::DynamicImage;

use crate::decode::{DecodeLimits, Problem, ProblemKind, decode_bytes};
use crate::error::Result as CrateResult;
use crate::grid::ImageGrid;
use crate::quality::{Quality, QualityFlag, QualityLimits};
use crate::scan::ImageFolder;
use crate::similar::{PerceptualHash, near_duplicate_groups};

/// A file that decoded as an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The file.
    pub path: PathBuf,
    /// Its class id.
    pub class: usize,
    /// The format found in its content (`jpg`, `png`, ...).
    pub format: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// BLAKE3 hash of the file's bytes, hex.
    pub hash: String,
    /// The file name's extension names another format than its content
    /// (a PNG named `.jpg`): harmless here, but worth knowing.
    pub extension_mismatch: bool,
    /// Perceptual hashes, for near-duplicates (computed from the same
    /// decode).
    #[serde(default)]
    pub perceptual: PerceptualHash,
    /// Quality measurements and flags (from the same decode).
    #[serde(default)]
    pub quality: Quality,
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Files that decoded, in scan order.
    pub images: Vec<ImageInfo>,
    /// Files that did not, with the reason, in scan order.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Problems counted by kind.
    pub fn problem_counts(&self) -> BTreeMap<ProblemKind, usize> {
        let mut m = BTreeMap::new();
        for p in &self.problems {
            *m.entry(p.kind).or_insert(0) += 1;
        }
        m
    }

    /// Images per quality flag.
    pub fn quality_counts(&self) -> BTreeMap<QualityFlag, usize> {
        let mut m = BTreeMap::new();
        for f in self.images.iter().flat_map(|i| &i.quality.flags) {
            *m.entry(*f).or_insert(0) += 1;
        }
        m
    }

    /// Groups of byte-identical files (two or more paths with one hash).
    pub fn duplicates(&self) -> Vec<DuplicateGroup> {
        find_duplicates(self.images.iter().map(|i| (i.hash.as_str(), "", &i.path)))
    }

    /// Groups of near-duplicate images (both perceptual hashes within
    /// `max_distance` bits, transitively; byte-identical copies included).
    pub fn near_duplicates(&self, max_distance: u32) -> Vec<NearDuplicateGroup> {
        cross_split_near_duplicates(&[("", self)], max_distance, false)
    }
}

/// Near-duplicate images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearDuplicateGroup {
    /// (split name, path) of each member, in input order; the split name is
    /// empty for a single folder.
    pub files: Vec<(String, PathBuf)>,
    /// The largest Hamming distance (on either hash) between the first
    /// member and another.
    pub max_distance: u32,
}

/// A contact sheet of near-duplicate groups: one row per group (its first
/// four photos side by side, captioned with folder/name and,
/// first, the group's distance), at most `max_groups` rows, as a PNG.
pub fn near_duplicate_sheet(
    groups: &[NearDuplicateGroup],
    max_groups: usize,
    path: &Path,
) -> CrateResult<()> {
    let mut grid = ImageGrid::new(128, SHEET_COLUMNS).title(format!(
        "{} near-duplicate groups{}",
        groups.len(),
        if groups.len() > max_groups { format!(" (first {max_groups})") } else { String::new() }
    ));
    let blank = image::RgbImage::from_pixel(128, 128, image::Rgb([255, 255, 255]));
    for g in groups.iter().take(max_groups) {
        for k in 0..SHEET_COLUMNS {
            let Some((split, file)) = g.files.get(k) else {
                grid.push(&blank, "");
                continue;
            };
            let photo = std::fs::read(file)
                .ok()
                .and_then(|b| decode_bytes(&b, file, &DecodeLimits::default()).ok())
                .map(|d| crate::decode::to_rgb_on_white(d.image))
                .unwrap_or_else(|| blank.clone());
            let name =
                |p: &Path| p.iter().rev().take(2).collect::<Vec<_>>().into_iter().rev().collect::<PathBuf>();
            let mut caption = name(file).display().to_string();
            if !split.is_empty() {
                caption = format!("{split}: {caption}");
            }
            if k == 0 {
                caption = format!("distance <= {}\n{caption}", g.max_distance);
            } else if k + 1 == SHEET_COLUMNS && g.files.len() > SHEET_COLUMNS {
                caption = format!("+{} more\n{caption}", g.files.len() - SHEET_COLUMNS);
            }
            grid.push(&photo, caption);
        }
    }
    grid.save_png(path)
}

/// Photos per row of [`near_duplicate_sheet`].
pub const SHEET_COLUMNS: usize = 4;

/// Near-duplicate groups across several verified folders; with
/// `leaks_only`, only groups spanning two or more of them (a test photo
/// with a near-copy in train).
pub fn cross_split_near_duplicates(
    splits: &[(&str, &VerifyReport)],
    max_distance: u32,
    leaks_only: bool,
) -> Vec<NearDuplicateGroup> {
    let items: Vec<(&str, &ImageInfo)> =
        splits.iter().flat_map(|(name, rep)| rep.images.iter().map(move |i| (*name, i))).collect();
    let hashes: Vec<PerceptualHash> = items.iter().map(|(_, i)| i.perceptual).collect();
    near_duplicate_groups(&hashes, max_distance)
        .into_iter()
        .filter(|g| !leaks_only || g.iter().any(|&m| items[m].0 != items[g[0]].0))
        .map(|g| NearDuplicateGroup {
            max_distance: g.iter().map(|&m| hashes[g[0]].distance(&hashes[m])).max().unwrap_or(0),
            files: g.iter().map(|&m| (items[m].0.to_string(), items[m].1.path.clone())).collect(),
        })
        .collect()
}

/// Files with identical content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateGroup {
    /// BLAKE3 hash shared by the files, hex.
    pub hash: String,
    /// Where each copy is: (split name, path), in input order. The split
    /// name is empty for a single folder.
    pub files: Vec<(String, PathBuf)>,
}

impl DuplicateGroup {
    /// Number of redundant copies (all but one).
    pub fn redundant(&self) -> usize {
        self.files.len().saturating_sub(1)
    }
}

fn find_duplicates<'a>(items: impl Iterator<Item = (&'a str, &'a str, &'a PathBuf)>) -> Vec<DuplicateGroup> {
    let mut by_hash: BTreeMap<&str, Vec<(String, PathBuf)>> = BTreeMap::new();
    for (hash, split, path) in items {
        by_hash.entry(hash).or_default().push((split.to_string(), path.clone()));
    }
    by_hash
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(h, files)| DuplicateGroup { hash: h.to_string(), files })
        .collect()
}

/// Content shared across splits (train/test leakage): every group holds
/// files from at least two different splits.
///
/// ```
/// # use gemstones_dataset::{VerifyReport, cross_split_duplicates};
/// let (train, test) = (VerifyReport::default(), VerifyReport::default());
/// let leaks = cross_split_duplicates(&[("train", &train), ("test", &test)]);
/// assert!(leaks.is_empty());
/// ```
pub fn cross_split_duplicates(splits: &[(&str, &VerifyReport)]) -> Vec<DuplicateGroup> {
    let items = splits
        .iter()
        .flat_map(|(name, rep)| rep.images.iter().map(move |i| (i.hash.as_str(), *name, &i.path)));
    find_duplicates(items).into_iter().filter(|g| g.files.iter().any(|(s, _)| *s != g.files[0].0)).collect()
}

/// What [`verify`] measures of each decoded photo besides its bytes: the
/// perceptual hashes and the quality flags, from one grey sample.
pub fn photo_health(image: &DynamicImage, limits: &QualityLimits) -> (PerceptualHash, Quality) {
    let grey_sample = crate::similar::grey(image);
    (PerceptualHash::of_grey(&grey_sample), Quality::of_grey(image, &grey_sample, limits))
}

/// Decode every file of a scanned folder (in parallel), hash it, and sort
/// the results into images and problems. Never stops at a bad file.
pub fn verify(folder: &ImageFolder, limits: &DecodeLimits) -> VerifyReport {
    let results: Vec<Result<ImageInfo, Problem>> = folder
        .files
        .par_iter()
        .map(|f| {
            let bytes = std::fs::read(&f.path).map_err(|e| Problem {
                path: f.path.clone(),
                kind: ProblemKind::Unreadable,
                detail: e.to_string(),
            })?;
            let d = decode_bytes(&bytes, &f.path, limits)?;
            let (perceptual, quality) = photo_health(&d.image, &QualityLimits::default());
            let ext = f.path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
            let ext_format = ext.as_deref().and_then(image::ImageFormat::from_extension);
            Ok(ImageInfo {
                path: f.path.clone(),
                class: f.class,
                format: d.format.to_string(),
                width: d.image.width(),
                height: d.image.height(),
                bytes: bytes.len() as u64,
                hash: blake3::hash(&bytes).to_hex().to_string(),
                extension_mismatch: ext_format.map(crate::decode::format_name) != Some(d.format),
                perceptual,
                quality,
            })
        })
        .collect();
    let mut report = VerifyReport::default();
    if folder.rename_pending {
        report.problems.push(Problem {
            path: crate::scan::journal_path(&folder.root),
            kind: ProblemKind::RenamePending,
            detail:
                "an interrupted rename holds some files in hidden temporaries (not verified); run rename \
                     --apply to finish it"
                    .into(),
        });
    }
    report.problems.extend(folder.unusable_names.iter().map(|path| Problem {
        path: path.clone(),
        kind: ProblemKind::NameNotUtf8,
        detail: "name is not valid UTF-8; skipped (rename it to use it)".into(),
    }));
    for r in results {
        match r {
            Ok(i) => report.images.push(i),
            Err(p) => report.problems.push(p),
        }
    }
    report
}
