//! Criterion: one training step (forward, backward, Adam) and inference of
//! the tutorial CNN at 220x220 and the ResNet at 128x128, batch 32,
//! channels-last, f32 and bf16.
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gemstones::model::{
    ModelConfig, Net, Precision, ResNetConfig, channels_last, to_channels_last, tune_malloc,
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

criterion_group!(benches, bench);
criterion_main!(benches);
