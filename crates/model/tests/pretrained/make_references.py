"""Reference files for gemstones-model's checkpoint reader and its
EfficientNet-Lite, written with the reference PyTorch implementation.

Pinned: torch==2.13.0, efficientnet-lite-pytorch==0.1.0 (lukemelas'
EfficientNet-PyTorch with the Lite variants), numpy==2.2.6. The venv that
`scripts/bench-train.sh` builds (`.venv-bench-torch`) has them, or make one:

    python3 -m venv .venv-ref && .venv-ref/bin/pip install torch==2.13.0 \
        efficientnet-lite-pytorch==0.1.0 numpy==2.2.6
    make weights
    .venv-ref/bin/python crates/model/tests/pretrained/make_references.py

It writes, next to itself:
- tiny_legacy.pth, tiny_zip.pth: the same small state dict in the legacy
  (pre-1.6) and the zip `torch.save` formats, with non-contiguous tensors
  (a channels-last convolution weight, a transposed matrix, a view at a
  storage offset) whose values follow a formula the Rust test recomputes;
- lite0_logits.json: ImageNet logits of EfficientNet-Lite0 with the real
  weights (`.weights/efficientnet-lite0-57934424.pth`, installed by
  `make weights`) on fixed inputs at 224 and 200 pixels.
"""
import json
from pathlib import Path

import torch
from efficientnet_lite_pytorch import EfficientNet

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]


def tiny_state_dict():
    conv = torch.arange(2 * 3 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3, 3)
    conv = conv.contiguous(memory_format=torch.channels_last)  # stride (27, 1, 9, 3)
    linear = torch.arange(12, dtype=torch.float32).reshape(4, 3).t()  # (3, 4), stride (1, 3)
    base = torch.arange(10, dtype=torch.float32) * 0.5
    offset_view = base[3:7]  # storage offset 3
    sd = {
        "conv.weight": conv,
        "linear.weight": linear,
        "bn.running_mean": offset_view,
        "bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
        "half.weight": torch.tensor([1.5, -2.25], dtype=torch.float16),
    }
    assert not conv.is_contiguous() and not linear.is_contiguous()
    assert offset_view.storage_offset() == 3
    return sd


def fixed_input(n, size):
    # Exact in f32 on both sides: integer pixel values, then (x - 127) / 128.
    idx = torch.arange(n).view(n, 1, 1, 1)
    c = torch.arange(3).view(1, 3, 1, 1)
    h = torch.arange(size).view(1, 1, size, 1)
    w = torch.arange(size).view(1, 1, 1, size)
    pixels = (h * 7 + w * 13 + c * 29 + idx * 31) % 256
    return (pixels.float() - 127.0) / 128.0


def main():
    sd = tiny_state_dict()
    torch.save(sd, HERE / "tiny_legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(sd, HERE / "tiny_zip.pth")
    weights = ROOT / ".weights" / "efficientnet-lite0-57934424.pth"
    model = EfficientNet.from_name("efficientnet-lite0", image_size=None)  # dynamic "same" padding
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    out = {"inputs": "pixels (h*7 + w*13 + c*29 + n*31) % 256, normalised (x - 127) / 128", "cases": []}
    with torch.no_grad():
        for size in (224, 200):
            logits = model(fixed_input(2, size))
            out["cases"].append({"size": size, "n": 2, "logits": [[round(v, 6) for v in row] for row in logits.tolist()]})
    params = sum(p.numel() for p in model.parameters())
    out["parameters"] = params
    (HERE / "lite0_logits.json").write_text(json.dumps(out) + "\n")
    print("wrote tiny_legacy.pth, tiny_zip.pth, lite0_logits.json; lite0 parameters:", params)


if __name__ == "__main__":
    main()
