"""procexec.passwd_home / with_home: HOME from an untrusted /etc/passwd (runc and crun set it)."""
import os

from ocirun.procexec import passwd_home, with_home

PASSWD = b"""root:x:0:0:root:/root:/bin/sh
# a comment:x:7:7::/comment:
short:x:5
nohome:x:6:6:::/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
again:x:1000:1000::/second:/bin/sh
"""


def test_home_of_a_uid_is_its_first_entry(tmp_path):
    path = tmp_path / "passwd"
    path.write_bytes(PASSWD)
    assert passwd_home(0, str(path)) == "/root"
    assert passwd_home(1000, str(path)) == "/home/user"
    assert passwd_home(7, str(path)) == "/"        # a comment is no entry
    assert passwd_home(5, str(path)) == "/"        # too few fields
    assert passwd_home(6, str(path)) == "/"        # empty home
    assert passwd_home(4242, str(path)) == "/"     # no entry
    assert passwd_home(0, str(tmp_path / "missing")) == "/"


def test_a_fifo_device_or_magic_link_is_not_read(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert passwd_home(0, str(fifo)) == "/"                  # must not block
    assert passwd_home(0, "/dev/zero") == "/"                 # not a regular file
    real = tmp_path / "passwd"
    real.write_bytes(PASSWD)
    fd = os.open(real, os.O_RDONLY)
    try:
        link = tmp_path / "link"
        os.symlink(f"/proc/self/fd/{fd}", link)               # a magic link to one of our fds
        assert passwd_home(0, str(link)) == "/"
    finally:
        os.close(fd)
    os.symlink(real, tmp_path / "plain")                      # a plain symlink is followed
    assert passwd_home(0, str(tmp_path / "plain")) == "/root"


def test_with_home_adds_it_only_when_missing_or_empty(tmp_path, monkeypatch):
    monkeypatch.setattr("ocirun.procexec.passwd_home", lambda uid: f"/home/{uid}")
    assert with_home(["PATH=/bin"], 5) == ["PATH=/bin", "HOME=/home/5"]
    assert with_home(["HOME=", "A=1"], 5) == ["A=1", "HOME=/home/5"]
    assert with_home(["HOME=/x"], 5) == ["HOME=/x"]
    assert with_home(["HOME=/x", "HOME="], 5) == ["HOME=/home/5"]     # the last one counts, as at execve
