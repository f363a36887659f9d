"""Our config.json schema (spec/*.json) against the official runtime-spec schema as the oracle.

The fixtures live in <schema>/test/config/{good,bad}/*.json: the directory is the expected verdict.
Each fixture must get that verdict from our schema, and the same verdict from the official schema.
The official schema refers to config-freebsd.json / config-zos.json, which are not in the reference
copy; for the fixtures that reach those refs the oracle cannot decide and only the directory verdict is
checked (test_oracle_decides_every_linux_fixture keeps that set from growing silently).
"""
import copy
import glob
import json
import os
import subprocess
import sys

import pytest

from ocirun.errors import ConfigError
from ocirun.spec import json_path, load_config, validate_schema

SCHEMA_DIR = "/work/shared/reference/runtime-spec/schema"
FIXTURES = os.path.join(SCHEMA_DIR, "test", "config")
HAVE_REFERENCE = os.path.isdir(FIXTURES)
needs_reference = pytest.mark.skipif(not HAVE_REFERENCE, reason=f"{FIXTURES} missing (shared reference folder)")

ACCEPTED, REFUSED, UNDECIDED = "accepted", "refused", "undecided"


def _fixtures():
    if not HAVE_REFERENCE:
        return []
    out = []
    for verdict, sub in ((ACCEPTED, "good"), (REFUSED, "bad")):
        for path in sorted(glob.glob(os.path.join(FIXTURES, sub, "*.json"))):
            out.append(pytest.param(path, verdict, id=f"{sub}/{os.path.basename(path)}"))
    return out


