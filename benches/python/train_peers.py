"""Training-step and inference throughput of the tutorial's CNN (220x220,
batch 32, 87 classes, Adam) in PyTorch eager (the same libtorch 2.13 as
tch) and in Keras/TensorFlow, and of EfficientNet-Lite0 (87 classes, AdamW)
in PyTorch eager with the reference implementation (efficientnet-lite-pytorch
0.1.0). Prints one JSON line per configuration.

Usage: python train_peers.py torch|tf|lite0 [--steps 10] [--sizes 224,192,160]
"""
import argparse
import json
import time


def throughput(net, x, y, opt, bf16, steps):
    """Training images/s (forward, backward, update; 3 warm-up steps), then
    inference images/s of the same batch and the median one-image latency
    in ms (eval mode, no gradients)."""
    import torch
    import torch.nn as nn

    lossf = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        loss = lossf(out.float(), y)
        loss.backward()
        opt.step()

    net.train()
    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    train = steps * len(x) / (time.perf_counter() - t)
    net.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        net(x)
        t = time.perf_counter()
        for _ in range(steps):
            net(x)
        infer = steps * len(x) / (time.perf_counter() - t)
        one = x[:1]
        net(one)
        times = []
        for _ in range(30):
            t = time.perf_counter()
            net(one)
            times.append((time.perf_counter() - t) * 1e3)
    return train, infer, sorted(times)[len(times) // 2]


def torch_peer(steps):
    import torch
    import torch.nn as nn

    class Cnn(nn.Module):
        def __init__(self):
            super().__init__()
            ch = [3, 32, 64, 128, 128, 128]
            self.convs = nn.ModuleList([nn.Conv2d(ch[i], ch[i + 1], 3, padding=1) for i in range(5)])
            self.fc1 = nn.Linear(6 * 6 * 128, 512)
            self.fc2 = nn.Linear(512, 87)
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            for i, c in enumerate(self.convs):
                x = torch.relu(c(x))
                x = nn.functional.avg_pool2d(x, 2) if i == 3 else nn.functional.max_pool2d(x, 2)
            return self.fc2(torch.relu(self.fc1(self.drop(x.flatten(1)))))

    for layout in ["nchw", "channels_last"]:
        for bf16 in [False, True]:
            if bf16 and layout == "nchw":
                continue
            torch.manual_seed(0)
            net = Cnn()
            x = torch.randn(32, 3, 220, 220)
            y = torch.randint(0, 87, (32,))
            if layout == "channels_last":
                net = net.to(memory_format=torch.channels_last)
                x = x.to(memory_format=torch.channels_last)
            opt = torch.optim.Adam(net.parameters(), 1e-3)
            train, infer, latency = throughput(net, x, y, opt, bf16, steps)
            print(json.dumps({"tool": f"pytorch {torch.__version__} eager", "layout": layout, "bf16": bf16,
                              "threads": torch.get_num_threads(), "train_images_per_sec": train,
                              "infer_images_per_sec": infer, "latency_ms": latency}), flush=True)


def lite0_peer(steps, sizes):
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    for size in sizes:
        for bf16 in [False, True]:
            torch.manual_seed(0)
            # Dynamic "same" padding, as for any input size.
            net = EfficientNet.from_name("efficientnet-lite0", image_size=None, num_classes=87)
            net = net.to(memory_format=torch.channels_last)
            x = torch.randn(32, 3, size, size).to(memory_format=torch.channels_last)
            y = torch.randint(0, 87, (32,))
            opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.01)
            train, infer, latency = throughput(net, x, y, opt, bf16, steps)
            print(json.dumps({"tool": f"pytorch {torch.__version__} eager", "model": "lite0", "size": size,
                              "layout": "channels_last", "precision": "Bf16" if bf16 else "F32",
                              "threads": torch.get_num_threads(), "train_images_per_sec": train,
                              "infer_images_per_sec": infer, "latency_ms": latency}), flush=True)


def tf_peer(steps):
    import numpy as np
    import tensorflow as tf
    from tensorflow import keras
    from tensorflow.keras import layers

    m = keras.Sequential([keras.Input((220, 220, 3))])
    for i, f in enumerate([32, 64, 128, 128, 128]):
        m.add(layers.Conv2D(f, 3, padding="same", activation="relu"))
        m.add(layers.AveragePooling2D(2) if i == 3 else layers.MaxPooling2D(2))
    m.add(layers.Flatten())
    m.add(layers.Dropout(0.5))
    m.add(layers.Dense(512, activation="relu"))
    m.add(layers.Dense(87, activation="softmax"))
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.rand(32, 220, 220, 3).astype("float32")
    y = np.random.randint(0, 87, (32,))
    for _ in range(3):
        m.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(steps):
        m.train_on_batch(x, y)
    train = steps * 32 / (time.perf_counter() - t)
    m.predict_on_batch(x)
    t = time.perf_counter()
    for _ in range(steps):
        m.predict_on_batch(x)
    infer = steps * 32 / (time.perf_counter() - t)
    print(json.dumps({"tool": f"tensorflow {tf.__version__} keras", "layout": "nhwc", "bf16": False,
                      "params": int(m.count_params()), "train_images_per_sec": train,
                      "infer_images_per_sec": infer}), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("peer", choices=["torch", "tf", "lite0"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--sizes", default="224,192,160")
    a = ap.parse_args()
    if a.peer == "torch":
        torch_peer(a.steps)
    elif a.peer == "lite0":
        lite0_peer(a.steps, [int(s) for s in a.sizes.split(",")])
    else:
        tf_peer(a.steps)
