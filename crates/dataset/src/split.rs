//! Stratified, seeded splits: in memory (indices) and on disk (folders).
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{copy_no_clobber, rename_no_clobber, same_content, write_atomic};
use crate::scan::{ImageFolder, file_name};

/// Named split fractions that sum to 1, such as train 0.9 / test 0.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRatios {
    parts: Vec<(String, f64)>,
}

impl SplitRatios {
    /// Named ratios; each in `[0, 1]`, summing to 1 (within 1e-6), names
    /// distinct and non-empty.
    pub fn new<S: Into<String>>(parts: impl IntoIterator<Item = (S, f64)>) -> Result<Self> {
        let parts: Vec<(String, f64)> = parts.into_iter().map(|(n, r)| (n.into(), r)).collect();
        let bad = |reason: String| Err(Error::InvalidRatios { reason });
        if parts.is_empty() {
            return bad("no splits given".into());
        }
        for (i, (n, r)) in parts.iter().enumerate() {
            if n.is_empty() || n.contains(['/', '\\']) || n.starts_with('.') {
                return bad(format!("split name {n:?} is not a plain folder name"));
            }
            if parts[..i].iter().any(|(m, _)| m == n) {
                return bad(format!("split {n:?} appears twice"));
            }
            if !(0.0..=1.0).contains(r) || !r.is_finite() {
                return bad(format!("ratio of {n:?} is {r}, not within 0..=1"));
            }
        }
        let sum: f64 = parts.iter().map(|p| p.1).sum();
        if (sum - 1.0).abs() > 1e-6 {
            return bad(format!("ratios sum to {sum}, not 1"));
        }
        Ok(Self { parts })
    }

    /// `train`/`test` (the tutorial's 0.9/0.1 split of its photo folder).
    pub fn train_test(train: f64) -> Result<Self> {
        Self::new([("train", train), ("test", 1.0 - train)])
    }

    /// `train`/`val` (the tutorial's 0.8/0.2 carving of a validation set).
    pub fn train_val(train: f64) -> Result<Self> {
        Self::new([("train", train), ("val", 1.0 - train)])
    }

    /// `train`/`val`/`test`.
    pub fn train_val_test(train: f64, val: f64, test: f64) -> Result<Self> {
        Self::new([("train", train), ("val", val), ("test", test)])
    }

    /// The split names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(|p| p.0.as_str())
    }

    /// The ratios, in order.
    pub fn ratios(&self) -> impl Iterator<Item = f64> + '_ {
        self.parts.iter().map(|p| p.1)
    }

    /// Number of splits.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Always false: a `SplitRatios` has at least one split.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// How many of `n` items go to each split: largest remainders, then at
    /// least one item for every split with a non-zero ratio when `n`
    /// allows. The flag is false when `n` is too small for that.
    pub fn allocate(&self, n: usize) -> (Vec<usize>, bool) {
        let exact: Vec<f64> = self.ratios().map(|r| r * n as f64).collect();
        let mut counts: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
        let mut rest = n - counts.iter().sum::<usize>();
        let mut order: Vec<usize> = (0..counts.len()).collect();
        // Largest fractional part first; ties to the earlier split.
        order.sort_by(|&a, &b| {
            let (fa, fb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
            fb.total_cmp(&fa).then(a.cmp(&b))
        });
        for &i in order.iter().cycle() {
            if rest == 0 {
                break;
            }
            counts[i] += 1;
            rest -= 1;
        }
        let needs: Vec<usize> = self.ratios().enumerate().filter(|(_, r)| *r > 0.0).map(|(i, _)| i).collect();
        let enough = n >= needs.len();
        if enough {
            for &i in &needs {
                if counts[i] == 0 {
                    let donor = (0..counts.len()).max_by_key(|&j| (counts[j], usize::MAX - j)).unwrap_or(0);
                    counts[donor] -= 1;
                    counts[i] += 1;
                }
            }
        }
        (counts, enough)
    }
}

/// What to do with a class too small to give every split a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmallClassPolicy {
    /// Fail with [`Error::ClassTooSmall`] (the default).
    #[default]
    Error,
    /// Split anyway (some split gets no file of that class) and report a
    /// warning.
    Warn,
}

/// Item indices per split, plus warnings about small classes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitIndices {
    /// For each split (in ratio order), indices into the labels given.
    pub splits: Vec<Vec<usize>>,
    /// One line per class that could not fill every split.
    pub warnings: Vec<String>,
}

