"""Semantic checks of config.json that the JSON schema cannot express.

Run after spec.validate_schema(), so types are already right; the checks still read the config with
.get() and isinstance() guards so that a caller skipping the schema gets a ConfigError, not a crash.
Every check is `check_x(config, bundle)` raising ConfigError(<json path>, <message>); they only
look at the config, the bundle and the host, never at other containers. `validate()` runs them in order
and returns the plan: what a check resolved for the init to consume as data (check_mounts: every
mount and linux.rootfsPropagation, ocirun/linux/mountplan.py), so that the init parses none of it again.
"""
import os
import stat

from ocirun.errors import ConfigError
from ocirun.linux import mountplan, namespaces, procfs
from ocirun.spec import json_path


# A hook timeout is a Go time.Duration in runc: int64 nanoseconds, about 292 years.
HOOK_TIMEOUT_MAX = (1 << 63) // 1_000_000_000

# Clocks a time namespace can offset (time_namespaces(7)).
TIME_CLOCKS = ("monotonic", "boottime")

# Character sets of the name checks below. They are plain functions rather than regular
# expressions: `re` (with the enum and functools it imports) costs ~3 ms of every create.
_DIGITS = frozenset("0123456789")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_ALNUM = _DIGITS | _LOWER | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SYSCTL_WORD = _ALNUM | frozenset("_-")


def _is_sysctl_name(key: str) -> bool:
    """[a-zA-Z0-9_-]+(\\.[a-zA-Z0-9_-]+)+: dot-separated words, at least two."""
    words = key.split(".")
    return len(words) > 1 and all(word and set(word) <= _SYSCTL_WORD for word in words)


def _is_ipc_sysctl(key: str) -> bool:
    """The sysctls the ipc namespace isolates (ipc_namespaces(7), runc's validator):
    kernel.shm*, kernel.msg*, kernel.sem, kernel.sem_*, fs.mqueue.* (lower case and _)."""
    lower = _LOWER | {"_"}
    if key.startswith("fs.mqueue."):
        return len(key) > 10 and set(key[10:]) <= lower
    name = key[7:] if key.startswith("kernel.") else None
    if name is None:
        return False
    if name == "sem":
        return True
    return any(name.startswith(prefix) and set(name[len(prefix):]) <= lower for prefix in ("shm", "msg", "sem_"))


def _is_semver(version: str) -> bool:
    """SemVer 2.0.0: MAJOR.MINOR.PATCH, numbers without leading zeros, then an optional
    -pre.release (dot-separated alphanumeric or numeric identifiers) and +build.metadata."""
    core, plus, build = version.partition("+")
    if plus and not all(ident and set(ident) <= _SYSCTL_WORD - {"_"} for ident in build.split(".")):
        return False
    core, dash, pre = core.partition("-")
    if dash and not all(_is_pre_release_ident(ident) for ident in pre.split(".")):
        return False
    numbers = core.split(".")
    return len(numbers) == 3 and all(_is_number(n) for n in numbers)


def _is_number(text: str) -> bool:
    return bool(text) and set(text) <= _DIGITS and (text == "0" or text[0] != "0")


def _is_pre_release_ident(ident: str) -> bool:
    if not ident or not set(ident) <= _SYSCTL_WORD - {"_"}:
        return False
    return _is_number(ident) if set(ident) <= _DIGITS else True


# --- helpers ------------------------------------------------------------------------------------

