//! Rename files to `<class name lower-cased>_<n>.<ext lower-cased>`, safely.
//!
//! A plan is computed first ([`plan_rename`]); [`RenamePlan::describe`]
//! prints it for a dry run. Executing it moves every file to a hidden
//! temporary name in its folder and then to its final name, recording the
//! plan in a journal (`.gemstones-rename.json` in the root) before the first
//! move and its progress after the first phase. Because no final name is
//! created before every source has been moved away, collisions and cycles
//! (`a -> b` while `b -> a`) need no special case, and an interrupted run is
//! finished by running [`rename`] (or [`resume_rename`]) again. No move ever
//! replaces an existing file.
use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{finish_interrupted_move, rename_no_clobber, write_atomic};
use crate::scan::{ImageFolder, file_name, journal_path, scan};
use crate::stop::StopFlag;

/// How files are renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RenameConfig {
    /// First number given in each class (the tutorial's 0).
    pub start: usize,
    /// Renumber every file densely `start..start+n` in natural order of the
    /// current names (the tutorial's behaviour), instead of keeping names
    /// that already follow the pattern and giving the others free numbers.
    pub compact: bool,
}

/// One planned move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameMove {
    /// Current path, relative to the root.
    pub from: PathBuf,
    /// Final path, relative to the root.
    pub to: PathBuf,
}

/// The moves a rename will make; nothing is touched until
/// [`RenamePlan::execute`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenamePlan {
    /// The dataset root.
    pub root: PathBuf,
    /// Files to move.
    pub moves: Vec<RenameMove>,
    /// Files that already have their final name.
    pub kept: usize,
}

/// What a rename did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RenameSummary {
    /// Files moved to a new name.
    pub renamed: usize,
    /// Files whose name was already right.
    pub kept: usize,
    /// Whether an interrupted earlier run was completed first.
    pub resumed: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    version: u32,
    /// 1: moving sources to temporaries; 2: moving temporaries to targets.
    phase: u32,
    entries: Vec<JournalEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct JournalEntry {
    from: PathBuf,
    tmp: PathBuf,
    to: PathBuf,
}

/// The tutorial's file name for number `n` of a class folder.
pub fn canonical_name(class_folder: &str, n: usize, ext: Option<&str>) -> String {
    let stem = format!("{}_{n}", class_folder.to_lowercase());
    match ext {
        Some(e) if !e.is_empty() => format!("{stem}.{}", e.to_lowercase()),
        _ => stem,
    }
}

/// The number in `name` if it is already canonical for `prefix`.
fn canonical_number(name: &str, prefix: &str) -> Option<usize> {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, Some(e)),
        _ => (name, None),
    };
    if ext.is_some_and(|e| e != e.to_lowercase()) {
        return None;
    }
    let digits = stem.strip_prefix(prefix)?.strip_prefix('_')?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

fn extension(name: &str) -> Option<&str> {
    match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => Some(e),
        _ => None,
    }
}

