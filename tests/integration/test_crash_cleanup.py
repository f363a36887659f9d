"""A create killed at any point, and a damaged state.json, never leave a container `delete --force`
cannot remove: no state dir, fifo, process, cgroup or mount stays behind, and `list` still works.

Kill points: tests/kill_at_line.py runs `ocirun create` under sys.settrace and SIGKILLs it just
before a chosen source line. A first, unkilled run records the lines the create executes; the points
are the first execution of every statement of create_container, start_init and _create_locked (the
create's main line, from the bootstrap socket to the state saved as created), each hierarchy of the
v1 cgroup mkdir loop, and every line of the state and cleanup-record writers (between the temporary
file and its rename). That is over 100 points; an even sample of KILL_POINTS of them is killed here
(OCIRUN_TEST_ALL_KILL_POINTS=1: every one). A second test kills it after N ms instead, N swept
over its run.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from tests.conftest import OCIRUN, base_config
from tests.leftovers import _cgroup_dirs, _init_pids

pytestmark = pytest.mark.root

KILLER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kill_at_line.py")
KILL_POINTS = 24
TIME_POINTS = 12
MAIN_LINE = ("create_container", "start_init", "_create_locked")
WRITERS = ("save", "save_cleanup_record", "write_private")


def _create_killed_at(ocirun, bundle, cid, kill_at, record=""):
    cmd = [sys.executable, "-I", KILLER, str(kill_at), record, "--root", ocirun.root, "create", "--bundle", bundle, cid]
    # files, not pipes: the created init keeps the caller's stdio open
    with open(os.devnull, "w") as devnull, tempfile.TemporaryFile("w+") as err:
        code = subprocess.run(cmd, cwd=ocirun.tmp, stdout=devnull, stderr=err, timeout=60).returncode
        err.seek(0)
        return subprocess.CompletedProcess(cmd, code, "", err.read())


def _kill_points(lines):
    points, seen = [], set()
    for i, entry in enumerate(lines):
        path, _, func = entry.split(":")
        if func in MAIN_LINE and path == "parent.py" or func in WRITERS and path == "state.py":
            if entry not in seen:
                seen.add(entry)
                points.append(i)
        elif func == "create" and path.startswith("linux/cgroups/"):
            points.append(i)
    return points


def _cgroup_dirs_of(root, cid):
    """cid's cgroup directories under this --root (other test runs may use the same id)."""
    from ocirun.parent import default_cgroup_name
    name = default_cgroup_name(root, cid)
    return [d for d in _cgroup_dirs(cid) if os.path.basename(d) == name]


def _assert_nothing_left(ocirun, cid, mine):
    assert not os.path.lexists(os.path.join(ocirun.root, cid)), os.listdir(os.path.join(ocirun.root, cid))
    assert _cgroup_dirs_of(ocirun.root, cid) == []
    deadline = time.monotonic() + 5    # an init not yet in the cgroup exits when its socket closes
    while _init_pids(mine) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _init_pids(mine) == set()
    mounts = open("/proc/self/mountinfo").read()
    assert ocirun.tmp not in mounts and ocirun.root not in mounts
    assert cid not in ocirun("list", "-q").stdout.split()


def test_create_killed_at_many_points_is_deleted_completely(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "1000"]))
    mine = (ocirun.tmp, ocirun.root)
    record = os.path.join(ocirun.tmp, "lines.txt")
    proc = _create_killed_at(ocirun, bundle, "k-record", -1, record)
    assert proc.returncode == 0, proc.stderr
    ocirun("delete", "--force", "k-record", check=True)
    points = _kill_points(open(record).read().split("\n"))
    assert len(points) > 100
    if os.environ.get("OCIRUN_TEST_ALL_KILL_POINTS") != "1":
        points = [points[round(i * (len(points) - 1) / (KILL_POINTS - 1))] for i in range(KILL_POINTS)]
    lines = open(record).read().split("\n")
    killed = []
    for n, at in enumerate(points):
        cid = f"k{n}"
        proc = _create_killed_at(ocirun, bundle, cid, at)
        assert proc.returncode in (-9, 0), proc.stderr   # 0: a run a little shorter than the recorded one
        if proc.returncode == -9:
            killed.append(lines[at])
        listed = ocirun("list")
        assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
        if not os.path.exists(os.path.join(ocirun.root, cid, "state.json")):   # half-made: said so
            assert (cid in listed.stderr) == os.path.isdir(os.path.join(ocirun.root, cid)), listed.stderr
        delete = ocirun("delete", "--force", cid)
        assert delete.returncode == 0, f"killed before {lines[at]}: {delete.stderr}"
        _assert_nothing_left(ocirun, cid, mine)
    assert len(set(killed)) >= min(len(points), 10) - 1, killed


