"""Extract one layer tar into a directory, safely, in the form overlayfs reads as a lower layer.

A layer is hostile input. Every entry name is cleaned lexically as if the layer dir were `/` (so
`../../etc/passwd` and `/etc/passwd` both land in `<layer>/etc/passwd`, as umoci does); the parent
directory is then found with openat2(RESOLVE_IN_ROOT) from the layer dir's fd (ocirun/linux/safepath.py),
so a symlink the layer itself planted (`x -> /`, `y -> ../..`) is resolved inside the layer dir, never
on the host; the entry itself is created with *at() calls relative to that parent fd and opened
O_NOFOLLOW. Hardlink targets are resolved the same way. Nothing is written outside the layer dir.

Whiteouts (image-spec layer.md) become overlayfs's own format, so the union is made by the kernel:
`.wh.NAME` -> a 0/0 character device NAME; `.wh..wh..opq` -> the xattr trusted.overlay.opaque=y on
its directory. Whiteouts apply to lower layers only: an entry of this same layer is never removed by
one (a directory of this layer that also has a whiteout becomes opaque instead, hiding the lower
one). Overlay xattrs carried by the tar itself are dropped: they would let a layer forge whiteouts or
redirects. A 0/0 character device in the tar is refused for the same reason.

Ownership, modes (setuid/setgid/sticky included: unpacking requires root, as umoci does when run as
root), mtimes and xattrs are applied from the headers; directory mtimes last, since creating their
entries changes them.
"""
import errno
import os
import shutil
import stat
import tarfile

from ocirun import log
from ocirun.image.layout import ImageError
from ocirun.linux import safepath

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
# Never taken from a tar: they would be read by overlayfs as whiteouts, opaque dirs or redirects.
REFUSED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
COPY_CHUNK = 1 << 20


class LayerError(ImageError):
    """A layer entry we cannot or will not extract: one line naming the entry."""


def clean_name(name: str) -> str:
    """A member name as a path relative to the layer root: `./a//b/../c` -> `a/c`, `/x` and `../x` -> `x`,
    the root itself -> ''."""
    if "\0" in name:
        raise LayerError(f"layer entry {name!r}: NUL in the name")
    return safepath.clean(name).lstrip("/")


def classify(name: str) -> tuple[str, str]:
    """('entry', path), ('whiteout', path of what is deleted) or ('opaque', path of the directory)."""
    path = clean_name(name)
    parent, _, base = path.rpartition("/")
    if base == OPAQUE_MARKER:
        return "opaque", parent
    if base.startswith(WHITEOUT_PREFIX):
        target = base[len(WHITEOUT_PREFIX):]
        if target in ("", ".", "..") or target.startswith(WHITEOUT_PREFIX):
            raise LayerError(f"layer entry {name!r}: malformed whiteout")
        return "whiteout", f"{parent}/{target}" if parent else target
    return "entry", path


def _split(path: str) -> tuple[str, str]:
    parent, _, base = path.rpartition("/")
    return parent, base


