"""Root tests of the privilege steps against the real kernel.

Each test forks a child (os.fork) that applies the settings to itself and reports what the kernel
says (/proc/self/status, getrlimit, sched_getattr, ...) back through a pipe as JSON. The child
always ends with os._exit; the parent kills and reaps it in a finally block.
"""
import errno
import fcntl
import json
import os
import resource
import select
import shutil
import signal
import socket
import struct
import tempfile

import pytest

from ocirun import processplan, security
from ocirun.errors import SyscallError
from ocirun.linux import capabilities, syscalls
from ocirun.linux.seccomp import compile_filter, find_notify_fd, send_notify_fd
from tests import syscall_queries

pytestmark = pytest.mark.root

CHILD_TIMEOUT = 20


def settings_of(config: dict) -> dict:
    """The process settings as the init gets them: checked by the runtime, through the JSON wire."""
    return json.loads(json.dumps(processplan.build(config)[0]))


def run_child(fn, *, setup=None) -> tuple[dict, int]:
    """Run fn() in a forked child; return (its JSON-able result or {"error": ...}, wait status)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:        # child: never return into pytest
        try:
            os.close(r)
            os.setsid()     # own process group/session: nothing here may touch pytest's
            try:
                reply = {"ok": fn()}
            except BaseException as exc:     # noqa: BLE001 - reported to the parent
                reply = {"error": f"{type(exc).__name__}: {exc}",
                         "errno": getattr(exc, "errno", None)}
            os.write(w, json.dumps(reply).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        if setup is not None:
            setup(pid)
        data = b""
        while True:
            ready, _, _ = select.select([r], [], [], CHILD_TIMEOUT)
            if not ready:
                raise AssertionError("child did not answer in time")
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
        _, status = os.waitpid(pid, 0)
        pid = 0
        return (json.loads(data) if data else {}), status
    finally:
        os.close(r)
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def ok(reply: dict):
    assert "error" not in reply, reply["error"]
    return reply["ok"]


def proc_status() -> dict:
    with open("/proc/self/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def mask(*names) -> int:
    return sum(1 << capabilities.CAP_NUMBERS[n] for n in names)


def status_report() -> dict:
    st = proc_status()
    return {
        **{k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
        "NoNewPrivs": int(st["NoNewPrivs"]), "Seccomp": int(st["Seccomp"]),
        "Uid": st["Uid"].split(), "Gid": st["Gid"].split(), "Groups": st["Groups"].split(),
        "SigIgn": int(st["SigIgn"], 16), "SigBlk": int(st["SigBlk"], 16),
    }


def errno_of(fn) -> int:
    try:
        fn()
    except OSError as exc:
        return exc.errno
    return 0


GETCWD_ENOSYS = {"defaultAction": "SCMP_ACT_ALLOW",
                 "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}]}


def full_config(**process_overrides) -> dict:
    process = {
        "cwd": "/",
        "user": {"uid": 1000, "gid": 1001, "additionalGids": [2000, 2001], "umask": 0o027},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048},
                    {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}],
        "oomScoreAdj": 457,
        "noNewPrivileges": True,
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 6},
        "scheduler": {"policy": "SCHED_BATCH", "nice": 7},
        "capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_CHOWN", "CAP_KILL"],
            "ambient": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"],    # CAP_CHOWN: not inheritable, skipped
        },
    }
    process.update(process_overrides)
    return {"process": process,
            "linux": {"personality": {"domain": "LINUX32"},
                      "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"},
                      "seccomp": GETCWD_ENOSYS}}


def test_full_settings_as_non_root_user_with_no_new_privs():
    config = full_config()

    def child():
        filt = security.prepare_process_settings(config, processplan.validate_and_compile(config)[1].to_wire())
        outcome = security.apply_process_settings(config, settings_of(config), seccomp_filter=filt)
        before = status_report()["Seccomp"]
        security.load_seccomp_late(filt)
        with open("/proc/self/oom_score_adj") as f:
            oom = int(f.read())
        return {
            "pending": outcome.seccomp_pending, "notify_fd": outcome.notify_fd, "seccomp_before_late": before,
            "truthy": bool(outcome),
            "status": status_report(), "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
            "core": resource.getrlimit(resource.RLIMIT_CORE), "oom": oom,
            "persona": syscalls.personality(0xFFFFFFFF) & 0xFF, "machine": os.uname().machine,
            "ioprio": syscall_queries.ioprio_get(syscalls.IOPRIO_WHO_PROCESS, 0),
            "sched": syscall_queries.sched_getattr(0),
            "mempolicy": [syscall_queries.get_mempolicy()[0], sorted(syscall_queries.get_mempolicy()[1])],
            "umask": os.umask(0), "cwd_errno": errno_of(os.getcwd),
        }

    reply, status = run_child(child)
    r = ok(reply)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert r["pending"] is True and r["notify_fd"] is None and r["seccomp_before_late"] == 0
    assert r["truthy"] is True
    st = r["status"]
    assert st["CapBnd"] == mask("CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert st["CapPrm"] == mask("CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert st["CapInh"] == mask("CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert st["CapEff"] == mask("CAP_CHOWN", "CAP_KILL")
    assert st["CapAmb"] == mask("CAP_NET_BIND_SERVICE")
    assert st["NoNewPrivs"] == 1 and st["Seccomp"] == 2
    assert st["Uid"] == ["1000"] * 4 and st["Gid"] == ["1001"] * 4
    assert st["Groups"] == ["2000", "2001"]
    assert r["nofile"] == [512, 2048]
    assert r["core"] == [resource.RLIM_INFINITY, resource.RLIM_INFINITY]
    assert r["oom"] == 457
    assert r["persona"] == 0x0008 and r["machine"] in ("i686", "armv8l")
    assert r["ioprio"] == 2 << 13 | 6
    assert r["sched"]["policy"] == 3 and r["sched"]["nice"] == 7
    assert r["mempolicy"] == [2, [0]]
    assert r["umask"] == 0o027
    assert r["cwd_errno"] == errno.ENOSYS


def test_seccomp_loaded_while_privileged_when_no_new_privs_is_false():
    config = {"process": {"cwd": "/", "user": {"uid": 1000, "gid": 1000}, "noNewPrivileges": False,
                          "capabilities": {}},
              "linux": {"seccomp": GETCWD_ENOSYS}}

    def child():
        outcome = security.apply_process_settings(config, settings_of(config), seccomp_filter=compile_filter(GETCWD_ENOSYS))
        report = {"pending": outcome.seccomp_pending, "truthy": bool(outcome), "status": status_report(),
                  "cwd_errno": errno_of(os.getcwd)}
        # why it had to be early: without CAP_SYS_ADMIN and no_new_privs the kernel refuses a filter
        try:
            compile_filter(GETCWD_ENOSYS).load()
            report["late_load"] = "loaded"
        except SyscallError as exc:
            report["late_load"] = str(exc)
        return report

    r = ok(run_child(child)[0])
    assert r["pending"] is False and r["truthy"] is False
    st = r["status"]
    assert st["Seccomp"] == 2 and st["NoNewPrivs"] == 0
    assert st["CapBnd"] == st["CapPrm"] == st["CapEff"] == st["CapInh"] == st["CapAmb"] == 0
    assert st["Uid"] == ["1000"] * 4 and st["Groups"] == []
    assert r["cwd_errno"] == errno.ENOSYS
    assert r["late_load"].startswith("seccomp flags=") and r["late_load"].endswith(": Permission denied")


def test_root_user_gets_exactly_the_configured_sets():
    caps = {"bounding": ["CAP_SYS_ADMIN", "CAP_SETPCAP", "CAP_CHECKPOINT_RESTORE"],
            "permitted": ["CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"], "effective": ["CAP_SYS_ADMIN"],
            "inheritable": ["CAP_CHECKPOINT_RESTORE"], "ambient": ["CAP_CHECKPOINT_RESTORE"]}
    config = {"process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "capabilities": caps}}

    def child():
        security.apply_process_settings(config, settings_of(config), seccomp_filter=None)
        return status_report()

    st = ok(run_child(child)[0])
    assert st["CapBnd"] == mask("CAP_SYS_ADMIN", "CAP_SETPCAP", "CAP_CHECKPOINT_RESTORE")
    assert st["CapPrm"] == mask("CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE")
    assert st["CapEff"] == mask("CAP_SYS_ADMIN")
    assert st["CapInh"] == st["CapAmb"] == mask("CAP_CHECKPOINT_RESTORE")
    assert st["Uid"] == ["0"] * 4 and st["Groups"] == [] and st["NoNewPrivs"] == 0 and st["Seccomp"] == 0


def test_failing_step_reports_the_field():
    config = {"process": {"cwd": "/nonexistent-ocirun-cwd", "user": {"uid": 0, "gid": 0}}}
    reply, _ = run_child(lambda: security.apply_process_settings(config, settings_of(config), seccomp_filter=None) and None)
    assert reply["error"] == ('SyscallError: chdir to cwd ("/nonexistent-ocirun-cwd") set in config.json '
                              'failed: No such file or directory')


@pytest.fixture
def world_dir():
    """A directory every user can traverse (pytest's tmp_path lives under a 0700 root directory)."""
    path = tempfile.mkdtemp(prefix="ocirun-sec-")
    try:
        os.chmod(path, 0o755)
        yield path
    finally:
        shutil.rmtree(path)


def test_cwd_only_the_user_can_enter(world_dir):
    # root without CAP_DAC_OVERRIDE cannot enter a 0700 dir of uid 1000: the chdir is retried as the user
    private = os.path.join(world_dir, "private")
    os.mkdir(private, 0o700)
    os.chown(private, 1000, 1000)
    config = {"process": {"cwd": private, "user": {"uid": 1000, "gid": 1000}, "capabilities": {}}}

    def child():
        # drop the DAC overrides first so that the first (root) chdir attempt gets EACCES
        kept = ["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"]
        security.set_capabilities(capabilities.plan_capabilities({"effective": kept, "permitted": kept}))
        first = errno_of(lambda: os.chdir(private))
        security.apply_process_settings(config, settings_of(config), seccomp_filter=None)
        return [first, os.getcwd()]

    assert ok(run_child(child)[0]) == [errno.EACCES, private]


def test_seccomp_kill_process_and_argument_rules():
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
               "syscalls": [
                   {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV,
                    "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
                   {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV,
                    "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
                   {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    filt = compile_filter(profile)
    base = f"/tmp/ocirun-seccomp-test-{os.getpid()}"

    def child():
        filt.load()
        result = {"blocked": errno_of(lambda: os.mkdir(base + "-a", 0o700)),
                  "allowed": errno_of(lambda: os.mkdir(base + "-b", 0o755))}
        return result

    try:
        r = ok(run_child(child)[0])
        assert r == {"blocked": errno.EXDEV, "allowed": 0}
        assert not os.path.exists(base + "-a") and os.path.isdir(base + "-b")

        def killed():
            filt.load()
            os.getppid()
            return "survived"

        reply, status = run_child(killed)
        assert reply == {} and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS
    finally:
        filt.close()
        for suffix in ("-a", "-b"):
            if os.path.isdir(base + suffix):
                os.rmdir(base + suffix)


def test_exec_cpu_affinity():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    config = {"process": {"execCPUAffinity": {"initial": str(cpus[0]), "final": f"{cpus[0]}-{cpus[1]}"}}}

    def child():
        security.apply_initial_cpu_affinity(settings_of(config))
        initial = sorted(os.sched_getaffinity(0))
        security.apply_final_cpu_affinity(settings_of(config))
        return [initial, sorted(os.sched_getaffinity(0))]

    initial, final = ok(run_child(child)[0])
    assert initial == [cpus[0]]
    assert final == list(range(cpus[0], cpus[1] + 1))


def test_reset_signals():
    def child():
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2, signal.SIGTERM])
        before = status_report()
        security.reset_signals()
        after = status_report()
        return [before["SigIgn"], before["SigBlk"], after["SigIgn"], after["SigBlk"]]

    ign_before, blk_before, ign_after, blk_after = ok(run_child(child)[0])
    assert ign_before & (1 << (signal.SIGPIPE - 1)) and ign_before & (1 << (signal.SIGUSR1 - 1))
    assert blk_before & (1 << (signal.SIGTERM - 1))
    assert ign_after == 0 and blk_after == 0


# --- seccomp notify: the agent gets the fd + state and answers the notification -------------------

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100     # _IOWR('!', 0, struct seccomp_notif)      (80 bytes)
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101     # _IOWR('!', 1, struct seccomp_notif_resp) (24 bytes)


def test_notify_listener_receives_fd_and_answers(agent_socket):
    listener, path = agent_socket
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path, "listenerMetadata": "agent-meta",
               "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}
    filt = compile_filter(profile)
    assert not filt.notify_blocks_sender
    seen = {}

    def child():
        fd = filt.load()
        state = {"ociVersion": "1.3.0", "id": "c1", "status": "creating", "pid": os.getpid(), "bundle": "/b",
                 "annotations": {"k": "v"}}
        send_notify_fd(filt.listener_path, fd, state, filt.listener_metadata)
        os.close(fd)
        return os.getppid()     # blocks until the agent answers

    def agent(child_pid):
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(CHILD_TIMEOUT)
            data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
            while chunk := conn.recv(65536):
                data += chunk
        seen["msg"] = json.loads(data)
        assert len(fds) == 1
        notify_fd = fds[0]
        try:
            assert os.readlink(f"/proc/self/fd/{notify_fd}") == "anon_inode:seccomp notify"
            ready, _, _ = select.select([notify_fd], [], [], CHILD_TIMEOUT)
            assert ready, "no notification arrived"
            req = bytearray(80)
            fcntl.ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, req, True)
            notif_id, pid, _flags, nr, _arch = struct.unpack_from("=QIIiI", req)
            seen["pid"], seen["nr"] = pid, nr
            resp = bytearray(struct.pack("=QqiI", notif_id, 4242, 0, 0))
            fcntl.ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, resp, True)
        finally:
            os.close(notify_fd)
        seen["child"] = child_pid

    try:
        reply, _ = run_child(child, setup=agent)
    finally:
        filt.close()
    assert ok(reply) == 4242
    msg = seen["msg"]
    assert msg["ociVersion"] == "1.3.0" and msg["fds"] == ["seccompFd"] and msg["metadata"] == "agent-meta"
    assert msg["pid"] == seen["child"] and msg["state"]["id"] == "c1" and msg["state"]["pid"] == seen["child"]
    assert seen["pid"] == seen["child"]
    assert seen["nr"] == syscalls.scmp_syscall_resolve_name("getppid")


def test_notify_with_no_new_privs_is_loaded_by_apply(agent_socket):
    _, path = agent_socket
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
               "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}
    config = {"process": {"cwd": "/", "user": {"uid": 1000, "gid": 1000}, "noNewPrivileges": True},
              "linux": {"seccomp": profile}}

    def child():
        outcome = security.apply_process_settings(config, settings_of(config), seccomp_filter=compile_filter(profile))
        fd = outcome.notify_fd
        return {"pending": outcome.seccomp_pending, "fd_kind": os.readlink(f"/proc/self/fd/{fd}"),
                "found": find_notify_fd(os.getpid()) == fd, "seccomp": status_report()["Seccomp"]}

    r = ok(run_child(child)[0])
    assert r == {"pending": False, "fd_kind": "anon_inode:seccomp notify", "found": True, "seccomp": 2}

