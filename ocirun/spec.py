"""Reading config.json and checking it against ocirun's own JSON schema (spec/*.json -> ocirun._spec).

jsonschema and referencing cost 70-100 ms to import, so they are imported inside validate_schema():
only `create` and `run` pay for them. Keep this module's top-level imports to the stdlib.
"""
import json
import os
import re

from ocirun.errors import ConfigError

SCHEMA_PACKAGE = "ocirun._spec"
ROOT_SCHEMA = "config-schema.json"
# Longest instance text kept in a schema error message (jsonschema puts repr(instance) in it).
_MAX_MESSAGE = 300

CACHE_LIMIT = 512   # schema verdicts kept under <root>/.schema-verdicts
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_validator = None


def json_path(parts) -> str:
    """['linux', 'uidMappings', 0, 'size'] -> 'linux.uidMappings[0].size'.

    Map keys that are not plain identifiers (sysctl names, annotation keys, device names) are quoted,
    `linux.sysctl["net.ipv4.ip_forward"]`, so the path stays unambiguous.
    """
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += "[" + json.dumps(part) + "]"
    return out


def load_config(bundle: str) -> dict:
    """Read and parse <bundle>/config.json; every failure is a one-line ConfigError naming the file."""
    return read_config(bundle)[0]


def read_config(bundle: str) -> tuple[dict, bytes]:
    """load_config() that also returns the raw bytes (the key of the schema verdict cache)."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError("config.json", f"open {path}: {e.strerror}") from e
    from ocirun.configjson import decode
    return decode(raw), raw


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


def _load_validator():
    """Build the validator once per process: our schema files, their $refs resolved by a Registry."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    resources = []
    root = None
    for entry in schema_files().iterdir():
        if not entry.name.endswith(".json"):
            continue
        contents = json.loads(entry.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
        if entry.name == ROOT_SCHEMA:
            root = contents
    if root is None:
        raise ConfigError("", f"ocirun is broken: {ROOT_SCHEMA} missing from package {SCHEMA_PACKAGE}")
    # No `retrieve` callable: a $ref outside our files is an error, never a network fetch.
    registry = Registry().with_resources(resources)
    return Draft202012Validator(root, registry=registry)


def _short(message: str) -> str:
    message = " ".join(message.split())
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE - 3] + "..."
    return message


def validate_schema(doc: dict) -> None:
    """Raise ConfigError(`<json path>`, message) for the most relevant schema violation of `doc`."""
    global _validator
    from jsonschema.exceptions import best_match

    if _validator is None:
        _validator = _load_validator()
    error = best_match(_validator.iter_errors(doc))
    if error is None:
        return
    raise ConfigError(json_path(error.absolute_path) or "config.json", _short(error.message))


def _schema_fingerprint() -> str:
    """Changes whenever the schema files or ocirun's version change (cache keys include it)."""
    from ocirun import __version__
    spec_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "spec")
    try:
        stamps = sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in os.scandir(spec_dir)
                        if e.name.endswith(".json"))
    except FileNotFoundError:
        stamps = []  # installed as a wheel: the version alone identifies the schema
    return f"{__version__}:{stamps}"


def validate_schema_cached(raw: bytes, doc: dict, cache_dir: str) -> None:
    """validate_schema() with a verdict cache: a config whose exact bytes already passed the same
    schema is not validated again. jsonschema costs ~60 ms a create (import and first validation),
    and managers create many containers from the same or few configs. Only successes are cached,
    keyed by SHA-256 of the bytes and the schema's fingerprint, in a root-owned directory."""
    try:
        from _sha256 import sha256  # the builtin module: hashlib's import of OpenSSL costs ~6 ms
    except ImportError:
        from hashlib import sha256
    key = sha256(raw + b"\0" + _schema_fingerprint().encode()).hexdigest()
    marker = os.path.join(cache_dir, key)
    if os.path.exists(marker):
        return
    validate_schema(doc)
    try:
        # the root first, so that it is made 0700 (makedirs gives the levels above the last 0755)
        os.makedirs(os.path.dirname(cache_dir), 0o700, exist_ok=True)
        os.makedirs(cache_dir, 0o700, exist_ok=True)
        entries = os.listdir(cache_dir)
        if len(entries) >= CACHE_LIMIT:   # bounded: managers make a new config per container
            for name in entries:
                os.unlink(os.path.join(cache_dir, name))
        os.close(os.open(marker, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    except OSError:
        pass  # a cache that cannot be written only costs time

