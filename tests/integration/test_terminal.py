"""Terminals (runc's docs/terminals.md): --console-socket for create and exec (the master is sent over
SCM_RIGHTS once, nobody waits for the receiver), `run` and `exec --tty` in the foreground with the
runtime proxying its own terminal, process.consoleSize, and the errors of the impossible modes.

The foreground modes are driven through a pty the test allocates, as a user's terminal would be.
"""
import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import termios
import time

import pytest

from tests.conftest import OCIRUN, base_config

pytestmark = pytest.mark.root


def cid(name: str) -> str:
    return f"{name}-{os.getpid()}"


def tty_config(args, size=None):
    config = base_config(args)
    config["process"]["terminal"] = True
    if size:
        config["process"]["consoleSize"] = {"height": size[0], "width": size[1]}
    return config


class ConsoleReceiver:
    """What conmon and containerd's shim do: listen, accept one connection, take the fd."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)

    def receive(self, timeout=10):
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            name, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        assert len(fds) == 1
        return name, fds[0]

    def close(self):
        self.sock.close()


@pytest.fixture
def receiver(tmp_path):
    r = ConsoleReceiver(str(tmp_path / "console.sock"))
    yield r
    r.close()


def read_until_eof(fd, timeout=20, until=None):
    """Read a pty master until EIO (every slave closed), or until `until` appears."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
        if until and until in out:
            break
    return out


def is_pty_master(fd):
    st = os.fstat(fd)
    return os.major(st.st_rdev) == 5 and os.minor(st.st_rdev) == 2     # /dev/ptmx


# --- --console-socket ----------------------------------------------------------------------------

def test_create_sends_the_pty_master_over_the_console_socket(ocirun, receiver):
    c = cid("cs")
    script = "tty; [ /dev/console -ef $(tty) ] && echo console-is-the-pty; stty size; ls -l /proc/self/fd/0"
    bundle = ocirun.bundle(tty_config(["sh", "-c", script], size=(33, 111)))
    ocirun("create", "-b", bundle, "--console-socket", receiver.path, c, check=True)   # did not wait for us
    name, master = receiver.receive()
    try:
        assert is_pty_master(master)
        assert name.startswith(b"/dev/pts/")
        ocirun("start", c, check=True)
        out = read_until_eof(master).decode()
    finally:
        os.close(master)
    lines = out.split("\r\n")
    assert lines[0].startswith("/dev/pts/") and lines[0] == name.decode()
    assert lines[1] == "console-is-the-pty"
    assert lines[2] == "33 111"                     # process.consoleSize
    assert "/dev/pts/" in lines[3]                  # stdio is the pty


