"""The container's root filesystem: prepare (mounts, /dev), enter (pivot_root), finalize (masks, ro).

Called by the container init (P2), in its mount namespace (a new one, or the runtime's or one joined
by path: see prepare_rootfs), in this order:
prepare_rootfs(ctx) -> hooks -> enter_rootfs(ctx) -> finalize_rootfs(ctx).
Every path inside the rootfs is resolved by fd (ocirun/linux/safepath.py), so a hostile image can not
make a mount, a device node or a link land on the host.

Default filesystems: the runtime spec (runtime-linux.md) says /proc, /sys, /dev/pts and /dev/shm
SHOULD be available, but it is the config's `mounts` that makes them so. Decision: like runc, ocirun
adds no filesystem the config does not list. Every config generator (runc spec, containerd, podman,
ocirun spec) lists them, a config that leaves one out (no /sys, say) means it, and a drop-in for runc
must produce the same mount table. What ocirun does add to /dev, like runc, is the default device
nodes and the /dev links (tested in tests/integration/test_rootfs_units.py).
"""
import errno
import os
import stat

from ocirun.errors import OciError, SyscallError
from ocirun.linux import devices, lsm, mounts, mountsources, safepath
from ocirun.linux import syscalls as sc


def _linux(ctx) -> dict:
    return ctx.config.get("linux") or {}


def needs_dev_setup(reqs: list) -> bool:
    """runc creates devices and /dev links unless /dev is a bind mount from the host."""
    return not any(r.destination == "/dev" and r.options.bind for r in reqs)


def check_procfs(root_fd: int) -> None:
    """When something is mounted on /proc, it must be a real procfs (D-4) before anyone writes there."""
    try:
        fd = safepath.open_in_root(root_fd, "/proc", sc.O_PATH | os.O_DIRECTORY, no_symlinks=True)
    except SyscallError as e:
        if e.errno == errno.ENOENT:
            return
        raise
    try:
        fs = sc.fstatfs_type(fd)
        parent = safepath.open_in_root(root_fd, "/", sc.O_PATH)
        try:
            mounted = os.fstat(fd).st_dev != os.fstat(parent).st_dev
        finally:
            os.close(parent)
        if mounted and fs != safepath.PROC_SUPER_MAGIC:
            raise safepath.UnsafePathError(f"/proc in the container is not a procfs (f_type {fs:#x})")
    finally:
        os.close(fd)


def prepare_rootfs(ctx) -> None:
    """Propagation, the rootfs bind, the plan's mounts in order, then /dev (devices, links, console).

    The mounts and linux.rootfsPropagation come resolved and checked by `create` (ctx.plan, made by
    validate.check_mounts with ocirun/linux/mountplan.py): config["mounts"] is not read here."""
    trees = ctx.extra.pop("source_trees", None) or {}   # bind sources the runtime cloned (mountsources.py)
    # The runtime's mount namespace (stage 1 opened it: a new one, no user namespace, a bind asking
    # to be shared): such a bind is cloned there, so it is a peer of its shared host source even
    # when "/" is rslave (runc makes it a slave: only the host's mounts reach it). In a user
    # namespace the copies of shared mounts are slaves anyway (the kernel's CL_SHARED_TO_SLAVE).
    runtime_mntns = ctx.extra.pop("runtime_mntns", None)
    reqs = []
    try:
        reqs = mounts.requests(ctx.plan["mounts"])
        for req in reqs:
            req.tree = trees.pop(req.index, None)
        _prepare_rootfs(ctx, reqs, ctx.plan["rootfsPropagation"], runtime_mntns)
    finally:
        if runtime_mntns is not None:
            os.close(runtime_mntns)
        for tree in list(trees.values()) + [r.tree for r in reqs if r.tree is not None]:
            os.close(tree)     # not attached: a step before failed
        for req in reqs:
            req.tree = None


