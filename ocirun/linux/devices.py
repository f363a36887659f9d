"""/dev inside the container: device nodes, the standard links, and /dev/console.

Everything is created with *at() calls on an fd of the rootfs's /dev, which must be a real directory
(not a symlink: D-5), so no node or link can land outside the rootfs. In a user namespace mknod(2)
is not allowed: the host's node is bind-mounted onto an empty file instead, as runc does.
"""
import errno
import os
import stat

from ocirun.errors import ConfigError, SyscallError
from ocirun.linux import safepath
from ocirun.linux import syscalls as sc

# runc's AllowedDevices that it creates in every container (all 0666 root:root).
DEFAULT_DEVICES = [
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0},
]

_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def _node_spec(dev: dict, where: str) -> tuple[int, int, int, int]:
    """(S_IF* | perm bits, rdev, uid, gid) of one linux.devices entry."""
    kind = _TYPES.get(dev.get("type"))
    if kind is None:
        raise ConfigError(f"{where}.type", f"unknown device type {dev.get('type')!r} (want c, b, u or p)")
    rdev = 0
    if kind != stat.S_IFIFO:
        if "major" not in dev or "minor" not in dev:
            raise ConfigError(where, "major and minor are required for c, b and u devices")
        rdev = os.makedev(dev["major"], dev["minor"])
    mode = dev.get("fileMode")
    perm = 0o666 if mode is None else stat.S_IMODE(mode)
    return kind | perm, rdev, dev.get("uid", 0) or 0, dev.get("gid", 0) or 0


def _clear_way(dir_fd: int, name: str, mode: int, rdev: int) -> bool:
    """True when the right node already exists; removes anything else that is in the way (a symlink
    to a host file, a regular file): the image does not get to choose what /dev/null is."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_IFMT(st.st_mode) == stat.S_IFMT(mode) and st.st_rdev == rdev:
        return True
    if stat.S_ISDIR(st.st_mode):
        raise safepath.UnsafePathError(f"a directory is in the way of device {name}")
    os.unlink(name, dir_fd=dir_fd)
    return False


def _bind_host_node(host_path: str, dir_fd: int, name: str, label: str, mode: int = 0o000) -> None:
    """In a user namespace: an empty file, with the host's node bind-mounted onto it."""
    fd = os.open(name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    os.close(fd)
    target = os.open(name, sc.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        tree = sc.open_tree(-100, host_path, sc.OPEN_TREE_CLONE, label=host_path)
        try:
            sc.move_mount(tree, "", target, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH,
                          label=f"src={host_path}, dst={label}")
        finally:
            os.close(tree)
    finally:
        os.close(target)


def create_device(root_fd: int, dev: dict, *, in_userns: bool, where: str = "linux.devices") -> None:
    """One device node at dev["path"] inside the root (mknod, or a bind of the host node in a userns)."""
    path = dev.get("path") or ""
    if not path.startswith("/"):
        raise ConfigError(f"{where}.path", f"must be an absolute path, got {path!r}")
    mode, rdev, uid, gid = _node_spec(dev, where)
    parent, name = safepath.split(path)
    if not name:
        raise ConfigError(f"{where}.path", "must name a file")
    dir_fd = safepath.mkdir_all_in_root(root_fd, parent)
    try:
        if _clear_way(dir_fd, name, mode, rdev):
            if not in_userns:
                sc.fchownat(dir_fd, name, uid, gid)
            return
        if in_userns:
            _bind_host_node(path, dir_fd, name, path)
            return
        old = os.umask(0)  # the config's fileMode exactly, not masked
        try:
            sc.mknodat(dir_fd, name, mode, rdev)
        except OSError as e:
            raise SyscallError(e.errno, "mknod", f"{path} ({dev.get('type')} {os.major(rdev)}:{os.minor(rdev)})") from None
        finally:
            os.umask(old)
        sc.fchownat(dir_fd, name, uid, gid)
    finally:
        os.close(dir_fd)


def open_dev_dir(root_fd: int) -> int:
    """O_PATH fd of the rootfs's /dev: created when missing, refused when it is a symlink (D-5)."""
    try:
        return safepath.require_real_dir(root_fd, "/dev")
    except SyscallError as e:
        if e.errno != errno.ENOENT:
            raise
    return safepath.mkdir_all_in_root(root_fd, "/dev", no_symlinks=True)


def create_devices(root_fd: int, devices: list[dict], *, in_userns: bool) -> None:
    """The default devices, then linux.devices (a config entry for the same path wins)."""
    os.close(open_dev_dir(root_fd))
    configured = {safepath.clean(d.get("path") or "") for d in devices}
    for dev in DEFAULT_DEVICES:
        if dev["path"] not in configured:
            create_device(root_fd, dev, in_userns=in_userns, where=f"default device {dev['path']}")
    for i, dev in enumerate(devices):
        create_device(root_fd, dev, in_userns=in_userns, where=f"linux.devices[{i}]")


def _links() -> list[tuple[str, str]]:
    links = [("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
             ("/proc/self/fd/2", "stderr")]
    if os.path.exists("/proc/kcore"):  # as runc: only when the kernel has one
        links.append(("/proc/kcore", "core"))
    return links


def create_links(root_fd: int) -> None:
    """/dev/fd, /dev/std{in,out,err}, /dev/core, and /dev/ptmx -> pts/ptmx (as runc)."""
    dev = open_dev_dir(root_fd)
    try:
        for target, name in _links():
            try:
                os.symlink(target, name, dir_fd=dev)
            except FileExistsError:
                pass  # runc keeps what the image has: it is inside the rootfs either way
        _remove_non_dir(dev, "ptmx")      # ptmx must be the devpts one: whatever the image has there goes
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev)
    finally:
        os.close(dev)


def _remove_non_dir(dev: int, name: str) -> None:
    """Remove what the image has at /dev/<name>; a directory there is refused, not emptied."""
    try:
        st = os.stat(name, dir_fd=dev, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            raise safepath.UnsafePathError(f"/dev/{name} is a directory")
        os.unlink(name, dir_fd=dev)
    except FileNotFoundError:
        pass


def bind_console(root_fd: int, console_path: str) -> None:
    """/dev/console: an empty 0666 file with the pty slave (a host path, before pivot) bound onto it."""
    dev = open_dev_dir(root_fd)
    try:
        _remove_non_dir(dev, "console")
        old = os.umask(0)
        try:
            _bind_host_node(console_path, dev, "console", "/dev/console", 0o666)
        finally:
            os.umask(old)
    finally:
        os.close(dev)
