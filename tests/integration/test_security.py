"""config.md / config-linux.md process privileges, checked on real containers (root).

The container's program reads its own /proc/self/* (busybox), so what is checked is what the kernel
gives the user's process after execve, not what the runtime thinks it set.
"""
import contextlib
import errno
import fcntl
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import threading

import pytest

from ocirun.linux import capabilities, lsm, procfs, syscalls
from tests import syscall_queries
from tests.conftest import base_config

pytestmark = pytest.mark.root

# linux/seccomp.h ioctls (x86_64 / aarch64 encodings)
SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101


def mask(*names) -> int:
    return sum(1 << capabilities.CAP_NUMBERS[n] for n in names)


def status_of(text: str) -> dict:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def cap_fields(text: str) -> dict:
    st = status_of(text)
    out = {k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    out.update(NoNewPrivs=int(st["NoNewPrivs"]), Seccomp=int(st["Seccomp"]))
    return out


def run_ok(ocirun, config, cid="c1"):
    proc = ocirun.run_output(config, cid)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


CAPS = {
    "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
    "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
    "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
    "effective": ["CAP_CHOWN", "CAP_KILL"],
    "ambient": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
}
GETCWD_EPERM = {"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}]}


# --- capabilities, no_new_privs, seccomp mode --------------------------------------------------------

def test_non_root_process_gets_exactly_the_configured_capability_sets(ocirun):
    config = base_config(["cat", "/proc/self/status"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["capabilities"] = CAPS
    config["linux"]["seccomp"] = GETCWD_EPERM
    got = cap_fields(run_ok(ocirun, config))
    # execve as a non-root user: permitted and effective become the ambient set (kernel rule);
    # the ambient set is exactly the configured one; bounding and inheritable exactly as configured.
    assert got == {"CapInh": mask(*CAPS["inheritable"]), "CapPrm": mask(*CAPS["ambient"]),
                   "CapEff": mask(*CAPS["ambient"]), "CapBnd": mask(*CAPS["bounding"]),
                   "CapAmb": mask(*CAPS["ambient"]), "NoNewPrivs": 1, "Seccomp": 2}


def test_root_process_capabilities_are_limited_by_the_bounding_set(ocirun):
    config = base_config(["cat", "/proc/self/status"])
    config["process"]["capabilities"] = CAPS
    config["process"]["noNewPrivileges"] = False
    got = cap_fields(run_ok(ocirun, config))
    # execve as uid 0: permitted = inheritable | bounding, effective = permitted (kernel rule)
    bnd = mask(*CAPS["bounding"])
    assert got == {"CapInh": mask(*CAPS["inheritable"]), "CapPrm": bnd, "CapEff": bnd, "CapBnd": bnd,
                   "CapAmb": mask(*CAPS["ambient"]), "NoNewPrivs": 0, "Seccomp": 0}


def test_default_config_has_empty_inheritable_and_ambient(ocirun):
    got = cap_fields(run_ok(ocirun, base_config(["cat", "/proc/self/status"])))
    three = mask("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert got == {"CapInh": 0, "CapPrm": three, "CapEff": three, "CapBnd": three, "CapAmb": 0,
                   "NoNewPrivs": 1, "Seccomp": 0}


def test_no_capabilities_object_means_no_capabilities(ocirun):
    config = base_config(["cat", "/proc/self/status"])
    del config["process"]["capabilities"]
    got = cap_fields(run_ok(ocirun, config))
    assert got["CapBnd"] == got["CapPrm"] == got["CapEff"] == got["CapInh"] == got["CapAmb"] == 0


def test_unknown_capability_name_is_a_warning_and_the_known_ones_apply(ocirun):
    # config.md: a capability that cannot be mapped MUST be logged as a warning, SHOULD NOT fail
    config = base_config(["cat", "/proc/self/status"])
    for set_name in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][set_name] = ["CAP_KILL", "CAP_FLY"]
    bundle = ocirun.bundle(config)
    proc = ocirun("run", "-b", bundle, "c1")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "CAP_FLY" in line]
    assert len(warnings) == 3 and all("level=warning" in line for line in warnings), proc.stderr
    assert "process.capabilities.bounding[1]: unknown capability" in warnings[0]
    got = cap_fields(proc.stdout)
    assert got["CapBnd"] == got["CapPrm"] == got["CapEff"] == mask("CAP_KILL")


# --- seccomp -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("nnp", [True, False])
@pytest.mark.parametrize("errno_ret, text", [(errno.EPERM, "Operation not permitted"),
                                             (errno.ENOSYS, "Function not implemented"),
                                             (errno.EROFS, "Read-only file system")])
def test_syscall_blocked_by_the_profile_fails_with_the_configured_errno(ocirun, nnp, errno_ret, text):
    config = base_config(["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; "
                                      "mkdir /tmp/d; echo rc=$?; touch /tmp/f && echo touched"])
    config["process"]["noNewPrivileges"] = nnp
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno_ret}]}
    proc = ocirun.run_output(config)
    assert proc.returncode == 0, proc.stderr
    assert f"mkdir: can't create directory '/tmp/d': {text}" in proc.stderr
    assert "rc=1" in proc.stdout and "touched" in proc.stdout       # other syscalls are allowed
    assert f"NoNewPrivs:\t{int(nnp)}" in proc.stdout and "Seccomp:\t2" in proc.stdout


