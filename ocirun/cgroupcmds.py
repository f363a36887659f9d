"""runc's cgroup commands: pause, resume, update, events, ps (`def cmd(g, argv) -> int`)."""
import json
import os
import re
import sys
import time

from ocirun import state as state_mod
from ocirun import statuscheck
from ocirun.cliparse import UsageError, need_id, parse
from ocirun.errors import ConfigError, OciError


def _manager(st):
    from ocirun.linux.cgroups import manager_from_dict
    if not st.cgroup:
        raise OciError(f"container {st.id} has no cgroup recorded in its state")
    return manager_from_dict(st.cgroup)


def _emit(obj) -> None:
    # runc writes with encoding/json: compact, one object per line
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


# --- pause / resume ------------------------------------------------------------------------------

def pause(g, argv: list[str]) -> int:
    return _freezer(g, argv, "pause", freeze=True)


def resume(g, argv: list[str]) -> int:
    return _freezer(g, argv, "resume", freeze=False)


def _freezer(g, argv: list[str], op: str, freeze: bool) -> int:
    _, pos = parse(argv, {})
    cid = need_id(pos, op)
    with state_mod.lock(g.root, cid):
        st = state_mod.load(g.root, cid)
        statuscheck.check(cid, st.status, op)
        manager = _manager(st)
        manager.freeze() if freeze else manager.thaw()
    return 0


# --- update --------------------------------------------------------------------------------------

_UPDATE_FLAGS = {
    "resources": "str", "blkio-weight": "str", "cpu-period": "str", "cpu-quota": "str", "cpu-burst": "str",
    "cpu-rt-period": "str", "cpu-rt-runtime": "str", "cpu-share": "str", "cpuset-cpus": "str", "cpuset-mems": "str",
    "memory": "str", "memory-reservation": "str", "memory-swap": "str", "kernel-memory": "str",
    "kernel-memory-tcp": "str", "pids-limit": "str", "l3-cache-schema": "str", "mem-bw-schema": "str",
}
_UPDATE_ALIASES = {"r": "resources", "cpu-shares": "cpu-share"}
_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: "10M", "1.5g", "512KiB", "100" (binary multiples)."""
    m = _SIZE.match(text)
    try:
        size = float(m.group(1)) if m else None
    except ValueError:
        size = None
    if size is None:
        raise ValueError(f"invalid size: '{text}'")
    return int(size * _UNITS.get((m.group(2) or "").lower(), 1))


def _num(opts: dict, flag: str, signed: bool) -> int | None:
    text = opts.get(flag)
    if text is None:
        return None
    try:
        value = int(text, 10)
        if not signed and value < 0:
            raise ValueError
    except ValueError:
        kind = "ParseInt" if signed else "ParseUint"
        raise UsageError(f'invalid value for {flag}: strconv.{kind}: parsing "{text}": invalid syntax') from None
    return value


def resources_from_flags(opts: dict) -> dict:
    """The flags of `update` as a linux.resources fragment holding only what was given."""
    res: dict = {}

    def put(section: str, key: str, value) -> None:
        if value is not None:
            res.setdefault(section, {})[key] = value

    for flag, key in (("memory", "limit"), ("memory-swap", "swap"), ("memory-reservation", "reservation"),
                      ("kernel-memory", "kernel"), ("kernel-memory-tcp", "kernelTCP")):
        text = opts.get(flag)
        if text is None:
            continue
        try:
            put("memory", key, -1 if text == "-1" else ram_in_bytes(text))
        except ValueError as exc:
            raise UsageError(f"invalid value for {flag}: {exc}") from None
    for flag, key, signed in (("cpu-share", "shares", False), ("cpu-period", "period", False),
                              ("cpu-quota", "quota", True), ("cpu-burst", "burst", False),
                              ("cpu-rt-period", "realtimePeriod", False), ("cpu-rt-runtime", "realtimeRuntime", True)):
        put("cpu", key, _num(opts, flag, signed))
    put("cpu", "cpus", opts.get("cpuset-cpus") or None)
    put("cpu", "mems", opts.get("cpuset-mems") or None)
    put("blockIO", "weight", _num(opts, "blkio-weight", False))
    put("pids", "limit", _num(opts, "pids-limit", True))
    return res


def _read_resources(source: str) -> dict:
    try:
        if source == "-":
            data = json.load(sys.stdin)
        else:
            with open(source) as f:
                data = json.load(f)
    except ValueError as exc:
        raise ConfigError("linux.resources", f"{source}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("linux.resources", f"{source}: must be a JSON object")
    return data


def _merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def update(g, argv: list[str]) -> int:
    opts, pos = parse(argv, _UPDATE_FLAGS, _UPDATE_ALIASES)
    cid = need_id(pos, "update")
    if opts["resources"]:
        res = _read_resources(opts["resources"])     # "all other options are ignored"
    else:
        res = resources_from_flags(opts)
        for flag, name in (("l3-cache-schema", "CAT: l3 cache schema"), ("mem-bw-schema", "MBA: memory bandwidth schema")):
            if opts[flag]:
                # ocirun has no resctrl support; runc's words when the host lacks the feature
                raise OciError(f"Intel RDT/{name} is not enabled")
    with state_mod.lock(g.root, cid):
        st = state_mod.load(g.root, cid)
        statuscheck.check(cid, st.status, "update")
        _manager(st).set(res, update=True)
        linux = st.data.setdefault("config", {}).setdefault("linux", {})
        _merge(linux.setdefault("resources", {}), res)
        st.save()
    return 0


# --- events --------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go time.ParseDuration ("5s", "1m30s", "500ms") -> seconds."""
    pos, total = 0, 0.0
    if text in ("0",):
        return 0.0
    while pos < len(text):
        m = _DURATION.match(text, pos)
        if not m:
            raise UsageError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise UsageError('time: invalid duration ""')
    return total


