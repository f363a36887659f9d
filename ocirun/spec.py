"""Reading config.json and checking it against ocirun's own JSON schema (spec/*.json -> ocirun._spec).

The schema check is generated code (ocirun/schema_check.py): jsonschema would cost 60-100 ms of
imports and validator building on every create. Keep this module's top-level imports to the stdlib.
"""
import os
from _json import encode_basestring_ascii   # json.dumps of a str, without importing json.encoder

from ocirun.errors import ConfigError

SCHEMA_PACKAGE = "ocirun._spec"
ROOT_SCHEMA = "config-schema.json"
# Longest instance text kept in a schema error message (jsonschema puts repr(instance) in it).
_MAX_MESSAGE = 300


def json_path(parts) -> str:
    """['linux', 'uidMappings', 0, 'size'] -> 'linux.uidMappings[0].size'.

    Map keys that are not plain identifiers (sysctl names, annotation keys, device names) are quoted,
    `linux.sysctl["net.ipv4.ip_forward"]`, so the path stays unambiguous.
    """
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isascii() and part.isidentifier():     # [A-Za-z_][A-Za-z0-9_]*
            out += f".{part}" if out else part
        else:
            out += "[" + encode_basestring_ascii(part) + "]"
    return out


def load_config(bundle: str) -> dict:
    """Read and parse <bundle>/config.json; every failure is a one-line ConfigError naming the file."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError("config.json", f"open {path}: {e.strerror}") from e
    from ocirun.configjson import decode
    return decode(raw)


def schema_files():
    """The directory of our schema files: package data `ocirun._spec` in a wheel install; in a source
    checkout (an editable install that does not map package-dir) the `spec/` directory beside `ocirun/`."""
    from importlib.resources import files

    try:
        return files(SCHEMA_PACKAGE)
    except ModuleNotFoundError:
        from pathlib import Path

        source = Path(__file__).resolve().parent.parent / "spec"
        if (source / ROOT_SCHEMA).is_file():
            return source
        raise ConfigError("", f"ocirun is broken: package {SCHEMA_PACKAGE} (the config.json schema) is missing")


def _short(message: str) -> str:
    message = " ".join(message.split())
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE - 3] + "..."
    return message


def validate_schema(doc: dict) -> None:
    """Raise ConfigError(`<json path>`, message) for the first schema violation in `doc`.

    The check is ocirun/schema_check.py, generated from spec/*.json by scripts/gen_schema_check.py
    (it imports nothing; jsonschema is only the oracle of its tests)."""
    from ocirun import schema_check
    try:
        schema_check.check(doc)
    except schema_check.SchemaError as error:
        raise ConfigError(json_path(error.path) or "config.json", _short(error.message)) from None
