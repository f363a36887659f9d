"""The process settings of config.json, checked once and resolved into plan data.

    settings, warnings = build(config)      # ConfigError (one line, the JSON path) on a bad field

`create` (ocirun/parent.py) and `exec` (ocirun/execcmd.py) call build() in the runtime's own process,
before anything is made; the settings travel as plain JSON data (create: boot["plan"]["process"],
exec: the EXEC message's plan["process"]) and the container's init and the exec helper apply them
(ocirun/security.py) without parsing config.json's process settings again. The shape, every value
an int, a str, a bool, None or a list/dict of those:

    {"rlimits": [[resource, "RLIMIT_NAME", soft, hard], ...],   # RLIM_INFINITY is -1
     "oomScoreAdj": int | None,            "personality": int | None (PER_* domain),
     "ioPriority": int | None (class << 13 | level),
     "scheduler": {"policy", "policyName", "flags", "nice", "priority", "runtime", "deadline",
                   "period"} | None,
     "execCPUAffinity": [initial CPUs | None, final CPUs | None],   # sorted lists
     "memoryPolicy": [mode | MPOL_F_* flags, [nodes]] | None,
     "user": {"uid", "gid", "additionalGids": [...], "umask": int | None} | None,
     "capabilities": {"bounding", "effective", "permitted", "inheritable", "ambient": [numbers]},
     "noNewPrivileges": bool, "cwd": str | None}

Capability numbers are those the running kernel knows (the runtime and the container share the
kernel); "ambient" holds only those that can be raised (in both inheritable and permitted).

Not here, because they need more than the config: whether the host has the LSM a label asks for
(linux/lsm.py, a host check), and what only the container's view can tell (the cwd resolved inside
the rootfs, security.verify_cwd). This module imports no ctypes, json, re or enum: `exec` builds the
plan in its short-lived parent.
"""
from ocirun.errors import ConfigError
from ocirun.linux import capabilities

# --- rlimits -------------------------------------------------------------------------------------

