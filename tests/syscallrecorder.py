"""A recording fake of the init's syscall seam: ocirun.linux.syscalls.KERNEL_CALLS.

    with Recorder(rootfs) as rec:
        rootfs.prepare_rootfs(ctx); rootfs.enter_rootfs(ctx); rootfs.finalize_rootfs(ctx)
    rec.lines()     # ["mount / (linux.rootfsPropagation) flags=MS_REC|MS_SLAVE", "mount $ROOTFS ...", ...]

Inside the block every name of KERNEL_CALLS in the syscalls module is a fake that records the call
(flags decoded to names, paths inside the rootfs as the container sees them, the host path of the
rootfs as $ROOTFS) and returns what the kernel would: nothing, 0, or an fd (of /dev/null, so that
os.close works). Nothing is mounted, so the code runs without privileges on a plain directory:
path lookups (safepath's openat2), mkdir, symlinks and stat stay real.

A few things the code reads from the kernel are faked as well, so that what is recorded does not
depend on the host: /proc/self/mountinfo (mountinfo.read: `mountinfo_text`), fstatfs of
/sys/fs/cgroup (`cgroup2`) and /proc, the effective uid (`euid`: 0, as for the init of a runtime run
by root; None: the real one). Two places
stand in for a kernel that did not do what was recorded: after the faked pivot_root or chroot, "/" is
the rootfs (rootfs.open_current_root); and the faked mknod makes an empty regular file, so masking
with /dev/null does not insist on a 1:3 character device (rootfs._open_dev_null; the root end-to-end
tests check that, tests/integration/test_rootfs_units.py). On leaving, every fake is undone and the
working directory and umask, which the sequence changes, are restored.

fail(name, err, when=...) makes a fake raise SyscallError, to follow fallbacks (sysfs in a user
namespace). step_of: a function naming the running step (lambda: init.step), recorded with each call.
"""
import errno
import os
import stat

from ocirun.errors import SyscallError
from ocirun.linux import capabilities, mountinfo, rootfs, safepath
from ocirun.linux import syscalls as sc
from ocirun.linux.cgroups import mount as cgroupmount

# a private "/" (no shared:N): no MS_PRIVATE of the rootfs's parent mount
PRIVATE_ROOT = "1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"


def _names(value: int, table) -> str:
    names = [name for name, bit in table if bit and value & bit == bit]
    rest = value & ~sum(bit for name, bit in table if name in names)
    if rest:
        names.append(hex(rest))
    return "|".join(names) or "0"


_CLONE = [(k, v) for k, v in vars(sc).items() if k.startswith("CLONE_NEW")]
_OPEN_TREE = [("OPEN_TREE_CLONE", sc.OPEN_TREE_CLONE), ("AT_EMPTY_PATH", sc.AT_EMPTY_PATH),
              ("AT_RECURSIVE", sc.AT_RECURSIVE), ("OPEN_TREE_CLOEXEC", sc.OPEN_TREE_CLOEXEC)]
_AT = [("AT_EMPTY_PATH", sc.AT_EMPTY_PATH), ("AT_RECURSIVE", sc.AT_RECURSIVE)]
_ATTRS = [(k, v) for k, v in vars(sc).items() if k.startswith("MOUNT_ATTR_") and k != "MOUNT_ATTR__ATIME"]
_MNT = [("MNT_FORCE", sc.MNT_FORCE), ("MNT_DETACH", sc.MNT_DETACH), ("UMOUNT_NOFOLLOW", sc.UMOUNT_NOFOLLOW)]
_PR = {}
for _k, _v in vars(sc).items():
    if _k.startswith("PR_"):
        _PR.setdefault(_v, _k)
_AMBIENT = {1: "IS_SET", 2: "RAISE", 3: "LOWER", 4: "CLEAR_ALL"}
_NODE = {stat.S_IFCHR: "c", stat.S_IFBLK: "b", stat.S_IFIFO: "p", stat.S_IFREG: "f"}


