#!/usr/bin/env bash
# Predicting without libtorch, measured against predicting with it, in the
# same run on the same photographs:
#   - gemstones-predict (tract, pure Rust) on the export's model.onnx,
#   - gemstones-model's Classifier (libtorch) on the trained model folder,
#   - onnxruntime (Python, pinned venv) on the same model.onnx.
# Single-photo latency (decode -> crop -> resize -> network -> top-5, median
# over the photos; onnxruntime's Python side decodes and resizes with
# Pillow, no crop), the network alone on the prepared photo, throughput
# over all the photos (batches of 32 for Classifier and onnxruntime, one
# at a time for tract, whose plan is made for one), then each one's peak memory (maximum resident set) as a
# process that loads the model and predicts one photo, and the size of the
# libtorch-free binary.
#
#   scripts/bench-predict.sh [MODEL_DIR] [PHOTOS_DIR] [COUNT]
#
# Default: the demo workflow's model (`make run` makes it), the real
# training photographs, 64 of them (every n-th, sorted).
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
MODEL=${1:-runs/demo/model}
PHOTOS=${2:-$DATA}
COUNT=${3:-64}
[ -d "$MODEL" ] || make -s run >&2
PY=$(onnx_venv)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
make -s libtorch >&2
cargo build -q --release --example export --example predict
cargo build -q --release -p gemstones-predict --example predict_onnx
./target/release/examples/export --model "$MODEL" --out "$work/export" >&2
# Absolute paths: `cargo bench` runs a bench in its own package's folder.
PHOTOS=$(realpath "$PHOTOS")
mapfile -t all < <(find "$PHOTOS" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort)
step=$(( ${#all[@]} / COUNT )); [ "$step" -ge 1 ] || step=1
mapfile -t photos < <(printf '%s\n' "${all[@]}" | awk -v s="$step" -v n="$COUNT" '(NR - 1) % s == 0 && c++ < n')
./target/release/examples/predict_onnx --model "$work/export" -k 1 --save-inputs "$work/inputs.npy" "${photos[@]}" > /dev/null
out=$(mktemp)
echo "== $(date -u +%F) $(nproc) cores; ${#photos[@]} photos of $PHOTOS; model $MODEL"
echo "== gemstones-predict (tract)"
cargo bench -q -p gemstones-predict --bench predict -- "$work/export" "${photos[@]}" | tee -a "$out"
cargo bench -q -p gemstones-predict --bench predict -- --low-memory "$work/export" "${photos[@]}" | tee -a "$out"
echo "== gemstones-model Classifier (libtorch)"
rust predict "$MODEL" "${photos[@]}" | tee -a "$out"
echo "== onnxruntime"
"$PY" benches/python/predict_peers.py bench "$work/export" "$work/inputs.npy" "${photos[@]}" | tee -a "$out"

# Peak memory: one process each, loading the model and predicting one photo.
peak() { # peak TOOL COMMAND...: the command's maximum resident set, as a JSON line
  local tool=$1; shift
  /usr/bin/time -f '%M' -o "$work/rss" "$@" > /dev/null
  python3 -c 'import json,sys; print(json.dumps({"tool": sys.argv[1], "peer": sys.argv[1].startswith("gemstones-model"), "peak_rss_mb": int(open(sys.argv[2]).read().split()[-1]) / 1024}))' "$tool" "$work/rss"
}
echo "== peak memory, predicting one photo"
{
  peak "gemstones-predict (tract) predict_onnx" ./target/release/examples/predict_onnx --model "$work/export" "${photos[0]}"
  peak "gemstones-predict (tract, --low-memory) predict_onnx" ./target/release/examples/predict_onnx --low-memory --model "$work/export" "${photos[0]}"
  peak "gemstones-model Classifier (libtorch) predict" ./target/release/examples/predict --model "$MODEL" "${photos[0]}"
  peak "onnxruntime (Python)" "$PY" benches/python/predict_peers.py one "$work/export" "${photos[0]}"
} | tee -a "$out"
compare "$out" "predicting: gemstones-predict (tract, no libtorch) against the libtorch Classifier and onnxruntime, same model.onnx"
size=$(stat -c %s target/release/examples/predict_onnx)
strip -o "$work/stripped" target/release/examples/predict_onnx
echo "== predict_onnx release binary: $((size / 1024 / 1024)) MB as built (line tables), $(( $(stat -c %s "$work/stripped") / 1024 / 1024 )) MB stripped; ldd: $(ldd target/release/examples/predict_onnx | awk '{print $1}' | tr '\n' ' ')"
