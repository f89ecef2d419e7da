//! HTTP with manners: a per-host rate limit, robots.txt, timeouts, retries
//! with backoff and jitter, `Retry-After`, a size cap.
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

use crate::error::{Error, Result};

/// How politely and patiently to fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FetchConfig {
    /// The User-Agent sent, and the agent robots.txt rules are matched for.
    pub user_agent: String,
    /// Downloads in flight at once.
    pub concurrency: usize,
    /// Requests per second to any one host (never exceeded).
    pub per_host_rps: f64,
    /// Connection timeout, seconds.
    pub connect_timeout: f64,
    /// Whole-request timeout, seconds.
    pub timeout: f64,
    /// Retries after the first attempt (timeouts, connection errors, 429,
    /// 5xx; never other 4xx).
    pub retries: u32,
    /// First backoff, seconds; doubled each retry, with +-50 % jitter.
    pub backoff: f64,
    /// Longest wait between attempts, `Retry-After` included, seconds.
    pub max_backoff: f64,
    /// Largest accepted response body, bytes.
    pub max_bytes: u64,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
    /// Obey robots.txt.
    pub obey_robots: bool,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            user_agent: format!(
                "gemstones-scrape/{} (+https://crates.io/crates/gemstones-scrape; polite image collector)",
                env!("CARGO_PKG_VERSION")
            ),
            concurrency: 4,
            per_host_rps: 2.0,
            connect_timeout: 10.0,
            timeout: 30.0,
            retries: 3,
            backoff: 0.5,
            max_backoff: 30.0,
            max_bytes: 20 * 1024 * 1024,
            max_redirects: 5,
            obey_robots: true,
        }
    }
}

/// Why a fetch failed: a stable code (as in the manifest) and details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchFailure {
    /// `http_404`, `http_503`, `timeout`, `connect`, `too_large`,
    /// `robots` (disallowed, or robots.txt answered 5xx), `redirects`,
    /// `host_not_allowed`, `body`.
    pub reason: String,
    /// The last HTTP status seen, if any.
    pub status: Option<u16>,
    /// Human-readable detail.
    pub detail: String,
}

impl FetchFailure {
    fn new(reason: impl Into<String>, status: Option<u16>, detail: impl Into<String>) -> Self {
        Self { reason: reason.into(), status, detail: detail.into() }
    }
}

impl std::fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// A response body.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Final HTTP status.
    pub status: u16,
    /// The URL after redirects.
    pub url: Url,
    /// The body.
    pub bytes: Vec<u8>,
}

enum Robots {
    Rules(texting_robots::Robot),
    AllowAll,
    /// RFC 9309: a robots.txt that cannot be read forbids crawling; the
    /// reason says why (the host could not be reached, or a 5xx answer).
    DisallowAll {
        kind: &'static str,
        reason: String,
    },
}

/// The HTTP side of a scrape, shared by all tasks.
pub struct Http {
    client: reqwest::Client,
    limiter: DefaultKeyedRateLimiter<String>,
    robots: Mutex<HashMap<String, Arc<Robots>>>,
    cfg: FetchConfig,
    allowed: Box<dyn Fn(&Url) -> bool + Send + Sync>,
}

/// A day: the longest timeout or wait a setting may ask for.
const LONGEST_WAIT_SECS: f64 = 86_400.0;

/// `value` within `[min, max]` (NaN is not), or an error naming `name`.
pub(crate) fn check_range(name: &str, value: f64, min: f64, max: f64) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Error::InvalidConfig { reason: format!("{name} is {value}; it must be within {min}..={max}") })
    }
}

impl FetchConfig {
    /// Check every setting against its range (a rate of 1e-300 requests a
    /// second would be a wait longer than `Duration` holds), naming the
    /// one at fault.
    pub fn validate(&self) -> Result<()> {
        check_range("per_host_rps", self.per_host_rps, 0.001, 10_000.0)?;
        check_range("concurrency", self.concurrency as f64, 1.0, 1024.0)?;
        check_range("connect_timeout", self.connect_timeout, 0.001, LONGEST_WAIT_SECS)?;
        check_range("timeout", self.timeout, 0.001, LONGEST_WAIT_SECS)?;
        check_range("backoff", self.backoff, 0.0, LONGEST_WAIT_SECS)?;
        check_range("max_backoff", self.max_backoff, 0.0, LONGEST_WAIT_SECS)
    }
}

