//! PyTorch checkpoints and the pretrained EfficientNet-Lite: the reader
//! against files written by torch itself (both formats, non-contiguous
//! tensors), its errors, and the network's ImageNet logits against the
//! reference implementation (`tests/pretrained/make_references.py`).
use std::path::{Path, PathBuf};

use gemstones_model::{EfficientNetLiteConfig, Error, ModelConfig, Net, Precision, PretrainedWeights};
use gemstones_testkit::lite0_weights;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pretrained").join(name)
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1)).unwrap()
}

#[test]
fn reads_both_torch_save_formats_with_strides_and_offsets() {
    for file in ["tiny_legacy.pth", "tiny_zip.pth"] {
        let ckpt = PretrainedWeights::read(&fixture(file)).unwrap();
        assert_eq!(ckpt.len(), 5, "{file}");
        // Saved channels-last (stride (27, 1, 9, 3)); logically arange.
        let conv = ckpt.get_shaped("conv.weight", &[2, 3, 3, 3]).unwrap();
        assert_eq!(values(conv), (0..54).map(|v| v as f32).collect::<Vec<_>>(), "{file}");
        // A transposed (4, 3) arange: row r of the (3, 4) view is column r.
        let linear = ckpt.get_shaped("linear.weight", &[3, 4]).unwrap();
        let expected: Vec<f32> = (0..3).flat_map(|r| (0..4).map(move |c| (c * 3 + r) as f32)).collect();
        assert_eq!(values(linear), expected, "{file}");
        // A view at storage offset 3 of arange(10) * 0.5.
        assert_eq!(values(ckpt.get("bn.running_mean").unwrap()), [1.5, 2.0, 2.5, 3.0], "{file}");
        let tracked = ckpt.get("bn.num_batches_tracked").unwrap();
        assert_eq!((tracked.kind(), tracked.int64_value(&[])), (Kind::Int64, 7), "{file}");
        // f16 comes back as f32.
        let half = ckpt.get("half.weight").unwrap();
        assert_eq!((half.kind(), values(half)), (Kind::Float, vec![1.5, -2.25]), "{file}");
    }
}

#[test]
fn reads_safetensors_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    Tensor::write_safetensors(&[("a.weight", Tensor::from_slice(&[1f32, 2.0, 3.0]))], &path).unwrap();
    let ckpt = PretrainedWeights::read(&path).unwrap();
    assert_eq!(values(ckpt.get("a.weight").unwrap()), [1.0, 2.0, 3.0]);
}

