//! A scraping run: class pages, image URLs, downloads, files, manifest.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use gemstones_dataset::StopFlag;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};
use crate::extract::{ClassPage, class_pages, image_urls};
use crate::fetch::{FetchConfig, FetchFailure, Http};
use crate::profile::{SiteProfile, SourceKind};
use crate::source::{PageSource, StaticSource};
use crate::store::{Manifest, ManifestRow, Outcome, safe_name, save_new};

/// What to scrape, how much, from where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScrapeConfig {
    /// The HTTP manners.
    pub fetch: FetchConfig,
    /// Scrape at most this many classes.
    pub max_classes: Option<usize>,
    /// At most this many images per class.
    pub max_images_per_class: Option<usize>,
    /// Stop after saving this many images (the rest is left for a re-run).
    pub max_images: Option<usize>,
    /// The WebDriver URL for browser-rendered profiles
    /// (`http://localhost:9515` for chromedriver).
    pub webdriver: Option<String>,
    /// How long to wait for a browser-rendered page's element, seconds.
    pub page_timeout: f64,
    /// Show a progress bar on a terminal.
    pub progress: bool,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        Self {
            fetch: FetchConfig::default(),
            max_classes: None,
            max_images_per_class: None,
            max_images: None,
            webdriver: None,
            page_timeout: 20.0,
            progress: true,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScrapeSummary {
    /// Pages read (start page and class pages).
    pub pages: usize,
    /// Classes found.
    pub classes: usize,
    /// Image URLs found (allowed hosts only).
    pub images_found: usize,
    /// Image links on hosts the profile does not allow: not followed.
    pub off_host: usize,
    /// Images saved in this run.
    pub saved: usize,
    /// Bytes saved in this run.
    pub bytes: u64,
    /// Images skipped because an earlier run saved them.
    pub already_done: usize,
    /// Images whose content was already saved under another URL.
    pub duplicates: usize,
    /// Failures by reason code.
    pub failed: BTreeMap<String, usize>,
    /// Class pages that could not be read, with the reason.
    pub page_errors: Vec<String>,
    /// Whether the run stopped early (Ctrl-C or `max_images`).
    pub stopped: bool,
    /// The manifest.
    pub manifest: PathBuf,
}

/// A scraper for one site profile.
///
/// ```no_run
/// use gemstones_scrape::{ScrapeConfig, Scraper, SiteProfile};
/// let summary = Scraper::new(SiteProfile::minerals_net(), ScrapeConfig::default())?
///     .run_blocking("out".as_ref())?;
/// println!("saved {} images into out/<Class>/", summary.saved);
/// # Ok::<(), gemstones_scrape::Error>(())
/// ```
pub struct Scraper {
    profile: SiteProfile,
    cfg: ScrapeConfig,
    stop: StopFlag,
}

/// A download's outcome.
type FetchResult = std::result::Result<crate::fetch::Fetched, FetchFailure>;

struct Job {
    class: String,
    page: Url,
    image: Url,
}

impl Scraper {
    /// A scraper (the profile is validated).
    pub fn new(profile: SiteProfile, cfg: ScrapeConfig) -> Result<Self> {
        profile.validate()?;
        cfg.fetch.validate()?;
        crate::fetch::check_range("page_timeout", cfg.page_timeout, 0.001, 86_400.0)?;
        Ok(Self { profile, cfg, stop: StopFlag::new() })
    }

    /// Stop when `flag` is raised (Ctrl-C): after the downloads in flight,
    /// with the manifest complete for everything done; a re-run resumes.
    pub fn stop_flag(mut self, flag: StopFlag) -> Self {
        self.stop = flag;
        self
    }

    /// Run on a new Tokio runtime.
    pub fn run_blocking(&self, out: &Path) -> Result<ScrapeSummary> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Io { path: "<tokio runtime>".into(), source })?;
        rt.block_on(self.run(out))
    }

    /// Scrape into `out/<Class>/`, with `out/manifest.jsonl`. Images an
    /// earlier run saved are skipped; failed ones are tried again.
    pub async fn run(&self, out: &Path) -> Result<ScrapeSummary> {
        let profile = self.profile.clone();
        let http = Http::new(self.cfg.fetch.clone(), move |u| profile.allows(u))?;
        match self.profile.source {
            SourceKind::Static => self.run_with(&StaticSource::new(&http), &http, out).await,
            SourceKind::WebDriver => {
                #[cfg(feature = "webdriver")]
                {
                    let url = self.cfg.webdriver.clone().ok_or_else(|| Error::WebDriver {
                        url: self.profile.start_url.to_string(),
                        reason: "this profile needs a browser: give a WebDriver URL (e.g. http://localhost:9515 for chromedriver)".into(),
                    })?;
                    // The start page's site, through this client first:
                    // its robots.txt is obeyed, and a site that cannot be
                    // reached is said as for static sites, before a browser
                    // shows an error page as if it were the site.
                    let start = &self.profile.start_url;
                    http.robots_allow_page(start)
                        .await
                        .map_err(|e| Error::Fetch { url: start.to_string(), reason: e.to_string() })?;
                    let source = crate::source::WebDriverSource::connect(
                        &url,
                        Duration::from_secs_f64(self.cfg.page_timeout),
                    )
                    .await?;
                    let result = self.run_with(&source, &http, out).await;
                    let _ = source.close().await;
                    result
                }
                #[cfg(not(feature = "webdriver"))]
                {
                    Err(Error::WebDriver {
                        url: self.profile.start_url.to_string(),
                        reason: "built without the `webdriver` feature".into(),
                    })
                }
            }
        }
    }

    /// Scrape with a given page source: the class list from the start
    /// page, the image URLs from each class page, then the downloads,
    /// committed to disk and to the manifest in page order.
    pub async fn run_with<S: PageSource>(
        &self,
        source: &S,
        http: &Http,
        out: &Path,
    ) -> Result<ScrapeSummary> {
        if out.exists() && !out.is_dir() {
            return Err(Error::OutputNotAFolder { path: out.to_path_buf() });
        }
        let manifest_path = out.join("manifest.jsonl");
        let mut summary = ScrapeSummary { manifest: manifest_path.clone(), ..Default::default() };
        let classes = self.class_list(source, &mut summary).await?;
        let jobs = self.image_jobs(source, &classes, &mut summary).await?;
        // Only now, with the site reached and something to fetch: a host
        // that cannot be reached, or a start page with no class, leaves
        // nothing behind.
        if jobs.is_empty() && !manifest_path.exists() {
            return Ok(summary);
        }
        crate::store::remove_stale_temporaries(out)?;
        let mut manifest = Manifest::open(&manifest_path)?;
        self.download(http, out, &mut manifest, &mut summary, jobs).await?;
        Ok(summary)
    }

    /// The class pages linked from the start page that the profile
    /// allows, at most `max_classes`.
    async fn class_list<S: PageSource>(
        &self,
        source: &S,
        summary: &mut ScrapeSummary,
    ) -> Result<Vec<ClassPage>> {
        let start = &self.profile.start_url;
        let html = source.html(start, None).await?;
        summary.pages += 1;
        let mut classes = class_pages(&html, start, &self.profile.classes)?;
        classes.retain(|c| self.profile.allows(&c.url));
        if let Some(m) = self.cfg.max_classes {
            classes.truncate(m);
        }
        summary.classes = classes.len();
        Ok(classes)
    }

    /// The images to fetch: each class page's image URLs that the profile
    /// allows, at most `max_images_per_class` each. Class pages are read
    /// concurrently when the source allows it (the rate limit still
    /// applies) and used in page order; a page that fails is recorded and
    /// skipped.
    async fn image_jobs<S: PageSource>(
        &self,
        source: &S,
        classes: &[ClassPage],
        summary: &mut ScrapeSummary,
    ) -> Result<Vec<Job>> {
        let page_concurrency = if source.concurrent() { self.cfg.fetch.concurrency.max(1) } else { 1 };
        let wait_for = self.profile.wait_for.as_deref();
        let mut pages = futures::stream::iter(classes)
            .map(|class| async move {
                if self.stop.is_stopped() {
                    return None;
                }
                Some((class, source.html(&class.url, wait_for).await))
            })
            .buffered(page_concurrency);
        let mut jobs = Vec::new();
        while let Some(page) = pages.next().await {
            let Some((class, html)) = page else { continue };
            let html = match html {
                Ok(h) => h,
                Err(e) => {
                    summary.page_errors.push(e.to_string());
                    continue;
                }
            };
            summary.pages += 1;
            let mut urls = image_urls(&html, &class.url, &self.profile.images)?;
            let before = urls.len();
            urls.retain(|u| self.profile.allows(u));
            summary.off_host += before - urls.len();
            if let Some(m) = self.cfg.max_images_per_class {
                urls.truncate(m);
            }
            jobs.extend(urls.into_iter().map(|image| Job {
                class: class.name.clone(),
                page: class.url.clone(),
                image,
            }));
        }
        summary.images_found = jobs.len();
        Ok(jobs)
    }

    /// Fetch every job the manifest does not hold yet, concurrently, and
    /// commit the results in page order, so which of two identical images
    /// is kept, and the file names, do not depend on timing (a resumed run
    /// ends with the same tree as an uninterrupted one).
    async fn download(
        &self,
        http: &Http,
        out: &Path,
        manifest: &mut Manifest,
        summary: &mut ScrapeSummary,
        jobs: Vec<Job>,
    ) -> Result<()> {
        let bar = gemstones_dataset::progress_bar(jobs.len() as u64, "images", self.cfg.progress);
        let limit = self.cfg.max_images.unwrap_or(usize::MAX);
        let saved = AtomicUsize::new(0);
        let jobs: Vec<(Job, bool)> = jobs
            .into_iter()
            .map(|j| {
                let done = manifest.is_done(j.image.as_str());
                (j, done)
            })
            .collect();
        let results = futures::stream::iter(jobs)
            .map(|(job, manifest_done)| {
                let (saved, bar) = (&saved, &bar);
                async move {
                    let fetched =
                        if manifest_done || self.stop.is_stopped() || saved.load(Ordering::SeqCst) >= limit {
                            None
                        } else {
                            Some(http.get(&job.image).await)
                        };
                    bar.inc(1);
                    (job, manifest_done, fetched)
                }
            })
            .buffered(self.cfg.fetch.concurrency.max(1));
        let mut results = std::pin::pin!(results);
        if limit == usize::MAX {
            // Downloading and committing (hash, write, fsync, manifest row)
            // run side by side: a slow disk does not stall the downloads,
            // nor the other way round. A failed commit drops the receiver,
            // which ends the downloads.
            let (tx, mut rx) = tokio::sync::mpsc::channel(self.cfg.fetch.concurrency.max(1) * 2);
            let download = async move {
                while let Some(r) = results.next().await {
                    if tx.send(r).await.is_err() {
                        break;
                    }
                }
            };
            let commit = async {
                while let Some(item) = rx.recv().await {
                    self.record(out, manifest, summary, &saved, limit, item).await?;
                }
                Ok::<(), Error>(())
            };
            let ((), committed) = tokio::join!(download, commit);
            committed?;
        } else {
            // With an image limit, a download starts only once the commits
            // before it are known, so nothing past the limit is fetched (and
            // a resumed run fetches nothing twice).
            while let Some(item) = results.next().await {
                self.record(out, manifest, summary, &saved, limit, item).await?;
            }
        }
        bar.finish_and_clear();
        summary.stopped = self.stop.is_stopped() || saved.load(Ordering::SeqCst) >= limit;
        Ok(())
    }

    /// Commit one download (or skip it) and count it in the summary.
    async fn record(
        &self,
        out: &Path,
        manifest: &mut Manifest,
        summary: &mut ScrapeSummary,
        saved: &AtomicUsize,
        limit: usize,
        (job, done, fetched): (Job, bool, Option<FetchResult>),
    ) -> Result<()> {
        if done {
            summary.already_done += 1;
            return Ok(());
        }
        let Some(fetched) = fetched else { return Ok(()) };
        if saved.load(Ordering::SeqCst) >= limit {
            return Ok(());
        }
        let row = self.commit(out, job, fetched, manifest).await?;
        manifest.append(&row)?;
        match row.outcome {
            Outcome::Saved => {
                saved.fetch_add(1, Ordering::SeqCst);
                summary.saved += 1;
                summary.bytes += row.bytes;
            }
            Outcome::Duplicate => summary.duplicates += 1,
            Outcome::Failed => *summary.failed.entry(row.error.clone().unwrap_or_default()).or_insert(0) += 1,
        }
        Ok(())
    }

    /// Turn a download into a manifest row, saving the file if it is a new
    /// image.
    async fn commit(
        &self,
        out: &Path,
        job: Job,
        fetched: FetchResult,
        manifest: &Manifest,
    ) -> Result<ManifestRow> {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let mut row = ManifestRow {
            class: job.class.clone(),
            image_url: job.image.to_string(),
            page_url: job.page.to_string(),
            outcome: Outcome::Failed,
            file: None,
            hash: None,
            bytes: 0,
            status: None,
            time: now,
            error: None,
            detail: None,
            duplicate_of: None,
        };
        let fetched = match fetched {
            Err(f) => {
                fail(&mut row, f);
                return Ok(row);
            }
            Ok(f) => f,
        };
        row.status = Some(fetched.status);
        row.bytes = fetched.bytes.len() as u64;
        let ext = match image_kind(&fetched.bytes) {
            Err(why) => {
                fail(
                    &mut row,
                    FetchFailure { reason: "not_an_image".into(), status: Some(fetched.status), detail: why },
                );
                return Ok(row);
            }
            Ok(ext) => ext,
        };
        let hash = blake3::hash(&fetched.bytes).to_hex().to_string();
        row.hash = Some(hash.clone());
        if let Some(existing) = manifest.file_with_hash(&hash) {
            row.outcome = Outcome::Duplicate;
            row.duplicate_of = Some(existing.to_string());
            return Ok(row);
        }
        let folder = safe_name(&job.class);
        let name = file_name_for(&job.image, ext);
        let dir = out.join(&folder);
        let bytes = fetched.bytes;
        let file =
            tokio::task::spawn_blocking(move || save_new(&dir, &name, &bytes)).await.map_err(|e| {
                Error::Io { path: out.to_path_buf(), source: std::io::Error::other(e.to_string()) }
            })??;
        row.outcome = Outcome::Saved;
        row.file = Some(format!("{folder}/{file}"));
        Ok(row)
    }
}