# asm-generic/resource.h numbers (x86_64, aarch64); Python's resource module lacks RLIMIT_LOCKS.
RLIMITS = {name: number for number, name in enumerate((
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"))}
# The kernel's (rlim_t)-1 as Python's resource module spells it (resource.RLIM_INFINITY on Linux),
# written out so that this module does not load the resource extension.
RLIM_INFINITY = -1
_U64 = 1 << 64


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_from(value, low: int, high: int, path: str) -> int:
    if not _is_int(value) or not low <= value <= high:
        raise ConfigError(path, f"must be an integer from {low} to {high}, got {value!r}")
    return value


def _u64(value, path: str) -> int:
    if not _is_int(value) or not 0 <= value < _U64:
        raise ConfigError(path, f"must be an unsigned 64-bit integer, got {value!r}")
    return value


def _object_naming(value, path: str, key: str, names: dict, what: str) -> str:
    """value[key] of a setting that must be an object naming one of `names` (a class, a policy, a mode)."""
    if not isinstance(value, dict):
        raise ConfigError(path, "must be an object")
    name = value.get(key)
    if name not in names:
        raise ConfigError(f"{path}.{key}", f"unknown {what} {name!r}")
    return name


def _flag_bits(flags, path: str, bits: dict, what: str) -> int:
    """The OR of the named flags' bits; flags may be absent."""
    out = 0
    for i, flag in enumerate(flags or ()):
        if flag not in bits:
            raise ConfigError(f"{path}[{i}]", f"unknown {what} {flag!r}")
        out |= bits[flag]
    return out


def _rlim(value: int) -> int:
    # uint64 in config.json; everything from 2**63 up is RLIM_INFINITY for the kernel's rlim_t
    # (which is what runc passes on).
    return RLIM_INFINITY if value >= 1 << 63 else value


def parse_rlimits(rlimits, path: str = "process.rlimits") -> list[list]:
    """[[resource, name, soft, hard]]; unknown or duplicated types and soft > hard are errors."""
    if rlimits is None:
        return []
    if not isinstance(rlimits, list):
        raise ConfigError(path, "must be an array")
    out, seen = [], set()
    for i, entry in enumerate(rlimits):
        epath = f"{path}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(epath, "must be an object")
        name = entry.get("type")
        if name not in RLIMITS:
            raise ConfigError(f"{epath}.type", f"unknown rlimit type {name!r}")
        if name in seen:
            raise ConfigError(f"{epath}.type", f"duplicated rlimit type {name}")
        seen.add(name)
        soft, hard = _u64(entry.get("soft"), f"{epath}.soft"), _u64(entry.get("hard"), f"{epath}.hard")
        if min(soft, 1 << 63) > min(hard, 1 << 63):
            raise ConfigError(epath, f"soft limit {soft} is greater than hard limit {hard}")
        out.append([RLIMITS[name], name, _rlim(soft), _rlim(hard)])
    return out


# --- oom_score_adj -------------------------------------------------------------------------------

def parse_oom_score_adj(value, path: str = "process.oomScoreAdj") -> int | None:
    return None if value is None else _int_from(value, -1000, 1000, path)


# --- personality ---------------------------------------------------------------------------------

PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}   # PER_LINUX, PER_LINUX32


def parse_personality(value, path: str = "linux.personality") -> int | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(path, "must be an object")
    domain = value.get("domain")
    if domain not in PERSONALITY_DOMAINS:
        raise ConfigError(f"{path}.domain", f"unknown execution domain {domain!r} (LINUX or LINUX32)")
    if value.get("flags"):
        raise ConfigError(f"{path}.flags", "personality flags are not supported (the spec defines none)")
    return PERSONALITY_DOMAINS[domain]


# --- I/O priority --------------------------------------------------------------------------------

IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_CLASS_SHIFT = 13     # linux/ioprio.h


def parse_io_priority(value, path: str = "process.ioPriority") -> int | None:
    """The ioprio value (class << 13 | level)."""
    if value is None:
        return None
    cls = _object_naming(value, path, "class", IOPRIO_CLASSES, "I/O priority class")
    level = _int_from(value.get("priority"), 0, 7, f"{path}.priority")
    return IOPRIO_CLASSES[cls] << IOPRIO_CLASS_SHIFT | level


# --- scheduler -----------------------------------------------------------------------------------

SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10,
               "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20, "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}


def parse_scheduler(value, path: str = "process.scheduler") -> dict | None:
    """sched_setattr's fields; checks as runc's validator: nice range, priority only for FIFO/RR,
    times only for DEADLINE."""
    if value is None:
        return None
    policy = _object_naming(value, path, "policy", SCHED_POLICIES, "scheduling policy")
    if policy == "SCHED_ISO":
        raise ConfigError(f"{path}.policy", "SCHED_ISO is not implemented by the Linux kernel")
    flags = _flag_bits(value.get("flags"), f"{path}.flags", SCHED_FLAGS, "scheduler flag")
    nice = _int_from(value.get("nice", 0), -20, 19, f"{path}.nice")
    priority = _int_from(value.get("priority", 0), 0, 99, f"{path}.priority")
    if priority and policy not in ("SCHED_FIFO", "SCHED_RR"):
        raise ConfigError(f"{path}.priority", "can only be set with SCHED_FIFO or SCHED_RR")
    if policy in ("SCHED_FIFO", "SCHED_RR") and not priority:
        raise ConfigError(f"{path}.priority", f"{policy} needs a priority from 1 to 99")
    sched = {"policy": SCHED_POLICIES[policy], "policyName": policy, "flags": flags, "nice": nice,
             "priority": priority}
    for key in ("runtime", "deadline", "period"):
        t = _u64(value.get(key, 0), f"{path}.{key}")
        if t and policy != "SCHED_DEADLINE":
            raise ConfigError(f"{path}.{key}", "can only be set with SCHED_DEADLINE")
        sched[key] = t
    return sched


# --- CPU affinity (execCPUAffinity) --------------------------------------------------------------

def parse_cpu_list(text, path: str) -> set[int]:
    """"0-3,7" -> {0, 1, 2, 3, 7}."""
    if not isinstance(text, str):
        raise ConfigError(path, "must be a string such as \"0-3,7\"")
    cpus = set()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ConfigError(path, f"invalid CPU list {text!r} (expected e.g. \"0-3,7\")")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first or last >= 8192:
            raise ConfigError(path, f"invalid CPU range {part!r}")
        cpus.update(range(first, last + 1))
    return cpus


def parse_exec_cpu_affinity(value, path: str = "process.execCPUAffinity") -> list:
    """[initial, final] sorted CPU lists; None when not set (or empty: the kernel decides).
    Applied by `exec` only: the spec says it does not apply to the container's init."""
    if value is None:
        return [None, None]
    if not isinstance(value, dict):
        raise ConfigError(path, "must be an object")
    out = []
    for key in ("initial", "final"):
        text = value.get(key)
        out.append(sorted(parse_cpu_list(text, f"{path}.{key}")) if text else None)
    return out


# --- NUMA memory policy --------------------------------------------------------------------------

MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3, "MPOL_LOCAL": 4,
              "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_NUMA_BALANCING": 1 << 13}
_MPOL_WITHOUT_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
_MPOL_NEED_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE")


def parse_memory_policy(value, path: str = "linux.memoryPolicy") -> list | None:
    """[mode | flags, sorted nodes] for set_mempolicy(2)."""
    if value is None:
        return None
    mode_name = _object_naming(value, path, "mode", MPOL_MODES, "memory policy mode")
    nodes = parse_cpu_list(value["nodes"], f"{path}.nodes") if value.get("nodes") else set()
    if nodes and mode_name in _MPOL_WITHOUT_NODES:
        raise ConfigError(f"{path}.nodes", f"must be empty with {mode_name}")
    if not nodes and mode_name in _MPOL_NEED_NODES:
        raise ConfigError(f"{path}.nodes", f"{mode_name} needs at least one node")
    flags = _flag_bits(value.get("flags"), f"{path}.flags", MPOL_FLAGS, "memory policy flag")
    return [MPOL_MODES[mode_name] | flags, sorted(nodes)]


