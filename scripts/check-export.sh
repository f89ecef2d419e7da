#!/usr/bin/env bash
# Check the Python lines of docs/guide.md (Export) that use an exported model (`export` example):
# PyTorch (pinned, own venv) loads model.pt + model.json and classifies
# photos; its top-1 must agree with `predict` (this project's Classifier)
# on at least 80 % of them (measured: 35 of 40 real photos with the lite0
# preset). Not bit-exact by design: those lines
# only resize the photo, while `predict` also crops it to the stone first.
#
#   scripts/check-export.sh [MODEL_DIR] [PHOTOS_DIR]
#
# Default: the demo workflow's model (`make run` makes it) and its test
# photos.
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
MODEL=${1:-runs/demo/model}
PHOTOS=${2:-runs/demo/data/test}
[ -d "$MODEL" ] || make -s run >&2
PYT=$(torch_venv)
PYT="$PWD/$PYT" # absolute: the Python lines run in a temporary folder
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build -q --release --example export --example predict
./target/release/examples/export --model "$MODEL" --out "$work/export"
# The lines docs/guide.md shows, exactly (between its "export-python" markers).
sed -n '/<!-- export-python -->/,/<!-- \/export-python -->/p' docs/guide.md | sed '1,2d;$d' | sed '$d' > "$work/predict.py"
[ -s "$work/predict.py" ] || { echo "docs/guide.md has no export-python block" >&2; exit 1; }
mapfile -t photos < <(find "$PHOTOS" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort | awk 'NR % 7 == 1' | head -40)
./target/release/examples/predict --model "$MODEL" --json -k 1 "${photos[@]}" > "$work/rust.json"
for p in "${photos[@]}"; do
  (cd "$work" && "$PYT" predict.py "$OLDPWD/$p" | head -1 | sed "s|^|$p\t|")
done > "$work/python.tsv"
python3 - "$work/rust.json" "$work/python.tsv" <<'PY'
import json, sys
rust = {r["file"]: r["predictions"][0] for r in json.load(open(sys.argv[1]))}
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])]
agree, diffs = 0, []
for path, line in rows:
    name, prob = line.rsplit(maxsplit=2)[0].strip(), float(line.split()[-2]) / 100
    ours = rust[path]
    same = name == ours["class"]
    agree += same
    if same:
        diffs.append(abs(prob - ours["probability"]))
    print(f"{'same' if same else 'DIFF'}  {path}: PyTorch {name} {prob:.3f}, predict {ours['class']} {ours['probability']:.3f}")
share = agree / len(rows)
print(f"top-1 agreement {agree}/{len(rows)} ({100 * share:.0f} %); median |p difference| when agreeing "
      f"{sorted(diffs)[len(diffs) // 2] if diffs else float('nan'):.3f}")
sys.exit(0 if share >= 0.8 else 1)
PY
