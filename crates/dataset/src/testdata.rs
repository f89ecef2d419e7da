//! Where this workspace's tests, benches and examples find the tutorial's
//! real photographs, and how a test that needs them behaves without them.
use std::path::PathBuf;

/// Environment variable naming the real training folder
/// (`.../gemstones/train`); it overrides the default locations.
pub const TRAIN_DIR_VAR: &str = "GEMSTONES_TRAIN_DIR";

/// The folder of the tutorial's real training photographs: `$GEMSTONES_TRAIN_DIR`,
/// else `../shared/datasets/gemstones/train` beside the workspace, else
/// `/work/shared/datasets/gemstones/train`. `None` if none exists.
pub fn shared_train_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(TRAIN_DIR_VAR) {
        return Some(PathBuf::from(p)).filter(|p| p.is_dir());
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        workspace.join("../shared/datasets/gemstones/train"),
        PathBuf::from("/work/shared/datasets/gemstones/train"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
}

/// Whether this is a CI run (`GEMSTONES_CI` set and not `0`): tests whose
/// requirements are missing must fail instead of skipping.
pub fn is_ci() -> bool {
    std::env::var("GEMSTONES_CI").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Report a test that cannot run: fails under CI, prints a loud skip
/// message otherwise (the caller then returns).
///
/// # Panics
/// Under CI (see [`is_ci`]), always.
pub fn skip_or_fail(test: &str, reason: &str) {
    assert!(!is_ci(), "{test}: required component missing under CI: {reason}");
    eprintln!("\n!!!!! SKIPPED {test}: {reason} !!!!!\n");
}
