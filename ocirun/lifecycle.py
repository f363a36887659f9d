"""The lifecycle commands of runtime.md: create, start, state, kill, delete (and run, list).

Which statuses each command accepts, and the words of a refusal, are in ocirun/statuscheck.py.
"""
import os
import sys
import time

from ocirun import log
from ocirun import state as st
from ocirun.cliparse import need_id, parse
from ocirun import fastjson
from ocirun.errors import ContainerNotFound, HookError, OciError, suppress

CREATE_FLAGS = {"bundle": "str", "pid-file": "str", "console-socket": "str", "no-pivot": "bool",
                "no-new-keyring": "bool", "preserve-fds": "int", "detach": "bool", "keep": "bool",
                "no-subreaper": "bool"}
CREATE_ALIASES = {"b": "bundle", "d": "detach"}


def check_allowed(state: st.State, op: str) -> str:
    from ocirun import statuscheck
    return statuscheck.check(state.id, state.status, op)


# --- create / start ------------------------------------------------------------------------------

def _create_options(g, opts):
    from ocirun.parent import CreateOptions
    listen_fds = socket_activation_fds()
    return CreateOptions(bundle=opts["bundle"] or ".", pid_file=opts["pid-file"],
                         console_socket=opts["console-socket"], no_pivot=opts["no-pivot"],
                         preserve_fds=(opts["preserve-fds"] or 0) + listen_fds, listen_fds=listen_fds,
                         systemd_cgroup=g.systemd_cgroup, new_keyring=not opts["no-new-keyring"])


def socket_activation_fds() -> int:
    """systemd socket activation (sd_listen_fds(3)), as runc supports it: when LISTEN_PID is our
    pid, the LISTEN_FDS fds from 3 on are passed to the container, which gets LISTEN_FDS=N and
    LISTEN_PID=1 in its environment. They come before the --preserve-fds ones."""
    try:
        count = int(os.environ.get("LISTEN_FDS", ""))
        pid = int(os.environ.get("LISTEN_PID", ""))
    except ValueError:
        return 0
    return count if pid == os.getpid() and count > 0 else 0


def create_cmd(g, argv: list[str]) -> int:
    opts, pos = parse(argv, CREATE_FLAGS, CREATE_ALIASES)
    cid = need_id(pos, "create")
    from ocirun.parent import create_container
    create_container(g.root, cid, _create_options(g, opts))
    return 0


def start_cmd(g, argv: list[str]) -> int:
    _, pos = parse(argv, {})
    cid = need_id(pos, "start")
    start(g.root, cid)
    return 0


def start(root: str, cid: str) -> st.State:
    with st.lock(root, cid):
        state = st.load(root, cid)
        check_allowed(state, "start")
        fifo = os.path.join(state.dir, st.FIFO)
        log.timing("start: state loaded")
        try:
            _release_init(state, fifo)
            log.timing("start: the init released, program exec'd (startContainer hooks)")
            # state.json is not rewritten: "running" would never be read (see ocirun/state.py)
            # poststart runs once the program has been exec'd (see _release_init), before start returns.
            all_hooks = state.config.get("hooks") or {}
            if all_hooks.get("poststart"):
                from ocirun import hooks
                # runtime.md: poststart sees "running" and the container's pid, even when the
                # program has already exited by now (its status would be derived as "stopped")
                hook_state = dict(state.oci_state(), status=st.RUNNING, pid=state.pid)
                hooks.run_hooks("poststart", all_hooks["poststart"], hook_state, cwd=state.bundle)
                log.timing("start: poststart hooks")
        except HookError:
            # runtime.md steps 7 and 9: a failing startContainer or poststart hook is an error that
            # stops the container and continues at step 12: destroy it, then the poststop hooks.
            _force_stop(state)
            destroy(state, run_poststop=True)
            raise
    return state


def _release_init(state: st.State, fifo: str) -> None:
    """Open the fifo (which unblocks the init's open for writing), read its "0", then read to EOF:
    the init holds the write end O_CLOEXEC, so EOF comes exactly when execve succeeded, while any
    bytes after "0" are the init's report of why it could not exec."""
    import select   # (here: state, kill and delete do not pay for it)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        data = b""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(100):
                chunk = os.read(fd, 4096)
                if not chunk:
                    if data:
                        break  # EOF after "0": exec'd (or died, which the error text tells)
                    # no writer yet: the init has not opened its end; keep waiting while it lives
                    if not state.init_alive():
                        raise OciError("container init exited before start")
                    time.sleep(0.001)
                    continue
                data += chunk
            elif not state.init_alive():
                break
        with suppress(FileNotFoundError):
            os.unlink(fifo)
    finally:
        os.close(fd)
    if data[1:]:
        text = data[1:].decode(errors="replace")
        raise (HookError if text.startswith("hooks.") else OciError)(text)
    if not data:
        raise OciError("container init exited before start")


# --- state / list --------------------------------------------------------------------------------

