"""What the container's init knows while it sets the container up (passed to linux/* steps)."""


class InitContext:
    # A plain class, not a dataclass: importing dataclasses costs the init ~6 ms (inspect, ast).
    def __init__(self, *, config: dict, plan: dict, bundle: str, rootfs: str, no_pivot: bool = False,
                 console_path: str | None = None, new_userns: bool = False, new_mntns: bool = True,
                 new_netns: bool = False, new_cgroupns: bool = False, extra: dict | None = None):
        self.config = config              # the parsed config.json
        self.plan = plan                  # what create resolved from it: {"mounts": [...], "rootfsPropagation": MS_*}
        self.bundle = bundle              # absolute bundle directory
        self.rootfs = rootfs              # absolute path of root.path (host view, before pivot_root)
        self.no_pivot = no_pivot          # --no-pivot: MS_MOVE + chroot instead of pivot_root
        self.console_path = console_path  # pty slave path to bind on /dev/console (None: init does it)
        self.new_userns = new_userns      # the container has its own (new or joined) user namespace
        self.new_mntns = new_mntns
        self.new_netns = new_netns
        self.new_cgroupns = new_cgroupns
        self.extra = extra if extra is not None else {}  # room for steps to hand values to later steps
