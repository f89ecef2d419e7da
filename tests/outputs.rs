//! The output rule as a user meets it (docs/reliability.md, "Outputs"):
//! every example refuses, with exit 2 and before any work, an output path
//! that is a photograph, lies inside the photos it reads, holds them, or
//! holds anything but its own earlier output; and an export that does not
//! match its description is refused when loaded.
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::browser::first_photo;
use crate::examples::{example, exported_tiny_model, run, snapshot, text};

fn args(parts: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_os_string()).collect()
}

#[test]
fn no_output_flag_replaces_a_photo_or_writes_inside_the_photos() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let photos = crate::support::tiny_photos(root, 2, 6);
    let photo = first_photo(&photos);
    let class = photo.parent().unwrap().to_path_buf();
    let other_photo = std::fs::read_dir(&class).unwrap().map(|e| e.unwrap().path()).max().unwrap();
    // A hard link to a photo outside the folder, a link to the folder, and
    // an export to run predict_onnx with.
    let linked = root.join("elsewhere.jpg");
    std::fs::hard_link(&photo, &linked).unwrap();
    let link = root.join("link");
    std::os::unix::fs::symlink(&photos, &link).unwrap();
    let class_name = class.file_name().unwrap();
    let through_link = link.join(class_name).join("..").join(class_name).join("");
    let model = root.join("m");
    let nowhere = root.join("nowhere");
    let cases: Vec<(&str, Vec<OsString>)> = vec![
        ("train", args(&[&"--photos", &photos, &"--out", &model, &"--cache", &photo])),
        ("train", args(&[&"--photos", &photos, &"--out", &model, &"--cache", &linked])),
        ("train", args(&[&"--photos", &photos, &"--out", &photos])),
        ("train", args(&[&"--photos", &photos, &"--out", &class])),
        ("train", args(&[&"--photos", &photos, &"--out", &through_link])),
        ("train", args(&[&"--photos", &photos, &"--out", &root])),
        ("train", args(&[&"--photos", &photos, &"--folds", &"3", &"--out", &class])),
        ("verify", args(&[&photos, &"--json", &photo])),
        ("verify", args(&[&photos, &"--sheet", &other_photo])),
        ("verify", args(&[&photos, &"--json", &linked])),
        ("augment_preview", args(&[&photo, &"--out", &photo])),
        ("augment_preview", args(&[&photo, &"--out", &linked])),
        ("evaluate", args(&[&"--model", &nowhere, &"--photos", &photos, &"--out", &class])),
        ("evaluate", args(&[&"--runs", &nowhere, &"--photos", &photos, &"--out", &photos])),
        ("export", args(&[&"--model", &nowhere, &"--out", &photos])),
        ("export", args(&[&"--model", &nowhere, &"--out", &class])),
        ("workflow", args(&[&"--photos", &photos, &"--run-dir", &photos.join("run")])),
        ("workflow", args(&[&"--photos", &photos, &"--run-dir", &root])),
        ("predict_onnx", args(&[&"--model", &nowhere, &"--save-inputs", &photo, &photos])),
        ("predict_onnx", args(&[&"--model", &nowhere, &"--save-inputs", &linked, &photos])),
    ];
    let photos_before = snapshot(&photos);
    let linked_before = std::fs::read(&linked).unwrap();
    for (program, arguments) in &cases {
        let out = run(example(program).args(arguments));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{program} {arguments:?}: {stderr}");
        assert!(stderr.contains("refused as an output"), "{program} {arguments:?}: {stderr}");
        assert_eq!(snapshot(&photos), photos_before, "{program} {arguments:?} changed the photos");
        assert_eq!(std::fs::read(&linked).unwrap(), linked_before, "{program} {arguments:?}");
        assert!(!model.exists(), "{program} {arguments:?} wrote its model directory");
    }
}

