"""Loopback up in a new network namespace, from the container's init.

Only fcntl.ioctl on an AF_INET socket of the C module _socket: no pyroute2 (tens of ms to import)
and not the socket module (selectors and enum, ~4 ms of the init's start).
"""
import _socket
import fcntl
import struct

from ocirun.errors import SyscallError

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFNAMSIZ = 16
# struct ifreq: char ifr_name[IFNAMSIZ]; then a 24-byte union whose first member here is short flags.
_IFREQ_FLAGS = "16sH22x"


def _ioctl_flags(sock, request: int, name: str, flags: int = 0) -> int:
    ifreq = struct.pack(_IFREQ_FLAGS, name.encode(), flags)
    op = "ioctl SIOCGIFFLAGS" if request == SIOCGIFFLAGS else "ioctl SIOCSIFFLAGS"
    try:
        result = fcntl.ioctl(sock.fileno(), request, ifreq)
    except OSError as e:
        raise SyscallError(e.errno, op, name) from None
    return struct.unpack(_IFREQ_FLAGS, result)[1]


def loopback_up() -> None:
    """Set `lo` UP in the current network namespace (a new netns starts with lo down)."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        flags = _ioctl_flags(sock, SIOCGIFFLAGS, "lo")
        if not flags & IFF_UP:
            _ioctl_flags(sock, SIOCSIFFLAGS, "lo", flags | IFF_UP)
    finally:
        sock.close()
