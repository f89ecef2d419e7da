//! Integration tests over generated image trees in temporary folders, and one
//! over the tutorial's real training photographs.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use gemstones_dataset::synth::{SynthConfig, encode_jpeg, render_gem};
use gemstones_dataset::*;

fn jpeg(class: usize, i: usize) -> Vec<u8> {
    let cfg = SynthConfig { min_size: 40, max_size: 60, ..SynthConfig::default() };
    encode_jpeg(&render_gem(&cfg, class, i).unwrap(), 85).unwrap()
}

fn png(class: usize, i: usize) -> Vec<u8> {
    let cfg = SynthConfig { min_size: 40, max_size: 60, ..SynthConfig::default() };
    let rgba = image::DynamicImage::ImageRgb8(render_gem(&cfg, class, i).unwrap()).into_rgba8();
    let mut out = Vec::new();
    rgba.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

/// Every visible file under `root`: relative path -> content.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for class in fs::read_dir(root).unwrap() {
        let class = class.unwrap().path();
        if !class.is_dir() {
            continue;
        }
        for f in fs::read_dir(&class).unwrap() {
            let f = f.unwrap().path();
            let rel = f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, fs::read(&f).unwrap());
        }
    }
    out
}

fn contents(t: &BTreeMap<String, Vec<u8>>) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = t.values().cloned().collect();
    v.sort();
    v
}

fn messy_tree(root: &Path) {
    write(root, "Ruby/ruby_1.jpg", &jpeg(0, 1));
    write(root, "Ruby/ruby_0.JPG", &jpeg(0, 2));
    write(root, "Ruby/IMG 7.jpeg", &jpeg(0, 3));
    write(root, "Ruby/photo-t.png", &png(0, 4));
    write(root, "Ruby/ruby_3.jpg", &jpeg(0, 5));
    write(root, "Garnet Red/garnet red_0.jpg", &jpeg(1, 1));
    write(root, "Garnet Red/x.jpg", &jpeg(1, 2));
    write(root, "Émeraude Vert/émeraude 1.jpg", &jpeg(2, 1));
    write(root, "Émeraude Vert/ÉMERAUDE VERT_2.jpg", &jpeg(2, 2));
}

#[test]
fn rename_keeps_canonical_names_numbers_the_rest_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    messy_tree(root);
    let before = tree(root);
    let plan = plan_rename(&scan(root).unwrap(), &RenameConfig::default()).unwrap();
    let text = plan.describe();
    let line = text.lines().find(|l| l.starts_with("IMG 7.jpeg")).unwrap();
    assert!(line.ends_with(" --> ruby_2.jpeg"), "{text}");
    // A dry run touches nothing.
    assert_eq!(tree(root), before);
    let summary = plan.execute().unwrap();
    assert_eq!((summary.renamed, summary.kept), (6, 3));
    let after = tree(root);
    let names: Vec<&str> = after.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "Garnet Red/garnet red_0.jpg",
            "Garnet Red/garnet red_1.jpg",
            "Ruby/ruby_0.jpg",
            "Ruby/ruby_1.jpg",
            "Ruby/ruby_2.jpeg",
            "Ruby/ruby_3.jpg",
            "Ruby/ruby_4.png",
            "Émeraude Vert/émeraude vert_0.jpg",
            "Émeraude Vert/émeraude vert_2.jpg",
        ]
    );
    // Names canonical but for case keep their number.
    assert_eq!(after["Ruby/ruby_0.jpg"], before["Ruby/ruby_0.JPG"]);
    assert_eq!(after["Émeraude Vert/émeraude vert_2.jpg"], before["Émeraude Vert/ÉMERAUDE VERT_2.jpg"]);
    assert_eq!(contents(&after), contents(&before));
    // The file that was already canonical kept its content.
    assert_eq!(after["Ruby/ruby_1.jpg"], before["Ruby/ruby_1.jpg"]);
    // Running again changes nothing.
    let again = rename(root, &RenameConfig::default()).unwrap();
    assert_eq!((again.renamed, again.kept), (0, 9));
    assert_eq!(tree(root), after);
}

#[test]
fn compact_rename_resolves_chains_and_case_collisions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Natural order: ruby_1, ruby_2, ruby_10 -> ruby_0, ruby_1, ruby_2: each
    // target is another file's current name.
    write(root, "Ruby/ruby_1.jpg", b"one");
    write(root, "Ruby/ruby_2.jpg", b"two");
    write(root, "Ruby/ruby_10.jpg", b"ten");
    let before = tree(root);
    let s = rename(root, &RenameConfig { compact: true, start: 0 }).unwrap();
    assert_eq!(s.renamed, 3);
    let after = tree(root);
    assert_eq!(after["Ruby/ruby_0.jpg"], b"one");
    assert_eq!(after["Ruby/ruby_1.jpg"], b"two");
    assert_eq!(after["Ruby/ruby_2.jpg"], b"ten");
    assert_eq!(contents(&after), contents(&before));
}

