//! # gemstones-testkit
//!
//! Helpers the workspace's tests, benches and examples share, kept out of
//! the library crates' public APIs: where the tutorial's real photographs
//! and the ImageNet weights are, how a test behaves without them (a loud
//! skip, or a failure under CI), and a chromedriver process for tests that
//! drive a real browser.
#![deny(missing_docs)]
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Environment variable naming the real training folder
/// (`.../gemstones/train`); it overrides the default locations.
pub const TRAIN_DIR_VAR: &str = "GEMSTONES_TRAIN_DIR";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The folder of the tutorial's real training photographs: `$GEMSTONES_TRAIN_DIR`,
/// else `../shared/datasets/gemstones/train` beside the workspace, else
/// `/work/shared/datasets/gemstones/train`. `None` if none exists.
pub fn shared_train_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(TRAIN_DIR_VAR) {
        return Some(PathBuf::from(p)).filter(|p| p.is_dir());
    }
    [
        workspace().join("../shared/datasets/gemstones/train"),
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

/// An ImageNet checkpoint `make weights` installs (`$GEMSTONES_WEIGHTS_DIR`,
/// else `.weights/` in the workspace), if present; under CI its absence
/// fails the calling test.
pub fn weights_file(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("GEMSTONES_WEIGHTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".weights"));
    let path = dir.join(name);
    if path.is_file() {
        return Some(path);
    }
    skip_or_fail(name, &format!("{} is missing: `make weights` installs it", path.display()));
    None
}

/// The Lite0 ImageNet checkpoint (see [`weights_file`]).
pub fn lite0_weights() -> Option<PathBuf> {
    weights_file("efficientnet-lite0-57934424.pth")
}

/// A chromedriver process on a free loopback port, killed when dropped.
#[derive(Debug)]
pub struct ChromeDriver {
    child: std::process::Child,
    /// The port it listens on.
    pub port: u16,
}

impl ChromeDriver {
    /// Start the `chromedriver` found on `PATH` and wait until it listens;
    /// `None` (a loud skip, or a failure under CI) when there is none.
    ///
    /// # Panics
    /// If it cannot be started or does not listen within 20 s.
    pub fn start(test: &str) -> Option<Self> {
        let Some(bin) = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join("chromedriver"))
            .find(|p| p.is_file())
        else {
            skip_or_fail(test, "chromedriver not found on PATH (install chromium and chromium-driver)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        // Test support only: a chromedriver found on PATH that cannot be
        // started is a broken machine, and the test using it must fail.
        let child = std::process::Command::new(bin)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Self { child, port })
    }

    /// Its WebDriver URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `per_class` generated photos (40-56 px) of each of the first `classes`
/// gem classes, written to `dir/photos`; returns that folder.
pub fn tiny_photos(dir: &Path, classes: usize, per_class: usize) -> PathBuf {
    use gemstones_dataset::synth::{SynthConfig, default_classes, write_synthetic_set};
    let photos = dir.join("photos");
    let synth = SynthConfig {
        per_class,
        min_size: 40,
        max_size: 56,
        classes: default_classes().into_iter().take(classes).collect(),
        ..SynthConfig::default()
    };
    if let Err(e) = write_synthetic_set(&photos, &synth) {
        panic!("writing generated photos into {}: {e}", photos.display());
    }
    photos
}