def _read(path):
    """The fixture as a dict, or None when it is not even JSON (refused by both schemas)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError:
        return None


@pytest.fixture(scope="module")
def oracle():
    """The official draft-04 schema, $refs resolved between its files by name (it has no $id)."""
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    resources = []
    for path in glob.glob(os.path.join(SCHEMA_DIR, "*.json")):
        with open(path, encoding="utf-8") as f:
            resources.append((os.path.basename(path),
                              Resource.from_contents(json.load(f), default_specification=DRAFT4)))
    with open(os.path.join(SCHEMA_DIR, "config-schema.json"), encoding="utf-8") as f:
        root = json.load(f)
    return Draft4Validator(root, registry=Registry().with_resources(resources))


def oracle_verdict(oracle, doc):
    from referencing.exceptions import Unresolvable

    if doc is None:
        return REFUSED
    try:
        return ACCEPTED if oracle.is_valid(doc) else REFUSED
    except Unresolvable:
        return UNDECIDED


def our_verdict(doc):
    if doc is None:
        return REFUSED
    try:
        validate_schema(doc)
    except ConfigError:
        return REFUSED
    return ACCEPTED


@needs_reference
@pytest.mark.parametrize("path,expected", _fixtures())
def test_fixture_verdict_matches_official_schema(oracle, path, expected):
    doc = _read(path)
    ours = our_verdict(doc)
    assert ours == expected
    official = oracle_verdict(oracle, doc)
    if official != UNDECIDED:
        assert official == ours


@needs_reference
def test_fixture_set_is_not_empty():
    names = {os.path.basename(p.values[0]) for p in _fixtures()}
    assert {"minimal.json", "spec-example.json", "linux-hugepage.json", "invalid-json.json"} <= names


@needs_reference
def test_oracle_decides_every_linux_fixture(oracle):
    """Only the FreeBSD and z/OS fixtures may escape the comparison with the official schema."""
    undecided = set()
    for param in _fixtures():
        path = param.values[0]
        if oracle_verdict(oracle, _read(path)) == UNDECIDED:
            undecided.add(os.path.basename(path))
    assert undecided <= {"freebsd-example.json", "freebsd-minimal.json", "freebsd-vnet-disable.json",
                         "zos-example.json", "zos-minimal.json"}


# --- mutations of the spec example: both schemas must agree, except on listed, deliberate points ---

def _set(path, value):
    def mutate(doc):
        *parents, last = path
        node = doc
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return mutate


_DELETE = object()

AGREE = [
    ("no ociVersion", _set(["ociVersion"], _DELETE), REFUSED),
    ("ociVersion not a string", _set(["ociVersion"], 1), REFUSED),
    ("no process.cwd", _set(["process", "cwd"], _DELETE), REFUSED),
    ("root without path", _set(["root"], {"readonly": True}), REFUSED),
    ("args not strings", _set(["process", "args"], ["sh", 1]), REFUSED),
    ("unknown namespace", _set(["linux", "namespaces", 0, "type"], "foo"), REFUSED),
    ("uid mapping size string", _set(["linux", "uidMappings", 0, "size"], "1"), REFUSED),
    ("uid mapping size negative", _set(["linux", "uidMappings", 0, "size"], -1), REFUSED),
    ("uid mapping size > uint32", _set(["linux", "uidMappings", 0, "size"], 2**32), REFUSED),
    ("mount without destination", _set(["mounts", 0, "destination"], _DELETE), REFUSED),
    ("hook without path", _set(["hooks", "poststart", 0, "path"], _DELETE), REFUSED),
    ("hugepage size lower-case", _set(["linux", "resources", "hugepageLimits", 0, "pageSize"], "2mB"), REFUSED),
    ("rlimit without soft", _set(["process", "rlimits", 0, "soft"], _DELETE), REFUSED),
    ("device type x", _set(["linux", "devices", 0, "type"], "x"), REFUSED),
    ("seccomp action bogus", _set(["linux", "seccomp", "defaultAction"], "SCMP_ACT_BOGUS"), REFUSED),
    ("memory limit string", _set(["linux", "resources", "memory", "limit"], "1G"), REFUSED),
    ("annotation value int", _set(["annotations", "com.example.key1"], 1), REFUSED),
    ("rootfsPropagation bogus", _set(["linux", "rootfsPropagation"], "bogus"), REFUSED),
    ("capabilities not a list", _set(["process", "capabilities", "bounding"], "CAP_KILL"), REFUSED),
    ("terminal not bool", _set(["process", "terminal"], "yes"), REFUSED),
    ("netDevice name int", _set(["linux", "netDevices"], {"eth0": {"name": 1}}), REFUSED),
    ("unknown top-level field", _set(["x-vendor"], {"any": 1}), ACCEPTED),
    ("unknown linux field", _set(["linux", "x-vendor"], 1), ACCEPTED),
    ("netDevices", _set(["linux", "netDevices"], {"eth0": {"name": "c0"}, "eth1": {}}), ACCEPTED),
    ("time offsets", _set(["linux", "timeOffsets"], {"boottime": {"secs": -5}}), ACCEPTED),
    ("no process", _set(["process"], _DELETE), ACCEPTED),
]

# Where our schema follows the spec text and the official schema does not (or the other way round).
DIVERGE = [
    ("ioPriority.priority is REQUIRED in config.md", _set(["process", "ioPriority"], {"class": "IOPRIO_CLASS_BE"}),
     REFUSED),
    ("swappiness: 'The values are from 0 to 100'", _set(["linux", "resources", "memory", "swappiness"], 101),
     REFUSED),
    ("mount uidMappings MUST come with gidMappings",
     _set(["mounts", 0, "uidMappings"], [{"containerID": 0, "hostID": 1, "size": 1}]), REFUSED),
    ("weightDevice needs weight or leafWeight",
     _set(["linux", "resources", "blockIO", "weightDevice"], [{"major": 8, "minor": 0}]), REFUSED),
    ("listenerMetadata MUST NOT be set without listenerPath",
     _set(["linux", "seccomp", "listenerMetadata"], "x"), REFUSED),
    ("pids.limit is OPTIONAL in config-linux.md", _set(["linux", "resources", "pids"], {}), ACCEPTED),
    ("rprivate accepted for runc compatibility", _set(["linux", "rootfsPropagation"], "rprivate"), ACCEPTED),
]


@pytest.fixture(scope="module")
def spec_example():
    with open(os.path.join(FIXTURES, "good", "spec-example.json"), encoding="utf-8") as f:
        return json.load(f)


def mutated(doc: dict, mutate) -> dict:
    doc = copy.deepcopy(doc)
    mutate(doc)
    return doc


@needs_reference
@pytest.mark.parametrize("what,mutate,expected", AGREE, ids=[a[0] for a in AGREE])
def test_mutation_agrees_with_official_schema(oracle, spec_example, what, mutate, expected):
    doc = mutated(spec_example, mutate)
    assert our_verdict(doc) == expected
    assert oracle_verdict(oracle, doc) == expected


@needs_reference
@pytest.mark.parametrize("why,mutate,expected", DIVERGE, ids=[d[0] for d in DIVERGE])
def test_deliberate_divergence_from_official_schema(oracle, spec_example, why, mutate, expected):
    doc = mutated(spec_example, mutate)
    assert our_verdict(doc) == expected
    assert oracle_verdict(oracle, doc) != expected, "no longer a divergence: move it to AGREE"


# --- validate_schema() errors and load_config() -------------------------------------------------

MINIMAL = {"ociVersion": "1.0.0", "root": {"path": "rootfs"}}


def _error(doc) -> str:
    with pytest.raises(ConfigError) as exc:
        validate_schema(doc)
    return str(exc.value)


def test_schema_error_names_json_path_with_indexes():
    doc = dict(MINIMAL, linux={"uidMappings": [{"containerID": 0, "hostID": 1000, "size": "x"}]})
    assert _error(doc) == "linux.uidMappings[0].size: 'x' is not of type 'integer'"


def test_schema_error_quotes_map_keys_with_dots():
    doc = dict(MINIMAL, linux={"sysctl": {"net.ipv4.ip_forward": 1}})
    assert _error(doc) == 'linux.sysctl["net.ipv4.ip_forward"]: 1 is not of type \'string\''


def test_schema_error_missing_required_property():
    assert _error({"root": {"path": "rootfs"}}) == "config.json: 'ociVersion' is a required property"
    assert _error(dict(MINIMAL, process={"args": ["sh"]})) == "process: 'cwd' is a required property"


def test_schema_error_enum():
    doc = dict(MINIMAL, linux={"namespaces": [{"type": "pid"}, {"type": "bogus"}]})
    assert _error(doc).startswith("linux.namespaces[1].type: 'bogus' is not one of ['pid', ")


def test_schema_error_message_is_one_bounded_line():
    doc = dict(MINIMAL, process={"cwd": "/", "args": {"k%d" % i: "v" * 50 for i in range(100)}})
    message = _error(doc)
    assert message.startswith("process.args: {")
    assert "\n" not in message and len(message) < 400


def test_schema_accepts_minimal():
    validate_schema(copy.deepcopy(MINIMAL))


def test_json_path():
    assert json_path([]) == ""
    assert json_path(["linux", "uidMappings", 0, "size"]) == "linux.uidMappings[0].size"
    assert json_path(["annotations", "com.example/x"]) == 'annotations["com.example/x"]'
    assert json_path([3]) == "[3]"


def test_schema_files_found():
    from ocirun.spec import schema_files

    names = {entry.name for entry in schema_files().iterdir()}
    assert {"config-schema.json", "config-linux.json", "defs.json", "defs-linux.json",
            "config-platforms.json"} <= names


def test_pyproject_ships_schema_as_package_data():
    import tomllib

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        tool = tomllib.load(f)["tool"]["setuptools"]
    assert "ocirun._spec" in tool["packages"]
    assert tool["package-dir"]["ocirun._spec"] == "spec"
    assert "*.json" in tool["package-data"]["ocirun._spec"]
    assert os.path.isfile(os.path.join(root, "spec", "__init__.py"))


def test_spec_module_does_not_import_jsonschema():
    code = ("import sys, ocirun.spec; "
            "sys.exit(1 if {'jsonschema', 'referencing'} & set(sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _bundle(tmp_path, text):
    (tmp_path / "config.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(tmp_path)


def test_load_config_reads_object(tmp_path):
    assert load_config(_bundle(tmp_path, json.dumps(MINIMAL))) == MINIMAL


def test_load_config_invalid_json_names_line_and_column(tmp_path):
    bundle = _bundle(tmp_path, '{\n  "ociVersion": "1.0.0",\n  "root": }\n')
    with pytest.raises(ConfigError) as exc:
        load_config(bundle)
    assert str(exc.value) == "config.json: invalid JSON: Expecting value at line 3 column 11"
    assert exc.value.path == "config.json"


def test_load_config_not_utf8(tmp_path):
    with pytest.raises(ConfigError, match=r"^ociVersion: must be valid Unicode text, not invalid UTF-8"):
        load_config(_bundle(tmp_path, b'{"ociVersion": "\xff"}'))


def test_load_config_not_an_object(tmp_path):
    with pytest.raises(ConfigError, match=r"^config.json: must contain a JSON object, not list$"):
        load_config(_bundle(tmp_path, "[1]"))


def test_load_config_missing_file_names_path(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(str(tmp_path / "nope"))
    assert str(exc.value) == f"config.json: open {tmp_path}/nope/config.json: No such file or directory"


@needs_reference
def test_load_config_refuses_invalid_json_fixture(tmp_path):
    with open(os.path.join(FIXTURES, "bad", "invalid-json.json"), "rb") as f:
        bundle = _bundle(tmp_path, f.read())
    with pytest.raises(ConfigError, match=r"^config.json: invalid JSON: .* line 1 column 2$"):
        load_config(bundle)
