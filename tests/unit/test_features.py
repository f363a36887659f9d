"""`ocirun features` (ocirun/features.py): valid against the official features schema, and every
name it lists is one the runtime's own tables accept (nothing is promised that the code refuses)."""
import glob
import json
import os
import subprocess
import sys

import pytest

from ocirun import features as feat
from ocirun.errors import ConfigError

SCHEMA_DIR = "/work/shared/reference/runtime-spec/schema"
needs_reference = pytest.mark.skipif(not os.path.isfile(os.path.join(SCHEMA_DIR, "features-schema.json")),
                                     reason=f"{SCHEMA_DIR} missing (shared reference folder)")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def doc():
    return feat.features()


def _load_schemas() -> dict:
    out = {}
    for path in glob.glob(os.path.join(SCHEMA_DIR, "*.json")):
        with open(path, encoding="utf-8") as f:
            out[os.path.basename(path)] = json.load(f)
    return out


@pytest.fixture(scope="module")
def validator():
    """The official draft-04 features schema, $refs resolved between its files by name."""
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4
    schemas = _load_schemas()
    registry = Registry().with_resources(
        (name, Resource.from_contents(s, default_specification=DRAFT4)) for name, s in schemas.items())
    return Draft4Validator(schemas["features-schema.json"], registry=registry)


@needs_reference
def test_validates_against_the_official_features_schema(doc, validator):
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


@needs_reference
def test_the_schema_oracle_can_fail(validator):
    """The validator is not vacuous: the official bad fixture and a wrong enum value are refused."""
    for path in glob.glob(os.path.join(SCHEMA_DIR, "test", "features", "bad", "*.json")):
        with open(path) as f:
            assert not validator.is_valid(json.load(f)), path
    for path in glob.glob(os.path.join(SCHEMA_DIR, "test", "features", "good", "*.json")):
        with open(path) as f:
            assert validator.is_valid(json.load(f)), path
    assert not validator.is_valid({"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0",
                                   "linux": {"namespaces": ["nosuchns"]}})
    assert not validator.is_valid({"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0",
                                   "linux": {"seccomp": {"archs": ["SCMP_ARCH_NOPE"]}}})


def _properties(schema: dict, schemas: dict, base: str) -> tuple[dict | None, str]:
    """The `properties` of a schema object, following $ref (file#/json/pointer) by file name."""
    while "$ref" in schema:
        ref = schema["$ref"]
        name, _, pointer = ref.partition("#")
        base = name or base
        schema = schemas[base]
        for part in [p for p in pointer.split("/") if p]:
            schema = schema[part]
    return schema.get("properties"), base


# Defined by the spec text (features-linux.md, "MemoryPolicy") but missing from the schema copy.
DEFINED_BY_TEXT_ONLY = {"features.linux.memoryPolicy"}


@needs_reference
def test_every_property_is_defined_by_the_spec(doc):
    """features.md: the structure MUST NOT contain properties this spec version does not define (the
    schema allows additional properties, so this is checked separately)."""
    schemas = _load_schemas()

    def walk(value, schema, base, where):
        props, base = _properties(schema, schemas, base)
        if props is None or not isinstance(value, dict):
            return
        for key, sub in value.items():
            if f"{where}.{key}" in DEFINED_BY_TEXT_ONLY:
                continue
            assert key in props, f"{where}.{key} is not in the features schema"
            if key != "annotations":
                walk(sub, props[key], base, f"{where}.{key}")

    walk(doc, schemas["features-schema.json"], "features-schema.json", "features")


def test_versions(doc):
    from ocirun import OCI_VERSION
    from ocirun.validate import check_oci_version
    assert (doc["ociVersionMin"], doc["ociVersionMax"]) == ("1.0.0", "1.3.0") == ("1.0.0", OCI_VERSION)
    for version in (doc["ociVersionMin"], doc["ociVersionMax"]):   # the runtime MUST accept both
        check_oci_version({"ociVersion": version}, "/")


def test_every_mount_option_parses_as_a_flag_not_as_filesystem_data(doc):
    from ocirun.linux.mountplan import parse_options
    assert doc["mountOptions"] == sorted(set(doc["mountOptions"]))
    for name in doc["mountOptions"]:
        assert parse_options([name]).data == [], f"{name} would be passed to the filesystem as data"
    assert parse_options(["size=64k"]).data == ["size=64k"]     # the check above can fail
    assert {"idmap", "ridmap", "tmpcopyup", "rro", "rbind", "rprivate"} <= set(doc["mountOptions"])
    assert doc["linux"]["mountExtensions"] == {"idmap": {"enabled": True}}
    assert parse_options(["idmap"]).idmap and parse_options(["ridmap"]).ridmap


