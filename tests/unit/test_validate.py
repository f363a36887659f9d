"""ocirun.validate: each semantic check, with the exact JSON path and message it reports."""
import copy
import os

import pytest

from ocirun import validate as v
from ocirun.errors import ConfigError

BASE = {
    "ociVersion": "1.3.0",
    "root": {"path": "rootfs"},
    "process": {"args": ["sh"], "cwd": "/", "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}]},
    "hostname": "box",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}],
    "hooks": {"prestart": [{"path": "/bin/true"}]},
    "linux": {
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                       {"type": "mount"}, {"type": "user"}, {"type": "cgroup"}, {"type": "time"}],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "sysctl": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "fs.mqueue.msg_max": "10"},
        "cgroupsPath": "/ocirun/test",
        "timeOffsets": {"monotonic": {"secs": 1}},
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
        "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
        "netDevices": {"eth0": {"name": "ceth0"}},
    },
}


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return str(tmp_path)


@pytest.fixture
def config():
    return copy.deepcopy(BASE)


def error_of(check, config, bundle) -> str:
    with pytest.raises(ConfigError) as exc:
        check(config, bundle)
    return str(exc.value)


def without_ns(config, nstype):
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != nstype]
    return config


def joined_ns(config, nstype, path):
    for ns in config["linux"]["namespaces"]:
        if ns["type"] == nstype:
            ns["path"] = path
    return config


def test_base_config_is_valid(config, bundle):
    v.validate(config, bundle)


def test_validate_runs_every_check(config, bundle, monkeypatch):
    ran = []
    monkeypatch.setattr(v, "CHECKS", [lambda c, b, n=n: ran.append(n) for n in range(3)])
    v.validate(config, bundle)
    assert ran == [0, 1, 2]
    assert len(set(v.CHECKS)) == len(v.CHECKS)


# --- ociVersion ---------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["1.0.0", "1.3.0", "1.0.2-dev", "1.1.0-rc.1+build.5"])
def test_oci_version_ok(config, bundle, version):
    config["ociVersion"] = version
    v.check_oci_version(config, bundle)


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0.0", "", "1.0.0-"])
def test_oci_version_not_semver(config, bundle, version):
    config["ociVersion"] = version
    assert error_of(v.check_oci_version, config, bundle) == f"ociVersion: {version!r} is not a SemVer 2.0.0 version"


@pytest.mark.parametrize("version", ["0.5.0-dev", "2.0.0"])
def test_oci_version_major_must_be_1(config, bundle, version):
    config["ociVersion"] = version
    assert error_of(v.check_oci_version, config, bundle) == \
        f"ociVersion: unsupported version {version}: ocirun implements runtime-spec 1.x"


# --- root ---------------------------------------------------------------------------------------

def test_root_missing(config, bundle):
    del config["root"]
    assert error_of(v.check_root, config, bundle) == "root.path: is required on Linux"


def test_root_path_does_not_exist(config, bundle):
    config["root"]["path"] = "nope"
    assert error_of(v.check_root, config, bundle) == \
        f"root.path: {bundle}/nope: no such file or directory"


def test_root_path_not_a_directory(config, bundle):
    open(os.path.join(bundle, "file"), "w").close()
    config["root"]["path"] = "file"
    assert error_of(v.check_root, config, bundle) == f"root.path: {bundle}/file: not a directory"


def test_root_path_absolute(config, bundle):
    config["root"]["path"] = os.path.join(bundle, "rootfs")
    v.check_root(config, "/nonexistent-bundle")


# --- process ------------------------------------------------------------------------------------

def test_process_required(config, bundle):
    del config["process"]
    assert error_of(v.check_process, config, bundle) == "process: is required to create a container"


@pytest.mark.parametrize("args", [[], None])
def test_process_args_non_empty(config, bundle, args):
    config["process"]["args"] = args
    assert error_of(v.check_process, config, bundle) == \
        "process.args: must contain at least one entry (the program to run)"


def test_process_args0_non_empty(config, bundle):
    config["process"]["args"] = [""]
    assert error_of(v.check_process, config, bundle) == "process.args[0]: must be a non-empty program name or path"


def test_process_cwd_absolute(config, bundle):
    config["process"]["cwd"] = "tmp"
    assert error_of(v.check_process, config, bundle) == "process.cwd: must be an absolute path, not 'tmp'"


