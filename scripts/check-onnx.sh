#!/usr/bin/env bash
# Check an export's model.onnx with the ONNX project's own tools (pinned,
# own venv): onnx.checker (full check, shapes inferred) accepts it, and
# onnxruntime's probabilities on real photos match `predict` (this
# project's libtorch Classifier): the same top-1 on every photo and
# probabilities within 1e-3. The inputs are the ones the export's
# preparation makes (predict_onnx --save-inputs: decode, crop to the stone,
# resize), so both runtimes see the same numbers.
#
#   scripts/check-onnx.sh [MODEL_DIR] [PHOTOS_DIR]
#
# Default: the demo workflow's model (`make run` makes it) and its test
# photos.
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
MODEL=${1:-runs/demo/model}
PHOTOS=${2:-runs/demo/data/test}
[ -d "$MODEL" ] || make -s run >&2
PY=$(onnx_venv)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build -q --release --example export --example predict
cargo build -q --release -p gemstones-predict --example predict_onnx
./target/release/examples/export --model "$MODEL" --out "$work/export" >&2
mapfile -t photos < <(find "$PHOTOS" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort | awk 'NR % 5 == 1' | head -60)
classes=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['classes']))" "$work/export/model.json")
./target/release/examples/predict --model "$MODEL" --json -k "$classes" "${photos[@]}" > "$work/torch.json"
./target/release/examples/predict_onnx --model "$work/export" --json -k 1 --save-inputs "$work/inputs.npy" "${photos[@]}" > /dev/null
"$PY" - "$work/export" "$work/inputs.npy" "$work/torch.json" <<'PY'
import json, sys
import numpy as np, onnx, onnxruntime as ort
export, inputs, torch_json = sys.argv[1:]
model = onnx.load(f"{export}/model.onnx")
onnx.checker.check_model(model, full_check=True)
info = json.load(open(f"{export}/model.json"))
x = np.load(inputs)  # N x 3 x height x width float32 (predict_onnx --save-inputs)
print(f"onnx.checker: ok (opset {model.opset_import[0].version}, IR {model.ir_version}); {len(x)} photos")
session = ort.InferenceSession(f"{export}/model.onnx", providers=["CPUExecutionProvider"])
logits = session.run(["logits"], {"image": x})[0]
probs = np.exp(logits - logits.max(1, keepdims=True)); probs /= probs.sum(1, keepdims=True)
torch = json.load(open(torch_json))
worst, same = 0.0, 0
for row, r in zip(probs, torch):
    ours = np.zeros(len(info["classes"]))
    for p in r["predictions"]:
        ours[p["id"]] = p["probability"]
    same += int(row.argmax() == ours.argmax())
    worst = max(worst, float(np.abs(row - ours).max()))
print(f"onnxruntime against Classifier: same top-1 on {same}/{len(torch)} photos; largest probability difference {worst:.2e}")
sys.exit(0 if same == len(torch) and worst < 1e-3 else 1)
PY
