"""Test images made with real tools: umoci builds the layout (init/new/unpack/repack/config) and
adds the crafted layers (`umoci raw add-layer`), skopeo recompresses (zstd, uncompressed).

The busybox image has three layers:
1. (umoci repack) busybox with its applet links, /etc/passwd and /etc/group with a user `app`,
   files to delete and replace, /data with files, /opt/keep, a setuid file, a file owned by 1000;
2. (umoci repack) deletes /etc/deleteme and /opt/keep (umoci writes .wh. whiteouts), replaces
   /etc/replaceme (new content and mode) and turns the file /etc/filetodir into a directory;
3. (a tar written here, added with `umoci raw add-layer`) /data made opaque (.wh..wh..opq): only
   data/new is left of it. umoci repack never writes opaque whiteouts, hence this layer.
"""
import io
import os
import shutil
import subprocess
import tarfile

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "ls", "cat", "echo", "id", "stat", "true", "sleep", "touch", "rm", "mkdir", "test"]


def run(*cmd, cwd=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise AssertionError(f"{cmd} failed: {proc.stderr}")
    return proc.stdout


def write(path: str, text: str, mode: int = 0o644, owner=(0, 0)) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chown(path, *owner)
    os.chmod(path, mode)


def tar_bytes(entries) -> bytes:
    """A tar of (TarInfo, data bytes or None) pairs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def tinfo(name: str, kind=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, linkname="", mtime=1_700_000_000, **kw):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.linkname = linkname
    info.mtime = mtime
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def add_layer(layout_ref: str, tar_data: bytes, workdir: str) -> None:
    path = os.path.join(workdir, "layer.tar")
    with open(path, "wb") as f:
        f.write(tar_data)
    run("umoci", "raw", "add-layer", "--image", layout_ref, path)
    os.unlink(path)


def build_busybox_image(workdir: str, tag: str = "latest") -> str:
    """An OCI layout at workdir/layout with `tag`; returns the layout path."""
    layout = os.path.join(workdir, "layout")
    ref = f"{layout}:{tag}"
    bundle = os.path.join(workdir, "build-bundle")
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", ref)
    run("umoci", "unpack", "--image", ref, bundle)
    root = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
    for applet in APPLETS:
        os.symlink("busybox", os.path.join(root, "bin", applet))
    write(os.path.join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
    write(os.path.join(root, "etc/group"), "root:x:0:\napp:x:1000:\nwheel:x:10:app\naudio:x:29:app,root\n")
    write(os.path.join(root, "etc/deleteme"), "delete me\n")
    write(os.path.join(root, "etc/replaceme"), "old\n")
    write(os.path.join(root, "etc/filetodir"), "a file first\n")
    write(os.path.join(root, "data/a"), "a\n")
    write(os.path.join(root, "data/b"), "b\n")
    write(os.path.join(root, "data/sub/c"), "c\n")
    write(os.path.join(root, "opt/keep/file"), "kept?\n")
    write(os.path.join(root, "bin/suid"), "#!/bin/sh\n", mode=0o4755)
    os.makedirs(os.path.join(root, "home/app"))
    os.chown(os.path.join(root, "home/app"), 1000, 1000)
    os.chmod(os.path.join(root, "home/app"), 0o750)
    write(os.path.join(root, "home/app/file"), "mine\n", mode=0o600, owner=(1000, 1000))
    os.makedirs(os.path.join(root, "tmp"))
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    run("umoci", "repack", "--refresh-bundle", "--image", ref, bundle)   # the next repack is a delta

    os.unlink(os.path.join(root, "etc/deleteme"))
    write(os.path.join(root, "etc/replaceme"), "new\n", mode=0o600)
    shutil.rmtree(os.path.join(root, "opt/keep"))
    os.unlink(os.path.join(root, "etc/filetodir"))
    write(os.path.join(root, "etc/filetodir/inside"), "now a dir\n")
    run("umoci", "repack", "--image", ref, bundle)
    shutil.rmtree(bundle)

    add_layer(ref, tar_bytes([
        (tinfo("data/", tarfile.DIRTYPE, 0o755), None),
        (tinfo("data/.wh..wh..opq"), b""),
        (tinfo("data/new"), b"new\n"),
    ]), workdir)
    run("umoci", "config", "--image", ref,
        "--config.entrypoint", "/bin/sh", "--config.cmd", "-c", "--config.cmd", "id",
        "--config.env", "GREETING=hello", "--config.env", "PATH=/bin",
        "--config.workingdir", "/home/app", "--config.user", "app",
        "--config.exposedports", "8080/tcp", "--config.label", "org.example.name=busybox-test",
        "--config.stopsignal", "SIGUSR1")
    return layout


def skopeo_copy(src_layout: str, dst_layout: str, tag: str, compression: str) -> None:
    """Copy src:tag to dst:tag with skopeo, its layers recompressed: "zstd", or "none" (uncompressed:
    skopeo decompresses only into its `dir:` transport, so the copy goes through one)."""
    src, dst = f"oci:{src_layout}:{tag}", f"oci:{dst_layout}:{tag}"
    if compression == "zstd":
        run("skopeo", "copy", "--quiet", "--dest-compress-format", "zstd", src, dst)
        return
    via = dst_layout + ".dir"
    run("skopeo", "copy", "--quiet", "--dest-decompress", src, f"dir:{via}")
    run("skopeo", "copy", "--quiet", "--dest-oci-accept-uncompressed-layers", f"dir:{via}", dst)
    shutil.rmtree(via)