fn fail(row: &mut ManifestRow, f: FetchFailure) {
    row.outcome = Outcome::Failed;
    row.status = f.status.or(row.status);
    row.error = Some(f.reason);
    row.detail = Some(f.detail);
}

/// The image format in the bytes, as a file extension; an error message
/// for HTML error pages, text and anything else.
pub fn image_kind(bytes: &[u8]) -> std::result::Result<&'static str, String> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let Some(format) = reader.format() else {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_ascii_lowercase();
        return Err(if head.contains("<html") || head.contains("<!doctype") {
            "body is an HTML page, not an image".into()
        } else if bytes.is_empty() {
            "empty body".into()
        } else {
            "body is not a recognised image".into()
        });
    };
    reader.into_dimensions().map_err(|e| format!("broken {format:?} image: {e}"))?;
    Ok(format.extensions_str().first().copied().unwrap_or("img"))
}

/// A file name from the URL's last segment, with the content's extension
/// when the URL has none that matches.
fn file_name_for(url: &Url, ext: &str) -> String {
    let last = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or_default();
    let name = safe_name(last);
    match name.rsplit_once('.') {
        // The right extension already.
        Some((_, e))
            if image::ImageFormat::from_extension(e).is_some_and(|f| f.extensions_str().contains(&ext)) =>
        {
            name
        }
        // Another image format's extension: say what the content is.
        Some((stem, e)) if image::ImageFormat::from_extension(e).is_some() => {
            safe_name(&format!("{stem}.{ext}"))
        }
        _ => safe_name(&format!("{name}.{ext}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_kind_rejects_html_and_text() {
        assert!(image_kind(b"<!DOCTYPE html><html>Not found</html>").unwrap_err().contains("HTML"));
        assert!(image_kind(b"hello").is_err());
        let mut png = Vec::new();
        image::DynamicImage::new_rgb8(2, 2)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(image_kind(&png), Ok("png"));
        let u = Url::parse("http://x/a/photo?id=3").unwrap();
        assert_eq!(file_name_for(&u, "png"), "photo.png");
        let u = Url::parse("http://x/a/r%C3%BCby%20one.JPG").unwrap();
        assert_eq!(file_name_for(&u, "jpg"), "rüby one.JPG");
        let u = Url::parse("http://x/a/really-png.jpg").unwrap();
        assert_eq!(file_name_for(&u, "png"), "really-png.png");
    }
}
