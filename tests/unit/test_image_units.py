"""The pure parts of `ocirun bundle` (ocirun/image/): entry classification (whiteouts, opaque dirs,
clamped names), digests, image-config conversion; and the unpacker and store on a real temp dir
(root: whiteouts are device nodes and trusted.* xattrs)."""
import gzip
import json
import hashlib
import io
import os
import stat
import tarfile
import tempfile

import pytest

from ocirun.image import convert, layout, store, unpack
from ocirun.image.layout import ImageError
from tests.imagebuild import tar_bytes, tinfo

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, trusted.* xattrs)")


# -- names -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,expected", [
    ("a/b", ("entry", "a/b")),
    ("./a//b/", ("entry", "a/b")),
    ("/etc/passwd", ("entry", "etc/passwd")),              # absolute: inside the layer, as umoci
    ("../../etc/passwd", ("entry", "etc/passwd")),         # climbing out: clamped at the layer root
    ("a/../../../b", ("entry", "b")),
    ("./", ("entry", "")),
    ("etc/.wh.deleteme", ("whiteout", "etc/deleteme")),
    (".wh.top", ("whiteout", "top")),
    ("data/.wh..wh..opq", ("opaque", "data")),
    (".wh..wh..opq", ("opaque", "")),
    ("../../.wh.x", ("whiteout", "x")),
])
def test_classify(name, expected):
    assert unpack.classify(name) == expected


@pytest.mark.parametrize("name", ["a/.wh.", "a/.wh..", "a/.wh...", "a/.wh..wh.x", "a/b\0c"])
def test_classify_refuses_malformed_names(name):
    with pytest.raises(unpack.LayerError):
        unpack.classify(name)


def test_check_digest_refuses_what_could_name_another_file():
    good = "sha256:" + "a" * 64
    assert layout.check_digest(good, "x") == ("sha256", "a" * 64)
    for bad in ["sha256:../../etc/passwd", "sha256:" + "A" * 64, "sha256:" + "a" * 63, "md5:" + "a" * 32,
                "sha256/" + "a" * 64, None, "sha512:" + "a" * 64]:
        with pytest.raises(ImageError):
            layout.check_digest(bad, "x")


def test_split_image_arg(tmp_path):
    assert layout.split_image_arg("img:latest") == ("img", "latest")
    assert layout.split_image_arg("img") == ("img", None)
    assert layout.split_image_arg("/a:b/img:v1") == ("/a:b/img", "v1")
    d = tmp_path / "with:colon"
    d.mkdir()
    assert layout.split_image_arg(str(d)) == (str(d), None)


# -- config conversion ---------------------------------------------------------------------------

PASSWD = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1001:\nwheel:x:10:app\naudio:x:29:root,app\nstaff:x:50:root\n"


def test_args_env_cwd_and_defaults():
    spec = convert.runtime_config({"config": {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["id"],
                                              "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv"}})
    p = spec["process"]
    assert p["args"] == ["/bin/sh", "-c", "id"]
    assert p["env"] == ["PATH=/bin", "A=1", "TERM=xterm"]      # the default PATH is not added again
    assert p["cwd"] == "/srv" and spec["root"] == {"path": "rootfs", "readonly": False}
    assert convert.runtime_config({"config": {"Cmd": ["top"]}})["process"]["args"] == ["top"]
    assert convert.runtime_config({"config": {"Entrypoint": ["ep"]}})["process"]["args"] == ["ep"]
    assert convert.runtime_config({})["process"]["args"] == ["sh"]
    with pytest.raises(ImageError, match="Config.Cmd"):
        convert.runtime_config({"config": {"Cmd": "not a list"}})


@pytest.mark.parametrize("user,expected", [
    ("app", {"uid": 1000, "gid": 1001, "additionalGids": [10, 29]}),
    ("app:wheel", {"uid": 1000, "gid": 10}),
    ("app:7", {"uid": 1000, "gid": 7}),
    ("1000", {"uid": 1000, "gid": 1001}),           # numeric: verbatim, no additionalGids
    ("4242", {"uid": 4242, "gid": 0}),              # not in passwd: still verbatim
    ("4242:4343", {"uid": 4242, "gid": 4343}),
    ("root", {"uid": 0, "gid": 0, "additionalGids": [29, 50]}),
])
def test_user(user, expected):
    assert convert.resolve_user(user, PASSWD, GROUP) == expected


def test_unknown_user_or_group_is_an_error():
    with pytest.raises(ImageError, match="no user 'nobody'"):
        convert.resolve_user("nobody", PASSWD, GROUP)
    with pytest.raises(ImageError, match="no group 'nogroup'"):
        convert.resolve_user("app:nogroup", PASSWD, GROUP)
    with pytest.raises(ImageError):
        convert.resolve_user("app", None, None)       # no /etc/passwd in the image


