"""The exception hierarchy. Every error renders as one line that names the field, path or syscall."""
import os


class OciError(Exception):
    """Base of every error ocirun reports; the CLI prints str(e) and exits with exit_code."""

    exit_code = 1


class ConfigError(OciError):
    """A config.json field is wrong: rendered as `<json path>: <message>`."""

    def __init__(self, path: str, msg: str):
        self.path = path
        self.msg = msg
        super().__init__(one_line(f"{path}: {msg}" if path else msg))


def one_line(text: str) -> str:
    """Control characters as JSON escapes: a config key or value may hold a newline ("\\n" as a
    capability set name), and the error naming it must still be one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else (
        {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or f"\\u{ord(c):04x}") for c in text)


class ContainerNotFound(OciError):
    def __init__(self, cid: str):
        self.id = cid
        super().__init__("container does not exist")


class ContainerExists(OciError):
    def __init__(self, cid: str):
        super().__init__(f"container with id exists: {cid}")


class InvalidState(OciError):
    """An operation is not allowed in the container's current status."""

    def __init__(self, cid: str, status: str, op: str, msg: str | None = None):
        self.status = status
        super().__init__(msg or f"cannot {op} container {cid} in status {status}")


class CgroupError(OciError):
    pass


class HookError(OciError):
    pass


class InitError(OciError):
    """The container's init process reported a failure while setting up."""


class SyscallError(OciError, OSError):
    """A failed system call, with what it was called on: `mount src=proc, dst=/x, flags=...: errno text`."""

    def __init__(self, errno: int, op: str, detail: str = ""):
        self.errno = errno
        self.op = op
        self.detail = detail
        text = os.strerror(errno)
        OSError.__init__(self, errno, text)
        self.args = (errno, text)
        self.message = f"{op} {detail}: {text}" if detail else f"{op}: {text}"

    def __str__(self) -> str:
        return self.message


def describe_oserror(exc: OSError) -> str:
    """OSError as one line: `open /x: No such file or directory` (runc words that podman matches)."""
    if isinstance(exc, SyscallError):
        return str(exc)
    text = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"{exc.filename}: {text}"
    return text


def go_style(msg: str) -> str:
    """Errno texts as Go (runc) prints them: "no such file or directory", not "No such file...".

    Managers match these words case-sensitively (dockerd maps "no such file or directory" to exit
    127 and "permission denied" to 126), so the final message of every failed command goes
    through here."""
    import errno as _errno
    for number in _errno.errorcode:
        text = os.strerror(number)
        if text in msg and text[:1].isupper():
            msg = msg.replace(text, text[0].lower() + text[1:])
    return msg


class suppress:
    """contextlib.suppress without importing contextlib (with collections and functools, about
    1.5 ms on every command)."""

    def __init__(self, *exceptions):
        self.exceptions = exceptions

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        return exc_type is not None and issubclass(exc_type, self.exceptions)
