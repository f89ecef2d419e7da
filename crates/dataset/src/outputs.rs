//! The output rule every program of this workspace follows: a program
//! writes only where it was asked to, only over its own earlier output,
//! never over a photograph and never inside a folder it reads.
//!
//! A program names what it reads ([`Outputs::reading`]), then checks each
//! output path before any work: a file with [`Outputs::file`], a folder
//! with [`Outputs::claim_folder`] (which also marks the folder as its own).
//! Paths are compared as the kernel resolves them (symbolic links, `..`,
//! trailing slashes), so no spelling of a path gets around the rule; a hard
//! link to a photograph is refused because the photograph is not an output
//! of this kind.
//!
//! What counts as a program's own earlier output is recognised by its
//! content, never by its name: a PNG written by [`crate::save_png`] carries
//! a `Software: gemstones` text chunk, a cache its magic, a JSON report a
//! top-level `"written_by"` field, a `.npy` array NumPy's header, and a
//! folder the marker file [`MARKER`] (or, for folders written before
//! markers existed, the file that names its kind, such as a model
//! directory's `config.json`).
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// The marker file [`Outputs::claim_folder`] writes into each output
/// folder: hidden, and named like the workspace's other own files.
pub const MARKER: &str = ".gemstones-output";

/// The value of the `Software` text chunk in every PNG this workspace
/// writes, and the prefix of a JSON report's `"written_by"` field.
pub const WRITER: &str = "gemstones";

/// What a program writes at an output file path, and so which existing
/// file there it may replace: only one of the same kind that a gemstones
/// program wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A PNG figure written by [`crate::save_png`].
    Png,
    /// A preprocessed image cache ([`crate::save_cache`]).
    Cache,
    /// A JSON report with a top-level `"written_by": "gemstones …"`.
    JsonReport,
    /// A NumPy `.npy` array of little-endian float32.
    NpyF32,
}

impl FileKind {
    fn name(self) -> &'static str {
        match self {
            Self::Png => "a gemstones PNG figure",
            Self::Cache => "a gemstones cache",
            Self::JsonReport => "a gemstones JSON report",
            Self::NpyF32 => "a float32 .npy array",
        }
    }

    /// Whether the file at `path` is this kind of output (judged by its
    /// first [`SNIFF_BYTES`]; a JSON report by all of it).
    fn recognises(self, path: &Path) -> Result<bool> {
        let limit = if self == Self::JsonReport { u64::MAX } else { SNIFF_BYTES as u64 };
        let mut head = Vec::new();
        fs::File::open(path).at(path)?.take(limit).read_to_end(&mut head).at(path)?;
        Ok(match self {
            Self::Png => is_gemstones_png(&head),
            Self::Cache => head.starts_with(crate::cache::MAGIC),
            Self::JsonReport => is_gemstones_json(&head),
            Self::NpyF32 => head.starts_with(NPY_MAGIC) && String::from_utf8_lossy(&head).contains("'<f4'"),
        })
    }
}

/// How much of a file [`FileKind::recognises`] reads: a PNG's text chunks
/// come before its pixels, a `.npy` header within its first 64 KiB.
const SNIFF_BYTES: usize = 64 << 10;

/// The start of every `.npy` file.
pub(crate) const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// What a program writes into an output folder: its name goes into the
/// folder's [`MARKER`]; `signatures` are files that mark a folder of this
/// kind written before markers existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderKind {
    /// What the folder holds, as messages say it ("a model directory").
    pub name: &'static str,
    /// Files whose presence marks an older folder of this kind.
    pub signatures: &'static [&'static str],
}

impl FolderKind {
    /// A model directory (`train --out`), or a cross-validation's folder of
    /// folds (`train --folds`).
    pub const MODEL: Self =
        Self { name: "a model directory", signatures: &["config.json", "crossval.json", "fold-1"] };
    /// An evaluation's files (`evaluate --out`).
    pub const EVALUATION: Self =
        Self { name: "an evaluation", signatures: &["metrics.json", "crossval.json"] };
    /// An export (`export --out`: model.onnx, model.pt, model.json).
    pub const EXPORT: Self = Self { name: "an export", signatures: &["model.json"] };
    /// A workflow's run folder (`workflow --run-dir`).
    pub const RUN: Self = Self { name: "a workflow run", signatures: &["workflow.json"] };
}

/// The paths a program reads, resolved once; its outputs are checked
/// against them.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    inputs: Vec<(PathBuf, PathBuf)>,
}

