"""The mount option table (ocirun.linux.mounts): flags, propagation, recursive attrs, extensions, data."""
import json
import shutil
import subprocess

import pytest

from ocirun.errors import ConfigError
from ocirun.linux import mounts
from ocirun.linux import syscalls as sc
from ocirun.linux.mounts import bind_attrs, parse_options, request


def test_plain_flags():
    o = parse_options(["ro", "nosuid", "nodev", "noexec", "sync", "dirsync", "mand", "noatime",
                       "nodiratime", "nosymfollow", "lazytime", "iversion", "silent", "acl"])
    assert o.flags == (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_SYNCHRONOUS
                       | sc.MS_DIRSYNC | sc.MS_MANDLOCK | sc.MS_NOATIME | sc.MS_NODIRATIME | sc.MS_NOSYMFOLLOW
                       | sc.MS_LAZYTIME | mounts.MS_I_VERSION | sc.MS_SILENT | mounts.MS_POSIXACL)
    assert o.cleared == 0 and o.data == [] and o.propagation == []


def test_later_option_wins():
    assert parse_options(["ro", "rw"]).flags == 0
    assert parse_options(["ro", "rw"]).cleared == sc.MS_RDONLY
    assert parse_options(["rw", "ro"]).flags == sc.MS_RDONLY
    assert parse_options(["rw", "ro"]).cleared == 0
    o = parse_options(["nosuid", "suid", "exec", "noexec", "nodev", "dev"])
    assert o.flags == sc.MS_NOEXEC
    assert o.cleared == sc.MS_NOSUID | sc.MS_NODEV


@pytest.mark.parametrize("name,flag", [("relatime", sc.MS_RELATIME), ("strictatime", sc.MS_STRICTATIME),
                                       ("remount", sc.MS_REMOUNT), ("bind", sc.MS_BIND),
                                       ("rbind", sc.MS_BIND | sc.MS_REC), ("defaults", 0)])
def test_single_flag(name, flag):
    assert parse_options([name]).flags == flag


@pytest.mark.parametrize("name,cleared", [("async", sc.MS_SYNCHRONOUS), ("atime", sc.MS_NOATIME),
                                          ("diratime", sc.MS_NODIRATIME), ("norelatime", sc.MS_RELATIME),
                                          ("nostrictatime", sc.MS_STRICTATIME), ("nomand", sc.MS_MANDLOCK),
                                          ("symfollow", sc.MS_NOSYMFOLLOW), ("loud", sc.MS_SILENT),
                                          ("nolazytime", sc.MS_LAZYTIME), ("noiversion", mounts.MS_I_VERSION),
                                          ("noacl", mounts.MS_POSIXACL)])
def test_clearing_options(name, cleared):
    o = parse_options([name])
    assert o.flags == 0 and o.cleared == cleared


def test_propagation_in_order():
    o = parse_options(["rprivate", "shared", "rslave", "unbindable", "runbindable", "private", "rshared", "slave"])
    assert o.propagation == [sc.MS_PRIVATE | sc.MS_REC, sc.MS_SHARED, sc.MS_SLAVE | sc.MS_REC, sc.MS_UNBINDABLE,
                             sc.MS_UNBINDABLE | sc.MS_REC, sc.MS_PRIVATE, sc.MS_SHARED | sc.MS_REC, sc.MS_SLAVE]
    assert o.flags == 0


def test_recursive_attrs():
    o = parse_options(["rro", "rnosuid", "rnodev", "rnoexec", "rnodiratime", "rnosymfollow"])
    assert o.rec_set == (sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOSUID | sc.MOUNT_ATTR_NODEV | sc.MOUNT_ATTR_NOEXEC
                         | sc.MOUNT_ATTR_NODIRATIME | sc.MOUNT_ATTR_NOSYMFOLLOW)
    assert o.rec_clr == 0 and o.flags == 0
    o = parse_options(["rro", "rrw", "rsuid", "rdev", "rexec", "rdiratime", "rsymfollow"])
    assert o.rec_set == 0
    assert o.rec_clr == (sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOSUID | sc.MOUNT_ATTR_NODEV | sc.MOUNT_ATTR_NOEXEC
                         | sc.MOUNT_ATTR_NODIRATIME | sc.MOUNT_ATTR_NOSYMFOLLOW)


@pytest.mark.parametrize("name,value", [("rnoatime", sc.MOUNT_ATTR_NOATIME), ("rstrictatime", sc.MOUNT_ATTR_STRICTATIME),
                                        ("rrelatime", sc.MOUNT_ATTR_RELATIME), ("ratime", sc.MOUNT_ATTR_RELATIME),
                                        ("rnorelatime", sc.MOUNT_ATTR_STRICTATIME),
                                        ("rnostrictatime", sc.MOUNT_ATTR_RELATIME)])