def test_annotations_and_label_precedence():
    image = {"os": "linux", "architecture": "amd64", "variant": "v8", "author": "me", "created": "2024",
             "os.features": ["a", "b"],
             "config": {"StopSignal": "SIGINT", "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                        "Labels": {"org.opencontainers.image.os": "from-label", "x": "y"}}}
    notes = convert.runtime_config(image)["annotations"]
    assert notes == {"org.opencontainers.image.os": "from-label", "org.opencontainers.image.architecture": "amd64",
                     "org.opencontainers.image.variant": "v8", "org.opencontainers.image.author": "me",
                     "org.opencontainers.image.created": "2024", "org.opencontainers.image.os.features": "a,b",
                     "org.opencontainers.image.stopSignal": "SIGINT",
                     "org.opencontainers.image.exposedPorts": "53/udp,80/tcp", "x": "y"}
    assert "annotations" not in convert.runtime_config({})


# -- unpacking (real files) ----------------------------------------------------------------------

def _unpack(entries, root):
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        unpack.unpack_stream(io.BytesIO(tar_bytes(entries)), fd)
    finally:
        os.close(fd)


def _is_whiteout(path):
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path):
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


@root_only
def test_whiteouts_become_overlay_whiteouts(tmp_path):
    old = os.umask(0o077)
    try:
        _unpack_whiteouts(tmp_path)
        assert os.umask(0o077) == 0o077          # the caller's umask is back
    finally:
        os.umask(old)


def _unpack_whiteouts(tmp_path):
    _unpack([(tinfo("etc/", tarfile.DIRTYPE, 0o755), None),
             (tinfo("etc/.wh.gone"), b""),
             (tinfo("data/", tarfile.DIRTYPE, 0o700, uid=5), None),
             (tinfo("data/.wh..wh..opq"), b""),
             (tinfo("data/new", mode=0o4755, uid=7, gid=8), b"x"),
             (tinfo("implicit/deeper/.wh.y"), b"")], tmp_path)
    assert _is_whiteout(tmp_path / "etc/gone")
    assert _opaque(tmp_path / "data") and not _opaque(tmp_path / "etc")
    st = os.stat(tmp_path / "data/new")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4755, 7, 8)
    st = os.stat(tmp_path / "data")
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, 5)
    assert _is_whiteout(tmp_path / "implicit/deeper/y")
    assert stat.S_IMODE(os.stat(tmp_path / "implicit/deeper").st_mode) == 0o755     # despite the umask
    assert not os.path.exists(tmp_path / "etc/.wh.gone") and not os.path.exists(tmp_path / "data/.wh..wh..opq")


@root_only
def test_whiteouts_apply_to_lower_layers_only(tmp_path):
    """image-spec: a whiteout never removes an entry of its own layer; that entry stays (a directory
    becomes opaque, so the lower one it replaces does not show through)."""
    _unpack([(tinfo("f"), b"same layer"),
             (tinfo(".wh.f"), b""),                      # after the file: the file stays
             (tinfo(".wh.g"), b""),
             (tinfo("g"), b"replaces the whiteout"),     # before the file: the file replaces it
             (tinfo("d/", tarfile.DIRTYPE, 0o755), None),
             (tinfo("d/x"), b"x"),
             (tinfo(".wh.d"), b""),                      # dir of this layer, lower d deleted: opaque
             (tinfo(".wh.e"), b""),
             (tinfo("e/", tarfile.DIRTYPE, 0o755), None),       # new dir over a deleted one
             (tinfo(".wh.o"), b""),
             (tinfo("o/.wh..wh..opq"), b""),                      # deleted, then an empty opaque dir
             (tinfo(".wh.p"), b""),
             (tinfo("p/q/r"), b"r")], tmp_path)                     # deleted, then p/q/r of this layer
    assert (tmp_path / "f").read_bytes() == b"same layer"
    assert (tmp_path / "g").read_bytes() == b"replaces the whiteout"
    assert (tmp_path / "d/x").exists() and _opaque(tmp_path / "d")
    assert (tmp_path / "e").is_dir() and not _is_whiteout(tmp_path / "e") and _opaque(tmp_path / "e")
    assert (tmp_path / "o").is_dir() and _opaque(tmp_path / "o") and os.listdir(tmp_path / "o") == []
    assert (tmp_path / "p/q/r").read_bytes() == b"r" and _opaque(tmp_path / "p") and not _opaque(tmp_path / "p/q")


