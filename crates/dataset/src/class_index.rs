//! Class names <-> ids, saved beside every dataset and model.
use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// The classes of a dataset: names sorted as the class folders are, and
/// each name's id (its position).
///
/// Saved as JSON (`{"classes": ["Alexandrite", ...]}`) beside every dataset
/// cache and every model, so a label means the same class everywhere.
///
/// ```
/// use gemstones_dataset::ClassIndex;
/// let idx = ClassIndex::new(["Ruby", "Amethyst", "Emerald"])?;
/// assert_eq!(idx.names(), ["Amethyst", "Emerald", "Ruby"]);
/// assert_eq!(idx.id("Ruby"), Some(2));
/// assert_eq!(idx.name(0), Some("Amethyst"));
/// # Ok::<(), gemstones_dataset::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassIndex {
    classes: Vec<String>,
    #[serde(skip)]
    ids: HashMap<String, usize>,
}

#[derive(Deserialize)]
struct ClassIndexFile {
    classes: Vec<String>,
}

impl ClassIndex {
    /// Build an index from class names, sorted (byte order of the UTF-8
    /// names, as the folder scan sorts them). Names must be non-empty and
    /// distinct.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Result<Self> {
        let mut classes: Vec<String> = names.into_iter().map(Into::into).collect();
        classes.sort();
        Self::from_sorted(classes, Path::new("<memory>"))
    }

    /// Build an index keeping the given order (for example one read from a
    /// model directory).
    pub fn from_ordered(classes: Vec<String>) -> Result<Self> {
        Self::from_sorted(classes, Path::new("<memory>"))
    }

    fn from_sorted(classes: Vec<String>, origin: &Path) -> Result<Self> {
        let mut ids = HashMap::with_capacity(classes.len());
        for (i, name) in classes.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(Error::InvalidClassIndex {
                    path: origin.to_path_buf(),
                    reason: format!("class {i} has an empty name"),
                });
            }
            if ids.insert(name.clone(), i).is_some() {
                return Err(Error::InvalidClassIndex {
                    path: origin.to_path_buf(),
                    reason: format!("class {name:?} appears twice"),
                });
            }
        }
        Ok(Self { classes, ids })
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether there are no classes.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The names, in id order.
    pub fn names(&self) -> &[String] {
        &self.classes
    }

    /// The id of a class name.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.ids.get(name).copied()
    }

    /// The id of a class name, or [`Error::UnknownClass`].
    pub fn require(&self, name: &str) -> Result<usize> {
        self.id(name).ok_or_else(|| Error::UnknownClass { name: name.to_string() })
    }

    /// The name of a class id.
    pub fn name(&self, id: usize) -> Option<&str> {
        self.classes.get(id).map(String::as_str)
    }

    /// Write the index as pretty JSON (atomically: a temporary file renamed
    /// into place).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let json = serde_json::to_vec_pretty(self)
            .map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
        crate::fsutil::write_atomic(path, &json)
    }

    /// Read an index written by [`ClassIndex::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).at(path)?;
        let file: ClassIndexFile = serde_json::from_slice(&bytes)
            .map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
        Self::from_sorted(file.classes, path)
    }
}

impl<'de> Deserialize<'de> for ClassIndex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let file = ClassIndexFile::deserialize(d)?;
        Self::from_sorted(file.classes, Path::new("<json>")).map_err(serde::de::Error::custom)
    }
}

/// Class ids of one row of scores, best first; equal scores in class-id
/// order (stable sort: ties keep the lower id first). Every top-1/top-k
/// figure of the workspace ranks with this.
pub fn ranking(scores: &[f32]) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..scores.len()).collect();
    ids.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_maps_unicode_names_with_spaces() {
        let idx = ClassIndex::new(["Garnet Red", "Aventurine Green", "Émeraude"]).unwrap();
        assert_eq!(idx.names(), ["Aventurine Green", "Garnet Red", "Émeraude"]);
        assert_eq!(idx.id("Émeraude"), Some(2));
        assert_eq!(idx.require("Ruby").unwrap_err().to_string(), "unknown class \"Ruby\"");
    }

    #[test]
    fn rejects_duplicates_and_empty_names() {
        assert!(ClassIndex::new(["a", "a"]).is_err());
        assert!(ClassIndex::new(["a", " "]).is_err());
    }

    #[test]
    fn json_round_trip_keeps_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("classes.json");
        let idx = ClassIndex::from_ordered(vec!["Zircon".into(), "Agate".into()]).unwrap();
        idx.save(&path).unwrap();
        let back = ClassIndex::load(&path).unwrap();
        assert_eq!(back, idx);
        assert_eq!(back.id("Agate"), Some(1));
        let via_serde: ClassIndex = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(via_serde, idx);
    }

    #[test]
    fn load_names_the_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, br#"{"classes": ["a", "a"]}"#).unwrap();
        let err = ClassIndex::load(&path).unwrap_err().to_string();
        assert!(err.contains("bad.json") && err.contains("twice"), "{err}");
    }
}