/// Plan the renames of a scanned folder.
pub fn plan_rename(folder: &ImageFolder, cfg: &RenameConfig) -> Result<RenamePlan> {
    if folder.rename_pending {
        return Err(Error::Rename {
            path: journal_path(&folder.root),
            reason: "an earlier rename did not finish; run rename again to complete it first".into(),
        });
    }
    let mut moves = Vec::new();
    let mut kept = 0;
    for (class, class_name) in folder.classes.names().iter().enumerate() {
        let names: Vec<String> = folder.files_of(class).map(file_name).collect();
        let prefix = class_name.to_lowercase();
        let mut targets: Vec<Option<String>> = vec![None; names.len()];
        if cfg.compact {
            for (i, name) in names.iter().enumerate() {
                targets[i] = Some(canonical_name(class_name, cfg.start + i, extension(name)));
            }
        } else {
            // Keep canonical names (their numbers are taken); give names
            // that are canonical but for letter case their own number when
            // it is free; number the rest.
            let mut taken = BTreeSet::new();
            let mut seen_lower = HashSet::new();
            for (i, name) in names.iter().enumerate() {
                if let Some(n) = canonical_number(name, &prefix) {
                    // Two canonical names that differ only in case cannot
                    // both stay on a case-insensitive file system.
                    if seen_lower.insert(name.to_lowercase()) {
                        taken.insert(n);
                        targets[i] = Some(name.clone());
                    }
                }
            }
            for (i, name) in names.iter().enumerate() {
                if targets[i].is_none()
                    && let Some(n) = canonical_number(&name.to_lowercase(), &prefix)
                    && taken.insert(n)
                {
                    targets[i] = Some(canonical_name(class_name, n, extension(name)));
                }
            }
            let mut next = cfg.start;
            for (i, name) in names.iter().enumerate() {
                if targets[i].is_none() {
                    while taken.contains(&next) {
                        next += 1;
                    }
                    taken.insert(next);
                    targets[i] = Some(canonical_name(class_name, next, extension(name)));
                }
            }
        }
        let dir = PathBuf::from(class_name);
        for (name, target) in names.iter().zip(targets) {
            let target = target.unwrap_or_else(|| name.clone());
            if *name == target {
                kept += 1;
            } else {
                moves.push(RenameMove { from: dir.join(name), to: dir.join(target) });
            }
        }
    }
    Ok(RenamePlan { root: folder.root.clone(), moves, kept })
}

impl RenamePlan {
    /// A listing like the tutorial's (`old --> new`, grouped by folder).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let width = self.moves.iter().map(|m| file_name(&m.from).chars().count()).max().unwrap_or(0);
        let mut last_dir = None;
        for m in &self.moves {
            let dir = m.from.parent().map(Path::to_path_buf);
            if dir != last_dir {
                let _ = writeln!(out, "{}", self.root.join(dir.clone().unwrap_or_default()).display());
                last_dir = dir;
            }
            let _ = writeln!(out, "{:<width$} --> {}", file_name(&m.from), file_name(&m.to));
        }
        let _ = writeln!(out, "{} to rename, {} already named", self.moves.len(), self.kept);
        out
    }

    /// Carry out the plan. See [`RenamePlan::execute_until`].
    pub fn execute(&self) -> Result<RenameSummary> {
        self.execute_until(&StopFlag::new())
    }

    /// Carry out the plan, checking `stop` before every file move (for
    /// Ctrl-C). A stopped run returns [`Error::Cancelled`] and leaves the
    /// journal, so [`rename`] or [`resume_rename`] finishes it.
    pub fn execute_until(&self, stop: &StopFlag) -> Result<RenameSummary> {
        if self.moves.is_empty() {
            return Ok(RenameSummary { renamed: 0, kept: self.kept, resumed: false });
        }
        let journal_file = journal_path(&self.root);
        if journal_file.exists() {
            return Err(Error::Rename {
                path: journal_file,
                reason: "an earlier rename did not finish; run rename again to complete it first".into(),
            });
        }
        let mut entries = Vec::with_capacity(self.moves.len());
        for (i, m) in self.moves.iter().enumerate() {
            let dir = m.from.parent().map(Path::to_path_buf).unwrap_or_default();
            let tmp = dir.join(format!(".gemstones-rename-{i}.tmp"));
            for p in [&tmp] {
                if self.root.join(p).symlink_metadata().is_ok() {
                    return Err(Error::WouldOverwrite { path: self.root.join(p) });
                }
            }
            if !self.root.join(&m.from).exists() {
                return Err(Error::Rename {
                    path: self.root.join(&m.from),
                    reason: "planned file no longer exists; plan again".into(),
                });
            }
            entries.push(JournalEntry { from: m.from.clone(), tmp, to: m.to.clone() });
        }
        let mut journal = Journal { version: 1, phase: 1, entries };
        save_journal(&self.root, &journal)?;
        run_journal(&self.root, &mut journal, stop)?;
        Ok(RenameSummary { renamed: self.moves.len(), kept: self.kept, resumed: false })
    }
}

