"""Errors and rollback (runtime.md "Errors"; the core issue's list of bad inputs), end to end.

Every bad input must give a one-line error naming the config field or the path, a non-zero exit, and
leave nothing behind: no state directory, no exec fifo, no cgroup directory, no process, no mount.
Also runc's command-line forms: options after the id, `--flag=value`, single-dash long flags.
"""
import json
import os
import time

import pytest

from tests.conftest import base_config
from tests.leftovers import _cgroup_dirs, _init_pids, is_ocirun_init  # noqa: F401

pytestmark = pytest.mark.root

_SEQ = [0]


def new_id(prefix="e"):
    """Unique per test session, so that a leftover of one run is never mistaken for another's."""
    _SEQ[0] += 1
    return f"{prefix}{os.getpid()}-{_SEQ[0]}"


def err(proc) -> str:
    return proc.stderr.replace('\\"', '"')


def test_the_leftover_check_sees_a_live_container_s_cgroup(ocirun):
    """The check used by every test below must be able to fail."""
    cid = new_id()
    ocirun("create", "-b", ocirun.bundle(base_config(["sleep", "100"])), cid, check=True)
    assert _cgroup_dirs(cid) != []
    assert _init_pids((ocirun.tmp, ocirun.root)) != set()     # the created init holds the fifo
    ocirun("delete", "--force", cid, check=True)
    assert _cgroup_dirs(cid) == []


def test_the_parent_cgroups_a_run_made_are_removed_and_one_in_use_is_kept(ocirun):
    """What conftest's session fixture and scripts/test.sh do at the end of a run."""
    from tests import leftovers
    before = leftovers.ocirun_parent_cgroups()
    for parent in sorted(before):       # empty ones (earlier tests'): the create below must make its own
        try:
            os.rmdir(parent)
        except OSError:
            pass
    before = leftovers.ocirun_parent_cgroups()
    cid = new_id()
    ocirun("create", "-b", ocirun.bundle(base_config(["sleep", "100"])), cid, check=True)
    made = leftovers.ocirun_parent_cgroups() - before
    assert made, "the runtime made no ocirun parent cgroup"
    assert set(leftovers.remove_new_parent_cgroups(before)) == made     # in use: EBUSY, kept
    ocirun("delete", "--force", cid, check=True)
    assert leftovers.remove_new_parent_cgroups(before) == []
    assert leftovers.ocirun_parent_cgroups() == before


class Snapshot:
    """What the host looks like before an operation that must fail without a trace."""

    def __init__(self, ocirun, cid):
        self.ocirun, self.cid = ocirun, cid
        self.mine = (ocirun.tmp, ocirun.root)
        self.mounts = self.my_mounts()
        self.inits = _init_pids(self.mine)

    def my_mounts(self) -> list[str]:
        return sorted(open("/proc/self/mountinfo").read().splitlines())

    def assert_nothing_left(self):
        cdir = os.path.join(self.ocirun.root, self.cid)
        assert not os.path.exists(cdir), os.listdir(cdir)          # state dir, state.json, exec.fifo
        assert self.cid not in self.ocirun("list", "-q").stdout.split()
        assert _cgroup_dirs(self.cid) == []
        assert self.my_mounts() == self.mounts
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and _init_pids(self.mine) - self.inits:
            time.sleep(0.02)
        assert _init_pids(self.mine) - self.inits == set()


def assert_one_line_error(proc, *needles):
    assert proc.returncode != 0, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in err(proc), proc.stderr


def create_fails(ocirun, config_or_bundle, *needles, cid=None, snapshot=Snapshot):
    cid = cid or new_id()
    bundle = config_or_bundle if isinstance(config_or_bundle, str) else ocirun.bundle(config_or_bundle)
    snap = snapshot(ocirun, cid)
    proc = ocirun("create", "-b", bundle, cid)
    assert_one_line_error(proc, *needles)
    snap.assert_nothing_left()
    return proc


# --- the config ----------------------------------------------------------------------------------

def test_malformed_json_is_an_error_naming_config_json(ocirun):
    bundle = ocirun.bundle(base_config())
    open(os.path.join(bundle, "config.json"), "w").write('{"ociVersion": "1.3.0", "process": ')
    create_fails(ocirun, bundle, "config.json", "invalid JSON")


