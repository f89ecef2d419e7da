# The two commands README gives. Each installs what it needs on first use
# (libtorch 2.13.0 from PyPI wheels into .libtorch/, about 15 s and 540 MB
# of download) and is quick the second time.
.PHONY: run test libtorch

# The main job: the full workflow on the built-in demo set (no internet).
run: libtorch
	cargo run --release --example workflow

# The whole test suite.
test: libtorch
	cargo test --workspace

libtorch:
	@python3 scripts/install-libtorch.py