#[test]
fn cycles_in_a_plan_are_resolved_through_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "Ruby/a.jpg", b"A");
    write(root, "Ruby/b.jpg", b"B");
    write(root, "Ruby/c.jpg", b"C");
    write(root, "Ruby/d.jpg", b"D");
    let mv = |f: &str, t: &str| RenameMove { from: PathBuf::from(f), to: PathBuf::from(t) };
    let plan = RenamePlan {
        root: root.to_path_buf(),
        // a <-> b, and c -> d -> c.
        moves: vec![
            mv("Ruby/a.jpg", "Ruby/b.jpg"),
            mv("Ruby/b.jpg", "Ruby/a.jpg"),
            mv("Ruby/c.jpg", "Ruby/d.jpg"),
            mv("Ruby/d.jpg", "Ruby/c.jpg"),
        ],
        kept: 0,
    };
    plan.execute().unwrap();
    let t = tree(root);
    assert_eq!(
        [&t["Ruby/a.jpg"][..], &t["Ruby/b.jpg"], &t["Ruby/c.jpg"], &t["Ruby/d.jpg"]],
        [b"B", b"A", b"D", b"C"]
    );
    assert!(!journal_path(root).exists());
}

#[test]
fn a_plan_never_overwrites_a_file_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "Ruby/a.jpg", b"A");
    write(root, "Ruby/b.jpg", b"user's B");
    let plan = RenamePlan {
        root: root.to_path_buf(),
        moves: vec![RenameMove { from: "Ruby/a.jpg".into(), to: "Ruby/b.jpg".into() }],
        kept: 0,
    };
    let err = plan.execute().unwrap_err();
    assert!(matches!(err, Error::WouldOverwrite { .. }), "{err}");
    assert!(err.to_string().contains("b.jpg"));
    assert_eq!(fs::read(root.join("Ruby/b.jpg")).unwrap(), b"user's B");
    // The source is safe in its temporary; finishing is refused, not forced,
    // and the journal says where it is.
    let t: Vec<_> = fs::read_dir(root.join("Ruby")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(t.len(), 2, "{t:?}");
    assert!(journal_path(root).exists());
}

#[test]
fn an_interrupted_rename_completes_on_rerun_at_every_interruption_point() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template");
    messy_tree(&template);
    let reference = {
        let r = dir.path().join("reference");
        copy_tree(&template, &r);
        rename(&r, &RenameConfig::default()).unwrap();
        tree(&r)
    };
    let total_ops = 2 * 6; // two moves per renamed file
    for stop_after in 0..total_ops {
        let root = dir.path().join(format!("run{stop_after}"));
        copy_tree(&template, &root);
        let plan = plan_rename(&scan(&root).unwrap(), &RenameConfig::default()).unwrap();
        let err = plan.execute_until(&StopFlag::after_checks(stop_after)).unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
        let folder = scan(&root).unwrap();
        assert!(folder.rename_pending);
        assert!(plan_rename(&folder, &RenameConfig::default()).is_err());
        let s = rename(&root, &RenameConfig::default()).unwrap();
        assert!(s.resumed);
        assert_eq!(tree(&root), reference, "interrupted after {stop_after} moves");
    }
}

/// While an interrupted rename holds photos in hidden temporaries, nothing
/// uses the folder as if they were not there.
#[test]
fn a_folder_with_an_unfinished_rename_is_flagged_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("photos");
    messy_tree(&root);
    let plan = plan_rename(&scan(&root).unwrap(), &RenameConfig::default()).unwrap();
    let _ = plan.execute_until(&StopFlag::after_checks(2));
    let folder = scan(&root).unwrap();
    let report = verify(&folder, &DecodeLimits::default());
    assert!(report.problems.iter().any(|p| p.kind == ProblemKind::RenamePending), "{:?}", report.problems);
    let pre = PreprocessConfig { size: 32, ..PreprocessConfig::default() };
    for err in [
        preprocess_folder(&folder, &pre, &|_| {}, &StopFlag::new()).err(),
        load_or_build(&folder, &pre, &dir.path().join("c.cache"), &|_| {}, &StopFlag::new()).err(),
        split_folder(&folder, dir.path().join("split"), &SplitConfig::default()).err(),
    ] {
        assert!(err.as_ref().is_some_and(|e| e.to_string().contains("rename --apply")), "{err:?}");
    }
    rename(&root, &RenameConfig::default()).unwrap();
    assert!(preprocess_folder(&scan(&root).unwrap(), &pre, &|_| {}, &StopFlag::new()).is_ok());
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in tree(from) {
        write(to, &rel, &bytes);
    }
}

