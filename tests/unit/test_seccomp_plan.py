"""linux.seccomp compilation (validation + the BPF libseccomp builds, nothing loaded) and the pure
checks of the other process settings (processplan.validate_and_compile, ocirun.processplan's parse_* helpers)."""
import errno
import json
import struct

import pytest

from ocirun import processplan, security
from ocirun.errors import ConfigError
from ocirun.linux import syscalls
from ocirun.linux.seccomp import compile_filter, process_state

SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ALLOW = 0x7FFF0000
BPF_RET_K = 0x06
BPF_JMP_JEQ_K = 0x15
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_X86_64 = 0xC000003E


def bpf(profile: dict) -> list[tuple[int, int, int, int]]:
    """The compiled program as (code, jt, jf, k) instructions."""
    with compile_filter(profile) as f:
        raw = f.export_bpf()
    return list(struct.iter_unpack("=HBBI", raw))


def returns(program) -> set[int]:
    return {k for code, _, _, k in program if code == BPF_RET_K}


def compared(program) -> set[int]:
    return {k for code, _, _, k in program if code == BPF_JMP_JEQ_K}


def config_error(profile) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        compile_filter(profile).close()
    return exc.value


# --- what the filter contains --------------------------------------------------------------------

def test_errno_rule_and_default_action():
    program = bpf({"defaultAction": "SCMP_ACT_KILL_PROCESS",
                   "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]})
    assert {SECCOMP_RET_ERRNO | 38, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ALLOW} <= returns(program)
    nrs = {syscalls.scmp_syscall_resolve_name(n) for n in ("getcwd", "read", "write")}
    assert nrs <= compared(program)


def test_errno_defaults_to_eperm_and_default_errno_ret():
    program = bpf({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 95,
                   "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]})
    assert {SECCOMP_RET_ERRNO | 95, SECCOMP_RET_ERRNO | errno.EPERM} <= returns(program)


def test_unknown_syscall_names_are_skipped():
    base = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}
    with_unknown = {"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["getcwd", "no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO"}]}
    assert bpf(with_unknown) == bpf(base)


def test_rule_with_the_default_action_is_skipped():
    plain = bpf({"defaultAction": "SCMP_ACT_ALLOW"})
    assert bpf({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ALLOW"}]}) == plain


def test_extra_architecture_is_in_the_filter():
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}
    assert AUDIT_ARCH_I386 not in compared(bpf(profile))
    program = bpf(dict(profile, architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]))
    assert {AUDIT_ARCH_I386, AUDIT_ARCH_X86_64} <= compared(program)


def test_argument_comparisons():
    program = bpf({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                                 "args": [{"index": 0, "value": 0x12345, "op": "SCMP_CMP_EQ"}]}]})
    assert 0x12345 in compared(program)


def test_same_argument_twice_becomes_two_rules():
    # one rule cannot AND two comparisons of argument 0: both values must still be in the program
    program = bpf({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                                 "args": [{"index": 0, "value": 0x11111, "op": "SCMP_CMP_EQ"},
                                          {"index": 0, "value": 0x22222, "op": "SCMP_CMP_EQ"}]}]})
    assert {0x11111, 0x22222} <= compared(program)


def test_flags_and_notify_properties():
    with compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG",
                                                                      "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                         "listenerPath": "/run/agent.sock", "listenerMetadata": "m",
                         "syscalls": [{"names": ["mkdir", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}) as f:
        assert f.has_notify
        assert f.notified_syscalls == {"mkdir", "sendmsg"}
        assert f.notify_blocks_sender
        assert f.listener_path == "/run/agent.sock" and f.listener_metadata == "m"
    with compile_filter({"defaultAction": "SCMP_ACT_ALLOW"}) as f:
        assert not f.has_notify and not f.notify_blocks_sender


# --- errors name the field -----------------------------------------------------------------------

def test_unknown_action_names_the_rule():
    e = config_error({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO"}, {"names": ["write"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["open"], "action": "SCMP_ACT_NOPE"}]})
    assert e.path == "linux.seccomp.syscalls[2].action"
    assert str(e) == "linux.seccomp.syscalls[2].action: unknown seccomp action 'SCMP_ACT_NOPE'"


@pytest.mark.parametrize("profile, path", [
    ({}, "linux.seccomp.defaultAction"),
    ({"defaultAction": "ALLOW"}, "linux.seccomp.defaultAction"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}, "linux.seccomp.defaultAction"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "linux.seccomp.defaultErrnoRet"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "linux.seccomp.defaultErrnoRet"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}, "linux.seccomp.architectures[0]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "FLAG_X"]},
     "linux.seccomp.flags[1]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]},
     "linux.seccomp.syscalls[0].names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read", ""], "action": "SCMP_ACT_ERRNO"}]},
     "linux.seccomp.syscalls[0].names[1]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_LOG",
                                                      "errnoRet": 5}]}, "linux.seccomp.syscalls[0].errnoRet"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                                      "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].index"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                                      "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                                                               {"index": 1, "value": 1, "op": "EQ"}]}]},
     "linux.seccomp.syscalls[0].args[1].op"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                                      "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].value"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.listenerPath"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
      "syscalls": [{"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]}, "linux.seccomp.syscalls[0].names[1]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}, "linux.seccomp.listenerMetadata"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "relative.sock",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}, "linux.seccomp.listenerPath"),
])
def test_config_errors(profile, path):
    assert config_error(profile).path == path


