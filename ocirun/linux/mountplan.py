"""The config's `mounts` and linux.rootfsPropagation resolved once, by `create` (the parent), into
the plan the container's init consumes as data (the BOOTSTRAP message's "plan", ocirun/parent.py).

Every mount is checked and normalized here: the destination cleaned (a relative one is relative to
"/", config.md), a bind's source joined with the bundle, the options parsed into mount(2) flags,
propagation, recursive attributes, filesystem data and the extensions. A config the init could not
mount is refused by `create` before the init touches anything. What needs the container's view (a
destination resolved through the rootfs' symlinks, a bind source's type, /proc's filesystem) stays
in the init (ocirun/linux/mounts.py).

Options follow runc's table (`runc features` lists the same names): mount(2) flags that are set or
cleared, propagation flags applied after the mount, recursive `r*` attributes applied with
mount_setattr(AT_RECURSIVE), the extensions tmpcopyup/idmap/ridmap, and everything else passed to the
filesystem as data (`size=64k,mode=755`), as runc does.

Pure data and no I/O: it is imported by `create` (only the syscalls constants and errors).
"""
import os

from ocirun.errors import ConfigError
from ocirun.linux import syscalls as sc


MS_POSIXACL = 1 << 16
MS_I_VERSION = 1 << 23

# name -> (clear, flag): mount(2) flags, as runc's specconv mountFlags.
FLAGS = {
    "acl": (False, MS_POSIXACL), "noacl": (True, MS_POSIXACL),
    "async": (True, sc.MS_SYNCHRONOUS), "sync": (False, sc.MS_SYNCHRONOUS),
    "atime": (True, sc.MS_NOATIME), "noatime": (False, sc.MS_NOATIME),
    "bind": (False, sc.MS_BIND), "rbind": (False, sc.MS_BIND | sc.MS_REC),
    "defaults": (False, 0),
    "dev": (True, sc.MS_NODEV), "nodev": (False, sc.MS_NODEV),
    "diratime": (True, sc.MS_NODIRATIME), "nodiratime": (False, sc.MS_NODIRATIME),
    "dirsync": (False, sc.MS_DIRSYNC),
    "exec": (True, sc.MS_NOEXEC), "noexec": (False, sc.MS_NOEXEC),
    "iversion": (False, MS_I_VERSION), "noiversion": (True, MS_I_VERSION),
    "lazytime": (False, sc.MS_LAZYTIME), "nolazytime": (True, sc.MS_LAZYTIME),
    "loud": (True, sc.MS_SILENT), "silent": (False, sc.MS_SILENT),
    "mand": (False, sc.MS_MANDLOCK), "nomand": (True, sc.MS_MANDLOCK),
    "relatime": (False, sc.MS_RELATIME), "norelatime": (True, sc.MS_RELATIME),
    "remount": (False, sc.MS_REMOUNT),
    "ro": (False, sc.MS_RDONLY), "rw": (True, sc.MS_RDONLY),
    "strictatime": (False, sc.MS_STRICTATIME), "nostrictatime": (True, sc.MS_STRICTATIME),
    "suid": (True, sc.MS_NOSUID), "nosuid": (False, sc.MS_NOSUID),
    "symfollow": (True, sc.MS_NOSYMFOLLOW), "nosymfollow": (False, sc.MS_NOSYMFOLLOW),
}

# A mount's propagation options, and linux.rootfsPropagation's values (rootfs.py).
PROPAGATION = {
    "shared": sc.MS_SHARED, "slave": sc.MS_SLAVE, "private": sc.MS_PRIVATE, "unbindable": sc.MS_UNBINDABLE,
    "rshared": sc.MS_SHARED | sc.MS_REC, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}

# name -> (clear, MOUNT_ATTR_*): applied with mount_setattr(AT_RECURSIVE), as runc's recAttrFlags.
REC_ATTRS = {
    "rro": (False, sc.MOUNT_ATTR_RDONLY), "rrw": (True, sc.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, sc.MOUNT_ATTR_NOSUID), "rsuid": (True, sc.MOUNT_ATTR_NOSUID),
    "rnodev": (False, sc.MOUNT_ATTR_NODEV), "rdev": (True, sc.MOUNT_ATTR_NODEV),
    "rnoexec": (False, sc.MOUNT_ATTR_NOEXEC), "rexec": (True, sc.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, sc.MOUNT_ATTR_NODIRATIME), "rdiratime": (True, sc.MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, sc.MOUNT_ATTR_RELATIME), "rnorelatime": (True, sc.MOUNT_ATTR_RELATIME),
    "rnoatime": (False, sc.MOUNT_ATTR_NOATIME), "ratime": (True, sc.MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, sc.MOUNT_ATTR_STRICTATIME), "rnostrictatime": (True, sc.MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, sc.MOUNT_ATTR_NOSYMFOLLOW), "rsymfollow": (True, sc.MOUNT_ATTR_NOSYMFOLLOW),
}

EXTENSIONS = ("tmpcopyup", "idmap", "ridmap")

# The atime setting is an enum inside MOUNT_ATTR__ATIME, not bits: "clearing" one of its values means
# going back to a default. As mount(8): atime/norelatime/nostrictatime mean "not that one".
_ATIME_CLEARED = {sc.MOUNT_ATTR_NOATIME: sc.MOUNT_ATTR_RELATIME,
                  sc.MOUNT_ATTR_RELATIME: sc.MOUNT_ATTR_STRICTATIME,
                  sc.MOUNT_ATTR_STRICTATIME: sc.MOUNT_ATTR_RELATIME}


