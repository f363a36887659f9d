"""One mount of the plan done onto an fd inside the rootfs, in the container's init.

The mounts come resolved and checked by `create` (ocirun/linux/mountplan.py: destination cleaned,
bind source joined with the bundle, options parsed); what is checked here needs the container's
view: the destination resolved inside the rootfs (check_proc_destination on the real path), the
bind source's type, procfs on /proc.

Bind mounts use the new mount API: open_tree(OPEN_TREE_CLONE) of the source, mount_setattr on the
detached copy (ro, nosuid, idmap...), move_mount onto the destination fd. mount_setattr only changes
the attributes named, so flags locked by a user namespace (nosuid/nodev on the source) are kept and a
read-only bind needs no MS_REMOUNT guesswork. In a user namespace the source is cloned (and
idmapped) by the runtime as host root instead (ocirun/linux/mountsources.py). Other filesystems use
mount(2) with the destination given as /proc/self/fd/N of an fd resolved inside the rootfs (D-2).
"""
import errno
import os
import _signal as signal  # the C module: signal imports enum
import stat

from ocirun import log
from ocirun.errors import ConfigError, OciError, SyscallError
from ocirun.linux import lsm, mountinfo, procfs, safepath
from ocirun.linux.cgroups import mount as cgroupmount
from ocirun.linux import syscalls as sc


# The option tables and their parsing are the plan's (create resolves every mount once).
from ocirun.linux.mountplan import MountOptions, parse_options


def bind_attrs(o: MountOptions) -> tuple[int, int]:
    """(attr_set, attr_clr) for mount_setattr on the top mount of a bind, from its per-mount flags.

    Only the flags an option named are touched; superblock flags (sync, mand, ...) have no meaning
    for a bind and are ignored, as the kernel ignores them on a bind remount.
    """
    attr_set = attr_clr = 0
    for ms, attr in ((sc.MS_RDONLY, sc.MOUNT_ATTR_RDONLY), (sc.MS_NOSUID, sc.MOUNT_ATTR_NOSUID),
                     (sc.MS_NODEV, sc.MOUNT_ATTR_NODEV), (sc.MS_NOEXEC, sc.MOUNT_ATTR_NOEXEC),
                     (sc.MS_NODIRATIME, sc.MOUNT_ATTR_NODIRATIME),
                     (sc.MS_NOSYMFOLLOW, sc.MOUNT_ATTR_NOSYMFOLLOW)):
        if o.flags & ms:
            attr_set |= attr
        elif o.cleared & ms:
            attr_clr |= attr
    atime = None
    if o.flags & sc.MS_STRICTATIME:
        atime = sc.MOUNT_ATTR_STRICTATIME
    elif o.flags & sc.MS_NOATIME:
        atime = sc.MOUNT_ATTR_NOATIME
    elif o.flags & sc.MS_RELATIME:
        atime = sc.MOUNT_ATTR_RELATIME
    elif o.cleared & sc.MS_RELATIME:
        atime = sc.MOUNT_ATTR_STRICTATIME
    elif o.cleared & (sc.MS_NOATIME | sc.MS_STRICTATIME):
        atime = sc.MOUNT_ATTR_RELATIME
    if atime is not None:
        attr_set |= atime
        attr_clr |= sc.MOUNT_ATTR__ATIME
    return attr_set, attr_clr


# --- SELinux mount label ---------------------------------------------------------------------------

_selinux_noted = False


def with_mount_label(data: str | None, label: str | None, fstype: str) -> str | None:
    """Add context="label" to a new filesystem's data when SELinux is on (mountLabel is optional)."""
    global _selinux_noted
    if not label or fstype in ("proc", "sysfs", "cgroup", "cgroup2", "bind"):
        return data
    if not lsm.selinux_enabled():
        if not _selinux_noted:
            log.debug(f"linux.mountLabel {label!r} not applied: SELinux is not enabled on this host")
            _selinux_noted = True
        return data
    ctx = f'context="{label}"'
    return f"{data},{ctx}" if data else ctx


# --- idmapped mounts ---------------------------------------------------------------------------------

