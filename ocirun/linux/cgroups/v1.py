"""The cgroup v1 manager (also used in hybrid mode): one directory per mounted hierarchy."""
import os
import time

from ocirun.errors import CgroupError
from ocirun.linux.cgroups import fs, v1_frozen
from ocirun.linux.cgroups.base import Manager

# hierarchies whose cgroup.procs lists the container's processes, most specific first
_PIDS_FROM = ("pids", "freezer", "devices", "memory", "cpu", "name=systemd", "")


class V1Manager(Manager):
    version = "v1"

    def __init__(self, path: str, dirs: dict[str, str], *, systemd: bool = False):
        self.path = path
        self.systemd = systemd
        self.dirs = dict(dirs)         # hierarchy key ("cpu,cpuacct", "name=systemd", "" = cgroup2) -> dir
        self._by_ctrl: dict[str, str] = {}
        for key, d in self.dirs.items():
            for ctrl in key.split(",") if key else [""]:
                self._by_ctrl.setdefault(ctrl, d)

    # --- placement --------------------------------------------------------------------------------

    def dir_of(self, controller: str) -> str | None:
        return self._by_ctrl.get(controller)

    def dirs_text(self) -> str:
        return self.dir_of("memory") or self.dir_of("pids") or next(iter(self.dirs.values()), self.path)

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def create(self) -> None:
        for key, d in self.dirs.items():
            fs.mkdirs(d)
            if "cpuset" in key.split(","):
                # a new cpuset cgroup starts with empty cpus/mems, and then refuses every task
                # (ENOSPC). Every level is checked, not only those made here: a concurrent create may
                # have made the shared parent a moment ago and not filled it in yet.
                self._fill_cpuset(d)

    @classmethod
    def _fill_cpuset(cls, level: str) -> None:
        """Give `level` its parent's cpus and mems where it has none, filling empty parents first."""
        parent = os.path.dirname(level)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if fs.read(os.path.join(level, name)):
                continue
            if not fs.read(os.path.join(parent, name)) and os.path.exists(os.path.join(os.path.dirname(parent), name)):
                cls._fill_cpuset(parent)
            fs.write_checked(os.path.join(level, name), fs.read(os.path.join(parent, name)) or "\n", "cpuset")

    def add(self, pid: int) -> None:
        for d in self.dirs.values():
            fs.write_checked(os.path.join(d, "cgroup.procs"), str(pid), f"add pid {pid}")

    # --- limits -----------------------------------------------------------------------------------

    def set(self, resources: dict | None, *, update: bool = False) -> None:
        """Apply linux.resources. Unless update, the device policy is always applied (deny by default,
        plus the devices every container needs); on update only when resources has "devices"."""
        from ocirun.linux.cgroups import resources as res_mod
        resources = resources or {}
        current: dict = {}
        mem_dir = self.dir_of("memory")
        if mem_dir and (resources.get("memory") or {}).get("checkBeforeUpdate"):
            usage = fs.read_or_none(os.path.join(mem_dir, "memory.usage_in_bytes"))
            current["memory.usage"] = int(usage) if usage else None
        dev_dir = self.dir_of("devices")
        if dev_dir:
            current["devices.list"] = fs.read_or_none(os.path.join(dev_dir, "devices.list"))
        writes = res_mod.v1_writes(resources, current, with_devices=not update)
        if not dev_dir:
            # without a devices hierarchy the default policy cannot be enforced; an explicit list is an error
            writes = [w for w in writes if w.controller != "devices" or "devices" in resources]
        fs.apply_writes(writes, self.dir_of, lambda ctrl, d: "")

    # --- freezer ----------------------------------------------------------------------------------

    def can_freeze(self) -> bool:
        return self.dir_of("freezer") is not None

    def _freezer(self) -> str:
        d = self.dir_of("freezer")
        if d is None:
            raise CgroupError("the freezer cgroup controller is not mounted on this host")
        return os.path.join(d, "freezer.state")

    def freeze(self) -> None:
        state = self._freezer()
        # The kernel may stay in FREEZING while a task is in an uninterruptible sleep: thaw now and then
        # and retry, as runc does, rather than leave a half-frozen cgroup; give up after 10 s.
        deadline = time.monotonic() + 10.0
        attempt = 0
        while time.monotonic() < deadline:
            fs.write_checked(state, "FROZEN", "freeze")
            for _ in range(10):
                if fs.read(state) == "FROZEN":
                    return
                time.sleep(0.002)
            attempt += 1
            if attempt % 25 == 0:
                fs.write_checked(state, "THAWED", "freeze")
        fs.write_checked(state, "THAWED", "freeze")
        raise CgroupError(f"unable to freeze {os.path.dirname(state)}: still FREEZING after 10 s")

    def thaw(self) -> None:
        fs.write_checked(self._freezer(), "THAWED", "thaw")

    def is_frozen(self) -> bool:
        return v1_frozen(self.dir_of("freezer"))

    # --- inspection -------------------------------------------------------------------------------

    def pids(self) -> list[int]:
        for key in _PIDS_FROM:
            d = self.dir_of(key)
            if d is not None and os.path.isdir(d):
                return sorted(set(fs.procs(d)))
        return []

    def oom_kill_count(self) -> int:
        d = self.dir_of("memory")
        if d is None:
            return 0
        return fs.keyed(fs.read_or_none(os.path.join(d, "memory.oom_control"))).get("oom_kill", 0)

    def stats(self) -> dict:
        from ocirun.linux.cgroups import stats
        return stats.v1_stats(self)

    # --- removal ----------------------------------------------------------------------------------

    def destroy(self) -> None:
        errors = []
        deadline = time.monotonic() + 2.0     # one budget for all hierarchies: a live process blocks all
        for d in self.dirs.values():
            try:
                fs.rmdir_tree(d, timeout=max(0.05, deadline - time.monotonic()))
            except CgroupError as exc:
                errors.append(str(exc))
        if errors:
            raise CgroupError("; ".join(errors))
        # the shared default parent (ocirun/) is kept: see README "Decisions"

    def to_dict(self) -> dict:
        return {"version": "v1", "path": self.path, "systemd": self.systemd, "dirs": dict(self.dirs)}
