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
import re
from collections import namedtuple

from ocirun.errors import ConfigError
from ocirun.linux.cgroups import devices as _devices

R = "linux.resources"
_PAGE_SIZE = re.compile(r"^[1-9][0-9]*[KMG]B$")


# controller: v1 subsystem / v2 controller owning the file ("" = a v2 core file); field: the JSON
# path of the config field, for errors; alts: ((file, value), ...) tried in order when `file` does
# not exist; optional: an extra write done only if the file exists (e.g. hugetlb rsvd limits).
# (collections.namedtuple: typing.NamedTuple costs ~4 ms of imports on every create)
Write = namedtuple("Write", "controller file value field alts optional", defaults=((), False))


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


# --- shared parts --------------------------------------------------------------------------------

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


def _pids(res: dict, out: list[Write]) -> None:
    pids = _obj(res, "pids", f"{R}.pids")
    limit = _int(pids, "limit", f"{R}.pids.limit")
    if limit is not None:
        out.append(Write("pids", "pids.max", "max" if limit < 0 else str(limit), f"{R}.pids.limit"))


def _hugetlb(res: dict, out: list[Write], v2: bool) -> None:
    for i, h in enumerate(_list(res, "hugepageLimits", f"{R}.hugepageLimits")):
        path = f"{R}.hugepageLimits[{i}]"
        size = h.get("pageSize") if isinstance(h, dict) else None
        if not isinstance(size, str) or not _PAGE_SIZE.match(size):
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


_THROTTLES = (("throttleReadBpsDevice", "read_bps_device", "rbps"),
              ("throttleWriteBpsDevice", "write_bps_device", "wbps"),
              ("throttleReadIOPSDevice", "read_iops_device", "riops"),
              ("throttleWriteIOPSDevice", "write_iops_device", "wiops"))


def _device_writes_v1(res: dict, current: dict, with_devices: bool) -> list[Write]:
    if "devices" not in res and not with_devices:
        return []
    target = _devices.emulate(_devices.rules_from_spec(_list(res, "devices", f"{R}.devices")))
    cur = None
    if current.get("devices.list") is not None:
        cur = _devices.parse_devices_list(current["devices.list"])
    return [Write("devices", f, v, f"{R}.devices") for f, v in _devices.v1_writes(target, cur)]


# --- cgroup v1 -----------------------------------------------------------------------------------

