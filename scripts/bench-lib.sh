# Shared by scripts/bench-*.sh: venvs with pinned packages, the Rust side.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA="${GEMSTONES_TRAIN_DIR:-../shared/datasets/gemstones/train}"

venv() { # venv NAME PACKAGES...
  local dir=".venv-bench-$1"; shift
  if [ ! -f "$dir/.ready" ]; then
    echo "[bench] creating $dir with: $*" >&2
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2
    touch "$dir/.ready"
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
