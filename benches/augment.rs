//! Criterion: augmentation throughput with the tutorial's configuration on
//! 220x220 images (the real photographs when available), one image at a
//! time and as batches at 1 and 2 threads.
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gemstones::augment::{AugmentConfig, BatchAugmenter, ImageView, Normalize, Output};
use gemstones::dataset::{self, PreprocessConfig};

fn images() -> (Vec<u8>, usize) {
    const N: usize = 256;
    let len = 220 * 220 * 3;
    if let Some(dir) = gemstones_testkit::shared_train_dir() {
        let mut folder = dataset::scan(dir).expect("scan");
        folder.files.truncate(N);
        let cfg = PreprocessConfig { size: 220, crop: None, ..PreprocessConfig::default() };
        let pre = dataset::preprocess_folder(&folder, &cfg, &|_| {}, &dataset::StopFlag::new())
            .expect("preprocess");
        return (pre.set.pixels().to_vec(), pre.set.len());
    }
    let synth = dataset::synth::SynthConfig::default();
    let mut px = Vec::with_capacity(N * len);
    for i in 0..N {
        let img = dataset::synth::render_gem(&synth, i % 6, i).expect("render");
        px.extend_from_slice(
            image::imageops::resize(&img, 220, 220, image::imageops::FilterType::Triangle).as_raw(),
        );
    }
    (px, N)
}

fn bench(c: &mut Criterion) {
    let (px, n) = images();
    let views: Vec<ImageView<'_>> =
        px.chunks_exact(220 * 220 * 3).map(|d| ImageView::new(d, 220, 220).expect("view")).collect();
    let aug = BatchAugmenter::new(AugmentConfig::tutorial(), 7, 220, 220).expect("augmenter");
    let idx: Vec<u64> = (0..n as u64).collect();
    let mut g = c.benchmark_group("augment_tutorial_220");
    g.sample_size(20);
    let params: Vec<_> = views.iter().enumerate().map(|(i, v)| aug.sample(0, i as u64, v)).collect();
    let mut one = vec![0u8; aug.image_len()];
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("single_image_u8_loop", |b| {
        b.iter(|| {
            for (v, p) in views.iter().zip(&params) {
                aug.apply(*v, p, Output::U8Hwc(&mut one)).expect("augment");
            }
        })
    });
    let mut out = vec![0f32; 64 * aug.image_len()];
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        g.bench_with_input(BenchmarkId::new("batch64_f32_nhwc", threads), &threads, |b, _| {
            b.iter(|| {
                pool.install(|| {
                    for (v, k) in views.chunks(64).zip(idx.chunks(64)) {
                        let len = v.len() * aug.image_len();
                        aug.batch(v, k, 0, Output::F32Hwc(&mut out[..len], &Normalize::imagenet()))
                            .expect("augment");
                    }
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
