//! Saving downloads safely, and the provenance manifest that makes a run
//! resumable.
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use gemstones_dataset::fsutil;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// Longest file or folder name written, in bytes.
pub const MAX_NAME_BYTES: usize = 120;

/// A file or folder name safe on every common file system: no path
/// separators or traversal, no reserved or control characters, no leading
/// dots, no trailing dots or spaces, not a reserved Windows device name,
/// at most [`MAX_NAME_BYTES`] bytes (the extension kept). Letters of any
/// script and spaces are kept.
///
/// ```
/// use gemstones_scrape::safe_name;
/// assert_eq!(safe_name("../../etc/passwd"), "passwd");
/// assert_eq!(safe_name("Émeraude  vert.JPG"), "Émeraude vert.JPG");
/// assert_eq!(safe_name("a:b*c?.png"), "a_b_c_.png");
/// assert_eq!(safe_name("..."), "image");
/// ```
pub fn safe_name(raw: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned();
    // Keep the last path segment only.
    let last = decoded.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut s: String = last
        .chars()
        .map(|c| if c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') { '_' } else { c })
        .collect();
    s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let s = s.trim_start_matches(['.', ' ']).trim_end_matches(['.', ' ']).to_string();
    let stem = s.split('.').next().unwrap_or_default().to_ascii_uppercase();
    let reserved = ["CON", "PRN", "AUX", "NUL"].contains(&stem.as_str())
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    let s = if reserved { format!("_{s}") } else { s };
    let s = if s.is_empty() { "image".to_string() } else { s };
    cap_length(&s)
}

fn cap_length(s: &str) -> String {
    if s.len() <= MAX_NAME_BYTES {
        return s.to_string();
    }
    let (stem, ext) = match s.rfind('.') {
        Some(i) if s.len() - i <= 10 => (&s[..i], &s[i..]),
        _ => (s, ""),
    };
    let mut cut = MAX_NAME_BYTES - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ext}", &stem[..cut])
}

/// What happened to one image URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Saved to `file`.
    Saved,
    /// Same content as an image already saved (`duplicate_of`); not saved
    /// again.
    Duplicate,
    /// Failed (`error` says why); a re-run retries it.
    Failed,
}

/// One row of the provenance manifest (JSON Lines, appended as the run
/// goes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestRow {
    /// Class name.
    pub class: String,
    /// The image's URL.
    pub image_url: String,
    /// The page it was found on.
    pub page_url: String,
    /// What happened.
    pub outcome: Outcome,
    /// Saved file, relative to the output folder.
    pub file: Option<String>,
    /// BLAKE3 of the body, hex.
    pub hash: Option<String>,
    /// Body size.
    pub bytes: u64,
    /// Last HTTP status.
    pub status: Option<u16>,
    /// Unix time, seconds.
    pub time: f64,
    /// Failure code (`http_404`, `not_an_image`, `too_large`, ...).
    pub error: Option<String>,
    /// Failure detail.
    pub detail: Option<String>,
    /// For duplicates, the file already holding the content.
    pub duplicate_of: Option<String>,
}

/// The manifest: what earlier runs did, and an appender.
pub struct Manifest {
    path: PathBuf,
    out: File,
    done: HashSet<String>,
    hashes: HashMap<String, String>,
    rows: usize,
}

impl Manifest {
    /// Open (creating) the manifest at `path` and read what it holds.
    pub fn open(path: &Path) -> Result<Self> {
        let mut done = HashSet::new();
        let mut hashes = HashMap::new();
        let mut rows = 0;
        if path.exists() {
            let f = File::open(path).at(path)?;
            for (n, line) in BufReader::new(f).lines().enumerate() {
                let line = line.at(path)?;
                if line.trim().is_empty() {
                    continue;
                }
                let row: ManifestRow = match serde_json::from_str(&line) {
                    Ok(r) => r,
                    // A line cut short by a crash: ignore it (its URL is
                    // fetched again), but nothing else.
                    Err(e) if e.is_eof() => continue,
                    Err(e) => {
                        return Err(Error::Manifest {
                            path: path.to_path_buf(),
                            reason: format!("line {}: {e}", n + 1),
                        });
                    }
                };
                rows += 1;
                if row.outcome != Outcome::Failed {
                    done.insert(row.image_url.clone());
                }
                if let (Outcome::Saved, Some(h), Some(f)) = (row.outcome, &row.hash, &row.file) {
                    hashes.insert(h.clone(), f.clone());
                }
            }
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).at(parent)?;
        }
        let mut out = OpenOptions::new().create(true).append(true).open(path).at(path)?;
        // End a line torn by a crash, so the next row starts cleanly.
        let len = out.metadata().at(path)?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            let mut f = File::open(path).at(path)?;
            std::io::Seek::seek(&mut f, std::io::SeekFrom::End(-1)).at(path)?;
            std::io::Read::read_exact(&mut f, &mut last).at(path)?;
            if last[0] != b'\n' {
                out.write_all(b"\n").at(path)?;
            }
        }
        Ok(Self { path: path.to_path_buf(), out, done, hashes, rows })
    }

    /// Whether an earlier run saved this URL (or found it a duplicate).
    pub fn is_done(&self, image_url: &str) -> bool {
        self.done.contains(image_url)
    }

    /// The file already holding content with this hash.
    pub fn file_with_hash(&self, hash: &str) -> Option<&str> {
        self.hashes.get(hash).map(String::as_str)
    }

    /// Rows read and written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Append a row and flush it to disk.
    pub fn append(&mut self, row: &ManifestRow) -> Result<()> {
        let mut line = serde_json::to_vec(row)
            .map_err(|e| Error::Manifest { path: self.path.clone(), reason: e.to_string() })?;
        line.push(b'\n');
        self.out.write_all(&line).at(&self.path)?;
        self.out.flush().at(&self.path)?;
        self.rows += 1;
        if row.outcome != Outcome::Failed {
            self.done.insert(row.image_url.clone());
        }
        if let (Outcome::Saved, Some(h), Some(f)) = (row.outcome, &row.hash, &row.file) {
            self.hashes.insert(h.clone(), f.clone());
        }
        Ok(())
    }

    /// Read every row of a manifest file.
    pub fn read_rows(path: &Path) -> Result<Vec<ManifestRow>> {
        let f = File::open(path).at(path)?;
        BufReader::new(f)
            .lines()
            .filter(|l| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
            .map(|l| {
                let l = l.at(path)?;
                serde_json::from_str(&l)
                    .map_err(|e| Error::Manifest { path: path.to_path_buf(), reason: e.to_string() })
            })
            .collect()
    }
}

