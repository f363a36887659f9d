"""The init's kernel calls, recorded through the syscall seam (tests/syscallrecorder.py): the mount
sequence of prepare_rootfs -> enter_rootfs -> finalize_rootfs and the order of the calls across the
init's steps, for `ocirun spec`'s default config, a user-namespace (`--rootless`) config and the
read-only root, on a plain directory and without root. (What a real kernel makes of the sequence
is tests/integration/test_rootfs_units.py's, as root.)"""
import errno
import os
import shutil
import subprocess
import sys
import tempfile
import _signal

import pytest

from ocirun import init, processplan
from ocirun.defaultspec import example_spec, to_rootless
from ocirun.initctx import InitContext
from ocirun.linux import rootfs
from ocirun.linux import syscalls as sc
from ocirun.validate import check_mounts, check_namespaces    # the plan create sends the init
from tests.syscallrecorder import Recorder

# What the faked proc and sysfs mounts would show: targets for maskedPaths and readonlyPaths.
# /proc/timer_stats and /proc/sched_debug are left out: absent paths are skipped, as on most kernels.
PROC_DIRS = ("proc/acpi", "proc/asound", "proc/scsi", "proc/bus", "proc/fs", "proc/irq", "proc/sys",
             "sys/firmware")
PROC_FILES = ("proc/kcore", "proc/keys", "proc/latency_stats", "proc/timer_list", "proc/sysrq-trigger")


@pytest.fixture
def bundle(tmp_path):
    root = tmp_path / "rootfs"
    for d in ("bin", "etc", "tmp") + PROC_DIRS:
        (root / d).mkdir(parents=True)
    for f in PROC_FILES:
        (root / f).touch()
    return str(tmp_path)


def default_config() -> dict:
    return example_spec()       # root.readonly is true in it, as in runc's


def rootless_config() -> dict:
    return to_rootless(example_spec(), 1000, 1000)


def record_rootfs(bundle: str, config: dict, *, new_userns=False, new_mntns=True, **recorder) -> Recorder:
    ctx = InitContext(config=config, plan=check_mounts(config, bundle), bundle=bundle,
                      rootfs=os.path.join(bundle, "rootfs"), new_userns=new_userns, new_mntns=new_mntns)
    with Recorder(ctx.rootfs, **recorder) as rec:
        rootfs.prepare_rootfs(ctx)
        rootfs.enter_rootfs(ctx)
        rootfs.finalize_rootfs(ctx)
    return rec


PROPAGATION = ["mount / (linux.rootfsPropagation) flags=MS_REC|MS_SLAVE",
               "mount $ROOTFS src=$ROOTFS flags=MS_BIND|MS_REC"]
MOUNTS = [
    "mount /proc type=proc src=proc flags=0",
    "mount /dev type=tmpfs src=tmpfs flags=MS_NOSUID|MS_STRICTATIME data=mode=755,size=65536k",
    "mount /dev/pts type=devpts src=devpts flags=MS_NOSUID|MS_NOEXEC "
    "data=newinstance,ptmxmode=0666,mode=0620,gid=5",
    "mount /dev/shm type=tmpfs src=shm flags=MS_NOSUID|MS_NODEV|MS_NOEXEC data=mode=1777,size=65536k",
    "mount /dev/mqueue type=mqueue src=mqueue flags=MS_NOSUID|MS_NODEV|MS_NOEXEC",
    "mount /sys type=sysfs src=sysfs flags=MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC",
    "mount /sys/fs/cgroup type=cgroup2 src=cgroup2 flags=MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC",
]
DEVICES = [(path, major, minor) for path, major, minor in (
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0))]
MKNOD = [line for path, major, minor in DEVICES
         for line in (f"mknodat {path} c {major}:{minor} 0666", f"fchownat {path} 0:0")]
PIVOT = ["pivot_root . .", "mount . flags=MS_REC|MS_SLAVE", "umount2 . MNT_DETACH"]


def masked_dir(path):
    return ["fsopen tmpfs", "fsconfig source=tmpfs", "fsconfig CMD_CREATE",
            f"fsmount {path} attr=MOUNT_ATTR_RDONLY", f"move_mount masked path {path}"]


def masked_file(path):
    return ["open_tree /dev/null OPEN_TREE_CLONE|AT_EMPTY_PATH", f"move_mount masked path {path}"]


def readonly_path(path):
    return [f"open_tree {path} OPEN_TREE_CLONE|AT_EMPTY_PATH|AT_RECURSIVE",
            f"mount_setattr {path} set=MOUNT_ATTR_RDONLY AT_EMPTY_PATH|AT_RECURSIVE",
            f"move_mount read-only path {path}"]


