//! The examples as a user runs them: real processes, their exit codes, a
//! closed pipe, Ctrl-C, and SIGKILL at random instants.
//!
//! `cargo test` builds the examples before it runs the tests; these tests
//! run those binaries (`target/<profile>/examples/<name>`).
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use gemstones::augment::AugmentConfig;
use gemstones::dataset::synth::{SynthConfig, default_classes, encode_jpeg, render_gem, write_synthetic_set};
use gemstones::dataset::{RenameConfig, journal_path, plan_rename, scan};
use rand::{Rng, SeedableRng};

/// The built example `name`.
pub(crate) fn example(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().join("examples").join(name);
    assert!(dir.is_file(), "{} is not built: run `cargo test` (it builds the examples)", dir.display());
    let mut c = Command::new(dir);
    c.env("RUST_LOG", "warn");
    c
}

pub(crate) fn run(c: &mut Command) -> Output {
    c.output().unwrap()
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every file under `root`, hidden ones included: relative path -> content.
pub(crate) fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn sorted<'a>(v: impl Iterator<Item = &'a Vec<u8>>) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = v.cloned().collect();
    v.sort();
    v
}

fn jpeg(class: usize, i: usize) -> Vec<u8> {
    let cfg = SynthConfig { min_size: 40, max_size: 56, ..SynthConfig::default() };
    encode_jpeg(&render_gem(&cfg, class, i).unwrap(), 85).unwrap()
}

/// `classes` folders of `per_class` small files each, with names that all
/// need renaming.
fn many_files(root: &Path, classes: usize, per_class: usize) {
    for c in 0..classes {
        let dir = root.join(format!("Class {c}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            std::fs::write(dir.join(format!("IMG {i}.JPG")), format!("class {c} photo {i}")).unwrap();
        }
    }
}

#[test]
fn count_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    many_files(dir.path(), 40, 2);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // `| head -0`: nobody reads
    let out = example("count").arg(dir.path()).stdout(writer).stderr(Stdio::piped()).output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Ended by SIGPIPE like any Unix tool (or exited cleanly), never 101.
    assert!(out.status.signal() == Some(libc::SIGPIPE) || out.status.success(), "{:?} {stderr}", out.status);
}

/// Every program's `--help` opens with what it does: its own about text,
/// not the doc comment of an argument group it flattens in.
#[test]
fn every_help_opens_with_what_the_program_does() {
    for (name, about) in [
        ("augment_preview", "Write a PNG of an image and N augmented versions of it"),
        ("count", "Count folders and files"),
        ("evaluate", "Evaluate a model directory on a test folder"),
        ("export", "Write a model directory as ONNX and TorchScript plus a JSON description"),
        ("fetch_dynamic", "Scrape gem photographs from a JavaScript-rendered site"),
        ("fetch_static", "Scrape gem photographs from a static catalogue site"),
        ("predict", "Top-k gem classes of images, as a table or JSON"),
        ("rename", "Rename files to <class name lower-cased>_<n>"),
        ("split", "Split class folders into train/val/test folders"),
        ("train", "Train a gem classifier from a folder of class folders"),
        ("verify", "Verify images by decoding them"),
        ("workflow", "The whole gemstones workflow, from photographs to a report"),
        ("demo_page", "Serve an exported gem classifier as a web page"),
        ("predict_onnx", "Top-k gem classes of photographs with an exported model (no libtorch)"),
    ] {
        let out = run(example(name).arg("--help"));
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let help = text(&out.stdout);
        assert!(help.lines().next().is_some_and(|first| first.starts_with(about)), "{name}: {help}");
    }
}

#[test]
fn an_unknown_preset_is_a_usage_error_listing_the_presets() {
    let out = example("train").args(["--photos", "nowhere", "--preset", "lite3"]).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for name in ["tutorial", "resnet", "lite0", "lite1", "lite2"] {
        assert!(stderr.contains(name), "{stderr}");
    }
}