def v1_writes(res: dict | None, current: dict | None = None, *, with_devices: bool = False) -> list[Write]:
    """Writes for cgroup v1. `current` holds what was read from the cgroup: "memory.usage" (int, for
    checkBeforeUpdate) and "devices.list" (text, to write only device rule differences).
    with_devices: apply the device policy even without a devices list (create: deny-all + defaults)."""
    res = res or {}
    current = current or {}
    if not isinstance(res, dict):
        raise ConfigError(R, "must be an object")
    out: list[Write] = []

    if res.get("unified"):
        raise ConfigError(f"{R}.unified", "needs cgroup v2, but the controllers on this host are on cgroup v1")

    out += _device_writes_v1(res, current, with_devices)

    mem = _obj(res, "memory", f"{R}.memory")
    _check_memory_usage(mem, current)
    limit = _limit(mem, "limit", f"{R}.memory.limit")
    swap = _limit(mem, "swap", f"{R}.memory.swap")
    if limit == -1 and swap is None:
        swap = -1          # unlimited memory implies unlimited swap (runc)
    if limit is not None:
        out.append(Write("memory", "memory.limit_in_bytes", str(limit), f"{R}.memory.limit"))
    if swap is not None:
        out.append(Write("memory", "memory.memsw.limit_in_bytes", str(swap), f"{R}.memory.swap"))
    for key, file in (("reservation", "memory.soft_limit_in_bytes"), ("kernel", "memory.kmem.limit_in_bytes"),
                      ("kernelTCP", "memory.kmem.tcp.limit_in_bytes")):
        v = _limit(mem, key, f"{R}.memory.{key}")
        if v is not None:
            out.append(Write("memory", file, str(v), f"{R}.memory.{key}"))
    swappiness = _int(mem, "swappiness", f"{R}.memory.swappiness", minimum=0)
    if swappiness is not None:
        if swappiness > 100:
            raise ConfigError(f"{R}.memory.swappiness", f"invalid value {swappiness} (valid range is 0-100)")
        out.append(Write("memory", "memory.swappiness", str(swappiness), f"{R}.memory.swappiness"))
    if _bool(mem, "disableOOMKiller", f"{R}.memory.disableOOMKiller"):
        out.append(Write("memory", "memory.oom_control", "1", f"{R}.memory.disableOOMKiller"))
    hier = _bool(mem, "useHierarchy", f"{R}.memory.useHierarchy")
    if hier is not None:
        out.append(Write("memory", "memory.use_hierarchy", "1" if hier else "0", f"{R}.memory.useHierarchy"))

    cpu = _obj(res, "cpu", f"{R}.cpu")
    _cpu_checks(cpu)
    shares = _int(cpu, "shares", f"{R}.cpu.shares", minimum=0)
    if shares:
        out.append(Write("cpu", "cpu.shares", str(shares), f"{R}.cpu.shares"))
    for key, file in (("period", "cpu.cfs_period_us"), ("quota", "cpu.cfs_quota_us")):
        v = _limit(cpu, key, f"{R}.cpu.{key}")
        if v is not None:
            out.append(Write("cpu", file, str(v), f"{R}.cpu.{key}"))
    burst = _int(cpu, "burst", f"{R}.cpu.burst", minimum=0)
    if burst is not None:
        out.append(Write("cpu", "cpu.cfs_burst_us", str(burst), f"{R}.cpu.burst"))
    for key, file in (("realtimePeriod", "cpu.rt_period_us"), ("realtimeRuntime", "cpu.rt_runtime_us")):
        v = _limit(cpu, key, f"{R}.cpu.{key}")
        if v is not None:
            out.append(Write("cpu", file, str(v), f"{R}.cpu.{key}"))
    idle = _int(cpu, "idle", f"{R}.cpu.idle")
    if idle is not None:
        out.append(Write("cpu", "cpu.idle", str(idle), f"{R}.cpu.idle"))
    for key, file in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        v = _str(cpu, key, f"{R}.cpu.{key}")
        if v:
            out.append(Write("cpuset", file, v, f"{R}.cpu.{key}"))

    _pids(res, out)

    bio = _obj(res, "blockIO", f"{R}.blockIO")
    w = _int(bio, "weight", f"{R}.blockIO.weight", minimum=0)
    if w:
        out.append(Write("blkio", "blkio.weight", str(w), f"{R}.blockIO.weight", alts=(("blkio.bfq.weight", str(w)),)))
    lw = _int(bio, "leafWeight", f"{R}.blockIO.leafWeight", minimum=0)
    if lw:
        out.append(Write("blkio", "blkio.leaf_weight", str(lw), f"{R}.blockIO.leafWeight"))
    for i, wd in enumerate(_list(bio, "weightDevice", f"{R}.blockIO.weightDevice")):
        path = f"{R}.blockIO.weightDevice[{i}]"
        key = _dev_key(wd, path)
        dw = _int(wd, "weight", f"{path}.weight", minimum=0)
        dlw = _int(wd, "leafWeight", f"{path}.leafWeight", minimum=0)
        if dw is None and dlw is None:
            raise ConfigError(path, "at least one of weight or leafWeight is required")
        if dw is not None:
            out.append(Write("blkio", "blkio.weight_device", f"{key} {dw}", f"{path}.weight",
                             alts=(("blkio.bfq.weight_device", f"{key} {dw}"),)))
        if dlw is not None:
            out.append(Write("blkio", "blkio.leaf_weight_device", f"{key} {dlw}", f"{path}.leafWeight"))
    for spec_key, suffix, _ in _THROTTLES:
        for i, td in enumerate(_list(bio, spec_key, f"{R}.blockIO.{spec_key}")):
            path = f"{R}.blockIO.{spec_key}[{i}]"
            rate = _int(td, "rate", f"{path}.rate", minimum=0) if isinstance(td, dict) else None
            key = _dev_key(td, path)
            if rate is None:
                raise ConfigError(f"{path}.rate", "is required")
            out.append(Write("blkio", f"blkio.throttle.{suffix}", f"{key} {rate}", path))

    _hugetlb(res, out, v2=False)

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

    _rdma(res, out)
    return out


# --- cgroup v2 -----------------------------------------------------------------------------------

def _v2_unsupported(path: str, what: str) -> ConfigError:
    return ConfigError(path, f"{what} is not supported on cgroup v2")


