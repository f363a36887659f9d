"""`ocirun exec` (runc-exec(8)): the new process joins every namespace and the cgroup of the
container, gets the container's process settings changed by the flags, and exits as runc does.

Checked from inside with busybox (id, pwd, env, /proc/self/status) and from the host (/proc/<pid>).
"""
import json
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import OCIRUN, base_config

pytestmark = pytest.mark.root

NS = ("cgroup", "ipc", "mnt", "net", "pid", "uts", "user")


def cid(name: str) -> str:
    return f"{name}-{os.getpid()}"


@pytest.fixture
def box(ocirun):
    """A running container (sleep) and a helper to exec in it."""
    return Box(ocirun, base_config(["sleep", "1000"]))


class Box:
    def __init__(self, ocirun, config, name="ex"):
        self.ocirun = ocirun
        self.cid = cid(name)
        ocirun("run", "-d", "-b", ocirun.bundle(config), self.cid, check=True, input="")
        self.pid = ocirun.state(self.cid)["pid"]

    def exec(self, *args, **kw):
        return self.ocirun("exec", *args[:-1], self.cid, *args[-1], **kw) if args and isinstance(args[-1], list) \
            else self.ocirun("exec", self.cid, *args, **kw)

    def out(self, *args):
        proc = self.exec(*args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def flags(self, flags: list, cmd: list, **kw):
        return self.ocirun("exec", *flags, self.cid, *cmd, **kw)


def status_field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in {text!r}")


def wait_pid_file(path, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and open(path).read().strip():
            return int(open(path).read())
        time.sleep(0.01)
    raise AssertionError(f"no pid file {path}")


# --- namespaces, cgroup, parentage ---------------------------------------------------------------

def test_exec_joins_every_namespace_of_the_container_init(box):
    script = "; ".join(f"readlink /proc/self/ns/{n}" for n in NS)
    inside = box.out("sh", "-c", script).split()
    host = [os.readlink(f"/proc/{box.pid}/ns/{n}") for n in NS]
    assert inside == host
    # and they are the container's, not the host's
    assert os.readlink(f"/proc/{box.pid}/ns/pid") != os.readlink("/proc/self/ns/pid")


def test_exec_process_sees_the_container_s_pid_namespace_and_rootfs(box):
    out = box.out("sh", "-c", "echo $$; cat /proc/1/cmdline; echo; hostname")
    pid, cmdline, hostname = out.split("\n")[:3]
    assert int(pid) < 100              # a pid of the container's pid namespace
    assert cmdline.startswith("sleep")  # pid 1 there is the container's process
    assert hostname == "ocirun-test"


def test_exec_process_is_in_the_container_s_cgroup_in_every_hierarchy(box, tmp_path):
    pidfile = str(tmp_path / "exec.pid")
    box.flags(["-d", "--pid-file", pidfile], ["sleep", "100"], check=True)
    pid = wait_pid_file(pidfile)
    assert open(f"/proc/{pid}/cgroup").read() == open(f"/proc/{box.pid}/cgroup").read()
    for n in NS:
        assert os.readlink(f"/proc/{pid}/ns/{n}") == os.readlink(f"/proc/{box.pid}/ns/{n}"), n


def test_exec_process_is_not_a_child_of_the_container_init_and_ours_in_the_foreground(box, tmp_path):
    pidfile = str(tmp_path / "fg.pid")
    proc = subprocess.Popen(OCIRUN + ["--root", box.ocirun.root, "exec", "--pid-file", pidfile, box.cid,
                                      "sleep", "2"], stdin=subprocess.DEVNULL)
    try:
        pid = wait_pid_file(pidfile)
        ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        assert ppid == proc.pid and ppid != box.pid
    finally:
        assert proc.wait(timeout=30) == 0


def test_exec_process_is_a_session_leader_with_signals_reset(box):
    out = box.out("sh", "-c", "cat /proc/$$/stat")
    fields = out.split("\n")[0].rsplit(")", 1)[1].split()
    pid, sid = out.split()[0], fields[3]
    assert sid == pid
    out = box.out("cat", "/proc/self/status")     # the exec'd program itself (sh ignores SIGQUIT)
    assert status_field(out, "SigIgn") == "0000000000000000"
    assert status_field(out, "SigBlk") == "0000000000000000"


def test_no_runtime_fd_reaches_the_exec_process(box, tmp_path):
    pidfile = str(tmp_path / "p")
    box.flags(["-d", "--pid-file", pidfile], ["sleep", "100"], check=True)
    pid = wait_pid_file(pidfile)
    assert sorted(os.listdir(f"/proc/{pid}/fd")) == ["0", "1", "2"]


# --- the container's process settings are the defaults --------------------------------------------

def test_exec_inherits_user_cwd_env_caps_rlimits_and_no_new_privs(ocirun):
    config = base_config(["sleep", "1000"])
    config["process"].update(user={"uid": 1000, "gid": 1000, "additionalGids": [20]}, cwd="/tmp",
                             env=config["process"]["env"] + ["FROM_CONFIG=yes"], noNewPrivileges=True,
                             rlimits=[{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}])
    box = Box(ocirun, config)
    out = box.out("sh", "-c", "id -u; id -g; id -G; pwd; echo $FROM_CONFIG; ulimit -n; ulimit -Hn; "
                              "cat /proc/self/status")
    lines = out.split("\n")
    assert lines[:7] == ["1000", "1000", "1000 20", "/tmp", "yes", "256", "512"]
    assert status_field(out, "NoNewPrivs") == "1"
    # bounding set of the config: AUDIT_WRITE(29), KILL(5), NET_BIND_SERVICE(10)
    assert int(status_field(out, "CapBnd"), 16) == (1 << 29) | (1 << 5) | (1 << 10)


def test_exec_gets_the_container_s_capabilities_and_seccomp(ocirun):
    config = base_config(["sleep", "1000"])
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    box = Box(ocirun, config)
    out = box.out("sh", "-c", "cat /proc/self/status; mkdir /tmp/x 2>&1; echo rc=$?")
    assert status_field(out, "Seccomp") == "2"
    assert "rc=1" in out and "Operation not permitted" in out
    assert int(status_field(out, "CapEff"), 16) == (1 << 29) | (1 << 5) | (1 << 10)


# --- flags ----------------------------------------------------------------------------------------

def test_user_and_additional_gids_flags(box):
    assert box.flags(["--user", "1000:1001", "-g", "10", "--additional-gids", "11"],
                     ["sh", "-c", "id -u; id -g; id -G"]).stdout.split() == ["1000", "1001", "1001", "10", "11"]
    # uid alone keeps the container's gid
    assert box.flags(["-u", "1234"], ["sh", "-c", "id -u; id -g"]).stdout.split() == ["1234", "0"]


def test_exec_gives_its_stdio_to_the_user(box):
    # as the init (runc's fixStdioPermissions): the user may reopen its stdout pipe as /dev/stdout
    proc = subprocess.run(OCIRUN + ["--root", box.ocirun.root, "exec", "--user", "1000:1000", box.cid,
                                    "sh", "-c", "stat -L -c %u /proc/self/fd/1; echo reopened > /dev/stdout"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1000", "reopened"]


def test_user_flag_must_be_numeric(box):
    proc = box.flags(["-u", "nobody"], ["id"])
    assert proc.returncode == 255 and "nobody" in proc.stderr


def test_cwd_flag(box):
    assert box.flags(["--cwd", "/tmp"], ["pwd"]).stdout == "/tmp\n"
    proc = box.flags(["--cwd", "relative"], ["pwd"])
    assert proc.returncode == 255 and "absolute" in proc.stderr
    proc = box.flags(["--cwd", "/nonexistent"], ["pwd"])
    assert proc.returncode == 255 and "/nonexistent" in proc.stderr


def test_env_flag_appends_and_overrides(box):
    out = box.flags(["-e", "FOO=bar", "--env", "TERM=dumb", "-e", "EMPTY="], ["env"]).stdout.split("\n")
    assert "FOO=bar" in out and "TERM=dumb" in out and "TERM=xterm" not in out and "EMPTY=" in out
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in out
    proc = box.flags(["-e", "NOEQUALS"], ["env"])
    assert proc.returncode == 255 and "NOEQUALS" in proc.stderr


def test_cap_flag_adds_to_bounding_effective_and_permitted(box):
    out = box.flags(["--cap", "CAP_SYS_ADMIN", "-c", "CAP_CHOWN"], ["cat", "/proc/self/status"]).stdout
    want = (1 << 29) | (1 << 5) | (1 << 10) | (1 << 21) | (1 << 0)
    for field in ("CapBnd", "CapEff", "CapPrm"):
        assert int(status_field(out, field), 16) == want, field
    assert int(status_field(out, "CapInh"), 16) == 0
    # an unknown name is a warning and skipped (config.md: MUST warn, SHOULD NOT fail), as for create
    proc = box.flags(["--cap", "CAP_NOPE"], ["cat", "/proc/self/status"])
    assert proc.returncode == 0 and "level=warning" in proc.stderr and "CAP_NOPE" in proc.stderr
    assert int(status_field(proc.stdout, "CapBnd"), 16) == (1 << 29) | (1 << 5) | (1 << 10)


def test_no_new_privs_flag(ocirun):
    config = base_config(["sleep", "1000"])
    config["process"]["noNewPrivileges"] = False
    box = Box(ocirun, config)
    assert status_field(box.out("cat", "/proc/self/status"), "NoNewPrivs") == "0"
    assert status_field(box.flags(["--no-new-privs"], ["cat", "/proc/self/status"]).stdout, "NoNewPrivs") == "1"


def test_apparmor_and_process_label_are_refused_when_the_host_lacks_the_lsm(box):
    if os.path.isdir("/sys/kernel/security/apparmor"):
        pytest.skip("AppArmor is enabled here")
    proc = box.flags(["--apparmor", "some-profile"], ["true"])
    assert proc.returncode == 255 and "apparmorProfile" in proc.stderr
    proc = box.flags(["--process-label", "system_u:system_r:container_t:s0"], ["true"])
    assert proc.returncode == 255 and "selinuxLabel" in proc.stderr


def test_flags_after_the_container_id_belong_to_the_command(box):
    assert box.out("sh", "-c", 'echo "$@"', "x", "--tty", "-e", "A=B") == "--tty -e A=B\n"
    assert "bin" in box.out("ls", "-a", "/").split()


def test_cgroup_flag_is_refused_not_ignored(box):
    proc = box.flags(["--cgroup", "sub"], ["true"])
    assert proc.returncode == 255 and "--cgroup" in proc.stderr


# --- exit status and errors -----------------------------------------------------------------------

def test_exit_status_of_the_process_is_the_exit_status_of_exec(box):
    assert box.exec("sh", "-c", "exit 7").returncode == 7
    assert box.exec("true").returncode == 0
    assert box.exec("sh", "-c", "kill -9 $$").returncode == 128 + 9


def test_stdio_passes_through_in_the_foreground(box):
    proc = box.exec("sh", "-c", "read line; echo got:$line; echo err >&2", input="hello\n")
    assert proc.stdout == "got:hello\n" and proc.stderr == "err\n"


@pytest.mark.parametrize("name,words", [("nosuch", "no such file or directory"),
                                        ("/bin/nosuch", "no such file or directory"),
                                        ("/etc/passwd", "permission denied"),
                                        ("/etc", "permission denied")])
def test_a_missing_or_unrunnable_binary_fails_with_255_and_the_words_managers_match(box, name, words):
    proc = box.exec(name)
    assert proc.returncode == 255
    assert words in proc.stderr and name in proc.stderr


def test_exec_in_a_stopped_container_fails(ocirun):
    c = cid("stopped")
    ocirun("run", "-d", "-b", ocirun.bundle(base_config(["true"])), c, check=True)
    deadline = time.monotonic() + 10
    while ocirun.state(c)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    proc = ocirun("exec", c, "true")
    assert proc.returncode == 255 and "cannot exec in a stopped container" in proc.stderr


def test_exec_in_a_missing_container_fails(ocirun):
    proc = ocirun("exec", "nosuchcontainer", "true")
    assert proc.returncode == 255 and "does not exist" in proc.stderr


def test_exec_in_a_created_container_works_as_runc(ocirun):
    c = cid("created")
    ocirun("create", "-b", ocirun.bundle(base_config(["sleep", "100"])), c, check=True)
    proc = ocirun("exec", c, "sh", "-c", "cat /proc/1/cmdline")
    assert proc.returncode == 0, proc.stderr
    assert "sleep" not in proc.stdout       # pid 1 still waits for start
    assert ocirun.state(c)["status"] == "created"


def test_exec_in_a_paused_container_needs_ignore_paused(box):
    box.ocirun("pause", box.cid, check=True)
    try:
        proc = box.exec("true")
        assert proc.returncode == 255 and "paused" in proc.stderr and "--ignore-paused" in proc.stderr
        # with --ignore-paused the process starts once the container is resumed
        p = subprocess.Popen(OCIRUN + ["--root", box.ocirun.root, "exec", "--ignore-paused", box.cid, "echo", "ok"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        assert p.poll() is None
    finally:
        box.ocirun("resume", box.cid, check=True)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0 and out == "ok\n", err


# --- detach, pid file, --process, preserve-fds ----------------------------------------------------

def test_detach_returns_once_started_and_writes_the_pid_file(box, tmp_path):
    pidfile = str(tmp_path / "d.pid")
    t0 = time.monotonic()
    proc = box.flags(["--detach", "--pid-file", pidfile], ["sleep", "5"])
    assert proc.returncode == 0 and time.monotonic() - t0 < 4
    pid = int(open(pidfile).read())
    assert open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0] == b"sleep"
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{box.pid}/ns/pid")
    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("detach", [True, False])
def test_an_unwritable_pid_file_exits_255_and_kills_the_process(box, tmp_path, detach):
    # runc: exec fails with 255 when it cannot write --pid-file, and terminates the process
    pidfile = str(tmp_path / "no-such-dir" / "x.pid")
    flags = ["--detach"] * detach + ["--pid-file", pidfile]
    proc = box.flags(flags, ["sleep", "77"], input="")
    assert proc.returncode == 255, proc.stderr
    assert "--pid-file" in proc.stderr and "no such file or directory" in proc.stderr
    deadline = time.monotonic() + 5
    while "sleep 77" in box.out("ps", "-o", "args") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "sleep 77" not in box.out("ps", "-o", "args")


def test_process_file_gives_the_process(box, tmp_path):
    spec = {"args": ["sh", "-c", "id -u; id -g; pwd; echo $A; grep NoNewPrivs /proc/self/status"],
            "cwd": "/tmp", "env": ["A=1", "PATH=/bin"], "user": {"uid": 5, "gid": 6},
            "noNewPrivileges": True}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(spec))
    proc = box.ocirun("exec", "--process", str(path), box.cid)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:4] == ["5", "6", "/tmp", "1"] and "NoNewPrivs:\t1" in proc.stdout
    # the container's capabilities are the default of a process file without them (libcontainer)
    spec = {"args": ["cat", "/proc/self/status"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}
    path.write_text(json.dumps(spec))
    out = box.ocirun("exec", "-p", str(path), box.cid).stdout
    assert int(status_field(out, "CapBnd"), 16) == (1 << 29) | (1 << 5) | (1 << 10)


def test_process_file_without_cwd_or_args_is_refused(box, tmp_path):
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["true"]}))
    proc = box.ocirun("exec", "-p", str(path), box.cid)
    assert proc.returncode == 255 and "cwd" in proc.stderr
    path.write_text(json.dumps({"cwd": "/", "args": []}))
    proc = box.ocirun("exec", "-p", str(path), box.cid)
    assert proc.returncode == 255 and "args" in proc.stderr


@pytest.mark.parametrize("field,message", [
    ({"rlimits": [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]},
     "process.rlimits[0].type: unknown rlimit type 'RLIMIT_FOO'"),
    ({"scheduler": {"policy": "SCHED_FIFO"}}, "process.scheduler.priority: SCHED_FIFO needs a priority from 1 to 99"),
    ({"user": {"uid": 0, "gid": 0, "umask": 4096}},
     "process.user.umask: must be an integer from 0 to 0o777 (511), got 4096"),
])
def test_a_bad_process_setting_fails_in_exec_before_the_helper_does_anything(box, tmp_path, field, message):
    """exec checks its process's settings itself (ocirun/processplan.py), before the helper is put
    in the cgroup or sent anything: one line naming the field, exit 255."""
    path = tmp_path / "process.json"
    path.write_text(json.dumps(dict({"args": ["true"], "cwd": "/"}, **field)))
    proc = box.ocirun("exec", "-p", str(path), box.cid, extra_global=("--debug",))
    assert proc.returncode == 255
    errors = [line for line in proc.stderr.splitlines() if "level=error" in line]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "exec: state loaded" not in proc.stderr and "exec helper: waited for the plan" not in proc.stderr, \
        proc.stderr


def test_preserve_fds_passes_the_next_n_fds(box):
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    for w, data in ((w1, b"one\n"), (w2, b"two\n")):
        os.write(w, data)
        os.close(w)

    def place():    # the read ends become fds 3 and 4 of ocirun exec
        a, b = os.dup(r1) + 100, os.dup(r2) + 100
        os.dup2(r1, a)
        os.dup2(r2, b)
        os.dup2(a, 3)
        os.dup2(b, 4)
    try:
        proc = subprocess.run(OCIRUN + ["--root", box.ocirun.root, "exec", "--preserve-fds", "2", box.cid,
                                        "sh", "-c", "cat <&3; cat <&4; ls /proc/self/fd"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                              preexec_fn=place, pass_fds=(3, 4))
    finally:
        os.close(r1)
        os.close(r2)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[:2] == ["one", "two"]
    assert sorted(int(x) for x in lines[2:]) == [0, 1, 2, 3, 4, 5]      # 5: ls's own /proc/self/fd


def test_without_preserve_fds_no_extra_fd_is_passed(box):
    r, w = os.pipe()
    try:
        proc = subprocess.run(OCIRUN + ["--root", box.ocirun.root, "exec", box.cid, "ls", "/proc/self/fd"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                              pass_fds=(r, w))
    finally:
        os.close(r)
        os.close(w)
    assert sorted(int(x) for x in proc.stdout.split()) == [0, 1, 2, 3]     # 3: ls's own directory fd


# --- a container with its own user namespace ------------------------------------------------------

from tests.integration.test_userns import HOST_BASE, make_bundle, userns_config, userns_rootfs  # noqa: E402,F401


def test_exec_joins_the_container_s_user_namespace_first(ocirun, userns_rootfs, tmp_path):  # noqa: F811
    c = cid("userns")
    ocirun("run", "-d", "-b", make_bundle(ocirun, userns_rootfs, userns_config(["sleep", "1000"])), c, check=True)
    init = ocirun.state(c)["pid"]
    proc = ocirun("exec", c, "sh", "-c", "id -u; readlink /proc/self/ns/user; cat /proc/self/uid_map; "
                                          "touch /tmp/x && echo writable")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[0] == "0"
    assert lines[1] == os.readlink(f"/proc/{init}/ns/user") != os.readlink("/proc/self/ns/user")
    assert lines[2].split() == ["0", str(HOST_BASE), "65536"]
    assert "writable" in proc.stdout
    pidfile = str(tmp_path / "u.pid")
    ocirun("exec", "-d", "-u", "1000:1000", "--pid-file", pidfile, c, "sleep", "100", check=True)
    pid = int(open(pidfile).read())
    uids = [line.split()[1:] for line in open(f"/proc/{pid}/status") if line.startswith("Uid:")][0]
    assert uids == [str(HOST_BASE + 1000)] * 4      # the host sees the mapped id


def test_the_exec_helper_stays_lean_and_seals_its_imports():
    """The helper is a fresh sealed interpreter on every exec: it must not load heavy modules, and
    once it enters the container's mount namespace nothing can be imported any more."""
    import sys
    code = ("import sys; sys.path[:0] = %r; import ocirun.exec_init as e; "
            "bad = [m for m in ('subprocess', 'json', 're', 'threading', 'logging', 'dataclasses', 'jsonschema', "
            "'pyroute2', 'ocirun.init') if m in sys.modules]; e.seal_imports()\n"
            "try:\n    import csv\n    print('imported')\nexcept ImportError:\n    print('sealed', bad)\n"
            % [p for p in sys.path if p])
    out = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "sealed []", out
