"""Cgroup statistics in the shape of runc's `events --stats` "data" (runc types/events.go).

Go's omitempty drops zero numbers and empty lists but keeps empty objects, which _compact mimics
for the fields runc marks omitempty.
"""
import os

from ocirun.linux.cgroups import fs

_MAX_U64 = 2**64 - 1
_USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _int(path: str, default: int = 0) -> int:
    text = fs.read_or_none(path)
    if text is None or text == "":
        return default
    if text == "max":
        return _MAX_U64
    try:
        return int(text.split()[0])
    except ValueError:
        return default


def _compact(d: dict, keys: tuple) -> dict:
    return {k: v for k, v in d.items() if not (k in keys and (v == 0 or v == [] or v is None))}


def _cpu_list(text: str | None) -> list[int]:
    out: list[int] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _cpuset(d: str | None) -> dict:
    if d is None:
        return {}
    def f(name):
        return _int(os.path.join(d, name))
    cpus = fs.read_or_none(os.path.join(d, "cpuset.cpus.effective")) or fs.read_or_none(os.path.join(d, "cpuset.cpus"))
    mems = fs.read_or_none(os.path.join(d, "cpuset.mems.effective")) or fs.read_or_none(os.path.join(d, "cpuset.mems"))
    out = {"cpus": _cpu_list(cpus), "cpu_exclusive": f("cpuset.cpu_exclusive"), "mems": _cpu_list(mems),
           "mem_hardwall": f("cpuset.mem_hardwall"), "mem_exclusive": f("cpuset.mem_exclusive"),
           "memory_migrate": f("cpuset.memory_migrate"), "memory_spread_page": f("cpuset.memory_spread_page"),
           "memory_spread_slab": f("cpuset.memory_spread_slab"), "memory_pressure": f("cpuset.memory_pressure"),
           "sched_load_balance": f("cpuset.sched_load_balance"),
           "sched_relax_domain_level": f("cpuset.sched_relax_domain_level")}
    return _compact(out, ("cpus", "mems"))


def _entry(limit: int, usage: int, peak: int, failcnt: int) -> dict:
    return _compact({"limit": limit, "usage": usage, "max": peak, "failcnt": failcnt}, ("usage", "max"))


def _blkio_entries(text: str | None) -> list[dict]:
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, minor = parts[0].split(":")
        out.append(_compact({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])},
                            ("major", "minor", "op", "value")))
    return out


def _page_sizes() -> list[str]:
    sizes = []
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return sizes
    for name in names:      # hugepages-2048kB -> 2MB
        kb = int(name.split("-")[1][:-2])
        for unit, div in (("GB", 1 << 20), ("MB", 1 << 10), ("KB", 1)):
            if kb % div == 0:
                sizes.append(f"{kb // div}{unit}")
                break
    return sizes


def _finish(cpu, cpuset, memory, pids, blkio, hugetlb) -> dict:
    return {"cpu": cpu, "cpuset": cpuset, "memory": memory, "pids": pids, "blkio": blkio, "hugetlb": hugetlb,
            "intel_rdt": {}, "network_interfaces": None}


def v1_stats(m) -> dict:
    cpu: dict = {"usage": {}, "throttling": {}}
    d = m.dir_of("cpuacct")
    if d:
        percpu = [int(x) for x in (fs.read_or_none(os.path.join(d, "cpuacct.usage_percpu")) or "").split()]
        per_sys = [int(x) for x in (fs.read_or_none(os.path.join(d, "cpuacct.usage_percpu_sys")) or "").split()]
        per_user = [int(x) for x in (fs.read_or_none(os.path.join(d, "cpuacct.usage_percpu_user")) or "").split()]
        st = fs.keyed(fs.read_or_none(os.path.join(d, "cpuacct.stat")))
        ns_per_tick = 1_000_000_000 // _USER_HZ
        cpu["usage"] = _compact({"total": _int(os.path.join(d, "cpuacct.usage")), "percpu": percpu,
                                 "percpu_kernel": per_sys, "percpu_user": per_user,
                                 "kernel": st.get("system", 0) * ns_per_tick, "user": st.get("user", 0) * ns_per_tick},
                                ("total", "percpu", "percpu_kernel", "percpu_user"))
    d = m.dir_of("cpu")
    if d:
        st = fs.keyed(fs.read_or_none(os.path.join(d, "cpu.stat")))
        cpu["throttling"] = _compact({"periods": st.get("nr_periods", 0), "throttled_periods": st.get("nr_throttled", 0),
                                      "throttled_time": st.get("throttled_time", 0)},
                                     ("periods", "throttled_periods", "throttled_time"))
    memory: dict = {}
    d = m.dir_of("memory")
    if d:
        def entry(prefix):
            p = os.path.join(d, prefix)
            return _entry(_int(p + "limit_in_bytes"), _int(p + "usage_in_bytes"), _int(p + "max_usage_in_bytes"),
                          _int(p + "failcnt"))
        raw = fs.keyed(fs.read_or_none(os.path.join(d, "memory.stat")))
        memory = _compact({"cache": raw.get("cache", 0), "usage": entry("memory."), "swap": entry("memory.memsw."),
                           "kernel": entry("memory.kmem."), "kernelTCP": entry("memory.kmem.tcp."), "raw": raw},
                          ("cache",))
    pids: dict = {}
    d = m.dir_of("pids")
    if d:
        limit = _int(os.path.join(d, "pids.max"))
        pids = _compact({"current": _int(os.path.join(d, "pids.current")), "limit": 0 if limit == _MAX_U64 else limit},
                        ("current", "limit"))
    blkio: dict = {}
    d = m.dir_of("blkio")
    if d:
        def rec(name):
            return _blkio_entries(fs.read_or_none(os.path.join(d, name)))
        blkio = _compact({"ioServiceBytesRecursive": rec("blkio.throttle.io_service_bytes_recursive"),
                          "ioServicedRecursive": rec("blkio.throttle.io_serviced_recursive")},
                         ("ioServiceBytesRecursive", "ioServicedRecursive"))
    hugetlb: dict = {}
    d = m.dir_of("hugetlb")
    if d:
        for size in _page_sizes():
            p = os.path.join(d, f"hugetlb.{size}.")
            hugetlb[size] = _compact({"usage": _int(p + "usage_in_bytes"), "max": _int(p + "max_usage_in_bytes"),
                                      "failcnt": _int(p + "failcnt")}, ("usage", "max"))
    return _finish(cpu, _cpuset(m.dir_of("cpuset")), memory, pids, blkio, hugetlb)


