"""Mounts in user-namespace containers, and the spec and runc behaviours of mounts that real configs
expose (issue 9): relative destinations, cgroup v1 read-write, a read-only /dev, destinations through
dangling symlinks, --no-pivot and the host's /proc, bind sources only host root can read, idmapped
mounts. Real containers made by the CLI, checked from inside and from the host.
"""
import os
import shutil
import tempfile

import pytest

from ocirun.linux import syscalls as sc
from tests.conftest import base_config
from tests.integration.test_rootfs_units import cgroup_v1_host, mountinfo_entries
from tests.integration.test_userns import (HOST_BASE, cid, make_bundle, run_ok, share,  # noqa: F401 (fixtures)
                                           userns_config, userns_rootfs)

pytestmark = pytest.mark.root


def run_fails(ocirun, rootfs, config, name="m1"):
    proc = ocirun("run", "-b", make_bundle(ocirun, rootfs, config), cid(name))
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


def test_a_relative_destination_is_relative_to_the_root(ocirun, userns_rootfs):
    config = userns_config(["cat", "/proc/self/mountinfo"])
    config["mounts"].append({"destination": "tmp/rel", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})
    m = mountinfo_entries(run_ok(ocirun, userns_rootfs, config))
    assert m["/tmp/rel"][1] == "tmpfs" and "size=1024k" in m["/tmp/rel"][2]


@pytest.mark.skipif(not cgroup_v1_host(), reason="needs cgroup v1 hierarchies")
@pytest.mark.parametrize("ro", [False, True])
def test_a_cgroup_v1_mount_is_read_only_only_when_it_says_ro(ocirun, userns_rootfs, ro):
    config = userns_config(["cat", "/proc/self/mountinfo"])
    config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                             "options": ["nosuid", "noexec", "nodev", "relatime"] + (["ro"] if ro else [])})
    m = mountinfo_entries(run_ok(ocirun, userns_rootfs, config))
    hierarchies = [p for p in m if p.startswith("/sys/fs/cgroup/") and m[p][1] == "cgroup"]
    assert hierarchies
    for point in ["/sys/fs/cgroup"] + hierarchies:
        assert ("ro" if ro else "rw") in m[point][0], (point, m[point])


def test_a_read_only_dev_is_made_read_only_after_its_submounts_and_devices(ocirun, userns_rootfs):
    config = userns_config(["sh", "-c", "cat /proc/self/mountinfo; ls /dev; echo x > /dev/null && echo null-ok; "
                                        "touch /dev/new 2>/dev/null || echo dev-ro; "
                                        "touch /run/ro/sub/x && echo sub-rw; touch /run/ro/y 2>/dev/null || echo run-ro"])
    for m in config["mounts"]:
        if m["destination"] == "/dev":
            m["options"].append("ro")
    # a read-only tmpfs with a mount below it (its mountpoint is made before it turns read-only)
    config["mounts"] += [{"destination": "/run/ro", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]},
                         {"destination": "/run/ro/sub", "type": "tmpfs", "source": "tmpfs"}]
    out = run_ok(ocirun, userns_rootfs, config)
    m = mountinfo_entries(out)
    assert "ro" in m["/dev"][0] and "ro" in m["/run/ro"][0]
    assert m["/dev/pts"][1] == "devpts" and m["/dev/shm"][1] == "tmpfs"
    words = out.split()
    assert {"null", "zero", "ptmx", "pts", "shm", "stdin"} <= set(words)
    assert words[-4:] == ["null-ok", "dev-ro", "sub-rw", "run-ro"]


def test_a_destination_through_a_dangling_symlink_is_made_inside_the_rootfs(ocirun, userns_rootfs):
    # /a -> /<missing>/dir, and a file destination that is itself a dangling relative symlink (as
    # /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf in systemd images): resolved as the
    # container would, so what is missing is made under the rootfs, never at the host's /<missing>
    missing = f"ocirun-missing-{os.getpid()}"
    links = {os.path.join(userns_rootfs, "a"): f"/{missing}/dir",
             os.path.join(userns_rootfs, "etc", f"{missing}.conf"): f"../{missing}/run/stub.conf"}
    for link, target in links.items():
        os.symlink(target, link)
    try:
        config = userns_config(["sh", "-c", f"grep -c ' /{missing}/' /proc/self/mountinfo; ls /a/; "
                                            f"cat /etc/{missing}.conf"])
        config["mounts"] += [{"destination": "/a/x", "type": "tmpfs", "source": "tmpfs"},
                             {"destination": "/a/f", "type": "bind", "source": "/etc/hostname", "options": ["bind"]},
                             {"destination": f"/etc/{missing}.conf", "type": "bind", "source": "/etc/hostname",
                              "options": ["bind"]}]
        out = run_ok(ocirun, userns_rootfs, config)
        assert not os.path.lexists(f"/{missing}")
        made = os.path.join(userns_rootfs, missing)
        assert os.path.isdir(os.path.join(made, "dir", "x"))
        assert os.path.isfile(os.path.join(made, "dir", "f")) and os.path.isfile(os.path.join(made, "run", "stub.conf"))
        assert out.split() == ["3", "f", "x"] + open("/etc/hostname").read().split(), out
    finally:
        for link in links:
            os.unlink(link)
        shutil.rmtree(os.path.join(userns_rootfs, missing), ignore_errors=True)
        shutil.rmtree(f"/{missing}", ignore_errors=True)


