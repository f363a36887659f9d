"""The one mountinfo parser (ocirun.linux.mountinfo): fields, octal escapes, and its users."""
import pytest

from ocirun.linux import mountinfo
from ocirun.linux.cgroups import mount as cgroupmount
from ocirun.linux.cgroups import paths

TEXT = (
    "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "35 22 0:30 /a\\040b /mnt/with\\040space\\011tab rw master:3 propagate_from:2 - tmpfs my\\134src rw,size=4k\n"
    "40 22 0:33 / /sys/fs/cgroup/cpu\\040x rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
    "41 22 0:34 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n"
    "not a mountinfo line\n"
)


def test_fields_and_escapes():
    root, tmp, cpu, unified = mountinfo.parse(TEXT)
    assert (root.id, root.parent, root.mountpoint, root.optional, root.fstype) == (22, 1, "/", ["shared:1"], "ext4")
    assert tmp.root == "/a b" and tmp.mountpoint == "/mnt/with space\ttab"
    assert tmp.optional == ["master:3", "propagate_from:2"]
    assert (tmp.fstype, tmp.source, tmp.super_options) == ("tmpfs", "my\\src", "rw,size=4k")
    assert cpu.mountpoint == "/sys/fs/cgroup/cpu x"
    assert unified.fstype == "cgroup2"


@pytest.mark.parametrize("field,want", [("a\\040b", "a b"), ("\\134", "\\"), ("x\\012", "x\n"),
                                        ("a\\089", "a\\089"),    # 8, 9 are not octal: left as written
                                        ("end\\04", "end\\04"), ("plain", "plain")])
def test_unescape(field, want):
    assert mountinfo.unescape(field) == want


def test_cgroup_v1_mounts_are_unescaped(monkeypatch):
    # the copy in mounts.py this replaced took field 4 as written (\040 for a space)
    monkeypatch.setattr(mountinfo, "read", lambda path="/proc/self/mountinfo": mountinfo.parse(TEXT))
    assert cgroupmount.v1_mounts() == [("/sys/fs/cgroup/cpu x", "/", {"rw", "cpu", "cpuacct"})]


def test_cgroup_paths_use_the_same_parser():
    found = paths.parse_mountinfo(TEXT)
    assert [(m.mountpoint, m.fstype, m.key) for m in found] == [("/sys/fs/cgroup/cpu x", "cgroup", "cpu,cpuacct"),
                                                                 ("/sys/fs/cgroup/unified", "cgroup2", "")]
