"""Parent <-> init messages: one JSON object per SOCK_SEQPACKET packet, fds in the same packet.

Types, in order (see docs/ARCHITECTURE.md): bootstrap (parent->init), userns_map / ack,
child_pid, hooks / ack, ready; error {msg} at any point. EOF before `ready` means init died.
"""
import json
import socket

MAX_PACKET = 1 << 22


def encode(msg: dict) -> bytes:
    return json.dumps(msg).encode()


def send(sock: socket.socket, msg: dict, fds: list[int] | tuple = ()) -> None:
    data = encode(msg)
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


def recv(sock: socket.socket) -> tuple[dict | None, list[int]]:
    """One message, or (None, []) at EOF."""
    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_PACKET, 4)
    if not data:
        return None, fds
    return json.loads(data), fds


def recv_with_read(sock: socket.socket) -> tuple[dict | None, list[int]]:
    """One message read with read(2): for a process whose seccomp filter may notify recvmsg."""
    import os
    data = os.read(sock.fileno(), MAX_PACKET)
    return (json.loads(data) if data else None), []
