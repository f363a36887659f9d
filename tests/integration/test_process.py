"""config.md "Process" end to end: args, env, cwd, user, umask, rlimits, oomScoreAdj, noNewPrivileges,
capabilities; and the create flags --preserve-fds, --pid-file, --no-pivot; root.readonly.

Each test is named after the MUST it checks, and reads the result from inside the container with
busybox (id, umask, ulimit, /proc/self/status) and, where it matters, from the host (/proc/<pid>).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from tests.conftest import OCIRUN, base_config

pytestmark = pytest.mark.root


def cid(name: str) -> str:
    """Container ids unique to this test session (cgroups given by path, hooks' files and the
    like then never meet another concurrent run's)."""
    return f"{name}-{os.getpid()}"


_cid_default = cid

CAP_NUMBERS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_KILL": 5, "CAP_SETGID": 6,
               "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13,
               "CAP_SYS_CHROOT": 18, "CAP_SYS_ADMIN": 21, "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29}


def run_ok(ocirun, config, cid=_cid_default("c1")):
    proc = ocirun.run_output(config, cid)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def err(proc):
    return proc.stderr.replace('\\"', '"')


def status_fields(text: str) -> dict:
    return {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in text.splitlines() if ":" in line}


def cap_names(hexmask: str) -> set:
    mask = int(hexmask, 16)
    by_number = {v: k for k, v in CAP_NUMBERS.items()}
    return {by_number.get(n, f"cap{n}") for n in range(64) if mask >> n & 1}


def assert_create_fails(ocirun, config, *needles, cid=_cid_default("cbad")):
    proc = ocirun("create", "-b", ocirun.bundle(config), cid)
    assert proc.returncode == 1, proc
    for needle in needles:
        assert needle in err(proc), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not os.path.exists(os.path.join(ocirun.root, cid))
    return proc


# --- args ----------------------------------------------------------------------------------------

def test_args_are_passed_to_the_program_exactly(ocirun):
    config = base_config(["sh", "-c", 'echo "[$0]"; for a in "$@"; do echo "[$a]"; done', "zero", "a b", "", "*", "$HOME"])
    assert run_ok(ocirun, config).splitlines() == ["[zero]", "[a b]", "[]", "[*]", "[$HOME]"]


def test_args0_is_resolved_through_the_container_s_path(ocirun):
    config = base_config(["printenv", "PATH"])          # /usr/bin/printenv in the busybox rootfs? env is
    config["process"]["args"] = ["env"]
    config["process"]["env"] = ["PATH=/nonexistent:/usr/bin", "HOME=/"]
    assert run_ok(ocirun, config).splitlines() == ["PATH=/nonexistent:/usr/bin", "HOME=/"]


def test_args0_is_looked_up_only_in_the_container_s_path_not_the_host_s(ocirun):
    config = base_config(["hostname"])                   # /bin/hostname: not in this PATH
    config["process"]["env"] = ["PATH=/usr/bin"]
    assert_create_fails(ocirun, config, "hostname", "executable file not found in $PATH")


def test_args0_without_path_variable_uses_the_default_path(ocirun):
    config = base_config(["hostname"])
    config["process"]["env"] = []
    assert run_ok(ocirun, config).strip() == "ocirun-test"


def test_relative_args0_is_resolved_against_cwd(ocirun):
    config = base_config(["./echo", "relative"])
    config["process"]["cwd"] = "/bin"
    assert run_ok(ocirun, config) == "relative\n"
    config = base_config(["bin/echo", "relative2"])
    assert run_ok(ocirun, config, cid("c2")) == "relative2\n"


def test_args0_that_is_not_executable_fails_create_with_permission_denied(ocirun):
    assert_create_fails(ocirun, base_config(["/etc/passwd"]), "/etc/passwd", "permission denied")


def test_args0_that_is_a_directory_fails_create_with_permission_denied(ocirun):
    assert_create_fails(ocirun, base_config(["/bin"]), "/bin", "permission denied")


# --- env -----------------------------------------------------------------------------------------

def test_env_is_exactly_process_env_plus_home_and_nothing_of_the_runtime_leaks(ocirun):
    config = base_config(["env"])
    config["process"]["env"] = ["PATH=/bin:/usr/bin", "A=1", "B=with spaces", "EMPTY=", "DUP=x=y"]
    out = run_ok(ocirun, config)
    assert sorted(out.splitlines()) == sorted(config["process"]["env"] + ["HOME=/root"])


@pytest.mark.parametrize("uid, env, home", [
    (0, [], "/root"),                       # root's entry in the rootfs' /etc/passwd
    (1000, [], "/home/user"),
    (4242, [], "/"),                        # no entry: "/" (runc, crun)
    (1000, ["HOME="], "/home/user"),         # an empty HOME counts as none
    (1000, ["HOME=/mine"], "/mine"),         # one set by the config is kept
])
def test_home_comes_from_the_containers_passwd_when_env_has_none(ocirun, uid, env, home):
    config = base_config(["sh", "-c", 'echo "$HOME"; env | grep -c ^HOME='])
    config["process"]["user"] = {"uid": uid, "gid": uid}
    config["process"]["env"] = ["PATH=/bin"] + env
    assert run_ok(ocirun, config).split() == [home, "1"]


def test_exec_gets_home_from_the_containers_passwd_for_its_user(ocirun):
    config = base_config(["sleep", "100"])
    config["process"]["env"] = ["PATH=/bin"]
    c = cid("home")
    ocirun("run", "-d", "-b", ocirun.bundle(config), c, check=True, input="")
    try:
        assert ocirun("exec", c, "sh", "-c", 'echo "$HOME"').stdout == "/root\n"
        assert ocirun("exec", "-u", "1000:1000", c, "sh", "-c", 'echo "$HOME"').stdout == "/home/user\n"
        assert ocirun("exec", "-e", "HOME=/x", c, "sh", "-c", 'echo "$HOME"').stdout == "/x\n"
    finally:
        ocirun("delete", "-f", c)


def test_the_runtime_environment_never_reaches_the_container_init_from_the_host_view(ocirun):
    config = base_config(["sleep", "100"])
    config["process"]["env"] = ["PATH=/bin", "ONLY=this"]
    bundle = ocirun.bundle(config)
    # a variable of the runtime's caller must not leak either
    env = dict(os.environ, LEAKME="secret")
    # stderr to a file: the created init keeps its stdio open, a pipe would never reach EOF
    with tempfile.TemporaryFile("w+") as errf:
        code = subprocess.run(OCIRUN + ["--root", ocirun.root, "create", "-b", bundle, cid("c1")], env=env,
                              stdout=subprocess.DEVNULL, stderr=errf, text=True, timeout=60,
                              stdin=subprocess.DEVNULL).returncode
        errf.seek(0)
        assert code == 0, errf.read()
    pid = ocirun.state(cid("c1"))["pid"]
    # while created, pid 1 is still the runtime's init (its environ is its own sync fd, as runc's
    # _LIBCONTAINER_INITPIPE): nothing of the caller's environment is there
    environ = [e for e in open(f"/proc/{pid}/environ", "rb").read().split(b"\0") if e]
    assert all(e.startswith(b"_OCIRUN_") for e in environ), environ
    ocirun("start", cid("c1"), check=True)
    environ = [e for e in open(f"/proc/{pid}/environ", "rb").read().split(b"\0") if e]
    assert environ == [b"PATH=/bin", b"ONLY=this", b"HOME=/root"]


# --- cwd -----------------------------------------------------------------------------------------

def test_cwd_is_the_working_directory(ocirun):
    config = base_config(["pwd"])
    config["process"]["cwd"] = "/etc"
    assert run_ok(ocirun, config) == "/etc\n"


def test_a_missing_cwd_is_created_as_runc_does(ocirun):
    config = base_config(["sh", "-c", "pwd; stat -c '%a %u' ."])
    config["process"]["cwd"] = "/tmp/new/dir"         # /tmp is the container's tmpfs
    assert run_ok(ocirun, config).splitlines() == ["/tmp/new/dir", "755 0"]


def test_a_relative_cwd_is_refused(ocirun):
    config = base_config(["pwd"])
    config["process"]["cwd"] = "etc"
    assert_create_fails(ocirun, config, "process.cwd")


# --- user ----------------------------------------------------------------------------------------

def test_user_uid_gid_and_additional_gids_are_set(ocirun):
    config = base_config(["sh", "-c", "id -u; id -g; id -G; grep -E '^(Uid|Gid|Groups):' /proc/self/status"])
    config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20, 1001]}
    out = run_ok(ocirun, config).splitlines()
    assert out[0] == "1000" and out[1] == "1001"
    assert set(out[2].split()) == {"1001", "10", "20"}
    status = status_fields("\n".join(out[3:]))
    assert status["Uid"].split() == ["1000"] * 4
    assert status["Gid"].split() == ["1001"] * 4
    assert sorted(status["Groups"].split(), key=int) == ["10", "20", "1001"]