def test_mount_options_cover_runcs_list(doc):
    try:
        proc = subprocess.run(["runc", "features"], capture_output=True, text=True, timeout=30)
    except OSError:
        pytest.skip("runc not installed")
    runc = json.loads(proc.stdout)
    assert set(runc["mountOptions"]) <= set(doc["mountOptions"])
    assert set(runc["linux"]["capabilities"]) <= set(doc["linux"]["capabilities"])
    assert set(runc["linux"]["namespaces"]) <= set(doc["linux"]["namespaces"])
    assert set(runc["hooks"]) == set(doc["hooks"])


def test_every_namespace_is_accepted(doc):
    from ocirun.linux.namespaces import plan
    names = doc["linux"]["namespaces"]
    assert names == sorted(names) and {"mount", "pid", "network", "ipc", "uts", "user", "cgroup"} <= set(names)
    actions = plan([{"type": n} for n in names])
    assert actions["new_user"] and actions["unshare"]
    with pytest.raises(ConfigError):
        plan([{"type": "nosuchns"}])


def test_every_capability_is_in_the_table_in_kernel_order(doc):
    from ocirun.linux.capabilities import CAP_NUMBERS, validate_capabilities
    caps = doc["linux"]["capabilities"]
    assert [CAP_NUMBERS[c] for c in caps] == list(range(len(caps)))
    validate_capabilities({s: caps for s in ("bounding", "effective", "permitted", "inheritable", "ambient")})


def test_hooks_are_the_kinds_the_runtime_runs(doc):
    assert doc["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                            "poststop"]
    source = ""
    for name in ("parent.py", "init.py", "lifecycle.py"):
        with open(os.path.join(REPO, "ocirun", name)) as f:
            source += f.read()
    for kind in doc["hooks"]:
        assert f'"{kind}"' in source, f"no code runs the {kind} hooks"


def test_seccomp_lists_only_what_compile_filter_accepts(doc):
    sec = doc["linux"]["seccomp"]
    if not sec["enabled"]:
        assert sec["archs"] == [] and sec["supportedFlags"] == []
        pytest.skip("libseccomp is not installed")
    from ocirun.linux.seccomp import ARCHITECTURES, compile_filter

    def compiles(profile):
        compile_filter(profile).close()

    for action in sec["actions"]:
        rule = {"names": ["getpid"], "action": action}
        extra = {"listenerPath": "/run/x.sock"} if action == "SCMP_ACT_NOTIFY" else {}
        compiles({"defaultAction": "SCMP_ACT_ALLOW" if action != "SCMP_ACT_ALLOW" else "SCMP_ACT_ERRNO",
                  "syscalls": [rule], **extra})
    for op in sec["operators"]:
        compiles({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 8, "valueTwo": 0 if op != "SCMP_CMP_MASKED_EQ" else 8, "op": op}]}]})
    for arch in sec["archs"]:
        compiles({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [arch]})
    for arch in set(ARCHITECTURES) - set(sec["archs"]):       # left out because they do not work here
        with pytest.raises(ConfigError, match=r"architectures\[0\]"):
            compiles({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [arch]})
    if os.uname().machine == "x86_64":
        assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"} <= set(sec["archs"])
    for flag in sec["supportedFlags"]:
        compiles({"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag]})
    assert set(sec["supportedFlags"]) <= set(sec["knownFlags"])
    for flag in set(sec["knownFlags"]) - set(sec["supportedFlags"]):
        with pytest.raises(ConfigError, match="needs libseccomp"):
            compiles({"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag]})
    with pytest.raises(ConfigError):
        compiles({"defaultAction": "SCMP_ACT_NOPE"})


def test_cgroup_managers_listed_exist(doc):
    from ocirun.linux.cgroups import paths, resources
    from ocirun.linux.cgroups.v1 import V1Manager  # noqa: F401
    from ocirun.linux.cgroups.v2 import V2Manager  # noqa: F401
    cg = doc["linux"]["cgroup"]
    assert cg == {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True}
    assert paths.container_path("machine.slice:pfx:c1", "c1", True) == "/machine.slice/pfx-c1.scope"
    rdma = {"rdma": {"mlx5_0": {"hcaHandles": 3}}}
    assert [w.file for w in resources.v2_writes(rdma)] == ["rdma.max"]
    assert "rdma.max" in [w.file for w in resources.v1_writes(rdma)]


def test_lsm_flags_follow_the_host(doc):
    from ocirun.linux import lsm
    assert doc["linux"]["apparmor"] == {"enabled": lsm.apparmor_enabled()}
    assert doc["linux"]["selinux"] == {"enabled": lsm.selinux_enabled()}
    assert doc["linux"]["intelRdt"] == {"enabled": False}


def test_features_command_prints_the_structure():
    proc = subprocess.run([sys.executable, "-m", "ocirun", "features"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == feat.features()
    assert proc.stdout.startswith('{\n    "ociVersionMin": "1.0.0",\n    "ociVersionMax": "1.3.0",\n')   # as runc
    bad = subprocess.run([sys.executable, "-m", "ocirun", "features", "extra"], capture_output=True, text=True)
    assert bad.returncode != 0 and "requires exactly 0 argument(s)" in bad.stderr