impl Http {
    /// A client for `cfg`; `allowed` says which URLs (after redirects) may
    /// be fetched.
    pub fn new(cfg: FetchConfig, allowed: impl Fn(&Url) -> bool + Send + Sync + 'static) -> Result<Self> {
        // reqwest is built without a default TLS provider; use ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        cfg.validate()?;
        let max = cfg.max_redirects;
        let client = reqwest::Client::builder()
            .user_agent(cfg.user_agent.clone())
            .connect_timeout(Duration::from_secs_f64(cfg.connect_timeout))
            .timeout(Duration::from_secs_f64(cfg.timeout))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > max {
                    attempt.error(format!("more than {max} redirects"))
                } else if attempt.previous().contains(attempt.url()) {
                    attempt.error("redirect loop")
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .map_err(|e| Error::Client(e.to_string()))?;
        // One request per period per host, no bursts; 2 % slack so
        // network jitter cannot squeeze N + 1 arrivals into a second.
        let period = Duration::from_secs_f64(1.02 / cfg.per_host_rps);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        Ok(Self {
            client,
            limiter: RateLimiter::keyed(quota),
            robots: Mutex::new(HashMap::new()),
            cfg,
            allowed: Box::new(allowed),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FetchConfig {
        &self.cfg
    }

    async fn pace(&self, url: &Url) {
        let host =
            format!("{}:{}", url.host_str().unwrap_or_default(), url.port_or_known_default().unwrap_or(0));
        self.limiter.until_key_ready(&host).await;
    }

    async fn robots_allow(&self, url: &Url) -> std::result::Result<(), FetchFailure> {
        if !self.cfg.obey_robots {
            return Ok(());
        }
        let origin = url.origin().ascii_serialization();
        let rules = {
            let mut cache = self.robots.lock().await;
            if let Some(r) = cache.get(&origin) {
                r.clone()
            } else {
                let r = Arc::new(self.fetch_robots(url).await);
                cache.insert(origin, r.clone());
                r
            }
        };
        match &*rules {
            Robots::AllowAll => Ok(()),
            Robots::DisallowAll { kind, reason } => Err(FetchFailure::new(*kind, None, reason.clone())),
            Robots::Rules(r) if r.allowed(url.as_str()) => Ok(()),
            Robots::Rules(_) => Err(FetchFailure::new("robots", None, "disallowed by robots.txt")),
        }
    }

    /// RFC 9309: a 4xx robots.txt allows everything; an unreachable or 5xx
    /// one forbids everything.
    async fn fetch_robots(&self, url: &Url) -> Robots {
        let Ok(robots_url) = url.join("/robots.txt") else { return Robots::AllowAll };
        self.pace(&robots_url).await;
        let disallow = |kind, reason: String| {
            tracing::warn!("{reason}");
            Robots::DisallowAll { kind, reason }
        };
        match self.client.get(robots_url.clone()).send().await {
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(b) => texting_robots::Robot::new(&self.cfg.user_agent, &b)
                    .map_or(Robots::AllowAll, Robots::Rules),
                Err(e) => disallow(
                    "robots",
                    format!(
                        "{robots_url}: reading it failed ({e}); RFC 9309: the site is treated as disallowed"
                    ),
                ),
            },
            Ok(r) if r.status().is_client_error() => Robots::AllowAll,
            Ok(r) => disallow(
                "robots",
                format!("{robots_url}: answered {}; RFC 9309: the site is treated as disallowed", r.status()),
            ),
            Err(e) => disallow(
                "connect",
                format!(
                    "{}: the host could not be reached ({}); nothing is fetched from it",
                    robots_url.origin().ascii_serialization(),
                    error_chain(&e)
                ),
            ),
        }
    }

    /// Whether the robots.txt of `url`'s site lets this client read it;
    /// a site that cannot be reached is an error here too ("the host
    /// could not be reached"), as for [`Http::get`]. For page sources that
    /// fetch without this client (a browser through WebDriver).
    pub async fn robots_allow_page(&self, url: &Url) -> std::result::Result<(), FetchFailure> {
        self.robots_allow(url).await
    }

    /// GET with the rate limit, robots.txt, retries and the size cap.
    pub async fn get(&self, url: &Url) -> std::result::Result<Fetched, FetchFailure> {
        if !(self.allowed)(url) {
            return Err(FetchFailure::new(
                "host_not_allowed",
                None,
                format!("{} is not an allowed host", url.host_str().unwrap_or("?")),
            ));
        }
        self.robots_allow(url).await?;
        let mut attempt = 0;
        loop {
            let (wait, failure) = match self.attempt(url).await {
                Ok(f) => return Ok(f),
                Err(Attempt::Final(f)) => return Err(f),
                Err(Attempt::Retry(f, retry_after)) => (retry_after, f),
            };
            if attempt >= self.cfg.retries {
                return Err(failure);
            }
            let backoff = self.cfg.backoff * 2f64.powi(attempt as i32) * rand::rng().random_range(0.5..1.5);
            let wait = wait.unwrap_or(backoff).min(self.cfg.max_backoff);
            tracing::debug!("{url}: {failure}; retrying in {wait:.2} s");
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, url: &Url) -> std::result::Result<Fetched, Attempt> {
        self.pace(url).await;
        let resp = match self.client.get(url.clone()).send().await {
            Ok(r) => r,
            Err(e) => return Err(classify(&e)),
        };
        let status = resp.status().as_u16();
        let final_url = resp.url().clone();
        if !(self.allowed)(&final_url) {
            return Err(Attempt::Final(FetchFailure::new(
                "host_not_allowed",
                Some(status),
                format!("redirected to {final_url}"),
            )));
        }
        if status == 429 {
            let after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(retry_after);
            return Err(Attempt::Retry(
                FetchFailure::new("http_429", Some(429), "rate limited by the server"),
                after,
            ));
        }
        if resp.status().is_server_error() {
            return Err(Attempt::Retry(
                FetchFailure::new(format!("http_{status}"), Some(status), "server error"),
                None,
            ));
        }
        if !resp.status().is_success() {
            return Err(Attempt::Final(FetchFailure::new(
                format!("http_{status}"),
                Some(status),
                resp.status().to_string(),
            )));
        }
        if let Some(len) = resp.content_length()
            && len > self.cfg.max_bytes
        {
            return Err(Attempt::Final(FetchFailure::new(
                "too_large",
                Some(status),
                format!("{len} bytes declared, limit {}", self.cfg.max_bytes),
            )));
        }
        let mut bytes = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| classify(&e))?;
            if bytes.len() as u64 + chunk.len() as u64 > self.cfg.max_bytes {
                return Err(Attempt::Final(FetchFailure::new(
                    "too_large",
                    Some(status),
                    format!("body exceeds {} bytes", self.cfg.max_bytes),
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched { status, url: final_url, bytes })
    }
}

enum Attempt {
    Retry(FetchFailure, Option<f64>),
    Final(FetchFailure),
}

fn classify(e: &reqwest::Error) -> Attempt {
    if e.is_redirect() {
        return Attempt::Final(FetchFailure::new("redirects", None, e.to_string()));
    }
    if e.is_timeout() {
        return Attempt::Retry(FetchFailure::new("timeout", None, e.to_string()), None);
    }
    if e.is_connect() {
        return Attempt::Retry(FetchFailure::new("connect", None, e.to_string()), None);
    }
    Attempt::Retry(FetchFailure::new("body", None, e.to_string()), None)
}

/// `Retry-After`: delay seconds or an HTTP date.
fn retry_after(v: &str) -> Option<f64> {
    if let Ok(s) = v.trim().parse::<f64>() {
        return Some(s.max(0.0));
    }
    let when = httpdate::parse_http_date(v.trim()).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).map_or(0.0, |d| d.as_secs_f64()))
}

/// An error and its causes, `: `-separated (reqwest's top-level message
/// alone says only "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        assert_eq!(retry_after("2"), Some(2.0));
        assert_eq!(retry_after(" 0.5 "), Some(0.5));
        let future = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let s = retry_after(&future).unwrap();
        assert!((28.0..=30.5).contains(&s), "{s}");
        assert_eq!(retry_after("soon"), None);
    }
}
