"""linux.seccomp: validate the profile and build a libseccomp filter; load it; hand the listener fd on.

compile_filter() does all the checking and building (ConfigError names the JSON field); the runtime
turns the result into a SeccompProgram (the final BPF and its flags), sends it as data, and the init
or exec helper only calls SeccompProgram.load() at the right moment (see ocirun/security.py).

Decisions, like runc:
- syscall names libseccomp does not know are skipped (profiles list calls of other kernels/arches);
- a rule whose action equals the default action is a no-op and is skipped (libseccomp refuses it);
- when one rule compares the same argument twice, each comparison becomes its own rule (OR), since
  libseccomp cannot AND two comparisons of one argument;
- errnoRet / defaultErrnoRet are only accepted with SCMP_ACT_ERRNO and SCMP_ACT_TRACE (spec: MUST
  fail otherwise); the default return code is EPERM;
- SCMP_ACT_NOTIFY is refused as the default action and for the `write` syscall: the init has to
  write to its sync socket after loading the filter, and nobody could answer that notification yet;
  it also requires listenerPath (a notification nobody listens to would hang the container);
- libseccomp's own no_new_privs bit is turned off: NoNewPrivileges is process.noNewPrivileges' job;
- syscalls newer than the profile get ENOSYS, not the default action (runc's patchbpf): when the
  default action denies (anything but ALLOW, LOG and TRACE, and not already ERRNO(ENOSYS)), every
  syscall whose number, on the architecture making it, is above the largest number of the syscalls
  the profile names (whatever their action; names libseccomp does not know do not count) fails
  with ENOSYS. A newer libc then falls back (clone3 -> clone, statx -> fstatat, ...) instead of
  failing on EPERM, whether or not this libseccomp knows the new call. The check is a stub of
  classic BPF run before libseccomp's program, so the filter is loaded with seccomp(2) directly
  (the flags libseccomp would pass, NEW_LISTENER for a notify filter). x32 calls are compared with
  the largest x32 number; syscalls the profile does not name below the largest still get the
  default action.

Handing the notify fd to the agent: load() returns the fd; send_notify_fd() connects to listenerPath
and sends the container process state with the fd in SCM_RIGHTS. It uses socket/connect/sendmsg/
close, so calling it from the filtered process can deadlock if the profile notifies on one of those:
`SeccompFilter.notify_blocks_sender` tells whether that is the case. The safe way (design note D-19)
is to send from a process without the filter: the init passes the fd to the runtime parent (over the
sync socket, or the parent takes it with pidfd_getfd; find_notify_fd() locates it in /proc/<pid>/fd).
"""
import errno as _errno
import os
import struct

from ocirun.errors import ConfigError, SyscallError
from ocirun.linux import syscalls

# scmp_action values (seccomp.h); ERRNO and TRACE carry a 16-bit data value.
ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
_ACTIONS_WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

# Spec names -> libseccomp's names (seccomp_arch_resolve_name).
ARCHITECTURES = {
    f"SCMP_ARCH_{name.upper()}": name for name in (
        "x86", "x86_64", "x32", "arm", "aarch64", "mips", "mips64", "mips64n32", "mipsel", "mipsel64",
        "mipsel64n32", "ppc", "ppc64", "ppc64le", "s390", "s390x", "parisc", "parisc64", "riscv64",
        "loongarch64", "m68k", "sh", "sheb")
}

OPERATORS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}

# enum scmp_filter_attr
_ATTR_CTL_NNP = 3
_ATTR_CTL_TSYNC = 4
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7
_ATTR_API_SYSRAWRC = 9
_ATTR_CTL_WAITKILL = 10

# seccomp(2) flag name -> (filter attribute, the libseccomp version that has it)
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": (_ATTR_CTL_TSYNC, (2, 2, 0)),
    "SECCOMP_FILTER_FLAG_LOG": (_ATTR_CTL_LOG, (2, 4, 0)),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (_ATTR_CTL_SSB, (2, 5, 0)),
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (_ATTR_CTL_WAITKILL, (2, 6, 0)),
}

# seccomp(2) filter flags (linux/seccomp.h)
_FILTER_FLAG_BITS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
                     "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32}
_FLAG_NEW_LISTENER = 8
_FLAG_TSYNC_ESRCH = 16