#[test]
fn train_takes_augmentation_dropout_optimizer_weight_decay_and_ema_settings_and_refuses_a_misspelt_file() {
    let dir = tempfile::tempdir().unwrap();
    let photos = crate::support::tiny_photos(dir.path(), 2, 6);
    let train = |augment: &Path, out: &Path| {
        example("train")
            .args(["--preset", "resnet", "--input-size", "32", "--image-size", "36", "--epochs", "1"])
            .args(["--batch-size", "4", "--threads", "1", "--precision", "f32"])
            .arg("--photos")
            .arg(&photos)
            .arg("--out")
            .arg(out)
            .arg("--augment")
            .arg(augment)
            .args(["--dropout", "0.25", "--optimizer", "sgd", "--weight-decay", "0.125", "--ema", "0.99"])
            .output()
            .unwrap()
    };
    let typo = dir.path().join("typo.json");
    std::fs::write(&typo, r#"{"rotaton_range": 30}"#).unwrap();
    let out = train(&typo, &dir.path().join("refused"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("typo.json") && stderr.contains("rotaton_range"), "{stderr}");
    assert!(!dir.path().join("refused").exists(), "nothing is written for a refused run");

    let settings = dir.path().join("augment.json");
    std::fs::write(&settings, r#"{"rotation_range": 12.5, "vertical_flip": true}"#).unwrap();
    let model = dir.path().join("model");
    let out = train(&settings, &model);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    let expected = AugmentConfig { rotation_range: 12.5, vertical_flip: true, ..AugmentConfig::default() };
    assert_eq!(serde_json::from_value::<AugmentConfig>(saved["augment"].clone()).unwrap(), expected);
    assert_eq!(saved["model"]["dropout"], 0.25);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("last/state.json")).unwrap()).unwrap();
    assert_eq!(state["config"]["optimizer"]["weight_decay"], 0.125);
    assert_eq!(state["config"]["optimizer"]["kind"], "sgd");
    assert_eq!(state["config"]["ema"]["decay"], 0.99);
    assert!(model.join("last/ema.safetensors").is_file());
}

#[test]
fn verify_exits_3_when_it_finds_problems_and_0_when_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, bad) = (dir.path().join("clean"), dir.path().join("bad"));
    for root in [&clean, &bad] {
        std::fs::create_dir_all(root.join("Ruby")).unwrap();
        std::fs::write(root.join("Ruby/a.jpg"), jpeg(0, 1)).unwrap();
    }
    std::fs::write(bad.join("Ruby/broken.jpg"), &jpeg(0, 2)[..200]).unwrap();
    assert_eq!(run(example("verify").arg(&clean)).status.code(), Some(0));
    let out = run(example("verify").arg(&bad));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("broken.jpg"));
    // The same photo in two folders (train/test leakage) is a problem too.
    let test = dir.path().join("test");
    std::fs::create_dir_all(test.join("Ruby")).unwrap();
    std::fs::write(test.join("Ruby/copy.jpg"), jpeg(0, 1)).unwrap();
    let out = run(example("verify").arg(&clean).arg(&test));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    // So is a near-copy (resized, re-encoded) on the other side.
    let near = dir.path().join("near");
    std::fs::create_dir_all(near.join("Ruby")).unwrap();
    let big = SynthConfig { min_size: 200, max_size: 240, ..SynthConfig::default() };
    let photo = render_gem(&big, 3, 3).unwrap();
    std::fs::write(clean.join("Ruby/big.jpg"), encode_jpeg(&photo, 90).unwrap()).unwrap();
    let (w, h) = (photo.width() * 4 / 5, photo.height() * 4 / 5);
    let smaller = image::imageops::resize(&photo, w, h, image::imageops::FilterType::Triangle);
    std::fs::write(near.join("Ruby/smaller.jpg"), encode_jpeg(&smaller, 80).unwrap()).unwrap();
    let out = run(example("verify").arg(&clean).arg("--against").arg(&near));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("1 near-duplicate groups span more than one folder"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn count_and_verify_say_what_they_left_out_as_hidden() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("Ruby")).unwrap();
    std::fs::write(dir.path().join("Ruby/a.jpg"), jpeg(0, 1)).unwrap();
    std::fs::write(dir.path().join("Ruby/..jpg"), jpeg(0, 2)).unwrap();
    let count = run(example("count").arg(dir.path()));
    assert_eq!(count.status.code(), Some(0));
    assert!(text(&count.stderr).contains("left out 1 hidden file(s)"), "{}", text(&count.stderr));
    assert!(text(&count.stdout).contains("1 files (1 left out"), "{}", text(&count.stdout));
    let verify = run(example("verify").arg(dir.path()));
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
    assert!(text(&verify.stdout).contains("left out 1 hidden file(s)"), "{}", text(&verify.stdout));
    assert!(text(&verify.stdout).contains("..jpg"), "{}", text(&verify.stdout));
}

