"""Training-step and inference throughput of the tutorial's CNN (220x220,
batch 32, 87 classes, Adam) in PyTorch eager (the same libtorch 2.13 as
tch) and in Keras/TensorFlow. Prints one JSON line per configuration.

Usage: python train_peers.py torch|tf [--steps 10]
"""
import argparse
import json
import time


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
            lossf = nn.CrossEntropyLoss()

            def step():
                opt.zero_grad()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    out = net(x)
                loss = lossf(out.float(), y)
                loss.backward()
                opt.step()

            for _ in range(3):
                step()
            t = time.perf_counter()
            for _ in range(steps):
                step()
            train = steps * 32 / (time.perf_counter() - t)
            net.eval()
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                t = time.perf_counter()
                for _ in range(steps):
                    net(x)
                infer = steps * 32 / (time.perf_counter() - t)
            print(json.dumps({"tool": f"pytorch {torch.__version__} eager", "layout": layout, "bf16": bf16,
                              "threads": torch.get_num_threads(), "train_images_per_sec": train,
                              "infer_images_per_sec": infer}), flush=True)


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
    ap.add_argument("peer", choices=["torch", "tf"])
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    torch_peer(a.steps) if a.peer == "torch" else tf_peer(a.steps)
