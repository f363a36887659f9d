"""The cgroup manager against the real kernel (root), without the rest of the runtime.

Runs on the host's mode (hybrid here: v1 controllers) and on a pure cgroup v2 kernel through
/work/shared/cgv2/run-in-cgv2-vm.sh. Every cgroup is named ocirun-test-* and removed in a finally.
"""
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from ocirun.errors import ConfigError
from ocirun.linux.cgroups import detect_mode, is_frozen, manager_from_dict, new_manager

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create cgroups")]

MODE = detect_mode()
v1_only = pytest.mark.skipif(MODE != "v1", reason="cgroup v1 behaviour")
v2_only = pytest.mark.skipif(MODE != "v2", reason="cgroup v2 behaviour")

# A child that waits for "go" on stdin (so that it runs the payload only once it is in the cgroup)
WAIT_GO = "import sys, os, errno, time\nsys.stdin.readline()\n"


class Env:
    def __init__(self):
        self.base = f"ocirun-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.managers = []
        self.procs: list[subprocess.Popen] = []

    def manager(self, sub: str = "c", **kw):
        m = new_manager(f"/{self.base}/{sub}", sub, **kw)
        self.managers.append(m)
        m.create()
        return m

    def spawn(self, m, payload: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-I", "-c", WAIT_GO + payload], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        m.add(p.pid)
        return p

    def sleeper(self, m) -> subprocess.Popen:
        p = subprocess.Popen(["sleep", "300"])
        self.procs.append(p)
        m.add(p.pid)
        return p

    def cleanup(self):
        for m in self.managers:
            try:
                if m.exists() and m.can_freeze() and m.is_frozen():
                    m.thaw()
                if m.exists():
                    m.kill(signal.SIGKILL)
            except Exception:
                pass
        for p in self.procs:
            p.kill()
            p.communicate()
        errors = []
        parents = set()
        for m in self.managers:
            try:
                m.destroy()
            except Exception as exc:
                errors.append(exc)
            dirs = list(m.dirs.values()) if m.version == "v1" else [m.dir]
            for d in dirs:      # every level between the hierarchy root and the cgroup: ours
                d = os.path.dirname(d)
                while self.base in d:
                    parents.add(d)
                    d = os.path.dirname(d)
        for parent in sorted(parents, key=len, reverse=True):
            try:
                os.rmdir(parent)
            except FileNotFoundError:
                pass
            except OSError as exc:
                errors.append(exc)
        assert not errors, errors


@pytest.fixture
def env():
    e = Env()
    try:
        yield e
    finally:
        e.cleanup()


def go(p: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = p.communicate("go\n", timeout=timeout)
    return p.returncode, out, err


def cg_read(m, v1: tuple[str, str], v2: str) -> str:
    path = os.path.join(m.dir_of(v1[0]), v1[1]) if m.version == "v1" else os.path.join(m.dir, v2)
    with open(path) as f:
        return f.read().strip()


def test_create_add_pids_destroy(env):
    m = env.manager()
    assert m.version == MODE
    # processes only in leaves: cgroup v2 refuses processes beside child cgroups that use controllers
    a, b = env.manager("c/a"), env.manager("c/b")
    p = env.sleeper(a)
    assert a.pids() == [p.pid] and b.pids() == []
    q = env.sleeper(b)
    assert sorted(m.pids()) == sorted([p.pid, q.pid])    # recursive
    m.kill(signal.SIGKILL)
    assert p.wait(10) == -signal.SIGKILL and q.wait(10) == -signal.SIGKILL
    again = manager_from_dict(m.to_dict())  # as the state file would rebuild it
    again.destroy()
    assert not m.exists() and not a.exists() and not b.exists()
    again.destroy()                          # idempotent


def _wait_empty(m, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while m.pids():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def test_kill_other_signal_reaches_every_process(env):
    m = env.manager()
    procs = [env.sleeper(m) for _ in range(3)]
    m.kill(signal.SIGTERM)
    assert [p.wait(10) for p in procs] == [-signal.SIGTERM] * 3
    assert _wait_empty(m, 5)
    assert not m.is_frozen()


def test_memory_limit_oom_kill_is_counted(env):
    m = env.manager()
    limit = 48 << 20
    m.set({"memory": {"limit": limit, "swap": limit}})
    assert int(cg_read(m, ("memory", "memory.limit_in_bytes"), "memory.max")) == limit
    before = m.oom_kill_count()
    p = env.spawn(m, "b = b'x' * (256 << 20)\nprint('survived')\n")
    rc, out, _ = go(p)
    assert rc == -signal.SIGKILL and "survived" not in out
    assert m.oom_kill_count() >= before + 1
    assert m.stats()["memory"]["usage"]["limit"] == limit


def test_pids_limit_makes_fork_fail(env):
    m = env.manager()
    m.set({"pids": {"limit": 1}})
    assert cg_read(m, ("pids", "pids.max"), "pids.max") == "1"
    p = env.spawn(m, "try:\n    pid = os.fork()\nexcept OSError as e:\n    print('fork', errno.errorcode[e.errno])\n"
                     "else:\n    os._exit(0) if pid == 0 else print('forked')\n")
    rc, out, err = go(p)
    assert (rc, out.strip()) == (0, "fork EAGAIN"), err
    assert m.stats()["pids"]["limit"] == 1
    m.set({"pids": {"limit": -1}}, update=True)
    assert cg_read(m, ("pids", "pids.max"), "pids.max") == "max"


def test_cpu_limits_are_written(env):
    m = env.manager()
    m.set({"cpu": {"quota": 20000, "period": 100000, "shares": 1024}})
    if m.version == "v1":
        assert cg_read(m, ("cpu", "cpu.cfs_quota_us"), "") == "20000"
        assert cg_read(m, ("cpu", "cpu.cfs_period_us"), "") == "100000"
        assert cg_read(m, ("cpu", "cpu.shares"), "") == "1024"
    else:
        assert cg_read(m, ("", ""), "cpu.max") == "20000 100000"
        assert cg_read(m, ("", ""), "cpu.weight") == "100"
    # an update of the period alone keeps the quota
    m.set({"cpu": {"period": 50000}}, update=True)
    if m.version == "v1":
        assert cg_read(m, ("cpu", "cpu.cfs_quota_us"), "") == "20000"
    else:
        assert cg_read(m, ("", ""), "cpu.max") == "20000 50000"


def test_missing_file_is_a_config_error(env):
    m = env.manager()
    with pytest.raises(ConfigError) as exc:
        m.set({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]})
    assert exc.value.path == "linux.resources.hugepageLimits[0]"


@v1_only
def test_v1_refuses_unified(env):
    m = env.manager()
    with pytest.raises(ConfigError, match="needs cgroup v2"):
        m.set({"unified": {"pids.max": "3"}})


@v2_only
def test_v2_unified_keys_are_written(env):
    m = env.manager()
    m.set({"unified": {"pids.max": "9", "memory.high": "100000000"}})
    assert cg_read(m, ("", ""), "pids.max") == "9"
    with pytest.raises(ConfigError, match="does not exist"):
        m.set({"unified": {"memory.nosuchfile": "1"}}, update=True)


OPEN_DEVICES = ("for path, mode in (('/dev/null', 'w'), ('/dev/kmsg', 'r')):\n"
                "    try:\n        open(path, mode).close()\n        print(path, 'ok')\n"
                "    except OSError as e:\n        print(path, errno.errorcode[e.errno])\n")


def test_devices_default_policy_denies_other_devices(env):
    m = env.manager()
    m.set({})                                # create-time set: deny all but the default devices
    p = env.spawn(m, OPEN_DEVICES)
    rc, out, err = go(p)
    assert out.split("\n")[:2] == ["/dev/null ok", "/dev/kmsg EPERM"], err


def test_devices_spec_rule_allows_a_device(env):
    m = env.manager()
    m.set({"devices": [{"allow": False, "access": "rwm"},
                       {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"}]})
    p = env.spawn(m, OPEN_DEVICES)
    rc, out, err = go(p)
    assert out.split("\n")[:2] == ["/dev/null ok", "/dev/kmsg ok"], err


def test_bpf_device_program_on_cgroup2(env):
    """The v2 device filter; on the hybrid host through the (controller-less) cgroup2 mount."""
    if MODE == "v2":
        m = env.manager()
    else:
        from ocirun.linux.cgroups.v2 import V2Manager
        base = next(d for k, d in env.manager("holder").dirs.items() if k == "")
        unified_root = base[:base.index("/" + env.base)]
        m = V2Manager(f"/{env.base}/bpf", os.path.join(os.path.dirname(base), "bpf"), unified_root)
        env.managers.append(m)
        m.create()
    m._set_devices([{"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}])
    m._set_devices([{"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": False, "access": "rwm"}])   # replaces the first program
    from ocirun.linux import syscalls as sc
    fd = os.open(m.dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(sc.bpf_prog_query(fd, sc.BPF_CGROUP_DEVICE)) == 1
    finally:
        os.close(fd)
    p = env.spawn(m, OPEN_DEVICES)
    rc, out, err = go(p)
    assert out.split("\n")[:2] == ["/dev/null ok", "/dev/kmsg EPERM"], err


TICKER = "while True:\n    sys.stdout.write('x'); sys.stdout.flush(); time.sleep(0.01)\n"


def test_freeze_thaw(env, tmp_path):
    m = env.manager()
    out = tmp_path / "ticks"
    with open(out, "w") as f:
        p = subprocess.Popen([sys.executable, "-I", "-c", "import sys, time\n" + TICKER], stdout=f)
    env.procs.append(p)
    m.add(p.pid)

    def grows(seconds: float) -> bool:
        a = out.stat().st_size
        time.sleep(seconds)
        return out.stat().st_size > a

    deadline = time.monotonic() + 60
    while not grows(0.2) and time.monotonic() < deadline:
        pass
    assert not is_frozen(m.to_dict())
    m.freeze()
    assert m.is_frozen() and is_frozen(m.to_dict())     # (what state/start/kill read from the record)
    assert not grows(0.5)
    assert m.pids() == [p.pid]
    m.kill(signal.SIGTERM)                   # a paused container stays paused for other signals
    assert m.is_frozen()
    assert p.poll() is None
    m.thaw()
    assert not m.is_frozen() and not is_frozen(m.to_dict())
    assert p.wait(30) == -signal.SIGTERM


def test_stats_shape(env):
    m = env.manager()
    m.set({"pids": {"limit": 10}, "memory": {"limit": 64 << 20}})
    env.sleeper(m)
    s = m.stats()
    assert set(s) == {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"}
    assert s["pids"] == {"current": 1, "limit": 10}
    assert s["memory"]["usage"]["limit"] == 64 << 20
    assert "raw" in s["memory"]


def test_destroy_waits_for_exiting_processes(env):
    m = env.manager()
    procs = [env.sleeper(m) for _ in range(2)]
    m.kill(signal.SIGKILL)
    m.destroy()                              # no wait() first: rmdir retries while they exit
    assert not m.exists()
    for p in procs:
        p.wait(10)


def test_destroy_of_a_busy_cgroup_fails_cleanly(env):
    m = env.manager()
    env.sleeper(m)
    from ocirun.errors import CgroupError
    with pytest.raises(CgroupError) as exc:
        m.destroy()
    assert "Device or resource busy" in str(exc.value)
    assert m.exists()


def test_relative_and_systemd_paths_resolve_under_the_hierarchy():
    m = new_manager("machine-ocirun.slice:pfx:ctr", "ctr", systemd=True)
    d = m.dir_of("memory") if m.version == "v1" else m.dir
    assert d.endswith("/machine.slice/machine-ocirun.slice/pfx-ctr.scope")
    r = new_manager(None, "ctr")
    assert (r.dir_of("memory") if r.version == "v1" else r.dir).endswith("/ocirun/ctr")
    assert not r.exists()