#[test]
fn verify_names_the_photos_whose_extension_names_another_format() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("Ruby")).unwrap();
    std::fs::write(dir.path().join("Ruby/a.jpg"), jpeg(0, 1)).unwrap();
    let png =
        render_gem(&SynthConfig { min_size: 40, max_size: 56, ..SynthConfig::default() }, 0, 2).unwrap();
    let mut bytes = Vec::new();
    png.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    std::fs::write(dir.path().join("Ruby/really-a-png.jpg"), bytes).unwrap();
    let out = run(example("verify").arg(dir.path()));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("1 named with another format's extension"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.contains("really-a-png.jpg") && l.contains("its content is png")),
        "{stdout}"
    );
}

#[test]
fn numeric_flags_out_of_range_are_usage_errors_naming_the_flag() {
    for (name, args, flag, range) in [
        ("fetch_static", vec!["--rps", "1e-12"], "--rps", "0.001..=10000"),
        ("fetch_static", vec!["--rps", "1e-300"], "--rps", "0.001..=10000"),
        ("fetch_static", vec!["--concurrency", "0"], "--concurrency", "1..=1024"),
        ("fetch_dynamic", vec!["--rps", "1e-300"], "--rps", "0.001..=10000"),
        ("fetch_dynamic", vec!["--page-timeout", "1e300"], "--page-timeout", "0.001..=86400"),
        ("predict", vec!["--model", "m", "-k", "0", "a.jpg"], "--k", "1..=1000"),
        ("train", vec!["--photos", "p", "--lr", "NaN"], "--lr", "..=10"),
        ("train", vec!["--photos", "p", "--val-fraction", "1"], "--val-fraction", "0..=0.9"),
        ("split", vec!["in", "out", "--ratio", "1", "0"], "--ratio", "0.000001..=1"),
        ("train", vec!["--photos", "p", "--progressive", "8"], "--progressive", "0 (off) nor in 16..=1024"),
        ("workflow", vec!["--demo", "9", "5"], "--demo", "2 to 8 classes"),
    ] {
        let out = run(example(name).args(&args));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(range), "{name} {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_scrape_into_a_file_or_from_an_unreachable_host_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"mine").unwrap();
    let out =
        run(example("fetch_static").arg("--out").arg(&file).arg("--start-url").arg("http://127.0.0.1:9/"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("a-file: is a file, not a folder"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    // A closed port: the scrape fails and writes no manifest.
    let photos = dir.path().join("photos");
    let out =
        run(example("fetch_static").arg("--out").arg(&photos).arg("--start-url").arg("http://127.0.0.1:9/"));
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!photos.join("manifest.jsonl").exists());
    // The browser scraper says the same, with the same exit code, before any
    // browser is asked to show an error page.
    let out = run(example("fetch_dynamic")
        .args(["--webdriver", "http://127.0.0.1:9", "--start-url", "http://127.0.0.1:9/"])
        .arg("--out")
        .arg(&photos));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not be reached"), "{stderr}");
    assert!(!photos.exists(), "{stderr}");
}

#[test]
fn a_rename_dry_run_reports_an_unfinished_rename_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("photos");
    many_files(&root, 2, 5);
    let plan = plan_rename(&scan(&root).unwrap(), &RenameConfig::default()).unwrap();
    let _ = plan.execute_until(&gemstones::dataset::StopFlag::after_checks(3));
    assert!(journal_path(&root).exists());
    let before = snapshot(&root);
    let out = run(example("rename").arg(&root));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("pending"), "{}", text(&out.stdout));
    assert_eq!(snapshot(&root), before, "the dry run wrote");
    // Counting and training say the rename must be finished first.
    let counted = run(example("count").arg(&root));
    assert_eq!(counted.status.code(), Some(3), "{}", text(&counted.stderr));
    assert!(text(&counted.stderr).contains("rename --apply"), "{}", text(&counted.stderr));
    let trained = run(example("train").arg("--photos").arg(&root).arg("--out").arg(dir.path().join("m")));
    assert_eq!(trained.status.code(), Some(1), "{}", text(&trained.stderr));
    assert!(text(&trained.stderr).contains("rename --apply"), "{}", text(&trained.stderr));
    assert_eq!(snapshot(&root), before, "count or train wrote");
    let out = run(example("rename").arg(&root).arg("--apply"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!journal_path(&root).exists());
}

/// SIGKILL the rename and split examples at random instants over a few
/// hundred files, re-run them, and check: every content exactly once,
/// nothing hidden left, the same result as an uninterrupted run.
#[test]
fn rename_and_split_killed_at_random_instants_finish_on_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let (classes, per_class) = (6, 50);
    let reference = dir.path().join("reference");
    many_files(&reference, classes, per_class);
    let original = sorted(snapshot(&reference).values());
    assert!(run(example("rename").arg(&reference).arg("--apply")).status.success());
    let renamed = snapshot(&reference);
    assert!(run(example("split").arg(&reference).arg(dir.path().join("reference-split"))).status.success());
    let split_reference = snapshot(&dir.path().join("reference-split"));

    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(13);
    let mut killed = 0;
    for attempt in 0..12 {
        let root = dir.path().join(format!("photos-{attempt}"));
        many_files(&root, classes, per_class);
        let out = dir.path().join(format!("split-{attempt}"));
        // Rename, killed somewhere in its first 60 ms, then split, killed
        // somewhere in its first 60 ms.
        for (args, delay) in [
            (vec![root.clone().into_os_string(), "--apply".into()], rng.random_range(0..60)),
            (vec![root.clone().into_os_string(), out.clone().into_os_string()], rng.random_range(0..60)),
        ] {
            let name = if args.len() == 2 && args[1] == "--apply" { "rename" } else { "split" };
            if name == "split" {
                // The split needs the finished rename first.
                let r = run(example("rename").arg(&root).arg("--apply"));
                assert!(r.status.success(), "rename re-run after a kill failed: {}", text(&r.stderr));
            }
            let mut child =
                example(name).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(delay));
            if child.try_wait().unwrap().is_none() {
                killed += 1;
            }
            let _ = child.kill();
            child.wait().unwrap();
        }
        let r = run(example("split").arg(&root).arg(&out));
        assert!(r.status.success(), "split re-run after a kill failed: {}", text(&r.stderr));
        assert_eq!(snapshot(&root), renamed, "attempt {attempt}: the renamed folder differs");
        assert_eq!(sorted(snapshot(&root).values()), original);
        let mut split = snapshot(&out);
        let mut want = split_reference.clone();
        for s in [&mut split, &mut want] {
            // The record names its own folders and counts re-found files.
            s.remove("split.json");
        }
        assert_eq!(split, want, "attempt {attempt}: the split differs from an uninterrupted one");
    }
    assert!(killed >= 6, "only {killed} of 24 runs were killed before they finished: raise the file count");
}

