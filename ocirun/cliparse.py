"""A small runc-style argument parser (argparse costs ~11 ms of import on every command).

runc's command line (urfave/cli) accepts `--flag value`, `--flag=value`, `-f value`, single-dash long
flags (`-bundle x`), and options after the positional arguments (`kill ID --all` as well as
`kill --all ID`). Each command declares its flags in a dict: name -> kind, where kind is
"bool", "str", "int" or "list" (repeatable), with aliases mapping to a canonical name.
"""
from ocirun.errors import OciError


class UsageError(OciError):
    pass


class HelpRequested(Exception):
    """--help / -h given to a command: cli.dispatch prints its help (ocirun/cmdhelp.py), exit 0."""

    def __init__(self, flags: dict[str, str], aliases: dict[str, str]):
        super().__init__("help requested")
        self.flags, self.aliases = flags, aliases


def parse(argv: list[str], flags: dict[str, str], aliases: dict[str, str] | None = None,
          *, stop_at_positional: int | None = None) -> tuple[dict, list[str]]:
    """Return ({canonical flag: value}, positionals).

    stop_at_positional: after that many positionals everything is positional (for `exec ID cmd -x`,
    where the container command's own flags must not be parsed as ours).
    """
    aliases = aliases or {}
    opts: dict = {name: ([] if kind == "list" else (False if kind == "bool" else None))
                  for name, kind in flags.items()}
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if stop_at_positional is not None and len(positionals) >= stop_at_positional:
            positionals.append(arg)
            positionals.extend(argv[i:])
            break
        if arg == "--":
            positionals.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        name = aliases.get(name, name)
        kind = flags.get(name)
        if kind is None and name in ("help", "h"):     # every runc command takes --help, -h
            raise HelpRequested(flags, aliases)
        if kind is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if kind == "bool":
            opts[name] = value.lower() not in ("false", "0") if eq else True
            continue
        if not eq:
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: {arg}")
            value = argv[i]
            i += 1
        if kind == "int":
            try:
                value = int(value)
            except ValueError:
                raise UsageError(f"invalid value {value!r} for flag {arg.split('=')[0]}: parse error") from None
        if kind == "list":
            opts[name].append(value)
        else:
            opts[name] = value
    return opts, positionals


def need_id(positionals: list[str], command: str, extra_ok: int = 0) -> str:
    """The container id argument, with runc's wording when it is missing or there are too many."""
    if not positionals:
        raise UsageError(f'"{command}" requires a minimum of 1 argument')
    if len(positionals) > 1 + extra_ok:
        raise UsageError(f'"{command}" requires a maximum of {1 + extra_ok} argument(s)')
    return positionals[0]
