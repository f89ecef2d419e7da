//! Where page HTML comes from: plain HTTP, or a browser through WebDriver.
use std::future::Future;

use url::Url;

use crate::error::{Error, Result};
use crate::fetch::Http;

/// Something that turns a page URL into the HTML a scraper reads.
pub trait PageSource: Send + Sync {
    /// The page's HTML; a browser first waits (up to its timeout) for an
    /// element matching `wait_for` to appear.
    fn html(&self, url: &Url, wait_for: Option<&str>) -> impl Future<Output = Result<String>> + Send;

    /// Whether several pages may be read at once (a browser session shows
    /// one page at a time: no).
    fn concurrent(&self) -> bool {
        false
    }
}

/// Pages as the server sends them, through the polite HTTP client.
pub struct StaticSource<'a> {
    http: &'a Http,
}

impl<'a> StaticSource<'a> {
    /// Pages fetched with `http`.
    pub fn new(http: &'a Http) -> Self {
        Self { http }
    }
}

impl PageSource for StaticSource<'_> {
    fn concurrent(&self) -> bool {
        true
    }

    async fn html(&self, url: &Url, _wait_for: Option<&str>) -> Result<String> {
        let f = self
            .http
            .get(url)
            .await
            .map_err(|e| Error::Fetch { url: url.to_string(), reason: e.to_string() })?;
        Ok(String::from_utf8_lossy(&f.bytes).into_owned())
    }
}

/// Pages rendered by a real browser (chromedriver, geckodriver), read once
/// a given element has appeared.
#[cfg(feature = "webdriver")]
pub struct WebDriverSource {
    client: fantoccini::Client,
    timeout: std::time::Duration,
    webdriver: String,
}

#[cfg(feature = "webdriver")]
impl WebDriverSource {
    /// Open a session on the WebDriver at `webdriver_url` (plain HTTP,
    /// usually local). Chrome and Chromium run headless. `timeout` bounds
    /// the wait for an element.
    pub async fn connect(webdriver_url: &str, timeout: std::time::Duration) -> Result<Self> {
        let err = |reason: String| Error::WebDriver { url: webdriver_url.to_string(), reason };
        let mut caps = serde_json::Map::new();
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.push(format!(
            "--user-data-dir={}",
            std::env::temp_dir().join(format!("gemstones-chrome-{}", std::process::id())).display()
        ));
        let mut chrome = serde_json::json!({ "args": args });
        if let Ok(bin) = std::env::var("CHROME_BIN") {
            chrome["binary"] = serde_json::Value::String(bin);
        }
        caps.insert("goog:chromeOptions".into(), chrome);
        caps.insert("moz:firefoxOptions".into(), serde_json::json!({ "args": ["-headless"] }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(webdriver_url)
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(Self { client, timeout, webdriver: webdriver_url.to_string() })
    }

    /// End the browser session.
    pub async fn close(self) -> Result<()> {
        self.client.close().await.map_err(|e| Error::WebDriver { url: self.webdriver, reason: e.to_string() })
    }
}

#[cfg(feature = "webdriver")]
impl PageSource for WebDriverSource {
    async fn html(&self, url: &Url, wait_for: Option<&str>) -> Result<String> {
        let err = |reason: String| Error::WebDriver { url: url.to_string(), reason };
        self.client.goto(url.as_str()).await.map_err(|e| err(e.to_string()))?;
        if let Some(sel) = wait_for {
            self.client
                .wait()
                .at_most(self.timeout)
                .for_element(fantoccini::Locator::Css(sel))
                .await
                .map_err(|e| err(format!("waiting for {sel}: {e}")))?;
        }
        self.client.source().await.map_err(|e| err(e.to_string()))
    }
}