# linux.maskedPaths and linux.readonlyPaths of the default config, in its order
MASKED = (masked_dir("/proc/acpi") + masked_dir("/proc/asound") + masked_file("/proc/kcore")
          + masked_file("/proc/keys") + masked_file("/proc/latency_stats") + masked_file("/proc/timer_list")
          + masked_dir("/sys/firmware") + masked_dir("/proc/scsi"))
READONLY = (readonly_path("/proc/bus") + readonly_path("/proc/fs") + readonly_path("/proc/irq")
            + readonly_path("/proc/sys") + readonly_path("/proc/sysrq-trigger"))
ROOT_READONLY = ["mount_setattr / (root.readonly) set=MOUNT_ATTR_RDONLY AT_EMPTY_PATH"]


# --- the seam --------------------------------------------------------------------------------------

def test_the_recorder_swaps_exactly_the_kernel_calls_and_puts_them_back(tmp_path):
    from ocirun.linux import syscalls as sc
    real = {name: getattr(sc, name) for name in sc.KERNEL_CALLS}
    assert all(callable(f) for f in real.values()) and len(real) == len(sc.KERNEL_CALLS)
    with Recorder(str(tmp_path)) as rec:
        assert all(getattr(sc, name) != f for name, f in real.items())
        sc.sethostname("x")
        sc.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWUSER)
    assert {name: getattr(sc, name) for name in sc.KERNEL_CALLS} == real
    assert rec.lines() == ["sethostname x", "unshare CLONE_NEWNS|CLONE_NEWUSER"]


# --- the mount sequence ------------------------------------------------------------------------------

def test_default_config(bundle):
    """Propagation, the rootfs bind, the config's mounts in order, the device nodes; pivot_root, the
    old root made a slave and detached; masked paths, read-only paths, and the root read-only last."""
    rec = record_rootfs(bundle, default_config())
    assert rec.lines() == PROPAGATION + MOUNTS + MKNOD + PIVOT + MASKED + READONLY + ROOT_READONLY
    dev = os.path.join(bundle, "rootfs", "dev")     # the links are files, not calls: made before pivot_root
    assert [os.readlink(os.path.join(dev, n)) for n in ("fd", "stdin", "stdout", "stderr", "ptmx")] == [
        "/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2", "pts/ptmx"]


def test_user_namespace_config(bundle):
    """`ocirun spec --rootless`: device nodes are binds of the host's (no mknod, no chown), /sys is a
    read-only rbind of the host's, devpts has no gid=5; the rest as by default."""
    rec = record_rootfs(bundle, rootless_config(), new_userns=True)
    sys_bind = ["open_tree src=/sys OPEN_TREE_CLONE|AT_RECURSIVE|OPEN_TREE_CLOEXEC",
                "mount_setattr src=/sys, dst=/sys set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV|"
                "MOUNT_ATTR_NOEXEC AT_EMPTY_PATH",
                "move_mount src=/sys, dst=/sys"]
    mounts = [m.replace(",gid=5", "") for m in MOUNTS]
    mounts[5:6] = sys_bind
    binds = [line for path, _, _ in DEVICES
             for line in (f"open_tree {path} OPEN_TREE_CLONE", f"move_mount src={path}, dst={path}")]
    assert rec.lines() == PROPAGATION + mounts + binds + PIVOT + MASKED + READONLY + ROOT_READONLY
    assert not rec.lines("mknodat", "fchownat")


def test_sysfs_refused_in_a_user_namespace_becomes_a_bind(bundle):
    """No network namespace of its own: sysfs can not be mounted (EPERM), the host's /sys is bound."""
    config = default_config()
    config["linux"]["namespaces"].append({"type": "user"})
    ctx = InitContext(config=config, plan=check_mounts(config, bundle), bundle=bundle,
                      rootfs=os.path.join(bundle, "rootfs"), new_userns=True)
    with Recorder(ctx.rootfs) as rec:
        rec.fail("mount", errno.EPERM, when=lambda text: "type=sysfs" in text)
        rootfs.prepare_rootfs(ctx)
    at = rec.index(MOUNTS[5] + " -> EPERM")
    assert rec.lines()[at + 1:at + 4] == [
        "open_tree src=/sys OPEN_TREE_CLONE|AT_RECURSIVE|OPEN_TREE_CLOEXEC",
        "mount_setattr src=/sys, dst=/sys set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV|"
        "MOUNT_ATTR_NOEXEC AT_EMPTY_PATH",
        "move_mount src=/sys, dst=/sys"]