def _caps(mask: int) -> str:
    return ",".join(name for i, name in enumerate(capabilities.CAPABILITIES) if mask >> i & 1) or "-"


class Call:
    __slots__ = ("name", "text", "step")

    def __init__(self, name: str, text: str, step: str):
        self.name, self.text, self.step = name, text, step

    def __str__(self) -> str:
        return f"{self.name} {self.text}".rstrip()

    __repr__ = __str__


class Recorder:
    def __init__(self, rootfs_path: str, *, mountinfo_text: str = PRIVATE_ROOT, cgroup2: bool = True,
                 euid: int | None = 0):
        self.root = rootfs_path.rstrip("/")
        self.mountinfo_text = mountinfo_text
        self.cgroup2 = cgroup2
        self.euid = euid
        self.calls: list[Call] = []
        self.step_of = lambda: ""
        self.new_root: str | None = None     # where "/" is once pivot_root or chroot ran
        self._failures = []
        self._saved = []

    # --- reading what was recorded -----------------------------------------------------------------
    def lines(self, *names: str) -> list[str]:
        """The calls as text, in order; only those named, when names are given."""
        return [str(c) for c in self.calls if not names or c.name in names]

    def steps(self) -> list[tuple[str, str]]:
        """(step, call name) of every call, consecutive repeats folded into one."""
        out = []
        for c in self.calls:
            if not out or out[-1] != (c.step, c.name):
                out.append((c.step, c.name))
        return out

    def index(self, line: str) -> int:
        """Position of the first call whose text is `line` (ValueError when none)."""
        return self.lines().index(line)

    def fail(self, name: str, err: int, when=lambda text: True) -> None:
        """Make the fake `name` raise SyscallError(err) for calls whose text `when` accepts."""
        self._failures.append((name, err, when))

    # --- the swap ----------------------------------------------------------------------------------
    def _patch(self, owner, name: str, value) -> None:
        self._saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def __enter__(self):
        missing = [n for n in sc.KERNEL_CALLS if not hasattr(self, "fake_" + n)]
        assert not missing, f"syscalls.KERNEL_CALLS without a fake in the recorder: {missing}"
        self._cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._umask = os.umask(0o022)
        os.umask(self._umask)
        for name in sc.KERNEL_CALLS:
            self._patch(sc, name, getattr(self, "fake_" + name))
        self._real_fstatfs_type = sc.fstatfs_type
        self._patch(sc, "fstatfs_type", self.fake_fstatfs_type)
        self._patch(sc, "keyctl_describe", lambda serial: "keyring;0;0;3f010000;_ses")
        self._patch(mountinfo, "read",
                    lambda path="/proc/self/mountinfo": mountinfo.parse(self.mountinfo_text))
        self._patch(rootfs, "open_current_root", self.fake_open_current_root)
        self._patch(rootfs, "_open_dev_null", lambda root_fd: safepath.open_in_root(
            root_fd, "/dev/null", sc.O_PATH, no_symlinks=True))
        if self.euid is not None:
            self._patch(os, "geteuid", lambda: self.euid)
        return self

    def __exit__(self, *exc) -> None:
        while self._saved:
            owner, name, value = self._saved.pop()
            setattr(owner, name, value)
        os.fchdir(self._cwd)
        os.close(self._cwd)
        os.umask(self._umask)

    # --- helpers -----------------------------------------------------------------------------------
    def show(self, path) -> str:
        """A host path as recorded: the rootfs as $ROOTFS."""
        if path is None:
            return "-"
        path = str(path)
        if path == self.root or path.startswith(self.root + "/"):
            return "$ROOTFS" + path[len(self.root):]
        return path

    def _in_root(self, dir_fd: int, name: str) -> str:
        """dir_fd/name as the container sees it (dir_fd is inside the rootfs)."""
        where = os.readlink(safepath.fd_path(dir_fd))
        inside = where[len(self.root):] if where.startswith(self.root) else where
        return os.path.join(inside or "/", name)

    def record(self, name: str, text: str) -> None:
        for fname, err, when in self._failures:
            if fname == name and when(text):
                self.calls.append(Call(name, f"{text} -> {errno.errorcode[err]}", self.step_of()))
                raise SyscallError(err, name, text)
        self.calls.append(Call(name, text, self.step_of()))

    @staticmethod
    def fake_fd() -> int:
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)

    # --- kernel views ------------------------------------------------------------------------------
    def fake_fstatfs_type(self, fd: int) -> int:
        path = os.readlink(safepath.fd_path(fd))
        if path == "/sys/fs/cgroup":
            return cgroupmount.CGROUP2_SUPER_MAGIC if self.cgroup2 else safepath.TMPFS_MAGIC
        if path == "/proc":
            return safepath.PROC_SUPER_MAGIC
        return self._real_fstatfs_type(fd)

    def fake_open_current_root(self) -> int:
        if self.new_root is None:
            raise AssertionError("the root was opened before pivot_root or chroot")
        return os.open(self.new_root, sc.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    # --- mounts and the root -----------------------------------------------------------------------
    def fake_mount(self, source, target, fstype, flags=0, data=None, *, label=None) -> None:
        text = self.show(label or target)
        if fstype:
            text += f" type={fstype}"
        if source is not None:
            text += f" src={self.show(source)}"
        text += f" flags={sc.mount_flags_text(flags)}"
        if data:
            text += f" data={data}"
        self.record("mount", text)

    def fake_umount2(self, target, flags=0) -> None:
        self.record("umount2", f"{self.show(target)} {_names(flags, _MNT)}")

    def fake_pivot_root(self, new_root, put_old) -> None:
        self.record("pivot_root", f"{new_root} {put_old}")
        self.new_root = os.path.realpath(new_root)

    def fake_chroot(self, path) -> None:
        self.record("chroot", self.show(os.path.realpath(path)))
        self.new_root = os.path.realpath(path)

    def fake_open_tree(self, dirfd, path, flags, *, label="") -> int:
        self.record("open_tree", f"{self.show(label or path)} {_names(flags, _OPEN_TREE)}")
        return self.fake_fd()

    def fake_move_mount(self, from_fd, from_path, to_fd, to_path, flags, *, label="") -> None:
        self.record("move_mount", self.show(label or to_path))

    def fake_mount_setattr(self, dirfd, path, flags, attr_set=0, attr_clr=0, propagation=0, userns_fd=0,
                           *, label="") -> None:
        text = f"{self.show(label or path)} set={_names(attr_set, _ATTRS)}"
        if attr_clr:
            text += f" clr={_names(attr_clr, _ATTRS)}"
        self.record("mount_setattr", f"{text} {_names(flags, _AT)}")

    def fake_fsopen(self, fstype, flags=sc.FSOPEN_CLOEXEC) -> int:
        self.record("fsopen", fstype)
        return self.fake_fd()

    def fake_fsconfig(self, fs_fd, cmd, key=None, value=None, aux=0, *, label="") -> None:
        self.record("fsconfig", "CMD_CREATE" if cmd == sc.FSCONFIG_CMD_CREATE else f"{key}={value}")

    def fake_fsmount(self, fs_fd, flags=sc.FSMOUNT_CLOEXEC, attr_flags=0, *, label="") -> int:
        self.record("fsmount", f"{label} attr={_names(attr_flags, _ATTRS)}")
        return self.fake_fd()

    # --- device nodes ------------------------------------------------------------------------------
    def fake_mknodat(self, dir_fd, name, mode, rdev) -> None:
        kind = _NODE.get(stat.S_IFMT(mode), oct(stat.S_IFMT(mode)))
        self.record("mknodat", f"{self._in_root(dir_fd, name)} {kind} {os.major(rdev)}:{os.minor(rdev)} "
                               f"{stat.S_IMODE(mode):04o}")
        # the node as an empty file: later steps find something there (masking binds /dev/null)
        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         stat.S_IMODE(mode), dir_fd=dir_fd))

    def fake_fchownat(self, dir_fd, name, uid, gid) -> None:
        self.record("fchownat", f"{self._in_root(dir_fd, name)} {uid}:{gid}")

    def fake_fchown(self, fd, uid, gid) -> None:
        self.record("fchown", f"fd {fd} {uid}:{gid}")

    # --- namespaces, names -------------------------------------------------------------------------
    def fake_unshare(self, flags) -> None:
        self.record("unshare", _names(flags, _CLONE))

    def fake_setns(self, fd, nstype=0, *, label="") -> None:
        self.record("setns", f"{label} {_names(nstype, _CLONE)}")

    def fake_sethostname(self, name) -> None:
        self.record("sethostname", name)

    def fake_setdomainname(self, name) -> None:
        self.record("setdomainname", name)

    # --- the process -------------------------------------------------------------------------------
    def fake_setgroups(self, gids) -> None:
        self.record("setgroups", ",".join(map(str, gids)) or "-")

    def fake_setresgid(self, rgid, egid, sgid) -> None:
        self.record("setresgid", f"{rgid} {egid} {sgid}")

    def fake_setresuid(self, ruid, euid, suid) -> None:
        self.record("setresuid", f"{ruid} {euid} {suid}")

    def fake_prctl(self, option, arg2=0, arg3=0, arg4=0, arg5=0, *, op="prctl") -> int:
        name = _PR.get(option, str(option))
        if option == sc.PR_CAPBSET_DROP:
            text = f"{name} {capabilities.CAPABILITIES[arg2]}"
        elif option == sc.PR_CAP_AMBIENT:
            text = f"{name} {_AMBIENT.get(arg2, arg2)}"
            if arg2 == 2:   # PR_CAP_AMBIENT_RAISE
                text += f" {capabilities.CAPABILITIES[arg3]}"
        else:
            text = f"{name} {arg2}"
        self.record("prctl", text)
        return 0

    def fake_capset(self, effective, permitted, inheritable, *, detail="") -> None:
        self.record("capset", f"e={_caps(effective)} p={_caps(permitted)} i={_caps(inheritable)}")

    def fake_prlimit(self, resource_nr, soft, hard) -> None:
        from ocirun.processplan import RLIMITS
        name = {v: k for k, v in RLIMITS.items()}.get(resource_nr, str(resource_nr))
        self.record("prlimit", f"{name} {soft} {hard}")

    def fake_personality(self, persona) -> int:
        self.record("personality", hex(persona))
        return 0

    def fake_ioprio_set(self, which, who, ioprio) -> None:
        self.record("ioprio_set", f"{which} {who} {ioprio:#x}")

    def fake_sched_setattr(self, pid, policy, flags=0, nice=0, priority=0, runtime=0, deadline=0, period=0,
                           *, label="") -> None:
        self.record("sched_setattr", f"policy={policy} nice={nice} priority={priority}")

    def fake_set_mempolicy(self, mode, nodes) -> None:
        self.record("set_mempolicy", f"{mode:#x} {sorted(nodes)}")

    def fake_close_range(self, first, last=0xFFFFFFFF, flags=0) -> None:
        how = "CLOEXEC" if flags == sc.CLOSE_RANGE_CLOEXEC else flags
        self.record("close_range", f"{first} {last:#x} {how}")

    def fake_seccomp_set_mode_filter(self, flags, program) -> int:
        self.record("seccomp_set_mode_filter", f"flags={flags:#x} instructions={len(program) // 8}")
        return 0

    def fake_keyctl_join_session_keyring(self, name) -> int:
        self.record("keyctl_join_session_keyring", name)
        return 1

    def fake_keyctl_setperm(self, serial, perm) -> None:
        self.record("keyctl_setperm", f"{perm:#x}")
