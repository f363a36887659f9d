"""Namespaces: the spec's namespace list turned into setns() joins and unshare() flags.

plan() and time_offsets_text() are pure (create's validation calls them: the init gets their
results in its BOOTSTRAP plan); join() and the id-map writer talk to the kernel.
"""
import os

from ocirun.errors import ConfigError, SyscallError
from ocirun.linux import syscalls as sc

# The one table of namespace types: the spec's name, the name under /proc/<pid>/ns/, the clone(2)
# flag. Rows are in the order exec joins a container's namespaces: the user namespace first (it owns
# the others, and joining it gives the capabilities to join them), the mount namespace last (after
# it paths resolve differently).
TABLE = (
    ("user", "user", sc.CLONE_NEWUSER),
    ("cgroup", "cgroup", sc.CLONE_NEWCGROUP),
    ("ipc", "ipc", sc.CLONE_NEWIPC),
    ("uts", "uts", sc.CLONE_NEWUTS),
    ("network", "net", sc.CLONE_NEWNET),
    ("pid", "pid", sc.CLONE_NEWPID),
    ("time", "time", sc.CLONE_NEWTIME),
    ("mount", "mnt", sc.CLONE_NEWNS),
)
TYPES = frozenset(kind for kind, _, _ in TABLE)              # linux.namespaces[].type values
FLAGS = {kind: flag for kind, _, flag in TABLE}              # spec type -> CLONE_NEW*
PROC_FLAGS = {name: flag for _, name, flag in TABLE}         # /proc/<pid>/ns/<name> -> CLONE_NEW*
JOIN_ORDER = tuple(name for _, name, _ in TABLE)             # /proc names, in exec's join order


def plan(namespaces: list[dict]) -> dict:
    """The namespace actions of linux.namespaces, as data for the init (JSON: the BOOTSTRAP plan).

    join: [[type, path, index]] in the order to setns: the user namespace first (it owns the
      others, and joining it gives the capabilities to join them), the mount namespace last (after
      it paths resolve differently; all paths are opened before any join anyway).
    new_user: a new user namespace must be made (its maps written by the parent) before the others.
    unshare: CLONE_NEW* of the other new namespaces, made in one unshare() after the user namespace.
    user, uts: the container has a user / UTS namespace of its own, new or joined.
    """
    joins, new_user, flags = [], False, 0
    for index, ns in enumerate(namespaces):
        kind = ns.get("type")
        if kind not in FLAGS:
            raise ConfigError(f"linux.namespaces[{index}].type", f"unknown namespace type {kind!r}")
        if ns.get("path"):
            joins.append([kind, ns["path"], index])
        elif kind == "user":
            new_user = True
        else:
            flags |= FLAGS[kind]
    order = {"user": 0, "mount": 2}
    joins.sort(key=lambda j: order.get(j[0], 1))
    joined = {j[0] for j in joins}
    return {"join": joins, "new_user": new_user, "unshare": flags,
            "user": new_user or "user" in joined, "uts": bool(flags & sc.CLONE_NEWUTS) or "uts" in joined}


def time_offsets_text(offsets: dict) -> str:
    """linux.timeOffsets as /proc/self/timens_offsets wants it: a "<clock> <secs> <nanosecs>" line each."""
    return "".join(f"{clock} {int(v.get('secs', 0))} {int(v.get('nanosecs', 0))}\n" for clock, v in offsets.items())


def open_joins(joins: list[list]) -> list[tuple[int, str, int]]:
    """Open every namespace path before joining any (after a join, paths may resolve elsewhere)."""
    opened = []
    try:
        for kind, path, index in joins:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise ConfigError(f"linux.namespaces[{index}].path",
                                  f"open {path}: {exc.strerror}") from None
            opened.append((fd, kind, index))
    except BaseException:
        for fd, _, _ in opened:
            os.close(fd)
        raise
    return opened


def join(opened: list[tuple[int, str, int]]) -> None:
    for fd, kind, index in opened:
        try:
            sc.setns(fd, FLAGS[kind], label=f"linux.namespaces[{index}] ({kind})")
        except SyscallError as exc:
            raise ConfigError(f"linux.namespaces[{index}].path", str(exc)) from None
        finally:
            os.close(fd)


def idmap_text(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def write_id_maps(pid: int, uid_mappings: list[dict], gid_mappings: list[dict]) -> None:
    """The parent writes the maps of a new user namespace (root in the parent namespace may map any id).

    Rootless (a caller without CAP_SETUID/CAP_SETGID): a map of the caller's own id alone is written
    directly (for gid_map after "deny" to /proc/<pid>/setgroups, as the kernel demands); anything
    else goes through the setuid helpers newuidmap/newgidmap (package uidmap), which check
    /etc/subuid and /etc/subgid."""
    if os.geteuid() != 0:
        _write_id_maps_rootless(pid, uid_mappings, gid_mappings)
        return
    for name, maps, field in (("uid_map", uid_mappings, "uidMappings"), ("gid_map", gid_mappings, "gidMappings")):
        if not maps:
            continue
        path = f"/proc/{pid}/{name}"
        try:
            with open(path, "w") as f:
                f.write(idmap_text(maps))
        except OSError as exc:
            raise ConfigError(f"linux.{field}", f"write {path}: {exc.strerror}") from None


def _own_id_only(maps: list[dict], own: int) -> bool:
    return len(maps) == 1 and maps[0].get("hostID") == own and maps[0].get("size") == 1


def _write_id_maps_rootless(pid: int, uid_mappings: list[dict], gid_mappings: list[dict]) -> None:
    for name, maps, field, own, helper in (
            ("uid_map", uid_mappings, "uidMappings", os.geteuid(), "newuidmap"),
            ("gid_map", gid_mappings, "gidMappings", os.getegid(), "newgidmap")):
        if not maps:
            raise ConfigError(f"linux.{field}", "a rootless user namespace needs a mapping of the caller's id")
        if _own_id_only(maps, own):
            if name == "gid_map":
                _write_proc(f"/proc/{pid}/setgroups", "deny", field)
            _write_proc(f"/proc/{pid}/{name}", idmap_text(maps), field)
            continue
        import shutil
        import subprocess
        exe = shutil.which(helper, path="/usr/bin:/bin:/usr/sbin:/sbin")
        if exe is None:
            raise ConfigError(f"linux.{field}", f"mapping more than the caller's own id needs {helper} "
                                                "(package uidmap)")
        args = [exe, str(pid)] + [str(m[k]) for m in maps for k in ("containerID", "hostID", "size")]
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        if proc.returncode != 0:
            detail = " ".join(proc.stdout.split()) or f"exit status {proc.returncode}"
            raise ConfigError(f"linux.{field}", f"{helper}: {detail}")


def _write_proc(path: str, text: str, field: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(f"linux.{field}", f"write {path}: {exc.strerror}") from None


def open_time_offsets() -> int:
    try:
        return os.open("/proc/self/timens_offsets", os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError("linux.timeOffsets", f"open /proc/self/timens_offsets: {exc.strerror}") from None


def write_time_offsets(text: str, fd: int) -> None:
    """linux.timeOffsets (time_offsets_text): written after unshare(CLONE_NEWTIME), before the first
    child is made, to an fd from open_time_offsets() (closed here)."""
    try:
        os.write(fd, text.encode())
    except OSError as exc:
        raise ConfigError("linux.timeOffsets", f"write /proc/self/timens_offsets: {exc.strerror}") from None
    finally:
        os.close(fd)
