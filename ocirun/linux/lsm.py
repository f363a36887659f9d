"""Linux security modules: process.apparmorProfile, process.selinuxLabel and linux.mountLabel.

    validate_lsm(config)      # create time, pure reads: ConfigError when the host lacks the LSM asked for
    prepare_lsm(config)       # in the init BEFORE pivot_root: opens the host's procfs (checked) if needed
    apply_exec_labels(config) # in the init after no_new_privs, before seccomp (runc's order, D-13)

The labels take effect at the next execve: AppArmor's "exec <profile>" written to
/proc/thread-self/attr/apparmor/exec (attr/exec on kernels without the per-LSM directory), SELinux's
label written to /proc/thread-self/attr/exec. Both are written through a handle on the host's procfs
taken before the container's rootfs is entered and checked to be a real procfs (fstatfs ==
PROC_SUPER_MAGIC, hardening D-4), so a fake /proc in the rootfs or a mount over it can never swallow
the label (CVE-2019-16884 class). The file opened is checked to be on procfs too.

linux.mountLabel is applied by ocirun/linux/mounts.py (context= on new filesystems); here it is only
refused when SELinux is off, as are the two process labels: a label that cannot be applied is an error,
never silently ignored.
"""
import os

from ocirun.errors import ConfigError, OciError
from ocirun.linux import procfs
from ocirun.linux import syscalls as sc

SELINUX_MAGIC = 0xF97CFF8C

_proc_fd: int | None = None     # O_PATH handle on the host's /proc, opened by prepare_lsm()


def apparmor_enabled() -> bool:
    """As runc (apparmor.IsEnabled): securityfs shows apparmor and the module parameter says Y."""
    if not os.path.isdir("/sys/kernel/security/apparmor"):
        return False
    try:
        with open("/sys/module/apparmor/parameters/enabled", "rb") as f:
            return f.read(1) == b"Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    """selinuxfs mounted at /sys/fs/selinux (checked by its magic, not just by a path existing)."""
    try:
        fd = os.open("/sys/fs/selinux", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return sc.fstatfs_type(fd) == SELINUX_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def _wanted(config: dict) -> tuple[str | None, str | None, str | None]:
    process = config.get("process") or {}
    linux = config.get("linux") or {}
    return process.get("apparmorProfile") or None, process.get("selinuxLabel") or None, \
        linux.get("mountLabel") or None


def validate_lsm(config: dict) -> None:
    """ConfigError (one line naming the field) when a label is asked for and the host cannot apply it."""
    apparmor, selinux, mount_label = _wanted(config)
    for value, path in ((apparmor, "process.apparmorProfile"), (selinux, "process.selinuxLabel"),
                        (mount_label, "linux.mountLabel")):
        if value is not None and (not isinstance(value, str) or "\n" in value or "\0" in value):
            raise ConfigError(path, f"invalid label {value!r}")
    if apparmor and not apparmor_enabled():
        raise ConfigError("process.apparmorProfile", "AppArmor is not enabled on this host")
    if selinux and not selinux_enabled():
        raise ConfigError("process.selinuxLabel", "SELinux is not enabled on this host")
    if mount_label and not selinux_enabled():
        raise ConfigError("linux.mountLabel", "SELinux is not enabled on this host")


def prepare_lsm(config: dict) -> None:
    """Validate again (the init's view of the host) and, when a process label is configured, keep an
    O_PATH handle on the host's /proc for apply_exec_labels(). Nothing is opened otherwise."""
    global _proc_fd
    validate_lsm(config)
    apparmor, selinux, _ = _wanted(config)
    if not (apparmor or selinux) or _proc_fd is not None:
        return
    fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    if sc.fstatfs_type(fd) != procfs.PROC_SUPER_MAGIC:
        os.close(fd)
        raise OciError("/proc: not a procfs (fstatfs magic), refusing to write LSM labels through it")
    _proc_fd = fd


def _write_attr(relpaths: tuple[str, ...], data: bytes, field: str) -> None:
    if _proc_fd is None:
        raise OciError(f"{field}: internal error: prepare_lsm() was not called before pivot_root")
    procfs.write_beneath(_proc_fd, relpaths, data, field)


def apply_exec_labels(config: dict) -> None:
    """Set the labels the container's program gets at execve. Called as root in the container, after
    PR_SET_NO_NEW_PRIVS and before seccomp is loaded (which might forbid the write)."""
    apparmor, selinux, _ = _wanted(config)
    if apparmor:
        _write_attr(("thread-self/attr/apparmor/exec", "thread-self/attr/exec"),
                    f"exec {apparmor}".encode(), "process.apparmorProfile")
    if selinux:
        _write_attr(("thread-self/attr/exec",), selinux.encode(), "process.selinuxLabel")


def close_proc_fd() -> None:
    global _proc_fd
    if _proc_fd is not None:
        os.close(_proc_fd)
        _proc_fd = None
