"""The container's init: a fresh interpreter started by `create` (protocol.spawn_child) from a sealed
copy of the interpreter, as `python -I -S -B -c "...from ocirun.init import main; main()" init`.

Stage 1 (P1, in the runtime's namespaces, already placed in the container's cgroup by the parent):
join namespaces given by path, make a new user namespace (the parent writes its maps), unshare the
other new namespaces, write time offsets, fork P2 (pid 1 of a new pid namespace), report its pid,
exit. Stage 2 (P2) prepares the container and waits on exec.fifo for `start`, then execs.
Both stages are data: STAGE1_STEPS and STAGE2_STEPS (at the end) list the named steps in order.

Everything init needs is imported before the rootfs is touched, and the import system is shut off
before pivot_root, so nothing is ever loaded from the container's filesystem (hardening D-11).
"""
import os
import _signal as signal  # the C modules: signal and socket import enum and selectors (~9 ms of the init's start)
import _socket
import sys

# Everything the init will need is imported here, at start-up: the parent starts the init before
# it validates the config, so these imports overlap its work instead of delaying the container.
from ocirun import hooks, log, protocol, security
from ocirun.errors import OciError
from ocirun.initctx import InitContext
from ocirun.procexec import (close_fds_at_exec, describe, env_dict, resolve_executable, seal_imports,
                             undo_spawn_signals, with_home)
from ocirun.linux import loopback, mountsources, procfs, rootfs
from ocirun.linux import namespaces as ns
from ocirun.linux import syscalls as sc


