"""--root holds container state and nothing else: one directory per container, gone after delete.
(A verdict cache of schema checks once lived there: a config's bytes never repeat across containers,
so it only cost a directory listing and a write per create, and it broke create on Python 3.12+.)"""
import os

import pytest

from tests.conftest import base_config

pytestmark = pytest.mark.root


def test_root_holds_only_container_state(ocirun):
    bundle = ocirun.bundle(dict(base_config(["sleep", "100"]), hostname="root-contents"))
    ocirun("create", "-b", bundle, "c1", check=True)
    assert sorted(os.listdir(ocirun.root)) == ["c1"]
    ocirun("start", "c1", check=True)
    ocirun("delete", "-f", "c1", check=True)
    assert os.listdir(ocirun.root) == []