#[test]
fn outputs_replace_their_own_earlier_files_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let photos = crate::support::tiny_photos(dir.path(), 2, 4);
    let (json, sheet) = (dir.path().join("report.json"), dir.path().join("sheet.png"));
    for _ in 0..2 {
        let out = run(example("verify").arg(&photos).arg("--json").arg(&json).arg("--sheet").arg(&sheet));
        assert!(matches!(out.status.code(), Some(0 | 3)), "{}", text(&out.stderr));
    }
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(written["written_by"], "gemstones verify");
    // Someone else's JSON and PNG under those names are left alone.
    std::fs::write(&json, br#"{"my": "notes"}"#).unwrap();
    let theirs = image::RgbImage::new(4, 4);
    theirs.save(&sheet).unwrap();
    let sheet_before = std::fs::read(&sheet).unwrap();
    for flag in ["--json", "--sheet"] {
        let path = if flag == "--json" { &json } else { &sheet };
        let out = run(example("verify").arg(&photos).arg(flag).arg(path));
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("exists and is not"), "{}", text(&out.stderr));
    }
    assert_eq!(std::fs::read(&json).unwrap(), br#"{"my": "notes"}"#);
    assert_eq!(std::fs::read(&sheet).unwrap(), sheet_before);
    // A folder of someone else's files is no model directory.
    let mine = dir.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("curves.png"), b"my drawing").unwrap();
    let out = run(example("train").arg("--photos").arg(&photos).arg("--out").arg(&mine));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not empty and was not written by a gemstones program"));
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 1);
}

/// `train --folds` with more folds than the photos can fill is refused
/// before any fold trains, naming the fold, instead of failing in libtorch.
#[test]
fn too_many_folds_for_the_photos_are_refused_before_any_fold_trains() {
    let dir = tempfile::tempdir().unwrap();
    let photos = crate::support::tiny_photos(dir.path(), 2, 6);
    let out_dir = dir.path().join("cv");
    let out = run(example("train")
        .args(["--preset", "resnet", "--input-size", "32", "--image-size", "36", "--epochs", "1"])
        .args(["--threads", "1", "--folds", "20", "--out"])
        .arg(&out_dir)
        .arg("--photos")
        .arg(&photos));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("of 20 would hold out 0") && stderr.contains("use fewer folds"), "{stderr}");
    assert!(!out_dir.join("fold-1").exists());
}

