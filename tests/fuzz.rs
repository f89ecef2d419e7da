//! Fuzzing of every parser of untrusted bytes: the preprocessed-cache
//! header, class indexes, the scrape manifest, site profiles (TOML and
//! JSON), robots.txt handling, model directories (`config.json` and the
//! safetensors weights) and PyTorch checkpoints.
//!
//! Mutation fuzzing without coverage feedback (stable Rust; cargo-fuzz needs
//! nightly): each target mutates valid seed files (bit flips, interesting
//! bytes and integers, truncation, deletion, insertion, duplicated chunks)
//! and requires the parser to return (`Ok` or a typed error), never to
//! panic. A panicking input is saved to `tests/fuzz/regressions/<target>/`
//! and the test fails; saved inputs are replayed first on every run.
//!
//! `cargo test` runs a few hundred seeded inputs per target (deterministic);
//! `scripts/fuzz.sh [SECONDS]` runs each target for SECONDS (default 600)
//! with a fresh seed.
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gemstones::dataset::{
    ClassIndex, PreprocessConfig, fingerprint, load_cache, preprocess_folder, save_cache, scan,
};
use gemstones::model::{Classifier, PretrainedWeights};
use gemstones::scrape::{Manifest, SiteProfile};
use rand::{Rng, SeedableRng};

#[path = "support.rs"]
mod support;
use rand_pcg::Pcg64Mcg;

/// How long or how many inputs per target, and the seed.
fn budget() -> (Option<Duration>, usize, u64) {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seconds = env("GEMSTONES_FUZZ_SECONDS").map(Duration::from_secs);
    let iterations = env("GEMSTONES_FUZZ_ITERATIONS").unwrap_or(300) as usize;
    (seconds, iterations, env("GEMSTONES_FUZZ_SEED").unwrap_or(0))
}

fn regressions(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/regressions").join(target)
}

const INTERESTING_BYTES: [u8; 12] = [0, 1, 0x7f, 0x80, 0xff, b'9', b'-', b'"', b'{', b'[', b'\n', b'.'];
const INTERESTING_INTS: [u64; 8] =
    [0, 1, u64::MAX, 1 << 31, 1 << 32, 1 << 40, i64::MAX as u64, 0x8000_0000_0000_0000];
const INTERESTING_TEXT: [&str; 12] = [
    "-1",
    "1e309",
    "99999999999999999999",
    "4096",
    "1048576",
    "4294967295",
    "null",
    "\"\"",
    "[]",
    "{}",
    "NaN",
    "0",
];

/// One to eight random edits of `seed`.
fn mutate(rng: &mut Pcg64Mcg, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.random_range(1..=8) {
        let at = |rng: &mut Pcg64Mcg, len: usize| rng.random_range(0..len.max(1));
        match rng.random_range(0..8) {
            0 if !v.is_empty() => {
                let i = at(rng, v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !v.is_empty() => {
                let i = at(rng, v.len());
                v[i] = INTERESTING_BYTES[rng.random_range(0..INTERESTING_BYTES.len())];
            }
            2 => v.truncate(at(rng, v.len())),
            3 if !v.is_empty() => {
                let i = at(rng, v.len());
                let n = rng.random_range(1..=64).min(v.len() - i);
                v.drain(i..i + n);
            }
            4 => {
                let i = at(rng, v.len() + 1).min(v.len());
                let extra: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                v.splice(i..i, extra);
            }
            5 if v.len() > 8 => {
                let i = at(rng, v.len() - 8);
                let x = INTERESTING_INTS[rng.random_range(0..INTERESTING_INTS.len())];
                v[i..i + 8].copy_from_slice(&x.to_le_bytes());
            }
            6 => {
                let i = at(rng, v.len() + 1).min(v.len());
                let t = INTERESTING_TEXT[rng.random_range(0..INTERESTING_TEXT.len())];
                v.splice(i..i, t.bytes());
            }
            _ if v.len() > 2 => {
                let (a, b) = (at(rng, v.len()), at(rng, v.len()));
                let (from, to) = (a.min(b), a.max(b));
                let chunk = v[from..to.min(from + 256)].to_vec();
                let i = at(rng, v.len());
                v.splice(i..i, chunk);
            }
            _ => {}
        }
    }
    v
}

/// Feed `parse` the saved regressions, then mutated seeds, within the
/// budget; fail listing every input that panicked.
fn fuzz(target: &str, seeds: &[Vec<u8>], parse: &dyn Fn(&[u8])) {
    let (seconds, iterations, seed) = budget();
    let mut rng =
        Pcg64Mcg::seed_from_u64(seed ^ target.bytes().fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64));
    let mut crashes = Vec::new();
    let run_one = |input: &[u8], crashes: &mut Vec<String>| {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| parse(input))) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let dir = regressions(target);
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("crash-{}", &stable_name(input)));
            std::fs::write(&file, input).unwrap();
            crashes.push(format!("{}: {why}", file.display()));
        }
    };
    let saved: Vec<PathBuf> = std::fs::read_dir(regressions(target))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    for path in &saved {
        run_one(&std::fs::read(path).unwrap(), &mut crashes);
    }
    let start = Instant::now();
    let mut done = 0usize;
    while seconds.map_or(done < iterations, |s| start.elapsed() < s) {
        let input = if rng.random_range(0..20) == 0 {
            (0..rng.random_range(0..512)).map(|_| rng.random()).collect()
        } else {
            let which = rng.random_range(0..seeds.len());
            mutate(&mut rng, &seeds[which])
        };
        run_one(&input, &mut crashes);
        done += 1;
    }
    eprintln!(
        "fuzz {target}: {done} inputs + {} saved, {:.0} s, seed {seed}",
        saved.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(crashes.is_empty(), "{target}: {} input(s) panicked:\n{}", crashes.len(), crashes.join("\n"));
}

