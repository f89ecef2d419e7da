//! Our pages in a real browser: headless Chromium through chromedriver
//! (the same ones the scraping tests use). Under CI (`GEMSTONES_CI`) a
//! missing chromedriver fails the test; elsewhere it is skipped loudly.
use std::path::Path;

use fantoccini::wd::WebDriverCompatibleCommand;

/// What the browser saw on a page.
#[derive(Debug)]
pub struct PageCheck {
    /// Messages of level SEVERE in the browser's console (failed loads,
    /// script errors).
    pub console_errors: Vec<String>,
    /// `src` (abbreviated) of each image that did not load (natural
    /// width 0).
    pub broken_images: Vec<String>,
    /// Images on the page.
    pub images: usize,
    /// The page's visible text.
    pub text: String,
    /// A PNG screenshot of the first screen.
    pub screenshot: Vec<u8>,
}

/// chromedriver's console log (`goog:loggingPrefs`), which W3C WebDriver
/// has no command for.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// Open `page` (a local file) in headless Chromium at `width x height`;
/// `None` when chromedriver is not installed (outside CI).
pub fn open(page: &Path, (width, height): (u32, u32)) -> Option<PageCheck> {
    let driver = gemstones_testkit::ChromeDriver::start(&format!("the browser check of {}", page.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    Some(rt.block_on(check(driver.port, page, width, height)))
}

/// A headless Chromium session through chromedriver on `port`, its window
/// `width x height`; the profile folder lives as long as the session.
pub async fn session(port: u16, width: u32, height: u32) -> (fantoccini::Client, tempfile::TempDir) {
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={width},{height}"),
        ]}),
    );
    caps.insert("goog:loggingPrefs".into(), serde_json::json!({ "browser": "ALL" }));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = fantoccini::ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromedriver session");
    (client, profile)
}

async fn check(port: u16, page: &Path, width: u32, height: u32) -> PageCheck {
    let (client, _profile) = session(port, width, height).await;
    let url = url::Url::from_file_path(page.canonicalize().unwrap()).unwrap();
    client.goto(url.as_str()).await.unwrap();
    // Every image decoded (or failed) before looking.
    let images = client
        .execute(
            "return Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))\
             .then(() => Array.from(document.images).map(i => [i.naturalWidth, i.src.slice(0, 60)]));",
            vec![],
        )
        .await
        .unwrap();
    let images: Vec<(u64, String)> = serde_json::from_value(images).unwrap();
    let text = client.execute("return document.body.innerText;", vec![]).await.unwrap();
    let log = client.issue_cmd(BrowserLog).await.unwrap();
    let screenshot = client.screenshot().await.unwrap();
    client.close().await.unwrap();
    PageCheck {
        console_errors: log
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect(),
        broken_images: images.iter().filter(|(w, _)| *w == 0).map(|(_, s)| s.clone()).collect(),
        images: images.len(),
        text: text.as_str().unwrap_or_default().to_string(),
        screenshot,
    }
}

#[test]
fn the_browser_check_sees_a_broken_page() {
    // The check must be able to fail: a page with a missing picture and a
    // script error.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><p>hello</p><img src=\"gone.png\"><script>nosuch();</script></body></html>",
    )
    .unwrap();
    let Some(seen) = open(&page, (800, 600)) else { return };
    assert_eq!(seen.images, 1);
    assert_eq!(seen.broken_images.len(), 1, "{seen:?}");
    assert!(seen.console_errors.len() >= 2, "{:?}", seen.console_errors);
    assert!(seen.text.contains("hello"));
    assert!(seen.screenshot.starts_with(b"\x89PNG"));
}

