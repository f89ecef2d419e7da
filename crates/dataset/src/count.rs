//! Count folders and files: the tutorial's tree report and a per-class table.
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::scan::{ImageFolder, file_name, has_utf8_name, list_dir};

/// Folders and files at one level of a tree, with the levels below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeCount {
    /// Folder name.
    pub name: String,
    /// Visible sub-folders directly inside.
    pub folders: usize,
    /// Visible files directly inside.
    pub files: usize,
    /// The sub-folders' counts.
    pub children: Vec<TreeCount>,
    /// Entries directly inside left out of `folders` and `files`, as
    /// [`crate::scan`] leaves them out: hidden names (starting with a dot)
    /// and names that are not UTF-8.
    #[serde(default)]
    pub left_out: usize,
}

/// Count every level of a folder tree, leaving out (and counting in
/// `left_out`) what [`crate::scan`] leaves out, so the tree and a
/// [`ClassTable`] of the same folder agree. A linked folder that leads
/// back to a folder above it (a link loop) is counted, not entered.
pub fn count_tree(root: impl AsRef<Path>) -> Result<TreeCount> {
    let root = root.as_ref();
    // A root that is no folder is named by list_dir's error below.
    count_below(root, folder_id(root).unwrap_or_default(), &mut Vec::new())
}

/// A folder's identity (device, inode), through links; `None` for
/// anything that is not a folder (or cannot be read as one).
fn folder_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))
}

/// [`count_tree`] of `dir`, whose identity is `id` and whose enclosing
/// folders' are `above`.
fn count_below(dir: &Path, id: (u64, u64), above: &mut Vec<(u64, u64)>) -> Result<TreeCount> {
    let mut node = TreeCount::leaf(dir);
    let listing = list_dir(dir)?;
    above.push(id);
    node.left_out = listing.hidden.len();
    for entry in listing.visible {
        if !has_utf8_name(&entry) {
            node.left_out += 1;
        } else if let Some(id) = folder_id(&entry) {
            node.folders += 1;
            if above.contains(&id) {
                let mut looped = TreeCount::leaf(&entry);
                looped.name.push_str(" (a link to a folder above: not entered)");
                node.children.push(looped);
            } else {
                node.children.push(count_below(&entry, id, above)?);
            }
        } else {
            node.files += 1;
        }
    }
    above.pop();
    Ok(node)
}

impl TreeCount {
    /// A folder counted without looking inside.
    fn leaf(path: &Path) -> Self {
        Self { name: file_name(path), folders: 0, files: 0, children: Vec::new(), left_out: 0 }
    }

    /// Total files at every level.
    pub fn total_files(&self) -> usize {
        self.files + self.children.iter().map(TreeCount::total_files).sum::<usize>()
    }

    /// The tutorial's report: one line per folder, indented with dashes.
    ///
    /// ```text
    /// ------------> gemstones-images :  2 folders,  0 files
    /// --------------> test :  87 folders,  0 files
    /// ----------------> Alexandrite :  0 folders,  4 files
    /// ```
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out, 12);
        out
    }

    fn write_text(&self, out: &mut String, dashes: usize) {
        let _ = writeln!(
            out,
            "{}> {} : {:>3} folders, {:>3} files{}",
            "-".repeat(dashes),
            self.name,
            self.folders,
            self.files,
            if self.left_out > 0 {
                format!(" ({} left out: hidden or not UTF-8)", self.left_out)
            } else {
                String::new()
            }
        );
        for c in &self.children {
            c.write_text(out, dashes + 2);
        }
    }
}

/// Files per class in one or more splits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassTable {
    /// Split names (columns).
    pub splits: Vec<String>,
    /// Class names (rows), in the union of all splits, sorted.
    pub classes: Vec<String>,
    /// `counts[row][column]`.
    pub counts: Vec<Vec<usize>>,
}

