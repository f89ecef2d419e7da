//! One binary file holding a preprocessed dataset, rebuilt when stale.
//!
//! Layout (little-endian): the 8-byte magic `GEMCACHE`, a `u32` format
//! version, a `u64` header length, the header as JSON (class index, size,
//! file list, crop boxes, skipped files, preprocessing config, and the
//! fingerprint of the sources), then `count` labels as `u32`, then the
//! pixels, `count * size * size * 3` bytes. It is written atomically and
//! read back with two reads (header, then everything else).
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::class_index::ClassIndex;
use crate::decode::Problem;
use crate::error::{Error, IoContext, Result};
use crate::preprocess::{CropBox, ImageSet, PreprocessConfig, Preprocessed, preprocess_folder};
use crate::scan::ImageFolder;
use crate::similar::PerceptualHash;
use crate::stop::StopFlag;

/// The first bytes of every cache file.
pub(crate) const MAGIC: &[u8; 8] = b"GEMCACHE";
/// Version of the cache layout; a file of another version is rebuilt.
pub const CACHE_VERSION: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
struct CacheHeader {
    classes: Vec<String>,
    size: u32,
    count: usize,
    config: PreprocessConfig,
    fingerprint: String,
    root: PathBuf,
    files: Vec<PathBuf>,
    crops: Vec<Option<CropBox>>,
    /// Perceptual hash of each source photo (version 2).
    hashes: Vec<PerceptualHash>,
    problems: Vec<Problem>,
}

/// The fingerprint of a folder's files and a preprocessing configuration:
/// BLAKE3 over the cache version, the configuration, and every file's
/// relative path, class and content hash. Any change to one of them gives
/// another fingerprint.
pub fn fingerprint(folder: &ImageFolder, cfg: &PreprocessConfig) -> Result<String> {
    let hashes: Vec<Result<blake3::Hash>> = folder
        .files
        .par_iter()
        .map(|f| {
            let mut h = blake3::Hasher::new();
            let mut file = std::fs::File::open(&f.path).at(&f.path)?;
            h.update_reader(&mut file).at(&f.path)?;
            Ok(h.finalize())
        })
        .collect();
    let mut h = blake3::Hasher::new();
    h.update(&CACHE_VERSION.to_le_bytes());
    let cfg_json =
        serde_json::to_vec(cfg).map_err(|source| Error::Json { path: PathBuf::from("<config>"), source })?;
    h.update(&cfg_json);
    for (f, hash) in folder.files.iter().zip(hashes) {
        let rel = f.path.strip_prefix(&folder.root).unwrap_or(&f.path);
        h.update(rel.to_string_lossy().as_bytes());
        h.update(&[0]);
        h.update(folder.classes.name(f.class).unwrap_or_default().as_bytes());
        h.update(&[0]);
        h.update(hash?.as_bytes());
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Write a preprocessed set to a cache file (atomically).
pub fn save_cache(path: &Path, pre: &Preprocessed, cfg: &PreprocessConfig, fingerprint: &str) -> Result<()> {
    let set = &pre.set;
    let header = CacheHeader {
        classes: set.classes.names().to_vec(),
        size: set.size,
        count: set.len(),
        config: *cfg,
        fingerprint: fingerprint.to_string(),
        root: set.root.clone(),
        files: set.files.clone(),
        crops: set.crops.clone(),
        hashes: set.hashes.clone(),
        problems: pre.problems.clone(),
    };
    let json =
        serde_json::to_vec(&header).map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
    crate::fsutil::write_atomic_with(path, |f| {
        f.write_all(MAGIC)?;
        f.write_all(&CACHE_VERSION.to_le_bytes())?;
        f.write_all(&(json.len() as u64).to_le_bytes())?;
        f.write_all(&json)?;
        let labels: Vec<u8> = set.labels.iter().flat_map(|l| l.to_le_bytes()).collect();
        f.write_all(&labels)?;
        f.write_all(set.pixels())
    })
}

/// A cache read back from disk.
#[derive(Debug, Clone)]
pub struct CachedSet {
    /// The images and the files skipped when it was built.
    pub preprocessed: Preprocessed,
    /// The configuration it was built with.
    pub config: PreprocessConfig,
    /// The fingerprint of its sources (see [`fingerprint`]).
    pub fingerprint: String,
}

/// Read a cache file written by [`save_cache`].
pub fn load_cache(path: &Path) -> Result<CachedSet> {
    let bad = |reason: String| Error::BadCache { path: path.to_path_buf(), reason };
    let mut f = std::fs::File::open(path).at(path)?;
    let file_len = f.metadata().at(path)?.len();
    let mut head = [0u8; 20];
    f.read_exact(&mut head).map_err(|_| bad("shorter than its header".into()))?;
    if &head[..8] != MAGIC {
        return Err(bad("not a gemstones cache (bad magic)".into()));
    }
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if version != CACHE_VERSION {
        return Err(bad(format!("layout version {version}, expected {CACHE_VERSION}")));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&head[12..20]);
    let json_len = u64::from_le_bytes(len8);
    if json_len > file_len {
        return Err(bad("header length beyond the end of the file".into()));
    }
    let mut json = vec![0u8; json_len as usize];
    f.read_exact(&mut json).map_err(|_| bad("truncated header".into()))?;
    let h: CacheHeader =
        serde_json::from_slice(&json).map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
    // Checked: a crafted header must not overflow the arithmetic.
    let img_len = u64::from(h.size).checked_mul(u64::from(h.size)).and_then(|p| p.checked_mul(3));
    let expected = img_len
        .and_then(|img| (h.count as u64).checked_mul(img.checked_add(4)?))
        .and_then(|body| body.checked_add(20 + json_len));
    let Some(expected) = expected else {
        return Err(bad(format!("{} images of {}x{} cannot be in a file", h.count, h.size, h.size)));
    };
    // Both fit in memory-sized numbers once they match the file's length.
    let img_len = img_len.unwrap_or_default() as usize;
    if file_len != expected
        || h.files.len() != h.count
        || h.crops.len() != h.count
        || h.hashes.len() != h.count
    {
        return Err(bad(format!("{file_len} bytes, expected {expected} for {} images", h.count)));
    }
    let mut labels_raw = vec![0u8; h.count * 4];
    f.read_exact(&mut labels_raw).at(path)?;
    let labels: Vec<u32> =
        labels_raw.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let mut pixels = crate::fsutil::big_zeroed(h.count * img_len);
    f.read_exact(&mut pixels).at(path)?;
    let classes = ClassIndex::from_ordered(h.classes).map_err(|e| bad(e.to_string()))?;
    let mut set = ImageSet::from_cache(classes, h.size, labels, h.files, h.root, h.hashes, pixels)
        .map_err(|e| bad(e.to_string()))?;
    set.crops = h.crops;
    Ok(CachedSet {
        preprocessed: Preprocessed { set, problems: h.problems },
        config: h.config,
        fingerprint: h.fingerprint,
    })
}

/// Whether [`load_or_build`] read the cache or rebuilt it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheOutcome {
    /// The cache was current and was loaded.
    Loaded,
    /// There was no cache; it was built.
    Built,
    /// The cache was stale (other files or configuration) or unreadable,
    /// and was rebuilt. The reason is given.
    Rebuilt(
        /// Why.
        String,
    ),
}

/// Whether class folders without any file become classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyClasses {
    /// Leave them out, with a warning naming them (the default).
    LeaveOut,
    /// Keep them (a model whose class list must match another's).
    Keep,
}

