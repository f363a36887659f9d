"""The syscall layer: the only module of ocirun that uses ctypes, and the init's syscall seam.

Every wrapper raises SyscallError naming the call and what it was called on, retries EINTR by hand
(PEP 475 does not cover ctypes), and takes and returns plain ints and strings. libc is loaded once.
Other modules append wrappers to this file instead of importing ctypes themselves.

The seam: every kernel call that changes what the container gets (mounts, pivot_root, namespaces,
hostname, device nodes, credentials, capabilities, prctl, limits, seccomp) goes through this module,
named in KERNEL_CALLS, and its callers look it up at call time (`from ocirun.linux import syscalls
as sc` ... `sc.mount(...)`, never `from ...syscalls import mount`). A test can then swap exactly
those names for recording fakes (tests/syscallrecorder.py) and check the init's step order and mount
sequence without root. The privileged calls Python's os module already makes (chroot, mknod, chown,
setresuid...) have thin wrappers here for that reason only: same call, same exception. The seam is
this module object itself, so it costs nothing on the real path.
"""
import ctypes
import errno as _errno
import os

from ocirun.errors import SyscallError

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

# Numbers of the calls glibc 2.36 does not wrap. The new mount API and openat2 share one number on
# every architecture; the older ones differ.
_ARCH = os.uname().machine     # what platform.machine() returns, without importing platform (and re)
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


# --- filesystems (rootfs: fstatfs checks, fsopen/fsconfig/fsmount for detached mounts) ---------------

MOVE_MOUNT_T_EMPTY_PATH = 0x40
FSOPEN_CLOEXEC = 0x1
FSMOUNT_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6


def fstatfs_type(fd: int) -> int:
    """f_type of fstatfs(2) (os.fstatvfs has no f_type): PROC_SUPER_MAGIC, TMPFS_MAGIC, ..."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit; f_type comes first
    _call(_libc.fstatfs, ctypes.c_int(fd), buf, op="fstatfs", detail=f"fd {fd}")
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def fsopen(fstype: str, flags: int = FSOPEN_CLOEXEC) -> int:
    return _raw("fsopen", _fsdecode(fstype), ctypes.c_uint(flags), detail=fstype)


def fsconfig(fs_fd: int, cmd: int, key: str | None = None, value: str | None = None, aux: int = 0,
             *, label: str = "") -> None:
    _raw("fsconfig", ctypes.c_int(fs_fd), ctypes.c_uint(cmd), _fsdecode(key), _fsdecode(value),
         ctypes.c_int(aux), detail=label or f"{key}={value}")


def fsmount(fs_fd: int, flags: int = FSMOUNT_CLOEXEC, attr_flags: int = 0, *, label: str = "") -> int:
    return _raw("fsmount", ctypes.c_int(fs_fd), ctypes.c_uint(flags), ctypes.c_uint(attr_flags), detail=label)


# --- scheduling, I/O priority, NUMA policy (appended for ocirun/security.py) ---------------------

IOPRIO_WHO_PROCESS = 1
IOPRIO_WHO_PGRP = 2
IOPRIO_CLASS_SHIFT = 13


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    _raw("ioprio_set", ctypes.c_int(which), ctypes.c_int(who), ctypes.c_int(ioprio),
         detail=f"which={which} who={who} ioprio={ioprio:#x}")


class _SchedAttr(ctypes.Structure):
    # struct sched_attr, SCHED_ATTR_SIZE_VER1 (56 bytes, with the utilization clamps)
    _fields_ = [("size", ctypes.c_uint32), ("sched_policy", ctypes.c_uint32), ("sched_flags", ctypes.c_uint64),
                ("sched_nice", ctypes.c_int32), ("sched_priority", ctypes.c_uint32),
                ("sched_runtime", ctypes.c_uint64), ("sched_deadline", ctypes.c_uint64),
                ("sched_period", ctypes.c_uint64), ("sched_util_min", ctypes.c_uint32),
                ("sched_util_max", ctypes.c_uint32)]


def sched_setattr(pid: int, policy: int, flags: int = 0, nice: int = 0, priority: int = 0,
                  runtime: int = 0, deadline: int = 0, period: int = 0, *, label: str = "") -> None:
    attr = _SchedAttr(ctypes.sizeof(_SchedAttr), policy, flags, nice, priority, runtime, deadline, period, 0, 0)
    _raw("sched_setattr", ctypes.c_int(pid), ctypes.byref(attr), ctypes.c_uint(0),
         detail=label or f"policy={policy} flags={flags:#x} nice={nice} priority={priority}")


def _nodemask(nodes: set[int]) -> tuple:
    words = max(nodes, default=0) // 64 + 1
    mask = (ctypes.c_ulong * words)()
    for node in nodes:
        mask[node // 64] |= 1 << (node % 64)
    # The kernel reads maxnode - 1 bits (mm/mempolicy.c get_nodes), hence the + 1.
    return mask, words * 64 + 1


def set_mempolicy(mode: int, nodes: set[int]) -> None:
    """set_mempolicy(2); `mode` includes the MPOL_F_* flags; an empty `nodes` passes a NULL mask."""
    if nodes:
        mask, maxnode = _nodemask(nodes)
        _raw("set_mempolicy", ctypes.c_int(mode), mask, ctypes.c_ulong(maxnode),
             detail=f"mode={mode:#x} nodes={sorted(nodes)}")
    else:
        _raw("set_mempolicy", ctypes.c_int(mode), None, ctypes.c_ulong(0), detail=f"mode={mode:#x}")


# --- libseccomp (appended for ocirun/linux/seccomp.py) -------------------------------------------
# libseccomp functions return -errno instead of setting errno; the library is loaded on first use
# so that processes which never touch seccomp do not pay for it.

class ScmpArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp: one argument comparison of a rule."""
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _ScmpVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