impl Outputs {
    /// A program that reads `inputs` (folders or files; they need not
    /// exist yet).
    pub fn reading<P: AsRef<Path>>(inputs: impl IntoIterator<Item = P>) -> Result<Self> {
        let inputs = inputs
            .into_iter()
            .map(|p| Ok((p.as_ref().to_path_buf(), resolve(p.as_ref())?)))
            .collect::<Result<_>>()?;
        Ok(Self { inputs })
    }

    /// Check that `path` may be written as an output file of `kind`: it is
    /// not an input, not inside an input folder, and is absent or an
    /// earlier output of that kind. Writes nothing.
    pub fn file(&self, path: &Path, kind: FileKind) -> Result<()> {
        self.check_apart(path, false)?;
        match fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).at(path),
            Ok(m) if m.is_dir() => {
                Err(refused(path, format!("is a folder; give a file name for {}", kind.name())))
            }
            Ok(_) if kind.recognises(path)? => Ok(()),
            Ok(_) => Err(refused(
                path,
                format!("exists and is not {}: only a program's own earlier output is replaced", kind.name()),
            )),
        }
    }

    /// Check that `path` may be the output folder of `kind`, then create it
    /// and mark it as such: it is not an input, does not hold an input nor
    /// lie inside one, and is absent, empty, or an earlier output folder of
    /// the same kind.
    pub fn claim_folder(&self, path: &Path, kind: FolderKind) -> Result<()> {
        self.check_folder(path, kind)?;
        fs::create_dir_all(path).at(path)?;
        let marker = path.join(MARKER);
        if !marker.exists() {
            crate::fsutil::write_atomic(&marker, marker_text(kind).as_bytes())?;
        }
        Ok(())
    }

    /// [`Outputs::claim_folder`] without creating or marking anything.
    pub fn check_folder(&self, path: &Path, kind: FolderKind) -> Result<()> {
        self.check_apart(path, true)?;
        let entries = match fs::read_dir(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) if path.exists() && !path.is_dir() => {
                return Err(refused(
                    path,
                    format!("is a file, not a folder: {} goes into a folder", kind.name),
                ));
            }
            Err(e) => return Err(e).at(path),
            Ok(entries) => entries,
        };
        let names: Vec<std::ffi::OsString> =
            entries.map(|e| e.map(|e| e.file_name())).collect::<std::io::Result<_>>().at(path)?;
        if names.is_empty() {
            return Ok(());
        }
        if names.iter().any(|n| n == MARKER) {
            let found = fs::read_to_string(path.join(MARKER)).unwrap_or_default();
            return if found.trim() == marker_text(kind).trim() {
                Ok(())
            } else {
                Err(refused(
                    path,
                    format!(
                        "holds another program's output ({}), not {}: choose another folder",
                        marker_kind(&found),
                        kind.name
                    ),
                ))
            };
        }
        if kind.signatures.iter().any(|s| names.iter().any(|n| n == s)) {
            return Ok(());
        }
        Err(refused(
            path,
            format!(
                "is not empty and was not written by a gemstones program as {}: choose a new or empty folder",
                kind.name
            ),
        ))
    }

    /// Check that the output `path` is no input, lies inside none and, for
    /// an output `folder`, holds none: how output and inputs must stand
    /// apart whatever the output's kind.
    pub fn check_apart(&self, path: &Path, folder: bool) -> Result<()> {
        let resolved = resolve(path)?;
        for (given, input) in &self.inputs {
            if resolved == *input {
                return Err(refused(path, format!("is {}, which this program reads", given.display())));
            }
            if resolved.starts_with(input) {
                return Err(refused(
                    path,
                    format!("is inside {}, which this program reads", given.display()),
                ));
            }
            if folder && input.starts_with(&resolved) {
                return Err(refused(
                    path,
                    format!(
                        "holds {}, which this program reads: choose a folder outside it",
                        given.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn refused(path: &Path, reason: String) -> Error {
    Error::RefusedOutput { path: path.to_path_buf(), reason }
}

/// The content of a folder's [`MARKER`].
fn marker_text(kind: FolderKind) -> String {
    format!("{WRITER} output: {}\n", kind.name)
}

/// The kind a marker names, for a message.
fn marker_kind(text: &str) -> String {
    text.trim().strip_prefix(&format!("{WRITER} output: ")).unwrap_or("unknown").to_string()
}

/// `path` as the kernel would resolve it: absolute, its existing part
/// through [`fs::canonicalize`] (symbolic links, `..`), the rest normalised
/// lexically (`.`, `..`, repeated and trailing slashes).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let absolute =
        if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().at(path)?.join(path) };
    let existing = absolute.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
    let rest = absolute.strip_prefix(existing).unwrap_or(Path::new(""));
    let mut resolved = fs::canonicalize(existing).at(existing)?;
    for part in rest.components() {
        match part {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => resolved.push(name),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Ok(resolved)
}

/// Whether `head` is a PNG whose text chunks (before its pixels) include
/// `Software: gemstones`.
fn is_gemstones_png(head: &[u8]) -> bool {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(head));
    decoder.set_ignore_text_chunk(false);
    // read_info reads up to the first pixel data, text chunks included.
    match decoder.read_info() {
        Ok(reader) => {
            reader.info().uncompressed_latin1_text.iter().any(|t| t.keyword == "Software" && t.text == WRITER)
        }
        Err(_) => false,
    }
}

/// Whether `bytes` are a JSON object whose `"written_by"` names this
/// workspace.
fn is_gemstones_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("written_by").and_then(|w| w.as_str()).map(|w| w.starts_with(WRITER)))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A photo folder `photos/Ruby/ruby_0.jpg` (and an empty `photos/Jade`)
    /// beside a symbolic link `link -> photos`, a hard link `elsewhere.jpg`
    /// to the photo, and an empty `out` folder.
    fn photos() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("photos/Ruby")).unwrap();
        fs::create_dir_all(root.join("photos/Jade")).unwrap();
        fs::create_dir_all(root.join("out")).unwrap();
        fs::write(root.join("photos/Ruby/ruby_0.jpg"), b"\xff\xd8\xff a photograph").unwrap();
        std::os::unix::fs::symlink(root.join("photos"), root.join("link")).unwrap();
        fs::hard_link(root.join("photos/Ruby/ruby_0.jpg"), root.join("elsewhere.jpg")).unwrap();
        dir
    }

    /// One way of spelling a path inside the photos folder.
    #[derive(Debug, Clone, Copy)]
    enum Shape {
        Plain,
        ThroughLink,
        DotDot,
        Dot,
        DoubleSlash,
        TrailingSlash,
    }

    fn spell(root: &Path, inside: &str, shapes: &[Shape]) -> PathBuf {
        let mut text = format!("photos/{inside}");
        for shape in shapes {
            text = match shape {
                Shape::Plain => text,
                Shape::ThroughLink => text.replacen("photos/", "link/", 1),
                Shape::DotDot => text.replacen('/', "/Jade/../", 1),
                Shape::Dot => text.replacen('/', "/./", 1),
                Shape::DoubleSlash => text.replacen('/', "//", 1),
                Shape::TrailingSlash if inside.ends_with(".jpg") => text,
                Shape::TrailingSlash => format!("{text}/"),
            };
        }
        root.join(text)
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Plain),
            Just(Shape::ThroughLink),
            Just(Shape::DotDot),
            Just(Shape::Dot),
            Just(Shape::DoubleSlash),
            Just(Shape::TrailingSlash),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// However a path into the photos folder is spelled, as a file or a
        /// folder output of any kind it is refused, and nothing is written.
        #[test]
        fn no_spelling_of_a_path_into_the_inputs_gets_through(
            shapes in prop::collection::vec(shape(), 0..4),
            inside in prop_oneof![Just("Ruby/ruby_0.jpg"), Just("Ruby"), Just("Ruby/new.png"), Just("new")],
            read_through_link in any::<bool>(),
        ) {
            let dir = photos();
            let root = dir.path();
            let input = root.join(if read_through_link { "link" } else { "photos" });
            let outputs = Outputs::reading([&input]).unwrap();
            let path = spell(root, inside, &shapes);
            for kind in [FileKind::Png, FileKind::Cache, FileKind::JsonReport, FileKind::NpyF32] {
                let refused = outputs.file(&path, kind);
                prop_assert!(matches!(refused, Err(Error::RefusedOutput { .. })), "{path:?}: {refused:?}");
            }
            for kind in [FolderKind::MODEL, FolderKind::EVALUATION, FolderKind::EXPORT, FolderKind::RUN] {
                let refused = outputs.claim_folder(&path, kind);
                prop_assert!(matches!(refused, Err(Error::RefusedOutput { .. })), "{path:?}: {refused:?}");
            }
            // A folder holding the photos is refused too.
            prop_assert!(outputs.claim_folder(root, FolderKind::MODEL).is_err());
            prop_assert_eq!(fs::read(root.join("photos/Ruby/ruby_0.jpg")).unwrap(), b"\xff\xd8\xff a photograph");
            prop_assert!(!root.join("photos/new").exists() && !root.join("photos/Ruby").join(MARKER).exists());
        }
    }

    #[test]
    fn a_hard_link_to_a_photo_is_not_an_output_but_a_new_name_beside_it_is() {
        let dir = photos();
        let outputs = Outputs::reading([dir.path().join("photos")]).unwrap();
        let linked = dir.path().join("elsewhere.jpg");
        for kind in [FileKind::Png, FileKind::Cache, FileKind::JsonReport, FileKind::NpyF32] {
            let err = outputs.file(&linked, kind).unwrap_err().to_string();
            assert!(err.contains("elsewhere.jpg") && err.contains("exists and is not"), "{err}");
        }
        outputs.file(&dir.path().join("new.png"), FileKind::Png).unwrap();
    }

    #[test]
    fn an_output_folder_is_new_empty_or_its_own_kind() {
        let dir = photos();
        let outputs = Outputs::reading([dir.path().join("photos")]).unwrap();
        let out = dir.path().join("out");
        // Empty, then marked: the same kind again is fine, another is not.
        outputs.claim_folder(&out, FolderKind::MODEL).unwrap();
        assert!(out.join(MARKER).is_file());
        outputs.claim_folder(&out, FolderKind::MODEL).unwrap();
        let err = outputs.claim_folder(&out, FolderKind::EXPORT).unwrap_err().to_string();
        assert!(err.contains("another program's output (a model directory)"), "{err}");
        // A folder of someone else's files.
        let mine = dir.path().join("mine");
        fs::create_dir_all(&mine).unwrap();
        fs::write(mine.join("curves.png"), b"my picture").unwrap();
        let err = outputs.claim_folder(&mine, FolderKind::MODEL).unwrap_err().to_string();
        assert!(err.contains("not empty and was not written by a gemstones program"), "{err}");
        assert!(!mine.join(MARKER).exists());
        // A model directory written before markers: recognised, then marked.
        fs::write(mine.join("config.json"), b"{}").unwrap();
        outputs.claim_folder(&mine, FolderKind::MODEL).unwrap();
        assert!(mine.join(MARKER).is_file());
        // A new folder is made; a file is not a folder.
        outputs.claim_folder(&dir.path().join("a/b"), FolderKind::RUN).unwrap();
        let err = outputs.claim_folder(&dir.path().join("elsewhere.jpg"), FolderKind::RUN).unwrap_err();
        assert!(err.to_string().contains("is a file, not a folder"), "{err}");
    }

    #[test]
    fn earlier_outputs_are_recognised_by_content_not_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let outputs = Outputs::default();
        let at = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            fs::write(&p, bytes).unwrap();
            p
        };
        let report = at("report.json", br#"{"written_by": "gemstones verify", "folders": []}"#);
        outputs.file(&report, FileKind::JsonReport).unwrap();
        let theirs = at("theirs.json", br#"{"folders": []}"#);
        assert!(outputs.file(&theirs, FileKind::JsonReport).is_err());
        let cache = at("x.cache", b"GEMCACHE\x02\x00\x00\x00");
        outputs.file(&cache, FileKind::Cache).unwrap();
        assert!(outputs.file(&cache, FileKind::Png).is_err());
        let npy =
            at("x.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }");
        outputs.file(&npy, FileKind::NpyF32).unwrap();
        assert!(outputs.file(&at("x.f32", &[0; 16]), FileKind::NpyF32).is_err());
    }

    #[test]
    fn resolving_follows_links_and_dot_dot_and_ignores_trailing_slashes() {
        let dir = tempfile::tempdir().unwrap();
        let photos = dir.path().join("photos");
        fs::create_dir_all(photos.join("Ruby")).unwrap();
        std::os::unix::fs::symlink(&photos, dir.path().join("link")).unwrap();
        let want = resolve(&photos.join("Ruby")).unwrap();
        for spelling in ["link/Ruby", "photos/Ruby/", "photos/./Ruby", "link/../photos/Ruby", "photos//Ruby"]
        {
            assert_eq!(resolve(&dir.path().join(spelling)).unwrap(), want, "{spelling}");
        }
        assert_eq!(resolve(&dir.path().join("link/new/../x")).unwrap(), resolve(&photos).unwrap().join("x"));
    }
}
