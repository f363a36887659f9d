"""Foreground terminals (`run` and `exec --tty` without --console-socket), as runc's tty.go does.

The container's process gets a pty made in the container (its master comes back to us over an
internal socketpair used as the console socket); we copy our stdin to the master and the master to
our stdout in one single-threaded poll loop, with our terminal in raw mode (restored at the end),
its size copied to the pty now (unless process.consoleSize set one) and on every SIGWINCH, and stop
once the process has exited and the pty has drained.

As runc: ONLCR is cleared on the container's pty (our own terminal translates "\n" already; raw mode
here keeps output processing), and without any terminal among stdin/stdout/stderr nor a controlling
terminal the command fails with "open /dev/tty: no such device or address".
"""
import errno
import fcntl
import os
import select
import signal
import struct
import termios

from ocirun.errors import OciError

DRAIN_IDLE_MS = 100     # after the process exited: stop when the pty stays silent this long


def find_host_console() -> int:
    """The terminal we run on: stderr, stdout or stdin if one is a tty, else /dev/tty."""
    for fd in (2, 1, 0):
        try:
            if os.isatty(fd):
                return fd
        except OSError:
            continue
    try:
        return os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise OciError(f"open /dev/tty: {(exc.strerror or str(exc)).lower()}") from None


def make_raw(fd: int) -> list | None:
    """Input raw (no echo, no line editing, no signals from keys), output processing kept, as
    containerd/console's SetRaw leaves it for runc. Returns the attributes to restore."""
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        return None
    attrs = termios.tcgetattr(fd)
    attrs[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
                  | termios.IGNCR | termios.ICRNL | termios.IXON)
    attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    attrs[2] &= ~(termios.CSIZE | termios.PARENB)
    attrs[2] |= termios.CS8
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return saved


def clear_onlcr(fd: int) -> None:
    try:
        attrs = termios.tcgetattr(fd)
        attrs[1] &= ~termios.ONLCR
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error:
        pass


def copy_size(src: int, dst: int) -> None:
    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return
    rows, cols = struct.unpack("HHHH", size)[:2]
    if rows or cols:
        try:
            fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
        except OSError:
            pass


def _write_all(fd: int, data: bytes) -> bool:
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        except OSError:
            return False
        data = data[n:]
    return True


def prepare(master: int, host_console: int, process: dict) -> None:
    """Before the process runs: ONLCR off, our terminal's size unless process.consoleSize gave one."""
    clear_onlcr(master)
    if not process.get("consoleSize"):
        copy_size(host_console, master)


def host_size(host_console: int) -> dict | None:
    try:
        rows, cols = struct.unpack("HHHH", fcntl.ioctl(host_console, termios.TIOCGWINSZ, b"\0" * 8))[:2]
    except OSError:
        return None
    return {"height": rows, "width": cols} if rows or cols else None


def proxy(master: int, pidfd: int, host_console: int, stdin: int = 0, stdout: int = 1) -> None:
    """Copy between our stdio and the pty master until the process (pidfd) exited and the pty drained."""
    os.set_blocking(master, False)
    old_winch = signal.signal(signal.SIGWINCH, lambda _s, _f: copy_size(host_console, master))
    saved = make_raw(host_console)
    try:
        _loop(master, pidfd, stdin, stdout)
    finally:
        if saved is not None:
            try:
                termios.tcsetattr(host_console, termios.TCSADRAIN, saved)
            except termios.error:
                pass
        signal.signal(signal.SIGWINCH, old_winch)
        os.close(master)


def _loop(master: int, pidfd: int, stdin: int, stdout: int) -> None:
    try:
        os.fstat(stdin)
        stdin_open = True
    except OSError:
        stdin_open = False
    out_ok = True
    to_master = b""
    master_open = True
    exited = False
    poller = select.poll()
    while True:
        if exited and not master_open:
            return
        poller = select.poll()
        if stdin_open and len(to_master) < (1 << 20):
            poller.register(stdin, select.POLLIN)
        if master_open:
            poller.register(master, select.POLLIN | (select.POLLOUT if to_master else 0))
        if not exited:
            poller.register(pidfd, select.POLLIN)
        events = poller.poll(DRAIN_IDLE_MS if exited else None)
        if not events and exited:
            return      # drained: silent since the process exited
        for fd, ev in events:
            if fd == pidfd:
                exited = True
            elif fd == stdin:
                try:
                    data = os.read(stdin, 65536)
                except OSError:
                    data = b""
                if data:
                    to_master += data
                else:
                    stdin_open = False
            elif fd == master:
                if ev & select.POLLOUT and to_master:
                    try:
                        n = os.write(master, to_master)
                        to_master = to_master[n:]
                    except BlockingIOError:
                        pass
                    except OSError:
                        to_master = b""
                if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    try:
                        data = os.read(master, 65536)
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        if exc.errno != errno.EIO:
                            raise
                        data = b""
                    if not data:        # EIO: every slave fd is closed and the buffer is empty
                        master_open = False
                        to_master = b""
                        continue
                    if out_ok:
                        out_ok = _write_all(stdout, data)


def recv_master(sock) -> int:
    """The pty master the container sent over our internal console socket (one message, one fd)."""
    import socket
    _msg, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise OciError("the container did not send its terminal over the console socket")
    return fds[0]


def attach(master: int, pid: int, host_console: int) -> None:
    """Proxy the terminal of the process `pid` (the container's init for `run`) until it exits;
    prepare() was called before it started."""
    pidfd = os.pidfd_open(pid)
    try:
        proxy(master, pidfd, host_console)
    finally:
        os.close(pidfd)