_libseccomp_handle = None


def _libseccomp():
    global _libseccomp_handle
    if _libseccomp_handle is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as exc:
            raise SyscallError(_errno.ENOSYS, "load libseccomp.so.2", str(exc)) from None
        ctx, u32, cint = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int
        sigs = {
            "seccomp_init": (ctx, [u32]),
            "seccomp_release": (None, [ctx]),
            "seccomp_arch_add": (cint, [ctx, u32]),
            "seccomp_arch_resolve_name": (u32, [ctypes.c_char_p]),
            "seccomp_arch_native": (u32, []),
            "seccomp_syscall_resolve_name": (cint, [ctypes.c_char_p]),
            "seccomp_syscall_resolve_name_arch": (cint, [u32, ctypes.c_char_p]),
            "seccomp_rule_add_array": (cint, [ctx, u32, cint, ctypes.c_uint, ctypes.POINTER(ScmpArgCmp)]),
            "seccomp_attr_set": (cint, [ctx, cint, u32]),
            "seccomp_export_bpf": (cint, [ctx, cint]),
            "seccomp_version": (ctypes.POINTER(_ScmpVersion), []),
        }
        for name, (restype, argtypes) in sigs.items():
            func = getattr(lib, name)
            func.restype = restype
            func.argtypes = argtypes
        _libseccomp_handle = lib
    return _libseccomp_handle


def _scmp_check(ret: int, op: str, detail: str = "") -> int:
    if ret < 0:
        raise SyscallError(-ret, op, detail)
    return ret


def scmp_version() -> tuple[int, int, int]:
    v = _libseccomp().seccomp_version().contents
    return v.major, v.minor, v.micro


def scmp_init(default_action: int) -> int:
    """seccomp_init(3): a new filter context (an opaque pointer, as an int)."""
    ctx = _libseccomp().seccomp_init(default_action)
    if not ctx:
        raise SyscallError(_errno.EINVAL, "seccomp_init", f"default action {default_action:#x}")
    return ctx


def scmp_release(ctx: int) -> None:
    _libseccomp().seccomp_release(ctx)


def scmp_arch_resolve_name(name: str) -> int:
    """The libseccomp token of an architecture name ("x86_64"), 0 when unknown."""
    return _libseccomp().seccomp_arch_resolve_name(name.encode())


def scmp_arch_native() -> int:
    return _libseccomp().seccomp_arch_native()


