//! One-shot measurements printed as JSON, for the side-by-side scripts in
//! `scripts/bench-*.sh` (which run the Python peers in the same run):
//!
//!     cargo bench --bench compare -- preprocess [DIR]
//!     cargo bench --bench compare -- augment [DIR]
//!     cargo bench --bench compare -- train
//!     cargo bench --bench compare -- scrape
//!
//! DIR defaults to ../shared/datasets/gemstones/train.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gemstones::augment::{AugmentConfig, BatchAugmenter, ImageView, Normalize, Output};
use gemstones::dataset::{self, PreprocessConfig};
use gemstones::model::internals::{channels_last, to_channels_last};
use gemstones::model::{ModelConfig, Net, Precision, ResNetConfig};
use serde_json::json;
use tch::nn::{ModuleT, OptimizerConfig};

fn data_dir(arg: Option<String>) -> PathBuf {
    arg.map(PathBuf::from).or_else(gemstones_testkit::shared_train_dir).unwrap_or_else(|| {
        eprintln!("no image folder: pass one, or set GEMSTONES_TRAIN_DIR");
        std::process::exit(2)
    })
}

fn best_of<T>(n: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut last = None;
    for _ in 0..n {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    (best, last.expect("n >= 1"))
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool")
}

fn preprocess(dir: PathBuf) {
    let folder = dataset::scan(&dir).expect("scan");
    let cfg = PreprocessConfig::default();
    for threads in [1, 2] {
        let (secs, pre) = best_of(3, || {
            pool(threads).install(|| {
                dataset::preprocess_folder(&folder, &cfg, &|_| {}, &dataset::StopFlag::new())
                    .expect("preprocess")
            })
        });
        println!(
            "{}",
            json!({"tool": "gemstones-dataset preprocess_folder", "threads": threads, "images": pre.set.len(),
            "cropped": pre.set.crops().iter().filter(|c| c.is_some()).count(), "seconds": secs, "images_per_sec": pre.set.len() as f64 / secs})
        );
    }
    let tmp = std::env::temp_dir().join(format!("gemstones-bench-{}.cache", std::process::id()));
    let (_, _) =
        dataset::load_or_build(&folder, &cfg, &tmp, &|_| {}, &dataset::StopFlag::new()).expect("cache");
    let (secs, c) = best_of(3, || dataset::load_cache(&tmp).expect("load cache"));
    println!(
        "{}",
        json!({"tool": "gemstones-dataset load_cache", "images": c.preprocessed.set.len(), "bytes": std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0), "seconds": secs})
    );
    let (secs, _) = best_of(3, || {
        dataset::load_or_build(&folder, &cfg, &tmp, &|_| {}, &dataset::StopFlag::new()).expect("cache")
    });
    println!("{}", json!({"tool": "gemstones-dataset load_or_build (fingerprint + load)", "seconds": secs}));
    let _ = std::fs::remove_file(tmp);
}

fn augment(dir: PathBuf) {
    let folder = dataset::scan(&dir).expect("scan");
    let cfg = PreprocessConfig { size: 220, crop: None, ..PreprocessConfig::default() };
    let pre =
        dataset::preprocess_folder(&folder, &cfg, &|_| {}, &dataset::StopFlag::new()).expect("preprocess");
    let n = pre.set.len().min(2000);
    let views: Vec<ImageView<'_>> =
        (0..n).map(|i| ImageView::new(pre.set.image(i).expect("image"), 220, 220).expect("view")).collect();
    let aug = BatchAugmenter::new(AugmentConfig::tutorial(), 1, 220, 220).expect("augmenter");
    let idx: Vec<u64> = (0..n as u64).collect();
    let mut out = vec![0u8; n * aug.image_len()];
    let mut outf = vec![0f32; 64 * aug.image_len()];
    for threads in [1, 2] {
        let p = pool(threads);
        let (secs, _) = best_of(3, || {
            p.install(|| aug.batch(&views, &idx, 0, Output::U8Hwc(&mut out)).expect("augment"))
        });
        println!(
            "{}",
            json!({"tool": "gemstones-augment u8 NHWC, tutorial config", "threads": threads, "images": n, "seconds": secs, "images_per_sec": n as f64 / secs})
        );
        let (secs, ()) = best_of(3, || {
            p.install(|| {
                for (c, k) in views.chunks(64).zip(idx.chunks(64)) {
                    let len = c.len() * aug.image_len();
                    aug.batch(c, k, 0, Output::F32Hwc(&mut outf[..len], &Normalize::imagenet()))
                        .expect("augment");
                }
            })
        });
        println!(
            "{}",
            json!({"tool": "gemstones-augment f32 NHWC normalised, batches of 64", "threads": threads, "images": n, "seconds": secs, "images_per_sec": n as f64 / secs})
        );
    }
    let (secs, ()) = best_of(3, || {
        for (i, v) in views.iter().enumerate() {
            out[i * aug.image_len()..(i + 1) * aug.image_len()].copy_from_slice(v.data());
        }
    });
    println!(
        "{}",
        json!({"tool": "plain copy", "threads": 1, "images": n, "seconds": secs, "images_per_sec": n as f64 / secs})
    );
}

