"""Finding what a container may leave behind: init processes and cgroup directories.

Shared by the tests that check a failed or deleted container leaves nothing (other test runs on the
host create containers at the same time, so the checks look only for what belongs to the caller).
"""
import glob
import os


def is_ocirun_init(cmdline: bytes) -> bool:
    """`python ... -m ocirun init` or `python ... -c "...from ocirun.init import main..." init`."""
    args = cmdline.rstrip(b"\0").split(b"\0")
    return len(args) > 1 and args[-1] == b"init" and any(b"ocirun" in a for a in args[:-1])


def _init_pids(mine: tuple = ()) -> set:
    """Pids of ocirun init processes; with `mine`, only those that belong to this test: their cwd
    (the caller's, until pivot_root) or an open fd (the exec fifo in the state dir) lies under one of
    the `mine` directories. Other test runs on the host create containers at the same time."""
    out = set()
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if not is_ocirun_init(open(f"/proc/{p}/cmdline", "rb").read()):
                continue
            if mine:
                links = [os.readlink(f"/proc/{p}/cwd")]
                for fd in os.listdir(f"/proc/{p}/fd"):
                    try:
                        links.append(os.readlink(f"/proc/{p}/fd/{fd}"))
                    except OSError:
                        pass
                if not any(link.startswith(m) for link in links for m in mine):
                    continue
            out.add(p)
        except OSError:
            pass
    return out


def _cgroup_dirs(cid) -> list:
    """Every place a cgroup of `cid` could be: <hierarchy>/<our cgroup or top>/ocirun/<cid>, or
    .../ocirun/<cid>-<tag of --root> (the default name for a non-default --root)."""
    found = []
    for line in open("/proc/self/cgroup").read().splitlines():
        _, ctrls, path = line.split(":", 2)
        for mount in glob.glob("/sys/fs/cgroup/*") + ["/sys/fs/cgroup"]:
            for base in (path, "/"):
                parent = os.path.normpath(f"{mount}/{base}/ocirun")
                for cand in [os.path.join(parent, cid)] + glob.glob(os.path.join(parent, f"{cid}-*")):
                    if os.path.isdir(cand):
                        found.append(cand)
    return sorted(set(found))