def scmp_arch_add(ctx: int, arch_token: int) -> None:
    """seccomp_arch_add(3); adding an architecture already in the filter (the native one) is fine."""
    ret = _libseccomp().seccomp_arch_add(ctx, arch_token)
    if ret != -_errno.EEXIST:
        _scmp_check(ret, "seccomp_arch_add", f"arch={arch_token:#x}")


def scmp_syscall_resolve_name(name: str) -> int:
    """The syscall number for the native arch (negative pseudo numbers for other-arch-only calls);
    -1 (__NR_SCMP_ERROR) when libseccomp does not know the name."""
    return _libseccomp().seccomp_syscall_resolve_name(name.encode())


def scmp_syscall_resolve_name_arch(arch_token: int, name: str) -> int:
    """The syscall number on that architecture (x32 numbers include __X32_SYSCALL_BIT); negative
    when the call does not exist there or libseccomp does not know it."""
    return _libseccomp().seccomp_syscall_resolve_name_arch(arch_token, name.encode())


def scmp_rule_add(ctx: int, action: int, syscall_nr: int, args: list[tuple[int, int, int, int]],
                  *, label: str = "") -> None:
    """seccomp_rule_add_array(3); args are (index, op, datum_a, datum_b)."""
    arr = (ScmpArgCmp * max(len(args), 1))(*[ScmpArgCmp(*a) for a in args])
    _scmp_check(_libseccomp().seccomp_rule_add_array(ctx, action, syscall_nr, len(args), arr),
                "seccomp_rule_add", label or f"syscall={syscall_nr}")


def scmp_attr_set(ctx: int, attr: int, value: int, *, label: str = "") -> None:
    _scmp_check(_libseccomp().seccomp_attr_set(ctx, attr, value), "seccomp_attr_set", label or f"attr={attr}")


def scmp_export_bpf(ctx: int, fd: int) -> None:
    _scmp_check(_libseccomp().seccomp_export_bpf(ctx, fd), "seccomp_export_bpf")


SECCOMP_SET_MODE_FILTER = 1


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_mode_filter(flags: int, program: bytes) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, program): program is a struct sock_filter array.
    Returns the listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    return _raw("seccomp", ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flags), ctypes.byref(prog),
                detail=f"flags={flags:#x} instructions={len(program) // 8}")


# --- bpf(2): cgroup v2 device programs (ocirun/linux/cgroups/v2.py) --------------------------------

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
_BPF_ATTR_SIZE = 128     # bigger than every union member we use; the kernel wants the tail zeroed


def _bpf(cmd: int, attr, *, op: str, detail: str = "") -> int:
    return _call(_syscall, ctypes.c_long(_nr("bpf")), ctypes.c_int(cmd), ctypes.byref(attr),
                 ctypes.c_uint(ctypes.sizeof(attr)), op=op, detail=detail)


class _BpfProgLoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32), ("insns", ctypes.c_uint64),
                ("license", ctypes.c_uint64), ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32), ("prog_flags", ctypes.c_uint32),
                ("prog_name", ctypes.c_char * 16), ("prog_ifindex", ctypes.c_uint32),
                ("expected_attach_type", ctypes.c_uint32), ("_pad", ctypes.c_char * (_BPF_ATTR_SIZE - 72))]


class _BpfAttachAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("attach_flags", ctypes.c_uint32), ("replace_bpf_fd", ctypes.c_uint32),
                ("_pad", ctypes.c_char * (_BPF_ATTR_SIZE - 20))]


class _BpfQueryAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32), ("query_flags", ctypes.c_uint32),
                ("attach_flags", ctypes.c_uint32), ("prog_ids", ctypes.c_uint64), ("prog_cnt", ctypes.c_uint32),
                ("_pad", ctypes.c_char * (_BPF_ATTR_SIZE - 28))]


class _BpfGetFdAttr(ctypes.Structure):
    _fields_ = [("prog_id", ctypes.c_uint32), ("next_id", ctypes.c_uint32), ("open_flags", ctypes.c_uint32),
                ("_pad", ctypes.c_char * (_BPF_ATTR_SIZE - 12))]


