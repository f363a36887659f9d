"""The device access list: spec rules -> one effective policy -> v1 writes or a v2 eBPF program.

Like runc, the rules of linux.resources.devices are applied in order *on top of a deny-all default*,
followed by the devices every container needs (runc's specconv.AllowedDevices). An emulator of the
kernel's v1 semantics turns the list into one policy (default allow/deny + exceptions), which then
becomes either the minimal devices.allow/devices.deny writes (v1) or a BPF_PROG_TYPE_CGROUP_DEVICE
program (v2). Everything here is pure.
"""
import struct

from ocirun.errors import ConfigError
from ocirun.record import record

WILDCARD = -1
FIELD = "linux.resources.devices"


# type: "a", "c" or "b"; major/minor: WILDCARD for *; access: subset of "rwm".
# (a record, as a namedtuple: the dataclasses module costs ~6 ms of imports on every create)
Rule = record("Rule", "type major minor access allow")


def _r(t: str, major: int, minor: int, access: str = "rwm") -> Rule:
    return Rule(t, major, minor, access, True)


# runc libcontainer/specconv AllowedDevices (runc 1.1.5 writes exactly these, checked on this host)
DEFAULT_ALLOWED: tuple[Rule, ...] = (
    _r("c", WILDCARD, WILDCARD, "m"),    # mknod of any device (opening still needs a rule)
    _r("b", WILDCARD, WILDCARD, "m"),
    _r("c", 1, 3),        # /dev/null
    _r("c", 1, 8),        # /dev/random
    _r("c", 1, 7),        # /dev/full
    _r("c", 5, 0),        # /dev/tty
    _r("c", 1, 5),        # /dev/zero
    _r("c", 1, 9),        # /dev/urandom
    _r("c", 136, WILDCARD),  # /dev/pts/*
    _r("c", 5, 2),        # /dev/ptmx
    _r("c", 10, 200),     # /dev/net/tun (kept by runc for compatibility)
)


def _norm_access(access: str) -> str:
    return "".join(c for c in "rwm" if c in access)


def rules_from_spec(devices: list | None) -> list[Rule]:
    """linux.resources.devices (validated) followed by DEFAULT_ALLOWED."""
    rules: list[Rule] = []
    for i, d in enumerate(devices or []):
        path = f"{FIELD}[{i}]"
        if not isinstance(d, dict):
            raise ConfigError(path, "must be an object")
        allow = d.get("allow")
        if not isinstance(allow, bool):
            raise ConfigError(f"{path}.allow", "is required and must be a boolean")
        t = d.get("type") or "a"
        if t not in ("a", "c", "b"):
            raise ConfigError(f"{path}.type", f'invalid device type "{t}" (want a, c or b)')
        nums = []
        for key in ("major", "minor"):
            v = d.get(key)
            if v is None:
                v = WILDCARD
            elif isinstance(v, bool) or not isinstance(v, int) or v < WILDCARD:
                raise ConfigError(f"{path}.{key}", f"invalid device number {v!r}")
            nums.append(v)
        access = d.get("access")
        if access is None:
            access = "rwm"      # the schema makes it optional; the kernel's "a" means all three
        if not isinstance(access, str) or not access or set(access) - set("rwm"):
            raise ConfigError(f"{path}.access", f'invalid access "{access}" (a non-empty combination of r, w, m)')
        rules.append(Rule(t, nums[0], nums[1], _norm_access(access), allow))
    rules.extend(DEFAULT_ALLOWED)
    return rules


class Policy:
    """The kernel's v1 model: a default plus exceptions keyed by (type, major, minor)."""

    def __init__(self, default_allow: bool = False, exceptions: dict | None = None):
        self.default_allow = default_allow
        self.exceptions: dict[tuple[str, int, int], str] = exceptions if exceptions is not None else {}

    def __eq__(self, other) -> bool:
        return isinstance(other, Policy) and (self.default_allow, self.exceptions) == (other.default_allow, other.exceptions)

    def __repr__(self) -> str:
        return f"Policy(default_allow={self.default_allow}, exceptions={self.exceptions})"

    def apply(self, rule: Rule) -> None:
        if rule.type == "a":
            # "a" resets the whole list (kernel devcgroup_update_access)
            self.default_allow = rule.allow
            self.exceptions.clear()
            return
        key = (rule.type, rule.major, rule.minor)
        have = self.exceptions.get(key, "")
        if rule.allow != self.default_allow:
            self.exceptions[key] = _norm_access(have + rule.access)
        else:
            left = "".join(c for c in have if c not in rule.access)
            if left:
                self.exceptions[key] = left
            else:
                self.exceptions.pop(key, None)