def state_cmd(g, argv: list[str]) -> int:
    _, pos = parse(argv, {})
    cid = need_id(pos, "state")
    state = st.load(g.root, cid)
    sys.stdout.write(fastjson.dumps_indented(state.runc_state()) + "\n")
    return 0


def list_cmd(g, argv: list[str]) -> int:
    opts, pos = parse(argv, {"format": "str", "quiet": "bool"}, {"f": "format", "q": "quiet"})
    foreign: list[str] = []
    ids = st.list_ids(g.root, foreign)
    for name in sorted(foreign):    # another tool's file in --root must not break list (runc's does)
        log.warning(f"{os.path.join(g.root, name)}: not a container, skipped")
    if opts["quiet"]:
        sys.stdout.write("".join(cid + "\n" for cid in ids))
        return 0
    states = []
    for cid in ids:
        try:
            states.append(st.load(g.root, cid).runc_state())
        except ContainerNotFound:
            if st.is_half_made(g.root, cid):    # else deleted meanwhile, or a create under way
                log.warning(f"container {cid}: no state file, from a create that did not finish "
                            f"(left out; `delete --force {cid}` removes it)")
        except OciError as exc:     # one damaged entry must not hide the others
            log.warning(f"{exc} (left out; `delete --force {cid}` removes it)")
    fmt = opts["format"] or "table"
    if fmt == "json":
        sys.stdout.write(fastjson.dumps(states) + "\n")
        return 0
    if fmt != "table":
        raise OciError(f"invalid format option: {fmt}")
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]] for s in states]
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        sys.stdout.write("".join(cell.ljust(w + 3) if i < 5 else cell for i, (cell, w) in enumerate(zip(r, widths))).rstrip() + "\n")
    return 0


# --- kill / delete -------------------------------------------------------------------------------

def kill_cmd(g, argv: list[str]) -> int:
    opts, pos = parse(argv, {"all": "bool"}, {"a": "all"})
    cid = need_id(pos, "kill", extra_ok=1)
    from ocirun.signals import parse_signal
    sig = parse_signal(pos[1]) if len(pos) > 1 else 15
    kill(g.root, cid, sig, all_processes=opts["all"])
    return 0


def kill(root: str, cid: str, sig: int, all_processes: bool = False) -> None:
    state = st.load(root, cid)
    if not all_processes and state.is_live():
        # kill accepts each live status (created, running, paused), so which one it is (the freezer,
        # the fifo: ~0.35 ms with their imports) is not worked out; signal_init checks the pid again
        signal_init(state, sig)
        return
    status = state.status
    if all_processes and state.cgroup and status in (st.STOPPED, st.CREATED, st.RUNNING, st.PAUSED):
        # runc: kill --all also reaches what is left in the cgroup after pid 1 has gone.
        from ocirun.linux.cgroups import manager_from_dict
        mgr = manager_from_dict(state.cgroup)
        with suppress(OSError):
            mgr.kill(sig)
        return  # not check_allowed now: the status it re-reads may already be "stopped"
    check_allowed(state, "kill")
    if all_processes:
        return
    signal_init(state, sig)


def signal_init(state: st.State, sig: int) -> None:
    """Signal the init through a pidfd opened and then checked against the recorded start time,
    so a pid recycled in between is never signalled."""
    import _signal  # the C module: `signal` imports enum (~1.5 ms)
    if state.pid <= 0:      # a create that died before the init's pid was known
        raise OciError("container not running")
    try:
        pidfd = os.pidfd_open(state.pid)
    except ProcessLookupError:
        raise OciError("container not running") from None
    try:
        if not state.init_alive():
            raise OciError("container not running")
        _signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        raise OciError("container not running") from None
    finally:
        os.close(pidfd)


def delete_cmd(g, argv: list[str]) -> int:
    opts, pos = parse(argv, {"force": "bool"}, {"f": "force"})
    cid = need_id(pos, "delete")
    delete(g.root, cid, force=opts["force"])
    return 0


def delete(root: str, cid: str, force: bool = False) -> None:
    try:
        lock = st.lock(root, cid)
        lock.__enter__()
    except OciError:
        if force:
            return  # runc: delete --force of a container that does not exist succeeds
        raise
    try:
        try:
            state = st.load(root, cid)
        except (st.DamagedState, ContainerNotFound) as exc:
            if not force:
                raise
            why = str(exc) if isinstance(exc, st.DamagedState) else f"container {cid}: no state file"
            # (not found: a directory without state.json, from a create killed before it wrote one)
            state = _recovered_state(root, cid, why)
            _force_stop(state)
            destroy(state, run_poststop=False)
            return
        status = state.status
        if status != st.STOPPED:
            if not force:
                check_allowed(state, "delete")
            _force_stop(state)
        destroy(state, run_poststop=status != st.CREATING)
    finally:
        lock.__exit__(None, None, None)


