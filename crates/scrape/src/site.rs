//! A loopback catalogue website, shaped like minerals.net, serving a folder
//! of class folders: the workflow's offline stand-in for the real site, and
//! a fixture for tests.
//!
//! - `/GemStoneMain.aspx`: the class list, links in
//!   `table#ctl00_ContentPlaceHolder1_DataList1`;
//! - `/gemstone/<n>.aspx`: a class page whose images are thumbnails
//!   `../GemStoneImages/<c>/<stem>-t.<ext>` inside the same table;
//! - `/GemStoneImages/<c>/<file>`: the photograph (the `-t` name serves a
//!   thumbnail: the same photograph shrunk to 120 pixels);
//! - `/robots.txt`: everything allowed.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use url::Url;

use crate::error::{Error, IoContext, Result};

struct Catalogue {
    classes: Vec<(String, Vec<PathBuf>)>,
}

/// Requests a demo site received: when, and which path.
pub type RequestLog = Arc<Mutex<Vec<(Instant, String)>>>;

/// A running demo site; stops when dropped.
pub struct DemoSite {
    addr: SocketAddr,
    log: RequestLog,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DemoSite {
    /// Serve `folder` (class folders of images) on a free loopback port, on
    /// a thread of its own.
    pub fn start(folder: &Path) -> Result<Self> {
        Self::start_with_latency(folder, Duration::ZERO)
    }

    /// Like [`DemoSite::start`], answering every request only after
    /// `latency` (a stand-in for a distant server, for benchmarks).
    pub fn start_with_latency(folder: &Path, latency: Duration) -> Result<Self> {
        let mut classes = Vec::new();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(folder)
            .at(folder)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for d in dirs {
            let name = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
                .at(&d)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            classes.push((name, files));
        }
        let state = Arc::new(Catalogue { classes });
        let app = Router::new()
            .route("/robots.txt", get(|| async { "User-agent: *\nAllow: /\n" }))
            .route("/GemStoneMain.aspx", get(list))
            .route("/gemstone/{page}", get(class_page))
            .route("/GemStoneImages/{class}/{file}", get(image))
            .with_state(state);
        let log: RequestLog = Arc::default();
        let seen = log.clone();
        let app = app.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let seen = seen.clone();
                async move {
                    if let Ok(mut l) = seen.lock() {
                        l.push((Instant::now(), req.uri().path().to_string()));
                    }
                    if !latency.is_zero() {
                        tokio::time::sleep(latency).await;
                    }
                    next.run(req).await
                }
            },
        ));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").at("127.0.0.1:0")?;
        std_listener.set_nonblocking(true).at("127.0.0.1:0")?;
        let addr = std_listener.local_addr().at("127.0.0.1:0")?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("gemstones-demo-site".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else { return };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                });
            })
            .map_err(|source| Error::Io { path: folder.to_path_buf(), source })?;
        Ok(Self { addr, log, shutdown: Some(tx), thread: Some(thread) })
    }

    /// The class list's URL (the profile's start URL).
    pub fn start_url(&self) -> Url {
        // Built from a socket address: always a valid URL.
        Url::parse(&format!("http://{}/GemStoneMain.aspx", self.addr)).expect("loopback URL")
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far: arrival time and path.
    pub fn requests(&self) -> Vec<(Instant, String)> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Forget the requests so far.
    pub fn clear_requests(&self) {
        if let Ok(mut l) = self.log.lock() {
            l.clear();
        }
    }
}

impl Drop for DemoSite {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn list(State(c): State<Arc<Catalogue>>) -> Html<String> {
    let mut rows = String::new();
    for (i, (name, _)) in c.classes.iter().enumerate() {
        rows.push_str(&format!("<td><a href=\"gemstone/{i}.aspx\">{}</a></td>\n", esc(name)));
    }
    Html(format!(
        "<!DOCTYPE html><html><head><title>Gemstones A-Z</title></head><body>\
         <h1>Gemstones</h1><a href=\"/about.aspx\">About</a>\
         <table id=\"ctl00_ContentPlaceHolder1_DataList1\"><tr>{rows}</tr></table></body></html>"
    ))
}

async fn class_page(State(c): State<Arc<Catalogue>>, UrlPath(page): UrlPath<String>) -> Response {
    let Some((name, files)) =
        page.strip_suffix(".aspx").and_then(|i| i.parse::<usize>().ok()).and_then(|i| c.classes.get(i))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let class_idx = c.classes.iter().position(|(n, _)| n == name).unwrap_or(0);
    let mut imgs = String::new();
    for f in files {
        let file = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (stem, ext) = file.rsplit_once('.').unwrap_or((&file, "jpg"));
        imgs.push_str(&format!(
            "<td><img src=\"../GemStoneImages/{class_idx}/{}\" alt=\"{}\"></td>\n",
            enc(&format!("{stem}-t.{ext}")),
            esc(stem)
        ));
    }
    Html(format!(
        "<!DOCTYPE html><html><body><h1>{}</h1><img src=\"/logo.png\">\
         <table id=\"ctl00_ContentPlaceHolder1_DataList1\"><tr>{imgs}</tr></table></body></html>",
        esc(name)
    ))
    .into_response()
}

async fn image(
    State(c): State<Arc<Catalogue>>,
    UrlPath((class, file)): UrlPath<(usize, String)>,
) -> Response {
    let Some((_, files)) = c.classes.get(class) else { return StatusCode::NOT_FOUND.into_response() };
    let (stem, ext) = file.rsplit_once('.').unwrap_or((&file, ""));
    let (wanted, thumb) = match stem.strip_suffix("-t") {
        Some(s) => (format!("{s}.{ext}"), true),
        None => (file.clone(), false),
    };
    let Some(path) = files.iter().find(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == wanted))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(bytes) = tokio::fs::read(path).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let bytes = if thumb { thumbnail(&bytes).unwrap_or(bytes) } else { bytes };
    ([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response()
}

fn thumbnail(bytes: &[u8]) -> Option<Vec<u8>> {
    let img = image::load_from_memory(bytes).ok()?.thumbnail(120, 120).into_rgb8();
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).ok()?;
    Some(out)
}