def test_flag_newer_than_libseccomp_is_refused_clearly():
    if syscalls.scmp_version() >= (2, 6, 0):
        pytest.skip("libseccomp has WAIT_KILLABLE_RECV")
    e = config_error({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]})
    assert e.path == "linux.seccomp.flags[0]" and "needs libseccomp 2.6.0" in str(e)


def test_process_state_shape():
    state = {"ociVersion": "1.3.0", "id": "c1", "status": "creating", "pid": 42, "bundle": "/b"}
    msg = process_state(state, "meta")
    assert msg == {"ociVersion": "1.3.0", "fds": ["seccompFd"], "pid": 42, "metadata": "meta", "state": state}
    assert "metadata" not in process_state(state, None)
    json.dumps(msg)


# --- the other process settings: pure checks -----------------------------------------------------

def validate(process=None, linux=None):
    return processplan.validate_and_compile({"process": process or {}, "linux": linux or {}})[0]


def test_validate_process_accepts_a_full_config():
    process = {
        "cwd": "/", "user": {"uid": 1000, "gid": 1000, "umask": 0o22, "additionalGids": [5, 6]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
                    {"type": "RLIMIT_LOCKS", "soft": 2**64 - 1, "hard": 2**64 - 1}],
        "oomScoreAdj": -999, "noNewPrivileges": True,
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
        "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 4},
        "scheduler": {"policy": "SCHED_FIFO", "priority": 10, "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
        "execCPUAffinity": {"initial": "7", "final": "0-3,7"},
    }
    linux = {"personality": {"domain": "LINUX32"}, "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"},
             "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}
    assert validate(process, linux) == []


@pytest.mark.parametrize("process, linux, path", [
    ({"rlimits": [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]}, None, "process.rlimits[0].type"),
    ({"rlimits": [{"type": "RLIMIT_CORE", "soft": 1, "hard": 1}, {"type": "RLIMIT_CORE", "soft": 1, "hard": 1}]},
     None, "process.rlimits[1].type"),
    ({"rlimits": [{"type": "RLIMIT_CORE", "soft": 2, "hard": 1}]}, None, "process.rlimits[0]"),
    ({"rlimits": [{"type": "RLIMIT_CORE", "soft": -1, "hard": 1}]}, None, "process.rlimits[0].soft"),
    ({"oomScoreAdj": 1001}, None, "process.oomScoreAdj"),
    ({"capabilities": {"ambient": [7]}}, None, "process.capabilities.ambient[0]"),
    ({"ioPriority": {"class": "IOPRIO_CLASS_NONE", "priority": 1}}, None, "process.ioPriority.class"),
    ({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}, None, "process.ioPriority.priority"),
    ({"scheduler": {"policy": "SCHED_FAST"}}, None, "process.scheduler.policy"),
    ({"scheduler": {"policy": "SCHED_ISO"}}, None, "process.scheduler.policy"),
    ({"scheduler": {"policy": "SCHED_OTHER", "nice": 20}}, None, "process.scheduler.nice"),
    ({"scheduler": {"policy": "SCHED_OTHER", "priority": 5}}, None, "process.scheduler.priority"),
    ({"scheduler": {"policy": "SCHED_RR"}}, None, "process.scheduler.priority"),
    ({"scheduler": {"policy": "SCHED_OTHER", "runtime": 5}}, None, "process.scheduler.runtime"),
    ({"scheduler": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_X"]}}, None, "process.scheduler.flags[0]"),
    ({"execCPUAffinity": {"final": "0-"}}, None, "process.execCPUAffinity.final"),
    ({"execCPUAffinity": {"initial": "3-1"}}, None, "process.execCPUAffinity.initial"),
    ({"user": {"uid": 0, "gid": 0, "username": "root"}}, None, "process.user.username"),
    ({"user": {"uid": -1, "gid": 0}}, None, "process.user.uid"),
    ({"user": {"uid": 0, "gid": 0, "additionalGids": [1, "2"]}}, None, "process.user.additionalGids[1]"),
    ({"user": {"uid": 0, "gid": 0, "umask": 0o1000}}, None, "process.user.umask"),
    ({"cwd": "relative"}, None, "process.cwd"),
    (None, {"personality": {"domain": "LINUX64"}}, "linux.personality.domain"),
    (None, {"personality": {"domain": "LINUX", "flags": ["X"]}}, "linux.personality.flags"),
    (None, {"memoryPolicy": {"mode": "MPOL_NONE"}}, "linux.memoryPolicy.mode"),
    (None, {"memoryPolicy": {"mode": "MPOL_BIND"}}, "linux.memoryPolicy.nodes"),
    (None, {"memoryPolicy": {"mode": "MPOL_LOCAL", "nodes": "0"}}, "linux.memoryPolicy.nodes"),
    (None, {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_X"]}},
     "linux.memoryPolicy.flags[0]"),
    (None, {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86"]}},
     "linux.seccomp.architectures[0]"),
])
def test_validate_process_errors(process, linux, path):
    with pytest.raises(ConfigError) as exc:
        validate(process, linux)
    assert exc.value.path == path
    assert "\n" not in str(exc.value)


def test_parsed_values():
    assert processplan.parse_cpu_list("0-3,7", "p") == {0, 1, 2, 3, 7}
    assert processplan.parse_cpu_list("5", "p") == {5}
    assert processplan.parse_io_priority({"class": "IOPRIO_CLASS_BE", "priority": 6}) == 2 << 13 | 6
    assert processplan.parse_rlimits([{"type": "RLIMIT_NOFILE", "soft": 2**64 - 1, "hard": 2**64 - 1}]) == \
        [[7, "RLIMIT_NOFILE", -1, -1]]
    assert processplan.parse_memory_policy({"mode": "MPOL_INTERLEAVE", "nodes": "0-1",
                                            "flags": ["MPOL_F_STATIC_NODES"]}) == [3 | 1 << 15, [0, 1]]
    sched = processplan.parse_scheduler({"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 20, "period": 30})
    assert (sched["policy"], sched["runtime"], sched["deadline"], sched["period"]) == (6, 10, 20, 30)
    assert processplan.parse_exec_cpu_affinity({"initial": "", "final": "1"}) == [None, [1]]


def test_prepare_process_settings():
    assert security.prepare_process_settings({"process": {"cwd": "/"}}) is None
    config = {"process": {}, "linux": {"seccomp": {"defaultAction": "SCMP_ACT_LOG"}}}
    warnings, program, settings = processplan.validate_and_compile(config)
    assert warnings == [] and program.bpf and len(program.bpf) % 8 == 0
    assert settings == processplan.build(config)[0]
    wire = program.to_wire()
    assert isinstance(wire["bpf"], str)     # JSON (the bootstrap) and marshal (the exec plan) carry it
    taken = security.prepare_process_settings(config, wire)
    assert taken.bpf == program.bpf and taken.flags == program.flags and not taken.has_notify
    # a profile without its compiled program is refused: the process would run unfiltered
    with pytest.raises(ConfigError, match=r"^linux.seccomp: the runtime sent no compiled seccomp program"):
        security.prepare_process_settings(config)
    # the process settings are not checked again there: the runtime sent them checked, as data
    assert security.prepare_process_settings({"process": {"oomScoreAdj": "5"}}) is None
    with pytest.raises(ConfigError, match=r"^process.oomScoreAdj: "):
        processplan.validate_and_compile({"process": {"oomScoreAdj": "5"}})


def test_program_is_the_stub_then_libseccomps_export():
    """What the runtime sends is the whole program the kernel gets: the ENOSYS stub (a denying
    default) followed by libseccomp's own export, with the flags seccomp_load() would use."""
    from ocirun.linux.seccomp import SeccompProgram, enosys_stub
    deny = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ALLOW"}],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"]}
    with compile_filter(deny) as f:
        program = f.program()
        assert f.enosys_above
        assert program.bpf == enosys_stub(f.enosys_above) + f.export_bpf()
        assert program.flags == 2       # SECCOMP_FILTER_FLAG_LOG
    with compile_filter({"defaultAction": "SCMP_ACT_ALLOW"}) as f:
        assert f.program().bpf == f.export_bpf()     # no stub for a permissive default
    notify = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock",
              "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
              "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    with compile_filter(notify) as f:
        program = f.program()
    assert program.has_notify and program.flags == 1 | 8 | 16    # TSYNC, NEW_LISTENER, TSYNC_ESRCH
    again = SeccompProgram.from_wire(program.to_wire())
    assert (again.bpf, again.flags) == (program.bpf, program.flags)
    with pytest.raises(ValueError):
        SeccompProgram.from_wire({"bpf": "00" * 7, "flags": 0})
