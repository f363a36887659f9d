"""config-linux.md "Namespaces" (and hostname, domainname, timeOffsets, netDevices, sysctl) end to end.

Each test is named after the MUST it checks. Containers are real; they are inspected from the host
(/proc/<pid>/ns/*) and from inside with busybox. Everything a test makes on the host (network
devices) is removed in a finally block.
"""
import os
import re
import secrets
import subprocess
import time

import pytest

from tests.conftest import OCIRUN, base_config

pytestmark = pytest.mark.root


def cid(name: str) -> str:
    """Container ids unique to this test session (cgroups given by path, hooks' files and the
    like then never meet another concurrent run's)."""
    return f"{name}-{os.getpid()}"


_cid_default = cid

PROC_NAME = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt", "user": "user",
             "cgroup": "cgroup", "time": "time"}
USERNS_MAPS = {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
               "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}


def config_with(args, namespaces=None, **linux):
    config = base_config(args)
    if namespaces is not None:
        config["linux"]["namespaces"] = namespaces
    config["linux"].update(linux)
    return config


def ns_of(pid, kind):
    return os.readlink(f"/proc/{pid}/ns/{PROC_NAME[kind]}")


def host_ns(kind):
    # time: /proc/self/ns/time is the namespace we are in (time_for_children may differ, not ours)
    return os.readlink(f"/proc/self/ns/{PROC_NAME[kind]}")


def run_detached(ocirun, config, cid):
    ocirun("run", "-d", "-b", ocirun.bundle(config), cid, check=True)
    return ocirun.state(cid)["pid"]


def wait_file(path, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = open(path).read()
            if text:
                return text
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def err(proc):
    """stderr with the log format's quoting undone (msg="linux.sysctl[\\"x\\"]: ...")."""
    return proc.stderr.replace('\\"', '"')


def run_ok(ocirun, config, cid=_cid_default("c1")):
    proc = ocirun.run_output(config, cid)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# --- new namespaces ------------------------------------------------------------------------------

ALL_TYPES = ["pid", "network", "ipc", "uts", "mount", "user", "cgroup", "time"]


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_a_namespace_without_path_is_new_and_differs_from_the_runtime_s(ocirun, kind):
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]
    extra = {}
    if kind in ("user", "time"):
        namespaces.append({"type": kind})
    if kind == "user":
        extra = USERNS_MAPS
    config = config_with(["sh", "-c", f"readlink /proc/self/ns/{PROC_NAME[kind]} > /tmp/ns; exec sleep 100"],
                         namespaces, **extra)
    pid = run_detached(ocirun, config, cid("c1"))
    assert ns_of(pid, kind) != host_ns(kind)
    # the container's own view (written to its /tmp, read through /proc/<pid>/root) agrees
    inside = wait_file(f"/proc/{pid}/root/tmp/ns")
    assert inside.strip() == ns_of(pid, kind)


@pytest.mark.parametrize("kind", ["pid", "network", "ipc", "uts", "cgroup"])
def test_a_namespace_type_not_listed_is_inherited_from_the_runtime(ocirun, kind):
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup") if t != kind]
    config = config_with(["sleep", "100"], namespaces)
    if kind == "uts":
        config.pop("hostname")
    pid = run_detached(ocirun, config, cid("c1"))
    assert ns_of(pid, kind) == host_ns(kind)
    assert ns_of(pid, "mount") != host_ns("mount")


def test_the_container_process_is_pid_1_of_its_new_pid_namespace(ocirun):
    out = run_ok(ocirun, base_config(["sh", "-c", "echo $$; cat /proc/self/status | grep ^NSpid"]))
    lines = out.splitlines()
    assert lines[0] == "1"
    assert lines[1].split() == ["NSpid:", "2"]      # the container's /proc: only its own pid namespace
    pid = run_detached(ocirun, base_config(["sleep", "100"]), cid("c2"))
    # from the host: NSpid lists the pid in every namespace from the host's down, the last is 1
    nspid = [line for line in open(f"/proc/{pid}/status") if line.startswith("NSpid:")][0].split()
    assert nspid[1:] == [str(pid), "1"], nspid


def test_joining_network_ipc_uts_by_path_shares_them_with_the_target_as_a_pod(ocirun):
    infra = base_config(["sleep", "100"])
    infra["hostname"] = "pod-infra"
    infra_pid = run_detached(ocirun, infra, cid("infra"))
    joined = [{"type": "pid"}, {"type": "mount"}, {"type": "cgroup"}] + [
        {"type": t, "path": f"/proc/{infra_pid}/ns/{PROC_NAME[t]}"} for t in ("network", "ipc", "uts")]
    config = config_with(["sleep", "100"], joined)
    config.pop("hostname")          # the uts namespace is the infra container's: not ours to rename
    pid = run_detached(ocirun, config, cid("member"))
    for kind in ("network", "ipc", "uts"):
        assert ns_of(pid, kind) == ns_of(infra_pid, kind), kind
        assert ns_of(pid, kind) != host_ns(kind), kind
    for kind in ("pid", "mount", "cgroup"):
        assert ns_of(pid, kind) != ns_of(infra_pid, kind), kind
    # from inside: the same hostname as the infra container
    member_run = config_with(["hostname"], joined)
    member_run.pop("hostname")
    assert run_ok(ocirun, member_run, cid("m2")).strip() == "pod-infra"


def test_joining_the_pid_namespace_by_path_runs_the_process_beside_the_target(ocirun):
    infra_pid = run_detached(ocirun, base_config(["sleep", "100"]), cid("infra"))
    namespaces = [{"type": "pid", "path": f"/proc/{infra_pid}/ns/pid"}, {"type": "mount"}, {"type": "network"},
                  {"type": "ipc"}, {"type": "uts"}]
    config = config_with(["sh", "-c", "echo $$; ps -o pid,comm"], namespaces)
    out = run_ok(ocirun, config)
    lines = out.splitlines()
    assert lines[0] != "1"                      # pid 1 of that namespace is the infra's sleep
    assert re.search(r"^\s*1\s+sleep$", out, re.M), out


def test_joining_a_namespace_of_the_wrong_type_is_an_error_naming_the_entry(ocirun):
    infra_pid = run_detached(ocirun, base_config(["sleep", "100"]), cid("infra"))
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    namespaces.append({"type": "network", "path": f"/proc/{infra_pid}/ns/ipc"})
    proc = ocirun("create", "-b", ocirun.bundle(config_with(["true"], namespaces)), cid("bad"))
    assert proc.returncode == 1
    assert "linux.namespaces[4].path" in proc.stderr, proc.stderr
    assert not os.path.exists(os.path.join(ocirun.root, cid("bad")))


# --- network namespace ---------------------------------------------------------------------------

def test_loopback_is_up_in_a_new_network_namespace(ocirun):
    out = run_ok(ocirun, base_config(["sh", "-c", "cat /sys/class/net/lo/flags; ls /sys/class/net; ip addr show lo"]))
    lines = out.splitlines()
    assert int(lines[0], 16) & 0x1, out           # IFF_UP
    assert lines[1].split() == ["lo"]             # nothing of the host's
    assert "127.0.0.1/8" in out and "UP" in out


def test_loopback_answers_inside_a_new_network_namespace(ocirun):
    # a listener and a client over 127.0.0.1: works only if lo is up
    # the client retries until the listener is up (no fixed sleep: under load 0.3 s was not enough).
    # The listener's stdin stays open (sleep |): busybox's nc stops at EOF on its stdin, and with
    # /dev/null it could stop before reading what the client sent (1 run in 10 printed nothing);
    # then poll for the data rather than wait for the listener.
    out = run_ok(ocirun, base_config(["sh", "-c", "sleep 30 | nc -l -p 7777 > /tmp/got & "
                                                  "for i in $(seq 100); do echo hello | nc -w 2 127.0.0.1 7777 && break; "
                                                  "sleep 0.1; done; "
                                                  "for i in $(seq 100); do grep -q hello /tmp/got && break; sleep 0.1; done; "
                                                  "cat /tmp/got"]))
    assert out.strip().endswith("hello"), out


# --- uts -----------------------------------------------------------------------------------------

def test_hostname_and_domainname_are_set_in_the_new_uts_namespace_only(ocirun):
    host_name = os.uname().nodename
    config = base_config(["sh", "-c", "hostname; uname -n; cat /proc/sys/kernel/domainname"])
    config["hostname"] = "box-a"
    config["domainname"] = "example.test"
    assert run_ok(ocirun, config).splitlines() == ["box-a", "box-a", "example.test"]
    assert os.uname().nodename == host_name
    assert open("/proc/sys/kernel/domainname").read().strip() != "example.test"


def test_hostname_without_a_new_uts_namespace_is_refused(ocirun):
    config = config_with(["true"], [{"type": t} for t in ("pid", "network", "ipc", "mount")])
    config["hostname"] = "nope"
    proc = ocirun("create", "-b", ocirun.bundle(config), cid("c1"))
    assert proc.returncode == 1 and "hostname" in proc.stderr and "UTS" in proc.stderr


# --- time namespace ------------------------------------------------------------------------------

def test_time_namespace_offsets_shift_monotonic_and_boottime_clocks(ocirun):
    day = 86400
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "time")]
    config = config_with(["sh", "-c", "cat /proc/uptime; cat /proc/self/timens_offsets"], namespaces,
                         timeOffsets={"monotonic": {"secs": 7 * day, "nanosecs": 0},
                                      "boottime": {"secs": day, "nanosecs": 0}})
    before = time.clock_gettime(time.CLOCK_BOOTTIME)
    out = run_ok(ocirun, config)
    after = time.clock_gettime(time.CLOCK_BOOTTIME)
    lines = out.splitlines()
    uptime = float(lines[0].split()[0])            # /proc/uptime is CLOCK_BOOTTIME
    assert before + day - 1 <= uptime <= after + day + 1, (before, uptime, after)
    offsets = {line.split()[0]: int(line.split()[1]) for line in lines[1:]}
    assert offsets == {"monotonic": 7 * day, "boottime": day}
    # the host's clocks are unchanged
    assert abs(float(open("/proc/uptime").read().split()[0]) - time.clock_gettime(time.CLOCK_BOOTTIME)) < 1