def test_a_config_that_is_not_an_object_is_refused(ocirun):
    bundle = ocirun.bundle(base_config())
    open(os.path.join(bundle, "config.json"), "w").write("[1, 2]")
    create_fails(ocirun, bundle, "config.json")


def test_a_missing_config_json_names_the_file(ocirun):
    bundle = ocirun.bundle(base_config())
    os.unlink(os.path.join(bundle, "config.json"))
    proc = create_fails(ocirun, bundle, "config.json")
    assert "no such file" in proc.stderr.lower()


def test_a_missing_bundle_directory_is_an_error(ocirun):
    create_fails(ocirun, os.path.join(ocirun.tmp, "nosuchbundle"), "nosuchbundle")


@pytest.mark.parametrize("version", ["2.0.0", "0.1.0", "not-a-version"])
def test_an_unknown_oci_version_major_is_refused(ocirun, version):
    config = base_config()
    config["ociVersion"] = version
    create_fails(ocirun, config, "ociVersion")


@pytest.mark.parametrize("rdt", [{"closID": "guaranteed_group"}, {}])
def test_intel_rdt_is_refused_naming_the_field(ocirun, rdt):
    # unsupported: refused, never silently ignored (the spec says the runtime MUST use resctrl)
    config = base_config()
    config["linux"]["intelRdt"] = rdt
    create_fails(ocirun, config, "linux.intelRdt", "not supported")


def test_a_missing_rootfs_is_an_error_naming_root_path(ocirun):
    config = base_config()
    config["root"]["path"] = "nonexistent-rootfs"
    create_fails(ocirun, config, "root.path", "nonexistent-rootfs")


def test_a_rootfs_that_is_a_file_is_refused(ocirun):
    config = base_config()
    config["root"]["path"] = "config.json"
    create_fails(ocirun, config, "root.path", "not a directory")


@pytest.mark.parametrize("mutate,field", [
    (lambda c: c["process"].update(args="sh -c true"), "process.args"),
    (lambda c: c["process"]["user"].update(uid="0"), "process.user.uid"),
    (lambda c: c["linux"].update(namespaces={"type": "pid"}), "linux.namespaces"),
    (lambda c: c["mounts"][0].update(destination=5), "mounts[0].destination"),
    (lambda c: c["process"].update(env="PATH=/bin"), "process.env"),
    (lambda c: c.update(hostname=["a"]), "hostname"),
    (lambda c: c["process"]["rlimits"][0].update(soft=-1), "process.rlimits[0].soft"),
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[6].type"),
    (lambda c: c["process"]["user"].pop("gid"), "process.user.gid"),
    (lambda c: c["process"].update(env=["PATH=/bin", "NOEQUALS"]), "process.env[1]"),
    (lambda c: c["process"].update(env=["=value"]), "process.env[0]"),
    (lambda c: c["process"].update(env=["A=\0b"]), "process.env[0]"),
])
def test_wrong_field_types_are_refused_by_the_schema_naming_the_field(ocirun, mutate, field):
    config = base_config()
    mutate(config)
    create_fails(ocirun, config, field)


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c["process"].update(scheduler={"policy": "SCHED_RR"}),
     "process.scheduler.priority: SCHED_RR needs a priority from 1 to 99"),
    (lambda c: c["process"].update(oomScoreAdj=5000),
     "process.oomScoreAdj: must be an integer from -1000 to 1000, got 5000"),
    (lambda c: c["process"].update(execCPUAffinity={"final": "3-1"}),
     "process.execCPUAffinity.final: invalid CPU range '3-1'"),
    (lambda c: c["process"]["user"].update(umask=1000),
     "process.user.umask: must be an integer from 0 to 0o777 (511), got 1000"),
    (lambda c: c["linux"].update(memoryPolicy={"mode": "MPOL_BIND"}),
     "linux.memoryPolicy.nodes: MPOL_BIND needs at least one node"),
])
def test_process_settings_the_schema_accepts_are_refused_by_create_before_anything_is_made(
        ocirun, mutate, message):
    """The process settings are checked once, by create, into the plan the init applies
    (ocirun/processplan.py): a bad one fails there, one line naming the field, nothing made."""
    config = base_config()
    mutate(config)
    create_fails(ocirun, config, message)