class Init:
    def __init__(self, sync: _socket.socket, boot: dict, log_fd: int = -1):
        self.sync = sync
        self.log_fd = log_fd
        self.boot = boot
        self.config: dict = boot["config"]
        self.linux: dict = self.config.get("linux") or {}
        self.process: dict = self.config.get("process") or {}

    # --- messages ------------------------------------------------------------------------------
    def send(self, msg: dict) -> None:
        protocol.send(self.sync, msg)

    def request(self, msg: dict) -> dict:
        """Send msg; the parent's ACK (an error answer raises, with its step and errno)."""
        return protocol.request(self.sync, msg)

    def ready(self) -> None:
        """The last message (write(2): a seccomp filter may be loaded); then the sync socket and the
        log pipe close, so that the created init holds only stdio and the fifo, and nothing may be
        logged any more (a line would go nowhere)."""
        protocol.send(self.sync, {"type": protocol.READY})
        self.sync.close()
        if self.log_fd >= 0:
            os.close(self.log_fd)
            self.log_fd = -1
        log.set_sink(None)

    # --- the steps -----------------------------------------------------------------------------
    # Each step is a method; STAGE1_STEPS and STAGE2_STEPS (after the class) give their order and
    # names. run_steps records the running step (named in the error sent to the parent) and, with
    # --debug, times each one. The order is the security order: do not reorder without a reason.
    step = ""

    def run_steps(self, steps) -> None:
        for name, step in steps:
            self.step = name
            try:
                step(self)
            except BaseException as exc:
                if self.fifo is None:
                    raise
                self.tell_start(exc)
            log.timing("init: " + name)

    fifo = None     # exec.fifo, open for writing once `start` came: errors go there, not to the parent

    def tell_start(self, exc: BaseException) -> None:
        """After `ready`, the parent is gone: tell `start`, which is reading the fifo, why nothing started."""
        text = describe(exc)
        try:
            os.write(self.fifo, text.encode())
        finally:
            os._exit(127)

    # --- stage 1 -------------------------------------------------------------------------------
    def join_namespaces(self) -> None:
        # a runtime run by host root can open, for a user-namespace container, what only host root may
        self.runtime_is_root = os.geteuid() == 0
        # the namespace actions create resolved (namespaces.plan), and the time offsets' text
        nsplan = self.boot["plan"]["namespaces"]
        joins, self.new_userns_wanted = nsplan["join"], nsplan["new_user"]
        self.flags = flags = nsplan["unshare"]
        self.time_offsets_text = self.boot["plan"].get("timeOffsets")
        self.offsets_fd = None
        if flags & sc.CLONE_NEWTIME and self.time_offsets_text and os.geteuid() == 0:
            # opened now, with the runtime's credentials (file_ns_capable checks the opener's): once
            # in a user namespace, this non-dumpable process's /proc/self files belong to host root,
            # whom the container's root may not be
            self.offsets_fd = ns.open_time_offsets()
        ns.join(ns.open_joins(joins))
        if any(kind == "user" for kind, _, _ in joins):
            # as after a new one: become the namespace's root, else our host ids are unmapped there
            # (overflow ids; mounts such as devpts gid=5 fail with EOVERFLOW)
            try:
                sc.setresgid(0, 0, 0)
                sc.setresuid(0, 0, 0)
            except OSError as exc:
                raise OciError(f"linux.namespaces (user): setresuid to 0 in the joined user namespace: "
                               f"{exc.strerror} (is container root mapped there?)") from None

    def user_namespace(self) -> None:
        if not self.new_userns_wanted:
            return
        flags = self.flags
        rootless = os.geteuid() != 0
        sc.unshare(sc.CLONE_NEWUSER)
        if rootless:    # an unprivileged parent can only open our /proc files while we are dumpable
            sc.prctl(sc.PR_SET_DUMPABLE, 1)
        self.request({"type": protocol.USERNS_MAP})
        if rootless and flags & sc.CLONE_NEWTIME and self.time_offsets_text:
            self.offsets_fd = ns.open_time_offsets()     # while dumpable: our /proc files are ours
        if rootless:
            sc.prctl(sc.PR_SET_DUMPABLE, 0)
        sc.setresgid(0, 0, 0)
        sc.setresuid(0, 0, 0)

    def unshare(self) -> None:
        flags, nsplan = self.flags, self.boot["plan"]["namespaces"]
        # A bind asking to be shared is cloned in the runtime's mount namespace at its turn
        # (mountsources.clone_in_runtime_ns): its handle, taken while we are still in it
        self.runtime_mntns = None
        if (flags & sc.CLONE_NEWNS and not nsplan["user"]
                and mountsources.host_peers_wanted(self.boot["plan"]["mounts"])):
            self.runtime_mntns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        if flags:
            sc.unshare(flags)
        self.uts, self.new_user = nsplan["uts"], nsplan["user"]

    def time_offsets(self) -> None:
        if self.flags & sc.CLONE_NEWTIME and self.time_offsets_text:
            ns.write_time_offsets(self.time_offsets_text,
                                  self.offsets_fd if self.offsets_fd is not None else ns.open_time_offsets())

    def fork(self) -> None:
        # The parent must know the container's pid before the container says anything: stage 2
        # waits until this process has reported it and exited (EOF on `reported`).
        waiting, reported = os.pipe()
        pid = os.fork()
        if pid:
            self.send({"type": protocol.CHILD_PID, "pid": pid})
            os._exit(0)
        log.timing_forked()
        os.close(reported)
        os.read(waiting, 1)
        os.close(waiting)

    # --- stage 2 -------------------------------------------------------------------------------
    def session(self) -> None:
        self.setup_created_signals()
        os.setsid()
        self.ctx = ctx = InitContext(config=self.config, plan=self.boot["plan"], bundle=self.boot["bundle"],
                                     rootfs=self.boot["rootfs"],
                                     no_pivot=self.boot.get("no_pivot", False), new_userns=self.new_user,
                                     new_mntns=bool(self.flags & sc.CLONE_NEWNS),
                                     new_netns=bool(self.flags & sc.CLONE_NEWNET),
                                     new_cgroupns=bool(self.flags & sc.CLONE_NEWCGROUP))
        if self.runtime_mntns is not None:
            ctx.extra["runtime_mntns"] = self.runtime_mntns     # prepare_rootfs closes it

    def keyring(self) -> None:
        if self.boot.get("new_keyring", True):
            self.join_session_keyring()

    def check_process(self) -> None:
        # the process settings as create checked them (processplan.build): applied, never re-parsed
        self.settings = self.boot["plan"]["process"]
        self.seccomp_filter = security.prepare_process_settings(self.config, self.boot.get("seccomp"))
        if self.process.get("terminal"):
            # only a terminal needs it (termios, fcntl): imported now, before the seal, for console()
            from ocirun.linux import console    # noqa: F401

    def loopback(self) -> None:
        if self.ctx.new_netns:
            loopback.loopback_up()

    def hostname(self) -> None:
        config = self.config
        if self.uts:    # new or joined by path: set there, as runc does (validate refuses the host's)
            if config.get("hostname"):
                sc.sethostname(config["hostname"])
            if config.get("domainname"):
                sc.setdomainname(config["domainname"])

    def mount_sources(self) -> None:
        if self.ctx.new_userns and self.runtime_is_root and mountsources.wanted(self.ctx.plan["mounts"]):
            self.send({"type": protocol.MOUNT_SOURCES})
            self.ctx.extra["source_trees"] = mountsources.receive_trees(self.sync)

    def rootfs(self) -> None:
        rootfs.prepare_rootfs(self.ctx)

    def runtime_hooks(self) -> None:
        # prestart + createRuntime run in the parent; its answer gives our pid as the host sees it
        # (the state's pid is always the runtime's view, not 1)
        host_pid = self.request({"type": protocol.HOOKS})["pid"]
        self.state = dict(self.boot["state"], pid=host_pid)
        self.hooks = self.config.get("hooks") or {}

    def create_container_hooks(self) -> None:
        # as runc: createContainer hooks start in the container's rootfs (before pivot_root)
        hooks.run_hooks("createContainer", self.hooks.get("createContainer"), self.state, cwd=self.ctx.rootfs)

    def seal_imports(self) -> None:
        seal_imports()

    def pivot(self) -> None:
        # the host's /proc, proven procfs, for sysctl, oom_score_adj and the exec fifo: the
        # container's /proc may be missing or fake (ordinary files in the rootfs)
        procfs.take_handle()
        rootfs.enter_rootfs(self.ctx)

    def console(self) -> None:
        process = self.process
        if process.get("terminal"):
            from ocirun.linux import console    # imported before the seal (check_process)
            console.setup_console(self.boot.get("console_socket_fd"), process.get("consoleSize"),
                                  uid=security.user_id(self.settings))

    def sysctl(self) -> None:
        self.write_sysctl(self.linux.get("sysctl") or {})
        # the host's /proc handle stays only when the container has no procfs of its own: the
        # created init then holds nothing but stdio and the fifo (oom_score_adj and the fifo go
        # through the container's /proc, checked to be procfs)
        procfs.release_handle_if_proc_mounted()

    def cwd(self) -> None:
        make_cwd(self.settings["cwd"])    # as runc: inside the new root, before root.readonly

    def finalize(self) -> None:
        rootfs.finalize_rootfs(self.ctx)

    def process_settings(self) -> None:
        process = self.process
        # every fd past stdio and the preserved ones closes at execve (the fifo's too, opened
        # O_CLOEXEC later, which is what tells `start` the program runs); marked now, before the
        # seccomp filter, which may deny close_range
        close_fds_at_exec(3 + int(self.boot.get("preserve_fds", 0)))
        # HOME from the container's /etc/passwd: read as root, before the filter (which may deny open)
        self.env = with_home(process.get("env") or [], security.user_id(self.settings))
        self.outcome = security.apply_process_settings(self.config, self.settings,
                                                       seccomp_filter=self.seccomp_filter,
                                                       hand_over_notify_fd=self.hand_over_notify_fd)
        self.path = resolve_executable(process)

    def wait(self) -> None:
        self.fifo = self.wait_for_start()

    def start_container_hooks(self) -> None:
        hooks.run_hooks("startContainer", self.hooks.get("startContainer"), dict(self.state, status="running"))

    def exec(self) -> None:
        security.reset_signals()
        # process.execCPUAffinity: "not applicable to the container's init process" (config.md)
        if self.outcome.seccomp_pending:
            security.load_seccomp_late(self.seccomp_filter)
        os.execve(self.path, self.process["args"], env_dict(self.env))

    def hand_over_notify_fd(self, notify_fd: int) -> None:
        protocol.hand_over_notify_fd(self.sync, notify_fd)

    def join_session_keyring(self) -> None:
        """A session keyring of the container's own ("_ses.<id>"), not the caller's, as runc does
        unless --no-new-keyring; searchable by its owner (by others in a user namespace). Kernels
        without keyrings (ENOSYS) are skipped, as runc does; any other failure is an error."""
        name = "_ses." + self.boot["state"]["id"]
        try:
            serial = sc.keyctl_join_session_keyring(name)
        except OciError as exc:
            if getattr(exc, "errno", None) == 38:    # ENOSYS
                log.debug(f"no session keyring for the container: {exc}")
                return
            raise
        perm = int(sc.keyctl_describe(serial).split(";")[3], 16)
        sc.keyctl_setperm(serial, perm | (0x8 if self.new_user else 0x80000))

    def setup_created_signals(self) -> None:
        """pid 1 of a pid namespace gets only signals it handles: while created, exit on them."""
        def die(signum, _frame):
            os._exit(128 + signum)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, die)

    def write_sysctl(self, sysctl: dict) -> None:
        """Through the procfs handle taken before pivot_root (procfs.take_handle), never the
        rootfs's /proc/sys, which may be ordinary files when the config mounts no proc."""
        for key, value in sysctl.items():
            procfs.write("sys/" + key.replace(".", "/"), str(value).encode(), f'linux.sysctl["{key}"]')

    def wait_for_start(self) -> int:
        """Block until `start` opens exec.fifo for reading; keep the fd (O_CLOEXEC) open until execve,
        so that `start` sees EOF exactly when the program has been exec'd."""
        fifo_path_fd = self.boot["fifo_fd"]
        fd = procfs.reopen(fifo_path_fd, os.O_WRONLY)
        os.close(fifo_path_fd)
        os.write(fd, b"0")
        return fd


