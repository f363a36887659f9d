"""Root integration tests of ocirun.linux.rootfs: real mount namespaces, a busybox rootfs per test.

Each test builds <tmp>/bundle/rootfs from /bin/busybox, forks a child that unshares a mount and a pid
namespace and forks the container init (pid 1 there), which runs the init's own steps "rootfs",
"pivot" and "finalize" (prepare_rootfs / enter_rootfs / finalize_rootfs) and then execs a busybox
shell script. Output is read from files; the host's mount table is compared before and after every
test, and host files a hostile rootfs points at are checked unchanged. The same sequence, recorded
without root through the syscall seam, is checked call by call in tests/unit/test_mount_sequence.py.
"""
import copy
import os
import shutil
import signal
import tempfile
import traceback

import pytest

from ocirun.init import STAGE2_STEPS, Init
from ocirun.initctx import InitContext
from ocirun.linux import syscalls as sc
from ocirun.linux import mountplan
from tests.treesnapshot import tree_snapshot

pytestmark = pytest.mark.root

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "cat", "ls", "stat", "mount", "touch", "echo", "readlink", "grep", "mkdir", "test",
           "head", "id", "sleep", "true", "false", "wc", "cut"]

MINIMAL_MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
]


# the init's own rootfs steps, from its table (prepare_rootfs; procfs handle and enter_rootfs;
# finalize_rootfs), not a copy of their sequence
ROOTFS_STEPS = [(name, step) for name, step in STAGE2_STEPS if name in ("rootfs", "pivot", "finalize")]


def make_config(mounts=None, **linux) -> dict:
    return {"root": {"path": "rootfs"}, "mounts": copy.deepcopy(MINIMAL_MOUNTS if mounts is None else mounts),
            "linux": linux}


def host_mountinfo() -> list[str]:
    # mount ids and the optional fields can not change for an untouched host; compare whole lines
    with open("/proc/self/mountinfo") as f:
        return sorted(f.read().splitlines())


@pytest.fixture(autouse=True)
def host_mounts_unchanged():
    before = host_mountinfo()
    yield
    assert host_mountinfo() == before, "the host's mount table changed"


@pytest.fixture
def bundle():
    tmp = tempfile.mkdtemp(prefix="ocirun-rootfs-test-")
    try:
        rootfs = os.path.join(tmp, "bundle", "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        shutil.copy2(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
        for applet in APPLETS:
            os.symlink("busybox", os.path.join(rootfs, "bin", applet))
        for d in ("etc", "tmp", "data"):
            os.makedirs(os.path.join(rootfs, d))
        with open(os.path.join(rootfs, "etc", "hostname"), "w") as f:
            f.write("inside\n")
        yield os.path.join(tmp, "bundle")
    finally:
        shutil.rmtree(tmp)


class Result:
    def __init__(self, status: int, out: str, err: str):
        self.status = status
        self.out = out
        self.err = err

    @property
    def ok(self) -> bool:
        return self.status == 0

    def __repr__(self):
        return f"Result(status={self.status}, out={self.out!r}, err={self.err!r})"


def run_container(bundle: str, config: dict, script: str, *, no_pivot=False, console=None, userns=False,
                  cgroupns=False, timeout=20) -> Result:
    """Set the rootfs up in new mount+pid namespaces and run `sh -c script` inside.

    userns: the child first enters a new user namespace with an identity map (uid 0 is root there
    but mknod and sysfs/mqueue mounts are not allowed, as for a rootless-style container).
    """
    outdir = tempfile.mkdtemp(prefix="ocirun-rootfs-out-")
    out, err = os.path.join(outdir, "out"), os.path.join(outdir, "err")
    up_r, up_w = os.pipe()
    go_r, go_w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:
            os.close(up_r)
            os.close(go_w)
            _child(bundle, config, script, no_pivot, console, out, err, timeout, userns, cgroupns, up_w, go_r)
        os.close(up_w)
        os.close(go_r)
        up_w = go_r = -1
        try:
            if userns:
                assert os.read(up_r, 1) == b"u"
                for name in ("uid_map", "gid_map"):
                    with open(f"/proc/{pid}/{name}", "w") as f:
                        f.write("0 0 4294967295\n")
                os.write(go_w, b"g")
        finally:
            _, status = os.waitpid(pid, 0)
        with open(out) as f1, open(err) as f2:
            return Result(os.waitstatus_to_exitcode(status), f1.read(), f2.read())
    finally:
        for fd in (up_r, up_w, go_r, go_w):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(outdir)


def _child(bundle, config, script, no_pivot, console, out, err, timeout, userns, cgroupns, up_w, go_r):
    code = 120
    try:
        signal.alarm(timeout)
        fd_out = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        fd_err = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd_out, 1)
        os.dup2(fd_err, 2)
        if userns:
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(up_w, b"u")
            assert os.read(go_r, 1) == b"g"
        sc.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWPID | sc.CLONE_NEWIPC | (sc.CLONE_NEWCGROUP if cgroupns else 0))
        init = os.fork()  # pid 1 of the new pid namespace
        if init == 0:
            _init(bundle, config, script, no_pivot, console, timeout, userns, cgroupns)
        _, status = os.waitpid(init, 0)
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 128 - code
    except BaseException:
        os.write(2, traceback.format_exc().encode())
    finally:
        os._exit(code)


