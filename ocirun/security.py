"""The container process's privilege steps, in the order of runc's standard_init (design note D-13).

The runtime (`create`, `exec`) validates and compiles the profile once, on the host:
    warnings, program = validate_and_compile(config)          # program: SeccompProgram or None
and sends program.to_wire() along. The container init calls, before pivot_root (host /proc in view):
    seccomp_filter = prepare_process_settings(config, wire)   # checks, the program to load, or None
and after pivot_root (pid 1 of its pid namespace, still root with every capability):
    outcome = apply_process_settings(config, seccomp_filter=seccomp_filter,
                                     hand_over_notify_fd=...)   # a notify fd, right after its load
then, right before execve:
    apply_final_cpu_affinity(config["process"])     # spec: for `exec` processes, see below
    reset_signals()
    if outcome.seccomp_pending: load_seccomp_late(seccomp_filter)
    execve(...)

validate_process(config) runs every pure check (no side effect) so that `create` fails early with
one line naming the field; it returns warnings (capabilities the kernel cannot grant) to print.

Each parse_* function validates one field and returns what the matching set_* step needs, so the
checks done at create time and at apply time are the same code.
"""
import errno
import os
import resource
import stat
import _signal as signal  # the C module: signal imports enum (~4 ms of the init's start)

from ocirun.errors import ConfigError, SyscallError
from ocirun.linux import capabilities, lsm, procfs, syscalls
# ocirun.linux.seccomp is imported only for a config with a profile (validate_and_compile,
# prepare_process_settings: both before the init and the exec helper seal their imports)

# --- rlimits -------------------------------------------------------------------------------------

