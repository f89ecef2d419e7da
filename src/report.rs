//! The workflow's `report.html`: the outcome first, then the scrape, the
//! dataset, augmentation, training and the evaluation, as tables and
//! pictures. One self-contained file: every picture is embedded, so it
//! still works when the run folder is moved or sent alone.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use gemstones_augment::AugmentConfig;
use gemstones_dataset::{
    ClassTable, DEFAULT_MAX_DISTANCE, DuplicateGroup, NearDuplicateGroup, QualityFlag, RenameSummary,
    SplitReport, TreeCount, VerifyReport,
};
use gemstones_model::{
    DEFAULT_MIN_CONFUSED, EvalFiles, Evaluation, Interpretation, ModelConfig, Prediction, TrainConfig,
    TrainReport,
};
use gemstones_scrape::ScrapeSummary;
use serde::Serialize;

/// One part of the report.
#[derive(Debug, Clone)]
pub struct Section {
    title: String,
    html: String,
}

/// The outcome, shown first: what a reader opens the report for.
#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    /// Top-1 accuracy on the test split.
    pub test_top1: f64,
    /// Top-5 accuracy on the test split.
    pub test_top5: f64,
    /// Macro F1 on the test split.
    pub macro_f1: f64,
    /// Test images.
    pub test_images: usize,
    /// Test images without a near-copy in the training data and their
    /// top-1, if any.
    pub clean_test: Option<(usize, f64)>,
    /// Classes.
    pub classes: usize,
    /// Training wall time over all its runs, in seconds.
    pub training_seconds: f64,
    /// The network, e.g. "efficientnet-lite, 4,119,167 parameters".
    pub model: String,
    /// The files worth opening, labelled.
    pub files: Vec<(String, PathBuf)>,
}

