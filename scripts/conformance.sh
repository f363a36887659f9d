#!/usr/bin/env bash
# The OCI runtime-tools validation suite (../shared/conformance: all 58 programs) against a runtime,
# CI's conformance lane. Fails when any program fails for a reason the suite's known-issues.tsv does
# not tag (ENV: this machine lacks the feature; SUITE: a bug in runtime-tools; FLAKY): an untagged
# failure is the runtime's. A program that fails untagged is run once more, alone: the suite has
# timing races it does not tag (poststart: the hook's and the process's writes race once the process
# has exec'd), so a program that passes on its rerun is reported as flaky, by name, and does not
# fail the lane; one that fails twice does. Prints one summary line; the details are in $OUT (failures.md).
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
rerun_out=$OUT/rerun
rm -rf "$OUT/results.json" "$rerun_out"    # never judge a run by the results of an earlier one
t0=$SECONDS
rc=0
bash "$conformance/rt-validate.sh" "$runtime" >"$run_log" 2>&1 || rc=$?
# rt-validate exits 1 on any failed assertion, tagged or not, and 2 on a usage error: the verdict
# comes from results.json, which has every program's verdict and each failure's tag.
# verdict.py RESULTS RC SECS LOG [RERUN_RESULTS]: the summary line; with --untagged, only the names
# of the programs that failed for an untagged reason.
verdict=$(mktemp)
trap 'rm -f "$verdict"' EXIT
cat >"$verdict" <<'PY'
import json, sys
untagged_only = sys.argv[1] == "--untagged"
args = sys.argv[2:] if untagged_only else sys.argv[1:]
path, rc, secs, log = args[0], int(args[1]), args[2], args[3]
rerun_path = args[4] if len(args) > 4 else None
try:
    res = json.load(open(path))
except (OSError, ValueError) as exc:
    if not untagged_only:
        print(f"conformance: FAILED: no results ({exc}); rt-validate exit {rc}, log {log}")
    sys.exit(1)
tests = res["tests"]
passed = [t["name"] for t in tests if t["verdict"] == "PASS"]
# a failing program is excused only when it failed and every one of its failures is tagged
tagged = [t["name"] for t in tests if t["verdict"] != "PASS" and t["failures"]
          and all(f.get("known") for f in t["failures"])]
untagged = [t["name"] for t in tests if t["verdict"] != "PASS" and t["name"] not in tagged]
if untagged_only:
    print(" ".join(untagged))
    sys.exit(0)
flaky = []
if rerun_path and untagged:
    try:
        rerun = {t["name"]: t["verdict"] for t in json.load(open(rerun_path))["tests"]}
    except (OSError, ValueError):
        rerun = {}
    flaky = [name for name in untagged if rerun.get(name) == "PASS"]
    untagged = [name for name in untagged if name not in flaky]
ok = not untagged and len(tests) >= 58 and rc in (0, 1)
line = (f"conformance: {len(passed)}/{len(tests)} programs pass, {len(tagged)} fail only for tagged "
        f"reasons, {len(untagged)} untagged ({res['passed']} assertions passed, {res['failed']} failed, "
        f"{secs} s)")
if flaky:
    line += f"; flaky: {' '.join(flaky)} failed untagged, then passed when run again alone"
if untagged:
    line += f": {' '.join(untagged)} (see {path.rsplit('/', 1)[0]}/failures.md)"
if len(tests) < 58:
    line += f"; only {len(tests)} of the 58 programs ran (rt-validate exit {rc}, log {log})"
print(("" if ok else "FAILED ") + line)
sys.exit(0 if ok else 1)
PY
secs() { echo $((SECONDS - t0)); }
untagged=$(/usr/bin/python3 "$verdict" --untagged "$OUT/results.json" "$rc" "$(secs)" "$run_log" 2>/dev/null || true)
if [ -n "$untagged" ] && [ "$rc" != 2 ]; then
  # shellcheck disable=SC2086  # one argument per program name
  OUT=$rerun_out bash "$conformance/rt-validate.sh" "$runtime" $untagged >>"$run_log" 2>&1 || true
  /usr/bin/python3 "$verdict" "$OUT/results.json" "$rc" "$(secs)" "$run_log" "$rerun_out/results.json"
else
  /usr/bin/python3 "$verdict" "$OUT/results.json" "$rc" "$(secs)" "$run_log"
fi
