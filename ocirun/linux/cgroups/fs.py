"""cgroupfs file helpers shared by the v1 and v2 managers: every error names the file and the value."""
import errno
import os
import time

from ocirun.errors import CgroupError, ConfigError


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def read_or_none(path: str) -> str | None:
    try:
        return read(path)
    except OSError:
        return None


def write(path: str, value: str) -> None:
    """One write(2) per value: cgroup files take one value (one rule, one line) per write."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def write_checked(path: str, value: str, what: str = "") -> None:
    try:
        write(path, value)
    except OSError as exc:
        raise CgroupError(f'{what + ": " if what else ""}failed to write "{value}" to {path}: '
                          f'{os.strerror(exc.errno)}') from exc


def keyed(text: str | None) -> dict[str, int]:
    """'key value' lines (memory.stat, cpu.stat, memory.events...) -> dict of ints."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


class _Missing(Exception):
    pass


def _write_one(directory: str, w) -> None:
    """Write w.value to w.file, or the first of w.alts that exists; _Missing when none exists."""
    for file, value in ((w.file, w.value), *w.alts):
        try:
            write(os.path.join(directory, file), value)
            return
        except FileNotFoundError:
            continue
    raise _Missing()


def apply_writes(writes, dir_of, why_missing) -> None:
    """Apply resources.Write items in order.

    dir_of(controller) -> the cgroup directory for that controller, or None when not mounted.
    why_missing(controller, directory) -> text explaining a missing file (e.g. controller not enabled).
    Writes the kernel rejects with EINVAL/EBUSY are retried once after the others (ordering between
    related limits); a missing controller or file is a ConfigError naming the field.
    """
    retry = []
    for w in writes:
        directory = dir_of(w.controller)
        if directory is None:
            if w.optional:
                continue
            raise ConfigError(w.field, f"needs the {w.controller} cgroup controller, which is not mounted on this host")
        try:
            _write_one(directory, w)
        except _Missing:
            if w.optional:
                continue
            names = " or ".join([w.file] + [a[0] for a in w.alts])
            raise ConfigError(w.field, f"cannot be applied: {names} does not exist in {directory}"
                                       f"{why_missing(w.controller, directory)}") from None
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.EBUSY):
                retry.append((directory, w))
                continue
            raise _write_error(directory, w, exc) from exc
    for directory, w in retry:
        try:
            _write_one(directory, w)
        except OSError as exc:
            raise _write_error(directory, w, exc) from exc


def _write_error(directory: str, w, exc: OSError) -> CgroupError:
    return CgroupError(f'{w.field}: failed to write "{w.value}" to {os.path.join(directory, w.file)}: '
                       f'{os.strerror(exc.errno)}')


def mkdirs(path: str, attempts: int = 3) -> list[str]:
    """mkdir -p; returns the directories it created, top first. A parent removed under us (by an
    administrator, or an older ocirun that removed the shared default parent once empty) is made again."""
    created: list[str] = []
    todo = []
    p = path
    while not os.path.isdir(p):
        todo.append(p)
        p = os.path.dirname(p)
    for d in reversed(todo):
        try:
            os.mkdir(d, 0o755)
            created.append(d)
        except FileExistsError:
            pass
        except FileNotFoundError as exc:
            if attempts <= 1:
                raise CgroupError(f"mkdir {d}: {os.strerror(exc.errno)}") from exc
            return created + mkdirs(path, attempts - 1)
        except OSError as exc:
            raise CgroupError(f"mkdir {d}: {os.strerror(exc.errno)}") from exc
    return created


def procs(directory: str, recursive: bool = True) -> list[int]:
    """The pids in cgroup.procs of directory (and of every descendant)."""
    out: list[int] = []
    try:
        out += [int(x) for x in read(os.path.join(directory, "cgroup.procs")).split()]
    except FileNotFoundError:
        return out
    if recursive:
        try:
            children = [e.path for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            children = []
        for child in children:
            out += procs(child, True)
    return out


def rmdir_tree(directory: str, timeout: float = 2.0) -> None:
    """Remove a cgroup and its descendants, deepest first, retrying EBUSY while processes exit.

    Already gone is fine (idempotent)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            _rmdir_once(directory)
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise CgroupError(f"rmdir {exc.filename or directory}: {os.strerror(exc.errno)}") from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _rmdir_once(directory: str) -> None:
    # rmdir first: a container's cgroup rarely has children, and rmdir refuses (EBUSY) one that has,
    # so only then are they listed and removed (delete no longer lists each of ~12 v1 hierarchies)
    try:
        os.rmdir(directory)
        return
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
            exc.filename = exc.filename or directory
            raise
    try:
        entries = [e.path for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    for child in entries:
        _rmdir_once(child)
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass
    except OSError as exc:
        exc.filename = exc.filename or directory
        raise