/// The report being assembled.
#[derive(Debug, Clone)]
pub struct Report {
    title: String,
    headline: Option<Headline>,
    sections: Vec<Section>,
    timings: Vec<(String, f64)>,
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;color:#222}\
h1{border-bottom:2px solid #a02040} h2{margin-top:2em;color:#a02040}\
table{border-collapse:collapse;margin:0.6em 0} td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
th{background:#f4f4f4} td.n{text-align:right}\
figure{display:inline-block;margin:0.5em;vertical-align:top} img{max-width:100%;border:1px solid #ddd}\
figcaption{font-size:0.85em;color:#555} .missing{color:#a02040}\
.kpi{display:inline-block;margin:0.3em 1em 0.3em 0;padding:0.6em 1em;background:#fbeef1;border-radius:6px}\
.kpi b{font-size:1.4em;display:block} .side{display:flex;gap:1.5em;align-items:flex-start;flex-wrap:wrap}\
.side>div{flex:1 1 320px} details{margin:0.6em 0} summary{cursor:pointer;color:#a02040}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn rel(path: &Path, base: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).to_string_lossy().replace('\\', "/")
}

/// A picture embedded as a data URI (so the page needs no other file), or
/// a visible note when the file cannot be read.
fn img(path: &Path, alt: &str) -> String {
    let body = match embedded(path) {
        Some(uri) => format!("<img src=\"{uri}\" alt=\"{}\">", esc(alt)),
        None => format!("<p class=\"missing\">(picture not available: {})</p>", esc(&path.to_string_lossy())),
    };
    format!("<figure>{body}<figcaption>{}</figcaption></figure>", esc(alt))
}

fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A PNG or JPEG file as a data URI.
fn embedded(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let mime = match image::guess_format(&bytes).ok()? {
        image::ImageFormat::Png => "image/png",
        image::ImageFormat::Jpeg => "image/jpeg",
        _ => return thumbnail(&bytes, path, u32::MAX),
    };
    Some(data_uri(mime, &bytes))
}

/// A photograph shrunk to `height` pixels (never enlarged) as a JPEG data
/// URI: the page stays small however large the photographs are.
fn thumbnail(bytes: &[u8], path: &Path, height: u32) -> Option<String> {
    let photo =
        gemstones_dataset::decode_rgb(bytes, path, &gemstones_dataset::DecodeLimits::default()).ok()?;
    let photo = if photo.height() > height {
        let width = (u64::from(photo.width()) * u64::from(height) / u64::from(photo.height().max(1))).max(1);
        image::imageops::thumbnail(&photo, width as u32, height)
    } else {
        photo
    };
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85).encode_image(&photo).ok()?;
    Some(data_uri("image/jpeg", &jpeg))
}

fn pct(v: f64) -> String {
    format!("{:.1} %", 100.0 * v)
}

/// An integer with thousands separators: 5041024 -> "5,041,024".
pub fn thousands(n: impl Into<i128>) -> String {
    let n: i128 = n.into();
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A duration as a person reads it: "0.4 s", "42 s", "12 min 5 s", "1 h 3 min".
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        _ if seconds < 9.95 => format!("{:.1} s", seconds.max(0.0)),
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// A table of rows of already-escaped cells under a header.
fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut h = String::from("<table><tr>");
    for c in header {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>");
    for row in rows {
        h.push_str("<tr>");
        for c in row {
            // Numbers right-aligned, text left-aligned.
            let class = if looks_numeric(&c) { " class=\"n\"" } else { "" };
            let _ = write!(h, "<td{class}>{c}</td>");
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    h
}

/// Whether a cell starts with a number ("5,041,024", "90.6 %", "2.1 s",
/// "1e-8"): such cells are right-aligned.
fn looks_numeric(cell: &str) -> bool {
    let first = cell.split_whitespace().next().unwrap_or_default().replace(',', "");
    // "inf" and "NaN" parse as floats but read as words.
    first.starts_with(|c: char| c.is_ascii_digit() || c == '-') && first.parse::<f64>().is_ok()
}

/// Settings as a two-column table, one row per leaf value, nested names
/// joined by dots ("random_erasing.p"); lists of numbers on one line;
/// `null` shown as "off".
pub fn settings_table(settings: &impl Serialize) -> String {
    let value = serde_json::to_value(settings).unwrap_or(serde_json::Value::Null);
    let mut rows = Vec::new();
    flatten("", &value, &mut rows);
    table(&["setting", "value"], rows.into_iter().map(|(k, v)| vec![esc(&k), esc(&v)]))
}

fn flatten(prefix: &str, value: &serde_json::Value, rows: &mut Vec<(String, String)>) {
    use serde_json::Value;
    let name = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&name(k), v, rows);
            }
        }
        Value::Array(items) if items.iter().any(|v| v.is_object()) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&name(&i.to_string()), v, rows);
            }
        }
        leaf => rows.push((prefix.to_string(), leaf_text(leaf))),
    }
}

fn leaf_text(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "off".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(leaf_text).collect::<Vec<_>>().join(", ")),
        Value::Object(_) => "{}".into(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(x)) => short_float(x),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
    }
}

/// A float as its shortest f32 text (settings are mostly f32: 0.15, not
/// 0.15000000596046448); small ones in exponent form (2e-5).
fn short_float(x: f64) -> String {
    let f = x as f32;
    if f != 0.0 && f.abs() < 1e-3 { format!("{f:e}") } else { format!("{f}") }
}

impl Report {
    /// An empty report.
    pub fn new(title: &str) -> Self {
        Self { title: title.into(), headline: None, sections: Vec::new(), timings: Vec::new() }
    }

    /// Set the outcome shown at the top.
    pub fn headline(&mut self, h: Headline) {
        self.headline = Some(h);
    }

    /// Add a section.
    pub fn push(&mut self, s: Section) {
        self.sections.push(s);
    }

    /// Record how long a stage took.
    pub fn timing(&mut self, stage: &str, seconds: f64) {
        self.timings.push((stage.into(), seconds));
    }

    /// Write the page atomically; file names in it are shown relative to
    /// `base` (the run folder).
    pub fn write(&self, path: &Path, base: &Path) -> std::io::Result<()> {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
             <style>{STYLE}</style></head><body><h1>{t}</h1>",
            t = esc(&self.title)
        );
        if let Some(headline) = &self.headline {
            h.push_str(&headline_html(headline, base));
        }
        let times: Vec<String> =
            self.timings.iter().map(|(s, t)| format!("{} {}", esc(s), duration(*t))).collect();
        let _ = write!(h, "<p>Stages and wall time: {}.</p><nav><ul>", times.join(" &middot; "));
        for (i, s) in self.sections.iter().enumerate() {
            let _ = write!(h, "<li><a href=\"#s{i}\">{}</a></li>", esc(&s.title));
        }
        h.push_str("</ul></nav>");
        for (i, s) in self.sections.iter().enumerate() {
            let _ = write!(h, "<h2 id=\"s{i}\">{}</h2>{}", esc(&s.title), s.html);
        }
        h.push_str("<p><small>Generated by <code>gemstones</code>.</small></p></body></html>\n");
        write_atomic(path, h.as_bytes())
    }
}

