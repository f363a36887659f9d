"""The container process's privilege steps, in the order of runc's standard_init (design note D-13).

The process settings are checked once by the runtime (`create`, `exec`), on the host, into plan
data (ocirun/processplan.py: settings = boot["plan"]["process"], the exec message's plan["process"]);
nothing here parses config.json's process settings again. The runtime also compiles the profile:
    warnings, program, settings = processplan.validate_and_compile(config)   # program: SeccompProgram or None
and sends settings and program.to_wire() along (the runtime does not import this module). The
container init calls, before pivot_root (host /proc in view):
    seccomp_filter = prepare_process_settings(config, wire)   # host reads, the program to load, or None
and after pivot_root (pid 1 of its pid namespace, still root with every capability):
    outcome = apply_process_settings(config, settings, seccomp_filter=seccomp_filter,
                                     hand_over_notify_fd=...)   # a notify fd, right after its load
then, right before execve:
    apply_final_cpu_affinity(settings)     # spec: for `exec` processes, see below
    reset_signals()
    if outcome.seccomp_pending: load_seccomp_late(seccomp_filter)
    execve(...)

config is still read for what is not a process setting to parse: the LSM labels (strings written
as they are, linux/lsm.py) and whether a seccomp profile was asked for.
"""
import errno
import os
import resource  # noqa: F401  syscalls.prlimit's (set_rlimits), loaded before the init seals its imports
import stat
import _signal as signal  # the C module: signal imports enum (~4 ms of the init's start)

from ocirun.errors import ConfigError, SyscallError
from ocirun.linux import capabilities, lsm, procfs, syscalls
# ocirun.linux.seccomp is imported only for a config with a profile (prepare_process_settings,
# before the init and the exec helper seal their imports)

# --- rlimits -------------------------------------------------------------------------------------

def set_rlimits(limits: list[list]) -> None:
    """[[resource, name, soft, hard]] (processplan.parse_rlimits)."""
    for res, name, soft, hard in limits:
        try:
            syscalls.prlimit(res, soft, hard)
        except OSError as exc:
            raise SyscallError(exc.errno, "setrlimit", f"{name} soft={soft} hard={hard}") from None
        except ValueError as exc:
            raise SyscallError(1, "setrlimit", f"{name} soft={soft} hard={hard} ({exc})") from None


# --- oom_score_adj -------------------------------------------------------------------------------

def set_oom_score_adj(value: int | None) -> None:
    if value is None:       # spec: not set -> MUST NOT change it
        return
    # a procfs handle only (ocirun/linux/procfs.py): the rootfs may ship a plain proc/self/oom_score_adj
    procfs.write("self/oom_score_adj", str(value).encode(), "process.oomScoreAdj")


# --- personality ---------------------------------------------------------------------------------

def set_personality(persona: int | None) -> None:
    if persona is not None:
        syscalls.personality(persona)


# --- I/O priority --------------------------------------------------------------------------------

def set_io_priority(ioprio: int | None) -> None:
    # IOPRIO_WHO_PROCESS of the init itself: every process of the container descends from it and
    # inherits it (runc passes 1 = IOPRIO_WHO_PROCESS too). The process group would also reach
    # unrelated processes when the init has not called setsid.
    if ioprio is not None:
        syscalls.ioprio_set(syscalls.IOPRIO_WHO_PROCESS, 0, ioprio)


# --- scheduler -----------------------------------------------------------------------------------

def set_scheduler(sched: dict | None) -> None:
    """sched_setattr(2) with processplan.parse_scheduler's fields."""
    if sched is not None:
        syscalls.sched_setattr(0, sched["policy"], sched["flags"], sched["nice"], sched["priority"],
                               sched["runtime"], sched["deadline"], sched["period"],
                               label=f"policy={sched['policyName']} nice={sched['nice']} "
                                     f"priority={sched['priority']}")


# --- CPU affinity (execCPUAffinity) --------------------------------------------------------------

def _set_affinity(cpus: list[int] | None, what: str) -> None:
    if cpus is None:
        return
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:
        raise SyscallError(exc.errno, "sched_setaffinity", f"process.execCPUAffinity.{what}") from None


def apply_initial_cpu_affinity(settings: dict) -> None:
    """execCPUAffinity.initial of the plan's process settings: for `exec`, in the runtime's process
    before it joins the container's cgroup."""
    _set_affinity(settings["execCPUAffinity"][0], "initial")


def apply_final_cpu_affinity(settings: dict) -> None:
    """execCPUAffinity.final of the plan's process settings: after joining the cgroup, before execve
    (and before the late seccomp load, which could forbid sched_setaffinity)."""
    _set_affinity(settings["execCPUAffinity"][1], "final")


# --- NUMA memory policy --------------------------------------------------------------------------

def set_memory_policy(policy: list | None) -> None:
    """[mode, nodes] (processplan.parse_memory_policy)."""
    if policy is not None:
        syscalls.set_mempolicy(policy[0], set(policy[1]))


# --- user ----------------------------------------------------------------------------------------

def user_id(settings: dict) -> int:
    """The uid the process will run as (0 without process.user): its stdio, its pty, its HOME."""
    return (settings["user"] or {}).get("uid", 0)


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


