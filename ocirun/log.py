"""runc's log format: logrus text (`time="..." level=error msg="..."`) or JSON lines.

Without --log the lines go to stderr (as runc does). With --log FILE they go to the file (opened
O_APPEND, 0644) and fatal errors are also printed bare on stderr, which is what shims and podman read.
The stdlib logging module is not used: it costs import time on every command.
"""
import os
import sys
import time

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "fatal": 50}

_fd = 2
_json = False
_threshold = LEVELS["info"]
_to_file = False
_sink = None  # the container's init sends its log lines to the parent instead of writing them

# --debug timing: (phase, wall ns, CPU ns) marks. The first is taken as this module is imported, so
# its CPU figure is what the interpreter's own start cost. None: not known yet whether --debug is on
# (the init learns it from the bootstrap), marks are kept; False: off, timing() returns at once.
_marks: list = [("", time.monotonic_ns(), time.process_time_ns())]
_timing = None
_first_mark = _marks[0]


def configure(path: str | None, fmt: str = "text", debug: bool = False) -> None:
    global _fd, _json, _threshold, _to_file
    if fmt not in ("text", "json"):
        raise ValueError(f"invalid log-format: {fmt}")
    _json = fmt == "json"
    _threshold = LEVELS["debug"] if debug else LEVELS["info"]
    if path:
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        _to_file = True
    _set_timing(debug)


def now_rfc3339(ns: int | None = None, nano: bool = False) -> str:
    ns = time.time_ns() if ns is None else ns
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    return f"{base}.{ns % 1_000_000_000:09d}Z" if nano else base + "Z"


def format_line(level: str, msg: str, ts: str | None = None) -> str:
    ts = ts or now_rfc3339()
    if _json:
        from ocirun import fastjson
        return fastjson.dumps({"level": level, "msg": msg, "time": ts}) + "\n"
    quoted = _one_line(msg.replace("\\", "\\\\").replace('"', '\\"'))
    return f'time="{ts}" level={level} msg="{quoted}"\n'


def _one_line(text: str) -> str:
    """One line whatever a message quotes (config text, mount data: a form feed, a tab or U+2028 as
    well as a newline), escaped as errors.one_line escapes a ConfigError's text."""
    if text.isprintable():
        return text
    from ocirun.errors import one_line  # (here: log's import is the mark of the interpreter's start)
    return one_line(text)


def set_sink(sink, debug: bool = False) -> None:
    """Route every line to sink(level, msg) (None: drop them); used by the container's init, whose
    stderr is the container's and must never carry the runtime's logs."""
    global _sink, _threshold
    _sink = sink if sink is not None else (lambda level, msg: None)
    _threshold = LEVELS["debug"] if debug else LEVELS["info"]
    _set_timing(debug and sink is not None)


def log(level: str, msg: str) -> None:
    if LEVELS[level] < _threshold:
        return
    if _sink is not None:
        _sink(level, msg)
        return
    try:
        # backslashreplace: a message may quote config text holding a lone surrogate; the line is
        # still written, never replaced by a UnicodeEncodeError
        os.write(_fd, format_line(level, msg).encode("utf-8", "backslashreplace"))
    except OSError:
        pass


def debug(msg: str) -> None:
    log("debug", msg)


def info(msg: str) -> None:
    log("info", msg)


def warning(msg: str) -> None:
    log("warning", msg)


def error(msg: str) -> None:
    log("error", msg)


def fatal(msg: str) -> None:
    """The root cause, logged last; also printed on stderr when the log goes to a file."""
    log("error", msg)
    if _to_file:
        try:
            sys.stderr.write(_one_line(msg) + "\n")
            sys.stderr.flush()
        except OSError:
            pass


def is_debug() -> bool:
    return _threshold <= LEVELS["debug"]


# --- --debug timing lines --------------------------------------------------------------------------

def timing(phase: str) -> None:
    """Mark the end of a phase: with --debug, one line `timing: <phase>: <wall> ms (cpu <cpu> ms)`
    since the previous mark. Costs nothing measurable without --debug."""
    if _timing is False:
        return
    _marks.append((phase, time.monotonic_ns(), time.process_time_ns()))
    if _timing:
        for line in timing_lines():
            log("debug", line)
        _marks[-1] = ("", time.monotonic_ns(), time.process_time_ns())  # writing the lines is not the next phase's


def timing_lines() -> list[str]:
    """The lines of the marks taken so far (forgotten once returned); the exec helper sends them to
    `ocirun exec`, which logs them."""
    lines = []
    if _marks and _marks[0] is _first_mark:
        lines.append(f"timing: interpreter start: cpu {_first_mark[2] / 1e6:.1f} ms")
    for (_, wall0, cpu0), (phase, wall1, cpu1) in zip(_marks, _marks[1:]):
        if phase:   # (a mark without a phase only starts the next one: see timing_forked)
            lines.append(f"timing: {phase}: {(wall1 - wall0) / 1e6:.1f} ms (cpu {(cpu1 - cpu0) / 1e6:.1f} ms)")
    del _marks[:-1]
    return lines


def timing_forked() -> None:
    """In a child just forked: its CPU clock starts again from zero, so its next phase is measured
    from here (the time since the previous mark is not reported)."""
    if _timing is not False:
        _marks.append(("", time.monotonic_ns(), 0))


def _set_timing(debug: bool) -> None:
    global _timing
    _timing = bool(debug)
    if not _timing:
        _marks.clear()
    elif len(_marks) > 1:
        for line in timing_lines():
            log("debug", line)
