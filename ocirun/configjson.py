"""Decoding config.json strictly: UTF-8 JSON whose every value the kernel and Go's runc can take.

json.loads alone accepts more than runc's Go decoder and more than a container can use, and some of
it turned into tracebacks later on (lone surrogates in the log writer, RecursionError, OverflowError)
or into silent damage (a NUL byte cuts a mount destination or type short in the kernel). So:
- the bytes must be UTF-8 (json.loads(bytes) would also take UTF-16 and UTF-32; runc refuses them);
- no string or key may hold a NUL byte, a lone surrogate or an invalid UTF-8 byte;
- nesting is bounded (Go's decoder: "exceeded max depth"; Python's would raise RecursionError);
- numbers must be finite and integers fit 64 bits (NaN, Infinity, 1e400 and 2**64 are not Go values).
Every refusal is a one-line ConfigError naming the JSON path of the offending value.
"""
from ocirun.errors import ConfigError

# Go's encoding/json allows 10000; ours is lower because the schema validator and the encoders
# recurse in Python (about 1000 frames). No spec field is nested more than about 8 levels.
MAX_DEPTH = 200
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1


def decode(raw: bytes, what: str = "config.json") -> dict:
    """Parse `raw` as the JSON object of config.json; every failure is one ConfigError line."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\0" in raw[:4]:
        # a BOM or NULs among ASCII: json.loads(bytes) would decode it; runc's decoder refuses it
        raise ConfigError(what, "invalid JSON: UTF-16 or UTF-32 text; JSON must be UTF-8")
    try:
        text = raw.decode("utf-8")
        bad_byte = None
    except UnicodeDecodeError as e:
        # Parse anyway (invalid bytes become U+DC80..U+DCFF) so the error can name the JSON path.
        text = raw.decode("utf-8", "surrogateescape")
        bad_byte = e.start
    try:
        doc = _loads(text)
    except RecursionError:
        raise ConfigError(what, f"invalid JSON: exceeded max depth ({MAX_DEPTH} levels)") from None
    except ValueError as e:
        if not hasattr(e, "colno"):     # not a json.JSONDecodeError: e.g. an integer of more than 4300 digits
            raise ConfigError(what, f"invalid JSON: {' '.join(str(e).split())[:200]}") from None
        if bad_byte is not None:
            raise ConfigError(what, f"invalid JSON: not UTF-8 text (an invalid byte at offset {bad_byte})") \
                from None
        if e.pos == 0 and text[:1] == "\ufeff":
            raise ConfigError(what, "invalid JSON: a byte order mark; JSON is UTF-8 without one") from None
        raise ConfigError(what, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(doc, dict):
        raise ConfigError(what, f"must contain a JSON object, not {type(doc).__name__}")
    check_values(doc, bad_utf8=bad_byte is not None)
    return doc


def _loads(text: str):
    """json.loads(text). The C scanner alone parses valid JSON (json.loads runs the same one); the
    json package, whose import costs re and enum (~6 ms of every create), is only imported to say
    where invalid JSON is wrong (json.JSONDecodeError, with its line and column)."""
    from ocirun import fastjson
    try:
        return fastjson.loads(text)
    except ValueError:
        pass
    import json
    return json.loads(text)


def _path(parts: tuple) -> str:
    from ocirun.spec import json_path
    return json_path(parts) or "config.json"


def check_process_file(doc: dict, what: str) -> None:
    """check_values() for `exec --process FILE`: paths are given as process.<field>."""
    try:
        check_values({"process": doc})
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc.path}", exc.msg) from None


def _check_string(s: str, parts: tuple, bad_utf8: bool, what: str = "") -> None:
    if "\0" in s:
        raise ConfigError(_path(parts), f"{what}must not contain a NUL byte")
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            reason = "invalid UTF-8 bytes" if bad_utf8 else "a lone surrogate (\\ud800-\\udfff escape)"
            raise ConfigError(_path(parts), f"{what}must be valid Unicode text, not {reason}") from None


def check_values(doc, bad_utf8: bool = False) -> None:
    """Walk the parsed document (iteratively: it may be deep) and refuse what no runtime can use."""
    stack = [(doc, (), 1)]
    while stack:
        value, parts, depth = stack.pop()
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                raise ConfigError(_path(parts[:4]), f"exceeded max depth ({MAX_DEPTH} levels of nesting)")
            for key, item in value.items():
                _check_string(key, parts + (key,), bad_utf8, "a key ")
                if isinstance(item, (dict, list)):
                    stack.append((item, parts + (key,), depth + 1))
                elif item.__class__ is not bool and item is not None:
                    _check_scalar(item, parts + (key,), bad_utf8)
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                raise ConfigError(_path(parts[:4]), f"exceeded max depth ({MAX_DEPTH} levels of nesting)")
            for i, item in enumerate(value):
                if isinstance(item, (dict, list)):
                    stack.append((item, parts + (i,), depth + 1))
                elif item.__class__ is not bool and item is not None:
                    _check_scalar(item, parts + (i,), bad_utf8)


def _check_scalar(value, parts: tuple, bad_utf8: bool) -> None:
    if isinstance(value, str):
        _check_string(value, parts, bad_utf8)
    elif isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise ConfigError(_path(parts), "number out of range (a 64-bit integer)")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(_path(parts), "number out of range (NaN and Infinity are not JSON numbers)")
