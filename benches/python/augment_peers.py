"""Augmentation throughput of the Python peers on the same 220x220 images,
with the tutorial's configuration. Prints one JSON line per measurement.

Peers (single thread unless noted):
- Keras ImageDataGenerator.random_transform (keras_preprocessing 1.1.2, the
  implementation tf.keras used in the tutorial's day), and through .flow;
- albumentations Affine + HorizontalFlip (OpenCV underneath), 1 thread and
  2 processes;
- torchvision transforms.v2 RandomAffine + RandomHorizontalFlip on uint8.

Usage: python augment_peers.py DATASET_DIR [--n 2000] [--peers keras,alb,tv]
"""
import argparse
import json
import os
import time

import numpy as np
from PIL import Image


def load(root, n):
    files = []
    for d in sorted(os.listdir(root)):
        for f in sorted(os.listdir(os.path.join(root, d))):
            files.append(os.path.join(root, d, f))
    imgs = [np.asarray(Image.open(p).convert("RGB").resize((220, 220), Image.BILINEAR)) for p in files[:n]]
    return imgs


def best(fn, repeat=2):
    t = []
    for _ in range(repeat):
        s = time.perf_counter()
        fn()
        t.append(time.perf_counter() - s)
    return min(t)


def emit(tool, n, secs, **kw):
    print(json.dumps({"tool": tool, "images": n, "seconds": secs, "images_per_sec": n / secs, **kw}), flush=True)


def keras(imgs):
    from keras_preprocessing.image import ImageDataGenerator
    gen = ImageDataGenerator(rotation_range=25, zoom_range=0.1, width_shift_range=0.1,
                             height_shift_range=0.1, shear_range=0.2, horizontal_flip=True)
    sub = imgs[:400]
    xs = [x.astype(np.float32) for x in sub]
    emit("keras ImageDataGenerator.random_transform", len(sub), best(lambda: [gen.random_transform(x) for x in xs]), threads=1)
    arr = np.stack(xs)
    def flow():
        it = gen.flow(arr, batch_size=32, shuffle=False)
        for _ in range(len(it)):
            next(it)
    emit("keras ImageDataGenerator.flow", len(sub), best(flow), threads=1)


def _alb_work(chunk):
    import albumentations as A
    import cv2
    cv2.setNumThreads(1)
    t = _alb_compose(A, cv2)
    for x in chunk:
        t(image=x)
    return len(chunk)


def _alb_compose(A, cv2):
    return A.Compose([
        A.Affine(rotate=(-25, 25), scale=(0.9, 1.1), translate_percent=(-0.1, 0.1), shear=(-0.2, 0.2),
                 interpolation=cv2.INTER_LINEAR, border_mode=cv2.BORDER_REPLICATE, p=1.0),
        A.HorizontalFlip(p=0.5),
    ])


def albumentations(imgs):
    import albumentations as A
    import cv2
    cv2.setNumThreads(1)
    t = _alb_compose(A, cv2)
    emit("albumentations Affine+HorizontalFlip", len(imgs), best(lambda: [t(image=x) for x in imgs]), threads=1)
    from multiprocessing import Pool
    with Pool(2) as pool:
        halves = [imgs[: len(imgs) // 2], imgs[len(imgs) // 2:]]
        pool.map(_alb_work, halves)  # warm up
        emit("albumentations Affine+HorizontalFlip", len(imgs), best(lambda: pool.map(_alb_work, halves)), threads=2, note="2 processes")


def torchvision(imgs):
    import torch
    from torchvision.transforms import v2
    torch.set_num_threads(1)
    t = v2.Compose([v2.RandomAffine(degrees=25, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=0.2),
                    v2.RandomHorizontalFlip()])
    ts = [torch.from_numpy(x).permute(2, 0, 1).contiguous() for x in imgs]
    emit("torchvision v2 RandomAffine+RandomHorizontalFlip", len(ts), best(lambda: [t(x) for x in ts]), threads=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--peers", default="keras,alb,tv")
    a = ap.parse_args()
    imgs = load(a.root, a.n)
    peers = a.peers.split(",")
    if "keras" in peers:
        keras(imgs)
    if "alb" in peers:
        albumentations(imgs)
    if "tv" in peers:
        torchvision(imgs)


if __name__ == "__main__":
    main()