# asm-generic/resource.h numbers (x86_64, aarch64); Python's resource module lacks RLIMIT_LOCKS.
RLIMITS = {name: number for number, name in enumerate((
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"))}
_U64 = 1 << 64


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_from(value, low: int, high: int, path: str) -> int:
    if not _is_int(value) or not low <= value <= high:
        raise ConfigError(path, f"must be an integer from {low} to {high}, got {value!r}")
    return value


def _u64(value, path: str) -> int:
    if not _is_int(value) or not 0 <= value < _U64:
        raise ConfigError(path, f"must be an unsigned 64-bit integer, got {value!r}")
    return value


def _object_naming(value, path: str, key: str, names: dict, what: str) -> str:
    """value[key] of a setting that must be an object naming one of `names` (a class, a policy, a mode)."""
    if not isinstance(value, dict):
        raise ConfigError(path, "must be an object")
    name = value.get(key)
    if name not in names:
        raise ConfigError(f"{path}.{key}", f"unknown {what} {name!r}")
    return name


def _flag_bits(flags, path: str, bits: dict, what: str) -> int:
    """The OR of the named flags' bits; flags may be absent."""
    out = 0
    for i, flag in enumerate(flags or ()):
        if flag not in bits:
            raise ConfigError(f"{path}[{i}]", f"unknown {what} {flag!r}")
        out |= bits[flag]
    return out


def _rlim(value: int) -> int:
    # uint64 in config.json; everything from 2**63 up is RLIM_INFINITY for the kernel's rlim_t
    # (which is what runc passes on), and Python's resource module spells that as RLIM_INFINITY.
    return resource.RLIM_INFINITY if value >= 1 << 63 else value


def parse_rlimits(rlimits, path: str = "process.rlimits") -> list[tuple[int, str, int, int]]:
    """[(resource, name, soft, hard)]; unknown or duplicated types and soft > hard are errors."""
    if rlimits is None:
        return []
    if not isinstance(rlimits, list):
        raise ConfigError(path, "must be an array")
    out, seen = [], set()
    for i, entry in enumerate(rlimits):
        epath = f"{path}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(epath, "must be an object")
        name = entry.get("type")
        if name not in RLIMITS:
            raise ConfigError(f"{epath}.type", f"unknown rlimit type {name!r}")
        if name in seen:
            raise ConfigError(f"{epath}.type", f"duplicated rlimit type {name}")
        seen.add(name)
        soft, hard = _u64(entry.get("soft"), f"{epath}.soft"), _u64(entry.get("hard"), f"{epath}.hard")
        if min(soft, 1 << 63) > min(hard, 1 << 63):
            raise ConfigError(epath, f"soft limit {soft} is greater than hard limit {hard}")
        out.append((RLIMITS[name], name, _rlim(soft), _rlim(hard)))
    return out


def set_rlimits(limits: list[tuple[int, str, int, int]]) -> None:
    for res, name, soft, hard in limits:
        try:
            syscalls.prlimit(res, soft, hard)
        except OSError as exc:
            raise SyscallError(exc.errno, "setrlimit", f"{name} soft={soft} hard={hard}") from None
        except ValueError as exc:
            raise SyscallError(1, "setrlimit", f"{name} soft={soft} hard={hard} ({exc})") from None


# --- oom_score_adj -------------------------------------------------------------------------------

def parse_oom_score_adj(value, path: str = "process.oomScoreAdj") -> int | None:
    return None if value is None else _int_from(value, -1000, 1000, path)


def set_oom_score_adj(value: int | None) -> None:
    if value is None:       # spec: not set -> MUST NOT change it
        return
    # a procfs handle only (ocirun/linux/procfs.py): the rootfs may ship a plain proc/self/oom_score_adj
    procfs.write("self/oom_score_adj", str(value).encode(), "process.oomScoreAdj")


# --- personality ---------------------------------------------------------------------------------

PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}   # PER_LINUX, PER_LINUX32


def parse_personality(value, path: str = "linux.personality") -> int | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(path, "must be an object")
    domain = value.get("domain")
    if domain not in PERSONALITY_DOMAINS:
        raise ConfigError(f"{path}.domain", f"unknown execution domain {domain!r} (LINUX or LINUX32)")
    if value.get("flags"):
        raise ConfigError(f"{path}.flags", "personality flags are not supported (the spec defines none)")
    return PERSONALITY_DOMAINS[domain]


def set_personality(persona: int | None) -> None:
    if persona is not None:
        syscalls.personality(persona)


# --- I/O priority --------------------------------------------------------------------------------

IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}


def parse_io_priority(value, path: str = "process.ioPriority") -> int | None:
    """The ioprio value (class << 13 | level)."""
    if value is None:
        return None
    cls = _object_naming(value, path, "class", IOPRIO_CLASSES, "I/O priority class")
    level = _int_from(value.get("priority"), 0, 7, f"{path}.priority")
    return IOPRIO_CLASSES[cls] << syscalls.IOPRIO_CLASS_SHIFT | level


def set_io_priority(ioprio: int | None) -> None:
    # IOPRIO_WHO_PROCESS of the init itself: every process of the container descends from it and
    # inherits it (runc passes 1 = IOPRIO_WHO_PROCESS too). The process group would also reach
    # unrelated processes when the init has not called setsid.
    if ioprio is not None:
        syscalls.ioprio_set(syscalls.IOPRIO_WHO_PROCESS, 0, ioprio)


# --- scheduler -----------------------------------------------------------------------------------

SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10,
               "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20, "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}


class Scheduler:
    # A plain class, not a dataclass: importing dataclasses costs the init ~6 ms (inspect, ast).
    __slots__ = ("policy", "policy_name", "flags", "nice", "priority", "runtime", "deadline", "period")

    def __init__(self, policy: int, policy_name: str, flags: int = 0, nice: int = 0, priority: int = 0,
                 runtime: int = 0, deadline: int = 0, period: int = 0):
        self.policy, self.policy_name, self.flags, self.nice = policy, policy_name, flags, nice
        self.priority, self.runtime, self.deadline, self.period = priority, runtime, deadline, period

    def __eq__(self, other) -> bool:
        return isinstance(other, Scheduler) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)