def test_readonly_root_and_late_readonly_mounts(bundle):
    """A read-only tmpfs is mounted read-write (its mount points are made under it) and made
    read-only after pivot_root, before the masks; root.readonly comes last, or not at all."""
    config = default_config()
    config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                             "options": ["ro", "nosuid"]})
    tmp_mount = "mount /tmp type=tmpfs src=tmpfs flags=MS_NOSUID"
    late = ["mount_setattr /tmp (ro) set=MOUNT_ATTR_RDONLY AT_EMPTY_PATH"]
    rec = record_rootfs(bundle, config)
    assert rec.lines() == (PROPAGATION + MOUNTS + [tmp_mount] + MKNOD + PIVOT + late + MASKED + READONLY
                           + ROOT_READONLY)

    config["root"]["readonly"] = False
    assert record_rootfs(bundle, config).lines() == (PROPAGATION + MOUNTS + [tmp_mount] + MKNOD + PIVOT + late
                                                     + MASKED + READONLY)


def test_rootfs_propagation_and_a_shared_parent(bundle):
    """linux.rootfsPropagation replaces the default rslave, and is applied to "/" again after
    pivot_root; the shared mount the rootfs is on is made private before the rootfs is bound."""
    config = default_config()
    config["linux"]["rootfsPropagation"] = "shared"
    shared = "1 0 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n"
    rec = record_rootfs(bundle, config, mountinfo_text=shared)
    lines = rec.lines()
    assert lines[:3] == ["mount / (linux.rootfsPropagation) flags=MS_SHARED",
                         "mount / (the mount the rootfs is on) flags=MS_PRIVATE",
                         "mount $ROOTFS src=$ROOTFS flags=MS_BIND|MS_REC"]
    after = lines.index("umount2 . MNT_DETACH") + 1
    assert lines[after] == "mount / (linux.rootfsPropagation) flags=MS_SHARED"


def test_the_init_mounts_the_plan_not_the_config_s_mounts(bundle):
    """The plan create sent is what the rootfs step mounts (config["mounts"] is not parsed again):
    a config whose mounts are gone, or invalid, after validation mounts the plan's; a mount only in
    the plan is made; linux.rootfsPropagation comes from the plan too."""
    config = default_config()
    plan = check_mounts(config, bundle)
    config["mounts"] = [{"destination": "", "type": "bind"}]     # the init would refuse this one
    config["linux"]["rootfsPropagation"] = "sideways"
    extra = dict(check_mounts({"mounts": [{"destination": "tmp//x/..", "type": "tmpfs", "source": "t",
                                           "options": ["ro", "size=1k"]}]}, bundle)["mounts"][0], index=7)
    plan["mounts"].append(extra)
    plan["rootfsPropagation"] = sc.MS_PRIVATE | sc.MS_REC
    ctx = InitContext(config=config, plan=plan, bundle=bundle, rootfs=os.path.join(bundle, "rootfs"))
    with Recorder(ctx.rootfs) as rec:
        rootfs.prepare_rootfs(ctx)
        rootfs.enter_rootfs(ctx)
        rootfs.finalize_rootfs(ctx)
    assert rec.lines()[:2 + len(MOUNTS) + 1] == (
        ["mount / (linux.rootfsPropagation) flags=MS_REC|MS_PRIVATE"] + PROPAGATION[1:] + MOUNTS
        + ["mount /tmp type=tmpfs src=t flags=0 data=size=1k"])
    assert "mount_setattr /tmp (ro) set=MOUNT_ATTR_RDONLY AT_EMPTY_PATH" in rec.lines()
    assert rec.lines()[rec.index("umount2 . MNT_DETACH") + 1] == "mount / (linux.rootfsPropagation) flags=MS_REC|MS_PRIVATE"


def test_the_init_steps_take_the_plan_from_the_bootstrap(bundle, monkeypatch):
    """record_init's boot carries the plan; without config["mounts"] and linux.namespaces the init
    still mounts and unshares what the plan says: it does not read them again."""
    config = default_config()
    plan = {**check_mounts(config, bundle), **check_namespaces(config, bundle)}
    del config["mounts"]
    config["linux"]["namespaces"] = [{"type": "bogus"}]
    rec = record_init(bundle, config, monkeypatch, plan=plan)
    assert [str(c) for c in rec.calls if c.step == "rootfs"][:len(PROPAGATION) + len(MOUNTS)] == PROPAGATION + MOUNTS
    assert rec.lines("unshare") == ["unshare CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET"]


