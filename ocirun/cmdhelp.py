"""`ocirun COMMAND --help` (and -h, and `ocirun help COMMAND`): usage and flags, as runc prints them.

The OPTIONS list is generated from the flag table each command already passes to cliparse.parse
(so it can never list a flag the command does not take); this module only adds the one-line
descriptions. Imported only when help is asked for.
"""

# command -> (summary, arguments in the usage line, {flag: description})
_COMMON = {
    "bundle": "path to the root of the bundle directory, defaults to the current directory",
    "console-socket": "path to an AF_UNIX socket which will receive a file descriptor referencing "
                      "the master end of the console's pseudoterminal",
    "pid-file": "specify the file to write the process id to",
    "no-pivot": "do not use pivot root to jail process inside rootfs. This should be used whenever "
                "the rootfs is on top of a ramdisk",
    "no-new-keyring": "do not create a new session keyring for the container. This will cause the "
                      "container to inherit the calling processes session key",
    "preserve-fds": "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in "
                    "total) (default: 0)",
}
_CREATE = {k: _COMMON[k] for k in ("bundle", "console-socket", "pid-file", "no-pivot", "no-new-keyring",
                                   "preserve-fds")}
_RUN = dict(_CREATE, **{"detach": "detach from the container's process",
                        "keep": "do not delete the container after it exits",
                        "no-subreaper": "disable the use of the subreaper used to reap reparented processes"})

COMMANDS = {
    "create": ("create a container", "<container-id>", _CREATE),
    "start": ("executes the user defined process in a created container", "<container-id>", {}),
    "run": ("create and run a container", "<container-id>", _RUN),
    "state": ("output the state of a container", "<container-id>", {}),
    "kill": ("kill sends the specified signal (default: SIGTERM) to the container's init process",
             "<container-id> [signal]",
             {"all": "send the specified signal to all processes inside the container"}),
    "delete": ("delete any resources held by the container often used with detached container",
               "<container-id>",
               {"force": "Forcibly deletes the container if it is still running (uses SIGKILL)"}),
    "list": ("lists containers started by ocirun with the given root", "",
             {"format": 'select one of: table or json (default: "table")',
              "quiet": "display only container IDs"}),
    "exec": ("execute new process inside the container",
             "<container-id> <command> [command options]  || -p process.json <container-id>",
             {"console-socket": _COMMON["console-socket"],
              "cwd": "current working directory in the container",
              "env": "set environment variables",
              "tty": "allocate a pseudo-TTY",
              "user": "UID (format: <uid>[:<gid>])",
              "additional-gids": "additional gids",
              "process": "path to the process.json",
              "detach": "detach from the container's process",
              "pid-file": _COMMON["pid-file"],
              "process-label": "set the asm process label for the process commonly used with selinux",
              "apparmor": "set the apparmor profile for the process",
              "no-new-privs": "set the no new privileges value for the process",
              "cap": "add a capability to the bounding set for the process",
              "preserve-fds": _COMMON["preserve-fds"],
              "cgroup": "run the process in an (existing) sub-cgroup(s). Format is [<controller>:]<cgroup>.",
              "ignore-paused": "allow exec in a paused container"}),
    "pause": ("pause suspends all processes inside the container", "<container-id>", {}),
    "resume": ("resumes all processes that have been previously paused", "<container-id>", {}),
    "update": ("update container resource constraints", "<container-id>",
               {"resources": "path to the file containing the resources to update or '-' to read from "
                             "the standard input (then all other options are ignored)",
                "blkio-weight": "Specifies per cgroup weight, range is from 10 to 1000 (default: 0)",
                "cpu-period": "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default",
                "cpu-quota": "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period",
                "cpu-burst": "CPU CFS hardcap burst limit (in usecs). Allowed accumulated cpu time "
                             "additionally for burst a given period",
                "cpu-rt-period": "CPU realtime period to be used for hardcapping (in usecs). 0 to use "
                                 "system default",
                "cpu-rt-runtime": "CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period",
                "cpu-share": "CPU shares (relative weight vs. other containers)",
                "cpuset-cpus": "CPU(s) to use",
                "cpuset-mems": "Memory node(s) to use",
                "memory": "Memory limit (in bytes)",
                "memory-reservation": "Memory reservation or soft_limit (in bytes)",
                "memory-swap": "Total memory usage (memory + swap); set '-1' to enable unlimited swap",
                "kernel-memory": "Kernel memory limit (in bytes); not supported, refused",
                "kernel-memory-tcp": "Kernel memory limit (in bytes) for tcp buffer; not supported, refused",
                "pids-limit": "Maximum number of pids allowed in the container (default: 0)",
                "l3-cache-schema": "The string of Intel RDT/CAT L3 cache schema; not supported, refused",
                "mem-bw-schema": "The string of Intel RDT/MBA memory bandwidth schema; not supported, refused"}),
    "events": ("display container events such as OOM notifications, cpu, memory, and IO usage statistics",
               "<container-id>",
               {"interval": "set the stats collection interval (default: 5s)",
                "stats": "display the container's stats then exit"}),
    "ps": ("ps displays the processes running inside a container", "<container-id> [ps options]",
           {"format": 'select one of: table or json (default: "table")'}),
    "spec": ("create a new specification file", "",
             {"bundle": "path to the root of the bundle directory",
              "rootless": "generate a configuration for a rootless container"}),
    "features": ("show the enabled features", "", {}),
}


def _flag_names(name: str, kind: str, aliases: dict[str, str]) -> str:
    value = "" if kind == "bool" else " value"
    names = [f"--{name}{value}"] + [f"-{short}{value}" for short, target in aliases.items()
                                    if target == name and len(short) == 1]
    return ", ".join(names)


def render(command: str, flags: dict[str, str], aliases: dict[str, str] | None = None) -> str:
    """The help text of a command whose parser declared `flags` (name -> kind) and `aliases`."""
    summary, args, descriptions = COMMANDS.get(command, ("", "", {}))
    aliases = aliases or {}
    # create parses run's flags too (one table for both); its help lists only its own
    shown = [name for name in flags if name in descriptions or command not in ("create",)]
    rows = [(_flag_names(name, flags[name], aliases), descriptions.get(name, "")) for name in shown]
    rows.append(("--help, -h", "show help"))
    usage = f"ocirun {command}" + (" [command options]" if shown else "") + (f" {args}" if args else "")
    width = max(len(left) for left, _ in rows) + 2
    lines = ["NAME:", f"   ocirun {command} - {summary}", "", "USAGE:", f"   {usage}", "", "OPTIONS:"]
    lines += [f"   {left.ljust(width)}{text}".rstrip() for left, text in rows]
    return "\n".join(lines) + "\n"