/// Ctrl-C during a split says how to finish it and exits 130; the re-run
/// finishes the same split.
#[test]
fn split_stopped_by_ctrl_c_says_so_and_finishes_on_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("photos");
    many_files(&root, 4, 150);
    assert!(run(example("rename").arg(&root).arg("--apply")).status.success());
    let out = dir.path().join("split");
    let child =
        example("split").arg(&root).arg(&out).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    // Interrupt once the split is under way (its record exists), or at once.
    let started = std::time::Instant::now();
    while !out.join("split.json").exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let stopped = child.wait_with_output().unwrap();
    assert!(!stopped.status.success(), "the split of 600 files finished before Ctrl-C: raise the file count");
    assert_eq!(stopped.status.code(), Some(130), "{}", text(&stopped.stderr));
    assert!(text(&stopped.stderr).contains("run the same command again"), "{}", text(&stopped.stderr));
    let again = run(example("split").arg(&root).arg(&out));
    assert!(again.status.success(), "{}", text(&again.stderr));
}

#[test]
fn train_exits_130_after_ctrl_c_with_its_checkpoint_saved() {
    let dir = tempfile::tempdir().unwrap();
    let photos = crate::support::tiny_photos(dir.path(), 3, 8);
    let model = dir.path().join("model");
    let mut child = example("train")
        .args(["--preset", "resnet", "--input-size", "32", "--image-size", "36", "--epochs", "500"])
        .args(["--batch-size", "8", "--threads", "1", "--precision", "f32"])
        .arg("--photos")
        .arg(&photos)
        .arg("--out")
        .arg(&model)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first_epoch = lines.by_ref().map_while(Result::ok).find(|l| l.starts_with("epoch"));
    assert!(first_epoch.is_some(), "training printed no epoch");
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(rest.iter().any(|l| l.starts_with("Interrupted")), "{rest:?}");
    assert!(model.join("last/state.json").is_file());
}

