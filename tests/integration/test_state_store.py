"""The state store under --root: private to root, and robust against a damaged state.json.

state.json holds the container's config, environment included (tokens, passwords), so the root and
container directories are 0700 and the files 0600 (as runc), checked here as an unprivileged user.
"""
import json
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from tests.conftest import Runtime, base_config

pytestmark = pytest.mark.root

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def public_parent(rootfs_dir):
    """A runtime whose --root lies in a world-traversable directory (pytest's tmp is 0700, which
    would hide the state from other users whatever its own modes are)."""
    parent = tempfile.mkdtemp(prefix="ocirun-state-")
    os.chmod(parent, 0o755)
    rt = Runtime(os.path.join(parent, "root"), parent, rootfs_dir)
    try:
        yield rt
    finally:
        rt.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


def _as_nobody(*cmd):
    return subprocess.run(NOBODY + list(cmd), capture_output=True, text=True)


def _create_with_secret(rt, cid="c1"):
    config = base_config(["sleep", "1000"])
    config["process"]["env"].append("API_TOKEN=s3cr3t")
    rt("create", "--bundle", rt.bundle(config), cid, check=True)
    return os.path.join(rt.root, cid)


def test_state_is_private_to_root(public_parent):
    cdir = _create_with_secret(public_parent)
    root = public_parent.root
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(cdir).st_mode) == 0o700
    state_json = os.path.join(cdir, "state.json")
    assert stat.S_IMODE(os.stat(state_json).st_mode) == 0o600
    assert "s3cr3t" in open(state_json).read()   # (the secret is there, so hiding it matters)
    proc = _as_nobody("cat", state_json)
    assert proc.returncode != 0 and "s3cr3t" not in proc.stdout, proc
    assert _as_nobody("ls", root).returncode != 0
    # still startable and deletable: the init reaches exec.fifo through an fd, not the 0700 path
    public_parent("start", "c1", check=True)
    assert public_parent.state("c1")["status"] == "running"
    public_parent("delete", "--force", "c1", check=True)


def test_state_is_private_in_a_root_made_by_someone_else(public_parent):
    """A --root that already exists with a wide mode (made by a manager, or an older ocirun) is
    left as it is (as runc); the container's own directory and files still hide the state."""
    os.makedirs(public_parent.root, 0o755)
    os.chmod(public_parent.root, 0o755)
    cdir = _create_with_secret(public_parent)
    state_json = os.path.join(cdir, "state.json")
    proc = _as_nobody("cat", state_json)
    assert proc.returncode != 0 and "s3cr3t" not in proc.stdout, proc
    assert _as_nobody("ls", cdir).returncode != 0
    assert stat.S_IMODE(os.stat(state_json).st_mode) == 0o600


def test_a_non_root_process_user_still_starts(public_parent):
    """process.user 65534 opens exec.fifo (0622) to wait for start, with the container dir 0700."""
    config = base_config(["id", "-u"])
    config["process"]["user"] = {"uid": 65534, "gid": 65534}
    proc = public_parent.run_output(config)
    assert proc.returncode == 0 and proc.stdout.strip() == "65534", proc


# --- a damaged state.json ---------------------------------------------------------------------------

def _truncated(text):
    return text[: len(text) // 2]


def _retyped(key, value):
    def corrupt(text):
        data = json.loads(text)
        data[key] = value
        return json.dumps(data)
    return corrupt


DAMAGE = {
    "truncated": _truncated,
    "empty": lambda text: "",
    "empty-object": lambda text: "{}",
    "array": lambda text: "[]",
    "null": lambda text: "null",
    "unterminated-string": lambda text: '{"bundle": "/x',
    "pid-is-a-string": _retyped("pid", "12"),
    "pid-is-negative": _retyped("pid", -5),
    "status-is-a-number": _retyped("status", 5),
    "config-is-a-list": _retyped("config", []),
    "cgroup-is-a-string": _retyped("cgroup", "x"),
    "cgroup-dirs-is-a-list": lambda text: json.dumps(dict(json.loads(text), cgroup={"version": "v1", "path": "p", "dirs": []})),
    "non-utf8": lambda text: b"\xff\xfe" + text.encode("utf-16-le"),
    "nested-deeply": lambda text: "[" * 100000 + "]" * 100000,
    "directory": None,
}


def _damage(rt, cid, how):
    path = os.path.join(rt.root, cid, "state.json")
    if how == "directory":
        os.unlink(path)
        os.mkdir(path)
        open(os.path.join(path, "junk"), "w").close()
        return
    text = open(path).read()
    new = DAMAGE[how](text)
    with open(path, "wb") as f:
        f.write(new if isinstance(new, bytes) else new.encode())


def _alive(pid):
    from ocirun.state import proc_start_time
    return proc_start_time(pid) is not None


def _one_line_error(proc):
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def _two_running(rt):
    bundle = rt.bundle(base_config(["sleep", "1000"]))
    for cid in ("good", "bad"):
        rt("create", "--bundle", bundle, cid, check=True)
        rt("start", cid, check=True)
    return rt.state("bad")["pid"]


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_state_file_spoils_only_its_container(ocirun, how):
    bad_pid = _two_running(ocirun)
    _damage(ocirun, "bad", how)
    # list: a warning naming the bad entry, the others listed
    proc = ocirun("list")
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()[1:]] == ["good"]
    assert "bad" in proc.stderr and "damaged state" in proc.stderr and "Traceback" not in proc.stderr
    proc = ocirun("list", "--format", "json")
    assert proc.returncode == 0 and [s["id"] for s in json.loads(proc.stdout)] == ["good"], proc.stderr
    assert ocirun("list", "-q").stdout.split() == ["bad", "good"]
    # state, kill, start, plain delete: one line, naming the damage
    for args in (["state", "bad"], ["kill", "bad"], ["start", "bad"], ["delete", "bad"]):
        proc = ocirun(*args)
        _one_line_error(proc)
        assert "damaged state file" in proc.stderr, (args, proc.stderr)
    assert _alive(bad_pid)
    # delete --force finds the container's processes through its cleanup record
    proc = ocirun("delete", "--force", "bad")
    assert proc.returncode == 0, proc.stderr
    assert not _alive(bad_pid)
    assert not os.path.lexists(os.path.join(ocirun.root, "bad"))
    assert _cgroup_dirs_of(ocirun.root, "bad") == []
    assert ocirun.state("good")["status"] == "running"


