"""cli.exit_without_teardown, the launcher's exit: it skips the interpreter's finalization only when
nothing needs it, and otherwise exits exactly as sys.exit would (same status, same output)."""
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

# An object whose __del__ runs at the interpreter's teardown (module globals are cleared) and never
# after os._exit: it tells which exit was taken.
PROLOGUE = f"""
import sys
sys.path.insert(0, {REPO!r})
from ocirun.cli import exit_without_teardown

class Witness:
    def __del__(self):
        sys.stdout.write("[teardown]")
        sys.stdout.flush()

witness = Witness()
"""


def run(body: str, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdout", subprocess.PIPE)
    return subprocess.run([sys.executable, "-ISB", "-c", PROLOGUE + body], stderr=subprocess.PIPE, text=True,
                          timeout=60, **kw)


def test_skips_teardown_and_keeps_status_and_buffered_output():
    p = run("sys.stdout.write('out'); sys.stderr.write('err'); exit_without_teardown(3)")
    assert (p.returncode, p.stdout, p.stderr) == (3, "out", "err")


def test_none_is_status_0():
    p = run("exit_without_teardown(None)")
    assert (p.returncode, p.stdout) == (0, "")


@pytest.mark.parametrize("body", [
    "import atexit; atexit.register(lambda: sys.stdout.write('[atexit]'))",
    # a non-daemon thread still running: the interpreter's shutdown joins it
    "import threading, time; threading.Thread(target=lambda: (time.sleep(0.2), sys.stdout.write('[thread]'))).start()",
])
def test_takes_the_full_exit_when_something_needs_it(body):
    p = run(body + "\nexit_without_teardown(4)")
    assert p.returncode == 4
    assert "[teardown]" in p.stdout and ("[atexit]" in p.stdout or "[thread]" in p.stdout)


def test_a_string_status_is_printed_as_sys_exit_does():
    p = run("exit_without_teardown('bye')")
    assert (p.returncode, p.stderr) == (1, "bye\n")


def test_a_failing_stdout_exits_120_as_the_interpreter_does():
    with open("/dev/full", "w") as full:
        p = run("sys.stdout.write('x' * 10); exit_without_teardown(0)", stdout=full)
    assert p.returncode == 120
    assert "No space left on device" in p.stderr


def test_the_launcher_and_python_m_ocirun_use_it():
    launcher = open(os.path.join(REPO, "scripts", "setup.sh")).read()
    assert "from ocirun.cli import launch\nlaunch()" in launcher
    assert "launch()" in open(os.path.join(REPO, "ocirun", "__main__.py")).read()
