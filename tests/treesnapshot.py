"""One picture of a directory tree, to compare before and after (images, host dirs a test must not touch)."""

import hashlib
import os
import stat


def tree_snapshot(root: str) -> dict:
    """relative path -> (mode, uid, gid, content hash / link target / device) for a whole tree, root as "."."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(d, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    extra = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = st.st_rdev
            else:
                extra = None
            out[os.path.relpath(path, root)] = (oct(st.st_mode), st.st_uid, st.st_gid, extra)
    st = os.lstat(root)
    out["."] = (oct(st.st_mode), st.st_uid, st.st_gid, None)
    return out