def v2_stats(m) -> dict:
    d = m.dir
    def p(name):
        return os.path.join(d, name)
    st = fs.keyed(fs.read_or_none(p("cpu.stat")))
    cpu = {"usage": _compact({"total": st.get("usage_usec", 0) * 1000, "kernel": st.get("system_usec", 0) * 1000,
                              "user": st.get("user_usec", 0) * 1000}, ("total",)),
           "throttling": _compact({"periods": st.get("nr_periods", 0), "throttled_periods": st.get("nr_throttled", 0),
                                   "throttled_time": st.get("throttled_usec", 0) * 1000},
                                  ("periods", "throttled_periods", "throttled_time"))}
    memory: dict = {}
    if os.path.exists(p("memory.current")):
        raw = fs.keyed(fs.read_or_none(p("memory.stat")))
        events = fs.keyed(fs.read_or_none(p("memory.events")))
        usage = _int(p("memory.current"))
        limit = _int(p("memory.max"), _MAX_U64)
        swap_usage = _int(p("memory.swap.current"))
        swap_limit = _int(p("memory.swap.max"), _MAX_U64)
        # v1 reports swap as memory+swap: do the same (runc fs2)
        memory = _compact({"cache": raw.get("file", 0),
                           "usage": _entry(limit, usage, _int(p("memory.peak")), events.get("max", 0)),
                           "swap": _entry(swap_limit if swap_limit == _MAX_U64 else swap_limit + limit,
                                          swap_usage + usage, _int(p("memory.swap.peak")), events.get("max", 0)),
                           "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0},
                           "raw": raw}, ("cache",))
    pids: dict = {}
    if os.path.exists(p("pids.current")):
        limit = _int(p("pids.max"))
        pids = _compact({"current": _int(p("pids.current")), "limit": 0 if limit == _MAX_U64 else limit},
                        ("current", "limit"))
    blkio: dict = {}
    io_text = fs.read_or_none(p("io.stat"))
    if io_text:
        sbytes, sios = [], []
        for line in io_text.splitlines():
            parts = line.split()
            if not parts or ":" not in parts[0]:
                continue
            major, minor = (int(x) for x in parts[0].split(":"))
            kv = dict(x.split("=", 1) for x in parts[1:] if "=" in x)
            for key, op, target in (("rbytes", "Read", sbytes), ("wbytes", "Write", sbytes),
                                    ("rios", "Read", sios), ("wios", "Write", sios)):
                if key in kv:
                    target.append({"major": major, "minor": minor, "op": op, "value": int(kv[key])})
        blkio = _compact({"ioServiceBytesRecursive": sbytes, "ioServicedRecursive": sios},
                         ("ioServiceBytesRecursive", "ioServicedRecursive"))
    hugetlb: dict = {}
    for size in _page_sizes():
        base = p(f"hugetlb.{size}.")
        if os.path.exists(base + "current"):
            hugetlb[size] = _compact({"usage": _int(base + "current"),
                                      "failcnt": fs.keyed(fs.read_or_none(base + "events")).get("max", 0)}, ("usage",))
    return _finish(cpu, _cpuset(d if os.path.exists(p("cpuset.cpus.effective")) else None), memory, pids, blkio,
                   hugetlb)
