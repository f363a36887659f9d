"""Hot paths stay lean: state, start, kill and delete never import jsonschema, pyroute2 or prctl, and
create never imports jsonschema (measured on a real container, so every lazy import on those paths
is taken)."""
import subprocess
import sys
import sysconfig
import tempfile

import pytest

from tests.conftest import REPO, base_config

pytestmark = pytest.mark.root

HEAVY = ("jsonschema", "referencing", "pyroute2", "prctl", "subprocess", "argparse", "dataclasses", "logging",
         "json", "contextlib", "enum", "re")  # json, contextlib, enum, re: ~6 ms of the ~15 ms a command costs


def imported_modules(ocirun, *args) -> set[str]:
    # as the launcher scripts/setup.sh installs runs it: python -ISB, no site
    purelib = sysconfig.get_path("purelib")
    code = f"import sys; sys.path.insert(0, {REPO!r}); sys.path.append({purelib!r}); from ocirun.cli import main; main()"
    cmd = [sys.executable, "-ISB", "-X", "importtime", "-c", code, "--root", ocirun.root, *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(cmd, stdout=out, stderr=err, text=True, timeout=60)
        err.seek(0)
        text = err.read()
    assert proc.returncode == 0, text[-2000:]
    return {line.split("|")[-1].strip() for line in text.splitlines() if line.startswith("import time:")}


def test_state_start_kill_delete_import_nothing_heavy(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    ocirun("create", "-b", bundle, "c1", check=True)
    seen = {}
    seen["state"] = imported_modules(ocirun, "state", "c1")
    seen["start"] = imported_modules(ocirun, "start", "c1")
    seen["kill"] = imported_modules(ocirun, "kill", "c1", "KILL")
    ocirun("state", "c1", check=True)
    import time
    for _ in range(200):
        if ocirun.state("c1")["status"] == "stopped":
            break
        time.sleep(0.01)
    seen["delete"] = imported_modules(ocirun, "delete", "c1")
    for command, modules in seen.items():
        assert "ocirun.cli" in modules          # the import list was read
        heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
        assert heavy == [], f"{command} imports {heavy}"
        # ctypes (~1-2 ms) is only for what os and the C modules lack: none of these needs it
        assert "ctypes" not in modules and "ocirun.linux.syscalls" not in modules, command
    for command in ("state", "start"):
        # the status asks the freezer through cgroups.is_frozen(record), not a rebuilt manager
        assert "ocirun.linux.cgroups" in seen[command], command    # (the container has a cgroup)
        managers = sorted(m for m in seen[command] if m.startswith("ocirun.linux.cgroups."))
        assert managers == [], f"{command} imports {managers}"
    # kill of a live container does not tell created, running and paused apart: it accepts each
    assert not {"ocirun.linux.cgroups", "ocirun.statuscheck"} & seen["kill"], sorted(seen["kill"])


# What create may not import: jsonschema is only the oracle of the generated validator's tests;
# json, re and enum cost ~6 ms of a create (config.json is parsed by the C scanner, names are
# checked without regular expressions).
CREATE_HEAVY = ("jsonschema", "referencing", "pyroute2", "prctl", "subprocess", "argparse", "dataclasses", "logging",
                "json", "re", "enum", "collections")     # collections: ~1 ms (cgroups use ocirun.record)


def test_create_imports_no_jsonschema_json_or_re(ocirun):
    # a config never seen before, as managers send: nothing may depend on having validated it earlier
    bundle = ocirun.bundle(dict(base_config(["true"]), hostname="a-config-of-its-own"))
    modules = imported_modules(ocirun, "create", "-b", bundle, "c2")
    heavy = sorted(m for m in modules if m.split(".")[0] in CREATE_HEAVY)
    assert heavy == [], f"create imports {heavy}"
    assert "ocirun.schema_check" in modules      # the config was checked against the schema
    # the init's privilege steps (and the resource extension they need) are not the runtime's: ~0.5 ms
    assert "ocirun.processplan" in modules and "ocirun.security" not in modules and "resource" not in modules
    assert ocirun.state("c2")["status"] == "created"
    ocirun("delete", "-f", "c2", check=True)


# exec: the command (in the foreground: it forwards signals and waits) and its helper, a fresh
# interpreter of its own, may not import these either (signal's Signals enum cost ~4 ms between
# the process's exec and our wait).
EXEC_HEAVY = HEAVY + ("signal", "socket", "selectors")


def test_exec_and_its_helper_import_nothing_heavy(ocirun):
    bundle = ocirun.bundle(base_config(["sleep", "100"]))
    ocirun("run", "-d", "-b", bundle, "c3", check=True)
    modules = imported_modules(ocirun, "exec", "c3", "true")
    assert "ocirun.execcmd" in modules and "ocirun.foreground" in modules
    heavy = sorted(m for m in modules if m.split(".")[0] in EXEC_HEAVY)
    assert heavy == [], f"exec imports {heavy}"
    # the helper imports everything it needs before it seals its imports (ocirun/exec_init.py)
    code = f"import sys; sys.path.insert(0, {REPO!r}); import ocirun.exec_init; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-ISB", "-c", code], capture_output=True, text=True, timeout=60, check=True)
    helper = out.stdout.split()
    assert "ocirun.exec_init" in helper
    heavy = sorted(m for m in helper if m.split(".")[0] in EXEC_HEAVY)
    assert heavy == [], f"the exec helper imports {heavy}"
    # exec checks the process settings in its parent (ocirun/processplan.py); the helper only
    # applies them, so it never loads the parsing
    assert "ocirun.processplan" in modules and "ocirun.processplan" not in helper
    ocirun("delete", "-f", "c3", check=True)


# the process settings' checks (ocirun/processplan.py), which exec's parent runs: nothing heavy and
# no ctypes through them (exec's parent loads ctypes for its own prctl, not for these); the init and
# the exec helper, which apply the plan, do not load them at all
PLAN_HEAVY = ("ctypes", "json", "re", "enum", "collections", "dataclasses", "typing", "resource")


def test_the_process_plan_imports_nothing_heavy_and_the_children_do_not_import_it():
    code = (f"import sys; sys.path.insert(0, {REPO!r}); before = set(sys.modules); import ocirun.processplan; "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-ISB", "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = out.stdout.split()
    assert "ocirun.processplan" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in PLAN_HEAVY)
    assert heavy == [], f"ocirun.processplan imports {heavy}"
    for child in ("ocirun.init", "ocirun.exec_init"):
        code = f"import sys; sys.path.insert(0, {REPO!r}); import {child}; print(' '.join(sys.modules))"
        out = subprocess.run([sys.executable, "-ISB", "-c", code], capture_output=True, text=True, timeout=60,
                             check=True)
        assert "ocirun.processplan" not in out.stdout.split(), child
