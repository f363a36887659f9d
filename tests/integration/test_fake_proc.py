"""A rootfs that ships a fake /proc (CVE-2025-52881 class): with no proc mount in the config, its
proc/sys/... and proc/self/oom_score_adj are ordinary files. linux.sysctl and process.oomScoreAdj
must reach the kernel (written through a handle proven to be procfs), never those files; where no
procfs handle can be had (exec into such a container) the write fails with a clear error."""
import json
import os
import subprocess

import pytest

from tests.conftest import base_config
from tests.rootfscopy import copy_tree

pytestmark = pytest.mark.root

FAKES = {"proc/sys/net/ipv4/ip_forward": "fake\n", "proc/sys/kernel/shmmax": "fake\n",
         "proc/self/oom_score_adj": "fake\n"}


@pytest.fixture
def fake_proc_rootfs(rootfs_dir, tmp_path):
    """A private copy of the busybox rootfs (the shared one is never written) with the fake files."""
    rootfs = str(tmp_path / "fakeproc" / "rootfs")
    copy_tree(rootfs_dir, rootfs)
    for rel, text in FAKES.items():
        os.makedirs(os.path.dirname(os.path.join(rootfs, rel)), exist_ok=True)
        with open(os.path.join(rootfs, rel), "w") as f:
            f.write(text)
    return rootfs


def no_proc_config(rootfs: str, args: list) -> dict:
    config = base_config(args)
    config["root"] = {"path": rootfs, "readonly": False}
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/proc"]
    config["linux"]["maskedPaths"] = []
    config["linux"]["readonlyPaths"] = []
    return config


def in_container_ns(pid: int, flag: str, path: str) -> str:
    """Read a /proc/sys file as seen from one of the container's namespaces (net: -n, ipc: -i)."""
    return subprocess.run(["nsenter", "-t", str(pid), flag, "cat", path], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_sysctl_and_oom_score_adj_reach_the_kernel_not_the_rootfs_files(ocirun, fake_proc_rootfs):
    host_fwd = open("/proc/sys/net/ipv4/ip_forward").read().strip()
    want_fwd = "0" if host_fwd == "1" else "1"
    config = no_proc_config(fake_proc_rootfs, ["sleep", "100"])
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": want_fwd, "kernel.shmmax": "123456789"}
    config["process"]["oomScoreAdj"] = 345
    ocirun("create", "-b", ocirun.bundle(config), "fp1", check=True)
    pid = ocirun.state("fp1")["pid"]
    for rel, text in FAKES.items():
        assert open(os.path.join(fake_proc_rootfs, rel)).read() == text, rel      # untouched
    assert open(f"/proc/{pid}/oom_score_adj").read().strip() == "345"
    assert in_container_ns(pid, "-n", "/proc/sys/net/ipv4/ip_forward") == want_fwd
    assert in_container_ns(pid, "-i", "/proc/sys/kernel/shmmax") == "123456789"
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == host_fwd        # the host's is not
    ocirun("delete", "--force", "fp1", check=True)


def test_exec_with_oom_score_adj_and_no_procfs_is_a_clear_error(ocirun, fake_proc_rootfs, tmp_path):
    config = no_proc_config(fake_proc_rootfs, ["sleep", "100"])
    ocirun("run", "-d", "-b", ocirun.bundle(config), "fp2", check=True)
    process = dict(config["process"], args=["true"], oomScoreAdj=123)
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    proc = ocirun("exec", "--process", str(path), "fp2")
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "process.oomScoreAdj" in proc.stderr and "not a procfs" in proc.stderr, proc.stderr
    assert open(os.path.join(fake_proc_rootfs, "proc/self/oom_score_adj")).read() == "fake\n"
    ocirun("delete", "--force", "fp2", check=True)
