#!/usr/bin/env bash
# Usage: scripts/bench-train.sh [tutorial|lite0]   (default: both)
#
# tutorial: the tutorial's CNN, one training step (batch 32, 220x220, Adam)
# and inference: gemstones-model (tch) vs PyTorch eager (same libtorch 2.13)
# and Keras/TensorFlow, in the same run. PyTorch runs twice: with glibc's
# default malloc and with the malloc fix (as gemstones does from inside).
#
# lite0: EfficientNet-Lite0 (87 classes) at 224/192/160, a training step
# (batch 32, channels-last) and inference (batch 32 and one image), f32 and
# bf16, against PyTorch eager with the reference implementation, malloc
# fixed, bf16 autocast against our bf16.
#
# Each part ends with one table (benches/python/compare.py): each of our
# configurations against the same configuration of each peer, labelled,
# with the machine, date and versions.
source "$(dirname "$0")/bench-lib.sh"
PYT=$(torch_venv)
what=${1:-all}
if [ "$what" = "lite0" ] || [ "$what" = "all" ]; then
  out=$(mktemp)
  echo "== $(date -u +%F) $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
  echo "== EfficientNet-Lite0: PyTorch eager (efficientnet-lite-pytorch 0.1.0), malloc fixed"
  GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184 "$PYT" benches/python/train_peers.py lite0 | tee -a "$out"
  echo "== EfficientNet-Lite0: gemstones-model"
  rust train lite0 | tee -a "$out"
  compare "$out" "EfficientNet-Lite0 (87 classes, batch 32): ours against PyTorch eager, same libtorch 2.13, size and precision"
fi
[ "$what" = "tutorial" ] || [ "$what" = "all" ] || exit 0
PYF=$(venv tf tensorflow-cpu==2.21.0)
out=$(mktemp)
echo "== PyTorch eager, default malloc"
"$PYT" benches/python/train_peers.py torch | tee -a "$out"
echo "== PyTorch eager, malloc fixed (GLIBC_TUNABLES)"
GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184 "$PYT" benches/python/train_peers.py torch \
  | sed 's/"tool": "pytorch/"tool": "pytorch(malloc fixed)/' | tee -a "$out"
echo "== Keras / TensorFlow"
"$PYF" benches/python/train_peers.py tf | tee -a "$out"
echo "== gemstones-model"
rust train tutorial-cnn resnet | tee -a "$out"
compare "$out" "the tutorial's CNN (220x220, batch 32, Adam): ours against PyTorch eager (same libtorch 2.13; default and fixed malloc; NCHW and channels-last) and Keras/TensorFlow"