# --- hooks and mounts ---------------------------------------------------------------------------

def test_hook_path_absolute(config, bundle):
    config["hooks"]["poststop"] = [{"path": "/bin/true"}, {"path": "true"}]
    assert error_of(v.check_hooks, config, bundle) == "hooks.poststop[1].path: must be an absolute path, not 'true'"


def test_mount_destination_empty(config, bundle):
    config["mounts"][1]["destination"] = ""
    assert error_of(v.check_mounts, config, bundle) == "mounts[1].destination: must not be empty"


def test_mount_relative_destination_is_deprecated_but_allowed(config, bundle):
    # config.md 1.3.0: "it MAY be a relative path, in which case it MUST be interpreted as relative to /"
    config["mounts"][1]["destination"] = "data"
    v.check_mounts(config, bundle)


def test_mount_relative_destination_is_checked_as_absolute(config, bundle):
    config["mounts"][1]["destination"] = "proc/sys"
    assert error_of(v.check_mounts, config, bundle) == \
        "mounts[1].destination: cannot mount on /proc/sys: it is inside /proc"


@pytest.mark.parametrize("dest", ["/proc/self", "/proc/../proc/1/root", "/proc/sys/kernel"])
def test_mount_inside_proc_refused(config, bundle, dest):
    config["mounts"].append({"destination": dest, "type": "bind", "source": "/x", "options": ["bind"]})
    assert error_of(v.check_mounts, config, bundle).startswith("mounts[2].destination: cannot mount on /proc/")


@pytest.mark.parametrize("dest", ["/proc/cpuinfo", "/proc/meminfo", "/proc/sys/kernel/ns_last_pid", "/procfoo"])
def test_mount_lxcfs_files_under_proc_allowed(config, bundle, dest):
    config["mounts"].append({"destination": dest, "source": "/var/lib/lxcfs/x", "options": ["bind"]})
    v.check_mounts(config, bundle)


def test_mount_on_proc_must_be_proc(config, bundle):
    config["mounts"][0]["type"] = "tmpfs"
    assert error_of(v.check_mounts, config, bundle) == "mounts[0].destination: /proc can only be a proc mount"


def test_mount_idmap_needs_mappings_or_userns(config, bundle):
    without_ns(config, "user")
    config["mounts"].append({"destination": "/data", "source": "/x", "options": ["rbind", "idmap"]})
    assert error_of(v.check_mounts, config, bundle) == \
        "mounts[2].options: idmap needs uidMappings/gidMappings on the mount or a user namespace"
    config["mounts"][2]["uidMappings"] = config["mounts"][2]["gidMappings"] = [
        {"containerID": 0, "hostID": 1, "size": 1}]
    v.check_mounts(config, bundle)


def test_check_mounts_resolves_the_plan(config, bundle):
    """The plan the init mounts from: every entry in order, destinations cleaned, bind sources in
    the bundle, options parsed; linux.rootfsPropagation as flags; validate() returns it."""
    from ocirun.linux import syscalls as sc
    config["mounts"].append({"destination": "data//x/", "type": "bind", "source": "vol", "options": ["ro", "rshared"]})
    config["linux"]["rootfsPropagation"] = "rslave"
    plan = v.check_mounts(config, bundle)
    assert [m["index"] for m in plan["mounts"]] == list(range(len(config["mounts"])))
    last = plan["mounts"][-1]
    assert (last["destination"], last["source"], last["type"]) == ("/data/x", os.path.join(bundle, "vol"), "bind")
    assert last["options"]["flags"] == sc.MS_BIND | sc.MS_RDONLY
    assert last["options"]["propagation"] == [sc.MS_SHARED | sc.MS_REC]
    assert plan["rootfsPropagation"] == sc.MS_SLAVE | sc.MS_REC
    validated = v.validate(config, bundle)
    assert {key: validated[key] for key in plan} == plan


