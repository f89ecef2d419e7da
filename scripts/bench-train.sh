#!/usr/bin/env bash
# The tutorial's CNN, one training step (batch 32, 220x220, Adam) and
# inference: gemstones-model (tch) vs PyTorch eager (same libtorch 2.13) and
# Keras/TensorFlow, in the same run. PyTorch runs twice: with glibc's
# default malloc and with the malloc fix (as gemstones does from inside).
source "$(dirname "$0")/bench-lib.sh"
PYT=$(venv torch torch==2.13.0 torchvision==0.28.0 pillow==11.3.0 numpy==2.2.6)
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
rust train | tee -a "$out"
echo "== ratios (train images/s)"
ratio "$out"
