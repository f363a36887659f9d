"""`ocirun features`: the runtime spec's Features structure (features.md, features-linux.md) as JSON.

Everything listed is generated from the tables the runtime itself uses, so the list cannot promise
what the code does not do:
- mountOptions: the option tables of ocirun/linux/mounts.py (flags, propagation, recursive
  attributes, extensions); nothing that would go to the filesystem as data;
- linux.namespaces: ocirun/linux/namespaces.py FLAGS; linux.capabilities: the capability table;
- linux.seccomp: the actions, operators, architectures and flags of ocirun/linux/seccomp.py, the
  architectures narrowed to those the installed libseccomp can add to a filter on this host (not
  those of the other endianness) and "supportedFlags" to those its version has;
- hooks: ocirun/hooks.py KINDS; cgroup: the v1 and v2 managers, and the systemd "slice:prefix:name"
  layout of --systemd-cgroup (created in cgroupfs, no D-Bus: no user-scoped systemd manager);
- annotations: the version, libseccomp's version, and what `ocirun bundle` supports (image layout,
  layer compressions, whiteouts, overlay rootfs), since the structure has no field for it;
- apparmor/selinux: enabled when the host has the LSM (ocirun/linux/lsm.py refuses the labels
  otherwise); intelRdt: not implemented; mountExtensions.idmap and netDevices: implemented.

The output is formatted as runc's (indent of 4, lists sorted, capabilities in kernel order).
"""
import json
import sys

from ocirun.cliparse import UsageError, parse

OCI_VERSION_MIN = "1.0.0"
OCI_VERSION_MAX = "1.3.0"


def mount_options() -> list[str]:
    from ocirun.linux import mountplan
    names = (set(mountplan.FLAGS) | set(mountplan.PROPAGATION) | set(mountplan.REC_ATTRS)
             | set(mountplan.EXTENSIONS))
    return sorted(names)


def _libseccomp_version() -> tuple[int, int, int] | None:
    from ocirun.errors import SyscallError
    from ocirun.linux import syscalls
    try:
        return syscalls.scmp_version()
    except (SyscallError, OSError):
        return None       # libseccomp.so.2 is not installed: linux.seccomp cannot be applied


def seccomp_features() -> dict:
    from ocirun.linux import seccomp
    version = _libseccomp_version()
    out = {"enabled": version is not None,
           "actions": sorted(seccomp.ACTIONS),
           "operators": sorted(seccomp.OPERATORS),
           "archs": [],
           "knownFlags": sorted(seccomp.FLAGS),
           "supportedFlags": []}
    if version is not None:
        # the same checks compile_filter() makes: libseccomp must know the architecture and be able to
        # add it to a filter here (not one of the other endianness), and be recent enough for the flag
        out["archs"] = sorted(a for a, lib in seccomp.ARCHITECTURES.items() if _arch_usable(lib))
        out["supportedFlags"] = sorted(f for f, (_, needed) in seccomp.FLAGS.items() if version >= needed)
    return out


def _arch_usable(lib_name: str) -> bool:
    from ocirun.errors import SyscallError
    from ocirun.linux import seccomp, syscalls
    token = syscalls.scmp_arch_resolve_name(lib_name)
    if not token:
        return False
    ctx = syscalls.scmp_init(seccomp.ACTIONS["SCMP_ACT_ALLOW"])
    try:
        syscalls.scmp_arch_add(ctx, token)
        return True
    except SyscallError:
        return False
    finally:
        syscalls.scmp_release(ctx)


def bundle_support() -> str:
    """What `ocirun bundle` (ocirun/image/) takes, as one annotation (the features structure itself
    is the runtime spec's and has no place for it): the layer compressions of its media-type table."""
    from ocirun.image.layout import LAYER_TYPES
    compressions = ",".join(sorted(set(LAYER_TYPES.values())))
    return (f"image=oci-layout;layers={compressions};digests=verified;whiteouts=plain,opaque;"
            "rootfs=overlay;rootless=unsupported")


def features() -> dict:
    from ocirun import __version__, hooks, processplan
    from ocirun.linux import capabilities, lsm, namespaces
    version = _libseccomp_version()
    annotations = {"org.opencontainers.ocirun.version": __version__,
                   "org.opencontainers.ocirun.bundle": bundle_support()}
    if version is not None:
        annotations["io.github.seccomp.libseccomp.version"] = ".".join(map(str, version))
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": list(hooks.KINDS),
        "mountOptions": mount_options(),
        "linux": {
            "namespaces": sorted(namespaces.FLAGS),
            "capabilities": list(capabilities.CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True},
            "seccomp": seccomp_features(),
            "apparmor": {"enabled": lsm.apparmor_enabled()},
            "selinux": {"enabled": lsm.selinux_enabled()},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
            # checked in ocirun/processplan.py, set_mempolicy(2) in security.py (MPOL_BIND: test_security_units)
            "memoryPolicy": {"modes": list(processplan.MPOL_MODES), "flags": sorted(processplan.MPOL_FLAGS)},
        },
        "annotations": annotations,
    }


def features_cmd(g, argv: list[str]) -> int:
    _, pos = parse(argv, {})
    if pos:
        raise UsageError('"features" requires exactly 0 argument(s)')
    sys.stdout.write(json.dumps(features(), indent=4) + "\n")
    return 0
