"""The exec helper: a sealed interpreter started by `ocirun exec` (see ocirun/execcmd.py).

    H: non-dumpable; receive the plan and the container's namespace fds; the host reads the
       process needs (LSM handle) and the seccomp program of the plan; execCPUAffinity.initial; wait until
       the parent has put us in the container's cgroup; seal the import system; setns user .. mnt
       (become root of a joined user namespace); fork (the child is in the container's pid
       namespace); report the child's pid; exit.
    X: setsid; the terminal (pty made in the container's devpts, master sent over the console
       socket, slave as the controlling terminal and stdio); process settings in runc's order
       (security.apply_process_settings); execCPUAffinity.final; signals reset; every fd but
       stdio and the preserved ones close-on-exec; late seccomp; execve.
    The process settings come checked in the plan (plan["process"], ocirun/processplan.py) and the
    seccomp program compiled (ocirun exec built both): only applied and loaded here.

Messages on the sync socket are those of `create` (ocirun/protocol.py; log lines on the log pipe).
The socket is close-on-exec, so EOF without an error means the program was exec'd. Nothing is
imported after the imports below (not even ocirun.init, whose helpers are repeated here rather than
loading the whole init), but for what only some plans need, imported before the seal: the console
module (a terminal) and the seccomp program's (a profile).
"""
import os
import _socket  # the C module: socket imports selectors and enum (~5 ms of each exec)

from ocirun import log, protocol, security
from ocirun.errors import OciError
from ocirun.procexec import (close_fds_at_exec, describe, env_dict, resolve_executable, seal_imports,  # noqa: F401
                             undo_spawn_signals, with_home)
from ocirun.linux.namespaces import PROC_FLAGS
from ocirun.linux import syscalls as sc



class ExecFailed(OciError):
    pass


# what a failure's step is named after: the function these were running (protocol.failed_step)
STAGES = ("helper", "child")


def main() -> None:
    sc.prctl(sc.PR_SET_DUMPABLE, 0)     # nothing in the container may ptrace or open us (D-8)
    undo_spawn_signals()
    sync, log_fd = protocol.child_channels()
    log.timing("exec helper: imports")
    plan, fds = protocol.recv(sync)
    if plan is None:
        os._exit(1)
    try:
        protocol.expect(plan, protocol.EXEC)
        if log_fd >= 0:
            log.set_sink(protocol.log_sink(log_fd), debug=plan.get("debug", False))
        log.timing("exec helper: waited for the plan")
        if len(fds) != len(plan["ns"]) + (1 if plan.get("console") else 0):
            raise ExecFailed(f"exec helper: got {len(fds)} fds, expected more")
        helper(sync, plan, fds)
    except BaseException as exc:    # noqa: BLE001 - everything is reported to the parent
        protocol.send_error(sync, exc, STAGES)
        os._exit(1)
    os._exit(0)


def helper(sync: _socket.socket, plan: dict, fds: list[int]) -> None:
    config = plan["config"]
    process = config["process"]
    kinds = plan["ns"]
    ns_fds = fds[:len(kinds)]
    console_sock = fds[len(kinds)] if plan.get("console") else None

    seccomp_filter = security.prepare_process_settings(config, plan.get("seccomp"))
    security.apply_initial_cpu_affinity(plan["process"])
    log.timing("exec helper: host reads done, seccomp program received")
    protocol.request(sync, {"type": protocol.CGROUP})   # acked once the parent has put our pid in every cgroup.procs
    log.timing("exec helper: joined the cgroup")

    if console_sock is not None:
        from ocirun.linux import console    # noqa: F401  (child() uses it; after the seal it could not come)
    seal_imports()      # from here on the filesystem may be the container's
    for kind, fd in zip(kinds, ns_fds):
        try:
            sc.setns(fd, PROC_FLAGS[kind], label=f"/proc/<init>/ns/{kind}")
        finally:
            os.close(fd)
        if kind == "user":
            # root of the container's user namespace, else our ids are unmapped there
            try:
                sc.setresgid(0, 0, 0)
                sc.setresuid(0, 0, 0)
            except OSError as exc:
                raise ExecFailed(f"setresuid to 0 in the container's user namespace: {exc.strerror}") from None
    log.timing("exec helper: namespaces joined")
    pid = os.fork()
    if pid:
        protocol.send(sync, {"type": protocol.CHILD_PID, "pid": pid})
        return
    try:
        child(sync, plan, config, process, console_sock, seccomp_filter)
    except BaseException as exc:    # noqa: BLE001
        protocol.send_error(sync, exc, STAGES)
    os._exit(1)


def child(sync, plan, config, process, console_sock, seccomp_filter) -> None:
    settings = plan["process"]
    os.setsid()
    if console_sock is not None:
        from ocirun.linux import console    # imported before the seal (helper())
        foreground = plan.get("foreground_tty")
        size = process.get("consoleSize") or (foreground or {}).get("size")
        console.setup_console(console_sock, size, uid=security.user_id(settings),
                              dev_console=False, clear_onlcr=foreground is not None)
    # stdio and the preserved fds 3..3+N-1 cross the execve; everything else (the sync socket
    # included, whose closing tells the parent that execve succeeded) is close-on-exec. Marked
    # before the seccomp filter, which may deny close_range; later fds are O_CLOEXEC anyway.
    close_fds_at_exec(3 + int(plan.get("preserve_fds") or 0))
    # HOME from the container's /etc/passwd: read as root, before the filter (which may deny open)
    env = with_home(process.get("env") or [], security.user_id(settings))

    outcome = security.apply_process_settings(
        config, settings, seccomp_filter=seccomp_filter,
        hand_over_notify_fd=lambda notify_fd: protocol.hand_over_notify_fd(sync, notify_fd))
    path = resolve_executable(process)
    security.apply_final_cpu_affinity(settings)
    security.reset_signals()
    if outcome.seccomp_pending:
        security.load_seccomp_late(seccomp_filter)
    os.execve(path, process["args"], env_dict(env))
