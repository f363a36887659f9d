"""The syscall layer: the only module of ocirun that uses ctypes.

Every wrapper raises SyscallError naming the call and what it was called on, retries EINTR by hand
(PEP 475 does not cover ctypes), and takes and returns plain ints and strings. libc is loaded once.
Other modules append wrappers to this file instead of importing ctypes themselves.
"""
import ctypes
import errno as _errno
import os
import platform

from ocirun.errors import SyscallError

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

# Numbers of the calls glibc 2.36 does not wrap. The new mount API and openat2 share one number on
# every architecture; the older ones differ.
_ARCH = platform.machine()
_NR = {
    "pivot_root": {"x86_64": 155, "aarch64": 41}.get(_ARCH),
    "ioprio_set": {"x86_64": 251, "aarch64": 30}.get(_ARCH),
    "set_mempolicy": {"x86_64": 238, "aarch64": 237}.get(_ARCH),
    "sched_setattr": {"x86_64": 314, "aarch64": 274}.get(_ARCH),
    "seccomp": {"x86_64": 317, "aarch64": 277}.get(_ARCH),
    "bpf": {"x86_64": 321, "aarch64": 280}.get(_ARCH),
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "pidfd_open": 434,
    "clone3": 435,
    "close_range": 436,
    "openat2": 437,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
}

# clone(2) / namespace flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

MNT_FORCE = 1
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
O_PATH = 0o10000000

# new mount API
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# prctl options
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47

CLOSE_RANGE_CLOEXEC = 4


def _fsdecode(value):
    return None if value is None else os.fsencode(value)


def _call(func, *args, op: str, detail: str = "") -> int:
    """Run a libc function, retrying EINTR; raise SyscallError(op, detail) on -1."""
    while True:
        ret = func(*args)
        if ret != -1:
            return ret
        err = ctypes.get_errno()
        if err != _errno.EINTR:
            raise SyscallError(err, op, detail)


def _nr(name: str) -> int:
    nr = _NR.get(name)
    if nr is None:
        raise SyscallError(_errno.ENOSYS, name, f"(no syscall number known for {_ARCH})")
    return nr


def _raw(name: str, *args, detail: str = "") -> int:
    return _call(_syscall, ctypes.c_long(_nr(name)), *args, op=name, detail=detail)


# --- flags as text, for error messages -----------------------------------------------------------

_MS_NAMES = [(v, k) for k, v in globals().items() if k.startswith("MS_")]


def mount_flags_text(flags: int) -> str:
    names = [name for value, name in _MS_NAMES if flags & value]
    rest = flags & ~sum(v for v, _ in _MS_NAMES)
    if rest:
        names.append(hex(rest))
    return "|".join(names) or "0"


# --- mounts --------------------------------------------------------------------------------------

def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None,
          *, label: str | None = None) -> None:
    """mount(2). `label` is how the target is named in an error when target is a /proc/self/fd path."""
    detail = (f"src={source}, dst={label or target}, type={fstype}, flags={mount_flags_text(flags)}"
              + (f", data={data}" if data else ""))
    _call(_libc.mount, _fsdecode(source), _fsdecode(target), _fsdecode(fstype), ctypes.c_ulong(flags),
          _fsdecode(data), op="mount", detail=detail)


def umount2(target: str, flags: int = 0) -> None:
    _call(_libc.umount2, _fsdecode(target), ctypes.c_int(flags), op="umount2", detail=target)


def pivot_root(new_root: str, put_old: str) -> None:
    _raw("pivot_root", _fsdecode(new_root), _fsdecode(put_old), detail=f"{new_root} {put_old}")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0, *, label: str = "") -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _raw("openat2", ctypes.c_int(dirfd), _fsdecode(path), ctypes.byref(how),
                ctypes.c_size_t(ctypes.sizeof(how)), detail=label or path)


def open_tree(dirfd: int, path: str, flags: int, *, label: str = "") -> int:
    return _raw("open_tree", ctypes.c_int(dirfd), _fsdecode(path), ctypes.c_uint(flags | OPEN_TREE_CLOEXEC),
                detail=label or path)


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: str, flags: int, *, label: str = "") -> None:
    _raw("move_mount", ctypes.c_int(from_fd), _fsdecode(from_path), ctypes.c_int(to_fd), _fsdecode(to_path),
         ctypes.c_uint(flags), detail=label or to_path)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int = 0, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0, *, label: str = "") -> None:
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    _raw("mount_setattr", ctypes.c_int(dirfd), _fsdecode(path), ctypes.c_uint(flags), ctypes.byref(attr),
         ctypes.c_size_t(ctypes.sizeof(attr)), detail=label or path)


# --- namespaces ----------------------------------------------------------------------------------

def unshare(flags: int) -> None:
    _call(_libc.unshare, ctypes.c_int(flags), op="unshare", detail=hex(flags))


def setns(fd: int, nstype: int = 0, *, label: str = "") -> None:
    _call(_libc.setns, ctypes.c_int(fd), ctypes.c_int(nstype), op="setns", detail=label)


def setdomainname(name: str) -> None:
    raw = name.encode()
    _call(_libc.setdomainname, raw, ctypes.c_size_t(len(raw)), op="setdomainname", detail=name)


def sethostname(name: str) -> None:
    raw = name.encode()
    _call(_libc.sethostname, raw, ctypes.c_size_t(len(raw)), op="sethostname", detail=name)


# --- process -------------------------------------------------------------------------------------

def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0, *, op: str = "prctl") -> int:
    return _call(_libc.prctl, ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                 ctypes.c_ulong(arg4), ctypes.c_ulong(arg5), op=op)


def personality(persona: int) -> int:
    return _call(_libc.personality, ctypes.c_ulong(persona), op="personality", detail=hex(persona))


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    _raw("close_range", ctypes.c_uint(first), ctypes.c_uint(last), ctypes.c_uint(flags))


def pidfd_open(pid: int) -> int:
    return os.pidfd_open(pid)