def test_time_offsets_without_a_time_namespace_are_refused(ocirun):
    config = base_config(["true"])
    config["linux"]["timeOffsets"] = {"boottime": {"secs": 10}}
    proc = ocirun("create", "-b", ocirun.bundle(config), cid("c1"))
    assert proc.returncode == 1 and "linux.timeOffsets" in proc.stderr


# --- linux.netDevices ----------------------------------------------------------------------------

def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def veth():
    """A veth pair on the host: (the end to move, its peer left on the host); deleted afterwards."""
    suffix = secrets.token_hex(3)
    a, b = f"octa{suffix}", f"octb{suffix}"
    _ip("link", "add", a, "type", "veth", "peer", "name", b)
    try:
        _ip("addr", "add", "10.199.77.1/24", "dev", a)
        yield a, b
    finally:
        _ip("link", "del", a, check=False)
        _ip("link", "del", b, check=False)


def _wait_gone(name, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ip("link", "show", name, check=False).returncode != 0:
            return True
        time.sleep(0.05)
    return False


def test_net_devices_are_moved_into_the_container_renamed_up_with_their_addresses(ocirun, veth):
    a, b = veth
    config = base_config(["sleep", "100"])
    config["linux"]["netDevices"] = {a: {"name": "ctr0"}}
    pid = run_detached(ocirun, config, cid("c1"))
    # gone from the host, present in the container's netns
    assert _ip("link", "show", a, check=False).returncode != 0
    inside = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-o", "addr", "show", "ctr0"],
                            capture_output=True, text=True, check=True).stdout
    assert "10.199.77.1/24" in inside
    links = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-o", "link", "show", "ctr0"],
                           capture_output=True, text=True, check=True).stdout
    assert "UP" in links.split(">")[0]
    ocirun("delete", "--force", cid("c1"), check=True)
    # a virtual device dies with its namespace (physical ones would return to the host): the veth
    # pair is destroyed, the peer left on the host included; nothing is left named like the config.
    assert _wait_gone(b), "veth peer still on the host after delete"
    assert _ip("link", "show", "ctr0", check=False).returncode != 0


