"""A process run in the foreground (`run`, `exec` without --detach): its signals forwarded, waited
for while our other children (orphans re-parented to us, a child subreaper) are reaped."""
import os

import _signal  # not signal: its Signals enum imports enum, ~4 ms between the process's start and our wait


def _catchable() -> set[int]:
    """The signals signal.Signals names (SIGHUP .. SIGSYS, SIGRTMIN, SIGRTMAX), as numbers."""
    return {getattr(_signal, name) for name in dir(_signal) if name.startswith("SIG") and not name.startswith("SIG_")}


def forward_signals(pid: int, pidfd: int | None = None, skip: tuple[str, ...] = ()):
    """Every catchable signal we get goes to the process (through pidfd when given: never a recycled
    pid), except SIGCHLD and the names in skip; returns a function that restores our handlers."""
    send = (lambda signum: _signal.pidfd_send_signal(pidfd, signum)) if pidfd is not None else \
        (lambda signum: os.kill(pid, signum))
    skipped = {_signal.SIGKILL, _signal.SIGSTOP, _signal.SIGCHLD} | {getattr(_signal, name) for name in skip}
    old = {}

    def forward(signum, _frame):
        try:
            send(signum)
        except OSError:
            pass
    for sig in sorted(_catchable() - skipped):
        try:
            old[sig] = _signal.signal(sig, forward)
        except (OSError, ValueError):
            pass

    def restore():
        for sig, handler in old.items():
            try:
                _signal.signal(sig, handler)
            except (OSError, ValueError, TypeError):
                pass
    return restore


def wait_for(pid: int, none_left: int) -> int:
    """Reap our children until pid exits; its exit code (128+N for a signal), or none_left when we
    have no child any more (it was not ours to wait for)."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return none_left
        if got == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
