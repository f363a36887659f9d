#!/usr/bin/env bash
# The whole test suite: set-up, unit and root integration tests, the client smoke tests (real
# podman, containerd and dockerd driving ocirun), the OCI runtime-tools conformance suite
# (scripts/conformance.sh: fails on any failure known-issues.tsv does not tag) and the pure cgroup v2
# lane in a throwaway VM; the unit tests and a lifecycle under Python 3.11, 3.12 and 3.13
# (scripts/pythons.sh). SMOKE=0, CONFORMANCE=0, PYTHONS=0 or CGV2=0 skip those lanes,
# OCIRUN_SKIP_CHURN=1 the churn test (for a quick local run); CI runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
# The runtime keeps the shared `ocirun` parent cgroups it makes (README); every lane here makes
# containers, so those made by this run are removed when it ends, however it ends.
parents_before=$(mktemp)
/usr/bin/python3 -m tests.leftovers parents > "$parents_before"
trap '/usr/bin/python3 -m tests.leftovers remove-parents "$parents_before"; rm -f "$parents_before"' EXIT
bash scripts/setup.sh
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider tests "$@" || status=1

if [ "${SMOKE:-1}" != 0 ]; then
  shared=../shared
  for client in podman containerd docker; do
    echo "== $client smoke"
    if ! bash "$shared/clients/$client-smoke.sh" "$(command -v ocirun)" > "/tmp/ocirun-$client-smoke.log" 2>&1; then
      status=1
    fi
    grep -E '^(FAIL|PASS)' "/tmp/ocirun-$client-smoke.log" | grep '^FAIL' || true
    tail -n 1 "/tmp/ocirun-$client-smoke.log"
  done
fi

if [ "${CONFORMANCE:-1}" != 0 ]; then
  echo "== runtime-tools conformance"
  bash scripts/conformance.sh "$(command -v ocirun)" || status=1
fi

if [ "${PYTHONS:-1}" != 0 ]; then
  echo "== every Python from 3.11: unit tests and a lifecycle (scripts/pythons.sh)"
  bash scripts/pythons.sh || status=1
fi

if [ "${CGV2:-1}" != 0 ] && [ -f scripts/cgv2-lane.sh ]; then
  echo "== cgroup v2 lane"
  bash scripts/cgv2-lane.sh || status=1
fi
exit $status
