"""What the v1 and v2 managers share: signalling every process of the cgroup."""
import os

from ocirun.errors import CgroupError

SIGKILL = 9   # (not the signal module: it imports enum, ~1.5 ms on every command)


class Manager:
    """The cgroup manager interface (see ocirun/linux/cgroups/__init__.py for the contract)."""

    version = ""           # "v1" or "v2"
    path = ""              # the container's cgroup path (relative to the hierarchy root after resolution)
    systemd = False

    # subclasses: create, add, set, freeze, thaw, is_frozen, pids, stats, destroy, exists,
    # oom_kill_count, can_freeze, to_dict, dirs_text

    def _signal_all(self, sig: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill(self, sig: int) -> None:
        """Send sig to every process of the cgroup (recursively).

        The cgroup is frozen meanwhile so that no process can fork a child we would miss; SIGKILL then
        needs the thaw to take effect, and a cgroup that was paused stays paused for other signals.
        Without a freezer, signal in a loop until no new pid shows up.
        """
        if not self.can_freeze():
            seen: set[int] = set()
            for _ in range(100):
                new = set(self.pids()) - seen
                if not new:
                    return
                for pid in new:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                seen |= new
            return
        was_frozen = self.is_frozen()
        self.freeze()
        try:
            self._signal_all(sig)
        finally:
            if not was_frozen or sig == SIGKILL:
                self.thaw()

    def _freeze_error(self, what: str) -> CgroupError:
        return CgroupError(f"{what} {self.dirs_text()}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.dirs_text()}>"
