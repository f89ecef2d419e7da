//! Proves libtorch links and trains: a small conv net, forward, backward and
//! Adam steps on CPU, loss going down on a fixed batch.
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

#[test]
fn small_convnet_learns_a_fixed_batch_on_cpu() -> anyhow::Result<()> {
    tch::manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    let p = vs.root();
    let net = nn::seq_t()
        .add(nn::conv2d(&p / "c1", 3, 8, 3, nn::ConvConfig { padding: 1, ..Default::default() }))
        .add_fn(|x| x.relu().max_pool2d_default(2))
        .add(nn::conv2d(&p / "c2", 8, 16, 3, nn::ConvConfig { padding: 1, ..Default::default() }))
        .add_fn(|x| x.relu().adaptive_avg_pool2d([1, 1]).flatten(1, -1))
        .add(nn::linear(&p / "fc", 16, 4, Default::default()));
    let mut opt = nn::Adam::default().build(&vs, 1e-2)?;

    let xs = Tensor::randn([16, 3, 16, 16], (Kind::Float, Device::Cpu));
    let ys = Tensor::arange(16, (Kind::Int64, Device::Cpu)).remainder(4);
    let loss_of = |train| net.forward_t(&xs, train).cross_entropy_for_logits(&ys);

    let first = f64::try_from(loss_of(false))?;
    for _ in 0..30 {
        let loss = loss_of(true);
        opt.backward_step(&loss);
    }
    let last = f64::try_from(loss_of(false))?;
    assert!(first.is_finite() && last.is_finite());
    assert!(last < 0.5 * first, "loss did not go down: {first} -> {last}");
    Ok(())
}
