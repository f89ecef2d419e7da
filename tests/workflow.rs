//! The whole workflow at a tiny size: every artefact exists and parses.
use gemstones::model::StopFlag;
use gemstones::workflow::{PhotoSource, WorkflowConfig, WorkflowOutcome, run};

/// The report, moved away from its run folder, opened in headless
/// Chromium: no console error, every picture loaded, the outcome on the
/// first screen. The screenshot is kept in target/tmp.
fn report_works_alone_in_a_browser(report: &std::path::Path, out: &WorkflowOutcome) {
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = elsewhere.path().join("report.html");
    std::fs::copy(report, &moved).unwrap();
    let Some(seen) = crate::browser::open(&moved, (1280, 900)) else { return };
    assert!(seen.console_errors.is_empty(), "{:?}", seen.console_errors);
    assert!(seen.broken_images.is_empty(), "{:?}", seen.broken_images);
    assert!(seen.images >= 6, "{} images", seen.images);
    let top1 = format!("{:.1} %", 100.0 * out.test_top1);
    for figure in ["test top-1", top1.as_str(), "test top-5", "macro F1", "training time", "Most confused"] {
        assert!(seen.text.contains(figure), "no {figure:?} in the page");
    }
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-first-screen.png");
    std::fs::write(&shot, &seen.screenshot).unwrap();
    eprintln!("screenshot of the report: {}", shot.display());
}

/// The demo workflow at a tiny size: 3 classes of `per_class` photos,
/// `epochs` epochs at `input` pixels (cached a fifth larger), no progress
/// bars.
fn tiny_workflow(run_dir: &std::path::Path, per_class: usize, epochs: usize, input: u32) -> WorkflowConfig {
    let mut cfg = WorkflowConfig::demo(run_dir);
    cfg.source = PhotoSource::Demo { classes: 3, per_class };
    cfg.epochs = Some(epochs);
    cfg.input_size = Some(input);
    cfg.image_size = Some(input + input / 5);
    // One thread, as every training in this test binary (see tiny_train).
    cfg.threads = Some(1);
    cfg.progress = false;
    cfg
}

#[test]
fn the_whole_workflow_runs_end_to_end_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let cfg = tiny_workflow(&run_dir, 14, 1, 40);
    let mut lines = Vec::new();
    let out = run(&cfg, StopFlag::new(), &mut |l| lines.push(l.to_string())).unwrap();
    assert!(lines.iter().any(|l| l.starts_with("scraped")), "{lines:#?}");

    for f in [
        "catalogue",
        "photos/manifest.jsonl",
        "data/train",
        "data/test",
        "data/split.json",
        "data/classes.json",
        "cache/train.cache",
        "cache/test.cache",
        "augment_preview.png",
        "model/config.json",
        "model/best.safetensors",
        "model/history.csv",
        "model/curves.png",
        "eval/metrics.json",
        "eval/per_class.csv",
        "eval/confusion.csv",
        "eval/confusion.png",
        "eval/misclassified.csv",
        "eval/misclassified.png",
        "predictions.json",
        "workflow.json",
        "report.html",
    ] {
        assert!(run_dir.join(f).exists(), "missing {f}");
    }
    for png in ["augment_preview.png", "model/curves.png", "eval/confusion.png", "eval/misclassified.png"] {
        image::open(run_dir.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("eval/metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["images"].as_u64(), Some(out.test_images as u64));
    // 10 % of 14 per class is 1.4: largest remainders give 13 train, 1 test.
    assert_eq!(out.test_images, 3);
    assert!(out.clean_test_images <= out.test_images);
    assert!(lines.iter().any(|l| l.starts_with("clean test")) || out.clean_test_images == 0, "{lines:?}");
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("model/history.json")).unwrap()).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1);
    let rows = gemstones::scrape::Manifest::read_rows(&run_dir.join("photos/manifest.jsonl")).unwrap();
    assert_eq!(rows.len(), 42);
    // Every picture the report shows exists.
    let html = std::fs::read_to_string(&out.report).unwrap();
    assert!(
        html.contains("Near-duplicates and quality") && html.contains("near-duplicate groups ("),
        "no near-duplicate section"
    );
    assert!(lines.iter().any(|l| l.contains("near-duplicate groups")), "{lines:?}");
    let srcs: Vec<&str> = html.split("src=\"").skip(1).map(|s| &s[..s.find('"').unwrap()]).collect();
    assert!(srcs.len() >= 6);
    for s in srcs {
        assert!(s.starts_with("data:image/"), "report links a file: {}", &s[..s.len().min(80)]);
    }
    assert!(!html.contains("picture not available"), "a picture is missing");
    report_works_alone_in_a_browser(&out.report, &out);

    // Again with the same folder: everything is already done.
    let mut again = Vec::new();
    let out2 = run(&cfg, StopFlag::new(), &mut |l| again.push(l.to_string())).unwrap();
    assert!(again.iter().any(|l| l.starts_with("photographs: already collected")), "{again:#?}");
    assert!(again.iter().any(|l| l.contains("renamed 0 files")), "{again:#?}");
    assert_eq!(out2.test_top1, out.test_top1);
    // Other settings in the same folder are refused.
    let final_fit = WorkflowConfig { val_fraction: Some(0.0), ..cfg.clone() };
    let err = run(&final_fit, StopFlag::new(), &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("val_fraction"), "{err}");
    let other = WorkflowConfig { seed: 1, ..cfg };
    let err = run(&other, StopFlag::new(), &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("seed"), "{err}");
}

#[test]
fn the_workflows_final_fit_trains_on_every_training_photo() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let cfg = WorkflowConfig { val_fraction: Some(0.0), ..tiny_workflow(&run_dir, 10, 2, 32) };
    let mut lines = Vec::new();
    let out = run(&cfg, StopFlag::new(), &mut |l| lines.push(l.to_string())).unwrap();
    // 10 % of 10 per class is one test photo each; the other 27 all train.
    assert_eq!(out.test_images, 3);
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("model/config.json")).unwrap()).unwrap();
    assert_eq!(spec["validation"]["held_out"], "nothing", "{spec}");
    assert_eq!(spec["validation"]["training_images"], 27, "{spec}");
    assert!(
        lines.iter().any(|l| l.contains("final fit on all 27 training photos, last epoch kept of 2")),
        "{lines:#?}"
    );
    let html = std::fs::read_to_string(&out.report).unwrap();
    assert!(
        html.contains("final fit on all 27 training images, no validation split"),
        "no final fit in the report"
    );
    assert!(
        html.contains("the last epoch&#39;s weights kept") || html.contains("the last epoch's weights kept")
    );
    // The test split still scores it.
    assert!(run_dir.join("eval/metrics.json").exists());
}
