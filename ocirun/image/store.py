"""The content-addressed layer store: each layer unpacked once, shared by every bundle that uses it.

    <store>/sha256/<hex>/      one unpacked layer, named by its diff_id (an overlayfs lower layer)
    <store>/tmp/               layers being unpacked (same filesystem, so the final rename is atomic)
    <store>/refs/<key>.json    one per bundle: its path and the diff_ids its rootfs mounts
    <store>/empty/             the lower layer of an image without layers (overlay needs one)
    <store>/lock               flock: `bundle` holds it shared, `--prune` exclusive

A layer becomes visible only by renaming its finished, synced temp dir to sha256/<hex>, after both
digests matched: the blob's (its compressed bytes, before anything is unpacked) and the diff_id (the
uncompressed tar, hashed while it is extracted). A crash leaves at most a temp dir, which --prune
removes and nothing ever mounts. The store is mode 0700: layers hold device nodes and setuid files
that no unprivileged host user should reach.

zstd layers are decompressed by Debian's `zstd` command through a pipe rather than a PyPI module:
no native Python dependency to build into every virtualenv, the decompression runs on another core
while Python extracts, and the tool is a standard package (scripts/setup.sh installs it).
"""
import errno
import fcntl
import hashlib
import os

from ocirun import fastjson
from ocirun.image.layout import ImageError, check_digest
from ocirun.linux import syscalls

DEFAULT_STORE = "/var/lib/ocirun/layers"
BUNDLE_MARKER = "ocirun-bundle.json"
READ_CHUNK = 1 << 20


class HashingReader:
    """A file object that hashes what is read through it."""

    def __init__(self, stream, algorithm: str = "sha256"):
        self.stream = stream
        self.hash = hashlib.new(algorithm)
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.hash.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(READ_CHUNK):
            pass

    def digest(self) -> str:
        return f"{self.hash.name}:{self.hash.hexdigest()}"


def verify_blob(path: str, digest: str, size: int) -> None:
    alg, _ = check_digest(digest, "layer")
    h = hashlib.new(alg)
    n = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(READ_CHUNK):
                h.update(chunk)
                n += len(chunk)
    except OSError as exc:
        raise ImageError(f"layer {digest}: {exc.strerror}: {path}") from None
    if size >= 0 and n != size:
        raise ImageError(f"layer {digest}: the blob has {n} bytes, the manifest says {size}")
    if f"{alg}:{h.hexdigest()}" != digest:
        raise ImageError(f"layer {digest}: the blob does not match its digest")


class _Decompressed:
    """The uncompressed tar stream of a blob file (closing it reaps the zstd process, checking it)."""

    def __init__(self, raw, compression: str, digest: str):
        self.proc = None
        self.digest = digest
        if compression == "none":
            self.stream = raw
        elif compression == "gzip":
            import gzip
            self.stream = gzip.GzipFile(fileobj=raw, mode="rb")
        elif compression == "zstd":
            import subprocess
            try:
                self.proc = subprocess.Popen(["zstd", "-d", "-c", "-q"], stdin=raw, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE)
            except FileNotFoundError:
                raise ImageError(f"layer {digest} is zstd-compressed: the zstd command is needed "
                                 "(Debian package zstd)") from None
            self.stream = self.proc.stdout
        else:
            raise ImageError(f"layer {digest}: unsupported compression {compression}")

    def read(self, size: int = -1) -> bytes:
        try:
            return self.stream.read(size)
        except (OSError, EOFError) as exc:     # gzip.BadGzipFile, zlib.error are OSError/EOFError
            raise ImageError(f"layer {self.digest}: cannot decompress: {exc}") from None

    def close(self, check: bool) -> None:
        if self.proc is None:
            return
        self.proc.stdout.close()
        err = self.proc.stderr.read().decode(errors="replace").strip()
        self.proc.stderr.close()
        code = self.proc.wait()
        if check and code != 0:
            raise ImageError(f"layer {self.digest}: zstd failed: {err or f'exit status {code}'}")


