"""The mount option table (ocirun.linux.mounts): flags, propagation, recursive attrs, extensions, data."""
import json
import shutil
import subprocess

import pytest

from ocirun.errors import ConfigError
from ocirun.linux import mountplan, mounts
from ocirun.linux import syscalls as sc
from ocirun.linux import safepath
from ocirun.linux.mountplan import parse_options, resolve_mount, root_propagation
from ocirun.linux.mounts import MountRequest, bind_attrs


def test_plain_flags():
    o = parse_options(["ro", "nosuid", "nodev", "noexec", "sync", "dirsync", "mand", "noatime",
                       "nodiratime", "nosymfollow", "lazytime", "iversion", "silent", "acl"])
    assert o.flags == (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_SYNCHRONOUS
                       | sc.MS_DIRSYNC | sc.MS_MANDLOCK | sc.MS_NOATIME | sc.MS_NODIRATIME | sc.MS_NOSYMFOLLOW
                       | sc.MS_LAZYTIME | mountplan.MS_I_VERSION | sc.MS_SILENT | mountplan.MS_POSIXACL)
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
                                          ("nolazytime", sc.MS_LAZYTIME), ("noiversion", mountplan.MS_I_VERSION),
                                          ("noacl", mountplan.MS_POSIXACL)])
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
    known = set(mountplan.FLAGS) | set(mountplan.PROPAGATION) | set(mountplan.REC_ATTRS) | set(mountplan.EXTENSIONS)
    assert set(names) - known == set()
    for name in names:
        assert parse_options([name]).data == []


def request(index: int, m: dict, bundle: str, has_userns: bool = False) -> MountRequest:
    """The init's request for an entry, as create resolved it into the plan."""
    return MountRequest.from_plan(resolve_mount(index, m, bundle, has_userns))


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
    assert request(0, {"destination": "a//b/", "type": "tmpfs"}, "/b").destination == safepath.clean("a//b/")


def test_plan_entries_are_plain_data_the_init_rebuilds_the_same():
    """What the parent sends is JSON (lists, ints, bools, strings): the init's MountOptions equal
    the parsed ones, and mappings go along."""
    m = {"destination": "/v", "type": "bind", "source": "vol",
         "options": ["rbind", "ro", "rshared", "rnoatime", "idmap", "size=1k"],
         "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
         "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 1}]}
    entry = resolve_mount(1, m, "/b", False)
    assert json.loads(json.dumps(entry)) == entry
    r = MountRequest.from_plan(json.loads(json.dumps(entry)))
    expect = parse_options(m["options"])
    expect.flags |= sc.MS_BIND
    assert r.options == expect and r.idmapped and r.uid_mappings == m["uidMappings"]
    assert not request(0, {"destination": "/t", "type": "tmpfs"}, "/b").idmapped


IDMAPS = [{"containerID": 0, "hostID": 1000, "size": 1}]


@pytest.mark.parametrize("m,path,text", [
    ({"type": "tmpfs"}, "mounts[2].destination", "must not be empty"),
    ({"destination": "/x", "type": "bind"}, "mounts[2].source", "a bind mount needs a source"),
    ({"destination": "/x", "type": "tmpfs", "options": ["idmap"]}, "mounts[2].options",
     "idmap is only supported for bind mounts"),
    ({"destination": "/x", "type": "tmpfs", "uidMappings": IDMAPS, "gidMappings": IDMAPS}, "mounts[2].options",
     "idmap is only supported for bind mounts"),
    ({"destination": "/x", "source": "v", "options": ["bind"], "uidMappings": IDMAPS}, "mounts[2].gidMappings",
     "uidMappings and gidMappings must be given together"),
    ({"destination": "/x", "source": "v", "options": ["bind", "idmap"], "gidMappings": IDMAPS},
     "mounts[2].uidMappings", "uidMappings and gidMappings must be given together"),
    ({"destination": "/x", "source": "v", "options": ["rbind", "ridmap"]}, "mounts[2].options",
     "idmap needs uidMappings/gidMappings on the mount or a user namespace"),
])
def test_request_errors(m, path, text):
    with pytest.raises(ConfigError) as e:
        request(2, m, "/b")
    assert (e.value.path, str(e.value)) == (path, f"{path}: {text}")


def test_idmap_without_mappings_takes_the_container_user_namespace():
    r = request(0, {"destination": "/x", "source": "v", "options": ["bind", "idmap"]}, "/b", has_userns=True)
    assert r.idmapped and r.uid_mappings is None


@pytest.mark.parametrize("value,flags", [(None, 0), ("", 0), ("rslave", sc.MS_SLAVE | sc.MS_REC),
                                         ("shared", sc.MS_SHARED), ("unbindable", sc.MS_UNBINDABLE)])
def test_root_propagation(value, flags):
    assert root_propagation(value) == flags


def test_root_propagation_unknown():
    with pytest.raises(ConfigError) as e:
        root_propagation("sideways")
    assert str(e.value).startswith("linux.rootfsPropagation: unknown propagation 'sideways' (want one of shared, ")


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
