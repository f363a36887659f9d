"""Command line: runc's global flags, then a command that parses its own flags.

Commands are imported only when dispatched, so `state` never pays for what `create` needs.
"""
import os
import sys

from ocirun import log
from ocirun.cliparse import HelpRequested, UsageError, parse
from ocirun.errors import OciError, describe_oserror, go_style

COMMANDS = {
    "create": "ocirun.lifecycle:create_cmd",
    "start": "ocirun.lifecycle:start_cmd",
    "state": "ocirun.lifecycle:state_cmd",
    "kill": "ocirun.lifecycle:kill_cmd",
    "delete": "ocirun.lifecycle:delete_cmd",
    "run": "ocirun.lifecycle:run_cmd",
    "list": "ocirun.lifecycle:list_cmd",
    "spec": "ocirun.defaultspec:spec",
    "features": "ocirun.features:features_cmd",
    "exec": "ocirun.execcmd:exec_cmd",
    "pause": "ocirun.cgroupcmds:pause",
    "resume": "ocirun.cgroupcmds:resume",
    "update": "ocirun.cgroupcmds:update",
    "events": "ocirun.cgroupcmds:events",
    "ps": "ocirun.cgroupcmds:ps",
    "init": "ocirun.init:init_cmd",
    "bundle": "ocirun.image.bundlecmd:bundle_cmd",
}
UNSUPPORTED = {"checkpoint", "restore"}

GLOBAL_FLAGS = {"root": "str", "log": "str", "log-format": "str", "debug": "bool", "systemd-cgroup": "bool",
                "rootless": "str", "criu": "str", "help": "bool", "version": "bool"}
GLOBAL_ALIASES = {"h": "help", "v": "version"}

USAGE = """NAME:
   ocirun - an OCI runtime written in Python, a drop-in for runc

USAGE:
   ocirun [global options] command [command options] [arguments...]

COMMANDS:
   create    create a container
   start     executes the user defined process in a created container
   run       create and run a container
   state     output the state of a container
   kill      kill sends the specified signal (default: SIGTERM) to the container's init process
   delete    delete any resources held by the container often used with detached container
   list      lists containers started by ocirun with the given root
   exec      execute new process inside the container
   pause     pause suspends all processes inside the container
   resume    resumes all processes that have been previously paused
   update    update container resource constraints
   events    display container events such as OOM notifications, cpu, memory, and IO usage statistics
   ps        ps displays the processes running inside a container
   spec      create a new specification file
   features  show the enabled features
   bundle    make a bundle from an OCI image layout (rootfs: an overlay of shared layers)

GLOBAL OPTIONS:
   --root value        root directory for storage of container state (default: "/run/ocirun")
   --log value         set the log file to write runtime logs to (default: stderr)
   --log-format value  set the log format ('text' (default), or 'json')
   --debug             enable debug logging
   --systemd-cgroup    place cgroups under systemd slices (slice:prefix:name cgroupsPath)
   --version, -v       print the version
   --help, -h          show help (`ocirun COMMAND --help`: the command's own flags)
"""


class GlobalOptions:
    def __init__(self, opts: dict):
        self.root = os.path.abspath(opts["root"] or default_root())
        self.log = opts["log"]
        self.log_format = opts["log-format"] or "text"
        self.debug = opts["debug"]
        self.systemd_cgroup = opts["systemd-cgroup"]
        self.rootless = opts["rootless"]


def default_root() -> str:
    if os.geteuid() == 0:
        return "/run/ocirun"
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    return os.path.join(runtime_dir, "ocirun")


def split_global(argv: list[str]) -> tuple[dict, list[str]]:
    """Global flags stand before the command name."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            # the value of a preceding flag that takes one is not the command
            prev = argv[i - 1].lstrip("-") if i else ""
            prev = GLOBAL_ALIASES.get(prev, prev)
            if i and "=" not in prev and GLOBAL_FLAGS.get(prev) == "str":
                continue
            opts, _ = parse(argv[:i], GLOBAL_FLAGS, GLOBAL_ALIASES)
            return opts, argv[i:]
    opts, _ = parse(argv, GLOBAL_FLAGS, GLOBAL_ALIASES)
    return opts, []


def version_text() -> str:
    from ocirun import OCI_VERSION, __version__
    return (f"ocirun version {__version__}\ncommit: none\nspec: {OCI_VERSION}\n"
            f"python: {sys.version.split()[0]}\n")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, rest = split_global(argv)
        if opts["version"]:
            sys.stdout.write(version_text())
            sys.exit(0)
        if rest[:1] == ["help"] and len(rest) > 1:    # `ocirun help create`, as runc
            rest = [rest[1], "--help"]
        if opts["help"] or not rest or rest[0] == "help":
            sys.stdout.write(USAGE)
            sys.exit(0)
        g = GlobalOptions(opts)
        log.configure(g.log, g.log_format, g.debug)
    except (UsageError, ValueError) as exc:
        sys.stderr.write(f"ocirun: {exc}\n")
        sys.exit(1)
    except OSError as exc:
        sys.stderr.write(f"ocirun: --log: {describe_oserror(exc)}\n")
        sys.exit(1)
    name = rest[0]
    sys.exit(dispatch(g, name, rest[1:]))


def launch() -> None:
    """The entry of the launcher on PATH (scripts/setup.sh) and of `python -m ocirun`: main(), then
    the exit without the interpreter's teardown (see exit_without_teardown)."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    exit_without_teardown(code)


def exit_without_teardown(code) -> None:
    """sys.exit(code), skipping the interpreter's finalization (freeing every module and object one
    by one: 1.3-1.6 ms of the ~12 ms a short command costs) when nothing depends on it: no atexit
    callbacks (coverage, logging, tempfile finalizers register one), no thread besides this one
    (shutdown joins non-daemon threads), and stdout and stderr flushed (ocirun writes every file of
    its own through `with` or os-level fds, which the kernel closes). Anything unusual, a failing
    flush included, takes sys.exit, so the interpreter reports it with its usual exit status."""
    import atexit
    threading = sys.modules.get("threading")
    if (code is not None and type(code) is not int) or getattr(atexit, "_ncallbacks", lambda: 1)() \
            or (threading is not None and threading.active_count() > 1):
        sys.exit(code)
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except BaseException:
        sys.exit(code)
    os._exit(code or 0)


def dispatch(g: GlobalOptions, name: str, argv: list[str]) -> int:
    try:
        if name in UNSUPPORTED:
            raise OciError(f"{name}: checkpoint/restore (CRIU) is not supported by ocirun")
        target = COMMANDS.get(name)
        if target is None:
            raise UsageError(f"No help topic for '{name}'")
        module_name, func_name = target.split(":")
        module = __import__(module_name, fromlist=[func_name])
        log.timing(f"{name}: imports")
        return getattr(module, func_name)(g, argv) or 0
    except HelpRequested as exc:
        from ocirun.cmdhelp import render
        sys.stdout.write(render(name, exc.flags, exc.aliases))
        return 0
    except OciError as exc:
        log.fatal(go_style(str(exc)))
        return getattr(exc, "exit_code", 1)
    except OSError as exc:
        log.fatal(go_style(describe_oserror(exc)))
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line (and the traceback with --debug)
        if log.is_debug():
            import traceback
            log.debug(traceback.format_exc())
        log.fatal(f"internal error: {type(exc).__name__}: {exc}")
        return 1
