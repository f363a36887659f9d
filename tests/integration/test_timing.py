"""--debug prints one timing line per phase of create, start and exec (wall and CPU milliseconds),
through the log module at debug level; without --debug there are none."""
import re

import pytest

from tests.conftest import base_config

pytestmark = pytest.mark.root

LINE = re.compile(r'msg="timing: ([^"]+?): (?:([\d.]+) ms \(cpu ([\d.]+) ms\)|cpu ([\d.]+) ms)"')


def phases(stderr: str) -> list[str]:
    found = LINE.findall(stderr)
    assert all(float(wall or cpu_only) >= 0 for _, wall, _, cpu_only in found)
    return [name for name, *_ in found]


def test_debug_timing_lines_for_create_start_exec(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    create = ocirun("create", "-b", bundle, "c1", extra_global=("--debug",), check=True)
    seen = phases(create.stderr)
    for expected in ("interpreter start", "create: imports", "create: spawn init", "create: validation (schema)",
                     "create: state (directory, state.json, cleanup record, fifo)", "create: cgroup made",
                     "init: imports", "init: join namespaces", "init: unshare", "init: fork", "init: rootfs",
                     "init: pivot", "init: finalize", "init: process settings",
                     "create: runtime hooks (prestart, createRuntime), netDevices",
                     "create: state saved (created)"):
        assert expected in seen, (expected, seen)
    assert seen.count("interpreter start") == 2      # the command's and the init's

    start = ocirun("start", "c1", extra_global=("--debug",), check=True)
    assert {"interpreter start", "start: imports", "start: state loaded",
            "start: the init released, program exec'd (startContainer hooks)"} <= set(phases(start.stderr))

    exec_ = ocirun("exec", "c1", "true", extra_global=("--debug",), check=True)
    assert {"exec: spawn helper", "exec helper: imports", "exec helper: namespaces joined",
            "exec: process exec'd"} <= set(phases(exec_.stderr))
    assert phases(exec_.stderr).count("interpreter start") == 2    # the command's and the helper's

    ocirun("kill", "c1", "KILL", check=True)


def test_no_timing_lines_without_debug(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    for args in (("create", "-b", bundle, "c1"), ("start", "c1"), ("exec", "c1", "true")):
        proc = ocirun(*args, check=True)
        assert "timing" not in proc.stderr, args
    ocirun("kill", "c1", "KILL", check=True)


def test_a_failing_init_step_is_named_with_debug(ocirun):
    config = base_config(["true"])
    # onto a directory the rootfs has: a new one would be made in the rootfs all tests share
    config["mounts"] = list(config.get("mounts") or []) + [{"destination": "/tmp", "type": "nosuchfs", "source": "s"}]
    proc = ocirun("create", "-b", ocirun.bundle(config), "c2", extra_global=("--debug",))
    assert proc.returncode != 0
    assert "container init failed in its step 'rootfs'" in proc.stderr, proc.stderr
    assert "type=nosuchfs" in proc.stderr
    quiet = ocirun("create", "-b", ocirun.bundle(config), "c3")
    assert quiet.returncode != 0 and "in its step" not in quiet.stderr