def test_the_runtime_s_supplementary_groups_are_dropped(ocirun):
    config = base_config(["sh", "-c", "grep ^Groups: /proc/self/status"])
    config["process"]["user"] = {"uid": 0, "gid": 0}
    assert run_ok(ocirun, config).split() == ["Groups:"]


def test_stdio_is_given_to_the_user_but_dev_null_never(ocirun):
    # runc's fixStdioPermissions: a non-root process may reopen its stdout pipe as /dev/stdout
    # (/proc/self/fd/1 checks the pipe's owner), and the host's /dev/null is never chowned
    config = base_config(["sh", "-c", "stat -L -c %u /proc/self/fd/0 /proc/self/fd/1; "
                                      "echo reopened > /dev/stdout"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    null_before = os.stat("/dev/null")
    proc = subprocess.run(OCIRUN + ["--root", ocirun.root, "run", "-b", ocirun.bundle(config), cid("stdio")],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "1000", "reopened"]
    null_after = os.stat("/dev/null")
    assert (null_after.st_uid, null_after.st_mode) == (null_before.st_uid, null_before.st_mode)


def test_umask_is_applied(ocirun):
    config = base_config(["sh", "-c", "umask; touch /tmp/f; stat -c %a /tmp/f"])
    config["process"]["user"]["umask"] = 0o027
    assert run_ok(ocirun, config).split() == ["0027", "640"]


def test_the_default_umask_is_0022(ocirun):
    # runc sets 0022 when process.user.umask is absent, whatever the caller's umask is
    old = os.umask(0o077)
    try:
        out = run_ok(ocirun, base_config(["sh", "-c", "umask"]))
    finally:
        os.umask(old)
    assert out.strip() == "0022"


# --- rlimits, oom, nnp ---------------------------------------------------------------------------

def test_rlimits_set_soft_and_hard_limits(ocirun):
    config = base_config(["sh", "-c", "ulimit -n; ulimit -Hn; grep 'Max core' /proc/self/limits"])
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
                                     {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096 * 1024}]
    out = run_ok(ocirun, config).splitlines()
    assert out[:2] == ["256", "512"]
    assert out[2].split()[4:6] == ["0", str(4096 * 1024)]


def test_rlimits_are_visible_from_the_host(ocirun):
    config = base_config(["sleep", "100"])
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 300, "hard": 400}]
    ocirun("run", "-d", "-b", ocirun.bundle(config), cid("c1"), check=True)
    pid = ocirun.state(cid("c1"))["pid"]
    line = [ln for ln in open(f"/proc/{pid}/limits") if ln.startswith("Max open files")][0]
    assert line.split()[3:5] == ["300", "400"]