def parse_scheduler(value, path: str = "process.scheduler") -> Scheduler | None:
    """Checks as runc's validator: nice range, priority only for FIFO/RR, times only for DEADLINE."""
    if value is None:
        return None
    policy = _object_naming(value, path, "policy", SCHED_POLICIES, "scheduling policy")
    if policy == "SCHED_ISO":
        raise ConfigError(f"{path}.policy", "SCHED_ISO is not implemented by the Linux kernel")
    flags = _flag_bits(value.get("flags"), f"{path}.flags", SCHED_FLAGS, "scheduler flag")
    nice = _int_from(value.get("nice", 0), -20, 19, f"{path}.nice")
    priority = _int_from(value.get("priority", 0), 0, 99, f"{path}.priority")
    if priority and policy not in ("SCHED_FIFO", "SCHED_RR"):
        raise ConfigError(f"{path}.priority", "can only be set with SCHED_FIFO or SCHED_RR")
    if policy in ("SCHED_FIFO", "SCHED_RR") and not priority:
        raise ConfigError(f"{path}.priority", f"{policy} needs a priority from 1 to 99")
    times = {}
    for key in ("runtime", "deadline", "period"):
        t = _u64(value.get(key, 0), f"{path}.{key}")
        if t and policy != "SCHED_DEADLINE":
            raise ConfigError(f"{path}.{key}", "can only be set with SCHED_DEADLINE")
        times[key] = t
    return Scheduler(SCHED_POLICIES[policy], policy, flags, nice, priority, **times)


def set_scheduler(sched: Scheduler | None) -> None:
    if sched is not None:
        syscalls.sched_setattr(0, sched.policy, sched.flags, sched.nice, sched.priority, sched.runtime,
                               sched.deadline, sched.period,
                               label=f"policy={sched.policy_name} nice={sched.nice} priority={sched.priority}")


# --- CPU affinity (execCPUAffinity) --------------------------------------------------------------

def parse_cpu_list(text, path: str) -> set[int]:
    """"0-3,7" -> {0, 1, 2, 3, 7}."""
    if not isinstance(text, str):
        raise ConfigError(path, "must be a string such as \"0-3,7\"")
    cpus = set()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ConfigError(path, f"invalid CPU list {text!r} (expected e.g. \"0-3,7\")")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first or last >= 8192:
            raise ConfigError(path, f"invalid CPU range {part!r}")
        cpus.update(range(first, last + 1))
    return cpus


def parse_exec_cpu_affinity(value, path: str = "process.execCPUAffinity") -> tuple[set | None, set | None]:
    """(initial, final) CPU sets; None when not set (or empty: the kernel decides)."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise ConfigError(path, "must be an object")
    out = []
    for key in ("initial", "final"):
        text = value.get(key)
        out.append(parse_cpu_list(text, f"{path}.{key}") if text else None)
    return out[0], out[1]


def _set_affinity(cpus: set[int] | None, what: str) -> None:
    if cpus is None:
        return
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:
        raise SyscallError(exc.errno, "sched_setaffinity", f"process.execCPUAffinity.{what}") from None


def apply_initial_cpu_affinity(process: dict) -> None:
    """execCPUAffinity.initial of the `process` object: for `exec`, in the runtime's process before
    it joins the container's cgroup."""
    _set_affinity(parse_exec_cpu_affinity((process or {}).get("execCPUAffinity"))[0], "initial")


def apply_final_cpu_affinity(process: dict) -> None:
    """execCPUAffinity.final of the `process` object: after joining the cgroup, before execve (and
    before the late seccomp load, which could forbid sched_setaffinity)."""
    _set_affinity(parse_exec_cpu_affinity((process or {}).get("execCPUAffinity"))[1], "final")


# --- NUMA memory policy --------------------------------------------------------------------------

MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3, "MPOL_LOCAL": 4,
              "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_NUMA_BALANCING": 1 << 13}
_MPOL_WITHOUT_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
_MPOL_NEED_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE")


def parse_memory_policy(value, path: str = "linux.memoryPolicy") -> tuple[int, set[int]] | None:
    """(mode | flags, nodes) for set_mempolicy(2)."""
    if value is None:
        return None
    mode_name = _object_naming(value, path, "mode", MPOL_MODES, "memory policy mode")
    nodes = parse_cpu_list(value["nodes"], f"{path}.nodes") if value.get("nodes") else set()
    if nodes and mode_name in _MPOL_WITHOUT_NODES:
        raise ConfigError(f"{path}.nodes", f"must be empty with {mode_name}")
    if not nodes and mode_name in _MPOL_NEED_NODES:
        raise ConfigError(f"{path}.nodes", f"{mode_name} needs at least one node")
    flags = _flag_bits(value.get("flags"), f"{path}.flags", MPOL_FLAGS, "memory policy flag")
    return MPOL_MODES[mode_name] | flags, nodes