def test_net_devices_shows_the_device_from_inside_the_container(ocirun, veth):
    a, _ = veth
    config = base_config(["sh", "-c", "ls /sys/class/net | sort; ip -o addr show ctr0"])
    config["linux"]["netDevices"] = {a: {"name": "ctr0"}}
    out = run_ok(ocirun, config)
    assert out.splitlines()[:2] == ["ctr0", "lo"]
    assert "10.199.77.1/24" in out


def test_a_missing_net_device_fails_create_and_leaves_nothing(ocirun):
    config = base_config(["true"])
    config["linux"]["netDevices"] = {"octnosuch0": {}}
    proc = ocirun("create", "-b", ocirun.bundle(config), cid("c1"))
    assert proc.returncode == 1
    assert 'linux.netDevices.octnosuch0' in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not os.path.exists(os.path.join(ocirun.root, cid("c1")))


def test_net_devices_without_a_new_network_namespace_are_refused(ocirun, veth):
    a, _ = veth
    config = config_with(["true"], [{"type": t} for t in ("pid", "ipc", "uts", "mount")])
    config["linux"]["netDevices"] = {a: {}}
    proc = ocirun("create", "-b", ocirun.bundle(config), cid("c1"))
    assert proc.returncode == 1 and "linux.netDevices" in proc.stderr
    assert _ip("link", "show", a, check=False).returncode == 0     # untouched


