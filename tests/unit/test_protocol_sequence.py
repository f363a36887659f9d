"""The order checks and error messages of the parent <-> child protocol (ocirun/protocol.py), without
root: the sequences `create` and `exec` expect, the child's reply check, errors with step and errno,
and the log pipe."""
import errno
import os

import pytest

from ocirun import log, protocol
from ocirun.errors import InitError, OciError

USERNS = {"linux": {"namespaces": [{"type": "pid"}, {"type": "user"}, {"type": "mount"}]}}
NOTIFY = {"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}],
                    "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}}}


def _feed(seq, kinds):
    for kind in kinds:
        assert seq.take({"type": kind}) == kind
    return seq


@pytest.mark.parametrize("config, order", [
    ({}, ["child_pid", "hooks", "ready"]),
    (USERNS, ["userns_map", "child_pid", "hooks", "ready"]),
    (USERNS, ["userns_map", "child_pid", "mount_sources", "hooks", "ready"]),
    (NOTIFY, ["child_pid", "hooks", "seccomp_fd", "ready"]),
    (NOTIFY, ["child_pid", "hooks", "ready"]),      # optional: a filter that is loaded after ready
])
def test_create_accepts_the_orders_the_init_sends(config, order):
    assert _feed(protocol.create_sequence(config), order).done()


def test_create_refuses_a_message_out_of_its_order():
    seq = protocol.create_sequence(USERNS)
    with pytest.raises(InitError, match="unexpected message from container init: 'hooks' before 'userns_map'"):
        seq.take({"type": "hooks"})


def test_create_refuses_a_message_it_does_not_expect_for_this_config():
    seq = _feed(protocol.create_sequence({}), ["child_pid"])
    with pytest.raises(InitError, match="unexpected message from container init: 'userns_map'"):
        seq.take({"type": "userns_map"})


def test_create_refuses_a_message_twice_and_an_optional_one_after_its_phase():
    seq = _feed(protocol.create_sequence(USERNS), ["userns_map", "child_pid", "hooks"])
    with pytest.raises(InitError, match="'mount_sources'"):     # its phase (before hooks) is over
        seq.take({"type": "mount_sources"})
    seq = _feed(protocol.create_sequence({}), ["child_pid"])
    with pytest.raises(InitError, match="'child_pid'"):
        seq.take({"type": "child_pid"})


def test_eof_before_ready_means_the_init_died_and_is_not_done():
    seq = _feed(protocol.create_sequence({}), ["child_pid", "hooks"])
    assert not seq.done()
    with pytest.raises(InitError, match="^container init exited before it was ready$"):
        seq.take(None)


def test_an_error_message_raises_its_text_with_step_and_errno_kept():
    seq = protocol.create_sequence({})
    with pytest.raises(InitError) as info:
        seq.take(protocol.error("mounts[3]: mount /x: no such device", "rootfs", errno.ENODEV))
    assert str(info.value) == "mounts[3]: mount /x: no such device"     # what users see, unchanged
    assert info.value.step == "rootfs" and info.value.errno == errno.ENODEV


def test_exec_accepts_seccomp_fd_before_or_after_the_pid():
    assert _feed(protocol.exec_sequence(NOTIFY), ["cgroup", "seccomp_fd", "child_pid"]).done()
    assert _feed(protocol.exec_sequence(NOTIFY), ["cgroup", "child_pid", "seccomp_fd"]).done()
    with pytest.raises(OciError, match="'child_pid' before 'cgroup'"):
        protocol.exec_sequence({}).take({"type": "child_pid"})


def test_the_child_checks_each_reply():
    assert protocol.expect({"type": "ack", "pid": 7}, protocol.ACK) == {"type": "ack", "pid": 7}
    with pytest.raises(OciError, match="^parent went away$"):
        protocol.expect(None, protocol.ACK)
    with pytest.raises(OciError, match="unexpected message from the parent: 'ready' \\(expected 'ack'\\)"):
        protocol.expect({"type": "ready"}, protocol.ACK)
    with pytest.raises(OciError, match="^hook failed$") as info:
        protocol.expect(protocol.error("hook failed", "hooks", 2), protocol.ACK)
    assert info.value.step == "hooks" and info.value.errno == 2


def test_an_exception_becomes_an_error_message_with_its_errno():
    try:
        os.open("/nonexistent/ocirun-test", os.O_RDONLY)
    except OSError as exc:
        msg = protocol.error_from(exc, "open: no such file or directory", ("test_an_exception_becomes_an_error_message_with_its_errno",))
    assert msg["type"] == protocol.ERROR and msg["errno"] == errno.ENOENT
    assert msg["msg"] == "open: no such file or directory"


def test_log_lines_cross_the_pipe_and_a_full_pipe_never_blocks_the_child(monkeypatch):
    seen = []
    monkeypatch.setattr(log, "log", lambda level, msg: seen.append((level, msg)))
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    reader = protocol.LogReader(r)
    try:
        sink = protocol.log_sink(w)
        sink("debug", "one")
        sink("warning", "two\nlines")       # a newline in a message stays inside its JSON line
        reader.drain()
        assert seen == [("debug", "one"), ("warning", "two\nlines")]
        for _ in range(2000):                # far more than a pipe holds: dropped, never blocking
            sink("info", "x" * 100)
    finally:
        os.close(w)
        reader.close()
    assert len(seen) > 2
