"""The parent side of `create`: validate, record, spawn the init, drive it to `created`, or roll back.

Every side effect registers its undo on a Rollback; any failure unwinds them all, so a failed
create leaves no process, cgroup, fifo or state directory behind.
"""
import _socket  # not the socket module: it imports selectors and enum (~4 ms a create)
import os

from ocirun import log, protocol
from ocirun import state as st
from ocirun.errors import ConfigError, ContainerExists, OciError, suppress
from ocirun.linux import namespaces as ns
from ocirun.linux import syscalls as sc


class Rollback:
    """The undo steps of a create, run last-registered first when the block fails (what
    contextlib.ExitStack does, without importing contextlib). A failing step is logged and the
    others still run: a rollback never hides the error that caused it."""

    def __init__(self):
        self.steps: list = []

    def callback(self, func, *args) -> None:
        self.steps.append((func, args))

    def pop_all(self) -> None:
        self.steps = []

    def __enter__(self) -> "Rollback":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        while self.steps:
            func, args = self.steps.pop()
            try:
                func(*args)
            except (OciError, OSError) as step_exc:
                log.error(f"rollback: {step_exc}")
        return False


class CreateOptions:
    def __init__(self, *, bundle: str, pid_file: str | None = None, console_socket: str | None = None,
                 no_pivot: bool = False, preserve_fds: int = 0, listen_fds: int = 0,
                 systemd_cgroup: bool = False, new_keyring: bool = True):
        self.bundle = os.path.abspath(bundle)
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.console_sock = None    # a connected socket used as the console socket (`run` in the foreground)
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds    # every fd from 3 on passed through, listen fds included
        self.listen_fds = listen_fds        # of which the first ones are socket-activation fds
        self.systemd_cgroup = systemd_cgroup
        self.new_keyring = new_keyring      # a session keyring of the container's own (runc's default)


def load_and_validate(bundle: str) -> dict:
    return load_validate_compile(bundle)[0]


def load_validate_compile(bundle: str):
    """The config, checked; its seccomp profile compiled into the program the init will load
    (SeccompProgram or None): the only compile of a create; and the plan validation resolved (the
    mounts, linux.rootfsPropagation, the namespace actions: validate.validate; the process
    settings: processplan.build), sent to the init as data."""
    from ocirun import processplan, spec, validate
    log.timing("create: imports (validation)")
    config = spec.load_config(bundle)
    log.timing("create: config.json read")
    spec.validate_schema(config)
    log.timing("create: validation (schema)")
    plan = validate.validate(config, bundle)
    warnings, seccomp_program, plan["process"] = processplan.validate_and_compile(config)
    for warning in warnings:
        log.warning(warning)
    log.timing("create: validation (semantic)")
    return config, seccomp_program, plan


def create_container(root: str, cid: str, opts: CreateOptions) -> st.State:
    st.validate_id(cid)
    with Rollback() as undo:
        # Registered first so it runs last: once the create hooks have begun, a failed create
        # continues the lifecycle at steps 12-13 (runtime.md): undo everything, then poststop.
        reached_hooks: list[st.State] = []
        undo.callback(_poststop_after_failure, reached_hooks)
        # The init's interpreter is started first: it boots (~25 ms of Python start-up and imports)
        # while this process validates and makes the cgroup. Until it gets the bootstrap it only
        # waits; it is placed in the cgroup before it sets anything up.
        parent_sock, logs, init_pid = start_init(opts.preserve_fds, undo)
        log.timing("create: spawn init")
        if not os.path.isdir(opts.bundle):
            raise OciError(f"bundle {opts.bundle}: no such file or directory")
        config, seccomp_program, plan = load_validate_compile(opts.bundle)
        process = config.get("process")
        if not process:
            raise ConfigError("process", "a process is required to create a container")
        if process.get("terminal") and not opts.console_socket and opts.console_sock is None:
            raise ConfigError("process.terminal", "cannot allocate tty if runc will detach without setting "
                                                  "console socket (--console-socket)")
        # Private, as runc's root (0700): state.json holds the container's environment (tokens,
        # passwords). The container dir is 0700 too (runc: 0711), so that a root made by someone
        # else with a wider mode still hides it; the init reaches the fifo through an fd, not a path.
        os.makedirs(root, 0o700, exist_ok=True)
        cdir = os.path.join(root, cid)
        try:
            os.mkdir(cdir, 0o700)
        except FileExistsError:
            raise ContainerExists(cid) from None
        undo.callback(_remove_dir, cdir)
        with st.lock(root, cid):
            state = _create_locked(root, cid, cdir, config, opts, undo, parent_sock, logs, init_pid, reached_hooks,
                                   seccomp_program, plan)
        undo.pop_all()
    parent_sock.close()
    logs.close()
    return state


