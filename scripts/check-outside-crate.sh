#!/usr/bin/env bash
# A program outside the workspace that depends on the library crates a
# program uses for its own photos and models (gemstones-dataset, -augment,
# -model, -predict) builds and runs with only what README tells its author: libtorch
# from scripts/install-libtorch.py and LIBTORCH at build time; at run time,
# as root, --register (the dynamic loader finds it, no LD_LIBRARY_PATH;
# undone at exit if this script made it), otherwise README's route for
# non-root users, LD_LIBRARY_PATH.
#
#   scripts/check-outside-crate.sh [--packaged PACKAGE_DIR] [WORK_DIR]
#
# By default the crates come from this checkout (path dependencies). With
# --packaged, from the .crate files `cargo package --workspace` wrote into
# PACKAGE_DIR, as crates.io would serve them (extracted, and patched in for
# crates.io's versions): this is CI's build of the packages, what `cargo
# publish --dry-run` would verify, each crate compiled once.
#
# WORK_DIR (default target/outside-crate) holds the generated crate and its
# build (CARGO_TARGET_DIR, if set, shares another one); a second run reuses
# the build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
packaged=""
if [ "${1:-}" = "--packaged" ]; then
  packaged=$(cd "$2" && pwd)
  shift 2
fi
work=${1:-$root/target/outside-crate}
# The scraper and the facade are packaged too, but left out here for CI's
# time (they add 200 dependencies); only the workspace builds them.
crates=(gemstones-dataset gemstones-augment gemstones-model gemstones-predict)
loader_conf=/etc/ld.so.conf.d/gemstones-libtorch.conf
if [ "$(id -u)" -eq 0 ]; then
  # A registration left behind would let later test binaries without an
  # rpath start here and fail on a fresh machine: undo ours.
  if [ ! -e "$loader_conf" ]; then
    trap 'rm -f "$loader_conf"; ldconfig' EXIT
  fi
  python3 "$root/scripts/install-libtorch.py" --dest "$root/.libtorch" --register
  run_env=(env -u LD_LIBRARY_PATH)
else
  python3 "$root/scripts/install-libtorch.py" --dest "$root/.libtorch"
  run_env=(env "LD_LIBRARY_PATH=$root/.libtorch/lib")
fi
mkdir -p "$work/src"
# Where each crate comes from: this checkout, or its extracted package.
source_of() { # source_of CRATE: its folder
  if [ -n "$packaged" ]; then
    local version
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
    echo "$work/packages/$1-$version"
  else
    echo "$root/crates/${1#gemstones-}"
  fi
}
{
  cat <<TOML
[package]
name = "gem-outside"
version = "0.1.0"
edition = "2024"
publish = false

# Not part of the gemstones workspace.
[workspace]

[dependencies]
TOML
  for c in "${crates[@]}"; do echo "$c = { path = \"$(source_of "$c")\" }"; done
  if [ -n "$packaged" ]; then
    # The packages name each other by version, as on crates.io.
    echo; echo "[patch.crates-io]"
    for c in "${crates[@]}"; do echo "$c = { path = \"$(source_of "$c")\" }"; done
  fi
} > "$work/Cargo.toml"
if [ -n "$packaged" ]; then
  rm -rf "$work/packages" && mkdir -p "$work/packages"
  for c in "${crates[@]}"; do
    tar -xzf "$packaged/$c-"[0-9]*.crate -C "$work/packages"
  done
fi
cat > "$work/src/main.rs" <<'RUST'
//! Synthetic gem photos -> a cached image set -> an augmented batch -> a
//! tiny ResNet's logits: each crate's API used from outside the workspace.
use gemstones_augment::{AugmentConfig, BatchAugmenter, ImageView, Normalize, Output};
use gemstones_dataset as ds;
use gemstones_model::tch::{Device, Kind, Tensor, nn};
use gemstones_model::{ModelConfig, Net, Precision, ResNetConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("gem-outside-{}", std::process::id()));
    let classes = ds::synth::default_classes().into_iter().take(2).collect();
    let cfg = ds::synth::SynthConfig { classes, per_class: 3, ..Default::default() };
    ds::synth::write_synthetic_set(dir.join("photos"), &cfg)?;
    let folder = ds::scan(dir.join("photos"))?;
    let pre = ds::PreprocessConfig { size: 32, ..Default::default() };
    let cache = dir.join("photos.cache");
    let (prepared, _) = ds::load_or_build(&folder, &pre, &cache, &|_| {}, &ds::StopFlag::new())?;
    let set = prepared.set;
    let all: Vec<usize> = (0..set.len()).collect();
    let keys: Vec<u64> = all.iter().map(|&i| i as u64).collect();
    let views = ImageView::of_set(&set, &all)?;
    let aug = BatchAugmenter::new(AugmentConfig::tutorial(), 7, 32, 32)?;
    let mut x = vec![0f32; views.len() * aug.image_len()];
    aug.batch(&views, &keys, 0, Output::F32Chw(&mut x, &Normalize::imagenet()))?;
    let vs = nn::VarStore::new(Device::Cpu);
    let classes = set.classes().len();
    let net = Net::new(&vs.root(), &ModelConfig::Resnet(ResNetConfig::tiny()), classes, Precision::F32)?;
    let input = Tensor::from_slice(&x).view([views.len() as i64, 3, 32, 32]);
    let logits = nn::ModuleT::forward_t(&net, &input, false).to_kind(Kind::Float);
    println!("outside crate: {} photos of {classes} classes -> logits {:?}", set.len(), logits.size());
    // The libtorch-free predictor names what is missing from an export folder.
    match gemstones_predict::Predictor::load(&dir.join("no-export")) {
        Err(e) => println!("gemstones-predict: {e}"),
        Ok(_) => return Err("an export folder without model.json loaded".into()),
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
RUST
cd "$work"
LIBTORCH="$root/.libtorch" cargo build --quiet
binary="${CARGO_TARGET_DIR:-$work/target}/debug/gem-outside"
if "${run_env[@]}" ldd "$binary" | grep -q 'not found'; then
  "${run_env[@]}" ldd "$binary" >&2
  echo "check-outside-crate: the program's libraries are not all found" >&2
  exit 1
fi
"${run_env[@]}" "$binary"