fn stable_name(bytes: &[u8]) -> String {
    // FNV-1a and the length: a stable file name for a crashing input.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}{:016x}", bytes.len())
}

/// Parse `bytes` as the file `name` in a fresh temporary folder.
fn with_file(name: &str, bytes: &[u8], parse: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    parse(&path);
}

#[test]
fn fuzz_cache_file() {
    let dir = tempfile::tempdir().unwrap();
    let folder = scan(support::tiny_photos(dir.path(), 2, 6)).unwrap();
    let cfg = PreprocessConfig { size: 16, ..PreprocessConfig::default() };
    let pre = preprocess_folder(&folder, &cfg, &|_| {}, &gemstones::dataset::StopFlag::new()).unwrap();
    let cache = dir.path().join("set.cache");
    save_cache(&cache, &pre, &cfg, &fingerprint(&folder, &cfg).unwrap()).unwrap();
    let seed = std::fs::read(&cache).unwrap();
    fuzz("cache_file", &[seed], &|b| with_file("set.cache", b, |p| drop(load_cache(p))));
}

#[test]
fn fuzz_class_index_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("classes.json");
    ClassIndex::new(["Ruby", "Garnet Red", "Émeraude"]).unwrap().save(&path).unwrap();
    let seed = std::fs::read(&path).unwrap();
    fuzz("class_index_json", &[seed], &|b| with_file("classes.json", b, |p| drop(ClassIndex::load(p))));
}

#[test]
fn fuzz_scrape_manifest() {
    let row = r#"{"class":"Ruby","image_url":"http://x/a.jpg","page_url":"http://x/","outcome":"saved","file":"Ruby/a.jpg","hash":"ab12","bytes":123,"status":200,"time":1.5,"error":null,"detail":null,"duplicate_of":null}"#;
    let failed = r#"{"class":"Ruby","image_url":"http://x/b.jpg","page_url":"http://x/","outcome":"failed","file":null,"hash":null,"bytes":0,"status":404,"time":2.0,"error":"http_404","detail":"not found","duplicate_of":null}"#;
    let seed = format!("{row}\n{failed}\n{row}").into_bytes();
    fuzz("scrape_manifest", &[seed], &|b| {
        with_file("manifest.jsonl", b, |p| {
            drop(Manifest::read_rows(p));
            drop(Manifest::open(p));
        })
    });
}

#[test]
fn fuzz_site_profiles() {
    let profiles = [SiteProfile::minerals_net(), SiteProfile::rasavgems()];
    let mut seeds: Vec<Vec<u8>> = profiles.iter().map(|p| toml::to_string(p).unwrap().into_bytes()).collect();
    let json_seeds: Vec<Vec<u8>> = profiles.iter().map(|p| serde_json::to_vec_pretty(p).unwrap()).collect();
    seeds.extend(json_seeds);
    fuzz("site_profiles", &seeds, &|b| {
        with_file("site.toml", b, |p| drop(SiteProfile::load(p)));
        with_file("site.json", b, |p| drop(SiteProfile::load(p)));
    });
}

#[test]
fn fuzz_robots_txt() {
    // What the scraper does with a robots.txt body (fetch.rs): parse it for
    // our user agent, then ask about URLs.
    let seed = b"User-agent: *\nDisallow: /private/\nAllow: /private/ok\nCrawl-delay: 2\n\nUser-agent: gemstones\nDisallow: /*.php$\nSitemap: http://x/sitemap.xml\n".to_vec();
    fuzz("robots_txt", &[seed], &|b| {
        if let Ok(r) = texting_robots::Robot::new("gemstones-scrape", b) {
            for url in ["http://x/", "http://x/private/a.jpg", "http://x/a.php", "http://x/%ff%00"] {
                let _ = r.allowed(url);
            }
        }
    });
}

/// Replace `file` of a copy of the model directory with `bytes` and load it.
fn load_damaged(model: &Path, file: &str, bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "classes.json", "best.safetensors"] {
        std::fs::copy(model.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join(file), bytes).unwrap();
    drop(Classifier::load(dir.path()));
}

#[test]
fn fuzz_model_config_json() {
    let dir = tempfile::tempdir().unwrap();
    let model = support::tiny_model_dir(dir.path());
    let seeds = [std::fs::read(model.join("config.json")).unwrap()];
    fuzz("model_config_json", &seeds, &|b| load_damaged(&model, "config.json", b));
}

#[test]
fn fuzz_model_weights_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let model = support::tiny_model_dir(dir.path());
    let seeds = [std::fs::read(model.join("best.safetensors")).unwrap()];
    fuzz("model_weights_safetensors", &seeds, &|b| load_damaged(&model, "best.safetensors", b));
}

#[test]
fn fuzz_pytorch_checkpoint() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/model/tests/pretrained");
    let seeds: Vec<Vec<u8>> = ["tiny_legacy.pth", "tiny_zip.pth"]
        .iter()
        .map(|f| std::fs::read(fixtures.join(f)).unwrap())
        .collect();
    fuzz("pytorch_checkpoint", &seeds, &|b| {
        with_file("weights.pth", b, |p| {
            if let Ok(c) = PretrainedWeights::read(p) {
                for name in c.names() {
                    let _ = c.get(name);
                }
            }
        })
    });
}
