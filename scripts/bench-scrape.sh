#!/usr/bin/env bash
# The downloader over 50 ms of latency (300 images, 10 classes, a loopback
# catalogue): one by one (the tutorial's way) vs 16 at a time, with the
# per-host limit checked against the server's own request times.
source "$(dirname "$0")/bench-lib.sh"
rust scrape