impl ClassTable {
    /// Build the table from scanned split folders.
    pub fn new(splits: &[(&str, &ImageFolder)]) -> Self {
        let mut classes: Vec<String> =
            splits.iter().flat_map(|(_, f)| f.classes.names().iter().cloned()).collect();
        classes.sort();
        classes.dedup();
        let mut counts = vec![vec![0; splits.len()]; classes.len()];
        for (col, (_, folder)) in splits.iter().enumerate() {
            for (id, n) in folder.class_counts().into_iter().enumerate() {
                if let Some(row) =
                    folder.classes.name(id).and_then(|c| classes.binary_search_by(|x| x.as_str().cmp(c)).ok())
                {
                    counts[row][col] = n;
                }
            }
        }
        Self { splits: splits.iter().map(|(n, _)| n.to_string()).collect(), classes, counts }
    }

    /// Column totals.
    pub fn totals(&self) -> Vec<usize> {
        (0..self.splits.len()).map(|c| self.counts.iter().map(|r| r[c]).sum()).collect()
    }

    /// A fixed-width text table with a total column and row.
    pub fn to_text(&self) -> String {
        let w = self.classes.iter().map(|c| c.chars().count()).chain([5]).max().unwrap_or(5);
        let cols: Vec<usize> = self.splits.iter().map(|s| s.len().max(6)).collect();
        let mut out = format!("{:<w$}", "class");
        for (s, cw) in self.splits.iter().zip(&cols) {
            let _ = write!(out, "  {s:>cw$}");
        }
        out.push_str("   total\n");
        let mut row = |name: &str, vals: &[usize]| {
            let _ = write!(out, "{name:<w$}");
            for (v, cw) in vals.iter().zip(&cols) {
                let _ = write!(out, "  {v:>cw$}");
            }
            let _ = writeln!(out, "  {:>6}", vals.iter().sum::<usize>());
        };
        for (c, vals) in self.classes.iter().zip(&self.counts) {
            row(c, vals);
        }
        row("total", &self.totals());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_loop_is_counted_once_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let ruby = dir.path().join("photos/Ruby");
        std::fs::create_dir_all(&ruby).unwrap();
        std::fs::write(ruby.join("ruby_0.jpg"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("photos"), ruby.join("back")).unwrap();
        let t = count_tree(dir.path().join("photos")).unwrap();
        assert_eq!(t.total_files(), 1);
        assert_eq!(t.to_text().lines().count(), 3, "{}", t.to_text());
        assert!(t.to_text().contains("back (a link to a folder above: not entered)"), "{}", t.to_text());
    }

    #[test]
    fn tree_report_matches_the_tutorial_shape() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("gemstones-images");
        for (split, class, n) in
            [("train", "Alexandrite", 3), ("test", "Alexandrite", 1), ("test", "Almandine", 2)]
        {
            let d = r.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                std::fs::write(d.join(format!("{i}.jpg")), b"x").unwrap();
            }
        }
        let t = count_tree(&r).unwrap();
        assert_eq!(t.total_files(), 6);
        assert_eq!(
            t.to_text(),
            "------------> gemstones-images :   2 folders,   0 files\n\
             --------------> test :   2 folders,   0 files\n\
             ----------------> Alexandrite :   0 folders,   1 files\n\
             ----------------> Almandine :   0 folders,   2 files\n\
             --------------> train :   1 folders,   0 files\n\
             ----------------> Alexandrite :   0 folders,   3 files\n"
        );
        let train = crate::scan(r.join("train")).unwrap();
        let test = crate::scan(r.join("test")).unwrap();
        let table = ClassTable::new(&[("train", &train), ("test", &test)]);
        assert_eq!(table.classes, ["Alexandrite", "Almandine"]);
        assert_eq!(table.counts, [[3, 1], [0, 2]]);
        assert_eq!(table.totals(), [3, 3]);
        assert!(table.to_text().lines().last().unwrap().ends_with("     6"));
    }
}
