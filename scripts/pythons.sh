#!/usr/bin/env bash
# Every Python that pyproject.toml claims (>= 3.11): the unit tests and a real lifecycle (create,
# start, exec, kill, delete with a non-default --root) under 3.11 (the project's .venv), 3.12 and
# 3.13. 3.12 and 3.13 come from pyenv (their binaries, not the shim); each gets a venv under
# /var/tmp/ocirun-py3.X with ocirun (editable) and its dependencies from PyPI, made once and reused.
# A version that cannot be found is a failure, said plainly. Run as root after scripts/setup.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
VERSIONS=${PYTHON_VERSIONS:-"3.11 3.12 3.13"}
TESTS=(tests/unit tests/integration/test_python_versions_lifecycle.py)
status=0

find_python() {    # the newest pyenv 3.X.y interpreter
  local root
  root=$(pyenv root 2>/dev/null) || root=${PYENV_ROOT:-$HOME/.pyenv}
  ls -d "$root"/versions/"$1".[0-9]*/bin/python"$1" 2>/dev/null | sort -V | tail -n 1
}

for v in $VERSIONS; do
  echo "== Python $v"
  if [ "$v" = "$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" ]; then
    py=.venv/bin/python
  else
    interpreter=$(find_python "$v")
    if [ -z "$interpreter" ]; then
      echo "FAIL: Python $v is not installed under $(pyenv root 2>/dev/null || echo '(no pyenv)')/versions;" \
           "install it (pyenv install $v) or set PYTHONS=0 to skip this lane"
      status=1
      continue
    fi
    venv=/var/tmp/ocirun-py$v
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != tuple(map(int, "'"$v"'".split("."))))'; then
      rm -rf "$venv"
      "$interpreter" -m venv "$venv" || { echo "FAIL: Python $v: venv $venv"; status=1; continue; }
    fi
    # the checkout may have moved (another worktree): reinstall unless it is this one that imports
    if [ "$("$venv/bin/python" -c 'import os, ocirun; print(os.path.dirname(os.path.dirname(ocirun.__file__)))' 2>/dev/null)" != "$PWD" ] \
       || ! "$venv/bin/python" -c 'import jsonschema, prctl, pyroute2, pytest, hypothesis' 2>/dev/null; then
      if ! "$venv/bin/pip" install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat \
           > "$venv/install.log" 2>&1; then
        echo "FAIL: Python $v: pip install (see $venv/install.log):"; tail -n 5 "$venv/install.log"
        status=1
        continue
      fi
    fi
    py=$venv/bin/python
  fi
  "$py" -c 'import sys; print(sys.executable, sys.version.split()[0])'
  log=/tmp/ocirun-pythons-$v.log
  if "$py" -m pytest -q -p no:cacheprovider "${TESTS[@]}" > "$log" 2>&1; then
    tail -n 1 "$log"
  else
    echo "FAIL: Python $v (full output: $log)"
    tail -n 25 "$log"
    status=1
  fi
done
exit $status
