#!/usr/bin/env bash
# Augmentation with the tutorial's configuration on 220x220 photographs:
# gemstones-augment vs Keras ImageDataGenerator, albumentations and
# torchvision v2, in the same run.
source "$(dirname "$0")/bench-lib.sh"
PYA=$(venv aug keras-preprocessing==1.1.2 scipy==1.15.3 numpy==2.2.6 pillow==11.3.0 albumentations==2.0.8 opencv-python-headless==4.12.0.88)
PYT=$(torch_venv)
out=$(mktemp)
echo "== Python peers"
"$PYA" benches/python/augment_peers.py "$DATA" --peers keras,alb | tee -a "$out"
"$PYT" benches/python/augment_peers.py "$DATA" --peers tv | tee -a "$out"
echo "== gemstones-augment"
rust augment "$DATA" | tee -a "$out"
compare "$out" "augmentation, the tutorial's configuration on 220x220 photographs: ours against each peer at the same thread count"
