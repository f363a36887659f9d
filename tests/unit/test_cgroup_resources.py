"""Table-driven tests of the pure cgroup code: resources -> writes (v1, v2), devices, paths."""
import struct

import pytest

from ocirun.errors import ConfigError
from ocirun.linux.cgroups import devices, paths
from ocirun.linux.cgroups import resources as r


def files(writes):
    return [(w.file, w.value) for w in writes]


V1_CASES = [
    ("memory limit", {"memory": {"limit": 1048576}}, [("memory.limit_in_bytes", "1048576")]),
    ("memory -1 implies swap -1", {"memory": {"limit": -1}},
     [("memory.limit_in_bytes", "-1"), ("memory.memsw.limit_in_bytes", "-1")]),
    ("memory 0 is unset", {"memory": {"limit": 0}}, []),
    ("memory swap", {"memory": {"limit": 100, "swap": 200}},
     [("memory.limit_in_bytes", "100"), ("memory.memsw.limit_in_bytes", "200")]),
    ("reservation kernel tcp", {"memory": {"reservation": 5, "kernel": 6, "kernelTCP": 7}},
     [("memory.soft_limit_in_bytes", "5"), ("memory.kmem.limit_in_bytes", "6"), ("memory.kmem.tcp.limit_in_bytes", "7")]),
    ("swappiness 0", {"memory": {"swappiness": 0}}, [("memory.swappiness", "0")]),
    ("oom killer", {"memory": {"disableOOMKiller": True, "useHierarchy": True}},
     [("memory.oom_control", "1"), ("memory.use_hierarchy", "1")]),
    ("oom killer false writes nothing", {"memory": {"disableOOMKiller": False}}, []),
    ("cpu", {"cpu": {"shares": 512, "period": 100000, "quota": 50000, "burst": 1000}},
     [("cpu.shares", "512"), ("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000"),
      ("cpu.cfs_burst_us", "1000")]),
    ("cpu quota -1", {"cpu": {"quota": -1}}, [("cpu.cfs_quota_us", "-1")]),
    ("cpu rt idle sets", {"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 950000, "idle": 1,
                                  "cpus": "0-1", "mems": "0"}},
     [("cpu.rt_period_us", "1000000"), ("cpu.rt_runtime_us", "950000"), ("cpu.idle", "1"),
      ("cpuset.cpus", "0-1"), ("cpuset.mems", "0")]),
    ("pids 0 is a limit", {"pids": {"limit": 0}}, [("pids.max", "0")]),
    ("pids -1 is max", {"pids": {"limit": -1}}, [("pids.max", "max")]),
    ("pids 5", {"pids": {"limit": 5}}, [("pids.max", "5")]),
    ("blkio", {"blockIO": {"weight": 500, "leafWeight": 300,
                           "weightDevice": [{"major": 8, "minor": 0, "weight": 400, "leafWeight": 200}],
                           "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                           "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}]}},
     [("blkio.weight", "500"), ("blkio.leaf_weight", "300"), ("blkio.weight_device", "8:0 400"),
      ("blkio.leaf_weight_device", "8:0 200"), ("blkio.throttle.read_bps_device", "8:0 600"),
      ("blkio.throttle.write_iops_device", "8:16 300")]),
    ("hugetlb", {"hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}]},
     [("hugetlb.2MB.limit_in_bytes", "209715200"), ("hugetlb.2MB.rsvd.limit_in_bytes", "209715200")]),
    ("network", {"network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]}},
     [("net_cls.classid", "1048577"), ("net_prio.ifpriomap", "eth0 500")]),
    ("rdma", {"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}},
     [("rdma.max", "mlx5_1 hca_handle=3 hca_object=10000")]),
]


@pytest.mark.parametrize("name,res,want", V1_CASES, ids=[c[0] for c in V1_CASES])
def test_v1_writes(name, res, want):
    assert files(r.v1_writes(res)) == want


V2_CASES = [
    ("memory -1 is max and implies swap max", {"memory": {"limit": -1}},
     [("memory.swap.max", "max"), ("memory.max", "max")]),
    ("swap is memory+swap", {"memory": {"limit": 100, "swap": 300}},
     [("memory.swap.max", "200"), ("memory.max", "100")]),
    ("swap equal to limit disables swap", {"memory": {"limit": 100, "swap": 100}},
     [("memory.swap.max", "0"), ("memory.max", "100")]),
    ("swap -1", {"memory": {"limit": 100, "swap": -1}}, [("memory.swap.max", "max"), ("memory.max", "100")]),
    ("reservation is memory.low", {"memory": {"reservation": 42}}, [("memory.low", "42")]),
    ("kernel -1 accepted", {"memory": {"kernel": -1, "useHierarchy": True}}, []),
    ("shares 1024 -> weight 100", {"cpu": {"shares": 1024}}, [("cpu.weight", "100")]),
    ("shares 2 -> weight 1", {"cpu": {"shares": 2}}, [("cpu.weight", "1")]),
    ("shares 262144 -> weight 10000", {"cpu": {"shares": 262144}}, [("cpu.weight", "10000")]),
    ("cpu.max quota period", {"cpu": {"quota": 50000, "period": 100000}}, [("cpu.max", "50000 100000")]),
    ("cpu.max quota -1", {"cpu": {"quota": -1}}, [("cpu.max", "max")]),
    ("cpu.max period only keeps max", {"cpu": {"period": 20000}}, [("cpu.max", "max 20000")]),
    ("burst idle cpuset", {"cpu": {"burst": 10, "idle": 1, "cpus": "0", "mems": "0"}},
     [("cpu.max.burst", "10"), ("cpu.idle", "1"), ("cpuset.cpus", "0"), ("cpuset.mems", "0")]),
    ("pids 0", {"pids": {"limit": 0}}, [("pids.max", "0")]),
    ("pids -1", {"pids": {"limit": -1}}, [("pids.max", "max")]),
    ("io", {"blockIO": {"weight": 10, "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}]}},
     [("io.bfq.weight", "10"), ("io.bfq.weight", "8:0 1000"), ("io.max", "8:0 rbps=600"), ("io.max", "8:16 wiops=300")]),
    ("hugetlb", {"hugepageLimits": [{"pageSize": "1GB", "limit": 0}]},
     [("hugetlb.1GB.max", "0"), ("hugetlb.1GB.rsvd.max", "0")]),
    ("rdma", {"rdma": {"rxe3": {"hcaObjects": 10000}}}, [("rdma.max", "rxe3 hca_object=10000")]),
    ("unified last", {"pids": {"limit": 3}, "unified": {"pids.max": "7", "cgroup.max.depth": "4"}},
     [("pids.max", "3"), ("pids.max", "7"), ("cgroup.max.depth", "4")]),
]


@pytest.mark.parametrize("name,res,want", V2_CASES, ids=[c[0] for c in V2_CASES])
def test_v2_writes(name, res, want):
    assert files(r.v2_writes(res)) == want


def test_v2_alternative_files_and_controllers():
    ws = r.v2_writes({"blockIO": {"weight": 500}, "unified": {"cgroup.freeze": "0"}})
    assert ws[0].alts == (("io.weight", str(1 + (500 - 10) * 9999 // 990)),)
    assert ws[1].controller == ""                  # core file: no controller needed
    assert r.v2_writes({"unified": {"memory.high": "1G"}})[0].controller == "memory"


def test_v2_period_only_keeps_current_quota():
    assert files(r.v2_writes({"cpu": {"period": 20000}}, {"cpu.max": "30000 100000"})) == [("cpu.max", "30000 20000")]


@pytest.mark.parametrize("shares,weight", [(0, 0), (1, 1), (2, 1), (512, 59), (1024, 100), (2048, 174),
                                           (262144, 10000), (10**6, 10000)])
def test_shares_to_weight(shares, weight):
    assert r.shares_to_weight(shares) == weight


@pytest.mark.parametrize("w,want", [(0, 0), (10, 1), (1000, 10000), (100, 910)])
def test_blkio_weight_to_io_weight(w, want):
    assert r.blkio_weight_to_io_weight(w) == want


ERRORS = [
    ("v1", {"unified": {"memory.max": "1"}}, "linux.resources.unified"),
    ("v1", {"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
    ("v1", {"memory": {"limit": -2}}, "linux.resources.memory.limit"),
    ("v1", {"memory": {"limit": "1G"}}, "linux.resources.memory.limit"),
    ("v1", {"cpu": {"quota": 100, "burst": 200}}, "linux.resources.cpu.burst"),
    ("v1", {"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize"),
    ("v1", {"rdma": {"mlx": {}}}, "linux.resources.rdma.mlx"),
    ("v1", {"devices": [{"allow": True, "type": "x", "access": "r"}]}, "linux.resources.devices[0].type"),
    ("v1", {"devices": [{"allow": True, "access": "rx"}]}, "linux.resources.devices[0].access"),
    ("v2", {"memory": {"swap": 100}}, "linux.resources.memory.swap"),
    ("v2", {"memory": {"limit": 200, "swap": 100}}, "linux.resources.memory.swap"),
    ("v2", {"memory": {"kernel": 100}}, "linux.resources.memory.kernel"),
    ("v2", {"memory": {"kernelTCP": 100}}, "linux.resources.memory.kernelTCP"),
    ("v2", {"memory": {"swappiness": 10}}, "linux.resources.memory.swappiness"),
    ("v2", {"memory": {"disableOOMKiller": True}}, "linux.resources.memory.disableOOMKiller"),
    ("v2", {"memory": {"useHierarchy": False}}, "linux.resources.memory.useHierarchy"),
    ("v2", {"cpu": {"realtimeRuntime": 5}}, "linux.resources.cpu.realtimeRuntime"),
    ("v2", {"blockIO": {"leafWeight": 5}}, "linux.resources.blockIO.leafWeight"),
    ("v2", {"network": {"classID": 1}}, "linux.resources.network"),
    ("v2", {"unified": {"../x": "1"}}, "linux.resources.unified.../x"),
    ("v2", {"unified": {"memory.max": 5}}, "linux.resources.unified.memory.max"),
]


@pytest.mark.parametrize("version,res,path", ERRORS, ids=[e[2] + "-" + e[0] for e in ERRORS])
def test_config_errors_name_the_field(version, res, path):
    with pytest.raises(ConfigError) as exc:
        (r.v1_writes if version == "v1" else r.v2_writes)(res)
    assert exc.value.path == path


def test_check_before_update():
    res = {"memory": {"limit": 1000, "checkBeforeUpdate": True}}
    for fn in (r.v1_writes, r.v2_writes):
        with pytest.raises(ConfigError, match="lower than the current usage"):
            fn(res, {"memory.usage": 5000})
        assert fn(res, {"memory.usage": 10})


# --- devices -------------------------------------------------------------------------------------

def test_device_policy_defaults_to_deny_plus_runc_allowed_devices():
    ws = r.v1_writes({}, with_devices=True)
    assert files(ws)[0] == ("devices.deny", "a")
    allowed = {v for f, v in files(ws)[1:] if f == "devices.allow"}
    for rule in ("c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm",
                 "c 136:* rwm", "c *:* m", "b *:* m"):
        assert rule in allowed
    assert r.v1_writes({}) == []          # an update without devices leaves them alone


def test_device_rules_applied_in_order():
    spec = [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
            {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    policy = devices.emulate(devices.rules_from_spec(spec)[:3])
    assert policy.default_allow is False
    assert policy.exceptions == {("c", 10, 229): "rw"}
    # the defaults come after the spec list, so /dev/null is allowed again in the full list (as runc)
    assert ("c", 1, 3) in devices.emulate(devices.rules_from_spec(spec)).exceptions


def test_device_allow_all_then_deny():
    policy = devices.emulate([devices.Rule("a", -1, -1, "rwm", True), devices.Rule("c", 1, 3, "w", False)])
    assert policy.default_allow and policy.exceptions == {("c", 1, 3): "w"}
    assert devices.v1_writes(policy, None) == [("devices.allow", "a"), ("devices.deny", "c 1:3 w")]


def test_device_update_writes_only_the_difference():
    current = devices.parse_devices_list("c 1:3 rwm\nc 1:5 rwm\nc 136:* rwm\n")
    target = devices.Policy(False, {("c", 1, 3): "rwm", ("c", 136, -1): "rw", ("b", 8, 0): "r"})
    assert devices.v1_writes(target, current) == [("devices.deny", "c 1:5 rwm"), ("devices.deny", "c 136:* m"),
                                                  ("devices.allow", "b 8:0 r")]
    assert devices.parse_devices_list("a *:* rwm\n") is None


def _run_bpf(prog: bytes, dev_type: str, major: int, minor: int, access: str) -> int:
    """A tiny interpreter of the instructions bpf_program emits, to check the logic without the kernel."""
    reg = [0] * 11
    ctx = ((sum(devices.BPF_DEVCG_ACC[c] for c in access) << 16) | (2 if dev_type == "c" else 1), major, minor)
    insns = [struct.unpack("<BBhi", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    pc = 0
    while True:
        code, regs, off, imm = insns[pc]
        dst, src = regs & 0xF, regs >> 4
        pc += 1
        if code == 0x61:
            reg[dst] = ctx[off // 4]
        elif code == 0x54:
            reg[dst] &= imm
        elif code == 0x74:
            reg[dst] >>= imm
        elif code == 0xBC:
            reg[dst] = reg[src]
        elif code == 0xB4:
            reg[dst] = imm
        elif code == 0x55:
            pc += off if reg[dst] != imm else 0
        elif code == 0x5D:
            pc += off if reg[dst] != reg[src] else 0
        elif code == 0x15:
            pc += off if reg[dst] == imm else 0
        elif code == 0x95:
            return reg[0]
        else:
            raise AssertionError(hex(code))


BPF_CASES = [
    ("c", 1, 3, "rw", 1), ("c", 1, 3, "m", 1), ("c", 1, 4, "rw", 0), ("c", 99, 1, "m", 1), ("b", 8, 0, "m", 1),
    ("b", 8, 0, "r", 0), ("c", 136, 7, "rw", 1), ("c", 10, 229, "r", 1), ("c", 10, 229, "w", 0),
]


@pytest.mark.parametrize("t,major,minor,access,want", BPF_CASES)
def test_bpf_program_enforces_the_policy(t, major, minor, access, want):
    spec = [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "r"}]
    prog = devices.bpf_program(devices.emulate(devices.rules_from_spec(spec)))
    assert _run_bpf(prog, t, major, minor, access) == want


def test_bpf_program_deny_list():
    policy = devices.emulate([devices.Rule("a", -1, -1, "rwm", True), devices.Rule("c", 1, 3, "w", False)])
    prog = devices.bpf_program(policy)
    assert _run_bpf(prog, "c", 1, 3, "r") == 1
    assert _run_bpf(prog, "c", 1, 3, "rw") == 0      # any denied bit denies (kernel v1 semantics)
    assert _run_bpf(prog, "c", 1, 5, "rw") == 1


# --- paths ---------------------------------------------------------------------------------------

HYBRID = """31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PURE_V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
OWN = "2:cpu,cpuacct:/user/a\n1:memory:/user/a\n0::/user.slice/sess.scope\n"


def test_detect_modes():
    assert paths.detect_mode(paths.parse_mountinfo(HYBRID)) == "v1"
    assert paths.detect_mode(paths.parse_mountinfo(PURE_V2)) == "v2"
    with pytest.raises(ConfigError):
        paths.detect_mode([])


@pytest.mark.parametrize("given,systemd,want", [
    (None, False, "ocirun/c1"), ("/a/b", False, "/a/b"), ("a/b/", False, "a/b"),
    ("machine.slice:libpod:c1", True, "/machine.slice/libpod-c1.scope"),
    ("a-b-c.slice:p:n", True, "/a.slice/a-b.slice/a-b-c.slice/p-n.scope"),
    ("", True, "/system.slice/ocirun-c1.scope"), ("-.slice:p:x.slice", True, "/x.slice"),
])
def test_container_path(given, systemd, want):
    assert paths.container_path(given, "c1", systemd) == want


@pytest.mark.parametrize("given,systemd", [("/a/../b", False), ("/", False), ("a:b", True), ("a--b.slice:p:n", True),
                                           ("x/y.slice:p:n", True)])
def test_container_path_errors(given, systemd):
    with pytest.raises(ConfigError) as exc:
        paths.container_path(given, "c1", systemd)
    assert exc.value.path == "linux.cgroupsPath"


def test_resolve_dirs():
    mounts = {m.key: m for m in paths.parse_mountinfo(HYBRID)}
    own = paths.parse_proc_cgroup(OWN)
    assert paths.resolve_dir(mounts["cpu,cpuacct"], "/x/y", own) == "/sys/fs/cgroup/cpu,cpuacct/x/y"
    assert paths.resolve_dir(mounts["memory"], "ocirun/c", own) == "/sys/fs/cgroup/memory/user/a/ocirun/c"
    assert paths.resolve_dir(mounts[""], "ocirun/c", own, parent_of_own=True) == \
        "/sys/fs/cgroup/unified/user.slice/ocirun/c"
    nested = paths.CgroupMount("/sys/fs/cgroup/memory", "/user", "cgroup", "memory")
    assert paths.resolve_dir(nested, "x", own) == "/sys/fs/cgroup/memory/a/x"


def test_new_manager_is_pure_and_round_trips(tmp_path):
    from ocirun.linux.cgroups import manager_from_dict, new_manager
    (tmp_path / "mi").write_text(HYBRID)
    (tmp_path / "cg").write_text(OWN)
    m = new_manager(None, "c1", mountinfo_path=str(tmp_path / "mi"), cgroup_path=str(tmp_path / "cg"))
    assert m.version == "v1" and m.dirs["memory"] == "/sys/fs/cgroup/memory/user/a/ocirun/c1"
    assert m.dir_of("cpuacct") == "/sys/fs/cgroup/cpu,cpuacct/user/a/ocirun/c1"
    assert manager_from_dict(m.to_dict()).to_dict() == m.to_dict()
    (tmp_path / "mi").write_text(PURE_V2)
    m2 = new_manager("/x", "c1", mountinfo_path=str(tmp_path / "mi"), cgroup_path=str(tmp_path / "cg"))
    assert m2.version == "v2" and m2.dir == "/sys/fs/cgroup/x"
    assert manager_from_dict(m2.to_dict()).to_dict() == m2.to_dict()


# --- ocirun update / events flag parsing (ocirun/cgroupcmds.py) ------------------------------------

@pytest.mark.parametrize("text,want", [("100", 100), ("10M", 10 << 20), ("10m", 10 << 20), ("1.5g", 3 << 29),
                                       ("512KiB", 512 << 10), ("2 GB", 2 << 30), ("1b", 1)])
def test_ram_in_bytes(text, want):
    from ocirun.cgroupcmds import ram_in_bytes
    assert ram_in_bytes(text) == want


@pytest.mark.parametrize("text", ["abc", "10X", "-5", "1.2.3M", ""])
def test_ram_in_bytes_errors(text):
    from ocirun.cgroupcmds import ram_in_bytes
    with pytest.raises(ValueError, match="invalid size"):
        ram_in_bytes(text)


def test_update_flags_to_resources():
    from ocirun.cgroupcmds import _UPDATE_ALIASES, _UPDATE_FLAGS, resources_from_flags
    from ocirun.cliparse import parse
    opts, pos = parse(["--memory", "10M", "--memory-swap", "-1", "--cpu-shares", "512", "--cpu-quota", "-1",
                       "--cpuset-cpus", "0", "--pids-limit", "0", "--blkio-weight", "300", "ctr"],
                      _UPDATE_FLAGS, _UPDATE_ALIASES)
    assert pos == ["ctr"]
    assert resources_from_flags(opts) == {"memory": {"limit": 10 << 20, "swap": -1},
                                          "cpu": {"shares": 512, "quota": -1, "cpus": "0"},
                                          "blockIO": {"weight": 300}, "pids": {"limit": 0}}
    assert resources_from_flags(parse(["x"], _UPDATE_FLAGS, _UPDATE_ALIASES)[0]) == {}


def test_update_flag_errors():
    from ocirun.cgroupcmds import _UPDATE_ALIASES, _UPDATE_FLAGS, resources_from_flags
    from ocirun.cliparse import UsageError, parse
    for argv, msg in ((["--memory", "abc"], "invalid value for memory: invalid size: 'abc'"),
                      (["--cpu-period", "-5"], "invalid value for cpu-period")):
        with pytest.raises(UsageError, match=msg):
            resources_from_flags(parse(argv + ["x"], _UPDATE_FLAGS, _UPDATE_ALIASES)[0])


@pytest.mark.parametrize("text,want", [("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0), ("1h", 3600.0)])
def test_parse_duration(text, want):
    from ocirun.cgroupcmds import parse_duration
    assert parse_duration(text) == want


def test_parse_duration_error():
    from ocirun.cgroupcmds import parse_duration
    from ocirun.cliparse import UsageError
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration("5")
