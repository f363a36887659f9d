"""Property: whatever config.json holds, loading and validating it (what `create` does before the
container's init gets it) either succeeds or raises OciError with one line; never another exception
(the CLI prints those as "internal error") and never a multi-line message. Thousands of mutations
of `ocirun spec`'s config (tests/fuzzconfig.py), in-process. OCIRUN_FUZZ_CONFIGS=N runs N cases
(default 1000, about 10 s; 8000 passed when it was written)."""
import os

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extras (scripts/setup.sh)")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from ocirun import parent  # noqa: E402
from ocirun.defaultspec import example_spec  # noqa: E402
from ocirun.errors import OciError  # noqa: E402
from tests.fuzzconfig import mutated_configs  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz")
    os.mkdir(path / "rootfs")
    return str(path)


def load(bundle: str, raw: bytes) -> None:
    with open(os.path.join(bundle, "config.json"), "wb") as f:
        f.write(raw)
    config = parent.load_and_validate(bundle)
    process = config.get("process")       # create_container's own checks before the init
    if process:
        process.get("terminal")


def has_unusable_text(raw: bytes) -> bool:
    """A NUL byte or a lone surrogate in some string or key (what no runtime can pass to the kernel)."""
    import json
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and ("\0" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)):
            return True
    return False


@settings(max_examples=int(os.environ.get("OCIRUN_FUZZ_CONFIGS", "1000")), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(case=mutated_configs(example_spec()))
def test_any_config_loads_or_is_one_line_config_error(bundle, case):
    raw, what = case
    try:
        load(bundle, raw)
        assert not has_unusable_text(raw), (what, "accepted a NUL byte or a lone surrogate")
    except OciError as exc:
        text = str(exc)
        assert text and "\n" not in text, (what, text)
        assert "internal error" not in text, (what, text)