# --- sysctl --------------------------------------------------------------------------------------

def test_sysctl_is_applied_in_the_container_s_ipc_and_network_namespaces_only(ocirun):
    host_shmmax = open("/proc/sys/kernel/shmmax").read().strip()
    host_fwd = open("/proc/sys/net/ipv4/ip_forward").read().strip()
    want_fwd = "0" if host_fwd == "1" else "1"
    config = base_config(["sh", "-c", "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward"])
    config["linux"]["sysctl"] = {"kernel.shmmax": "123456789", "net.ipv4.ip_forward": want_fwd}
    assert run_ok(ocirun, config).split() == ["123456789", want_fwd]
    assert open("/proc/sys/kernel/shmmax").read().strip() == host_shmmax
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == host_fwd


@pytest.mark.parametrize("key,value", [("vm.swappiness", "10"), ("kernel.panic", "1"), ("fs.file-max", "1000")])
def test_a_sysctl_that_is_not_namespaced_is_refused(ocirun, key, value):
    config = base_config(["true"])
    config["linux"]["sysctl"] = {key: value}
    proc = ocirun("create", "-b", ocirun.bundle(config), cid("c1"))
    assert proc.returncode == 1
    assert f'linux.sysctl["{key}"]' in err(proc) and "not a namespaced sysctl" in err(proc), proc.stderr
    assert not os.path.exists(os.path.join(ocirun.root, cid("c1")))


def test_a_net_sysctl_without_a_new_network_namespace_is_refused(ocirun):
    config = config_with(["true"], [{"type": t} for t in ("pid", "ipc", "uts", "mount")])
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    proc = ocirun("create", "-b", ocirun.bundle(config), cid("c1"))
    assert proc.returncode == 1 and 'linux.sysctl["net.ipv4.ip_forward"]' in err(proc), proc.stderr