class Store:
    def __init__(self, path: str | None = None):
        self.path = os.path.abspath(path or DEFAULT_STORE)

    def sub(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def create(self) -> None:
        os.makedirs(self.path, 0o700, exist_ok=True)
        os.chmod(self.path, 0o700)
        for name in ("sha256", "tmp", "refs", "empty"):
            os.makedirs(self.sub(name), 0o755 if name == "empty" else 0o700, exist_ok=True)

    def lock(self, exclusive: bool) -> int:
        """An fd holding the store's flock (close it to release)."""
        fd = os.open(self.sub("lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        return fd

    def layer_dir(self, diff_id: str) -> str:
        alg, hexpart = check_digest(diff_id, "diff_id")
        return self.sub(alg, hexpart)

    def ensure(self, image, layer) -> tuple[str, bool]:
        """The directory of `layer` (unpacked now if the store lacks it) and whether it was unpacked."""
        dest = self.layer_dir(layer.diff_id)
        if os.path.isdir(dest):
            return dest, False
        # only now: a bundle of stored layers does not pay for tarfile, tempfile and shutil
        import shutil
        import tempfile
        from ocirun.image.unpack import unpack_stream
        blob = image.blob_path(layer.digest)
        verify_blob(blob, layer.digest, layer.size)
        tmp = tempfile.mkdtemp(prefix=layer.diff_id.partition(":")[2][:16] + ".", dir=self.sub("tmp"))
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fchmod(fd, 0o755)       # the tar's own "./" entry, if any, overrides this
                with open(blob, "rb") as raw:
                    stream = _Decompressed(raw, layer.compression, layer.digest)
                    ok = False
                    try:
                        hashed = HashingReader(stream)
                        unpack_stream(hashed, fd)
                        hashed.drain()
                        ok = True
                    finally:
                        stream.close(check=ok)
                if hashed.digest() != layer.diff_id:
                    raise ImageError(f"layer {layer.digest}: its content has diff_id {hashed.digest()}, "
                                     f"the image config says {layer.diff_id}")
                syscalls.syncfs(fd)
            finally:
                os.close(fd)
            try:
                os.rename(tmp, dest)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)   # another `bundle` stored it meanwhile
                return dest, False
            _fsync_dir(os.path.dirname(dest))
            return dest, True
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # -- which bundles use which layers -----------------------------------------------------------

    def ref_path(self, bundle: str) -> str:
        return self.sub("refs", hashlib.sha256(os.fsencode(bundle)).hexdigest()[:32] + ".json")

    def add_ref(self, bundle: str, record: dict) -> None:
        path = self.ref_path(bundle)
        write_json(path, record)

    def remove_ref(self, bundle: str) -> None:
        try:
            os.unlink(self.ref_path(bundle))
        except FileNotFoundError:
            pass

    def refs(self) -> list[dict]:
        """The records of bundles that still exist (a bundle deleted by hand no longer holds layers)."""
        out = []
        refs_dir = self.sub("refs")
        try:
            names = sorted(os.listdir(refs_dir))
        except FileNotFoundError:
            return out
        for name in names:
            try:
                with open(os.path.join(refs_dir, name), "rb") as f:
                    record = fastjson.loads(f.read())
                with open(os.path.join(record["bundle"], BUNDLE_MARKER), "rb") as f:
                    marker = fastjson.loads(f.read())
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if marker.get("store") == self.path:
                out.append(record)
        return out

    def layers(self) -> list[str]:
        out = []
        for alg in ("sha256",):
            try:
                names = os.listdir(self.sub(alg))
            except FileNotFoundError:
                continue
            out.extend(f"{alg}:{n}" for n in sorted(names) if len(n) == 64 and not n.strip("0123456789abcdef"))
        return out

    def usage(self) -> dict[str, list[str]]:
        """diff_id -> the bundles that use it, for every stored layer."""
        used: dict[str, list[str]] = {d: [] for d in self.layers()}
        for record in self.refs():
            for diff_id in record.get("layers", []):
                if diff_id in used:
                    used[diff_id].append(record["bundle"])
        return {d: sorted(b) for d, b in used.items()}

    def prune(self) -> list[str]:
        """Remove every layer no bundle uses, stale records and leftover temp dirs; returns the diff_ids."""
        import shutil
        import tempfile
        removed = []
        lock = self.lock(exclusive=True)
        try:
            live = {self.ref_path(r["bundle"]) for r in self.refs()}
            for name in os.listdir(self.sub("refs")):
                path = self.sub("refs", name)
                if path not in live:
                    os.unlink(path)
            for diff_id, bundles in self.usage().items():
                if bundles:
                    continue
                # renamed out of sha256/ first: a half-removed layer is never a usable layer
                doomed = tempfile.mkdtemp(prefix="prune.", dir=self.sub("tmp"))
                os.rename(self.layer_dir(diff_id), os.path.join(doomed, "layer"))
                removed.append(diff_id)
            for name in os.listdir(self.sub("tmp")):
                shutil.rmtree(self.sub("tmp", name), ignore_errors=True)
        finally:
            os.close(lock)
        return removed


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: str, doc: dict) -> None:
    """doc as indented JSON, atomically (a reader sees the old file or the new one)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(fastjson.dumps_indented(doc) + "\n")
    os.rename(tmp, path)