/// Training-step and inference throughput of the networks named in
/// `only` (all when empty): tutorial-cnn, resnet, lite0.
fn train(only: &[String]) {
    gemstones::model::internals::tune_malloc();
    let steps = 10;
    let models = [
        ("tutorial-cnn", ModelConfig::tutorial(), 220i64),
        ("resnet", ModelConfig::Resnet(ResNetConfig { input_size: 128, ..Default::default() }), 128),
        ("lite0", ModelConfig::lite0(), 224),
        ("lite0", ModelConfig::lite0().with_input_size(192), 192),
        ("lite0", ModelConfig::lite0().with_input_size(160), 160),
    ];
    for (name, model, size) in models.into_iter().filter(|m| only.is_empty() || only.iter().any(|o| o == m.0))
    {
        for precision in [Precision::F32, Precision::Bf16] {
            tch::manual_seed(0);
            let vs = tch::nn::VarStore::new(tch::Device::Cpu);
            let mut net = Net::new(&vs.root(), &model, 87, precision).expect("net");
            to_channels_last(&vs);
            let mut opt = tch::nn::Adam::default().build(&vs, 1e-3).expect("adam");
            let x =
                channels_last(&tch::Tensor::randn([32, 3, size, size], (tch::Kind::Float, tch::Device::Cpu)));
            let y = tch::Tensor::randint(87, [32], (tch::Kind::Int64, tch::Device::Cpu));
            let step = |opt: &mut tch::nn::Optimizer, net: &Net| {
                let loss = net.forward_t(&x, true).cross_entropy_for_logits(&y);
                opt.backward_step(&loss);
            };
            for _ in 0..3 {
                step(&mut opt, &net);
            }
            let t = Instant::now();
            for _ in 0..steps {
                step(&mut opt, &net);
            }
            let train = (steps * 32) as f64 / t.elapsed().as_secs_f64();
            // Inference as `Classifier` runs it: batch norm folded into the
            // convolutions, weights pre-cast (EfficientNet-Lite).
            net.fold_for_inference();
            let (infer, latency_ms) = inference(&net, &x);
            println!(
                "{}",
                json!({"tool": "gemstones-model (tch)", "model": name, "size": size, "precision": format!("{precision:?}"),
                "layout": "channels_last", "batch": 32, "threads": tch::get_num_threads(), "train_images_per_sec": train,
                "infer_images_per_sec": infer, "latency_ms": latency_ms})
            );
        }
    }
}

