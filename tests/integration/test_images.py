"""`ocirun bundle` with real images (tests/imagebuild.py: umoci builds them, skopeo recompresses):
the rootfs equals `umoci unpack` of the same image, the config follows image-spec conversion.md,
containers run from it with `ocirun run`, layers are shared and writes are not, hostile layers write
nothing outside the layer, and --remove/--list/--prune clean up. Every test uses a temp --layers
store (never /var/lib/ocirun) and unmounts whatever it mounted, even when it fails."""
import json
import os
import shutil
import signal
import stat
import subprocess
import tarfile
import tempfile
import time

import pytest

from tests import imagebuild
from tests.conftest import OCIRUN
from tests.imagebuild import tar_bytes, tinfo
from tests.treesnapshot import tree_snapshot

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not (shutil.which("umoci") and shutil.which("skopeo")),
                                 reason="umoci and skopeo are needed (scripts/setup.sh installs them)")]


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == path or p.startswith(path + "/")]


@pytest.fixture(scope="module")
def image_dir():
    work = tempfile.mkdtemp(prefix="ocirun-images-")
    try:
        imagebuild.build_busybox_image(work)
        umoci_bundle = os.path.join(work, "umoci-bundle")
        imagebuild.run("umoci", "unpack", "--image", os.path.join(work, "layout") + ":latest", umoci_bundle)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def layout(image_dir):
    return os.path.join(image_dir, "layout")


class Bundler:
    """Runs `ocirun bundle` with a private --layers store; unmounts and removes what it made."""

    def __init__(self, rt, tmp: str):
        self.rt = rt
        self.tmp = tmp
        self.store = os.path.join(tmp, "layers")

    def __call__(self, *args, store=None, check=False):
        return self.rt("bundle", *args, "--layers", store or self.store, check=check)

    def make(self, image: str, name: str, store=None) -> str:
        path = os.path.join(self.tmp, name)
        self("--image", image, path, store=store, check=True)
        return path

    def layer_dirs(self, store=None) -> list[str]:
        d = os.path.join(store or self.store, "sha256")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def cleanup(self):
        self.rt.cleanup()
        for point in sorted(mounts_under(self.tmp), reverse=True):
            subprocess.run(["umount", "-l", point], check=False)


@pytest.fixture
def bundler(ocirun, tmp_path):
    b = Bundler(ocirun, str(tmp_path))
    try:
        yield b
    finally:
        b.cleanup()


def diff_ids(layout_path: str) -> list[str]:
    with open(os.path.join(layout_path, "index.json")) as f:
        desc = json.load(f)["manifests"][0]
    manifest = _blob(layout_path, desc["digest"])
    return _blob(layout_path, manifest["config"]["digest"])["rootfs"]["diff_ids"]


def _blob(layout_path, digest):
    with open(os.path.join(layout_path, "blobs", *digest.split(":"))) as f:
        return json.load(f)


def run_in(rt, bundle: str, cid: str, script: str, detach=False, as_root=False):
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"].update(terminal=False, args=["sh", "-c", script])
    if as_root:
        config["process"]["user"] = {"uid": 0, "gid": 0}
    with open(path, "w") as f:
        json.dump(config, f)
    return rt("run", *(["-d"] if detach else []), "--bundle", bundle, cid)


# -- layering and conversion ---------------------------------------------------------------------

def test_rootfs_matches_umoci_unpack(bundler, layout, image_dir):
    bundle = bundler.make(layout + ":latest", "b1")
    ours = tree_snapshot(os.path.join(bundle, "rootfs"))
    theirs = tree_snapshot(os.path.join(image_dir, "umoci-bundle", "rootfs"))
    assert ours == theirs
    # the layering really happened: deleted, replaced, file->dir, opaque dir
    assert "etc/deleteme" not in ours and "opt/keep" not in ours and "opt" in ours
    assert ours["etc/replaceme"][0] == oct(stat.S_IFREG | 0o600)
    assert "etc/filetodir/inside" in ours
    assert sorted(p for p in ours if p.startswith("data/")) == ["data/new"]
    assert ours["bin/suid"][0] == oct(stat.S_IFREG | 0o4755) and ours["home/app/file"][1:3] == (1000, 1000)
    assert os.stat(bundle).st_mode & 0o777 == 0o700
    [point] = mounts_under(os.path.join(bundle, "rootfs"))
    assert point == os.path.join(bundle, "rootfs")


