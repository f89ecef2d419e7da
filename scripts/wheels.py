"""Hash-checked wheel downloads from PyPI, shared by the install scripts.

`fetch` reuses a cached wheel whose SHA-256 matches, else runs
`pip download --require-hashes` of the pinned requirement into the cache
folder and checks the hash again.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def say_as(tag: str):
    """A printer of progress lines that start with `[tag]`."""
    return lambda msg: print(f"[{tag}] {msg}", flush=True)


def fetch(req: str, digest: str, extra: list[str], wheels: Path, say) -> Path:
    """The wheel of `req` (`name==version`) whose SHA-256 is `digest`."""
    wheels.mkdir(parents=True, exist_ok=True)
    name = req.split("==")[0].replace("-", "_")
    for cand in sorted(wheels.glob(f"{name}-*.whl")):
        if sha256(cand) == digest:
            say(f"using cached {cand.name} (sha256 ok)")
            return cand
    say(f"downloading {req} from PyPI into {wheels}")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as reqf:
        reqf.write(f"{req} --hash=sha256:{digest}\n")
    try:
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--no-deps",
                "--only-binary=:all:", "--require-hashes", "--progress-bar", "off",
                "--dest", str(wheels), "-r", reqf.name, *extra,
            ],
            check=True,
        )
    finally:
        os.unlink(reqf.name)
    for cand in sorted(wheels.glob(f"{name}-*.whl")):
        if sha256(cand) == digest:
            return cand
    raise SystemExit(f"error: no wheel for {req} with sha256 {digest} in {wheels}")