#[test]
fn verify_sorts_every_kind_of_bad_file_and_decodes_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let good = jpeg(0, 1);
    write(root, "Ruby/good.jpg", &good);
    write(root, "Ruby/really-a-png.jpg", &png(0, 2));
    write(root, "Ruby/empty.jpg", b"");
    write(root, "Ruby/notes.txt", b"bought in Jaipur, 2019\n");
    write(root, "Ruby/error-page.jpg", b"<!DOCTYPE html><html><body>403 Forbidden</body></html>");
    write(root, "Ruby/truncated.jpg", &good[..good.len() / 2]);
    let mut corrupt = good.clone();
    // Keep the JPEG signature (FF D8 FF), wreck the segments after it.
    for b in corrupt.iter_mut().skip(3).take(200) {
        *b = 0x55;
    }
    write(root, "Ruby/corrupt.jpg", &corrupt);
    write(root, "Ruby/copy of good.jpg", &good);
    fs::create_dir_all(root.join("Empty Class")).unwrap();

    let folder = scan(root).unwrap();
    assert_eq!(folder.empty_classes, ["Empty Class"]);
    let rep = verify(&folder, &DecodeLimits::default());
    let kinds: BTreeMap<String, ProblemKind> = rep
        .problems
        .iter()
        .map(|p| (p.path.file_name().unwrap().to_string_lossy().into_owned(), p.kind))
        .collect();
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("corrupt.jpg".into(), ProblemKind::Corrupt),
            ("empty.jpg".into(), ProblemKind::Empty),
            ("error-page.jpg".into(), ProblemKind::NotAnImage),
            ("notes.txt".into(), ProblemKind::NotAnImage),
            ("truncated.jpg".into(), ProblemKind::Truncated),
        ])
    );
    let png_named_jpg = rep.images.iter().find(|i| i.path.ends_with("really-a-png.jpg")).unwrap();
    assert_eq!(png_named_jpg.format, "png");
    assert!(png_named_jpg.extension_mismatch);
    assert_eq!(rep.images.len(), 3);
    let dups = rep.duplicates();
    assert_eq!(dups.len(), 1);
    assert_eq!(dups[0].redundant(), 1);
    // Problems name their file.
    assert!(rep.problems.iter().all(|p| p.to_string().contains(&*p.path.to_string_lossy())));
}

#[test]
fn split_is_seeded_stratified_idempotent_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("photos");
    for c in 0..3 {
        let name = ["Ruby", "Garnet Red", "Émeraude"][c];
        for i in 0..(10 + 7 * c) {
            write(&src, &format!("{name}/{}_{i}.jpg", name.to_lowercase()), &jpeg(c, i));
        }
    }
    let folder = scan(&src).unwrap();
    let cfg = SplitConfig::default();
    let a = split_folder(&folder, dir.path().join("a"), &cfg).unwrap();
    let b = split_folder(&folder, dir.path().join("b"), &cfg).unwrap();
    assert_eq!(a.files, b.files);
    let c = split_folder(&folder, dir.path().join("c"), &SplitConfig { seed: 7, ..cfg.clone() }).unwrap();
    assert_ne!(a.files, c.files);
    // Stratified: each class's test share is its largest-remainder count.
    let test = scan(dir.path().join("a/test")).unwrap();
    let train = scan(dir.path().join("a/train")).unwrap();
    let ratios = SplitRatios::train_test(0.9).unwrap();
    for (id, n) in folder.class_counts().into_iter().enumerate() {
        let (want, _) = ratios.allocate(n);
        assert_eq!([train.class_counts()[id], test.class_counts()[id]], [want[0], want[1]]);
    }
    // Copy leaves the source; the class index is written beside the split.
    assert_eq!(scan(&src).unwrap().files.len(), 10 + 17 + 24);
    assert_eq!(ClassIndex::load(dir.path().join("a/classes.json")).unwrap(), folder.classes);
    // A re-run into the same folder finds everything in place.
    let again = split_folder(&folder, dir.path().join("a"), &cfg).unwrap();
    assert_eq!(again.already_present, 51);
    // A different file at a destination is never overwritten.
    let victim = dir.path().join("a/train").join(&a.files[0].1[0]);
    fs::write(&victim, b"user's file").unwrap();
    let err = split_folder(&folder, dir.path().join("a"), &cfg).unwrap_err();
    assert!(matches!(err, Error::WouldOverwrite { .. }));
    assert_eq!(fs::read(&victim).unwrap(), b"user's file");
    // Move empties the source and keeps every file.
    let before = contents(&tree(&src));
    split_folder(&folder, dir.path().join("m"), &SplitConfig { mode: TransferMode::Move, ..cfg }).unwrap();
    assert_eq!(scan(&src).unwrap().files.len(), 0);
    let mut moved = contents(&tree(&dir.path().join("m/train")));
    moved.extend(contents(&tree(&dir.path().join("m/test"))));
    moved.sort();
    assert_eq!(moved, before);
}

