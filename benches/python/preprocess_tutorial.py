"""The tutorial's preprocessing loop, timed: OpenCV imread, resize to
330x330, Canny(220, 220) edge crop, resize to 220x220, BGR -> RGB.

This is the baseline `scripts/bench-preprocess.sh` compares
`gemstones-dataset` against. It follows the Kaggle notebook's
`read_imgs_lbls` + `edge_and_cut` (with OpenCV's default thread count).

Usage: python preprocess_tutorial.py DATASET_DIR [--repeat N]
Prints one JSON line: {"images": n, "seconds": best, "cropped": k, ...}.
"""
import argparse
import json
import os
import time

import cv2
import numpy as np

IMG_W = IMG_H = 220
PRE = int(IMG_W * 1.5)  # 330


def edge_and_cut(img):
    edges = cv2.Canny(img, IMG_W, IMG_H)
    if np.count_nonzero(edges) > edges.size / 10000:
        pts = np.argwhere(edges > 0)
        y1, x1 = pts.min(axis=0)
        y2, x2 = pts.max(axis=0)
        return cv2.resize(img[y1:y2, x1:x2], (IMG_W, IMG_H)), True
    return cv2.resize(img, (IMG_W, IMG_H)), False


def run(root):
    images, labels, cropped = [], [], 0
    for dirpath, _, files in os.walk(root):
        label = os.path.basename(dirpath)
        for f in sorted(files):
            img = cv2.imread(os.path.join(dirpath, f))
            if img is None:
                continue
            img = cv2.resize(img, (PRE, PRE))
            img, c = edge_and_cut(img)
            cropped += c
            images.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            labels.append(label)
    return np.array(images), labels, cropped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    times = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        imgs, labels, cropped = run(a.root)
        times.append(time.perf_counter() - t)
    print(json.dumps({
        "tool": "python-opencv-tutorial-loop",
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "images": len(labels),
        "cropped": int(cropped),
        "seconds": min(times),
        "all_seconds": times,
    }))


if __name__ == "__main__":
    main()
