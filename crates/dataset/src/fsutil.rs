//! File-system helpers that never clobber a user's file and never leave a
//! half-written one: the workspace's one atomic writer and its no-clobber
//! move and copy.
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

const PARTIAL_TAG: &str = "partial";
/// What every temporary name of a partly written file contains.
const PARTIAL: &str = ".partial-";

/// A sibling temporary path for `path` (same folder, so a rename is atomic).
pub(crate) fn temp_sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let unique = format!(
        ".{name}.{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    );
    path.with_file_name(unique)
}

/// Write `bytes` to `path` through a temporary file and an atomic rename,
/// replacing `path` if it exists (for files this workspace owns: caches,
/// indexes, records, checkpoints, reports). See [`write_atomic_by`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// [`write_atomic`] for content produced by `write` into a buffered file.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    write_atomic_by(path, |tmp| {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(tmp)?);
        write(&mut f)?;
        f.into_inner().map(drop).map_err(|e| e.into_error())
    })
}

/// Replace `path` with a file that `write` creates at the path it is given
/// (for writers that take a path, such as libtorch's): a uniquely named
/// temporary sibling, flushed to disk, renamed over `path`, and the folder
/// flushed. Whatever instant the process dies at, `path` holds its old
/// content or the whole new one; a failed write leaves no temporary, and
/// the temporaries of a process that died are removed by the next write of
/// the same file.
pub fn write_atomic_by(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        fs::create_dir_all(parent).at(parent)?;
    }
    remove_stale_temporaries_of(path)?;
    let tmp = temp_sibling(path, PARTIAL_TAG);
    let result = (|| {
        write(&tmp)?;
        fs::File::open(&tmp)?.sync_all()?;
        fail::fail_point!("fsutil::write-atomic-synced", |_| Err(std::io::Error::other("failpoint")));
        fs::rename(&tmp, path)?;
        sync_dir(parent.unwrap_or(Path::new(".")))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.at(path)
}

/// Write `bytes` as the new file `path`, never replacing one: a temporary
/// sibling flushed to disk, then moved into place by the no-clobber move
/// (`renameat2(RENAME_NOREPLACE)`; [`Error::WouldOverwrite`] if `path`
/// exists), and the folder flushed.
/// Whatever instant the process dies at, `path` is absent or whole; a dead
/// process's temporary is removed by [`remove_stale_temporaries`].
pub fn create_new(path: &Path, bytes: &[u8]) -> Result<()> {
    place_new(path, "fsutil::create-new-synced", |tmp| {
        let mut f = fs::File::create(tmp).at(tmp)?;
        f.write_all(bytes).at(tmp)
    })?;
    sync_dir(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))).at(path)
}

/// The no-clobber placement [`create_new`] and the copy share: `fill` a
/// temporary sibling of `to`, flush it to disk (failpoint `synced` there),
/// give it the name `to` without replacing anything; the temporary is
/// removed if any step fails.
fn place_new(to: &Path, synced: &str, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let _ = synced; // read only when the tests compile the failpoints in
    let tmp = temp_sibling(to, PARTIAL_TAG);
    let result = (|| {
        fill(&tmp)?;
        fs::File::open(&tmp).and_then(|f| f.sync_all()).at(&tmp)?;
        fail::fail_point!(synced);
        rename_no_clobber(&tmp, to)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Flush a folder's entries (a rename or a new file in it) to disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir).and_then(|d| d.sync_all())
}

/// Move `from` to `to` without ever replacing an existing `to`.
///
/// On Linux this is one atomic `renameat2(RENAME_NOREPLACE)`: an
/// interruption leaves the file under exactly one of its two names. Where
/// the file system lacks that call, it is a hard link (which fails
/// atomically if `to` exists) followed by removing `from`: an interruption
/// between the two leaves both names on one file, which
/// [`finish_interrupted_move`] repairs.
pub(crate) fn rename_no_clobber(from: &Path, to: &Path) -> Result<()> {
    fail::fail_point!("fsutil::rename-noreplace", |_| link_then_unlink(from, to));
    match rename_noreplace(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(Error::WouldOverwrite { path: to.to_path_buf() })
        }
        Err(e) if is_unsupported(&e) => link_then_unlink(from, to),
        Err(e) => Err(e).at(from),
    }
}

#[cfg(target_os = "linux")]
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL byte"))
    };
    let (cfrom, cto) = (c(from)?, c(to)?);
    // SAFETY: both pointers are valid NUL-terminated strings that outlive
    // the call; AT_FDCWD makes relative paths relative to the working
    // directory, as std::fs::rename does.
    let rc = unsafe {
        libc::renameat2(libc::AT_FDCWD, cfrom.as_ptr(), libc::AT_FDCWD, cto.as_ptr(), libc::RENAME_NOREPLACE)
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
fn rename_noreplace(_from: &Path, _to: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// The errors of a file system or kernel without `RENAME_NOREPLACE`.
fn is_unsupported(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Unsupported
        || matches!(e.raw_os_error(), Some(code) if code == libc::EINVAL || code == libc::ENOSYS || code == libc::EOPNOTSUPP)
}

/// The fallback no-clobber move: link, then unlink.
fn link_then_unlink(from: &Path, to: &Path) -> Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => {
            fail::fail_point!("fsutil::between-link-and-unlink");
            fs::remove_file(from).at(from)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(Error::WouldOverwrite { path: to.to_path_buf() })
        }
        Err(_) => {
            if to.symlink_metadata().is_ok() {
                return Err(Error::WouldOverwrite { path: to.to_path_buf() });
            }
            fs::rename(from, to).at(from)
        }
    }
}

