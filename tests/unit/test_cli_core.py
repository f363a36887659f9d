"""Unit tests of the pure parts of the core: argument parsing, ids, state derivation, ns plan, logs."""
import json
import os
import subprocess
import sys

import pytest

from ocirun import log
from ocirun.cli import split_global
from ocirun.cliparse import UsageError, need_id, parse
from ocirun.errors import ConfigError, OciError
from ocirun.linux import namespaces as ns
from ocirun.linux import syscalls as sc
from ocirun.state import proc_start_time, validate_id

FLAGS = {"bundle": "str", "detach": "bool", "preserve-fds": "int", "env": "list"}
ALIASES = {"b": "bundle", "d": "detach", "e": "env"}


@pytest.mark.parametrize("argv", [
    ["--bundle", "/b", "c1"], ["--bundle=/b", "c1"], ["c1", "--bundle", "/b"], ["-b", "/b", "c1"],
    ["-bundle", "/b", "c1"], ["c1", "-b=/b"],
])
def test_flags_accepted_in_every_runc_style(argv):
    opts, pos = parse(argv, FLAGS, ALIASES)
    assert opts["bundle"] == "/b" and pos == ["c1"]


def test_bool_int_and_list_flags():
    opts, pos = parse(["-d", "--preserve-fds=3", "-e", "A=1", "--env", "B=2", "x"], FLAGS, ALIASES)
    assert opts == {"bundle": None, "detach": True, "preserve-fds": 3, "env": ["A=1", "B=2"]}
    assert parse(["--detach=false", "x"], FLAGS, ALIASES)[0]["detach"] is False


def test_unknown_flag_and_missing_value_are_usage_errors():
    with pytest.raises(UsageError, match="flag provided but not defined: -nope"):
        parse(["--nope", "x"], FLAGS)
    with pytest.raises(UsageError, match="needs an argument"):
        parse(["x", "--bundle"], FLAGS)
    with pytest.raises(UsageError, match="parse error"):
        parse(["--preserve-fds", "many"], FLAGS)


def test_stop_at_positional_keeps_the_commands_own_flags():
    opts, pos = parse(["-d", "c1", "ls", "-l", "--bundle", "x"], FLAGS, ALIASES, stop_at_positional=1)
    assert opts["detach"] and opts["bundle"] is None and pos == ["c1", "ls", "-l", "--bundle", "x"]


def test_need_id_wording():
    with pytest.raises(UsageError, match='"start" requires a minimum of 1 argument'):
        need_id([], "start")
    with pytest.raises(UsageError, match="maximum of 1"):
        need_id(["a", "b"], "start")


def test_global_flags_before_the_command():
    opts, rest = split_global(["--root", "/r", "--log=/l", "--debug", "state", "--x", "c1"])
    assert opts["root"] == "/r" and opts["log"] == "/l" and opts["debug"] and rest == ["state", "--x", "c1"]


# (validate.validate_id, a second validator with other messages, is gone: state.validate_id is the one)
@pytest.mark.parametrize("cid", ["a", "A-b_c.d+e", "0", "x" * 1024, "-x", "+x", "_x", "x..y"])
def test_valid_ids(cid):
    validate_id(cid)


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "../x", ".hidden", "a b", "é", "x" * 1025, "a:b", "a\n"])
def test_invalid_ids_refused(cid):
    with pytest.raises(OciError, match="invalid container ID format"):
        validate_id(cid)


def test_proc_start_time_of_live_and_dead_processes():
    assert proc_start_time(os.getpid()) > 0
    child = subprocess.Popen(["true"])
    child.wait()
    assert proc_start_time(child.pid) is None


def test_namespace_plan_orders_joins_and_collects_flags():
    plan = ns.plan([
        {"type": "mount", "path": "/proc/1/ns/mnt"}, {"type": "network", "path": "/proc/1/ns/net"},
        {"type": "user", "path": "/proc/1/ns/user"}, {"type": "pid"}, {"type": "uts"}])
    assert plan == {"join": [["user", "/proc/1/ns/user", 2], ["network", "/proc/1/ns/net", 1],
                             ["mount", "/proc/1/ns/mnt", 0]],
                    "new_user": False, "unshare": sc.CLONE_NEWPID | sc.CLONE_NEWUTS, "user": True, "uts": True}
    assert ns.plan([{"type": "user"}, {"type": "time"}]) == {
        "join": [], "new_user": True, "unshare": sc.CLONE_NEWTIME, "user": True, "uts": False}
    assert ns.plan([{"type": "uts", "path": "/proc/1/ns/uts"}])["uts"]
    assert not ns.plan([{"type": "pid"}])["user"]


def test_namespace_plan_refuses_unknown_type_with_its_path():
    with pytest.raises(ConfigError, match=r"linux.namespaces\[1\].type: unknown namespace type 'bogus'"):
        ns.plan([{"type": "pid"}, {"type": "bogus"}])


def test_idmap_text():
    assert ns.idmap_text([{"containerID": 0, "hostID": 1000, "size": 1},
                          {"containerID": 1, "hostID": 100000, "size": 65536}]) == "0 1000 1\n1 100000 65536\n"