#[test]
fn predict_exit_codes_and_damaged_weights() {
    let dir = tempfile::tempdir().unwrap();
    let model = crate::support::tiny_model_dir(dir.path());
    let (good, bad) = (dir.path().join("good.jpg"), dir.path().join("bad.jpg"));
    std::fs::write(&good, jpeg(0, 9)).unwrap();
    std::fs::write(&bad, b"not a photo").unwrap();
    let predict = |inputs: &[&Path], model: &Path| {
        let mut c = example("predict");
        c.arg("--model").arg(model).args(inputs);
        run(&mut c)
    };
    assert_eq!(predict(&[&good], &model).status.code(), Some(0));
    assert_eq!(predict(&[&good, &bad], &model).status.code(), Some(3));
    let all_failed = predict(&[&bad], &model);
    assert_eq!(all_failed.status.code(), Some(1));
    assert!(text(&all_failed.stderr).contains("none of the 1 inputs"), "{}", text(&all_failed.stderr));

    // Without best.safetensors the last checkpoint's weights are used, and
    // the user is told.
    let best = model.join("best.safetensors");
    let kept = dir.path().join("best.kept");
    std::fs::rename(&best, &kept).unwrap();
    let out = predict(&[&good], &model);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no best.safetensors"), "{}", text(&out.stderr));
    std::fs::rename(&kept, &best).unwrap();

    // Weights whose header is intact but whose numbers are damaged (NaN
    // bytes) give an error naming the file, not NaN probabilities.
    let weights = model.join("best.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n - 4096..] {
        *b = 0xff;
    }
    std::fs::write(&weights, bytes).unwrap();
    let out = predict(&[&good], &model);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("best.safetensors"), "{}", text(&out.stderr));
}

#[test]
fn evaluate_exits_3_when_it_skipped_unreadable_photos_as_predict_does() {
    let dir = tempfile::tempdir().unwrap();
    let model = crate::support::tiny_model_dir(dir.path());
    let photos = dir.path().join("test");
    let class = photos.join(&default_classes()[0].name);
    std::fs::create_dir_all(&class).unwrap();
    for i in 0..2 {
        std::fs::write(class.join(format!("{i}.jpg")), jpeg(0, i)).unwrap();
    }
    let evaluate = |out: &str| {
        run(example("evaluate")
            .arg("--model")
            .arg(&model)
            .arg("--photos")
            .arg(&photos)
            .arg("--out")
            .arg(dir.path().join(out)))
    };
    let clean = evaluate("clean");
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean.stderr));
    std::fs::write(class.join("broken.jpg"), &jpeg(0, 3)[..150]).unwrap();
    let skipped = evaluate("skipped");
    assert_eq!(skipped.status.code(), Some(3), "{}", text(&skipped.stderr));
    assert!(text(&skipped.stdout).contains("broken.jpg"), "{}", text(&skipped.stdout));
    // The log says what it left out as hidden, without colour codes in a pipe.
    std::fs::write(class.join(".DS_Store"), b"finder").unwrap();
    let logged = evaluate("logged");
    assert!(text(&logged.stderr).contains("left out 1 hidden file(s)"), "{}", text(&logged.stderr));
    assert!(!text(&logged.stderr).contains('\u{1b}'), "{:?}", text(&logged.stderr));
}