@root_only
def test_entry_types_and_duplicates(tmp_path):
    _unpack([(tinfo("bin/", tarfile.DIRTYPE, 0o755), None),
             (tinfo("bin/busybox", mode=0o755), b"elf"),
             (tinfo("bin/sh", tarfile.SYMTYPE, 0o777, linkname="busybox"), None),
             (tinfo("bin/ash", tarfile.LNKTYPE, linkname="./bin/busybox"), None),
             (tinfo("fifo", tarfile.FIFOTYPE, 0o640), None),
             (tinfo("null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3), None),
             (tinfo("dup"), b"first"),
             (tinfo("dup"), b"second"),
             (tinfo("dir2file/", tarfile.DIRTYPE), None),
             (tinfo("dir2file/x"), b""),
             (tinfo("dir2file"), b"now a file")], tmp_path)
    assert os.readlink(tmp_path / "bin/sh") == "busybox"
    assert os.stat(tmp_path / "bin/ash").st_ino == os.stat(tmp_path / "bin/busybox").st_ino
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)
    st = os.lstat(tmp_path / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3) and stat.S_IMODE(st.st_mode) == 0o666
    assert (tmp_path / "dup").read_bytes() == b"second"
    assert (tmp_path / "dir2file").read_bytes() == b"now a file"
    assert os.stat(tmp_path / "bin").st_mtime == 1_700_000_000      # set after its entries


@root_only
def test_overlay_xattrs_from_the_tar_are_dropped(tmp_path):
    info = tinfo("d/", tarfile.DIRTYPE, 0o755)
    info.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.note": "kept"}
    _unpack([(info, None)], tmp_path)
    assert not _opaque(tmp_path / "d")
    assert os.getxattr(tmp_path / "d", "user.note") == b"kept"


@root_only
@pytest.mark.parametrize("entries,message", [
    ([(tinfo("wo", tarfile.CHRTYPE, devmajor=0, devminor=0), None)], "0/0 character device"),
    ([(tinfo("hl", tarfile.LNKTYPE, linkname="/etc/passwd"), None)], "not a file of this layer"),
    ([(tinfo("hl", tarfile.LNKTYPE, linkname="../../../../etc/passwd"), None)], "not a file of this layer"),
    ([(tinfo("up", tarfile.SYMTYPE, linkname="../../../../.."), None),
      (tinfo("hl", tarfile.LNKTYPE, linkname="up/etc/passwd"), None)], "not a file of this layer"),
])
def test_hostile_entries_refused(tmp_path, entries, message):
    root = tmp_path / "layer"
    root.mkdir()
    with pytest.raises(unpack.LayerError, match=message):
        _unpack(entries, root)
    assert sorted(os.listdir(tmp_path)) == ["layer"]


@root_only
def test_links_out_of_the_layer_resolve_inside_it(tmp_path):
    root = tmp_path / "layer"
    victim = tmp_path / "victim"
    root.mkdir()
    victim.mkdir()
    _unpack([(tinfo("up", tarfile.SYMTYPE, linkname="../../../../../../.."), None),
             (tinfo("abs", tarfile.SYMTYPE, linkname="/"), None),
             (tinfo(f"up{victim}/a"), b"a"),
             (tinfo(f"abs{victim}/b"), b"b"),
             (tinfo(f"../../..{victim}/c"), b"c"),
             (tinfo(f"{victim}/d"), b"d")], root)
    assert os.listdir(victim) == []
    rel = str(victim).lstrip("/")
    assert sorted(os.listdir(root / rel)) == ["a", "b", "c", "d"]


# -- the store -----------------------------------------------------------------------------------

class _Image:
    def __init__(self, path):
        self.path = path

    def blob_path(self, digest):
        return self.path


def _layer_blob(tmp_path, data, compress):
    raw = gzip.compress(data) if compress == "gzip" else data
    path = tmp_path / "blob"
    path.write_bytes(raw)
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
    return _Image(str(path)), layout.Layer(digest, len(raw), "t", compress, diff_id)


@root_only
def test_store_unpacks_once_and_verifies(tmp_path):
    data = tar_bytes([(tinfo("f"), b"hello")])
    image, layer = _layer_blob(tmp_path, data, "gzip")
    s = store.Store(str(tmp_path / "store"))
    s.create()
    path, fresh = s.ensure(image, layer)
    assert fresh and open(os.path.join(path, "f")).read() == "hello"
    assert s.ensure(image, layer) == (path, False)
    assert s.layers() == [layer.diff_id] and os.listdir(s.sub("tmp")) == []


@root_only
@pytest.mark.parametrize("what", ["blob", "diff_id", "size", "truncated"])
def test_store_refuses_a_layer_that_does_not_match(tmp_path, what):
    data = tar_bytes([(tinfo("f"), os.urandom(20000))])
    image, layer = _layer_blob(tmp_path, data, "gzip")
    if what == "blob":
        layer.digest = "sha256:" + "0" * 64
    elif what == "diff_id":
        layer.diff_id = "sha256:" + "0" * 64
    elif what == "size":
        layer.size += 1
    else:
        raw = gzip.compress(data)[:200]
        open(image.path, "wb").write(raw)
        layer.digest, layer.size = "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw)
    s = store.Store(str(tmp_path / "store"))
    s.create()
    with pytest.raises(ImageError):
        s.ensure(image, layer)
    assert s.layers() == [] and os.listdir(s.sub("tmp")) == []


def test_features_say_what_bundle_supports():
    from ocirun.features import features
    note = features()["annotations"]["org.opencontainers.ocirun.bundle"]
    fields = dict(part.split("=") for part in note.split(";"))
    assert fields["layers"].split(",") == ["gzip", "none", "zstd"] == sorted(set(layout.LAYER_TYPES.values()))
    assert fields["rootfs"] == "overlay" and fields["rootless"] == "unsupported"


def test_bundle_command_imports_stay_lean():
    """A bundle of stored layers needs neither tarfile nor the json package (which imports re): the
    unpacking modules are imported only when a layer is missing, and JSON goes through fastjson."""
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import sys; sys.path.insert(0, {repo!r}); "
            "import ocirun.cli, ocirun.image.bundlecmd, ocirun.image.convert; "
            "print(' '.join(m for m in ('tarfile', 'json', 're', 'subprocess', 'tempfile', 'shutil', 'gzip') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-ISc", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


# -- reading a layout ----------------------------------------------------------------------------

def _put(root, doc) -> dict:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    os.makedirs(root / "blobs" / "sha256", exist_ok=True)
    (root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _layout(root, arch="amd64", rootfs_type="layers", layer_type="application/vnd.oci.image.layer.v1.tar+gzip",
            index_of_platforms=False):
    layer = _put(root, b"not read here")
    config = _put(root, {"os": "linux", "architecture": arch,
                         "rootfs": {"type": rootfs_type, "diff_ids": ["sha256:" + "1" * 64]}})
    manifest = _put(root, {"schemaVersion": 2, "mediaType": layout.MANIFEST_TYPES[0],
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                           "layers": [{"mediaType": layer_type, **layer}]})
    top = {"mediaType": layout.MANIFEST_TYPES[0], **manifest}
    if index_of_platforms:
        other = _put(root, {"schemaVersion": 2, "mediaType": layout.MANIFEST_TYPES[0], "config": config,
                            "layers": []})
        index = _put(root, {"schemaVersion": 2, "mediaType": layout.INDEX_TYPES[0], "manifests": [
            {"mediaType": layout.MANIFEST_TYPES[0], "platform": {"os": "linux", "architecture": "s390x"}, **other},
            {**top, "platform": {"os": "linux", "architecture": arch}}]})
        top = {"mediaType": layout.INDEX_TYPES[0], **index}
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**top, "annotations": {layout.REF_ANNOTATION: "t"}}]}))
    return manifest["digest"]


