"""config.json decoding (ocirun/configjson.py): what json.loads takes but no runtime can use is one
ConfigError naming the JSON path. The end-to-end forms are in tests/integration/test_hostile_input.py."""
import json
import os

import pytest

from ocirun import hooks, log
from ocirun.configjson import MAX_DEPTH, decode
from ocirun.errors import ConfigError


def refused(raw: bytes) -> str:
    with pytest.raises(ConfigError) as info:
        decode(raw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_plain_config_is_decoded():
    doc = {"a": [1, 2.5, "x", True, None, {"b": -1}]}
    assert decode(json.dumps(doc).encode()) == doc


@pytest.mark.parametrize("raw, needle", [
    (b'{"a": "\\ud800"}', "a: must be valid Unicode text, not a lone surrogate"),
    (b'{"a": ["x", "\\udfff"]}', "a[1]: must be valid Unicode text"),
    (b'{"a": "\xff"}', "a: must be valid Unicode text, not invalid UTF-8 bytes"),
    (b'{"a": "x\\u0000"}', "a: must not contain a NUL byte"),
    (b'{"a\\u0000": 1}', 'a key must not contain a NUL byte'),
    (b'{"a": NaN}', "a: number out of range"),
    (b'{"a": -Infinity}', "a: number out of range"),
    (b'{"a": 1e400}', "a: number out of range"),
    (b'{"a": 18446744073709551616}', "a: number out of range"),
    (b'{"a": -9223372036854775809}', "a: number out of range"),
    (b'{"a": ' + b"1" * 5000 + b"}", "config.json: invalid JSON"),
    (b"[1]", "must contain a JSON object, not list"),
    (b'{"a": 1', "config.json: invalid JSON"),
    (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "exceeded max depth"),
    (b'{"a": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}", "a[0][0][0]: exceeded max depth"),
    (b'\xef\xbb\xbf{}', "byte order mark"),
    ('{"a": 1}'.encode("utf-16"), "UTF-16"),
    ('{"a": 1}'.encode("utf-16-be"), "UTF-16"),
    ('{"a": 1}'.encode("utf-32-le"), "UTF-16 or UTF-32"),
])
def test_refused(raw, needle):
    assert needle in refused(raw)


def test_the_edges_are_accepted():
    doc = {"a": [18446744073709551615, -9223372036854775808, 1e308, "\u00e9\U0001f600"]}
    assert decode(json.dumps(doc, ensure_ascii=False).encode()) == doc
    deep = b'{"a": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    decode(deep)


def test_the_log_writer_survives_a_lone_surrogate(tmp_path, monkeypatch):
    path = str(tmp_path / "log")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    monkeypatch.setattr(log, "_fd", fd)
    monkeypatch.setattr(log, "_sink", None)
    try:
        log.error("bad value '\ud800'")
    finally:
        os.close(fd)
    assert "bad value '\\ud800'" in open(path).read()


def test_a_hook_timeout_beyond_poll_s_range_does_not_overflow():
    hooks.run_hook({"path": "/bin/true", "timeout": 10 ** 10}, {"id": "x"}, "prestart")