def _poststop_after_failure(reached_hooks: list) -> None:
    if not reached_hooks:
        return
    from ocirun import hooks
    hooks.run_poststop(reached_hooks[0], warn=log.warning)


def start_init(preserve_fds: int, undo: "Rollback") -> tuple[_socket.socket, protocol.LogReader, int]:
    passed = protocol.open_fds(3, 3 + preserve_fds)
    parent_sock, logs, init_pid = protocol.spawn_child("ocirun.init", "init", preserve_fds, passed)
    undo.callback(parent_sock.close)
    undo.callback(logs.close)
    undo.callback(_kill_and_reap, init_pid)
    return parent_sock, logs, init_pid


def _create_locked(root, cid, cdir, config, opts, undo, parent_sock, logs, init_pid, reached_hooks,
                   seccomp_program, plan: dict) -> st.State:
    # The bundle is the caller's (trusted); its rootfs path is resolved once, here, as runc does.
    rootfs = os.path.realpath(os.path.join(opts.bundle, config["root"]["path"]))
    linux = config.get("linux") or {}
    from ocirun.linux.cgroups import new_manager
    cgroup = new_manager(linux.get("cgroupsPath"), default_cgroup_name(root, cid), systemd=opts.systemd_cgroup)
    state = st.State(root, cid, {
        "ociVersion": config.get("ociVersion"), "id": cid, "status": st.CREATING, "pid": 0, "pid_start": None,
        "bundle": opts.bundle, "rootfs": rootfs, "created": log.now_rfc3339(nano=True), "owner": "",
        "config": config, "cgroup": cgroup.to_dict(),
    })
    if not any(n.get("type") == "mount" for n in linux.get("namespaces") or []):
        # the runtime's mount namespace, inherited: the container's mounts are made in it and
        # outlive its processes (see hostmounts.py); on rollback they go once the init is dead
        from ocirun.linux import hostmounts
        state.data["host_mounts"] = hostmounts.before(rootfs)
        undo.callback(lambda: hostmounts.release(state.data["host_mounts"], cid))
    # Where the cgroup will be (and the mounts) is recorded, in both files, before it is made: a
    # create killed at any point from here on leaves nothing that `delete --force` cannot find.
    st.save_cleanup_record(cdir, state.data)
    state.save()
    fifo = os.path.join(cdir, st.FIFO)
    os.mkfifo(fifo, 0o622)
    os.chmod(fifo, 0o622)   # not the umask's 0600: a non-root process.user opens it for writing
    log.timing("create: state (directory, state.json, cleanup record, fifo)")
    # (registered before it is made: a create that fails half-way, in the 4th of 10 v1
    # hierarchies, removes the 3 made; then, on rollback the init is dead before its cgroup goes)
    undo.callback(_kill_and_destroy_cgroup, cgroup)
    undo.callback(_kill_and_reap, init_pid)
    try:
        cgroup.create()
    except OciError as exc:
        cgroup = _rootless_without_cgroup(exc, cgroup, linux)      # or re-raises
    if cgroup is None:
        state.data.pop("cgroup")
        st.save_cleanup_record(cdir, state.data)
        state.save()
    log.timing("create: cgroup made")

    send_fds = [os.open(fifo, sc.O_PATH | os.O_CLOEXEC)]
    undo.callback(os.close, send_fds[0])
    if opts.console_socket:
        csock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            csock.connect(opts.console_socket)
        except OSError as exc:
            raise OciError(f"--console-socket {opts.console_socket}: connect: {exc.strerror}") from None
        undo.callback(csock.close)
        send_fds.append(csock.fileno())
    elif opts.console_sock is not None and (config.get("process") or {}).get("terminal"):
        send_fds.append(opts.console_sock.fileno())

    container_pid = 0
    undo.callback(lambda: container_pid and _kill(container_pid))
    if cgroup is not None:
        try:
            cgroup.add(init_pid)
        except OciError as exc:
            cgroup = _rootless_without_cgroup(exc, cgroup, linux)
            state.data.pop("cgroup", None)
            st.save_cleanup_record(cdir, state.data)
    if cgroup is not None:
        cgroup.set(linux.get("resources") or {})
    log.timing("create: cgroup joined, resources set")

    if opts.listen_fds:
        process = dict(config["process"], env=list(config["process"].get("env") or [])
                       + [f"LISTEN_FDS={opts.listen_fds}", "LISTEN_PID=1"])
        config = dict(config, process=process)   # for the init only: exec does not inherit them
    boot = {"type": protocol.BOOTSTRAP, "config": config, "bundle": opts.bundle, "rootfs": rootfs,
            "no_pivot": opts.no_pivot, "preserve_fds": opts.preserve_fds, "debug": log.is_debug(),
            "new_keyring": opts.new_keyring,
            "seccomp": seccomp_program.to_wire() if seccomp_program is not None else None, "plan": plan,
            "state": {"ociVersion": config.get("ociVersion"), "id": cid, "status": st.CREATED,
                      "bundle": opts.bundle, **({"annotations": config["annotations"]} if config.get("annotations") else {})}}
    protocol.send(parent_sock, boot, send_fds)
    log.timing("create: bootstrap sent")
    expected = protocol.create_sequence(config)
    while True:
        msg, _ = protocol.recv(parent_sock)
        logs.drain()    # the init's log lines written so far come before what its message causes
        kind = expected.take(msg)   # EOF, an error, or a message out of its order: InitError
        if kind == protocol.USERNS_MAP:
            ns.write_id_maps(init_pid, linux.get("uidMappings") or [], linux.get("gidMappings") or [])
            protocol.send(parent_sock, {"type": protocol.ACK})
        elif kind == protocol.CHILD_PID:
            container_pid = msg["pid"]
            os.waitpid(init_pid, 0)
            state.data["pid"] = container_pid
            state.data["pid_start"] = st.proc_start_time(container_pid)
            if state.cgroup is None:    # else the cgroup finds it (one file write less per create)
                st.save_cleanup_record(cdir, state.data)
            log.timing("create: init stage 1 done (namespaces), container pid known")
        elif kind == protocol.MOUNT_SOURCES:    # a user-namespace container's bind sources, cloned as host root
            from ocirun.linux.mountsources import send_trees
            send_trees(parent_sock, container_pid, plan["mounts"])
        elif kind == protocol.HOOKS:
            if state.data.get("host_mounts"):     # the init has bound the rootfs: which mount is ours
                from ocirun.linux import hostmounts
                state.data["host_mounts"] = hostmounts.found(state.data["host_mounts"])
                st.save_cleanup_record(cdir, state.data)
            reached_hooks.append(state)
            log.timing("create: waited for the init (until its mounts are done)")
            _run_runtime_hooks(config, state, container_pid, parent_sock)
            log.timing("create: runtime hooks (prestart, createRuntime), netDevices")
        elif kind == protocol.SECCOMP_FD:     # the init waits for the answer: the agent must have the fd first
            failed = protocol.pass_notify_fd(parent_sock, (config.get("linux") or {}).get("seccomp") or {},
                                             container_pid, msg["fd"],
                                             dict(state.oci_state(), status=st.CREATING, pid=container_pid))
            if failed is not None:
                raise failed
        else:   # READY, the last
            log.timing("create: waited for the init (until ready)")
            break
    state.data["status"] = st.CREATED
    state.save()
    if opts.pid_file:
        st.write_pid_file(opts.pid_file, container_pid)
    log.timing("create: state saved (created)")
    return state


