"""linux.netDevices: moving host interfaces into the container's network namespace.

move_net_devices() runs in the runtime and imports pyroute2 lazily (tens of ms). Loopback up, done
by the container's init, is linux/loopback.py (fcntl.ioctl on a socket, no pyroute2).
"""
import errno
import os
from contextlib import contextmanager

from ocirun.errors import ConfigError, SyscallError
from ocirun.linux import syscalls
from ocirun.linux.loopback import IFNAMSIZ
from ocirun.spec import json_path

IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0


# --- linux.netDevices -----------------------------------------------------------------------------

def _valid_ifname(name) -> bool:
    """The kernel's dev_valid_name(): 1..15 bytes, not `.`/`..`, no `/`, `:` or whitespace."""
    if not isinstance(name, str) or not name or len(name.encode()) >= IFNAMSIZ:
        return False
    if name in (".", ".."):
        return False
    return not any(c in "/:" or c.isspace() for c in name)


def validate_net_devices(devices) -> None:
    """Check linux.netDevices names: host names and new names valid, no two devices given one name."""
    if not isinstance(devices, dict):
        raise ConfigError("linux.netDevices", "must be an object keyed by host interface name")
    targets: dict = {}
    for host_name, entry in devices.items():
        path = json_path(["linux", "netDevices", host_name])
        if not _valid_ifname(host_name):
            raise ConfigError(path, "invalid network device name")
        if not isinstance(entry, dict):
            raise ConfigError(path, "must be an object")
        new_name = entry.get("name")
        if new_name is None:
            new_name = host_name
        elif not _valid_ifname(new_name):
            raise ConfigError(path + ".name", f"invalid network device name {new_name!r}")
        # A `%d` template is numbered by the kernel, so only fixed names can collide here.
        if "%d" not in new_name:
            if new_name in targets:
                raise ConfigError(path + ".name",
                                  f"{new_name!r} is also the name of netDevices[{targets[new_name]!r}]")
            targets[new_name] = host_name


@contextmanager
def _in_netns(target_fd: int, home_fd: int):
    """Run the block with this thread in the netns `target_fd`, and always come back to `home_fd`."""
    syscalls.setns(target_fd, syscalls.CLONE_NEWNET, label="container network namespace")
    try:
        yield
    finally:
        syscalls.setns(home_fd, syscalls.CLONE_NEWNET, label="runtime network namespace")


def _kept_addresses(ipr, index: int) -> list:
    """The addresses the spec says survive the move: permanent (not dynamic) and of global scope."""
    kept = []
    for msg in ipr.get_addr(index=index):
        flags = msg.get_attr("IFA_FLAGS")
        if flags is None:
            flags = msg["flags"]
        if not flags & IFA_F_PERMANENT or msg["scope"] != RT_SCOPE_UNIVERSE:
            continue
        addr = {"address": msg.get_attr("IFA_ADDRESS"), "prefixlen": msg["prefixlen"]}
        local = msg.get_attr("IFA_LOCAL")
        if local is not None:           # IPv4: IFA_LOCAL is the address, IFA_ADDRESS the peer
            addr["local"] = local
        broadcast = msg.get_attr("IFA_BROADCAST")
        if broadcast is not None:
            addr["broadcast"] = broadcast
        kept.append(addr)
    return kept


def _link_indexes(ipr) -> dict:
    return {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in ipr.get_links()}


def move_net_devices(devices: dict, netns_pid: int) -> None:
    """linux.netDevices: move each host interface into the netns of `netns_pid`, renamed, up, addresses kept.

    The runtime must be in the host (runtime) network namespace. Interfaces are never moved back: the
    kernel returns physical devices to the initial netns when the container's netns dies (spec).
    """
    if not devices:
        return
    validate_net_devices(devices)
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    home_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target_fd = os.open(f"/proc/{netns_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        os.close(home_fd)
        raise SyscallError(e.errno, "open", f"/proc/{netns_pid}/ns/net") from None
    host = IPRoute()
    inside = None
    try:
        # A netlink socket belongs to the netns it was created in: make the first request from inside.
        with _in_netns(target_fd, home_fd):
            inside = IPRoute()
            present = _link_indexes(inside)
        for host_name, entry in devices.items():
            path = json_path(["linux", "netDevices", host_name])
            new_name = entry.get("name") or host_name
            found = host.link_lookup(ifname=host_name)
            if not found:
                raise ConfigError(path, f"no network device {host_name} in the runtime network namespace")
            if "%d" not in new_name and new_name in present.values():
                raise ConfigError(path, f"a network device {new_name} already exists in the container")
            index = found[0]
            addresses = _kept_addresses(host, index)
            try:
                # Move and rename in one request, so the host name cannot clash inside the container.
                host.link("set", index=index, net_ns_fd=target_fd, ifname=new_name)
            except NetlinkError as e:
                raise SyscallError(e.code, "move network device", f"{host_name} -> {new_name}") from None
            now = _link_indexes(inside)
            moved = [i for i in now if i not in present]
            if len(moved) != 1:
                raise SyscallError(errno.ENODEV, "move network device", f"{host_name}: not found in the container")
            present = now
            try:
                inside.link("set", index=moved[0], state="up")
                for addr in addresses:
                    inside.addr("add", index=moved[0], **addr)
            except NetlinkError as e:
                raise SyscallError(e.code, "configure network device", now[moved[0]]) from None
    finally:
        host.close()
        if inside is not None:
            inside.close()
        os.close(target_fd)
        os.close(home_fd)