/// Scan a folder of class folders and [`load_or_build`] its cache: what
/// `train`, `evaluate` and the workflow do with a folder of photographs.
/// A folder without any class folder (with files, unless `empty` keeps
/// empty ones) is [`Error::NoClasses`]; one whose class folders are all
/// empty is [`Error::AllClassesEmpty`].
/// Logs a warning naming the files and class folders it leaves out, and
/// draws a progress bar while building only when `progress` asks for one.
pub fn prepare_folder(
    dir: &Path,
    cfg: &PreprocessConfig,
    cache: &Path,
    empty: EmptyClasses,
    progress: bool,
    stop: &StopFlag,
) -> Result<(Preprocessed, CacheOutcome)> {
    let mut scanned = crate::scan::scan(dir)?;
    for name in &scanned.unusable_names {
        tracing::warn!("skipped {}: its name is not valid UTF-8 (rename it to use it)", name.display());
    }
    if let Some(note) = scanned.hidden_note() {
        tracing::warn!("{note}");
    }
    if !scanned.classes.is_empty() && scanned.empty_classes.len() == scanned.classes.len() {
        return Err(Error::AllClassesEmpty { path: dir.to_path_buf(), count: scanned.classes.len() });
    }
    if !scanned.empty_classes.is_empty() {
        tracing::warn!(
            "{} class folder(s) without files {}: {}",
            scanned.empty_classes.len(),
            if empty == EmptyClasses::Keep { "kept as classes" } else { "left out" },
            scanned.empty_classes.join(", ")
        );
        if empty == EmptyClasses::LeaveOut {
            scanned = scanned.without_empty_classes()?;
        }
    }
    if scanned.classes.is_empty() {
        return Err(Error::NoClasses { path: dir.to_path_buf() });
    }
    let bar = crate::progress::progress_bar(scanned.files.len() as u64, "images preprocessed", progress);
    let out = load_or_build(&scanned, cfg, cache, &|n| bar.inc(n), stop);
    bar.finish_and_clear();
    out
}

/// Load `cache` if it was built from exactly these files with this
/// configuration; otherwise preprocess the folder and write the cache.
pub fn load_or_build(
    folder: &ImageFolder,
    cfg: &PreprocessConfig,
    cache: &Path,
    progress: &(dyn Fn(u64) + Sync),
    stop: &StopFlag,
) -> Result<(Preprocessed, CacheOutcome)> {
    folder.require_no_pending_rename()?;
    let fp = fingerprint(folder, cfg)?;
    let outcome = if cache.exists() {
        match load_cache(cache) {
            Ok(c) if c.fingerprint == fp => return Ok((c.preprocessed, CacheOutcome::Loaded)),
            Ok(_) => CacheOutcome::Rebuilt("source files or configuration changed".into()),
            Err(e) => CacheOutcome::Rebuilt(e.to_string()),
        }
    } else {
        CacheOutcome::Built
    };
    let pre = preprocess_folder(folder, cfg, progress, stop)?;
    if pre.set.is_empty() {
        return Err(Error::NoImages { path: folder.root.clone() });
    }
    save_cache(cache, &pre, cfg, &fp)?;
    Ok((pre, outcome))
}
