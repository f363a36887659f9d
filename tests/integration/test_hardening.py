"""Attack tests: the container, its rootfs or the caller of the runtime try to reach the host through
the runtime itself (hardening.md). Each leaves the host unchanged and fails if the protection is gone.
"""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from tests.conftest import OCIRUN, REPO, base_config
from tests.rootfscopy import copy_tree

pytestmark = pytest.mark.root

ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN", "CAP_NET_RAW",
            "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_ADMIN", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"]


def fds_of(pid: int) -> dict[int, str]:
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            pass
    return out


def wait_for(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


FD_WRAPPER = """
import fcntl, json, os, sys
fd_map = {int(k): v for k, v in json.loads(sys.argv[1]).items()}
sources = set(fd_map.values())
tmp = {s: fcntl.fcntl(s, fcntl.F_DUPFD_CLOEXEC, 200) for s in sources}    # out of the way of the targets
for target, source in fd_map.items():
    os.dup2(tmp[source], target, inheritable=True)
for s, t in tmp.items():
    os.close(t)
    if s not in fd_map:
        os.close(s)
os.execv(sys.argv[2], sys.argv[2:])
"""


def run_ocirun(ocirun, *args, fd_map=None, preexec_fn=None, env=None):
    """Like the fixture's call, with control over inherited fds (fd_map: {number in ocirun: our fd},
    placed with dup2 in the child only, never in pytest's own fd table), signal state, environment."""
    cmd = OCIRUN + ["--root", ocirun.root, *args]
    if fd_map:
        # a small exec wrapper places the fds (subprocess's own child fds may sit at those numbers)
        cmd = [sys.executable, "-c", FD_WRAPPER, json.dumps(fd_map)] + cmd
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code = subprocess.run(cmd, stdout=out, stderr=err, text=True, timeout=60, cwd=ocirun.tmp,
                              pass_fds=tuple(set((fd_map or {}).values())), preexec_fn=preexec_fn,
                              env=env).returncode
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, code, out.read(), err.read())


@pytest.fixture
def host_dir(tmp_path):
    """A host directory with a secret file: what a leaked fd would expose."""
    d = tmp_path / "host-secret-dir"
    d.mkdir()
    (d / "host-secret").write_text("HOST SECRET\n")
    return str(d)


# --- file descriptors ----------------------------------------------------------------------------------

def test_created_init_holds_only_stdio_and_the_exec_fifo(ocirun):
    ocirun("create", "-b", ocirun.bundle(base_config(["sleep", "100"])), "c1", check=True)
    pid = ocirun.state("c1")["pid"]
    fds = fds_of(pid)
    assert set(fds) == {0, 1, 2, 3}, fds
    assert fds[3] == os.path.join(ocirun.root, "c1", "exec.fifo")      # the O_PATH handle on the fifo


def test_container_process_has_only_stdio(ocirun):
    proc = ocirun.run_output(base_config(["sh", "-c", "ls /proc/$$/fd; true"]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "1", "2"]
    ocirun("run", "-d", "-b", ocirun.bundle(base_config(["sleep", "100"])), "c2", check=True)
    assert set(fds_of(ocirun.state("c2")["pid"])) == {0, 1, 2}


def test_preserved_fds_and_nothing_else_reach_the_container(ocirun, tmp_path):
    path = tmp_path / "preserved"
    path.write_text("preserved\n")
    fd = os.open(path, os.O_RDONLY)
    leak = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        # fd 4 is not preserved: --preserve-fds 1 keeps fd 3 only
        bundle = ocirun.bundle(base_config(["sh", "-c", "ls /proc/$$/fd; cat <&3"]))
        proc = run_ocirun(ocirun, "run", "--preserve-fds", "1", "-b", bundle, "c1", fd_map={3: fd, 4: leak})
    finally:
        os.close(fd)
        os.close(leak)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "1", "2", "3", "preserved"]


def test_fd_leaked_by_the_caller_does_not_reach_the_container(ocirun, host_dir):
    leak = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        bundle = ocirun.bundle(base_config(["sleep", "100"]))
        proc = run_ocirun(ocirun, "create", "-b", bundle, "c1", fd_map={n: leak for n in (3, 5, 9, 20)})
        assert proc.returncode == 0, proc.stderr
    finally:
        os.close(leak)
    pid = ocirun.state("c1")["pid"]
    assert host_dir not in fds_of(pid).values()
    assert set(fds_of(pid)) == {0, 1, 2, 3}
    ocirun("start", "c1", check=True)
    assert set(fds_of(pid)) == {0, 1, 2}