def test_recursive_atime_is_an_enum(name, value):
    # the kernel wants the whole MOUNT_ATTR__ATIME field cleared when one atime value is set
    o = parse_options(["rnoatime", name])
    assert o.rec_set & sc.MOUNT_ATTR__ATIME == value
    assert o.rec_clr & sc.MOUNT_ATTR__ATIME == sc.MOUNT_ATTR__ATIME


def test_extensions_and_data():
    o = parse_options(["tmpcopyup", "size=64k", "mode=755", "idmap", "ridmap", "lowerdir=/a:/b", "newinstance"])
    assert o.tmpcopyup and o.idmap and o.ridmap
    assert o.data == ["size=64k", "mode=755", "lowerdir=/a:/b", "newinstance"]
    assert o.data_text() == "size=64k,mode=755,lowerdir=/a:/b,newinstance"
    assert parse_options(["ro"]).data_text() is None


def test_bind_attrs_touch_only_named_flags():
    assert bind_attrs(parse_options(["rbind"])) == (0, 0)
    s, c = bind_attrs(parse_options(["bind", "ro", "nosuid", "rw", "exec"]))
    assert s == sc.MOUNT_ATTR_NOSUID
    assert c == sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOEXEC
    s, c = bind_attrs(parse_options(["bind", "noatime"]))
    assert (s, c) == (sc.MOUNT_ATTR_NOATIME, sc.MOUNT_ATTR__ATIME)
    s, c = bind_attrs(parse_options(["bind", "sync", "mand"]))  # superblock flags: nothing for a bind
    assert (s, c) == (0, 0)


def test_every_option_runc_lists_is_known():
    """Every name in runc's `features` mountOptions is in one of the tables (nothing goes to data)."""
    if not shutil.which("runc"):
        pytest.skip("runc not installed")
    names = json.loads(subprocess.run(["runc", "features"], capture_output=True, check=True).stdout)["mountOptions"]
    known = set(mounts.FLAGS) | set(mounts.PROPAGATION) | set(mounts.REC_ATTRS) | set(mounts.EXTENSIONS)
    assert set(names) - known == set()
    for name in names:
        assert parse_options([name]).data == []


def test_request_normalizes():
    r = request(3, {"destination": "/data/../x//y/", "type": "bind", "source": "vol", "options": ["ro"]}, "/b")
    assert r.destination == "/x/y" and r.source == "/b/vol" and r.options.bind
    assert r.where == "mounts[3] (destination /x/y)"
    r = request(0, {"destination": "/m", "source": "/abs", "options": ["rbind"]}, "/b")
    assert r.source == "/abs" and r.options.recursive and r.fstype is None
    r = request(0, {"destination": "/proc", "type": "proc", "source": "proc"}, "/b")
    assert r.source == "proc" and not r.options.bind  # non-bind sources are not bundle paths
    # config.md: a relative destination is relative to "/" (validation agrees)
    assert request(0, {"destination": "run/x/../y", "type": "tmpfs"}, "/b").destination == "/run/y"


@pytest.mark.parametrize("m,path", [({"type": "tmpfs"}, "mounts[2].destination"),
                                    ({"destination": "/x", "type": "bind"}, "mounts[2].source")])
def test_request_errors(m, path):
    with pytest.raises(ConfigError) as e:
        request(2, m, "/b")
    assert e.value.path == path


def test_mount_label_without_selinux(monkeypatch):
    monkeypatch.setattr(mounts.lsm, "selinux_enabled", lambda: False)
    monkeypatch.setattr(mounts, "_selinux_noted", False)
    said = []
    monkeypatch.setattr(mounts.log, "debug", said.append)
    assert mounts.with_mount_label("size=1k", "system_u:object_r:x:s0", "tmpfs") == "size=1k"
    assert mounts.with_mount_label(None, "system_u:object_r:x:s0", "tmpfs") is None
    assert sum("SELinux is not enabled" in m for m in said) == 1  # said once


def test_mount_label_with_selinux(monkeypatch):
    monkeypatch.setattr(mounts.lsm, "selinux_enabled", lambda: True)
    assert mounts.with_mount_label("size=1k", "l:x", "tmpfs") == 'size=1k,context="l:x"'
    assert mounts.with_mount_label(None, "l:x", "mqueue") == 'context="l:x"'
    assert mounts.with_mount_label(None, "l:x", "proc") is None
    assert mounts.with_mount_label("a", None, "tmpfs") == "a"