def _init(bundle, config, script, no_pivot, console, timeout, userns, cgroupns):
    try:
        signal.alarm(timeout)  # survives execve: a hung container is killed
        it = Init(None, {"config": config})
        # the plan create would send (its checks raise here: SETUP-ERROR, as the init's did); not
        # validate's lexical /proc checks: the init's own, on the resolved path, are tested here
        plan = mountplan.resolve(config, bundle, has_userns=userns)
        it.ctx = InitContext(config=config, plan=plan, bundle=bundle, rootfs=os.path.join(bundle, "rootfs"),
                             no_pivot=no_pivot, console_path=console, new_userns=userns, new_cgroupns=cgroupns)
        it.run_steps(ROOTFS_STEPS)
        os.execve("/bin/sh", ["sh", "-c", script], {"PATH": "/bin"})
    except BaseException as e:
        # fd 2 is the err file; sys.stderr may be pytest's capture object
        os.write(2, f"SETUP-ERROR: {e}\n{traceback.format_exc()}".encode())
    os._exit(111)


def setup_error(r: Result) -> str:
    assert r.status == 111, r
    return r.err.split("SETUP-ERROR: ", 1)[1].splitlines()[0]


def mountinfo_entries(text: str) -> dict:
    """mountpoint -> (mount options, fs type, super options) of the last mount there."""
    result = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or "-" not in fields:
            continue
        sep = fields.index("-")
        result[fields[4]] = (set(fields[5].split(",")), fields[sep + 1], set(fields[sep + 3].split(",")))
    return result


# --- the basics ----------------------------------------------------------------------------------------

def test_default_mounts_devices_and_links(bundle):
    r = run_container(bundle, make_config(), "cat /proc/self/mountinfo; echo ===; "
                      "stat -c '%n %F %t:%T %a %u:%g' /dev/null /dev/zero /dev/full /dev/random "
                      "/dev/urandom /dev/tty; echo ===; for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; "
                      "echo ===; cat /etc/hostname; echo $$")
    assert r.ok, r
    mi, devs, links, rest = r.out.split("===\n")
    m = mountinfo_entries(mi)
    assert m["/"][1] != "tmpfs"
    assert m["/proc"][1] == "proc"
    assert m["/dev"][1] == "tmpfs" and {"nosuid"} <= m["/dev"][0]
    assert m["/dev/pts"][1] == "devpts" and {"nosuid", "noexec"} <= m["/dev/pts"][0]
    assert m["/dev/shm"][1] == "tmpfs" and {"nosuid", "noexec", "nodev"} <= m["/dev/shm"][0]
    assert m["/dev/mqueue"][1] == "mqueue"
    assert m["/sys"][1] == "sysfs" and "ro" in m["/sys"][0]
    # major:minor are printed in hex by stat
    assert devs.splitlines() == [
        "/dev/null character special file 1:3 666 0:0",
        "/dev/zero character special file 1:5 666 0:0",
        "/dev/full character special file 1:7 666 0:0",
        "/dev/random character special file 1:8 666 0:0",
        "/dev/urandom character special file 1:9 666 0:0",
        "/dev/tty character special file 5:0 666 0:0",
    ]
    assert links.splitlines() == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2",
                                  "pts/ptmx"]
    assert rest.splitlines() == ["inside", "1"]  # the rootfs's own file; the shell is pid 1


def test_no_pivot(bundle):
    r = run_container(bundle, make_config(), "cat /etc/hostname; ls /dev/null", no_pivot=True)
    assert r.ok, r
    assert r.out.splitlines() == ["inside", "/dev/null"]


