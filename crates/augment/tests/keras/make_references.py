"""Reference outputs of Keras' own affine augmentation, for the parity test.

Keras' `ImageDataGenerator` (as the tutorial used it, through
keras_preprocessing 1.1.2) resamples with `apply_affine_transform`, which
calls `scipy.ndimage.affine_transform(order=1)`, then flips. This script
renders a small generated RGB image, applies a few fixed parameter sets
with Keras' own functions, and writes `input.png`, one PNG per case and
`cases.json` beside itself. `tests/keras_parity.rs` compares
`gemstones-augment` with them.

Regenerate (only when the cases change):

    python3 -m venv /tmp/keras-ref && /tmp/keras-ref/bin/pip install \
        keras-preprocessing==1.1.2 numpy==1.26.4 scipy==1.13.1 pillow==10.4.0
    /tmp/keras-ref/bin/python crates/augment/tests/keras/make_references.py
"""
import json
import os

import numpy as np
from PIL import Image
from keras_preprocessing.image import ImageDataGenerator

HERE = os.path.dirname(os.path.abspath(__file__))
H, W = 40, 48


def make_input():
    """Smooth gradients plus a disc and a bar: every region has texture."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    r = 40 + 4.0 * x + 1.5 * y
    g = 200 - 3.0 * y + 20 * np.sin(x / 3.0)
    b = 120 + 60 * np.cos((x + y) / 7.0)
    img = np.stack([r, g, b], axis=-1)
    disc = (x - 30) ** 2 + (y - 15) ** 2 < 64
    img[disc] = [230, 40, 60]
    img[25:30, 5:20] = [20, 20, 200]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


CASES = [
    {"name": "rotate20_nearest", "fill_mode": "nearest", "theta": 20.0},
    {"name": "shift_subpixel_nearest", "fill_mode": "nearest", "tx": 3.5, "ty": -2.25},
    {"name": "shear15_reflect", "fill_mode": "reflect", "shear": 15.0},
    {"name": "zoom_constant", "fill_mode": "constant", "cval": 0.0, "zx": 0.8, "zy": 1.2},
    {"name": "combined_wrap", "fill_mode": "wrap", "theta": 12.0, "tx": 2.0, "ty": -3.0,
     "shear": 8.0, "zx": 0.9, "zy": 1.1},
    {"name": "tutorial_like_flip", "fill_mode": "nearest", "theta": -17.3, "tx": -2.7, "ty": 4.1,
     "shear": 0.15, "zx": 1.07, "zy": 0.93, "flip_horizontal": True},
]


def main():
    src = make_input()
    Image.fromarray(src).save(os.path.join(HERE, "input.png"))
    x = src.astype(np.float32)
    for case in CASES:
        gen = ImageDataGenerator(fill_mode=case["fill_mode"], cval=case.get("cval", 0.0))
        params = {k: case[k] for k in ("theta", "tx", "ty", "shear", "zx", "zy", "flip_horizontal") if k in case}
        out = gen.apply_transform(x, params)
        out = np.clip(np.round(out), 0, 255).astype(np.uint8)
        Image.fromarray(out).save(os.path.join(HERE, case["name"] + ".png"))
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump({"height": H, "width": W, "cases": CASES}, f, indent=1)


if __name__ == "__main__":
    main()