def _write_map(path: str, mappings: list[dict]) -> None:
    text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def userns_fd_for(uid_mappings: list[dict], gid_mappings: list[dict]) -> int:
    """A user namespace fd with these mappings, for MOUNT_ATTR_IDMAP: a child unshares one and waits.

    The child tells its pid as /proc names it (readlink /proc/self): before pivot_root /proc is the
    host's, whose pid namespace is not ours, so os.fork()'s pid would name another process there.
    """
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: hold a fresh user namespace until the parent has its fd
        try:
            os.close(to_child_w)
            os.close(to_parent_r)
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(to_parent_w, os.readlink("/proc/self").encode())
            os.close(to_parent_w)
            os.read(to_child_r, 1)
        finally:
            os._exit(0)
    os.close(to_child_r)
    os.close(to_parent_w)
    try:
        proc_pid = os.read(to_parent_r, 32).decode()
        if not proc_pid.isdigit():
            raise OciError("idmapped mount: the helper process could not create a user namespace")
        _write_map(f"/proc/{proc_pid}/uid_map", uid_mappings)
        _write_map(f"/proc/{proc_pid}/gid_map", gid_mappings)
        return os.open(f"/proc/{proc_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(to_child_w)
        os.close(to_parent_r)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


def idmap_userns(req: "MountRequest", container_userns: str | None) -> int:
    """The user namespace fd of an idmapped mount: one with the mount's own mappings, else the
    container's (container_userns: its /proc/<pid>/ns/user path, None without one). The plan has
    refused mappings given by halves and an idmap with neither (mountplan.resolve_mount)."""
    if req.uid_mappings:
        return userns_fd_for(req.uid_mappings, req.gid_mappings)
    if not container_userns:
        raise OciError(f"{req.where}: idmap without mappings needs the container's user namespace")
    return os.open(container_userns, os.O_RDONLY | os.O_CLOEXEC)


# --- one mount ---------------------------------------------------------------------------------------

# What may be mounted under /proc (as runc's checkProcMount): procfs.MOUNT_ALLOWLIST, or anything
# from procfs itself or from a FUSE filesystem such as lxcfs.
FUSE_SUPER_MAGIC = 0x65735546


class MountRequest:
    """One entry of `mounts`, as the plan resolved it (from_plan), plus the tree of its source."""

    def __init__(self, index: int, destination: str, fstype: str | None, source: str | None,
                 options: MountOptions, uid_mappings: list | None = None, gid_mappings: list | None = None):
        self.index, self.destination, self.fstype = index, destination, fstype
        self.source, self.options = source, options
        self.uid_mappings, self.gid_mappings = uid_mappings, gid_mappings
        self.tree: int | None = None   # the source already cloned by the runtime (mountsources.py)

    @classmethod
    def from_plan(cls, entry: dict) -> "MountRequest":
        """From an entry of the plan's "mounts" (mountplan.resolve_mount)."""
        return cls(entry["index"], entry["destination"], entry["type"], entry["source"],
                   MountOptions.from_plan(entry["options"]), entry["uidMappings"], entry["gidMappings"])

    @property
    def where(self) -> str:
        return f"mounts[{self.index}] (destination {self.destination})"

    @property
    def idmapped(self) -> bool:
        return bool(self.options.idmap or self.options.ridmap or self.uid_mappings)


def requests(plan_mounts: list) -> list:
    return [MountRequest.from_plan(entry) for entry in plan_mounts]


def check_proc_destination(req: MountRequest, real_dest: str | None) -> None:
    """Refuse mounts over /proc files that could hide what the kernel shows (runc checkProcMount)."""
    for dest in {req.destination, real_dest or req.destination}:
        if dest != "/proc" and not dest.startswith("/proc/"):
            continue
        if dest == "/proc":
            if req.fstype == "proc" and not req.options.bind:
                continue
        elif dest in procfs.MOUNT_ALLOWLIST:
            continue
        if req.options.bind and req.source:
            try:
                fd = os.dup(req.tree) if req.tree is not None else os.open(req.source, sc.O_PATH | os.O_CLOEXEC)
                try:
                    if sc.fstatfs_type(fd) in (safepath.PROC_SUPER_MAGIC, FUSE_SUPER_MAGIC):
                        continue
                finally:
                    os.close(fd)
            except OSError:
                pass
        raise OciError(f"{req.where}: mounting over {dest} is not allowed (only procfs on /proc, "
                       f"and a few files under it)")


def _is_dir_source(req: MountRequest) -> bool:
    if not req.options.bind:
        return True
    try:
        return stat.S_ISDIR(os.stat(req.source if req.tree is None else req.tree).st_mode)
    except OSError as e:
        raise SyscallError(e.errno, "stat", f"source {req.source}") from None


def apply_after(req: MountRequest, root_fd: int) -> None:
    """Propagation and recursive attributes, on the mount now at the destination."""
    o = req.options
    if not o.propagation and not (o.rec_set or o.rec_clr):
        return
    fd = safepath.open_in_root(root_fd, req.destination)
    try:
        for prop in o.propagation:
            sc.mount(None, safepath.fd_path(fd), None, prop, label=req.destination)
        if o.rec_set or o.rec_clr:
            sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, o.rec_set, o.rec_clr,
                             label=req.destination)
    finally:
        os.close(fd)


