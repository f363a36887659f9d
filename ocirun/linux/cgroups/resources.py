"""linux.resources -> the cgroup file writes for v1 and for v2. Pure: the ONLY home of conversions.

Conventions (runc's, unless noted):
- A memory/cpu limit of 0 means "not set" (nothing is written); -1 means unlimited ("-1" on v1,
  "max" on v2). pids.limit follows the spec instead: 0 is a real limit (written as "0"), any negative
  value is "max".
- cpu.shares -> cpu.weight uses the quadratic mapping of runc >= 1.3 / crun >= 1.23, which maps
  2 -> 1, 1024 -> 100 (v2's default) and 262144 -> 10000 (runc 1.1's linear formula gave 39 for 1024).
- memory.swap is memory+swap (the v1 meaning); v2's memory.swap.max gets swap - limit.
- blockIO.weight -> io.bfq.weight unchanged, or io.weight as 1 + (w - 10) * 9999 / 990.
- Something the host cannot apply is an error raised by the manager when the file or controller is
  missing; something a cgroup version cannot express is a ConfigError raised here.

The manager applies the writes in order and retries, once, every write the kernel rejected with
EINVAL/EBUSY after the others are done: that settles ordering constraints (memory vs memsw limit,
cpu period vs quota, rt period vs runtime) whatever the current values are.
"""
import math

from ocirun.errors import ConfigError
from ocirun.record import record
from ocirun.linux.cgroups import devices as _devices

R = "linux.resources"


def _is_page_size(size: str) -> bool:
    """[1-9][0-9]*[KMG]B (2MB, 1GB, 64KB); not a regular expression: `re` costs ~3 ms of a create."""
    number = size[:-2]
    return (size[-2:] in ("KB", "MB", "GB") and number[:1] in "123456789"
            and number.isascii() and number.isdigit())


# controller: v1 subsystem / v2 controller owning the file ("" = a v2 core file); field: the JSON
# path of the config field, for errors; alts: ((file, value), ...) tried in order when `file` does
# not exist; optional: an extra write done only if the file exists (e.g. hugetlb rsvd limits).
# (ocirun.record: typing.NamedTuple costs ~4 ms of imports on every create, collections ~1 ms)
Write = record("Write", "controller file value field alts optional", defaults=((), False))


# --- conversions ---------------------------------------------------------------------------------

