"""The container's terminal: a pty made inside the container's own devpts, master sent to the caller.

As runc does it: after pivot_root open /dev/ptmx, take the peer with TIOCGPTPEER (no path lookup
the container could race), bind the peer over /dev/console (the init only), send the master over
the console socket with SCM_RIGHTS (one message: the pty's name and the fd, runc's utils.SendFd),
and make the peer the controlling terminal and stdio. setup_console() is that one sequence, for
the container's init and for an `exec` process (ocirun/exec_init.py).
"""
import fcntl
import os
import _socket  # the C module: socket imports selectors and enum
import struct
import termios

from ocirun.errors import OciError
from ocirun.linux import syscalls as sc

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCGPTPEER = 0x5441
TIOCSWINSZ = 0x5414
TIOCSCTTY = 0x540E


def open_pty() -> tuple[int, int, str]:
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    return master, slave, f"/dev/pts/{number}"


def set_size(fd: int, size: dict | None) -> None:
    if size:
        fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", int(size.get("height", 0)), int(size.get("width", 0)), 0, 0))


def give_to_user(slave: int, uid: int) -> None:
    """The pty belongs to process.user, so that the user can use their console (runc's
    fixStdioPermissions): the uid changes, the group stays the one devpts gave (gid=5, tty).
    EINVAL (the gid is unmapped in the user namespace), EPERM (the owner is unmapped) and EROFS
    leave it as it is, as runc does."""
    try:
        sc.fchown(slave, uid, -1)
    except OSError as exc:
        if exc.errno not in (1, 22, 30):   # EPERM, EINVAL, EROFS
            raise OciError(f"process.terminal: chown the console to uid {uid}: {exc.strerror}") from None


def setup_console(console_socket_fd: int | None, size: dict | None, uid: int = 0, *,
                  dev_console: bool = True, clear_onlcr: bool = False) -> int:
    """dev_console: bind the pty over /dev/console (the init; an exec process keeps the init's).
    clear_onlcr: `ocirun exec -t` proxies to a terminal that translates "\n" itself (runc)."""
    if console_socket_fd is None:
        raise OciError("process.terminal: a console socket is required (--console-socket)")
    master, slave, name = open_pty()
    give_to_user(slave, uid)    # the pty belongs to process.user (runc)
    try:
        set_size(master, size)
        if clear_onlcr:
            attrs = termios.tcgetattr(slave)
            attrs[1] &= ~termios.ONLCR
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
        if dev_console:
            try:
                fd = os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
                os.close(fd)
            except OSError as exc:
                raise OciError(f"/dev/console: {exc.strerror}") from None
            sc.mount(f"/proc/self/fd/{slave}", "/dev/console", None, sc.MS_BIND, label="/dev/console")
        sock = _socket.socket(fileno=console_socket_fd)
        try:
            sock.sendmsg([name.encode()], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", master))])
        finally:
            sock.close()
    finally:
        os.close(master)
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)
    return 0
