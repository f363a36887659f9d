"""ocirun.statuscheck: which statuses each command accepts, and runc's words for a refusal."""
import pytest

from ocirun import statuscheck
from ocirun.errors import InvalidState

REFUSALS = [
    ("start", "stopped", "cannot start a container that has stopped"),
    ("start", "running", "cannot start an already running container"),
    ("start", "paused", "cannot start container c1 in status paused"),
    ("kill", "stopped", "container not running"),
    ("delete", "running", "cannot delete container c1 that is not stopped: running"),
    ("pause", "paused", "container not running"),
    ("resume", "running", "container not paused"),
    ("update", "stopped", "container not running"),
    ("events", "stopped", "container with id c1 is not running"),
    ("exec", "stopped", "cannot exec in a stopped container"),
    ("exec", "paused", "cannot exec in a paused container (use --ignore-paused to override)"),
    ("exec", "creating", "cannot exec in a container that is being created"),
    ("exec --ignore-paused", "stopped", "cannot exec in a stopped container"),
]


@pytest.mark.parametrize("op, status, message", REFUSALS)
def test_refusals_keep_runc_s_words(op, status, message):
    with pytest.raises(InvalidState) as info:
        statuscheck.check("c1", status, op)
    assert str(info.value) == message and info.value.status == status


@pytest.mark.parametrize("op, status", [("start", "created"), ("kill", "paused"), ("delete", "stopped"),
                                        ("pause", "created"), ("resume", "paused"), ("update", "creating"),
                                        ("events", "running"), ("exec", "running"),
                                        ("exec --ignore-paused", "paused")])
def test_accepted(op, status):
    assert statuscheck.check("c1", status, op) == status and statuscheck.allowed(op, status)
