"""Property, on real `ocirun create` runs: a mutated config.json (tests/fuzzconfig.py applied to the
test suite's default config, itself `ocirun spec`'s) either creates a container, which is then
deleted, or fails with exactly one error line, no traceback, no "internal error", a non-zero exit;
either way nothing is left behind: no state dir, cgroup, mount or process. OCIRUN_FUZZ_CREATES=N
runs N creates (default 40, about 20 s; 400 passed when it was written)."""
import os
import time

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extras (scripts/setup.sh)")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.conftest import base_config  # noqa: E402
from tests.fuzzconfig import mutated_configs  # noqa: E402
from tests.leftovers import _cgroup_dirs, _init_pids  # noqa: E402
from tests.rootfscopy import copy_tree  # noqa: E402

pytestmark = pytest.mark.root

_SEQ = [0]


def my_mounts(ocirun):
    keys = (ocirun.tmp, ocirun.root, ocirun.rootfs)
    return sorted(line.split()[4] for line in open("/proc/self/mountinfo").read().splitlines()
                  if any(k in line for k in keys))


@pytest.fixture
def private_rootfs(rootfs_dir, tmp_path):
    """Mutated configs may drop the /dev mount or add mount destinations: the runtime then makes
    device nodes and directories in the rootfs itself (as runc does), so never in the shared one."""
    path = str(tmp_path / "fuzz-rootfs")
    copy_tree(rootfs_dir, path)
    return path


@settings(max_examples=int(os.environ.get("OCIRUN_FUZZ_CREATES", "40")), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(case=mutated_configs(base_config(["true"]), max_mutations=2))
def test_create_of_a_mutated_config_is_one_line_or_a_container_and_leaves_nothing(ocirun, private_rootfs, case):
    raw, what = case
    _SEQ[0] += 1
    cid = f"fz{os.getpid()}-{_SEQ[0]}"
    bundle = ocirun.bundle(base_config(), name=f"fuzz{_SEQ[0]}")
    os.unlink(os.path.join(bundle, "rootfs"))
    os.symlink(private_rootfs, os.path.join(bundle, "rootfs"))
    with open(os.path.join(bundle, "config.json"), "wb") as f:
        f.write(raw)
    mine = (ocirun.tmp, ocirun.root)
    mounts, inits = my_mounts(ocirun), _init_pids(mine)
    proc = ocirun("create", "-b", bundle, cid, timeout=30)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, (what, proc.stderr)
    if proc.returncode == 0:
        ocirun("delete", "--force", cid, check=True)
    else:
        # one error line (warnings about fields that are ignored may precede it), nothing else
        lines = proc.stderr.strip().splitlines()
        assert all(line.startswith("time=") for line in lines), (what, proc.stderr)
        assert len([line for line in lines if " level=error " in line]) == 1, (what, proc.stderr)
    assert not os.path.exists(os.path.join(ocirun.root, cid)), what
    assert _cgroup_dirs(cid) == [], what
    assert my_mounts(ocirun) == mounts, what
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and _init_pids(mine) - inits:
        time.sleep(0.02)
    assert _init_pids(mine) - inits == set(), what
