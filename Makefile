# The two commands README gives. Each installs what it needs on first use
# (libtorch 2.13.0 from PyPI wheels into .libtorch/, about 15 s and 540 MB
# of download) and is quick the second time.
.PHONY: run test libtorch

# The main job (for now the smoke workflow; the full workflow lands with issue 7).
run: libtorch
	cargo run --release --example smoke

# The whole test suite.
test: libtorch
	cargo test --workspace

libtorch:
	@python3 scripts/install-libtorch.py
