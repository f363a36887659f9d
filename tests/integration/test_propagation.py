"""Mount propagation between the host and a container (config-linux.md rootfsPropagation, mount
options shared/rshared/slave...), end to end, compared with runc 1.1.5's behaviour on this machine
(the same, except that a volume asking to be shared is shared with its source even when / is rslave).

A host directory is made a shared mount of its own (this host's / is private), bound into the
container as a volume; a tmpfs is mounted under it from inside the container's mount namespace
(nsenter: its root is the container's) and another from the host, and each side looks for the
other's. Everything mounted is detached in a finally block.
"""
import os
import subprocess
import tempfile
import time

import pytest

from tests.conftest import base_config

pytestmark = pytest.mark.root


def _run(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def _mount_points(path):
    """Mount points in a mountinfo file (as the process it belongs to sees them)."""
    with open(path) as f:
        return {line.split()[4] for line in f}


@pytest.fixture
def shared_dir():
    path = tempfile.mkdtemp(prefix="ocirun-prop-", dir="/tmp")
    _run("mount", "--bind", path, path)
    _run("mount", "--make-shared", path)
    os.makedirs(os.path.join(path, "from-container"))
    os.makedirs(os.path.join(path, "from-host"))
    try:
        yield path
    finally:
        for _ in range(3):      # stacked mounts (a propagated copy over the original), deepest first
            for point in sorted((p for p in _mount_points("/proc/self/mountinfo")
                                 if p == path or p.startswith(path + "/")), reverse=True):
                _run("umount", "-l", point, check=False)
        _run("rm", "-rf", "--one-file-system", path)


def _propagation(ocirun, shared_dir, root_propagation=None, volume_options=("rbind",)):
    """(a mount made in the container reaches the host, a mount made on the host reaches the container)"""
    config = base_config(["sleep", "100"])
    if root_propagation:
        config["linux"]["rootfsPropagation"] = root_propagation
    config["mounts"].append({"destination": "/vol", "type": "bind", "source": shared_dir,
                             "options": list(volume_options)})
    cid = f"prop-{os.getpid()}"
    ocirun("run", "-d", "-b", ocirun.bundle(config), cid, check=True)
    pid = ocirun.state(cid)["pid"]
    _run("nsenter", "-t", str(pid), "-m", "mount", "-t", "tmpfs", "inside", "/vol/from-container")
    _run("mount", "-t", "tmpfs", "outside", os.path.join(shared_dir, "from-host"))
    time.sleep(0.05)
    to_host = os.path.join(shared_dir, "from-container") in _mount_points("/proc/self/mountinfo")
    to_container = "/vol/from-host" in _mount_points(f"/proc/{pid}/mountinfo")
    ocirun("delete", "-f", cid, check=True)
    return to_host, to_container


def test_rootfs_propagation_rshared_with_an_rshared_volume_propagates_both_ways(ocirun, shared_dir):
    # Kubernetes' Bidirectional mount propagation (CRI: rootfsPropagation rshared + rbind,rshared).
    # Before: / was made rslave first, so the volume was a slave with a peer group of its own.
    assert _propagation(ocirun, shared_dir, "rshared", ("rbind", "rshared")) == (True, True)


def test_rootfs_propagation_rshared_makes_a_plain_volume_of_a_shared_mount_its_peer(ocirun, shared_dir):
    assert _propagation(ocirun, shared_dir, "rshared") == (True, True)          # as runc


@pytest.mark.parametrize("options", [("rbind",), ("rbind", "rslave")])
def test_by_default_mounts_reach_the_container_but_never_the_host(ocirun, shared_dir, options):
    # D-17: without rootfsPropagation, / is rslave, and so is a volume that asks for nothing else
    assert _propagation(ocirun, shared_dir, None, options) == (False, True)


@pytest.mark.parametrize("options", [("rbind", "rshared"), ("bind", "shared")])
def test_a_shared_volume_propagates_both_ways_without_rootfs_propagation(ocirun, shared_dir, options):
    # the volume asks for it: its source is cloned in the runtime's mount namespace, so it is a peer
    # of it (runc makes it a slave with a peer group of its own: only the host's mounts reach it)
    assert _propagation(ocirun, shared_dir, None, options) == (True, True)


def _mountinfo(path):
    """[(mount point, optional fields)] in the file's order."""
    with open(path) as f:
        rows = [line.split() for line in f]
    return [(r[4], r[6:r.index("-")]) for r in rows]


def test_a_shared_volume_keeps_its_config_place_in_mountinfo_and_is_a_peer_of_its_source(ocirun, shared_dir):
    # Since Linux 6.8 mountinfo lists mounts by mount id, given when a mount is made (or cloned):
    # the spec makes mounts in the listed order and runtime-tools' `mounts` checks that order. The
    # volume's source used to be cloned before every other mount, so it came first.
    config = base_config(["sleep", "100"])
    config["mounts"] += [
        {"destination": "/tmp/a", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
        {"destination": "/tmp/vol", "type": "bind", "source": shared_dir, "options": ["rbind", "rshared"]},
        {"destination": "/tmp/c", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
    ]
    cid = f"prop-order-{os.getpid()}"
    try:
        ocirun("run", "-d", "-b", ocirun.bundle(config), cid, check=True)
        inside = _mountinfo(f"/proc/{ocirun.state(cid)['pid']}/mountinfo")
        points = [p for p, _ in inside]
        assert [p for p in points if p in ("/tmp/a", "/tmp/vol", "/tmp/c")] == ["/tmp/a", "/tmp/vol", "/tmp/c"]
        host_group = [t for p, tags in _mountinfo("/proc/self/mountinfo") if p == shared_dir
                      for t in tags if t.startswith("shared:")]
        vol_tags = dict(inside)["/tmp/vol"]
        assert host_group and host_group[0] in vol_tags      # a peer: the host's peer group
    finally:
        ocirun("delete", "-f", cid)


def test_a_shared_volume_whose_source_is_missing_is_refused_naming_the_mount(ocirun, shared_dir):
    config = base_config(["true"])
    config["mounts"].append({"destination": "/tmp/vol", "type": "bind", "options": ["rbind", "rshared"],
                             "source": os.path.join(shared_dir, "missing")})
    index = len(config["mounts"]) - 1
    cid = f"prop-missing-{os.getpid()}"
    try:
        proc = ocirun("create", "-b", ocirun.bundle(config), cid)
        assert proc.returncode != 0
        assert f"mounts[{index}] (destination /tmp/vol): " in proc.stderr
        assert os.path.join(shared_dir, "missing") in proc.stderr
        assert "no such file or directory" in proc.stderr.lower()
        assert ocirun("state", cid).returncode != 0      # nothing left behind
    finally:
        ocirun("delete", "-f", cid)


def test_rootfs_propagation_rprivate_cuts_both_ways(ocirun, shared_dir):
    assert _propagation(ocirun, shared_dir, "rprivate", ("rbind",)) == (False, False)


def test_the_rootfs_bind_never_appears_on_a_shared_parent_mount(ocirun, shared_dir):
    # the rootfs lives on a shared mount: its parent is made private in the container's namespace
    # (as runc), so neither the rootfs bind nor anything mounted in the rootfs reaches the host
    rootfs = os.path.join(shared_dir, "rootfs")
    _run("cp", "-a", ocirun.rootfs, rootfs)
    try:
        config = base_config(["sleep", "100"])
        config["root"]["path"] = rootfs
        config["linux"]["rootfsPropagation"] = "rshared"
        cid = f"prop-root-{os.getpid()}"
        ocirun("run", "-d", "-b", ocirun.bundle(config), cid, check=True)
        assert ocirun.state(cid)["status"] == "running"
        assert not [p for p in _mount_points("/proc/self/mountinfo") if p.startswith(rootfs)]
        ocirun("delete", "-f", cid, check=True)
    finally:
        ocirun("delete", "-f", f"prop-root-{os.getpid()}")
