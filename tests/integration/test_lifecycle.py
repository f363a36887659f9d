"""runtime.md: the lifecycle and operations, on real containers (root).

Each test is named after the MUST it checks; the container is checked from the host (/proc) and,
where it matters, from inside with busybox.
"""
import json
import os
import time

import pytest

from tests.conftest import base_config
from tests.leftovers import _cgroup_dirs, _init_pids

pytestmark = pytest.mark.root


def wait_status(ocirun, cid, want, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ocirun.state(cid)["status"] == want:
            return
        time.sleep(0.02)
    raise AssertionError(f"{cid} never reached {want}: {ocirun.state(cid)}")


def test_create_leaves_container_created_and_program_not_started(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    pidfile = os.path.join(ocirun.tmp, "pid")
    ocirun("create", "--bundle", bundle, "--pid-file", pidfile, "c1", check=True)
    state = ocirun.state("c1")
    assert state["status"] == "created"
    assert state["id"] == "c1" and state["bundle"] == bundle and state["ociVersion"] == "1.3.0"
    pid = state["pid"]
    assert int(open(pidfile).read()) == pid
    # the user's program has not run: pid 1 is still the runtime's init, waiting
    assert b"sleep" not in open(f"/proc/{pid}/cmdline", "rb").read()
    for ns in ("pid", "net", "ipc", "uts", "mnt", "cgroup"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert os.readlink(f"/proc/{pid}/ns/user") == os.readlink("/proc/self/ns/user")


def test_start_runs_the_program_and_state_becomes_running_then_stopped(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "1"]))
    ocirun("create", "-b", bundle, "c1", check=True)
    pid = ocirun.state("c1")["pid"]
    ocirun("start", "c1", check=True)
    assert ocirun.state("c1")["status"] == "running"
    assert open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0] == b"sleep"
    wait_status(ocirun, "c1", "stopped")
    ocirun("delete", "c1", check=True)
    assert "c1" not in ocirun("list", "-q").stdout.split()


