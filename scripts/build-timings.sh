#!/usr/bin/env bash
# Build time as a newcomer pays it (docs/benchmarks.md, "Build"): a fresh
# clone of REV (default HEAD) in a temporary folder, libtorch already
# installed (this checkout's .libtorch/, or $LIBTORCH), crates already
# downloaded (~/.cargo/registry), nothing else built. Times `make run`'s
# build (`cargo build --release --example workflow --timings`) and, with
# --test, `make test`'s (`cargo test --workspace --no-run --timings`), and
# prints for each the wall time, the units, the CPU-seconds (the units'
# durations added up) and the ten most expensive crates.
#
# With --outside, instead: what a project outside the workspace pays to
# depend on one crate alone (gemstones-dataset, gemstones-predict,
# gemstones-model), each a new crate with its own empty target folder and
# README's `[profile.dev.package."*"] opt-level = 3`, `cargo build` cold;
# it also says whether tract or libtorch is in each one's tree.
#
#   scripts/build-timings.sh [--test | --outside] [REV]
#
# Nothing else may run meanwhile (2 cores: any other job lengthens it).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
with_tests=0
outside=0
if [ "${1:-}" = "--test" ]; then with_tests=1; shift; fi
if [ "${1:-}" = "--outside" ]; then outside=1; shift; fi
rev="${1:-HEAD}"
libtorch="${LIBTORCH:-$here/.libtorch}"
[ -f "$libtorch/lib/libtorch_cpu.so" ] || { echo "no libtorch at $libtorch: run make libtorch first" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone -q "$here" "$work/clone"
git -C "$work/clone" checkout -q "$rev"
cd "$work/clone"
export LIBTORCH="$libtorch" CARGO_INCREMENTAL=0
echo "revision $(git rev-parse --short HEAD), $(nproc) cores, $(rustc --version)"

# One build, timed; then its --timings report summarised.
measure() {
  local what="$1"; shift
  local start=$SECONDS
  "$@" > "$work/build.log" 2>&1 || { tail -20 "$work/build.log"; exit 1; }
  local wall=$((SECONDS - start))
  local report
  report="$(ls -t target/cargo-timings/cargo-timing-*.html | head -1)"
  python3 - "$report" "$what" "$wall" <<'PY'
import collections, json, re, sys
report, what, wall = sys.argv[1], sys.argv[2], int(sys.argv[3])
html = open(report).read()
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);\n", html, re.S).group(1))
by_crate = collections.Counter()
for u in units:
    by_crate[u["name"]] += u["duration"]
cpu = sum(u["duration"] for u in units)
print(f"{what}: {wall // 60} min {wall % 60:02d} s wall, {len(units)} units, {cpu:.0f} CPU-seconds")
for name, seconds in by_crate.most_common(10):
    print(f"  {name:<28} {seconds:7.1f} s  {100 * seconds / cpu:4.1f} %")
PY
}

if [ "$outside" = 1 ]; then
  for crate in dataset predict model; do
    dir="$work/outside-$crate"
    mkdir -p "$dir/src"
    cat > "$dir/Cargo.toml" <<TOML
[package]
name = "outside-$crate"
version = "0.1.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
gemstones-$crate = { path = "$work/clone/crates/$crate" }

[profile.dev.package."*"]
opt-level = 3
TOML
    echo "use gemstones_$crate as _; fn main() {}" > "$dir/src/main.rs"
    start=$SECONDS
    (cd "$dir" && cargo build -q 2> "$work/build.log") || { tail -20 "$work/build.log"; exit 1; }
    wall=$((SECONDS - start))
    engines=$(cd "$dir" && cargo tree -e normal --prefix none | { grep -oE '^(tract-onnx|torch-sys) ' || true; } | sort -u | tr '\n' ' ')
    units=$(find "$dir/target/debug/deps" -name '*.rlib' | wc -l)
    echo "gemstones-$crate alone: $((wall / 60)) min $(printf %02d $((wall % 60))) s cold, $units libraries; engines in its tree: ${engines:-none}"
  done
  exit 0
fi

measure "make run's build (cargo build --release --example workflow)" \
  cargo build --release --example workflow --timings
if [ "$with_tests" = 1 ]; then
  measure "make test's build (cargo test --workspace --no-run)" \
    cargo test --workspace --no-run --timings
fi
