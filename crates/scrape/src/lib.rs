//! # gemstones-scrape
//!
//! Polite, resumable image scraping from catalogue sites, as the tutorial
//! did with requests + BeautifulSoup and Selenium, without hammering the
//! site or losing a download.
//!
//! - A [`SiteProfile`] (TOML or JSON, or built in code) says where the class
//!   links and the images are, how to rewrite thumbnail URLs, which element
//!   to wait for on JavaScript pages and which hosts may be fetched; the
//!   built-ins follow the tutorial's scrapers ([`SiteProfile::minerals_net`],
//!   [`SiteProfile::rasavgems`]).
//! - Pages come from a [`PageSource`]: plain HTTP ([`StaticSource`]) or a
//!   real browser through WebDriver (`WebDriverSource`, feature
//!   `webdriver`).
//! - [`Http`] fetches with a per-host rate limit, robots.txt, timeouts,
//!   retries with backoff (honouring `Retry-After`) and a size cap.
//! - [`Scraper`] saves images as `out/<Class>/<safe name>` (atomically, never
//!   overwriting, duplicates once), appends every outcome to
//!   `out/manifest.jsonl`, skips what an earlier run saved, and stops
//!   cleanly on a flag.
//! - `DemoSite` (feature `demo-site`) serves a folder of class folders on
//!   loopback, shaped like minerals.net.
//!
//! ```no_run
//! use gemstones_scrape::{ScrapeConfig, Scraper, SiteProfile};
//! let mut cfg = ScrapeConfig::default();
//! cfg.fetch.per_host_rps = 1.0;
//! let s = Scraper::new(SiteProfile::minerals_net(), cfg)?.run_blocking("photos".as_ref())?;
//! println!("{} saved, {} duplicates, failed: {:?}", s.saved, s.duplicates, s.failed);
//! # Ok::<(), gemstones_scrape::Error>(())
//! ```
#![deny(missing_docs)]

// The crate README's code blocks compile and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod error;
mod extract;
mod fetch;
mod profile;
mod run;
#[cfg(feature = "demo-site")]
mod site;
mod source;
mod store;

pub use error::{Error, Result};
pub use extract::{ClassPage, class_pages, image_urls, resolve, rewrite};
pub use fetch::{FetchConfig, FetchFailure, Fetched, Http};
pub use profile::{ClassLinks, Images, NameFrom, Rewrite, SiteProfile, SourceKind};
pub use run::{ScrapeConfig, ScrapeSummary, Scraper, image_kind};
#[cfg(feature = "demo-site")]
pub use site::DemoSite;
#[cfg(feature = "webdriver")]
pub use source::WebDriverSource;
pub use source::{PageSource, StaticSource};
pub use store::{MAX_NAME_BYTES, Manifest, ManifestRow, Outcome, safe_name};
