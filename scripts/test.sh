#!/usr/bin/env bash
# The whole test suite: set-up, unit and root integration tests, then the client smoke tests
# (podman, containerd, dockerd) and the cgroup v2 lane when their tools are present (CI sets them up).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
