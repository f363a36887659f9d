"""Parent <-> init messages: one JSON object per SOCK_SEQPACKET packet, fds in the same packet.

Types, in order (see docs/ARCHITECTURE.md): bootstrap (parent->init), userns_map / ack,
child_pid, mount_sources / mount_sources... (ocirun/linux/mountsources.py), hooks / ack,
seccomp_fd {fd} / ack (a notify filter was just loaded), ready; error {msg} at any point. EOF before
`ready` means init died.

Works on socket.socket and on _socket.socket objects: `create` uses the C module directly, because
the socket module imports selectors and enum (about 4 ms on every create).
"""
import struct
from _socket import CMSG_LEN, SCM_RIGHTS, SOL_SOCKET

from ocirun import fastjson  # not json: it imports re and enum (~4 ms of the init's start)

MAX_PACKET = 1 << 22
MAX_FDS = 4


def encode(msg: dict) -> bytes:
    return fastjson.dumps(msg).encode()


def send(sock, msg: dict, fds: list[int] | tuple = ()) -> None:
    data = encode(msg)
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
    return fastjson.loads(data), fds


def recv_with_read(sock) -> tuple[dict | None, list[int]]:
    """One message read with read(2): for a process whose seccomp filter may notify recvmsg."""
    import os
    data = os.read(sock.fileno(), MAX_PACKET)
    return (fastjson.loads(data) if data else None), []
