"""What the container's init and the exec helper share for the last steps before execve.

Both run it in a process that has entered the container; nothing here imports anything lazily.
"""
import os
import sys

from ocirun.errors import OciError, describe_oserror
from ocirun.linux import safepath
from ocirun.linux import syscalls as sc

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def env_dict(env: list[str]) -> dict:
    out = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


PASSWD_MAX = 4 << 20     # a bigger /etc/passwd is not read: HOME falls back to "/"


def with_home(env: list[str], uid: int) -> list[str]:
    """process.env plus HOME from the container's /etc/passwd entry for uid ("/" when there is
    none) when env has no HOME or an empty one, as runc and crun do. Call it in the container's
    root (after pivot_root, or after joining its mount namespace), before the uid changes and
    before the seccomp filter (which may deny open)."""
    if env_dict(env).get("HOME"):
        return env
    return [item for item in env if not item.startswith("HOME=")] + [f"HOME={passwd_home(uid)}"]


def passwd_home(uid: int, path: str = "/etc/passwd") -> str:
    """The home directory of uid in `path` (resolved inside the current root, no NSS), else "/".

    The file is the container's and untrusted: opened through openat2 with no magic links (a
    symlink to /proc/self/fd/N cannot reach one of the runtime's fds), non-blocking (a FIFO there
    must not hang the runtime), and only a regular file of bounded size is read."""
    try:
        root = os.open("/", sc.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = safepath.open_in_root(root, path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        finally:
            os.close(root)
    except OSError:
        return "/"
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o170000 != 0o100000 or st.st_size > PASSWD_MAX:
            return "/"
        data = b""
        while chunk := os.read(fd, 1 << 16):
            data += chunk
            if len(data) > PASSWD_MAX:
                return "/"
    except OSError:
        return "/"
    finally:
        os.close(fd)
    wanted = str(uid).encode()
    for line in data.split(b"\n"):
        fields = line.split(b":")      # name:password:uid:gid:gecos:home:shell
        if len(fields) >= 6 and fields[2] == wanted and not line.startswith(b"#"):
            return fields[5].decode("utf-8", "surrogateescape") or "/"
    return "/"


def resolve_executable(process: dict) -> str:
    """args[0] looked up in the container's PATH (from process.env), as execvp would; the error
    words ("no such file or directory", "permission denied") are what podman and docker match."""
    name = process["args"][0]
    if "/" in name:
        candidates = [name if name.startswith("/") else os.path.join(process.get("cwd", "/"), name)]
    else:
        path_var = env_dict(process.get("env") or []).get("PATH", DEFAULT_PATH)
        candidates = [os.path.join(d or ".", name) for d in path_var.split(":")]
    for cand in candidates:
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if st.st_mode & 0o170000 != 0o100000:
            if "/" in name:
                raise OciError(f'exec: "{name}": is a directory: permission denied')
            continue
        if "/" in name and not st.st_mode & 0o111:
            raise OciError(f'exec: "{name}": permission denied')
        if st.st_mode & 0o111:
            return cand
    if "/" in name:
        raise OciError(f'exec: "{name}": stat {name}: no such file or directory')
    raise OciError(f'exec: "{name}": executable file not found in $PATH: no such file or directory')


def close_fds_at_exec(first: int) -> None:
    """Every fd from `first` up closes at execve (stdio and the preserved fds stay below `first`).

    Called before the seccomp filter is loaded: a profile may deny close_range (runtime-tools'
    default one does), and after the filter nothing the runtime does may depend on a syscall the
    profile might deny. Fds opened later are close-on-exec already (Python's default, O_CLOEXEC)."""
    sc.close_range(first, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)


def undo_spawn_signals() -> None:
    """First thing in a process started by linux/sealed.spawn_interpreter (the init, the exec helper):
    glibc's posix_spawn ignores signals 32 and 33 in the child (its own, for thread cancellation and
    set*id), so they would reach the container's process, and hooks, ignored: back to SIG_DFL, as a
    fork and exec left them. And the name (comm), which exec through /proc/self/fd/N made "N": the
    interpreter's file name again, as ps showed it before."""
    for signum in (32, 33):
        sc.default_signal_action(signum)
    try:
        with open("/proc/thread-self/comm", "w") as f:
            f.write(os.path.basename(os.path.realpath(sys.executable))[:15])
    except OSError:
        pass    # cosmetic only


def seal_imports() -> None:
    """After this no module can be imported: the filesystem is about to become the container's (D-11)."""
    import codecs  # noqa: F401  encodings needed by error paths are loaded now
    "x".encode("utf-8").decode("latin-1")
    sys.path[:] = []
    sys.path_hooks[:] = []
    sys.path_importer_cache.clear()
    sys.meta_path[:] = [m for m in sys.meta_path if getattr(m, "__name__", "") in ("BuiltinImporter", "FrozenImporter")]
    sys.dont_write_bytecode = True


def describe(exc: BaseException) -> str:
    if isinstance(exc, OciError):
        return str(exc)
    if isinstance(exc, OSError):
        return describe_oserror(exc)
    return f"{type(exc).__name__}: {exc}"