def test_masked_readonly_paths_and_readonly_root(bundle):
    config = make_config(maskedPaths=["/proc/kcore", "/proc/keys", "/proc/acpi", "/sys/firmware", "/proc/does-not-exist"],
                         readonlyPaths=["/proc/sys", "/proc/sysrq-trigger", "/nope"])
    config["root"]["readonly"] = True
    config["mounts"][0]["options"] = ["nosuid", "nodev", "noexec"]  # kept by the read-only bind
    config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    r = run_container(bundle, config, "stat -c '%F %t:%T' /proc/keys; ls -A /sys/firmware | wc -l; "
                      "touch /sys/firmware/x 2>/dev/null && echo firmware-writable; "
                      "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo sys-writable; "
                      "touch /etc/new 2>/dev/null && echo root-writable; "
                      "touch /tmp/ok && echo tmp-writable; cat /proc/self/mountinfo")
    assert r.ok, r
    lines = r.out.splitlines()
    assert lines[:3] == ["character special file 1:3", "0", "tmp-writable"]
    m = mountinfo_entries(r.out)
    assert "ro" in m["/"][0]
    assert m["/proc/sys"][1] == "proc" and {"ro", "nosuid", "nodev", "noexec"} <= m["/proc/sys"][0]
    assert m["/sys/firmware"][1] == "tmpfs" and "ro" in m["/sys/firmware"][0]
    assert "/proc/does-not-exist" not in m and "/nope" not in m


# --- hostile rootfs layouts: the host is never touched ---------------------------------------------------

@pytest.fixture
def host_dir():
    """A host directory (and a file in it) that a hostile rootfs points at; checked unchanged."""
    path = tempfile.mkdtemp(prefix="ocirun-host-dir-")
    try:
        with open(os.path.join(path, "precious"), "w") as f:
            f.write("host data\n")
        os.chmod(os.path.join(path, "precious"), 0o640)
        yield path
    finally:
        shutil.rmtree(path)


def rootfs_of(bundle):
    return os.path.join(bundle, "rootfs")


def test_dev_symlink_to_host_dir_with_dev_tmpfs_is_refused(bundle, host_dir):
    before = tree_snapshot(host_dir)
    os.symlink(host_dir, os.path.join(rootfs_of(bundle), "dev"))
    r = run_container(bundle, make_config(), "true")
    assert "mounts[1] (destination /dev)" in setup_error(r)
    assert "must be a real directory" in setup_error(r)
    assert tree_snapshot(host_dir) == before


def test_dev_symlink_to_host_dir_without_dev_mount_is_refused(bundle, host_dir):
    # no tmpfs on /dev: the device nodes would go into the image's /dev, here a link to the host
    before = tree_snapshot(host_dir)
    os.symlink(host_dir, os.path.join(rootfs_of(bundle), "dev"))
    r = run_container(bundle, make_config(mounts=[MINIMAL_MOUNTS[0]]), "true")
    assert "/dev in the rootfs must be a real directory" in setup_error(r)
    assert tree_snapshot(host_dir) == before


def test_dev_relative_symlink_escape_is_refused(bundle, host_dir):
    before = tree_snapshot(host_dir)
    os.symlink("../../../../../../../../.." + host_dir, os.path.join(rootfs_of(bundle), "dev"))
    r = run_container(bundle, make_config(mounts=[]), "true")
    assert "must be a real directory" in setup_error(r)
    assert tree_snapshot(host_dir) == before


def test_proc_symlink_to_etc_is_refused(bundle):
    before = tree_snapshot("/etc/default") if os.path.isdir("/etc/default") else None
    os.symlink("/etc", os.path.join(rootfs_of(bundle), "proc"))
    r = run_container(bundle, make_config(), "true")
    err = setup_error(r)
    assert "mounts[0] (destination /proc)" in err and "must be a real directory" in err
    if before is not None:
        assert tree_snapshot("/etc/default") == before


def test_sys_symlink_is_refused(bundle, host_dir):
    os.symlink(host_dir, os.path.join(rootfs_of(bundle), "sys"))
    r = run_container(bundle, make_config(), "true")
    assert "mounts[5] (destination /sys)" in setup_error(r)