/// Split item indices by class, each class shuffled with a generator seeded
/// from `(seed, class)`, so the same seed gives the same split and a class's
/// split does not depend on the other classes. Indices within a split are
/// sorted.
///
/// ```
/// use gemstones_dataset::{SmallClassPolicy, SplitRatios, stratified_split};
/// let labels = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1];
/// let s = stratified_split(&labels, &SplitRatios::train_val(0.8)?, 42, SmallClassPolicy::Error)?;
/// assert_eq!((s.splits[0].len(), s.splits[1].len()), (8, 2));
/// # Ok::<(), gemstones_dataset::Error>(())
/// ```
pub fn stratified_split(
    labels: &[usize],
    ratios: &SplitRatios,
    seed: u64,
    policy: SmallClassPolicy,
) -> Result<SplitIndices> {
    stratified_split_named(labels, ratios, seed, policy, &|c| format!("class {c}"))
}

fn stratified_split_named(
    labels: &[usize],
    ratios: &SplitRatios,
    seed: u64,
    policy: SmallClassPolicy,
    name: &dyn Fn(usize) -> String,
) -> Result<SplitIndices> {
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut by_class = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l].push(i);
    }
    let mut splits = vec![Vec::new(); ratios.len()];
    let mut warnings = Vec::new();
    for (class, mut items) in by_class.into_iter().enumerate() {
        if items.is_empty() {
            continue;
        }
        let (counts, enough) = ratios.allocate(items.len());
        if !enough {
            let needed = ratios.ratios().filter(|r| *r > 0.0).count();
            match policy {
                SmallClassPolicy::Error => {
                    return Err(Error::ClassTooSmall {
                        class: name(class),
                        files: items.len(),
                        splits: needed,
                    });
                }
                SmallClassPolicy::Warn => warnings.push(format!(
                    "{} has {} file(s), too few for {needed} non-empty splits",
                    name(class),
                    items.len()
                )),
            }
        }
        let mut rng = Pcg64Mcg::seed_from_u64(derive_seed(seed, class as u64));
        items.shuffle(&mut rng);
        let mut start = 0;
        for (s, c) in counts.into_iter().enumerate() {
            splits[s].extend_from_slice(&items[start..start + c]);
            start += c;
        }
    }
    for s in &mut splits {
        s.sort_unstable();
    }
    Ok(SplitIndices { splits, warnings })
}

/// A seed for stream `stream` of a generator seeded with `seed` (SplitMix64
/// of the two): independent, reproducible generators per class, per epoch,
/// per image, from one user seed.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How files reach the split folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// Copy (the default: the source folder stays as it was).
    #[default]
    Copy,
    /// Move (the source folder is emptied).
    Move,
    /// Hard-link (no extra space; same file system only).
    HardLink,
}

/// How [`split_folder`] splits a folder of class folders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// The splits and their ratios (default: the tutorial's train 0.9 /
    /// test 0.1).
    pub ratios: SplitRatios,
    /// Seed of the shuffle (default: the tutorial's 1337).
    pub seed: u64,
    /// Copy, move or hard-link.
    pub mode: TransferMode,
    /// Error or warning for classes too small for every split.
    pub small_class: SmallClassPolicy,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            ratios: SplitRatios { parts: vec![("train".into(), 0.9), ("test".into(), 0.1)] },
            seed: 1337,
            mode: TransferMode::Copy,
            small_class: SmallClassPolicy::Error,
        }
    }
}

/// What [`split_folder`] did; also written to `<out>/split.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitReport {
    /// The configuration used.
    pub config: SplitConfig,
    /// Source folder.
    pub source: PathBuf,
    /// Destination folder (holding one folder per split).
    pub out: PathBuf,
    /// For each split name, the files placed (relative to the split
    /// folder), by class.
    pub files: Vec<(String, Vec<PathBuf>)>,
    /// Files already present with the same content (a re-run), not copied.
    pub already_present: usize,
    /// Small-class warnings.
    pub warnings: Vec<String>,
}

