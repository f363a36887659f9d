"""The container's filesystem through the whole runtime (config.md "Mounts", config-linux.md "Default
Filesystems", "Devices", "Default Devices", maskedPaths, readonlyPaths): read from inside with busybox
(/proc/self/mountinfo, stat, cat) and checked on the host (nothing left mounted after delete).
"""
import os
import shutil
import tempfile

import pytest

from tests.conftest import base_config

pytestmark = pytest.mark.root


def cid(name: str) -> str:
    """Container ids unique to this test session (cgroups given by path, hooks' files and the
    like then never meet another concurrent run's)."""
    return f"{name}-{os.getpid()}"


_cid_default = cid


def run_ok(ocirun, config, cid=_cid_default("c1")):
    proc = ocirun.run_output(config, cid)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def parse_mountinfo(text: str) -> dict:
    """{mount point: (per-mount options set, fstype, super options set)} (the last mount wins)."""
    out = {}
    for line in text.splitlines():
        if " - " not in line:
            continue
        left, right = line.split(" - ", 1)
        fields = left.split()
        fstype, _source, superopts = right.split()[:3]
        out[fields[4]] = (set(fields[5].split(",")), fstype, set(superopts.split(",")))
    return out


@pytest.fixture
def hostdir():
    path = tempfile.mkdtemp(prefix="ocirun-e2e-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- default filesystems -------------------------------------------------------------------------

def test_the_configs_default_filesystems_are_mounted_with_their_flags(ocirun):
    mounts = parse_mountinfo(run_ok(ocirun, base_config(["cat", "/proc/self/mountinfo"])))
    want = {   # destination: (fstype, per-mount flags that must be there, super options that must be there)
        "/proc": ("proc", {"rw"}, set()),
        "/dev": ("tmpfs", {"nosuid"}, {"mode=755"}),
        "/dev/pts": ("devpts", {"nosuid", "noexec"}, {"gid=5", "mode=620", "ptmxmode=666"}),
        "/dev/shm": ("tmpfs", {"nosuid", "nodev", "noexec"}, set()),
        "/dev/mqueue": ("mqueue", {"nosuid", "nodev", "noexec"}, set()),
        "/sys": ("sysfs", {"ro", "nosuid", "nodev", "noexec"}, set()),
        "/tmp": ("tmpfs", {"nosuid", "nodev"}, set()),
    }
    for dest, (fstype, flags, superopts) in want.items():
        assert dest in mounts, (dest, sorted(mounts))
        got_flags, got_type, got_super = mounts[dest]
        assert got_type == fstype, dest
        assert flags <= got_flags, (dest, got_flags)
        assert superopts <= got_super, (dest, got_super)
    # size=65536k is 64 MiB
    assert "size=65536k" in mounts["/dev"][2] or any(o.startswith("size=") for o in mounts["/dev"][2])


def test_mounts_are_made_in_config_order_later_ones_over_earlier(ocirun, hostdir):
    os.makedirs(os.path.join(hostdir, "a"))
    open(os.path.join(hostdir, "a", "marker"), "w").write("from-bind")
    config = base_config(["sh", "-c", "cat /tmp/sub/marker"])
    # /tmp (tmpfs) comes first in base_config, the bind on /tmp/sub after it: the target is created in
    # the tmpfs
    config["mounts"].append({"destination": "/tmp/sub", "type": "bind", "source": os.path.join(hostdir, "a"),
                             "options": ["rbind", "ro"]})
    assert run_ok(ocirun, config).strip() == "from-bind"


# --- bind mounts ---------------------------------------------------------------------------------

def test_a_rw_bind_mount_of_a_host_dir_is_writable_and_shared_with_the_host(ocirun, hostdir):
    open(os.path.join(hostdir, "in"), "w").write("host-data")
    config = base_config(["sh", "-c", "cat /data/in; echo container-data > /data/out"])
    config["mounts"].append({"destination": "/data", "type": "bind", "source": hostdir, "options": ["rbind", "rw"]})
    assert run_ok(ocirun, config).strip() == "host-data"
    assert open(os.path.join(hostdir, "out")).read() == "container-data\n"


def test_a_ro_bind_mount_is_read_only_inside_and_flags_are_applied(ocirun, hostdir):
    open(os.path.join(hostdir, "in"), "w").write("host-data")
    config = base_config(["sh", "-c", "cat /data/in; echo; touch /data/x 2>&1; cat /proc/self/mountinfo"])
    config["mounts"].append({"destination": "/data", "type": "bind", "source": hostdir,
                             "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]})
    out = run_ok(ocirun, config)
    assert out.startswith("host-data") and "Read-only file system" in out
    flags = parse_mountinfo(out)["/data"][0]
    assert {"ro", "nosuid", "nodev", "noexec"} <= flags
    assert not os.path.exists(os.path.join(hostdir, "x"))


def test_a_bind_mount_of_a_single_file(ocirun, hostdir):
    src = os.path.join(hostdir, "file.conf")
    open(src, "w").write("one-file")
    config = base_config(["cat", "/etc/my.conf"])
    config["mounts"].append({"destination": "/etc/my.conf", "type": "bind", "source": src, "options": ["bind", "ro"]})
    config["root"]["readonly"] = False
    # the rootfs is shared by the tests: the mount point file is created in it, so remove it after
    target = os.path.join(ocirun.rootfs, "etc/my.conf")
    try:
        assert run_ok(ocirun, config).strip() == "one-file"
    finally:
        if os.path.exists(target) and os.path.getsize(target) == 0:
            os.unlink(target)


def test_a_relative_bind_source_is_relative_to_the_bundle(ocirun):
    config = base_config(["cat", "/data/note"])
    config["mounts"].append({"destination": "/data", "type": "bind", "source": "shared", "options": ["rbind", "ro"]})
    bundle = ocirun.bundle(config)
    os.makedirs(os.path.join(bundle, "shared"))
    open(os.path.join(bundle, "shared", "note"), "w").write("bundle-relative")
    proc = ocirun("run", "-b", bundle, cid("c1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "bundle-relative"


# --- masked and read-only paths ------------------------------------------------------------------

def test_masked_paths_read_empty(ocirun):
    # this kernel may have no /proc/kcore (CONFIG_PROC_KCORE): mask /proc/keys and /proc/timer_list,
    # which are there, and /proc/kcore when it is
    files = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(p)]
    assert files
    script = "".join(f"wc -c < {p}; stat -c %t:%T {p}; " for p in files)
    config = base_config(["sh", "-c", script + "ls -A /proc/acpi | wc -l; echo 1 > /proc/acpi/x; "
                                               "cat /proc/self/mountinfo"])
    out = run_ok(ocirun, config)
    lines = out.splitlines()
    for i, path in enumerate(files):
        assert lines[2 * i].strip() == "0", path     # /dev/null bound over it
        assert lines[2 * i + 1] == "1:3", path
    assert lines[2 * len(files)].strip() == "0"      # /proc/acpi: an empty read-only tmpfs (or absent)
    mounts = parse_mountinfo(out)
    for path in files:
        assert path in mounts, path
    if "/proc/acpi" in mounts:
        assert mounts["/proc/acpi"][1] == "tmpfs" and "ro" in mounts["/proc/acpi"][0]


def test_readonly_paths_cannot_be_written(ocirun):
    config = base_config(["sh", "-c", "{ echo 1 > /proc/sys/kernel/ns_last_pid; } 2>&1; echo rc=$?; "
                                      "cat /proc/self/mountinfo"])
    out = run_ok(ocirun, config)
    assert "Read-only file system" in out and "rc=1" in out, out
    mounts = parse_mountinfo(out)
    # every listed path that exists on this kernel (no /proc/sysrq-trigger without CONFIG_MAGIC_SYSRQ)
    for path in base_config()["linux"]["readonlyPaths"]:
        if os.path.exists(path):
            assert "ro" in mounts[path][0], path
    # the rest of /proc stays writable
    assert "rw" in mounts["/proc"][0]


def test_masked_and_readonly_paths_that_do_not_exist_are_skipped(ocirun):
    config = base_config(["true"])
    config["linux"]["maskedPaths"].append("/proc/no-such-thing")
    config["linux"]["readonlyPaths"].append("/no/such/dir")
    run_ok(ocirun, config)


# --- devices -------------------------------------------------------------------------------------

DEFAULT_DEVICES = {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7), "/dev/random": (1, 8),
                   "/dev/urandom": (1, 9), "/dev/tty": (5, 0)}


def test_the_default_devices_and_dev_links_exist(ocirun):
    names = " ".join(DEFAULT_DEVICES)
    config = base_config(["sh", "-c", f"stat -c '%n %F %t %T %a' {names}; for l in ptmx fd stdin stdout stderr; "
                                      "do readlink /dev/$l; done; head -c 4 /dev/zero | wc -c; "
                                      "echo x > /dev/null && echo null-ok"])
    out = run_ok(ocirun, config).splitlines()
    for line in out[:len(DEFAULT_DEVICES)]:
        name = line.split()[0]
        assert "character special file" in line, line
        major, minor, mode = line.split()[-3:]
        assert (int(major, 16), int(minor, 16)) == DEFAULT_DEVICES[name], line
        assert mode == "666", line
    links = out[len(DEFAULT_DEVICES):len(DEFAULT_DEVICES) + 5]
    assert links == ["pts/ptmx", "/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2"]
    assert out[-2].strip() == "4" and out[-1] == "null-ok"


def test_linux_devices_creates_the_node_with_type_major_minor_mode_and_owner(ocirun):
    config = base_config(["sh", "-c", "stat -c '%F %t %T %a %u %g' /dev/mynull /dev/sub/myzero; "
                                      "head -c 3 /dev/sub/myzero | wc -c"])
    config["linux"]["devices"] = [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 1001},
        {"path": "/dev/sub/myzero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600},
    ]
    config["linux"]["resources"] = {"devices": [{"allow": True, "access": "rwm"}]}
    out = run_ok(ocirun, config).splitlines()
    assert out[0] == "character special file 1 3 640 1000 1001"
    assert out[1] == "character special file 1 5 600 0 0"
    assert out[2].strip() == "3"


def test_a_block_device_in_linux_devices_is_a_block_node(ocirun):
    config = base_config(["stat", "-c", "%F %t %T", "/dev/myloop"])
    config["linux"]["devices"] = [{"path": "/dev/myloop", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600}]
    assert run_ok(ocirun, config).strip() == "block special file 7 c8"


# --- nothing left on the host --------------------------------------------------------------------

def _host_mounts():
    return sorted(open("/proc/self/mountinfo").read().splitlines())


def test_after_delete_the_host_mount_table_is_unchanged(ocirun, hostdir):
    before = _host_mounts()
    config = base_config(["sleep", "100"])
    config["mounts"].append({"destination": "/data", "type": "bind", "source": hostdir, "options": ["rbind", "rw"]})
    bundle = ocirun.bundle(config)
    ocirun("create", "-b", bundle, cid("c1"), check=True)
    # nothing the container mounted propagates to the host, even while it exists
    assert _host_mounts() == before
    ocirun("start", cid("c1"), check=True)
    assert _host_mounts() == before
    ocirun("delete", "--force", cid("c1"), check=True)
    assert _host_mounts() == before


def test_a_failed_create_leaves_the_host_mount_table_unchanged(ocirun, hostdir):
    before = _host_mounts()
    config = base_config(["true"])
    config["mounts"].append({"destination": "/data", "type": "bind", "source": hostdir, "options": ["rbind", "rw"]})
    config["mounts"].append({"destination": "/data2", "type": "bind", "source": "/no/such/source",
                             "options": ["rbind"]})
    proc = ocirun("create", "-b", ocirun.bundle(config), cid("c1"))
    assert proc.returncode == 1 and "mounts[8]" in proc.stderr, proc.stderr
    assert _host_mounts() == before


# --- refused by create, before the init mounts anything (the plan: validate.check_mounts) -------------

IDMAP = [{"containerID": 0, "hostID": 1000, "size": 1}]


@pytest.mark.parametrize("mount,rootfs_propagation,needle", [
    ({"destination": "/data", "type": "bind"}, None, "mounts[7].source: a bind mount needs a source"),
    ({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}, None,
     "mounts[7].options: idmap is only supported for bind mounts"),
    ({"destination": "/data", "source": "/tmp", "options": ["rbind"], "uidMappings": IDMAP}, None,
     "mounts[7]: 'gidMappings' is a dependency of 'uidMappings'"),    # (the schema's)
    ({"destination": "/data", "source": "/tmp", "options": ["rbind", "idmap"]}, None,
     "mounts[7].options: idmap needs uidMappings/gidMappings on the mount or a user namespace"),
    (None, "sideways", "linux.rootfsPropagation: 'sideways' is not one of"),     # (the schema's enum)
])
def test_a_mount_the_init_could_not_make_is_refused_by_create(ocirun, mount, rootfs_propagation, needle):
    """The parent resolves every mount once: one line naming the JSON path, and nothing left (no
    container directory, no cgroup, no init)."""
    from tests.integration.test_errors import create_fails
    config = base_config()
    if mount is not None:
        assert len(config["mounts"]) == 7
        config["mounts"].append(mount)
    if rootfs_propagation is not None:
        config["linux"]["rootfsPropagation"] = rootfs_propagation
    c = cid("cplan")
    proc = create_fails(ocirun, config, needle, cid=c)    # one line; no state dir, cgroup, mount or init left
    assert proc.returncode == 1