class Unpacker:
    """Extracts members of one layer into the directory whose fd is `root_fd` (a fresh, empty dir)."""

    def __init__(self, root_fd: int):
        self.root_fd = root_fd
        self.seen: set[str] = set()          # paths this layer created (entries, implicit parents)
        self.whiteouts: set[str] = set()     # paths holding a whiteout device we made
        self.dir_times: list[tuple[str, int]] = []

    # -- helpers ----------------------------------------------------------------------------------

    def _parent_fd(self, path: str) -> int:
        parent, _ = _split(path)
        if self.whiteouts and parent:
            self._revive_whiteouts(parent)
        try:
            fd = safepath.mkdir_all_in_root(self.root_fd, "/" + parent)
        except OSError as exc:
            raise LayerError(f"layer entry {path!r}: parent directory: {os.strerror(exc.errno)}") from None
        self.seen.add(parent)
        return fd

    def _revive_whiteouts(self, parent: str) -> None:
        """`.wh.d` then `d/x` in one layer: d is a new directory of this layer, hiding the lower d
        (the whiteout device becomes an opaque directory)."""
        parts = parent.split("/")
        for i in range(1, len(parts) + 1):
            ancestor = "/".join(parts[:i])
            if ancestor in self.whiteouts:
                self.opaque(ancestor)

    def _lstat(self, pfd: int, name: str):
        try:
            return os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _clear(self, pfd: int, name: str, path: str, keep_dir: bool) -> bool:
        """Make room for a new entry at path; True if an existing directory is kept (dir over dir)."""
        st = self._lstat(pfd, name)
        if st is None:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)
        return False

    def _set_opaque(self, pfd: int, name: str, path: str) -> None:
        fd = os.open(name or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
        finally:
            os.close(fd)

    # -- entries ----------------------------------------------------------------------------------

    def add(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        kind, path = classify(member.name)
        if kind == "opaque":
            self.opaque(path)
        elif kind == "whiteout":
            self.whiteout(path)
        else:
            self.entry(path, member, tar)

    def opaque(self, path: str) -> None:
        if not path:
            fd = os.dup(self.root_fd)
            try:
                self._set_opaque(fd, "", path)
            finally:
                os.close(fd)
            return
        pfd = self._parent_fd(path)
        try:
            _, name = _split(path)
            st = self._lstat(pfd, name)
            if path in self.whiteouts:         # `.wh.d` then `d/.wh..wh..opq`: a new, empty d
                os.unlink(name, dir_fd=pfd)
                self.whiteouts.discard(path)
                st = None
            if st is None:
                os.mkdir(name, 0o755, dir_fd=pfd)
                self.seen.add(path)
            elif not stat.S_ISDIR(st.st_mode):
                raise LayerError(f"layer entry {path}/{OPAQUE_MARKER}: {path} is not a directory")
            self._set_opaque(pfd, name, path)
        finally:
            os.close(pfd)

    def whiteout(self, path: str) -> None:
        pfd = self._parent_fd(path)
        try:
            _, name = _split(path)
            st = self._lstat(pfd, name)
            if st is None:
                os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=pfd)
                self.whiteouts.add(path)
            elif stat.S_ISDIR(st.st_mode) and path not in self.whiteouts:
                # a directory of this layer stays; the lower one it replaces must not show through
                self._set_opaque(pfd, name, path)
            # a non-directory of this layer already hides whatever is below it
        finally:
            os.close(pfd)

    def entry(self, path: str, m: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        if not path:                       # the layer's root directory itself: metadata only
            if m.isdir():
                fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.root_fd)
                try:
                    self._apply(fd, m, path)
                finally:
                    os.close(fd)
                self.dir_times.append(("", _mtime_ns(m)))
            return
        pfd = self._parent_fd(path)
        try:
            _, name = _split(path)
            replaced_whiteout = path in self.whiteouts
            keep = self._clear(pfd, name, path, keep_dir=m.isdir() and not replaced_whiteout)
            self.whiteouts.discard(path)
            self.seen.add(path)
            try:
                self._create(pfd, name, path, m, tar, keep)
            except OSError as exc:
                raise LayerError(f"layer entry {path!r}: {os.strerror(exc.errno or errno.EIO)}") from None
            if m.isdir() and replaced_whiteout:
                self._set_opaque(pfd, name, path)
        finally:
            os.close(pfd)

    def _create(self, pfd: int, name: str, path: str, m: tarfile.TarInfo, tar: tarfile.TarFile, keep: bool) -> None:
        flags = os.O_NOFOLLOW | os.O_CLOEXEC
        if m.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | flags, 0o600, dir_fd=pfd)
            try:
                _copy(tar.extractfile(m), fd, m.size)
                self._apply(fd, m, path)
                os.utime(fd, ns=(_mtime_ns(m), _mtime_ns(m)))
            finally:
                os.close(fd)
        elif m.isdir():
            if not keep:
                os.mkdir(name, 0o700, dir_fd=pfd)
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | flags, dir_fd=pfd)
            try:
                self._apply(fd, m, path)
            finally:
                os.close(fd)
            self.dir_times.append((path, _mtime_ns(m)))
        elif m.issym():
            os.symlink(m.linkname, name, dir_fd=pfd)
            os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            os.utime(name, ns=(_mtime_ns(m), _mtime_ns(m)), dir_fd=pfd, follow_symlinks=False)
        elif m.islnk():
            self._hardlink(pfd, name, path, m)
        elif m.ischr() or m.isblk() or m.isfifo():
            if m.ischr() and m.devmajor == 0 and m.devminor == 0:
                raise LayerError(f"layer entry {path!r}: a 0/0 character device (overlayfs's whiteout) "
                                 "is not a layer entry; whiteouts are .wh. files")
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            dev = os.makedev(m.devmajor, m.devminor) if kind != stat.S_IFIFO else 0
            os.mknod(name, kind | 0o600, dev, dir_fd=pfd)
            # O_PATH: a device node is never opened for I/O here
            fd = os.open(name, safepath.O_PATH | flags, dir_fd=pfd)
            try:
                if stat.S_IFMT(os.fstat(fd).st_mode) != kind:
                    raise LayerError(f"layer entry {path!r}: changed while being created")
                os.chown(safepath.fd_path(fd), m.uid, m.gid)
                os.chmod(safepath.fd_path(fd), m.mode & 0o7777)
                os.utime(safepath.fd_path(fd), ns=(_mtime_ns(m), _mtime_ns(m)))
            finally:
                os.close(fd)
        else:
            raise LayerError(f"layer entry {path!r}: unsupported tar entry type {m.type!r}")

    def _hardlink(self, pfd: int, name: str, path: str, m: tarfile.TarInfo) -> None:
        target = clean_name(m.linkname)
        if not target or target in self.whiteouts or target not in self.seen:
            raise LayerError(f"layer entry {path!r}: hardlink to {m.linkname!r}, which is not a file of this layer")
        tparent, tname = _split(target)
        try:
            tfd = safepath.open_in_root(self.root_fd, "/" + tparent, safepath.O_PATH | os.O_DIRECTORY)
        except OSError as exc:
            raise LayerError(f"layer entry {path!r}: hardlink target {m.linkname!r}: {os.strerror(exc.errno)}") from None
        try:
            st = os.stat(tname, dir_fd=tfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise LayerError(f"layer entry {path!r}: hardlink to a directory ({m.linkname!r})")
            os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def _apply(self, fd: int, m: tarfile.TarInfo, path: str) -> None:
        """Owner, then mode (chown clears setuid), then xattrs, on an fd we opened O_NOFOLLOW."""
        os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode & 0o7777)
        for key, value in m.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            attr = key[len("SCHILY.xattr."):]
            if attr.startswith(REFUSED_XATTR_PREFIXES):
                log.warning(f"layer entry {path or '/'}: xattr {attr} dropped (overlayfs would act on it)")
                continue
            try:
                os.setxattr(fd, attr, value.encode("utf-8", "surrogateescape"))
            except OSError as exc:
                log.warning(f"layer entry {path or '/'}: xattr {attr} not set: {os.strerror(exc.errno)}")

    def finish(self) -> None:
        """Directory mtimes, deepest first (setting a child's would change its parent's)."""
        for path, ns in reversed(self.dir_times):
            try:
                fd = safepath.open_in_root(self.root_fd, "/" + path, os.O_RDONLY | os.O_DIRECTORY, no_symlinks=True)
            except OSError:
                continue           # replaced by a non-directory later in the tar
            try:
                os.utime(fd, ns=(ns, ns))
            finally:
                os.close(fd)


def _mtime_ns(m: tarfile.TarInfo) -> int:
    return int(m.mtime * 1_000_000_000)


def _copy(src, fd: int, size: int) -> None:
    left = size
    while left > 0:
        chunk = src.read(min(COPY_CHUNK, left))
        if not chunk:
            raise LayerError("layer tar is truncated")
        left -= len(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]


def unpack_stream(stream, root_fd: int) -> int:
    """Extract the tar read from `stream` (a file object, read sequentially) into root_fd's directory;
    returns the number of entries."""
    count = 0
    try:
        tar = tarfile.open(fileobj=stream, mode="r|", errorlevel=2)
    except tarfile.TarError as exc:
        raise LayerError(f"layer is not a tar archive: {exc}") from None
    unpacker = Unpacker(root_fd)
    # parents a tar does not list are made 0755 whatever the caller's umask (entries get their own mode)
    umask = os.umask(0o022)
    try:
        for member in tar:
            unpacker.add(member, tar)
            count += 1
        unpacker.finish()
    except tarfile.TarError as exc:
        raise LayerError(f"layer tar is malformed: {exc}") from None
    finally:
        os.umask(umask)
    return count