#[test]
fn train_refusals_that_need_no_preprocessing_come_first_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // One class: refused, naming the folder; no cache, no model file.
    let one = dir.path().join("one");
    std::fs::create_dir_all(one.join("Ruby")).unwrap();
    std::fs::write(one.join("Ruby/a.jpg"), jpeg(0, 1)).unwrap();
    let out_dir = dir.path().join("runs/model");
    let out = run(example("train").arg("--photos").arg(&one).arg("--out").arg(&out_dir));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("holds 1 class(es) with photos"), "{}", text(&out.stderr));
    assert!(!dir.path().join("runs").exists(), "train wrote files before refusing one class");
    // Resuming a checkpoint with another preset: refused, naming what differs,
    // before any cache is built.
    let model = crate::support::tiny_model_dir(&dir.path().join("trained"));
    let photos = crate::support::tiny_photos(&dir.path().join("more"), 2, 3);
    let out = run(example("train")
        .arg("--photos")
        .arg(&photos)
        .arg("--out")
        .arg(&model)
        .arg("--preset")
        .arg("tutorial"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("network resnet -> tutorial-cnn") && stderr.contains("image size 36 -> 220"),
        "{stderr}"
    );
    let caches: Vec<_> = std::fs::read_dir(model.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cache"))
        .collect();
    assert!(caches.is_empty(), "a cache was built before refusing: {caches:?}");
    // The same network with other settings: each difference named.
    let out = run(example("train").arg("--photos").arg(&photos).arg("--out").arg(&model).args([
        "--preset",
        "resnet",
        "--image-size",
        "36",
        "--input-size",
        "40",
        "--dropout",
        "0.5",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("input_size 32 -> 40") && stderr.contains("dropout"), "{stderr}");
}

#[test]
fn evaluate_refuses_an_unknown_class_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let model = crate::support::tiny_model_dir(dir.path());
    let photos = dir.path().join("test");
    let known = &default_classes()[0].name;
    for class in [known.as_str(), "Unknown Stone"] {
        std::fs::create_dir_all(photos.join(class)).unwrap();
        std::fs::write(photos.join(class).join("a.jpg"), jpeg(0, 1)).unwrap();
    }
    let out_dir = dir.path().join("eval");
    let out = run(example("evaluate")
        .arg("--model")
        .arg(&model)
        .arg("--photos")
        .arg(&photos)
        .arg("--out")
        .arg(&out_dir));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Unknown Stone"), "{}", text(&out.stderr));
    assert!(!out_dir.exists(), "evaluate wrote into --out before failing");
}

#[test]
fn empty_class_folders_are_left_out_of_training_unless_asked() {
    use gemstones::dataset::{EmptyClasses, StopFlag, prepare_folder};
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    for (class, n) in [("Ruby", 2), ("Empty", 0), ("Garnet", 2)] {
        std::fs::create_dir_all(photos.join(class)).unwrap();
        for i in 0..n {
            std::fs::write(photos.join(class).join(format!("{i}.jpg")), jpeg(i, i)).unwrap();
        }
    }
    let pre = gemstones::dataset::PreprocessConfig { size: 32, ..Default::default() };
    let prepare = |cache: &str, empty| {
        prepare_folder(&photos, &pre, &dir.path().join(cache), empty, false, &StopFlag::new()).unwrap().0
    };
    let left_out = prepare("a.cache", EmptyClasses::LeaveOut);
    assert_eq!(left_out.set.classes().names(), ["Garnet", "Ruby"]);
    assert_eq!(left_out.set.len(), 4);
    let mut labels: Vec<_> = left_out.set.labels().to_vec();
    labels.sort();
    assert_eq!(labels, [0, 0, 1, 1]);
    let kept = prepare("b.cache", EmptyClasses::Keep);
    assert_eq!(kept.set.classes().names(), ["Empty", "Garnet", "Ruby"]);
}

/// SIGKILL the static scraper at random instants, re-run it, and check
/// every photo of the catalogue is saved exactly once (no `-1` copy of a
/// photo whose manifest row was lost), nothing hidden is left, and the
/// manifest names every saved file.
#[test]
fn a_scrape_killed_at_random_instants_finishes_on_rerun_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let catalogue = dir.path().join("catalogue");
    let synth = SynthConfig {
        per_class: 25,
        min_size: 40,
        max_size: 56,
        classes: default_classes().into_iter().take(4).collect(),
        ..SynthConfig::default()
    };
    write_synthetic_set(&catalogue, &synth).unwrap();
    let site = gemstones::scrape::DemoSite::start(&catalogue).unwrap();
    let scrape = |out: &Path| {
        let mut c = example("fetch_static");
        c.arg("--start-url").arg(site.start_url().as_str()).arg("--out").arg(out);
        c.args(["--rps", "2000", "--concurrency", "4"]).stdout(Stdio::null()).stderr(Stdio::piped());
        c
    };
    let photos_of = |out: &Path| {
        let mut s = snapshot(out);
        s.remove("manifest.jsonl");
        s
    };
    let reference = dir.path().join("reference");
    assert!(run(&mut scrape(&reference)).status.success());
    let want = photos_of(&reference);
    assert_eq!(want.len(), 100);

    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(29);
    let mut killed = 0;
    for attempt in 0..8 {
        let out = dir.path().join(format!("out-{attempt}"));
        let mut child = scrape(&out).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(20..400)));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill();
        child.wait().unwrap();
        let r = run(&mut scrape(&out));
        assert!(r.status.success(), "re-run after a kill failed: {}", text(&r.stderr));
        assert_eq!(photos_of(&out), want, "attempt {attempt}: photos lost, duplicated or hidden files left");
        let rows = gemstones::scrape::Manifest::read_rows(&out.join("manifest.jsonl")).unwrap();
        let mut saved: Vec<String> = rows.iter().filter_map(|r| r.file.clone()).collect();
        saved.sort();
        saved.dedup();
        assert_eq!(
            saved,
            want.keys().cloned().collect::<Vec<_>>(),
            "attempt {attempt}: manifest and files disagree"
        );
    }
    assert!(killed >= 4, "only {killed} of 8 scrapes were killed before they finished");
}

