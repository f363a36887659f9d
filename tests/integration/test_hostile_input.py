"""Hostile config.json: each gives one error line naming the JSON path, a non-zero exit and leaves
nothing behind (issue 10, "Hostile input"). Before the fixes these were tracebacks, "internal error"
lines, a create that succeeded (UTF-16, a NUL in a mount type) or a pivot_root failure."""
import json
import os

import pytest

from tests.conftest import base_config
from tests.integration import test_errors
from tests.integration.test_errors import assert_one_line_error, new_id

pytestmark = pytest.mark.root


class Snapshot(test_errors.Snapshot):
    """test_errors.Snapshot's check, with mounts compared only where this test's containers could
    leave one (other test runs on the host mount and unmount elsewhere at the same time)."""

    def my_mounts(self) -> list[str]:
        keys = (self.ocirun.tmp, self.ocirun.root, self.ocirun.rootfs)
        return sorted(line for line in open("/proc/self/mountinfo").read().splitlines()
                      if any(k in line for k in keys))


def create_fails(ocirun, config_or_bundle, *needles):
    return test_errors.create_fails(ocirun, config_or_bundle, *needles, cid=new_id("h"), snapshot=Snapshot)


def raw_bundle(ocirun, raw: bytes) -> str:
    bundle = ocirun.bundle(base_config())
    with open(os.path.join(bundle, "config.json"), "wb") as f:
        f.write(raw)
    return bundle


def with_annotation(text: str) -> bytes:
    """The default test config with `"annotations": {"x": <text>}` spliced in as raw JSON."""
    return (json.dumps(base_config())[:-1] + ', "annotations": {"x": ' + text + "}}").encode()


def test_a_lone_surrogate_in_a_string(ocirun):
    config = base_config()
    config["process"]["env"].append("A=\ud800")
    create_fails(ocirun, config, "process.env[2]", "lone surrogate")


def test_invalid_utf8_bytes_in_a_string(ocirun):
    raw = json.dumps(base_config()).replace('"sh"', '"s\xffh"').encode("latin-1")
    create_fails(ocirun, raw_bundle(ocirun, raw), "process.args[0]", "UTF-8")


def test_nesting_1000_levels_deep(ocirun):
    create_fails(ocirun, raw_bundle(ocirun, with_annotation("[" * 1000 + "]" * 1000)), "exceeded max depth")


def test_nesting_a_few_hundred_levels_deep(ocirun):
    create_fails(ocirun, raw_bundle(ocirun, with_annotation("[" * 400 + "]" * 400)),
                 "annotations.x", "exceeded max depth")


@pytest.mark.parametrize("timeout", [10 ** 10, 1e10])
def test_a_huge_hook_timeout(ocirun, timeout):
    config = base_config()
    config["hooks"] = {"createRuntime": [{"path": "/bin/true", "timeout": timeout}]}
    create_fails(ocirun, config, "hooks.createRuntime[0].timeout", "out of range")


@pytest.mark.parametrize("text", ["NaN", "Infinity", "1e999", str(1 << 64), "-" + str(1 << 64)])
def test_numbers_go_cannot_hold(ocirun, text):
    create_fails(ocirun, raw_bundle(ocirun, with_annotation(text)), "annotations.x", "out of range")


def test_an_integer_of_5000_digits(ocirun):
    create_fails(ocirun, raw_bundle(ocirun, with_annotation("1" * 5000)), "config.json", "invalid JSON")


