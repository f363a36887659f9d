#!/usr/bin/env bash
# The OCI runtime-tools validation suite (../shared/conformance: all 58 programs) against a runtime,
# CI's conformance lane. Fails when any program fails for a reason the suite's known-issues.tsv does
# not tag (ENV: this machine lacks the feature; SUITE: a bug in runtime-tools; FLAKY): an untagged
# failure is the runtime's. Prints one summary line; the details are in $OUT (failures.md).
#   scripts/conformance.sh [RUNTIME]        (default: the ocirun on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
runtime=${1:-$(command -v ocirun)}
conformance=${CONFORMANCE_DIR:-../shared/conformance}
export RT_WORK=${RT_WORK:-/var/tmp/ocirun-rt}
export OUT=${OUT:-$RT_WORK/results/ci}    # not the per-runtime default: a manual run never clobbers it
build_log=/tmp/ocirun-conformance-build.log
run_log=/tmp/ocirun-conformance.log
if ! bash "$conformance/build.sh" >"$build_log" 2>&1; then
  tail -n 20 "$build_log"
  echo "conformance: FAILED to build runtime-tools (log: $build_log)"
  exit 1
fi
rm -f "$OUT/results.json"    # never judge a run by the results of an earlier one
t0=$SECONDS
rc=0
bash "$conformance/rt-validate.sh" "$runtime" >"$run_log" 2>&1 || rc=$?
# rt-validate exits 1 on any failed assertion, tagged or not, and 2 on a usage error: the verdict
# comes from results.json, which has every program's verdict and each failure's tag.
/usr/bin/python3 - "$OUT/results.json" "$rc" "$((SECONDS - t0))" "$run_log" <<'PY'
import json, sys
path, rc, secs, log = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
try:
    res = json.load(open(path))
except (OSError, ValueError) as exc:
    print(f"conformance: FAILED: no results ({exc}); rt-validate exit {rc}, log {log}")
    sys.exit(1)
tests = res["tests"]
passed = [t["name"] for t in tests if t["verdict"] == "PASS"]
# a failing program is excused only when it failed and every one of its failures is tagged
tagged = [t["name"] for t in tests if t["verdict"] != "PASS" and t["failures"]
          and all(f.get("known") for f in t["failures"])]
untagged = [t["name"] for t in tests if t["verdict"] != "PASS" and t["name"] not in tagged]
ok = not untagged and len(tests) >= 58 and rc in (0, 1)
line = (f"conformance: {len(passed)}/{len(tests)} programs pass, {len(tagged)} fail only for tagged "
        f"reasons, {len(untagged)} untagged ({res['passed']} assertions passed, {res['failed']} failed, "
        f"{secs} s)")
if untagged:
    line += f": {' '.join(untagged)} (see {path.rsplit('/', 1)[0]}/failures.md)"
if len(tests) < 58:
    line += f"; only {len(tests)} of the 58 programs ran (rt-validate exit {rc}, log {log})"
print(("" if ok else "FAILED ") + line)
sys.exit(0 if ok else 1)
PY