def test_destination_through_absolute_symlink_stays_inside(bundle, host_dir):
    before = tree_snapshot(host_dir)
    os.symlink(host_dir, os.path.join(rootfs_of(bundle), "data", "link"))
    config = make_config()
    config["mounts"].append({"destination": "/data/link/sub", "type": "tmpfs", "source": "tmpfs"})
    r = run_container(bundle, config, f"grep ' {host_dir}/sub ' /proc/self/mountinfo | cut -d' ' -f5,9")
    assert r.ok, r
    # the symlink resolved inside the rootfs: the new dir is <rootfs><host_dir>/sub
    assert r.out.splitlines() == [f"{host_dir}/sub tmpfs"]
    assert os.path.isdir(rootfs_of(bundle) + host_dir + "/sub")
    assert tree_snapshot(host_dir) == before


def test_destination_through_relative_dotdot_symlink_stays_inside(bundle, host_dir):
    before = tree_snapshot(host_dir)
    os.symlink("../../../../../../../../../.." + host_dir, os.path.join(rootfs_of(bundle), "data", "up"))
    vol = os.path.join(bundle, "vol")
    os.mkdir(vol)
    with open(os.path.join(vol, "file"), "w") as f:
        f.write("volume\n")
    config = make_config()
    config["mounts"].append({"destination": "/data/up/x", "type": "bind", "source": "vol", "options": ["rbind"]})
    config["mounts"].append({"destination": "/data/up/precious", "type": "bind", "source": "vol/file",
                             "options": ["bind"]})
    r = run_container(bundle, config, f"cat {host_dir}/x/file {host_dir}/precious")
    assert r.ok, r
    assert r.out == "volume\nvolume\n"
    assert tree_snapshot(host_dir) == before


def test_dev_null_symlink_to_host_file_is_replaced(bundle, host_dir):
    # no tmpfs on /dev: the image's /dev/null is a link to a host file; ocirun replaces it with 1:3
    target = os.path.join(host_dir, "precious")
    before = tree_snapshot(host_dir)
    os.makedirs(os.path.join(rootfs_of(bundle), "dev"))
    os.symlink(target, os.path.join(rootfs_of(bundle), "dev", "null"))
    os.symlink(target, os.path.join(rootfs_of(bundle), "dev", "zero"))
    config = make_config(mounts=[MINIMAL_MOUNTS[0]], maskedPaths=["/proc/keys"])
    r = run_container(bundle, config, "echo junk > /dev/null; stat -c '%F %t:%T' /dev/null /dev/zero /proc/keys")
    assert r.ok, r
    assert r.out.splitlines() == ["character special file 1:3", "character special file 1:5",
                                  "character special file 1:3"]
    assert tree_snapshot(host_dir) == before


def test_masking_refuses_a_dev_null_that_is_not_1_3(bundle):
    # linux.devices redefines /dev/null as 1:5 (zero): masking with it would leak data; refuse
    config = make_config(maskedPaths=["/proc/keys"],
                         devices=[{"path": "/dev/null", "type": "c", "major": 1, "minor": 5}])
    r = run_container(bundle, config, "true")
    assert "/dev/null in the container is not the 1:3 character device" in setup_error(r)


def test_masked_path_that_is_a_symlink_stays_inside(bundle, host_dir):
    before = tree_snapshot(host_dir)
    rootfs = rootfs_of(bundle)
    os.symlink(os.path.join(host_dir, "precious"), os.path.join(rootfs, "etc", "secret"))
    os.symlink(host_dir + "/sub", os.path.join(rootfs, "etc", "secretdir"))
    os.makedirs(rootfs + host_dir + "/sub/inner")
    with open(rootfs + host_dir + "/precious", "w") as f:
        f.write("image data\n")
    config = make_config(maskedPaths=["/etc/secret", "/etc/secretdir"])
    r = run_container(bundle, config, f"cat /etc/secret && ls -A /etc/secretdir/ | wc -l && cat /proc/self/mountinfo")
    assert r.ok, r
    # the file the link resolves to inside the rootfs is masked by /dev/null, the directory by an empty
    # read-only tmpfs
    assert r.out.splitlines()[0] == "0"
    m = mountinfo_entries(r.out)
    assert m[host_dir + "/sub"][1] == "tmpfs" and "ro" in m[host_dir + "/sub"][0]
    assert m[host_dir + "/precious"][1] == "tmpfs"  # the bind of /dev/null from the /dev tmpfs
    assert tree_snapshot(host_dir) == before


