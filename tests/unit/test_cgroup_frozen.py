"""cgroups.is_frozen(record) (what state, start and kill use, without building a manager) says
what the manager rebuilt from the same record says, for every freezer state and layout."""
import pytest

from ocirun.errors import CgroupError
from ocirun.linux.cgroups import is_frozen, manager_from_dict


def v1_record(tmp_path, freezer_key, content):
    dirs = {}
    for key in ("cpu,cpuacct", freezer_key, "name=systemd", ""):
        if key is None:
            continue
        d = tmp_path / (key.replace(",", "_").replace("=", "_") or "unified")
        d.mkdir()
        dirs[key] = str(d)
    if freezer_key is not None and content is not None:
        (tmp_path / freezer_key.replace(",", "_") / "freezer.state").write_text(content + "\n")
    return {"version": "v1", "path": "/ocirun/x", "systemd": False, "dirs": dirs}


@pytest.mark.parametrize("freezer_key", ["freezer", "cpuset,freezer", None])
@pytest.mark.parametrize("content,expected", [("FROZEN", True), ("FREEZING", True), ("THAWED", False),
                                               (None, False)])
def test_v1(tmp_path, freezer_key, content, expected):
    record = v1_record(tmp_path, freezer_key, content)
    assert is_frozen(record) == manager_from_dict(record).is_frozen() == (expected and freezer_key is not None)


@pytest.mark.parametrize("content,expected", [("1", True), ("0", False), (None, False)])
def test_v2(tmp_path, content, expected):
    if content is not None:
        (tmp_path / "cgroup.freeze").write_text(content + "\n")
    record = {"version": "v2", "path": "/ocirun/x", "dir": str(tmp_path), "mountpoint": "/sys/fs/cgroup",
              "systemd": False}
    assert is_frozen(record) == manager_from_dict(record).is_frozen() == expected


def test_unknown_version_is_refused_as_by_the_manager():
    with pytest.raises(CgroupError):
        is_frozen({"version": "v3"})
