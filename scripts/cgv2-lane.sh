#!/usr/bin/env bash
# The cgroup v2 lane: tests/cgroupv2 on a pure cgroup v2 kernel, in the throwaway QEMU VM of
# ../shared/cgv2 (see its README). Takes a few minutes (the guest runs under software emulation).
#
#   bash scripts/cgv2-lane.sh [extra pytest args]
#
# The guest sees the host's / read-only (with a RAM overlay) and this checkout read-write over 9p,
# which refuses FIFOs: the tests keep --root, bundles and FIFOs in the guest's /tmp (pytest's
# tmp_path), and the busybox rootfs is built here, on the host, under /var/tmp beforehand.
# Environment: CGV2_DIR (default /work/shared/cgv2, else ../shared/cgv2), CGV2_TIMEOUT (default 900 s).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd -P)
CGV2_DIR=${CGV2_DIR:-}
if [ -z "$CGV2_DIR" ]; then
    for d in /work/shared/cgv2 "$REPO/../shared/cgv2"; do
        if [ -x "$d/run-in-cgv2-vm.sh" ] || [ -f "$d/run-in-cgv2-vm.sh" ]; then CGV2_DIR=$d; break; fi
    done
fi
[ -n "$CGV2_DIR" ] || { echo "cgv2-lane: ../shared/cgv2 not found (set CGV2_DIR)" >&2; exit 2; }

bash scripts/setup.sh >/dev/null             # the venv the guest will run (idempotent)
bash "$CGV2_DIR/setup.sh"                    # qemu, kernel, initramfs (idempotent)
export OCIRUN_TEST_ROOTFS_DIR=/var/tmp/ocirun-cgv2-rootfs
bash bundles/build-rootfs.sh "$OCIRUN_TEST_ROOTFS_DIR" >/dev/null

start=$(date +%s)
rc=0
CGV2_PASS_ENV="OCIRUN_TEST_ROOTFS_DIR" CGV2_TIMEOUT=${CGV2_TIMEOUT:-900} \
    bash "$CGV2_DIR/run-in-cgv2-vm.sh" "$REPO" \
    "for f in fd:/proc/self/fd stdin:/proc/self/fd/0 stdout:/proc/self/fd/1 stderr:/proc/self/fd/2; do
         [ -e /dev/\${f%%:*} ] || ln -s \${f#*:} /dev/\${f%%:*}; done   # the guest's /dev lacks them
     $REPO/.venv/bin/python -m pytest -q -p no:cacheprovider tests/cgroupv2 $*" || rc=$?
echo "cgv2-lane: exit $rc after $(( $(date +%s) - start )) s in the VM" >&2
exit "$rc"