def test_config_follows_the_conversion_rules(bundler, layout):
    from ocirun.defaultspec import example_spec
    bundle = bundler.make(layout + ":latest", "b1")
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    process = config["process"]
    assert process["args"] == ["/bin/sh", "-c", "id"]
    assert process["env"] == ["GREETING=hello", "PATH=/bin", "TERM=xterm"]
    assert process["cwd"] == "/home/app"
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}   # from the image's files
    notes = config["annotations"]
    assert notes["org.opencontainers.image.exposedPorts"] == "8080/tcp"
    assert notes["org.opencontainers.image.stopSignal"] == "SIGUSR1"
    assert notes["org.example.name"] == "busybox-test"
    assert notes["org.opencontainers.image.os"] == "linux"
    assert config["root"] == {"path": "rootfs", "readonly": False}
    default = example_spec()
    for key in ("mounts", "linux", "hostname", "ociVersion"):
        assert config[key] == default[key], key


def test_container_runs_as_the_image_says(bundler, layout):
    bundle = bundler.make(layout + ":latest", "b1")
    proc = run_in(bundler.rt, bundle, "img1", "id; pwd; echo $GREETING; cat /data/new file; cat /etc/replaceme")
    assert proc.returncode == 1 and "can't open '/etc/replaceme': Permission denied" in proc.stderr  # 0600 root
    assert proc.stdout.splitlines() == ["uid=1000(app) gid=1000(app) groups=10(wheel),29(audio)",
                                        "/home/app", "hello", "new", "mine"]


def test_zstd_and_uncompressed_layers(bundler, layout, image_dir, tmp_path):
    """skopeo recompresses the image: the blobs differ, the diff_ids and the rootfs do not."""
    expected = tree_snapshot(os.path.join(image_dir, "umoci-bundle", "rootfs"))
    for kind in ("zstd", "none"):
        dst = str(tmp_path / f"layout-{kind}")
        imagebuild.skopeo_copy(layout, dst, "latest", kind)
        manifest = _blob(dst, json.load(open(os.path.join(dst, "index.json")))["manifests"][0]["digest"])
        types = {layer["mediaType"] for layer in manifest["layers"]}
        assert types == {"application/vnd.oci.image.layer.v1.tar" + ("+zstd" if kind == "zstd" else "")}
        assert diff_ids(dst) == diff_ids(layout)
        store = str(tmp_path / f"store-{kind}")          # a fresh store: really decompress
        bundle = bundler.make(dst + ":latest", f"b-{kind}", store=store)
        assert tree_snapshot(os.path.join(bundle, "rootfs")) == expected


def test_an_image_without_layers(bundler, tmp_path):
    """umoci new makes an image with no layers: the rootfs is an overlay of the store's empty dir."""
    layout = str(tmp_path / "empty-layout")
    imagebuild.run("umoci", "init", "--layout", layout)
    imagebuild.run("umoci", "new", "--image", layout + ":e")
    bundle = bundler.make(layout + ":e", "b1")
    assert os.listdir(os.path.join(bundle, "rootfs")) == [] and bundler.layer_dirs() == []
    with open(os.path.join(bundle, "rootfs", "written"), "w") as f:
        f.write("x")
    assert os.listdir(os.path.join(bundler.store, "empty")) == []
    bundler("--remove", bundle, check=True)


