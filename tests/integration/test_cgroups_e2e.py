"""cgroups through the whole runtime (root, real containers, cgroup v1 / hybrid hosts).

Each resource of linux.resources is set in config.json, then checked twice: from the host, in the
cgroup files of the directory the container's pid is in (found from /proc/<pid>/cgroup, with our
own small parser so that the runtime's path logic is not trusted), and from inside the container,
through the /sys/fs/cgroup mount of runc's default config (read with the container's own command:
no exec). Effects are observed too: an OOM kill reported by `events`, fork failing at pids.max, a
device denied with EPERM, a frozen container that stops ticking.

Every container id and every cgroup path the tests choose contains TAG; the last test asserts that
no cgroup with TAG is left anywhere under /sys/fs/cgroup, and the module fixture removes whatever a
failing test left behind. A pure cgroup v2 host runs tests/cgroupv2 instead (scripts/cgv2-lane.sh).
"""
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid

import pytest

from ocirun.parent import default_cgroup_name
from tests.conftest import OCIRUN, base_config

TAG = f"oce2e{os.getpid():x}{uuid.uuid4().hex[:6]}"     # no "-": also valid inside a systemd slice name
CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}   # runc spec's default


def _cgroup_mounts() -> list[tuple[str, str, str, set]]:
    """(mountpoint, mount root, fstype, super options) of the host's cgroup mounts."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, tail = pre.split(), post.split()
            if tail and tail[0] in ("cgroup", "cgroup2"):
                found.append((fields[4], fields[3], tail[0], set(tail[2].split(","))))
    return found


MOUNTS = _cgroup_mounts()
HOST_V1 = any(fs == "cgroup" and not any(o.startswith("name=") for o in opts) for _, _, fs, opts in MOUNTS)
V1_MOUNTED = {o for _, _, fs, opts in MOUNTS if fs == "cgroup" for o in opts}

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not HOST_V1, reason="cgroup v1/hybrid host (tests/cgroupv2 covers pure v2)")]


def host_dirs(pid: int) -> dict[str, str]:
    """controller ("memory", "cpu", "name=systemd"; "" = the cgroup2 line) -> the host directory of pid."""
    dirs = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for ctrl in ctrls.split(",") if ctrls else [""]:
                for mountpoint, root, fstype, opts in MOUNTS:
                    if (fstype == "cgroup2") if not ctrl else (fstype == "cgroup" and ctrl in opts):
                        rel = path[len(root):] if root != "/" and path.startswith(root) else path
                        dirs[ctrl] = os.path.normpath(mountpoint + "/" + rel)
                        break
    return dirs


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def wait_for(pred, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def tagged_cgroups() -> list[str]:
    """Every directory under /sys/fs/cgroup/*/ whose name contains TAG."""
    found = []
    for mountpoint, _, _, _ in MOUNTS:
        for dirpath, dirnames, _ in os.walk(mountpoint):
            for name in dirnames:
                if TAG in name:
                    found.append(os.path.join(dirpath, name))
    return sorted(set(found))


def _remove_cgroup_tree(path: str) -> None:
    for dirpath, dirnames, _ in sorted(os.walk(path, topdown=False), key=lambda t: -len(t[0])):
        try:
            procs = read(os.path.join(dirpath, "cgroup.procs")).split()
        except OSError:
            procs = []
        for p in procs:
            try:
                os.kill(int(p), signal.SIGKILL)
            except ProcessLookupError:
                pass
        freezer = os.path.join(dirpath, "freezer.state")
        if os.path.exists(freezer):
            try:
                with open(freezer, "w") as f:
                    f.write("THAWED")
            except OSError:
                pass
        for _ in range(200):
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)


@pytest.fixture(scope="module", autouse=True)
def no_leftover_cgroups():
    """Whatever a failing test left with TAG is removed at the end (test_zz_* asserts there was none)."""
    yield
    for path in sorted(tagged_cgroups(), key=len, reverse=True):
        _remove_cgroup_tree(path)


@pytest.fixture
def cgroup_parents():
    """A list to put the parent cgroups a test's cgroupsPath named into: removed (if empty) at teardown,
    after the `ocirun` fixture has deleted the containers (ask for this fixture before `ocirun`)."""
    parents: list[str] = []
    yield parents
    for path in sorted(set(parents), key=len, reverse=True):
        for _ in range(100):
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


class Box:
    """One container started with a shell script; /out inside is a host directory (read-write)."""

    def __init__(self, rt, cid: str, out: str, extra_global=()):
        self.rt, self.cid, self.out, self.extra_global = rt, cid, out, tuple(extra_global)
        self.pid = rt.state(cid)["pid"]
        self.dirs = host_dirs(self.pid)

    def __call__(self, *args, **kw):
        return self.rt(*args, extra_global=self.extra_global, **kw)

    def start(self):
        self("start", self.cid, check=True)
        return self

    def cg(self, ctrl: str, name: str) -> str:
        return read(os.path.join(self.dirs[ctrl], name))

    def file(self, name: str, timeout: float = 20.0) -> str:
        """A file the container writes in /out: waits until it exists and (but "ready") is not empty,
        so that a shell redirection that has created it but not written yet is not read too early."""
        path = os.path.join(self.out, name)
        wait_for(lambda: os.path.exists(path) and (name == "ready" or os.path.getsize(path) > 0), timeout,
                 f"{path} (written by the container)")
        return read(path)

    def values(self, timeout: float = 20.0) -> dict:
        """The `name=value` lines the container's DUMP loop wrote to /out/values."""
        self.file("ready", timeout)
        text = read(os.path.join(self.out, "values"))
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def status(self) -> str:
        return self.rt.state(self.cid)["status"]


def launch(ocirun, script: str, *, name: str = "c", resources: dict | None = None, edit=None,
           cgroups_path: str | None = None, extra_global=(), start: bool = True) -> Box:
    """create (+ start) a container running `sh -c script` with runc's cgroup mount and /out."""
    cid = f"{TAG}-{name}"
    out = os.path.join(ocirun.tmp, f"out-{name}")
    os.makedirs(out)
    config = base_config(["sh", "-c", script])
    config["mounts"] += [dict(CGROUP_MOUNT),
                         {"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]}]
    if resources is not None:
        config["linux"]["resources"] = resources
    if cgroups_path is not None:
        config["linux"]["cgroupsPath"] = cgroups_path
    if edit:
        edit(config)
    bundle = ocirun.bundle(config, name=f"bundle-{name}")
    ocirun("create", "-b", bundle, cid, check=True, extra_global=extra_global)
    box = Box(ocirun, cid, out, extra_global)
    return box.start() if start else box


def dump(*files: str, then: str = "exec sleep 600") -> str:
    """A script writing `file=content` of each /sys/fs/cgroup file into /out/values, then /out/ready."""
    lines = " ".join(f'"{f}"' for f in files)
    return (f'for f in {lines}; do echo "$f=$(cat /sys/fs/cgroup/$f 2>&1)"; done > /out/values; '
            f'cat /proc/self/cgroup > /out/proc_cgroup; : > /out/ready; {then}')


# --- resources: written to the host cgroup files, and visible inside ------------------------------

def test_memory_limit_reservation_and_swap_are_applied(ocirun):
    if not os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
        pytest.skip("the kernel has no swap accounting (memory.memsw.*)")
    res = {"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20}}
    box = launch(ocirun, dump("memory/memory.limit_in_bytes", "memory/memory.soft_limit_in_bytes",
                              "memory/memory.memsw.limit_in_bytes"), resources=res)
    host = {f: box.cg("memory", f) for f in ("memory.limit_in_bytes", "memory.soft_limit_in_bytes",
                                             "memory.memsw.limit_in_bytes")}
    assert host == {"memory.limit_in_bytes": str(64 << 20), "memory.soft_limit_in_bytes": str(32 << 20),
                    "memory.memsw.limit_in_bytes": str(96 << 20)}
    assert box.values() == {"memory/" + k: v for k, v in host.items()}


def test_memory_hog_is_oom_killed_and_events_reports_oom(ocirun):
    limit = 32 << 20
    # the shell waits for /out/go so that `events` is watching before the hog starts; dd's 256M
    # buffer is filled from /dev/zero and so charged to the cgroup: the OOM killer takes dd, not sh
    script = ('while [ ! -e /out/go ]; do sleep 0.05; done; dd if=/dev/zero of=/dev/null bs=256M count=1 '
              '2>/out/dd.err; echo $? > /out/dd.rc; exec sleep 600')
    box = launch(ocirun, script, resources={"memory": {"limit": limit, "swap": limit}})
    assert box.cg("memory", "memory.limit_in_bytes") == str(limit)
    events = subprocess.Popen(OCIRUN + ["--root", ocirun.root, "events", "--interval", "10m", box.cid],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = []

        def next_event(timeout: float) -> dict:
            ready, _, _ = select.select([events.stdout], [], [], timeout)
            assert ready, f"no event from `ocirun events` within {timeout} s; got {lines}"
            line = events.stdout.readline()
            assert line, f"`ocirun events` exited: {events.stderr.read().decode()}"
            lines.append(line)
            return json.loads(line)

        first = next_event(30)                   # events prints stats at once, then every --interval
        assert first["type"] == "stats" and first["id"] == box.cid
        open(os.path.join(box.out, "go"), "w").close()
        assert box.file("dd.rc", 60) == "137"    # 128 + SIGKILL
        oom = next_event(30)
        assert oom == {"type": "oom", "id": box.cid}
    finally:
        events.kill()
        events.communicate()
    oom_control = dict(line.split() for line in box.cg("memory", "memory.oom_control").splitlines())
    assert int(oom_control["oom_kill"]) >= 1
    assert box.status() == "running"             # only the hog died


def test_events_stats_output_shape(ocirun):
    res = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50}}
    box = launch(ocirun, "sleep 600 & : > /out/ready; exec sleep 600", resources=res)
    box.file("ready")
    wait_for(lambda: len(read(os.path.join(box.dirs["pids"], "cgroup.procs")).split()) == 2, what="2 processes")
    proc = box("events", "--stats", box.cid)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    ev = json.loads(lines[0])
    assert set(ev) == {"type", "id", "data"} and ev["type"] == "stats" and ev["id"] == box.cid
    data = ev["data"]
    for key in ("cpu", "memory", "pids", "blkio"):
        assert key in data, key
    assert data["pids"] == {"current": 2, "limit": 50}
    assert data["memory"]["usage"]["limit"] == 64 << 20 and data["memory"]["usage"]["usage"] > 0
    assert set(data["cpu"]["usage"]) >= {"total", "kernel", "user"} and data["cpu"]["usage"]["total"] > 0
    assert isinstance(data["memory"]["raw"], dict)
    # runc: --stats on a stopped container is an error
    box("kill", box.cid, "KILL", check=True)
    wait_for(lambda: box.status() == "stopped", what="stopped")
    proc = box("events", "--stats", box.cid)
    assert proc.returncode != 0 and "is not running" in proc.stderr


# The inner shell forks `sleep &` until the kernel refuses (EAGAIN: ash reports "can't fork");
# the outer shell then only uses builtins and exec: no fork of its own is needed any more.
FORK_UNTIL_REFUSED = ('sh -c \'i=0; while [ $i -lt 30 ]; do sleep 600 & i=$((i+1)); echo $i > /out/count; done\' '
                      '2>/out/err; echo $? > /out/rc; : > /out/ready; exec sleep 600')


def test_fork_fails_at_pids_max(ocirun):
    limit = 10
    box = launch(ocirun, FORK_UNTIL_REFUSED, resources={"pids": {"limit": limit}})
    assert box.cg("pids", "pids.max") == str(limit)
    box.file("ready")
    assert box.file("rc") != "0"
    assert "can't fork" in box.file("err")
    # outer sh + inner sh + the sleeps = the limit when the fork failed
    assert int(box.file("count")) == limit - 2
    assert int(box.cg("pids", "pids.current")) == limit - 1     # the inner shell has exited since
    assert int(read(os.path.join(box.dirs["pids"], "pids.events")).split()[1]) >= 1   # "max N"


def test_cpu_shares_quota_period_and_cpus(ocirun):
    res = {"cpu": {"shares": 512, "quota": 25000, "period": 50000, "cpus": "0", "mems": "0"}}
    box = launch(ocirun, dump("cpu/cpu.shares", "cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us",
                              "cpuset/cpuset.cpus", "cpuset/cpuset.mems",
                              then="grep Cpus_allowed_list /proc/self/status > /out/affinity; exec sleep 600"),
                 resources=res)
    host = {f"{c}/{f}": box.cg(c, f) for c, f in (("cpu", "cpu.shares"), ("cpu", "cpu.cfs_quota_us"),
                                                  ("cpu", "cpu.cfs_period_us"), ("cpuset", "cpuset.cpus"),
                                                  ("cpuset", "cpuset.mems"))}
    assert host == {"cpu/cpu.shares": "512", "cpu/cpu.cfs_quota_us": "25000", "cpu/cpu.cfs_period_us": "50000",
                    "cpuset/cpuset.cpus": "0", "cpuset/cpuset.mems": "0"}
    assert box.values() == host
    assert box.file("affinity").split() == ["Cpus_allowed_list:", "0"]


BLKIO_WEIGHT_FILES = [n for n in ("blkio.weight", "blkio.bfq.weight") if os.path.exists(f"/sys/fs/cgroup/blkio/{n}")]


def test_blkio_weight(ocirun):
    if not BLKIO_WEIGHT_FILES:      # no CFQ, and BFQ is not the scheduler of any disk (kernel-dependent)
        config = base_config(["true"])
        config["linux"]["resources"] = {"blockIO": {"weight": 300}}
        proc = ocirun("create", "-b", ocirun.bundle(config), f"{TAG}-blkw")
        assert proc.returncode != 0
        assert "linux.resources.blockIO.weight: cannot be applied" in proc.stderr
        return
    box = launch(ocirun, dump("blkio/blkio.bfq.weight", "blkio/blkio.weight"),
                 resources={"blockIO": {"weight": 300}}, start=False)
    names = [n for n in ("blkio.weight", "blkio.bfq.weight")
             if os.path.exists(os.path.join(box.dirs["blkio"], n))]
    assert names, "create succeeded although the host has no blkio weight file"
    assert box.cg("blkio", names[0]) in ("300", "default 300")
    box.start()
    assert box.values()[f"blkio/{names[0]}"] in ("300", "default 300")


def test_blkio_throttle_the_kernel_refuses_is_an_error_naming_the_field(ocirun):
    box_cfg = base_config(["true"])
    box_cfg["linux"]["resources"] = {"blockIO": {"throttleReadBpsDevice": [
        {"major": 4095, "minor": 4095, "rate": 1}]}}   # no such device: the kernel refuses it
    proc = ocirun("create", "-b", ocirun.bundle(box_cfg), f"{TAG}-blkerr")
    assert proc.returncode != 0
    assert "linux.resources.blockIO.throttleReadBpsDevice" in proc.stderr


def test_hugepage_limits(ocirun):
    if "hugetlb" not in V1_MOUNTED:
        config = base_config(["true"])
        config["linux"]["resources"] = {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]}
        proc = ocirun("create", "-b", ocirun.bundle(config), f"{TAG}-huge")
        assert proc.returncode != 0
        err = proc.stderr.strip()
        assert "linux.resources.hugepageLimits[0]" in err and "hugetlb" in err, err
        assert not tagged_cgroups() or all(f"{TAG}-huge" not in p for p in tagged_cgroups())
        return
    box = launch(ocirun, dump("hugetlb/hugetlb.2MB.limit_in_bytes"),
                 resources={"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
    assert box.cg("hugetlb", "hugetlb.2MB.limit_in_bytes") == str(4 << 20)
    assert box.values() == {"hugetlb/hugetlb.2MB.limit_in_bytes": str(4 << 20)}


# /dev/fuse: opening it needs no capability (unlike /dev/kmsg for reading), so only the device
# cgroup decides; it is not among the devices every container gets
FUSE_DEVICE = {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0}
OPEN_FUSE = ("if (: < /dev/fuse) 2>/out/err; then echo ok; else echo denied; fi > /out/open; "
             "if echo x > /dev/null; then echo ok; else echo denied; fi > /out/null; "
             ": > /out/ready; exec sleep 600")


def _with_fuse(config):
    config["linux"]["devices"] = [FUSE_DEVICE]


def test_device_in_linux_devices_but_not_allowed_is_denied_with_eperm(ocirun):
    box = launch(ocirun, OPEN_FUSE, edit=_with_fuse)
    box.file("ready")
    assert box.file("open") == "denied"
    assert "Operation not permitted" in box.file("err")
    assert box.file("null") == "ok"                     # the default devices stay allowed
    allowed = box.cg("devices", "devices.list").splitlines()
    assert "a *:* rwm" not in allowed and "c 1:3 rwm" in allowed
    assert not any(line.startswith("c 10:229 ") for line in allowed)


def test_device_allowed_in_resources_devices_can_be_opened(ocirun):
    res = {"devices": [{"allow": False, "access": "rwm"},
                       {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "r"}]}
    box = launch(ocirun, OPEN_FUSE, resources=res, edit=_with_fuse)
    assert box.file("open") == "ok", read(os.path.join(box.out, "err"))
    assert "c 10:229 r" in box.cg("devices", "devices.list").splitlines()


def test_device_denied_by_a_later_rule(ocirun):
    res = {"devices": [{"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                       {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "r"}]}
    box = launch(ocirun, OPEN_FUSE, resources=res, edit=_with_fuse)
    assert box.file("open") == "denied" and "Operation not permitted" in box.file("err")


# --- cgroup namespace and the /sys/fs/cgroup mount ------------------------------------------------

def test_cgroup_namespace_shows_the_container_cgroup_as_root(ocirun):
    box = launch(ocirun, dump("memory/memory.limit_in_bytes"), resources={"memory": {"limit": 48 << 20}})
    box.file("ready")
    inside = [line.split(":", 2) for line in box.file("proc_cgroup").splitlines()]
    assert inside and all(path == "/" for _, _, path in inside), inside
    # ... while the host sees a real path: the default one, ocirun/<id>[-<tag of --root>]
    assert box.dirs["memory"].endswith("/ocirun/" + default_cgroup_name(ocirun.root, box.cid))
    # the hierarchy mounted inside is the container's own cgroup: its limit shows at the mount root
    assert box.values() == {"memory/memory.limit_in_bytes": str(48 << 20)}


def test_without_cgroup_namespace_the_host_path_is_visible(ocirun):
    def edit(config):
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "cgroup"]
    box = launch(ocirun, dump("memory/memory.limit_in_bytes"), resources={"memory": {"limit": 48 << 20}},
                 edit=edit)
    box.file("ready")
    inside = dict(line.split(":", 2)[1:] for line in box.file("proc_cgroup").splitlines())
    assert inside["memory"].endswith("/ocirun/" + default_cgroup_name(ocirun.root, box.cid))
    # runc binds the container's own cgroup directories on /sys/fs/cgroup/<controller>
    assert box.values() == {"memory/memory.limit_in_bytes": str(48 << 20)}


def test_sys_fs_cgroup_is_read_only_inside(ocirun):
    script = ("for d in /sys/fs/cgroup /sys/fs/cgroup/memory /sys/fs/cgroup/pids; do "
              "if mkdir $d/x 2>/dev/null; then echo $d=rw; else echo $d=ro; fi; done > /out/values; "
              "grep ' /sys/fs/cgroup' /proc/self/mountinfo > /out/mounts; "
              "ls /sys/fs/cgroup > /out/ls; : > /out/ready; exec sleep 600")
    box = launch(ocirun, script)
    assert box.values() == {"/sys/fs/cgroup": "ro", "/sys/fs/cgroup/memory": "ro", "/sys/fs/cgroup/pids": "ro"}
    for line in box.file("mounts").splitlines():
        assert line.split()[5].split(",")[0] == "ro", line
    assert {"memory", "pids", "cpu", "devices", "freezer"} <= set(box.file("ls").split())


def test_sys_fs_cgroup_rw_when_the_config_says_so(ocirun):
    def edit(config):
        for m in config["mounts"]:
            if m["destination"] == "/sys/fs/cgroup":
                m["options"] = ["nosuid", "noexec", "nodev", "relatime", "rw"]
        config["process"]["capabilities"] = {k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")}
    script = ("if mkdir /sys/fs/cgroup/pids/sub; then echo ok; else echo fail; fi > /out/mkdir; "
              "rmdir /sys/fs/cgroup/pids/sub; : > /out/ready; exec sleep 600")
    box = launch(ocirun, script, edit=edit)
    box.file("ready")
    assert box.file("mkdir") == "ok"


# --- linux.cgroupsPath ---------------------------------------------------------------------------

def _own(ctrl: str) -> str:
    return host_dirs(os.getpid())[ctrl]


@pytest.mark.parametrize("kind", ["absolute", "relative", "default", "systemd"])
def test_cgroups_path_placement_and_removal(cgroup_parents, ocirun, kind):
    cid = f"{TAG}-path{kind}"
    extra, path = (), None
    if kind == "absolute":
        path = f"/{TAG}abs/{cid}"
        want = {c: os.path.join(mp, TAG + "abs", cid) for c, mp in (("memory", "/sys/fs/cgroup/memory"),
                                                                    ("pids", "/sys/fs/cgroup/pids"))}
    elif kind == "relative":
        path = f"{TAG}rel/{cid}"          # under the runtime's own cgroup (runc)
        want = {c: os.path.join(_own(c), TAG + "rel", cid) for c in ("memory", "pids")}
    elif kind == "default":
        leaf = default_cgroup_name(ocirun.root, cid)
        want = {c: os.path.join(_own(c), "ocirun", leaf) for c in ("memory", "pids")}
    else:
        extra = ("--systemd-cgroup",)
        path = f"{TAG}.slice:pfx:{cid}"  # systemd layout from the hierarchy root
        want = {c: f"/sys/fs/cgroup/{c}/{TAG}.slice/pfx-{cid}.scope" for c in ("memory", "pids")}
    box = launch(ocirun, ": > /out/ready; exec sleep 600", name=f"path{kind}", cgroups_path=path,
                 extra_global=extra, resources={"pids": {"limit": 33}})
    # the runtime leaves the parents it created (as runc): the test removes them
    cgroup_parents.extend(os.path.dirname(d) for d in box.dirs.values() if TAG in os.path.dirname(d))
    assert box.cid == cid
    for ctrl, d in want.items():
        assert box.dirs[ctrl] == d
        assert os.path.isdir(d) and str(box.pid) in read(os.path.join(d, "cgroup.procs")).split()
    assert read(os.path.join(want["pids"], "pids.max")) == "33"
    box("delete", "--force", cid, check=True)
    for d in box.dirs.values():
        assert not os.path.exists(d), d


def test_systemd_cgroup_with_a_bad_path_is_an_error(ocirun):
    config = base_config(["true"])
    config["linux"]["cgroupsPath"] = f"/{TAG}/bad"
    proc = ocirun("create", "-b", ocirun.bundle(config), f"{TAG}-sdbad", extra_global=("--systemd-cgroup",))
    assert proc.returncode != 0 and "linux.cgroupsPath" in proc.stderr and "slice:prefix:name" in proc.stderr


# --- pause / resume / update / ps / kill --all / delete --force -------------------------------------

TICKER = "i=0; while :; do i=$((i+1)); echo $i > /out/ticks; sleep 0.05; done"


def _ticks(box) -> int:
    try:
        return int(read(os.path.join(box.out, "ticks")) or 0)
    except (OSError, ValueError):
        return 0


def test_pause_freezes_and_resume_thaws(ocirun):
    box = launch(ocirun, TICKER)
    wait_for(lambda: _ticks(box) > 2, what="the ticker")
    box("pause", box.cid, check=True)
    assert box.cg("freezer", "freezer.state") == "FROZEN"
    assert box.status() == "paused"
    frozen_at = _ticks(box)
    time.sleep(0.5)
    assert _ticks(box) == frozen_at                  # nothing runs
    proc = box("pause", box.cid)                     # runc: pausing a paused container is an error
    assert proc.returncode != 0
    box("resume", box.cid, check=True)
    assert box.cg("freezer", "freezer.state") == "THAWED"
    assert box.status() == "running"
    wait_for(lambda: _ticks(box) > frozen_at + 2, what="ticks after resume")
    proc = box("resume", box.cid)
    assert proc.returncode != 0 and "not paused" in proc.stderr


WATCH = ("while :; do for f in memory/memory.limit_in_bytes pids/pids.max cpu/cpu.cfs_quota_us "
         "cpu/cpu.cfs_period_us; do echo \"$f=$(cat /sys/fs/cgroup/$f)\"; done > /out/v.new; "
         "mv /out/v.new /out/values; : > /out/ready; sleep 0.05; done")


def _inside(box) -> dict:
    box.file("ready")
    try:
        text = read(os.path.join(box.out, "values"))
    except FileNotFoundError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_update_memory_flag_is_visible_from_host_and_inside(ocirun):
    box = launch(ocirun, WATCH, resources={"memory": {"limit": 32 << 20}})
    assert box.cg("memory", "memory.limit_in_bytes") == str(32 << 20)
    box("update", "--memory", "64M", box.cid, check=True)
    assert box.cg("memory", "memory.limit_in_bytes") == str(64 << 20)
    wait_for(lambda: _inside(box).get("memory/memory.limit_in_bytes") == str(64 << 20), what="64M inside")
    # update does not touch what it was not given
    assert box.cg("pids", "pids.max") == "max"


def test_update_resources_json_on_stdin(ocirun):
    box = launch(ocirun, WATCH, resources={"pids": {"limit": 100}})
    res = {"memory": {"limit": 80 << 20}, "pids": {"limit": 42}, "cpu": {"quota": 30000, "period": 60000}}
    box("update", "--resources", "-", box.cid, input=json.dumps(res), check=True)
    host = {f"{c}/{f}": box.cg(c, f) for c, f in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max"),
                                                  ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us"))}
    assert host == {"memory/memory.limit_in_bytes": str(80 << 20), "pids/pids.max": "42",
                    "cpu/cpu.cfs_quota_us": "30000", "cpu/cpu.cfs_period_us": "60000"}
    wait_for(lambda: _inside(box) == host, what=f"the new values inside (want {host}, have {_inside(box)})")
    bad = box("update", "--resources", "-", box.cid, input="{not json")
    assert bad.returncode != 0 and "invalid JSON" in bad.stderr
    assert box.cg("pids", "pids.max") == "42"


def test_ps_json_lists_every_pid_of_the_container(ocirun):
    box = launch(ocirun, "sleep 600 & sleep 601 & : > /out/ready; exec sleep 602")
    box.file("ready")
    host = wait_for(lambda: (lambda p: p if len(p) == 3 else None)(
        sorted(int(p) for p in box.cg("pids", "cgroup.procs").split())), what="3 processes")
    proc = box("ps", "--format", "json", box.cid, check=True)
    assert sorted(json.loads(proc.stdout)) == host and box.pid in host
    table = box("ps", box.cid, check=True).stdout.splitlines()
    assert "PID" in table[0].split() and len(table) == 4


@pytest.mark.parametrize("pidns", [True, False], ids=["pidns", "hostpidns"])
def test_kill_all_kills_every_process(ocirun, pidns):
    def edit(config):
        if not pidns:   # without a pid namespace nothing else kills the others when pid 1 dies
            config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "pid"]
    script = "sleep 600 & (sleep 601 &) ; sh -c 'sleep 602 & wait' & : > /out/ready; wait"
    box = launch(ocirun, script, edit=edit, name=f"killall{int(pidns)}")
    box.file("ready")
    pids = wait_for(lambda: (lambda p: p if len(p) >= 5 else None)(
        [int(p) for p in box.cg("pids", "cgroup.procs").split()]), what="5 processes")
    box("kill", "--all", box.cid, "KILL", check=True)
    wait_for(lambda: not box.cg("pids", "cgroup.procs"), what="an empty cgroup")
    for pid in pids:
        wait_for(lambda: not os.path.exists(f"/proc/{pid}") or "Z" in read(f"/proc/{pid}/stat").split(")")[1][:3],
                 what=f"pid {pid} gone")
    wait_for(lambda: box.status() == "stopped", what="stopped")
    box("delete", box.cid, check=True)
    assert not any(os.path.exists(d) for c, d in box.dirs.items() if c and box.cid in d)


def test_delete_force_of_a_paused_container(ocirun):
    box = launch(ocirun, "sleep 600 & " + TICKER)
    wait_for(lambda: _ticks(box) > 1, what="the ticker")
    pids = [int(p) for p in box.cg("pids", "cgroup.procs").split()]
    box("pause", box.cid, check=True)
    assert box.status() == "paused"
    box("delete", "--force", box.cid, check=True)
    assert box.cid not in box("list", "-q").stdout.split()
    for c, d in box.dirs.items():
        if box.cid in d:
            assert not os.path.exists(d), d
    for pid in pids:
        wait_for(lambda: not os.path.exists(f"/proc/{pid}") or "Z" in read(f"/proc/{pid}/stat").split(")")[1][:3],
                 what=f"pid {pid} gone")


def test_kill_of_a_paused_container_is_accepted_and_it_stays_paused(ocirun):
    """kill accepts every live status without telling them apart (created, running, paused)."""
    box = launch(ocirun, TICKER)
    wait_for(lambda: _ticks(box) > 1, what="the ticker")
    box("pause", box.cid, check=True)
    box("kill", box.cid, "USR1", check=True)         # (pid 1 has no handler: ignored, as runc's)
    assert box.status() == "paused"
    box("delete", "--force", box.cid, check=True)


def test_delete_removes_the_cgroup_of_a_stopped_container(ocirun):
    box = launch(ocirun, "exit 0", resources={"memory": {"limit": 64 << 20}})
    dirs = [d for d in box.dirs.values() if box.cid in d]
    assert dirs
    wait_for(lambda: box.status() == "stopped", what="stopped")
    box("delete", box.cid, check=True)
    assert not [d for d in dirs if os.path.exists(d)]


def test_zz_no_cgroup_created_by_the_tests_is_left():
    """Runs last in this module: every test above has torn down its containers."""
    assert tagged_cgroups() == []
