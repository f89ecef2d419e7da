"""onnxruntime's side of scripts/bench-predict.sh: the same model.onnx, one
JSON line per thread count, fields as our predictors print them.

    python predict_peers.py bench EXPORT_DIR INPUTS.f32 PHOTO...
    python predict_peers.py one EXPORT_DIR PHOTO   (a predicting process,
                                                    for its peak memory)

INPUTS.f32 holds the network inputs our preparation made for the photos
(predict_onnx --save-inputs), so the network-only figures see the same
numbers. The decode-to-top-5 latency prepares each photo the simple way a
Python user would (Pillow decode, resize to the input, no crop to the
stone): it says so in its note.
"""
import json
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image


def softmax_top5(logits):
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return np.argsort(-p, axis=1)[:, :5]


def prepare(path, w, h):
    with Image.open(path) as im:
        x = np.asarray(im.convert("RGB").resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
    return x.transpose(2, 0, 1)[None]


def median_ms(f, items):
    times = []
    for item in items:
        t = time.perf_counter()
        f(item)
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def main(export, inputs, photos):
    info = json.load(open(f"{export}/model.json"))
    w, h = info["input"]["width"], info["input"]["height"]
    x = np.load(inputs)  # N x 3 x h x w float32 (predict_onnx --save-inputs)
    for threads in (1, 2):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(f"{export}/model.onnx", opts, providers=["CPUExecutionProvider"])
        run = lambda batch: softmax_top5(session.run(["logits"], {"image": batch})[0])
        run(x[:1])  # warm-up
        net_ms = median_ms(lambda i: run(x[i : i + 1]), range(len(x)))
        latency_ms = median_ms(lambda p: run(prepare(p, w, h)), photos)
        batch = 32
        reps = max(1, 256 // len(x)) if len(x) < 256 else 1
        t = time.perf_counter()
        done = 0
        for _ in range(reps):
            for i in range(0, len(x), batch):
                run(x[i : i + batch])
                done += len(x[i : i + batch])
        per_sec = done / (time.perf_counter() - t)
        print(json.dumps({
            "tool": f"onnxruntime {ort.__version__} (Python)",
            "model": info["model"]["arch"], "size": w, "precision": "f32", "threads": threads,
            "latency_ms": latency_ms, "net_latency_ms": net_ms, "images_per_sec": per_sec,
            "note": "Pillow decode + resize, no gem crop",
        }), flush=True)


def one(export, photo):
    info = json.load(open(f"{export}/model.json"))
    w, h = info["input"]["width"], info["input"]["height"]
    session = ort.InferenceSession(f"{export}/model.onnx", providers=["CPUExecutionProvider"])
    top = softmax_top5(session.run(["logits"], {"image": prepare(photo, w, h)})[0])[0]
    print(photo, info["classes"][top[0]])


if __name__ == "__main__":
    if sys.argv[1] == "bench":
        main(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        one(sys.argv[2], sys.argv[3])