def test_seccomp_argument_rule_only_blocks_matching_calls(ocirun):
    # personality(0xffffffff) queries; block only personality(PER_LINUX32=8) -> setarch fails
    config = base_config(["sh", "-c", "uname -m; setarch linux32 uname -m; echo rc=$?"])
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
                      "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}
    proc = ocirun.run_output(config)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == os.uname().machine
    assert "i686" not in proc.stdout and "rc=1" in proc.stdout


SYSCALL_PROBE_C = r"""
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
    static const long calls[][2] = {{435, 0}, {462, 0}, {140, 0}};  /* clone3, mseal, getpriority */
    for (int i = 0; i < 3; i++) {
        errno = 0;
        long r = syscall(calls[i][0], -1L, 0L, 0L);
        printf("%ld %d\n", calls[i][0], r < 0 ? errno : 0);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def syscall_probe(tmp_path_factory):
    """A static program that makes raw syscalls and prints "nr errno" for each (busybox cannot)."""
    if not shutil.which("gcc"):
        pytest.skip("needs gcc")
    d = tmp_path_factory.mktemp("probe")
    (d / "probe.c").write_text(SYSCALL_PROBE_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "probe"), str(d / "probe.c")], check=True)
    return str(d / "probe")


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_syscalls_newer_than_the_profile_get_enosys_not_the_default_action(ocirun, syscall_probe, nnp):
    # runc's patchbpf: a denying default would break a newer libc's fallbacks (clone3 -> clone);
    # syscalls above the largest the profile names get ENOSYS, even ones libseccomp does not know
    # (mseal, 462, is newer than this libseccomp 2.5.4), while an unnamed older one (getpriority)
    # still gets the default action.
    names = [syscall_queries.scmp_syscall_name(nr) for nr in range(0, 335)]       # up to rseq (334)
    allowed = [n for n in names if n and n != "getpriority"]
    config = base_config(["/probe"])
    config["process"]["noNewPrivileges"] = nnp
    config["mounts"].append({"destination": "/probe", "type": "bind", "source": syscall_probe,
                             "options": ["bind", "ro"]})
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO",
                                  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                                  "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
    out = run_ok(ocirun, config)
    assert out.split("\n")[:3] == [f"435 {errno.ENOSYS}", f"462 {errno.ENOSYS}", f"140 {errno.EPERM}"], out
    # exec loads the same filter in its own process
    config["process"]["args"] = ["sleep", "100"]
    ocirun("run", "-d", "-b", ocirun.bundle(config), "c3", check=True, input="")
    proc = ocirun("exec", "c3", "/probe")
    ocirun("delete", "-f", "c3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == [f"435 {errno.ENOSYS}", f"462 {errno.ENOSYS}", f"140 {errno.EPERM}"]
    # an allowing default needs no stub: the kernel's own answer (EINVAL for these arguments)
    config["process"]["args"] = ["/probe"]
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["getpriority"], "action": "SCMP_ACT_ERRNO"}]}
    out = run_ok(ocirun, config, cid="c2")
    assert out.split("\n")[:3] == [f"435 {errno.EINVAL}", f"462 {errno.EINVAL}", f"140 {errno.EPERM}"], out


def test_seccomp_errno_ret_with_a_non_errno_action_is_refused(ocirun):
    config = base_config(["true"])
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}
    proc = ocirun("create", "-b", ocirun.bundle(config), "c1")
    assert proc.returncode == 1 and "linux.seccomp.syscalls[0].errnoRet" in proc.stderr
    assert ocirun("list", "-q").stdout.split() == []


def _accept_state(listener_sock, out: dict) -> None:
    try:
        conn, _ = listener_sock.accept()
        with conn:
            conn.settimeout(30)
            data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
            while chunk := conn.recv(65536):
                data += chunk
        out["msg"], out["fds"] = json.loads(data), fds
    except BaseException as exc:     # noqa: BLE001 - reported by the test
        out["error"] = exc


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_listener_receives_notify_fd_with_process_state_and_answers(ocirun, agent_socket, nnp):
    sock, path = agent_socket
    config = base_config(["sh", "-c", "mkdir /tmp/agent && echo made; ls -d /tmp/agent; echo done"])
    config["process"]["noNewPrivileges"] = nnp
    config["annotations"] = {"org.example": "yes"}
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path, "listenerMetadata": "meta-1",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    got = {}
    agent = threading.Thread(target=_accept_state, args=(sock, got))
    agent.start()
    bundle = ocirun.bundle(config)
    ocirun("create", "-b", bundle, "c1", check=True)
    agent.join(30)
    assert "error" not in got, got.get("error")
    pid = ocirun.state("c1")["pid"]
    msg, fds = got["msg"], got["fds"]
    try:
        assert len(fds) == 1 and os.readlink(f"/proc/self/fd/{fds[0]}") == "anon_inode:seccomp notify"
        assert msg["ociVersion"] == "1.3.0" and msg["fds"] == ["seccompFd"] and msg["pid"] == pid
        assert msg["metadata"] == "meta-1"
        assert msg["state"]["id"] == "c1" and msg["state"]["pid"] == pid and msg["state"]["status"] == "creating"
        assert msg["state"]["bundle"] == bundle and msg["state"]["annotations"] == {"org.example": "yes"}
        # the runtime passed its copy on and kept none: the init holds no listener fd any more
        assert not [n for n in os.listdir(f"/proc/{pid}/fd")
                    if os.readlink(f"/proc/{pid}/fd/{n}") == "anon_inode:seccomp notify"]
        ocirun("start", "c1", check=True)
        ready, _, _ = select.select([fds[0]], [], [], 30)
        assert ready, "no notification arrived"
        req = bytearray(80)
        fcntl.ioctl(fds[0], SECCOMP_IOCTL_NOTIF_RECV, req, True)
        notif_id, npid, _flags, nr, _arch = struct.unpack_from("=QIIiI", req)
        assert nr in (syscalls.scmp_syscall_resolve_name("mkdir"), syscalls.scmp_syscall_resolve_name("mkdirat"))
        assert os.path.basename(os.readlink(f"/proc/{npid}/exe")) == "busybox"
        # answer: pretend success without doing anything
        fcntl.ioctl(fds[0], SECCOMP_IOCTL_NOTIF_SEND, bytearray(struct.pack("=QqiI", notif_id, 0, 0, 0)), True)
    finally:
        for fd in fds:
            os.close(fd)
    for _ in range(500):
        if ocirun.state("c1")["status"] == "stopped":
            break
        select.select([], [], [], 0.02)
    assert ocirun.state("c1")["status"] == "stopped"


class ContinuingAgent:
    """A seccomp agent that receives the listener fd and lets every notified syscall go on
    (SECCOMP_USER_NOTIF_FLAG_CONTINUE), counting the calls by syscall number."""

    def __init__(self, listener_sock):
        self.sock = listener_sock
        self.counts: dict[int, int] = {}
        self.fds: list[int] = []
        self.received = 0
        self.error = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                ready, _, _ = select.select([self.sock] + self.fds, [], [], 0.1)
                for item in ready:
                    if item is self.sock:
                        conn, _ = self.sock.accept()
                        with conn:
                            _, fds, _, _ = socket.recv_fds(conn, 65536, 4)
                        self.fds.extend(fds)
                        self.received += len(fds)
                        continue
                    req = bytearray(80)
                    try:
                        fcntl.ioctl(item, SECCOMP_IOCTL_NOTIF_RECV, req, True)
                    except OSError:     # the notifying process died (ENOENT), or no filter left
                        self.fds.remove(item)
                        os.close(item)
                        continue
                    notif_id, _pid, _flags, nr, _arch = struct.unpack_from("=QIIiI", req)
                    self.counts[nr] = self.counts.get(nr, 0) + 1
                    with contextlib.suppress(OSError):
                        fcntl.ioctl(item, SECCOMP_IOCTL_NOTIF_SEND,
                                    bytearray(struct.pack("=QqiI", notif_id, 0, 0, 1)), True)
        except BaseException as exc:    # noqa: BLE001 - reported by the test
            self.error = exc

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for fd in self.fds:
            os.close(fd)


@pytest.mark.parametrize("nnp", [False, True])
def test_seccomp_notify_on_syscalls_the_runtime_makes_after_the_load_does_not_hang(ocirun, agent_socket, nnp):
    # With noNewPrivileges false the filter is loaded before the runtime's own chdir, capset,
    # prctl...: the listener fd must reach the agent before those calls, for create and exec.
    sock, path = agent_socket
    config = base_config(["sh", "-c", "cd /tmp && pwd && sleep 100"])
    config["process"]["noNewPrivileges"] = nnp
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
        "syscalls": [{"names": ["chdir", "capset"], "action": "SCMP_ACT_NOTIFY"}]}
    chdir, capset = (syscalls.scmp_syscall_resolve_name(n) for n in ("chdir", "capset"))
    agent = ContinuingAgent(sock)
    try:
        ocirun("create", "-b", ocirun.bundle(config), "c1", check=True, timeout=20)
        if not nnp:     # the init's own chdir to process.cwd and capset came after the load
            assert agent.counts.get(chdir, 0) >= 1 and agent.counts.get(capset, 0) >= 1, agent.counts
        ocirun("start", "c1", check=True, timeout=20)
        proc = ocirun("exec", "c1", "sh", "-c", "cd /tmp && pwd", timeout=20)
        assert proc.returncode == 0 and proc.stdout == "/tmp\n", proc.stderr
        assert agent.received == 2      # one listener from create, one from exec
        assert agent.counts.get(chdir, 0) >= (2 if nnp else 4), agent.counts
        assert agent.error is None, agent.error
    finally:
        ocirun("delete", "-f", "c1")
        agent.close()


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_enosys_stub_with_a_notify_rule_hands_its_listener_over(ocirun, syscall_probe, agent_socket, nnp):
    # the stub makes the runtime load the filter with seccomp(2) itself: NEW_LISTENER for notify
    sock, path = agent_socket
    names = [syscall_queries.scmp_syscall_name(nr) for nr in range(0, 335)]
    allowed = [n for n in names if n and n not in ("getpriority", "getppid")]
    config = base_config(["/probe"])
    config["process"]["noNewPrivileges"] = nnp
    config["mounts"].append({"destination": "/probe", "type": "bind", "source": syscall_probe,
                             "options": ["bind", "ro"]})
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": path,
                                  "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"},
                                               {"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}
    agent = ContinuingAgent(sock)
    try:
        proc = ocirun.run_output(config, timeout=20)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split("\n")[:3] == [f"435 {errno.ENOSYS}", f"462 {errno.ENOSYS}", f"140 {errno.EPERM}"]
        assert agent.received == 1 and agent.error is None
    finally:
        agent.close()


def test_seccomp_listener_that_does_not_exist_fails_create_cleanly(ocirun, tmp_path):
    config = base_config(["true"])
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "nobody"),
                                  "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    proc = ocirun("create", "-b", ocirun.bundle(config), "c1")
    assert proc.returncode == 1 and "nobody" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert ocirun("list", "-q").stdout.split() == []


# --- rlimits, personality, scheduler, I/O priority, affinity ---------------------------------------

def test_rlimits_are_set_as_configured(ocirun):
    config = base_config(["cat", "/proc/self/limits"])
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 333, "hard": 444},
                                    {"type": "RLIMIT_CORE", "soft": 0, "hard": 2 ** 64 - 1},
                                    {"type": "RLIMIT_NPROC", "soft": 77, "hard": 88},
                                    {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192}]
    limits = {}
    for line in run_ok(ocirun, config).splitlines()[1:]:
        parts = line[26:].split()
        limits[line[:26].strip()] = parts[:2]
    assert limits["Max open files"] == ["333", "444"]
    assert limits["Max core file size"] == ["0", "unlimited"]
    assert limits["Max processes"] == ["77", "88"]
    assert limits["Max msgqueue size"] == ["4096", "8192"]


def test_personality_linux32_makes_uname_report_i686(ocirun):
    if os.uname().machine != "x86_64":
        pytest.skip("LINUX32 on x86_64 reports i686")
    config = base_config(["sh", "-c", "uname -m; cat /proc/self/personality"])
    config["linux"]["personality"] = {"domain": "LINUX32"}
    assert run_ok(ocirun, config).split() == ["i686", "00000008"]


def test_unknown_personality_domain_is_refused(ocirun):
    config = base_config(["true"])
    config["linux"]["personality"] = {"domain": "LINUX128"}
    proc = ocirun("create", "-b", ocirun.bundle(config), "c1")
    assert proc.returncode == 1 and "linux.personality.domain" in proc.stderr


def _stat_fields(text: str) -> list[str]:
    return text[text.rindex(")") + 2:].split()     # field 3 (state) is index 0


@pytest.mark.parametrize("sched, policy, nice", [({"policy": "SCHED_BATCH", "nice": 7}, 3, 7),
                                                 ({"policy": "SCHED_IDLE"}, 5, 0),
                                                 ({"policy": "SCHED_OTHER", "nice": -5}, 0, -5)])
def test_scheduler_policy_and_nice_as_configured(ocirun, sched, policy, nice):
    config = base_config(["cat", "/proc/self/stat"])
    config["process"]["scheduler"] = sched
    fields = _stat_fields(run_ok(ocirun, config))
    assert int(fields[19 - 3]) == nice          # nice: field 19
    assert int(fields[41 - 3]) == policy        # policy: field 41


def test_io_priority_as_configured(ocirun):
    config = base_config(["sleep", "100"])
    config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    ocirun("run", "-d", "-b", ocirun.bundle(config), "c1", check=True)
    pid = ocirun.state("c1")["pid"]
    assert syscall_queries.ioprio_get(syscalls.IOPRIO_WHO_PROCESS, pid) == 3 << 13


def _cpus_allowed(text: str) -> str:
    return status_of(text)["Cpus_allowed_list"].strip()


def test_exec_cpu_affinity_does_not_apply_to_the_init(ocirun):
    # config.md: "This setting is not applicable to the container's init process."
    host = _cpus_allowed(open("/proc/self/status").read())
    config = base_config(["cat", "/proc/self/status"])
    config["process"]["execCPUAffinity"] = {"initial": "0", "final": "0"}
    assert _cpus_allowed(run_ok(ocirun, config)) == host


def test_exec_cpu_affinity_final_applies_to_exec(ocirun, tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    last = max(os.sched_getaffinity(0))
    ocirun("run", "-d", "-b", ocirun.bundle(base_config(["sleep", "100"])), "c1", check=True)
    process = dict(base_config(["cat", "/proc/self/status"])["process"],
                   execCPUAffinity={"initial": "0", "final": str(last)})
    pfile = tmp_path / "process.json"
    pfile.write_text(json.dumps(process))
    proc = ocirun("exec", "--process", str(pfile), "c1")
    assert proc.returncode == 0, proc.stderr
    assert _cpus_allowed(proc.stdout) == str(last)


def test_invalid_exec_cpu_affinity_is_refused(ocirun):
    config = base_config(["true"])
    config["process"]["execCPUAffinity"] = {"final": "3-1"}
    proc = ocirun("create", "-b", ocirun.bundle(config), "c1")
    assert proc.returncode == 1 and "process.execCPUAffinity.final" in proc.stderr


# --- LSM labels --------------------------------------------------------------------------------------

@pytest.mark.parametrize("where, key, value, message", [
    ("process", "apparmorProfile", "ocirun-test", "process.apparmorProfile: AppArmor is not enabled on this host"),
    ("process", "selinuxLabel", "system_u:system_r:container_t:s0",
     "process.selinuxLabel: SELinux is not enabled on this host"),
    ("linux", "mountLabel", "system_u:object_r:container_file_t:s0",
     "linux.mountLabel: SELinux is not enabled on this host"),
])
def test_lsm_label_on_a_host_without_that_lsm_is_a_create_error(ocirun, where, key, value, message):
    if (key == "apparmorProfile" and lsm.apparmor_enabled()) or (key != "apparmorProfile" and lsm.selinux_enabled()):
        pytest.skip("the host has this LSM")
    config = base_config(["true"])
    config[where][key] = value
    proc = ocirun("create", "-b", ocirun.bundle(config), "c1")
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr
    # refused before anything was set up: no state directory, no cgroup left
    assert not os.path.exists(os.path.join(ocirun.root, "c1"))


def test_empty_lsm_labels_mean_not_set(ocirun):
    config = base_config(["true"])
    config["process"].update(apparmorProfile="", selinuxLabel="")
    config["linux"]["mountLabel"] = ""
    assert ocirun.run_output(config).returncode == 0


def _in_child(fn):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            try:
                out = {"ok": fn()}
            except BaseException as exc:     # noqa: BLE001
                out = {"error": f"{type(exc).__name__}: {exc}", "errno": getattr(exc, "errno", None)}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    return json.loads(data)


def test_lsm_label_is_written_through_a_checked_procfs(monkeypatch):
    """The write path (the host has no LSM: the kernel answers EINVAL, proving the file reached is
    the real /proc/thread-self/attr/exec), and a /proc that is not procfs is refused."""
    monkeypatch.setattr(lsm, "selinux_enabled", lambda: True)
    config = {"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}

    def write_label():
        lsm.prepare_lsm(config)
        assert syscalls.fstatfs_type(lsm._proc_fd) == procfs.PROC_SUPER_MAGIC
        lsm.apply_exec_labels(config)

    out = _in_child(write_label)
    if lsm.selinux_enabled.__module__ == "ocirun.linux.lsm":      # a real SELinux host would accept it
        pass
    assert out.get("errno") == errno.EINVAL and "/proc/thread-self/attr/exec" in out["error"], out

    def fake_proc():
        syscalls.unshare(syscalls.CLONE_NEWNS)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        syscalls.mount("tmpfs", "/proc", "tmpfs", 0)
        lsm.prepare_lsm(config)

    out = _in_child(fake_proc)
    assert "not a procfs" in out.get("error", ""), out


# A profile that denies close_range (runtime-tools' default one does not list it) must not stop the
# runtime's own last steps: fds are marked close-on-exec before the filter is loaded.
CLOSE_RANGE_DENIED = {
    "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
    "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}]}


@pytest.mark.parametrize("nnp", [True, False])
def test_a_profile_denying_close_range_still_starts_the_container(ocirun, nnp):
    config = base_config(["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"])
    config["process"]["noNewPrivileges"] = nnp
    config["linux"]["seccomp"] = CLOSE_RANGE_DENIED
    proc = ocirun.run_output(config)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "1", "2", "3"]   # stdio and ls's own directory fd only


@pytest.mark.parametrize("nnp", [True, False])
def test_a_profile_denying_close_range_still_lets_exec_run(ocirun, nnp):
    config = base_config(["sleep", "100"])
    config["process"]["noNewPrivileges"] = nnp
    config["linux"]["seccomp"] = CLOSE_RANGE_DENIED
    bundle = ocirun.bundle(config)
    ocirun("run", "-d", "-b", bundle, "c1", check=True)
    proc = ocirun("exec", "c1", "sh", "-c", "ls /proc/self/fd | tr '\\n' ' '")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "1", "2", "3"]
