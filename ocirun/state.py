"""The state store: one directory per container under --root, saved atomically, locked per id.

<root>/<id>/state.json   what create recorded (pid, its start time, bundle, config, cgroup, ...)
<root>/<id>/exec.fifo    exists from create until start: its presence is what makes `created`
<root>/<id>/cleanup.json what `delete --force` needs to find the container's processes (its cgroup,
                         the init's pid) and the mounts a container without a mount namespace
                         leaves in the runtime's, written before any of them exist: a state.json
                         damaged later, or a create killed half-way, never leaves processes or
                         mounts nobody can find

The status is never trusted from the file: it is derived each time from the init process (alive, and
the same process: /proc/<pid>/stat start time matches, so a recycled pid is never taken for it), the
freezer and the fifo, as runc does. The stored "status" is only read for "creating" (a create under
way or killed): create saves "creating", then "created", and `start` does not rewrite the file
(removing exec.fifo is what makes the container running).
"""
import os

from ocirun import fastjson
from ocirun.errors import ContainerNotFound, OciError

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"
STATUSES = (CREATING, CREATED, RUNNING, PAUSED, STOPPED)
STATE_FILE = "state.json"
FIFO = "exec.fifo"
CLEANUP_FILE = "cleanup.json"


class DamagedState(OciError):
    """state.json cannot be read or does not have the shape ocirun writes."""


def validate_id(cid: str) -> None:
    """runc's rule: [a-zA-Z0-9_+-][a-zA-Z0-9_+.-]*, and never a path."""
    ok = bool(cid) and len(cid) <= 1024 and cid not in (".", "..")
    if ok:
        first = cid[0]
        ok = (first.isascii() and (first.isalnum() or first in "_+-")
              and all(c.isascii() and (c.isalnum() or c in "_+.-") for c in cid))
    if not ok:
        raise OciError(f"invalid container ID format: {cid!r}")


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot), or None when the pid is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


class State:
    def __init__(self, root: str, cid: str, data: dict):
        self.root = root
        self.id = cid
        self.data = data

    # --- stored fields -------------------------------------------------------------------------
    @property
    def dir(self) -> str:
        return os.path.join(self.root, self.id)

    @property
    def pid(self) -> int:
        return self.data.get("pid", 0)

    @property
    def bundle(self) -> str:
        return self.data["bundle"]

    @property
    def config(self) -> dict:
        return self.data.get("config", {})

    @property
    def cgroup(self) -> dict | None:
        return self.data.get("cgroup")

    @property
    def annotations(self) -> dict:
        return self.config.get("annotations") or {}

    # --- derived status ------------------------------------------------------------------------
    def init_alive(self) -> bool:
        pid = self.pid
        if pid <= 0:
            return False
        now = proc_start_time(pid)
        if now != self.data.get("pid_start"):
            from ocirun import log
            log.debug(f"container {self.id}: init pid {pid} started at {now}, recorded {self.data.get('pid_start')}")
            return False
        return True

    def is_live(self) -> bool:
        """The status is created, running or paused (not creating, not stopped)."""
        return self.data.get("status") != CREATING and self.init_alive()

    @property
    def status(self) -> str:
        if self.data.get("status") == CREATING:
            return CREATING
        if not self.init_alive():
            return STOPPED
        if self.cgroup and self.is_frozen():
            return PAUSED
        if os.path.exists(os.path.join(self.dir, FIFO)):
            return CREATED
        return RUNNING

    def is_frozen(self) -> bool:
        from ocirun.linux.cgroups import is_frozen
        return is_frozen(self.cgroup)

    def oci_state(self) -> dict:
        """The state of runtime.md, as given to hooks on stdin."""
        status = self.status
        state = {"ociVersion": self.data.get("ociVersion", "1.3.0"), "id": self.id, "status": status,
                 "bundle": self.bundle}
        if status != STOPPED:
            state["pid"] = self.pid
        if self.annotations:
            state["annotations"] = self.annotations
        return state

    def runc_state(self) -> dict:
        """What `state` prints: runtime.md's fields plus runc's rootfs, created and owner."""
        status = self.status
        out = {"ociVersion": self.data.get("ociVersion", "1.3.0"), "id": self.id,
               "pid": self.pid if status != STOPPED else 0, "status": status, "bundle": self.bundle,
               "rootfs": self.data.get("rootfs", ""), "created": self.data.get("created", ""),
               "owner": self.data.get("owner", "")}
        if self.annotations:
            out["annotations"] = self.annotations
        return out

    # --- persistence ---------------------------------------------------------------------------
    def save(self) -> None:
        tmp = os.path.join(self.dir, f".{STATE_FILE}.tmp")
        write_private(tmp, fastjson.dumps(self.data).encode())
        os.replace(tmp, os.path.join(self.dir, STATE_FILE))


def write_private(path: str, data: bytes) -> None:
    """Write a file only root can read (0600, as runc's state.json): it holds the container's
    environment. A file left by an older version with a wider mode is narrowed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _read_json(path: str):
    """The JSON document in path; FileNotFoundError, or ValueError for anything else wrong."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise
    except OSError as exc:      # a directory in its place, EIO, ...
        raise ValueError(exc.strerror or str(exc)) from None
    try:
        return fastjson.loads(raw)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _is_int(v) -> bool:
    return type(v) is int


