//! Crash tests of every multi-step file operation, the way storage code is
//! tested: a failpoint (the `fail` crate) at every step of a rename, a split
//! and a cache write makes the process "die" there (a panic caught here);
//! the operation is then run again and the invariants checked: every
//! original file content is there exactly once, nothing hidden is left
//! behind, nothing was overwritten, and the re-run succeeds. Plus split
//! properties over random folders, and refusals that keep two splits apart.
//!
//! Every test holds a `fail::FailScenario` (a process-wide lock), so the
//! tests of this file never see each other's failpoints.
use std::collections::BTreeMap;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use gemstones_dataset::*;
use proptest::prelude::*;

/// Every file under `root`, hidden ones included: relative path -> content.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn sorted_contents<'a>(files: impl Iterator<Item = &'a Vec<u8>>) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = files.cloned().collect();
    v.sort();
    v
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

/// A folder of class folders whose names need renaming.
fn messy(root: &Path) {
    for (rel, body) in [
        ("Ruby/ruby_1.jpg", "r1"),
        ("Ruby/ruby_2.jpg", "r2"),
        ("Ruby/ruby_10.jpg", "r10"),
        ("Ruby/IMG 7.jpeg", "img7"),
        ("Garnet Red/x.png", "gx"),
        ("Garnet Red/y.png", "gy"),
        ("Garnet Red/Z.PNG", "gz"),
    ] {
        write(root, rel, body.as_bytes());
    }
}

/// Run `op` with failpoint `name` off for `k` evaluations, then panicking
/// (the process "dies" there). Returns whether it died.
fn die_at(name: &str, k: usize, op: impl FnOnce()) -> bool {
    fail::cfg(name, &format!("{k}*off->panic")).unwrap();
    let died = catch_unwind(AssertUnwindSafe(op)).is_err();
    fail::remove(name);
    died
}

/// For each failpoint and each time it is reached, die there on a fresh
/// copy of the input, then call `check` on that copy (which re-runs the
/// operation and checks the invariants). Returns how many deaths were
/// walked.
fn walk_failpoints(
    points: &[&str],
    fresh: &dyn Fn(&str) -> std::path::PathBuf,
    op: &dyn Fn(&Path),
    check: &dyn Fn(&Path, &str),
) -> usize {
    let mut deaths = 0;
    for point in points {
        for k in 0.. {
            let root = fresh(&format!("{}-{k}", point.replace(':', "_")));
            if !die_at(point, k, || op(&root)) {
                break;
            }
            deaths += 1;
            check(&root, &format!("died at {point} #{k}"));
        }
    }
    deaths
}

/// Renumbering densely makes chains (`ruby_2 -> ruby_1` while
/// `ruby_1 -> ruby_0`...), so the order of moves matters.
const COMPACT: RenameConfig = RenameConfig { start: 0, compact: true };

