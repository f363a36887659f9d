#!/usr/bin/env bash
# The README's demo: set everything up, build the busybox demo bundle, run it once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash bundles/build-rootfs.sh bundles/demo >/dev/null
ocirun run --bundle bundles/demo "ocirun-demo-$$"