def _recovered_state(root: str, cid: str, why: str) -> st.State:
    """What `delete --force` can still know of a container whose state.json is damaged or missing:
    its cleanup record (cgroup, init pid, mounts); without one, the default cgroup of the id. When neither
    exists but a state.json does, its processes cannot be found: an error, never a silent success."""
    cdir = os.path.join(root, cid)
    record = st.load_cleanup_record(cdir)
    if record is None and os.path.lexists(os.path.join(cdir, st.STATE_FILE)):
        from ocirun.linux.cgroups import new_manager
        from ocirun.parent import default_cgroup_name
        mgr = new_manager(None, default_cgroup_name(root, cid))
        if not mgr.exists():
            raise OciError(f"{why}; and without a cleanup record its processes cannot be found: "
                           f"stop them, then remove {cdir}")
        record = {"cgroup": mgr.to_dict(), "pid": 0, "pid_start": None}
    record = record or {"cgroup": None, "pid": 0, "pid_start": None}  # killed before anything ran
    log.warning(f"{why}: deleting what its cleanup record (or the default cgroup) names")
    return st.State(root, cid, {"status": st.CREATING, "bundle": "", "config": {}, "cgroup": record["cgroup"],
                                "pid": record["pid"], "pid_start": record.get("pid_start"),
                                "host_mounts": record.get("host_mounts")})


def _force_stop(state: st.State) -> None:
    """SIGKILL everything in the container (thawing a paused one so it can die), wait for pid 1.
    Its processes still running after that is an error: delete must not report success."""
    if state.cgroup:
        from ocirun.linux.cgroups import manager_from_dict
        mgr = manager_from_dict(state.cgroup)
        with suppress(OSError, OciError):
            mgr.kill(9)
    with suppress(OciError):
        signal_init(state, 9)
    deadline = time.monotonic() + 10
    while state.init_alive() and time.monotonic() < deadline:
        time.sleep(0.002)
    if state.init_alive():
        raise OciError(f"container {state.id}: init pid {state.pid} did not die after SIGKILL")


def destroy(state: st.State, run_poststop: bool = True) -> None:
    """Release everything the container holds: cgroup, state directory; then poststop hooks."""
    if state.cgroup:
        from ocirun.linux.cgroups import manager_from_dict
        mgr = manager_from_dict(state.cgroup)
        # What is left in the cgroup once pid 1 is gone (a container sharing the host's pid
        # namespace, a process that escaped the init's death) dies with it, as runc does.
        with suppress(OSError, OciError):
            if mgr.pids():
                mgr.kill(9)
        mgr.destroy()
    if state.data.get("host_mounts"):   # no mount namespace of its own: its mounts are the runtime's
        from ocirun.linux import hostmounts
        hostmounts.release(state.data["host_mounts"], state.id)
    cdir = state.dir
    try:
        names = os.listdir(cdir)
    except FileNotFoundError:
        names = []
    for name in names:
        try:
            os.unlink(os.path.join(cdir, name))
        except FileNotFoundError:
            pass
        except IsADirectoryError:   # a damaged state: a directory where state.json was
            import shutil
            shutil.rmtree(os.path.join(cdir, name), ignore_errors=True)
    with suppress(FileNotFoundError):
        os.rmdir(cdir)
    if run_poststop and (state.config.get("hooks") or {}).get("poststop"):
        from ocirun import hooks
        hooks.run_poststop(state, warn=log.warning)


# --- run -----------------------------------------------------------------------------------------

def run_cmd(g, argv: list[str]) -> int:
    opts, pos = parse(argv, CREATE_FLAGS, CREATE_ALIASES)
    cid = need_id(pos, "run")
    from ocirun.parent import create_container
    from ocirun.linux import syscalls as sc
    if not opts["detach"] and not opts["no-subreaper"]:
        # The container's pid 1 is re-parented to us (the init double-forks), so we can reap it.
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    create_opts = _create_options(g, opts)
    if opts["detach"]:
        create_container(g.root, cid, create_opts)
        start(g.root, cid)
        return 0
    console = None
    if not opts["console-socket"]:
        # process.terminal in the foreground: the pty master comes back over this socketpair and
        # ttyproxy copies between it and our own stdio (runc's tty.go)
        import _socket  # the C module: `socket` costs ~4 ms of imports on every run
        console, create_opts.console_sock = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        state = create_container(g.root, cid, create_opts)
    finally:
        if create_opts.console_sock is not None:
            create_opts.console_sock.close()
    terminal = console is not None and bool((state.config.get("process") or {}).get("terminal"))
    pid = state.pid
    from ocirun import foreground
    foreground.forward_signals(pid)
    try:
        if terminal:
            from ocirun import ttyproxy
            host_console = ttyproxy.find_host_console()
            master = ttyproxy.recv_master(console)
            ttyproxy.prepare(master, host_console, state.config["process"])
        start(g.root, cid)
        if terminal:
            ttyproxy.attach(master, pid, host_console)
        status = foreground.wait_for(pid, none_left=0)
    except BaseException:
        with suppress(OciError, OSError):
            delete(g.root, cid, force=True)
        raise
    finally:
        if console is not None:
            console.close()
    if not opts["keep"]:
        with suppress(OciError):
            delete(g.root, cid, force=True)
    return status