#[test]
fn cross_split_leakage_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(r, "train/Ruby/a.jpg", &jpeg(0, 1));
    write(r, "train/Ruby/b.jpg", &jpeg(0, 2));
    write(r, "test/Ruby/leak.jpg", &jpeg(0, 2));
    let lim = DecodeLimits::default();
    let train = verify(&scan(r.join("train")).unwrap(), &lim);
    let test = verify(&scan(r.join("test")).unwrap(), &lim);
    let leaks = cross_split_duplicates(&[("train", &train), ("test", &test)]);
    assert_eq!(leaks.len(), 1);
    let splits: Vec<&str> = leaks[0].files.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(splits, ["train", "test"]);
}

#[test]
fn a_wrong_sized_buffer_is_the_caller_s_error_and_a_bad_file_its_own_problem() {
    let mut pp = Preprocessor::new(PreprocessConfig { size: 32, ..Default::default() }).unwrap();
    let photo = jpeg(0, 1);
    let mut short = vec![0u8; 100];
    let err = pp.process_bytes_into(&photo, Path::new("a.jpg"), &mut short).unwrap_err();
    assert!(matches!(err, Error::BadBuffer { got: 100, want } if want == 32 * 32 * 3), "{err}");
    let mut out = vec![0u8; 32 * 32 * 3];
    let problem = pp.process_bytes_into(b"not an image", Path::new("b.jpg"), &mut out).unwrap().unwrap_err();
    assert_eq!(problem.path, Path::new("b.jpg"));
    assert!(pp.process_bytes_into(&photo, Path::new("a.jpg"), &mut out).unwrap().is_ok());
}

#[test]
fn preparing_a_folder_without_class_folders_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("photos");
    write(&root, "loose.jpg", &jpeg(0, 0));
    let cfg = PreprocessConfig { size: 32, ..Default::default() };
    let cache = dir.path().join("c.cache");
    let prepare = || prepare_folder(&root, &cfg, &cache, EmptyClasses::LeaveOut, false, &StopFlag::new());
    let err = prepare().unwrap_err();
    assert!(matches!(&err, Error::NoClasses { path } if path == &root), "{err}");
    assert!(err.to_string().contains("photos"), "{err}");
    // Class folders that are all empty are said to be so, not "no class folders".
    fs::create_dir_all(root.join("Empty")).unwrap();
    fs::create_dir_all(root.join("Also Empty")).unwrap();
    let err = prepare().unwrap_err();
    assert!(matches!(&err, Error::AllClassesEmpty { count: 2, .. }), "{err}");
    assert!(err.to_string().contains("all 2 class folder(s) are empty"), "{err}");
    assert!(!cache.exists());
}

#[test]
fn a_stopped_preprocessing_is_cancelled_writes_no_cache_and_a_rerun_builds_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("train");
    for i in 0..12 {
        write(&root, &format!("Ruby/ruby_{i}.jpg"), &jpeg(0, i));
    }
    let cache = dir.path().join("train.cache");
    let cfg = PreprocessConfig { size: 32, ..Default::default() };
    let folder = scan(&root).unwrap();
    let done = std::sync::atomic::AtomicU64::new(0);
    let count = |n: u64| {
        done.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    };
    let stopped = load_or_build(&folder, &cfg, &cache, &count, &StopFlag::after_checks(3));
    assert!(matches!(stopped, Err(Error::Cancelled)), "{stopped:?}");
    assert!(!cache.exists());
    // The files after the stop were not preprocessed.
    assert!(done.load(std::sync::atomic::Ordering::SeqCst) < 12);
    let (built, outcome) = load_or_build(&folder, &cfg, &cache, &|_| {}, &StopFlag::new()).unwrap();
    assert_eq!((built.set.len(), outcome), (12, CacheOutcome::Built));
}

