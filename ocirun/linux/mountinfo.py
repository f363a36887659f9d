"""/proc/<pid>/mountinfo, parsed in one place (proc(5)), every path field unescaped.

    36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    id par dev root  point options   optional  - type source super options

No imports: state/delete (hostmounts) and the init (before its imports are sealed) use it.
"""

_OCTAL = "01234567"


def unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in paths as \\ooo (octal)."""
    if "\\" not in field:
        return field
    out, i, n = [], 0, len(field)
    while i < n:
        esc = field[i + 1:i + 4]
        if field[i] == "\\" and len(esc) == 3 and all(c in _OCTAL for c in esc):
            out.append(chr(int(esc, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


class Mount:
    """One line (a plain class: dataclasses costs ~20 ms of imports)."""
    __slots__ = ("id", "parent", "root", "mountpoint", "options", "optional", "fstype", "source", "super_options")

    def __init__(self, line: str):
        fields = line.split()
        sep = fields.index("-", 6)
        self.id, self.parent = int(fields[0]), int(fields[1])
        self.root, self.mountpoint = unescape(fields[3]), unescape(fields[4])
        self.options = fields[5]
        self.optional = fields[6:sep]              # shared:N, master:N, propagate_from:N, unbindable
        self.fstype = fields[sep + 1]
        self.source = unescape(fields[sep + 2]) if len(fields) > sep + 2 else ""
        self.super_options = fields[sep + 3] if len(fields) > sep + 3 else ""


def parse(text: str) -> list[Mount]:
    """Every mount of a mountinfo text; a line that is not one (only in tests' texts) is passed over."""
    mounts = []
    for line in text.splitlines():
        try:
            mounts.append(Mount(line))
        except (ValueError, IndexError):
            pass
    return mounts


def read(path: str = "/proc/self/mountinfo") -> list[Mount]:
    with open(path) as f:
        return parse(f.read())
