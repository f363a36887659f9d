"""`ocirun spec`: write the starter config.json that `runc spec` (runc 1.1.5) writes.

The output is byte-identical to runc's (Go's json.MarshalIndent with a tab: tab indentation,
`"key": value`, no trailing newline; file created with mode 0666 minus the umask), with one deliberate
difference: "ociVersion" is the spec version ocirun implements (ocirun.OCI_VERSION, "1.3.0") instead of
runc's "1.0.2-dev", so that the file validates against, and documents, what we actually support.

As in runc, the file is always named config.json inside the bundle directory (the current directory
unless --bundle), an existing config.json is refused, and --rootless applies runc's
specconv.ToRootless (user namespace mapping the caller's effective uid/gid, no network namespace,
/sys as an rbind, no uid=/gid= mount options, no linux.resources).
"""
import errno
import os

from ocirun import OCI_VERSION
from ocirun.cliparse import UsageError, parse
from ocirun.errors import OciError

CONFIG_NAME = "config.json"

# The three capabilities runc's default grants, in every set but "inheritable".
_DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def example_spec() -> dict:
    """runc's specconv.Example(), with keys in Go struct field order (the order runc prints them)."""
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(_DEFAULT_CAPS),
                "effective": list(_DEFAULT_CAPS),
                "permitted": list(_DEFAULT_CAPS),
                "ambient": list(_DEFAULT_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                           {"type": "mount"}],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def to_rootless(spec: dict, uid: int, gid: int) -> dict:
    """runc's specconv.ToRootless, in place (and returned): the changes a rootless container needs."""
    linux = spec["linux"]
    namespaces = [ns for ns in linux.get("namespaces", []) if ns.get("type") not in ("network", "user")]
    namespaces.append({"type": "user"})

    mounts = []
    for mount in spec.get("mounts", []):
        if os.path.normpath(mount.get("destination", "")) == "/sys":
            # sysfs cannot be mounted without owning the network namespace: bind the host's.
            mounts.append({"destination": "/sys", "type": "none", "source": "/sys",
                           "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
            continue
        if "options" in mount:
            # uid=/gid= name host ids that are not mapped in a rootless user namespace.
            options = [o for o in mount["options"] if not o.startswith(("gid=", "uid="))]
            if options:
                mount["options"] = options
            else:
                del mount["options"]  # Go's omitempty drops an empty list
        mounts.append(mount)
    spec["mounts"] = mounts

    # Go prints struct fields in declaration order, and LinuxSpec declares the mappings first.
    rebuilt = {
        "uidMappings": [{"containerID": 0, "hostID": uid, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": gid, "size": 1}],
    }
    for key, value in linux.items():
        if key in ("uidMappings", "gidMappings", "resources"):
            continue  # resources: cgroup settings need privileges a rootless caller lacks
        rebuilt[key] = namespaces if key == "namespaces" else value
    rebuilt.setdefault("namespaces", namespaces)
    spec["linux"] = rebuilt
    return spec


def render(spec: dict) -> bytes:
    """Go's json.MarshalIndent(spec, "", "\\t"): tab indent, no trailing newline, UTF-8 as is, and
    <, >, & escaped as \\u003c, \\u003e, \\u0026 (Go's HTML-safe default; they can only occur inside
    strings, so replacing them in the text is exact)."""
    import json    # here, not at the top: `ocirun bundle` imports this module and must stay fast
    text = json.dumps(spec, indent="\t", ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode()


def _go_error(op: str, name: str, exc: OSError) -> OciError:
    """An OSError in Go's *PathError words: `chdir b2: no such file or directory`."""
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return OciError(f"{op} {name}: {text[:1].lower()}{text[1:]}")


def write_spec(bundle: str | None, spec: dict) -> str:
    """Write spec as <bundle>/config.json (runc's checks and messages); return the path written."""
    name = CONFIG_NAME
    if bundle:
        # runc chdir()s into the bundle; checking that it is a directory gives the same failure
        # without changing our own working directory.
        try:
            if not os.path.isdir(bundle):
                os.stat(bundle)  # ENOENT / EACCES, as chdir would report
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", bundle)
            if not os.access(bundle, os.X_OK, effective_ids=True):
                raise PermissionError(errno.EACCES, "Permission denied", bundle)
        except OSError as exc:
            raise _go_error("chdir", bundle, exc) from None
    path = os.path.join(bundle or ".", name)
    try:
        os.stat(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _go_error("stat", name, exc) from None
    else:
        raise OciError(f"File {name} exists. Remove it first")
    data = render(spec)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise _go_error("open", name, exc) from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise _go_error("write", name, exc) from None
    finally:
        os.close(fd)
    return path


def spec(g, argv: list[str]) -> int:
    """ocirun spec [--bundle|-b DIR] [--rootless]"""
    opts, positionals = parse(argv, {"bundle": "str", "rootless": "bool"}, {"b": "bundle"})
    if positionals:
        raise UsageError('"spec" requires exactly 0 argument(s)')
    new = example_spec()
    if opts["rootless"]:
        to_rootless(new, os.geteuid(), os.getegid())
    write_spec(opts["bundle"], new)
    return 0