def clone_source(req: MountRequest, container_userns: str | None) -> int:
    """A detached copy of a bind's source (open_tree OPEN_TREE_CLONE, recursive for rbind), idmapped
    when the mount asks for it (which the kernel allows only on a tree not yet attached)."""
    o = req.options
    flags = sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC | (sc.AT_RECURSIVE if o.recursive else 0)
    tree = sc.open_tree(-100, req.source, flags, label=f"src={req.source}")  # AT_FDCWD: a host path
    try:
        if req.idmapped:
            userns = idmap_userns(req, container_userns)
            try:
                sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if o.ridmap else 0),
                                 sc.MOUNT_ATTR_IDMAP, 0, 0, userns,
                                 label=f"src={req.source}, dst={req.destination} (idmap)")
            finally:
                os.close(userns)
    except BaseException:
        os.close(tree)
        raise
    return tree


def bind_mount(req: MountRequest, target_fd: int, in_userns: bool) -> None:
    """The source's tree (cloned here, or by the runtime: req.tree), its attributes, moved onto the fd."""
    tree, req.tree = req.tree, None
    if tree is None:
        tree = clone_source(req, "/proc/self/ns/user" if in_userns else None)
    try:
        attr_set, attr_clr = bind_attrs(req.options)
        if attr_set or attr_clr:
            sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH, attr_set, attr_clr,
                             label=f"src={req.source}, dst={req.destination}")
        sc.move_mount(tree, "", target_fd, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH,
                      label=f"src={req.source}, dst={req.destination}")
    finally:
        os.close(tree)


def readonly_later(req: MountRequest) -> bool:
    """A read-only tmpfs, or /dev, is mounted read-write and made read-only by finalize_rootfs, as
    runc does: /dev still gets its submounts, device nodes and links, a tmpfs the mountpoints of the
    mounts below it."""
    return (bool(req.options.flags & sc.MS_RDONLY) and not req.options.bind
            and (req.fstype == "tmpfs" or req.destination == "/dev"))


def fs_mount(req: MountRequest, target_fd: int, data: str | None) -> None:
    """mount(2) of a new filesystem instance onto the fd (proc, tmpfs, overlay, any type by name)."""
    o = req.options
    flags = o.flags & ~(sc.MS_BIND | sc.MS_REC)
    if readonly_later(req):
        flags &= ~sc.MS_RDONLY
    source = req.source or req.fstype or "none"
    sc.mount(source, safepath.fd_path(target_fd), req.fstype, flags, data, label=req.destination)


def copy_tree(src_fd: int, dst_fd: int) -> None:
    """tmpcopyup: copy a directory's content (by fds, never following symlinks) into the new tmpfs."""
    for entry in os.scandir(src_fd):
        st = entry.stat(follow_symlinks=False)
        name = entry.name
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, stat.S_IMODE(st.st_mode), dir_fd=dst_fd)
            s = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
            d = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst_fd)
            try:
                copy_tree(s, d)
            finally:
                os.close(s)
                os.close(d)
        elif stat.S_ISREG(st.st_mode):
            s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
            d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                        stat.S_IMODE(st.st_mode), dir_fd=dst_fd)
            try:
                while chunk := os.read(s, 1 << 20):
                    os.write(d, chunk)
            finally:
                os.close(s)
                os.close(d)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src_fd), name, dir_fd=dst_fd)
        else:
            sc.mknodat(dst_fd, name, st.st_mode, st.st_rdev)
        sc.fchownat(dst_fd, name, st.st_uid, st.st_gid)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst_fd)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_fd)


