//! A try-it page for an exported model, served on loopback: drop or pick a
//! photograph and see the stone as the model saw it (cropped and resized
//! as in training) and its five most likely classes. Predicts through
//! `gemstones-predict` (no libtorch); nothing is written to disk.
//!
//! ```text
//! cargo run --release -p gemstones-predict --example demo_page -- \
//!     --model export --metrics runs/lite0/validation/metrics.json
//! ```
//!
//! Uploads above `--max-mb` get 413, empty ones 400, ones that are not a
//! readable photo 422, and more than `--max-in-flight` at once 503, each
//! with a message the page shows.
use std::io::Cursor;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use clap::Parser;
use gemstones_predict::{Error, Predictor};
use tokio::sync::Semaphore;

#[derive(Parser, Debug)]
#[command(about = "Serve an exported gem classifier as a web page on 127.0.0.1")]
struct Args {
    /// Export folder (model.onnx and model.json).
    #[arg(long)]
    model: PathBuf,
    /// An evaluation's metrics.json (from `evaluate`, or a model
    /// directory's validation/), whose accuracy the page shows.
    #[arg(long)]
    metrics: Option<PathBuf>,
    /// Port on 127.0.0.1 (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Largest upload accepted, in megabytes.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=200))]
    max_mb: u32,
    /// Uploads handled at once; more get 503 ("busy, try again") before
    /// their body is read, so memory stays under about this many times
    /// --max-mb plus the model.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    max_in_flight: u32,
}

struct App {
    predictor: Predictor,
    page: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    // A page answers one person at a time: memory matters more than the
    // 14 ms a photo this costs.
    gemstones_predict::tune_malloc_for_low_memory();
    let predictor = Predictor::load(&a.model)?;
    let accuracy = match &a.metrics {
        Some(path) => accuracy_line(path)?,
        None => "accuracy: not given (--metrics)".into(),
    };
    let page = page(&model_line(&a.model, &predictor), &accuracy, a.max_mb);
    let app = Arc::new(App { predictor, page });
    let limit = a.max_mb as usize * 1024 * 1024;
    let in_flight = Arc::new(Semaphore::new(a.max_in_flight as usize));
    let router = Router::new()
        .route("/", get(index))
        .route(
            "/predict",
            post(predict).layer(axum::middleware::from_fn_with_state(in_flight, one_of_few_uploads)),
        )
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, a.port)))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", a.port))?;
    println!("serving {} on http://{}/", a.model.display(), listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}

/// "efficientnet_lite, 87 classes, 224 x 224 input".
fn model_line(dir: &Path, predictor: &Predictor) -> String {
    let name = std::fs::read(dir.join("model.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["model"]["arch"].as_str().map(str::to_string))
        .unwrap_or_else(|| "model".into());
    let input = &predictor.description().input;
    format!("{name}, {} classes, {} x {} input", predictor.classes().len(), input.width, input.height)
}

/// "test top-1 82.5 %, top-5 98.6 % on 572 photos".
fn accuracy_line(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))?;
    let (Some(top1), Some(top5), Some(images)) =
        (v["top1"].as_f64(), v["top5"].as_f64(), v["images"].as_u64())
    else {
        anyhow::bail!("{}: no top1, top5 and images: not an evaluation's metrics.json", path.display());
    };
    Ok(format!("test top-1 {:.1} %, top-5 {:.1} % on {images} photos", 100.0 * top1, 100.0 * top5))
}

async fn index(State(app): State<Arc<App>>) -> Html<String> {
    Html(app.page.clone())
}

/// A 4xx with `{"error": message}`.
fn refuse(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Let an upload in only while fewer than `--max-in-flight` are: the
/// others get 503 at once, before their bodies are read into memory.
async fn one_of_few_uploads(
    State(in_flight): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = in_flight.try_acquire() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "The page is busy with other photographs: try again in a moment.".into(),
        );
    };
    next.run(request).await
}

async fn predict(State(app): State<Arc<App>>, body: Bytes) -> Response {
    if body.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "The upload is empty: choose a photograph.".into());
    }
    // Decoding and the network are CPU work: off the async threads.
    let result = tokio::task::spawn_blocking(move || answer(&app.predictor, &body)).await;
    match result {
        Ok(Ok(json)) => Json(json).into_response(),
        Ok(Err(Error::Photo(problem))) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("That is not a photograph this page can read ({}: {}).", problem.kind, problem.detail),
        ),
        Ok(Err(e)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("The model failed: {e}")),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("The model failed: {e}")),
    }
}

/// The five most likely classes and the prepared photo as a PNG data URI.
fn answer(predictor: &Predictor, bytes: &[u8]) -> Result<serde_json::Value, Error> {
    let photo = predictor.prepare_bytes(bytes, Path::new("upload"))?;
    let top = predictor.predict_prepared(&photo.image, 5)?;
    let mut png = Vec::new();
    // Encoding an image we just made in memory cannot meet bad input.
    let _ = photo.image.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png);
    let crop = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&png));
    Ok(serde_json::json!({ "top": top, "crop": crop }))
}

fn page(model: &str, accuracy: &str, max_mb: u32) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    PAGE.replace("{model}", &escape(model))
        .replace("{accuracy}", &escape(accuracy))
        .replace("{max_mb}", &max_mb.to_string())
}

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Which gemstone is it?</title><link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
#drop { border: 2px dashed #888; border-radius: 8px; padding: 2rem; text-align: center; }
#drop.over { background: #eef; }
#error { color: #a00; font-weight: bold; min-height: 1.5em; }
#result { display: flex; gap: 2rem; align-items: flex-start; margin-top: 1rem; }
#result[hidden] { display: none; }
figure { margin: 0; } figure img { width: 224px; height: 224px; border: 1px solid #ccc; image-rendering: auto; }
ol { font-size: 1.1rem; } .prob { color: #555; margin-left: .5em; }
</style></head><body>
<h1>Which gemstone is it?</h1>
<p id="model">{model}; {accuracy}</p>
<div id="drop">Drop a photograph here, or <input type="file" id="file" accept="image/*"><br><small>up to {max_mb} MB; nothing is stored</small></div>
<p id="error" role="alert"></p>
<div id="result" hidden>
  <figure><img id="crop" alt="the photograph as the model saw it"><figcaption>as the model saw it</figcaption></figure>
  <ol id="top"></ol>
</div>
<script>
const $ = id => document.getElementById(id);
const text = s => { const d = document.createElement('div'); d.textContent = s; return d.innerHTML; };
async function send(file) {
  $('error').textContent = ''; $('result').hidden = true;
  let response;
  try { response = await fetch('/predict', { method: 'POST', body: file }); }
  catch (e) { $('error').textContent = 'The server did not answer: ' + e; return; }
  const answer = await response.json().catch(() => ({
    error: response.status === 413 ? 'The photograph is larger than {max_mb} MB.' : 'Error ' + response.status + '.' }));
  if (!response.ok) { $('error').textContent = answer.error; return; }
  $('crop').src = answer.crop;
  $('top').innerHTML = answer.top.map(p =>
    `<li><span class="class">${text(p.class)}</span><span class="prob">${(100 * p.probability).toFixed(1)} %</span></li>`).join('');
  $('result').hidden = false;
}
$('file').addEventListener('change', () => { if ($('file').files[0]) send($('file').files[0]); });
const drop = $('drop');
drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', e => { e.preventDefault(); drop.classList.remove('over'); if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); });
</script>
</body></html>
"#;