fn kpi(label: &str, value: &str) -> String {
    format!("<div class=\"kpi\">{}<b>{}</b></div>", esc(label), esc(value))
}

fn headline_html(o: &Headline, base: &Path) -> String {
    let mut h = String::from("<section id=\"outcome\">");
    h.push_str(&kpi("test top-1", &pct(o.test_top1)));
    h.push_str(&kpi("test top-5", &pct(o.test_top5)));
    h.push_str(&kpi("macro F1", &format!("{:.3}", o.macro_f1)));
    h.push_str(&kpi("test images", &thousands(o.test_images as i128)));
    h.push_str(&kpi("classes", &thousands(o.classes as i128)));
    h.push_str(&kpi("training time", &duration(o.training_seconds)));
    let _ = write!(h, "<p>Model: {}.", esc(&o.model));
    match o.clean_test {
        Some((n, top1)) => {
            let _ = write!(
                h,
                " Clean test ({} test images without a near-copy in the training data): top-1 {}.",
                thousands(n as i128),
                pct(top1)
            );
        }
        None => h.push_str(" Clean test: every test image has a near-copy in the training data."),
    }
    h.push_str("</p>");
    let files: Vec<String> = o
        .files
        .iter()
        .map(|(label, p)| format!("{}: <code>{}</code>", esc(label), esc(&rel(p, base))))
        .collect();
    let _ = write!(
        h,
        "<p>Files (in <code>{}</code>): {}.</p></section>",
        esc(&base.to_string_lossy()),
        files.join(", ")
    );
    h
}

impl Section {
    /// The scrape: pages, images, outcomes.
    pub fn scrape(s: &ScrapeSummary, site: Option<&str>) -> Self {
        let mut h = String::new();
        if let Some(site) = site {
            let _ = write!(
                h,
                "<p>Site: <code>{}</code>. Manifest: <code>{}</code>.</p>",
                esc(site),
                esc(&s.manifest.to_string_lossy())
            );
        }
        let n = |v: usize| thousands(v as i128);
        h.push_str(&table(
            &["pages", "classes", "images found", "saved", "already there", "duplicates", "off-host links"],
            [vec![
                n(s.pages),
                n(s.classes),
                n(s.images_found),
                n(s.saved),
                n(s.already_done),
                n(s.duplicates),
                n(s.off_host),
            ]],
        ));
        if !s.failed.is_empty() {
            h.push_str("<p>Failures by reason:</p>");
            h.push_str(&table(&["reason", "images"], s.failed.iter().map(|(k, v)| vec![esc(k), n(*v)])));
        }
        Self { title: "Scraping".into(), html: h }
    }

    /// Verify, rename, split and count.
    pub fn dataset(
        checked: &VerifyReport,
        dups: &[DuplicateGroup],
        renamed: &RenameSummary,
        split: &SplitReport,
        tree: &TreeCount,
        table_: &ClassTable,
        leaks: &[DuplicateGroup],
    ) -> Self {
        let n = |v: usize| thousands(v as i128);
        let mut h = String::new();
        let _ = write!(
            h,
            "<p>{} images decoded; {} files set aside (quarantine); {} groups of byte-identical files; \
             {} renamed to <code>&lt;class&gt;_&lt;n&gt;.&lt;ext&gt;</code> ({} already named); split with seed {} \
             ({} files already in place); <b>{}</b> images shared between train and test.</p>",
            n(checked.images.len()),
            n(checked.problems.len()),
            n(dups.len()),
            n(renamed.renamed),
            n(renamed.kept),
            split.config.seed,
            n(split.already_present),
            n(leaks.len())
        );
        if !checked.problems.is_empty() {
            h.push_str(&table(
                &["file set aside", "why"],
                checked
                    .problems
                    .iter()
                    .take(20)
                    .map(|p| vec![esc(&p.path.to_string_lossy()), esc(p.kind.as_str())]),
            ));
        }
        h.push_str("<h3>Images per class</h3>");
        h.push_str(&class_table(table_));
        h.push_str("<details><summary>Folders and files</summary>");
        let mut rows = Vec::new();
        tree_rows(tree, "", &mut rows);
        h.push_str(&table(&["folder", "folders", "files"], rows));
        h.push_str("</details>");
        Self { title: "Dataset".into(), html: h }
    }