def make_cwd(cwd: str | None) -> None:
    """runc creates a missing process.cwd (mode 0755, owned by the container's root) after entering
    the root, so symlinks in it resolve inside the container."""
    if not cwd or os.path.isdir(cwd):
        return
    old = os.umask(0o022)
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except FileExistsError:
        raise OciError(f"process.cwd: mkdir {cwd}: not a directory") from None
    except OSError as exc:
        raise OciError(f"process.cwd: mkdir {cwd}: {exc.strerror}") from None
    finally:
        os.umask(old)


# The init, in order: (name, step). Names are what --debug timing lines and failures report
# ("init: <name>"); tests read the order from here (tests/unit/test_init_steps.py).
STAGE1_STEPS = (
    ("join namespaces", Init.join_namespaces),     # setns() into those given by path
    ("user namespace", Init.user_namespace),       # a new one; the parent writes its id maps
    ("unshare", Init.unshare),                     # the other new namespaces
    ("time offsets", Init.time_offsets),
    ("fork", Init.fork),                           # P2, pid 1; P1 reports its pid and exits
)
STAGE2_STEPS = (
    ("session", Init.session),                     # created-state signals, setsid
    ("keyring", Init.keyring),
    ("check process", Init.check_process),         # host reads (cap_last_cap, LSM), seccomp program taken
    ("loopback", Init.loopback),
    ("hostname", Init.hostname),
    ("mount sources", Init.mount_sources),         # user namespace: bind sources cloned by the parent
    ("rootfs", Init.rootfs),                       # rootfs.prepare_rootfs: mounts, devices, /dev links
    ("runtime hooks", Init.runtime_hooks),         # prestart, createRuntime (in the parent)
    ("createContainer hooks", Init.create_container_hooks),
    ("seal imports", Init.seal_imports),           # nothing is imported from the container's files
    ("pivot", Init.pivot),                         # host /proc handle, rootfs.enter_rootfs
    ("console", Init.console),
    ("sysctl", Init.sysctl),
    ("cwd", Init.cwd),
    ("finalize", Init.finalize),                   # rootfs.finalize_rootfs: ro, masked, readonly paths
    ("process settings", Init.process_settings),   # rlimits, NNP, seccomp, capabilities, user
    ("ready", Init.ready),
    ("wait", Init.wait),                           # exec.fifo: until `start`
    ("startContainer hooks", Init.start_container_hooks),
    ("exec", Init.exec),
)