def events(g, argv: list[str]) -> int:
    opts, pos = parse(argv, {"interval": "str", "stats": "bool"})
    cid = need_id(pos, "events")
    interval = parse_duration(opts["interval"] or "5s")
    if interval <= 0:
        raise UsageError("duration interval must be greater than 0")
    st = state_mod.load(g.root, cid)
    statuscheck.check(cid, st.status, "events")
    m = _manager(st)
    if opts["stats"]:
        _emit({"type": "stats", "id": cid, "data": m.stats()})
        return 0
    # No threads: poll the OOM counter often and print stats every interval, until the container stops.
    ooms = m.oom_kill_count()
    next_stats = time.monotonic()
    while st.init_alive():
        now = time.monotonic()
        if now >= next_stats:
            _emit({"type": "stats", "id": cid, "data": m.stats()})
            next_stats = now + interval
        count = m.oom_kill_count()
        if count > ooms:
            _emit({"type": "oom", "id": cid})
            ooms = count
        time.sleep(min(0.2, max(0.0, next_stats - time.monotonic())))
    return 0


# --- ps ------------------------------------------------------------------------------------------

def ps(g, argv: list[str]) -> int:
    # everything after the id goes to ps(1), so `ps ID -o pid,comm` works
    opts, pos = parse(argv, {"format": "str"}, {"f": "format"}, stop_at_positional=1)
    if not pos:
        raise UsageError('"ps" requires a minimum of 1 argument')
    cid, ps_args = pos[0], pos[1:]
    fmt = opts["format"] or "table"
    if fmt not in ("table", "json"):
        raise UsageError(f"invalid format option: {fmt}")
    st = state_mod.load(g.root, cid)
    pids: list[int] = []
    if st.status != state_mod.STOPPED or (st.cgroup and _manager(st).exists()):
        pids = _manager(st).pids()
    if fmt == "json":
        sys.stdout.write((json.dumps(pids) if pids else "null") + "\n")
        return 0
    import subprocess
    try:
        out = subprocess.run(["ps", *(ps_args or ["-ef"])], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    except OSError as exc:
        raise OciError(f"exec: \"ps\": {os.strerror(exc.errno)}") from None
    if out.returncode != 0:
        raise OciError(f"exit status {out.returncode}: {out.stdout.strip()}")
    lines = out.stdout.split("\n")
    header = lines[0].split()
    if "PID" not in header:
        raise OciError("couldn't find PID field in ps output")
    index = header.index("PID")
    wanted = set(pids)
    result = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        try:
            pid = int(fields[index])
        except (ValueError, IndexError):
            raise OciError(f"unable to parse pid: {line}") from None
        if pid in wanted:
            result.append(line)
    sys.stdout.write("\n".join(result) + "\n")
    return 0
