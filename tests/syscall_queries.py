"""Kernel queries the tests use to check what the runtime set (the runtime itself only sets these).

They reuse ocirun.linux.syscalls' ctypes plumbing (its private helpers) rather than a second copy.
"""
import ctypes
import errno

from ocirun.errors import SyscallError
from ocirun.linux import syscalls as sc

_NR_QUERY = {
    "ioprio_get": {"x86_64": 252, "aarch64": 31}.get(sc._ARCH),
    "sched_getattr": {"x86_64": 315, "aarch64": 275}.get(sc._ARCH),
    "get_mempolicy": {"x86_64": 239, "aarch64": 236}.get(sc._ARCH),
}


def _nr(name: str) -> int:
    nr = _NR_QUERY[name]
    if nr is None:
        raise SyscallError(errno.ENOSYS, name, f"(no syscall number known for {sc._ARCH})")
    return nr


def ioprio_get(which: int, who: int) -> int:
    return sc._call(sc._syscall, ctypes.c_long(_nr("ioprio_get")), ctypes.c_int(which), ctypes.c_int(who),
                    op="ioprio_get")


def sched_getattr(pid: int = 0) -> dict:
    """sched_getattr(2) as a dict with the struct sched_attr field names (without the sched_ prefix)."""
    attr = sc._SchedAttr()
    sc._call(sc._syscall, ctypes.c_long(_nr("sched_getattr")), ctypes.c_int(pid), ctypes.byref(attr),
             ctypes.c_uint(ctypes.sizeof(attr)), ctypes.c_uint(0), op="sched_getattr")
    return {name.removeprefix("sched_"): getattr(attr, name) for name, _ in sc._SchedAttr._fields_}


def get_mempolicy() -> tuple[int, set[int]]:
    """The calling thread's policy mode and node set (get_mempolicy(2) with flags 0)."""
    mode = ctypes.c_int(0)
    words = 16
    mask = (ctypes.c_ulong * words)()
    sc._call(sc._syscall, ctypes.c_long(_nr("get_mempolicy")), ctypes.byref(mode), mask, ctypes.c_ulong(words * 64),
             ctypes.c_void_p(None), ctypes.c_ulong(0), op="get_mempolicy")
    nodes = {w * 64 + b for w in range(words) for b in range(64) if mask[w] >> b & 1}
    return mode.value, nodes


def scmp_syscall_name(nr: int, arch_token: int | None = None) -> str | None:
    """The name libseccomp gives syscall nr on the architecture (native by default), or None."""
    resolve = sc._libseccomp().seccomp_syscall_resolve_num_arch
    resolve.restype, resolve.argtypes = ctypes.c_void_p, [ctypes.c_uint32, ctypes.c_int]
    ptr = resolve(sc.scmp_arch_native() if arch_token is None else arch_token, nr)
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode()
    finally:
        sc._libc.free(ctypes.c_void_p(ptr))