def test_start_of_a_running_container_is_an_error(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    ocirun("run", "-d", "-b", bundle, "c1", check=True)
    proc = ocirun("start", "c1")
    assert proc.returncode == 1 and "cannot start an already running container" in proc.stderr


def test_delete_of_a_running_container_without_force_is_an_error_and_force_works(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    ocirun("run", "-d", "-b", bundle, "c1", check=True)
    pid = ocirun.state("c1")["pid"]
    proc = ocirun("delete", "c1")
    assert proc.returncode == 1 and "is not stopped: running" in proc.stderr
    assert ocirun.state("c1")["status"] == "running"
    ocirun("delete", "--force", "c1", check=True)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] in ("Z", "X")
    assert not os.path.exists(os.path.join(ocirun.root, "c1"))


def test_kill_sends_sigterm_by_default_and_named_signals(ocirun):
    bundle = ocirun.bundle(base_config(["sh", "-c", "trap 'exit 7' USR1; trap 'exit 9' TERM; while true; do sleep 0.1; done"]))
    ocirun("run", "-d", "-b", bundle, "c1", check=True)
    ocirun("kill", "c1", "SIGUSR1", check=True)
    wait_status(ocirun, "c1", "stopped")
    ocirun("run", "-d", "-b", bundle, "c2", check=True)
    ocirun("kill", "c2", check=True)
    wait_status(ocirun, "c2", "stopped")
    proc = ocirun("kill", "c2", "KILL")
    assert proc.returncode == 1 and "container not running" in proc.stderr


def test_run_exits_with_the_containers_status_and_passes_stdio(ocirun):
    proc = ocirun.run_output(base_config(["sh", "-c", "echo hello; echo err >&2; exit 42"]))
    assert proc.returncode == 42
    assert proc.stdout == "hello\n" and "err" in proc.stderr
    assert not os.path.exists(os.path.join(ocirun.root, "c1"))


def test_create_with_an_existing_id_fails_and_keeps_the_first(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    ocirun("create", "-b", bundle, "c1", check=True)
    pid = ocirun.state("c1")["pid"]
    proc = ocirun("create", "-b", bundle, "c1")
    assert proc.returncode == 1 and "container with id exists: c1" in proc.stderr
    assert ocirun.state("c1")["pid"] == pid and ocirun.state("c1")["status"] == "created"


def _assert_nothing_left(ocirun, cid):
    assert not os.path.exists(os.path.join(ocirun.root, cid))
    assert ocirun("list", "-q").stdout.strip() == ""
    assert _cgroup_dirs(cid) == []
    assert _init_pids((ocirun.tmp,)) == set()


def test_failed_create_of_a_missing_binary_says_no_such_file_and_leaves_nothing(ocirun):
    bundle = ocirun.bundle(base_config(["/no/such/binary"]))
    proc = ocirun("create", "-b", bundle, "cfail")
    assert proc.returncode == 1
    assert "no such file or directory" in proc.stderr and "/no/such/binary" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    _assert_nothing_left(ocirun, "cfail")


@pytest.mark.parametrize("mutate,expect", [
    (lambda b: open(os.path.join(b, "config.json"), "w").write("{bad json"), "config.json: invalid JSON"),
    (lambda b: _edit(b, lambda c: c.update(ociVersion="2.0.0")), "ociVersion"),
    (lambda b: _edit(b, lambda c: c["root"].update(path="nonexistent")), "root.path"),
    (lambda b: _edit(b, lambda c: c["process"].update(args=[])), "process.args"),
    (lambda b: _edit(b, lambda c: c["linux"].update(uidMappings=[{"containerID": 0, "hostID": 0, "size": "x"}])),
     "linux.uidMappings[0].size"),
])
def test_bad_config_is_a_one_line_error_naming_the_field_and_leaves_nothing(ocirun, mutate, expect):
    bundle = ocirun.bundle(base_config())
    mutate(bundle)
    proc = ocirun("create", "-b", bundle, "cbad")
    assert proc.returncode == 1
    assert expect in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    _assert_nothing_left(ocirun, "cbad")


def _edit(bundle, change):
    path = os.path.join(bundle, "config.json")
    config = json.load(open(path))
    change(config)
    json.dump(config, open(path, "w"))


def test_operations_on_a_missing_container_fail(ocirun):
    for op in (["start"], ["state"], ["kill"], ["delete"]):
        proc = ocirun(*op, "nosuch")
        assert proc.returncode == 1 and "container does not exist" in proc.stderr
    assert ocirun("delete", "--force", "nosuch").returncode == 0


def test_hooks_run_at_their_points_with_the_state_on_stdin(ocirun):
    config = base_config(["sh", "-c", "echo ran > /tmp/x"])
    log = os.path.join(ocirun.tmp, "hooks.log")

    def hook(name):
        # each hook appends its name, the status it was given and the command line of the state's pid
        script = (f'read -r s; st=$(echo "$s" | sed -n \'s/.*"status": *"\\([a-z]*\\)".*/\\1/p\'); '
                  f'pid=$(echo "$s" | sed -n \'s/.*"pid": *\\([0-9]*\\).*/\\1/p\'); '
                  f'cmd=$(tr "\\0" " " < /proc/$pid/cmdline 2>/dev/null | cut -c1-20); '
                  f'echo "{name} $st $cmd" >> {log}')
        return {"path": "/bin/sh", "args": ["sh", "-c", script]}
    config["hooks"] = {k: [hook(k)] for k in ("prestart", "createRuntime", "poststart", "poststop")}
    # createContainer/startContainer run in the container: write inside its /tmp? The host log is not
    # visible there, so they append to a file of a bind mount.
    os.makedirs(os.path.join(ocirun.tmp, "share"))
    config["mounts"].append({"destination": "/share", "type": "bind", "source": os.path.join(ocirun.tmp, "share"),
                             "options": ["rbind", "rw"]})
    # createContainer runs in the container's namespaces before pivot_root (host paths still
    # resolve); startContainer runs after pivot_root, so it writes through the bind mount.
    share = os.path.join(ocirun.tmp, "share")
    config["hooks"]["createContainer"] = [{"path": "/bin/sh", "args": [
        "sh", "-c", f"cat > {share}/createContainer.json; readlink /proc/self/ns/uts > {share}/uts"]}]
    config["hooks"]["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /share/startContainer.json"]}]
    bundle = ocirun.bundle(config)
    ocirun("create", "-b", bundle, "c1", check=True)
    lines = open(log).read().splitlines()
    # runtime.md: "created" from prestart through createContainer (created = after step 2)
    assert [line.split()[:2] for line in lines] == [["prestart", "created"], ["createRuntime", "created"]]
    created = json.load(open(os.path.join(share, "createContainer.json")))
    assert created["id"] == "c1" and created["pid"] == ocirun.state("c1")["pid"]  # the host's view
    assert created["status"] == "created"
    assert open(os.path.join(share, "uts")).read().strip() != os.readlink("/proc/self/ns/uts")
    ocirun("start", "c1", check=True)
    assert json.load(open(os.path.join(ocirun.tmp, "share", "startContainer.json")))["id"] == "c1"
    lines = open(log).read().splitlines()
    # poststart sees the user's program already exec'd (runc gets this wrong; the spec does not)
    assert lines[2].split()[0] == "poststart" and "python" not in lines[2]
    wait_status(ocirun, "c1", "stopped")
    ocirun("delete", "c1", check=True)
    assert open(log).read().splitlines()[-1].split()[:2] == ["poststop", "stopped"]