# --- ids and state -------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["a/b", "..", ".", "", "../x", "a b"])
def test_a_bad_container_id_is_refused_for_every_command(ocirun, bad):
    bundle = ocirun.bundle(base_config())
    proc = ocirun("create", "-b", bundle, bad)
    assert_one_line_error(proc)
    assert "id" in proc.stderr.lower()
    for cmd in (["start"], ["state"], ["kill"], ["delete"]):
        assert ocirun(*cmd, bad).returncode != 0
    assert not os.path.exists(os.path.join(os.path.dirname(ocirun.root), "b"))
    assert os.listdir(ocirun.root) == [] if os.path.isdir(ocirun.root) else True


def test_a_duplicate_id_is_refused_and_the_first_container_is_untouched(ocirun):
    cid = new_id()
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    ocirun("create", "-b", bundle, cid, check=True)
    first = ocirun.state(cid)
    proc = ocirun("create", "-b", bundle, cid)
    assert_one_line_error(proc, f"container with id exists: {cid}")
    assert ocirun.state(cid) == first
    assert os.path.exists(f"/proc/{first['pid']}")
    assert os.path.exists(os.path.join(ocirun.root, cid, "exec.fifo"))


def test_start_on_a_running_container_is_an_error_and_changes_nothing(ocirun):
    cid = new_id()
    ocirun("run", "-d", "-b", ocirun.bundle(base_config(["sleep", "100"])), cid, check=True)
    pid = ocirun.state(cid)["pid"]
    proc = ocirun("start", cid)
    assert_one_line_error(proc, "cannot start an already running container")
    assert ocirun.state(cid)["status"] == "running" and ocirun.state(cid)["pid"] == pid


def test_start_on_a_stopped_container_is_an_error(ocirun):
    cid = new_id()
    ocirun("run", "-d", "-b", ocirun.bundle(base_config(["true"])), cid, check=True)
    deadline = time.monotonic() + 10
    while ocirun.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert_one_line_error(ocirun("start", cid), "stopped")


def test_delete_of_a_running_container_without_force_is_an_error_and_changes_nothing(ocirun):
    cid = new_id()
    ocirun("run", "-d", "-b", ocirun.bundle(base_config(["sleep", "100"])), cid, check=True)
    pid = ocirun.state(cid)["pid"]
    proc = ocirun("delete", cid)
    assert_one_line_error(proc, "not stopped", "running")
    assert ocirun.state(cid)["status"] == "running" and os.path.exists(f"/proc/{pid}")


def test_delete_of_a_created_container_without_force_is_an_error(ocirun):
    cid = new_id()
    ocirun("create", "-b", ocirun.bundle(base_config(["sleep", "100"])), cid, check=True)
    assert_one_line_error(ocirun("delete", cid), "not stopped", "created")
    assert ocirun.state(cid)["status"] == "created"


@pytest.mark.parametrize("sig", ["SIGFOO", "FOO", "1x", "9999999999999999999999", "sig kill"])
def test_kill_with_an_unknown_signal_is_an_error_and_the_container_keeps_running(ocirun, sig):
    cid = new_id()
    ocirun("run", "-d", "-b", ocirun.bundle(base_config(["sleep", "100"])), cid, check=True)
    proc = ocirun("kill", cid, sig)
    assert_one_line_error(proc)
    assert "signal" in proc.stderr.lower()
    assert ocirun.state(cid)["status"] == "running"


# --- failures inside create ----------------------------------------------------------------------

def test_a_missing_binary_fails_create_with_no_such_file_or_directory(ocirun):
    create_fails(ocirun, base_config(["/no/such/binary"]), "/no/such/binary", "no such file or directory")
    create_fails(ocirun, base_config(["nosuchcommand"]), "nosuchcommand", "no such file or directory")


def test_a_namespace_path_that_does_not_exist_is_an_error_naming_the_entry(ocirun):
    config = base_config()
    config["linux"]["namespaces"][1] = {"type": "network", "path": "/proc/999999999/ns/net"}
    create_fails(ocirun, config, "linux.namespaces[1].path", "/proc/999999999/ns/net")


