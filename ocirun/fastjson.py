"""JSON through the C accelerator _json, without importing the json package.

`import json` pulls in re, enum, functools and collections: about 5 ms, a third of what `state`,
`start`, `kill` and `delete` cost. Those commands only read and write ocirun's own state file and
print runc's state JSON, so they use this instead; everything else uses the json package.
Output is byte-identical to json.dumps (ensure_ascii, the same separators, indent=2 as runc prints).
A Python built without _json (it is optional in CPython) gets the json package's pure-Python code.
"""
try:
    import _json
except ImportError:
    _json = None

_INFINITY = float("inf")


class _Context:
    """The attributes _json.make_scanner reads (those of json.JSONDecoder)."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod({"NaN": float("nan"), "Infinity": _INFINITY, "-Infinity": -_INFINITY}.__getitem__)
    memo: dict = {}


if _json is not None:
    _scan = _json.make_scanner(_Context())
    _encode_ascii = _json.encode_basestring_ascii
else:
    import json as _pyjson
    from json.encoder import py_encode_basestring_ascii as _encode_ascii
    from json.scanner import py_make_scanner
    _scan = py_make_scanner(_pyjson.JSONDecoder())
_WHITESPACE = " \t\n\r"


def loads(text: str | bytes):
    if isinstance(text, bytes):
        text = text.decode()
    idx = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        obj, end = _scan(text, idx)
    except StopIteration as exc:
        raise ValueError(f"invalid JSON at character {exc.value}") from None
    except SystemError:
        # _json reports most syntax errors through json.decoder.JSONDecodeError, which it looks up
        # only if the json package is already imported: without it, a bare SystemError
        raise ValueError("invalid JSON") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"extra data at character {end}")
    return obj


def _default(obj):
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


if _json is not None:
    _encode = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ": ", ", ",
                                 False, False, True)

    def dumps(obj) -> str:
        """json.dumps(obj) (compact with the default separators)."""
        return "".join(_encode(obj, 0))
else:
    def dumps(obj) -> str:
        return _pyjson.dumps(obj)


def dumps_indented(obj, indent: int = 2, _level: int = 0) -> str:
    """json.dumps(obj, indent=indent): what runc prints for `state`."""
    pad = " " * (indent * (_level + 1))
    end = " " * (indent * _level)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = (f"{pad}{_encode_ascii(str(k))}: {dumps_indented(v, indent, _level + 1)}"
                 for k, v in obj.items())
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        return "[\n" + ",\n".join(pad + dumps_indented(v, indent, _level + 1) for v in obj) + "\n" + end + "]"
    return dumps(obj)
