"""ocirun.linux.network against the real kernel: lo up in a new netns, linux.netDevices moves.

Each test forks a child that unshares CLONE_NEWNET (the "container" netns) and obeys one-byte commands
over a pipe; interfaces are made with iproute2 (dummy, or a veth pair where the dummy driver is missing).
Everything is removed in finally blocks: the child is killed and reaped, the interfaces deleted.
"""
import os
import re
import shutil
import signal
import subprocess

import pytest

from ocirun.errors import ConfigError
from ocirun.linux import syscalls
from ocirun.linux.loopback import loopback_up
from ocirun.linux.network import move_net_devices

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not shutil.which("ip") or not shutil.which("nsenter"), reason="needs iproute2 and nsenter"),
]


class NetnsChild:
    """A forked process in a new network namespace; `lo_up()` makes it call loopback_up()."""

    def __init__(self):
        self.pid = None
        self._from_child, self._to_child = None, None

    def start(self):
        r_up, w_up = os.pipe()
        r_down, w_down = os.pipe()
        pid = os.fork()
        if pid == 0:   # child: never return into pytest
            status = 0
            try:
                os.close(r_up)
                os.close(w_down)
                syscalls.unshare(syscalls.CLONE_NEWNET)
                os.write(w_up, b"n")
                while os.read(r_down, 1) == b"l":
                    loopback_up()
                    os.write(w_up, b"k")
            except BaseException as e:   # report, the parent asserts on it
                os.write(w_up, b"E" + str(e).encode()[:200])
                status = 1
            os._exit(status)
        self.pid = pid
        os.close(w_up)
        os.close(r_down)
        self._from_child, self._to_child = r_up, w_down
        assert os.read(self._from_child, 256) == b"n"

    def lo_up(self):
        os.write(self._to_child, b"l")
        reply = os.read(self._from_child, 256)
        assert reply == b"k", reply

    def ip(self, *args) -> str:
        return subprocess.run(["nsenter", f"--net=/proc/{self.pid}/ns/net", "ip", *args],
                              check=True, capture_output=True, text=True).stdout

    def stop(self):
        for fd in (self._to_child, self._from_child):
            if fd is not None:
                os.close(fd)
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)


@pytest.fixture
def child():
    proc = NetnsChild()
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


def host_ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@pytest.fixture
def host_iface():
    """A fresh host interface (dummy, else one end of a veth pair) with permanent global IPv4/IPv6
    addresses, a link-scope and a dynamic one; yields its name. Deleted afterwards wherever it ended up."""
    base = f"oc{os.getpid() % 100000}"
    name, peer = base + "a", base + "b"
    made = []
    try:
        if host_ip("link", "add", name, "type", "dummy", check=False).returncode == 0:
            made = [name]
        else:
            host_ip("link", "add", name, "type", "veth", "peer", "name", peer)
            made = [name, peer]
        host_ip("addr", "add", "10.213.7.1/24", "dev", name)
        host_ip("-6", "addr", "add", "fd00:213::1/64", "dev", name, "nodad")
        host_ip("addr", "add", "10.213.8.1/24", "dev", name, "scope", "link")               # not global
        host_ip("addr", "add", "10.213.9.1/24", "dev", name, "valid_lft", "300", "preferred_lft", "300")  # dynamic
        host_ip("link", "set", name, "up")
        yield name
    finally:
        # Deleting either veth end deletes both; a moved end dies with the child's netns.
        for n in made:
            host_ip("link", "del", n, check=False)


def link_flags(ip_output: str, name: str) -> set:
    match = re.search(rf"^\d+: {re.escape(name)}(@\S+)?: <([^>]*)>", ip_output, re.M)
    assert match, f"{name} not in:\n{ip_output}"
    return set(match.group(2).split(","))


def test_child_has_its_own_netns(child):
    assert os.stat(f"/proc/{child.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino


def test_loopback_up_in_new_netns(child):
    assert "UP" not in link_flags(child.ip("link", "show", "lo"), "lo")     # a new netns starts with lo down
    child.lo_up()
    assert "UP" in link_flags(child.ip("link", "show", "lo"), "lo")
    assert "inet 127.0.0.1/8" in child.ip("addr", "show", "lo")
    child.lo_up()                                                          # already up: no change, no error
    assert "UP" in link_flags(child.ip("link", "show", "lo"), "lo")


def test_loopback_up_leaves_host_lo_alone(child):
    before = link_flags(host_ip("link", "show", "lo").stdout, "lo")
    child.lo_up()
    assert link_flags(host_ip("link", "show", "lo").stdout, "lo") == before


def test_move_net_device_renamed_up_with_addresses(child, host_iface):
    move_net_devices({host_iface: {"name": "ceth0"}}, child.pid)
    assert host_ip("link", "show", host_iface, check=False).returncode != 0     # gone from the host
    inside = child.ip("addr", "show", "ceth0")
    assert "UP" in link_flags(inside, "ceth0")
    assert "inet 10.213.7.1/24" in inside
    assert "inet6 fd00:213::1/64" in inside
    assert "10.213.8.1" not in inside and "10.213.9.1" not in inside      # only permanent, global scope
    assert host_iface not in child.ip("link", "show")


def test_move_net_device_keeps_name_without_rename(child, host_iface):
    move_net_devices({host_iface: {}}, child.pid)
    assert "inet 10.213.7.1/24" in child.ip("addr", "show", host_iface)


def test_move_net_device_name_template(child, host_iface):
    move_net_devices({host_iface: {"name": "cnet%d"}}, child.pid)
    assert "inet 10.213.7.1/24" in child.ip("addr", "show", "cnet0")


def test_move_net_device_missing_on_host(child):
    with pytest.raises(ConfigError) as exc:
        move_net_devices({"ocnothere0": {"name": "x"}}, child.pid)
    assert str(exc.value) == "linux.netDevices.ocnothere0: no network device ocnothere0 in the runtime network namespace"


def test_move_net_device_name_taken_in_container(child, host_iface):
    with pytest.raises(ConfigError) as exc:
        move_net_devices({host_iface: {"name": "lo"}}, child.pid)
    assert str(exc.value) == f"linux.netDevices.{host_iface}: a network device lo already exists in the container"
    assert host_ip("link", "show", host_iface).returncode == 0                 # nothing moved


def test_move_net_devices_validates_names_first(child, host_iface):
    with pytest.raises(ConfigError, match=r"^linux\.netDevices\.\S+\.name: invalid network device name 'a/b'$"):
        move_net_devices({host_iface: {"name": "a/b"}}, child.pid)
    assert host_ip("link", "show", host_iface).returncode == 0


def test_move_net_devices_returns_to_own_netns(child, host_iface):
    own = os.stat("/proc/self/ns/net").st_ino
    move_net_devices({host_iface: {"name": "ceth0"}}, child.pid)
    assert os.stat("/proc/self/ns/net").st_ino == own
    with pytest.raises(ConfigError):
        move_net_devices({"ocnothere0": {}}, child.pid)
    assert os.stat("/proc/self/ns/net").st_ino == own