def _rootless_without_cgroup(exc: OciError, cgroup, linux: dict):
    """A non-root caller that may not create (or join) the container's cgroup: without
    linux.resources the container runs in the caller's cgroup, with a warning (as runc rootless);
    with resources asked for, that is an error. Root, or any other failure, re-raises."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    if os.geteuid() == 0 or getattr(cause, "errno", None) not in (1, 13, 30):    # EPERM, EACCES, EROFS
        raise exc
    with suppress(OciError, OSError):
        cgroup.destroy()
    resources = {k: v for k, v in (linux.get("resources") or {}).items() if v not in (None, [], {})}
    if resources:
        raise ConfigError("linux.resources", f"cannot be applied: a rootless caller cannot use the "
                                             f"container's cgroup ({exc}); remove linux.resources or "
                                             f"delegate a cgroup to this user") from None
    log.warning(f"rootless: no cgroup for the container ({exc}); it runs in the caller's cgroup")
    return None


def default_cgroup_name(root: str, cid: str) -> str:
    """The leaf name of the default cgroup (no linux.cgroupsPath): the id, plus a tag of --root
    when it is not the default one, so that two state roots (containerd namespaces, test runs)
    holding the same id never share, and kill, each other's cgroup."""
    from ocirun.cli import default_root
    if root == default_root():
        return cid
    return f"{cid}-{_sha256_hex(root.encode())[:8]}"