def test_more_layers_than_one_page_of_mount_options(bundler, tmp_path):
    """70 layers: ~7 KB of lowerdir paths, more than mount(2)'s one page; lowerdir+ takes them."""
    from ocirun.image import bundlecmd
    work = str(tmp_path / "many")
    os.mkdir(work)
    layout = os.path.join(work, "layout")
    imagebuild.run("umoci", "init", "--layout", layout)
    imagebuild.run("umoci", "new", "--image", layout + ":m")
    for i in range(70):
        imagebuild.add_layer(layout + ":m", tar_bytes([(tinfo(f"l{i}"), b"%d" % i), (tinfo("top"), b"%d" % i)]), work)
    bundle = bundler.make(layout + ":m", "b1")
    names = os.listdir(os.path.join(bundle, "rootfs"))
    assert len(names) == 71 and open(os.path.join(bundle, "rootfs", "top")).read() == "69"
    # the mount(2) fallback (kernels before 6.8) says why it cannot
    lowers = [os.path.join(bundler.store, "sha256", d) for d in bundler.layer_dirs()]
    for d in ("u", "w", "t"):
        os.mkdir(tmp_path / d)
    with pytest.raises(bundlecmd.OciError, match=r"too many layers \(70\).*lowerdir\+ needs Linux 6.8"):
        bundlecmd._mount_overlay_legacy(lowers, str(tmp_path / "u"), str(tmp_path / "w"), str(tmp_path / "t"))
    bundlecmd._mount_overlay_legacy(lowers[:3], str(tmp_path / "u"), str(tmp_path / "w"), str(tmp_path / "t"))
    try:
        assert len(os.listdir(tmp_path / "t")) == 4
    finally:
        subprocess.run(["umount", str(tmp_path / "t")], check=True)


# -- sharing -------------------------------------------------------------------------------------

