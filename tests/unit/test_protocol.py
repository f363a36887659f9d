"""The parent <-> init protocol (ocirun/protocol.py) over a real SOCK_SEQPACKET socketpair."""
import os
import socket

from ocirun import protocol


def _pair():
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def test_a_small_message_with_fds():
    a, b = _pair()
    r, w = os.pipe()
    try:
        protocol.send(a, {"type": "x", "n": 1}, [w])
        msg, fds = protocol.recv(b)
        assert msg == {"type": "x", "n": 1}
        assert len(fds) == 1
        os.write(fds[0], b"!")
        os.close(fds[0])
        assert os.read(r, 1) == b"!"
    finally:
        for fd in (r, w):
            os.close(fd)
        a.close()
        b.close()


def test_a_message_larger_than_the_socket_buffer_goes_through_a_memfd():
    a, b = _pair()
    r, w = os.pipe()
    before = set(os.listdir("/proc/self/fd"))
    try:
        big = {"type": "bootstrap", "config": {"annotations": {"x": "y" * 10_000_000}}}
        protocol.send(a, big, [w])
        msg, fds = protocol.recv(b)
        assert msg == big
        assert len(fds) == 1 and os.path.sameopenfile(fds[0], w)     # the memfd is not handed on
        os.close(fds[0])
        assert set(os.listdir("/proc/self/fd")) == before           # the memfd is closed on both sides
    finally:
        for fd in (r, w):
            os.close(fd)
        a.close()
        b.close()