def test_an_unknown_sysctl_in_a_namespace_is_an_error_naming_it(ocirun):
    config = base_config(["true"])
    config["linux"]["sysctl"] = {"net.ipv4.no_such_knob": "1"}
    proc = ocirun("create", "-b", ocirun.bundle(config), cid("c1"))
    assert proc.returncode == 1
    assert "net.ipv4.no_such_knob" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not os.path.exists(os.path.join(ocirun.root, cid("c1")))


@pytest.mark.parametrize("kind", ["time", "cgroup", "ipc"])
def test_joining_a_namespace_by_path_puts_the_process_in_it(ocirun, kind):
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]
    if kind == "time":
        namespaces.append({"type": "time"})
    first = config_with(["sleep", "100"], namespaces)
    if kind == "time":
        first["linux"]["timeOffsets"] = {"boottime": {"secs": 86400}}
    target = run_detached(ocirun, first, cid("first"))
    joined = [n for n in namespaces if n["type"] != kind] + [{"type": kind, "path": f"/proc/{target}/ns/{PROC_NAME[kind]}"}]
    config = config_with(["sh", "-c", "cat /proc/uptime > /tmp/up; exec sleep 100"], joined)
    pid = run_detached(ocirun, config, cid("second"))
    assert ns_of(pid, kind) == ns_of(target, kind) != host_ns(kind)
    if kind == "time":   # the offsets of the joined namespace apply
        assert float(wait_file(f"/proc/{pid}/root/tmp/up").split()[0]) > time.clock_gettime(time.CLOCK_BOOTTIME) + 86000


# --- mount namespace inherited or joined by path (runtime-tools linux_ns_itype, linux_ns_path) ----

def _mounts_under(mountinfo_text, prefix, with_options=False):
    """{mount point: fstype (or (fstype, per-mount options))} of the mounts at or under `prefix`
    in a mountinfo text (the last one mounted on each point)."""
    out = {}
    for line in mountinfo_text.splitlines():
        fields = line.split()
        point = fields[4].replace("\\040", " ")
        fstype = fields[fields.index("-") + 1]
        if point == prefix or point.startswith(prefix + "/"):
            out[point] = (fstype, fields[5].split(",")) if with_options else fstype
    return out


@pytest.fixture
def private_mntns_sleeper():
    """A process in a private mount namespace of its own (a copy of ours), killed at the end."""
    procs = []

    def start():
        proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "1000"],
                                start_new_session=True)
        procs.append(proc)
        deadline = time.monotonic() + 5
        while ns_of(proc.pid, "mount") == host_ns("mount"):     # until unshare has exec'd sleep
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return proc.pid
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_without_a_mount_namespace_the_runtime_s_is_inherited_and_the_mounts_are_made_there(ocirun):
    # The runtime runs in a private mount namespace of this test's own (unshare), so what the
    # container mounts there never reaches the host's table.
    config = config_with(["sleep", "100"], [{"type": t} for t in ("pid", "network", "ipc", "uts", "cgroup")])
    bundle = ocirun.bundle(config)
    rootfs = os.path.realpath(os.path.join(bundle, "rootfs"))
    out = os.path.join(ocirun.tmp, "unshare.out")
    with open(out, "w") as f:   # a file: the container's init keeps the stdout it inherited open
        subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'readlink /proc/self/ns/mnt && exec "$@"', "sh", *OCIRUN, "--root", ocirun.root,
                        "create", "-b", bundle, cid("c1")], stdout=f, stderr=subprocess.STDOUT, check=False)
    text = open(out).read()
    pid = ocirun.state(cid("c1"))["pid"]
    assert ns_of(pid, "mount") == text.splitlines()[0] != host_ns("mount"), text
    # the config's mounts and masks were made in that namespace, under the rootfs; the init chrooted
    seen = _mounts_under(subprocess.run(["nsenter", "-t", str(pid), "-m", "cat", "/proc/self/mountinfo"],
                                        capture_output=True, text=True, check=True).stdout, rootfs)
    assert seen[rootfs + "/proc"] == "proc" and seen[rootfs + "/dev"] == "tmpfs" and rootfs + "/proc/acpi" in seen
    # root.readonly (base_config's) made the container's own bind of the rootfs read-only, nothing else
    info = subprocess.run(["nsenter", "-t", str(pid), "-m", "cat", "/proc/self/mountinfo"],
                          capture_output=True, text=True, check=True).stdout
    assert "ro" in _mounts_under(info, rootfs, with_options=True)[rootfs][1]
    assert subprocess.run(["nsenter", "-t", str(pid), "-m", "touch", os.path.join(ocirun.tmp, "rw")]).returncode == 0
    assert os.stat(f"/proc/{pid}/root/bin/sh").st_ino == os.stat(rootfs + "/bin/sh").st_ino
    assert _mounts_under(open("/proc/self/mountinfo").read(), rootfs) == {}
    ocirun("start", cid("c1"), check=True)
    assert ocirun.state(cid("c1"))["status"] == "running"


