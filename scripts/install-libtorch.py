#!/usr/bin/env python3
"""Install the CPU libtorch that `tch` 0.26 needs (2.13.0) from PyPI wheels.

No network but PyPI is needed: the `torch` wheel carries a complete libtorch.
This script downloads three wheels with `pip download` (hash-checked), unpacks
only the headers and the six shared libraries CPU libtorch needs into
`<dest>` (default: `.libtorch/` at the repository root, git-ignored), and
writes `build-version` so torch-sys accepts it.

Idempotent: when `<dest>/.stamp` names the expected version and every file is
present, it prints so and exits. Atomic: it unpacks into `<dest>.partial` and
renames into place only when complete, so an interrupted run leaves no
half-installed folder behind.

It works from any folder, for any project: `--dest DIR` installs there,
and `--register` (root) also lists `DIR/lib` in
`/etc/ld.so.conf.d/gemstones-libtorch.conf` and runs `ldconfig`, so that
every program linked against it starts without `LD_LIBRARY_PATH`, as with
a library from the system's packages. Build such programs with
`LIBTORCH=DIR`.

Usage: python3 scripts/install-libtorch.py [--dest DIR] [--wheels DIR] [--force] [--register]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from wheels import fetch, say_as

VERSION = "2.13.0"
ROOT = Path(__file__).resolve().parent.parent

# (requirement, sha256, extra pip download args)
WHEELS = [
    (
        f"torch=={VERSION}",
        "60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7",
        ["--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"],
    ),
    (
        "nvidia-cuda-runtime==13.0.96",
        "7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548",
        [],
    ),
    (
        "nvidia-cuda-cupti==13.0.85",
        "4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8",
        [],
    ),
]

# The shared libraries CPU libtorch needs at link and run time. libtorch_cpu
# links libcudart/libcupti even on CPU, so those two come from NVIDIA's wheels.
LIBS = [
    "libc10.so",
    "libtorch_cpu.so",
    "libtorch.so",
    "libgomp.so.1",
    "libcudart.so.13",
    "libcupti.so.13",
]


say = say_as("libtorch")


def installed(dest: Path) -> bool:
    stamp = dest / ".stamp"
    if not stamp.is_file() or stamp.read_text().strip() != VERSION:
        return False
    return all((dest / "lib" / lib).is_file() for lib in LIBS) and (
        dest / "include" / "torch"
    ).is_dir()


def unpack(wheel: Path, partial: Path) -> list[str]:
    found = []
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            n = info.filename
            if info.is_dir():
                continue
            base = n.rsplit("/", 1)[-1]
            if n.startswith("torch/include/"):
                target = partial / "include" / n[len("torch/include/"):]
            elif "/lib/" in n and base in LIBS:
                target = partial / "lib" / base
                found.append(base)
            else:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", type=Path, default=ROOT / ".libtorch")
    ap.add_argument("--wheels", type=Path, default=ROOT / ".cache" / "wheels")
    ap.add_argument("--force", action="store_true", help="reinstall even if present")
    ap.add_argument("--register", action="store_true",
                    help="also register DEST/lib with the dynamic loader (ld.so.conf.d + ldconfig; root)")
    args = ap.parse_args()
    dest: Path = args.dest.resolve()

    if not (installed(dest) and not args.force):
        install(dest, args.wheels)
    else:
        say(f"libtorch {VERSION} already installed in {dest}")
    if args.register:
        register(dest / "lib")
    return 0


LOADER_CONF = Path("/etc/ld.so.conf.d/gemstones-libtorch.conf")


def register(lib: Path) -> None:
    """List `lib` in the dynamic loader's configuration (atomically) and
    refresh its cache: programs linked against libtorch then start as they
    would with a system library."""
    text = f"# libtorch {VERSION}, installed by gemstones' scripts/install-libtorch.py\n{lib}\n"
    if not (LOADER_CONF.exists() and LOADER_CONF.read_text() == text):
        tmp = LOADER_CONF.with_name(LOADER_CONF.name + ".tmp")
        try:
            tmp.write_text(text)
            os.replace(tmp, LOADER_CONF)
        except PermissionError:
            raise SystemExit(f"[libtorch] error: --register writes {LOADER_CONF}: run it as root "
                             f"(or set LD_LIBRARY_PATH={lib} when running your programs)")
    subprocess.run(["ldconfig"], check=True)
    say(f"registered {lib} with the dynamic loader ({LOADER_CONF})")


def install(dest: Path, wheel_dir: Path) -> None:
    """Download the wheels into `wheel_dir` and unpack libtorch into `dest`, atomically."""

    wheel_dir.mkdir(parents=True, exist_ok=True)
    wheels = [fetch(req, digest, extra, wheel_dir, say) for req, digest, extra in WHEELS]

    partial = dest.with_name(dest.name + ".partial")
    if partial.exists():
        say(f"removing leftover {partial}")
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    found: list[str] = []
    for w in wheels:
        say(f"unpacking {w.name}")
        found += unpack(w, partial)
    missing = sorted(set(LIBS) - set(found))
    if missing:
        shutil.rmtree(partial)
        raise SystemExit(f"[libtorch] error: wheels lack {', '.join(missing)}")
    (partial / "build-version").write_text(VERSION + "\n")
    (partial / ".stamp").write_text(VERSION + "\n")

    if dest.exists():
        old = dest.with_name(dest.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        dest.rename(old)
        partial.rename(dest)
        shutil.rmtree(old)
    else:
        partial.rename(dest)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    say(f"installed libtorch {VERSION} (CPU) in {dest} ({size / 1e6:.0f} MB); build with LIBTORCH={dest}")
    cached = sum(w.stat().st_size for w in wheels)
    say(f"the downloaded wheels stay in {wheel_dir} ({cached / 1e6:.0f} MB) for a later --force; "
        f"delete that folder to free the space")


if __name__ == "__main__":
    sys.exit(main())
