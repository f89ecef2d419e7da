//! The scraper against real servers on loopback: a fixture site with every
//! kind of trouble, resumption, the rate limit, and a real headless
//! Chromium through chromedriver for a JavaScript-rendered catalogue.
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use gemstones_scrape::*;
use url::Url;

#[derive(Default)]
struct Log {
    hits: Vec<(Instant, String)>,
}

type Shared = Arc<Mutex<Log>>;

fn png(seed: u8, side: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(side, side, |x, y| image::Rgb([seed, (x * 7) as u8, (y * 5) as u8]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn count(log: &Shared, path: &str) -> usize {
    log.lock().unwrap().hits.iter().filter(|(_, p)| p == path).count()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The fixture: a minerals.net-shaped site with a 404, a flaky 500, a 429
/// with Retry-After, a response slower than the timeout, an oversized body,
/// an HTML error page served as an image, a redirect loop, a path robots.txt
/// forbids, duplicates under two URLs, hostile and non-ASCII names,
/// relative and protocol-relative URLs, and an off-host link.
async fn fixture(delay: Duration) -> (SocketAddr, Shared) {
    let log: Shared = Arc::default();
    let flaky = Arc::new(Mutex::new(0u32));
    let limited = Arc::new(Mutex::new(0u32));
    let app = Router::new()
        .route("/robots.txt", get(|| async { "User-agent: *\nDisallow: /private/\n" }))
        .route("/GemStoneMain.aspx", get(|| async {
            Html(r#"<html><body><a href="/about.aspx">About</a><table id="ctl00_ContentPlaceHolder1_DataList1"><tr>
                <td><a href="gemstone/ruby.aspx"> Ruby </a></td>
                <td><a href="gemstone/garnet.aspx">Garnet
                    Red</a></td>
                <td><a href="http://elsewhere.invalid/gemstone/x.aspx">Elsewhere</a></td>
                </tr></table></body></html>"#)
        }))
        .route("/gemstone/{page}", get(|UrlPath(page): UrlPath<String>, headers: HeaderMap| async move {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default().to_string();
            let imgs: Vec<String> = match page.as_str() {
                "ruby.aspx" => vec![
                    "../GemStoneImages/ruby-1-t.jpg".into(),
                    "/GemStoneImages/missing-t.jpg".into(),
                    "/GemStoneImages/flaky-t.jpg".into(),
                    "/GemStoneImages/ratelimited-t.jpg".into(),
                    "/GemStoneImages/slow-t.jpg".into(),
                    "/GemStoneImages/huge-t.jpg".into(),
                    "/GemStoneImages/errorpage-t.jpg".into(),
                    "/GemStoneImages/loop-t.jpg".into(),
                    "/private/secret-t.jpg".into(),
                    "/GemStoneImages/dup-a-t.jpg".into(),
                    "/GemStoneImages/dup-b-t.jpg".into(),
                    "/GemStoneImages/..%2F..%2Fescape%20me-t.jpg".into(),
                    "/GemStoneImages/r%C3%BCbin-t.jpg".into(),
                    format!("//{host}/GemStoneImages/proto-t.jpg"),
                    "http://elsewhere.invalid/GemStoneImages/x-t.jpg".into(),
                ],
                "garnet.aspx" => vec!["../GemStoneImages/garnet-1-t.jpg".into(), "../GemStoneImages/garnet-2-t.jpg".into()],
                _ => return StatusCode::NOT_FOUND.into_response(),
            };
            let cells: String = imgs.iter().map(|i| format!("<td><img src=\"{i}\"></td>")).collect();
            Html(format!("<table id=\"ctl00_ContentPlaceHolder1_DataList1\"><tr>{cells}</tr></table><img src=\"/logo.png\">")).into_response()
        }))
        .route("/GemStoneImages/{file}", get(move |UrlPath(file): UrlPath<String>| {
            let (flaky, limited) = (flaky.clone(), limited.clone());
            async move {
                let ok = |seed: u8| ([(header::CONTENT_TYPE, "image/png")], png(seed, 16)).into_response();
                match file.as_str() {
                    "ruby-1.jpg" => ok(1),
                    "garnet-1.jpg" => ok(2),
                    "garnet-2.jpg" => ok(3),
                    "dup-a.jpg" | "dup-b.jpg" => ok(4),
                    "../../escape me.jpg" => ok(5),
                    "rübin.jpg" => ok(6),
                    "proto.jpg" => ok(7),
                    "flaky.jpg" => {
                        let mut n = flaky.lock().unwrap();
                        *n += 1;
                        if *n <= 2 { StatusCode::INTERNAL_SERVER_ERROR.into_response() } else { ok(8) }
                    }
                    "ratelimited.jpg" => {
                        let mut n = limited.lock().unwrap();
                        *n += 1;
                        if *n == 1 { (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")]).into_response() } else { ok(9) }
                    }
                    "slow.jpg" => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        ok(10)
                    }
                    "huge.jpg" => ([(header::CONTENT_TYPE, "image/png")], vec![0u8; 300_000]).into_response(),
                    "errorpage.jpg" => ([(header::CONTENT_TYPE, "image/jpeg")], "<!DOCTYPE html><html><body>Access denied</body></html>").into_response(),
                    "loop.jpg" => Redirect::temporary("/GemStoneImages/loop.jpg").into_response(),
                    _ => StatusCode::NOT_FOUND.into_response(),
                }
            }
        }))
        .route("/private/{file}", get(|| async { ([(header::CONTENT_TYPE, "image/png")], png(99, 8)) }))
        .layer(axum::middleware::from_fn_with_state(log.clone(), record))
        .with_state(());
    let app = app.layer(axum::middleware::from_fn(move |req, next: axum::middleware::Next| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        next.run(req).await
    }));
    (serve(app).await, log)
}

async fn record(
    State(log): State<Shared>,
    uri: Uri,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy().into_owned();
    log.lock().unwrap().hits.push((Instant::now(), path));
    next.run(req).await
}

fn config(rps: f64) -> ScrapeConfig {
    ScrapeConfig {
        fetch: FetchConfig {
            concurrency: 8,
            per_host_rps: rps,
            timeout: 1.0,
            connect_timeout: 1.0,
            retries: 2,
            backoff: 0.05,
            max_backoff: 2.0,
            max_bytes: 200_000,
            ..FetchConfig::default()
        },
        progress: false,
        ..ScrapeConfig::default()
    }
}

fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for class in std::fs::read_dir(root).unwrap().filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
        for f in std::fs::read_dir(class.path()).unwrap().filter_map(|e| e.ok()) {
            let rel = f.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, std::fs::read(f.path()).unwrap());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_trouble_is_handled_and_recorded() {
    let (addr, log) = fixture(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let profile =
        SiteProfile::minerals_net_at(Url::parse(&format!("http://{addr}/GemStoneMain.aspx")).unwrap());
    let started = Instant::now();
    let s = Scraper::new(profile, config(50.0)).unwrap().run(dir.path()).await.unwrap();

    let files: Vec<String> = tree(dir.path()).keys().cloned().collect();
    assert_eq!(
        files,
        [
            "Garnet Red/garnet-1.jpg",
            "Garnet Red/garnet-2.jpg",
            "Ruby/dup-a.jpg",
            "Ruby/escape me.jpg",
            "Ruby/flaky.jpg",
            "Ruby/proto.jpg",
            "Ruby/ratelimited.jpg",
            "Ruby/ruby-1.jpg",
            "Ruby/rübin.jpg",
        ]
        .map(|f| f.replace(".jpg", ".png"))
    );
    assert_eq!((s.classes, s.images_found, s.off_host), (2, 16, 1));
    assert_eq!((s.saved, s.duplicates, s.already_done), (9, 1, 0));
    let failed: Vec<(&str, usize)> = s.failed.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        failed,
        [
            ("http_404", 1),
            ("not_an_image", 1),
            ("redirects", 1),
            ("robots", 1),
            ("timeout", 1),
            ("too_large", 1)
        ]
    );

    let rows = Manifest::read_rows(&s.manifest).unwrap();
    assert_eq!(rows.len(), 16);
    let by_url: HashMap<String, &ManifestRow> =
        rows.iter().map(|r| (Url::parse(&r.image_url).unwrap().path().to_string(), r)).collect();
    let row = |p: &str| by_url[p];
    assert_eq!(
        (row("/GemStoneImages/missing.jpg").error.as_deref(), row("/GemStoneImages/missing.jpg").status),
        (Some("http_404"), Some(404))
    );
    assert_eq!(
        row("/GemStoneImages/errorpage.jpg").detail.as_deref(),
        Some("body is an HTML page, not an image")
    );
    assert_eq!(row("/GemStoneImages/huge.jpg").error.as_deref(), Some("too_large"));
    assert_eq!(row("/private/secret.jpg").error.as_deref(), Some("robots"));
    let dup = [row("/GemStoneImages/dup-a.jpg"), row("/GemStoneImages/dup-b.jpg")];
    assert_eq!(dup.iter().filter(|r| r.outcome == Outcome::Duplicate).count(), 1);
    assert!(dup.iter().any(|r| r.duplicate_of.as_deref() == Some("Ruby/dup-a.png")));
    let saved = row("/GemStoneImages/ruby-1.jpg");
    assert_eq!(
        (saved.class.as_str(), saved.file.as_deref(), saved.status),
        ("Ruby", Some("Ruby/ruby-1.png"), Some(200))
    );
    assert_eq!(saved.hash.as_deref(), Some(blake3::hash(&png(1, 16)).to_hex().as_str()));
    assert!(saved.page_url.ends_with("/gemstone/ruby.aspx"));

    // Retries: 500 twice then 200; 429 honoured with its Retry-After; no
    // retry on 404; robots-forbidden and off-host never requested; the
    // `-t` thumbnails never requested.
    assert_eq!(count(&log, "/GemStoneImages/flaky.jpg"), 3);
    assert_eq!(count(&log, "/GemStoneImages/missing.jpg"), 1);
    assert_eq!(count(&log, "/private/secret.jpg"), 0);
    let hits = log.lock().unwrap().hits.clone();
    let limited: Vec<Instant> =
        hits.iter().filter(|(_, p)| p == "/GemStoneImages/ratelimited.jpg").map(|h| h.0).collect();
    assert_eq!(limited.len(), 2);
    assert!(limited[1] - limited[0] >= Duration::from_millis(950), "{:?}", limited[1] - limited[0]);
    assert!(!hits.iter().any(|(_, p)| p.ends_with("-t.jpg")));
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_resumes_to_the_same_tree_without_refetching() {
    let (addr, log) = fixture(Duration::ZERO).await;
    let start = Url::parse(&format!("http://{addr}/GemStoneMain.aspx")).unwrap();
    let full = tempfile::tempdir().unwrap();
    Scraper::new(SiteProfile::minerals_net_at(start.clone()), config(100.0))
        .unwrap()
        .run(full.path())
        .await
        .unwrap();

    let (addr2, log2) = fixture(Duration::ZERO).await;
    let _ = log;
    let start2 = Url::parse(&format!("http://{addr2}/GemStoneMain.aspx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = Scraper::new(
        SiteProfile::minerals_net_at(start2.clone()),
        ScrapeConfig { max_images: Some(4), ..config(100.0) },
    )
    .unwrap()
    .run(dir.path())
    .await
    .unwrap();
    assert!(first.stopped);
    assert_eq!(first.saved, 4);
    let second = Scraper::new(SiteProfile::minerals_net_at(start2), config(100.0))
        .unwrap()
        .run(dir.path())
        .await
        .unwrap();
    // Saved images and the duplicate found in the first run are done.
    assert_eq!(second.already_done, first.saved + first.duplicates);
    assert_eq!(first.saved + second.saved, 9);
    let (resumed, whole) = (tree(dir.path()), tree(full.path()));
    assert_eq!(resumed.keys().collect::<Vec<_>>(), whole.keys().collect::<Vec<_>>());
    assert!(resumed == whole, "same names, different contents");
    // Every image that was saved was downloaded exactly once over both runs.
    for f in ["ruby-1", "garnet-1", "garnet-2", "dup-a", "proto", "rübin"] {
        assert_eq!(count(&log2, &format!("/GemStoneImages/{f}.jpg")), 1, "{f}");
    }
}

/// The state a scrape killed between saving photos and appending their
/// manifest rows leaves (photos on disk, rows missing; a temporary file of
/// a half-written photo): the re-run saves no second copy and leaves no
/// temporary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_before_its_manifest_rows_saves_no_second_copy() {
    let (addr, _log) = fixture(Duration::ZERO).await;
    let start = Url::parse(&format!("http://{addr}/GemStoneMain.aspx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scrape = || Scraper::new(SiteProfile::minerals_net_at(start.clone()), config(100.0)).unwrap();
    scrape().run(dir.path()).await.unwrap();
    let whole = tree(dir.path());
    // Lose the manifest's rows (the photos stay), as a kill right after the
    // saves would; and leave a temporary as a kill mid-save would.
    let manifest = dir.path().join("manifest.jsonl");
    std::fs::write(&manifest, b"").unwrap();
    let class = whole.keys().next().unwrap().split('/').next().unwrap().to_string();
    std::fs::write(dir.path().join(&class).join(".12.partial-99999-0"), b"half a photo").unwrap();
    scrape().run(dir.path()).await.unwrap();
    assert_eq!(tree(dir.path()), whole, "a photo was saved twice, or a temporary was left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_host_rate_is_never_exceeded() {
    let (addr, log) = fixture(Duration::from_millis(20)).await;
    let start = Url::parse(&format!("http://{addr}/GemStoneMain.aspx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rps = 10.0;
    Scraper::new(SiteProfile::minerals_net_at(start), config(rps)).unwrap().run(dir.path()).await.unwrap();
    let times: Vec<Instant> = log.lock().unwrap().hits.iter().map(|h| h.0).collect();
    assert!(times.len() > 20);
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u - *t < Duration::from_secs(1)).count();
        assert!(in_window <= rps as usize, "{in_window} requests within one second");
    }
}

#[test]
fn profiles_load_from_toml_and_json_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = SiteProfile::rasavgems();
    let t = dir.path().join("site.toml");
    std::fs::write(&t, toml::to_string(&p).unwrap()).unwrap();
    assert_eq!(SiteProfile::load(&t).unwrap(), p);
    let j = dir.path().join("site.json");
    std::fs::write(&j, serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(SiteProfile::load(&j).unwrap(), p);
    let bad = SiteProfile { images: Images { selector: "div[".into(), ..p.images.clone() }, ..p };
    std::fs::write(&t, toml::to_string(&bad).unwrap()).unwrap();
    let e = SiteProfile::load(&t).unwrap_err().to_string();
    assert!(e.contains("site.toml") && e.contains("div["), "{e}");
}

// ---- WebDriver: a real chromedriver and headless Chromium on loopback ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_catalogue_is_read_through_a_real_browser() {
    let Some(driver) =
        gemstones_testkit::ChromeDriver::start("a_javascript_catalogue_is_read_through_a_real_browser")
    else {
        return;
    };
    // Categories in ul#leftNavigation; each category page inserts its
    // product list with JavaScript after 600 ms.
    let app = Router::new()
        .route("/", get(|| async { Html(r#"<html><body><ul id="leftNavigation"><li><a href="/cat/ruby.html">Ruby</a></li><li><a href="/cat/amethyst.html">Amethyst</a></li></ul></body></html>"#) }))
        .route("/cat/{page}", get(|UrlPath(page): UrlPath<String>| async move {
            let name = page.trim_end_matches(".html").to_string();
            Html(format!(r#"<html><body><div id="root">loading...</div><script>
                setTimeout(function () {{
                  var html = '<div id="Product_List">';
                  for (var i = 1; i <= 3; i++) {{
                    html += '<div class="product-one"><img src="/img/{name}-' + i + '.png"></div>';
                  }}
                  html += '</div><div class="other"><img src="/img/banner.png"></div>';
                  document.getElementById('root').innerHTML = html;
                }}, 600);
              </script></body></html>"#))
        }))
        .route("/img/{file}", get(|UrlPath(file): UrlPath<String>| async move {
            let seed = file.bytes().fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
            ([(header::CONTENT_TYPE, "image/png")], png(seed, 12))
        }));
    let addr = serve(app).await;
    let start = Url::parse(&format!("http://{addr}/")).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Without a browser the product list does not exist yet.
    let http = Http::new(FetchConfig::default(), |_| true).unwrap();
    let raw = StaticSource::new(&http).html(&start.join("/cat/ruby.html").unwrap(), None).await.unwrap();
    assert!(image_urls(&raw, &start, &SiteProfile::rasavgems().images).unwrap().is_empty());

    let cfg = ScrapeConfig { webdriver: Some(driver.url()), page_timeout: 15.0, ..config(50.0) };
    let s = Scraper::new(SiteProfile::rasavgems_at(start), cfg).unwrap().run(dir.path()).await.unwrap();
    let files: Vec<String> = tree(dir.path()).keys().cloned().collect();
    let want: Vec<String> = ["Amethyst", "Ruby"]
        .iter()
        .flat_map(|c| (1..=3).map(move |i| format!("{c}/{}-{i}.png", c.to_lowercase())))
        .collect();
    assert_eq!(files, want);
    assert_eq!((s.classes, s.images_found, s.saved), (2, 6, 6));
}

/// A host that refuses connections is reported as unreachable, not as
/// forbidden by a robots.txt nobody could read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_reported_as_unreachable_not_as_robots() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = Url::parse(&format!("http://127.0.0.1:{port}/GemStoneMain.aspx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = Scraper::new(SiteProfile::minerals_net_at(start), config(50.0))
        .unwrap()
        .run(dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("could not be reached") && err.contains("Connection refused"), "{err}");
    assert!(!err.contains("disallowed"), "{err}");
}
