"""The parent <-> child protocol of `create` (parent.py <-> init.py) and `exec` (execcmd.py <->
exec_init.py): one JSON object per SOCK_SEQPACKET packet, fds in the same packet; a message larger
than INLINE_MAX is written to a memfd and the packet carries that fd instead.

The message types are the constants below; the order each side expects is in docs/ARCHITECTURE.md
("Protocol") and in create_sequence / exec_sequence, checked by Sequence on the parent's side and by
expect() on the child's: an unexpected or out-of-phase message is an error naming what was expected
and what came, and EOF before the end means the child died. A failure travels as
{"type": "error", "step", "errno", "msg"} (error_from); the parent's error is the msg, step and
errno are logged at --debug and kept on the exception.

Log lines of the child travel on their own pipe, as runc's: one JSON object {"level", "msg"} a line,
written with write(2) on a non-blocking pipe (a child never blocks on a parent that is gone or not
reading) and read by the parent (LogReader) between messages and at the end.

Works on socket.socket and on _socket.socket objects: `create` and `exec` use the C module directly,
because the socket module imports selectors and enum (about 4 ms on every create).
"""
import os
import struct
from _socket import CMSG_LEN, SCM_RIGHTS, SOL_SOCKET

from ocirun import fastjson  # not json: it imports re and enum (~4 ms of the init's start)
from ocirun import log
from ocirun.errors import OciError

# Message types: plain strings, not an enum (enum costs ~1.5 ms of every create and exec).
BOOTSTRAP = "bootstrap"         # parent -> init: config, options, plan, seccomp; fds: exec.fifo (O_PATH), [console socket]
EXEC = "exec"                   # parent -> exec helper: the process plan; fds: namespaces, [console socket]
USERNS_MAP = "userns_map"       # init stage 1 -> parent: write my uid/gid maps; answered ACK
CHILD_PID = "child_pid"         # init stage 1, exec helper -> parent: {pid}, the container process (host view)
MOUNT_SOURCES = "mount_sources"  # init -> parent: clone my bind sources; answered by MOUNT_SOURCES packets
HOOKS = "hooks"                 # init -> parent: run prestart + createRuntime; answered ACK {pid}
CGROUP = "cgroup"               # exec helper -> parent: am I in the container's cgroup; answered ACK
SECCOMP_FD = "seccomp_fd"       # init, exec process -> parent: {fd}, a notify listener for the agent; ACK
READY = "ready"                 # init -> parent: created, waiting for `start` (the last message)
ACK = "ack"
ERROR = "error"                 # either way, at any point: {step, errno, msg}
LARGE = "large"                 # (send/recv only) the message is in the memfd sent along

MAX_PACKET = 1 << 22
MAX_FDS = 16
# Larger messages (a config.json of megabytes) travel in a memfd: a packet must fit the socket buffer.
INLINE_MAX = 1 << 17


# --- encoding, sending, receiving ------------------------------------------------------------------

def encode(msg: dict) -> bytes:
    return fastjson.dumps(msg).encode()