#[test]
fn cache_is_built_loaded_and_rebuilt_when_stale() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("train");
    for i in 0..4 {
        write(&root, &format!("Ruby/ruby_{i}.jpg"), &jpeg(0, i));
        write(&root, &format!("Émeraude/émeraude_{i}.jpg"), &jpeg(2, i));
    }
    write(&root, "Ruby/broken.jpg", b"not an image");
    let cache = dir.path().join("train.cache");
    let cfg = PreprocessConfig { size: 32, ..Default::default() };
    let folder = scan(&root).unwrap();
    let (built, o1) = load_or_build(&folder, &cfg, &cache, &|_| {}, &StopFlag::new()).unwrap();
    assert_eq!(o1, CacheOutcome::Built);
    assert_eq!(built.set.len(), 8);
    assert_eq!(built.problems.len(), 1);
    let (loaded, o2) = load_or_build(&folder, &cfg, &cache, &|_| {}, &StopFlag::new()).unwrap();
    assert_eq!(o2, CacheOutcome::Loaded);
    assert_eq!(loaded.set, built.set);
    assert_eq!(loaded.problems, built.problems);
    // Another configuration, another file content: rebuilt.
    let cfg2 = PreprocessConfig { size: 24, ..cfg };
    assert!(matches!(
        load_or_build(&folder, &cfg2, &cache, &|_| {}, &StopFlag::new()).unwrap().1,
        CacheOutcome::Rebuilt(_)
    ));
    write(&root, "Ruby/ruby_0.jpg", &jpeg(0, 9));
    let (re, o3) = load_or_build(&scan(&root).unwrap(), &cfg2, &cache, &|_| {}, &StopFlag::new()).unwrap();
    assert!(matches!(o3, CacheOutcome::Rebuilt(_)));
    assert_eq!(re.set.size(), 24);
    // A damaged cache is rebuilt, with the reason.
    let bytes = fs::read(&cache).unwrap();
    fs::write(&cache, &bytes[..bytes.len() - 10]).unwrap();
    match load_or_build(&scan(&root).unwrap(), &cfg2, &cache, &|_| {}, &StopFlag::new()).unwrap().1 {
        CacheOutcome::Rebuilt(why) => assert!(why.contains("train.cache"), "{why}"),
        other => panic!("{other:?}"),
    }
    fs::write(&cache, b"garbage").unwrap();
    let err = load_cache(&cache).unwrap_err().to_string();
    assert!(err.contains("train.cache"), "{err}");
}

/// A cache header whose image size and count would overflow the file-length
/// arithmetic is a bad cache, not a panic (or a wrapped length that matches).
#[test]
fn a_crafted_cache_header_with_huge_sizes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("train");
    write(&root, "Ruby/ruby_0.jpg", &jpeg(0, 0));
    write(&root, "Ruby/ruby_1.jpg", &jpeg(0, 1));
    let cache = dir.path().join("train.cache");
    let cfg = PreprocessConfig { size: 16, ..Default::default() };
    load_or_build(&scan(&root).unwrap(), &cfg, &cache, &|_| {}, &StopFlag::new()).unwrap();
    let bytes = fs::read(&cache).unwrap();
    let json_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[20..20 + json_len]).unwrap();
    for (size, count) in [(u32::MAX, usize::MAX), (u32::MAX, 2), (16, usize::MAX / 2)] {
        header["size"] = size.into();
        header["count"] = count.into();
        let json = serde_json::to_vec(&header).unwrap();
        let mut crafted = bytes[..12].to_vec();
        crafted.extend_from_slice(&(json.len() as u64).to_le_bytes());
        crafted.extend_from_slice(&json);
        crafted.extend_from_slice(&bytes[20 + json_len..]);
        fs::write(&cache, &crafted).unwrap();
        let err = load_cache(&cache).unwrap_err().to_string();
        assert!(err.contains("train.cache"), "{size} x {count}: {err}");
    }
}

#[test]
fn count_reports_like_the_tutorial() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("data");
    write(&r, "train/Ruby/a.jpg", b"x");
    write(&r, "train/Ruby/b.jpg", b"x");
    write(&r, "test/Ruby/c.jpg", b"x");
    let t = count_tree(&r).unwrap();
    assert!(t.to_text().starts_with("------------> data :   2 folders,   0 files\n"));
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["children"][1]["children"][0]["files"], 2);
}

