"""procfs.write_beneath, the one checked /proc write (sysctl, oom_score_adj, LSM exec labels)."""
import os

import pytest

from ocirun.errors import OciError, SyscallError
from ocirun.linux import lsm, procfs


def test_a_file_not_on_procfs_is_refused_and_the_next_name_is_tried(tmp_path):
    (tmp_path / "attr").write_text("")
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(OciError, match=r"^f: /proc/attr is not on procfs; refusing to write it$"):
            procfs.write_beneath(fd, ("missing", "attr"), b"x", "f")
        with pytest.raises(SyscallError, match=r"open /proc/gone \(f\)"):
            procfs.write_beneath(fd, ("missing", "gone"), b"x", "f")
    finally:
        os.close(fd)
    assert (tmp_path / "attr").read_text() == ""


def test_lsm_labels_go_through_the_checked_write(tmp_path, monkeypatch):
    (tmp_path / "thread-self").mkdir()
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    monkeypatch.setattr(lsm, "_proc_fd", fd)
    try:
        (tmp_path / "thread-self" / "attr").mkdir()
        (tmp_path / "thread-self" / "attr" / "exec").write_text("")
        with pytest.raises(OciError, match="is not on procfs"):
            lsm._write_attr(("thread-self/attr/exec",), b"label", "process.selinuxLabel")
    finally:
        os.close(fd)