def test_an_unknown_rlimit_is_refused(ocirun):
    config = base_config(["true"])
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]
    assert_create_fails(ocirun, config, "process.rlimits[0].type")


def test_oom_score_adj_is_applied(ocirun):
    config = base_config(["cat", "/proc/self/oom_score_adj"])
    config["process"]["oomScoreAdj"] = 345
    assert run_ok(ocirun, config).strip() == "345"


def test_no_oom_score_adj_leaves_the_runtime_s_value(ocirun):
    config = base_config(["cat", "/proc/self/oom_score_adj"])
    assert run_ok(ocirun, config).strip() == open("/proc/self/oom_score_adj").read().strip()


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges_sets_the_flag_as_configured(ocirun, nnp):
    config = base_config(["grep", "^NoNewPrivs:", "/proc/self/status"])
    config["process"]["noNewPrivileges"] = nnp
    assert run_ok(ocirun, config).split() == ["NoNewPrivs:", "1" if nnp else "0"]


# --- capabilities --------------------------------------------------------------------------------

def test_all_five_capability_sets_are_set_as_configured(ocirun):
    config = base_config(["grep", "^Cap", "/proc/self/status"])
    config["process"]["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
        "inheritable": ["CAP_KILL", "CAP_CHOWN"],
        "ambient": ["CAP_KILL"],
    }
    fields = status_fields(run_ok(ocirun, config))
    assert cap_names(fields["CapBnd"]) == {"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"}
    assert cap_names(fields["CapInh"]) == {"CAP_KILL", "CAP_CHOWN"}
    assert cap_names(fields["CapAmb"]) == {"CAP_KILL"}
    # execve as root: the effective and permitted sets come from the bounding set (file caps of root),
    # as for runc. As a non-root user (next test) they are exactly the configured ambient set.
    assert cap_names(fields["CapPrm"]) <= cap_names(fields["CapBnd"])


