"""Rootless: `ocirun` run by a non-root user, with a user namespace (runc's rootless mode).

Each test makes its own user (useradd, unique name; userdel in finally), a busybox rootfs owned by
that user, and drives the CLI as that user through runuser. The state root is not given: it must
default to $XDG_RUNTIME_DIR/ocirun.
"""
import fcntl
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.root

PYTHON = sys.executable


def _subids(path: str, name: str) -> tuple[int, int] | None:
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] == name:
                    return int(parts[1]), int(parts[2])
    except FileNotFoundError:
        pass
    return None


class User:
    def __init__(self, name: str, home: str):
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, pw.pw_uid, pw.pw_gid
        self.home = home                                   # bundles and XDG_RUNTIME_DIR live here
        self.runtime_dir = os.path.join(home, "run")
        self.ids_created: list[str] = []

    def run(self, *args, cwd=None, timeout=60, env=None) -> subprocess.CompletedProcess:
        """ocirun ARGS as this user (stdout/stderr through files: a created init keeps stdio open)."""
        cmd = ["runuser", "-u", self.name, "--", "env", "-i", f"PATH={os.environ.get('PATH', '/usr/bin:/bin')}",
               f"HOME={self.home}", f"XDG_RUNTIME_DIR={self.runtime_dir}", *(env or []),
               PYTHON, "-m", "ocirun", *args]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True,
                                  timeout=timeout, cwd=cwd or self.home).returncode
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(cmd, code, out.read(), err.read())

    def bundle(self, rootfs: str, name: str, mutate=None) -> str:
        """`ocirun spec --rootless` run by the user, then changed by mutate(config)."""
        path = os.path.join(self.home, name)
        os.mkdir(path)
        os.chown(path, self.uid, self.gid)
        proc = self.run("spec", "--rootless", cwd=path)
        assert proc.returncode == 0, proc.stderr
        cfg_path = os.path.join(path, "config.json")
        with open(cfg_path) as f:
            config = json.load(f)
        config["root"]["path"] = rootfs
        config["process"]["terminal"] = False
        if mutate:
            mutate(config)
        with open(cfg_path, "w") as f:
            json.dump(config, f)
        return path


