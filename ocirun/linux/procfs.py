"""Writing procfs files (linux.sysctl, oom_score_adj) only through a handle proven to be procfs.

A rootfs can ship ordinary files at proc/sys/... and proc/self/oom_score_adj: without a /proc
mount in the config, writing the paths after pivot_root would fill those files and the settings
would silently not apply; a mount over one of them could redirect the write (CVE-2025-52881
class). So every write goes through openat2() beneath a /proc directory handle whose fstatfs magic
is PROC_SUPER_MAGIC, never across a mount (RESOLVE_NO_XDEV) nor through a magic link, and the opened
file is checked to be on procfs too. The container's init takes the handle on the host's /proc
before pivot_root (take_handle); sysctls are per namespace of the writer, not of the procfs instance,
so that handle sets the container's own. Without it (exec) /proc is opened when needed and checked.
"""
import os

from ocirun.errors import OciError, SyscallError
from ocirun.linux import syscalls as sc

# Mount destinations allowed below /proc: the files lxcfs emulates (runc's checkProcMount list).
# validate.py refuses others in the config; mounts.check_proc_destination checks the real target.
MOUNT_ALLOWLIST = frozenset({
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
    "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
})

PROC_SUPER_MAGIC = 0x9FA0
_RESOLVE = sc.RESOLVE_BENEATH | sc.RESOLVE_NO_MAGICLINKS | sc.RESOLVE_NO_XDEV
_proc_fd: int | None = None


def _open_proc(field: str) -> int:
    try:
        fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise OciError(f"{field}: open /proc: {exc.strerror} (the config has no proc mount?)") from None
    if sc.fstatfs_type(fd) != PROC_SUPER_MAGIC:
        os.close(fd)
        raise OciError(f"{field}: /proc is not a procfs (no proc mount at /proc?); refusing to write "
                       f"through it")
    return fd


def take_handle() -> None:
    """Keep a checked handle on the current /proc (the host's, before pivot_root) for write()."""
    global _proc_fd
    if _proc_fd is None:
        _proc_fd = _open_proc("/proc")


def close_handle() -> None:
    global _proc_fd
    if _proc_fd is not None:
        os.close(_proc_fd)
        _proc_fd = None


def release_handle_if_proc_mounted() -> None:
    """Close the handle when the current root has a real procfs at /proc (then used instead)."""
    if _proc_fd is None:
        return
    try:
        fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if sc.fstatfs_type(fd) == PROC_SUPER_MAGIC:
            close_handle()
    finally:
        os.close(fd)


def reopen(fd: int, flags: int) -> int:
    """open(/proc/self/fd/<fd>) through the handle when there is one: the container's root may
    have no /proc at all (the exec fifo is reopened for writing after pivot_root)."""
    if _proc_fd is None:
        return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)
    return os.open(f"self/fd/{fd}", flags | os.O_CLOEXEC, dir_fd=_proc_fd)


def write(rel: str, data: bytes, field: str) -> None:
    """Write `data` to /proc/<rel>; `field` names the config field in errors."""
    own = _proc_fd is None
    proc_fd = _open_proc(field) if own else _proc_fd
    try:
        write_beneath(proc_fd, (rel,), data, field)
    finally:
        if own:
            os.close(proc_fd)


def write_beneath(proc_fd: int, rels: tuple[str, ...], data: bytes, field: str) -> None:
    """Write `data` to the first /proc/<rel> that opens beneath `proc_fd` (a handle proven procfs),
    never across a mount nor through a magic link, after checking that the file is on procfs too."""
    last = None
    for rel in rels:
        try:
            fd = sc.openat2(proc_fd, rel, os.O_WRONLY | os.O_CLOEXEC, _RESOLVE, label=f"/proc/{rel}")
        except OSError as exc:
            last = exc
            continue
        try:
            if sc.fstatfs_type(fd) != PROC_SUPER_MAGIC:
                raise OciError(f"{field}: /proc/{rel} is not on procfs; refusing to write it")
            try:
                os.write(fd, data)
            except OSError as exc:
                raise SyscallError(exc.errno, "write", f"/proc/{rel} ({field}) {data.decode(errors='replace')!r}") \
                    from None
            return
        finally:
            os.close(fd)
    raise SyscallError(getattr(last, "errno", 2), "open", f"/proc/{rels[-1]} ({field})")
