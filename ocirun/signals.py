"""Signal names and numbers as `runc kill` (runc 1.1.5) understands them.

runc's parseSignal, checked against the installed runc:
- a decimal integer (Go strconv.Atoi: optional + or -, ASCII digits, leading zeros fine, no spaces, no
  "0x", no "_", must fit int64) is returned as is, with no range check: `runc kill ID 100` or `-18`
  fails only when kill(2) says EINVAL ("unable to signal init: invalid argument");
- anything else is upper-cased, gets a "SIG" prefix unless it has one, and is looked up in the 31
  names of golang.org/x/sys/unix's signal list: "kill", "KILL", "SigKill" all mean 9;
- aliases (SIGIOT, SIGCLD, SIGPOLL, SIGUNUSED) and real-time names (SIGRTMIN, SIGRTMIN+1, SIGRTMAX) are
  unknown (real-time signals are reachable by number only), as is "" (runc's kill command turns an
  empty argument into SIGTERM before parsing);
- an unknown name fails with `unknown signal "FOO"`, the argument quoted as Go's %q does.

The `signal` module is not needed for this (the table is runc's, not Python's, which has aliases).
"""
from ocirun.errors import OciError

# golang.org/x/sys/unix signalList for linux/amd64, in signal number order.
SIGNALS: dict[str, int] = {
    "SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGBUS": 7,
    "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13,
    "SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16, "SIGCHLD": 17, "SIGCONT": 18, "SIGSTOP": 19,
    "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22, "SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25,
    "SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29, "SIGPWR": 30, "SIGSYS": 31,
}
_NAMES = {num: name for name, num in SIGNALS.items()}

# What `kill` sends when no signal (or an empty one) is given.
DEFAULT_KILL_SIGNAL = "SIGTERM"

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class UnknownSignal(OciError):
    def __init__(self, text: str):
        self.text = text
        super().__init__(f"unknown signal {go_quote(text)}")


def parse_signal(text: str) -> int:
    """"KILL" | "SIGKILL" | "kill" | "9" -> 9, exactly as runc's parseSignal; UnknownSignal otherwise."""
    number = _go_atoi(text)
    if number is not None:
        return number
    name = _go_upper(text)
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return SIGNALS[name]
    except KeyError:
        raise UnknownSignal(text) from None


def signal_name(number: int) -> str:
    """9 -> "SIGKILL"; a number with no name (0, real-time, out of range) -> "signal 34", as Go's
    Signal.String() words it."""
    return _NAMES.get(number) or f"signal {number}"


def _go_atoi(text: str) -> int | None:
    """strconv.Atoi: [+-]?[0-9]+ within int64, else None (Python's int() would also take spaces,
    underscores and non-ASCII digits)."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    number = int(text)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def _go_upper(text: str) -> str:
    """strings.ToUpper maps rune by rune; str.upper() can grow a character ("ß" -> "SS"), Go keeps it."""
    if text.isascii():
        return text.upper()
    return "".join(up if len(up := ch.upper()) == 1 else ch for ch in text)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", '"': '\\"', "\\": "\\\\"}


def go_quote(text: str) -> str:
    """Go's %q (strconv.Quote) of a string: "FOO" -> "\\"FOO\\"", control characters escaped; bytes that
    were not UTF-8 in argv (surrogate-escaped by Python) come out as \\xNN, as Go prints them."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