def test_poststart_sees_running_and_the_pid_even_when_the_program_already_exited(ocirun):
    # runtime-tools' hooks_stdin: the program is `true`, which has usually exited by the time
    # poststart runs; the hook must still get "running" and the container's pid (runtime.md).
    config = base_config(["true"])
    out = os.path.join(ocirun.tmp, "out")
    os.makedirs(out)
    config["hooks"] = {k: [{"path": "/bin/sh", "args": ["sh", "-c", f"sleep 0.2; cat > {out}/{k}"]}]
                       for k in ("prestart", "poststart", "poststop")}
    ocirun("create", "-b", ocirun.bundle(config), "c1", check=True)
    pid = ocirun.state("c1")["pid"]
    ocirun("start", "c1", check=True)
    wait_status(ocirun, "c1", "stopped")
    ocirun("delete", "c1", check=True)
    got = {k: json.load(open(os.path.join(out, k))) for k in ("prestart", "poststart", "poststop")}
    assert (got["prestart"]["status"], got["prestart"]["pid"]) == ("created", pid)
    assert (got["poststart"]["status"], got["poststart"]["pid"]) == ("running", pid)
    assert got["poststop"]["status"] == "stopped"


def test_create_container_hooks_run_in_the_rootfs(ocirun):
    # runc runs createContainer hooks with the container's rootfs (before pivot_root) as cwd
    config = base_config(["true"])
    os.makedirs(os.path.join(ocirun.tmp, "share"))
    share = os.path.join(ocirun.tmp, "share")
    config["mounts"].append({"destination": "/share", "type": "bind", "source": share, "options": ["rbind"]})
    config["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"pwd -P > {share}/cwd; ls > {share}/ls"]}]}
    bundle = ocirun.bundle(config)
    ocirun("create", "-b", bundle, "c1", check=True)
    assert open(os.path.join(share, "cwd")).read().strip() == os.path.realpath(os.path.join(bundle, "rootfs"))
    assert "share" in open(os.path.join(share, "ls")).read().split()    # the container's view: its mounts


def test_a_failing_create_runtime_hook_fails_create_leaves_nothing_and_runs_poststop(ocirun):
    config = base_config(["true"])
    marker = os.path.join(ocirun.tmp, "poststop-ran")
    config["hooks"] = {"createRuntime": [{"path": "/bin/false"}],
                       "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {marker}"]}]}
    proc = ocirun("create", "-b", ocirun.bundle(config), "chook")
    assert proc.returncode == 1 and "hooks.createRuntime[0] (/bin/false): exit status 1" in proc.stderr
    _assert_nothing_left(ocirun, "chook")
    assert json.load(open(marker))["status"] == "stopped"  # lifecycle step 13 after a failed step 4


def test_a_failing_poststart_hook_fails_start_stops_and_destroys_the_container(ocirun):
    config = base_config(["sleep", "100"])
    marker = os.path.join(ocirun.tmp, "poststop-ran")
    config["hooks"] = {"poststart": [{"path": "/bin/false"}],
                       "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {marker}"]}]}
    ocirun("create", "-b", ocirun.bundle(config), "cps", check=True)
    pid = ocirun.state("cps")["pid"]
    proc = ocirun("start", "cps")
    assert proc.returncode == 1 and "hooks.poststart[0]" in proc.stderr
    assert not os.path.exists(f"/proc/{pid}/cmdline") or open(f"/proc/{pid}/cmdline").read() == ""
    _assert_nothing_left(ocirun, "cps")
    assert os.path.exists(marker)


def test_list_shows_containers_in_table_and_json(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    ocirun("create", "-b", bundle, "c1", check=True)
    table = ocirun("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[:3] == ["c1", str(ocirun.state("c1")["pid"]), "created"]
    data = json.loads(ocirun("list", "--format", "json").stdout)
    assert [c["id"] for c in data] == ["c1"] and data[0]["status"] == "created"


def test_list_skips_entries_of_root_that_are_not_containers_with_a_warning(ocirun):
    # --root shared with another tool: a stray file, a symlink and a dot-entry are not containers
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    ocirun("create", "-b", bundle, "c1", check=True)
    with open(os.path.join(ocirun.root, "stray-file"), "w") as f:
        f.write("not a container")
    os.symlink("/tmp", os.path.join(ocirun.root, "a-link"))
    os.mkdir(os.path.join(ocirun.root, ".other-tool"))
    for args in (["list"], ["list", "-q"], ["list", "--format", "json"]):
        proc = ocirun(*args)
        assert proc.returncode == 0, proc.stderr
        assert "c1" in proc.stdout and "stray-file" not in proc.stdout and "a-link" not in proc.stdout
        warned = [line for line in proc.stderr.splitlines() if "level=warning" in line]
        assert any("stray-file: not a container" in line for line in warned), proc.stderr
        assert any("a-link: not a container" in line for line in warned), proc.stderr
        assert any(".other-tool: not a container" in line for line in warned), proc.stderr
    assert [c["id"] for c in json.loads(ocirun("list", "--format", "json").stdout)] == ["c1"]
