//! Helpers shared by this crate's test binaries.
use std::path::{Path, PathBuf};

/// The ImageNet weights installed by `make weights`, if present. Under CI
/// (`GEMSTONES_CI`) their absence is a failure.
pub fn lite0_weights() -> Option<PathBuf> {
    let dir = std::env::var_os("GEMSTONES_WEIGHTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.weights"));
    let path = dir.join("efficientnet-lite0-57934424.pth");
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("GEMSTONES_CI").is_none(),
        "{} is missing: `make weights` installs it",
        path.display()
    );
    eprintln!("SKIPPED: {} is missing (`make weights` installs it)", path.display());
    None
}