def test_without_a_cleanup_record_the_default_cgroup_is_found(ocirun):
    """A container made before cleanup records existed: its default cgroup is derived from its id."""
    bad_pid = _two_running(ocirun)
    os.unlink(os.path.join(ocirun.root, "bad", "cleanup.json"))
    _damage(ocirun, "bad", "empty-object")
    proc = ocirun("delete", "--force", "bad")
    assert proc.returncode == 0, proc.stderr
    assert not _alive(bad_pid) and not os.path.lexists(os.path.join(ocirun.root, "bad"))
    assert _cgroup_dirs_of(ocirun.root, "bad") == []


def test_delete_force_never_succeeds_while_the_processes_may_run(ocirun):
    """No record and a cgroupsPath of its own: nothing says where its processes are. delete --force
    fails (before, `{}` made it exit 0 with the container still running) and keeps the directory."""
    from ocirun.linux.cgroups import manager_from_dict
    config = base_config(["sleep", "1000"])
    config["linux"]["cgroupsPath"] = f"ocirun-state-test-{os.getpid()}"
    ocirun("create", "--bundle", ocirun.bundle(config), "bad", check=True)
    cgroup = json.load(open(os.path.join(ocirun.root, "bad", "state.json")))["cgroup"]
    pid = ocirun.state("bad")["pid"]
    try:
        os.unlink(os.path.join(ocirun.root, "bad", "cleanup.json"))
        _damage(ocirun, "bad", "empty-object")
        proc = ocirun("delete", "--force", "bad")
        _one_line_error(proc)
        assert "cannot be found" in proc.stderr and _alive(pid)
        assert os.path.isdir(os.path.join(ocirun.root, "bad"))
    finally:
        mgr = manager_from_dict(cgroup)
        mgr.kill(9)
        mgr.destroy()
        shutil.rmtree(os.path.join(ocirun.root, "bad"), ignore_errors=True)


def _cgroup_dirs_of(root, cid):
    from ocirun.parent import default_cgroup_name
    from tests.leftovers import _cgroup_dirs
    name = default_cgroup_name(root, cid)
    return [d for d in _cgroup_dirs(cid) if os.path.basename(d) == name]


def test_a_half_made_container_is_listed_as_such_and_deleted(ocirun):
    """A directory without state.json (a create killed right after its mkdir): `list` says so,
    `list -q` gives its id, `delete --force` removes it."""
    ocirun("list")      # makes the root
    os.makedirs(os.path.join(ocirun.root, "half"))
    proc = ocirun("list")
    assert proc.returncode == 0 and "half" in proc.stderr and "no state file" in proc.stderr, proc.stderr
    assert ocirun("list", "-q").stdout.split() == ["half"]
    _one_line_error(ocirun("state", "half"))
    proc = ocirun("delete", "--force", "half")
    assert proc.returncode == 0, proc.stderr
    assert not os.path.lexists(os.path.join(ocirun.root, "half"))


def test_start_does_not_rewrite_the_state_file(ocirun):
    """The status is derived (the init, the freezer, exec.fifo), so start has nothing to save: its
    write of "running" was never read and cost ~0.5 ms of every start."""
    ocirun("create", "--bundle", ocirun.bundle(base_config(["sleep", "1000"])), "c1", check=True)
    path = os.path.join(ocirun.root, "c1", "state.json")
    before = os.stat(path)
    with open(path, "rb") as f:
        content = f.read()
    ocirun("start", "c1", check=True)
    assert ocirun.state("c1")["status"] == "running"
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    with open(path, "rb") as f:
        assert f.read() == content
    ocirun("kill", "c1", "KILL", check=True)