@pytest.mark.parametrize("mount,error", [
    ({"destination": "/data", "type": "bind"}, "mounts[2].source: a bind mount needs a source"),
    ({"destination": "/data", "type": "tmpfs", "options": ["idmap"]},
     "mounts[2].options: idmap is only supported for bind mounts"),
    ({"destination": "/data", "source": "/x", "options": ["bind"], "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]},
     "mounts[2].gidMappings: uidMappings and gidMappings must be given together"),
])
def test_mounts_the_init_could_not_make_are_refused(config, bundle, mount, error):
    config["mounts"].append(mount)
    assert error_of(v.check_mounts, config, bundle) == error


def test_rootfs_propagation_unknown(config, bundle):
    config["linux"]["rootfsPropagation"] = "sideways"
    assert error_of(v.check_mounts, config, bundle).startswith(
        "linux.rootfsPropagation: unknown propagation 'sideways' (want one of ")


# --- namespaces ---------------------------------------------------------------------------------

def test_namespace_unknown_type(config, bundle):
    config["linux"]["namespaces"].append({"type": "foo"})
    assert error_of(v.check_namespaces, config, bundle) == "linux.namespaces[8].type: unknown namespace type 'foo'"


def test_namespace_duplicate(config, bundle):
    config["linux"]["namespaces"].append({"type": "pid", "path": "/proc/1/ns/pid"})
    assert error_of(v.check_namespaces, config, bundle) == "linux.namespaces[8].type: duplicate namespace type 'pid'"


def test_namespace_path_absolute(config, bundle):
    joined_ns(config, "ipc", "proc/1/ns/ipc")
    assert error_of(v.check_namespaces, config, bundle) == \
        "linux.namespaces[2].path: must be an absolute path, not 'proc/1/ns/ipc'"


# --- hostname / domainname ----------------------------------------------------------------------

@pytest.mark.parametrize("field", ["hostname", "domainname"])
def test_uts_names_need_uts_namespace(config, bundle, field):
    del config["hostname"]
    config[field] = "x"
    without_ns(config, "uts")
    assert error_of(v.check_uts_names, config, bundle) == \
        f"{field}: cannot be set without a UTS namespace of the container's own (a linux.namespaces entry of type uts)"


def test_uts_names_are_accepted_with_a_uts_namespace_joined_by_path(config, bundle):
    joined_ns(config, "uts", "/run/some-pod/ns/uts")    # not ours (joining reports a bad path later)
    v.check_uts_names(config, bundle)     # runc sets them in the joined namespace


def test_uts_names_refused_when_joining_the_runtime_s_own_uts_namespace(config, bundle):
    joined_ns(config, "uts", "/proc/self/ns/uts")
    assert error_of(v.check_uts_names, config, bundle).startswith("hostname: cannot be set without a UTS")


def test_empty_hostname_needs_nothing(config, bundle):
    config["hostname"] = ""
    without_ns(config, "uts")
    v.check_uts_names(config, bundle)


# --- user namespace mappings --------------------------------------------------------------------

@pytest.mark.parametrize("field", ["uidMappings", "gidMappings"])
def test_mappings_need_user_namespace(config, bundle, field):
    without_ns(config, "user")
    other = "gidMappings" if field == "uidMappings" else "uidMappings"
    del config["linux"][other]
    assert error_of(v.check_id_mappings, config, bundle) == \
        f"linux.{field}: needs a user namespace (a linux.namespaces entry of type user)"


@pytest.mark.parametrize("field", ["uidMappings", "gidMappings"])
def test_new_user_namespace_needs_mappings(config, bundle, field):
    del config["linux"][field]
    assert error_of(v.check_id_mappings, config, bundle) == f"linux.{field}: is required with a new user namespace"


def test_joined_user_namespace_needs_no_mappings(config, bundle):
    joined_ns(config, "user", "/proc/1/ns/user")
    del config["linux"]["uidMappings"], config["linux"]["gidMappings"]
    v.check_id_mappings(config, bundle)


# --- sysctl -------------------------------------------------------------------------------------

def sysctl_error(config, bundle, key, value="1"):
    config["linux"]["sysctl"] = {key: value}
    return error_of(v.check_sysctl, config, bundle)


@pytest.mark.parametrize("key", ["kernel.shmmax", "kernel.shm_rmid_forced", "kernel.msgmnb", "kernel.sem",
                                 "kernel.sem_next_id", "fs.mqueue.queues_max", "net.core.somaxconn",
                                 "net.ipv4.conf.all.forwarding", "kernel.domainname"])
def test_sysctl_namespaced_allowed(config, bundle, key):
    config["linux"]["sysctl"] = {key: "1"}
    v.check_sysctl(config, bundle)


@pytest.mark.parametrize("key", ["kernel.shmmax", "fs.mqueue.msg_max", "kernel.sem"])
def test_sysctl_ipc_needs_ipc_namespace(config, bundle, key):
    without_ns(config, "ipc")
    assert sysctl_error(config, bundle, key) == \
        f'linux.sysctl["{key}"]: not allowed in the host\'s IPC namespace (add an ipc namespace)'


def test_sysctl_net_needs_network_namespace(config, bundle):
    without_ns(config, "network")
    assert sysctl_error(config, bundle, "net.ipv4.ip_forward") == \
        'linux.sysctl["net.ipv4.ip_forward"]: not allowed in the host\'s network namespace (add a network namespace)'


def test_sysctl_net_refused_when_joining_the_host_netns(config, bundle):
    joined_ns(config, "network", "/proc/self/ns/net")
    assert sysctl_error(config, bundle, "net.ipv4.ip_forward").startswith(
        'linux.sysctl["net.ipv4.ip_forward"]: not allowed in the host\'s network namespace')


def test_sysctl_net_allowed_when_joining_another_netns(config, bundle):
    # /proc/self/ns/user is a namespace file that is not our network namespace
    joined_ns(config, "network", "/proc/self/ns/user")
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    v.check_sysctl(config, bundle)


def test_sysctl_uts(config, bundle):
    without_ns(config, "uts")
    assert sysctl_error(config, bundle, "kernel.domainname") == \
        'linux.sysctl["kernel.domainname"]: not allowed in the host\'s UTS namespace (add a uts namespace)'


def test_sysctl_hostname_conflicts_with_hostname_field(config, bundle):
    assert sysctl_error(config, bundle, "kernel.hostname") == \
        'linux.sysctl["kernel.hostname"]: conflicts with the hostname field; set only one'
    del config["hostname"]
    v.check_sysctl(config, bundle)


@pytest.mark.parametrize("key", ["kernel.panic", "vm.swappiness", "kernel.shmmax_not_really/x", "fs.file-max",
                                 "kernel.core_pattern", "kernel.msgmax.."])
def test_sysctl_not_namespaced(config, bundle, key):
    message = sysctl_error(config, bundle, key)
    assert message.startswith(f'linux.sysctl["{key}"]: ')
    assert message.endswith(("not a namespaced sysctl: it would change the host",
                             "invalid sysctl name (dot-separated words; no '/', no '..')"))


@pytest.mark.parametrize("key", ["net/ipv4/ip_forward", "net.ipv4..conf", "net.core.x\n", "net.ipv4.conf.../x", "kernel", "",
                                 ".net.core", "net.core.", "net.core.x y"])
def test_sysctl_bad_names(config, bundle, key):
    path = v.json_path(["linux", "sysctl", key])    # quoted as JSON: linux.sysctl["net/ipv4/ip_forward"]
    assert sysctl_error(config, bundle, key) == \
        f'{path}: invalid sysctl name (dot-separated words; no \'/\', no \'..\')'


# --- cgroupsPath, timeOffsets -------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/a/../b", "..", "../x", "system.slice:ocirun:..", "a/.."])
def test_cgroups_path_traversal(config, bundle, path):
    config["linux"]["cgroupsPath"] = path
    assert error_of(v.check_cgroups_path, config, bundle) == f"linux.cgroupsPath: {path!r} must not contain '..'"


@pytest.mark.parametrize("path", ["/a/b", "relative/x", "system.slice:ocirun:abc", "/a..b/c.."])
def test_cgroups_path_ok(config, bundle, path):
    config["linux"]["cgroupsPath"] = path
    v.check_cgroups_path(config, bundle)


def test_intel_rdt_is_refused(config, bundle):
    v.check_intel_rdt(config, bundle)
    config["linux"]["intelRdt"] = {"l3CacheSchema": "L3:0=ffff"}
    assert error_of(v.check_intel_rdt, config, bundle) == \
        "linux.intelRdt: Intel RDT (resctrl) is not supported by ocirun"


# Settings that need a namespace of the container's own: (what, namespace change, check, error).
NEEDS_OWN_NAMESPACE = [
    ("time offsets without a time namespace", lambda c: without_ns(c, "time"), v.check_time_offsets,
     "linux.timeOffsets: needs a time namespace (a linux.namespaces entry of type time)"),
    ("time offsets in a joined time namespace", lambda c: joined_ns(c, "time", "/proc/1/ns/time"),
     v.check_time_offsets,
     "linux.timeOffsets: cannot be set when joining an existing time namespace by path"),
    ("net devices without a network namespace", lambda c: without_ns(c, "network"), v.check_net_devices,
     "linux.netDevices: needs a network namespace of the container's own"),
    ("net devices in the host's network namespace", lambda c: joined_ns(c, "network", "/proc/self/ns/net"),
     v.check_net_devices, "linux.netDevices: needs a network namespace of the container's own"),
]


@pytest.mark.parametrize("what,change,check,message", NEEDS_OWN_NAMESPACE,
                         ids=[n[0] for n in NEEDS_OWN_NAMESPACE])
def test_settings_that_need_a_namespace_of_their_own(config, bundle, what, change, check, message):
    check(config, bundle)
    change(config)
    assert error_of(check, config, bundle) == message


def test_the_plan_has_the_namespace_actions_and_the_time_offsets_text(config, bundle):
    config["linux"]["timeOffsets"] = {"monotonic": {"secs": 1}, "boottime": {"secs": -5, "nanosecs": 7}}
    plan = v.validate(config, bundle)
    assert plan["timeOffsets"] == "monotonic 1 0\nboottime -5 7\n"
    assert plan["namespaces"]["new_user"] is True and plan["namespaces"]["join"] == []
    assert plan["namespaces"]["uts"] is True and plan["namespaces"]["user"] is True
    del config["linux"]["timeOffsets"]
    assert "timeOffsets" not in v.validate(config, bundle)


def test_time_offsets_unknown_clock(config, bundle):
    config["linux"]["timeOffsets"]["realtime"] = {"secs": 1}
    assert error_of(v.check_time_offsets, config, bundle) == \
        'linux.timeOffsets.realtime: unknown clock; only monotonic and boottime can be offset'


# --- netDevices ---------------------------------------------------------------------------------

@pytest.mark.parametrize("devices,message", [
    ({"eth/0": {}}, 'linux.netDevices["eth/0"]: invalid network device name'),
    ({"a" * 16: {}}, f"linux.netDevices.{'a' * 16}: invalid network device name"),
    ({"..": {}}, 'linux.netDevices[".."]: invalid network device name'),
    ({"eth0": {"name": "c:0"}}, "linux.netDevices.eth0.name: invalid network device name 'c:0'"),
    ({"eth0": {"name": "c 0"}}, "linux.netDevices.eth0.name: invalid network device name 'c 0'"),
    ({"eth0": {"name": ""}}, "linux.netDevices.eth0.name: invalid network device name ''"),
    ({"eth0": {"name": "x"}, "eth1": {"name": "x"}}, "linux.netDevices.eth1.name: 'x' is also the name of netDevices['eth0']"),
    ({"eth0": {}, "eth1": {"name": "eth0"}}, "linux.netDevices.eth1.name: 'eth0' is also the name of netDevices['eth0']"),
])
def test_net_device_names(config, bundle, devices, message):
    config["linux"]["netDevices"] = devices
    assert error_of(v.check_net_devices, config, bundle) == message


def test_net_device_templates_may_repeat(config, bundle):
    config["linux"]["netDevices"] = {"eth0": {"name": "c%d"}, "eth1": {"name": "c%d"}, "a" * 15: {}}
    v.check_net_devices(config, bundle)


# --- absolute paths -----------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["maskedPaths", "readonlyPaths"])
def test_masked_readonly_paths_absolute(config, bundle, field):
    config["linux"][field].append("proc/x")
    assert error_of(v.check_paths_absolute, config, bundle) == \
        f"linux.{field}[1]: must be an absolute path, not 'proc/x'"


def test_device_path_absolute(config, bundle):
    config["linux"]["devices"][0]["path"] = "dev/fuse"
    assert error_of(v.check_paths_absolute, config, bundle) == \
        "linux.devices[0].path: must be an absolute path, not 'dev/fuse'"


def test_checks_survive_wrong_types(bundle):
    """Without the schema a wrong type is still a ConfigError, never a TypeError/AttributeError."""
    bad = {"ociVersion": 1, "root": [], "process": "sh", "hooks": {"prestart": [1]}, "mounts": [1],
           "linux": {"namespaces": [1], "sysctl": [], "timeOffsets": {"x": 1}, "netDevices": [1]}}
    for check in v.CHECKS:
        try:
            check(copy.deepcopy(bad), bundle)
        except ConfigError:
            pass
