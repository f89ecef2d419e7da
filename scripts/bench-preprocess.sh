#!/usr/bin/env bash
# The tutorial's preprocessing loop (OpenCV) vs gemstones-dataset on the real
# photographs, in the same run.
source "$(dirname "$0")/bench-lib.sh"
PY=$(venv cv opencv-python-headless==4.12.0.88 numpy==2.2.6)
out=$(mktemp)
echo "== tutorial loop: OpenCV imread, resize 330, Canny(220, 220) crop, resize 220"
"$PY" benches/python/preprocess_tutorial.py "$DATA" --repeat 3 | tee -a "$out"
echo "== gemstones-dataset preprocess_folder (decode by content, RGB, Canny crop, resize 220), and its cache"
rust preprocess "$DATA" | tee -a "$out"
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
py = next(r for r in rows if r["tool"].startswith("python"))
for r in rows:
    if r["tool"] == "gemstones-dataset preprocess_folder":
        print(f"speed-up vs the tutorial loop, {r['threads']} thread(s): {py['seconds'] / r['seconds']:.2f}x ({py['seconds']:.2f} s -> {r['seconds']:.2f} s)")
PY
