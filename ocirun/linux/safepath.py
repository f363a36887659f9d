"""Paths inside an untrusted rootfs, resolved and created by fd (hardening D-1, D-3, D-5).

The rootfs may contain symlinks that point anywhere (`/dev -> /tmp/host-dir`, `../../..`). Every
lookup here goes through openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) from an fd of the rootfs,
so the kernel resolves `..` and absolute symlinks as if the rootfs were `/`: nothing ever resolves to
a host path. Directories and files are created with *at() calls on fds found that way, and re-opened
with O_NOFOLLOW so a component swapped for a symlink in between is refused, not followed.
Functions return O_PATH fds (close them); use fd_path(fd) to name one as a mount(2) target.
"""
import errno
import os
import stat

from ocirun.errors import OciError, SyscallError
from ocirun.linux import syscalls as sc

RESOLVE = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS
O_PATH = sc.O_PATH
PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
TMPFS_MAGIC = 0x01021994


class UnsafePathError(OciError):
    """The rootfs has a layout we refuse to work with (a symlinked /proc, a fake /dev/null...)."""


def clean(path: str) -> str:
    """Lexically cleaned absolute path: `a/../b//c/` -> `/b/c` (inside a root, `/..` is `/`)."""
    return os.path.normpath("/" + path).replace("//", "/")


