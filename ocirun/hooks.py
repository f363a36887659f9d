"""OCI hooks: each hook gets the state JSON on stdin, its own args and env, and an optional timeout.

Hooks are run with fork + execve rather than subprocess: the container's init runs startContainer
hooks after pivot_root, where no module may be imported any more (and subprocess costs ~15 ms).

Decision (runc compatible): a hook without "env" inherits the runtime's environment; "env": [] gives
an empty one. The working directory is the bundle for runtime-namespace hooks and the rootfs for
createContainer hooks, as runc does.
Output of a hook (stdout and stderr) is captured and quoted in the error when it fails.
"""
import os
import select
import _signal as signal  # the C module: signal imports enum (~4 ms)
import time

from ocirun import fastjson
from ocirun.errors import HookError

# Which hook kinds a failure aborts (runtime.md 1.3.0): every kind but poststop, whose failures
# only warn. (runc treats poststart failures as warnings too; the spec makes them errors.)
FATAL_KINDS = {"prestart", "createRuntime", "createContainer", "startContainer", "poststart"}
# Every hook kind the runtime runs, in lifecycle order (`ocirun features` lists these).
KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def run_hooks(kind: str, hooks: list | None, state: dict, *, cwd: str | None = None, warn=None) -> None:
    for index, hook in enumerate(hooks or []):
        try:
            run_hook(hook, state, f"hooks.{kind}[{index}]", cwd=cwd)
        except HookError as exc:
            if kind in FATAL_KINDS or warn is None:
                raise
            warn(str(exc))


def run_poststop(state, warn) -> None:
    """The poststop hooks of a container (a state.State) that is gone: after `delete` destroyed it,
    or after a `create` that failed once its hooks had begun (runtime.md steps 12-13). They get
    the state with status "stopped" and no pid, run in the bundle; failures only warn."""
    poststop = (state.config.get("hooks") or {}).get("poststop")
    if poststop:
        hook_state = dict(state.oci_state(), status="stopped")
        hook_state.pop("pid", None)
        run_hooks("poststop", poststop, hook_state, cwd=state.bundle, warn=warn)


def run_hook(hook: dict, state: dict, label: str, *, cwd: str | None = None) -> None:
    path = hook["path"]
    args = hook.get("args") or [path]
    env_list = hook.get("env")
    env = dict(os.environ) if env_list is None else dict(e.split("=", 1) for e in env_list if "=" in e)
    timeout = hook.get("timeout")
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: nothing but dup2, chdir and execve, then _exit
        try:
            os.dup2(stdin_r, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            if cwd:
                os.chdir(cwd)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            os.execve(path, args, env)
        except OSError as exc:
            os.write(2, f"exec {path}: {exc.strerror}".encode())
        finally:
            os._exit(127)
    os.close(stdin_r)
    os.close(out_w)
    try:
        os.write(stdin_w, fastjson.dumps(state).encode())
    except OSError:
        pass  # the hook need not read its stdin
    os.close(stdin_w)
    status, output = _wait(pid, out_r, timeout)
    os.close(out_r)
    if status is None:
        raise HookError(f"{label} ({path}): timed out after {timeout}s")
    if status != 0:
        text = output.decode(errors="replace").strip()
        what = (f"killed by signal {-status}" if status < 0 else f"exit status {status}")
        raise HookError(f"{label} ({path}): {what}" + (f": {text}" if text else ""))


_POLL_MAX_MS = (1 << 31) - 1


def _wait(pid: int, out_fd: int, timeout: float | None) -> tuple[int | None, bytes]:
    """Collect the hook's output and exit status; None status on timeout (the hook is killed)."""
    deadline = None if not timeout else time.monotonic() + timeout
    chunks: list[bytes] = []
    poller = select.poll()
    poller.register(out_fd, select.POLLIN | select.POLLHUP)
    open_pipe = True
    while open_pipe:
        # at most ~24 days a poll (poll(2) takes an int of ms); a timeout can be longer than that
        wait_ms = -1 if deadline is None else max(0, min(int((deadline - time.monotonic()) * 1000), _POLL_MAX_MS))
        if not poller.poll(wait_ms):
            if time.monotonic() < deadline:
                continue
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, b"".join(chunks)
        data = os.read(out_fd, 65536)
        if data:
            if sum(map(len, chunks)) < 65536:
                chunks.append(data)
        else:
            open_pipe = False
    # The pipe closed; the hook may still run (it closed its stdout): honour the timeout still.
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), b"".join(chunks)
        if deadline is not None and time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, b"".join(chunks)
        time.sleep(0.002)