def _linux(config: dict) -> dict:
    linux = config.get("linux")
    return linux if isinstance(linux, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def namespaces_by_type(config: dict) -> dict:
    """{type: path or None} of linux.namespaces (the first entry of each type)."""
    out: dict = {}
    for ns in _list(_linux(config).get("namespaces")):
        if isinstance(ns, dict) and ns.get("type") not in out:
            out[ns.get("type")] = ns.get("path") or None
    return out


def _is_current_ns(path: str, nstype: str) -> bool:
    """True if `path` names the namespace this process is already in (i.e. the host's)."""
    own = {"network": "net"}.get(nstype, nstype)
    try:
        a, b = os.stat(path), os.stat(f"/proc/self/ns/{own}")
    except OSError:
        return False      # joining will fail later with the real errno
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


# --- checks -------------------------------------------------------------------------------------

def check_oci_version(config: dict, bundle: str) -> None:
    version = config.get("ociVersion")
    if not isinstance(version, str) or not _is_semver(version):
        raise ConfigError("ociVersion", f"{version!r} is not a SemVer 2.0.0 version")
    major = int(version.split(".", 1)[0])
    if major != 1:
        raise ConfigError("ociVersion", f"unsupported version {version}: ocirun implements runtime-spec 1.x")


def check_root(config: dict, bundle: str) -> None:
    root = config.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("path"), str) or not root["path"]:
        raise ConfigError("root.path", "is required on Linux")
    path = os.path.join(bundle, root["path"])
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError("root.path", f"{path}: no such file or directory") from None
    except OSError as e:
        raise ConfigError("root.path", f"{path}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError("root.path", f"{path}: not a directory")
    # runc fails later, in pivot_root ("device or resource busy"); the host's own root can never be
    # a container's (a symlink to it included: the parent resolves root.path once, as runc does)
    if os.path.realpath(path) == "/":
        raise ConfigError("root.path", f"invalid rootfs {path}: it is the host's root directory /")


def check_process(config: dict, bundle: str) -> None:
    """create/run need a process: args[0] is the program, env is NAME=VALUE, cwd is absolute. The
    process settings (rlimits, user, capabilities, ...) are processplan.build's, which makes them
    the plan's "process"."""
    process = config.get("process")
    if not isinstance(process, dict):
        raise ConfigError("process", "is required to create a container")
    args = process.get("args")
    if not isinstance(args, list) or not args:
        raise ConfigError("process.args", "must contain at least one entry (the program to run)")
    if not isinstance(args[0], str) or not args[0]:
        raise ConfigError("process.args[0]", "must be a non-empty program name or path")
    for i, arg in enumerate(args):
        if isinstance(arg, str) and "\0" in arg:
            raise ConfigError(f"process.args[{i}]", "must not contain a NUL byte")
    for i, item in enumerate(_list(process.get("env"))):
        # execve(2) can only pass NAME=VALUE strings; runc refuses the rest at create too
        if not isinstance(item, str) or "\0" in item or not item.partition("=")[0] or "=" not in item:
            raise ConfigError(f"process.env[{i}]", f"invalid environment variable {item!r}: want NAME=VALUE")
    cwd = process.get("cwd")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise ConfigError("process.cwd", f"must be an absolute path, not {cwd!r}")


def check_hooks(config: dict, bundle: str) -> None:
    for kind, hooks in _dict(config.get("hooks")).items():
        for i, hook in enumerate(_list(hooks)):
            path = _dict(hook).get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigError(f"hooks.{kind}[{i}].path", f"must be an absolute path, not {path!r}")
            timeout = _dict(hook).get("timeout")
            if isinstance(timeout, (int, float)) and timeout > HOOK_TIMEOUT_MAX:
                raise ConfigError(f"hooks.{kind}[{i}].timeout",
                                  f"{timeout} seconds is out of range (at most {HOOK_TIMEOUT_MAX}, "
                                  f"as runc's Go duration)")


def _check_proc_destination(i: int, dest: str, mount: dict) -> None:
    """Only procfs goes on /proc, and below it only the files lxcfs emulates (runc checkProcMount).

    This is the lexical part; rootfs code still has to resolve symlinks inside the root (D-1, D-5).
    """
    if dest == "/proc":
        options = _list(mount.get("options"))
        if mount.get("type") != "proc" and "bind" not in options and "rbind" not in options:
            raise ConfigError(f"mounts[{i}].destination", "/proc can only be a proc mount")
    elif dest.startswith("/proc/") and dest not in procfs.MOUNT_ALLOWLIST:
        raise ConfigError(f"mounts[{i}].destination", f"cannot mount on {dest}: it is inside /proc")


def check_mounts(config: dict, bundle: str) -> dict:
    """Every mount resolved into the plan's entries (mountplan.resolve: what the init could not
    mount is refused here), and linux.rootfsPropagation as flags: {"mounts", "rootfsPropagation"}."""
    plan = mountplan.resolve(config, bundle, "user" in namespaces_by_type(config))
    for entry, mount in zip(plan["mounts"], _list(config.get("mounts"))):
        # config.md 1.3.0: a relative Linux destination is deprecated but still allowed and MUST be
        # taken relative to "/"; runc does the same. So compare in its absolute, normalized form.
        _check_proc_destination(entry["index"], entry["destination"], _dict(mount))
    return plan


def check_namespaces(config: dict, bundle: str) -> dict:
    """Types known and once each, paths absolute; the namespace actions for the init:
    {"namespaces": namespaces.plan(...)}."""
    entries = [_dict(ns) for ns in _list(_linux(config).get("namespaces"))]
    actions = namespaces.plan(entries)      # an unknown type is refused there
    seen = set()
    for i, ns in enumerate(entries):
        kind = ns.get("type")
        if kind in seen:
            raise ConfigError(f"linux.namespaces[{i}].type", f"duplicate namespace type {kind!r}")
        seen.add(kind)
        path = ns.get("path")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ConfigError(f"linux.namespaces[{i}].path", f"must be an absolute path, not {path!r}")
    return {"namespaces": actions}


def check_uts_names(config: dict, bundle: str) -> None:
    """hostname/domainname are set in the container's UTS namespace, new or joined by path (as
    runc); without one (or joining the runtime's own) they would rename the host."""
    nss = namespaces_by_type(config)
    for field in ("hostname", "domainname"):
        if config.get(field) and ("uts" not in nss or (nss["uts"] and _is_current_ns(nss["uts"], "uts"))):
            raise ConfigError(field, "cannot be set without a UTS namespace of the container's own"
                                     " (a linux.namespaces entry of type uts)")


def check_id_mappings(config: dict, bundle: str) -> None:
    linux = _linux(config)
    nss = namespaces_by_type(config)
    for field in ("uidMappings", "gidMappings"):
        if linux.get(field) and "user" not in nss:
            raise ConfigError(f"linux.{field}", "needs a user namespace (a linux.namespaces entry of type user)")
    if "user" in nss and nss["user"] is None:
        for field in ("uidMappings", "gidMappings"):
            if not linux.get(field):
                raise ConfigError(f"linux.{field}", "is required with a new user namespace")


def check_sysctl(config: dict, bundle: str) -> None:
    """Only namespaced sysctls, each in a namespace of the container's own (runc's allow-list)."""
    nss = namespaces_by_type(config)
    for key in _dict(_linux(config).get("sysctl")):
        path = json_path(["linux", "sysctl", key])
        if not _is_sysctl_name(key) or ".." in key:
            raise ConfigError(path, "invalid sysctl name (dot-separated words; no '/', no '..')")
        if _is_ipc_sysctl(key):
            if "ipc" not in nss:
                raise ConfigError(path, "not allowed in the host's IPC namespace (add an ipc namespace)")
        elif key.startswith("net."):
            if "network" not in nss or (nss["network"] and _is_current_ns(nss["network"], "network")):
                raise ConfigError(path, "not allowed in the host's network namespace (add a network namespace)")
        elif key in ("kernel.domainname", "kernel.hostname"):
            if "uts" not in nss:
                raise ConfigError(path, "not allowed in the host's UTS namespace (add a uts namespace)")
            if key == "kernel.hostname" and config.get("hostname"):
                raise ConfigError(path, "conflicts with the hostname field; set only one")
        else:
            raise ConfigError(path, "not a namespaced sysctl: it would change the host")


def check_cgroups_path(config: dict, bundle: str) -> None:
    path = _linux(config).get("cgroupsPath")
    # `slice:prefix:name` (systemd driver) and plain paths: no component may climb out with `..`.
    if isinstance(path, str) and ".." in path.replace(":", "/").split("/"):
        raise ConfigError("linux.cgroupsPath", f"{path!r} must not contain '..'")


def check_time_offsets(config: dict, bundle: str) -> dict | None:
    """A new time namespace and known clocks; the text the init writes: {"timeOffsets": text}."""
    offsets = _linux(config).get("timeOffsets")
    if not offsets:
        return None
    nss = namespaces_by_type(config)
    if "time" not in nss:
        raise ConfigError("linux.timeOffsets", "needs a time namespace (a linux.namespaces entry of type time)")
    if nss["time"] is not None:
        raise ConfigError("linux.timeOffsets", "cannot be set when joining an existing time namespace by path")
    for clock in _dict(offsets):
        if clock not in TIME_CLOCKS:
            raise ConfigError(json_path(["linux", "timeOffsets", clock]),
                              f"unknown clock; only {' and '.join(TIME_CLOCKS)} can be offset")
    return {"timeOffsets": namespaces.time_offsets_text(offsets)}


def check_net_devices(config: dict, bundle: str) -> None:
    devices = _linux(config).get("netDevices")
    if not devices:
        return
    from ocirun.linux.network import validate_net_devices   # (and contextlib, functools: only when needed)
    validate_net_devices(devices)
    nss = namespaces_by_type(config)
    if "network" not in nss or (nss["network"] and _is_current_ns(nss["network"], "network")):
        raise ConfigError("linux.netDevices", "needs a network namespace of the container's own")


def check_intel_rdt(config: dict, bundle: str) -> None:
    # Refused rather than ignored: the spec says the runtime MUST put the process in the resctrl
    # group when it is set (runc too fails when resctrl is not available).
    if _linux(config).get("intelRdt") is not None:
        raise ConfigError("linux.intelRdt", "Intel RDT (resctrl) is not supported by ocirun")


def check_paths_absolute(config: dict, bundle: str) -> None:
    linux = _linux(config)
    for field in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(_list(linux.get(field))):
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigError(f"linux.{field}[{i}]", f"must be an absolute path, not {path!r}")
    for i, device in enumerate(_list(linux.get("devices"))):
        path = _dict(device).get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"linux.devices[{i}].path", f"must be an absolute path, not {path!r}")


CHECKS = [
    check_oci_version,
    check_root,
    check_process,
    check_hooks,
    check_mounts,
    check_namespaces,
    check_uts_names,
    check_id_mappings,
    check_sysctl,
    check_cgroups_path,
    check_time_offsets,
    check_net_devices,
    check_intel_rdt,
    check_paths_absolute,
]


def validate(config: dict, bundle: str) -> dict:
    """Run every check; the first failure raises ConfigError. Returns the plan (what the checks resolved)."""
    plan: dict = {}
    for check in CHECKS:
        resolved = check(config, bundle)
        if resolved is not None:
            plan.update(resolved)
    return plan
