//! Smoke workflow: proves libtorch links and trains on this machine by
//! fitting a small conv net to a fixed random batch with Adam.
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Kind, Tensor};

fn main() -> anyhow::Result<()> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    let device = gemstones::model::best_device();
    println!("smoke: device {device:?}, libtorch intra-op threads {}", tch::get_num_threads());
    tch::manual_seed(42);
    let vs = nn::VarStore::new(device);
    let p = vs.root();
    let conv =
        |p: nn::Path, i, o| nn::conv2d(p, i, o, 3, nn::ConvConfig { padding: 1, ..Default::default() });
    let net = nn::seq_t()
        .add(conv(&p / "c1", 3, 16))
        .add_fn(|x| x.relu().max_pool2d_default(2))
        .add(conv(&p / "c2", 16, 32))
        .add_fn(|x| x.relu().adaptive_avg_pool2d([1, 1]).flatten(1, -1))
        .add(nn::linear(&p / "fc", 32, 5, Default::default()));
    let mut opt = nn::Adam::default().build(&vs, 1e-2)?;
    let xs = Tensor::randn([32, 3, 32, 32], (Kind::Float, device));
    let ys = Tensor::arange(32, (Kind::Int64, device)).remainder(5);
    for step in 0..=40 {
        let loss = net.forward_t(&xs, true).cross_entropy_for_logits(&ys);
        if step % 10 == 0 {
            println!("smoke: step {step:2}  loss {:.4}", f64::try_from(&loss)?);
        }
        opt.backward_step(&loss);
    }
    println!("smoke: libtorch trains; the full workflow example replaces this with issue 7");
    Ok(())
}
