# Shared by scripts/bench-*.sh: venvs with pinned packages, the Rust side.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA="${GEMSTONES_TRAIN_DIR:-../shared/datasets/gemstones/train}"

venv() { # venv NAME PACKAGES...: rebuilt when the pinned list changes
  local dir=".venv-bench-$1"; shift
  if [ ! -f "$dir/.ready" ] || [ "$(cat "$dir/.ready")" != "$*" ]; then
    echo "[bench] creating $dir with: $*" >&2
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2
    echo "$*" > "$dir/.ready"
  fi
  echo "$dir/bin/python"
}

# The PyTorch venv every script shares (one pinned list: a different list
# would rebuild it each time another script runs).
torch_venv() { venv torch torch==2.13.0 torchvision==0.28.0 pillow==11.3.0 numpy==2.2.6 efficientnet-lite-pytorch==0.1.0; }

# The ONNX venv check-onnx.sh and bench-predict.sh share.
onnx_venv() { venv onnx onnx==1.23.2 onnxruntime==1.32.0 numpy==2.2.6 pillow==11.3.0; }

rust() { # rust MODE [ARGS]
  make -s libtorch >&2
  cargo bench -q --bench compare -- "$@" 2>/dev/null
}

compare() { # compare FILE TITLE [ONLY]: one labelled table, ours against each peer's same configuration
  python3 benches/python/compare.py "$@"
}