/// Names that are not UTF-8 (possible on Linux) are skipped one by one and
/// reported; every other file is verified, renamed and split as usual.
#[test]
fn names_that_are_not_utf8_are_skipped_and_reported_never_fatal() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("photos");
    write(&root, "Ruby/a.jpg", &jpeg(0, 1));
    write(&root, "Ruby/b.jpg", &jpeg(0, 2));
    write(&root, "Garnet/c.jpg", &jpeg(1, 1));
    write(&root, "Garnet/d.jpg", &jpeg(1, 2));
    let bad_file = root.join("Ruby").join(std::ffi::OsStr::from_bytes(b"caf\xe9.jpg"));
    fs::write(&bad_file, jpeg(0, 3)).unwrap();
    let bad_class = root.join(std::ffi::OsStr::from_bytes(b"Rub\xff"));
    fs::create_dir_all(&bad_class).unwrap();
    fs::write(bad_class.join("e.jpg"), jpeg(0, 4)).unwrap();

    let folder = scan(&root).unwrap();
    assert_eq!(folder.classes.names(), ["Garnet", "Ruby"]);
    assert_eq!(folder.files.len(), 4);
    assert_eq!(folder.unusable_names.len(), 2);
    let report = verify(&folder, &DecodeLimits::default());
    assert_eq!(report.images.len(), 4);
    let kinds: Vec<_> = report.problems.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [ProblemKind::NameNotUtf8, ProblemKind::NameNotUtf8]);
    assert!(
        report.problems.iter().any(|p| p.to_string().contains("caf\u{fffd}.jpg")),
        "{:?}",
        report.problems
    );
    serde_json::to_vec(&report).unwrap();

    let renamed = rename(&root, &RenameConfig::default()).unwrap();
    assert_eq!(renamed.renamed, 4);
    assert!(bad_file.is_file() && bad_class.join("e.jpg").is_file(), "a skipped file was touched");
    let out = dir.path().join("split");
    let cfg = SplitConfig { ratios: SplitRatios::train_test(0.5).unwrap(), ..SplitConfig::default() };
    let split = split_folder(&scan(&root).unwrap(), &out, &cfg).unwrap();
    let placed: Vec<_> =
        split.files.iter().flat_map(|(_, f)| f).map(|p| p.to_string_lossy().into_owned()).collect();
    assert_eq!(placed.len(), 4);
    assert!(
        placed.iter().all(|p| p.starts_with("Garnet/garnet_") || p.starts_with("Ruby/ruby_")),
        "{placed:?}"
    );
}

/// A photo and its resized, re-encoded, slightly cropped and brightened
/// copies form one near-duplicate group; other stones on the same white
/// background stay apart.
#[test]
fn near_duplicates_survive_resizing_reencoding_cropping_and_brightening() {
    let dir = tempfile::tempdir().unwrap();
    let root = &dir.path().join("photos");
    let cfg = SynthConfig { min_size: 200, max_size: 240, ..SynthConfig::default() };
    let stone = render_gem(&cfg, 2, 7).unwrap();
    let (w, h) = stone.dimensions();
    let resized =
        image::imageops::resize(&stone, w * 3 / 5, h * 3 / 5, image::imageops::FilterType::Triangle);
    // 5 % off the width and the height, on one side.
    let cropped = image::imageops::crop_imm(&stone, w / 20, h / 20, w * 95 / 100, h * 95 / 100).to_image();
    let brightened = image::imageops::brighten(&stone, 25);
    write(root, "Ruby/original.jpg", &encode_jpeg(&stone, 92).unwrap());
    write(root, "Ruby/resized.jpg", &encode_jpeg(&resized, 92).unwrap());
    write(root, "Ruby/quality60.jpg", &encode_jpeg(&stone, 60).unwrap());
    write(root, "Ruby/cropped.jpg", &encode_jpeg(&cropped, 92).unwrap());
    write(root, "Ruby/brightened.jpg", &encode_jpeg(&brightened, 92).unwrap());
    for (class, i) in [(0, 1), (1, 2), (2, 8), (3, 3), (4, 4), (5, 5)] {
        write(
            root,
            &format!("Other/{class}-{i}.jpg"),
            &encode_jpeg(&render_gem(&cfg, class, i).unwrap(), 92).unwrap(),
        );
    }
    let report = verify(&scan(root).unwrap(), &DecodeLimits::default());
    let groups = report.near_duplicates(DEFAULT_MAX_DISTANCE);
    let names: Vec<Vec<String>> = groups
        .iter()
        .map(|g| g.files.iter().map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned()).collect())
        .collect();
    assert_eq!(
        names,
        [["brightened.jpg", "cropped.jpg", "original.jpg", "quality60.jpg", "resized.jpg"]],
        "{groups:?}"
    );
    assert!(groups[0].max_distance <= DEFAULT_MAX_DISTANCE);
    // A split keeps the group on one side (the tutorial's way would not).
    let cfg = SplitConfig {
        ratios: SplitRatios::train_test(0.5).unwrap(),
        small_class: SmallClassPolicy::Warn,
        ..SplitConfig::default()
    };
    let split = split_folder(&scan(root).unwrap(), dir.path().join("split"), &cfg).unwrap();
    assert_eq!(split.groups_kept_together, 1);
    assert!(split.unreadable.is_empty(), "{:?}", split.unreadable);
    let ruby_sides: Vec<usize> =
        split.files.iter().map(|(_, f)| f.iter().filter(|p| p.starts_with("Ruby")).count()).collect();
    assert_eq!(ruby_sides, [5, 0]);
    // Dropping near-duplicates places the group's largest photo (ties: the
    // first by name) and leaves the others in the source.
    let drop = SplitConfig { drop_near_duplicates: true, ..cfg.clone() };
    let split = split_folder(&scan(root).unwrap(), dir.path().join("dropped"), &drop).unwrap();
    let ruby: Vec<&PathBuf> =
        split.files.iter().flat_map(|(_, f)| f).filter(|p| p.starts_with("Ruby")).collect();
    assert_eq!(ruby, [&PathBuf::from("Ruby/brightened.jpg")]);
    assert_eq!(split.dropped.len(), 4);
    assert_eq!(scan(root).unwrap().files.len(), 11);
    let plain = SplitConfig { near_duplicates: None, ..cfg };
    let split = split_folder(&scan(root).unwrap(), dir.path().join("plain"), &plain).unwrap();
    assert!(split.files.iter().all(|(_, f)| f.iter().any(|p| p.starts_with("Ruby"))), "{:?}", split.files);
}

