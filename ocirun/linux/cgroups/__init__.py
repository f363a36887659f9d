"""The cgroup manager: one interface, a cgroup v1 (and hybrid) and a cgroup v2 implementation.

    m = new_manager(cgroups_path, container_id, systemd=False)   # pure: reads /proc, writes nothing
    m.create()                  # mkdir in every hierarchy (v2: enable controllers in the ancestors)
    m.add(pid)                  # move a process in
    m.set(resources)            # linux.resources; update=True for `ocirun update` (devices only if given)
    m.freeze(); m.thaw(); m.is_frozen()
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
__all__ = ["new_manager", "manager_from_dict", "detect_mode"]


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
