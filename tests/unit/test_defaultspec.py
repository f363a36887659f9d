"""`ocirun spec` against `runc spec` (runc 1.1.5): same bytes apart from ociVersion, same file mode,
same refusals and messages. The runc comparisons skip when runc is not installed."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ocirun import OCI_VERSION
from ocirun.cliparse import UsageError
from ocirun.defaultspec import example_spec, render, spec, to_rootless
from ocirun.errors import OciError

RUNC = shutil.which("runc")
needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed")
REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = Path("/work/shared/reference/runtime-spec/schema")


def runc_spec(bundle: Path, *flags: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([RUNC, "spec", "--bundle", str(bundle), *flags], capture_output=True,
                          text=True, timeout=30, **kwargs)


def runc_error(proc: subprocess.CompletedProcess) -> str:
    """The msg of runc's logrus line: time="..." level=error msg="File config.json exists. ..." """
    line = proc.stderr.strip().splitlines()[-1]
    return json.loads(line.split(" msg=", 1)[1])


def as_runc_would(data: bytes) -> bytes:
    """Our output with runc's ociVersion, to compare byte for byte."""
    ours = b'\t"ociVersion": "%s",' % OCI_VERSION.encode()
    assert data.count(ours) == 1
    return data.replace(ours, b'\t"ociVersion": "1.0.2-dev",')


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_default_spec_has_our_version_and_runc_defaults():
    s = example_spec()
    assert s["ociVersion"] == "1.3.0" == OCI_VERSION
    assert s["process"]["args"] == ["sh"] and s["process"]["terminal"] is True
    assert s["root"] == {"path": "rootfs", "readonly": True}
    assert [ns["type"] for ns in s["linux"]["namespaces"]] == ["pid", "network", "ipc", "uts", "mount"]
    # a fresh dict each time: callers mutate it
    s["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    assert "CAP_SYS_ADMIN" not in example_spec()["process"]["capabilities"]["bounding"]


def test_render_is_go_marshalindent():
    data = render({"a": [1, {"b": "x<y>&z", "c": []}], "d": {}, "e": "é\u2028"})
    assert data == ('{\n\t"a": [\n\t\t1,\n\t\t{\n\t\t\t"b": "x\\u003cy\\u003e\\u0026z",'
                    '\n\t\t\t"c": []\n\t\t}\n\t],\n\t"d": {},\n\t"e": "é\\u2028"\n}').encode()


def test_rootless_transform():
    s = to_rootless(example_spec(), 1000, 1001)
    linux = s["linux"]
    assert list(linux) == ["uidMappings", "gidMappings", "namespaces", "maskedPaths", "readonlyPaths"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": 1001, "size": 1}]
    assert [ns["type"] for ns in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "user"]
    sys_mount = next(m for m in s["mounts"] if m["destination"] == "/sys")
    assert sys_mount == {"destination": "/sys", "type": "none", "source": "/sys",
                         "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    assert not any(o.startswith(("uid=", "gid=")) for m in s["mounts"] for o in m.get("options", []))


def test_rootless_drops_emptied_options_and_existing_user_ns():
    s = example_spec()
    s["mounts"] = [{"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["uid=5"]}]
    s["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"})
    to_rootless(s, 0, 0)
    assert s["mounts"] == [{"destination": "/x", "type": "tmpfs", "source": "tmpfs"}]
    assert s["linux"]["namespaces"][-1] == {"type": "user"}
    assert [ns["type"] for ns in s["linux"]["namespaces"]].count("user") == 1


def test_spec_writes_config_json_in_bundle(tmp_path, umask022):
    assert spec(None, ["--bundle", str(tmp_path)]) == 0
    path = tmp_path / "config.json"
    assert path.read_bytes() == render(example_spec())
    assert path.stat().st_mode & 0o7777 == 0o644
    assert not path.read_bytes().endswith(b"\n")


def test_spec_defaults_to_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert spec(None, ["--rootless"]) == 0
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["linux"]["uidMappings"][0]["hostID"] == os.geteuid()
    assert written["linux"]["gidMappings"][0]["hostID"] == os.getegid()


def test_spec_honours_umask(tmp_path):
    old = os.umask(0o077)
    try:
        spec(None, ["-b", str(tmp_path)])
    finally:
        os.umask(old)
    assert (tmp_path / "config.json").stat().st_mode & 0o7777 == 0o600


def test_spec_refuses_existing_config(tmp_path):
    (tmp_path / "config.json").write_text("mine")
    with pytest.raises(OciError) as err:
        spec(None, [f"--bundle={tmp_path}"])
    assert str(err.value) == "File config.json exists. Remove it first"
    assert (tmp_path / "config.json").read_text() == "mine"


def test_spec_bundle_errors(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(OciError) as err:
        spec(None, ["-b", str(missing)])
    assert str(err.value) == f"chdir {missing}: no such file or directory"
    afile = tmp_path / "file"
    afile.write_text("")
    with pytest.raises(OciError) as err:
        spec(None, ["-b", str(afile)])
    assert str(err.value) == f"chdir {afile}: not a directory"


def test_spec_rejects_arguments_and_unknown_flags(tmp_path):
    with pytest.raises(UsageError, match=r'^"spec" requires exactly 0 argument\(s\)$'):
        spec(None, ["-b", str(tmp_path), "extra"])
    with pytest.raises(UsageError, match="flag provided but not defined"):
        spec(None, ["--bogus"])
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize("rootless", [False, True])
def test_output_validates_against_oci_schema(rootless):
    if not SCHEMA_DIR.is_dir():
        pytest.skip(f"{SCHEMA_DIR} not present")
    validate_with_reference_schema(json.loads(render(to_rootless(example_spec(), 1000, 1000) if rootless
                                                     else example_spec())))


@pytest.mark.parametrize("name", ["demo", "minimal", "hooks", "userns"])
def test_example_bundles_validate_against_oci_schema(name):
    if not SCHEMA_DIR.is_dir():
        pytest.skip(f"{SCHEMA_DIR} not present")
    config = json.loads((REPO / "bundles" / name / "config.json").read_text())
    assert config["root"]["path"] == "rootfs"
    assert config["ociVersion"] == OCI_VERSION
    validate_with_reference_schema(config)


def validate_with_reference_schema(config: dict) -> None:
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    def retrieve(uri: str) -> Resource:
        # the schema files refer to each other by bare file name ("defs.json#/definitions/...")
        return Resource.from_contents(json.loads((SCHEMA_DIR / uri.rsplit("/", 1)[-1]).read_text()),
                                      default_specification=DRAFT4)

    schema = json.loads((SCHEMA_DIR / "config-schema.json").read_text())
    validator = jsonschema.Draft4Validator(schema, registry=Registry(retrieve=retrieve))
    errors = sorted(validator.iter_errors(config), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


# ---- the oracle: runc itself ----

@needs_runc
@pytest.mark.parametrize("flags", [[], ["--rootless"]])
def test_bytes_identical_to_runc_apart_from_version(tmp_path, umask022, flags):
    ours, theirs = tmp_path / "ours", tmp_path / "runc"
    ours.mkdir()
    theirs.mkdir()
    spec(None, ["-b", str(ours), *flags])
    proc = runc_spec(theirs, *flags)
    assert proc.returncode == 0, proc.stderr
    ours_bytes = (ours / "config.json").read_bytes()
    runc_bytes = (theirs / "config.json").read_bytes()
    assert as_runc_would(ours_bytes) == runc_bytes
    ours_json, runc_json = json.loads(ours_bytes), json.loads(runc_bytes)
    assert ours_json.pop("ociVersion") == OCI_VERSION
    runc_json.pop("ociVersion")
    assert ours_json == runc_json
    assert (ours / "config.json").stat().st_mode == (theirs / "config.json").stat().st_mode


@needs_runc
@pytest.mark.root
def test_rootless_matches_runc_for_another_user(shared_tmp):
    """runc maps the caller's *effective* ids; run runc as 1000:1001 and compare with to_rootless."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    proc = runc_spec(shared_tmp, "--rootless", user=1000, group=1001, extra_groups=[])
    assert proc.returncode == 0, proc.stderr
    expected = as_runc_would(render(to_rootless(example_spec(), 1000, 1001)))
    assert (shared_tmp / "config.json").read_bytes() == expected


@pytest.fixture
def shared_tmp():
    """A directory another user can write to (pytest's tmp_path lives under a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="ocirun-spec-"))
    try:
        path.chmod(0o777)
        yield path
    finally:
        shutil.rmtree(path)


@needs_runc
def test_refusal_messages_match_runc(tmp_path):
    (tmp_path / "config.json").write_text("x")
    cases = [tmp_path, tmp_path / "missing", tmp_path / "config.json"]
    for bundle in cases:
        proc = runc_spec(bundle)
        assert proc.returncode == 1
        with pytest.raises(OciError) as err:
            spec(None, ["-b", str(bundle)])
        assert str(err.value) == runc_error(proc)


def test_cli_spec_command(tmp_path):
    """Through the real command line: exit 0 and the file, then exit 1 and the refusal."""
    cmd = [sys.executable, "-m", "ocirun", "spec", "-b", str(tmp_path)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert first.returncode == 0, first.stderr
    assert json.loads((tmp_path / "config.json").read_text())["ociVersion"] == OCI_VERSION
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert "File config.json exists. Remove it first" in second.stderr