def _prepare_rootfs(ctx, reqs: list, root_prop: int, runtime_mntns: int | None) -> None:
    if not os.path.isdir(ctx.rootfs):
        raise OciError(f"root.path: {ctx.rootfs} is not a directory")
    if ctx.new_mntns:
        # runc's prepareRoot: the copy of the runtime's mounts gets linux.rootfsPropagation before
        # anything is mounted, by default rslave (D-17: nothing we mount propagates to the host).
        # With rshared the copies stay peers of the host's mounts, so a volume bound from a shared
        # host mount is a peer too and mounts travel both ways (Kubernetes' Bidirectional); made
        # rslave first, the volume would only ever be a slave. (Applied to "/" again after pivot_root.)
        sc.mount(None, "/", None, root_prop or (sc.MS_SLAVE | sc.MS_REC), label="/ (linux.rootfsPropagation)")
        _private_parent_mount(ctx.rootfs)
    # A mount of its own, so pivot_root can use it and its submounts move along. Without a new
    # mount namespace (the runtime's, inherited: the spec's "inherit"; or one joined by path) the
    # mounts are made in that namespace and the init chroots into the rootfs (as crun does); the
    # bind is then what root.readonly and rootfsPropagation change, never the mount the rootfs
    # lives on, and one detach (umount -l <rootfs>) removes everything the container mounted there.
    sc.mount(ctx.rootfs, ctx.rootfs, None, sc.MS_BIND | sc.MS_REC)
    root_fd = safepath.open_root(ctx.rootfs)
    ctx.extra["readonly_later"] = [r.destination for r in reqs if mounts.readonly_later(r)]
    try:
        for req in reqs:
            if runtime_mntns is not None and req.tree is None and mountsources.wants_host_peer(req):
                # at its turn: the clone's mount id, mountinfo's order since Linux 6.8, follows the
                # mounts before it (the spec: mounts are made in the listed order)
                req.tree = mountsources.clone_in_runtime_ns(req, runtime_mntns)
            mounts.mount_one(req, root_fd, ctx)
        check_procfs(root_fd)
        if needs_dev_setup(reqs):
            devices.create_devices(root_fd, _linux(ctx).get("devices") or [], in_userns=ctx.new_userns)
            devices.create_links(root_fd)
        if ctx.console_path:
            devices.bind_console(root_fd, ctx.console_path)
    finally:
        os.close(root_fd)


def hide_outside_proc_and_sysfs(rootfs: str) -> None:
    """--no-pivot keeps the old root (the host's tree) in the mount namespace, under the new one. A
    full procfs or sysfs there, the host's /proc, would let the container mount a fresh unmasked
    procfs in a nested user namespace (the kernel allows it when one is already fully visible in the
    namespace), so, as runc's msMoveRoot, each is detached, or covered by a tmpfs where it can not be
    (a mount locked by a user namespace)."""
    for mountpoint in mounts.full_proc_and_sysfs_mounts(outside=rootfs):
        try:
            sc.mount(None, mountpoint, None, sc.MS_SLAVE | sc.MS_REC, label=mountpoint)
            sc.umount2(mountpoint, sc.MNT_DETACH)
        except SyscallError as e:
            if e.errno == errno.ENOENT:
                continue    # under a mount detached just before
            if e.errno not in (errno.EINVAL, errno.EPERM):
                raise
            sc.mount("tmpfs", mountpoint, "tmpfs", sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
                     label=f"{mountpoint} (covering it)")


def _private_parent_mount(rootfs: str) -> None:
    """The mount the rootfs lives on is made private when it is shared (as runc): the rootfs bind
    would propagate to the host's peers of it, and pivot_root refuses a shared parent. An
    unbindable one (rootfsPropagation unbindable) too, or the rootfs could not be bound."""
    point, tags = mounts.parent_mount(rootfs)
    if any(t.startswith("shared:") or t == "unbindable" for t in tags):
        sc.mount(None, point, None, sc.MS_PRIVATE, label=f"{point} (the mount the rootfs is on)")


def enter_rootfs(ctx) -> None:
    """pivot_root into the rootfs (or MS_MOVE + chroot with --no-pivot); cwd "/"."""
    if not ctx.new_mntns:
        sc.chroot(ctx.rootfs)
    elif ctx.no_pivot:
        hide_outside_proc_and_sysfs(ctx.rootfs)
        os.chdir(ctx.rootfs)
        sc.mount(ctx.rootfs, "/", None, sc.MS_MOVE)
        sc.chroot(".")
    else:
        # runc's pivot_root(".", "."): the old root ends up stacked on the new one, with no put_old
        # directory needed inside a (possibly read-only) rootfs; then it is detached.
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new_root = os.open(ctx.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new_root)
            sc.pivot_root(".", ".")
            os.fchdir(old_root)
            # the old root is made a slave (it may be shared: rootfsPropagation), so that its
            # umount cannot propagate to the host
            sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
            sc.umount2(".", sc.MNT_DETACH)
        finally:
            os.close(old_root)
            os.close(new_root)
    os.chdir("/")
    prop = ctx.plan["rootfsPropagation"]
    if prop:
        sc.mount(None, "/", None, prop, label="/ (linux.rootfsPropagation)")


def _open_dev_null(root_fd: int) -> int:
    """/dev/null as an O_PATH fd, verified to be the 1:3 char device (D-5: a masked path must never
    become a bind of some file the image chose)."""
    fd = safepath.open_in_root(root_fd, "/dev/null", sc.O_PATH, no_symlinks=True)
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise safepath.UnsafePathError("/dev/null in the container is not the 1:3 character device; "
                                       "refusing to mask paths with it")
    return fd


def _move_onto(tree: int, target: int, label: str) -> None:
    sc.move_mount(tree, "", target, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH, label=label)


