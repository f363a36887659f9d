"""The generated validator (ocirun/schema_check.py) against jsonschema running the same schema (spec/).

jsonschema is the oracle: on the official fixtures and on thousands of mutated configs (hypothesis)
both must give the same verdict, and the error the generated code reports must be one jsonschema
reports too (same path, same message). The generated file must be what the generator makes of
spec/ today, and the module must import nothing.
"""
import copy
import glob
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocirun import schema_check
from ocirun.defaultspec import example_spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC_DIR = os.path.join(REPO, "spec")
FIXTURES = "/work/shared/reference/runtime-spec/schema/test/config"
HAVE_REFERENCE = os.path.isdir(FIXTURES)
needs_reference = pytest.mark.skipif(not HAVE_REFERENCE, reason=f"{FIXTURES} missing (shared reference folder)")


def _generator():
    spec = importlib.util.spec_from_file_location("gen_schema_check", os.path.join(REPO, "scripts", "gen_schema_check.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _generator()
RESOURCES = gen.load_resources(SPEC_DIR)


def _oracle():
    """jsonschema's Draft 2020-12 validator for our schema files, $refs resolved between them only."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry = Registry().with_resources((doc["$id"], Resource.from_contents(doc)) for doc in RESOURCES.values())
    return Draft202012Validator(RESOURCES[gen.ROOT], registry=registry)


ORACLE = _oracle()


def _fixture_docs() -> list:
    docs = []
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*", "*.json"))):
        try:
            with open(path, encoding="utf-8") as f:
                docs.append(json.load(f))
        except ValueError:
            pass
    return docs


BASES = [example_spec()] + _fixture_docs()


def assert_agrees(doc) -> None:
    errors = list(ORACLE.iter_errors(doc))
    try:
        schema_check.check(doc)
    except schema_check.SchemaError as exc:
        assert errors, f"only the generated validator refuses it: {exc.path}: {exc.message}"
        found = {(tuple(e.absolute_path), e.message) for e in errors}
        paths = {path for path, _ in found}
        assert exc.path in paths, f"{exc.path}: {exc.message} is not among jsonschema's errors {found}"
        if exc.message.startswith(("needs one of ", "key ")):      # anyOf, propertyNames: our own words
            return
        assert (exc.path, exc.message) in found
        return
    assert not errors, f"only jsonschema refuses it: {[(list(e.absolute_path), e.message) for e in errors]}"


# --- the generated file --------------------------------------------------------------------------

def test_generated_module_is_up_to_date_with_the_schema():
    with open(os.path.join(REPO, "ocirun", "schema_check.py"), encoding="utf-8") as f:
        committed = f.read()
    assert committed == gen.generate(SPEC_DIR), "spec/ changed: run python3 scripts/gen_schema_check.py"


def test_generated_module_imports_nothing():
    code = ("import sys, ocirun; before = set(sys.modules); import ocirun.schema_check; "
            "print(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-ISB", "-c", f"import sys; sys.path.insert(0, {REPO!r}); {code}"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['ocirun.schema_check']"


@pytest.mark.parametrize("keyword,value", [("oneOf", [{}]), ("patternProperties", {}), ("format", "uri"),
                                           ("type", ["string", "null"]), ("pattern", "^a|b$"),
                                           ("pattern", "^\\d+$"), ("pattern", "unanchored")])
def test_generator_refuses_what_it_does_not_implement(tmp_path, keyword, value):
    for name, doc in RESOURCES.items():
        doc = copy.deepcopy(doc)
        if name == gen.ROOT:
            doc["properties"]["hostname"][keyword] = value
        (tmp_path / name).write_text(json.dumps(doc))
    with pytest.raises(gen.SchemaUnsupported):
        gen.generate(str(tmp_path))


# --- agreement with jsonschema ---------------------------------------------------------------

@needs_reference
def test_agrees_on_every_official_fixture():
    assert len(BASES) >= 12   # runc's default config and the official good/ and bad/ configs
    for doc in BASES:
        assert_agrees(doc)


def _interesting_key(value):
    return (type(value).__name__, repr(value))


def _schema_values(node, out: list) -> None:
    """Values worth trying, from the schema itself: enum members, bounds and their neighbours."""
    if isinstance(node, dict):
        out.extend(node.get("enum", []))
        if "const" in node:
            out.append(node["const"])
        for key in ("minimum", "maximum"):
            if key in node:
                out.extend([node[key] - 1, node[key], node[key] + 1])
        for value in node.values():
            _schema_values(value, out)
    elif isinstance(node, list):
        for value in node:
            _schema_values(value, out)


def _values_by_name() -> dict:
    """property name -> values aimed at its schema (enum members, bounds and their neighbours, the
    same inside a list or a map), so that a mutation of that property probes its edges."""
    resolver = gen.Generator(RESOURCES)
    by_name: dict = {}

    def aimed(schema, file, depth=0) -> list:
        out: list = []
        if depth > 3 or not isinstance(schema, dict):
            return out
        if "$ref" in schema:
            tfile, _, target = resolver.resolve(file, schema["$ref"])
            out += aimed(target, tfile, depth)
        _schema_values({k: v for k, v in schema.items() if k in ("enum", "const", "minimum", "maximum")}, out)
        if "items" in schema:
            out += [[x] for x in aimed(schema["items"], file, depth + 1)]
        if isinstance(schema.get("additionalProperties"), dict):
            out += [{"k": x} for x in aimed(schema["additionalProperties"], file, depth + 1)]
        return out

    def walk(node, file) -> None:
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                by_name.setdefault(name, []).extend(aimed(sub, file))
            for name in node.get("required", []):
                by_name.setdefault(name, [])
            for value in node.values():
                walk(value, file)
        elif isinstance(node, list):
            for value in node:
                walk(value, file)

    for file, doc in RESOURCES.items():
        walk(doc, file)
    # and one value of every JSON type, 1.0 (an integer to jsonschema) and 1.5 (not one)
    probes = [True, False, 0, 1.0, 1.5, "1", None, [], {}]
    return {name: sorted({_interesting_key(v): v for v in vals + probes}.values(), key=_interesting_key)
            for name, vals in by_name.items()}


def _subtrees(node, out: list) -> None:
    out.append(node)
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        _subtrees(child, out)


# 0, 0.0 and False are all kept: jsonschema tells them apart (integer, integer, boolean)
INTERESTING: list = [0, 1, -1, 0.0, 1.0, 2.5, -0.0, True, False, None, "", "x", "RLIMIT_NOFILE", "RLIMIT_x",
                     "RLIMIT_A\n", "2MB", "02MB", "1KB\n", "64kB", "MB:0=100", "MB:0=1\n", "MB:\n\n", "0-3,7",
                     "0-3\n", "a b", "rw", "rwmr", "p", "c", 2 ** 64, 2 ** 63, -2 ** 63 - 1, 1e300, [], {}]
for doc in RESOURCES.values():
    _schema_values(doc, INTERESTING)
AIMED = _values_by_name()
NAMES = sorted(AIMED)
SUBTREES: list = []
for doc in BASES[:3]:
    _subtrees(doc, SUBTREES)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=4)), inner, max_size=3)),
    max_leaves=6)
INTERESTING = sorted({_interesting_key(v): v for v in INTERESTING}.values(), key=_interesting_key)
values = st.one_of(st.sampled_from(INTERESTING).map(copy.deepcopy),
                   st.sampled_from(range(len(SUBTREES))).map(lambda i: copy.deepcopy(SUBTREES[i])),
                   json_values)


def _slots(node, out: list) -> None:
    """Every (container, key) of a document: where a mutation can land."""
    if isinstance(node, dict):
        for key, child in node.items():
            out.append((node, key))
            _slots(child, out)
    elif isinstance(node, list):
        for i, child in enumerate(node):
            out.append((node, i))
            _slots(child, out)


def _containers(node, out: list) -> None:
    if isinstance(node, (dict, list)):
        out.append(node)
        for child in (node.values() if isinstance(node, dict) else node):
            _containers(child, out)


@st.composite
def mutated_configs(draw):
    doc = copy.deepcopy(BASES[draw(st.sampled_from(range(len(BASES))))])
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if op == "add":
            containers: list = []
            _containers(doc, containers)
            node = containers[draw(st.sampled_from(range(len(containers))))]
            if isinstance(node, dict):
                name = draw(st.sampled_from(NAMES))
                node[name] = draw(_value_for(name))
            else:
                node.append(draw(values))
            continue
        slots: list = []
        _slots(doc, slots)
        if not slots:
            continue
        node, key = slots[draw(st.sampled_from(range(len(slots))))]
        if op == "delete":
            del node[key]
        else:
            node[key] = draw(_value_for(key))
    return doc


def _value_for(key):
    """Mostly values aimed at the property's schema; any value now and then."""
    if isinstance(key, str) and AIMED.get(key):
        return st.one_of(st.sampled_from(AIMED[key]).map(copy.deepcopy), st.sampled_from(AIMED[key]).map(copy.deepcopy),
                         st.sampled_from(AIMED[key]).map(copy.deepcopy), values)
    return values


@settings(max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(mutated_configs())
def test_agrees_on_mutated_configs(doc):
    assert_agrees(doc)


@settings(max_examples=300, deadline=None, database=None)
@given(values)
def test_agrees_on_any_document(doc):
    assert_agrees(doc)


def _patterns(node, out: set) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            out.add(node["pattern"])
        for value in node.values():
            _patterns(value, out)
    elif isinstance(node, list):
        for value in node:
            _patterns(value, out)


PATTERNS: set = set()
for doc in RESOURCES.values():
    _patterns(doc, PATTERNS)


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_pattern_matcher_agrees_with_re(pattern):
    tokens = gen.compile_pattern(pattern)
    alphabet = "".join(sorted(set(pattern) - set("^$[]{}*+\\") | set("\n0123456789AZaz_-,: MBKrwm\x00é")))

    @settings(max_examples=500, deadline=None, database=None)
    @given(st.text(alphabet=alphabet, max_size=12))
    def agree(text):
        assert schema_check._search(text, tokens) == bool(re.search(pattern, text)), repr(text)

    agree()


def test_error_paths_and_messages():
    def error(doc):
        with pytest.raises(schema_check.SchemaError) as exc:
            schema_check.check(doc)
        return exc.value.path, exc.value.message

    minimal = {"ociVersion": "1.0.0", "root": {"path": "rootfs"}}
    device = {"type": "c", "path": "/dev/x"}
    assert error(dict(minimal, linux={"devices": [device]})) == (("linux", "devices", 0), "'major' is a required property")
    assert error(dict(minimal, annotations={"": "x"})) == (("annotations",), "key '' should be non-empty")
    assert error(dict(minimal, linux={"resources": {"blockIO": {"weightDevice": [{"major": 8, "minor": 0}]}}})) == \
        (("linux", "resources", "blockIO", "weightDevice", 0), "needs one of 'weight', 'leafWeight'")
    assert error(dict(minimal, process={"cwd": "/", "rlimits": [{"type": "NOFILE", "soft": 1, "hard": 1}]})) == \
        (("process", "rlimits", 0, "type"), "'NOFILE' does not match '^RLIMIT_[A-Z_]+$'")
    schema_check.check(dict(minimal, linux={"devices": [{"type": "p", "path": "/dev/fifo"}]}))