def test_masked_path_symlink_to_missing_is_skipped(bundle, host_dir):
    before = tree_snapshot(host_dir)
    os.symlink(os.path.join(host_dir, "precious"), os.path.join(rootfs_of(bundle), "etc", "secret"))
    r = run_container(bundle, make_config(maskedPaths=["/etc/secret"]), "cat /etc/secret || echo missing")
    assert r.ok, r
    assert r.out.strip().endswith("missing")  # resolves to <rootfs><host_dir>/precious, which is not there
    assert tree_snapshot(host_dir) == before


# --- mount types and options -------------------------------------------------------------------------

@pytest.fixture
def volume(bundle):
    """<bundle>/vol with a file, used as a relative bind source."""
    vol = os.path.join(bundle, "vol")
    os.mkdir(vol)
    with open(os.path.join(vol, "file"), "w") as f:
        f.write("volume\n")
    return vol


def test_bind_relative_source_ro_and_file_bind(bundle, volume):
    config = make_config()
    config["mounts"] += [
        {"destination": "/data/ro", "type": "bind", "source": "vol", "options": ["rbind", "ro", "nosuid"]},
        {"destination": "/data/rw", "source": "vol", "options": ["bind"]},  # no type: bind by option
        {"destination": "/etc/volfile", "type": "bind", "source": os.path.join(volume, "file"),
         "options": ["bind", "ro"]},
    ]
    r = run_container(bundle, config, "cat /data/ro/file /etc/volfile; "
                      "touch /data/ro/x 2>/dev/null && echo ro-writable; "
                      "echo new > /etc/volfile 2>/dev/null && echo file-writable; "
                      "echo written > /data/rw/new && echo rw-ok; cat /proc/self/mountinfo")
    assert r.ok, r
    assert r.out.splitlines()[:3] == ["volume", "volume", "rw-ok"]
    m = mountinfo_entries(r.out)
    assert {"ro", "nosuid"} <= m["/data/ro"][0]
    assert "rw" in m["/data/rw"][0] and "nosuid" not in m["/data/rw"][0]
    assert "ro" in m["/etc/volfile"][0]
    with open(os.path.join(volume, "new")) as f:
        assert f.read() == "written\n"


def test_rbind_ro_is_top_only_rro_is_recursive(bundle):
    # the host's /dev has submounts (/dev/shm, /dev/pts): `ro` makes only the top read-only
    config = make_config()
    config["mounts"] += [
        {"destination": "/hostdev", "type": "bind", "source": "/dev", "options": ["rbind", "ro"]},
        {"destination": "/hostdev2", "type": "bind", "source": "/dev", "options": ["rbind", "rro", "rnosuid"]},
        {"destination": "/hostdev3", "type": "bind", "source": "/dev", "options": ["bind"]},
    ]
    r = run_container(bundle, config, "cat /proc/self/mountinfo")
    assert r.ok, r
    m = mountinfo_entries(r.out)
    assert "ro" in m["/hostdev"][0] and "rw" in m["/hostdev/shm"][0]
    assert {"ro", "nosuid"} <= m["/hostdev2"][0] and {"ro", "nosuid"} <= m["/hostdev2/shm"][0]
    assert "/hostdev3/shm" not in m  # plain bind: not recursive


def test_propagation_options(bundle, volume):
    config = make_config()
    config["mounts"] += [
        {"destination": "/data/shared", "type": "bind", "source": "vol", "options": ["rbind", "rshared"]},
        {"destination": "/data/private", "type": "bind", "source": "vol", "options": ["rbind", "rprivate"]},
        {"destination": "/data/unbindable", "type": "tmpfs", "source": "tmpfs", "options": ["unbindable"]},
    ]
    r = run_container(bundle, config, "cat /proc/self/mountinfo")
    assert r.ok, r
    opt = {}
    for line in r.out.splitlines():
        f = line.split()
        opt[f[4]] = f[6:f.index("-")]
    assert any(x.startswith("shared:") for x in opt["/data/shared"])
    assert opt["/data/private"] == []
    assert opt["/data/unbindable"] == ["unbindable"]


# this host's mounts are private, so the rslave of / leaves the root private: "slave" shows as no tag
@pytest.mark.parametrize("prop,expect", [(None, None), ("slave", None), ("private", None),
                                         ("shared", "shared:"), ("unbindable", "unbindable")])
def test_rootfs_propagation(bundle, prop, expect):
    config = make_config()
    if prop:
        config["linux"]["rootfsPropagation"] = prop
    r = run_container(bundle, config, "cat /proc/self/mountinfo")
    assert r.ok, r
    f = [line.split() for line in r.out.splitlines() if line.split()[4] == "/"][-1]
    optional = f[6:f.index("-")]
    if expect is None:
        assert not any(x.startswith("shared:") for x in optional), optional
    else:
        assert any(x.startswith(expect) for x in optional), optional


