"""The process settings as plan data (ocirun/processplan.py): every field checked once by the
runtime and resolved into what the init and the exec helper apply, through the JSON the messages use.
(The one-line errors of each field: tests/unit/test_seccomp_plan.py test_validate_process_errors.)"""
import json
import resource
import socket

import pytest

from ocirun import processplan, protocol
from ocirun.errors import ConfigError
from ocirun.linux import capabilities

FULL_PROCESS = {
    "cwd": "/work", "user": {"uid": 1000, "gid": 1001, "umask": 0o27, "additionalGids": [5, 6]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048},
                {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**63}],
    "oomScoreAdj": -999, "noNewPrivileges": True,
    "capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_FOO"], "effective": ["CAP_KILL"],
                     "permitted": ["CAP_KILL", "CAP_CHOWN"], "inheritable": ["CAP_KILL"],
                     "ambient": ["CAP_KILL", "CAP_CHOWN"]},
    "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 4},
    "scheduler": {"policy": "SCHED_FIFO", "priority": 10, "flags": ["SCHED_FLAG_RESET_ON_FORK"], "nice": -3},
    "execCPUAffinity": {"initial": "7", "final": "3,0-1"},
    "args": ["sh"], "env": ["A=1"], "terminal": False,
}
FULL_LINUX = {"personality": {"domain": "LINUX32"},
              "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "2,0", "flags": ["MPOL_F_STATIC_NODES"]}}

FULL_SETTINGS = {
    "rlimits": [[7, "RLIMIT_NOFILE", 512, 2048], [4, "RLIMIT_CORE", -1, -1]],
    "oomScoreAdj": -999,
    "personality": 0x0008,
    "ioPriority": 3 << 13 | 4,
    "scheduler": {"policy": 1, "policyName": "SCHED_FIFO", "flags": 1, "nice": -3, "priority": 10,
                  "runtime": 0, "deadline": 0, "period": 0},
    "execCPUAffinity": [[7], [0, 1, 3]],
    "memoryPolicy": [2 | 1 << 15, [0, 2]],
    "user": {"uid": 1000, "gid": 1001, "additionalGids": [5, 6], "umask": 0o27},
    # CAP_KILL 5, CAP_CHOWN 0; CAP_FOO skipped (a warning); ambient only what is raisable
    "capabilities": {"bounding": [0, 5], "effective": [5], "permitted": [0, 5], "inheritable": [5],
                     "ambient": [5]},
    "noNewPrivileges": True,
    "cwd": "/work",
}

EMPTY_SETTINGS = {
    "rlimits": [], "oomScoreAdj": None, "personality": None, "ioPriority": None, "scheduler": None,
    "execCPUAffinity": [None, None], "memoryPolicy": None, "user": None,
    "capabilities": {name: [] for name in capabilities.CAP_SETS}, "noNewPrivileges": False, "cwd": None,
}


def test_every_field_of_a_full_config():
    settings, warnings = processplan.build({"process": FULL_PROCESS, "linux": FULL_LINUX})
    assert settings == FULL_SETTINGS
    assert warnings == ['process.capabilities.bounding[2]: unknown capability "CAP_FOO", ignored']


def test_nothing_set_is_the_defaults():
    assert processplan.build({}) == (EMPTY_SETTINGS, [])
    assert processplan.build({"process": {}, "linux": {}}) == (EMPTY_SETTINGS, [])


@pytest.mark.parametrize("settings", [FULL_SETTINGS, EMPTY_SETTINGS])
def test_the_plan_survives_the_message_encoding_unchanged(settings):
    """The settings travel in the bootstrap (create) and the EXEC message (exec) as JSON: what the
    init and the helper get back equals what the runtime built (lists, not tuples or sets)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        for msg in ({"type": protocol.BOOTSTRAP, "plan": {"mounts": [], "process": settings}},
                    {"type": protocol.EXEC, "process": settings}):
            protocol.send(a, msg)
            assert protocol.recv(b) == (msg, [])
    assert json.loads(json.dumps(settings)) == settings


def test_deadline_scheduler_and_the_other_fields_defaults():
    sched = processplan.parse_scheduler({"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 20, "period": 30})
    assert sched == {"policy": 6, "policyName": "SCHED_DEADLINE", "flags": 0, "nice": 0, "priority": 0,
                     "runtime": 10, "deadline": 20, "period": 30}
    assert processplan.parse_user({"uid": 0, "gid": 0}) == {"uid": 0, "gid": 0, "additionalGids": [], "umask": None}
    assert processplan.parse_memory_policy({"mode": "MPOL_LOCAL"}) == [4, []]
    assert processplan.parse_exec_cpu_affinity({"initial": "", "final": "1"}) == [None, [1]]


def test_rlimit_infinity_is_what_the_resource_module_means():
    assert processplan.RLIM_INFINITY == resource.RLIM_INFINITY
    assert processplan.parse_rlimits([{"type": "RLIMIT_AS", "soft": 2**63 - 1, "hard": 2**63}]) == \
        [[9, "RLIMIT_AS", 2**63 - 1, -1]]


def test_capabilities_the_kernel_lacks_are_left_out_of_the_plan(monkeypatch):
    monkeypatch.setattr(capabilities, "_last_cap", 38)      # no CAP_BPF (39), CAP_CHECKPOINT_RESTORE (40)
    settings, warnings = processplan.build({"process": {"capabilities": {
        "bounding": ["CAP_CHOWN", "CAP_BPF"], "permitted": ["CAP_PERFMON", "CAP_CHECKPOINT_RESTORE"],
        "inheritable": ["CAP_PERFMON", "CAP_CHECKPOINT_RESTORE"], "ambient": ["CAP_CHECKPOINT_RESTORE"]}}})
    assert settings["capabilities"] == {"bounding": [0], "effective": [], "permitted": [38], "inheritable": [38],
                                        "ambient": []}
    assert [w.split(":")[0] for w in warnings] == ["process.capabilities.bounding[1]",
                                                   "process.capabilities.inheritable[1]",
                                                   "process.capabilities.permitted[1]",
                                                   "process.capabilities.ambient[0]"]


@pytest.mark.parametrize("cwd", ["relative", 5, ""])
def test_cwd_must_be_absolute(cwd):
    with pytest.raises(ConfigError) as exc:
        processplan.build({"process": {"cwd": cwd}})
    assert str(exc.value) == "process.cwd: must be an absolute path"


def test_the_first_bad_field_is_the_error_one_line_with_its_path():
    with pytest.raises(ConfigError) as exc:
        processplan.build({"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}],
                                       "oomScoreAdj": 5000}})
    assert str(exc.value) == "process.rlimits[0]: soft limit 2 is greater than hard limit 1"


@pytest.mark.parametrize("extra,message", [
    ({"type": "RLIMIT_FOO", "soft": 1, "hard": 1}, "process.rlimits[1].type: unknown rlimit type 'RLIMIT_FOO'"),
    ({"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, "process.rlimits[1].type: duplicated rlimit type RLIMIT_NOFILE"),
    ({"type": "RLIMIT_CORE", "soft": 2048, "hard": 1024},
     "process.rlimits[1]: soft limit 2048 is greater than hard limit 1024"),
    ({"type": "RLIMIT_CORE", "soft": 2**64, "hard": 1}, "process.rlimits[1].soft: must be an unsigned 64-bit integer, got 18446744073709551616"),
])
def test_bad_rlimits(extra, message):
    with pytest.raises(ConfigError) as exc:
        processplan.build({"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}, extra]}})
    assert str(exc.value) == message