/// A file that does not decode is split as it is, like any file of the
/// folder, and named in the report (the split example prints it).
#[test]
fn a_split_names_the_files_that_are_not_readable_images() {
    let dir = tempfile::tempdir().unwrap();
    let root = &dir.path().join("photos");
    let cfg = SynthConfig { min_size: 40, max_size: 56, ..SynthConfig::default() };
    for (class, name) in [(0, "Ruby"), (1, "Jade")] {
        for i in 0..3 {
            write(
                root,
                &format!("{name}/{i}.jpg"),
                &encode_jpeg(&render_gem(&cfg, class, i).unwrap(), 90).unwrap(),
            );
        }
    }
    write(root, "Ruby/notes.jpg", b"not a photograph");
    let split_cfg = SplitConfig { ratios: SplitRatios::train_test(0.5).unwrap(), ..SplitConfig::default() };
    let split = split_folder(&scan(root).unwrap(), dir.path().join("split"), &split_cfg).unwrap();
    assert_eq!(split.unreadable, [PathBuf::from("Ruby/notes.jpg")]);
    let placed: usize = split.files.iter().map(|(_, f)| f.len()).sum();
    assert_eq!(placed, 7);
}

/// Each quality flag fires on a generated example made to have that
/// problem, and none on the plain generated stone or on an ordinary real
/// photograph.
#[test]
fn quality_flags_fire_on_their_problem_and_not_on_ordinary_photos() {
    let cfg = SynthConfig { min_size: 200, max_size: 240, ..SynthConfig::default() };
    let stone = render_gem(&cfg, 1, 4).unwrap();
    let (w, h) = stone.dimensions();
    let map = |f: &dyn Fn(u8) -> u8| {
        let mut img = stone.clone();
        img.pixels_mut().for_each(|p| p.0 = p.0.map(f));
        img
    };
    let grey =
        image::DynamicImage::ImageLuma8(image::DynamicImage::ImageRgb8(stone.clone()).to_luma8()).to_rgb8();
    let mut flat = image::RgbImage::from_pixel(w, h, image::Rgb([120, 40, 60]));
    flat.put_pixel(3, 3, image::Rgb([125, 42, 61]));
    let cases: [(QualityFlag, image::RgbImage); 7] = [
        (QualityFlag::Blurry, image::imageops::blur(&stone, 6.0)),
        (QualityFlag::Dark, map(&|v| v / 6)),
        (QualityFlag::WashedOut, map(&|v| 205 + v / 6)),
        (QualityFlag::Tiny, image::imageops::resize(&stone, 40, 40, image::imageops::FilterType::Triangle)),
        (
            QualityFlag::ExtremeAspect,
            image::imageops::resize(&stone, w * 2, h / 2, image::imageops::FilterType::Triangle),
        ),
        (QualityFlag::NearlyOneColour, flat),
        (QualityFlag::Grayscale, grey),
    ];
    let limits = QualityLimits::default();
    let plain = Quality::of(&image::DynamicImage::ImageRgb8(stone.clone()), &limits);
    assert!(plain.flags.is_empty(), "{plain:?}");
    for (flag, img) in cases {
        let q = Quality::of(&image::DynamicImage::ImageRgb8(img), &limits);
        assert!(q.flags.contains(&flag), "{flag} not raised: {q:?}");
    }
    if let Some(root) = gemstones_testkit::shared_train_dir() {
        let photo = root.join(ORDINARY_REAL_PHOTO);
        let img = image::ImageReader::open(&photo).unwrap().with_guessed_format().unwrap().decode().unwrap();
        let q = Quality::of(&img, &limits);
        assert!(q.flags.is_empty(), "{}: {q:?}", photo.display());
    }
}