def test_log_formats(tmp_path):
    log._json = True
    line = json.loads(log.format_line("error", 'bad "x"', ts="T"))
    assert line == {"level": "error", "msg": 'bad "x"', "time": "T"}
    log._json = False
    assert log.format_line("error", 'bad "x"', ts="T") == 'time="T" level=error msg="bad \\"x\\""\n'


@pytest.mark.parametrize("char", ["\n", "\r", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029",
                                  "\t", "\x00"])
def test_a_log_line_is_one_line_whatever_the_message_quotes(char):
    """str.splitlines (as clients and tests split stderr) breaks at more than \\n: a mount's data
    holding a form feed made a create's error two lines (the config fuzzer found it)."""
    line = log.format_line("error", f"mount data={char}x: invalid argument", ts="T")
    assert line.endswith("\n") and len(line.splitlines()) == 1
    assert line[:-1].isprintable()


def test_cli_exit_codes_and_log_file(tmp_path):
    logf = tmp_path / "log.json"
    proc = subprocess.run([sys.executable, "-m", "ocirun", "--root", str(tmp_path), "--log", str(logf),
                           "--log-format", "json", "state", "nosuch"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "container does not exist"
    last = json.loads(logf.read_text().splitlines()[-1])
    assert last["level"] == "error" and last["msg"] == "container does not exist"
    proc = subprocess.run([sys.executable, "-m", "ocirun", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("ocirun version ")


def test_errno_texts_are_printed_as_go_does():
    from ocirun.errors import go_style
    assert go_style("open /x: No such file or directory") == "open /x: no such file or directory"
    assert go_style("exec: Permission denied; mount: Operation not permitted") == \
        "exec: permission denied; mount: operation not permitted"
    assert go_style("process.cwd: Nothing here") == "process.cwd: Nothing here"


def test_cli_prints_errno_text_lowercase(tmp_path):
    proc = subprocess.run([sys.executable, "-I", "-m", "ocirun", "--root", str(tmp_path), "create", "-b",
                           str(tmp_path / "nope"), "c1"], capture_output=True, text=True)
    assert proc.returncode == 1 and "no such file or directory" in proc.stderr


def test_fastjson_matches_the_json_package():
    import json
    from ocirun import fastjson
    samples = [{"a": 1, "b": [1, 2, {"c": 'é"x\n'}], "d": None, "e": True, "f": 1.5, "g": {}, "h": []},
               [], {}, "x", 3, {"ociVersion": "1.3.0", "id": "c", "pid": 0, "annotations": {"k": "v"}}]
    for obj in samples:
        assert fastjson.dumps(obj) == json.dumps(obj)
        assert fastjson.dumps_indented(obj) == json.dumps(obj, indent=2)
        assert fastjson.loads(json.dumps(obj, indent=2).encode()) == obj
    for bad in ("{", '{"a": 1} x', ""):
        with pytest.raises(ValueError):
            fastjson.loads(bad)


# --- --help / -h on every command ----------------------------------------------------------------

HELP_COMMANDS = ["create", "start", "run", "state", "kill", "delete", "list", "exec", "pause", "resume",
                 "update", "events", "ps", "spec", "features"]


def _help_flags(text: str) -> set[str]:
    """The long flag names in the OPTIONS section of a help text."""
    options = text.split("OPTIONS:", 1)[1] if "OPTIONS:" in text else ""
    return {word.rstrip(",") for line in options.splitlines() for word in line.split()[:1]
            if word.startswith("--")}


@pytest.mark.parametrize("command", HELP_COMMANDS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_answers_help_with_its_usage_and_runcs_flags(tmp_path, command, flag):
    proc = subprocess.run([sys.executable, "-I", "-m", "ocirun", "--root", str(tmp_path), command, flag],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert f"ocirun {command} " in proc.stdout and "USAGE:" in proc.stdout
    ours = _help_flags(proc.stdout)
    assert "--help" in ours
    # every flag runc 1.1.5 lists for the command is listed (and taken) by ours
    runc = subprocess.run(["runc", command, "--help"], capture_output=True, text=True)
    if runc.returncode == 0:
        assert _help_flags(runc.stdout) - {"--help"} <= ours


def test_help_lists_only_flags_the_parser_takes():
    from ocirun.cmdhelp import render
    from ocirun.execcmd import ALIASES, FLAGS
    text = render("exec", FLAGS, ALIASES)
    assert _help_flags(text) == {f"--{name}" for name in FLAGS} | {"--help"}
    assert "--env value, -e value" in text and "--tty, -t " in text
    with pytest.raises(OciError):       # a command's own argument after the id is not ours
        parse(["--bogus"], FLAGS, ALIASES)


def test_help_command_and_help_after_the_container_command(tmp_path):
    proc = subprocess.run([sys.executable, "-I", "-m", "ocirun", "help", "kill"], capture_output=True, text=True)
    assert proc.returncode == 0 and "ocirun kill [command options]" in proc.stdout
    proc = subprocess.run([sys.executable, "-I", "-m", "ocirun", "-h"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--help, -h" in proc.stdout
    # `exec ID cmd --help`: --help belongs to cmd, not to exec
    opts, pos = parse(["c1", "sh", "--help"], {"tty": "bool"}, stop_at_positional=1)
    assert pos == ["c1", "sh", "--help"]
