"""One table at the end of each bench script: each of our configurations
against the same configuration of each peer, labelled, with the machine,
date and versions.

    python3 compare.py RESULTS.jsonl "title" [ONLY]

RESULTS holds one JSON object per line ({"tool": ..., measurements and
configuration}); rows whose tool names gemstones are ours, the others
peers (and ours marked "peer": true, such as the libtorch Classifier the
libtorch-free predictor is measured against). Two rows are "the same configuration" when every configuration key
both of them state (model, size, precision, threads) agrees; keys that
only one states (a peer's layout, malloc) go into its label. With ONLY,
only our rows whose tool contains it are compared (the others measure
something no peer does).
"""
import json
import os
import platform
import sys
from datetime import date

# (field, column title, higher is better)
METRICS = [
    ("train_images_per_sec", "train img/s", True),
    ("infer_images_per_sec", "infer img/s", True),
    ("images_per_sec", "img/s", True),
    ("latency_ms", "1-image ms", False),
    ("net_latency_ms", "net ms", False),
    ("peak_rss_mb", "peak MB", False),
    ("seconds", "s", False),
]
MATCH_KEYS = ("model", "size", "precision", "threads")
LABEL_KEYS = ("model", "size", "precision", "layout", "threads", "opencv_threads", "note")


def precision(r):
    if "precision" in r:
        return r["precision"].lower()
    if "bf16" in r:
        return "bf16" if r["bf16"] else "f32"
    return None


def config(r):
    c = {"model": r.get("model"), "size": r.get("size"), "precision": precision(r), "threads": r.get("threads")}
    if c["model"] is None and "train_images_per_sec" in r:
        c["model"] = "tutorial-cnn"  # the peers' training bench runs the tutorial's CNN
    return c


def same(a, b):
    return all(a[k] is None or b[k] is None or a[k] == b[k] for k in MATCH_KEYS)


def label(r):
    c = config(r)
    parts = [r["tool"]]
    for k in LABEL_KEYS:
        v = c.get(k, r.get(k))
        part = {"threads": f"{v} thread(s)", "opencv_threads": f"one process, OpenCV on {v} threads", "size": f"{v}px"}.get(k, str(v))
        if v is not None and part not in r["tool"]:
            parts.append(part)
    return ", ".join(parts)


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    return f"{os.cpu_count()} cores, {cpu}; {platform.system()} {platform.release()}; {date.today().isoformat()}"


def main(path, title, only=""):
    rows = [json.loads(l) for l in open(path) if l.startswith("{")]
    ours = [r for r in rows if "gemstones" in r["tool"] and not r.get("peer") and only in r["tool"]]
    peers = [r for r in rows if ("gemstones" not in r["tool"] or r.get("peer")) and r["tool"] != "plain copy"]
    lines, unmatched = [], []
    for o in ours:
        matched = False
        for p in peers:
            if not same(config(o), config(p)):
                continue
            cells = []
            shared = [f for f, _, _ in METRICS if f in o and f in p]
            # Times compare only where no rate does (runs may differ in size).
            if any(f.endswith("_per_sec") for f in shared):
                shared = [f for f in shared if f.endswith("_per_sec") or f.endswith("latency_ms") or f == "peak_rss_mb"]
            for field, _, higher in METRICS:
                if field in shared:
                    x, y = o[field], p[field]
                    cells.append((field, f"{x:.1f}", f"{y:.1f}", f"{(x / y if higher else y / x):.2f}x"))
            if cells:
                matched = True
                lines.append((label(o), label(p), cells))
        if not matched:
            unmatched.append(label(o))
    print(f"== {title}")
    print(f"== machine: {machine()}")
    versions = sorted({r['tool'] for r in rows})
    print("== tools: " + "; ".join(versions))
    if not lines:
        print("(no configuration measured on both sides)")
    fields = [f for f, _, _ in METRICS if any(f == c[0] for _, _, cs in lines for c in cs)]
    titles = {f: t for f, t, _ in METRICS}
    w_ours = max([len("ours")] + [len(a) for a, _, _ in lines])
    w_peer = max([len("peer")] + [len(b) for _, b, _ in lines])
    head = f"{'ours':<{w_ours}} | {'peer (same configuration)':<{w_peer}}"
    for f in fields:
        head += f" | {titles[f] + ' ours':>16} {'peer':>8} {'ratio':>7}"
    print(head)
    print("-" * len(head))
    for a, b, cells in lines:
        by = {c[0]: c for c in cells}
        line = f"{a:<{w_ours}} | {b:<{w_peer}}"
        for f in fields:
            _, x, y, r = by.get(f, (f, "-", "-", "-"))
            line += f" | {x:>16} {y:>8} {r:>7}"
        print(line)
    print("(ratio > 1: ours is faster; for times (ms, s) it is the peer's time over ours)")
    for u in unmatched:
        print(f"no peer measured for: {u}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "ours against the peers", sys.argv[3] if len(sys.argv) > 3 else "")
