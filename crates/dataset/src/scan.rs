//! Scan `root/<Class Name>/*` into a class index and a list of files.
use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::class_index::ClassIndex;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{is_hidden, is_own_file};

const JOURNAL: &str = ".gemstones-rename.json";

/// Where the journal of an unfinished rename (`rename`) lives: a scan
/// reports a folder that holds one.
pub fn journal_path(root: &Path) -> PathBuf {
    root.join(JOURNAL)
}

/// One file of a class folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Full path of the file.
    pub path: PathBuf,
    /// Class id in the folder's [`ClassIndex`].
    pub class: usize,
}

/// The result of [`scan`]: classes, their files, and what did not fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageFolder {
    /// The folder scanned.
    pub root: PathBuf,
    /// The class folders' names, sorted.
    pub classes: ClassIndex,
    /// Every visible regular file inside a class folder, by class and then
    /// file name (natural order: `x_2` before `x_10`). Not yet checked to be
    /// images: see [`crate::verify`].
    pub files: Vec<FileEntry>,
    /// Class folders with no files.
    pub empty_classes: Vec<String>,
    /// Files directly in the root (belonging to no class), and folders
    /// nested inside class folders: both ignored.
    pub ignored: Vec<PathBuf>,
    /// Class folders and files whose names are not valid UTF-8, skipped
    /// (class names and the tutorial's file names are text; rename them to
    /// use them). Shown with invalid bytes as U+FFFD.
    #[serde(default)]
    pub unusable_names: Vec<PathBuf>,
    /// Files and folders whose names start with a dot (`.DS_Store`,
    /// `._x.jpg`, `..jpg`), left out as hidden and listed here so that every
    /// tool can say so (the workspace's own temporaries are not listed).
    #[serde(default)]
    pub hidden: Vec<PathBuf>,
    /// A rename journal was found: an interrupted [`crate::rename`] must be
    /// re-run before this folder is used (its hidden temporaries hold files).
    pub rename_pending: bool,
}

impl ImageFolder {
    /// Paths of one class's files.
    pub fn files_of(&self, class: usize) -> impl Iterator<Item = &Path> {
        self.files.iter().filter(move |f| f.class == class).map(|f| f.path.as_path())
    }

    /// One line saying what [`scan`] left out as hidden, naming up to five
    /// (`None` when nothing was): every tool prints or logs this same line.
    pub fn hidden_note(&self) -> Option<String> {
        if self.hidden.is_empty() {
            return None;
        }
        let named: Vec<String> = self.hidden.iter().take(5).map(|p| p.display().to_string()).collect();
        let more = self.hidden.len().saturating_sub(5);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        Some(format!(
            "left out {} hidden file(s) or folder(s) (names starting with a dot; rename them to use them): {}{more}",
            self.hidden.len(),
            named.join(", ")
        ))
    }

    /// The same folder without its empty class folders (a class with no
    /// image cannot be learnt; kept, it only dilutes the model's output).
    pub fn without_empty_classes(mut self) -> Result<Self> {
        if self.empty_classes.is_empty() {
            return Ok(self);
        }
        let old = self.classes.names().to_vec();
        let kept: Vec<String> = old.iter().filter(|n| !self.empty_classes.contains(n)).cloned().collect();
        self.classes = ClassIndex::from_ordered(kept)?;
        for f in &mut self.files {
            f.class = self.classes.require(&old[f.class])?;
        }
        Ok(self)
    }

    /// An error when an interrupted rename holds some of this folder's
    /// files in hidden temporaries: using the folder now would silently
    /// miss them.
    pub fn require_no_pending_rename(&self) -> Result<()> {
        if self.rename_pending {
            return Err(Error::Rename {
                path: journal_path(&self.root),
                reason:
                    "an interrupted rename holds some files in hidden temporaries; run rename --apply to \
                         finish it first"
                        .into(),
            });
        }
        Ok(())
    }

    /// Number of files per class id.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for f in &self.files {
            counts[f.class] += 1;
        }
        counts
    }
}

