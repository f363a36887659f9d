"""The cgroup v2 (unified) manager: one directory, controllers enabled through the ancestors'
cgroup.subtree_control, cgroup.freeze / cgroup.kill, and an eBPF program for the device list."""
import errno
import os
import time

from ocirun.errors import CgroupError

SIGKILL = 9   # (not the signal module: it imports enum, ~1.5 ms on every command)
from ocirun.linux.cgroups import fs, v2_frozen
from ocirun.linux.cgroups.base import Manager


class V2Manager(Manager):
    version = "v2"

    def __init__(self, path: str, directory: str, mountpoint: str, *, systemd: bool = False):
        self.path = path
        self.dir = directory
        self.mountpoint = mountpoint
        self.systemd = systemd

    def dirs_text(self) -> str:
        return self.dir

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def _file(self, name: str) -> str:
        return os.path.join(self.dir, name)

    # --- placement --------------------------------------------------------------------------------

    def create(self) -> None:
        rel = os.path.relpath(self.dir, self.mountpoint)
        if rel.startswith(".."):
            raise CgroupError(f"{self.dir} is not under the cgroup2 mount {self.mountpoint}")
        current = self.mountpoint
        for part in [p for p in rel.split("/") if p not in ("", ".")]:
            # every controller the parent has is enabled for its children (runc); a failure here shows
            # up later as a ConfigError naming the resource that needs the missing controller
            self._enable_controllers(current)
            current = os.path.join(current, part)
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                pass
            except OSError as exc:
                raise CgroupError(f"mkdir {current}: {os.strerror(exc.errno)}") from exc

    @staticmethod
    def _enable_controllers(directory: str) -> None:
        available = (fs.read_or_none(os.path.join(directory, "cgroup.controllers")) or "").split()
        enabled = (fs.read_or_none(os.path.join(directory, "cgroup.subtree_control")) or "").split()
        missing = [c for c in available if c not in enabled]
        if not missing:
            return
        control = os.path.join(directory, "cgroup.subtree_control")
        try:
            fs.write(control, " ".join("+" + c for c in missing))
        except OSError:
            for c in missing:
                try:
                    fs.write(control, "+" + c)
                except OSError:
                    pass

    def add(self, pid: int) -> None:
        fs.write_checked(self._file("cgroup.procs"), str(pid), f"add pid {pid}")

    # --- limits -----------------------------------------------------------------------------------

    def _why_missing(self, controller: str, directory: str) -> str:
        if not controller:
            return ""
        have = (fs.read_or_none(os.path.join(directory, "cgroup.controllers")) or "").split()
        if controller not in have:
            return f" (the {controller} controller is not enabled for this cgroup; available: {' '.join(have) or 'none'})"
        return " (not supported by this kernel)"

    def set(self, resources: dict | None, *, update: bool = False) -> None:
        """Apply linux.resources (see V1Manager.set for `update` and devices)."""
        from ocirun.linux.cgroups import resources as res_mod
        resources = resources or {}
        current: dict = {"cpu.max": fs.read_or_none(self._file("cpu.max"))}
        if (resources.get("memory") or {}).get("checkBeforeUpdate"):
            usage = fs.read_or_none(self._file("memory.current"))
            current["memory.usage"] = int(usage) if usage else None
        writes = res_mod.v2_writes(resources, current)
        fs.apply_writes(writes, lambda ctrl: self.dir, self._why_missing)
        if "devices" in resources or not update:
            self._set_devices(resources.get("devices"))

    def _set_devices(self, spec_devices) -> None:
        from ocirun.linux import syscalls as sc
        from ocirun.linux.cgroups import devices
        policy = devices.emulate(devices.rules_from_spec(spec_devices))
        program = devices.bpf_program(policy)
        field = "linux.resources.devices"
        dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                old = sc.bpf_prog_query(dfd, sc.BPF_CGROUP_DEVICE)
            except OSError:
                old = []
            try:
                pfd = sc.bpf_prog_load(sc.BPF_PROG_TYPE_CGROUP_DEVICE, program, name="ocirun_dev")
            except OSError as exc:
                raise CgroupError(f"{field}: loading the device eBPF program: {exc}") from exc
            try:
                try:
                    sc.bpf_prog_attach(dfd, pfd, sc.BPF_CGROUP_DEVICE, sc.BPF_F_ALLOW_MULTI)
                except OSError as exc:
                    # a program attached without BPF_F_ALLOW_MULTI (by another tool) blocks a second one:
                    # detach it first, then attach ours
                    if not old or exc.errno not in (errno.EPERM, errno.EEXIST, errno.EINVAL):
                        raise CgroupError(f"{field}: attaching the device eBPF program to {self.dir}: {exc}") from exc
                    self._detach(dfd, old)
                    old = []
                    sc.bpf_prog_attach(dfd, pfd, sc.BPF_CGROUP_DEVICE, sc.BPF_F_ALLOW_MULTI)
                # the new program is in place (programs of one cgroup must all allow), drop the old ones
                self._detach(dfd, old)
            finally:
                os.close(pfd)
        finally:
            os.close(dfd)

    @staticmethod
    def _detach(dfd: int, prog_ids: list[int]) -> None:
        from ocirun.linux import syscalls as sc
        for prog_id in prog_ids:
            try:
                ofd = sc.bpf_prog_get_fd_by_id(prog_id)
            except OSError:
                continue
            try:
                sc.bpf_prog_detach(dfd, ofd, sc.BPF_CGROUP_DEVICE)
            except OSError as exc:
                raise CgroupError(f"detaching device eBPF program {prog_id}: {exc}") from exc
            finally:
                os.close(ofd)

    # --- freezer ----------------------------------------------------------------------------------

    def can_freeze(self) -> bool:
        return os.path.exists(self._file("cgroup.freeze"))

    def _set_frozen(self, value: str, timeout: float = 30.0) -> None:
        if not self.can_freeze():
            raise CgroupError(f"{self.dir}/cgroup.freeze does not exist (the kernel has no cgroup v2 freezer)")
        fs.write_checked(self._file("cgroup.freeze"), value, "freeze" if value == "1" else "thaw")
        deadline = time.monotonic() + timeout
        delay = 0.001
        while fs.keyed(fs.read_or_none(self._file("cgroup.events"))).get("frozen", 0) != int(value):
            if time.monotonic() >= deadline:
                raise CgroupError(f"timed out waiting for {self.dir} to {'freeze' if value == '1' else 'thaw'}")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def freeze(self) -> None:
        self._set_frozen("1")

    def thaw(self) -> None:
        self._set_frozen("0")

    def is_frozen(self) -> bool:
        return v2_frozen(self.dir)

    def kill(self, sig: int) -> None:
        if sig == SIGKILL and os.path.exists(self._file("cgroup.kill")):
            fs.write_checked(self._file("cgroup.kill"), "1", "kill")
            return
        super().kill(sig)

    # --- inspection -------------------------------------------------------------------------------

    def pids(self) -> list[int]:
        return sorted(set(fs.procs(self.dir)))

    def oom_kill_count(self) -> int:
        return fs.keyed(fs.read_or_none(self._file("memory.events"))).get("oom_kill", 0)

    def stats(self) -> dict:
        from ocirun.linux.cgroups import stats
        return stats.v2_stats(self)

    # --- removal ----------------------------------------------------------------------------------

    def destroy(self) -> None:
        fs.rmdir_tree(self.dir)     # (not the shared default parent: see README "Decisions")

    def to_dict(self) -> dict:
        return {"version": "v2", "path": self.path, "systemd": self.systemd, "dir": self.dir,
                "mountpoint": self.mountpoint}

