#!/usr/bin/env bash
# Installs everything ocirun and its tests need on a fresh Debian machine (run as root):
# Debian packages, a virtualenv made from /usr/bin/python3 (not a slow shim), ocirun in it
# (editable), and a link /usr/local/bin/ocirun. Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(busybox-static libcap-dev libseccomp2 iproute2 uidmap runc python3-venv python3-dev gcc
              zstd umoci skopeo    # zstd: zstd-compressed image layers; umoci, skopeo: image tests
              make libc6-dev)      # (with gcc) build the runtime-tools conformance suite
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import ocirun, jsonschema, prctl, pyroute2, pytest, hypothesis' 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat 2>&1 | grep -v -e '^WARNING: Location' -e DEPRECATION || true
fi
.venv/bin/python -c 'import ocirun, jsonschema, prctl, pyroute2, pytest, hypothesis'
# The launcher runs with -B (it never writes bytecode), so compile it once here: without .pyc
# files every command would compile ocirun from source.
.venv/bin/python -m compileall -q ocirun
# The command on PATH is a small launcher rather than pip's console script: `python -ISB` skips
# site (its .pth files cost ~5 ms on every command) and pip's wrapper imports re; site-packages is
# appended to sys.path instead, so pyroute2 is still found when needed.
purelib=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
# OCIRUN_LAUNCHER picks another path (a second checkout, e.g. a git worktree, keeps its own).
target=${OCIRUN_LAUNCHER:-/usr/local/bin/ocirun}
launcher=$(mktemp "$(dirname "$target")/.ocirun.XXXXXX")
cat > "$launcher" <<LAUNCHER
#!$PWD/.venv/bin/python -ISB
import sys
sys.path.insert(0, "$PWD")
sys.path.append("$purelib")
from ocirun.cli import launch
launch()
LAUNCHER
chmod 755 "$launcher"
mv -f "$launcher" "$target"
echo "setup: ok ($("$target" --version | head -1), $target)"
