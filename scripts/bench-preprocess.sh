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
compare "$out" "preprocessing the real photographs (decode, RGB, Canny crop, resize 220): ours against the tutorial's loop" preprocess_folder