/// Split a scanned folder into `<out>/<split>/<Class>/<file>`, stratified
/// and seeded. Every class folder is created in every split (even when
/// empty), and `<out>/classes.json` and `<out>/split.json` are written.
/// An existing destination file with the same content is left alone (so a
/// re-run completes an interrupted one); with other content it is an error
/// and nothing is overwritten.
pub fn split_folder(folder: &ImageFolder, out: impl AsRef<Path>, cfg: &SplitConfig) -> Result<SplitReport> {
    let out = out.as_ref();
    let labels: Vec<usize> = folder.files.iter().map(|f| f.class).collect();
    let names = folder.classes.names();
    let idx = stratified_split_named(&labels, &cfg.ratios, cfg.seed, cfg.small_class, &|c| {
        names.get(c).cloned().unwrap_or_default()
    })?;
    let mut report = SplitReport {
        config: cfg.clone(),
        source: folder.root.clone(),
        out: out.to_path_buf(),
        files: Vec::new(),
        already_present: 0,
        warnings: idx.warnings.clone(),
    };
    for (split, items) in cfg.ratios.names().zip(&idx.splits) {
        for class in names {
            let d = out.join(split).join(class);
            std::fs::create_dir_all(&d).at(&d)?;
        }
        let mut placed = Vec::with_capacity(items.len());
        for &i in items {
            let f = &folder.files[i];
            let rel = PathBuf::from(&names[f.class]).join(file_name(&f.path));
            let dst = out.join(split).join(&rel);
            if dst.exists() {
                if same_content(&f.path, &dst)? {
                    report.already_present += 1;
                    if cfg.mode == TransferMode::Move {
                        std::fs::remove_file(&f.path).at(&f.path)?;
                    }
                    placed.push(rel);
                    continue;
                }
                return Err(Error::WouldOverwrite { path: dst });
            }
            match cfg.mode {
                TransferMode::Copy => copy_no_clobber(&f.path, &dst)?,
                TransferMode::HardLink => std::fs::hard_link(&f.path, &dst).at(&dst)?,
                TransferMode::Move => match rename_no_clobber(&f.path, &dst) {
                    Err(Error::Io { .. }) => {
                        // Another file system: copy, then remove the source.
                        copy_no_clobber(&f.path, &dst)?;
                        std::fs::remove_file(&f.path).at(&f.path)?;
                    }
                    other => other?,
                },
            }
            placed.push(rel);
        }
        report.files.push((split.to_string(), placed));
    }
    folder.classes.save(out.join("classes.json"))?;
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|source| Error::Json { path: out.join("split.json"), source })?;
    write_atomic(&out.join("split.json"), &json)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_checked() {
        assert!(SplitRatios::new([("train", 0.9), ("test", 0.2)]).is_err());
        assert!(SplitRatios::new([("train", 1.1), ("test", -0.1)]).is_err());
        assert!(SplitRatios::new([("a", 0.5), ("a", 0.5)]).is_err());
        assert!(SplitRatios::new([("../x", 1.0)]).is_err());
        assert!(SplitRatios::train_val_test(0.7, 0.2, 0.1).is_ok());
    }

    #[test]
    fn allocation_uses_largest_remainders_and_fills_every_split() {
        let r = SplitRatios::train_test(0.9).unwrap();
        assert_eq!(r.allocate(31), (vec![28, 3], true));
        assert_eq!(r.allocate(45), (vec![41, 4], true)); // 40.5/4.5: tie to train
        assert_eq!(r.allocate(5), (vec![4, 1], true));
        assert_eq!(r.allocate(1), (vec![1, 0], false));
        let r3 = SplitRatios::train_val_test(0.8, 0.1, 0.1).unwrap();
        assert_eq!(r3.allocate(3), (vec![1, 1, 1], true));
        assert_eq!(r3.allocate(10), (vec![8, 1, 1], true));
    }

    #[test]
    fn same_seed_same_split_and_stratified() {
        let labels: Vec<usize> = (0..200).map(|i| i % 7).collect();
        let r = SplitRatios::train_val(0.8).unwrap();
        let a = stratified_split(&labels, &r, 1, SmallClassPolicy::Error).unwrap();
        let b = stratified_split(&labels, &r, 1, SmallClassPolicy::Error).unwrap();
        let c = stratified_split(&labels, &r, 2, SmallClassPolicy::Error).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        for class in 0..7 {
            let n = labels.iter().filter(|&&l| l == class).count();
            let val = a.splits[1].iter().filter(|&&i| labels[i] == class).count();
            assert_eq!(val, r.allocate(n).0[1]);
        }
        let mut all: Vec<usize> = a.splits.concat();
        all.sort_unstable();
        assert_eq!(all, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn small_class_policy() {
        let labels = [0, 0, 0, 1];
        let r = SplitRatios::train_test(0.5).unwrap();
        let e = stratified_split(&labels, &r, 0, SmallClassPolicy::Error).unwrap_err();
        assert!(matches!(e, Error::ClassTooSmall { files: 1, splits: 2, .. }), "{e}");
        let w = stratified_split(&labels, &r, 0, SmallClassPolicy::Warn).unwrap();
        assert_eq!(w.warnings.len(), 1);
        assert!(w.splits[0].contains(&3));
    }
}
