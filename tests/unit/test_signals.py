"""parse_signal / signal_name, table-driven from what runc 1.1.5's `kill` was seen to accept, plus a
root test that asks the installed runc itself (a real container whose init ignores every signal)."""
import json
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ocirun.signals import (DEFAULT_KILL_SIGNAL, SIGNALS, UnknownSignal, go_quote, parse_signal,
                            signal_name)

REPO = Path(__file__).resolve().parents[2]
RUNC = shutil.which("runc")


@pytest.mark.parametrize("text, number", [
    ("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("sigkill", 9), ("SigKill", 9), ("9", 9),
    ("TERM", 15), ("SIGTERM", 15), ("hup", 1), ("STKFLT", 16), ("PWR", 30), ("SYS", 31),
    ("SIGIO", 29), ("io", 29), ("WINCH", 28), ("urg", 23), ("CHLD", 17), ("ABRT", 6),
    # numbers: Go's Atoi, no range check (kill(2) rejects what is out of range)
    ("0", 0), ("+18", 18), ("018", 18), ("-18", -18), ("64", 64), ("100", 100), ("-0", 0),
    ("9223372036854775807", 2**63 - 1), ("-9223372036854775808", -2**63),
])
def test_parse_signal_accepts(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", [
    "", "SIG", "FOO", "SIGSIGKILL", " KILL", "KILL ", " 9", "9 ", "1_8", "0x12", "9.0", "+", "-",
    "IOT", "CLD", "SIGCLD", "POLL", "UNUSED", "RTMIN", "SIGRTMIN", "RTMIN+1", "SIGRTMIN+1", "RTMAX",
    "9223372036854775808", "-9223372036854775809", "٩", "²", "SIGKIL\u00df",
])
def test_parse_signal_rejects_like_runc(text):
    with pytest.raises(UnknownSignal) as err:
        parse_signal(text)
    assert err.value.text == text


def test_unknown_signal_message():
    with pytest.raises(UnknownSignal) as err:
        parse_signal("FOO")
    assert str(err.value) == 'unknown signal "FOO"'
    assert err.value.exit_code == 1


def test_long_s_upper_cases_like_go():
    # Go's unicode.ToUpper('ſ') is 'S', as is Python's: both accept it.
    assert parse_signal("\u017figkill") == 9


@pytest.mark.parametrize("text, quoted", [
    ("FOO", '"FOO"'), ("", '""'), ('a"b', '"a\\"b"'), ("a\\b", '"a\\\\b"'), ("\n\t", '"\\n\\t"'),
    ("\x01\x7f", '"\\x01\\x7f"'), ("é", '"é"'), ("\u00a0", '"\\u00a0"'), ("\udcff", '"\\xff"'),
    ("\U000e0001", '"\\U000e0001"'),
])
def test_go_quote(text, quoted):
    assert go_quote(text) == quoted


def test_table_is_runcs_31_names_and_agrees_with_the_kernel_numbers():
    assert len(SIGNALS) == 31
    assert sorted(SIGNALS.values()) == list(range(1, 32))
    for name, number in SIGNALS.items():
        assert signal.Signals[name].value == number, name


def test_signal_name():
    assert signal_name(9) == "SIGKILL"
    assert signal_name(6) == "SIGABRT"   # not the alias SIGIOT
    assert signal_name(17) == "SIGCHLD"  # not SIGCLD
    assert signal_name(34) == "signal 34"
    assert signal_name(0) == "signal 0"
    for name, number in SIGNALS.items():
        assert parse_signal(signal_name(number)) == number == parse_signal(name[3:])


def test_default_kill_signal():
    assert parse_signal(DEFAULT_KILL_SIGNAL) == signal.SIGTERM


# ---- the oracle: runc kill on a real container ----

ORACLE_INPUTS = [
    "CONT", "cont", "SigCont", "SIGSIGCONT", "18", "+18", "018", " 18", "18 ", "0", "CLD", "POLL",
    "IOT", "UNUSED", "RTMIN", "SIGRTMIN+1", "STKFLT", "winch", "1_8", "0x12", "SIGIO", "FOO",
]


@pytest.fixture
def runc_container():
    """A running runc container whose shell ignores every catchable signal; removed afterwards."""
    if RUNC is None:
        pytest.skip("runc is not installed")
    work = Path(tempfile.mkdtemp(prefix="ocirun-sig-"))
    root = work / "state"
    cid = "ocirun-sigtest"
    try:
        build = subprocess.run(["bash", str(REPO / "bundles/build-rootfs.sh"), str(work)],
                               capture_output=True, text=True, timeout=120)
        assert build.returncode == 0, build.stderr
        ignored = " ".join(str(n) for n in range(1, 65) if n not in (signal.SIGKILL, signal.SIGSTOP))
        config = json.loads((REPO / "bundles/minimal/config.json").read_text())
        config["process"]["args"] = ["sh", "-c", f"trap '' {ignored}; while :; do sleep 1; done"]
        (work / "config.json").write_text(json.dumps(config))
        # The detached container keeps its stdio: a pipe would never reach EOF, so use a file.
        with open(work / "run.log", "w+") as log:
            run = subprocess.run([RUNC, "--root", str(root), "run", "-d", "-b", str(work), cid],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=60)
            log.seek(0)
            assert run.returncode == 0, log.read()
        time.sleep(0.2)  # let the shell install its traps before anything is sent
        yield root, cid
    finally:
        if root.exists():
            subprocess.run([RUNC, "--root", str(root), "delete", "-f", cid], capture_output=True,
                           timeout=60)
        shutil.rmtree(work)


@pytest.mark.root
def test_parse_signal_agrees_with_runc_kill(runc_container):
    root, cid = runc_container
    for text in ORACLE_INPUTS:
        proc = subprocess.run([RUNC, "--root", str(root), "kill", cid, text], capture_output=True,
                              text=True, timeout=30)
        runc_msg = json.loads(proc.stderr.strip().split(" msg=", 1)[1]) if proc.returncode else None
        try:
            parse_signal(text)
            ours = None
        except UnknownSignal as exc:
            ours = str(exc)
        if ours is None:
            assert proc.returncode == 0, (text, runc_msg)
        else:
            assert runc_msg == ours, text
    state = subprocess.run([RUNC, "--root", str(root), "state", cid], capture_output=True, text=True,
                           timeout=30)
    assert json.loads(state.stdout)["status"] == "running"
