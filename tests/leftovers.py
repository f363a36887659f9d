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


def _parent_cgroup_candidates() -> set:
    """Where the runtime's shared `ocirun` parent cgroup can be, in every hierarchy:
    <hierarchy>/ocirun and <hierarchy>/<this process's cgroup>/ocirun."""
    out = set()
    for line in open("/proc/self/cgroup").read().splitlines():
        path = line.split(":", 2)[2]
        for mount in glob.glob("/sys/fs/cgroup/*") + ["/sys/fs/cgroup"]:
            for base in (path, "/"):
                out.add(os.path.normpath(f"{mount}/{base}/ocirun"))
    return out


def _cgroup_dirs(cid) -> list:
    """Every place a cgroup of `cid` could be: <hierarchy>/<our cgroup or top>/ocirun/<cid>, or
    .../ocirun/<cid>-<tag of --root> (the default name for a non-default --root)."""
    found = []
    for parent in _parent_cgroup_candidates():
        for cand in [os.path.join(parent, cid)] + glob.glob(os.path.join(parent, f"{cid}-*")):
            if os.path.isdir(cand):
                found.append(cand)
    return sorted(set(found))


def ocirun_parent_cgroups() -> set:
    """The shared `ocirun` parent cgroups that exist now. The runtime keeps them once made (README:
    removing one races a concurrent create), so a test run removes those it made when it ends."""
    return {d for d in _parent_cgroup_candidates() if os.path.isdir(d)}


def remove_new_parent_cgroups(before: set) -> list:
    """rmdir the parent cgroups made since `before` was taken; one still holding a container's
    cgroup (EBUSY) stays. Returns what is left of them."""
    left = []
    for d in sorted(ocirun_parent_cgroups() - before):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError:
            left.append(d)
    return left


if __name__ == "__main__":
    # scripts/test.sh: `parents` prints the parent cgroups that exist, one a line (taken before the
    # lanes run); `remove-parents FILE` removes those made since FILE was written.
    import sys
    if sys.argv[1:2] == ["parents"]:
        print("\n".join(sorted(ocirun_parent_cgroups())))
    elif sys.argv[1:2] == ["remove-parents"] and len(sys.argv) == 3:
        with open(sys.argv[2]) as f:
            kept = remove_new_parent_cgroups(set(f.read().split()))
        if kept:
            print(f"cgroups still in use, not removed: {' '.join(kept)}", file=sys.stderr)
    else:
        sys.exit("usage: python -m tests.leftovers parents | remove-parents FILE")
