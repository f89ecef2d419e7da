#!/usr/bin/env bash
# Fuzz every parser of untrusted bytes (tests/fuzz.rs) for SECONDS per
# target (default 600), two targets at a time, with a fresh seed. Inputs
# that panic are saved under tests/fuzz/regressions/<target>/ (commit them:
# `cargo test` replays them) and the run fails listing them.
#
#   scripts/fuzz.sh            # 10 minutes per target (about 40 minutes)
#   scripts/fuzz.sh 60         # one minute per target
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
seed=${GEMSTONES_FUZZ_SEED:-$(date +%s)}
echo "fuzzing each target for ${seconds} s, seed ${seed} (GEMSTONES_FUZZ_SEED=${seed} repeats it)"
GEMSTONES_FUZZ_SECONDS=$seconds GEMSTONES_FUZZ_SEED=$seed \
  cargo test --test fuzz -- --nocapture --test-threads 2 2>&1 | grep --line-buffered -E '^(fuzz |test |.*panicked|.*crash-)'
exit "${PIPESTATUS[0]}"