def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000]; 0 stays 0 ("not set")."""
    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    log = math.log2(shares)
    return math.ceil(10 ** ((log * log + 125 * log) / 612.0 - 7.0 / 34.0))


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000] (runc fs2 convertBlkIOToIOWeightValue)."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap: int | None, limit: int | None) -> int | None:
    """memory+swap (spec/v1) -> memory.swap.max (v2); None = do not write, -1 = max."""
    swap = swap or 0
    limit = limit or 0
    if limit == -1 and swap == 0:
        return -1          # unlimited memory implies unlimited swap (cgroup v1 compatibility)
    if swap == 0:
        return None
    if swap == -1:
        return -1
    if limit in (0, -1):
        raise ConfigError(f"{R}.memory.swap", "unable to set a swap limit without a memory limit")
    if swap < limit:
        raise ConfigError(f"{R}.memory.swap", f"memory+swap limit ({swap}) should be >= memory limit ({limit})")
    return swap - limit


def _v2_num(n: int) -> str:
    return "max" if n == -1 else str(n)


# --- field access with type checks ---------------------------------------------------------------

def _obj(parent: dict, key: str, path: str) -> dict:
    v = parent.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(path, "must be an object")
    return v


def _int(obj: dict, key: str, path: str, *, minimum: int | None = None) -> int | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(path, f"must be an integer, not {v!r}")
    if minimum is not None and v < minimum:
        raise ConfigError(path, f"invalid value {v} (minimum {minimum})")
    return v


def _limit(obj: dict, key: str, path: str) -> int | None:
    """A byte/time limit: None when unset or 0, -1 = unlimited, other negatives are errors."""
    v = _int(obj, key, path, minimum=-1)
    return v or None


def _bool(obj: dict, key: str, path: str) -> bool | None:
    v = obj.get(key)
    if v is None or isinstance(v, bool):
        return v
    raise ConfigError(path, f"must be a boolean, not {v!r}")


def _str(obj: dict, key: str, path: str) -> str | None:
    v = obj.get(key)
    if v is None or isinstance(v, str):
        return v or None
    raise ConfigError(path, f"must be a string, not {v!r}")


def _list(obj: dict, key: str, path: str) -> list:
    v = obj.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise ConfigError(path, "must be an array")
    return v


# --- the table: one row per field, spec path -> v1 file, v2 file, converter --------------------------

# A row's v1/v2 entry is one of:
#   To(controller, file, convert, alts): value = the row's reader; convert(value, path) -> the text to
#       write, or None for "nothing to write"; alts: ((file, convert), ...) tried when `file` is missing.
#   No(what, when): the field cannot be expressed on that version: when(value) -> refuse it.
#   None: the field means nothing there (nothing to write, nothing to refuse).
#   Both(fn): fields that convert together (memory limit+swap, cpu quota+period):
#       fn(obj, current, v2) -> writes.
To = record("To", "controller file convert alts", defaults=((),))
No = record("No", "what when")
Both = record("Both", "fn")


def _text(v, path):                 # the value as is
    return str(v)


def _nonzero(v, path):              # 0 means "not set" (cpu.shares, blockIO weights)
    return str(v) if v else None


def _nonzero_min0(v, path):         # read without a minimum so that v2 refuses -1 as "not supported"
    if v < 0:
        raise ConfigError(path, f"invalid value {v} (minimum 0)")
    return _nonzero(v, path)


def _true(v, path):                 # only `true` writes (disableOOMKiller)
    return "1" if v else None


def _flag(v, path):
    return "1" if v else "0"


def _v2_limit(v, path):
    return _v2_num(v)


def _weight(v, path):
    return str(shares_to_weight(v)) if v else None


def _io_weight(v, path):
    return str(blkio_weight_to_io_weight(v))


def _swappiness(v, path):
    if v < 0:
        raise ConfigError(path, f"invalid value {v} (minimum 0)")
    if v > 100:
        raise ConfigError(path, f"invalid value {v} (valid range is 0-100)")
    return str(v)


def _is_set(v):
    return v is not None


def _limited(v):                    # -1 (unlimited) is what v2 does anyway
    return v not in (None, -1)


def _memory_limit_swap(mem: dict, current: dict, v2: bool) -> list[Write]:
    limit = _limit(mem, "limit", f"{R}.memory.limit")
    swap = _limit(mem, "swap", f"{R}.memory.swap")
    if v2:
        swap = swap_to_v2(swap, limit)
        files = (("memory.swap.max", swap, "swap"), ("memory.max", limit, "limit"))     # runc's order
    else:
        if limit == -1 and swap is None:
            swap = -1          # unlimited memory implies unlimited swap (runc)
        files = (("memory.limit_in_bytes", limit, "limit"), ("memory.memsw.limit_in_bytes", swap, "swap"))
    return [Write("memory", file, _v2_num(v) if v2 else str(v), f"{R}.memory.{key}")
            for file, v, key in files if v is not None]


def _cpu_quota_period(cpu: dict, current: dict, v2: bool) -> list[Write]:
    quota = _limit(cpu, "quota", f"{R}.cpu.quota")
    period = _limit(cpu, "period", f"{R}.cpu.period")
    if not v2:
        return [Write("cpu", file, str(v), f"{R}.cpu.{key}")
                for key, file, v in (("period", "cpu.cfs_period_us", period), ("quota", "cpu.cfs_quota_us", quota))
                if v is not None]
    if period == -1:
        raise ConfigError(f"{R}.cpu.period", "invalid value -1")
    if quota is None and period is None:
        return []
    if quota is None:
        # keep the current quota: "max <period>" would silently lift it
        cur = (current.get("cpu.max") or "max").split()
        text = cur[0] if cur else "max"
    else:
        text = _v2_num(quota)
    if period is not None:
        text += f" {period}"
    return [Write("cpu", "cpu.max", text, f"{R}.cpu.quota" if quota is not None else f"{R}.cpu.period")]


def _int0(obj, key, path):
    return _int(obj, key, path, minimum=0)


# In write order (the manager retries rejected writes once, so order only settles the common case).
FIELDS = (
    ("memory.limit", None, Both(_memory_limit_swap), Both(_memory_limit_swap)),
    ("memory.reservation", _limit, To("memory", "memory.soft_limit_in_bytes", _text),
     To("memory", "memory.low", _v2_limit)),
    ("memory.kernel", _limit, To("memory", "memory.kmem.limit_in_bytes", _text),
     No("a separate kernel memory limit", _limited)),
    ("memory.kernelTCP", _limit, To("memory", "memory.kmem.tcp.limit_in_bytes", _text),
     No("a separate kernel memory limit", _limited)),
    ("memory.swappiness", _int, To("memory", "memory.swappiness", _swappiness),
     No("a per-cgroup swappiness", _is_set)),
    ("memory.disableOOMKiller", _bool, To("memory", "memory.oom_control", _true),
     No("disabling the OOM killer", bool)),
    ("memory.useHierarchy", _bool, To("memory", "memory.use_hierarchy", _flag),
     No("non-hierarchical accounting (false)", lambda v: v is False)),
    ("cpu.shares", _int0, To("cpu", "cpu.shares", _nonzero), To("cpu", "cpu.weight", _weight)),
    ("cpu.quota", None, Both(_cpu_quota_period), Both(_cpu_quota_period)),
    ("cpu.burst", _int0, To("cpu", "cpu.cfs_burst_us", _text), To("cpu", "cpu.max.burst", _text)),
    ("cpu.realtimePeriod", _limit, To("cpu", "cpu.rt_period_us", _text),
     No("realtime CPU scheduling limits", _is_set)),
    ("cpu.realtimeRuntime", _limit, To("cpu", "cpu.rt_runtime_us", _text),
     No("realtime CPU scheduling limits", _is_set)),
    ("cpu.idle", _int, To("cpu", "cpu.idle", _text), To("cpu", "cpu.idle", _text)),
    ("cpu.cpus", _str, To("cpuset", "cpuset.cpus", _text), To("cpuset", "cpuset.cpus", _text)),
    ("cpu.mems", _str, To("cpuset", "cpuset.mems", _text), To("cpuset", "cpuset.mems", _text)),
    ("pids.limit", _int, To("pids", "pids.max", lambda v, p: "max" if v < 0 else str(v)),
     To("pids", "pids.max", lambda v, p: "max" if v < 0 else str(v))),
    ("blockIO.weight", _int0, To("blkio", "blkio.weight", _nonzero, (("blkio.bfq.weight", _text),)),
     To("io", "io.bfq.weight", _nonzero, (("io.weight", _io_weight),))),
    ("blockIO.leafWeight", _int, To("blkio", "blkio.leaf_weight", _nonzero_min0), No("leafWeight", bool)),
)


def _apply_fields(res: dict, current: dict, v2: bool, out: list[Write]) -> None:
    groups: dict[str, dict] = {}
    for name, read, *targets in FIELDS:
        group, key = name.split(".", 1)
        obj = groups.get(group)
        if obj is None:
            obj = groups[group] = _obj(res, group, f"{R}.{group}")
            if group == "memory":
                _check_memory_usage(obj, current)
            elif group == "cpu":
                _cpu_checks(obj)
        target = targets[v2]
        if target is None:
            continue
        if isinstance(target, Both):
            out += target.fn(obj, current, v2)
            continue
        path = f"{R}.{name}"
        value = read(obj, key, path)
        if isinstance(target, No):
            if target.when(value):
                raise ConfigError(path, f"{target.what} is not supported on cgroup v2")
            continue
        if value is None:
            continue
        text = target.convert(value, path)
        if text is not None:
            out.append(Write(target.controller, target.file, text, path,
                             alts=tuple((f, conv(value, path)) for f, conv in target.alts)))


# --- the fields that are lists or maps ---------------------------------------------------------------

def _check_memory_usage(mem: dict, current: dict) -> None:
    if not _bool(mem, "checkBeforeUpdate", f"{R}.memory.checkBeforeUpdate"):
        return
    limit = _limit(mem, "limit", f"{R}.memory.limit")
    usage = current.get("memory.usage")
    if limit and limit > 0 and usage is not None and usage > limit:
        raise ConfigError(f"{R}.memory.limit", f"new memory limit {limit} is lower than the current usage {usage} "
                                               "(checkBeforeUpdate)")


def _cpu_checks(cpu: dict) -> None:
    quota = _int(cpu, "quota", f"{R}.cpu.quota", minimum=-1)
    burst = _int(cpu, "burst", f"{R}.cpu.burst", minimum=0)
    if quota and quota > 0 and burst and burst > quota:
        raise ConfigError(f"{R}.cpu.burst", f"burst ({burst}) must not be larger than quota ({quota})")


def _hugetlb(res: dict, out: list[Write], v2: bool) -> None:
    for i, h in enumerate(_list(res, "hugepageLimits", f"{R}.hugepageLimits")):
        path = f"{R}.hugepageLimits[{i}]"
        size = h.get("pageSize") if isinstance(h, dict) else None
        if not isinstance(size, str) or not _is_page_size(size):
            raise ConfigError(f"{path}.pageSize", f"invalid hugepage size {size!r} (want e.g. 2MB, 1GB, 64KB)")
        limit = _int(h, "limit", f"{path}.limit", minimum=0)
        if limit is None:
            raise ConfigError(f"{path}.limit", "is required")
        main, rsvd = (f"hugetlb.{size}.max", f"hugetlb.{size}.rsvd.max") if v2 else \
            (f"hugetlb.{size}.limit_in_bytes", f"hugetlb.{size}.rsvd.limit_in_bytes")
        out.append(Write("hugetlb", main, str(limit), path))
        out.append(Write("hugetlb", rsvd, str(limit), path, optional=True))


def _rdma(res: dict, out: list[Write]) -> None:
    rdma = _obj(res, "rdma", f"{R}.rdma")
    for dev, lim in rdma.items():
        path = f"{R}.rdma.{dev}"
        if not isinstance(lim, dict):
            raise ConfigError(path, "must be an object")
        if not dev or any(c.isspace() for c in dev) or "/" in dev:
            raise ConfigError(path, "invalid device name")
        line = dev
        for key, name in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
            v = _int(lim, key, f"{path}.{key}", minimum=0)
            if v is not None:
                line += f" {name}={v}"
        if line == dev:
            raise ConfigError(path, "at least one of hcaHandles or hcaObjects is required")
        out.append(Write("rdma", "rdma.max", line, path))


def _dev_key(entry, path: str) -> str:
    if not isinstance(entry, dict):
        raise ConfigError(path, "must be an object")
    major = _int(entry, "major", f"{path}.major", minimum=0)
    minor = _int(entry, "minor", f"{path}.minor", minimum=0)
    if major is None or minor is None:
        raise ConfigError(path, "major and minor are required")
    return f"{major}:{minor}"


def _weight_devices(bio: dict, out: list[Write], v2: bool) -> None:
    for i, wd in enumerate(_list(bio, "weightDevice", f"{R}.blockIO.weightDevice")):
        path = f"{R}.blockIO.weightDevice[{i}]"
        key = _dev_key(wd, path)
        if v2 and _int(wd, "leafWeight", f"{path}.leafWeight") is not None:
            raise ConfigError(f"{path}.leafWeight", "leafWeight is not supported on cgroup v2")
        dw = _int(wd, "weight", f"{path}.weight", minimum=0)
        dlw = None if v2 else _int(wd, "leafWeight", f"{path}.leafWeight", minimum=0)
        if dw is None and dlw is None:
            raise ConfigError(f"{path}.weight" if v2 else path,
                              "is required" if v2 else "at least one of weight or leafWeight is required")
        if dw is not None:
            out.append(Write("io", "io.bfq.weight", f"{key} {dw}", f"{path}.weight",
                             alts=(("io.weight", f"{key} {blkio_weight_to_io_weight(dw)}"),)) if v2 else
                       Write("blkio", "blkio.weight_device", f"{key} {dw}", f"{path}.weight",
                             alts=(("blkio.bfq.weight_device", f"{key} {dw}"),)))
        if dlw is not None:
            out.append(Write("blkio", "blkio.leaf_weight_device", f"{key} {dlw}", f"{path}.leafWeight"))


# spec key, v1 file blkio.throttle.<suffix>, v2 io.max key
_THROTTLES = (("throttleReadBpsDevice", "read_bps_device", "rbps"),
              ("throttleWriteBpsDevice", "write_bps_device", "wbps"),
              ("throttleReadIOPSDevice", "read_iops_device", "riops"),
              ("throttleWriteIOPSDevice", "write_iops_device", "wiops"))


def _throttles(bio: dict, out: list[Write], v2: bool) -> None:
    for spec_key, suffix, v2key in _THROTTLES:
        for i, td in enumerate(_list(bio, spec_key, f"{R}.blockIO.{spec_key}")):
            path = f"{R}.blockIO.{spec_key}[{i}]"
            key = _dev_key(td, path)
            rate = _int(td, "rate", f"{path}.rate", minimum=0)
            if rate is None:
                raise ConfigError(f"{path}.rate", "is required")
            out.append(Write("io", "io.max", f"{key} {v2key}={rate or 'max'}", path) if v2 else
                       Write("blkio", f"blkio.throttle.{suffix}", f"{key} {rate}", path))


def _network_v1(res: dict, out: list[Write]) -> None:
    net = _obj(res, "network", f"{R}.network")
    cls = _int(net, "classID", f"{R}.network.classID", minimum=0)
    if cls is not None:
        out.append(Write("net_cls", "net_cls.classid", str(cls), f"{R}.network.classID"))
    for i, p in enumerate(_list(net, "priorities", f"{R}.network.priorities")):
        path = f"{R}.network.priorities[{i}]"
        name = p.get("name") if isinstance(p, dict) else None
        prio = _int(p, "priority", f"{path}.priority", minimum=0) if isinstance(p, dict) else None
        if not isinstance(name, str) or not name or prio is None:
            raise ConfigError(path, "name and priority are required")
        out.append(Write("net_prio", "net_prio.ifpriomap", f"{name} {prio}", path))


def _unified(res: dict, out: list[Write]) -> None:
    for key, value in _obj(res, "unified", f"{R}.unified").items():
        path = f"{R}.unified.{key}"
        if not key or "/" in key or key.startswith(".") or ".." in key or "." not in key:
            raise ConfigError(path, "invalid cgroup file name")
        if not isinstance(value, str):
            raise ConfigError(path, "must be a string")
        ctrl = key.split(".", 1)[0]
        out.append(Write("" if ctrl == "cgroup" else ctrl, key, value, path))


def _device_writes_v1(res: dict, current: dict, with_devices: bool) -> list[Write]:
    if "devices" not in res and not with_devices:
        return []
    target = _devices.emulate(_devices.rules_from_spec(_list(res, "devices", f"{R}.devices")))
    cur = None
    if current.get("devices.list") is not None:
        cur = _devices.parse_devices_list(current["devices.list"])
    return [Write("devices", f, v, f"{R}.devices") for f, v in _devices.v1_writes(target, cur)]


# --- the two entry points ------------------------------------------------------------------------

def _writes(res: dict | None, current: dict | None, v2: bool, with_devices: bool = False) -> list[Write]:
    res = res or {}
    current = current or {}
    if not isinstance(res, dict):
        raise ConfigError(R, "must be an object")
    out: list[Write] = []
    if not v2:
        if res.get("unified"):
            raise ConfigError(f"{R}.unified", "needs cgroup v2, but the controllers on this host are on cgroup v1")
        out += _device_writes_v1(res, current, with_devices)
    _apply_fields(res, current, v2, out)
    bio = _obj(res, "blockIO", f"{R}.blockIO")
    _weight_devices(bio, out, v2)
    _throttles(bio, out, v2)
    _hugetlb(res, out, v2)
    if not v2:
        _network_v1(res, out)
    else:
        net = _obj(res, "network", f"{R}.network")
        if net.get("classID") is not None or net.get("priorities"):
            raise ConfigError(f"{R}.network", "net_cls/net_prio are cgroup v1 controllers, not available on cgroup v2")
    _rdma(res, out)
    if v2:
        _unified(res, out)     # last, so that its values win over the converted ones (runc)
    return out


def v1_writes(res: dict | None, current: dict | None = None, *, with_devices: bool = False) -> list[Write]:
    """Writes for cgroup v1. `current` holds what was read from the cgroup: "memory.usage" (int, for
    checkBeforeUpdate) and "devices.list" (text, to write only device rule differences).
    with_devices: apply the device policy even without a devices list (create: deny-all + defaults)."""
    return _writes(res, current, False, with_devices)


def v2_writes(res: dict | None, current: dict | None = None) -> list[Write]:
    """Writes for cgroup v2 (devices are a BPF program: see devices.bpf_program). `current` may hold
    "memory.usage" (int) and "cpu.max" (text, to keep the quota when only the period changes)."""
    return _writes(res, current, True)