/// Scan a folder of class folders.
///
/// Classes are the visible sub-folders of `root` (names may hold spaces and
/// any Unicode), sorted; files are the visible regular files (or symlinks to
/// them) inside each. Hidden entries (starting with `.`) are left out and
/// listed in [`ImageFolder::hidden`].
///
/// ```no_run
/// let folder = gemstones_dataset::scan("photos/train")?;
/// println!("{} classes, {} files", folder.classes.len(), folder.files.len());
/// # Ok::<(), gemstones_dataset::Error>(())
/// ```
pub fn scan(root: impl AsRef<Path>) -> Result<ImageFolder> {
    let root = root.as_ref();
    if !root.is_dir() {
        return Err(Error::NotAFolder { path: root.to_path_buf() });
    }
    let mut class_dirs = Vec::new();
    let mut ignored = Vec::new();
    let mut unusable_names = Vec::new();
    let mut hidden = Vec::new();
    let listing = list_dir(root)?;
    hidden.extend(listing.hidden);
    for entry in listing.visible {
        if !has_utf8_name(&entry) {
            unusable_names.push(lossy(&entry));
        } else if entry.is_dir() {
            class_dirs.push(entry);
        } else {
            ignored.push(entry);
        }
    }
    let names: Vec<String> = class_dirs
        .iter()
        .map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .collect();
    let classes = ClassIndex::new(names)?;
    let mut files = Vec::new();
    let mut empty_classes = Vec::new();
    for (id, name) in classes.names().iter().enumerate() {
        let dir = root.join(name);
        let before = files.len();
        let listing = list_dir(&dir)?;
        hidden.extend(listing.hidden);
        for entry in listing.visible {
            if !has_utf8_name(&entry) {
                unusable_names.push(lossy(&entry));
            } else if entry.is_dir() {
                ignored.push(entry);
            } else {
                files.push(FileEntry { path: entry, class: id });
            }
        }
        if files.len() == before {
            empty_classes.push(name.clone());
        }
    }
    let rename_pending = journal_path(root).exists();
    Ok(ImageFolder {
        root: root.to_path_buf(),
        classes,
        files,
        empty_classes,
        ignored,
        unusable_names,
        hidden: hidden.iter().map(|p| lossy(p)).collect(),
        rename_pending,
    })
}

pub(crate) fn has_utf8_name(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_str().is_some())
}

/// `path` as text (for reports: JSON cannot hold other bytes).
fn lossy(path: &Path) -> PathBuf {
    PathBuf::from(path.to_string_lossy().into_owned())
}

/// A folder's entries, in natural order of their names: the visible ones,
/// and the hidden ones that are not the workspace's own files.
pub(crate) struct Listing {
    pub(crate) visible: Vec<PathBuf>,
    pub(crate) hidden: Vec<PathBuf>,
}

pub(crate) fn list_dir(dir: &Path) -> Result<Listing> {
    let (mut visible, mut hidden) = (Vec::new(), Vec::new());
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        if !is_hidden(&name) {
            visible.push(entry.path());
        } else if !is_own_file(&name) {
            hidden.push(entry.path());
        }
    }
    let by_name = |a: &PathBuf, b: &PathBuf| natural_cmp(&file_name(a), &file_name(b));
    visible.sort_by(by_name);
    hidden.sort_by(by_name);
    Ok(Listing { visible, hidden })
}

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Compare strings so that runs of ASCII digits compare by value
/// (`x_2` < `x_10`); ties fall back to plain byte order.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (trim_zeros(&x[..nx]), trim_zeros(&y[..ny]));
                let ord = dx.len().cmp(&dy.len()).then_with(|| dx.cmp(dy));
                if ord != Ordering::Equal {
                    return ord;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["x_10.jpg", "x_2.jpg", "x_1.jpg", "x_02.jpg", "a.jpg"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["a.jpg", "x_1.jpg", "x_02.jpg", "x_2.jpg", "x_10.jpg"]);
    }

    #[test]
    fn scan_reports_classes_files_empty_and_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for (class, file) in [("Ruby", "b.jpg"), ("Ruby", "a.jpg"), ("Garnet Red", "x.png")] {
            fs::create_dir_all(r.join(class)).unwrap();
            fs::write(r.join(class).join(file), b"x").unwrap();
        }
        fs::create_dir_all(r.join("Émeraude")).unwrap();
        fs::write(r.join("Ruby/.hidden"), b"x").unwrap();
        fs::create_dir_all(r.join("Ruby/nested")).unwrap();
        fs::write(r.join("stray.jpg"), b"x").unwrap();

        let f = scan(r).unwrap();
        assert_eq!(f.classes.names(), ["Garnet Red", "Ruby", "Émeraude"]);
        let names: Vec<_> = f.files.iter().map(|e| (e.class, file_name(&e.path))).collect();
        assert_eq!(names, [(0, "x.png".into()), (1, "a.jpg".into()), (1, "b.jpg".into())]);
        assert_eq!(f.empty_classes, ["Émeraude"]);
        assert_eq!(f.ignored, [r.join("stray.jpg"), r.join("Ruby/nested")]);
        assert_eq!(f.class_counts(), [1, 2, 0]);
        assert!(!f.rename_pending);
    }

    #[test]
    fn scan_of_missing_folder_names_it() {
        let err = scan("/no/such/folder").unwrap_err().to_string();
        assert!(err.contains("/no/such/folder"), "{err}");
    }
}