def test_rootfs_propagation_unknown_is_a_config_error(bundle):
    r = run_container(bundle, make_config(rootfsPropagation="sideways"), "true")
    assert setup_error(r).startswith("linux.rootfsPropagation: unknown propagation 'sideways'")


def test_tmpfs_options_and_tmpcopyup(bundle):
    rootfs = rootfs_of(bundle)
    os.makedirs(os.path.join(rootfs, "etc", "sub"))
    with open(os.path.join(rootfs, "etc", "sub", "f"), "w") as f:
        f.write("deep\n")
    os.symlink("hostname", os.path.join(rootfs, "etc", "link"))
    os.chmod(os.path.join(rootfs, "etc", "hostname"), 0o600)
    config = make_config()
    config["mounts"] += [
        {"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=750"]},
        {"destination": "/data/t", "type": "tmpfs", "source": "tmpfs",
         "options": ["size=1m", "mode=1777", "noexec", "nodev", "nosuid", "noatime"]},
    ]
    r = run_container(bundle, config, "cat /etc/hostname /etc/sub/f; readlink /etc/link; "
                      "stat -c '%a' /etc/hostname /data/t; echo x > /etc/new && echo etc-writable; "
                      "cat /proc/self/mountinfo")
    assert r.ok, r
    assert r.out.splitlines()[:6] == ["inside", "deep", "hostname", "600", "1777", "etc-writable"]
    m = mountinfo_entries(r.out)
    assert m["/etc"][1] == "tmpfs"
    assert {"noexec", "nodev", "nosuid", "noatime"} <= m["/data/t"][0] and "size=1024k" in m["/data/t"][2]
    assert not os.path.exists(os.path.join(rootfs, "etc", "new"))  # written to the tmpfs, not the image


def test_overlay_by_name(bundle):
    base = os.path.join(bundle, "ov")
    for d in ("lower", "upper", "work"):
        os.makedirs(os.path.join(base, d))
    with open(os.path.join(base, "lower", "l"), "w") as f:
        f.write("lower\n")
    config = make_config()
    config["mounts"].append({"destination": "/data/ov", "type": "overlay", "source": "overlay",
                             "options": [f"lowerdir={base}/lower", f"upperdir={base}/upper",
                                         f"workdir={base}/work"]})
    r = run_container(bundle, config, "cat /data/ov/l && echo up > /data/ov/u && grep -c ' /data/ov ' /proc/self/mountinfo")
    assert r.ok, r
    assert r.out.splitlines() == ["lower", "1"]
    with open(os.path.join(base, "upper", "u")) as f:
        assert f.read() == "up\n"


def test_mount_error_names_the_mount(bundle):
    config = make_config(mounts=[MINIMAL_MOUNTS[0], {"destination": "/data", "type": "tmpfs", "source": "tmpfs"},
                                 {"destination": "/x/y", "type": "nosuchfs", "source": "src", "options": ["ro"]}])
    err = setup_error(run_container(bundle, config, "true"))
    assert err == ("mounts[2] (destination /x/y): mount src=src, dst=/x/y, type=nosuchfs, flags=MS_RDONLY: "
                   "No such device")


def test_missing_bind_source_names_the_mount(bundle):
    config = make_config(mounts=[{"destination": "/data/v", "type": "bind", "source": "nope", "options": ["rbind"]}])
    err = setup_error(run_container(bundle, config, "true"))
    assert err.startswith("mounts[0] (destination /data/v): stat source ") and "No such file" in err


def test_mounts_over_proc_files_are_checked(bundle, volume):
    config = make_config()
    config["mounts"].append({"destination": "/proc/uptime", "type": "bind", "source": "vol/file",
                             "options": ["bind"]})
    r = run_container(bundle, config, "cat /proc/uptime")
    assert r.ok, r
    assert r.out == "volume\n"  # allowed (lxcfs style)
    config["mounts"][-1]["destination"] = "/proc/sys/kernel/core_pattern"
    assert "mounting over /proc/sys/kernel/core_pattern is not allowed" in setup_error(
        run_container(bundle, config, "true"))


