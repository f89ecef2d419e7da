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