fn rename_walk(force_link_fallback: bool) {
    let scenario = fail::FailScenario::setup();
    if force_link_fallback {
        // As on a file system without renameat2(RENAME_NOREPLACE).
        fail::cfg("fsutil::rename-noreplace", "return").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template");
    messy(&template);
    let original = sorted_contents(snapshot(&template).values());
    let reference = {
        let r = dir.path().join("reference");
        messy(&r);
        rename(&r, &COMPACT).unwrap();
        snapshot(&r)
    };
    assert_eq!(reference.len(), 7);
    let moves = plan_rename(&scan(&template).unwrap(), &COMPACT).unwrap().moves.len();
    assert!(moves >= 5, "{moves}");
    let fresh = |tag: &str| {
        let root = dir.path().join(tag);
        messy(&root);
        root
    };
    let op = |root: &Path| {
        rename(root, &COMPACT).unwrap();
    };
    let check = |root: &Path, when: &str| {
        // A dry run after the crash reports the pending rename and writes nothing.
        let before = snapshot(root);
        assert!(pending_rename(root).unwrap().is_some() || !journal_path(root).exists(), "{when}");
        assert_eq!(snapshot(root), before, "{when}: a dry run wrote");
        let again = rename(root, &COMPACT);
        assert!(again.is_ok(), "{when}: re-run failed: {again:?}");
        let after = snapshot(root);
        assert_eq!(after, reference, "{when}: not the uninterrupted result (hidden files left, or lost)");
        assert_eq!(sorted_contents(after.values()), original, "{when}");
    };
    let mut points = vec![
        "rename::phase1-move",
        "rename::phase1-done",
        "rename::phase2-move",
        "rename::phase2-done",
        "fsutil::write-atomic-synced",
    ];
    if force_link_fallback {
        points.push("fsutil::between-link-and-unlink");
    }
    let deaths = walk_failpoints(&points, &fresh, &op, &check);
    // Each move in each phase, the two phase ends, two journal writes, and
    // with the fallback each move's link/unlink gap.
    let gaps = if force_link_fallback { 2 * moves } else { 0 };
    assert_eq!(deaths, 2 * moves + 2 + 2 + gaps);
    scenario.teardown();
}

#[test]
fn rename_survives_a_crash_at_every_step() {
    rename_walk(false);
}

#[test]
fn rename_survives_a_crash_at_every_step_without_renameat2() {
    rename_walk(true);
}

fn photos(root: &Path, per_class: &[usize]) {
    for (c, &n) in per_class.iter().enumerate() {
        for i in 0..n {
            write(root, &format!("Class {c}/photo {i}.jpg"), format!("class {c} photo {i}").as_bytes());
        }
    }
}

/// The invariants of a finished split of `source` (as it was: `original`)
/// into `out`: every original content in exactly one split, nothing else in
/// the split folders, nothing hidden.
fn assert_split_complete(out: &Path, original: &[Vec<u8>], splits: &[&str], when: &str) {
    let mut placed = Vec::new();
    for s in splits {
        let files = snapshot(&out.join(s));
        assert!(files.keys().all(|k| !k.contains("/.")), "{when}: hidden file left in {s}: {files:?}");
        placed.extend(files.into_values());
    }
    placed.sort();
    assert_eq!(placed, original, "{when}: split folders do not hold each photo exactly once");
    let record: SplitReport = serde_json::from_slice(&fs::read(out.join("split.json")).unwrap()).unwrap();
    assert!(record.complete, "{when}");
}

fn split_walk(mode: TransferMode, force_link_fallback: bool) {
    let scenario = fail::FailScenario::setup();
    if force_link_fallback {
        fail::cfg("fsutil::rename-noreplace", "return").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let counts = [5, 3, 4];
    let template = dir.path().join("template");
    photos(&template, &counts);
    let original = sorted_contents(snapshot(&template).values());
    let cfg = SplitConfig { mode, ..SplitConfig::default() };
    let reference = {
        let src = dir.path().join("ref-src");
        photos(&src, &counts);
        split_folder(&scan(&src).unwrap(), dir.path().join("ref-out"), &cfg).unwrap().files
    };
    let fresh = |tag: &str| {
        let case = dir.path().join(tag);
        photos(&case.join("src"), &counts);
        case
    };
    let op = |case: &Path| {
        split_folder(&scan(case.join("src")).unwrap(), case.join("out"), &cfg).unwrap();
    };
    let check = |case: &Path, when: &str| {
        let again = split_folder(&scan(case.join("src")).unwrap(), case.join("out"), &cfg);
        let again = again.unwrap_or_else(|e| panic!("{when}: re-run failed: {e}"));
        assert_eq!(again.files, reference, "{when}: another split than the uninterrupted one");
        assert_split_complete(&case.join("out"), &original, &["train", "test"], when);
        let left = snapshot(&case.join("src"));
        match mode {
            TransferMode::Move => assert!(left.is_empty(), "{when}: source not emptied: {left:?}"),
            _ => assert_eq!(sorted_contents(left.values()), original, "{when}: source changed"),
        }
    };
    let mut points = vec!["split::place-file", "fsutil::write-atomic-synced"];
    match mode {
        TransferMode::Copy => points.push("fsutil::copy-written"),
        TransferMode::Move if force_link_fallback => points.push("fsutil::between-link-and-unlink"),
        _ => {}
    }
    let deaths = walk_failpoints(&points, &fresh, &op, &check);
    let files: usize = counts.iter().sum();
    let extra = match mode {
        TransferMode::Copy => files,
        TransferMode::Move if force_link_fallback => files,
        _ => 0,
    };
    // A death before each file, at the class index and both records, and
    // at each copy's or link's second step.
    assert_eq!(deaths, files + 3 + extra);
    scenario.teardown();
}

#[test]
fn split_by_copy_survives_a_crash_at_every_step() {
    split_walk(TransferMode::Copy, false);
}

#[test]
fn split_by_move_survives_a_crash_at_every_step() {
    split_walk(TransferMode::Move, false);
    split_walk(TransferMode::Move, true);
}

#[test]
fn split_by_hard_link_survives_a_crash_at_every_step() {
    split_walk(TransferMode::HardLink, false);
}

#[test]
fn a_crash_while_replacing_a_file_keeps_the_old_one_and_the_next_write_clears_up() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache/set.bin");
    let index = ClassIndex::new(vec!["A".to_string(), "B".to_string()]).unwrap();
    index.save(&cache).unwrap();
    let old = fs::read(&cache).unwrap();
    let other = ClassIndex::new(vec!["C".to_string()]).unwrap();
    assert!(die_at("fsutil::write-atomic-synced", 0, || other.save(&cache).unwrap()));
    assert_eq!(fs::read(&cache).unwrap(), old, "the old file was damaged");
    // The dead write's temporary is cleared by the next write of the file.
    other.save(&cache).unwrap();
    assert_eq!(snapshot(&dir.path().join("cache")).len(), 1, "a temporary was left behind");
    assert_eq!(ClassIndex::load(&cache).unwrap(), other);
    scenario.teardown();
}

#[test]
fn a_second_split_into_the_same_folder_is_refused_before_anything_is_written() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("photos");
    photos(&src, &[10, 10, 10]);
    let out = dir.path().join("out");
    let folder = scan(&src).unwrap();
    split_folder(&folder, &out, &SplitConfig::default()).unwrap();
    let before = snapshot(&out);
    // Another seed, other ratios, another mode: each refused, naming the folder.
    for cfg in [
        SplitConfig { seed: 7, ..SplitConfig::default() },
        SplitConfig { ratios: SplitRatios::train_test(0.8).unwrap(), ..SplitConfig::default() },
        SplitConfig { mode: TransferMode::HardLink, ..SplitConfig::default() },
        SplitConfig { small_class: SmallClassPolicy::Warn, ..SplitConfig::default() },
    ] {
        let err = split_folder(&folder, &out, &cfg).unwrap_err();
        assert!(matches!(err, Error::SplitOutput { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("other settings"), "{err}");
        assert!(message.contains("seed 1337, train 0.9 / test 0.1, copy"), "{err}");
        // The two settings named differ somewhere in what is said.
        let (recorded, asked) = message.split_once("this run asks for").unwrap();
        let recorded = recorded.split_once("other settings (").unwrap().1.split_once(')').unwrap().0;
        assert!(!asked.contains(recorded), "{err}");
        // Read as settings, not as Rust's debug text.
        assert!(!message.contains("Some(") && !message.contains("Copy") && !message.contains("(\""), "{err}");
        assert_eq!(snapshot(&out), before);
    }
    // Another source with the same settings.
    let other = dir.path().join("other");
    photos(&other, &[10, 10, 10]);
    let err = split_folder(&scan(&other).unwrap(), &out, &SplitConfig::default()).unwrap_err();
    assert!(err.to_string().contains("holds a split of"), "{err}");
    // A photo added to the source since.
    write(&src, "Class 0/new.jpg", b"new");
    let err = split_folder(&scan(&src).unwrap(), &out, &SplitConfig::default()).unwrap_err();
    assert!(err.to_string().contains("new.jpg"), "{err}");
    assert_eq!(snapshot(&out), before);
    // A folder that is not empty and holds no split.
    let foreign = dir.path().join("foreign");
    write(&foreign, "notes.txt", b"mine");
    let err = split_folder(&folder, &foreign, &SplitConfig::default()).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(snapshot(&foreign).len(), 1);
    // Output inside the source, and the source inside the output.
    for (from, to) in [(&src, src.join("split")), (&src, src.clone()), (&src, dir.path().to_path_buf())] {
        let mv = SplitConfig { mode: TransferMode::Move, ..SplitConfig::default() };
        let err = split_folder(&scan(from).unwrap(), &to, &mv).unwrap_err();
        assert!(matches!(err, Error::RefusedOutput { .. }), "{err}");
        assert!(err.to_string().contains("which this program reads"), "{err}");
    }
    assert_eq!(snapshot(&src).len(), 31);
    scenario.teardown();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// For random folders, seeds and ratios: every input in exactly one
    /// split, no content in two, nothing foreign; the same run again
    /// changes nothing; another seed into the same folder is refused and
    /// changes nothing.
    #[test]
    fn split_properties(
        per_class in prop::collection::vec(2usize..12, 1..5),
        seed in any::<u64>(),
        train in 0.5f64..0.95,
        mode in prop::sample::select(vec![TransferMode::Copy, TransferMode::Move, TransferMode::HardLink]),
    ) {
        let scenario = fail::FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let (src, out) = (dir.path().join("src"), dir.path().join("out"));
        photos(&src, &per_class);
        let original = sorted_contents(snapshot(&src).values());
        let cfg = SplitConfig { seed, mode, ratios: SplitRatios::train_test(train).unwrap(), ..SplitConfig::default() };
        let report = split_folder(&scan(&src).unwrap(), &out, &cfg).unwrap();
        assert_split_complete(&out, &original, &["train", "test"], "first run");
        let (train_files, test_files) = (snapshot(&out.join("train")), snapshot(&out.join("test")));
        prop_assert!(train_files.values().all(|c| !test_files.values().any(|d| d == c)));
        let mut top: Vec<String> = fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        top.sort();
        prop_assert_eq!(top, ["classes.json", "split.json", "test", "train"]);
        let before = snapshot(&out);
        let again = split_folder(&scan(&src).unwrap(), &out, &cfg).unwrap();
        prop_assert_eq!(&again.files, &report.files);
        prop_assert_eq!(again.already_present, original.len());
        let other = SplitConfig { seed: seed.wrapping_add(1), ..cfg.clone() };
        prop_assert!(split_folder(&scan(&src).unwrap(), &out, &other).is_err());
        let mut after = snapshot(&out);
        // The record is rewritten by the re-run; the photos are untouched.
        after.remove("split.json");
        let mut before = before;
        before.remove("split.json");
        prop_assert_eq!(after, before);
        scenario.teardown();
    }
}

/// The workspace's no-clobber writer (scraped photos): dying at any step
/// leaves the target absent or whole, never replaces a file, and leaves
/// only a hidden temporary that `remove_stale_temporaries` takes away.
#[test]
fn create_new_survives_a_crash_at_every_step() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let body = b"a photo's bytes".to_vec();
    let fresh = |name: &str| {
        let root = dir.path().join(name);
        write(&root, "Ruby/keep.jpg", b"someone's photo");
        root
    };
    let op = |root: &Path| {
        let _ = fsutil::create_new(&root.join("Ruby/new.jpg"), &body);
    };
    let check = |root: &Path, when: &str| {
        let target = root.join("Ruby/new.jpg");
        assert!(!target.exists() || fs::read(&target).unwrap() == body, "{when}: half a file");
        fsutil::remove_stale_temporaries(root).unwrap();
        let mut names: Vec<String> = snapshot(root).into_keys().filter(|n| !n.ends_with("new.jpg")).collect();
        names.sort();
        assert_eq!(names, ["Ruby/keep.jpg"], "{when}: leftovers");
        // Done again, it finishes; a second time it refuses to replace.
        if !target.exists() {
            fsutil::create_new(&target, &body).unwrap();
        }
        assert_eq!(fs::read(&target).unwrap(), body, "{when}");
        assert!(matches!(fsutil::create_new(&target, b"other"), Err(Error::WouldOverwrite { .. })), "{when}");
        assert_eq!(fs::read(root.join("Ruby/keep.jpg")).unwrap(), b"someone's photo", "{when}");
    };
    let points = ["fsutil::create-new-synced", "fsutil::rename-noreplace", "fsutil::between-link-and-unlink"];
    let deaths = walk_failpoints(&points, &fresh, &op, &check);
    assert!(deaths >= 2, "{deaths}");
    scenario.teardown();
}