def init_cmd(g, argv: list[str]) -> int:
    if protocol.SYNC_ENV not in os.environ:
        raise OciError("init: the container's init is started by create, not by hand")
    # Nothing the caller of the runtime leaked may reach the container (CVE-2024-21626 class).
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    undo_spawn_signals()
    sync, log_fd = protocol.child_channels()
    log.timing("init: imports")
    boot, fds = protocol.recv(sync)
    if boot is None:
        return 1
    try:
        protocol.expect(boot, protocol.BOOTSTRAP)
    except OciError as exc:
        protocol.send_error(sync, exc)
        return 1
    if fds:
        boot["fifo_fd"] = fds[0]
        if len(fds) > 1:
            boot["console_socket_fd"] = fds[1]
    init = Init(sync, boot, log_fd)
    log.timing("init: waited for the bootstrap")
    if log_fd >= 0:
        log.set_sink(protocol.log_sink(log_fd), debug=boot.get("debug", False))
    try:
        init.run_steps(STAGE1_STEPS)
        init.run_steps(STAGE2_STEPS)
    except BaseException as exc:
        try:
            # the message users see is describe(exc); step and errno are for the parent's --debug log
            protocol.send(sync, protocol.error(describe(exc), init.step or protocol.failed_step(exc, ()),
                                               protocol.errno_of(exc)))
        finally:
            os._exit(1)
    return 0


def main() -> None:
    """Entry point of the re-exec'd init (see protocol.spawn_child)."""
    sys.exit(init_cmd(None, []))