#[test]
fn a_scrape_that_finds_no_class_warns_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("catalogue");
    std::fs::create_dir_all(&empty).unwrap();
    let site = gemstones::scrape::DemoSite::start(&empty).unwrap();
    let out = run(example("fetch_static")
        .arg("--start-url")
        .arg(site.start_url().as_str())
        .arg("--out")
        .arg(dir.path().join("out"))
        .args(["--rps", "100"]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no class found"), "{}", text(&out.stderr));
    assert!(!dir.path().join("out/manifest.jsonl").exists(), "an empty manifest was left");
}

#[test]
fn export_writes_a_module_and_its_description_and_names_a_missing_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = crate::support::tiny_model_dir(dir.path());
    let out = dir.path().join("export");
    let done = run(example("export").arg("--model").arg(&model).arg("--out").arg(&out));
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(info["module"], "model.pt");
    assert_eq!(info["classes"].as_array().map(Vec::len), Some(2));
    assert!(tch::CModule::load(out.join("model.pt")).is_ok());

    // For a larger input side than it trained at: the description says it.
    let larger = dir.path().join("export-larger");
    let side = info["input"]["width"].as_u64().unwrap() + 8;
    let done = run(example("export")
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&larger)
        .args(["--input-size", &side.to_string()]));
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    let larger_info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(larger.join("model.json")).unwrap()).unwrap();
    assert_eq!(larger_info["input"]["width"].as_u64(), Some(side));
    assert_eq!(larger_info["input"]["height"].as_u64(), Some(side));

    // The same model again: said, nothing rewritten.
    let before = snapshot(&out);
    let again = run(example("export").arg("--model").arg(&model).arg("--out").arg(&out));
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("already holds this model's export"), "{}", text(&again.stdout));
    // Another model (same network, other weights) is refused; the export stays.
    let other = crate::support::tiny_model_dir_seeded(&dir.path().join("other"), 7);
    let refused = run(example("export").arg("--model").arg(&other).arg("--out").arg(&out));
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stdout));
    assert!(text(&refused.stderr).contains("holds another model's export"), "{}", text(&refused.stderr));
    assert_eq!(snapshot(&out), before);
    // An output path that is a file is named, not "File exists".
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"mine").unwrap();
    let not_a_folder = run(example("export").arg("--model").arg(&model).arg("--out").arg(&file));
    assert_eq!(not_a_folder.status.code(), Some(2));
    assert!(
        text(&not_a_folder.stderr).contains("a-file: refused as an output: is a file, not a folder"),
        "{}",
        text(&not_a_folder.stderr)
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");

    let missing =
        run(example("export").arg("--model").arg(dir.path().join("nothing")).arg("--out").arg(&out));
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("nothing"), "{}", text(&missing.stderr));
}

/// The final fit: `--val-fraction 0` trains on every photo, keeps the last
/// epoch, says so in the model directory, and the model predicts; `--folds`
/// scores the recipe by cross-validation instead.
#[test]
fn train_final_fit_on_every_photo_predicts_and_folds_cross_validate() {
    let dir = tempfile::tempdir().unwrap();
    let photos = crate::support::tiny_photos(dir.path(), 2, 6);
    let train = |extra: &[&str], out: &Path| {
        example("train")
            .args(["--preset", "resnet", "--input-size", "32", "--image-size", "36", "--epochs", "2"])
            .args(["--batch-size", "4", "--threads", "1", "--precision", "f32"])
            .arg("--photos")
            .arg(&photos)
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    };
    let model = dir.path().join("final");
    let out = train(&["--val-fraction", "0"], &model);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("final fit: all 12 photos trained on, no validation split"), "{stdout}");
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["validation"], serde_json::json!({"held_out": "nothing", "training_images": 12}));
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("last/state.json")).unwrap()).unwrap();
    assert_eq!(state["best_epoch"], 2, "the final fit keeps the last epoch");
    let photo = std::fs::read_dir(std::fs::read_dir(&photos).unwrap().next().unwrap().unwrap().path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let predicted = example("predict").arg("--model").arg(&model).arg(&photo).output().unwrap();
    assert!(predicted.status.success(), "{}", text(&predicted.stderr));
    assert!(text(&predicted.stdout).contains('%'), "{}", text(&predicted.stdout));

    let cv = dir.path().join("cv");
    let out = train(&["--folds", "2"], &cv);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("cross-validation: top-1 ") && stdout.contains("(2 of 2 folds)"), "{stdout}");
    let csv = std::fs::read_to_string(cv.join("crossval.csv")).unwrap();
    let first: Vec<&str> = csv.lines().map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(first, ["fold", "1", "2", "mean", "sd"], "{csv}");
    // The runs' fold networks scored together, without training.
    let together = dir.path().join("cv-together");
    let scored = example("evaluate")
        .arg("--runs")
        .args([&cv, &cv])
        .arg("--photos")
        .arg(&photos)
        .arg("--out")
        .arg(&together)
        .arg("--tta")
        .output()
        .unwrap();
    let stdout = text(&scored.stdout);
    assert!(scored.status.success(), "{}", text(&scored.stderr));
    assert!(
        stdout.contains("ensemble of 2 runs, mirror TTA: top-1 ") && stdout.contains("(2 of 2 folds)"),
        "{stdout}"
    );
    assert!(together.join("crossval.csv").is_file());
    // A plain model directory among the runs is named as such.
    let mixed = run(example("evaluate")
        .arg("--runs")
        .args([&cv, &model])
        .arg("--photos")
        .arg(&photos)
        .arg("--out")
        .arg(dir.path().join("mixed")));
    assert_eq!(mixed.status.code(), Some(1), "{}", text(&mixed.stderr));
    assert!(text(&mixed.stderr).contains("final: not a cross-validation run"), "{}", text(&mixed.stderr));
    assert!(!dir.path().join("mixed").exists(), "a refused evaluate wrote into its --out");
    let both = train(&["--folds", "2", "--val-fraction", "0.2"], &dir.path().join("both"));
    assert_eq!(both.status.code(), Some(2), "{}", text(&both.stderr));
}

