"""Mounting cgroupfs inside the container for a `type: cgroup` (or cgroup2) mount, as runc does.

Called by ocirun.linux.mounts while the rootfs is prepared (before the init seals its imports).
"""
import errno
import os

from ocirun.errors import SyscallError
from ocirun.linux import mountinfo, safepath
from ocirun.linux import syscalls as sc

CGROUP2_SUPER_MAGIC = 0x63677270
DEFAULT_CGROUP_FLAGS = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


def host_is_cgroup2() -> bool:
    fd = os.open("/sys/fs/cgroup", sc.O_PATH | os.O_CLOEXEC)
    try:
        return sc.fstatfs_type(fd) == CGROUP2_SUPER_MAGIC
    finally:
        os.close(fd)


def self_cgroups() -> list[tuple[str, str]]:
    """(controllers, path) of each line of /proc/self/cgroup (controllers '' for the v2 line)."""
    result = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            result.append((ctrls, path))
    return result


def v1_mounts() -> list[tuple[str, str, set]]:
    """(mountpoint, mount root, super options) of every cgroup v1 mount we can see."""
    return [(m.mountpoint, m.root, set(m.super_options.split(","))) for m in mountinfo.read() if m.fstype == "cgroup"]


def _cgroup_flags(req) -> int:
    """nosuid,nodev,noexec always; read-only only when the mount says `ro` (as runc, which passes
    the mount's own flags on: a cgroup mount without `ro` is read-write)."""
    return DEFAULT_CGROUP_FLAGS | (req.options.flags & sc.MS_RDONLY)


def _bind_host_dir(source: str, target_fd: int, flags: int, label: str) -> None:
    tree = sc.open_tree(-100, source, sc.OPEN_TREE_CLONE | sc.AT_RECURSIVE, label=f"src={source}")
    try:
        attrs = ((sc.MOUNT_ATTR_RDONLY if flags & sc.MS_RDONLY else 0) | sc.MOUNT_ATTR_NOSUID
                 | sc.MOUNT_ATTR_NODEV | sc.MOUNT_ATTR_NOEXEC)
        sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, attrs, label=f"src={source}, dst={label}")
        sc.move_mount(tree, "", target_fd, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH,
                      label=f"src={source}, dst={label}")
    finally:
        os.close(tree)


def mount_cgroup(req, root_fd: int, ctx) -> None:
    """cgroup2 on a unified host (or when asked for by type); a tmpfs of v1 hierarchies otherwise.

    The init is already in its cgroup (and its cgroup namespace when one was asked for). With a
    cgroup namespace the hierarchies are mounted fresh and show the namespace root; without one the
    container's own cgroup directories are bind-mounted from the host, as runc does.
    """
    flags = _cgroup_flags(req)
    if req.fstype == "cgroup2" or host_is_cgroup2():
        return _mount_cgroup2(req, root_fd, ctx, flags)
    target = safepath.mkdir_all_in_root(root_fd, req.destination)
    try:
        sc.mount("tmpfs", safepath.fd_path(target), "tmpfs", DEFAULT_CGROUP_FLAGS, "mode=755",
                 label=req.destination)
    finally:
        os.close(target)
    tmpfs = safepath.open_in_root(root_fd, req.destination, sc.O_PATH | os.O_DIRECTORY)
    try:
        hierarchies = v1_mounts()
        for ctrls, path in self_cgroups():
            if not ctrls:
                continue  # the v2 line of a hybrid host: runc mounts only the v1 hierarchies
            wanted = set(ctrls.split(","))
            found = [h for h in hierarchies if wanted <= h[2]]
            if not found:
                continue  # a hierarchy we can not see (not mounted in this mount namespace)
            mountpoint, mroot, _ = found[0]
            name = os.path.basename(mountpoint)
            dest = f"{req.destination}/{name}"
            sub = safepath.mkdir_all_in_root(root_fd, dest)
            try:
                if ctx.new_cgroupns:
                    data = ctrls if not ctrls.startswith("name=") else f"none,{ctrls}"
                    sc.mount("cgroup", safepath.fd_path(sub), "cgroup", flags, data, label=dest)
                else:
                    rel = os.path.relpath(path, mroot) if mroot != "/" else path.lstrip("/")
                    _bind_host_dir(os.path.normpath(os.path.join(mountpoint, rel)), sub, flags, dest)
            finally:
                os.close(sub)
            for ctrl in wanted:  # cpu -> cpu,cpuacct, as on the host
                if ctrl != name and not ctrl.startswith("name="):
                    try:
                        os.symlink(name, ctrl, dir_fd=tmpfs)
                    except FileExistsError:
                        pass
        if flags & sc.MS_RDONLY:
            sc.mount_setattr(tmpfs, "", sc.AT_EMPTY_PATH, sc.MOUNT_ATTR_RDONLY, label=req.destination)
    finally:
        os.close(tmpfs)


def _mount_cgroup2(req, root_fd: int, ctx, flags: int) -> None:
    target = safepath.mkdir_all_in_root(root_fd, req.destination)
    try:
        try:
            sc.mount("cgroup2", safepath.fd_path(target), "cgroup2", flags, req.options.data_text(),
                     label=req.destination)
            return
        except SyscallError as e:
            # a user namespace without a cgroup namespace can not mount cgroup2: bind instead (runc #2158)
            if e.errno not in (errno.EPERM, errno.EBUSY):
                raise
        base = "/sys/fs/cgroup" if host_is_cgroup2() else "/sys/fs/cgroup/unified"
        source = base
        if not ctx.new_cgroupns:
            path = dict(self_cgroups()).get("", "/")
            source = os.path.normpath(base + "/" + path)
        _bind_host_dir(source, target, flags, req.destination)
    finally:
        os.close(target)