/// A real photograph chosen for being ordinary (a cut stone on white).
const ORDINARY_REAL_PHOTO: &str = "Ruby/ruby_0.jpg";

/// The real training photographs: 87 classes, 2,856 files, three PNGs named
/// `.jpg`, 22 redundant duplicates, nothing undecodable.
#[test]
fn real_training_folder_counts() {
    let Some(root) = gemstones_testkit::shared_train_dir() else {
        gemstones_testkit::skip_or_fail(
            "real_training_folder_counts",
            "../shared/datasets/gemstones/train not found",
        );
        return;
    };
    let folder = scan(&root).unwrap();
    assert_eq!(folder.classes.len(), 87);
    assert_eq!(folder.files.len(), 2856);
    assert!(folder.empty_classes.is_empty());
    let counts = folder.class_counts();
    assert_eq!((counts.iter().min(), counts.iter().max()), (Some(&27), Some(&45)));
    let rep = verify(&folder, &DecodeLimits::default());
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    let mut pngs: Vec<String> = rep
        .images
        .iter()
        .filter(|i| i.format == "png")
        .map(|i| i.path.strip_prefix(&root).unwrap().to_string_lossy().into_owned())
        .collect();
    pngs.sort();
    assert_eq!(pngs, ["Almandine/almandine_21.jpg", "Variscite/variscite_32.jpg", "Zoisite/zoisite_21.jpg"]);
    assert!(rep.images.iter().filter(|i| i.format == "png").all(|i| i.extension_mismatch));
    let redundant: usize = rep.duplicates().iter().map(DuplicateGroup::redundant).sum();
    assert_eq!(redundant, 22);
}

#[test]
fn hidden_files_are_left_out_counted_and_named_the_same_way_everywhere() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("photos");
    write(&root, "Ruby/a.jpg", &jpeg(0, 1));
    write(&root, "Ruby/..jpg", &jpeg(0, 2));
    write(&root, "Ruby/...jpg", &jpeg(0, 3));
    write(&root, "Ruby/.DS_Store", b"finder");
    write(&root, ".hidden-class/b.jpg", &jpeg(1, 1));
    // The workspace's own temporary is neither a photo nor news.
    write(&root, "Ruby/.a.jpg.partial-1-2", &jpeg(0, 4));
    fs::write(root.join("Ruby").join(std::ffi::OsStr::from_bytes(b"caf\xe9.jpg")), jpeg(0, 5)).unwrap();

    let folder = scan(&root).unwrap();
    assert_eq!(folder.files.len(), 1);
    let hidden: Vec<String> =
        folder.hidden.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(hidden, [".hidden-class", "...jpg", "..jpg", ".DS_Store"]);
    let note = folder.hidden_note().unwrap();
    assert!(note.starts_with("left out 4 hidden file(s) or folder(s)"), "{note}");
    assert!(note.contains("..jpg"), "{note}");

    // The tree counts what the table counts, and says what it left out.
    let tree = count_tree(&root).unwrap();
    let ruby = tree.children.iter().find(|c| c.name == "Ruby").unwrap();
    assert_eq!(ruby.files, ClassTable::new(&[("photos", &folder)]).counts[0][0]);
    assert_eq!(ruby.left_out, 4); // ..jpg, ...jpg, .DS_Store, the non-UTF-8 name
    assert_eq!(tree.left_out, 1); // .hidden-class
    assert!(tree.to_text().contains("Ruby :   0 folders,   1 files (4 left out"), "{}", tree.to_text());
}