def test_without_a_mount_namespace_the_init_chroots(bundle):
    config = default_config()
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "mount"]
    rec = record_rootfs(bundle, config, new_mntns=False)
    lines = rec.lines()
    assert lines[0] == "mount $ROOTFS src=$ROOTFS flags=MS_BIND|MS_REC"     # no propagation change
    assert lines[len(MOUNTS) + len(MKNOD) + 1] == "chroot $ROOTFS"
    assert not rec.lines("pivot_root", "umount2")
    assert lines[-1] == ROOT_READONLY[0]


# --- the init's steps ----------------------------------------------------------------------------------

# The steps whose kernel calls are recorded, run from init.STAGE1_STEPS/STAGE2_STEPS in the table's
# order. Left out: fork (a process), loopback (the test's own network namespace), mount sources,
# runtime hooks, createContainer hooks, ready, wait (messages to the parent and the fifo), seal imports
# (would empty this interpreter's sys.path), console (a pty and a socket), startContainer hooks, exec.
RECORDED_STEPS = ("join namespaces", "user namespace", "unshare", "session", "keyring", "check process",
                  "hostname", "rootfs", "pivot", "sysctl", "cwd", "finalize", "process settings")


def record_init(bundle: str, config: dict, monkeypatch, plan: dict | None = None) -> Recorder:
    if plan is None:
        plan = {**check_mounts(config, bundle), **check_namespaces(config, bundle)}
    if "process" not in plan:     # the process settings, as create checks them (processplan.build)
        plan["process"] = processplan.build(config)[0]
    boot = {"config": config, "plan": plan, "bundle": bundle,
            "rootfs": os.path.join(bundle, "rootfs"), "state": {"id": "c1"}}
    it = init.Init(None, boot)
    steps = [(name, step) for name, step in init.STAGE1_STEPS + init.STAGE2_STEPS if name in RECORDED_STEPS]
    assert [name for name, _ in steps] == list(RECORDED_STEPS)
    # the session step's handlers (exit on these while created): this interpreter's come back after
    signals = {s: _signal.getsignal(s) for s in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP,
                                               _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2)}
    monkeypatch.setattr(os, "setsid", lambda: None)     # the session step: not this test's session
    try:
        with Recorder(boot["rootfs"]) as rec:
            rec.step_of = lambda: it.step
            it.request = lambda msg: rec.record("parent", msg["type"]) or {}    # the parent's answer
            it.run_steps(steps)
    finally:
        for s, handler in signals.items():
            _signal.signal(s, handler)
        from ocirun.linux import procfs
        procfs.close_handle()
    return rec


def test_init_steps_default_config(bundle, monkeypatch):
    rec = record_init(bundle, default_config(), monkeypatch)
    order = [step for step, _ in rec.steps()]
    assert list(dict.fromkeys(order)) == ["unshare", "keyring", "hostname", "rootfs", "pivot", "finalize",
                                          "process settings"]
    assert rec.lines("unshare", "sethostname") == [
        "unshare CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET", "sethostname runc"]
    assert [c.step for c in rec.calls if c.name == "pivot_root"] == ["pivot"]
    assert str(rec.calls[-1]) == "prctl PR_CAP_AMBIENT CLEAR_ALL"
    # the process settings, in runc's order: limits, no_new_privs, bounding set, ids, capabilities
    process = [str(c) for c in rec.calls if c.step == "process settings"]
    expect = ["close_range 3 0xffffffff CLOEXEC", "prlimit RLIMIT_NOFILE 1024 1024",
              "prctl PR_SET_NO_NEW_PRIVS 1", "prctl PR_CAPBSET_DROP CAP_CHOWN", "prctl PR_SET_KEEPCAPS 1",
              "setgroups -", "setresgid 0 0 0", "setresuid 0 0 0", "prctl PR_SET_KEEPCAPS 0",
              "capset e=CAP_KILL,CAP_NET_BIND_SERVICE,CAP_AUDIT_WRITE p=CAP_KILL,CAP_NET_BIND_SERVICE,"
              "CAP_AUDIT_WRITE i=-"]
    assert [line for line in process if line in expect] == expect
    dropped = [line.split()[-1] for line in process if line.startswith("prctl PR_CAPBSET_DROP")]
    assert not {"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"} & set(dropped)
    assert "CAP_SYS_ADMIN" in dropped
    # the mounts are those of the rootfs sequence, split at pivot_root
    mounts = [str(c) for c in rec.calls if c.step in ("rootfs", "pivot", "finalize")]
    assert mounts == PROPAGATION + MOUNTS + MKNOD + PIVOT + MASKED + READONLY + ROOT_READONLY


