"""What the container's init knows while it sets the container up (passed to linux/* steps)."""
from dataclasses import dataclass, field


@dataclass(slots=True, kw_only=True)
class InitContext:
    config: dict                 # the parsed config.json
    bundle: str                  # absolute bundle directory
    rootfs: str                  # absolute path of root.path (host view, before pivot_root)
    no_pivot: bool = False       # --no-pivot: MS_MOVE + chroot instead of pivot_root
    console_path: str | None = None   # pty slave path (/dev/pts/N of the host devpts) when process.terminal
    new_userns: bool = False     # the container has its own (new or joined) user namespace
    new_mntns: bool = True       # the container has a new mount namespace
    new_netns: bool = False
    new_cgroupns: bool = False
    extra: dict = field(default_factory=dict)  # room for steps to hand values to later steps