/// A tiny trained model in `dir` (photos in `dir/photos`) and its export
/// by the `export` example: (model directory, export folder).
pub(crate) fn exported_tiny_model(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let model = crate::support::tiny_model_dir(dir);
    let export = dir.join("export");
    let done = run(example("export").arg("--model").arg(&model).arg("--out").arg(&export));
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    (model, export)
}

/// `export` writes model.onnx beside model.pt; `predict_onnx` (the
/// gemstones-predict crate's example, linked without libtorch) reads it and
/// names the same classes as `predict`, with or without `--low-memory`; a
/// photo it cannot read is named, with predict's exit code 3.
#[test]
fn predict_onnx_runs_an_export_without_libtorch_and_agrees_with_predict() {
    let dir = tempfile::tempdir().unwrap();
    let (model, out) = exported_tiny_model(dir.path());
    assert!(out.join("model.onnx").is_file());
    let binary = example("predict_onnx").get_program().to_owned();
    let ldd = run(Command::new("ldd").arg(&binary));
    assert!(ldd.status.success());
    assert!(!text(&ldd.stdout).contains("torch"), "{}", text(&ldd.stdout));

    let photos = dir.path().join("photos");
    let top1 = |output: &Output| -> Vec<String> {
        text(&output.stdout)
            .lines()
            .map(|l| l.split('\t').nth(1).unwrap_or("").split(' ').next().unwrap_or("").into())
            .collect()
    };
    let torch = run(example("predict").arg("--model").arg(&model).arg(&photos));
    let onnx = run(example("predict_onnx").arg("--model").arg(&out).arg(&photos));
    assert_eq!(onnx.status.code(), Some(0), "{}", text(&onnx.stderr));
    assert_eq!(top1(&onnx), top1(&torch));
    assert_eq!(top1(&onnx).len(), 12);
    // --low-memory changes only how memory is handed back, never an answer.
    let lean = run(example("predict_onnx").arg("--low-memory").arg("--model").arg(&out).arg(&photos));
    assert_eq!(lean.status.code(), Some(0), "{}", text(&lean.stderr));
    assert_eq!(text(&lean.stdout), text(&onnx.stdout));

    let not_a_photo = dir.path().join("notes.jpg");
    std::fs::write(&not_a_photo, "not an image").unwrap();
    let some = run(example("predict_onnx").arg("--model").arg(&out).arg(&photos).arg(&not_a_photo));
    assert_eq!(some.status.code(), Some(3), "{}", text(&some.stderr));
    assert!(text(&some.stdout).contains("notes.jpg\terror:"), "{}", text(&some.stdout));
    let none = run(example("predict_onnx").arg("--model").arg(&out).arg(&not_a_photo));
    assert_eq!(none.status.code(), Some(1));
    let no_model = run(example("predict_onnx").arg("--model").arg(&model).arg(&photos));
    assert_eq!(no_model.status.code(), Some(1));
    assert!(text(&no_model.stderr).contains("model.json"), "{}", text(&no_model.stderr));
}
