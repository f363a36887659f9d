"""`ocirun exec`: run a new process in a running (or created) container, as `runc exec` does.

    ocirun exec [flags] ID CMD [ARGS...]      the container's process settings, changed by the flags
    ocirun exec [flags] -p process.json ID    a process object of the spec (config.md "process")

Processes (see docs/ARCHITECTURE.md):

    ocirun exec (E)       parse, load the state, build the process, open the init's namespaces
      fexecve a sealed interpreter: the exec helper H (ocirun/exec_init.py), with the sync socket;
      E adds H to the container's cgroup (every hierarchy) while H's interpreter starts
    (E checks the process settings into plan data (processplan.build) and compiles the seccomp
     profile into the program X loads, and sends both in the plan)
    H (host namespaces)   host reads (LSM), execCPUAffinity.initial, wait until E has
                          added it to the cgroup; setns user .. mnt, fork
    H exits after reporting the pid of X; X is re-parented to E (a child subreaper) in the foreground
    X (in the container)  setsid, the tty, process settings (security.py), close fds, execve

The helper is a fresh interpreter exec'd from a read-only handle rather than a fork of E: a program
in the container could be a `#!/proc/self/exe` script, which would make the kernel run (and expose)
the interpreter X was exec'd from (CVE-2019-5736, hardening D-9). It costs one interpreter start,
overlapped with E's own work.

Exit status: the process's (128+N for a signal) in the foreground, 0 with --detach, 255 when the
exec itself fails (runc's code; podman and docker read "no such file or directory" and
"permission denied" in the message).
"""
import _socket  # not socket (selectors, enum) nor json (re, enum): ~8 ms of each exec
import os

from ocirun import fastjson, log, protocol
from ocirun import state as st
from ocirun.cliparse import UsageError, parse
from ocirun.errors import OciError

FLAGS = {"console-socket": "str", "cwd": "str", "env": "list", "tty": "bool", "user": "str",
         "additional-gids": "list", "process": "str", "detach": "bool", "pid-file": "str",
         "process-label": "str", "apparmor": "str", "no-new-privs": "bool", "cap": "list",
         "preserve-fds": "int", "cgroup": "list", "ignore-paused": "bool"}
ALIASES = {"e": "env", "t": "tty", "u": "user", "g": "additional-gids", "p": "process", "d": "detach",
           "c": "cap"}

EXEC_FAILED = 255


class ExecError(OciError):
    exit_code = EXEC_FAILED


def exec_cmd(g, argv: list[str]) -> int:
    try:
        return _exec(g, argv)
    except OciError as exc:
        exc.exit_code = EXEC_FAILED     # runc: every failure of exec itself exits 255
        raise
    except OSError as exc:
        from ocirun.errors import describe_oserror
        raise ExecError(describe_oserror(exc)) from None


