"""Shared fixtures: a busybox rootfs built once, bundles made from a base config, the CLI, cleanup.

Integration tests create real containers as root. Every container a test makes lives under a
per-test --root and is force-deleted at teardown, even when the test fails.
"""
import copy
import json
import os
import socket
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OCIRUN = [sys.executable, "-I", "-m", "ocirun"]  # -I: not the cwd on sys.path
IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config, items):
    skip_root = pytest.mark.skip(reason="needs root")
    for item in items:
        if "root" in item.keywords and not IS_ROOT:
            item.add_marker(skip_root)


@pytest.fixture(scope="session", autouse=True)
def no_parent_cgroups_left():
    """The `ocirun` parent cgroups this session's containers made go when it ends, failed or not
    (the runtime keeps them on purpose: see tests/leftovers.py)."""
    if not IS_ROOT:
        yield
        return
    from tests import leftovers
    before = leftovers.ocirun_parent_cgroups()
    yield
    leftovers.remove_new_parent_cgroups(before)


@pytest.fixture(scope="session")
def rootfs_dir():
    """A busybox rootfs, built once per session by the same script the README uses."""
    base = os.environ.get("OCIRUN_TEST_ROOTFS_DIR") or os.path.join(tempfile.gettempdir(), "ocirun-test-rootfs")
    subprocess.run(["bash", os.path.join(REPO, "bundles", "build-rootfs.sh"), base], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(base, "rootfs")


def base_config(args=None) -> dict:
    """`ocirun spec`'s default config (runc's), with a non-terminal process running `args`, no
    ambient capabilities, the test hostname, a /tmp tmpfs instead of the cgroup mount, and the
    cgroup namespace; the shorter masked/readonly lists keep to paths this VM has."""
    from ocirun.defaultspec import example_spec
    config = example_spec()
    process = config["process"]
    process.update(terminal=False, args=args or ["sh", "-c", "true"])
    del process["capabilities"]["ambient"]
    config["hostname"] = "ocirun-test"
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]
    config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]})
    config["linux"] = {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
        "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    }
    return config


class Runtime:
    """Runs the ocirun CLI against a private --root and remembers what to clean up."""

    def __init__(self, root: str, tmp: str, rootfs: str):
        self.root = root
        self.tmp = tmp
        self.rootfs = rootfs
        self.counter = 0

    def __call__(self, *args, input=None, timeout=60, check=False, extra_global=()):
        cmd = OCIRUN + ["--root", self.root, *extra_global, *args]
        # Files, not pipes: a created container's init inherits the caller's stdio and keeps it open
        # after create returns (as with runc), so a pipe would never reach EOF.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(cmd, input=input, stdout=out, stderr=err, text=True, timeout=timeout,
                                  cwd=self.tmp).returncode
            out.seek(0)
            err.seek(0)
            proc = subprocess.CompletedProcess(cmd, code, out.read(), err.read())
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} failed rc={proc.returncode}: {proc.stderr}")
        return proc

    def bundle(self, config: dict | None = None, name: str | None = None) -> str:
        """A bundle dir whose rootfs is a bind of the shared busybox rootfs (read-only is per config)."""
        self.counter += 1
        path = os.path.join(self.tmp, name or f"bundle{self.counter}")
        os.makedirs(path)
        os.symlink(self.rootfs, os.path.join(path, "rootfs"))
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config if config is not None else base_config(), f)
        return path

    def state(self, cid: str) -> dict:
        proc = self("state", cid, check=True)
        return json.loads(proc.stdout)

    def run_output(self, config: dict, cid: str = "c1", timeout=60):
        """`run` a container to completion; returns the CompletedProcess."""
        bundle = self.bundle(config)
        return self("run", "--bundle", bundle, cid, timeout=timeout)

    def cleanup(self):
        for cid in self("list", "-q").stdout.split():
            self("delete", "--force", cid)


@pytest.fixture
def ocirun(tmp_path, rootfs_dir):
    root = str(tmp_path / "state")
    rt = Runtime(root, str(tmp_path), rootfs_dir)
    try:
        yield rt
    finally:
        rt.cleanup()


@pytest.fixture
def config():
    return copy.deepcopy(base_config())


@pytest.fixture
def agent_socket(tmp_path):
    """A listening unix socket for linux.seccomp.listenerPath: (socket, path)."""
    path = str(tmp_path / "agent.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(1)
        sock.settimeout(30)
        yield sock, path
    finally:
        sock.close()