# --- user ----------------------------------------------------------------------------------------

def _id(value, path: str) -> int:
    if value is None:
        raise ConfigError(path, "is required (config.md: uid and gid are REQUIRED)")
    if not _is_int(value) or not 0 <= value < 0xFFFFFFFF:   # (uid_t)-1 means "unchanged" to the kernel
        raise ConfigError(path, f"must be an id from 0 to 4294967294, got {value!r}")
    return value


def parse_user(value, path: str = "process.user") -> dict | None:
    """{"uid", "gid", "additionalGids", "umask"}; numeric ids only: no /etc/passwd or NSS lookups
    in the container (D-12)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(path, "must be an object")
    if value.get("username"):
        raise ConfigError(f"{path}.username", "is only supported on Windows; use uid and gid")
    uid = _id(value.get("uid"), f"{path}.uid")
    gid = _id(value.get("gid"), f"{path}.gid")
    gids = value.get("additionalGids") or []
    if not isinstance(gids, list):
        raise ConfigError(f"{path}.additionalGids", "must be an array of group ids")
    extra = [_id(g, f"{path}.additionalGids[{i}]") for i, g in enumerate(gids)]
    umask = value.get("umask")
    if umask is not None and (not _is_int(umask) or not 0 <= umask <= 0o777):
        raise ConfigError(f"{path}.umask", f"must be an integer from 0 to 0o777 (511), got {umask!r}")
    return {"uid": uid, "gid": gid, "additionalGids": extra, "umask": umask}


# --- cwd -----------------------------------------------------------------------------------------

def parse_cwd(value, path: str = "process.cwd") -> str | None:
    """Lexical only: whether it stays inside the rootfs is the container's view (security.verify_cwd)."""
    if value is not None and (not isinstance(value, str) or not value.startswith("/")):
        raise ConfigError(path, "must be an absolute path")
    return value


# --- the whole plan ------------------------------------------------------------------------------

def build(config: dict) -> tuple[dict, list[str]]:
    """The process settings of config (its "process" and the linux fields that act on the process)
    as plan data, and the warnings to print (capabilities that are skipped: config.md says warn,
    not fail). ConfigError on the first bad field."""
    process = config.get("process") or {}
    linux = config.get("linux") or {}
    caps = process.get("capabilities")
    warnings = capabilities.validate_capabilities(caps)
    settings = {
        "rlimits": parse_rlimits(process.get("rlimits")),
        "oomScoreAdj": parse_oom_score_adj(process.get("oomScoreAdj")),
        "personality": parse_personality(linux.get("personality")),
        "ioPriority": parse_io_priority(process.get("ioPriority")),
        "scheduler": parse_scheduler(process.get("scheduler")),
        "execCPUAffinity": parse_exec_cpu_affinity(process.get("execCPUAffinity")),
        "memoryPolicy": parse_memory_policy(linux.get("memoryPolicy")),
        "user": parse_user(process.get("user")),
        "capabilities": capabilities.plan_capabilities(caps),
        "noNewPrivileges": bool(process.get("noNewPrivileges")),
        "cwd": parse_cwd(process.get("cwd")),
    }
    return settings, warnings


def validate_and_compile(config: dict) -> "tuple[list[str], SeccompProgram | None, dict]":
    """create's one pass over the process, in the runtime: the settings checked into plan data
    (build), the host's LSMs checked against the labels asked for, and the seccomp profile compiled
    into the program the process will load (the one compile of a create: libseccomp is dlopen()ed
    by the runtime only). Returns (warnings, program or None, settings). Here, not in
    ocirun.security (the init's and exec helper's module), so that create does not import that
    one (~0.5 ms)."""
    from ocirun.linux import lsm    # (ctypes, through syscalls: not at import, for exec's parent)
    settings, warnings = build(config)
    lsm.validate_lsm(config)     # a host check: apparmorProfile, selinuxLabel, mountLabel need the LSM
    return warnings, compile_seccomp(config), settings


def compile_seccomp(config: dict) -> "SeccompProgram | None":
    """linux.seccomp as the program the process loads (SeccompProgram; to_wire() for the message),
    or None without a profile: compiled by the runtime (create, exec), so that neither the init nor
    the exec helper loads libseccomp."""
    seccomp = (config.get("linux") or {}).get("seccomp")
    if seccomp is None:
        return None
    from ocirun.linux.seccomp import compile_filter
    with compile_filter(seccomp) as built:
        return built.program()