def test_capabilities_of_a_non_root_user_are_the_ambient_set_after_exec(ocirun):
    config = base_config(["grep", "^Cap", "/proc/self/status"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["capabilities"] = {
        "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }
    fields = status_fields(run_ok(ocirun, config))
    assert cap_names(fields["CapBnd"]) == {"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"}
    assert cap_names(fields["CapInh"]) == {"CAP_KILL", "CAP_NET_BIND_SERVICE"}
    assert cap_names(fields["CapAmb"]) == {"CAP_NET_BIND_SERVICE"}
    assert cap_names(fields["CapPrm"]) == {"CAP_NET_BIND_SERVICE"}
    assert cap_names(fields["CapEff"]) == {"CAP_NET_BIND_SERVICE"}


def test_capabilities_are_visible_from_the_host_while_running(ocirun):
    config = base_config(["sleep", "100"])
    config["process"]["capabilities"] = {k: ["CAP_KILL"] for k in ("bounding", "effective", "permitted")}
    ocirun("run", "-d", "-b", ocirun.bundle(config), cid("c1"), check=True)
    pid = ocirun.state(cid("c1"))["pid"]
    fields = status_fields(open(f"/proc/{pid}/status").read())
    for key in ("CapBnd", "CapEff", "CapPrm"):
        assert cap_names(fields[key]) == {"CAP_KILL"}, key
    assert int(fields["CapInh"], 16) == 0 and int(fields["CapAmb"], 16) == 0


def test_no_capabilities_object_gives_no_capabilities(ocirun):
    config = base_config(["grep", "^Cap", "/proc/self/status"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    del config["process"]["capabilities"]
    fields = status_fields(run_ok(ocirun, config))
    for key in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert int(fields[key], 16) == 0, (key, fields[key])


def test_an_unknown_capability_name_is_a_warning_naming_the_entry(ocirun):
    # config.md: a capability that cannot be mapped MUST be logged as a warning, SHOULD NOT fail
    config = base_config(["true"])
    config["process"]["capabilities"]["effective"] = ["CAP_KILL", "CAP_NOT_A_CAP"]
    proc = ocirun.run_output(config, cid("c1"))
    assert proc.returncode == 0, proc.stderr
    assert "level=warning" in proc.stderr and "process.capabilities.effective[1]" in proc.stderr


# --- create flags --------------------------------------------------------------------------------

def _run_with_fd3(ocirun, bundle, cid, *extra):
    """`ocirun run ... <cid>` with fd 3 open on a file holding 'via-fd-3'."""
    path = os.path.join(ocirun.tmp, "fd3.txt")
    with open(path, "w") as f:
        f.write("via-fd-3")
    cmd = OCIRUN + ["--root", ocirun.root, "run", *extra, "-b", bundle, cid]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as errf:
        proc = subprocess.run(["bash", "-c", f'exec "$@" 3<{path}', "bash", *cmd], stdout=out, stderr=errf,
                              stdin=subprocess.DEVNULL, text=True, timeout=60)
        out.seek(0)
        errf.seek(0)
        return proc.returncode, out.read(), errf.read()


def test_preserve_fds_passes_extra_fds_to_the_process(ocirun):
    bundle = ocirun.bundle(base_config(["sh", "-c", "cat /proc/self/fd/3; echo; echo $(ls /proc/self/fd)"]))
    code, out, errtext = _run_with_fd3(ocirun, bundle, cid("c1"), "--preserve-fds", "1")
    assert code == 0, errtext
    lines = out.splitlines()
    assert lines[0] == "via-fd-3"
    # only stdio, the preserved fd 3 and ls's own directory fd
    assert sorted(lines[1].split()) == ["0", "1", "2", "3", "4"], out


def test_without_preserve_fds_no_extra_fd_reaches_the_process(ocirun):
    bundle = ocirun.bundle(base_config(["sh", "-c", "ls /proc/self/fd; cat <&3"]))
    code, out, _ = _run_with_fd3(ocirun, bundle, cid("c1"))
    assert code != 0                                 # cat <&3: bad file descriptor
    assert sorted(out.split()) == ["0", "1", "2", "3"]   # 3 is ls's own directory fd


def test_pid_file_holds_the_container_pid_relative_to_the_callers_cwd(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    ocirun("create", "-b", bundle, "--pid-file", "rel.pid", cid("c1"), check=True)   # cwd is ocirun.tmp
    pid = ocirun.state(cid("c1"))["pid"]
    assert open(os.path.join(ocirun.tmp, "rel.pid")).read() == str(pid)
    ocirun("create", f"--bundle={bundle}", f"--pid-file={ocirun.tmp}/abs.pid", cid("c2"), check=True)
    assert open(os.path.join(ocirun.tmp, "abs.pid")).read() == str(ocirun.state(cid("c2"))["pid"])


def test_no_pivot_runs_the_container_with_the_rootfs_as_root(ocirun):
    bundle = ocirun.bundle(base_config(["sh", "-c", "cat /proc/self/mountinfo; ls /"]))
    proc = ocirun("run", "--no-pivot", "-b", bundle, cid("c1"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    root_lines = [ln.split() for ln in lines if len(ln.split()) > 5 and ln.split()[4] == "/"]
    assert root_lines, proc.stdout
    st = os.stat(ocirun.rootfs)
    assert root_lines[-1][2] == f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    assert "bin" in lines and "proc" in lines
    # no host mount is visible above the new root: every mount point is inside it
    assert all(ln.split()[4].startswith("/") for ln in lines if " - " in ln)


def test_pivot_root_leaves_no_host_mount_visible(ocirun):
    host_points = {ln.split()[4] for ln in open("/proc/self/mountinfo")}
    out = run_ok(ocirun, base_config(["cat", "/proc/self/mountinfo"]))
    points = [ln.split()[4] for ln in out.splitlines()]
    assert points[0] == "/"
    allowed = {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/tmp"}
    extra = [p for p in points if p not in allowed and not p.startswith(("/proc/", "/sys/"))]
    assert extra == [], (extra, host_points)


def test_root_readonly_makes_the_root_read_only(ocirun):
    config = base_config(["sh", "-c", "touch /x 2>&1; echo rc=$?; cat /proc/self/mountinfo; touch /tmp/ok && echo tmp-ok"])
    config["root"]["readonly"] = True
    out = run_ok(ocirun, config)
    assert "Read-only file system" in out and "rc=1" in out
    root = [ln.split() for ln in out.splitlines() if " - " in ln and ln.split()[4] == "/"][-1]
    assert "ro" in root[5].split(","), root
    assert "tmp-ok" in out                          # mounts on top stay writable
    assert not os.path.exists(os.path.join(ocirun.rootfs, "x"))


def test_created_process_is_not_a_child_of_ocirun_and_pid_file_written_before_return(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    pidfile = os.path.join(ocirun.tmp, "p")
    ocirun("create", "-b", bundle, "--pid-file", pidfile, cid("c1"), check=True)
    pid = int(open(pidfile).read())
    ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    assert ppid != os.getpid()
    cmdline = open(f"/proc/{ppid}/cmdline", "rb").read() if ppid else b""
    assert b"ocirun" not in cmdline, cmdline
    time.sleep(0.05)
    assert ocirun.state(cid("c1"))["status"] == "created"


SUBREAPER_CALLER = r'''
import ctypes, json, os, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(36, 1, 0, 0, 0) == 0          # PR_SET_CHILD_SUBREAPER, as conmon and shims do
cmd, pidfile = json.loads(sys.argv[1]), sys.argv[2]
with open(os.devnull, "w") as null:
    assert subprocess.run(cmd + ["--pid-file", pidfile], stdout=null, stderr=null).returncode == 0
pid = int(open(pidfile).read())
ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
print(os.getpid(), ppid, flush=True)
subprocess.run(cmd[:-4] + ["delete", "--force", cmd[-1]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    os.waitpid(pid, 0)                           # ours to reap
    print("reaped")
except ChildProcessError:
    print("not-our-child")
'''


def test_create_honours_the_caller_s_child_subreaper(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    cmd = OCIRUN + ["--root", ocirun.root, "create", "-b", bundle, cid("c1")]
    pidfile = os.path.join(ocirun.tmp, "sr.pid")
    out = subprocess.run([sys.executable, "-c", SUBREAPER_CALLER, json.dumps(cmd), pidfile],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    caller, ppid, reaped = out.stdout.split()
    assert ppid == caller and reaped == "reaped"
