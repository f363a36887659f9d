"""cgroups through the whole runtime on a pure cgroup v2 kernel (scripts/cgv2-lane.sh runs it in a VM).

A focused suite: few containers (everything is 15-40x slower in the emulated VM), each checking
several things. Limits are read from the host side of the cgroup (found from /proc/<pid>/cgroup)
and from inside through runc's default /sys/fs/cgroup mount (cgroup2, read-only, the container's
own cgroup as root); effects are observed too (OOM kill and its event, fork failing at pids.max,
the eBPF device filter answering EPERM, a frozen container that stops ticking). At the end no
cgroup with the test tag is left under /sys/fs/cgroup.

Skipped on cgroup v1 and hybrid hosts (tests/integration/test_cgroups_e2e.py covers those).
"""
import json
import os
import select
import subprocess
import time

import pytest

from ocirun.parent import default_cgroup_name
from tests.conftest import OCIRUN, base_config
from tests.integration.test_cgroups_e2e import (FORK_UNTIL_REFUSED, MOUNTS, TAG, _ticks,  # noqa: F401
                                                cgroup_parents, dump, launch, no_leftover_cgroups, read,
                                                tagged_cgroups, wait_for)

PURE_V2 = bool(MOUNTS) and all(fstype == "cgroup2" for _, _, fstype, _ in MOUNTS)
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not PURE_V2, reason="needs a pure cgroup v2 host (scripts/cgv2-lane.sh)")]

SLOW = 120.0   # seconds: the VM runs under software emulation


def controllers(box) -> set:
    return set(box.cg("", "cgroup.controllers").split())


def test_limits_are_written_and_visible_inside(ocirun):
    res = {"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
           "pids": {"limit": 20}, "cpu": {"shares": 512, "quota": 25000, "period": 50000}}
    files = ("memory.max", "memory.swap.max", "memory.low", "pids.max", "cpu.max", "cpu.weight")
    script = dump(*files, then="if mkdir /sys/fs/cgroup/x 2>/dev/null; then echo rw; else echo ro; fi > /out/ro; "
                               "exec sleep 600")
    box = launch(ocirun, script, resources=res)
    want = {"memory.max": str(64 << 20), "memory.swap.max": str(32 << 20), "memory.low": str(32 << 20),
            "pids.max": "20", "cpu.max": "25000 50000", "cpu.weight": "59"}   # shares 512 -> weight 59
    assert {f: box.cg("", f) for f in files} == want
    assert box.values(SLOW) == want
    assert box.file("proc_cgroup", SLOW) == "0::/"           # cgroup namespace: its own cgroup is the root
    assert box.file("ro", SLOW) == "ro"                       # /sys/fs/cgroup is mounted read-only
    assert box.dirs[""].endswith("/ocirun/" + default_cgroup_name(ocirun.root, box.cid))   # the default path
    assert {"memory", "pids", "cpu"} <= controllers(box)
    # update: a flag, then the spec's resources JSON on stdin
    box("update", "--memory", "80M", "--memory-swap", "-1", box.cid, check=True)
    assert (box.cg("", "memory.max"), box.cg("", "memory.swap.max")) == (str(80 << 20), "max")
    box("update", "--resources", "-", box.cid, input=json.dumps({"pids": {"limit": 7}, "cpu": {"quota": -1}}),
        check=True)
    assert (box.cg("", "pids.max"), box.cg("", "cpu.max")) == ("7", "max 50000")
    d = box.dirs[""]
    box("delete", "--force", box.cid, check=True)
    assert not os.path.exists(d)