    /// Near-duplicate groups (with their contact sheet, if drawn), how the
    /// split kept them, and the quality flags.
    pub fn near_duplicates(
        groups: &[NearDuplicateGroup],
        kept_together: usize,
        quality: &std::collections::BTreeMap<QualityFlag, usize>,
        sheet: Option<&Path>,
    ) -> Self {
        let mut h = String::new();
        let _ = write!(
            h,
            "<p>{} near-duplicate groups ({} photos: both perceptual hashes within {} bits); the split kept \
             {} groups on one side, so no test photo has a near-copy in train.</p>",
            thousands(groups.len() as i128),
            thousands(groups.iter().map(|g| g.files.len()).sum::<usize>() as i128),
            DEFAULT_MAX_DISTANCE,
            thousands(kept_together as i128)
        );
        if !quality.is_empty() {
            h.push_str("<p>Quality flags (a photo can have several):</p>");
            h.push_str(&table(
                &["flag", "photos"],
                quality.iter().map(|(f, n)| vec![esc(&f.to_string()), thousands(*n as i128)]),
            ));
        }
        if let Some(sheet) = sheet {
            h.push_str(&img(
                sheet,
                "near-duplicate groups, one per row, with their distance (names before renaming)",
            ));
        }
        Self { title: "Near-duplicates and quality".into(), html: h }
    }

    /// The augmentation preview and settings.
    pub fn augment(preview: &Path, cfg: &AugmentConfig) -> Self {
        let mut h = img(preview, "original and augmented versions of one training image");
        h.push_str(&settings_table(cfg));
        Self { title: "Augmentation".into(), html: h }
    }

    /// Training history, curves and settings.
    pub fn training(r: &TrainReport, model: &ModelConfig, cfg: &TrainConfig, curves: &Path) -> Self {
        let mut h = String::new();
        let (photos, kept) = if r.images.1 == 0 {
            (
                format!(
                    "final fit on all {} training images, no validation split",
                    thousands(r.images.0 as i128)
                ),
                "the last epoch's weights kept".to_string(),
            )
        } else {
            (
                format!(
                    "{} training and {} validation images",
                    thousands(r.images.0 as i128),
                    thousands(r.images.1 as i128)
                ),
                format!(
                    "best epoch {} (validation top-1 {})",
                    r.best_epoch,
                    r.best_val_top1.map_or("-".into(), pct)
                ),
            )
        };
        let _ = write!(
            h,
            "<p>{} with {} parameters; {photos}; {:?} after {} epochs ({} in this run{}); {kept}.</p>",
            esc(model.name()),
            thousands(r.parameters),
            r.stop,
            r.history.len(),
            duration(r.seconds),
            if r.resumed { ", resumed" } else { "" },
        );
        h.push_str(&img(curves, "accuracy and loss per epoch, training vs validation"));
        h.push_str(&table(
            &[
                "epoch",
                "input",
                "train loss",
                "train acc",
                "val loss",
                "val top-1",
                "val top-5",
                "lr",
                "time",
                "img/s",
            ],
            r.history.iter().map(|e| {
                vec![
                    e.epoch.to_string(),
                    e.input_size.to_string(),
                    format!("{:.3}", e.train_loss),
                    pct(e.train_acc),
                    e.val_loss.map_or("-".into(), |v| format!("{v:.3}")),
                    e.val_top1.map_or("-".into(), pct),
                    e.val_top5.map_or("-".into(), pct),
                    format!("{:.1e}", e.lr),
                    format!("{:.1} s", e.seconds),
                    format!("{:.0}", e.images_per_sec),
                ]
            }),
        ));
        let _ = write!(
            h,
            "<div class=\"side\"><div><h3>Network</h3>{}</div><div><h3>Training settings</h3>{}</div></div>",
            settings_table(model),
            settings_table(&TrainSettings(cfg))
        );
        Self { title: "Training".into(), html: h }
    }