@pytest.mark.parametrize("leak_caller", [False, True])
def test_cwd_proc_self_fd_n_is_refused_or_stays_inside(ocirun, host_dir, leak_caller):
    """CVE-2024-21626: process.cwd = /proc/self/fd/N must never land in a host directory, whatever
    fd N is in the init at chdir time (3..32), even when the caller leaks a host directory fd."""
    leak = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY)
    fd_map = {n: leak for n in range(3, 33) if n != leak} if leak_caller else {}
    escaped = []
    try:
        for n in range(3, 33):
            config = base_config(["sh", "-c", "ls -a; cat host-secret 2>/dev/null; pwd"])
            config["process"]["cwd"] = f"/proc/self/fd/{n}"
            config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                          "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
            bundle = ocirun.bundle(config)
            proc = run_ocirun(ocirun, "run", "-b", bundle, f"cwd{n}", fd_map=fd_map)
            if "host-secret" in proc.stdout or "HOST SECRET" in proc.stdout:
                escaped.append((n, proc.stdout))
            elif proc.returncode == 0:
                # it ran: the cwd must be a directory of the container (pwd resolves inside it)
                assert proc.stdout.strip().splitlines()[-1].startswith("/"), (n, proc.stdout)
                assert "(unreachable)" not in proc.stdout, (n, proc.stdout)
            else:
                assert "cwd" in proc.stderr, (n, proc.stderr)
    finally:
        os.close(leak)
    assert not escaped, escaped


# --- the init while created -----------------------------------------------------------------------------

def _as_user(uid: int, fn):
    """fn() in a forked child that dropped to uid/gid `uid`; returns its errno or 0."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            try:
                fn()
                code = 0
            except OSError as exc:
                code = exc.errno
            os.write(w, str(code).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 100):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return int(data)


def test_init_is_not_dumpable_until_exec(ocirun):
    config = base_config(["sleep", "100"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    ocirun("create", "-b", ocirun.bundle(config), "c1", check=True)
    pid = ocirun.state("c1")["pid"]
    with open(f"/proc/{pid}/status") as f:
        assert "Uid:\t1000\t1000\t1000\t1000" in f.read()    # already the container's user
    # non-dumpable: its /proc files belong to root (but /proc/<pid> itself, which always shows the
    # euid), and the same uid on the host cannot read it
    assert os.stat(f"/proc/{pid}/environ").st_uid == 0
    assert os.stat(f"/proc/{pid}/fd").st_uid == 0
    assert _as_user(1000, lambda: os.close(os.open(f"/proc/{pid}/mem", os.O_RDONLY))) in (errno.EACCES, errno.EPERM)
    assert _as_user(1000, lambda: os.close(os.open(f"/proc/{pid}/environ", os.O_RDONLY))) in (errno.EACCES, errno.EPERM)
    assert _as_user(1000, lambda: os.readlink(f"/proc/{pid}/exe")) in (errno.EACCES, errno.EPERM)
    # once the user's program runs, it is an ordinary dumpable process of uid 1000 (the check above
    # really depended on the init's state)
    ocirun("start", "c1", check=True)
    assert wait_for(lambda: os.stat(f"/proc/{pid}/environ").st_uid == 1000)


# --- signals and environment --------------------------------------------------------------------------

def test_signal_dispositions_and_mask_are_reset_before_exec(ocirun):
    def caller_state():
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGWINCH})

    bundle = ocirun.bundle(base_config(["cat", "/proc/self/status"]))
    proc = run_ocirun(ocirun, "run", "-b", bundle, "c1", preexec_fn=caller_state)
    assert proc.returncode == 0, proc.stderr
    status = dict(line.split(":\t", 1) for line in proc.stdout.splitlines() if ":\t" in line)
    # Python itself ignores SIGPIPE and SIGXFSZ; the caller ignored and blocked more
    assert int(status["SigIgn"], 16) == 0 and int(status["SigBlk"], 16) == 0 and int(status["SigCgt"], 16) == 0


def test_environment_is_exactly_process_env(ocirun):
    config = base_config(["env"])
    config["process"]["env"] = ["PATH=/bin:/usr/bin", "A=1", "EMPTY=", "WITH_EQ=x=y", "HOME=/"]
    env = dict(os.environ, LEAK_FROM_CALLER="yes", PYTHONPATH="/nonexistent", LD_PRELOAD="")
    proc = run_ocirun(ocirun, "run", "-b", ocirun.bundle(config), "c1", env=env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == sorted(config["process"]["env"])


# --- nothing is loaded from the rootfs -----------------------------------------------------------------

POISON_PY = "open({marker!r}, 'a').write({name!r} + '\\n')\ntry:\n    open('/poison-' + {tag!r}, 'a').write('x')\nexcept OSError:\n    pass\n"
POISON_C = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void poison(void) {
    int fd = open("%s", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) { write(fd, "%s\n", %d); close(fd); }
    fd = open("/poison-%s", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) close(fd);
}
int _nss_poison_getpwuid_r(void) { return 0; }
"""