def v2_writes(res: dict | None, current: dict | None = None) -> list[Write]:
    """Writes for cgroup v2 (devices are a BPF program: see devices.bpf_program). `current` may hold
    "memory.usage" (int) and "cpu.max" (text, to keep the quota when only the period changes)."""
    res = res or {}
    current = current or {}
    if not isinstance(res, dict):
        raise ConfigError(R, "must be an object")
    out: list[Write] = []

    mem = _obj(res, "memory", f"{R}.memory")
    _check_memory_usage(mem, current)
    limit = _limit(mem, "limit", f"{R}.memory.limit")
    swap = swap_to_v2(_limit(mem, "swap", f"{R}.memory.swap"), limit)
    if swap is not None:
        out.append(Write("memory", "memory.swap.max", _v2_num(swap), f"{R}.memory.swap"))
    if limit is not None:
        out.append(Write("memory", "memory.max", _v2_num(limit), f"{R}.memory.limit"))
    reservation = _limit(mem, "reservation", f"{R}.memory.reservation")
    if reservation is not None:
        out.append(Write("memory", "memory.low", _v2_num(reservation), f"{R}.memory.reservation"))
    for key in ("kernel", "kernelTCP"):
        v = _limit(mem, key, f"{R}.memory.{key}")
        if v not in (None, -1):
            raise _v2_unsupported(f"{R}.memory.{key}", "a separate kernel memory limit")
    if _int(mem, "swappiness", f"{R}.memory.swappiness") is not None:
        raise _v2_unsupported(f"{R}.memory.swappiness", "a per-cgroup swappiness")
    if _bool(mem, "disableOOMKiller", f"{R}.memory.disableOOMKiller"):
        raise _v2_unsupported(f"{R}.memory.disableOOMKiller", "disabling the OOM killer")
    if _bool(mem, "useHierarchy", f"{R}.memory.useHierarchy") is False:
        raise _v2_unsupported(f"{R}.memory.useHierarchy", "non-hierarchical accounting (false)")

    cpu = _obj(res, "cpu", f"{R}.cpu")
    _cpu_checks(cpu)
    shares = _int(cpu, "shares", f"{R}.cpu.shares", minimum=0)
    if shares:
        out.append(Write("cpu", "cpu.weight", str(shares_to_weight(shares)), f"{R}.cpu.shares"))
    quota = _limit(cpu, "quota", f"{R}.cpu.quota")
    period = _limit(cpu, "period", f"{R}.cpu.period")
    if period == -1:
        raise ConfigError(f"{R}.cpu.period", "invalid value -1")
    if quota is not None or period is not None:
        if quota is None:
            # keep the current quota: "max <period>" would silently lift it
            cur = (current.get("cpu.max") or "max").split()
            text = cur[0] if cur else "max"
        else:
            text = _v2_num(quota)
        if period is not None:
            text += f" {period}"
        out.append(Write("cpu", "cpu.max", text, f"{R}.cpu.quota" if quota is not None else f"{R}.cpu.period"))
    burst = _int(cpu, "burst", f"{R}.cpu.burst", minimum=0)
    if burst is not None:
        out.append(Write("cpu", "cpu.max.burst", str(burst), f"{R}.cpu.burst"))
    for key in ("realtimePeriod", "realtimeRuntime"):
        if _limit(cpu, key, f"{R}.cpu.{key}") is not None:
            raise _v2_unsupported(f"{R}.cpu.{key}", "realtime CPU scheduling limits")
    idle = _int(cpu, "idle", f"{R}.cpu.idle")
    if idle is not None:
        out.append(Write("cpu", "cpu.idle", str(idle), f"{R}.cpu.idle"))
    for key, file in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        v = _str(cpu, key, f"{R}.cpu.{key}")
        if v:
            out.append(Write("cpuset", file, v, f"{R}.cpu.{key}"))

    _pids(res, out)

    bio = _obj(res, "blockIO", f"{R}.blockIO")
    w = _int(bio, "weight", f"{R}.blockIO.weight", minimum=0)
    if w:
        out.append(Write("io", "io.bfq.weight", str(w), f"{R}.blockIO.weight",
                         alts=(("io.weight", str(blkio_weight_to_io_weight(w))),)))
    if _int(bio, "leafWeight", f"{R}.blockIO.leafWeight"):
        raise _v2_unsupported(f"{R}.blockIO.leafWeight", "leafWeight")
    for i, wd in enumerate(_list(bio, "weightDevice", f"{R}.blockIO.weightDevice")):
        path = f"{R}.blockIO.weightDevice[{i}]"
        key = _dev_key(wd, path)
        if _int(wd, "leafWeight", f"{path}.leafWeight") is not None:
            raise _v2_unsupported(f"{path}.leafWeight", "leafWeight")
        dw = _int(wd, "weight", f"{path}.weight", minimum=0)
        if dw is None:
            raise ConfigError(f"{path}.weight", "is required")
        out.append(Write("io", "io.bfq.weight", f"{key} {dw}", f"{path}.weight",
                         alts=(("io.weight", f"{key} {blkio_weight_to_io_weight(dw)}"),)))
    for spec_key, _, v2key in _THROTTLES:
        for i, td in enumerate(_list(bio, spec_key, f"{R}.blockIO.{spec_key}")):
            path = f"{R}.blockIO.{spec_key}[{i}]"
            key = _dev_key(td, path)
            rate = _int(td, "rate", f"{path}.rate", minimum=0)
            if rate is None:
                raise ConfigError(f"{path}.rate", "is required")
            out.append(Write("io", "io.max", f"{key} {v2key}={rate or 'max'}", path))

    _hugetlb(res, out, v2=True)

    net = _obj(res, "network", f"{R}.network")
    if net.get("classID") is not None or net.get("priorities"):
        raise ConfigError(f"{R}.network", "net_cls/net_prio are cgroup v1 controllers, not available on cgroup v2")

    _rdma(res, out)

    # unified last, so that its values win over the converted ones (runc)
    for key, value in _obj(res, "unified", f"{R}.unified").items():
        path = f"{R}.unified.{key}"
        if not key or "/" in key or key.startswith(".") or ".." in key or "." not in key:
            raise ConfigError(path, "invalid cgroup file name")
        if not isinstance(value, str):
            raise ConfigError(path, "must be a string")
        ctrl = key.split(".", 1)[0]
        out.append(Write("" if ctrl == "cgroup" else ctrl, key, value, path))
    return out