def _cgroup_problem(cg) -> str | None:
    if cg is None:
        return None
    if not isinstance(cg, dict):
        return "cgroup is not an object"
    strs = {"v1": ("path",), "v2": ("path", "dir", "mountpoint")}.get(cg.get("version"))
    if strs is None:
        return "cgroup.version is not v1 or v2"
    if any(not isinstance(cg.get(k), str) for k in strs):
        return "a cgroup path is not a string"
    if cg["version"] == "v1" and not (isinstance(cg.get("dirs"), dict)
                                      and all(isinstance(d, str) for d in cg["dirs"].values())):
        return "cgroup.dirs is not an object of paths"
    return None


def _mounts_problem(hm) -> str | None:
    if hm is None:
        return None
    if not (isinstance(hm, dict) and isinstance(hm.get("rootfs"), str) and _is_int(hm.get("ns"))
            and isinstance(hm.get("before"), list) and all(_is_int(m) for m in hm["before"])
            and (hm.get("bind") is None or _is_int(hm["bind"]))):
        return "host_mounts is not a mount record"
    return None


def state_problem(data) -> str | None:
    """What is wrong with a state.json document (None: it has the shape save() writes)."""
    if not isinstance(data, dict):
        return f"not an object but {type(data).__name__}"
    if not isinstance(data.get("bundle"), str):
        return "bundle is missing or not a string"
    if data.get("status") not in STATUSES:
        return "status is missing or unknown"
    if not _is_int(data.get("pid")) or data["pid"] < 0:
        return "pid is missing or not a number"
    if data.get("pid_start") is not None and not _is_int(data["pid_start"]):
        return "pid_start is not a number"
    if not isinstance(data.get("config"), dict):
        return "config is missing or not an object"
    for key in ("rootfs", "created", "owner", "ociVersion"):
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"{key} is not a string"
    for key in ("annotations", "hooks", "process", "linux"):   # what the commands read from it
        if data["config"].get(key) is not None and not isinstance(data["config"][key], dict):
            return f"config.{key} is not an object"
    return _cgroup_problem(data.get("cgroup")) or _mounts_problem(data.get("host_mounts"))


def load(root: str, cid: str) -> State:
    validate_id(cid)
    path = os.path.join(root, cid, STATE_FILE)
    try:
        data = _read_json(path)
    except FileNotFoundError:
        raise ContainerNotFound(cid) from None
    except ValueError as exc:
        raise DamagedState(f"container {cid}: damaged state file {path}: {exc}") from None
    problem = state_problem(data)
    if problem:
        raise DamagedState(f"container {cid}: damaged state file {path}: {problem}")
    return State(root, cid, data)


CLEANUP_FIELDS = ("cgroup", "pid", "pid_start", "host_mounts")


def save_cleanup_record(cdir: str, data: dict) -> None:
    """cleanup.json: the container's cgroup, init pid and mounts in the runtime's mount namespace,
    from the state's data, saved atomically (see the module doc)."""
    tmp = os.path.join(cdir, f".{CLEANUP_FILE}.tmp")
    write_private(tmp, fastjson.dumps({k: data.get(k) for k in CLEANUP_FIELDS}).encode())
    os.replace(tmp, os.path.join(cdir, CLEANUP_FILE))


def load_cleanup_record(cdir: str) -> dict | None:
    """The cleanup record, or None when it is missing or damaged."""
    try:
        data = _read_json(os.path.join(cdir, CLEANUP_FILE))
    except (FileNotFoundError, ValueError):
        return None
    if (not isinstance(data, dict) or _cgroup_problem(data.get("cgroup")) or not _is_int(data.get("pid"))
            or (data.get("pid_start") is not None and not _is_int(data["pid_start"]))
            or _mounts_problem(data.get("host_mounts"))):
        return None
    return data


def write_pid_file(path: str, pid: int) -> None:
    """--pid-file: the host pid, written atomically (a relative path is the caller's cwd's)."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def list_ids(root: str, foreign: list | None = None) -> list[str]:
    """Every container directory, damaged or half-made ones included (so that `list` can warn about
    them and `list -q | xargs delete --force` removes them). Other entries (a stray file, a
    symlink, a dot-entry: a name starting with a dot is never an id) are not containers; their
    names go to `foreign`."""
    try:
        entries = os.scandir(root)
    except FileNotFoundError:
        return []
    ids = []
    with entries:
        for e in entries:
            if e.name[0] != "." and e.is_dir(follow_symlinks=False):
                ids.append(e.name)
            elif foreign is not None:
                foreign.append(e.name)
    return sorted(ids)


def is_half_made(root: str, cid: str) -> bool:
    """A container directory without state.json that no command holds locked: a create killed
    before it saved one (while a create runs, it holds the lock)."""
    import fcntl
    path = os.path.join(root, cid)
    if os.path.lexists(os.path.join(path, STATE_FILE)):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


class lock:
    """An exclusive flock on the container's directory, held for one command's whole operation
    (`with lock(root, cid):`)."""

    def __init__(self, root: str, cid: str):
        validate_id(cid)
        self.path = os.path.join(root, cid)
        self.cid = cid
        self.fd = -1

    def __enter__(self) -> None:
        import fcntl    # (here: state and kill read without the lock and do not pay for it)
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(self.cid) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc) -> None:
        os.close(self.fd)