def _sha256_hex(data: bytes) -> str:
    """SHA-256 from the builtin C module (hashlib's import of OpenSSL costs ~6 ms a create): it is
    `_sha256` up to Python 3.11 and `_sha2` from 3.12 on; hashlib if a build has neither."""
    try:
        from _sha2 import sha256
    except ImportError:
        try:
            from _sha256 import sha256
        except ImportError:
            from hashlib import sha256
    return sha256(data).hexdigest()


def _run_runtime_hooks(config, state, pid, sock) -> None:
    """prestart (deprecated) and createRuntime run in the runtime's namespaces, after the container's
    namespaces exist and before pivot_root; netDevices are moved here too (they need the netns)."""
    linux = config.get("linux") or {}
    try:
        if linux.get("netDevices"):
            from ocirun.linux.network import move_net_devices
            move_net_devices(linux["netDevices"], pid)
        all_hooks = config.get("hooks") or {}
        # runtime.md: the container is "created" once its environment exists (step 2); prestart,
        # createRuntime and createContainer all see that status (and the host's view of its pid).
        hook_state = dict(state.oci_state(), status=st.CREATED, pid=pid)
        for kind in ("prestart", "createRuntime"):
            if all_hooks.get(kind):
                from ocirun import hooks
                hooks.run_hooks(kind, all_hooks[kind], hook_state, cwd=state.bundle)
    except OciError as exc:
        protocol.send(sock, protocol.error(str(exc), protocol.HOOKS, protocol.errno_of(exc)))
        raise
    protocol.send(sock, {"type": protocol.ACK, "pid": pid})


def _kill_and_destroy_cgroup(cgroup) -> None:
    """Whatever runs in the container's cgroup (the init, or a child it forked that we have not
    heard of yet) is killed before the cgroup is removed."""
    try:
        cgroup.kill(9)
    except (OciError, OSError):
        pass
    cgroup.destroy()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def _kill_and_reap(pid: int) -> None:
    _kill(pid)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _remove_dir(path: str) -> None:
    for name in (st.FIFO, st.STATE_FILE, f".{st.STATE_FILE}.tmp", st.CLEANUP_FILE, f".{st.CLEANUP_FILE}.tmp"):
        with suppress(FileNotFoundError):
            os.unlink(os.path.join(path, name))
    with suppress(FileNotFoundError):
        os.rmdir(path)