/// Write `bytes` as `dir/name` without replacing any existing file (the
/// workspace's no-clobber writer, [`fsutil::create_new`]); on a name clash,
/// `name-1.ext`, `name-2.ext`, ... A name that already holds exactly these
/// bytes is reused: a photo saved by a run that died before its manifest
/// row was written is not saved twice. Returns the name used.
pub(crate) fn save_new(dir: &Path, name: &str, bytes: &[u8]) -> Result<String> {
    std::fs::create_dir_all(dir).at(dir)?;
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    for n in 0..10_000 {
        let candidate = if n == 0 { name.to_string() } else { cap_length(&format!("{stem}-{n}{ext}")) };
        let target = dir.join(&candidate);
        match fsutil::create_new(&target, bytes) {
            Ok(()) => return Ok(candidate),
            Err(gemstones_dataset::Error::WouldOverwrite { .. }) => {
                if std::fs::read(&target).is_ok_and(|held| held == bytes) {
                    return Ok(candidate);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Io { path: dir.join(name), source: std::io::Error::other("no free file name") })
}

/// Remove the temporaries a scrape that died left in `out`'s class folders
/// (the photos they held are fetched again).
pub(crate) fn remove_stale_temporaries(out: &Path) -> Result<()> {
    Ok(fsutil::remove_stale_temporaries(out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised_and_capped() {
        assert_eq!(safe_name("a%2F..%2F..%2Fsecret.jpg"), "secret.jpg");
        assert_eq!(safe_name("ruby%20burma.jpg"), "ruby burma.jpg");
        assert_eq!(safe_name("CON.jpg"), "_CON.jpg");
        assert_eq!(safe_name("lpt1"), "_lpt1");
        assert_eq!(safe_name(".hidden.jpg"), "hidden.jpg");
        assert_eq!(safe_name("tab\there.png"), "tab_here.png");
        let long = format!("{}.jpeg", "é".repeat(200));
        let s = safe_name(&long);
        assert!(s.len() <= MAX_NAME_BYTES && s.ends_with(".jpeg"), "{s}");
    }

    #[test]
    fn save_never_overwrites_and_manifest_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("Ruby");
        assert_eq!(save_new(&d, "a.jpg", b"one").unwrap(), "a.jpg");
        assert_eq!(save_new(&d, "a.jpg", b"two").unwrap(), "a-1.jpg");
        assert_eq!(std::fs::read(d.join("a.jpg")).unwrap(), b"one");
        let mpath = dir.path().join("manifest.jsonl");
        let mut m = Manifest::open(&mpath).unwrap();
        let row = ManifestRow {
            class: "Ruby".into(),
            image_url: "http://x/a.jpg".into(),
            page_url: "http://x/".into(),
            outcome: Outcome::Saved,
            file: Some("Ruby/a.jpg".into()),
            hash: Some("h".into()),
            bytes: 3,
            status: Some(200),
            time: 0.0,
            error: None,
            detail: None,
            duplicate_of: None,
        };
        m.append(&row).unwrap();
        m.append(&ManifestRow {
            image_url: "http://x/b.jpg".into(),
            outcome: Outcome::Failed,
            ..row.clone()
        })
        .unwrap();
        drop(m);
        // A torn last line (a crash mid-write) is ignored.
        std::fs::OpenOptions::new().append(true).open(&mpath).unwrap().write_all(b"{\"class\":\"Ru").unwrap();
        let mut m = Manifest::open(&mpath).unwrap();
        assert!(m.is_done("http://x/a.jpg") && !m.is_done("http://x/b.jpg"));
        assert_eq!(m.file_with_hash("h"), Some("Ruby/a.jpg"));
        m.append(&ManifestRow { image_url: "http://x/c.jpg".into(), ..row.clone() }).unwrap();
        drop(m);
        let m = Manifest::open(&mpath).unwrap();
        assert!(m.is_done("http://x/c.jpg"));
        assert_eq!(m.rows(), 3);
    }
}