def tmpfs_copyup(req: MountRequest, root_fd: int, target_fd: int, data: str | None) -> None:
    old = safepath.open_in_root(root_fd, req.destination, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fs_mount(req, target_fd, data)
        new = safepath.open_in_root(root_fd, req.destination, os.O_RDONLY | os.O_DIRECTORY)
        try:
            copy_tree(old, new)
        finally:
            os.close(new)
    finally:
        os.close(old)


def mount_one(req: MountRequest, root_fd: int, ctx) -> None:
    """Mount one config entry at its destination, resolved inside the root (errors name the mount).

    ctx: the InitContext (rootfs, new_userns, new_cgroupns, config's linux.mountLabel).
    """
    try:
        _mount_one(req, root_fd, ctx)
    except SyscallError as e:
        raise SyscallError(e.errno, f"{req.where}: {e.op}", e.detail) from None
    except ConfigError:
        raise
    except OciError as e:
        if str(e).startswith("mounts["):
            raise
        raise OciError(f"{req.where}: {e}") from None
    except OSError as e:
        raise SyscallError(e.errno, req.where, e.filename or "") from None


# Destinations that must be real directories of the rootfs (D-5).
SPECIAL_DIRS = ("/proc", "/sys", "/dev")


def _mount_one(req: MountRequest, root_fd: int, ctx) -> None:
    rootfs, in_userns = ctx.rootfs, ctx.new_userns
    mount_label = (ctx.config.get("linux") or {}).get("mountLabel")
    if req.fstype in ("cgroup", "cgroup2") and not req.options.bind:
        return cgroupmount.mount_cgroup(req, root_fd, ctx)
    no_symlinks = req.destination in SPECIAL_DIRS
    target = safepath.ensure_target(root_fd, req.destination, _is_dir_source(req), no_symlinks=no_symlinks)
    try:
        real = safepath.path_of_fd(target, rootfs)
        if real is None:
            raise safepath.UnsafePathError("destination resolves outside the rootfs")
        check_proc_destination(req, real)
        if req.fstype == "proc" and not req.options.bind and not stat.S_ISDIR(os.fstat(target).st_mode):
            raise safepath.UnsafePathError("proc must be mounted on a directory")
        if req.options.bind:
            bind_mount(req, target, in_userns)
        else:
            data = with_mount_label(req.options.data_text(), mount_label, req.fstype or "")
            try:
                if req.options.tmpcopyup and req.fstype == "tmpfs":
                    tmpfs_copyup(req, root_fd, target, data)
                else:
                    fs_mount(req, target, data)
            except SyscallError as e:
                # sysfs/mqueue need a netns/ipcns owned by our user namespace; runc then binds the host's
                if e.errno == errno.EPERM and req.fstype in ("sysfs", "mqueue") and in_userns:
                    host = "/sys" if req.fstype == "sysfs" else "/dev/mqueue"
                    log.debug(f"{req.where}: {req.fstype} not permitted, bind-mounting the host's {host}")
                    o = parse_options(["rbind", "nosuid", "noexec", "nodev"]
                                      + (["ro"] if req.options.flags & sc.MS_RDONLY else []))
                    try:
                        bind_mount(MountRequest(req.index, req.destination, None, host, o), target, in_userns)
                    except SyscallError:
                        raise e from None
                else:
                    raise
        apply_after(req, root_fd)
    finally:
        os.close(target)


# --- what is mounted where (mountinfo) -----------------------------------------------------------------

def parent_mount(path: str) -> tuple[str, list[str]]:
    """The mount point of the mount `path` is on (the longest mount point containing it; of mounts
    stacked there, the last listed, the visible one) and its optional fields: shared:N, master:N,
    propagate_from:N, unbindable."""
    best, tags = "", []
    for m in mountinfo.read():
        point = m.mountpoint
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, tags = point, m.optional
    return best or "/", tags


def full_proc_and_sysfs_mounts(outside: str) -> list[str]:
    """Mountpoints of every procfs and sysfs mounted from its root ("full", as the host's /proc),
    except those at or below `outside` (the rootfs)."""
    inside = outside.rstrip("/") + "/"
    return [m.mountpoint for m in mountinfo.read()
            if m.fstype in ("proc", "sysfs") and m.root == "/" and not (m.mountpoint + "/").startswith(inside)]