def _exec(g, argv: list[str]) -> int:
    opts, pos = parse(argv, FLAGS, ALIASES, stop_at_positional=1)
    if not pos:
        raise UsageError('"exec" requires a minimum of 1 argument')
    cid, args = pos[0], pos[1:]
    if not opts["process"] and not args:
        raise UsageError('"exec" requires a minimum of 2 arguments (or --process FILE)')
    if opts["cgroup"]:
        raise OciError("--cgroup: running exec processes in a sub-cgroup is not supported by ocirun")
    preserve = opts["preserve-fds"] or 0
    if preserve < 0:
        raise UsageError("--preserve-fds: must not be negative")
    # only what the caller really gave us crosses: our own fds may later take free numbers there
    passed = protocol.open_fds(3, 3 + preserve)
    detach = opts["detach"]
    from ocirun.linux import syscalls as sc
    if not detach:
        # X is forked by the helper; once the helper exits it is re-parented to us, and we wait for it.
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    # The helper's interpreter starts first and boots while we load the state and build the plan;
    # on any error before the plan is sent, closing the socket makes it exit.
    sync, logs, helper = protocol.spawn_child("ocirun.exec_init", "exec", preserve, passed)
    log.timing("exec: spawn helper")
    try:
        state, config, host_console, console_parent = _send_plan(g, opts, cid, args, preserve, sync)
        log.timing("exec: state loaded, process built, namespaces opened, plan sent")
        # Into the container's cgroup now, while the helper's interpreter is still starting: on
        # cgroup v1 each join waits ~15 ms in the kernel (an RCU grace period), which then overlaps
        # the helper's start instead of following it. (As runc's init, the helper is in the cgroup
        # from its start on; it asks for the join before it seals its imports and joins namespaces.)
        join_cgroup(state, helper)
        log.timing("exec: helper placed in the container's cgroup")
    except BaseException:
        sync.close()
        _reap(helper)
        logs.close()
        raise
    pid = drive_helper(sync, logs, helper, state, config)
    log.timing("exec: process exec'd")
    tty = bool(config["process"].get("terminal"))

    if opts["pid-file"]:
        try:
            st.write_pid_file(opts["pid-file"], pid)
        except OSError as exc:
            # runc terminates the process it cannot account for, and exits 255
            _kill_started(pid)
            raise ExecError(f"--pid-file {opts['pid-file']}: {exc.strerror or exc}") from None
    if detach:
        return 0
    from ocirun import foreground
    pidfd = os.pidfd_open(pid)
    # not SIGWINCH, SIGPIPE nor the job control signals of our own terminal either
    restore = foreground.forward_signals(pid, pidfd, skip=("SIGWINCH", "SIGURG", "SIGPIPE", "SIGTTIN", "SIGTTOU"))
    try:
        if tty:
            from ocirun import ttyproxy
            master = ttyproxy.recv_master(console_parent)
            console_parent.close()
            ttyproxy.proxy(master, pidfd, host_console)
        return foreground.wait_for(pid, none_left=EXEC_FAILED)
    finally:
        restore()
        os.close(pidfd)


def _send_plan(g, opts: dict, cid: str, args: list[str], preserve: int, sync: _socket.socket):
    state = st.load(g.root, cid)
    from ocirun import statuscheck
    statuscheck.check(cid, state.status, "exec --ignore-paused" if opts["ignore-paused"] else "exec")

    process = build_process(state.config, opts, args)
    tty = bool(process.get("terminal"))
    detach = opts["detach"]
    # runc's checkTerminal
    if detach and tty and not opts["console-socket"]:
        raise OciError("cannot allocate tty if runc will detach without setting console socket")
    if (not detach or not tty) and opts["console-socket"]:
        raise OciError("cannot use console socket if runc will not detach or allocate tty")

    linux = state.config.get("linux") or {}
    config = {"process": process,
              "linux": {k: linux[k] for k in ("seccomp", "personality", "memoryPolicy") if linux.get(k) is not None}}
    # every process setting checked here, once, into plan data the helper applies as it is: a bad
    # field fails now, before the cgroup join and the namespaces, one line naming it. Unknown
    # capability names (--cap, or process.json) are warned about and skipped, as for create
    # (config.md: MUST warn, SHOULD NOT fail).
    from ocirun import processplan
    settings, warnings = processplan.build(config)
    program = processplan.compile_seccomp(config)
    for warning in warnings:
        log.warning(warning)

    host_console = None
    if tty and not detach:
        from ocirun import ttyproxy
        host_console = ttyproxy.find_host_console()    # runc: open /dev/tty: no such device or address

    ns_fds, ns_kinds = open_namespaces(state)
    send_fds = list(ns_fds)
    console_parent = None
    try:
        if tty:
            if opts["console-socket"]:
                csock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                try:
                    csock.connect(opts["console-socket"])
                except OSError as exc:
                    csock.close()
                    raise OciError(f"--console-socket {opts['console-socket']}: connect: {exc.strerror}") from None
            else:
                console_parent, csock = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            send_fds.append(csock.detach())
        plan = {"type": protocol.EXEC, "config": config, "process": settings, "ns": ns_kinds, "console": tty,
                "preserve_fds": preserve, "debug": log.is_debug(), "seccomp": program.to_wire() if program is not None else None}
        if host_console is not None:
            # our own terminal: the pty is set up as ttyproxy.prepare() does, before the program runs
            plan["foreground_tty"] = {"size": ttyproxy.host_size(host_console)}
        # (an env of a few hundred KB, which execve takes, goes in a memfd: protocol.send)
        protocol.send(sync, plan, send_fds)
    finally:
        for fd in send_fds:
            os.close(fd)
    return state, config, host_console, console_parent


