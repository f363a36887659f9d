"""Bind sources of a user-namespace container, cloned by the runtime and handed to the init.

In a user namespace the container's root is an ordinary host uid: it can not reach a source below a
directory only host root may search (0700, /root/...), and it may not make an idmapped mount (the
kernel wants a caller privileged over the source's filesystem, host root, and a detached tree). So,
as runc's parent opens the mount sources for its init, `create` (host root) forks a helper that
enters the container's new mount namespace, still the copy of the runtime's made by unshare, and
clones each bind source there with open_tree(OPEN_TREE_CLONE), idmapped when asked
(mounts.clone_source). The init attaches the trees with move_mount (mounts.bind_mount). A clone made
in that namespace keeps the locks its copy got: a read-only or nosuid host mount stays so.

Messages (ocirun/protocol.py): the init sends MOUNT_SOURCES (after child_pid); the helper answers on
the same socket with {"type": "mount_sources", "indexes": [...], "done": bool} packets, at most
protocol.MAX_FDS trees each, in the order of the indexes, or an error message.

Without a user namespace the init clones its bind sources itself, at each mount's turn (so that
mount ids, the order of /proc/self/mountinfo since Linux 6.8, follow the config's order), except a
bind asking to be shared (shared, rshared): it is cloned in the runtime's mount namespace (see
clone_in_runtime_ns), whose handle stage 1 opens before it unshares.
"""
import os
import _socket  # the C module: socket imports enum and selectors

from ocirun import protocol
from ocirun.errors import SyscallError
from ocirun.linux import mounts
from ocirun.linux import syscalls as sc


def bind_requests(plan_mounts: list) -> list:
    return [r for r in mounts.requests(plan_mounts) if r.options.bind]


def wanted(plan_mounts: list) -> bool:
    """Whether the plan has a bind mount (the init then asks for the trees)."""
    return bool(bind_requests(plan_mounts))


def wants_host_peer(req) -> bool:
    """A bind asking to be shared (shared, rshared): with a new mount namespace and no user namespace
    it is a peer of its source when that is a shared host mount, even if "/" is made rslave."""
    return req.options.bind and any(p & sc.MS_SHARED for p in req.options.propagation)


def host_peers_wanted(plan_mounts: list) -> bool:
    """Stage 1: whether some bind of the plan asks to be shared."""
    return any(wants_host_peer(req) for req in mounts.requests(plan_mounts))


def clone_in_runtime_ns(req, runtime_mntns: int) -> int:
    """In the init, at the mount's turn: req's source cloned in the runtime's mount namespace (the
    handle runtime_mntns) by a forked child that enters it and sends the tree back. The clone of a
    shared host mount is its peer, so mounts travel both ways; a clone made in the container's copy
    once "/" is rslave is a slave (runc's behaviour), and one made before "/" gets its propagation
    would get its mount id too early (mountinfo would list it before the mounts preceding it). The
    init itself never leaves the container's namespace."""
    from ocirun.errors import OciError
    mine, childs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        try:
            child = os.fork()
        except OSError as e:    # EAGAIN: the cgroup's pids.max
            raise SyscallError(e.errno, f"{req.where}: fork", "(to clone the source in the runtime's "
                               "mount namespace)") from None
        if child == 0:
            def clone() -> None:
                mine.close()
                sc.setns(runtime_mntns, sc.CLONE_NEWNS, label="the runtime's mount namespace")
                protocol.send(childs, {"type": "tree"}, [mounts.clone_source(req, None)])
            _run_forked_child(childs, clone)
        childs.close()
        try:
            msg, fds = protocol.recv(mine)
        finally:
            _, status = os.waitpid(child, 0)
    finally:
        mine.close()
        childs.close()
    if msg is not None and msg.get("type") == "tree" and len(fds) == 1 and status == 0:
        return fds[0]
    for fd in fds:
        os.close(fd)
    detail = (msg or {}).get("msg") or f"the helper that clones the source failed (wait status {status})"
    raise OciError(f"{req.where}: {detail}")


def clone_in_container(pid: int, plan_mounts: list) -> list[tuple[int, int]]:
    """(index, tree fd) of every bind source, cloned in the mount namespace of `pid` (the container's
    init). Call in a process of its own: it stays in that namespace."""
    mntns = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(mntns, sc.CLONE_NEWNS, label="the container's mount namespace")
    finally:
        os.close(mntns)
    trees = []
    for req in bind_requests(plan_mounts):
        try:
            trees.append((req.index, mounts.clone_source(req, f"/proc/{pid}/ns/user")))
        except SyscallError as e:
            raise SyscallError(e.errno, f"{req.where}: {e.op}", e.detail) from None
    return trees


def send_trees(sock, pid: int, plan_mounts: list) -> None:
    """In `create`, asked by the init: a forked helper clones the sources and sends them to the init
    on `sock` (or an error message); the helper's own failure to say anything becomes an error."""
    helper = os.fork()
    if helper == 0:
        def clone_and_send() -> None:
            trees = clone_in_container(pid, plan_mounts)
            step = protocol.MAX_FDS
            for i in range(0, max(len(trees), 1), step):
                batch = trees[i:i + step]
                protocol.send(sock, {"type": protocol.MOUNT_SOURCES, "indexes": [t[0] for t in batch],
                                     "done": i + step >= len(trees)}, [t[1] for t in batch])
        _run_forked_child(sock, clone_and_send)
    _, status = os.waitpid(helper, 0)
    if status != 0:
        protocol.send(sock, protocol.error("mounts: the helper that opens bind sources failed", protocol.MOUNT_SOURCES))


def _run_forked_child(sock, work) -> None:
    """The body of a forked helper: work() sends its answer on sock; a failure is sent as an error
    message instead. Exits 0 once something was said, 1 when not even the error could be sent."""
    code = 1
    try:
        work()
        code = 0
    except BaseException as exc:
        code = 0 if protocol.send_error(sock, exc) else 1
    finally:
        os._exit(code)


def receive_trees(sock) -> dict[int, int]:
    """In the init: {mount index: tree fd} from the helper's messages; an error message raises."""
    from ocirun.errors import OciError
    trees: dict[int, int] = {}
    while True:
        msg, fds = protocol.recv(sock)
        try:
            protocol.expect(msg, protocol.MOUNT_SOURCES, eof="parent went away while sending bind sources")
        except OciError:
            for fd in fds + list(trees.values()):
                os.close(fd)
            raise
        trees.update(zip(msg["indexes"], fds))
        if msg.get("done"):
            return trees