@pytest.fixture
def user():
    name = f"ocirt{uuid.uuid4().hex[:8]}"
    home = tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp")
    os.chmod(home, 0o755)
    created = False
    # useradd creates /etc/subuid and /etc/subgid when missing: leave the host as it was
    missing = [p for p in ("/etc/subuid", "/etc/subgid", "/etc/subuid-", "/etc/subgid-") if not os.path.exists(p)]
    try:
        subprocess.run(["useradd", "--no-create-home", "--home-dir", home, "--shell", "/usr/sbin/nologin", name],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        created = True
        if not _subids("/etc/subuid", name) or not _subids("/etc/subgid", name):
            # subordinate ids for the newuidmap test: a range far from the usual 100000+ ones
            for path in ("/etc/subuid", "/etc/subgid"):
                if not os.path.exists(path):
                    with open(path, "a"):
                        os.chmod(path, 0o644)
            first = 1_500_000_000 + int(name[-4:], 16) * 65536
            ids = f"{first}-{first + 65535}"
            subprocess.run(["usermod", "--add-subuids", ids, "--add-subgids", ids, name], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        u = User(name, home)
        os.chown(home, u.uid, u.gid)
        os.mkdir(u.runtime_dir, 0o700)
        os.chown(u.runtime_dir, u.uid, u.gid)
        yield u
    finally:
        if created:
            try:
                u  # noqa: B018
            except NameError:
                pass
            else:
                # every container the user still has: delete --force kills its processes by pid
                root = os.path.join(u.runtime_dir, "ocirun")
                for cid in (os.listdir(root) if os.path.isdir(root) else []):
                    if not cid.startswith("."):
                        u.run("delete", "--force", cid)
            subprocess.run(["userdel", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for path in missing:
            if os.path.exists(path) and (path.endswith("-") or os.path.getsize(path) == 0):
                os.unlink(path)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def user_rootfs(user):
    base = os.path.join(user.home, "rootfs-base")
    subprocess.run(["bash", os.path.join(REPO, "bundles", "build-rootfs.sh"), "--owner", f"{user.uid}:{user.gid}", base],
                   check=True, stdout=subprocess.DEVNULL)
    return os.path.join(base, "rootfs")


def _pid_status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _wait_stopped(user, cid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = user.run("state", cid)
        assert proc.returncode == 0, proc.stderr
        if json.loads(proc.stdout)["status"] == "stopped":
            return
        time.sleep(0.05)
    raise AssertionError(f"{cid} did not stop")


def test_ocirun_spec_rootless_maps_the_callers_own_ids(user):
    proc = user.run("spec", "--rootless", cwd=user.home)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(user.home, "config.json")) as f:
        config = json.load(f)
    linux = config["linux"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": user.uid, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": user.gid, "size": 1}]
    types = [n["type"] for n in linux["namespaces"]]
    assert "user" in types and "network" not in types
    assert "resources" not in linux


def _who_am_i_bundle(user, user_rootfs, then: str = ":") -> str:
    """A bundle whose program prints its uid, uid_map, setgroups and whether /dev/shm is writable."""
    def mutate(c):
        c["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/setgroups; "
                                            f"touch /dev/shm/w && echo wrote; {then}"]
    return user.bundle(user_rootfs, "b1", mutate)


def test_rootless_user_creates_starts_and_deletes_a_container(user, user_rootfs):
    bundle = _who_am_i_bundle(user, user_rootfs)
    proc = user.run("create", "-b", bundle, "c1")
    assert proc.returncode == 0, proc.stderr
    # no cgroup could be made (not delegated): a clear warning, and the container still runs
    assert "rootless: no cgroup for the container" in proc.stderr
    state_dir = os.path.join(user.runtime_dir, "ocirun", "c1")       # default root: $XDG_RUNTIME_DIR/ocirun
    assert os.path.isfile(os.path.join(state_dir, "state.json"))
    assert os.stat(state_dir).st_uid == user.uid
    state = json.loads(user.run("state", "c1").stdout)
    assert state["status"] == "created"
    pid = state["pid"]
    # the init runs as the user on the host, in its own user namespace with the single-id map
    assert _pid_status(pid)["Uid"].split()[0] == str(user.uid)
    assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
    with open(f"/proc/{pid}/uid_map") as f:
        assert f.read().split() == ["0", str(user.uid), "1"]
    with open(f"/proc/{pid}/gid_map") as f:
        assert f.read().split() == ["0", str(user.gid), "1"]
    with open(f"/proc/{pid}/setgroups") as f:
        assert f.read().strip() == "deny"
    # D-9 without CAP_SYS_ADMIN: the init runs from a sealed memfd copy of the interpreter
    assert os.readlink(f"/proc/{pid}/exe").startswith("/memfd:ocirun-init")
    fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY)
    try:
        seals = fcntl.fcntl(fd, 1034)       # F_GET_SEALS
    finally:
        os.close(fd)
    assert seals & 0xF == 0xF               # SEAL | SHRINK | GROW | WRITE
    # no cgroup write was attempted beyond the failed mkdir: the init is in the caller's cgroups
    with open(f"/proc/{pid}/cgroup") as f, open("/proc/self/cgroup") as g:
        assert "ocirun" not in f.read().replace(g.read(), "")
    proc = user.run("start", "c1")
    assert proc.returncode == 0, proc.stderr
    _wait_stopped(user, "c1")
    proc = user.run("delete", "c1")
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(state_dir)
    assert user.run("list", "-q").stdout.split() == []


def test_rootless_run_output_and_exit_status(user, user_rootfs):
    bundle = _who_am_i_bundle(user, user_rootfs, then="exit 3")
    proc = user.run("run", "-b", bundle, "c1")
    assert proc.returncode == 3, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(user.uid), "1"] and lines[2] == "deny" and lines[3] == "wrote"


def test_rootless_id_ranges_use_newuidmap_and_newgidmap(user, user_rootfs):
    if not shutil.which("newuidmap") or not shutil.which("newgidmap"):
        pytest.skip("package uidmap is not installed")
    sub_u, sub_g = _subids("/etc/subuid", user.name), _subids("/etc/subgid", user.name)
    if not sub_u or not sub_g:
        pytest.skip("useradd made no /etc/subuid and /etc/subgid entries for the test user")
    size = min(sub_u[1], sub_g[1], 65536)

    def mutate(c):
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": user.uid, "size": 1},
                                     {"containerID": 1, "hostID": sub_u[0], "size": size}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": user.gid, "size": 1},
                                     {"containerID": 1, "hostID": sub_g[0], "size": size}]
        for caps in c["process"]["capabilities"].values():
            caps.append("CAP_CHOWN")
        c["process"]["args"] = ["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; "
                                            "mkdir /dev/shm/d && chown 1000:1000 /dev/shm/d && ls -lnd /dev/shm/d; sleep 100"]
    bundle = user.bundle(user_rootfs, "b1", mutate)
    proc = user.run("run", "-d", "-b", bundle, "c1")
    assert proc.returncode == 0, proc.stderr
    pid = json.loads(user.run("state", "c1").stdout)["pid"]
    with open(f"/proc/{pid}/uid_map") as f:
        assert [line.split() for line in f.read().splitlines()] == [["0", str(user.uid), "1"],
                                                                    ["1", str(sub_u[0]), str(size)]]
    with open(f"/proc/{pid}/gid_map") as f:
        assert [line.split() for line in f.read().splitlines()] == [["0", str(user.gid), "1"],
                                                                    ["1", str(sub_g[0]), str(size)]]
    # a file chowned to container uid 1000 belongs to subuid+999 on the host
    deadline = time.monotonic() + 10
    host_dir = f"/proc/{pid}/root/dev/shm/d"
    while not os.path.isdir(host_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    st = os.stat(host_dir)
    assert (st.st_uid, st.st_gid) == (sub_u[0] + 999, sub_g[0] + 999)
    assert user.run("delete", "--force", "c1").returncode == 0


def test_rootless_mapping_ids_it_does_not_own_is_refused(user, user_rootfs):
    def mutate(c):
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
    bundle = user.bundle(user_rootfs, "b1", mutate)
    proc = user.run("create", "-b", bundle, "c1")
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()[-1]
    assert "linux.uidMappings: newuidmap" in err
    assert user.run("list", "-q").stdout.split() == []
    assert os.listdir(os.path.join(user.runtime_dir, "ocirun")) == []


def test_rootless_with_linux_resources_is_a_clear_error(user, user_rootfs):
    def mutate(c):
        c["linux"]["resources"] = {"memory": {"limit": 64 << 20}}
    bundle = user.bundle(user_rootfs, "b1", mutate)
    proc = user.run("create", "-b", bundle, "c1")
    assert proc.returncode == 1
    err = [line for line in proc.stderr.strip().splitlines() if "level=error" in line]
    assert len(err) == 1 and "linux.resources: cannot be applied" in err[0], proc.stderr
    assert user.run("list", "-q").stdout.split() == []
