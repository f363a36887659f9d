"""config-linux.md "User namespace mappings" end to end, with a rootfs owned by the mapped root.

The shared test rootfs is owned by host uid 0, which is unmapped (nobody) in a user namespace that maps
container 0 to host 100000; a useful user-namespaced container needs its rootfs owned by 100000. So
this module builds one with `bundles/build-rootfs.sh --owner 100000:100000` in a world-traversable temp
dir (the container's root, host uid 100000, must be able to reach it), removed at the end.
"""
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import pytest

from tests.conftest import REPO, base_config
from tests.integration.test_errors import is_ocirun_init

pytestmark = pytest.mark.root


def cid(name: str) -> str:
    """Container ids unique to this test session (cgroups given by path, hooks' files and the
    like then never meet another concurrent run's)."""
    return f"{name}-{os.getpid()}"


_cid_default = cid

HOST_BASE = 100000
SIZE = 65536
MAPS = {"uidMappings": [{"containerID": 0, "hostID": HOST_BASE, "size": SIZE}],
        "gidMappings": [{"containerID": 0, "hostID": HOST_BASE, "size": SIZE}]}


@pytest.fixture(scope="module")
def userns_rootfs():
    base = tempfile.mkdtemp(prefix="ocirun-userns-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        subprocess.run(["bash", os.path.join(REPO, "bundles", "build-rootfs.sh"), "--owner",
                        f"{HOST_BASE}:{HOST_BASE}", base], check=True, stdout=subprocess.DEVNULL)
        yield os.path.join(base, "rootfs")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def share():
    """A host dir owned by host root, reachable by the container's root (host uid 100000)."""
    path = tempfile.mkdtemp(prefix="ocirun-share-", dir="/tmp")
    try:
        os.chmod(path, 0o755)
        yield pathlib.Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def userns_config(args, readonly=True, **linux):
    config = base_config(args)
    config["root"]["readonly"] = readonly
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"].update(MAPS)
    config["linux"].update(linux)
    return config


def make_bundle(ocirun, rootfs, config):
    ocirun.counter += 1
    path = os.path.join(ocirun.tmp, f"ubundle{ocirun.counter}")
    os.makedirs(path)
    os.symlink(rootfs, os.path.join(path, "rootfs"))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


def run_ok(ocirun, rootfs, config, cid=_cid_default("u1")):
    proc = ocirun("run", "-b", make_bundle(ocirun, rootfs, config), cid)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def run_detached(ocirun, rootfs, config, cid):
    ocirun("run", "-d", "-b", make_bundle(ocirun, rootfs, config), cid, check=True)
    return ocirun.state(cid)["pid"]


def status_ids(pid, key):
    return [line.split()[1:] for line in open(f"/proc/{pid}/status") if line.startswith(key + ":")][0]


def test_the_rootfs_built_with_owner_is_owned_by_the_mapped_root(userns_rootfs):
    for rel in ("", "bin/busybox", "etc/passwd", "tmp"):
        st = os.lstat(os.path.join(userns_rootfs, rel))
        assert (st.st_uid, st.st_gid) == (HOST_BASE, HOST_BASE), rel
    st = os.stat(os.path.join(userns_rootfs, "home/user"))
    assert (st.st_uid, st.st_gid) == (HOST_BASE + 1000, HOST_BASE + 1000)


