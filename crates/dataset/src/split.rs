//! Stratified, seeded splits: in memory (indices) and on disk (folders).
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use crate::decode::DecodeLimits;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{
    copy_no_clobber, finish_interrupted_move, remove_stale_temporaries, rename_no_clobber, same_content,
    write_atomic,
};
use crate::outputs::Outputs;
use crate::scan::ImageFolder;
use crate::seed::{Stream, derive_seed, seed_for};
use crate::similar::{PerceptualHash, group_ids, near_duplicate_groups};

/// Named split fractions that sum to 1, such as train 0.9 / test 0.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRatios {
    parts: Vec<(String, f64)>,
}

impl SplitRatios {
    /// Named ratios; each above 0 and at most 1 (a split with no share
    /// would be an empty folder: leave it out instead), summing to 1
    /// (within 1e-6), names distinct and non-empty.
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
            if !(*r > 0.0 && *r <= 1.0) {
                return bad(format!(
                    "ratio of {n:?} is {r}: each split needs a share above 0 and at most 1 (leave an empty one out)"
                ));
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

    /// `fold-1` ... `fold-k`, each 1/k: the folds of k-fold
    /// cross-validation (2 to 100 folds).
    pub fn folds(k: usize) -> Result<Self> {
        if !(2..=100).contains(&k) {
            return Err(Error::InvalidRatios {
                reason: format!("{k} folds: cross-validation needs 2 to 100"),
            });
        }
        Self::new((1..=k).map(|i| (format!("fold-{i}"), 1.0 / k as f64)))
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
    /// Groups of two or more items (near-duplicates) placed whole on one
    /// side.
    #[serde(default)]
    pub groups_kept_together: usize,
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
    let alone: Vec<usize> = (0..labels.len()).collect();
    stratified_group_split(labels, &alone, ratios, seed, policy)
}

/// [`stratified_split`] that keeps every group whole: items with the same
/// `groups` id (near-duplicates, see [`crate::group_ids`]) land in one
/// split. A group counts for the class of its first item; each class's
/// groups are shuffled (seeded by `(seed, class)`) and placed in turn in
/// the first split they still fit in, else the one furthest below its
/// share, so class ratios stay as close as the groups allow. With every
/// item alone this is exactly [`stratified_split`].
pub fn stratified_group_split(
    labels: &[usize],
    groups: &[usize],
    ratios: &SplitRatios,
    seed: u64,
    policy: SmallClassPolicy,
) -> Result<SplitIndices> {
    stratified_group_split_named(labels, groups, ratios, seed, policy, false, &|c| format!("class {c}"))
}

/// The `folds` folds of k-fold cross-validation (`fold-1` ... `fold-k`):
/// [`stratified_group_split`] into equal shares, except that the folds a
/// class's leftover items go to rotate with the class, so the folds are as
/// large as each other (not the first ones larger in every class). Classes
/// too small for every fold are warned about.
pub fn stratified_group_folds(
    labels: &[usize],
    groups: &[usize],
    folds: usize,
    seed: u64,
) -> Result<SplitIndices> {
    let ratios = SplitRatios::folds(folds)?;
    stratified_group_split_named(labels, groups, &ratios, seed, SmallClassPolicy::Warn, true, &|c| {
        format!("class {c}")
    })
}

fn stratified_group_split_named(
    labels: &[usize],
    groups: &[usize],
    ratios: &SplitRatios,
    seed: u64,
    policy: SmallClassPolicy,
    rotate_leftovers: bool,
    name: &dyn Fn(usize) -> String,
) -> Result<SplitIndices> {
    if groups.len() != labels.len() {
        return Err(Error::InvalidConfig {
            reason: format!("{} group ids for {} labels", groups.len(), labels.len()),
        });
    }
    // Each group's members, ascending; a group belongs to its first item's class.
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, &g) in groups.iter().enumerate() {
        members.entry(g).or_default().push(i);
    }
    let mut units: Vec<Vec<usize>> = members.into_values().collect();
    units.sort_unstable_by_key(|m| m[0]);
    let groups_kept_together = units.iter().filter(|m| m.len() > 1).count();
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut by_class: Vec<Vec<&Vec<usize>>> = vec![Vec::new(); classes];
    for unit in &units {
        by_class[labels[unit[0]]].push(unit);
    }
    let mut splits = vec![Vec::new(); ratios.len()];
    let mut warnings = Vec::new();
    let needed = ratios.ratios().filter(|r| *r > 0.0).count();
    for (class, mut class_units) in by_class.into_iter().enumerate() {
        if class_units.is_empty() {
            continue;
        }
        let items: usize = class_units.iter().map(|u| u.len()).sum();
        let (mut counts, enough) = ratios.allocate(items);
        if rotate_leftovers {
            // Equal shares: any rotation of the counts is as exact.
            let turns = class % counts.len();
            counts.rotate_right(turns);
        }
        if !enough || class_units.len() < needed {
            match policy {
                SmallClassPolicy::Error => {
                    return Err(Error::ClassTooSmall { class: name(class), files: items, splits: needed });
                }
                SmallClassPolicy::Warn => warnings.push(format!(
                    "{} has {items} file(s) in {} group(s), too few for {needed} non-empty splits",
                    name(class),
                    class_units.len()
                )),
            }
        }
        let mut rng = Pcg64Mcg::seed_from_u64(seed_for(seed, Stream::SplitClass, class as u64));
        class_units.shuffle(&mut rng);
        let mut filled = vec![0usize; counts.len()];
        for unit in class_units {
            let split =
                (0..counts.len()).find(|&s| filled[s] + unit.len() <= counts[s]).unwrap_or_else(|| {
                    (0..counts.len())
                        .max_by_key(|&s| (counts[s] as isize - filled[s] as isize, usize::MAX - s))
                        .unwrap_or(0)
                });
            filled[split] += unit.len();
            splits[split].extend_from_slice(unit);
        }
    }
    for s in &mut splits {
        s.sort_unstable();
    }
    Ok(SplitIndices { splits, warnings, groups_kept_together })
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
    /// Keep near-duplicate photos (both perceptual hashes within this many
    /// bits, see [`crate::near_duplicate_groups`]) on one side; `None`
    /// splits photo by photo (the tutorial's way, which lets a photo and
    /// its copy land in train and test).
    #[serde(default = "default_near_duplicates")]
    pub near_duplicates: Option<u32>,
    /// Place only one photo of each near-duplicate group: the one with the
    /// most pixels (ties: the first in scan order, class then natural name
    /// order). The others stay where they are, in the source, and are
    /// listed in [`SplitReport::dropped`]. Off by default.
    #[serde(default)]
    pub drop_near_duplicates: bool,
}

fn default_near_duplicates() -> Option<u32> {
    Some(crate::similar::DEFAULT_MAX_DISTANCE)
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            ratios: SplitRatios { parts: vec![("train".into(), 0.9), ("test".into(), 0.1)] },
            seed: 1337,
            mode: TransferMode::Copy,
            small_class: SmallClassPolicy::Error,
            near_duplicates: default_near_duplicates(),
            drop_near_duplicates: false,
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
    /// folder, `<Class>/<file>`; the source file is `<source>/<Class>/<file>`).
    pub files: Vec<(String, Vec<PathBuf>)>,
    /// Files already present with the same content (a re-run), not copied.
    pub already_present: usize,
    /// Small-class warnings.
    pub warnings: Vec<String>,
    /// Near-duplicate groups (two or more photos) kept on one side.
    #[serde(default)]
    pub groups_kept_together: usize,
    /// Photos left out because a larger near-duplicate was placed
    /// ([`SplitConfig::drop_near_duplicates`]), relative to the source.
    #[serde(default)]
    pub dropped: Vec<PathBuf>,
    /// Files that do not decode as images (known when near-duplicates are
    /// grouped, the default), relative to the source: split as they are,
    /// like any file of the folder, and named so a person can look (`verify`
    /// says why each fails).
    #[serde(default)]
    pub unreadable: Vec<PathBuf>,
    /// Whether every file was placed. `split.json` is written with `false`
    /// before the first file is placed (the plan a re-run finishes) and
    /// with `true` at the end.
    #[serde(default = "complete_by_default")]
    pub complete: bool,
}

fn complete_by_default() -> bool {
    true
}

const SPLIT_RECORD: &str = "split.json";

/// Split a scanned folder into `<out>/<split>/<Class>/<file>`, stratified
/// and seeded. Every class folder is created in every split (even when
/// empty), and `<out>/classes.json` and `<out>/split.json` are written.
///
/// `out` must not exist, be empty, or hold a split made by this function
/// from the same source with the same configuration: then the recorded
/// plan is finished (after an interruption, in any mode) or found complete
/// (a re-run changes nothing). Any other output folder is refused before
/// anything is written, so two splits never mix; so are outputs inside the
/// source and sources inside the output. An existing destination file with
/// other content is an error and is never overwritten.
pub fn split_folder(folder: &ImageFolder, out: impl AsRef<Path>, cfg: &SplitConfig) -> Result<SplitReport> {
    let out = out.as_ref();
    folder.require_no_pending_rename()?;
    refuse_nested(&folder.root, out)?;
    let mut report = match read_record(out)? {
        Some(recorded) => continue_recorded(recorded, folder, out, cfg)?,
        None => start_split(out, plan_split(folder, out, cfg)?)?,
    };
    prepare_output(folder, out, &report)?;
    report.already_present = place_files(&report)?;
    report.complete = true;
    write_record(out, &report)?;
    Ok(report)
}

/// The split of `folder` into `out`, as a record not yet carried out.
fn plan_split(folder: &ImageFolder, out: &Path, cfg: &SplitConfig) -> Result<SplitReport> {
    let n = folder.files.len();
    let near_groups = match cfg.near_duplicates {
        Some(d) => {
            let measured = measure_photos(folder);
            let hashes: Vec<PerceptualHash> = measured.iter().map(|m| m.0).collect();
            let groups = near_duplicate_groups(&hashes, d);
            Some((groups, measured))
        }
        None => None,
    };
    // The photos that take part, and their group ids.
    let mut dropped_idx = Vec::new();
    let groups = match &near_groups {
        Some((groups, measured)) => {
            if cfg.drop_near_duplicates {
                for g in groups {
                    // Most pixels; ties to the first (groups are ascending).
                    let keep = g.iter().copied().rev().max_by_key(|&i| measured[i].1).unwrap_or(g[0]);
                    dropped_idx.extend(g.iter().copied().filter(|&i| i != keep));
                }
            }
            group_ids(n, groups)
        }
        None => (0..n).collect(),
    };
    dropped_idx.sort_unstable();
    let items: Vec<usize> = (0..n).filter(|i| dropped_idx.binary_search(i).is_err()).collect();
    let labels: Vec<usize> = items.iter().map(|&i| folder.files[i].class).collect();
    let item_groups: Vec<usize> = items.iter().map(|&i| groups[i]).collect();
    let names = folder.classes.names();
    let idx = stratified_group_split_named(
        &labels,
        &item_groups,
        &cfg.ratios,
        cfg.seed,
        cfg.small_class,
        false,
        &|c| names.get(c).cloned().unwrap_or_default(),
    )?;
    let relative = |i: usize| {
        let f = &folder.files[i];
        PathBuf::from(&names[f.class]).join(f.path.file_name().unwrap_or_default())
    };
    let files = cfg
        .ratios
        .names()
        .zip(&idx.splits)
        .map(|(split, part)| (split.to_string(), part.iter().map(|&k| relative(items[k])).collect()))
        .collect();
    Ok(SplitReport {
        config: cfg.clone(),
        source: folder.root.clone(),
        out: out.to_path_buf(),
        files,
        already_present: 0,
        warnings: idx.warnings,
        groups_kept_together: idx.groups_kept_together,
        dropped: dropped_idx.iter().map(|&i| relative(i)).collect(),
        unreadable: near_groups
            .iter()
            .flat_map(|(_, measured)| measured.iter().enumerate())
            .filter(|(_, (_, pixels))| *pixels == 0)
            .map(|(i, _)| relative(i))
            .collect(),
        complete: false,
    })
}

/// The perceptual hash and pixel count of every file of `folder` (decoded
/// in parallel; a file that does not decode gets a hash of its own, unlike
/// any photo's, and 0 pixels).
fn measure_photos(folder: &ImageFolder) -> Vec<(PerceptualHash, u64)> {
    use rayon::prelude::*;
    folder
        .files
        .par_iter()
        .enumerate()
        .map(|(i, f)| {
            let decoded = std::fs::read(&f.path).ok().and_then(|bytes| {
                crate::decode::decode_bytes(&bytes, &f.path, &DecodeLimits::default()).ok()
            });
            match decoded {
                Some(d) => (PerceptualHash::of(&d.image), d.image.width() as u64 * d.image.height() as u64),
                // Distinct, and far from each other: no group.
                None => {
                    (PerceptualHash { phash: derive_seed(i as u64, 1), dhash: derive_seed(i as u64, 2) }, 0)
                }
            }
        })
        .collect()
}

/// A new split: `out` must be absent or empty (but for temporaries of a
/// run that died before writing its record); the plan is recorded before
/// anything else is written.
fn start_split(out: &Path, plan: SplitReport) -> Result<SplitReport> {
    let foreign = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .find(|name| !name.to_string_lossy().starts_with(&format!(".{SPLIT_RECORD}.partial-")));
    if let Some(name) = foreign {
        return Err(Error::SplitOutput {
            path: out.to_path_buf(),
            reason: format!(
                "not empty (holds {name:?}) and holds no split record; choose a new or empty folder"
            ),
        });
    }
    write_record(out, &plan)?;
    Ok(plan)
}

/// Every split's class folders, and the class index.
fn prepare_output(folder: &ImageFolder, out: &Path, plan: &SplitReport) -> Result<()> {
    for (split, _) in &plan.files {
        for class in folder.classes.names() {
            let d = out.join(split).join(class);
            std::fs::create_dir_all(&d).at(&d)?;
        }
    }
    folder.classes.save(out.join("classes.json"))
}

/// A split's settings as a person reads them: "seed 1337, train 0.9 / test
/// 0.1, copy, near-duplicates within 4 bits kept together".
fn describe_settings(cfg: &SplitConfig) -> String {
    let ratios: Vec<String> = cfg.ratios.parts.iter().map(|(name, r)| format!("{name} {r}")).collect();
    let mode = match cfg.mode {
        TransferMode::Copy => "copy",
        TransferMode::Move => "move",
        TransferMode::HardLink => "hard link",
    };
    let groups = match (cfg.near_duplicates, cfg.drop_near_duplicates) {
        (Some(d), false) => format!("near-duplicates within {d} bits kept together"),
        (Some(d), true) => format!("near-duplicates within {d} bits dropped"),
        (None, _) => "photo by photo".to_string(),
    };
    let small = match cfg.small_class {
        SmallClassPolicy::Error => "small classes refused",
        SmallClassPolicy::Warn => "small classes allowed",
    };
    format!("seed {}, {}, {mode}, {groups}, {small}", cfg.seed, ratios.join(" / "))
}

/// A re-run into a folder that holds a split record: the same source and
/// configuration finish (or re-check) the recorded plan; anything else is
/// refused, naming what differs. The recorded plan is kept, not made
/// again: after an interrupted move the source holds only the rest.
fn continue_recorded(
    recorded: SplitReport,
    folder: &ImageFolder,
    out: &Path,
    cfg: &SplitConfig,
) -> Result<SplitReport> {
    let refuse = |reason: String| Err(Error::SplitOutput { path: out.to_path_buf(), reason });
    if !same_settings(&recorded.config, cfg) {
        return refuse(format!(
            "holds a split made with other settings ({}); this run asks for {}: choose a new or empty folder",
            describe_settings(&recorded.config),
            describe_settings(cfg)
        ));
    }
    if !same_folder(&recorded.source, &folder.root) {
        return refuse(format!(
            "holds a split of {}, not of {}: choose a new or empty folder",
            recorded.source.display(),
            folder.root.display()
        ));
    }
    let recorded_files: HashSet<&PathBuf> =
        recorded.files.iter().flat_map(|(_, f)| f).chain(&recorded.dropped).collect();
    let names = folder.classes.names();
    if let Some(extra) = folder.files.iter().find(|f| {
        !recorded_files.contains(&PathBuf::from(&names[f.class]).join(f.path.file_name().unwrap_or_default()))
    }) {
        return refuse(format!(
            "holds a split of {} made before {} was added: split into a new folder to include new files",
            recorded.source.display(),
            extra.path.display()
        ));
    }
    for (split, _) in &recorded.files {
        remove_stale_temporaries(&out.join(split))?;
    }
    Ok(SplitReport { out: out.to_path_buf(), source: folder.root.clone(), ..recorded })
}

/// Place every planned file that is not yet in place; returns how many
/// already were (same content, or moved by an interrupted run).
fn place_files(plan: &SplitReport) -> Result<usize> {
    let mut already_present = 0;
    for (split, files) in &plan.files {
        for rel in files {
            let (src, dst) = (plan.source.join(rel), plan.out.join(split).join(rel));
            fail::fail_point!("split::place-file");
            if place_file(&src, &dst, plan.config.mode)? == Placed::AlreadyThere {
                already_present += 1;
            }
        }
    }
    Ok(already_present)
}

#[derive(PartialEq)]
enum Placed {
    Now,
    AlreadyThere,
}

fn place_file(src: &Path, dst: &Path, mode: TransferMode) -> Result<Placed> {
    if dst.symlink_metadata().is_ok() {
        if src.symlink_metadata().is_err() {
            return Ok(Placed::AlreadyThere); // moved by an interrupted run
        }
        if mode == TransferMode::Move && finish_interrupted_move(src, dst)? {
            return Ok(Placed::AlreadyThere);
        }
        if !same_content(src, dst)? {
            return Err(Error::WouldOverwrite { path: dst.to_path_buf() });
        }
        if mode == TransferMode::Move {
            std::fs::remove_file(src).at(src)?;
        }
        return Ok(Placed::AlreadyThere);
    }
    if src.symlink_metadata().is_err() {
        return Err(Error::SplitOutput {
            path: src.to_path_buf(),
            reason: "a planned file vanished from the source before it was placed".into(),
        });
    }
    match mode {
        TransferMode::Copy => copy_no_clobber(src, dst)?,
        TransferMode::HardLink => std::fs::hard_link(src, dst).at(dst)?,
        TransferMode::Move => match rename_no_clobber(src, dst) {
            Err(Error::Io { .. }) => {
                // Another file system: copy, then remove the source.
                copy_no_clobber(src, dst)?;
                std::fs::remove_file(src).at(src)?;
            }
            other => other?,
        },
    }
    Ok(Placed::Now)
}

fn read_record(out: &Path) -> Result<Option<SplitReport>> {
    let path = out.join(SPLIT_RECORD);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|source| Error::Json { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(path),
    }
}

fn write_record(out: &Path, report: &SplitReport) -> Result<()> {
    let path = out.join(SPLIT_RECORD);
    let json =
        serde_json::to_vec_pretty(report).map_err(|source| Error::Json { path: path.clone(), source })?;
    write_atomic(&path, &json)
}

/// `path` as the kernel resolves it (links, `..`), or as given when even
/// its existing part cannot be resolved.
fn resolved(path: &Path) -> PathBuf {
    crate::outputs::resolve(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Equal configurations, ratios compared to round-off (JSON does not
/// bring every float back bit for bit).
fn same_settings(a: &SplitConfig, b: &SplitConfig) -> bool {
    let same_ratios = a.ratios.len() == b.ratios.len()
        && a.ratios.parts.iter().zip(&b.ratios.parts).all(|((n, r), (m, q))| n == m && (r - q).abs() < 1e-12);
    same_ratios
        && a.seed == b.seed
        && a.mode == b.mode
        && a.small_class == b.small_class
        && a.near_duplicates == b.near_duplicates
        && a.drop_near_duplicates == b.drop_near_duplicates
}

fn same_folder(a: &Path, b: &Path) -> bool {
    resolved(a) == resolved(b)
}

/// Refuse an output inside the source (a re-scan would take the split
/// folders for classes, and a move would chase its own files) or a source
/// inside the output: the output rule's [`Outputs::check_apart`].
fn refuse_nested(source: &Path, out: &Path) -> Result<()> {
    Outputs::reading([source])?.check_apart(out, true)
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Random labels and random groupings: no group on two sides, every
        /// item in exactly one split, and without groups the plain split.
        #[test]
        fn a_group_never_spans_two_splits(
            items in proptest::collection::vec((0usize..4, 0usize..12), 4..80),
            seed in proptest::prelude::any::<u64>(),
            train in 0.5f64..0.95,
        ) {
            let labels: Vec<usize> = items.iter().map(|i| i.0).collect();
            let groups: Vec<usize> = items.iter().map(|i| i.1).collect();
            let r = SplitRatios::train_test(train).unwrap();
            let s = stratified_group_split(&labels, &groups, &r, seed, SmallClassPolicy::Warn).unwrap();
            let side_of = |i: usize| s.splits.iter().position(|part| part.contains(&i)).unwrap();
            for a in 0..labels.len() {
                for b in a + 1..labels.len() {
                    if groups[a] == groups[b] {
                        proptest::prop_assert_eq!(side_of(a), side_of(b));
                    }
                }
            }
            let mut all: Vec<usize> = s.splits.concat();
            all.sort_unstable();
            proptest::prop_assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
            let alone: Vec<usize> = (0..labels.len()).collect();
            proptest::prop_assert_eq!(
                stratified_group_split(&labels, &alone, &r, seed, SmallClassPolicy::Warn).unwrap(),
                stratified_split(&labels, &r, seed, SmallClassPolicy::Warn).unwrap()
            );
        }
    }

    #[test]
    fn groups_are_kept_whole_and_ratios_stay_close() {
        // 40 items of one class in 10 pairs and 20 singletons, 25 % test.
        let labels = vec![0; 40];
        let groups: Vec<usize> = (0..40).map(|i| if i < 20 { i / 2 } else { i }).collect();
        let r = SplitRatios::train_test(0.75).unwrap();
        let s = stratified_group_split(&labels, &groups, &r, 9, SmallClassPolicy::Error).unwrap();
        assert_eq!(s.groups_kept_together, 10);
        assert_eq!(s.splits[1].len(), 10);
        for pair in 0..10 {
            let (a, b) = (2 * pair, 2 * pair + 1);
            assert_eq!(s.splits[1].contains(&a), s.splits[1].contains(&b));
        }
    }

    #[test]
    fn folds_cover_every_item_once_keep_groups_whole_and_are_balanced() {
        // 12 classes of 33 items (33 = 5 x 6 + 3: three leftovers each),
        // items 3k and 3k+1 near-duplicates.
        let labels: Vec<usize> = (0..12 * 33).map(|i| i / 33).collect();
        let groups: Vec<usize> = (0..labels.len()).map(|i| if i % 3 == 2 { i } else { i - i % 3 }).collect();
        let f = stratified_group_folds(&labels, &groups, 5, 7).unwrap();
        assert_eq!(f.splits.len(), 5);
        let mut all: Vec<usize> = f.splits.concat();
        all.sort_unstable();
        assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
        let fold_of = |i: usize| f.splits.iter().position(|s| s.contains(&i)).unwrap();
        for i in (0..labels.len()).step_by(3) {
            assert_eq!(fold_of(i), fold_of(i + 1), "a near-duplicate pair spans two folds");
        }
        // Stratified: every class has 6 or 7 items in every fold, give or
        // take the pairs; the leftovers rotate, so fold sizes stay within 4.
        for fold in &f.splits {
            for class in 0..12 {
                let n = fold.iter().filter(|&&i| labels[i] == class).count();
                assert!((5..=8).contains(&n), "class {class}: {n} items in a fold");
            }
        }
        let sizes: Vec<usize> = f.splits.iter().map(Vec::len).collect();
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(max - min <= 4, "fold sizes {sizes:?}");
        assert_eq!(f, stratified_group_folds(&labels, &groups, 5, 7).unwrap());
        assert_ne!(f, stratified_group_folds(&labels, &groups, 5, 8).unwrap());
        assert!(stratified_group_folds(&labels, &groups, 1, 7).is_err());
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