def test_mount_over_proc_through_symlink_is_checked(bundle, volume):
    os.symlink("/proc/sys/kernel", os.path.join(rootfs_of(bundle), "etc", "k"))
    config = make_config()
    config["mounts"].append({"destination": "/etc/k/core_pattern", "type": "bind", "source": "vol/file",
                             "options": ["bind"]})
    assert "mounting over /proc/sys/kernel/core_pattern is not allowed" in setup_error(
        run_container(bundle, config, "true"))


def test_no_default_filesystems_are_added(bundle):
    # decision (rootfs.py docstring): like runc, nothing the config does not list; /dev still gets
    # the default nodes and links in the image's /dev
    r = run_container(bundle, make_config(mounts=[]), "test -e /proc || echo no-proc; test -e /sys || echo no-sys; "
                      "test -e /dev/pts || echo no-pts; test -e /dev/shm || echo no-shm; "
                      "stat -c '%t:%T' /dev/null; readlink /dev/ptmx")
    assert r.ok, r
    assert r.out.splitlines() == ["no-proc", "no-sys", "no-pts", "no-shm", "1:3", "pts/ptmx"]


def test_dev_bind_from_host_skips_device_setup(bundle):
    config = make_config(mounts=[MINIMAL_MOUNTS[0],
                                 {"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}],
                         devices=[{"path": "/dev/ocirun-test-node", "type": "c", "major": 1, "minor": 3}])
    r = run_container(bundle, config, "test -e /dev/ocirun-test-node || echo not-created; ls /dev/vda >/dev/null && echo host-dev")
    assert r.ok, r
    assert r.out.splitlines() == ["not-created", "host-dev"]
    assert not os.path.exists("/dev/ocirun-test-node")


def test_linux_devices(bundle):
    config = make_config(devices=[
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600, "uid": 1000, "gid": 1001},
        {"path": "/dev/input/loopish", "type": "b", "major": 7, "minor": 200, "fileMode": 0o640},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o620, "gid": 5},
        {"path": "/dev/uchar", "type": "u", "major": 1, "minor": 7},
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o644},
    ])
    r = run_container(bundle, config, "stat -c '%n %F %t:%T %a %u:%g' /dev/fuse /dev/input/loopish /dev/myfifo "
                      "/dev/uchar /dev/null")
    assert r.ok, r
    assert r.out.splitlines() == [
        "/dev/fuse character special file a:e5 600 1000:1001",
        "/dev/input/loopish block special file 7:c8 640 0:0",
        "/dev/myfifo fifo 0:0 620 0:5",
        "/dev/uchar character special file 1:7 666 0:0",
        "/dev/null character special file 1:3 644 0:0",
    ]


def test_bad_device_type_is_a_config_error(bundle):
    err = setup_error(run_container(bundle, make_config(devices=[{"path": "/dev/x", "type": "z"}]), "true"))
    assert err.startswith("linux.devices[0].type: unknown device type 'z'")


def test_console_is_the_pty(bundle):
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        rdev = os.fstat(slave).st_rdev
        r = run_container(bundle, make_config(), "stat -c '%t:%T' /dev/console; echo hello > /dev/console",
                          console=name)
        assert r.ok, r
        assert r.out.strip() == f"{os.major(rdev):x}:{os.minor(rdev):x}"
        assert b"hello" in os.read(master, 100)
    finally:
        os.close(master)
        os.close(slave)


def test_nothing_leaks_to_a_shared_host_mount(bundle):
    """The bundle sits on a shared host mount: without MS_SLAVE|MS_REC first, every container mount
    would propagate into the host's mount table."""
    shared = tempfile.mkdtemp(prefix="ocirun-shared-")
    mounted = False
    try:
        sc.mount("tmpfs", shared, "tmpfs", 0, "mode=755")
        mounted = True
        sc.mount(None, shared, None, sc.MS_SHARED)
        new_bundle = os.path.join(shared, "bundle")
        shutil.copytree(bundle, new_bundle, symlinks=True)
        before = host_mountinfo()
        config = make_config(maskedPaths=["/proc/keys", "/sys/firmware"], readonlyPaths=["/proc/sys"])
        config["linux"]["rootfsPropagation"] = "shared"
        config["root"]["readonly"] = True
        r = run_container(new_bundle, config, "grep -c . /proc/self/mountinfo")
        assert r.ok, r
        assert int(r.out) > 8
        assert host_mountinfo() == before
    finally:
        if mounted:
            sc.umount2(shared, sc.MNT_DETACH)
        shutil.rmtree(shared)


# --- user namespace, cgroups, idmapped mounts ---------------------------------------------------------

