"""The exec helper: a sealed interpreter started by `ocirun exec` (see ocirun/execcmd.py).

    H: non-dumpable; receive the plan and the container's namespace fds; check the process and
       take the seccomp program of the plan; execCPUAffinity.initial; wait until
       the parent has put us in the container's cgroup; seal the import system; setns user .. mnt
       (become root of a joined user namespace); fork (the child is in the container's pid
       namespace); report the child's pid; exit.
    X: setsid; the terminal (pty made in the container's devpts, master sent over the console
       socket, slave as the controlling terminal and stdio); process settings in runc's order
       (security.apply_process_settings); execCPUAffinity.final; signals reset; every fd but
       stdio and the preserved ones close-on-exec; late seccomp; execve.
    The seccomp program comes compiled in the plan (ocirun exec built it): only loaded here.

Messages on the sync socket are marshal'ed dicts, one per SOCK_SEQPACKET packet (json would import
re, ~5 ms of every exec; both ends are the same interpreter). The socket is close-on-exec, so EOF
without an error means the program was exec'd. Nothing is imported after the imports below (not
even ocirun.init, whose helpers are repeated here rather than loading the whole init).
"""
import marshal
import os
import _socket  # the C module: socket imports selectors and enum (~5 ms of each exec)
import struct
import sys

from ocirun import log, security
from ocirun.errors import OciError
from ocirun.procexec import close_fds_at_exec, describe, env_dict, resolve_executable, seal_imports, with_home  # noqa: F401
from ocirun.linux import console
from ocirun.linux.namespaces import PROC_FLAGS
from ocirun.linux import syscalls as sc

MAX_PACKET = 1 << 22


class ExecFailed(OciError):
    pass


def main() -> None:
    sc.prctl(sc.PR_SET_DUMPABLE, 0)     # nothing in the container may ptrace or open us (D-8)
    sync_fd = int(os.environ.pop("_OCIRUN_SYNC"))
    os.set_inheritable(sync_fd, False)
    sync = _socket.socket(fileno=sync_fd)
    log.timing("exec helper: imports")
    data, fds = recv_with_fds(sync)
    if not data:
        os._exit(1)
    plan = marshal.loads(data)
    if plan.get("type") == "large" and fds:     # the plan itself is in a memfd (execcmd._send_plan)
        from ocirun.protocol import _read_all
        memfd = fds.pop()
        plan = marshal.loads(_read_all(memfd, plan["size"]))
        os.close(memfd)
    log.timing("exec helper: waited for the plan")
    if len(fds) != len(plan["ns"]) + (1 if plan.get("console") else 0):
        report(sync, ExecFailed(f"exec helper: got {len(fds)} fds, expected more"))
        os._exit(1)
    try:
        helper(sync, plan, fds)
    except BaseException as exc:    # noqa: BLE001 - everything is reported to the parent
        report(sync, exc)
        os._exit(1)
    os._exit(0)


def recv_with_fds(sync: _socket.socket) -> tuple[bytes, list[int]]:
    data, ancdata, _flags, _addr = sync.recvmsg(MAX_PACKET, _socket.CMSG_LEN(16 * 4))
    fds: list[int] = []
    for level, kind, cdata in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            count = len(cdata) // 4
            fds.extend(struct.unpack(f"{count}i", cdata[:count * 4]))
    return data, fds


def send(sync: _socket.socket, msg: dict) -> None:
    """write(2), not sendmsg: after a SCMP_ACT_NOTIFY filter only plain reads and writes are safe."""
    os.write(sync.fileno(), marshal.dumps(msg))


def recv(sync: _socket.socket) -> dict | None:
    data = os.read(sync.fileno(), MAX_PACKET)
    return marshal.loads(data) if data else None


def report(sync: _socket.socket, exc: BaseException) -> None:
    try:
        send(sync, {"type": "error", "msg": describe(exc)})
    except OSError:
        pass


def request(sync: _socket.socket, msg: dict) -> None:
    send(sync, msg)
    reply = recv(sync)
    if reply is None or reply.get("type") != "ack":
        raise ExecFailed((reply or {}).get("msg") or "ocirun exec went away")


def helper(sync: _socket.socket, plan: dict, fds: list[int]) -> None:
    config = plan["config"]
    process = config["process"]
    kinds = plan["ns"]
    ns_fds = fds[:len(kinds)]
    console_sock = fds[len(kinds)] if plan.get("console") else None

    seccomp_filter = security.prepare_process_settings(config, plan.get("seccomp"))
    security.apply_initial_cpu_affinity(process)
    log.timing("exec helper: process checked, seccomp program received")
    request(sync, {"type": "cgroup"})       # acked once the parent has put our pid in every cgroup.procs
    log.timing("exec helper: joined the cgroup")

    seal_imports()      # from here on the filesystem may be the container's
    for kind, fd in zip(kinds, ns_fds):
        try:
            sc.setns(fd, PROC_FLAGS[kind], label=f"/proc/<init>/ns/{kind}")
        finally:
            os.close(fd)
        if kind == "user":
            # root of the container's user namespace, else our ids are unmapped there
            try:
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            except OSError as exc:
                raise ExecFailed(f"setresuid to 0 in the container's user namespace: {exc.strerror}") from None
    log.timing("exec helper: namespaces joined")
    pid = os.fork()
    if pid:
        # the helper has no log of its own: `ocirun exec` logs its timing lines
        send(sync, {"type": "pid", "pid": pid, **({"timing": log.timing_lines()} if plan.get("debug") else {})})
        return
    try:
        child(sync, plan, config, process, console_sock, seccomp_filter)
    except BaseException as exc:    # noqa: BLE001
        report(sync, exc)
    os._exit(1)


def child(sync, plan, config, process, console_sock, seccomp_filter) -> None:
    os.setsid()
    if console_sock is not None:
        foreground = plan.get("foreground_tty")
        size = process.get("consoleSize") or (foreground or {}).get("size")
        console.setup_console(console_sock, size, uid=(process.get("user") or {}).get("uid", 0),
                              dev_console=False, clear_onlcr=foreground is not None)
    # stdio and the preserved fds 3..3+N-1 cross the execve; everything else (the sync socket
    # included, whose closing tells the parent that execve succeeded) is close-on-exec. Marked
    # before the seccomp filter, which may deny close_range; later fds are O_CLOEXEC anyway.
    close_fds_at_exec(3 + int(plan.get("preserve_fds") or 0))
    # HOME from the container's /etc/passwd: read as root, before the filter (which may deny open)
    env = with_home(process.get("env") or [], (process.get("user") or {}).get("uid", 0))

    def hand_over_notify_fd(notify_fd: int) -> None:
        # right after the load, before any syscall it may notify: the parent takes the listener
        # fd with pidfd_getfd and hands it to the agent; only write(2) and read(2) on the sync
        # socket (sendmsg may be a notified syscall)
        request(sync, {"type": "seccomp_fd", "fd": notify_fd})
        os.close(notify_fd)
    outcome = security.apply_process_settings(config, seccomp_filter=seccomp_filter,
                                              hand_over_notify_fd=hand_over_notify_fd)
    path = resolve_executable(process)
    security.apply_final_cpu_affinity(process)
    security.reset_signals()
    if outcome.seccomp_pending:
        security.load_seccomp_late(seccomp_filter)
    os.execve(path, process["args"], env_dict(env))