@pytest.mark.parametrize("field, path", [
    (lambda c: c["mounts"][1].update(destination="/de\0v"), "mounts[1].destination"),
    (lambda c: c["mounts"][1].update(type="tmp\0fs"), "mounts[1].type"),
    (lambda c: c["mounts"][1].update(source="tmp\0fs"), "mounts[1].source"),
    (lambda c: c["mounts"][1]["options"].append("no\0exec"), "mounts[1].options[4]"),
    (lambda c: c["process"]["args"].append("a\0b"), "process.args[3]"),
    (lambda c: c["process"]["env"].append("A=\0"), "process.env[2]"),
    (lambda c: c["process"].update(cwd="/\0"), "process.cwd"),
    (lambda c: c["linux"]["maskedPaths"].append("/proc/\0"), "linux.maskedPaths[5]"),
    (lambda c: c.update(hostname="a\0b"), "hostname"),
    (lambda c: c.update(annotations={"k\0": "v"}), 'annotations["k'),
])
def test_a_nul_byte(ocirun, field, path):
    config = base_config()
    field(config)
    create_fails(ocirun, config, path, "NUL byte")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "utf-8-sig"])
def test_a_config_that_is_not_plain_utf8(ocirun, encoding):
    raw = json.dumps(base_config()).encode(encoding)
    create_fails(ocirun, raw_bundle(ocirun, raw), "config.json", "invalid JSON")


def test_a_rootfs_that_is_the_host_root(ocirun):
    config = base_config()
    config["root"]["path"] = "/"
    create_fails(ocirun, config, "root.path", "invalid rootfs")


def test_a_rootfs_symlink_to_the_host_root(ocirun):
    bundle = ocirun.bundle(base_config())
    os.unlink(os.path.join(bundle, "rootfs"))
    os.symlink("/", os.path.join(bundle, "rootfs"))
    create_fails(ocirun, bundle, "root.path", "invalid rootfs")


def test_a_10_mb_config_runs(ocirun):
    """runc takes it; the whole config once travelled to the init in one packet ("message too long")."""
    config = base_config(["sh", "-c", 'echo "${#BIG}"'])
    config["annotations"] = {"big": "x" * 10_000_000}
    config["process"]["env"].append("BIG=" + "y" * 100_000)
    proc = ocirun.run_output(config, "big")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["100000"]


@pytest.mark.parametrize("change, needle", [
    (lambda p: p.update(args=["echo", "a\0b"]), "process.args[1]: must not contain a NUL byte"),
    (lambda p: p.update(args=["echo", "a\ud800"]), "process.args[1]: must be valid Unicode text"),
    (lambda p: p.update(env=["A=\0"]), "process.env[0]: must not contain a NUL byte"),
    (lambda p: p.update(cwd="/\0"), "process.cwd: must not contain a NUL byte"),
    (lambda p: p.update(x=[[[[["not deep"]]]]]), None),
])
def test_exec_process_file_with_hostile_strings(ocirun, tmp_path, change, needle):
    """`exec --process` (what containerd's and podman's shims use): once a ValueError or a
    UnicodeEncodeError line, now the field named."""
    config = base_config(["sleep", "100"])
    ocirun("run", "-d", "-b", ocirun.bundle(config), "hx", check=True)
    process = dict(config["process"], args=["true"])
    change(process)
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    proc = ocirun("exec", "--process", str(path), "hx")
    if needle is None:
        assert proc.returncode == 0, proc.stderr
    else:
        assert_one_line_error(proc, "--process", needle)


def test_exec_process_file_nested_too_deep(ocirun, tmp_path):
    config = base_config(["sleep", "100"])
    ocirun("run", "-d", "-b", ocirun.bundle(config), "hd", check=True)
    path = tmp_path / "process.json"
    path.write_text(json.dumps(dict(config["process"], args=["true"]))[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}")
    assert_one_line_error(ocirun("exec", "--process", str(path), "hd"), "--process", "exceeded max depth")


def test_exec_with_an_environment_of_a_megabyte(ocirun, tmp_path):
    """The exec plan was one packet too: "message too long" for an env execve(2) takes."""
    config = base_config(["sleep", "100"])
    ocirun("run", "-d", "-b", ocirun.bundle(config), "he", check=True)
    process = dict(config["process"], args=["sh", "-c", 'echo "${#BIG3}"'],
                   env=["PATH=/bin"] + [f"BIG{i}=" + "y" * 100_000 for i in range(10)])
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    proc = ocirun("exec", "--process", str(path), "he")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["100000"]
