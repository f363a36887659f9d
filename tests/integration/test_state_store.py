"""The state store under --root: private to root, and robust against a damaged state.json.

state.json holds the container's config, environment included (tokens, passwords), so the root and
container directories are 0700 and the files 0600 (as runc), checked here as an unprivileged user.
"""
import json
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from tests.conftest import Runtime, base_config

pytestmark = pytest.mark.root

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def public_parent(rootfs_dir):
    """A runtime whose --root lies in a world-traversable directory (pytest's tmp is 0700, which
    would hide the state from other users whatever its own modes are)."""
    parent = tempfile.mkdtemp(prefix="ocirun-state-")
    os.chmod(parent, 0o755)
    rt = Runtime(os.path.join(parent, "root"), parent, rootfs_dir)
    try:
        yield rt
    finally:
        rt.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


def _as_nobody(*cmd):
    return subprocess.run(NOBODY + list(cmd), capture_output=True, text=True)


def _create_with_secret(rt, cid="c1"):
    config = base_config(["sleep", "1000"])
    config["process"]["env"].append("API_TOKEN=s3cr3t")
    rt("create", "--bundle", rt.bundle(config), cid, check=True)
    return os.path.join(rt.root, cid)


def test_state_is_private_to_root(public_parent):
    cdir = _create_with_secret(public_parent)
    root = public_parent.root
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(cdir).st_mode) == 0o700
    state_json = os.path.join(cdir, "state.json")
    assert stat.S_IMODE(os.stat(state_json).st_mode) == 0o600
    assert "s3cr3t" in open(state_json).read()   # (the secret is there, so hiding it matters)
    proc = _as_nobody("cat", state_json)
    assert proc.returncode != 0 and "s3cr3t" not in proc.stdout, proc
    assert _as_nobody("ls", root).returncode != 0
    # still startable and deletable: the init reaches exec.fifo through an fd, not the 0700 path
    public_parent("start", "c1", check=True)
    assert public_parent.state("c1")["status"] == "running"
    public_parent("delete", "--force", "c1", check=True)


def test_state_is_private_in_a_root_made_by_someone_else(public_parent):
    """A --root that already exists with a wide mode (made by a manager, or an older ocirun) is
    left as it is (as runc); the container's own directory and files still hide the state."""
    os.makedirs(public_parent.root, 0o755)
    os.chmod(public_parent.root, 0o755)
    cdir = _create_with_secret(public_parent)
    state_json = os.path.join(cdir, "state.json")
    proc = _as_nobody("cat", state_json)
    assert proc.returncode != 0 and "s3cr3t" not in proc.stdout, proc
    assert _as_nobody("ls", cdir).returncode != 0
    assert stat.S_IMODE(os.stat(state_json).st_mode) == 0o600


def test_a_non_root_process_user_still_starts(public_parent):
    """process.user 65534 opens exec.fifo (0622) to wait for start, with the container dir 0700."""
    config = base_config(["id", "-u"])
    config["process"]["user"] = {"uid": 65534, "gid": 65534}
    proc = public_parent.run_output(config)
    assert proc.returncode == 0 and proc.stdout.strip() == "65534", proc
