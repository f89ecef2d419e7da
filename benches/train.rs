//! Criterion: one training step (forward, backward, Adam) and inference of
//! the tutorial CNN at 220x220, the ResNet at 128x128 and EfficientNet-Lite0
//! at 192x192, batch 32, channels-last, f32 and bf16; and prediction
//! through `Classifier` with a Lite0 model directory (one photograph,
//! preprocessing included; a batch of 32 preprocessed images).
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gemstones::dataset::{ImageSet, PreprocessConfig, synth};
use gemstones::model::internals::{channels_last, to_channels_last, tune_malloc};
use gemstones::model::{
    Classifier, ModelConfig, ModelDir, ModelSpec, Net, Precision, ResNetConfig, SPEC_FORMAT,
};
use tch::nn::{ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

fn bench(c: &mut Criterion) {
    tune_malloc();
    let mut g = c.benchmark_group("train_step_batch32");
    g.sample_size(10);
    g.throughput(Throughput::Elements(32));
    for (name, model, size) in [
        ("tutorial_cnn_220", ModelConfig::tutorial(), 220i64),
        ("resnet_128", ModelConfig::Resnet(ResNetConfig { input_size: 128, ..Default::default() }), 128),
        ("lite0_192", ModelConfig::lite0().with_input_size(192), 192),
    ] {
        for precision in [Precision::F32, Precision::Bf16] {
            tch::manual_seed(0);
            let vs = tch::nn::VarStore::new(Device::Cpu);
            let net = Net::new(&vs.root(), &model, 87, precision).expect("net");
            to_channels_last(&vs);
            let mut opt = tch::nn::Adam::default().build(&vs, 1e-3).expect("adam");
            let x = channels_last(&Tensor::randn([32, 3, size, size], (Kind::Float, Device::Cpu)));
            let y = Tensor::randint(87, [32], (Kind::Int64, Device::Cpu));
            let id = format!("{name}_{precision:?}");
            g.bench_function(BenchmarkId::new("train", &id), |b| {
                b.iter(|| {
                    let loss = net.forward_t(&x, true).cross_entropy_for_logits(&y);
                    opt.backward_step(&loss);
                })
            });
            g.bench_function(BenchmarkId::new("infer", &id), |b| {
                b.iter(|| tch::no_grad(|| net.forward_t(&x, false)))
            });
        }
    }
    g.finish();
}

/// A Lite0 model directory (random weights: speed does not depend on
/// them) for 87 classes, as the lite0 preset writes it.
fn lite0_model_dir(dir: &std::path::Path, precision: Precision) -> ModelSpec {
    let model = ModelConfig::lite0().with_input_size(192);
    let classes: Vec<String> = (0..87).map(|i| format!("Class {i:02}")).collect();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let _net = Net::new(&vs.root(), &model, classes.len(), precision).expect("net");
    let spec = ModelSpec {
        format: SPEC_FORMAT,
        model,
        precision,
        preprocess: PreprocessConfig { size: 256, ..PreprocessConfig::default() },
        normalize: gemstones::augment::Normalize { mean: [127.0 / 255.0; 3], std: [128.0 / 255.0; 3] },
        classes,
        augment: Default::default(),
        validation: None,
    };
    ModelDir::new(dir).write_spec(&spec).expect("spec");
    let named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    Tensor::write_safetensors(&named, dir.join("best.safetensors")).expect("weights");
    spec
}

fn predict(c: &mut Criterion) {
    tune_malloc();
    let synth_cfg = synth::SynthConfig { min_size: 600, max_size: 600, ..Default::default() };
    let photo = synth::render_gem(&synth_cfg, 0, 0).expect("photo");
    let mut g = c.benchmark_group("classifier_lite0_192");
    g.sample_size(10);
    for precision in [Precision::F32, Precision::Bf16] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let spec = lite0_model_dir(tmp.path(), precision);
        let clf = Classifier::load(tmp.path()).expect("classifier");
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("one_photo_600px", format!("{precision:?}")), |b| {
            b.iter(|| clf.predict_rgb(&photo, 5).expect("predict"))
        });
        let size = spec.preprocess.size;
        let set = ImageSet::from_parts(
            gemstones::dataset::ClassIndex::from_ordered(spec.classes.clone()).expect("classes"),
            size,
            vec![0; 32],
            vec![std::path::PathBuf::from("gem.jpg"); 32],
            std::path::PathBuf::new(),
            vec![128u8; 32 * (size * size * 3) as usize],
        )
        .expect("set");
        let idx: Vec<usize> = (0..32).collect();
        g.throughput(Throughput::Elements(32));
        g.bench_function(BenchmarkId::new("batch32_prepared", format!("{precision:?}")), |b| {
            b.iter(|| clf.probabilities_of_set(&set, &idx).expect("probabilities"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, predict);
criterion_main!(benches);
