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

rust() { # rust MODE [ARGS]
  make -s libtorch >&2
  cargo bench -q --bench compare -- "$@" 2>/dev/null
}

ratio() { # ratio FILE: print throughput ratios between the JSON lines of a run
  python3 - "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def key(r): return r.get("images_per_sec") or r.get("train_images_per_sec")
base = [r for r in rows if key(r) and "gemstones" in r["tool"]]
peers = [r for r in rows if key(r) and "gemstones" not in r["tool"] and r["tool"] != "plain copy"]
for b in base:
    for p in peers:
        print(f"{b['tool']} [{b.get('threads', b.get('precision', ''))}] / {p['tool']} [{p.get('threads', p.get('layout', ''))}] = {key(b) / key(p):.2f}x")
PY
}

table() { # table FILE: ours against the peer, same model, size and precision, one row each
  python3 - "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{") and "model" in l]
ours = {(r["model"], r["size"], r["precision"]): r for r in rows if "gemstones" in r["tool"]}
peer = {(r["model"], r["size"], r["precision"]): r for r in rows if "gemstones" not in r["tool"]}
print(f"{'model':<6} {'size':>4} {'precision':<9} | {'train img/s ours':>16} {'peer':>6} {'ratio':>6} | "
      f"{'infer img/s ours':>16} {'peer':>6} {'ratio':>6} | {'1-image ms ours':>15} {'peer':>6} {'ratio':>6}")
for key in sorted(ours, key=lambda k: (k[0], -k[1], k[2])):
    if key not in peer:
        continue
    a, b = ours[key], peer[key]
    cells = []
    for field, higher_better in (("train_images_per_sec", True), ("infer_images_per_sec", True), ("latency_ms", False)):
        x, y = a[field], b[field]
        cells.append(f"{x:16.1f} {y:6.1f} {(x / y if higher_better else y / x):5.2f}x")
    print(f"{key[0]:<6} {key[1]:>4} {key[2]:<9} | " + " | ".join(cells))
print("(ratio: ours over the peer, > 1 is faster; latency: peer's ms over ours)")
PY
}
