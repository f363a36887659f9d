"""A sealed interpreter for the container init (hardening D-9, CVE-2019-5736).

The init is the host's Python interpreter running inside the container's namespaces; while it lives,
/proc/<pid>/exe of the init (and of `exec` helpers) names that binary. A process in the container
that can reach it (CAP_SYS_PTRACE, or the same user once the init is dumpable) could open it for
writing, or keep an O_PATH handle and reopen it for writing once the init is gone, and so replace
the host's python3. ETXTBSY only protects while some process executes the file: never rely on it.

So the init is exec'd from a handle that cannot be written through:
- root: open_tree(sys.executable, OPEN_TREE_CLONE) makes a detached bind mount of the single file,
  mount_setattr(MOUNT_ATTR_RDONLY) makes it read-only, and the child execs it with fexecve
  (execveat(fd, "", AT_EMPTY_PATH)). /proc/<pid>/exe then resolves into that private read-only
  mount: open(O_WRONLY) is EROFS, and a handle reopened later is still on the read-only mount.
  No copy (crun's method, "bindfd"); cost: two syscalls.
- without CAP_SYS_ADMIN (rootless): a memfd copy of the interpreter sealed with F_SEAL_SEAL,
  F_SEAL_SHRINK, F_SEAL_GROW and F_SEAL_WRITE (runc's method); cost: one copy of the binary.

Only the executable is covered. Shared libraries (libc, libm, ...) and extension modules are
reachable through /proc/<pid>/map_files only with CAP_SYS_ADMIN in the init user namespace, i.e. by
a container that is already host root.
"""
import os
import sys

from ocirun.linux import syscalls as sc

F_ADD_SEALS = 1033
F_GET_SEALS = 1034
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 0x1, 0x2, 0x4, 0x8
MFD_ALLOW_SEALING = 0x2


def _bind_readonly(path: str) -> int:
    fd = sc.open_tree(-100, path, sc.OPEN_TREE_CLONE, label=f"{path} (sealed interpreter)")  # AT_FDCWD
    try:
        sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH, sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOSUID | sc.MOUNT_ATTR_NODEV)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _sealed_copy(path: str) -> int:
    import fcntl
    fd = os.memfd_create("ocirun-init", os.MFD_CLOEXEC | MFD_ALLOW_SEALING)
    try:
        src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(src).st_size
            os.ftruncate(fd, size)
            done = 0
            while done < size:
                n = os.sendfile(fd, src, done, size - done)    # in-kernel copy into the memfd
                if n <= 0:
                    raise OSError(5, f"short copy of {path}")
                done += n
        finally:
            os.close(src)
        fcntl.fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_sealed_executable(path: str | None = None) -> tuple[int, str]:
    """(fd, method): an fd to exec with os.execve(fd, argv, env) whose file cannot be written through,
    and "bind-ro" or "memfd". The fd is O_CLOEXEC; the caller closes it after fork."""
    path = os.path.realpath(path or sys.executable)
    try:
        return _bind_readonly(path), "bind-ro"
    except OSError:
        # EPERM without CAP_SYS_ADMIN over our mount namespace (rootless); ENOSYS on old kernels
        return _sealed_copy(path), "memfd"


def spawn_interpreter(entry: str, role: str, preserve_fds: int, passed: list[int], channels: dict[str, int]) -> int:
    """vfork + fexecve a fresh interpreter from the sealed handle, running `entry`.main() (the init
    of `create`, the helper of `exec`); returns its pid. Only stdio, the preserved fds `passed` (of
    3..3+preserve_fds-1, those the caller had open) and the channels ({env name: fd}, moved above
    the preserved range when they sit in it) cross the exec: everything else is marked close-on-exec.
    """
    # -S skips site (and the .pth files of site-packages): the child gets our already computed
    # sys.path instead, which saves several ms on every start. -I: no PYTHON* env, no cwd in path.
    # The directory holding the ocirun package goes first: an editable install may find it through
    # an import hook rather than a sys.path entry, and -S drops such hooks.
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # The caller's cwd (which `python -m` puts on sys.path) is never passed on: the caller may be
    # sitting in an untrusted directory, such as the container's rootfs.
    cwd = os.getcwd()
    paths = [package_parent] + [p for p in sys.path if p and p not in (package_parent, cwd)]
    argv = [sys.executable, "-I", "-S", "-B", "-c",
            f"import sys; sys.path[:0] = {paths!r}; from {entry} import main; main()", role]
    moved = []
    env = {}
    for name, fd in channels.items():
        if fd < 3 + preserve_fds:
            import fcntl
            fd = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3 + preserve_fds)
            moved.append(fd)
        env[name] = str(fd)
    try:
        # exec'd from a read-only (or sealed) handle of the interpreter: the container must never be
        # able to write the host's python through /proc/<pid>/exe (hardening D-9, CVE-2019-5736)
        exe_fd, _ = open_sealed_executable(sys.executable)
        try:
            # What crosses the exec is set here, in this process, which starts nothing else
            # afterwards: every fd from 3+preserve_fds up close-on-exec (fds the caller leaked to
            # us included), the preserved ones and the channels inheritable. Then posix_spawn
            # (vfork and exec) rather than fork: a fork of this interpreter copied its page tables
            # and made every page it wrote afterwards a copy-on-write fault (1-3 ms of CPU).
            sc.close_range(3 + preserve_fds, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
            for fd in passed:
                try:
                    os.set_inheritable(fd, True)
                except OSError:
                    pass
            channel_fds = [int(fd) for fd in env.values()]
            for fd in channel_fds:
                os.set_inheritable(fd, True)
            try:
                # /proc/self/fd/N of the vfork'd child is fexecve: exe_fd itself is close-on-exec
                return os.posix_spawn(f"/proc/self/fd/{exe_fd}", argv, env)
            finally:
                for fd in channel_fds:
                    os.set_inheritable(fd, False)
        finally:
            os.close(exe_fd)
    finally:
        for fd in moved:
            os.close(fd)
