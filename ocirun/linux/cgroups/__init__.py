"""The cgroup manager: one interface, a cgroup v1 (and hybrid) and a cgroup v2 implementation.

    m = new_manager(cgroups_path, container_id, systemd=False)   # pure: reads /proc, writes nothing
    m.create()                  # mkdir in every hierarchy (v2: enable controllers in the ancestors)
    m.add(pid)                  # move a process in
    m.set(resources)            # linux.resources; update=True for `ocirun update` (devices only if given)
    m.freeze(); m.thaw(); m.is_frozen()
    is_frozen(m.to_dict())      # the same, from the state file's record, without v1/v2 (state, start, kill)
    m.pids()                    # every process, recursively
    m.kill(sig)                 # every process (v2 SIGKILL: cgroup.kill; else freeze/signal/thaw)
    m.stats()                   # runc `events --stats` "data"
    m.oom_kill_count()          # OOM kills so far (memory.oom_control / memory.events oom_kill)
    m.destroy()                 # rmdir everywhere, retrying while processes exit; idempotent
    m.to_dict() / manager_from_dict(d)   # for the container state file
    m.version ("v1"/"v2"), m.path, m.dirs_text() for messages, m.exists()

Where the cgroup goes: see paths.py (default: relative "ocirun/<id>" under the runtime's own cgroup).
Errors: ConfigError for a bad or unappliable config field, CgroupError for kernel refusals.
This module imports nothing at its top: state/kill/delete load it on every call, and the init loads
the package for cgroup mounting only (ocirun.linux.cgroups.mount).
"""
__all__ = ["new_manager", "manager_from_dict", "detect_mode", "is_frozen"]


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def detect_mode(mountinfo_path: str = "/proc/self/mountinfo") -> str:
    """"v1" (pure v1 or hybrid: controllers on v1) or "v2" (pure unified)."""
    from ocirun.linux.cgroups import paths as _paths
    return _paths.detect_mode(_paths.parse_mountinfo(_read(mountinfo_path)))


def new_manager(cgroups_path: str | None, container_id: str, systemd: bool = False, *,
                mountinfo_path: str = "/proc/self/mountinfo", cgroup_path: str = "/proc/self/cgroup") -> "Manager":  # noqa: F821
    """The manager for a container's cgroup; reads the mount table and our own cgroup, writes nothing."""
    from ocirun.linux.cgroups import paths as _paths
    mounts = _paths.parse_mountinfo(_read(mountinfo_path))
    mode = _paths.detect_mode(mounts)
    path = _paths.container_path(cgroups_path, container_id, systemd)
    own = _paths.parse_proc_cgroup(_read(cgroup_path)) if not path.startswith("/") else {}
    if mode == _paths.MODE_V2:
        from ocirun.linux.cgroups.v2 import V2Manager
        mount = _paths.unified_mount(mounts)
        directory = _paths.resolve_dir(mount, path, own, parent_of_own=True)
        return V2Manager(path, directory, mount.mountpoint, systemd=systemd)
    from ocirun.linux.cgroups.v1 import V1Manager
    dirs = {m.key: _paths.resolve_dir(m, path, own) for m in mounts}
    return V1Manager(path, dirs, systemd=systemd)


def manager_from_dict(d: dict) -> "Manager":
    """Rebuild a manager from Manager.to_dict() (saved in the container state)."""
    if d.get("version") == "v2":
        from ocirun.linux.cgroups.v2 import V2Manager
        return V2Manager(d["path"], d["dir"], d["mountpoint"], systemd=d.get("systemd", False))
    if d.get("version") == "v1":
        from ocirun.linux.cgroups.v1 import V1Manager
        return V1Manager(d["path"], d["dirs"], systemd=d.get("systemd", False))
    from ocirun.errors import CgroupError
    raise CgroupError(f"unknown cgroup manager state: {d!r}")


# --- the freezer's state, read without a manager -------------------------------------------------
# Every state/start/kill derives the status, which asks whether the container is paused: building a
# manager for that imported v1 or v2, fs, base and errno (~0.5 ms). The managers' is_frozen() use
# these same two functions, so there is one definition of "frozen" per version.

def _read_or_none(path: str) -> str | None:
    try:
        return _read(path).strip()
    except OSError:
        return None


def v1_frozen(freezer_dir: str | None) -> bool:
    """FREEZING counts as frozen: the kernel is stopping the tasks (runc says paused as well)."""
    if freezer_dir is None:
        return False
    return _read_or_none(freezer_dir + "/freezer.state") in ("FROZEN", "FREEZING")


def v2_frozen(cgroup_dir: str) -> bool:
    return _read_or_none(cgroup_dir + "/cgroup.freeze") == "1"


def is_frozen(d: dict) -> bool:
    """manager_from_dict(d).is_frozen()."""
    if d.get("version") == "v2":
        return v2_frozen(d["dir"])
    if d.get("version") == "v1":
        # the first hierarchy that has the freezer, as V1Manager.dir_of("freezer")
        return v1_frozen(next((p for key, p in d["dirs"].items() if "freezer" in key.split(",")), None))
    return manager_from_dict(d).is_frozen()     # (raises: an unknown version)
