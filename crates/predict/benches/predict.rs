//! gemstones-predict's side of `scripts/bench-predict.sh`: one JSON line of
//! single-photo latency and batch throughput on an export, fields as
//! `benches/python/compare.py` reads them.
//!
//!     cargo bench -p gemstones-predict --bench predict -- [--low-memory] EXPORT_DIR PHOTO...
//!
//! `--low-memory` measures under `tune_malloc_for_low_memory` (as
//! `predict_onnx --low-memory` and the demo page run).
//! `latency_ms`: median over the photos of decode -> crop -> resize ->
//! network -> top-5 (`predict_file`); `net_latency_ms`: the same from the
//! prepared photo (`predict_prepared`); `images_per_sec`: all the prepared
//! photos through `probabilities` (one at a time: the predictor's plan is
//! made for one photo, see its `load_plan`). tract runs on one thread.
use std::path::{Path, PathBuf};
use std::time::Instant;

use gemstones_predict::{Predictor, PreparedPhoto};

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let low_memory = args.first().is_some_and(|a| a == "--low-memory");
    if low_memory {
        args.remove(0);
        anyhow::ensure!(gemstones_predict::tune_malloc_for_low_memory(), "glibc refused the malloc setting");
    }
    let Some((export, photos)) = args.split_first() else {
        anyhow::bail!("usage: predict [--low-memory] EXPORT_DIR PHOTO...");
    };
    let tool =
        if low_memory { "gemstones-predict (tract, --low-memory)" } else { "gemstones-predict (tract)" };
    let photos: Vec<PathBuf> = photos.iter().map(PathBuf::from).collect();
    anyhow::ensure!(!photos.is_empty(), "no photos given");
    let export = Path::new(export);
    let predictor = Predictor::load(export)?;
    // Photos the preparation refuses (a few in the real set) are left out,
    // and said, so every tool measures the same readable ones.
    let mut prepared = Vec::new();
    let mut readable = Vec::new();
    for photo in &photos {
        match predictor.prepare_file(photo) {
            Ok(p) => {
                prepared.push(p);
                readable.push(photo.clone());
            }
            Err(e) => eprintln!("left out: {e}"),
        }
    }
    let photos = readable;
    anyhow::ensure!(!photos.is_empty(), "no readable photo");
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(export.join("model.json"))?)?;
    let model = info["model"]["arch"].as_str().unwrap_or_default();
    let (latency_ms, net_latency_ms, images_per_sec) = measure(&predictor, &photos, &prepared)?;
    let input = &predictor.description().input;
    println!(
        "{}",
        serde_json::json!({
            "tool": tool, "model": model, "size": input.width, "precision": "f32",
            "threads": 1, "latency_ms": latency_ms, "net_latency_ms": net_latency_ms,
            "images_per_sec": images_per_sec,
        })
    );
    Ok(())
}

/// Median decode-to-top-5 and network-only milliseconds, and photos per
/// second through `probabilities`.
fn measure(
    predictor: &Predictor,
    photos: &[PathBuf],
    prepared: &[PreparedPhoto],
) -> anyhow::Result<(f64, f64, f64)> {
    predictor.predict_prepared(&prepared[0].image, 5)?; // warm-up
    let net_latency_ms = median_ms(prepared.iter(), |p| {
        predictor.predict_prepared(&p.image, 5)?;
        Ok(())
    })?;
    let latency_ms = median_ms(photos.iter(), |p| {
        predictor.predict_file(p, 5)?;
        Ok(())
    })?;
    let images: Vec<_> = prepared.iter().map(|p| &p.image).collect();
    let started = Instant::now();
    predictor.probabilities(&images)?;
    let images_per_sec = images.len() as f64 / started.elapsed().as_secs_f64();
    Ok((latency_ms, net_latency_ms, images_per_sec))
}

/// Median milliseconds of `f` over `items`.
fn median_ms<T>(
    items: impl Iterator<Item = T>,
    mut f: impl FnMut(T) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    for item in items {
        let started = Instant::now();
        f(item)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
