"""A private copy of the shared busybox test rootfs, for tests whose containers may write into it.

Directories, regular files and symlinks only, on the source's filesystem only: a device node left in
a rootfs (a container without a /dev mount gets its default devices made there, as with runc) would
be read forever by a plain shutil.copytree (dev/zero, dev/full) and fill the disk.
"""
import os
import shutil
import stat


def copy_tree(src: str, dst: str) -> None:
    dev = os.lstat(src).st_dev
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = [d for d in dirnames if d not in links and os.lstat(os.path.join(dirpath, d)).st_dev == dev]
        for name in filenames + links:
            path, target = os.path.join(dirpath, name), os.path.join(dst, rel, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(path), target)
            elif stat.S_ISREG(st.st_mode):
                shutil.copy2(path, target)