def test_uid_and_gid_mappings_are_written_and_seen_from_the_host_and_inside(ocirun, userns_rootfs):
    config = userns_config(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map > /tmp/maps; exec sleep 100"])
    pid = run_detached(ocirun, userns_rootfs, config, cid("u1"))
    for name in ("uid_map", "gid_map"):
        assert open(f"/proc/{pid}/{name}").read().split() == ["0", str(HOST_BASE), str(SIZE)]
    assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
    # container root is host uid 100000
    assert status_ids(pid, "Uid") == [str(HOST_BASE)] * 4
    assert status_ids(pid, "Gid") == [str(HOST_BASE)] * 4
    # inside: read through the container's own root
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not os.path.exists(f"/proc/{pid}/root/tmp/maps"):
        time.sleep(0.02)
    assert open(f"/proc/{pid}/root/tmp/maps").read().split() == ["0", str(HOST_BASE), str(SIZE)] * 2


def test_inside_the_user_namespace_the_process_is_root_and_owns_the_rootfs(ocirun, userns_rootfs):
    out = run_ok(ocirun, userns_rootfs, userns_config(["sh", "-c", "id -u; id -g; stat -c '%u:%g' / /bin/busybox"]))
    assert out.split() == ["0", "0", "0:0", "0:0"]


def test_a_non_root_container_user_maps_to_the_shifted_host_id(ocirun, userns_rootfs):
    config = userns_config(["sleep", "100"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5]}
    pid = run_detached(ocirun, userns_rootfs, config, cid("u1"))
    assert status_ids(pid, "Uid") == [str(HOST_BASE + 1000)] * 4
    assert status_ids(pid, "Gid") == [str(HOST_BASE + 1000)] * 4
    assert status_ids(pid, "Groups") == [str(HOST_BASE + 5)]


def test_files_created_inside_are_owned_by_the_mapped_ids_on_the_host(ocirun, userns_rootfs):
    name = f"created-{os.getpid()}"
    path = os.path.join(userns_rootfs, name)
    try:
        config = userns_config(["sh", "-c", f"touch /{name} && mkdir /{name}.d && chown 1000:1000 /{name}.d"],
                               readonly=False)
        config["process"]["capabilities"] = {k: ["CAP_CHOWN"] for k in ("bounding", "effective", "permitted")}
        run_ok(ocirun, userns_rootfs, config)
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (HOST_BASE, HOST_BASE)
        st = os.stat(path + ".d")
        assert (st.st_uid, st.st_gid) == (HOST_BASE + 1000, HOST_BASE + 1000)
    finally:
        for p in (path, path + ".d"):
            if os.path.isdir(p):
                os.rmdir(p)
            elif os.path.exists(p):
                os.unlink(p)


def test_ids_outside_the_mapping_appear_as_the_overflow_id(ocirun, userns_rootfs, share):
    (share / "hostfile").write_text("x")               # owned by host root: unmapped
    config = userns_config(["stat", "-c", "%u:%g", "/share/hostfile"])
    config["mounts"].append({"destination": "/share", "type": "bind", "source": str(share), "options": ["rbind", "ro"]})
    assert run_ok(ocirun, userns_rootfs, config).strip() == "65534:65534"


def test_capabilities_in_a_user_namespace_do_not_reach_host_objects(ocirun, userns_rootfs, share):
    config = userns_config(["sh", "-c", "touch /share/x 2>/dev/null && echo wrote || echo denied"])
    config["process"]["capabilities"] = {k: ["CAP_DAC_OVERRIDE", "CAP_CHOWN", "CAP_FOWNER"]
                                         for k in ("bounding", "effective", "permitted")}
    config["mounts"].append({"destination": "/share", "type": "bind", "source": str(share), "options": ["rbind", "rw"]})
    assert run_ok(ocirun, userns_rootfs, config).strip() == "denied"
    assert os.listdir(share) == []


def test_joining_a_user_namespace_by_path_shares_its_mappings(ocirun, userns_rootfs):
    first = run_detached(ocirun, userns_rootfs, userns_config(["sleep", "100"]), cid("u1"))
    config = base_config(["sleep", "100"])
    config["linux"]["namespaces"].append({"type": "user", "path": f"/proc/{first}/ns/user"})
    pid = run_detached(ocirun, userns_rootfs, config, cid("u2"))
    assert os.readlink(f"/proc/{pid}/ns/user") == os.readlink(f"/proc/{first}/ns/user")
    assert open(f"/proc/{pid}/uid_map").read().split() == ["0", str(HOST_BASE), str(SIZE)]
    assert status_ids(pid, "Uid") == [str(HOST_BASE)] * 4
    # and its other new namespaces are owned by that user namespace, distinct from the first's
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink(f"/proc/{first}/ns/net")


def test_a_new_user_namespace_without_mappings_is_refused(ocirun, userns_rootfs):
    config = userns_config(["true"])
    del config["linux"]["uidMappings"]
    proc = ocirun("create", "-b", make_bundle(ocirun, userns_rootfs, config), cid("u1"))
    assert proc.returncode == 1 and "linux.uidMappings" in proc.stderr
    assert not os.path.exists(os.path.join(ocirun.root, cid("u1")))


def test_mappings_the_kernel_refuses_fail_create_naming_the_field_and_leave_nothing(ocirun, userns_rootfs):
    config = userns_config(["true"])
    # overlapping container ranges: the kernel refuses the write of uid_map
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_BASE, "size": 100},
                                      {"containerID": 50, "hostID": 300000, "size": 100}]
    before = set(os.listdir("/proc"))
    proc = ocirun("create", "-b", make_bundle(ocirun, userns_rootfs, config), cid("u1"))
    assert proc.returncode == 1
    assert "linux.uidMappings" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not os.path.exists(os.path.join(ocirun.root, cid("u1")))
    time.sleep(0.1)
    # an init of ours would still have the caller's cwd (this test's tmp dir): other runs' do not
    leftover = []
    for p in set(os.listdir("/proc")) - before:
        try:
            if (p.isdigit() and is_ocirun_init(open(f"/proc/{p}/cmdline", "rb").read())
                    and os.readlink(f"/proc/{p}/cwd").startswith(ocirun.tmp)):
                leftover.append(p)
        except OSError:
            pass
    assert leftover == []


def test_a_user_namespace_container_sees_its_mounts_and_proc(ocirun, userns_rootfs):
    out = run_ok(ocirun, userns_rootfs, userns_config(["sh", "-c", "echo $$; ls /proc/self/ns >/dev/null && "
                                                                   "cat /sys/class/net/lo/flags; hostname"]))
    lines = out.split()
    assert lines[0] == "1" and int(lines[1], 16) & 1 and lines[2] == "ocirun-test"


def test_time_offsets_apply_in_a_container_with_a_user_namespace(ocirun, userns_rootfs):
    # the time namespace is made after the user namespace (which owns it); its offsets are written
    # with the runtime's credentials: /proc/self/timens_offsets of the non-dumpable init belongs to
    # host root, whom the container's root (host uid 100000) is not
    config = userns_config(["cat", "/proc/uptime", "/proc/self/timens_offsets"],
                           timeOffsets={"boottime": {"secs": 86400, "nanosecs": 0}})
    config["linux"]["namespaces"].append({"type": "time"})
    lines = run_ok(ocirun, userns_rootfs, config).splitlines()
    assert float(lines[0].split()[0]) > time.clock_gettime(time.CLOCK_BOOTTIME) + 86000
    assert [line.split()[:2] for line in lines[1:]] == [["monotonic", "0"], ["boottime", "86400"]]
