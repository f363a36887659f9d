"""Where the cgroup filesystems are and where a container's cgroup goes (pure reads, no writes).

Mode detection follows runc: a cgroup v1 mount carrying real controllers means the controllers are
managed through v1 (pure v1 or "hybrid", where systemd also mounts an empty cgroup2 at
/sys/fs/cgroup/unified); otherwise the cgroup2 mount is used (pure v2, "unified").

linux.cgroupsPath:
- absolute ("/a/b"): relative to the root of each hierarchy (the spec's MUST);
- relative ("a/b"): under the runtime's own cgroup, as runc does (on v2 under the *parent* of the own
  cgroup, because the own cgroup holds processes and so cannot enable controllers for children);
- empty or missing: the relative path "ocirun/<container id>" (runc uses "<id>"; the extra level keeps
  our containers together);
- with --systemd-cgroup: "slice:prefix:name" -> "<expanded slice>/<prefix>-<name>.scope", always
  from the hierarchy root (systemd's layout, created directly in cgroupfs: no D-Bus).
"""
from ocirun.errors import ConfigError
from ocirun.linux import mountinfo as _mountinfo

MODE_V1 = "v1"          # pure v1, or hybrid (controllers on v1, empty cgroup2 beside them)
MODE_V2 = "v2"          # pure cgroup2 (unified)
UNIFIED_KEY = ""        # the key of a cgroup2 hierarchy in a v1 manager's hierarchy table
DEFAULT_PREFIX = "ocirun"
FIELD = "linux.cgroupsPath"


class CgroupMount:
    """One cgroup hierarchy mount (a plain class: dataclasses costs ~20 ms of imports on every command)."""
    __slots__ = ("mountpoint", "root", "fstype", "key")

    def __init__(self, mountpoint: str, root: str, fstype: str, key: str):
        self.mountpoint = mountpoint
        self.root = root      # the mount's root inside the cgroup filesystem (field 4 of mountinfo)
        self.fstype = fstype  # "cgroup" or "cgroup2"
        self.key = key        # v1: the hierarchy's controllers joined by "," (e.g. "cpu,cpuacct"); v2: ""


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup and cgroup2 mounts of a /proc/<pid>/mountinfo text, first mount of a hierarchy wins."""
    mounts: list[CgroupMount] = []
    seen: set[tuple[str, str]] = set()
    for m in _mountinfo.parse(text):
        if m.fstype == "cgroup2":
            key = UNIFIED_KEY
        elif m.fstype == "cgroup":
            opts = [o for o in m.super_options.split(",") if o not in ("rw", "ro") and not o.startswith("release_agent=")
                    and o not in ("clone_children", "noprefix", "xattr", "cpuset_v2_mode", "favordynmods")]
            key = ",".join(sorted(opts))
        else:
            continue
        if (m.fstype, key) in seen:
            continue
        seen.add((m.fstype, key))
        mounts.append(CgroupMount(m.mountpoint, m.root, m.fstype, key))
    return mounts


def detect_mode(mounts: list[CgroupMount]) -> str:
    if any(m.fstype == "cgroup" and not m.key.startswith("name=") for m in mounts):
        return MODE_V1
    if any(m.fstype == "cgroup2" for m in mounts):
        return MODE_V2
    raise ConfigError(FIELD, "no cgroup filesystem is mounted (looked for cgroup and cgroup2 in /proc/self/mountinfo)")


def unified_mount(mounts: list[CgroupMount]) -> CgroupMount | None:
    """The cgroup2 mount, preferring /sys/fs/cgroup over any other place."""
    v2 = [m for m in mounts if m.fstype == "cgroup2"]
    v2.sort(key=lambda m: m.mountpoint != "/sys/fs/cgroup")
    return v2[0] if v2 else None


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/self/cgroup -> {hierarchy key: path}; v1 keys are sorted controller lists, v2's is ""."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        key = ",".join(sorted(parts[1].split(","))) if parts[1] else UNIFIED_KEY
        own[key] = parts[2]
    return own


def expand_slice(slice_name: str) -> str:
    """systemd's slice naming: "a-b.slice" -> "/a.slice/a-b.slice", "-.slice" -> "/" (runc ExpandSlice)."""
    suffix = ".slice"
    if not slice_name.endswith(suffix) or "/" in slice_name:
        raise ConfigError(FIELD, f"invalid slice name: {slice_name}")
    base = slice_name[:-len(suffix)]
    if base == "-":
        return "/"
    path, prefix = "", ""
    for component in base.split("-"):
        if not component:
            raise ConfigError(FIELD, f"invalid slice name: {slice_name}")
        path += "/" + prefix + component + suffix
        prefix += component + "-"
    return path


def systemd_path(cgroups_path: str | None, container_id: str) -> str:
    """"slice:prefix:name" -> absolute cgroup path; empty -> ":ocirun:<id>" (runc uses ":runc:<id>")."""
    value = cgroups_path or f":{DEFAULT_PREFIX}:{container_id}"
    parts = value.split(":")
    if len(parts) != 3:
        raise ConfigError(FIELD, f'expected cgroupsPath to be of format "slice:prefix:name" for systemd '
                                 f'cgroups, got "{value}" instead')
    slice_name, prefix, name = parts
    parent = expand_slice(slice_name or "system.slice")
    if not name:
        raise ConfigError(FIELD, f'the name part of "{value}" is empty')
    unit = name if name.endswith(".slice") else f"{prefix}-{name}.scope"
    if "/" in unit or unit in (".", ".."):
        raise ConfigError(FIELD, f"invalid unit name: {unit}")
    return parent.rstrip("/") + "/" + unit


def check_path(value: str) -> str:
    """Refuse paths that could climb out of the hierarchy (D-16); return the normalized path."""
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ConfigError(FIELD, f'"{value}" must not contain ".."')
    return ("/" if value.startswith("/") else "") + "/".join(parts)


def container_path(cgroups_path: str | None, container_id: str, systemd: bool) -> str:
    """The normalized cgroup path: absolute "/x/y" or relative "x/y" (resolved per hierarchy later)."""
    if systemd:
        return check_path(systemd_path(cgroups_path, container_id))
    value = cgroups_path or f"{DEFAULT_PREFIX}/{container_id}"
    path = check_path(value)
    if path in ("", "/"):
        raise ConfigError(FIELD, f'"{value}" names the root of the cgroup hierarchy')
    return path


def _join(*parts: str) -> str:
    out = "/".join(p.strip("/") for p in parts if p.strip("/"))
    return "/" + out


def resolve_dir(mount: CgroupMount, path: str, own: dict[str, str], *, parent_of_own: bool = False) -> str:
    """The absolute directory of `path` in `mount`'s hierarchy (see the module docstring)."""
    if path.startswith("/"):
        return mount.mountpoint.rstrip("/") + _join(path) if path != "/" else mount.mountpoint
    base = own.get(mount.key, "/")
    if parent_of_own and base not in ("", "/"):
        base = base.rstrip("/").rsplit("/", 1)[0] or "/"
    # /proc/self/cgroup paths are relative to the filesystem (or cgroup namespace) root; the mount may
    # show only a subtree of it (mountinfo root), so strip that prefix.
    if mount.root not in ("", "/") and (base == mount.root or base.startswith(mount.root.rstrip("/") + "/")):
        base = base[len(mount.root.rstrip("/")):]
    return mount.mountpoint.rstrip("/") + _join(base, path)