# --- the process -----------------------------------------------------------------------------------

def build_process(config: dict, opts: dict, args: list[str]) -> dict:
    """The exec process: --process FILE or the container's own process, then the flags on top.

    As runc: args, env, cwd, user and terminal come from the file (or the container's process for
    the command-line form); capabilities, rlimits, apparmorProfile and selinuxLabel missing from the
    file are the container's (libcontainer's newInitConfig); --env appends, --cap adds to the
    bounding, effective and permitted sets, --additional-gids appends."""
    base = config.get("process") or {}
    if opts["process"]:
        try:
            with open(opts["process"]) as f:
                process = fastjson.loads(f.read())
        except OSError as exc:
            raise OciError(f"--process {opts['process']}: open: {exc.strerror.lower()}") from None
        except (ValueError, RecursionError) as exc:
            text = "exceeded max depth" if isinstance(exc, RecursionError) else " ".join(str(exc).split())[:200]
            raise OciError(f"--process {opts['process']}: invalid JSON: {text}") from None
        if not isinstance(process, dict):
            raise OciError(f"--process {opts['process']}: must be a JSON object (the spec's process)")
        # NUL bytes, lone surrogates, non-finite or huge numbers, nesting: one line naming the field
        from ocirun.configjson import check_process_file
        check_process_file(process, f"--process {opts['process']}")
        for key in ("capabilities", "rlimits", "apparmorProfile", "selinuxLabel"):
            if key not in process and key in base:
                process[key] = base[key]
        if args:
            process["args"] = args
    else:
        process = fastjson.loads(fastjson.dumps(base))      # a deep copy
        process["args"] = args
        process["terminal"] = False
    if opts["tty"]:
        process["terminal"] = True
    if opts["cwd"]:
        process["cwd"] = opts["cwd"]
    if opts["apparmor"]:
        process["apparmorProfile"] = opts["apparmor"]
    if opts["process-label"]:
        process["selinuxLabel"] = opts["process-label"]
    if opts["no-new-privs"]:
        process["noNewPrivileges"] = True
    if opts["env"]:
        process["env"] = list(process.get("env") or []) + opts["env"]
    if opts["cap"]:
        caps = process.get("capabilities") or {}
        for name in opts["cap"]:
            for set_name in ("bounding", "effective", "permitted"):
                caps.setdefault(set_name, [])
                if name not in caps[set_name]:
                    caps[set_name].append(name)
        process["capabilities"] = caps
    user = dict(process.get("user") or {"uid": 0, "gid": 0})
    if opts["user"]:
        uid_text, sep, gid_text = opts["user"].partition(":")
        user["uid"] = _int_id(uid_text, "uid")
        if sep:
            user["gid"] = _int_id(gid_text, "gid")
    if opts["additional-gids"]:
        user["additionalGids"] = list(user.get("additionalGids") or []) + \
            [_int_id(g, "additional gid") for g in opts["additional-gids"]]
    process["user"] = user
    check_process(process)
    return process


def _int_id(text: str, what: str) -> int:
    if not text.isdigit():
        raise OciError(f"--user: parsing {text!r} as int for {what} failed: invalid syntax")
    return int(text)


