"""Which container statuses each command accepts, and runc's words when it refuses (one table).

    check(cid, status, op)        raises InvalidState (an OciError) with the message runc prints

An entry is (accepted statuses, {refused status: message}, message for any other refused status);
messages are format strings of {cid} and {status}. Clients (podman, docker, conformance tests)
match some of these words, so they are kept to the letter.
"""
from ocirun.errors import InvalidState
from ocirun.state import CREATED, CREATING, PAUSED, RUNNING, STOPPED

ANY_BUT_STOPPED = frozenset({CREATING, CREATED, RUNNING, PAUSED})

RULES = {
    "start": ({CREATED}, {STOPPED: "cannot start a container that has stopped",
                          RUNNING: "cannot start an already running container"},
              "cannot start container {cid} in status {status}"),
    "kill": ({CREATED, RUNNING, PAUSED}, {}, "container not running"),
    "delete": ({STOPPED}, {}, "cannot delete container {cid} that is not stopped: {status}"),
    "pause": ({RUNNING, CREATED}, {}, "container not running"),
    "resume": ({PAUSED}, {}, "container not paused"),
    "update": (ANY_BUT_STOPPED, {}, "container not running"),
    "events": (ANY_BUT_STOPPED, {}, "container with id {cid} is not running"),
    "exec": ({CREATED, RUNNING}, {STOPPED: "cannot exec in a stopped container",
                                  PAUSED: "cannot exec in a paused container (use --ignore-paused to override)",
                                  CREATING: "cannot exec in a container that is being created"},
             "cannot exec container {cid} in status {status}"),
    "exec --ignore-paused": ({CREATED, RUNNING, PAUSED}, {STOPPED: "cannot exec in a stopped container",
                                                          CREATING: "cannot exec in a container that is being created"},
                             "cannot exec container {cid} in status {status}"),
}


def allowed(op: str, status: str) -> bool:
    return status in RULES[op][0]


def check(cid: str, status: str, op: str) -> str:
    """The status, when op accepts it; else InvalidState with runc's message."""
    accepted, messages, other = RULES[op]
    if status not in accepted:
        text = messages.get(status, other)
        raise InvalidState(cid, status, op.split()[0], text.format(cid=cid, status=status))
    return status