def test_open_image_and_its_refusals(tmp_path):
    digest = _layout(tmp_path / "ok")
    image = layout.open_image(str(tmp_path / "ok") + ":t", "linux/amd64")
    assert image.manifest_digest == digest and [l.compression for l in image.layers] == ["gzip"]
    assert layout.open_image(str(tmp_path / "ok"), "linux/amd64").manifest_digest == digest   # the only one
    digest = _layout(tmp_path / "multi", index_of_platforms=True)
    assert layout.open_image(str(tmp_path / "multi") + ":t", "linux/amd64").manifest_digest == digest
    with pytest.raises(ImageError, match="no image for platform linux/arm64"):
        layout.open_image(str(tmp_path / "multi") + ":t", "linux/arm64")
    with pytest.raises(ImageError, match="is for linux/amd64, not linux/arm64"):
        layout.open_image(str(tmp_path / "ok") + ":t", "linux/arm64")
    _layout(tmp_path / "type", rootfs_type="other")
    with pytest.raises(ImageError, match='rootfs.type must be "layers"'):
        layout.open_image(str(tmp_path / "type") + ":t", "linux/amd64")
    _layout(tmp_path / "media", layer_type="application/x-tar")
    with pytest.raises(ImageError, match=r"layers\[0\]: unsupported layer media type 'application/x-tar'"):
        layout.open_image(str(tmp_path / "media") + ":t", "linux/amd64")
    _layout(tmp_path / "tampered")
    manifest = json.loads((tmp_path / "tampered" / "index.json").read_text())["manifests"][0]["digest"]
    blob = tmp_path / "tampered" / "blobs" / "sha256" / manifest[7:]
    blob.write_bytes(blob.read_bytes().replace(b"\"schemaVersion\": 2", b"\"schemaVersion\": 3"))
    with pytest.raises(ImageError, match="does not match its digest"):
        layout.open_image(str(tmp_path / "tampered") + ":t", "linux/amd64")