def test_the_init_applies_the_plan_s_process_settings_not_the_config_s(bundle, monkeypatch):
    """The process settings create checked (plan["process"]) are what the init applies: config's
    own, here made invalid, are never parsed again (any parse of them would fail the step)."""
    config = default_config()
    plan = {**check_mounts(config, bundle), **check_namespaces(config, bundle)}
    plan["process"] = dict(processplan.build(config)[0], rlimits=[[7, "RLIMIT_NOFILE", 77, 88]],
                           user={"uid": 5, "gid": 6, "additionalGids": [9], "umask": None},
                           noNewPrivileges=False, oomScoreAdj=None,
                           capabilities={"bounding": [5], "effective": [5], "permitted": [5], "inheritable": [],
                                         "ambient": []})
    config["process"].update(rlimits="not a list", user={"uid": "x"}, capabilities=["CAP_FOO"],
                             oomScoreAdj="high", scheduler=7, ioPriority=[], execCPUAffinity=3)
    config["linux"].update(personality="LINUX", memoryPolicy=1)
    rec = record_init(bundle, config, monkeypatch, plan=plan)
    process = [str(c) for c in rec.calls if c.step == "process settings"]
    assert "prlimit RLIMIT_NOFILE 77 88" in process and not any(line.startswith("prctl PR_SET_NO_NEW_PRIVS")
                                                                 for line in process)
    assert [line for line in process if line.startswith(("setgroups", "setres", "capset"))] == [
        "setgroups 9", "setresgid 6 6 6", "setresuid 5 5 5", "capset e=CAP_KILL p=CAP_KILL i=-"]
    dropped = [line.split()[-1] for line in process if line.startswith("prctl PR_CAPBSET_DROP")]
    assert "CAP_KILL" not in dropped and "CAP_NET_BIND_SERVICE" in dropped


def test_init_steps_user_namespace_config(bundle, monkeypatch):
    """The new user namespace first, its maps written by the parent, root there, then the other
    namespaces: a hostname and mounts owned by the new user namespace."""
    rec = record_init(bundle, rootless_config(), monkeypatch)
    assert rec.lines()[:5] == ["unshare CLONE_NEWUSER", "parent userns_map", "setresgid 0 0 0",
                               "setresuid 0 0 0", "unshare CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID"]
    first = {}
    for i, c in enumerate(rec.calls):
        first.setdefault(c.name, i)
    assert first["sethostname"] < first["mount"] < first["pivot_root"] < first["capset"]
    assert (rec.index("pivot_root . .") < rec.index(ROOT_READONLY[0])
            < rec.index("prctl PR_SET_NO_NEW_PRIVS 1"))


# --- without root ------------------------------------------------------------------------------------

def test_this_module_passes_without_root():
    """The module's other tests, re-run as nobody (uid 65534, no capabilities) on a copy of the code."""
    if os.geteuid() != 0:
        pytest.skip("already unprivileged (this is the re-run, or pytest runs as a user)")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                 "--bounding-set=-all"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    if subprocess.run(as_nobody + [sys.executable, "-c", "import pytest"], env=env, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        pytest.skip(f"nobody can not run {sys.executable} -m pytest")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    work = tempfile.mkdtemp(prefix="ocirun-unprivileged-")     # not below pytest's 0700 tmp_path
    try:
        copy_dir = os.path.join(work, "copy")
        shutil.copytree(os.path.join(repo, "ocirun"), os.path.join(copy_dir, "ocirun"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        os.makedirs(os.path.join(copy_dir, "tests", "unit"))
        for name in ("tests/__init__.py", "tests/syscallrecorder.py", "tests/unit/__init__.py",
                     "tests/unit/test_mount_sequence.py"):
            shutil.copy(os.path.join(repo, name), os.path.join(copy_dir, name))
        for d, dirs, files in os.walk(work):
            os.chmod(d, 0o755)
            for n in files:
                os.chmod(os.path.join(d, n), 0o644)
        home = os.path.join(work, "home")       # nobody's own: pytest's tmp_path, HOME
        os.mkdir(home, 0o700)
        os.chown(home, 65534, 65534)
        env.update(HOME=home, TMPDIR=home)
        proc = subprocess.run(as_nobody + [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                           "tests/unit/test_mount_sequence.py"],
                              cwd=copy_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=120)
    finally:
        shutil.rmtree(work)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "1 skipped" in proc.stdout and "failed" not in proc.stdout, proc.stdout