/// The flags whose help says 0 turns them off take 0; a validation share
/// the trainer refuses is refused before preprocessing writes a cache.
#[test]
fn off_values_parse_and_impossible_settings_are_refused_before_any_cache() {
    let dir = tempfile::tempdir().unwrap();
    let photos = crate::support::tiny_photos(dir.path(), 2, 4);
    let nowhere = dir.path().join("nowhere");
    for flags in [["--progressive", "0"], ["--mixup", "0"]] {
        let out = run(example("train")
            .arg("--photos")
            .arg(&nowhere)
            .arg("--out")
            .arg(dir.path().join("m"))
            .args(flags));
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("nowhere"), "{flags:?}: {}", text(&out.stderr));
    }
    let out_dir = dir.path().join("runs/model");
    let out = run(example("train")
        .arg("--photos")
        .arg(&photos)
        .arg("--out")
        .arg(&out_dir)
        .args(["--val-fraction", "0.9"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("val_fraction"), "{}", text(&out.stderr));
    assert!(!dir.path().join("runs").exists(), "a refused run wrote into runs/");
}

/// An export interrupted before its model.json (written last) is finished
/// by the next run; a model.json that does not describe the ONNX file
/// beside it, or describes an input no machine could hold, is refused at
/// load by name.
#[test]
fn exports_are_finished_after_an_interruption_and_checked_when_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let (model, export) = exported_tiny_model(dir.path());
    let photo = first_photo(&dir.path().join("photos"));
    let read = |name: &str| std::fs::read(export.join(name)).unwrap();
    let (description_bytes, onnx_bytes) = (read("model.json"), read("model.onnx"));
    std::fs::remove_file(export.join("model.json")).unwrap();
    std::fs::write(export.join("model.onnx"), b"half an onnx file").unwrap();
    let again = run(example("export").arg("--model").arg(&model).arg("--out").arg(&export));
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!((read("model.json"), read("model.onnx")), (description_bytes, onnx_bytes));

    let predict = |folder: &Path| run(example("predict_onnx").arg("--model").arg(folder).arg(&photo));
    let ok = predict(&export);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    // The saved inputs are a .npy array, replaced by the next run.
    let inputs = dir.path().join("inputs.npy");
    for _ in 0..2 {
        let saved = run(example("predict_onnx")
            .arg("--model")
            .arg(&export)
            .arg("--save-inputs")
            .arg(&inputs)
            .arg(&photo));
        assert_eq!(saved.status.code(), Some(0), "{}", text(&saved.stderr));
    }
    assert!(std::fs::read(&inputs).unwrap().starts_with(b"\x93NUMPY"));
    let description: serde_json::Value =
        serde_json::from_slice(&std::fs::read(export.join("model.json")).unwrap()).unwrap();
    let altered = |name: &str, change: &dyn Fn(&mut serde_json::Value)| {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(export.join("model.onnx"), folder.join("model.onnx")).unwrap();
        let mut d = description.clone();
        change(&mut d);
        std::fs::write(folder.join("model.json"), serde_json::to_vec(&d).unwrap()).unwrap();
        folder
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            altered("fewer-classes", &|d| {
                d["classes"].as_array_mut().unwrap().pop();
            }),
            "lists 1 classes but",
        ),
        (altered("another-onnx", &|d| d["onnx_blake3"] = "0".repeat(64).into()), "its BLAKE3 differs"),
        (altered("huge-input", &|d| d["input"]["width"] = 100_000.into()), "input width 100000 is not in"),
        (altered("huge-crop", &|d| d["preprocess"]["size"] = 100_000.into()), "preprocess size 100000"),
        (altered("no-class", &|d| d["classes"] = serde_json::json!([])), "lists no class"),
        (altered("twice", &|d| d["classes"] = serde_json::json!(["A", "A"])), "listed twice"),
        (altered("elsewhere", &|d| d["onnx"] = "../model.onnx".into()), "a file name beside model.json"),
    ];
    for (folder, says) in cases {
        let out = predict(&folder);
        assert_eq!(out.status.code(), Some(1), "{}: {}", folder.display(), text(&out.stderr));
        assert!(text(&out.stderr).contains(says), "{}: {}", folder.display(), text(&out.stderr));
    }
}

/// The demo page handles at most `--max-in-flight` uploads at once: one
/// more gets 503 at once, before its body is read, and the page serves
/// again once the first upload is done.
#[test]
fn the_demo_page_turns_away_uploads_beyond_its_limit() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (_, export) = exported_tiny_model(dir.path());
    let (_server, url) = crate::browser::start_demo_page(&export, &["--max-in-flight", "1"]);
    let address = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let post = |body_sent: &[u8], length: usize| {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        write!(
            stream,
            "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        stream.write_all(body_sent).unwrap();
        stream
    };
    let status = |stream: &mut std::net::TcpStream| {
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    // The first upload sends half its body and waits: it holds the one
    // place once the server has its headers (asked again until then).
    let mut slow = post(b"half", 8);
    let started = std::time::Instant::now();
    let busy = loop {
        let answer = status(&mut post(b"12345678", 8));
        if answer.starts_with("HTTP/1.1 503") || started.elapsed().as_secs() > 20 {
            break answer;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    assert!(busy.contains("busy"), "{busy}");
    // The first upload finishes (not a photo: 422), and the place is free again.
    slow.write_all(b"more").unwrap();
    let first = status(&mut slow);
    assert!(first.starts_with("HTTP/1.1 422"), "{first}");
    let after = status(&mut post(b"12345678", 8));
    assert!(after.starts_with("HTTP/1.1 422"), "{after}");
}