# Default actions that let an unknown syscall through: no ENOSYS stub (runc's isAllowAction)
_PERMISSIVE_DEFAULTS = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")
_X32_SYSCALL_BIT = 0x40000000
_AUDIT_ARCH_X86_64 = 0xC000003E
_AUDIT_ARCH_X32 = 0x4000003E        # libseccomp's token; the kernel reports x32 calls as x86_64

MAX_SYSCALL_ARGS = 6
# What send_notify_fd() calls; notifying one of these from the sending process would deadlock it.
_SENDER_SYSCALLS = frozenset({"socket", "connect", "sendmsg", "sendto", "write", "close", "poll", "fcntl"})


class SeccompProgram:
    """A compiled filter as data: the classic BPF program (struct sock_filter array) and the
    seccomp(2) flags to load it with. The runtime builds it (SeccompFilter.program()); it travels
    to the init / exec helper with to_wire() (JSON-safe) and is loaded there."""

    __slots__ = ("bpf", "flags")

    def __init__(self, bpf: bytes, flags: int):
        self.bpf = bpf
        self.flags = flags

    @property
    def has_notify(self) -> bool:
        return bool(self.flags & _FLAG_NEW_LISTENER)

    def load(self) -> int | None:
        """seccomp(SECCOMP_SET_MODE_FILTER) in the calling thread; the listener fd for a notify filter."""
        fd = syscalls.seccomp_set_mode_filter(self.flags, self.bpf)
        return fd if self.has_notify else None

    def to_wire(self) -> dict:
        return {"bpf": self.bpf.hex(), "flags": self.flags}

    @classmethod
    def from_wire(cls, wire: dict) -> "SeccompProgram":
        bpf = bytes.fromhex(wire["bpf"])
        if not bpf or len(bpf) % 8:
            raise ValueError(f"seccomp program of {len(bpf)} bytes is not a sock_filter array")
        return cls(bpf, int(wire["flags"]))