def test_the_console_pty_belongs_to_process_user(ocirun, receiver, tmp_path):
    # runc's fixStdioPermissions: the pty's uid is process.user's; its group stays devpts' gid=5
    c = cid("own")
    config = tty_config(["sh", "-c", "stat -c '%u %g' $(tty); id -u"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    ocirun("create", "-b", ocirun.bundle(config), "--console-socket", receiver.path, c, check=True)
    name, master = receiver.receive()
    try:
        ocirun("start", c, check=True)
        out = read_until_eof(master).decode()
    finally:
        os.close(master)
    assert out.split("\r\n")[:2] == ["1000 5", "1000"], out
    # exec -t as another user: that process's pty is that user's
    ocirun("delete", "-f", c)
    ocirun("run", "-d", "-b", ocirun.bundle(base_config(["sleep", "1000"])), c, check=True)
    proc = ocirun("exec", "-d", "-t", "-u", "1234:1234", "--console-socket", receiver.path, c,
                  "sh", "-c", "stat -c '%u %g' $(tty)")
    assert proc.returncode == 0, proc.stderr
    name, master = receiver.receive()
    try:
        out = read_until_eof(master).decode()
    finally:
        os.close(master)
    assert out.split("\r\n")[0] == "1234 5", out


def test_create_with_a_terminal_and_no_console_socket_is_an_error(ocirun):
    proc = ocirun("create", "-b", ocirun.bundle(tty_config(["true"])), cid("nocs"))
    assert proc.returncode != 0 and "console socket" in proc.stderr
    assert cid("nocs") not in ocirun("list", "-q").stdout.split()


def test_exec_tty_with_console_socket_sends_the_master(ocirun, receiver, tmp_path):
    c = cid("ecs")
    ocirun("run", "-d", "-b", ocirun.bundle(base_config(["sleep", "1000"])), c, check=True)
    pidfile = str(tmp_path / "p")
    proc = ocirun("exec", "-d", "-t", "--console-socket", receiver.path, "--pid-file", pidfile, c,
                  "sh", "-c", "tty; read x; echo got:$x; exit 4")
    assert proc.returncode == 0, proc.stderr
    name, master = receiver.receive()
    try:
        out = read_until_eof(master, until=b"\n")
        assert out.decode().strip().startswith("/dev/pts/")
        os.write(master, b"hi\n")
        out = read_until_eof(master)
    finally:
        os.close(master)
    assert b"got:hi" in out
    pid = int(open(pidfile).read())
    # EOF on the master comes when the process closes the pty, a moment before it has exited
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z":
        assert time.monotonic() < deadline, "the exec'd process did not exit after its pty closed"
        time.sleep(0.01)


def test_exec_console_socket_needs_detach_and_tty_as_runc(ocirun, receiver):
    c = cid("ecs2")
    ocirun("run", "-d", "-b", ocirun.bundle(base_config(["sleep", "1000"])), c, check=True)
    proc = ocirun("exec", "-d", "-t", c, "tty")
    assert proc.returncode == 255
    assert "cannot allocate tty if runc will detach without setting console socket" in proc.stderr
    proc = ocirun("exec", "--console-socket", receiver.path, c, "tty")
    assert proc.returncode == 255
    assert "cannot use console socket if runc will not detach or allocate tty" in proc.stderr


# --- the foreground: the runtime proxies the terminal ---------------------------------------------

class Terminal:
    """A pty the test owns; the runtime runs with its slave as stdin/stdout/stderr."""

    def __init__(self, rows=0, cols=0):
        self.master, self.slave = os.openpty()
        if rows or cols:
            self.resize(rows, cols)
        self.proc = None

    def resize(self, rows, cols):
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def spawn(self, args):
        self.attrs_before = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen(args, stdin=self.slave, stdout=self.slave, stderr=self.slave,
                                     start_new_session=True)
        return self.proc

    def read(self, until=None, timeout=20):
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    break
                out += data
                if until and until in out:
                    return out
            elif until is None and self.proc.poll() is not None:
                break
        return out

    def wait(self, timeout=30):
        code = self.proc.wait(timeout=timeout)
        return code

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal():
    t = Terminal()
    yield t
    t.close()


def test_run_in_the_foreground_with_a_terminal_proxies_it_and_exits_with_the_status(ocirun, terminal):
    c = cid("runt")
    bundle = ocirun.bundle(tty_config(["sh", "-c", "tty; [ /dev/console -ef $(tty) ] && echo console; "
                                                   "echo ready; read x; echo got:$x; exit 5"]))
    terminal.spawn(OCIRUN + ["--root", ocirun.root, "run", "-b", bundle, c])
    out = terminal.read(until=b"ready")
    assert b"ready" in out, out
    lines = out.decode().split("\r\n")
    assert lines[0].startswith("/dev/pts/") and lines[1] == "console", lines
    os.write(terminal.master, b"hello\r")
    out += terminal.read()
    assert terminal.wait() == 5
    assert b"got:hello" in out
    assert b"\r\r\n" not in out             # ONLCR off in the container: our terminal does it
    assert termios.tcgetattr(terminal.slave) == terminal.attrs_before     # raw mode undone
    assert c not in ocirun("list", "-q").stdout.split()


def test_run_foreground_terminal_puts_our_terminal_in_raw_mode_while_running(ocirun, terminal):
    c = cid("raw")
    terminal.spawn(OCIRUN + ["--root", ocirun.root, "run", "-b",
                             ocirun.bundle(tty_config(["sh", "-c", "echo ready; read x"])), c])
    assert b"ready" in terminal.read(until=b"ready")
    lflag = termios.tcgetattr(terminal.slave)[3]
    assert not lflag & (termios.ECHO | termios.ICANON | termios.ISIG)
    os.write(terminal.master, b"\r")
    terminal.read()
    assert terminal.wait() == 0


def test_run_foreground_console_size_is_applied(ocirun, terminal):
    bundle = ocirun.bundle(tty_config(["stty", "size"], size=(41, 123)))
    terminal.spawn(OCIRUN + ["--root", ocirun.root, "run", "-b", bundle, cid("sz")])
    out = terminal.read()
    assert terminal.wait() == 0
    assert b"41 123" in out


def test_run_foreground_copies_our_terminal_size_without_console_size(ocirun):
    t = Terminal(27, 91)
    try:
        t.spawn(OCIRUN + ["--root", ocirun.root, "run", "-b", ocirun.bundle(tty_config(["stty", "size"])),
                          cid("hostsz")])
        out = t.read()
        assert t.wait() == 0
        assert b"27 91" in out
    finally:
        t.close()


def test_exec_tty_in_the_foreground(ocirun, terminal):
    c = cid("et")
    ocirun("run", "-d", "-b", ocirun.bundle(base_config(["sleep", "1000"])), c, check=True)
    terminal.spawn(OCIRUN + ["--root", ocirun.root, "exec", "-t", c, "sh", "-c",
                             "tty; stty size; echo ready; read x; echo got:$x; exit 6"])
    out = terminal.read(until=b"ready")
    assert b"ready" in out, out
    assert out.decode().split("\r\n")[0].startswith("/dev/pts/")
    os.write(terminal.master, b"abc\r")
    out += terminal.read()
    assert terminal.wait() == 6
    assert b"got:abc" in out


def test_exec_tty_forwards_window_size_changes(ocirun, terminal):
    c = cid("winch")
    ocirun("run", "-d", "-b", ocirun.bundle(base_config(["sleep", "1000"])), c, check=True)
    terminal.resize(20, 70)
    terminal.spawn(OCIRUN + ["--root", ocirun.root, "exec", "-t", c, "sh", "-c",
                             "stty size; echo ready; read x; stty size"])
    out = terminal.read(until=b"ready")
    assert b"20 70" in out, out
    terminal.resize(50, 132)
    terminal.proc.send_signal(signal.SIGWINCH)      # what the kernel sends the terminal's foreground group
    time.sleep(0.3)
    os.write(terminal.master, b"\r")
    out = terminal.read()
    assert terminal.wait() == 0
    assert b"50 132" in out


def test_exec_tty_in_the_foreground_without_any_terminal_fails_as_runc(ocirun):
    c = cid("notty")
    ocirun("run", "-d", "-b", ocirun.bundle(base_config(["sleep", "1000"])), c, check=True)
    proc = subprocess.run(OCIRUN + ["--root", ocirun.root, "exec", "-t", c, "true"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, start_new_session=True, timeout=60)
    assert proc.returncode == 255 and "/dev/tty" in proc.stderr
