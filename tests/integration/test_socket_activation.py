"""systemd socket activation as runc supports it: LISTEN_FDS fds (LISTEN_PID = the runtime's pid)
reach the container from fd 3 on, with LISTEN_FDS=N and LISTEN_PID=1 in its environment."""
import os
import shlex
import subprocess

import pytest

from tests.conftest import OCIRUN, base_config

pytestmark = pytest.mark.root


def run_activated(ocirun, args, listen_pid="$$", preserve=None):
    bundle = ocirun.bundle(base_config(args))
    payload = os.path.join(ocirun.tmp, "payload")
    with open(payload, "w") as f:
        f.write("from-systemd\n")
    cmd = " ".join(shlex.quote(a) for a in OCIRUN + ["--root", ocirun.root, "run", "-b", bundle,
                                                    *(["--preserve-fds", str(preserve)] if preserve else []), "act"])
    script = f"LISTEN_FDS=1 LISTEN_PID={listen_pid} exec {cmd} 3<{shlex.quote(payload)} 4</dev/null"
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)


def test_listen_fds_reach_the_container_with_their_environment(ocirun):
    proc = run_activated(ocirun, ["sh", "-c", "cat <&3; echo $LISTEN_FDS $LISTEN_PID; ls /proc/$$/fd; true"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[:3] == ["from-systemd", "1", "1"]
    assert "4" not in lines[3:]  # fd 4 was not announced, so it is not passed


def test_listen_fds_meant_for_another_process_are_ignored(ocirun):
    proc = run_activated(ocirun, ["sh", "-c", "echo env=${LISTEN_FDS:-none}; ls /proc/$$/fd; true"], listen_pid="1")
    assert proc.returncode == 0, proc.stderr
    assert "env=none" in proc.stdout and "3" not in proc.stdout.split()[1:]


def test_listen_fds_come_before_preserved_fds(ocirun):
    proc = run_activated(ocirun, ["sh", "-c", "cat <&3; ls /proc/$$/fd; true"], preserve=1)
    assert proc.returncode == 0, proc.stderr
    fds = proc.stdout.split()[1:]
    assert "3" in fds and "4" in fds
