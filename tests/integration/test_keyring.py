"""Session keyrings: each container joins a keyring of its own ("_ses.<id>"), as runc does, so that
it never shares the caller's; --no-new-keyring keeps the caller's."""
import pytest

from tests.conftest import base_config

pytestmark = pytest.mark.root


def keys_seen(ocirun, *flags, cid="kr1"):
    config = base_config(["cat", "/proc/keys"])
    config["linux"]["maskedPaths"] = [p for p in config["linux"]["maskedPaths"] if p != "/proc/keys"]
    proc = ocirun("run", *flags, "-b", ocirun.bundle(config), cid)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_container_gets_a_session_keyring_of_its_own(ocirun):
    assert "_ses.kr1" in keys_seen(ocirun)


def test_no_new_keyring_keeps_the_callers(ocirun):
    assert "_ses.kr2" not in keys_seen(ocirun, "--no-new-keyring", cid="kr2")
