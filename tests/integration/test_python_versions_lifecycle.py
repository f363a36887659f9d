"""A whole lifecycle under the interpreter running the tests, with a non-default --root (as
containerd and dockerd use): create, start, exec, kill, delete. scripts/pythons.sh runs this file
and tests/unit under every Python that pyproject.toml claims (3.11, 3.12, 3.13); with Python 3.12
create failed here (the default cgroup name of a non-default root used `_sha256`, now `_sha2`)."""
import os
import sys
import time

import pytest

from tests.conftest import base_config
from tests.leftovers import _cgroup_dirs

pytestmark = pytest.mark.root


def test_create_start_exec_kill_delete(ocirun):
    cid = f"py{sys.version_info[0]}{sys.version_info[1]}-{os.getpid()}"
    assert not ocirun.root.startswith("/run/ocirun")
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    ocirun("create", "-b", bundle, cid, check=True)
    state = ocirun.state(cid)
    assert state["status"] == "created"
    assert _cgroup_dirs(cid), "the container has no cgroup"
    ocirun("start", cid, check=True)
    assert ocirun.state(cid)["status"] == "running"
    proc = ocirun("exec", cid, "sh", "-c", "echo $$; cat /proc/1/cmdline", check=True)
    pid_in_container, cmdline = proc.stdout.split("\n", 1)
    assert int(pid_in_container) > 1 and cmdline.startswith("sleep\x00100")
    ocirun("kill", cid, "KILL", check=True)
    deadline = time.monotonic() + 10
    while ocirun.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, ocirun.state(cid)
        time.sleep(0.02)
    ocirun("delete", cid, check=True)
    assert cid not in ocirun("list", "-q").stdout.split()
    assert not os.path.exists(os.path.join(ocirun.root, cid))
    assert _cgroup_dirs(cid) == []
    try:    # gone, or a zombie until whoever adopted it reaps it
        assert open(f"/proc/{state['pid']}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        pass
