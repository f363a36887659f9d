"""Hooks run as real processes: state on stdin, args, env, timeout, failure text."""
import json
import os

import pytest

from ocirun.errors import HookError
from ocirun.hooks import run_hooks

STATE = {"ociVersion": "1.3.0", "id": "c1", "status": "creating", "pid": 1, "bundle": "/b"}


def test_hook_gets_state_on_stdin_args_and_env(tmp_path):
    out = tmp_path / "out"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f'cat > {out}; echo "$0 $FOO" >> {out}.args', "argzero"],
            "env": ["FOO=bar"]}
    run_hooks("createRuntime", [hook], STATE)
    assert json.loads(out.read_text()) == STATE
    assert (tmp_path / "out.args").read_text() == "argzero bar\n"


def test_hook_env_empty_list_means_empty_environment(tmp_path):
    out = tmp_path / "env"
    run_hooks("prestart", [{"path": "/bin/sh", "args": ["sh", "-c", f"env > {out}"], "env": []}], STATE)
    names = {line.split("=")[0] for line in out.read_text().splitlines()}
    assert names <= {"PWD", "SHLVL", "_"}  # only what sh itself sets


def test_failing_hook_names_kind_index_and_output():
    hooks = [{"path": "/bin/true"}, {"path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 3"]}]
    with pytest.raises(HookError, match=r"hooks.createRuntime\[1\] \(/bin/sh\): exit status 3: boom"):
        run_hooks("createRuntime", hooks, STATE)


def test_hook_timeout_kills_it():
    with pytest.raises(HookError, match="timed out after 1s"):
        run_hooks("prestart", [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}], STATE)


def test_missing_hook_binary_fails():
    with pytest.raises(HookError, match="exit status 127: exec /nonexistent"):
        run_hooks("createRuntime", [{"path": "/nonexistent"}], STATE)


def test_poststop_failures_only_warn_and_the_rest_still_run(tmp_path):
    warnings = []
    marker = tmp_path / "second"
    run_hooks("poststop", [{"path": "/bin/false"}, {"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}],
              STATE, warn=warnings.append)
    assert len(warnings) == 1 and "hooks.poststop[0]" in warnings[0]
    assert marker.exists()


def test_poststart_failures_are_errors_in_spec_1_3():
    with pytest.raises(HookError, match=r"hooks.poststart\[0\]"):
        run_hooks("poststart", [{"path": "/bin/false"}], STATE, warn=lambda m: None)