def set_memory_policy(policy: tuple[int, set[int]] | None) -> None:
    if policy is not None:
        syscalls.set_mempolicy(*policy)


# --- user ----------------------------------------------------------------------------------------

class User:
    __slots__ = ("uid", "gid", "additional_gids", "umask")

    def __init__(self, uid: int, gid: int, additional_gids: tuple[int, ...] = (), umask: int | None = None):
        self.uid, self.gid, self.additional_gids, self.umask = uid, gid, additional_gids, umask

    def __eq__(self, other) -> bool:
        return isinstance(other, User) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)


def _id(value, path: str) -> int:
    if value is None:
        raise ConfigError(path, "is required (config.md: uid and gid are REQUIRED)")
    if not _is_int(value) or not 0 <= value < 0xFFFFFFFF:   # (uid_t)-1 means "unchanged" to the kernel
        raise ConfigError(path, f"must be an id from 0 to 4294967294, got {value!r}")
    return value


def parse_user(value, path: str = "process.user") -> User | None:
    """Numeric ids only: no /etc/passwd or NSS lookups in the container (D-12)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(path, "must be an object")
    if value.get("username"):
        raise ConfigError(f"{path}.username", "is only supported on Windows; use uid and gid")
    uid = _id(value.get("uid"), f"{path}.uid")
    gid = _id(value.get("gid"), f"{path}.gid")
    gids = value.get("additionalGids") or []
    if not isinstance(gids, list):
        raise ConfigError(f"{path}.additionalGids", "must be an array of group ids")
    extra = tuple(_id(g, f"{path}.additionalGids[{i}]") for i, g in enumerate(gids))
    umask = value.get("umask")
    if umask is not None and (not _is_int(umask) or not 0 <= umask <= 0o777):
        raise ConfigError(f"{path}.umask", f"must be an integer from 0 to 0o777 (511), got {umask!r}")
    return User(uid, gid, extra, umask)


def _setgroups_allowed() -> bool:
    # "deny" in a user namespace whose gid map was written without CAP_SETGID in the parent ns
    try:
        with open("/proc/self/setgroups", "rb") as f:
            return f.read().strip() != b"deny"
    except FileNotFoundError:
        return True


def own_stdio(uid: int) -> None:
    """Give the process's stdio to the user it is about to become, as runc's fixStdioPermissions:
    the fds were opened outside the container (a pipe from conmon, a log file), and a user
    process reopening them as /dev/stdout (/proc/self/fd/1, as nginx's images do) is refused
    unless it owns them. Only the uid changes. Skipped: fds the user already owns and /dev/null
    (runc compares with the container's /dev/null; the 1:3 device number is the same thing without
    trusting the image's file). EINVAL (owner unmapped in a user namespace), EPERM and EROFS are
    ignored, as runc does: nothing more can be done there (and a seccomp profile may deny fchown)."""
    null = os.makedev(1, 3)
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            # closed stdio, or a seccomp profile (loaded before this with noNewPrivileges false)
            # that denies fstat: nothing the runtime does after the load may depend on it
            continue
        if st.st_uid == uid or (stat.S_ISCHR(st.st_mode) and st.st_rdev == null):
            continue
        try:
            syscalls.fchown(fd, uid, -1)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EPERM, errno.EROFS):
                raise SyscallError(exc.errno, "fchown", f"stdio fd {fd} to uid {uid}") from None


def set_user(user: User | None) -> None:
    """setgroups, setresgid, setresuid keeping the permitted capabilities (PR_SET_KEEPCAPS); umask.
    First the stdio is given to the user (own_stdio; runc does it for uid 0 too)."""
    own_stdio(user.uid if user is not None else 0)
    if user is None:
        os.umask(0o022)     # runc's default: the caller's umask never reaches the container
        return
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1, op="prctl PR_SET_KEEPCAPS")
    try:
        if _setgroups_allowed():
            # always called: also drops the groups the runtime itself had
            _os_call(syscalls.setgroups, list(user.additional_gids), op="setgroups",
                     detail=str(list(user.additional_gids)))
        elif user.additional_gids:
            raise ConfigError("process.user.additionalGids",
                              "cannot be set: setgroups is denied in this user namespace")
        _os_call(syscalls.setresgid, user.gid, user.gid, user.gid, op="setresgid", detail=str(user.gid))
        _os_call(syscalls.setresuid, user.uid, user.uid, user.uid, op="setresuid", detail=str(user.uid))
    finally:
        syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 0, op="prctl PR_SET_KEEPCAPS")
    os.umask(user.umask if user.umask is not None else 0o022)   # runc's default when unset


def _os_call(func, *args, op: str, detail: str):
    try:
        return func(*args)
    except OSError as exc:
        raise SyscallError(exc.errno, op, detail) from None


def _chdir(cwd: str) -> None:
    _os_call(os.chdir, cwd, op="chdir to cwd", detail=f'("{cwd}") set in config.json failed')
    verify_cwd(cwd)


def verify_cwd(cwd: str) -> None:
    """D-7 (CVE-2024-21626): after the chdir the working directory must be inside the container's
    root. A directory reached through a leaked fd outside it reads back as "(unreachable)...", which
    os.getcwd() reports as FileNotFoundError."""
    try:
        now = os.getcwd()
    except FileNotFoundError:
        now = ""
    except OSError:
        return  # getcwd itself refused (a seccomp profile may deny it): nothing to verify with
    if not now.startswith("/"):
        raise ConfigError("process.cwd", f"{cwd!r} is outside the container's root filesystem")


# --- no_new_privs, seccomp -----------------------------------------------------------------------

def set_no_new_privs() -> None:
    syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1, op="prctl PR_SET_NO_NEW_PRIVS")


def load_seccomp_late(seccomp_filter: "SeccompProgram") -> int | None:
    """Load the filter as the last step before execve (noNewPrivileges=true); returns the notify fd."""
    return seccomp_filter.load()


# --- signals -------------------------------------------------------------------------------------

def reset_signals() -> None:
    """Every catchable signal back to SIG_DFL and an empty mask (D-14): Python ignores SIGPIPE and
    SIGXFSZ, and ignored signals survive execve."""
    for signum in range(1, signal.NSIG):
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):
            continue        # 32 and 33 belong to glibc's threads implementation
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


# --- the whole sequence --------------------------------------------------------------------------

def validate_process(config: dict) -> list[str]:
    """All pure checks of the process settings; ConfigError on the first bad field, else warnings."""
    return validate_and_compile(config)[0]


def validate_and_compile(config: dict) -> "tuple[list[str], SeccompProgram | None]":
    """validate_process, and the seccomp profile compiled into the program the process will load
    (the one compile of a create or exec: libseccomp is dlopen()ed by the runtime only)."""
    warnings = _check_fields(config)
    seccomp = (config.get("linux") or {}).get("seccomp")
    if seccomp is None:
        return warnings, None
    from ocirun.linux.seccomp import compile_filter
    with compile_filter(seccomp) as built:
        return warnings, built.program()


def _check_fields(config: dict) -> list[str]:
    process = config.get("process") or {}
    linux = config.get("linux") or {}
    warnings = capabilities.validate_capabilities(process.get("capabilities"))
    parse_rlimits(process.get("rlimits"))
    parse_oom_score_adj(process.get("oomScoreAdj"))
    parse_personality(linux.get("personality"))
    parse_io_priority(process.get("ioPriority"))
    parse_scheduler(process.get("scheduler"))
    parse_exec_cpu_affinity(process.get("execCPUAffinity"))
    parse_memory_policy(linux.get("memoryPolicy"))
    parse_user(process.get("user"))
    lsm.validate_lsm(config)     # apparmorProfile, selinuxLabel, mountLabel: the host must have the LSM
    cwd = process.get("cwd")
    if cwd is not None and (not isinstance(cwd, str) or not cwd.startswith("/")):
        raise ConfigError("process.cwd", "must be an absolute path")
    return warnings


def prepare_process_settings(config: dict, seccomp_wire: dict | None = None) -> "SeccompProgram | None":
    """Run in the init BEFORE it enters the rootfs (pivot_root): checks the fields again, reads what
    later steps need from the host (cap_last_cap, a procfs handle) and takes the seccomp program the
    runtime compiled (seccomp_wire, SeccompProgram.to_wire()). A config with a profile but no program
    is refused: the process must never run unfiltered."""
    _check_fields(config)
    capabilities.kernel_last_cap()
    lsm.prepare_lsm(config)      # a checked handle on the host's procfs, for the exec labels
    if seccomp_wire is not None:
        from ocirun.linux.seccomp import SeccompProgram
        return SeccompProgram.from_wire(seccomp_wire)
    if (config.get("linux") or {}).get("seccomp") is not None:
        raise ConfigError("linux.seccomp", "the runtime sent no compiled seccomp program")
    return None


class ProcessSettingsOutcome:
    __slots__ = ("seccomp_pending", "notify_fd")

    def __init__(self, seccomp_pending: bool, notify_fd: int | None):
        self.seccomp_pending = seccomp_pending  # call load_seccomp_late(filter) right before execve
        self.notify_fd = notify_fd              # listener fd when the filter was loaded here and uses NOTIFY

    def __bool__(self) -> bool:
        # `if apply_process_settings(...):` reads as "is seccomp still pending"
        return self.seccomp_pending


def apply_process_settings(config: dict, *, seccomp_filter: "SeccompProgram | None",
                           hand_over_notify_fd=None) -> ProcessSettingsOutcome:
    """Apply process/linux settings to the calling process, in runc's order (D-13).

    Seccomp: with noNewPrivileges=false the filter is loaded here while CAP_SYS_ADMIN is still held
    (before the bounding set, uid and capability changes), so the profile must allow what follows
    (prctl, capset, setresuid, ...), as with runc. With noNewPrivileges=true it stays pending for
    load_seccomp_late(), unless it uses SCMP_ACT_NOTIFY: then it is loaded here too, at the end, so
    that its listener fd can still be handed to the runtime parent, which exits once the init
    reported ready (runc also loads it before closing its sync pipe for the same reason).

    SCMP_ACT_NOTIFY: the steps after the load may make notified syscalls (chdir, capset, ...), which
    block until the agent answers, so the listener fd must reach the agent before them. When
    hand_over_notify_fd is given it is called with the fd right after the load, before anything
    else (runc's syncParentSeccomp); it may use only read(2) and write(2), and owns the fd.
    Without it the fd is returned in the outcome.

    execCPUAffinity is not applied: the spec says it does not apply to the container's init; the
    `exec` path calls apply_initial_cpu_affinity / apply_final_cpu_affinity.
    """
    process = config.get("process") or {}
    linux = config.get("linux") or {}
    caps = process.get("capabilities")
    user = parse_user(process.get("user"))

    set_rlimits(parse_rlimits(process.get("rlimits")))
    set_oom_score_adj(parse_oom_score_adj(process.get("oomScoreAdj")))
    set_personality(parse_personality(linux.get("personality")))   # before seccomp (runc#4900)
    set_io_priority(parse_io_priority(process.get("ioPriority")))
    set_scheduler(parse_scheduler(process.get("scheduler")))
    set_memory_policy(parse_memory_policy(linux.get("memoryPolicy")))

    nnp = bool(process.get("noNewPrivileges"))
    if nnp:
        set_no_new_privs()
    lsm.apply_exec_labels(config)    # after NNP, before seccomp (runc's order)
    lsm.close_proc_fd()
    notify_fd = None
    if seccomp_filter is not None and not nnp:
        notify_fd = _handed_over(seccomp_filter.load(), hand_over_notify_fd)

    capabilities.drop_bounding(caps)
    # cwd first as root (a directory only root can enter), again as the user if that was refused
    cwd = process.get("cwd")
    chdir_later = False
    if cwd:
        try:
            _chdir(cwd)
        except SyscallError as exc:
            if exc.errno not in (1, 13):    # EPERM, EACCES: maybe fine for the user (root squash)
                raise
            chdir_later = True
    set_user(user)
    if chdir_later:
        _chdir(cwd)
    capabilities.apply_capabilities(caps)

    pending = False
    if seccomp_filter is not None and nnp:
        if seccomp_filter.has_notify:
            notify_fd = _handed_over(seccomp_filter.load(), hand_over_notify_fd)
        else:
            pending = True
    return ProcessSettingsOutcome(seccomp_pending=pending, notify_fd=notify_fd)


def _handed_over(notify_fd: int | None, hand_over) -> int | None:
    """The listener fd still ours to return, or None once hand_over took it."""
    if notify_fd is None or hand_over is None:
        return notify_fd
    hand_over(notify_fd)
    return None