def _mask_dir(target: int, path: str, mount_label: str | None) -> None:
    """A read-only empty tmpfs over a directory (fsopen: no path, no /proc needed)."""
    fs = sc.fsopen("tmpfs")
    try:
        if mount_label and lsm.selinux_enabled():
            sc.fsconfig(fs, sc.FSCONFIG_SET_STRING, "context", mount_label)
        sc.fsconfig(fs, sc.FSCONFIG_SET_STRING, "source", "tmpfs")
        sc.fsconfig(fs, sc.FSCONFIG_CMD_CREATE, label=f"tmpfs for {path}")
        mnt = sc.fsmount(fs, sc.FSMOUNT_CLOEXEC, sc.MOUNT_ATTR_RDONLY, label=path)
    finally:
        os.close(fs)
    try:
        _move_onto(mnt, target, f"masked path {path}")
    finally:
        os.close(mnt)


def _open_existing(root_fd: int, path: str, where: str) -> int | None:
    """An O_PATH fd of `path` resolved inside the root, or None when it does not exist (masked and
    read-only paths that are absent are skipped, as runc does); other failures name `where`."""
    try:
        return safepath.open_in_root(root_fd, path)
    except SyscallError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise SyscallError(e.errno, f"{where}: {e.op}", e.detail) from None


def _each_existing(root_fd: int, paths: list[str], field: str, cover) -> None:
    """cover(target_fd, path) for each of linux.<field> that exists in the root (absent ones are
    skipped, as runc does); a failure names the element: `linux.maskedPaths[3] (/proc/kcore): ...`."""
    for i, path in enumerate(paths):
        where = f"linux.{field}[{i}] ({path})"
        target = _open_existing(root_fd, path, where)
        if target is None:
            continue
        try:
            cover(target, path)
        except SyscallError as e:
            raise SyscallError(e.errno, f"{where}: {e.op}", e.detail) from None
        finally:
            os.close(target)


def mask_paths(root_fd: int, paths: list[str], mount_label: str | None = None) -> None:
    """An empty read-only tmpfs over each directory, /dev/null over anything else."""
    devnull = -1

    def mask(target: int, path: str) -> None:
        nonlocal devnull
        if stat.S_ISDIR(os.fstat(target).st_mode):
            _mask_dir(target, path, mount_label)
            return
        if devnull < 0:
            devnull = _open_dev_null(root_fd)
        tree = sc.open_tree(devnull, "", sc.OPEN_TREE_CLONE | sc.AT_EMPTY_PATH, label="/dev/null")
        try:
            _move_onto(tree, target, f"masked path {path}")
        finally:
            os.close(tree)

    try:
        _each_existing(root_fd, paths, "maskedPaths", mask)
    finally:
        if devnull >= 0:
            os.close(devnull)


def readonly_paths(root_fd: int, paths: list[str]) -> None:
    """A read-only bind of each path over itself; nosuid/nodev/noexec are kept (mount_setattr only
    sets MOUNT_ATTR_RDONLY), and submounts become read-only too."""
    def bind_readonly(target: int, path: str) -> None:
        tree = sc.open_tree(target, "", sc.OPEN_TREE_CLONE | sc.AT_RECURSIVE | sc.AT_EMPTY_PATH, label=path)
        try:
            sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, sc.MOUNT_ATTR_RDONLY, label=path)
            _move_onto(tree, target, f"read-only path {path}")
        finally:
            os.close(tree)

    _each_existing(root_fd, paths, "readonlyPaths", bind_readonly)


def make_readonly_late(root_fd: int, destinations: list[str]) -> None:
    """The read-only tmpfs and /dev mounts that were mounted read-write (mounts.readonly_later)."""
    for dest in destinations:
        fd = safepath.open_in_root(root_fd, dest)
        try:
            sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH, sc.MOUNT_ATTR_RDONLY, label=f"{dest} (ro)")
        finally:
            os.close(fd)


def open_current_root() -> int:
    """O_PATH fd of "/", the container's root once enter_rootfs has run. (The one path lookup of
    "/" after it: tests/syscallrecorder.py, which fakes pivot_root, points it at the rootfs.)"""
    return os.open("/", sc.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def finalize_rootfs(ctx) -> None:
    """After pivot_root: the delayed `ro` of tmpfs and /dev mounts, linux.maskedPaths,
    linux.readonlyPaths, then root.readonly."""
    linux = _linux(ctx)
    root_fd = open_current_root()
    try:
        make_readonly_late(root_fd, ctx.extra.get("readonly_later") or [])
        if linux.get("maskedPaths"):
            mask_paths(root_fd, linux["maskedPaths"], linux.get("mountLabel"))
        if linux.get("readonlyPaths"):
            readonly_paths(root_fd, linux["readonlyPaths"])
        if (ctx.config.get("root") or {}).get("readonly"):
            # only MOUNT_ATTR_RDONLY changes: the root keeps its nosuid/nodev/... (and locked flags)
            sc.mount_setattr(root_fd, "", sc.AT_EMPTY_PATH, sc.MOUNT_ATTR_RDONLY, label="/ (root.readonly)")
    finally:
        os.close(root_fd)