    /// Test metrics, confusion matrix beside the most-confused pairs,
    /// confusable families, classes by F1, top losses, misclassified
    /// stones, predictions.
    pub fn evaluation(
        e: &Evaluation,
        clean: Option<&Evaluation>,
        files: &EvalFiles,
        preds: &[(PathBuf, String, Vec<Prediction>)],
        base: &Path,
    ) -> Self {
        let interpretation = e.interpret(DEFAULT_MIN_CONFUSED);
        let mut h = String::new();
        let _ = write!(
            h,
            "<p>{} test images: top-1 {}, top-5 {}, macro F1 {:.3}, loss {:.3}.",
            thousands(e.images as i128),
            pct(e.top1),
            pct(e.top5),
            e.macro_f1,
            e.loss
        );
        match clean {
            Some(c) => {
                let _ = write!(
                    h,
                    " Clean test (the {} test images without a near-copy in the training data): top-1 {}, \
                     top-5 {}, macro F1 {:.3}.",
                    thousands(c.images as i128),
                    pct(c.top1),
                    pct(c.top5),
                    c.macro_f1
                );
            }
            None => h.push_str(" Clean test: every test image has a near-copy in the training data."),
        }
        h.push_str("</p><div class=\"side\"><div>");
        h.push_str(&img(&files.confusion_png, "confusion matrix (rows: true class, columns: predicted)"));
        h.push_str("</div><div>");
        h.push_str(&interpretation_html(&interpretation));
        h.push_str("</div></div>");
        h.push_str(&img(
            &files.top_losses_png,
            "highest losses: true class / predicted as, probability / loss (fastai's plot_top_losses)",
        ));
        h.push_str(&img(&files.misclassified_png, "misclassified stones: true / predicted, confidence"));
        h.push_str("<h3>Classes by F1, worst first</h3>");
        h.push_str(&table(
            &["class", "F1", "precision", "recall", "images"],
            interpretation.classes_by_f1.iter().map(|m| {
                vec![
                    esc(&m.class),
                    format!("{:.2}", m.f1),
                    format!("{:.2}", m.precision),
                    format!("{:.2}", m.recall),
                    thousands(m.support as i128),
                ]
            }),
        ));
        h.push_str("<h3>Predictions on test photographs</h3>");
        h.push_str(&table(
            &["photograph", "true class", "top 3"],
            preds.iter().map(|(p, truth, top)| {
                let t: Vec<String> =
                    top.iter().map(|x| format!("{} {:.0} %", esc(&x.class), 100.0 * x.probability)).collect();
                let picture = std::fs::read(p).ok().and_then(|b| thumbnail(&b, p, 64)).map_or_else(
                    || "<span class=\"missing\">(unreadable)</span>".to_string(),
                    |uri| format!("<img src=\"{uri}\" alt=\"{}\" style=\"height:64px\">", esc(truth)),
                );
                vec![
                    format!(
                        "{picture} {}",
                        esc(&p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
                    ),
                    esc(truth),
                    t.join(", "),
                ]
            }),
        ));
        let file_list: Vec<String> = [
            &files.metrics,
            &files.interpretation,
            &files.per_class,
            &files.most_confused_csv,
            &files.misclassified_csv,
            &files.confusion_csv,
        ]
        .iter()
        .map(|p| format!("<code>{}</code>", esc(&rel(p, base))))
        .collect();
        let _ = write!(h, "<p>Files: {}.</p>", file_list.join(", "));
        Self { title: "Evaluation on the test split".into(), html: h }
    }
}

/// The training settings without the fields shown elsewhere (augmentation
/// has its own section) and with the pretrained file as a plain name.
struct TrainSettings<'a>(&'a TrainConfig);

impl Serialize for TrainSettings<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(self.0).map_err(serde::ser::Error::custom)?;
        if let Some(o) = v.as_object_mut() {
            o.remove("augment");
        }
        v.serialize(s)
    }
}