def send(sock, msg: dict, fds: list[int] | tuple = ()) -> None:
    """One message; without fds it is a plain write(2), the one call a seccomp notify filter never
    stops (see linux/seccomp.py), so a child may send after loading its filter."""
    data = encode(msg)
    if len(data) > INLINE_MAX:
        # A packet cannot be larger than the socket buffer (EMSGSIZE, "message too long", for a
        # config.json of a few MB that runc takes): the message goes in a memfd sent along instead.
        memfd = _to_memfd(data)
        try:
            send(sock, {"type": LARGE, "size": len(data)}, list(fds) + [memfd])
        finally:
            os.close(memfd)
        return
    if fds:
        sock.sendmsg([data], [(SOL_SOCKET, SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])
    else:
        os.write(sock.fileno(), data)


def recv(sock, plain: bool = False) -> tuple[dict | None, list[int]]:
    """One message and its fds, or (None, []) at EOF. plain: read(2) only, for a process whose seccomp
    filter may notify recvmsg (then no fds, and no large message: its memfd cannot come)."""
    if plain:
        data = os.read(sock.fileno(), MAX_PACKET)
        return (fastjson.loads(data) if data else None), []
    data, ancdata, _flags, _addr = sock.recvmsg(MAX_PACKET, CMSG_LEN(MAX_FDS * 4))
    fds: list[int] = []
    for level, kind, cdata in ancdata:
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            count = len(cdata) // 4
            fds.extend(struct.unpack(f"{count}i", cdata[:count * 4]))
    if not data:
        return None, fds
    msg = fastjson.loads(data)
    if msg.get("type") == LARGE and fds:
        memfd = fds.pop()
        try:
            msg = fastjson.loads(_read_all(memfd, msg["size"]))
        finally:
            os.close(memfd)
    return msg, fds


def _to_memfd(data: bytes) -> int:
    fd = os.memfd_create("ocirun-message", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


# --- errors ------------------------------------------------------------------------------------------

def errno_of(exc: BaseException | None) -> int | None:
    """The errno behind an exception: its own, or that of the OSError it was raised from."""
    seen = 0
    while exc is not None and seen < 8:
        value = getattr(exc, "errno", None)
        if isinstance(value, int) and value > 0:
            return value
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def failed_step(exc: BaseException, drivers: tuple[str, ...]) -> str:
    """The step that failed: the function a driver (init's stage1/stage2, the exec helper's
    helper/child) was running when exc was raised, or the driver itself; an exception that names
    its step (a parent's error answer) keeps it."""
    step = getattr(exc, "step", None)
    if step:
        return step
    step, after_driver = "", False
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_name
        if name in drivers:
            step, after_driver = name, True
        elif after_driver:
            step, after_driver = name, False
        tb = tb.tb_next
    return step


def error(msg: str, step: str = "", errno: int | None = None) -> dict:
    return {"type": ERROR, "step": step, "errno": errno, "msg": msg}


def error_from(exc: BaseException, text: str, drivers: tuple[str, ...] = ()) -> dict:
    """The error message of a child that failed with exc (text: exc described in one line)."""
    return error(text, failed_step(exc, drivers), errno_of(exc))


def failure(msg: dict, cls=OciError, default: str = "failed", peer: str = "") -> OciError:
    """The exception for an error message: the peer's text, as users see it; step and errno kept on
    it (and logged at --debug)."""
    exc = cls(msg.get("msg") or default)
    exc.step = msg.get("step") or ""
    err = msg.get("errno")
    if isinstance(err, int):
        exc.errno = err
    if peer and log.is_debug():
        log.debug(f"{peer} failed in its step {exc.step or '?'!r} (errno {err}): {exc}")
    return exc


# --- the expected order ---------------------------------------------------------------------------

class Sequence:
    """The messages one side expects, as youki's InitRequestSequence: (type, phase, required)
    entries. A message is accepted when it is still expected and no required message of an earlier
    phase is pending; an optional entry of an earlier phase can then no longer come. Messages of one
    phase may come in any order (exec: the process may send seccomp_fd before its pid is known)."""

    __slots__ = ("peer", "cls", "eof", "pending")

    def __init__(self, peer: str, expected: list[tuple[str, int, bool]], cls=OciError, eof: str = ""):
        self.peer = peer
        self.cls = cls
        self.eof = eof or f"{peer} exited"
        self.pending = list(expected)

    def expected(self) -> str:
        """The types that may come next, for error messages."""
        names = []
        for kind, phase, required in self.pending:
            names.append(kind)
            if required:
                break
        return " or ".join(repr(n) for n in names) or "end of messages"

    def accept(self, kind) -> None:
        for i, (want, phase, _required) in enumerate(self.pending):
            if want == kind:
                break
        else:
            raise self.cls(f"unexpected message from {self.peer}: {kind!r} (expected {self.expected()})")
        if any(required and p < phase for _, p, required in self.pending):
            raise self.cls(f"unexpected message from {self.peer}: {kind!r} before {self.expected()}")
        self.pending = [e for j, e in enumerate(self.pending) if j != i and e[1] >= phase]

    def take(self, msg: dict | None) -> str:
        """The type of a received message once checked; EOF and error messages raise."""
        if msg is None:
            raise self.cls(self.eof)
        kind = msg.get("type")
        if kind == ERROR:
            raise failure(msg, self.cls, f"{self.peer} failed", self.peer)
        self.accept(kind)
        return kind

    def done(self) -> bool:
        """Whether every required message has come."""
        return not any(required for _, _, required in self.pending)


def create_sequence(config: dict) -> Sequence:
    """What `create` expects from its init for this config."""
    from ocirun.errors import InitError
    linux = config.get("linux") or {}
    namespaces = linux.get("namespaces") or []
    new_user = any(n.get("type") == "user" and not n.get("path") for n in namespaces)
    expected = [(USERNS_MAP, 1, True)] if new_user else []
    expected.append((CHILD_PID, 2, True))
    if any(n.get("type") == "user" for n in namespaces):
        expected.append((MOUNT_SOURCES, 3, False))   # bind mounts in a user namespace, runtime root
    expected.append((HOOKS, 4, True))
    if (linux.get("seccomp") or {}).get("listenerPath"):
        expected.append((SECCOMP_FD, 5, False))      # a notify filter loaded before ready
    expected.append((READY, 6, True))
    return Sequence("container init", expected, InitError, "container init exited before it was ready")


def exec_sequence(config: dict, cls=OciError) -> Sequence:
    """What `exec` expects from its helper (then EOF: the process has exec'd)."""
    expected = [(CGROUP, 1, True), (CHILD_PID, 2, True)]
    if ((config.get("linux") or {}).get("seccomp") or {}).get("listenerPath"):
        expected.append((SECCOMP_FD, 2, False))      # the process may load it before the pid is sent
    return Sequence("the exec helper", expected, cls, "the exec helper exited before the process started")


def expect(msg: dict | None, kind: str, eof: str = "parent went away", default: str = "parent failed",
           peer: str = "the parent") -> dict:
    """The child's check of a reply: msg must be of type kind; EOF and an error message raise
    (OciError, with the error's step and errno)."""
    if msg is None:
        raise OciError(eof)
    got = msg.get("type")
    if got == kind:
        return msg
    if got == ERROR:
        raise failure(msg, OciError, default)
    raise OciError(f"unexpected message from {peer}: {got!r} (expected {kind!r})")


def request(sock, msg: dict, plain: bool = False) -> dict:
    """Send msg, return the parent's ACK (after a seccomp filter: plain read(2) and write(2))."""
    send(sock, msg)
    reply, _ = recv(sock, plain)
    return expect(reply, ACK)


# --- the seccomp notify fd: one hand-off for create and exec ----------------------------------------

def hand_over_notify_fd(sock, notify_fd: int) -> None:
    """In the child, right after a SCMP_ACT_NOTIFY filter is loaded, before any syscall it may
    notify: the parent takes the fd with pidfd_getfd and sends it to the agent, then acks. Only
    write(2) and read(2) here (sendmsg and recvmsg may be notified; write never is, see seccomp.py)."""
    send(sock, {"type": SECCOMP_FD, "fd": notify_fd})
    reply, _ = recv(sock, plain=True)
    expect(reply, ACK, eof="parent went away", default="parent failed to pass the seccomp notify fd")
    os.close(notify_fd)     # the agent has it now; keep no listener in the container


def pass_notify_fd(sock, seccomp: dict, pid: int, target_fd: int, oci_state: dict) -> OciError | None:
    """In the parent, asked by SECCOMP_FD: take the listener (fd target_fd of pid) with pidfd_getfd
    and send it to linux.seccomp.listenerPath with the container process state (config-linux.md),
    from here where no filter applies; answer the child ACK, or an error (also returned)."""
    from ocirun.linux import syscalls as sc
    from ocirun.linux.seccomp import send_notify_fd
    try:
        pidfd = os.pidfd_open(pid)
        try:
            fd = sc.pidfd_getfd(pidfd, target_fd)
        finally:
            os.close(pidfd)
        try:
            send_notify_fd(seccomp["listenerPath"], fd, oci_state, seccomp.get("listenerMetadata"))
        finally:
            os.close(fd)
    except OciError as exc:
        err = exc
    except OSError as exc:
        err = OciError(f"linux.seccomp.listenerPath: {exc.strerror or exc}")
        err.errno = exc.errno
    else:
        send(sock, {"type": ACK})
        return None
    send(sock, error(str(err), SECCOMP_FD, errno_of(err)))
    return err


# --- the log pipe ----------------------------------------------------------------------------------

def log_sink(fd: int):
    """The child's log.set_sink: one JSON line a record on the log pipe. The pipe is non-blocking and
    a failed write is dropped: a parent that is gone (EPIPE; SIGPIPE is ignored until the program's
    signals are reset) or not reading (EAGAIN) never blocks the child."""
    def sink(level: str, msg: str) -> None:
        try:
            os.write(fd, fastjson.dumps({"level": level, "msg": msg}).encode() + b"\n")
        except OSError:
            pass
    return sink


class LogReader:
    """The parent's end of a child's log pipe: drain() logs the lines written so far (the pipe is
    non-blocking: it never waits for more)."""

    __slots__ = ("fd", "rest")

    def __init__(self, fd: int):
        self.fd = fd
        self.rest = b""

    def drain(self) -> None:
        if self.fd < 0:
            return
        data = self.rest
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        if not data:
            return
        *lines, self.rest = data.split(b"\n")
        for line in lines:
            try:
                record = fastjson.loads(line)
                level, msg = record["level"], record["msg"]
            except (ValueError, KeyError, TypeError):
                level, msg = "warning", line.decode(errors="backslashreplace")
            log.log(level if level in log.LEVELS else "info", msg)

    def close(self) -> None:
        if self.fd >= 0:
            self.drain()
            os.close(self.fd)
            self.fd = -1


# --- starting a child ------------------------------------------------------------------------------

SYNC_ENV = "_OCIRUN_SYNC"
LOG_ENV = "_OCIRUN_LOG"


def open_fds(low: int, high: int) -> list[int]:
    """The fds of low..high-1 that are open: the preserved fds the caller really gave us (our own
    may later take free numbers there, and must not cross)."""
    fds = []
    for fd in range(low, high):
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.append(fd)
    return fds


def spawn_child(entry: str, role: str, preserve_fds: int, passed: list[int]):
    """Start a sealed fresh interpreter running `entry`.main() (ocirun.init, ocirun.exec_init) with
    the sync socket and the log pipe; returns (sync socket, LogReader, pid). It gets stdio, the
    preserved fds that are open (`passed`, of 3..3+preserve_fds-1) and the two channels."""
    import _socket  # the C module: socket imports selectors and enum
    from ocirun.linux.sealed import spawn_interpreter
    parent_sock, child_sock = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    try:
        for s in (parent_sock, child_sock):
            try:
                s.setsockopt(SOL_SOCKET, 32, 1 << 22)  # SO_SNDBUFFORCE: a bootstrap of up to INLINE_MAX
            except OSError:
                pass
        log_r, log_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            pid = spawn_interpreter(entry, role, preserve_fds, passed,
                                    {SYNC_ENV: child_sock.fileno(), LOG_ENV: log_w})
        except BaseException:
            os.close(log_r)
            raise
        finally:
            os.close(log_w)
    except BaseException:
        parent_sock.close()
        raise
    finally:
        child_sock.close()
    return parent_sock, LogReader(log_r), pid


def child_channels():
    """In the child: (sync socket, log fd) from the environment, neither inherited any further."""
    import _socket
    sync_fd = int(os.environ.pop(SYNC_ENV))
    log_fd = int(os.environ.pop(LOG_ENV, "-1"))
    os.set_inheritable(sync_fd, False)
    if log_fd >= 0:
        os.set_inheritable(log_fd, False)
    return _socket.socket(fileno=sync_fd), log_fd


def send_error(sock, exc: BaseException, drivers: tuple[str, ...] = ()) -> bool:
    """A failed child's last word: the error message for exc (with its step and errno), written
    with write(2); False when it could not be sent (the parent is gone)."""
    from ocirun.procexec import describe
    try:
        send(sock, error_from(exc, describe(exc), drivers))
        return True
    except BaseException:   # noqa: BLE001 - the child is exiting; nothing is left to tell
        return False
