"""Churn: a few hundred short containers, 4 at a time, leave the host as they found it.

CHURN_RUNS `run`s of /bin/true, 4 in parallel: three workers under one private --root, the fourth
under a second root using the same ids (the root's tag keeps their default cgroups apart). After a
short warm-up (which makes the shared default parent cgroup `ocirun/`, kept on purpose: README
"Decisions"), nothing may grow: mounts, cgroup directories, state directories, processes, and the
fds of this test process. About 30 s on 2 cores; CI runs it, OCIRUN_SKIP_CHURN=1 skips it locally.

Other test runs may share the host, so the cgroups, mounts and processes counted are those that can
only be this test's: named after its ids, or under its directories.
"""
import glob
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import OCIRUN, Runtime, base_config
from tests.leftovers import _init_pids

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.environ.get("OCIRUN_SKIP_CHURN") == "1", reason="OCIRUN_SKIP_CHURN=1")]

CHURN_RUNS = 240
WORKERS = 4


def _own_cgroup_dirs(prefix: str) -> set:
    """Every cgroup directory, in every hierarchy, whose name starts with prefix."""
    return {d for d in glob.glob(f"/sys/fs/cgroup/**/{prefix}*", recursive=True) if os.path.isdir(d)}


def _default_parents() -> set:
    """Where the default parent `ocirun/` lies for this process: under its own cgroup (v1), or the
    parent of it (v2), in every hierarchy."""
    from ocirun.linux.cgroups import new_manager
    mgr = new_manager(None, "x")
    dirs = mgr.dirs.values() if mgr.version == "v1" else [mgr.dir]
    return {os.path.dirname(d) for d in dirs}


def _children() -> set:
    me = str(os.getpid())
    out = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                stat = open(f"/proc/{p}/stat").read()
            except OSError:
                continue
            if stat[stat.rindex(")") + 2:].split()[1] == me:
                out.add(p)
    return out


def _snapshot(prefix, roots, mine, watched_paths):
    mounts = [line for line in open("/proc/self/mountinfo") if any(p in line for p in watched_paths)]
    return {
        "mounts": sorted(mounts),
        "cgroups": sorted(_own_cgroup_dirs(prefix)),
        "state dirs": sorted(n for r in roots if os.path.isdir(r) for n in os.listdir(r) if not n.startswith(".")),
        "inits": sorted(_init_pids(mine)),
        "children": sorted(_children()),
        "fds": len(os.listdir("/proc/self/fd")),
    }


def test_churn_leaves_nothing_behind(tmp_path, rootfs_dir):
    prefix = f"churn{os.getpid()}-"
    rt_a = Runtime(str(tmp_path / "root-a"), str(tmp_path), rootfs_dir)
    rt_b = Runtime(str(tmp_path / "root-b"), str(tmp_path), rootfs_dir)
    bundle = rt_a.bundle(base_config(["/bin/true"]))
    roots = (rt_a.root, rt_b.root)
    mine = (str(tmp_path),)
    watched = (str(tmp_path), rootfs_dir, os.path.realpath(rootfs_dir))
    failures = []

    def one(n):
        worker = n % WORKERS
        root = rt_b.root if worker == WORKERS - 1 else rt_a.root
        cid = f"{prefix}{n - worker if worker == WORKERS - 1 else n}"   # root b reuses root a's ids
        with tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(OCIRUN + ["--root", root, "run", "--bundle", bundle, cid], cwd=str(tmp_path),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=60).returncode
            if code != 0:
                err.seek(0)
                failures.append(f"{root} {cid}: rc={code} {err.read().strip()}")

    try:
        with ThreadPoolExecutor(WORKERS) as pool:        # warm-up: the shared parent, caches
            list(pool.map(one, range(-2 * WORKERS, 0)))
        before = _snapshot(prefix, roots, mine, watched)
        parents = _default_parents()
        assert all(os.path.isdir(p) for p in parents), parents    # kept, in every hierarchy
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(one, range(CHURN_RUNS)))
        after = _snapshot(prefix, roots, mine, watched)
        assert failures == []
        assert after == before
        assert before["cgroups"] == [] and before["state dirs"] == [] and before["inits"] == []
        assert all(os.path.isdir(p) for p in parents), parents
    finally:
        for rt in (rt_a, rt_b):
            rt.cleanup()


def _make_cgroup(path):
    os.mkdir(path)
    for name in ("cpuset.cpus", "cpuset.mems"):      # a new v1 cpuset cgroup refuses tasks until filled
        if os.path.exists(os.path.join(path, name)):
            with open(os.path.join(os.path.dirname(path), name)) as f:
                value = f.read().strip()
            with open(os.path.join(path, name), "w") as f:
                f.write(value or "\n")


def test_the_default_parent_cgroup_is_kept(ocirun):
    """The runtime runs in a cgroup of this test's own, so that no other container shares its
    default parent: after the last container is deleted, `ocirun/` stays, in every hierarchy
    (removing it raced with concurrent creates, see README "Decisions")."""
    from ocirun.linux.cgroups import new_manager
    mgr = new_manager(None, "x")
    # the default is <own>/ocirun/<id> (v2: <parent of own>/ocirun/<id>): the runtime is moved into
    # <top>/leaf, next to its own cgroup, which puts the parent at <top>/leaf/ocirun (v2: <top>/ocirun)
    own = sorted({os.path.dirname(os.path.dirname(d)) for d in (mgr.dirs.values() if mgr.version == "v1" else [mgr.dir])})
    tops = [os.path.join(d, f"keep-parent-{os.getpid()}") for d in own]
    made = []
    try:
        for top in tops:
            _make_cgroup(top)
            made.append(top)
            _make_cgroup(os.path.join(top, "leaf"))
            made.append(os.path.join(top, "leaf"))
        procs = " ".join(os.path.join(top, "leaf", "cgroup.procs") for top in tops)
        script = f'for f in {procs}; do echo $$ > "$f" || exit 99; done; exec "$@"'
        bundle = ocirun.bundle(base_config(["/bin/true"]))
        proc = subprocess.run(["sh", "-c", script, "sh"] + OCIRUN + ["--root", ocirun.root, "run", "--bundle", bundle, "k1"],
                              cwd=ocirun.tmp, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        parents = [p for top in tops for p in glob.glob(os.path.join(top, "**", "ocirun"), recursive=True)]
        assert len(parents) == len(tops), (tops, parents)
        # kept, and empty: the container's own cgroup is gone
        assert [e.path for p in parents for e in os.scandir(p) if e.is_dir()] == []
    finally:
        for top in tops:
            for d in sorted(glob.glob(os.path.join(top, "**", ""), recursive=True), key=len, reverse=True):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