/// Whether `a` and `b` are two names of one file (same device and inode).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(ma), Ok(mb)) => ma.dev() == mb.dev() && ma.ino() == mb.ino(),
        _ => false,
    }
}

/// Finish a [`rename_no_clobber`] of `from` to `to` that was interrupted
/// between its link and its unlink (both names on one file): remove `from`.
/// Returns whether there was such a move to finish.
pub(crate) fn finish_interrupted_move(from: &Path, to: &Path) -> Result<bool> {
    if same_file(from, to) {
        fs::remove_file(from).at(from)?;
        return Ok(true);
    }
    Ok(false)
}

/// Remove the temporaries of `path` that an earlier [`write_atomic_with`]
/// left when its process died mid-write.
fn remove_stale_temporaries_of(path: &Path) -> Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = format!(".{}{PARTIAL}", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.at(dir)?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            fs::remove_file(entry.path()).at(entry.path())?;
        }
    }
    Ok(())
}

/// Remove the temporaries that [`create_new`], [`write_atomic`] and the
/// no-clobber copy leave in `dir`'s class folders when the process dies
/// mid-write (hidden `.<name>.partial-…` files; for folders this workspace
/// writes: split outputs, scraped photos).
pub fn remove_stale_temporaries(dir: &Path) -> Result<()> {
    let Ok(classes) = fs::read_dir(dir) else {
        return Ok(());
    };
    for class in classes {
        let class = class.at(dir)?.path();
        let Ok(entries) = fs::read_dir(&class) else {
            continue;
        };
        for entry in entries {
            let entry = entry.at(&class)?;
            let name = entry.file_name();
            if is_hidden(&name) && name.to_string_lossy().contains(PARTIAL) {
                fs::remove_file(entry.path()).at(entry.path())?;
            }
        }
    }
    Ok(())
}

/// Copy `from` to `to` through a temporary file, flushed to disk before it
/// takes its name; never replaces `to`.
pub(crate) fn copy_no_clobber(from: &Path, to: &Path) -> Result<()> {
    place_new(to, "fsutil::copy-written", |tmp| fs::copy(from, tmp).map(drop).at(from))
}

/// Whether two files have identical content.
pub(crate) fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let (ma, mb) = (fs::metadata(a).at(a)?, fs::metadata(b).at(b)?);
    if ma.len() != mb.len() {
        return Ok(false);
    }
    Ok(fs::read(a).at(a)? == fs::read(b).at(b)?)
}

/// Whether a directory entry name is hidden (starts with a dot): hidden
/// files are never treated as images, and this crate's temporaries are
/// hidden.
pub(crate) fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// Whether a hidden name is one of the workspace's own files (a rename
/// journal or temporary, a half-written file's temporary), which nobody
/// needs to hear about, rather than a user's (`.DS_Store`, `..jpg`).
pub(crate) fn is_own_file(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with(".gemstones-") || name.contains(&format!(".{PARTIAL_TAG}-"))
}

/// A zeroed buffer of `len` bytes for a whole dataset's pixels (hundreds of
/// megabytes), backed by transparent huge pages where Linux allows them on
/// request: filling it then takes one page fault per 2 MiB instead of one
/// per 4 KiB (measurably faster on the real set; a hint the kernel may
/// ignore, never a change in contents).
pub(crate) fn big_zeroed(len: usize) -> Vec<u8> {
    let buf = vec![0u8; len];
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = buf.as_ptr() as usize;
        let first = start.next_multiple_of(HUGE);
        let end = (start + len) / HUGE * HUGE;
        if end > first {
            // SAFETY: [first, end) lies inside `buf`'s allocation and is
            // page-aligned; MADV_HUGEPAGE only changes how the kernel backs
            // the pages, not their contents, and it is done before any use.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    buf
}