fn save_journal(root: &Path, j: &Journal) -> Result<()> {
    let path = journal_path(root);
    let bytes = serde_json::to_vec_pretty(j).map_err(|source| Error::Json { path: path.clone(), source })?;
    write_atomic(&path, &bytes)
}

fn run_journal(root: &Path, j: &mut Journal, stop: &StopFlag) -> Result<()> {
    if j.phase == 1 {
        for e in &j.entries {
            let (from, tmp) = (root.join(&e.from), root.join(&e.tmp));
            if tmp.symlink_metadata().is_ok() {
                // Moved before an interruption (perhaps between the link
                // and the unlink of a move: then `from` is the same file).
                finish_interrupted_move(&from, &tmp)?;
                continue;
            }
            if stop.is_stopped() {
                return Err(Error::Cancelled);
            }
            fail::fail_point!("rename::phase1-move");
            rename_no_clobber(&from, &tmp)?;
        }
        fail::fail_point!("rename::phase1-done");
        j.phase = 2;
        save_journal(root, j)?;
    }
    for e in &j.entries {
        let (tmp, to) = (root.join(&e.tmp), root.join(&e.to));
        if tmp.symlink_metadata().is_err() {
            if to.symlink_metadata().is_ok() {
                continue; // finished before an interruption
            }
            return Err(Error::Rename {
                path: tmp,
                reason: "temporary file missing and target absent".into(),
            });
        }
        if finish_interrupted_move(&tmp, &to)? {
            continue;
        }
        if stop.is_stopped() {
            return Err(Error::Cancelled);
        }
        fail::fail_point!("rename::phase2-move");
        rename_no_clobber(&tmp, &to)?;
    }
    fail::fail_point!("rename::phase2-done");
    std::fs::remove_file(journal_path(root)).at(journal_path(root))
}

/// The moves an interrupted rename of `root` still has to make, if its
/// journal is there (for a dry run: nothing is touched).
pub fn pending_rename(root: impl AsRef<Path>) -> Result<Option<usize>> {
    Ok(read_journal(root.as_ref())?.map(|j| j.entries.len()))
}

fn read_journal(root: &Path) -> Result<Option<Journal>> {
    let path = journal_path(root);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(path),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|source| Error::Json { path, source })
}

/// Finish an interrupted rename of `root`, if its journal is there.
/// Returns how many files the journal covered.
pub fn resume_rename(root: impl AsRef<Path>) -> Result<Option<usize>> {
    let root = root.as_ref();
    let Some(mut j) = read_journal(root)? else {
        return Ok(None);
    };
    run_journal(root, &mut j, &StopFlag::new())?;
    Ok(Some(j.entries.len()))
}

/// Rename every file of `root`: finish an interrupted run first, then scan,
/// plan and execute. Re-running it after success changes nothing.
pub fn rename(root: impl AsRef<Path>, cfg: &RenameConfig) -> Result<RenameSummary> {
    rename_until(root, cfg, &StopFlag::new())
}

/// [`rename`], stopping before the next file move once `stop` is raised
/// ([`Error::Cancelled`]; a re-run finishes the work).
pub fn rename_until(root: impl AsRef<Path>, cfg: &RenameConfig, stop: &StopFlag) -> Result<RenameSummary> {
    let root = root.as_ref();
    let resumed = resume_rename(root)?.is_some();
    let plan = plan_rename(&scan(root)?, cfg)?;
    let mut summary = plan.execute_until(stop)?;
    summary.resumed = resumed;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names() {
        assert_eq!(canonical_name("Aventurine Green", 3, Some("JPG")), "aventurine green_3.jpg");
        assert_eq!(canonical_name("Ruby", 0, None), "ruby_0");
        assert_eq!(canonical_number("ruby_12.jpg", "ruby"), Some(12));
        assert_eq!(canonical_number("ruby_012.jpg", "ruby"), None);
        assert_eq!(canonical_number("ruby_1.JPG", "ruby"), None);
        assert_eq!(canonical_number("rubyx_1.jpg", "ruby"), None);
        assert_eq!(canonical_number("ruby_1", "ruby"), Some(1));
    }
}