fn class_table(t: &ClassTable) -> String {
    let mut header: Vec<&str> = vec!["class"];
    header.extend(t.splits.iter().map(String::as_str));
    header.push("total");
    let row = |name: &str, vals: &[usize]| {
        let mut r = vec![esc(name)];
        r.extend(vals.iter().map(|v| thousands(*v as i128)));
        r.push(thousands(vals.iter().sum::<usize>() as i128));
        r
    };
    let mut rows: Vec<Vec<String>> = t.classes.iter().zip(&t.counts).map(|(c, v)| row(c, v)).collect();
    rows.push(row("total", &t.totals()));
    table(&header, rows)
}

fn tree_rows(t: &TreeCount, parent: &str, rows: &mut Vec<Vec<String>>) {
    let path = if parent.is_empty() { t.name.clone() } else { format!("{parent}/{}", t.name) };
    rows.push(vec![esc(&path), thousands(t.folders as i128), thousands(t.files as i128)]);
    for c in &t.children {
        tree_rows(c, &path, rows);
    }
}

fn interpretation_html(i: &Interpretation) -> String {
    let mut h = format!("<h3>Most confused (at least {} times)</h3>", i.min_count);
    if i.most_confused.is_empty() {
        h.push_str("<p>No pair of classes was confused that often.</p>");
    } else {
        h.push_str(&table(
            &["true class", "predicted as", "images", "share of the class"],
            i.most_confused
                .iter()
                .take(30)
                .map(|p| vec![esc(&p.true_class), esc(&p.predicted), p.count.to_string(), pct(p.share)]),
        ));
    }
    if !i.families.is_empty() {
        h.push_str("<h3>Confusable families</h3>");
        h.push_str(&table(
            &["classes", "images", "accuracy inside", "errors kept inside"],
            i.families.iter().map(|f| {
                vec![
                    esc(&f.classes.join(", ")),
                    thousands(f.images as i128),
                    pct(f.within_accuracy),
                    pct(f.errors_inside),
                ]
            }),
        ));
    }
    h
}

/// Write JSON, atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, v: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(v).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes)
}

/// The workspace's atomic writer, with this module's error type.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    gemstones_dataset::fsutil::write_atomic(path, bytes).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(5_041_024i64), "5,041,024");
        assert_eq!(thousands(999i64), "999");
        assert_eq!(thousands(-1_000i64), "-1,000");
        assert_eq!(thousands(0i64), "0");
        assert_eq!(duration(42.4), "42 s");
        assert_eq!(duration(0.43), "0.4 s");
        assert!(looks_numeric("5,041,024") && looks_numeric("90.6 %") && looks_numeric("1e-8"));
        assert!(!looks_numeric("Garnet Red") && !looks_numeric("[0.5, 1]") && !looks_numeric("off"));
        assert!(!looks_numeric("NaN") && !looks_numeric("inf"));
        assert_eq!(duration(725.0), "12 min 5 s");
        assert_eq!(duration(3_780.0), "1 h 3 min");
    }

    #[test]
    fn settings_become_one_row_per_value() {
        let html = settings_table(&AugmentConfig::strong());
        assert!(!html.contains('{'), "{html}");
        assert!(html.contains("<td>random_erasing.p</td>"), "{html}");
        assert!(html.contains("<td>zoom_range</td><td>[0.9, 1.1]</td>"), "{html}");
        assert!(html.contains("<td>rotation_range</td><td class=\"n\">30</td>"), "{html}");
        assert!(html.contains("<td>off</td>"), "{html}");
        assert!(html.contains("<td>color_jitter.brightness</td><td class=\"n\">0.15</td>"), "{html}");
        assert_eq!(short_float(2e-5), "2e-5");
        assert_eq!(short_float(0.1f32 as f64), "0.1");
    }

    #[test]
    fn pictures_are_embedded_and_a_missing_one_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("a.png");
        gemstones_dataset::save_png(&image::RgbImage::new(4, 3), &png).unwrap();
        assert!(img(&png, "a").contains("src=\"data:image/png;base64,"));
        let missing = img(&dir.path().join("gone.png"), "gone");
        assert!(missing.contains("picture not available") && !missing.contains("<img"), "{missing}");
    }
}