def set_user(user: dict | None) -> None:
    """setgroups, setresgid, setresuid keeping the permitted capabilities (PR_SET_KEEPCAPS); umask
    (user: processplan.parse_user's). First the stdio is given to the user (own_stdio; runc does it
    for uid 0 too)."""
    own_stdio(user["uid"] if user is not None else 0)
    if user is None:
        os.umask(0o022)     # runc's default: the caller's umask never reaches the container
        return
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1, op="prctl PR_SET_KEEPCAPS")
    try:
        if _setgroups_allowed():
            # always called: also drops the groups the runtime itself had
            _os_call(syscalls.setgroups, list(user["additionalGids"]), op="setgroups",
                     detail=str(list(user["additionalGids"])))
        elif user["additionalGids"]:
            raise ConfigError("process.user.additionalGids",
                              "cannot be set: setgroups is denied in this user namespace")
        gid, uid = user["gid"], user["uid"]
        _os_call(syscalls.setresgid, gid, gid, gid, op="setresgid", detail=str(gid))
        _os_call(syscalls.setresuid, uid, uid, uid, op="setresuid", detail=str(uid))
    finally:
        syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 0, op="prctl PR_SET_KEEPCAPS")
    os.umask(user["umask"] if user["umask"] is not None else 0o022)   # runc's default when unset


# --- capabilities --------------------------------------------------------------------------------

PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def set_bounding(keep: list[int]) -> None:
    """Drop every capability whose number is not in keep from the bounding set (needs CAP_SETPCAP)."""
    keep = set(keep)
    for number in range(capabilities.kernel_last_cap() + 1):
        if number in keep:
            continue
        try:
            syscalls.prctl(syscalls.PR_CAPBSET_DROP, number, op="prctl PR_CAPBSET_DROP")
        except OSError as exc:
            raise SyscallError(exc.errno, "prctl PR_CAPBSET_DROP", capabilities.CAPABILITIES[number]) from None


def set_capabilities(sets: dict[str, list[int]]) -> None:
    """Set effective, permitted and inheritable exactly as planned (capabilities.plan_capabilities),
    then raise the ambient set.

    Called after the uid change (with PR_SET_KEEPCAPS the permitted set survived it), so every
    configured capability is still in the permitted set and capset can only lower it.
    """
    masks = {name: sum(1 << number for number in sets[name]) for name in ("effective", "permitted", "inheritable")}
    try:
        syscalls.capset(masks["effective"], masks["permitted"], masks["inheritable"])
    except OSError as exc:
        detail = ", ".join(f"{name}={len(sets[name])}" for name in ("effective", "permitted", "inheritable"))
        raise SyscallError(exc.errno, "capset", detail) from None
    syscalls.prctl(syscalls.PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, op="prctl PR_CAP_AMBIENT_CLEAR_ALL")
    for number in sets["ambient"]:
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, number,
                       op=f"prctl PR_CAP_AMBIENT_RAISE {capabilities.CAPABILITIES[number]}")


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

def prepare_process_settings(config: dict, seccomp_wire: dict | None = None) -> "SeccompProgram | None":
    """Run in the init (and the exec helper) BEFORE it enters the rootfs (pivot_root): reads what
    later steps need from the host (cap_last_cap, a checked procfs handle for the LSM labels, which
    checks the host's LSMs again: the exec helper's only check of them) and takes the seccomp program
    the runtime compiled (seccomp_wire, SeccompProgram.to_wire()). The process settings are not
    checked again: the runtime sent them as plan data. A config with a profile but no program is
    refused: the process must never run unfiltered."""
    capabilities.kernel_last_cap()
    lsm.prepare_lsm(config)
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


def apply_process_settings(config: dict, settings: dict, *, seccomp_filter: "SeccompProgram | None",
                           hand_over_notify_fd=None) -> ProcessSettingsOutcome:
    """Apply the plan's process settings (processplan.build) to the calling process, in runc's
    order (D-13). From config only the LSM labels are read (linux/lsm.py).

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
    caps = settings["capabilities"]
    set_rlimits(settings["rlimits"])
    set_oom_score_adj(settings["oomScoreAdj"])
    set_personality(settings["personality"])   # before seccomp (runc#4900)
    set_io_priority(settings["ioPriority"])
    set_scheduler(settings["scheduler"])
    set_memory_policy(settings["memoryPolicy"])

    nnp = settings["noNewPrivileges"]
    if nnp:
        set_no_new_privs()
    lsm.apply_exec_labels(config)    # after NNP, before seccomp (runc's order)
    lsm.close_proc_fd()
    notify_fd = None
    if seccomp_filter is not None and not nnp:
        notify_fd = _handed_over(seccomp_filter.load(), hand_over_notify_fd)

    set_bounding(caps["bounding"])
    # cwd first as root (a directory only root can enter), again as the user if that was refused
    cwd = settings["cwd"]
    chdir_later = False
    if cwd:
        try:
            _chdir(cwd)
        except SyscallError as exc:
            if exc.errno not in (1, 13):    # EPERM, EACCES: maybe fine for the user (root squash)
                raise
            chdir_later = True
    set_user(settings["user"])
    if chdir_later:
        _chdir(cwd)
    set_capabilities(caps)

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