def _rel(path: str) -> str:
    return clean(path).lstrip("/") or "."


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def open_root(path: str) -> int:
    """An O_PATH fd of the rootfs directory (a trusted host path)."""
    return os.open(path, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def open_in_root(root_fd: int, path: str, flags: int = O_PATH, *, no_symlinks: bool = False) -> int:
    """Open `path` as seen from inside the root; symlinks are followed but stay inside it.

    no_symlinks: refuse any symlink on the way (ELOOP) - for /proc, /sys and /dev, which must be
    real directories.
    """
    resolve = RESOLVE | (sc.RESOLVE_NO_SYMLINKS if no_symlinks else 0)
    return sc.openat2(root_fd, _rel(path), flags, resolve, label=clean(path))


def exists_in_root(root_fd: int, path: str) -> bool:
    try:
        os.close(open_in_root(root_fd, path))
        return True
    except SyscallError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise


MAX_SYMLINKS = 40


def mkdir_all_in_root(root_fd: int, path: str, mode: int = 0o755, *, no_symlinks: bool = False) -> int:
    """`mkdir -p` inside the root; returns an O_PATH fd of the (existing or new) directory.

    An existing path is opened with openat2. Otherwise the path is walked one component at a time
    from the root fd: a missing component is made with mkdirat, a symlink (even a dangling one, such
    as /var/run -> /run in many images) is expanded in user space against the root (an absolute
    target restarts at the root fd, `..` never goes above it), and every directory is opened with
    O_NOFOLLOW|O_DIRECTORY, so a component swapped for a symlink meanwhile is an error, not a hop.
    no_symlinks: any symlink on the way is refused (ELOOP).
    """
    try:
        return open_in_root(root_fd, path, O_PATH | os.O_DIRECTORY, no_symlinks=no_symlinks)
    except SyscallError as e:
        if e.errno != errno.ENOENT:
            raise
    stack = [os.dup(root_fd)]  # the directories from the root down to where we are
    remaining = [p for p in clean(path).split("/") if p]
    hops = 0
    try:
        while remaining:
            name = remaining.pop(0)
            if name == ".":
                continue
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            cur = stack[-1]
            try:
                st = os.stat(name, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                try:
                    os.mkdir(name, mode, dir_fd=cur)
                except FileExistsError:
                    pass  # created meanwhile: look again
                remaining.insert(0, name)
                continue
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if no_symlinks or hops > MAX_SYMLINKS:
                    raise SyscallError(errno.ELOOP, "mkdir", f"{clean(path)} (symlink {name!r})")
                target = os.readlink(name, dir_fd=cur)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                remaining[:0] = [p for p in target.split("/") if p]
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise SyscallError(errno.ENOTDIR, "mkdir", f"{clean(path)} (component {name!r} is not a directory)")
            try:
                stack.append(os.open(name, O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur))
            except OSError as e:
                raise SyscallError(e.errno, "mkdir", f"{clean(path)} (component {name!r} changed)") from None
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def split(path: str) -> tuple[str, str]:
    """(parent, name) of a cleaned path; name is '' for '/'."""
    p = clean(path)
    parent, name = os.path.split(p)
    return parent, name


def create_file_in_root(root_fd: int, path: str, mode: int = 0o644) -> int:
    """Open (O_PATH) the existing `path`, or create an empty regular file there (no symlink followed
    by the kernel). A dangling symlink in the way (/etc/resolv.conf -> ../run/systemd/resolve/...)
    is followed inside the root, as the container would, and the file made where it points."""
    for _ in range(MAX_SYMLINKS):
        try:
            return open_in_root(root_fd, path)
        except SyscallError as e:
            if e.errno != errno.ENOENT:
                raise
        parent, name = split(path)
        dfd = mkdir_all_in_root(root_fd, parent)
        try:
            try:
                os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 mode, dir_fd=dfd))
            except FileExistsError:
                pass  # raced, or a dangling symlink: seen by the O_NOFOLLOW open below
            try:
                fd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            except OSError as e:
                raise SyscallError(e.errno, "create", clean(path)) from None
            if not stat.S_ISLNK(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
            target = os.readlink(name, dir_fd=dfd)
            path = target if target.startswith("/") else f"{_path_in_root(root_fd, dfd)}/{target}"
        finally:
            os.close(dfd)
    raise SyscallError(errno.ELOOP, "create", clean(path))


def _path_in_root(root_fd: int, fd: int) -> str:
    """Where an fd found inside the root is, as a path in the root (for a relative symlink's base)."""
    root = os.readlink(fd_path(root_fd)).rstrip("/")
    real = os.readlink(fd_path(fd))
    if real != root and not real.startswith(root + "/"):
        raise UnsafePathError(f"{real} is outside the container's root")
    return real[len(root):] or "/"


def ensure_target(root_fd: int, path: str, is_dir: bool, *, no_symlinks: bool = False) -> int:
    """An O_PATH fd of a mount destination inside the root, created (as a dir or file) when missing.

    no_symlinks: the destination must be a real directory (/proc, /sys, /dev): a symlink is refused.
    """
    try:
        return open_in_root(root_fd, path, no_symlinks=no_symlinks)
    except SyscallError as e:
        if no_symlinks and e.errno == errno.ELOOP:
            raise UnsafePathError(f"{clean(path)} in the rootfs must be a real directory, not a symlink") from None
        if e.errno != errno.ENOENT:
            raise
    if is_dir:
        return mkdir_all_in_root(root_fd, path, no_symlinks=no_symlinks)
    return create_file_in_root(root_fd, path)


def path_of_fd(fd: int, root: str) -> str:
    """Where the fd really is, as a path inside `root` (the host path of the rootfs), or None if outside."""
    real = os.readlink(fd_path(fd))
    root = root.rstrip("/")
    if real == root:
        return "/"
    if real.startswith(root + "/"):
        return real[len(root):]
    return None


def is_on_fs(fd: int, magic: int) -> bool:
    return sc.fstatfs_type(fd) == magic


def require_real_dir(root_fd: int, path: str) -> int:
    """/proc, /sys and /dev must be real directories (no symlink anywhere on the way); O_PATH fd."""
    try:
        fd = open_in_root(root_fd, path, O_PATH | os.O_DIRECTORY, no_symlinks=True)
    except SyscallError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePathError(f"{clean(path)} in the rootfs must be a real directory, not a symlink "
                                  f"or a file") from None
        raise
    return fd