def check_process(process: dict) -> None:
    """runc's validateProcessSpec, plus env entries must be NAME=VALUE (the process settings:
    processplan.build, in _send_plan)."""
    args = process.get("args")
    if not args or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise OciError("process.args: must not be empty")
    cwd = process.get("cwd")
    if not cwd:
        raise OciError("process.cwd: must not be empty")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise OciError(f"process.cwd: must be an absolute path, got {cwd!r}")
    for i, item in enumerate(process.get("env") or []):
        if not isinstance(item, str) or "=" not in item or item.startswith("="):
            raise OciError(f"process.env[{i}]: invalid environment variable: {item!r}")


# --- namespaces ------------------------------------------------------------------------------------

def open_namespaces(state: st.State) -> tuple[list[int], list[str]]:
    """Open /proc/<init>/ns/* for every namespace the container does not share with us, then check
    that the pid is still the container's init (not a recycled pid), so every handle is its."""
    from ocirun.linux.namespaces import JOIN_ORDER
    pid = state.pid
    fds, kinds = [], []
    try:
        for kind in JOIN_ORDER:
            try:
                fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                if kind == "time" and not os.path.exists("/proc/self/ns/time"):
                    continue    # a kernel without time namespaces
                raise OciError("cannot exec in a stopped container") from None
            mine = os.stat(f"/proc/self/ns/{kind}")
            theirs = os.fstat(fd)
            if (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
                os.close(fd)
                continue
            fds.append(fd)
            kinds.append(kind)
        if not state.init_alive():
            raise OciError("cannot exec in a stopped container")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds, kinds


# --- the helper ------------------------------------------------------------------------------------

def join_cgroup(state: st.State, helper: int) -> None:
    """The helper's pid into every cgroup.procs of the container (nothing without a cgroup)."""
    if state.cgroup:
        from ocirun.linux.cgroups import manager_from_dict
        manager_from_dict(state.cgroup).add(helper)


def drive_helper(sync: _socket.socket, logs: protocol.LogReader, helper: int, state: st.State, config: dict) -> int:
    """Answer the helper until the process has exec'd (EOF with no error); returns its host pid."""
    pid = 0
    failed = None
    early_notify_fd = None
    expected = protocol.exec_sequence(config, ExecError)
    try:
        while True:
            msg, _ = protocol.recv(sync)
            logs.drain()
            if msg is None and expected.done():
                break       # the sync socket is close-on-exec: the process runs
            try:
                kind = expected.take(msg)   # EOF before the pid, an error, a message out of order
            except ExecError as exc:
                failed = exc
                break
            if kind == protocol.CGROUP:        # placed already (join_cgroup), before it asked
                protocol.send(sync, {"type": protocol.ACK})
            elif kind == protocol.CHILD_PID:
                pid = msg["pid"]
                log.timing("exec: waited for the helper (until the process was forked)")
                _reap(helper)
                helper = 0
                if early_notify_fd is not None:
                    _pass_notify_fd(sync, state, config, pid, early_notify_fd)
                    early_notify_fd = None
            elif pid:   # SECCOMP_FD
                _pass_notify_fd(sync, state, config, pid, msg["fd"])
            else:       # the process may load its filter before the helper reported its pid
                early_notify_fd = msg["fd"]
    finally:
        sync.close()
        if helper:
            _reap(helper)
        logs.close()
    if failed is not None:
        if pid:
            _reap(pid, block=False)
        raise failed
    return pid


def _pass_notify_fd(sync, state: st.State, config: dict, pid: int, target_fd: int) -> None:
    """linux.seccomp.listenerPath (D-19): a failure is answered to the process, which reports it back."""
    protocol.pass_notify_fd(sync, config["linux"].get("seccomp") or {}, pid, target_fd,
                            dict(state.oci_state(), pid=state.pid))


def _kill_started(pid: int) -> None:
    """SIGKILL and reap an exec'd process (ours: re-parented to us, the subreaper, when not detached)."""
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    _reap(pid)


def _reap(pid: int, block: bool = True) -> None:
    try:
        os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        pass