def test_oom_kill_is_reported_by_events(ocirun):
    limit = 32 << 20
    script = ('while [ ! -e /out/go ]; do sleep 0.1; done; dd if=/dev/zero of=/dev/null bs=256M count=1 '
              '2>/out/dd.err; echo $? > /out/dd.rc; exec sleep 600')
    box = launch(ocirun, script, resources={"memory": {"limit": limit, "swap": limit}})
    assert (box.cg("", "memory.max"), box.cg("", "memory.swap.max")) == (str(limit), "0")
    events = subprocess.Popen(OCIRUN + ["--root", ocirun.root, "events", "--interval", "10m", box.cid],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def next_event() -> dict:
            ready, _, _ = select.select([events.stdout], [], [], SLOW)
            assert ready, "no event from `ocirun events`"
            line = events.stdout.readline()
            assert line, f"`ocirun events` exited: {events.stderr.read().decode()}"
            return json.loads(line)

        stats = next_event()
        assert stats["type"] == "stats" and stats["data"]["memory"]["usage"]["limit"] == limit
        assert stats["data"]["pids"]["current"] >= 1
        open(os.path.join(box.out, "go"), "w").close()
        assert box.file("dd.rc", SLOW) == "137"
        assert next_event() == {"type": "oom", "id": box.cid}
    finally:
        events.kill()
        events.communicate()
    ev = dict(line.split() for line in box.cg("", "memory.events").splitlines())
    assert int(ev["oom_kill"]) >= 1
    assert box.status() == "running"


def test_fork_fails_at_pids_max(ocirun):
    limit = 8
    box = launch(ocirun, FORK_UNTIL_REFUSED, resources={"pids": {"limit": limit}})
    assert box.cg("", "pids.max") == str(limit)
    box.file("ready", SLOW)
    assert "can't fork" in box.file("err")
    assert int(box.file("count")) == limit - 2
    assert int(dict(l.split() for l in box.cg("", "pids.events").splitlines())["max"]) >= 1


TICKER = "sleep 600 & i=0; while :; do i=$((i+1)); echo $i > /out/ticks; sleep 0.1; done"


def test_pause_resume_ps_and_delete_force_paused(cgroup_parents, ocirun):
    box = launch(ocirun, TICKER, cgroups_path=f"/{TAG}/pause")
    d = box.dirs[""]
    cgroup_parents.append(os.path.dirname(d))               # the parent the path named: ours
    assert d == f"/sys/fs/cgroup/{TAG}/pause"                 # an absolute cgroupsPath
    wait_for(lambda: _ticks(box) > 1, SLOW, "the ticker")
    box("pause", box.cid, check=True)
    assert box.cg("", "cgroup.freeze") == "1"
    assert dict(l.split() for l in box.cg("", "cgroup.events").splitlines())["frozen"] == "1"
    assert box.status() == "paused"
    pids = sorted(json.loads(box("ps", "--format", "json", box.cid, check=True).stdout))  # frozen: stable
    assert pids == sorted(int(p) for p in box.cg("", "cgroup.procs").split()) and len(pids) >= 2
    assert box.pid in pids
    at = _ticks(box)
    time.sleep(1.0)
    assert _ticks(box) == at
    box("resume", box.cid, check=True)
    assert box.cg("", "cgroup.freeze") == "0" and box.status() == "running"
    wait_for(lambda: _ticks(box) > at + 1, SLOW, "ticks after resume")
    box("pause", box.cid, check=True)
    box("delete", "--force", box.cid, check=True)           # a paused container: thawed and killed
    assert not os.path.exists(d)
    for pid in pids:
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), SLOW, f"pid {pid} gone")


def test_kill_all_with_systemd_cgroup_path(cgroup_parents, ocirun):
    def edit(config):   # without a pid namespace only the cgroup finds the other processes
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "pid"]
    box = launch(ocirun, "sleep 600 & (sleep 601 &); : > /out/ready; wait", edit=edit,
                 cgroups_path=f"{TAG}.slice:pfx:{TAG}-sd", extra_global=("--systemd-cgroup",))
    d = box.dirs[""]
    cgroup_parents.append(os.path.dirname(d))
    assert d == f"/sys/fs/cgroup/{TAG}.slice/pfx-{TAG}-sd.scope"
    box.file("ready", SLOW)
    wait_for(lambda: len(box.cg("", "cgroup.procs").split()) >= 3, SLOW, "3 processes")
    box("kill", "--all", box.cid, "KILL", check=True)
    wait_for(lambda: not box.cg("", "cgroup.procs"), SLOW, "an empty cgroup")
    wait_for(lambda: box.status() == "stopped", SLOW, "stopped")
    box("delete", box.cid, check=True)
    assert not os.path.exists(d)


def test_ebpf_device_filter(ocirun):
    def edit(config):
        config["linux"]["devices"] = [
            {"path": "/dev/kmsg2", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600},
            {"path": "/dev/fuse2", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600}]
    # /dev/kmsg opened write-only needs no capability: only the device filter decides
    res = {"devices": [{"allow": False, "access": "rwm"},
                       {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}]}
    script = ("(echo ocirun-cgv2-test > /dev/kmsg2) 2>/out/kmsg.err && echo ok > /out/kmsg "
              "|| echo denied > /out/kmsg; "
              "(: < /dev/fuse2) 2>/out/fuse.err; "
              "(echo x > /dev/null) && echo ok > /out/null; : > /out/ready; exec sleep 600")
    box = launch(ocirun, script, resources=res, edit=edit)
    box.file("ready", SLOW)
    assert box.file("kmsg") == "ok", read(os.path.join(box.out, "kmsg.err"))
    assert "Operation not permitted" in box.file("fuse.err")    # not in the list
    assert box.file("null") == "ok"                              # default devices


def test_zz_no_cgroup_created_by_the_tests_is_left():
    assert tagged_cgroups() == []