def test_a_mount_namespace_joined_by_path_gets_the_mounts_and_the_process(ocirun, private_mntns_sleeper):
    target = private_mntns_sleeper()
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "cgroup")]
    namespaces.append({"type": "mount", "path": f"/proc/{target}/ns/mnt"})
    config = config_with(["sh", "-c", "grep -c ' /proc ' /proc/self/mountinfo > /tmp/n; exec sleep 100"], namespaces)
    bundle = ocirun.bundle(config)
    rootfs = os.path.realpath(os.path.join(bundle, "rootfs"))
    ocirun("run", "-d", "-b", bundle, cid("c1"), check=True)
    pid = ocirun.state(cid("c1"))["pid"]
    assert ns_of(pid, "mount") == ns_of(target, "mount") != host_ns("mount")
    seen = _mounts_under(open(f"/proc/{target}/mountinfo").read(), rootfs)
    assert seen[rootfs + "/proc"] == "proc" and seen[rootfs + "/tmp"] == "tmpfs"
    assert wait_file(f"/proc/{pid}/root/tmp/n").strip() == "1"     # the container's own view
    assert _mounts_under(open("/proc/self/mountinfo").read(), rootfs) == {}


def test_hostname_and_domainname_are_set_in_a_uts_namespace_joined_by_path(ocirun):
    target = subprocess.Popen(["unshare", "--uts", "sleep", "1000"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while ns_of(target.pid, "uts") == host_ns("uts"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        host_name = os.uname().nodename
        namespaces = [{"type": t} for t in ("pid", "network", "ipc", "mount")]
        namespaces.append({"type": "uts", "path": f"/proc/{target.pid}/ns/uts"})
        config = config_with(["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"], namespaces)
        config["hostname"] = "joined-box"
        config["domainname"] = "joined.test"
        assert run_ok(ocirun, config).splitlines() == ["joined-box", "joined.test"]
        seen = subprocess.run(["nsenter", "-t", str(target.pid), "-u", "hostname"], capture_output=True,
                              text=True, check=True).stdout.strip()
        assert seen == "joined-box" and os.uname().nodename == host_name
    finally:
        target.kill()
        target.wait()


def test_hostname_in_the_runtime_s_own_uts_namespace_joined_by_path_is_refused(ocirun):
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "mount")]
    namespaces.append({"type": "uts", "path": f"/proc/{os.getpid()}/ns/uts"})
    config = config_with(["true"], namespaces)
    config["hostname"] = "nope"
    proc = ocirun("create", "-b", ocirun.bundle(config), cid("c1"))
    assert proc.returncode == 1 and "hostname" in proc.stderr and "UTS" in proc.stderr