def emulate(rules: list[Rule]) -> Policy:
    policy = Policy()      # deny-all to start with, like runc's emulator
    for rule in rules:
        policy.apply(rule)
    return policy


def rule_text(t: str, major: int, minor: int, access: str) -> str:
    def num(n: int) -> str:
        return "*" if n == WILDCARD else str(n)
    return f"{t} {num(major)}:{num(minor)} {access}"


def parse_devices_list(text: str) -> Policy | None:
    """devices.list -> Policy; None when the default is allow (the kernel then hides the exceptions)."""
    policy = Policy()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        if parts[0] == "a":
            return None
        major, _, minor = parts[1].partition(":")
        key = (parts[0], WILDCARD if major == "*" else int(major), WILDCARD if minor == "*" else int(minor))
        policy.exceptions[key] = _norm_access(policy.exceptions.get(key, "") + parts[2])
    return policy


def v1_writes(target: Policy, current: Policy | None) -> list[tuple[str, str]]:
    """(file, value) writes turning `current` into `target` on a v1 devices cgroup.

    When both deny by default only the differences are written, so updating a running container never
    opens (or closes) access to everything for a moment; otherwise the list is reset with "a".
    """
    grant, revoke = ("devices.allow", "devices.deny") if not target.default_allow else ("devices.deny", "devices.allow")
    writes: list[tuple[str, str]] = []
    if current is not None and not target.default_allow:
        for key, have in current.exceptions.items():
            drop = "".join(c for c in have if c not in target.exceptions.get(key, ""))
            if drop:
                writes.append((revoke, rule_text(*key, drop)))
        for key, want in target.exceptions.items():
            add = "".join(c for c in want if c not in current.exceptions.get(key, ""))
            if add:
                writes.append((grant, rule_text(*key, add)))
        return writes
    writes.append((revoke, "a"))
    writes.extend((grant, rule_text(*key, acc)) for key, acc in target.exceptions.items())
    return writes


# --- cgroup v2: BPF_PROG_TYPE_CGROUP_DEVICE ------------------------------------------------------
# The program sees struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major; u32 minor; }
# and returns 1 to allow, 0 to deny.

BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
BPF_DEVCG_ACC = {"m": 1, "r": 2, "w": 4}

_LDXW, _AND32_K, _RSH32_K, _MOV32_X, _MOV32_K = 0x61, 0x54, 0x74, 0xBC, 0xB4
_JNE_K, _JNE_X, _JEQ_K, _EXIT = 0x55, 0x5D, 0x15, 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def bpf_program(policy: Policy) -> bytes:
    """The eBPF instructions enforcing `policy` (runc's devicefilter layout)."""
    prog = [
        _insn(_LDXW, 2, 1, 0), _insn(_AND32_K, 2, imm=0xFFFF),     # r2 = device type
        _insn(_LDXW, 3, 1, 0), _insn(_RSH32_K, 3, imm=16),         # r3 = requested access
        _insn(_LDXW, 4, 1, 4),                                    # r4 = major
        _insn(_LDXW, 5, 1, 8),                                    # r5 = minor
    ]
    verdict = 0 if policy.default_allow else 1
    for (t, major, minor), access in policy.exceptions.items():
        # each test jumps to the end of this block when it does not match
        tests: list[tuple] = [(_JNE_K, 2, 0, BPF_DEVCG_DEV_CHAR if t == "c" else BPF_DEVCG_DEV_BLOCK)]
        mask = sum(BPF_DEVCG_ACC[c] for c in access)
        if mask != 7:
            tests.append((_MOV32_X, 1, 3, None))
            tests.append((_AND32_K, 1, 0, mask))
            if verdict:    # an allowed exception must cover every requested bit
                tests.append((_JNE_X, 1, 3, None))
            else:          # a denied exception matches when any requested bit is in it (kernel v1)
                tests.append((_JEQ_K, 1, 0, 0))
        if major != WILDCARD:
            tests.append((_JNE_K, 4, 0, major))
        if minor != WILDCARD:
            tests.append((_JNE_K, 5, 0, minor))
        block_len = len(tests) + 2
        for i, (code, dst, src, imm) in enumerate(tests):
            is_jump = code in (_JNE_K, _JNE_X, _JEQ_K)
            off = block_len - i - 1 if is_jump else 0
            prog.append(_insn(code, dst, src, off, imm or 0))
        prog += [_insn(_MOV32_K, 0, imm=verdict), _insn(_EXIT)]
    prog += [_insn(_MOV32_K, 0, imm=1 if policy.default_allow else 0), _insn(_EXIT)]
    return b"".join(prog)