fn message(result: Result<PretrainedWeights, Error>) -> String {
    match result {
        Ok(c) => panic!("read {} tensors from a broken file", c.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn broken_files_give_errors_naming_the_file_and_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["tiny_legacy.pth", "tiny_zip.pth"] {
        let bytes = std::fs::read(fixture(file)).unwrap();
        let cut = dir.path().join(format!("cut-{file}"));
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let msg = message(PretrainedWeights::read(&cut));
        assert!(msg.contains(&cut.display().to_string()), "{msg}");
    }
    let text = dir.path().join("notes.pth");
    std::fs::write(&text, "these are not weights\n").unwrap();
    let msg = message(PretrainedWeights::read(&text));
    assert!(msg.contains("notes.pth") && msg.contains("not a readable PyTorch checkpoint"), "{msg}");

    let missing = dir.path().join("absent.pth");
    assert!(message(PretrainedWeights::read(&missing)).contains("absent.pth"));

    let ckpt = PretrainedWeights::read(&fixture("tiny_zip.pth")).unwrap();
    let msg = ckpt.get("_blocks.3._bn1.weight").unwrap_err().to_string();
    assert!(msg.contains("tiny_zip.pth") && msg.contains("_blocks.3._bn1.weight"), "{msg}");
    let msg = ckpt.get_shaped("conv.weight", &[3, 3, 3, 3]).unwrap_err().to_string();
    assert!(msg.contains("conv.weight") && msg.contains("[2, 3, 3, 3]"), "{msg}");
}

/// The reference's inputs: integer pixels, then (x - 127) / 128.
fn fixed_input(n: i64, size: i64) -> Tensor {
    let idx = Tensor::arange(n, (Kind::Int64, Device::Cpu)).view([n, 1, 1, 1]);
    let c = Tensor::arange(3, (Kind::Int64, Device::Cpu)).view([1, 3, 1, 1]);
    let h = Tensor::arange(size, (Kind::Int64, Device::Cpu)).view([1, 1, size, 1]);
    let w = Tensor::arange(size, (Kind::Int64, Device::Cpu)).view([1, 1, 1, size]);
    let pixels = (h * 7 + w * 13 + c * 29 + idx * 31).remainder(256);
    (pixels.to_kind(Kind::Float) - 127.0) / 128.0
}

#[test]
fn lite0_matches_the_reference_implementation_on_imagenet_logits() {
    let Some(weights) = lite0_weights() else { return };
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("lite0_logits.json")).unwrap()).unwrap();
    let ckpt = PretrainedWeights::read(&weights).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net = Net::new(&vs.root(), &ModelConfig::lite0(), 1000, Precision::F32).unwrap();
    assert_eq!(
        gemstones_model::internals::trainable_parameters(&vs),
        reference["parameters"].as_i64().unwrap()
    );
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            var.copy_(ckpt.get_shaped(&name, &var.size()).unwrap());
        }
    });
    gemstones_model::internals::to_channels_last(&vs);
    check_logits(&net, &reference);
    // Batch norm folded into the convolutions (what `Classifier` does):
    // the same logits.
    net.fold_for_inference();
    check_logits(&net, &reference);
}

fn check_logits(net: &Net, reference: &serde_json::Value) {
    for case in reference["cases"].as_array().unwrap() {
        let size = case["size"].as_i64().unwrap();
        let n = case["n"].as_i64().unwrap();
        let expected: Vec<f32> = case["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
            .collect();
        let x = gemstones_model::internals::channels_last(&fixed_input(n, size));
        let got = values(&tch::no_grad(|| net.forward_t(&x, false)));
        let worst = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let scale = expected.iter().map(|v| v.abs()).fold(0f32, f32::max);
        eprintln!("size {size}: worst abs diff {worst}, max logit {scale}");
        // f32 round-off through 50 layers in another memory layout (seen:
        // 6e-6; the references are rounded to 1e-6); a wrong padding,
        // epsilon or stride order moves logits by 0.1 or more.
        assert!(worst < 5e-5, "size {size}: worst |diff| {worst} (logits up to {scale})");
        // Same top class per image.
        for i in 0..n as usize {
            let row = |v: &[f32]| {
                let r = &v[i * 1000..(i + 1) * 1000];
                (0..1000).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap()
            };
            assert_eq!(row(&got), row(&expected), "size {size}, image {i}");
        }
    }
}

#[test]
fn lite1_and_lite2_build_with_their_reference_shapes() {
    // Every tensor of the real checkpoint fits the network when its weights
    // are installed (Lite2 by `make weights`, Lite1 only when asked for);
    // the shapes alone are checked otherwise.
    let nets = [
        (EfficientNetLiteConfig::lite1(), "efficientnet-lite1-77cc7160.pth", false),
        (EfficientNetLiteConfig::lite2(), "efficientnet-lite2-9656183e.pth", true),
    ];
    for (cfg, file, installed_by_default) in nets {
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = Net::new(&vs.root(), &ModelConfig::EfficientnetLite(cfg), 1000, Precision::F32).unwrap();
        let Some(path) = lite0_weights().map(|lite0| lite0.with_file_name(file)) else { return };
        if !installed_by_default && !path.is_file() {
            continue;
        }
        let ckpt = PretrainedWeights::read(&path).unwrap();
        for (name, var) in vs.variables() {
            ckpt.get_shaped(&name, &var.size()).unwrap();
        }
        let ours = vs.variables().len();
        let theirs = ckpt.names().filter(|n| !n.ends_with("num_batches_tracked")).count();
        assert_eq!(ours, theirs, "{file}");
    }
}