def _poisoned_rootfs(src: str, dest: str, marker: str) -> list[str]:
    """A copy of the busybox rootfs with, at every path the runtime's interpreter imports from,
    modules named like real ones, plus .pth files, sitecustomize, and NSS/libseccomp libraries."""
    copy_tree(src, dest)    # dirs, files and links only: a leaked device node would be read forever
    planted = []

    def plant(rel: str, name: str, tag: str):
        path = os.path.join(dest, rel.lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(POISON_PY.format(marker=marker, name=name, tag=tag))
        planted.append(path)

    py_dirs = {p for p in sys.path if p and os.path.isabs(p)} | {REPO, os.path.dirname(os.__file__)}
    stdlib_names = ["json", "encodings", "subprocess", "traceback", "linecache", "shutil", "tempfile",
                    "codecs", "locale", "pwd", "grp", "socket", "selectors", "threading", "ctypes",
                    "fcntl", "errno", "sitecustomize", "usercustomize", "site", "prctl", "jsonschema"]
    for i, d in enumerate(sorted(py_dirs)):
        for name in stdlib_names:
            plant(f"{d}/{name}.py", name, f"{i}-{name}")
            plant(f"{d}/{name}/__init__.py", name, f"{i}-{name}-pkg")
        plant(f"{d}/encodings/utf_8.py", "encodings.utf_8", f"{i}-utf8")
        plant(f"{d}/encodings/latin_1.py", "encodings.latin_1", f"{i}-latin1")
        with open(os.path.join(dest, d.lstrip("/"), "zz-poison.pth"), "w") as f:
            f.write(f"import os; open({marker!r}, 'a').write('pth\\n')\n")
    # the runtime's own package, module by module, at the path it is installed at on the host
    for dirpath, _, files in os.walk(os.path.join(REPO, "ocirun")):
        for fname in files:
            if fname.endswith(".py"):
                rel = os.path.join(dirpath, fname)
                plant(rel, "ocirun:" + os.path.relpath(rel, REPO), "ocirun-" + fname)

    libs_planted = []
    if shutil.which("gcc"):
        build = os.path.join(os.path.dirname(dest), "poison-build")
        os.makedirs(build, exist_ok=True)
        for lib in ("libnss_files.so.2", "libnss_poison.so.2", "libnss_compat.so.2", "libseccomp.so.2",
                    "libgcc_s.so.1", "libffi.so.8"):
            c_file = os.path.join(build, lib + ".c")
            text = f"{lib}"
            with open(c_file, "w") as f:
                f.write(POISON_C % (marker, text, len(text) + 1, lib))
            so = os.path.join(build, lib)
            subprocess.run(["gcc", "-shared", "-fPIC", "-o", so, c_file], check=True)
            for libdir in ("lib", "usr/lib", "lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu",
                           "lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu", "lib64"):
                os.makedirs(os.path.join(dest, libdir), exist_ok=True)
                shutil.copy(so, os.path.join(dest, libdir, lib))
            libs_planted.append(lib)
    with open(os.path.join(dest, "etc", "nsswitch.conf"), "w") as f:
        f.write("passwd: poison files\ngroup: poison files\nhosts: poison files\n")
    with open(os.path.join(dest, "etc", "ld.so.preload"), "w") as f:
        f.write("/lib/libnss_poison.so.2\n")
    return planted + libs_planted


def test_modules_and_nss_libraries_in_the_rootfs_are_never_loaded(ocirun, rootfs_dir, tmp_path):
    marker = str(tmp_path / "LOADED")
    rootfs = str(tmp_path / "poisoned" / "rootfs")
    planted = _poisoned_rootfs(rootfs_dir, rootfs, marker)
    assert len(planted) > 100
    config = base_config(["sh", "-c", "echo ran; ls / | grep poison; true"])
    config["root"] = {"path": rootfs, "readonly": False}
    config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 100]}
    config["process"]["noNewPrivileges"] = False
    config["hostname"] = "poisoned"
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["mknod"], "action": "SCMP_ACT_ERRNO"}]}
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "0"}
    config["hooks"] = {"createContainer": [{"path": "/bin/true"}], "startContainer": [{"path": "/bin/true"}]}
    bundle = ocirun.bundle(config)
    # the worst place to run from: the caller's cwd is the rootfs itself
    proc = subprocess.run(OCIRUN + ["--root", ocirun.root, "run", "-b", bundle, "c1"], cwd=os.path.join(rootfs, "tmp"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ran"]          # no /poison-* file was created in the container
    assert not os.path.exists(marker), open(marker).read()
    assert not [n for n in os.listdir(rootfs) if n.startswith("poison-")]


# --- the interpreter behind /proc/<pid>/exe (CVE-2019-5736) -------------------------------------------

def test_host_view_init_exe_is_on_a_read_only_mount(ocirun):
    ocirun("create", "-b", ocirun.bundle(base_config(["sleep", "100"])), "c1", check=True)
    pid = ocirun.state("c1")["pid"]
    exe = f"/proc/{pid}/exe"
    assert os.statvfs(exe).f_flag & os.ST_RDONLY
    # any change of the file through this path is refused by the mount (EROFS), not by luck (ETXTBSY).
    # Probe without changing anything: removing an xattr that does not exist is ENODATA on a writable
    # file (nothing happens) and EROFS on a read-only mount (checked before the attribute is looked up).
    with pytest.raises(OSError) as exc:
        os.removexattr(exe, "user.ocirun-probe")
    assert exc.value.errno == errno.EROFS
    with pytest.raises(OSError) as exc:
        os.close(os.open(exe, os.O_WRONLY))
    assert exc.value.errno in (errno.EROFS, errno.ETXTBSY)
    # and it is the same interpreter the runtime runs
    assert os.stat(exe).st_ino == os.stat(os.path.realpath(sys.executable)).st_ino


PROBE_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/xattr.h>
/* CVE-2019-5736 probes that never change the target: open for writing (closed at once, nothing
   written), and removexattr of an attribute that does not exist: ENODATA when the file could be
   changed, EROFS when the mount is read-only. The same through a kept O_PATH handle. */
int main(int argc, char **argv) {
    const char *p = argc > 1 ? argv[1] : "/proc/1/exe";
    int fd = open(p, O_WRONLY | O_APPEND);
    printf("open_wronly=%d\n", fd < 0 ? errno : 0);
    if (fd >= 0) close(fd);
    int r = removexattr(p, "user.ocirun-probe");
    printf("removexattr=%d\n", r < 0 ? errno : 0);
    int h = open(p, O_PATH);
    char buf[64];
    snprintf(buf, sizeof buf, "/proc/self/fd/%d", h);
    fd = open(buf, O_WRONLY | O_APPEND);
    printf("handle_open_wronly=%d\n", fd < 0 ? errno : 0);
    if (fd >= 0) close(fd);
    r = removexattr(buf, "user.ocirun-probe");
    printf("handle_removexattr=%d\n", h < 0 ? -1 : (r < 0 ? errno : 0));
    return 0;
}
"""


def test_privileged_container_cannot_write_the_runtime_interpreter_through_proc_1_exe(ocirun, rootfs_dir, tmp_path):
    """A container with every capability that shares the pid namespace of a created container finds
    the runtime's init as pid 1 and tries CVE-2019-5736 on /proc/1/exe: open it for writing, and
    modify it directly or through a kept handle. Every probe is non-destructive (see PROBE_C)."""
    rootfs = str(tmp_path / "attacker" / "rootfs")
    copy_tree(rootfs_dir, rootfs)
    (tmp_path / "probe.c").write_text(PROBE_C)
    build = subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(rootfs, "probe"), str(tmp_path / "probe.c")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if build.returncode != 0:
        pytest.skip(f"cannot build a static probe: {build.stdout[-200:]}")
    ocirun("create", "-b", ocirun.bundle(base_config(["sleep", "100"])), "victim", check=True)
    vpid = ocirun.state("victim")["pid"]
    config = base_config(["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc/1/fd | tr '\\n' ' '; echo; "
                                      "/probe /proc/1/exe"])
    config["root"] = {"path": rootfs, "readonly": True}
    config["process"]["capabilities"] = {k: ALL_CAPS for k in ("bounding", "effective", "permitted")}
    config["process"]["noNewPrivileges"] = False
    config["linux"]["namespaces"] = [{"type": t} for t in ("network", "ipc", "uts", "mount")] + \
        [{"type": "pid", "path": f"/proc/{vpid}/ns/pid"}]
    proc = ocirun.run_output(config, "attacker")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "python" in lines[0] and "ocirun" in lines[0]            # it did reach the runtime's init
    # what the attacker can list in the runtime's init: stdio and the exec fifo only
    assert lines[1].split() == ["0", "1", "2", "3"]
    probes = dict(line.split("=") for line in lines[2:])
    assert probes["open_wronly"] in (str(errno.EROFS), str(errno.ETXTBSY)), probes
    assert probes["handle_open_wronly"] in (str(errno.EROFS), str(errno.ETXTBSY)), probes
    # the decisive ones: the file is on a read-only mount, so it could not be written even once
    # nothing executes it any more (ETXTBSY is only luck)
    assert probes["removexattr"] == str(errno.EROFS), probes
    assert probes["handle_removexattr"] == str(errno.EROFS), probes