def test_layers_are_shared_and_writes_are_not(bundler, layout):
    b1 = bundler.make(layout + ":latest", "b1")
    stored = bundler.layer_dirs()
    assert ["sha256:" + d for d in stored] == sorted(diff_ids(layout))
    inodes = {d: os.stat(os.path.join(bundler.store, "sha256", d)).st_ino for d in stored}
    b2 = bundler.make(layout + ":latest", "b2")
    assert bundler.layer_dirs() == stored                # each diff_id once
    assert {d: os.stat(os.path.join(bundler.store, "sha256", d)).st_ino for d in stored} == inodes  # not redone
    with open("/proc/self/mountinfo") as f:
        options = {line.split()[4]: line.split(" - ")[1] for line in f}
    lower1 = [o for o in options[b1 + "/rootfs"].split(",") if o.startswith("lowerdir")]
    lower2 = [o for o in options[b2 + "/rootfs"].split(",") if o.startswith("lowerdir")]
    assert lower1 == lower2 and all(bundler.store in o for o in lower1)

    proc = run_in(bundler.rt, b1, "w1", "echo one > /data/written; echo changed > /etc/replaceme; rm /data/new",
                  as_root=True)
    assert proc.returncode == 0, proc.stderr
    proc = run_in(bundler.rt, b2, "w2", "ls /data; cat /etc/replaceme; if test -e /data/written; then echo LEAK; fi",
                  as_root=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["new", "new"]
    with open(os.path.join(b1, "upper", "data", "written")) as f:
        assert f.read() == "one\n"
    for d in stored:
        layer = os.path.join(bundler.store, "sha256", d)
        assert not os.path.exists(os.path.join(layer, "data", "written"))
        if os.path.exists(os.path.join(layer, "etc", "replaceme")):
            with open(os.path.join(layer, "etc", "replaceme")) as f:
                assert f.read() != "changed\n"
    assert os.path.exists(os.path.join(b1, "rootfs", "data", "written"))
    assert not os.path.exists(os.path.join(b2, "rootfs", "data", "written"))


def test_concurrent_bundles_of_a_new_image(bundler, layout, tmp_path):
    """Two `bundle` commands unpack the same layers at once: both succeed, each layer is stored once
    (the loser of the rename drops its copy), no temp dir is left."""
    procs = [subprocess.Popen([*OCIRUN, "bundle", "--image", layout + ":latest", "--layers", bundler.store,
                               str(tmp_path / f"c{i}")], stderr=subprocess.PIPE, text=True) for i in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert ["sha256:" + d for d in bundler.layer_dirs()] == sorted(diff_ids(layout))
    assert os.listdir(os.path.join(bundler.store, "tmp")) == []
    assert tree_snapshot(str(tmp_path / "c0" / "rootfs")) == tree_snapshot(str(tmp_path / "c1" / "rootfs"))


# -- cleanup -------------------------------------------------------------------------------------

def test_remove_keeps_layers_and_prune_removes_unused(bundler, layout, tmp_path):
    b1 = bundler.make(layout + ":latest", "b1")
    b2 = bundler.make(layout + ":latest", "b2")
    stored = bundler.layer_dirs()
    listing = bundler("--list", check=True).stdout.splitlines()
    assert listing[0].split("\t") == ["DIFF_ID", "BUNDLES"]
    assert {line.split("\t")[0]: line.split("\t")[1] for line in listing[1:]} == \
        {"sha256:" + d: f"{b1},{b2}" for d in stored}

    bundler("--remove", b1, check=True)
    assert not os.path.exists(b1) and mounts_under(b1) == []
    assert bundler.layer_dirs() == stored
    assert bundler("--prune", check=True).stdout == ""          # b2 still uses them all
    assert bundler.layer_dirs() == stored

    bundler("--remove", b2, check=True)
    assert not os.path.exists(b2) and mounts_under(b2) == []
    listing = bundler("--list", check=True).stdout.splitlines()[1:]
    assert all(line.endswith("\t-") for line in listing) and len(listing) == len(stored)
    out = bundler("--prune", check=True).stdout.splitlines()
    assert sorted(out) == sorted(f"removed sha256:{d}" for d in stored)
    assert bundler.layer_dirs() == [] and os.listdir(os.path.join(bundler.store, "tmp")) == []
    assert set(os.listdir(tmp_path)) <= {"layers", "state"}


def test_a_bundle_deleted_by_hand_no_longer_holds_layers(bundler, layout):
    b1 = bundler.make(layout + ":latest", "b1")
    subprocess.run(["umount", os.path.join(b1, "rootfs")], check=True)
    shutil.rmtree(b1)
    assert len(bundler("--prune", check=True).stdout.splitlines()) == len(diff_ids(layout))


def test_mount_again_after_the_overlay_is_gone(bundler, layout):
    """After a reboot (here: umount) --mount brings the rootfs back with what the container wrote."""
    b1 = bundler.make(layout + ":latest", "b1")
    proc = run_in(bundler.rt, b1, "w1", "echo kept > /data/written; rm /data/new", as_root=True)
    assert proc.returncode == 0, proc.stderr
    subprocess.run(["umount", os.path.join(b1, "rootfs")], check=True)
    assert os.listdir(os.path.join(b1, "rootfs")) == []
    bundler("--mount", b1, check=True)
    assert sorted(os.listdir(os.path.join(b1, "rootfs", "data"))) == ["written"]
    assert mounts_under(os.path.join(b1, "rootfs")) == [os.path.join(b1, "rootfs")]
    proc = bundler("--mount", b1)
    assert proc.returncode == 1 and "is already mounted" in proc.stderr
    bundler("--remove", b1, check=True)


def test_remove_refuses_while_a_container_uses_the_bundle(bundler, layout):
    b1 = bundler.make(layout + ":latest", "b1")
    proc = run_in(bundler.rt, b1, "busy", "sleep 60", detach=True)
    assert proc.returncode == 0, proc.stderr
    proc = bundler("--remove", b1)
    assert proc.returncode == 1 and "container busy (running) uses" in proc.stderr
    assert os.path.isdir(os.path.join(b1, "rootfs", "bin"))
    bundler.rt("delete", "--force", "busy", check=True)
    bundler("--remove", b1, check=True)
    assert not os.path.exists(b1)


def test_refusals(bundler, layout, tmp_path):
    busy = tmp_path / "notempty"
    busy.mkdir()
    (busy / "x").write_text("")
    for args, message in [
        (["--image", layout + ":nosuchtag", str(tmp_path / "b")], "no image tagged 'nosuchtag' (tags: latest)"),
        (["--image", str(tmp_path / "nolayout"), str(tmp_path / "b")], "not an OCI image layout"),
        (["--image", layout + ":latest", "--platform", "linux/s390x", str(tmp_path / "b")], "not linux/s390x"),
        (["--image", layout + ":latest", str(busy)], "exists and is not empty"),
        (["--image", layout + ":latest", str(tmp_path / "a,b")], "overlayfs mount options cannot hold"),
        (["--remove", str(busy)], "is not a bundle made by `ocirun bundle`"),
        (["--list", "extra"], "takes no arguments"),
        (["--image", layout], "requires exactly 1 argument"),
        ([], "needs exactly one of"),
        (["--mount", str(busy)], "is not a bundle made by `ocirun bundle`"),
    ]:
        proc = bundler(*args)
        assert proc.returncode == 1 and message in proc.stderr, (args, proc.stderr)
    assert not os.path.exists(tmp_path / "b") and os.listdir(busy) == ["x"]


def test_rootless_is_refused_clearly(layout, tmp_path):
    proc = subprocess.run(["unshare", "-Ur", *OCIRUN, "bundle", "--image", layout, "--layers",
                           str(tmp_path / "layers"), str(tmp_path / "b")], capture_output=True, text=True)
    assert proc.returncode == 1 and "rootless is not supported" in proc.stderr
    assert not os.path.exists(tmp_path / "b") and not os.path.exists(tmp_path / "layers")


def test_a_corrupt_layer_leaves_nothing_behind(bundler, layout, tmp_path):
    bad = str(tmp_path / "bad-layout")
    shutil.copytree(layout, bad)
    manifest = _blob(bad, json.load(open(os.path.join(bad, "index.json")))["manifests"][0]["digest"])
    top = manifest["layers"][-1]["digest"]
    path = os.path.join(bad, "blobs", *top.split(":"))
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    proc = bundler("--image", bad + ":latest", str(tmp_path / "b"))
    assert proc.returncode == 1 and f"layer {top}: the blob does not match its digest" in proc.stderr
    assert not os.path.exists(tmp_path / "b") and mounts_under(str(tmp_path)) == []
    assert len(bundler.layer_dirs()) == len(manifest["layers"]) - 1     # the good lower ones are kept
    assert os.listdir(os.path.join(bundler.store, "tmp")) == []


def test_a_killed_unpack_leaves_no_usable_layer(bundler, tmp_path):
    """SIGKILL in the middle of unpacking: the half layer stays in tmp/, never in sha256/; the next
    bundle unpacks it afresh, --prune removes the leftover."""
    work = str(tmp_path / "img")
    os.mkdir(work)
    layout = os.path.join(work, "layout")
    imagebuild.run("umoci", "init", "--layout", layout)
    imagebuild.run("umoci", "new", "--image", layout + ":big")
    entries = [(tinfo(f"d{i // 1000}/f{i}"), b"x" * 100) for i in range(3000)]
    imagebuild.add_layer(layout + ":big", tar_bytes(entries), work)
    [diff_id] = diff_ids(layout)
    proc = subprocess.Popen([*OCIRUN, "bundle", "--image", layout + ":big", "--layers", bundler.store,
                             str(tmp_path / "b1")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmpdir = os.path.join(bundler.store, "tmp")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        names = os.listdir(tmpdir) if os.path.isdir(tmpdir) else []
        if names and os.path.isdir(os.path.join(tmpdir, names[0], "d1")):
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert os.listdir(tmpdir), "the unpack finished before it could be killed"
    assert bundler.layer_dirs() == []
    assert not os.path.exists(os.path.join(tmp_path, "b1", "rootfs", "d0"))
    b2 = bundler.make(layout + ":big", "b2")
    assert len(os.listdir(os.path.join(b2, "rootfs", "d2"))) == 1000
    assert bundler.layer_dirs() == [diff_id.partition(":")[2]]
    assert bundler("--prune", check=True).stdout == ""
    assert os.listdir(tmpdir) == []


# -- hostile layers ------------------------------------------------------------------------------

def hostile_image(tmp_path, name: str, entries) -> str:
    """An OCI layout (umoci init/new/raw add-layer) whose only layer is the tar of `entries`."""
    work = str(tmp_path / name)
    os.mkdir(work)
    layout = os.path.join(work, "layout")
    imagebuild.run("umoci", "init", "--layout", layout)
    imagebuild.run("umoci", "new", "--image", layout + ":x")
    imagebuild.add_layer(layout + ":x", tar_bytes(entries), work)
    return layout + ":x"


def test_hostile_paths_stay_inside_the_layer(bundler, tmp_path):
    """`..`, absolute names, and names through symlinks pointing out of the layer land inside it, as
    with umoci (which gives the same tree); nothing is written to the victim dir on the host."""
    victim = tmp_path / "victim"
    victim.mkdir()
    v = str(victim)
    image = hostile_image(tmp_path, "paths", [
        (tinfo("../../../../../..{}/dotdot".format(v)), b"1"),
        (tinfo(f"{v}/absolute"), b"2"),
        (tinfo("up", tarfile.SYMTYPE, linkname="../../../../../../../.."), None),
        (tinfo(f"up{v}/via-relative-link"), b"3"),
        (tinfo("abs", tarfile.SYMTYPE, linkname="/"), None),
        (tinfo(f"abs{v}/via-absolute-link"), b"4"),
        (tinfo("over", tarfile.SYMTYPE, linkname=f"{v}/overwritten"), None),
        (tinfo("over"), b"a file replaces the symlink, never writes through it"),
        (tinfo("dirover", tarfile.SYMTYPE, linkname=v), None),
        (tinfo("dirover/", tarfile.DIRTYPE, 0o755), None),
        (tinfo("dirover/inside"), b"5"),
        (tinfo("null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3), None),
        (tinfo("suid", mode=0o4755), b"#!/bin/sh\n"),
    ])
    bundle = bundler.make(image, "b1")
    assert os.listdir(victim) == []
    inside = os.path.join(bundle, "rootfs", v.lstrip("/"))
    assert sorted(os.listdir(inside)) == ["absolute", "dotdot", "via-absolute-link", "via-relative-link"]
    assert open(os.path.join(bundle, "rootfs", "over")).read().startswith("a file replaces")
    assert os.listdir(os.path.join(bundle, "rootfs", "dirover")) == ["inside"]
    umoci = str(tmp_path / "umoci-bundle")
    imagebuild.run("umoci", "unpack", "--image", image, umoci)
    assert os.listdir(victim) == []
    assert tree_snapshot(os.path.join(bundle, "rootfs")) == tree_snapshot(os.path.join(umoci, "rootfs"))
    # device nodes and setuid files are kept, as umoci does as root; the store is root-only
    st = os.lstat(os.path.join(bundle, "rootfs", "null"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert os.stat(bundler.store).st_mode & 0o777 == 0o700


@pytest.mark.parametrize("entries,message", [
    ([(tinfo("hl", tarfile.LNKTYPE, linkname="/etc/passwd"), None)], "not a file of this layer"),
    ([(tinfo("up", tarfile.SYMTYPE, linkname="../../../../../.."), None),
      (tinfo("hl", tarfile.LNKTYPE, linkname="up/etc/passwd"), None)], "not a file of this layer"),
    ([(tinfo("wh", tarfile.CHRTYPE, devmajor=0, devminor=0), None)], "0/0 character device"),
], ids=["hardlink-absolute", "hardlink-through-symlink", "forged-overlay-whiteout"])
def test_hostile_entries_are_refused(bundler, tmp_path, entries, message):
    links = os.stat("/etc/passwd").st_nlink
    image = hostile_image(tmp_path, "bad", entries)
    proc = bundler("--image", image, str(tmp_path / "b1"))
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert os.stat("/etc/passwd").st_nlink == links
    assert not os.path.exists(tmp_path / "b1") and bundler.layer_dirs() == []
    assert os.listdir(os.path.join(bundler.store, "tmp")) == [] and mounts_under(str(tmp_path)) == []


def test_forged_overlay_xattrs_are_dropped(bundler, tmp_path):
    """A layer cannot make a directory opaque (or redirect it) with overlay xattrs of its own: only
    .wh..wh..opq does that."""
    lower = tinfo("d/", tarfile.DIRTYPE, 0o755)
    image = hostile_image(tmp_path, "lower", [(lower, None), (tinfo("d/from-lower"), b"x")])
    forged = tinfo("d/", tarfile.DIRTYPE, 0o755)
    forged.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y",
                          "SCHILY.xattr.trusted.overlay.redirect": "/elsewhere"}
    layout = image.rpartition(":")[0]
    imagebuild.add_layer(image, tar_bytes([(forged, None), (tinfo("d/from-upper"), b"y")]), str(tmp_path / "lower"))
    bundle = bundler.make(layout + ":x", "b1")
    assert sorted(os.listdir(os.path.join(bundle, "rootfs", "d"))) == ["from-lower", "from-upper"]
