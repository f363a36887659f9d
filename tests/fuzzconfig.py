"""Hypothesis strategies that mutate a good config.json (`ocirun spec`'s) into hostile ones: a value
anywhere replaced by a hostile one (NUL bytes, lone surrogates, huge or non-finite numbers, deep
nesting, wrong types, empty or absurd strings), a key removed or added, or the file's bytes damaged
(an invalid UTF-8 byte, truncation, UTF-16). Used by tests/unit/test_fuzz_config.py (in-process, many
cases) and tests/integration/test_fuzz_create.py (real `ocirun create` runs, fewer)."""
import json

from hypothesis import strategies as st


def paths(doc, max_depth: int = 12):
    """Every path (tuple of keys and indices) into `doc`, containers included, down to max_depth
    (iteratively: a mutation may already have put a deep value in)."""
    out = []
    stack = [((), doc)]
    while stack:
        prefix, value = stack.pop()
        out.append(prefix)
        if len(prefix) >= max_depth:
            continue
        if isinstance(value, dict):
            stack.extend((prefix + (k,), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((prefix + (i,), v) for i, v in enumerate(value))
    return sorted(out, key=repr)


def _get(doc, path):
    for part in path:
        doc = doc[part]
    return doc


HOSTILE_STRINGS = ["", "\0", "a\0b", "/\0", "\ud800", "x\udfff", "\udcff", "..", "/", "/proc", "/proc/self",
                   "../../../../etc", "/dev/null", "\n", "a" * 5000, "\u00e9\U0001f600", "NaN", "-1", "1e10",
                   "CAP_SYS_ADMIN", "SCMP_ACT_KILL", "tmpfs", "bind", "rbind", "proc", "ro,nosuid"]
HOSTILE_NUMBERS = [0, -1, 1, 2 ** 31, 2 ** 32, 2 ** 53 + 1, 2 ** 63, 2 ** 64 - 1, 2 ** 64, -2 ** 63 - 1, 10 ** 10,
                   10 ** 30, 1e10, 1.5, -0.0, 1e308, float("nan"), float("inf"), float("-inf")]


def _deep(depth: int, kind: str):
    value: object = "x"
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


scalars = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=20),   # surrogates included
    st.sampled_from(HOSTILE_NUMBERS),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(),
    st.booleans(),
    st.none(),
)
hostile_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.sampled_from(HOSTILE_STRINGS + ["type", "path", "options"]), scalars, max_size=3),
    st.builds(_deep, st.sampled_from([50, 199, 201, 600]), st.sampled_from(["list", "dict"])),
)


@st.composite
def mutated_configs(draw, base: dict, max_mutations: int = 3):
    """(config bytes, description): `base` with 1..max_mutations mutations, serialized."""
    doc = json.loads(json.dumps(base))
    notes = []
    for _ in range(draw(st.integers(1, max_mutations))):
        all_paths = list(paths(doc))
        path = draw(st.sampled_from(all_paths))
        kind = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if not path:
            kind = "add"
        if kind == "replace":
            parent = _get(doc, path[:-1])
            parent[path[-1]] = draw(hostile_values)
        elif kind == "delete":
            parent = _get(doc, path[:-1])
            del parent[path[-1]]
        else:
            target = _get(doc, path)
            if isinstance(target, dict):
                target[draw(st.sampled_from(HOSTILE_STRINGS + ["extra"]))] = draw(hostile_values)
            elif isinstance(target, list):
                target.append(draw(hostile_values))
        notes.append(f"{kind} {list(path)}")
    raw = json.dumps(doc).encode()      # ensure_ascii: lone surrogates become \\udXXX escapes
    damage = draw(st.sampled_from(["none"] * 8 + ["byte", "truncate", "utf16", "deep"]))
    if damage == "byte" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80"])) + raw[at:]
    elif damage == "truncate":
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif damage == "utf16":
        raw = raw.decode().encode("utf-16")
    elif damage == "deep":      # deeper than Python's recursion limit: spliced in as text
        depth = draw(st.sampled_from([1000, 5000, 100000]))
        raw = raw[:-1] + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"
    notes.append(f"damage {damage}")
    return raw, "; ".join(notes)