class SeccompFilter:
    """A built libseccomp filter context, ready to be loaded into the calling thread."""

    def __init__(self, ctx: int, *, has_notify: bool, notified: frozenset[str], listener_path: str | None,
                 listener_metadata: str | None, enosys_above: dict[int, int] | None = None,
                 load_flags: int = 0):
        self._ctx = ctx
        self.enosys_above = enosys_above or {}     # arch token -> largest number the profile names
        self._load_flags = load_flags               # seccomp(2) flags of the profile's `flags`
        self.has_notify = has_notify                 # some rule uses SCMP_ACT_NOTIFY
        self.notified_syscalls = notified            # names of the syscalls with SCMP_ACT_NOTIFY
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata

    @property
    def notify_blocks_sender(self) -> bool:
        """True when send_notify_fd() must not run in a process that has this filter."""
        return bool(self.notified_syscalls & _SENDER_SYSCALLS)

    def program(self) -> "SeccompProgram":
        """The whole program the kernel gets (ENOSYS stub + libseccomp's) and its seccomp(2) flags:
        built here, in the runtime, so that the init and the exec helper only load it (they never
        dlopen libseccomp; its arch decisions are the host kernel's either way)."""
        self._check_open()
        program = enosys_stub(self.enosys_above) if self.enosys_above else b""
        program += self.export_bpf()
        # the flags seccomp_load() would pass (libseccomp's sys_filter_load)
        flags = self._load_flags
        if self.has_notify:
            flags |= _FLAG_NEW_LISTENER | (_FLAG_TSYNC_ESRCH if flags & 1 else 0)
        return SeccompProgram(program, flags)

    def load(self) -> int | None:
        """Load the filter into the calling thread (needs no_new_privs or CAP_SYS_ADMIN).

        Returns the notify (listener) fd when a rule uses SCMP_ACT_NOTIFY, else None.
        """
        return self.program().load()

    def export_bpf(self) -> bytes:
        """The compiled BPF program (struct sock_filter array), for diagnostics and tests."""
        self._check_open()
        fd = os.memfd_create("ocirun-seccomp-bpf", os.MFD_CLOEXEC)
        try:
            syscalls.scmp_export_bpf(self._ctx, fd)
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._ctx:
            syscalls.scmp_release(self._ctx)
            self._ctx = 0

    def _check_open(self) -> None:
        if not self._ctx:
            raise ValueError("seccomp filter already released")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _errno_action(action_name: str, errno_ret, path: str, what: str) -> int:
    """The scmp action value for a name plus optional errnoRet, checked."""
    if errno_ret is not None:
        if action_name not in _ACTIONS_WITH_ERRNO:
            raise ConfigError(f"{path}.{what}", f"is only supported with SCMP_ACT_ERRNO and SCMP_ACT_TRACE, "
                                                f"not {action_name}")
        if not isinstance(errno_ret, int) or isinstance(errno_ret, bool) or not 0 <= errno_ret <= 0xFFFF:
            raise ConfigError(f"{path}.{what}", f"must be an integer from 0 to 65535, got {errno_ret!r}")
    value = ACTIONS[action_name]
    if action_name in _ACTIONS_WITH_ERRNO:
        value |= (_errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return value


def _action_name(name, path: str) -> str:
    if name not in ACTIONS:
        raise ConfigError(path, f"unknown seccomp action {name!r}")
    return name


def _u64(value, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
        raise ConfigError(path, f"must be an unsigned 64-bit integer, got {value!r}")
    return value


def _arg_comparisons(args, path: str) -> list[tuple[int, int, int, int]]:
    if not isinstance(args, list):
        raise ConfigError(path, "must be an array")
    out = []
    for j, arg in enumerate(args):
        apath = f"{path}[{j}]"
        if not isinstance(arg, dict):
            raise ConfigError(apath, "must be an object")
        index = arg.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < MAX_SYSCALL_ARGS:
            raise ConfigError(f"{apath}.index", f"must be an argument index from 0 to {MAX_SYSCALL_ARGS - 1}, "
                                                f"got {index!r}")
        op = arg.get("op")
        if op not in OPERATORS:
            raise ConfigError(f"{apath}.op", f"unknown seccomp operator {op!r}")
        value = _u64(arg.get("value"), f"{apath}.value")
        value_two = _u64(arg.get("valueTwo", 0), f"{apath}.valueTwo")
        out.append((index, OPERATORS[op], value, value_two))
    return out


def compile_filter(seccomp: dict, path: str = "linux.seccomp") -> SeccompFilter:
    """Validate linux.seccomp and build the filter; nothing is loaded. Raises ConfigError."""
    if not isinstance(seccomp, dict):
        raise ConfigError(path, "must be an object")
    default_name = _action_name(seccomp.get("defaultAction"), f"{path}.defaultAction")
    if default_name == "SCMP_ACT_NOTIFY":
        raise ConfigError(f"{path}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    default_action = _errno_action(default_name, seccomp.get("defaultErrnoRet"), path, "defaultErrnoRet")

    arches = []
    for i, arch in enumerate(seccomp.get("architectures") or ()):
        lib_name = ARCHITECTURES.get(arch)
        if lib_name is None:
            raise ConfigError(f"{path}.architectures[{i}]", f"unknown seccomp architecture {arch!r}")
        token = syscalls.scmp_arch_resolve_name(lib_name)
        if not token:
            raise ConfigError(f"{path}.architectures[{i}]", f"{arch} is not supported by libseccomp "
                                                           f"{'.'.join(map(str, syscalls.scmp_version()))}")
        arches.append((token, i, arch))

    attrs = []
    for i, flag in enumerate(seccomp.get("flags") or ()):
        if flag not in FLAGS:
            raise ConfigError(f"{path}.flags[{i}]", f"unknown seccomp flag {flag!r}")
        attr, needed = FLAGS[flag]
        have = syscalls.scmp_version()
        if have < needed:
            raise ConfigError(f"{path}.flags[{i}]", f"{flag} needs libseccomp {'.'.join(map(str, needed))}, "
                                                   f"this is {'.'.join(map(str, have))}")
        attrs.append((attr, flag))

    rules = []          # (action, syscall number, comparisons, label)
    notified = set()
    named = set()       # every syscall name the profile mentions, for the ENOSYS stub
    for i, entry in enumerate(seccomp.get("syscalls") or ()):
        spath = f"{path}.syscalls[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(spath, "must be an object")
        action_name = _action_name(entry.get("action"), f"{spath}.action")
        action = _errno_action(action_name, entry.get("errnoRet"), spath, "errnoRet")
        names = entry.get("names")
        if not isinstance(names, list) or not names:
            raise ConfigError(f"{spath}.names", "must be a non-empty array of syscall names")
        comparisons = _arg_comparisons(entry.get("args") or [], f"{spath}.args")
        indexes = [c[0] for c in comparisons]
        # libseccomp cannot AND two comparisons of the same argument: one rule per comparison (runc)
        groups = [[c] for c in comparisons] if len(set(indexes)) < len(indexes) else [comparisons]
        for k, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{spath}.names[{k}]", "must be a syscall name")
            named.add(name)
            if action_name == "SCMP_ACT_NOTIFY":
                if name == "write":
                    raise ConfigError(f"{spath}.names[{k}]", "SCMP_ACT_NOTIFY cannot be used for the write "
                                                             "syscall (the runtime needs it to hand the fd over)")
                notified.add(name)
            if action == default_action:
                continue
            nr = syscalls.scmp_syscall_resolve_name(name)
            if nr == -1:        # __NR_SCMP_ERROR: unknown to libseccomp -> skipped, like runc
                continue
            for group in groups:
                rules.append((action, nr, group, f"{spath} {name}"))

    listener_path = seccomp.get("listenerPath") or None
    metadata = seccomp.get("listenerMetadata")
    if metadata is not None and not listener_path:
        raise ConfigError(f"{path}.listenerMetadata", "must not be set without listenerPath")
    if notified and not listener_path:
        raise ConfigError(f"{path}.listenerPath", "is required when SCMP_ACT_NOTIFY is used")
    if listener_path is not None and not os.path.isabs(listener_path):
        raise ConfigError(f"{path}.listenerPath", "must be an absolute path")

    ctx = syscalls.scmp_init(default_action)
    try:
        syscalls.scmp_attr_set(ctx, _ATTR_CTL_NNP, 0, label="no_new_privs=0")
        syscalls.scmp_attr_set(ctx, _ATTR_API_SYSRAWRC, 1, label="api_sysrawrc=1")
        for attr, flag in attrs:
            syscalls.scmp_attr_set(ctx, attr, 1, label=flag)
        for token, i, arch in arches:
            try:
                syscalls.scmp_arch_add(ctx, token)
            except SyscallError as exc:
                # EDOM: an architecture of the other endianness than the native one
                raise ConfigError(f"{path}.architectures[{i}]", f"{arch} cannot be added to a filter on this "
                                  f"host: {os.strerror(exc.errno)}") from None
        for action, nr, comparisons, label in rules:
            syscalls.scmp_rule_add(ctx, action, nr, comparisons, label=label)
    except BaseException:
        syscalls.scmp_release(ctx)
        raise
    enosys_above = {}
    if default_name not in _PERMISSIVE_DEFAULTS and default_action != ACTIONS["SCMP_ACT_ERRNO"] | _errno.ENOSYS:
        tokens = [syscalls.scmp_arch_native()] + [token for token, _i, _arch in arches]
        enosys_above = _largest_numbers(tokens, named)
    load_flags = 0
    for _attr, flag in attrs:
        load_flags |= _FILTER_FLAG_BITS[flag]
    if not notified:
        load_flags &= ~_FILTER_FLAG_BITS["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]   # needs a listener
    return SeccompFilter(ctx, has_notify=bool(notified), notified=frozenset(notified),
                         listener_path=listener_path, listener_metadata=metadata,
                         enosys_above=enosys_above, load_flags=load_flags)


def _largest_numbers(tokens: list[int], names: set[str]) -> dict[int, int]:
    """{arch token: the largest syscall number among names on that arch}, arches with none left out."""
    out = {}
    for token in dict.fromkeys(tokens):
        numbers = [syscalls.scmp_syscall_resolve_name_arch(token, name) for name in names]
        numbers = [nr for nr in numbers if nr >= 0]
        if numbers:
            out[token] = max(numbers)
    return out


# classic BPF (linux/filter.h, linux/bpf_common.h) and struct seccomp_data offsets
_LD_W_ABS, _JEQ_K, _JGT_K, _JGE_K, _JA, _RET_K = 0x20, 0x15, 0x25, 0x35, 0x05, 0x06
_DATA_NR, _DATA_ARCH = 0, 4
_RET_ERRNO = 0x00050000


def enosys_stub(enosys_above: dict[int, int]) -> bytes:
    """Classic BPF that returns ERRNO(ENOSYS) for a syscall numbered above the largest the profile
    names on the calling architecture, and otherwise falls through to the program appended after
    it (libseccomp's, which starts by loading the arch again). Arches not in the map fall through.

    Instructions are built with labels, then jumps become offsets from the next instruction."""
    code: list[tuple] = []      # (opcode, jt label, jf label, k); labels: int index or name
    labels: dict = {}
    x32_max = enosys_above.get(_AUDIT_ARCH_X32)
    arches = [token for token in enosys_above if token != _AUDIT_ARCH_X32]
    if x32_max is not None and _AUDIT_ARCH_X86_64 not in arches:
        arches.append(_AUDIT_ARCH_X86_64)
    code.append((_LD_W_ABS, None, None, _DATA_ARCH))
    for i, token in enumerate(arches):
        next_check = f"arch{i + 1}" if i + 1 < len(arches) else "continue"
        labels[f"arch{i}"] = len(code)
        code.append((_JEQ_K, None, next_check, token))
        code.append((_LD_W_ABS, None, None, _DATA_NR))
        native_max = enosys_above.get(token)
        if token == _AUDIT_ARCH_X86_64:
            code.append((_JGE_K, f"x32_{i}", None, _X32_SYSCALL_BIT))
        code.append(_above(native_max))
        if token == _AUDIT_ARCH_X86_64:
            labels[f"x32_{i}"] = len(code)
            code.append(_above(x32_max))
    labels["enosys"] = len(code)
    code.append((_RET_K, None, None, _RET_ERRNO | _errno.ENOSYS))
    labels["continue"] = len(code)

    out = bytearray()
    for index, (op, jt, jf, k) in enumerate(code):
        if op == _JA:
            k = labels[k] - index - 1
            jt_off = jf_off = 0
        else:
            jt_off = labels[jt] - index - 1 if jt is not None else 0
            jf_off = labels[jf] - index - 1 if jf is not None else 0
        out += struct.pack("=HBBI", op, jt_off, jf_off, k)
    return bytes(out)


def _above(largest: int | None) -> tuple:
    """nr > largest -> ENOSYS, else the profile's program; no largest known -> the program."""
    if largest is None:
        return (_JA, None, None, "continue")
    return (_JGT_K, "enosys", "continue", largest)


def process_state(state: dict, metadata: str | None) -> dict:
    """The spec's "container process state" sent to the seccomp agent (config-linux.md)."""
    msg = {"ociVersion": state.get("ociVersion", ""), "fds": ["seccompFd"], "pid": state.get("pid", 0)}
    if metadata:
        msg["metadata"] = metadata
    msg["state"] = state
    return msg


def send_notify_fd(listener_path: str, notify_fd: int, state: dict, metadata: str | None = None) -> None:
    """Send the container process state with the notify fd (SCM_RIGHTS) to listenerPath, then close.

    Run this in a process that does not have the filter when `notify_blocks_sender` is true.
    """
    import json     # here: the exec helper imports this module and must stay lean
    data = json.dumps(process_state(state, metadata)).encode()
    import socket  # here, not at the top: create validates seccomp without needing it
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(listener_path)
            sent = socket.send_fds(sock, [data], [notify_fd])
            # the spec allows several sendmsg calls as long as the fds go with the first one
            if sent < len(data):
                sock.sendall(data[sent:])
        except OSError as exc:
            raise SyscallError(exc.errno or _errno.EIO, "send seccomp fd to listener",
                                        listener_path) from None


def find_notify_fd(pid: int) -> int | None:
    """The fd number of a seccomp listener in /proc/<pid>/fd, for taking it with pidfd_getfd."""
    base = f"/proc/{pid}/fd"
    for name in os.listdir(base):
        try:
            if os.readlink(f"{base}/{name}") == "anon_inode:seccomp notify":
                return int(name)
        except OSError:
            continue
    return None