class MountOptions:
    # A plain class, not a dataclass: importing dataclasses costs the init ~6 ms (inspect, ast).
    def __init__(self):
        self.flags = 0             # MS_* to set
        self.cleared = 0           # MS_* explicitly cleared by an option (rw, suid, exec...)
        self.propagation = []      # MS_SHARED|MS_REC ..., in order
        self.rec_set = 0           # MOUNT_ATTR_* set recursively
        self.rec_clr = 0           # MOUNT_ATTR_* cleared recursively
        self.data = []             # unknown options, for the filesystem
        self.tmpcopyup = False
        self.idmap = False
        self.ridmap = False

    def __eq__(self, other) -> bool:
        return isinstance(other, MountOptions) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"MountOptions({vars(self)})"

    def to_plan(self) -> dict:
        """Plain data for the BOOTSTRAP message (JSON: lists, ints, bools)."""
        return dict(vars(self))

    @classmethod
    def from_plan(cls, data: dict) -> "MountOptions":
        o = cls()
        o.__dict__.update(data)
        return o

    @property
    def bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)

    @property
    def recursive(self) -> bool:
        return bool(self.flags & sc.MS_REC)

    def data_text(self) -> str | None:
        return ",".join(self.data) or None


def _set_or_clear(wanted: int, cleared: int, bits: int, clear: bool) -> tuple[int, int]:
    """One option's bits into a (set, cleared) pair: the later of two opposite options wins."""
    if clear:
        return wanted & ~bits, cleared | bits
    return wanted | bits, cleared & ~bits


def parse_options(options: list[str]) -> MountOptions:
    """Turn a mount's options into flags; a later option wins over an earlier opposite one."""
    o = MountOptions()
    for opt in options or []:
        if opt in FLAGS:
            clear, flag = FLAGS[opt]
            o.flags, o.cleared = _set_or_clear(o.flags, o.cleared, flag, clear)
        elif opt in PROPAGATION:
            o.propagation.append(PROPAGATION[opt])
        elif opt in REC_ATTRS:
            clear, attr = REC_ATTRS[opt]
            if attr in _ATIME_CLEARED or attr == sc.MOUNT_ATTR_RELATIME:
                # atime values are an enum: setting one means clearing the whole field first
                value = _ATIME_CLEARED[attr] if clear else attr
                o.rec_set = (o.rec_set & ~sc.MOUNT_ATTR__ATIME) | value
                o.rec_clr |= sc.MOUNT_ATTR__ATIME
            else:
                o.rec_set, o.rec_clr = _set_or_clear(o.rec_set, o.rec_clr, attr, clear)
        elif opt in EXTENSIONS:
            setattr(o, opt, True)
        else:
            o.data.append(opt)
    return o


def _clean(path: str) -> str:
    """Lexically cleaned absolute path: `a/../b//c/` -> `/b/c`. safepath.clean's one line, restated:
    create does not otherwise load safepath (~0.27 ms of an import)."""
    return os.path.normpath("/" + path).replace("//", "/")


def resolve_mount(index: int, m: dict, bundle: str, has_userns: bool) -> dict:
    """One entry of `mounts`, checked and normalized into plain data (mounts.MountRequest.from_plan)."""
    dest = m.get("destination")
    if not dest or not isinstance(dest, str):
        raise ConfigError(f"mounts[{index}].destination", "must not be empty")
    o = parse_options(m.get("options") or [])
    fstype = m.get("type") or None
    if fstype == "bind":
        o.flags |= sc.MS_BIND
    source = m.get("source") or None
    if o.bind:
        if not source:
            raise ConfigError(f"mounts[{index}].source", "a bind mount needs a source")
        source = os.path.join(bundle, source)  # relative sources are relative to the bundle
    uids, gids = m.get("uidMappings") or None, m.get("gidMappings") or None
    if o.idmap or o.ridmap or uids or gids:
        if not o.bind:
            raise ConfigError(f"mounts[{index}].options", "idmap is only supported for bind mounts")
        if bool(uids) != bool(gids):
            raise ConfigError(f"mounts[{index}].{'gidMappings' if uids else 'uidMappings'}",
                              "uidMappings and gidMappings must be given together")
        if not uids and not has_userns:
            raise ConfigError(f"mounts[{index}].options",
                              "idmap needs uidMappings/gidMappings on the mount or a user namespace")
    return {"index": index, "destination": _clean(dest), "type": fstype, "source": source,
            "options": o.to_plan(), "uidMappings": uids, "gidMappings": gids}


def resolve(config: dict, bundle: str, has_userns: bool) -> dict:
    """The plan's mount part: {"mounts": [resolve_mount of each entry, in order],
    "rootfsPropagation": MS_* flags}. (validate.check_mounts adds the lexical /proc checks.)"""
    mounts = config.get("mounts")
    linux = config.get("linux")
    return {"mounts": [resolve_mount(i, m if isinstance(m, dict) else {}, bundle, has_userns)
                       for i, m in enumerate(mounts if isinstance(mounts, list) else [])],
            "rootfsPropagation": root_propagation((linux if isinstance(linux, dict) else {}).get("rootfsPropagation"))}


def root_propagation(value) -> int:
    """linux.rootfsPropagation as MS_* flags (0: not set, the init's default rslave)."""
    if not value:
        return 0
    flag = PROPAGATION.get(value) if isinstance(value, str) else None
    if flag is None:
        raise ConfigError("linux.rootfsPropagation", f"unknown propagation {value!r} (want one of "
                          f"{', '.join(PROPAGATION)})")
    return flag