def test_user_namespace_binds_devices_and_falls_back_for_sysfs(bundle):
    # in a user namespace mknod is refused: default devices are binds of the host nodes; sysfs and
    # mqueue (no netns/ipcns of our own) fall back to binds of the host's
    config = make_config(maskedPaths=["/proc/keys"], readonlyPaths=["/proc/sys"],
                         devices=[{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}])
    config["root"]["readonly"] = True
    r = run_container(bundle, config, "stat -c '%n %t:%T' /dev/null /dev/zero /dev/tty /dev/fuse /proc/keys; "
                      "echo x > /dev/null && echo null-ok; cat /proc/self/mountinfo", userns=True)
    assert r.ok, r
    assert r.out.splitlines()[:6] == ["/dev/null 1:3", "/dev/zero 1:5", "/dev/tty 5:0", "/dev/fuse a:e5",
                                      "/proc/keys 1:3", "null-ok"]
    m = mountinfo_entries(r.out)
    assert m["/dev/null"][1] == "devtmpfs"  # the host's node, bound
    assert m["/sys"][1] == "sysfs" and "ro" in m["/sys"][0]


def cgroup_v1_host() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(" - cgroup " in line for line in f)


@pytest.mark.skipif(not cgroup_v1_host(), reason="needs cgroup v1 hierarchies")
@pytest.mark.parametrize("cgroupns", [False, True])
def test_cgroup_v1_mount(bundle, cgroupns):
    config = make_config()
    config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
    r = run_container(bundle, config, "ls /sys/fs/cgroup; echo ===; cat /proc/self/mountinfo; "
                      "mkdir /sys/fs/cgroup/x 2>/dev/null && echo writable; true", cgroupns=cgroupns)
    assert r.ok, r
    listing, mi = r.out.split("===\n")
    with open("/proc/self/cgroup") as f:
        expected = {line.split(":")[1] for line in f if line.split(":")[1]}
    names = set(listing.split())
    assert {"pids", "devices", "systemd"} & expected <= names | {"name=systemd"}
    m = mountinfo_entries(mi)
    assert m["/sys/fs/cgroup"][1] == "tmpfs" and "ro" in m["/sys/fs/cgroup"][0]
    assert m["/sys/fs/cgroup/pids"][1] == "cgroup" and {"ro", "nosuid", "nodev", "noexec"} <= m["/sys/fs/cgroup/pids"][0]
    assert "writable" not in mi


def test_cgroup2_mount_rw_when_asked(bundle):
    config = make_config()
    config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup",
                             "options": ["rw", "nosuid"]})
    r = run_container(bundle, config, "cat /proc/self/mountinfo", cgroupns=True)
    assert r.ok, r
    m = mountinfo_entries(r.out)
    assert m["/sys/fs/cgroup"][1] == "cgroup2" and "rw" in m["/sys/fs/cgroup"][0]


def test_idmapped_bind_mount(bundle, volume):
    os.chown(os.path.join(volume, "file"), 0, 0)
    config = make_config()
    config["mounts"].append({"destination": "/data/idm", "type": "bind", "source": "vol",
                             "options": ["rbind", "idmap"],
                             "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                             "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 1}]})
    r = run_container(bundle, config, "stat -c '%u:%g' /data/idm/file; grep ' /data/idm ' /proc/self/mountinfo")
    assert r.ok, r
    # as runc: the source's owner containerID shows as hostID (uid_map lines "containerID hostID size")
    assert r.out.splitlines()[0] == "1000:2000", r.out
    assert "idmapped" in r.out


def test_idmap_without_mappings_or_userns_is_an_error(bundle, volume):
    config = make_config()
    config["mounts"].append({"destination": "/data/idm", "type": "bind", "source": "vol", "options": ["bind", "idmap"]})
    err = setup_error(run_container(bundle, config, "true"))
    assert err.startswith("mounts[6].options: idmap needs uidMappings/gidMappings on the mount or a user namespace")


def test_only_procfs_on_proc(bundle):
    config = make_config()
    config["mounts"][0] = {"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}
    assert setup_error(run_container(bundle, config, "true")) == (
        "mounts[0] (destination /proc): mounting over /proc is not allowed (only procfs on /proc, "
        "and a few files under it)")


def test_rootfs_that_is_not_a_directory(bundle):
    shutil.rmtree(rootfs_of(bundle))
    with open(rootfs_of(bundle), "w") as f:
        f.write("")
    assert "is not a directory" in setup_error(run_container(bundle, make_config(), "true"))
