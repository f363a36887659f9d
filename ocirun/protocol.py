"""Parent <-> init messages: one JSON object per SOCK_SEQPACKET packet, fds in the same packet;
a message larger than INLINE_MAX is written to a memfd and the packet carries that fd instead.

Types, in order (see docs/ARCHITECTURE.md): bootstrap (parent->init), userns_map / ack,
child_pid, mount_sources / mount_sources... (ocirun/linux/mountsources.py), hooks / ack,
seccomp_fd {fd} / ack (a notify filter was just loaded), ready; error {msg} at any point. EOF before
`ready` means init died.

Works on socket.socket and on _socket.socket objects: `create` uses the C module directly, because
the socket module imports selectors and enum (about 4 ms on every create).
"""
import os
import struct
from _socket import CMSG_LEN, SCM_RIGHTS, SOL_SOCKET

from ocirun import fastjson  # not json: it imports re and enum (~4 ms of the init's start)

MAX_PACKET = 1 << 22
MAX_FDS = 5
# Larger messages (a config.json of megabytes) travel in a memfd: a packet must fit the socket buffer.
INLINE_MAX = 1 << 17
LARGE = "large"


def encode(msg: dict) -> bytes:
    return fastjson.dumps(msg).encode()


def send(sock, msg: dict, fds: list[int] | tuple = ()) -> None:
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
        sock.sendall(data)


def recv(sock) -> tuple[dict | None, list[int]]:
    """One message, or (None, []) at EOF."""
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


def recv_with_read(sock) -> tuple[dict | None, list[int]]:
    """One message read with read(2): for a process whose seccomp filter may notify recvmsg
    (small messages only: a large one needs its memfd, which read(2) cannot receive)."""
    data = os.read(sock.fileno(), MAX_PACKET)
    return (fastjson.loads(data) if data else None), []
