#!/usr/bin/env bash
# Augmentation with the tutorial's configuration on 220x220 photographs:
# gemstones-augment vs Keras ImageDataGenerator, albumentations and
# torchvision v2, in the same run.
source "$(dirname "$0")/bench-lib.sh"
PYA=$(venv aug keras-preprocessing==1.1.2 scipy==1.15.3 numpy==2.2.6 pillow==11.3.0 albumentations==2.0.8 opencv-python-headless==4.12.0.88)
PYT=$(venv torch torch==2.13.0 torchvision==0.28.0 pillow==11.3.0 numpy==2.2.6)
out=$(mktemp)
echo "== Python peers"
"$PYA" benches/python/augment_peers.py "$DATA" --peers keras,alb | tee -a "$out"
"$PYT" benches/python/augment_peers.py "$DATA" --peers tv | tee -a "$out"
echo "== gemstones-augment"
rust augment "$DATA" | tee -a "$out"
echo "== ratios"
ratio "$out"
