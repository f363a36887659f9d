"""The seccomp profile is compiled once, by the runtime (`create`, `exec`), into the whole program
(ENOSYS stub + libseccomp's BPF); the container's init and the exec helper only load that data and
never load libseccomp themselves."""
import ctypes
import os
import subprocess
import sys

import pytest

from ocirun import processplan
from tests.conftest import base_config

pytestmark = pytest.mark.root

# a denying default (so the ENOSYS stub is in front) that lets the runtime and busybox work: every
# syscall of the host's unistd_64.h is allowed but three
_UNISTD = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
_ALL = [line.split()[1][5:] for line in open(_UNISTD) if line.startswith("#define __NR_")] \
    if os.path.exists(_UNISTD) else []
PROFILE = {"defaultAction": "SCMP_ACT_ERRNO",
           "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
           "syscalls": [{"names": [n for n in _ALL if n not in ("getcwd", "mkdirat", "bpf")],
                         "action": "SCMP_ACT_ALLOW"},
                        {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
DEFAULT_ALLOW = dict(PROFILE, defaultAction="SCMP_ACT_ALLOW")

PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SECCOMP_GET_FILTER = 16, 17, 0x420C
_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long


def loaded_filter(pid: int) -> bytes:
    """The classic BPF of the process's (only) seccomp filter, as the kernel keeps it."""
    if _libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
        raise OSError(ctypes.get_errno(), "ptrace attach")
    try:
        os.waitpid(pid, os.__dict__.get("WALL", 0x40000000))
        count = _libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, None)
        if count < 0:
            raise OSError(ctypes.get_errno(), "PTRACE_SECCOMP_GET_FILTER")
        buf = ctypes.create_string_buffer(count * 8)
        assert _libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, buf) == count
        return buf.raw
    finally:
        _libc.ptrace(PTRACE_DETACH, pid, None, None)


def compiled(profile: dict) -> bytes:
    return processplan.validate_and_compile({"process": {}, "linux": {"seccomp": profile}})[1].bpf


@pytest.mark.parametrize("profile", [PROFILE, DEFAULT_ALLOW], ids=["enosys-stub", "allow-default"])
@pytest.mark.skipif(not _ALL, reason="needs the x86_64 kernel headers")
def test_created_init_loads_the_runtime_s_program_and_no_libseccomp(ocirun, profile):
    config = base_config(["sleep", "100"])
    config["process"]["noNewPrivileges"] = False      # loaded in the init before `created`
    config["linux"]["seccomp"] = profile
    ocirun("create", "-b", ocirun.bundle(config), "c1", check=True)
    pid = ocirun.state("c1")["pid"]
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    assert "python" in maps     # still the init's interpreter, waiting for `start`
    assert "libseccomp" not in maps
    assert loaded_filter(pid) == compiled(profile)
    ocirun("delete", "-f", "c1", check=True)


@pytest.mark.skipif(not _ALL, reason="needs the x86_64 kernel headers")
def test_exec_process_loads_the_runtime_s_program(ocirun):
    config = base_config(["sleep", "100"])
    config["linux"]["seccomp"] = PROFILE
    ocirun("run", "-d", "-b", ocirun.bundle(config), "c1", check=True)
    pid_file = os.path.join(ocirun.tmp, "exec.pid")
    ocirun("exec", "-d", "--pid-file", pid_file, "c1", "sleep", "100", check=True)
    with open(pid_file) as f:
        pid = int(f.read())
    assert loaded_filter(pid) == compiled(PROFILE)
    ocirun("delete", "-f", "c1", check=True)


def test_exec_helper_path_never_loads_libseccomp():
    """What the helper runs (prepare_process_settings with the plan's program, then the load) in a
    fresh interpreter: libseccomp is not mapped afterwards."""
    code = """
import os, sys
from ocirun import security
config = {"process": {"noNewPrivileges": True}, "linux": {"seccomp": %r}}
wire = %r
program = security.prepare_process_settings(config, wire)
security.set_no_new_privs()
security.load_seccomp_late(program)
with open("/proc/self/maps") as f:
    print("libseccomp" in f.read())
""" % (PROFILE, processplan.validate_and_compile({"process": {}, "linux": {"seccomp": PROFILE}})[1].to_wire())
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