/// Batch-32 inference throughput over 10 batches and the median latency
/// of one image over 30 calls.
fn inference(net: &Net, x: &tch::Tensor) -> (f64, f64) {
    tch::no_grad(|| {
        let _ = net.forward_t(x, false);
        let t = Instant::now();
        for _ in 0..10 {
            let _ = net.forward_t(x, false);
        }
        let per_sec = 320.0 / t.elapsed().as_secs_f64();
        let one = x.narrow(0, 0, 1);
        let _ = net.forward_t(&one, false);
        let mut times: Vec<f64> = (0..30)
            .map(|_| {
                let t = Instant::now();
                let _ = net.forward_t(&one, false);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        (per_sec, times[times.len() / 2])
    })
}

fn scrape() {
    use gemstones::scrape::{FetchConfig, ScrapeConfig, Scraper, SiteProfile};
    let dir = tempfile::tempdir().expect("tempdir");
    let catalogue = dir.path().join("catalogue");
    let synth = dataset::synth::SynthConfig {
        classes: dataset::synth::default_classes()
            .into_iter()
            .cycle()
            .take(10)
            .enumerate()
            .map(|(i, mut c)| {
                c.name = format!("{} {i}", c.name);
                c
            })
            .collect(),
        per_class: 30,
        min_size: 48,
        max_size: 64,
        ..Default::default()
    };
    dataset::synth::write_synthetic_set(&catalogue, &synth).expect("catalogue");
    let latency = Duration::from_millis(50);
    let site = gemstones::scrape::DemoSite::start_with_latency(&catalogue, latency).expect("site");
    // Above what 16 connections at 50 ms can ask for (320/s): the limit is
    // checked, not what sets the pace (the scrape tests pin a binding one).
    let rps = 400.0;
    let mut results = Vec::new();
    for concurrency in [1usize, 16] {
        site.clear_requests();
        let out = dir.path().join(format!("out-{concurrency}"));
        let cfg = ScrapeConfig {
            fetch: FetchConfig { concurrency, per_host_rps: rps, ..FetchConfig::default() },
            progress: false,
            ..ScrapeConfig::default()
        };
        let t = Instant::now();
        let s = Scraper::new(SiteProfile::minerals_net_at(site.start_url()), cfg)
            .expect("scraper")
            .run_blocking(&out)
            .expect("scrape");
        let secs = t.elapsed().as_secs_f64();
        let times: Vec<Instant> = site.requests().into_iter().map(|r| r.0).collect();
        let max_in_second = (0..times.len())
            .map(|i| times[i..].iter().take_while(|u| **u - times[i] < Duration::from_secs(1)).count())
            .max()
            .unwrap_or(0);
        println!(
            "{}",
            json!({"tool": "gemstones-scrape", "latency_ms": 50, "concurrency": concurrency, "per_host_rps_limit": rps,
            "images": s.saved, "requests": times.len(), "seconds": secs, "max_requests_in_any_second": max_in_second})
        );
        results.push(secs);
    }
    println!("{}", json!({"speedup_concurrency_16_vs_1": results[0] / results[1]}));
}

/// `Classifier` (libtorch) on a trained model directory, the fields of
/// gemstones-predict's bench (`crates/predict/benches/predict.rs`): median
/// decode-to-top-5 and prepared-photo-to-top-5 latency, and prepared photos
/// through the network 32 at a time, at 1 and 2 threads.
fn predict(args: &[String]) {
    use gemstones::model::Classifier;
    let (dir, photos) = args.split_first().expect("usage: predict MODEL_DIR PHOTO...");
    let photos: Vec<PathBuf> = photos.iter().map(PathBuf::from).collect();
    let classifier = Classifier::load(std::path::Path::new(dir)).expect("a model directory");
    let mut pp = dataset::Preprocessor::new(classifier.spec().preprocess).expect("preprocessing");
    // Left out, as the predictor's bench does: photos the preparation refuses.
    let (photos, prepared): (Vec<PathBuf>, Vec<_>) =
        photos.into_iter().filter_map(|p| pp.process_file(&p).ok().map(|img| (p, img))).unzip();
    let median_ms = |f: &mut dyn FnMut(usize)| {
        let mut times: Vec<f64> = (0..photos.len())
            .map(|i| {
                let t = Instant::now();
                f(i);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    for threads in [1, 2] {
        tch::set_num_threads(threads);
        classifier.predict_prepared(&prepared[0], 5).expect("warm-up");
        let net_latency_ms = median_ms(&mut |i| {
            classifier.predict_prepared(&prepared[i], 5).expect("predict");
        });
        let latency_ms = median_ms(&mut |i| {
            classifier.predict_file(&photos[i], 5).expect("predict");
        });
        let t = Instant::now();
        for batch in prepared.chunks(32) {
            let _probabilities = classifier.probabilities_of_prepared(batch).expect("predict");
        }
        let images_per_sec = prepared.len() as f64 / t.elapsed().as_secs_f64();
        let spec = serde_json::to_value(&classifier.spec().model).expect("JSON");
        let model = spec["arch"].as_str().unwrap_or_default().to_string();
        println!(
            "{}",
            json!({"tool": "gemstones-model Classifier (libtorch)", "peer": true, "model": model,
            "size": classifier.spec().model.input_size(), "precision": format!("{:?}", classifier.spec().precision).to_lowercase(),
            "threads": threads, "latency_ms": latency_ms, "net_latency_ms": net_latency_ms, "images_per_sec": images_per_sec})
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    match args.next().as_deref() {
        Some("preprocess") => preprocess(data_dir(args.next())),
        Some("augment") => augment(data_dir(args.next())),
        Some("train") => train(&args.collect::<Vec<_>>()),
        Some("scrape") => scrape(),
        Some("predict") => predict(&args.collect::<Vec<_>>()),
        _ => eprintln!(
            "usage: cargo bench --bench compare -- preprocess [DIR]|augment [DIR]|train [MODEL...]|scrape|predict MODEL_DIR PHOTO..."
        ),
    }
}