def bpf_prog_load(prog_type: int, insns: bytes, license: str = "Apache", *, name: str = "") -> int:
    """BPF_PROG_LOAD of raw instructions (8 bytes each); the verifier log is in the error on failure."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(65536)
    attr = _BpfProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8, insns=ctypes.addressof(code),
                            license=ctypes.addressof(lic), prog_name=name.encode()[:15])
    try:
        return _bpf(BPF_PROG_LOAD, attr, op="bpf", detail="BPF_PROG_LOAD")
    except SyscallError as exc:
        if exc.errno not in (_errno.EINVAL, _errno.EACCES):
            raise
    # run again with the verifier log so the error says why
    attr.log_level, attr.log_size, attr.log_buf = 1, len(log), ctypes.addressof(log)
    try:
        return _bpf(BPF_PROG_LOAD, attr, op="bpf", detail="BPF_PROG_LOAD")
    except SyscallError as exc:
        text = log.value.decode(errors="replace").strip().replace("\n", "; ")
        raise SyscallError(exc.errno, "bpf", f"BPF_PROG_LOAD (verifier: {text[-400:]})") from None


def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0) -> None:
    attr = _BpfAttachAttr(target_fd=target_fd, attach_bpf_fd=prog_fd, attach_type=attach_type, attach_flags=flags)
    _bpf(BPF_PROG_ATTACH, attr, op="bpf", detail="BPF_PROG_ATTACH")


def bpf_prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    attr = _BpfAttachAttr(target_fd=target_fd, attach_bpf_fd=prog_fd, attach_type=attach_type)
    _bpf(BPF_PROG_DETACH, attr, op="bpf", detail="BPF_PROG_DETACH")


def bpf_prog_query(target_fd: int, attach_type: int, max_progs: int = 64) -> list[int]:
    """The ids of the programs attached directly to target_fd for attach_type."""
    ids = (ctypes.c_uint32 * max_progs)()
    attr = _BpfQueryAttr(target_fd=target_fd, attach_type=attach_type, prog_ids=ctypes.addressof(ids),
                         prog_cnt=max_progs)
    _bpf(BPF_PROG_QUERY, attr, op="bpf", detail="BPF_PROG_QUERY")
    return list(ids[:attr.prog_cnt])


def bpf_prog_get_fd_by_id(prog_id: int) -> int:
    attr = _BpfGetFdAttr(prog_id=prog_id)
    return _bpf(BPF_PROG_GET_FD_BY_ID, attr, op="bpf", detail=f"BPF_PROG_GET_FD_BY_ID {prog_id}")


# --- pidfd_getfd (the parent takes the container's seccomp notify fd) ---------------------------------

def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    return _raw("pidfd_getfd", ctypes.c_int(pidfd), ctypes.c_int(target_fd), ctypes.c_uint(0),
                detail=f"fd {target_fd}")


# --- session keyrings (a container gets its own, as runc does unless --no-new-keyring) -------------

KEYCTL_JOIN_SESSION_KEYRING = 1
KEYCTL_DESCRIBE = 6
KEYCTL_SETPERM = 5
_NR["keyctl"] = {"x86_64": 250, "aarch64": 219}.get(_ARCH)


def keyctl_join_session_keyring(name: str) -> int:
    return _raw("keyctl", ctypes.c_long(KEYCTL_JOIN_SESSION_KEYRING), _fsdecode(name), detail=name)


def keyctl_describe(serial: int) -> str:
    buf = ctypes.create_string_buffer(512)
    _raw("keyctl", ctypes.c_long(KEYCTL_DESCRIBE), ctypes.c_long(serial), buf, ctypes.c_long(len(buf)),
         detail=f"key {serial}")
    return buf.value.decode(errors="replace")


def keyctl_setperm(serial: int, perm: int) -> None:
    _raw("keyctl", ctypes.c_long(KEYCTL_SETPERM), ctypes.c_long(serial), ctypes.c_long(perm),
         detail=f"key {serial} perm {perm:#x}")


# --- filesystems (appended for ocirun/image/store.py) ---------------------------------------------

def syncfs(fd: int) -> None:
    """syncfs(2): flush the filesystem holding fd (an unpacked layer is durable before it is renamed
    into the store, so a crash never leaves a visible layer with missing data)."""
    _call(_libc.syncfs, ctypes.c_int(fd), op="syncfs", detail=f"fd {fd}")


# --- capabilities (capset/capget with the version 3 header: two 32-bit words per set) ---------------
# (python-prctl did this before; importing it cost ~4 ms of every init and exec helper)

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int, *, detail: str = "") -> None:
    """Set this thread's three capability sets exactly (bit N = capability N)."""
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)      # version, pid 0: ourselves
    words = []
    for shift in (0, 32):       # struct __user_cap_data_struct[2]: effective, permitted, inheritable
        words += [(effective >> shift) & 0xFFFFFFFF, (permitted >> shift) & 0xFFFFFFFF,
                  (inheritable >> shift) & 0xFFFFFFFF]
    _call(_libc.capset, header, (ctypes.c_uint32 * 6)(*words), op="capset", detail=detail)


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of pid (0: this thread)."""
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (ctypes.c_uint32 * 6)()
    _call(_libc.capget, header, data, op="capget", detail=f"pid {pid}")
    return tuple(data[i] | data[i + 3] << 32 for i in range(3))


# --- calls the os module makes, wrapped so that the seam holds them (same call, same OSError) ------

def chroot(path: str) -> None:
    os.chroot(path)


def mknodat(dir_fd: int, name: str, mode: int, rdev: int) -> None:
    os.mknod(name, mode, rdev, dir_fd=dir_fd)


def fchownat(dir_fd: int, name: str, uid: int, gid: int) -> None:
    """chown of `name` in dir_fd, not following a symlink."""
    os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def fchown(fd: int, uid: int, gid: int) -> None:
    os.fchown(fd, uid, gid)


def setgroups(gids: list[int]) -> None:
    os.setgroups(gids)


def setresgid(rgid: int, egid: int, sgid: int) -> None:
    os.setresgid(rgid, egid, sgid)


def setresuid(ruid: int, euid: int, suid: int) -> None:
    os.setresuid(ruid, euid, suid)


def prlimit(resource_nr: int, soft: int, hard: int) -> None:
    """prlimit(2) of this process (resource.prlimit: OSError, or ValueError for a bad value)."""
    import resource  # a C module, already loaded by ocirun.security, the one caller
    resource.prlimit(0, resource_nr, (soft, hard))


# The seam (see the module docstring): the calls that change the kernel's state for the container,
# made by the init's steps (ocirun/init.py) and the modules they call. tests/syscallrecorder.py swaps
# exactly these for recording fakes; a new such call is added here, and then to the recorder.
KERNEL_CALLS = (
    # mounts and the root
    "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "mount_setattr",
    "fsopen", "fsconfig", "fsmount",
    # device nodes, owners
    "mknodat", "fchownat", "fchown",
    # namespaces, names
    "unshare", "setns", "sethostname", "setdomainname",
    # the process: credentials, capabilities, prctl, limits, scheduling, fds, seccomp, keyring
    "setgroups", "setresgid", "setresuid", "prctl", "capset", "prlimit", "personality", "ioprio_set",
    "sched_setattr", "set_mempolicy", "close_range", "seccomp_set_mode_filter",
    "keyctl_join_session_keyring", "keyctl_setperm",
)


# --- signal dispositions (appended for ocirun/procexec.py) ----------------------------------------

_NR["rt_sigaction"] = {"x86_64": 13, "aarch64": 134}.get(_ARCH)


def default_signal_action(signum: int) -> None:
    """rt_sigaction(signum, SIG_DFL) past glibc's sigaction, which refuses its own signals 32 and 33
    (SIGCANCEL, SIGSETXID): glibc's posix_spawn leaves those two ignored in the child, and an ignored
    signal stays ignored across execve."""
    act = (ctypes.c_ulong * 4)()    # struct kernel_sigaction, all zero: SIG_DFL, no flags, empty mask
    _raw("rt_sigaction", ctypes.c_int(signum), act, None, ctypes.c_size_t(8), detail=f"signal {signum}")
