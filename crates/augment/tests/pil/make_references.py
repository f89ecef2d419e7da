"""Reference outputs of Pillow's ImageOps for TrivialAugment's pointwise operations.

torchvision's `TrivialAugmentWide` calls Pillow's `ImageOps.posterize`,
`solarize`, `autocontrast` and `equalize` on PIL images. This script applies
them to the Keras test's `input.png` and writes one PNG per operation beside
itself; `tests/augment.rs` compares `gemstones-augment` with them, value for
value.

Regenerate (only when the cases change):

    python3 -m venv /tmp/pil-ref && /tmp/pil-ref/bin/pip install pillow==11.3.0
    /tmp/pil-ref/bin/python crates/augment/tests/pil/make_references.py
"""
import os

from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
INPUT = os.path.join(HERE, "..", "keras", "input.png")

CASES = {
    "posterize3": lambda im: ImageOps.posterize(im, 3),
    "solarize128": lambda im: ImageOps.solarize(im, 128),
    "autocontrast": ImageOps.autocontrast,
    "equalize": ImageOps.equalize,
}


def main():
    image = Image.open(INPUT).convert("RGB")
    for name, op in CASES.items():
        op(image).save(os.path.join(HERE, f"{name}.png"))


if __name__ == "__main__":
    main()
