"""The name checks of validate.py and the cgroup code are plain functions (importing `re` cost ~3 ms
of every create); the regular expressions they replace are their oracle here. They differ only where
the expressions were wrong: non-ASCII characters (re.IGNORECASE lets the Kelvin sign match [a-z],
\\d matches any Unicode digit) and a final newline (`$` matches before one)."""
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocirun import validate
from ocirun.linux.cgroups import resources

SYSCTL_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)+$", re.IGNORECASE)
IPC_SYSCTL = re.compile(r"^(kernel\.(shm[a-z_]*|msg[a-z_]*|sem|sem_[a-z_]*)|fs\.mqueue\.[a-z_]+)$")
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
PAGE_SIZE = re.compile(r"^[1-9][0-9]*[KMG]B\Z")

ASCII = st.text(alphabet="0123456789azAZ._-+:/ \n", max_size=14)
UNICODE = st.text(max_size=10)


def oracle(pattern, text: str) -> bool:
    """The expression's verdict, for ASCII text without a final newline (where it was right)."""
    return bool(pattern.fullmatch(text))


def cases(*parts):
    """Strings built from the pieces that matter (so that valid names come up), and anything."""
    return st.one_of(st.lists(st.sampled_from(parts), max_size=6).map("".join), ASCII, UNICODE)


def agree(pattern, func, text):
    if text.isascii():
        assert func(text) == oracle(pattern, text), repr(text)
    elif func(text):
        assert oracle(pattern, text), repr(text)     # never more permissive than the expression


@settings(max_examples=1500, deadline=None, database=None)
@given(cases("kernel", "fs", "net", "mqueue", ".", "shm", "msg", "sem", "_", "-", "max", "0", "A", "K", "\n"))
def test_sysctl_names(text):
    agree(SYSCTL_NAME, validate._is_sysctl_name, text)
    agree(IPC_SYSCTL, validate._is_ipc_sysctl, text)


@settings(max_examples=2000, deadline=None, database=None)
@given(cases("0", "1", "01", "10", ".", "-", "+", "rc", "alpha", "-1", "x", "\u0661"))
def test_semver(text):
    agree(SEMVER, validate._is_semver, text)


@settings(max_examples=1000, deadline=None, database=None)
@given(cases("0", "1", "2", "64", "K", "M", "G", "T", "B", "kB", "\n", "\u0661"))
def test_page_sizes(text):
    agree(PAGE_SIZE, resources._is_page_size, text)


@pytest.mark.parametrize("good", ["1.0.0", "1.2.3-rc.1", "1.0.0-0.3.7", "1.0.0-x-y-z.--", "1.0.0+20130313144700",
                                  "1.0.0-beta+exp.sha.5114f85", "1.0.0-alpha.1a"])
def test_semver_examples(good):
    assert validate._is_semver(good)


@pytest.mark.parametrize("bad", ["1.0", "01.0.0", "1.0.0-01", "1.0.0-", "1.0.0+", "1.0.0-a..b", "1.0.0\n", "v1.0.0",
                                 "1.0.0-rc_1", "\u0661.0.0"])
def test_semver_refusals(bad):
    assert not validate._is_semver(bad)


def test_a_page_size_with_a_final_newline_is_refused():
    assert resources._is_page_size("2MB") and not resources._is_page_size("2MB\n")
