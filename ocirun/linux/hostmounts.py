"""The mounts a container leaves in the runtime's own mount namespace, and their removal.

A container without a mount namespace of its own (no `mount` entry in linux.namespaces) makes its
mounts in the runtime's: a bind of the rootfs onto itself, and everything else under it
(rootfs.prepare_rootfs). Those outlive its processes, so `delete` detaches that bind, which takes
every mount under it along (MNT_DETACH), and nothing else:

    record = before(rootfs)          # at create, before the init mounts anything
    record = found(record)           # once the init has bound the rootfs ("hooks")
    release(record)                  # at delete, in the same mount namespace

The bind is known by its mount id. A create killed before the id was recorded leaves `bind` None:
the one mount at the rootfs that was not there before is then taken for it; with several (another
container on the same rootfs meanwhile) none is touched, with a warning.
"""
import os

from ocirun import log
from ocirun.linux import mountinfo


def _mounts_at(path: str) -> list[tuple[int, int]]:
    """(mount id, parent id) of every mount whose mount point is path, in mount table order."""
    return [(m.id, m.parent) for m in mountinfo.read() if m.mountpoint == path]


def _mnt_ns() -> int:
    return os.stat("/proc/self/ns/mnt").st_ino


def before(rootfs: str) -> dict:
    return {"ns": _mnt_ns(), "rootfs": rootfs, "before": [m for m, _ in _mounts_at(rootfs)], "bind": None}


def found(record: dict) -> dict:
    """The record with the id of the container's bind: the topmost new mount at the rootfs."""
    new = [m for m, _ in _mounts_at(record["rootfs"]) if m not in record["before"]]
    return dict(record, bind=new[-1]) if new else record


def release(record: dict, cid: str) -> None:
    """Detach the container's bind of its rootfs (and so every mount under it), if still there."""
    rootfs = record.get("rootfs")
    if not isinstance(rootfs, str):
        return
    if record.get("ns") != _mnt_ns():
        log.warning(f"container {cid}: its mounts under {rootfs} are in another mount namespace than "
                    f"this delete's: not unmounted")
        return
    at = _mounts_at(rootfs)
    bind = record.get("bind")
    if bind is None:
        new = [m for m, _ in at if m not in (record.get("before") or [])]
        if len(new) > 1:
            log.warning(f"container {cid}: several new mounts at {rootfs}, none known as its own: not unmounted")
        if len(new) != 1:
            return
        bind = new[0]
    if bind not in [m for m, _ in at]:
        return      # already gone
    if any(parent == bind for _, parent in at):
        log.warning(f"container {cid}: its rootfs bind at {rootfs} is covered by another mount: not unmounted")
        return
    from ocirun.linux import syscalls as sc
    try:
        sc.umount2(rootfs, sc.MNT_DETACH)
    except OSError as exc:
        log.warning(f"container {cid}: umount {rootfs}: {exc}")