NESTED_PROC = ["unshare", "-mrpf", "sh", "-c", "mount -t proc none /proc && echo mounted-a-bare-proc"]


@pytest.mark.parametrize("userns", [False, True])
def test_no_pivot_leaves_no_full_host_proc_to_mount_a_bare_proc_from(ocirun, userns_rootfs, userns):
    # runc's no_pivot.bats: with the host's /proc still in the mount namespace (under the moved root),
    # the kernel lets a nested user namespace mount a fresh procfs without the container's masks
    config = userns_config(NESTED_PROC) if userns else base_config(NESTED_PROC)
    for caps in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][caps] += ["CAP_SETFCAP", "CAP_SYS_ADMIN"]
    rootfs = userns_rootfs if userns else ocirun.rootfs
    proc = ocirun("run", "--no-pivot", "-b", make_bundle(ocirun, rootfs, config), cid("np"))
    assert "mounted-a-bare-proc" not in proc.stdout
    assert proc.returncode == 1 and "permission denied" in proc.stderr, proc.stderr


# --- bind sources only host root can reach, idmapped mounts (cloned by the runtime) ----------------------

@pytest.fixture
def private_dir():
    """A host dir only host root may enter (0700), holding a 0755 dir `vol` and a 0644 file `f`: the
    container's root (host uid 100000) can read both, but not reach them by path."""
    path = tempfile.mkdtemp(prefix="ocirun-private-", dir="/tmp")
    try:
        os.chmod(path, 0o700)
        os.mkdir(os.path.join(path, "vol"), 0o755)
        for name in ("vol/file", "f"):
            with open(os.path.join(path, name), "w") as f:
                f.write(f"content of {name}\n")
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_bind_sources_only_host_root_can_reach_are_mounted_in_a_user_namespace(ocirun, userns_rootfs, private_dir):
    config = userns_config(["sh", "-c", "cat /vol/file /f; stat -c '%u:%g' /vol/file; "
                                        "echo x > /vol/new 2>/dev/null || echo ro-kept"])
    config["mounts"] += [{"destination": "/vol", "type": "bind", "source": f"{private_dir}/vol", "options": ["rbind", "ro"]},
                         {"destination": "/f", "type": "bind", "source": f"{private_dir}/f", "options": ["bind"]}]
    out = run_ok(ocirun, userns_rootfs, config)
    assert out.splitlines() == ["content of vol/file", "content of f", "65534:65534", "ro-kept"]


def test_a_missing_bind_source_in_a_user_namespace_names_the_mount(ocirun, userns_rootfs, private_dir):
    config = userns_config(["true"])
    config["mounts"].append({"destination": "/vol", "type": "bind", "source": f"{private_dir}/nope", "options": ["bind"]})
    err = run_fails(ocirun, userns_rootfs, config)
    assert "mounts[7] (destination /vol): open_tree" in err and "no such file or directory" in err, err
    assert len(err.strip().splitlines()) == 1
    assert not os.path.exists(os.path.join(ocirun.root, cid("m1")))


def test_idmap_in_a_user_namespace_maps_the_source_through_the_containers_mappings(ocirun, userns_rootfs, share):
    (share / "hostfile").write_text("x")     # owned by host root: unmapped in the container
    config = userns_config(["sh", "-c", "stat -c '%u:%g' /idm/hostfile /plain/hostfile; "
                                        "touch /idm/made && stat -c '%u:%g' /idm/made"])
    config["mounts"] += [{"destination": "/idm", "type": "bind", "source": str(share), "options": ["rbind", "idmap"]},
                         {"destination": "/plain", "type": "bind", "source": str(share), "options": ["rbind"]}]
    out = run_ok(ocirun, userns_rootfs, config)
    assert out.split() == ["0:0", "65534:65534", "0:0"]
    # written through the idmapped mount by the container's root: host root owns it
    st = os.stat(share / "made")
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_idmap_with_the_mounts_own_mappings_in_a_user_namespace(ocirun, userns_rootfs, share):
    (share / "hostfile").write_text("x")
    config = userns_config(["stat", "-c", "%u:%g", "/idm/hostfile"])
    # the mount's mappings: host (on-disk) 0 -> 101000/102000, which the container sees as 1000/2000
    config["mounts"].append({"destination": "/idm", "type": "bind", "source": str(share), "options": ["bind", "idmap"],
                             "uidMappings": [{"containerID": 0, "hostID": HOST_BASE + 1000, "size": 1}],
                             "gidMappings": [{"containerID": 0, "hostID": HOST_BASE + 2000, "size": 1}]})
    assert run_ok(ocirun, userns_rootfs, config).split() == ["1000:2000"]


@pytest.mark.parametrize("option", ["idmap", "ridmap"])
def test_ridmap_idmaps_the_submounts_too(ocirun, userns_rootfs, share, option):
    (share / "sub").mkdir()
    sc.mount("tmpfs", str(share / "sub"), "tmpfs", 0, "mode=755")
    try:
        (share / "sub" / "file").write_text("x")
        config = userns_config(["stat", "-c", "%u:%g", "/idm/sub/file"])
        config["mounts"].append({"destination": "/idm", "type": "bind", "source": str(share),
                                 "options": ["rbind", option]})
        expected = "0:0" if option == "ridmap" else "65534:65534"
        assert run_ok(ocirun, userns_rootfs, config).split() == [expected]
    finally:
        sc.umount2(str(share / "sub"), sc.MNT_DETACH)