def test_create_killed_after_a_delay_is_deleted_completely(ocirun):
    """The same from outside, by time: SIGKILL after N ms, N swept over the create's run. Unlike the
    line points (where the init is wherever its own progress took it), this also catches the parent
    blocked while the init works: mounting, waiting for its pid to be known, dropping privileges."""
    bundle = ocirun.bundle(base_config(["sleep", "1000"]))
    mine = (ocirun.tmp, ocirun.root)
    durations = []
    for _ in range(3):      # the shortest of 3 (the first one also validates the schema)
        started = time.monotonic()
        ocirun("create", "--bundle", bundle, "t-measure", check=True)
        durations.append(time.monotonic() - started)
        ocirun("delete", "--force", "t-measure", check=True)
    duration = min(durations)
    killed = 0
    for n in range(TIME_POINTS):
        cid = f"t{n}"
        with open(os.devnull, "w") as devnull:
            proc = subprocess.Popen(OCIRUN + ["--root", ocirun.root, "create", "--bundle", bundle, cid],
                                    cwd=ocirun.tmp, stdout=devnull, stderr=devnull)
            time.sleep(duration * 0.9 * n / (TIME_POINTS - 1))
            proc.kill()
            killed += proc.wait() == -9
        delete = ocirun("delete", "--force", cid)
        assert delete.returncode == 0, f"killed after {n}/{TIME_POINTS - 1} of {duration:.3f} s: {delete.stderr}"
        _assert_nothing_left(ocirun, cid, mine)
    assert killed >= TIME_POINTS // 3   # (load may make some creates finish early)


def test_delete_force_of_a_create_that_died_before_the_pid(ocirun):
    """The issue's repro: state.json says creating with pid 0 (pidfd_open(0) gave EINVAL)."""
    ocirun("create", "--bundle", ocirun.bundle(base_config(["sleep", "1000"])), "c1", check=True)
    path = os.path.join(ocirun.root, "c1", "state.json")
    data = json.load(open(path))
    data.update(status="creating", pid=0)
    json.dump(data, open(path, "w"))
    proc = ocirun("delete", "--force", "c1")
    assert proc.returncode == 0, proc.stderr
    _assert_nothing_left(ocirun, "c1", (ocirun.tmp, ocirun.root))


# --- mounts in the runtime's own mount namespace ----------------------------------------------------

@pytest.fixture
def private_mntns():
    """A mount namespace of this test's own (a private copy of ours, held by a sleeper), so that
    what a container without a mount namespace mounts never reaches the host's table; returns the
    command prefix that runs a command in it."""
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "1000"],
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{proc.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _mounts_under(pid, path):
    return [line.split()[4] for line in open(f"/proc/{pid}/mountinfo")
            if line.split()[4] == path or line.split()[4].startswith(path + "/")]


def _in_ns(ocirun, ns_pid, *args):
    cmd = ["nsenter", "-t", str(ns_pid), "-m", "--"] + OCIRUN + ["--root", ocirun.root, *args]
    with tempfile.TemporaryFile("w+") as err, open(os.devnull, "w") as devnull:
        code = subprocess.run(cmd, cwd=ocirun.tmp, stdout=devnull, stderr=err, timeout=60).returncode
        err.seek(0)
        return subprocess.CompletedProcess(cmd, code, "", err.read())


def _no_mntns_bundle(ocirun):
    config = base_config(["sleep", "1000"])
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "mount"]
    bundle = ocirun.bundle(config)
    return bundle, os.path.realpath(os.path.join(bundle, "rootfs"))


@pytest.mark.parametrize("case", ["plain", "bind-not-recorded", "state-damaged"])
def test_delete_unmounts_what_a_container_mounted_in_the_runtime_s_namespace(ocirun, private_mntns, case):
    """Without a mount namespace of its own, the container's rootfs bind and mounts are made in the
    runtime's: delete detaches them (before, they stayed: /proc, /dev, /sys... under the rootfs).
    bind-not-recorded: a create killed before it learnt its bind's id; state-damaged: from the
    cleanup record."""
    bundle, rootfs = _no_mntns_bundle(ocirun)
    proc = _in_ns(ocirun, private_mntns, "create", "--bundle", bundle, "m1")
    assert proc.returncode == 0, proc.stderr
    assert rootfs + "/proc" in _mounts_under(private_mntns, rootfs)
    assert _mounts_under(os.getpid(), rootfs) == []
    path = os.path.join(ocirun.root, "m1", "state.json")
    if case == "bind-not-recorded":
        for name in ("state.json", "cleanup.json"):
            p = os.path.join(ocirun.root, "m1", name)
            data = json.load(open(p))
            data["host_mounts"]["bind"] = None
            json.dump(data, open(p, "w"))
    elif case == "state-damaged":
        open(path, "w").write("{")
    proc = _in_ns(ocirun, private_mntns, "delete", "--force", "m1")
    assert proc.returncode == 0, proc.stderr
    assert _mounts_under(private_mntns, rootfs) == []
    assert not os.path.lexists(os.path.join(ocirun.root, "m1"))


def test_a_failed_create_unmounts_what_it_mounted_in_the_runtime_s_namespace(ocirun, private_mntns):
    config = base_config(["sleep", "1000"])
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "mount"]
    config["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    bundle = ocirun.bundle(config)
    rootfs = os.path.realpath(os.path.join(bundle, "rootfs"))
    proc = _in_ns(ocirun, private_mntns, "create", "--bundle", bundle, "m2")
    assert proc.returncode != 0
    assert _mounts_under(private_mntns, rootfs) == []
    assert not os.path.lexists(os.path.join(ocirun.root, "m2"))
