"""Linux capabilities: the name table and validation of process.capabilities (pure but for reading
the kernel's cap_last_cap: no ctypes, `exec` checks its process with it); security.py applies the sets.

Policy (config.md: a capability that cannot be mapped or granted MUST be logged as a warning and
the runtime SHOULD NOT fail; runc 1.2 does the same):
- a name that is not a Linux capability at all is warned about, naming the list element, and
  skipped (a name that is not a string is still a ConfigError: the config is malformed);
- a real capability the running kernel does not know (number > /proc/sys/kernel/cap_last_cap) is
  reported as a warning by validate_capabilities() and skipped when applying;
- an ambient capability that is not in both inheritable and permitted cannot be raised (the kernel
  refuses it): warned about and skipped;
- an absent process.capabilities means every set is empty (runc does the same: the process keeps
  no capabilities at all), and an absent set inside it means that set is empty.

The sets are applied by security.set_bounding / set_capabilities with capset(2) and prctl(2)
(ocirun.linux.syscalls): python-prctl, used before, cost ~4 ms of imports in every init and exec helper.
"""
from ocirun.errors import ConfigError

# Index = capability number (linux/capability.h).
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBERS = {name: number for number, name in enumerate(CAPABILITIES)}

CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

_last_cap: int | None = None


def kernel_last_cap() -> int:
    """The highest capability number the running kernel knows (read once, before pivot_root)."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
                _last_cap = int(f.read())
        except (OSError, ValueError):
            _last_cap = len(CAPABILITIES) - 1
    return _last_cap


def validate_capabilities(caps: dict | None, path: str = "process.capabilities") -> list[str]:
    """Check every name; return warnings for what is skipped (unknown names, capabilities the
    kernel lacks); raise ConfigError for a malformed object."""
    if caps is None:
        return []
    if not isinstance(caps, dict):
        raise ConfigError(path, "must be an object")
    for key in caps:
        if key not in CAP_SETS:
            raise ConfigError(f"{path}.{key}", "unknown capability set")
    warnings = []
    last = kernel_last_cap()
    for set_name in CAP_SETS:
        names = caps.get(set_name)
        if names is None:
            continue
        if not isinstance(names, list):
            raise ConfigError(f"{path}.{set_name}", "must be an array of capability names")
        for i, name in enumerate(names):
            if not isinstance(name, str):
                raise ConfigError(f"{path}.{set_name}[{i}]", f"must be a capability name, got {name!r}")
            number = CAP_NUMBERS.get(name)
            if number is None:
                warnings.append(f"{path}.{set_name}[{i}]: unknown capability {_quote(name)}, ignored")
                continue
            if number > last:
                warnings.append(f"{path}.{set_name}[{i}]: capability {name} is not supported by the "
                                f"running kernel (cap_last_cap {last}), ignored")
    inh_and_perm = set(caps.get("inheritable") or ()) & set(caps.get("permitted") or ())
    # One line for all of them: runc's default spec lists ambient capabilities without inheritable
    # ones, so this is said about most containers.
    # Said at debug level, not as a warning: runc's own default spec (`ocirun spec`) asks for this.
    idle = [name for name in caps.get("ambient") or () if name not in inh_and_perm]
    if idle:
        from ocirun import log
        log.debug(f"{path}.ambient: {', '.join(idle)} not in both inheritable and permitted, "
                  "so not raised (the kernel allows no other ambient capability)")
    return warnings


def _quote(value) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def cap_numbers(names) -> set[int]:
    """Numbers of the (already validated) names that the running kernel knows; unknown names
    (warned about by validate_capabilities) are skipped."""
    last = kernel_last_cap()
    return {CAP_NUMBERS[n] for n in names or () if CAP_NUMBERS.get(n, last + 1) <= last}


def plan_capabilities(caps: dict | None) -> dict[str, list[int]]:
    """The (already validated) sets as the numbers to apply, for the plan (ocirun/processplan.py):
    names the kernel knows only, and in "ambient" only what can be raised (in both inheritable and
    permitted; the kernel refuses any other). An absent set is empty."""
    caps = caps or {}
    sets = {name: sorted(cap_numbers(caps.get(name))) for name in CAP_SETS}
    raisable = set(sets["inheritable"]) & set(sets["permitted"])
    sets["ambient"] = [number for number in sets["ambient"] if number in raisable]
    return sets