/// The demo page as a person uses it: `demo_page` serves a tiny model's
/// export on loopback; a photo picked through the page's file input shows
/// the crop the model saw and the same top-1 as `predict`; a text file, an
/// empty file, a truncated photo and one above `--max-mb` each show a
/// message on the page (and the server keeps serving).
#[test]
fn the_demo_page_shows_predicts_top_class_and_names_bad_uploads() {
    use crate::examples::{example, exported_tiny_model, run, text};

    let dir = tempfile::tempdir().unwrap();
    let (model, export) = exported_tiny_model(dir.path());
    let photo = first_photo(&dir.path().join("photos"));
    let predicted = run(example("predict").arg("--model").arg(&model).arg(&photo));
    assert!(predicted.status.success(), "{}", text(&predicted.stderr));
    let predict_top1 =
        text(&predicted.stdout).split('\t').nth(1).unwrap().split(' ').next().unwrap().to_string();

    let Some(driver) = gemstones_testkit::ChromeDriver::start("the demo page's browser test") else { return };
    let (_server, url) = start_demo_page(&export, &["--max-mb", "1"]);

    let uploads = dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    let notes = uploads.join("notes.txt");
    std::fs::write(&notes, "not a photograph").unwrap();
    let empty = uploads.join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let truncated = uploads.join("truncated.jpg");
    let bytes = std::fs::read(&photo).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let huge = uploads.join("huge.jpg");
    std::fs::write(&huge, vec![0u8; 1024 * 1024 + 1]).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (top1, errors, screenshot) = rt.block_on(async {
        let (client, _profile) = session(driver.port, 1000, 700).await;
        client.goto(&url).await.unwrap();
        let heading = client.find(fantoccini::Locator::Css("#model")).await.unwrap().text().await.unwrap();
        assert!(
            heading.starts_with("resnet, 2 classes") && heading.contains("accuracy: not given"),
            "{heading}"
        );
        let top1 = upload_and_read(&client, &photo, "#result:not([hidden]) #top li .class").await;
        let crop_width =
            client.execute("return document.getElementById('crop').naturalWidth;", vec![]).await.unwrap();
        assert!(crop_width.as_u64().unwrap_or(0) > 0, "the crop did not load");
        let screenshot = client.screenshot().await.unwrap();
        let mut errors = Vec::new();
        for bad in [&notes, &empty, &truncated, &huge] {
            errors.push(upload_and_read(&client, bad, "#error:not(:empty)").await);
            let hidden =
                client.execute("return document.getElementById('result').hidden;", vec![]).await.unwrap();
            assert_eq!(hidden, serde_json::Value::Bool(true), "a result shown after {}", bad.display());
        }
        // Still serving after the bad uploads.
        assert_eq!(upload_and_read(&client, &photo, "#result:not([hidden]) #top li .class").await, top1);
        let log = client.issue_cmd(BrowserLog).await.unwrap();
        client.close().await.unwrap();
        // The 4xx answers are logged by Chromium as failed loads; nothing else.
        for entry in log.as_array().into_iter().flatten().filter(|e| e["level"] == "SEVERE") {
            let message = entry["message"].as_str().unwrap_or_default();
            assert!(message.contains("/predict - Failed to load resource"), "{message}");
        }
        (top1, errors, screenshot)
    });
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(shots.join("demo-page.png"), &screenshot).unwrap();
    assert_eq!(top1, predict_top1, "the page and predict disagree");
    assert!(errors[0].contains("not a photograph this page can read"), "{}", errors[0]);
    assert!(errors[1].contains("The upload is empty"), "{}", errors[1]);
    assert!(errors[2].contains("not a photograph this page can read"), "{}", errors[2]);
    assert!(errors[3].contains("larger than 1 MB"), "{}", errors[3]);
}

/// Kills the served example when the test ends, passed or not.
/// `demo_page` serving `export` on a free loopback port with `options`:
/// the running server (killed when dropped) and its URL.
pub(crate) fn start_demo_page(export: &Path, options: &[&str]) -> (DemoPage, String) {
    use std::io::BufRead;
    let mut child = crate::examples::example("demo_page")
        .arg("--model")
        .arg(export)
        .args(["--port", "0"])
        .args(options)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (DemoPage(child), url)
}

/// A running `demo_page`, killed when dropped.
pub(crate) struct DemoPage(std::process::Child);

impl Drop for DemoPage {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first photograph of the first class folder.
pub(crate) fn first_photo(photos: &Path) -> std::path::PathBuf {
    let class = std::fs::read_dir(photos).unwrap().map(|e| e.unwrap().path()).min().unwrap();
    std::fs::read_dir(class).unwrap().map(|e| e.unwrap().path()).min().unwrap()
}

/// Pick `file` in the page's file input and return the text of the first
/// element matching `shown` once it appears (at most 30 s).
async fn upload_and_read(client: &fantoccini::Client, file: &Path, shown: &str) -> String {
    // Clear what the last upload showed, so the wait sees this one's.
    client
        .execute(
            "document.getElementById('error').textContent = ''; \
             document.getElementById('result').hidden = true; document.getElementById('file').value = '';",
            vec![],
        )
        .await
        .unwrap();
    let input = client.find(fantoccini::Locator::Css("#file")).await.unwrap();
    input.send_keys(&file.canonicalize().unwrap().display().to_string()).await.unwrap();
    let element = client
        .wait()
        .at_most(std::time::Duration::from_secs(30))
        .for_element(fantoccini::Locator::Css(shown))
        .await
        .unwrap_or_else(|e| panic!("{shown} did not appear after uploading {}: {e}", file.display()));
    element.text().await.unwrap()
}