def test_a_namespace_path_that_is_not_a_namespace_is_an_error(ocirun):
    config = base_config()
    config["linux"]["namespaces"][1] = {"type": "network", "path": "/etc/hostname"}
    create_fails(ocirun, config, "linux.namespaces[1]")


def test_uid_mappings_without_a_user_namespace_are_refused(ocirun):
    config = base_config()
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    create_fails(ocirun, config, "linux.uidMappings", "user namespace")


def test_gid_mappings_without_a_user_namespace_are_refused(ocirun):
    config = base_config()
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    create_fails(ocirun, config, "linux.gidMappings", "user namespace")


@pytest.mark.parametrize("field", ["bounding", "effective", "permitted", "inheritable", "ambient"])
def test_a_bad_capability_name_is_a_warning_naming_the_entry(ocirun, field):
    # config.md: a capability that cannot be mapped MUST be logged as a warning, SHOULD NOT fail
    config = base_config(["true"])
    names = config["process"]["capabilities"].setdefault(field, [])
    names.append("CAP_MAKE_COFFEE")
    proc = ocirun.run_output(config, new_id())
    assert proc.returncode == 0, proc.stderr
    assert f"process.capabilities.{field}[{len(names) - 1}]: unknown capability" in proc.stderr
    assert "CAP_MAKE_COFFEE" in proc.stderr and "level=warning" in proc.stderr


def test_a_mount_with_a_nonexistent_source_is_an_error_naming_the_mount(ocirun):
    config = base_config()
    config["mounts"].append({"destination": "/data", "type": "bind", "source": "/no/such/source",
                             "options": ["rbind"]})
    create_fails(ocirun, config, "mounts[7]", "/no/such/source")


def test_a_mount_of_an_unknown_filesystem_type_is_an_error_naming_the_mount(ocirun):
    config = base_config()
    config["mounts"].append({"destination": "/data", "type": "nosuchfs", "source": "x"})
    create_fails(ocirun, config, "mounts[7]")


def test_a_relative_cwd_and_empty_args_are_refused(ocirun):
    config = base_config()
    config["process"]["cwd"] = "relative"
    create_fails(ocirun, config, "process.cwd")
    config = base_config()
    config["process"]["args"] = []
    create_fails(ocirun, config, "process.args")


def test_a_missing_process_is_refused_by_create(ocirun):
    config = base_config()
    del config["process"]
    create_fails(ocirun, config, "process")


# --- hooks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_time_hook_fails_create_naming_it_and_leaves_nothing(ocirun, kind):
    config = base_config()
    config["hooks"] = {kind: [{"path": "/bin/true"}, {"path": "/bin/false"}]}
    create_fails(ocirun, config, f"hooks.{kind}[1]", "exit status 1")


def test_a_hook_that_does_not_exist_fails_create_naming_it(ocirun):
    config = base_config()
    config["hooks"] = {"createRuntime": [{"path": "/no/such/hook"}]}
    create_fails(ocirun, config, "hooks.createRuntime[0]", "/no/such/hook")


def test_a_hook_that_times_out_fails_create(ocirun):
    config = base_config()
    config["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}
    start = time.monotonic()
    create_fails(ocirun, config, "hooks.createRuntime[0]")
    assert time.monotonic() - start < 15


@pytest.mark.parametrize("kind", ["startContainer", "poststart"])
def test_a_failing_start_time_hook_fails_start_destroys_the_container_and_runs_poststop(ocirun, kind):
    """runtime.md 1.3.0 steps 7 and 9: an error, the container stopped, then steps 12-13 (destroyed,
    poststop hooks run). runc only warns for poststart; the spec rules here."""
    cid = new_id()
    marker = os.path.join(ocirun.tmp, "poststop-ran")
    config = base_config(["sleep", "100"])
    config["hooks"] = {kind: [{"path": "/bin/true"}, {"path": "/bin/false"}],
                       "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}]}
    snap = Snapshot(ocirun, cid)
    ocirun("create", "-b", ocirun.bundle(config), cid, check=True)
    pid = ocirun.state(cid)["pid"]
    proc = ocirun("start", cid)
    assert_one_line_error(proc, f"hooks.{kind}[1]", "exit status 1")
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
    alive = os.path.exists(f"/proc/{pid}/stat") and open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    assert not alive
    assert os.path.exists(marker)
    snap.assert_nothing_left()


def test_a_failing_poststop_hook_is_a_warning_and_delete_completes(ocirun):
    cid = new_id()
    config = base_config(["true"])
    config["hooks"] = {"poststop": [{"path": "/bin/false"}]}
    ocirun("run", "-d", "-b", ocirun.bundle(config), cid, check=True)
    deadline = time.monotonic() + 10
    while ocirun.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    proc = ocirun("delete", cid)
    assert proc.returncode == 0 and "hooks.poststop[0]" in proc.stderr
    assert not os.path.exists(os.path.join(ocirun.root, cid))


# --- runc's command-line forms -------------------------------------------------------------------

def test_options_may_follow_the_id(ocirun):
    cid = new_id()
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    pidfile = os.path.join(ocirun.tmp, "after.pid")
    ocirun("create", cid, "--bundle", bundle, "--pid-file", pidfile, check=True)
    assert int(open(pidfile).read()) == ocirun.state(cid)["pid"]
    ocirun("start", cid, check=True)
    ocirun("kill", cid, "KILL", "--all", check=True)
    deadline = time.monotonic() + 10
    while ocirun.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    ocirun("delete", cid, "--force", check=True)
    assert not os.path.exists(os.path.join(ocirun.root, cid))


def test_flag_equals_value_forms(ocirun):
    cid = new_id()
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    pidfile = os.path.join(ocirun.tmp, "eq.pid")
    ocirun("create", f"--bundle={bundle}", f"--pid-file={pidfile}", cid, check=True)
    assert int(open(pidfile).read()) == ocirun.state(cid)["pid"]
    out = ocirun("list", "--format=json").stdout
    assert [c["id"] for c in json.loads(out)] == [cid]
    ocirun("delete", "--force=true", cid, check=True)


def test_single_dash_long_flags(ocirun):
    cid = new_id()
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    pidfile = os.path.join(ocirun.tmp, "sd.pid")
    ocirun("create", "-bundle", bundle, "-pid-file", pidfile, cid, check=True)
    assert int(open(pidfile).read()) == ocirun.state(cid)["pid"]
    assert ocirun("list", "-q").stdout.split() == [cid]
    ocirun("delete", "-force", cid, check=True)
    # global flags too: -root
    proc = ocirun("list", "-q", extra_global=("-debug",))
    assert proc.returncode == 0


def test_an_unknown_flag_is_a_usage_error(ocirun):
    proc = ocirun("create", "--no-such-flag", "-b", ocirun.bundle(base_config()), new_id())
    assert_one_line_error(proc, "flag provided but not defined")
    assert os.listdir(ocirun.root) == [] if os.path.isdir(ocirun.root) else True


def test_a_missing_id_is_a_usage_error(ocirun):
    for cmd in ("create", "start", "state", "delete", "kill"):
        proc = ocirun(cmd)
        assert proc.returncode != 0 and "requires a minimum of 1 argument" in proc.stderr, (cmd, proc.stderr)


def test_errors_are_json_lines_with_log_format_json(ocirun):
    log = os.path.join(ocirun.tmp, "log.json")
    proc = ocirun("start", "nosuch", extra_global=("--log", log, "--log-format", "json"))
    assert proc.returncode == 1
    lines = [json.loads(line) for line in open(log).read().splitlines()]
    assert lines[-1]["level"] == "error" and "container does not exist" in lines[-1]["msg"] and "time" in lines[-1]


@pytest.mark.parametrize("with_log", [False, True])
def test_an_error_quoting_a_key_with_a_newline_stays_one_line(ocirun, with_log):
    config = base_config()
    config["process"]["capabilities"]["\n"] = ["CAP_KILL"]      # a hostile key, echoed in the message
    log = os.path.join(ocirun.tmp, "log")
    extra = ("--log", log) if with_log else ()
    proc = ocirun("create", "-b", ocirun.bundle(config), new_id(), extra_global=extra)
    assert_one_line_error(proc, "unknown capability set")
    if with_log:
        assert len(open(log).read().splitlines()) == 1
