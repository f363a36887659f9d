"""The container init is a list of named steps (ocirun/init.py STAGE1_STEPS, STAGE2_STEPS): their
order is the security order, a failure names its step, and --debug times each one."""
import pytest

from ocirun import init


def names(steps):
    return [name for name, _ in steps]


def test_stage1_order():
    assert names(init.STAGE1_STEPS) == ["join namespaces", "user namespace", "unshare", "time offsets", "fork"]


def test_stage2_order():
    assert names(init.STAGE2_STEPS) == [
        "session", "keyring", "check process", "loopback", "hostname", "mount sources", "rootfs",
        "runtime hooks", "createContainer hooks", "seal imports", "pivot", "console", "sysctl", "cwd",
        "finalize", "process settings", "ready", "wait", "startContainer hooks", "exec"]


def test_security_order():
    order = names(init.STAGE2_STEPS)
    before = [("rootfs", "seal imports"), ("seal imports", "pivot"),     # nothing imported from the rootfs
              ("createContainer hooks", "pivot"), ("pivot", "finalize"),
              ("cwd", "finalize"),                                       # process.cwd made before root.readonly
              ("finalize", "process settings"),                          # masks while privileged
              ("process settings", "ready"), ("ready", "wait"), ("wait", "exec")]
    for a, b in before:
        assert order.index(a) < order.index(b), (a, b)
    assert len(set(order)) == len(order)


def test_each_step_is_an_init_method():
    for name, step in init.STAGE1_STEPS + init.STAGE2_STEPS:
        assert getattr(init.Init, step.__name__) is step, name


def _bare_init():
    return init.Init(None, {"config": {}})


def test_a_failure_names_its_step_and_propagates_before_ready():
    done = []
    it = _bare_init()
    steps = (("one", lambda self: done.append(1)), ("two", lambda self: 1 / 0), ("three", lambda self: done.append(3)))
    with pytest.raises(ZeroDivisionError):
        it.run_steps(steps)
    assert it.step == "two" and done == [1]


def test_after_start_a_failure_goes_to_the_fifo(monkeypatch):
    it = _bare_init()
    it.fifo = 99
    told = []
    monkeypatch.setattr(init.Init, "tell_start", lambda self, exc: told.append((self.step, str(exc))))
    it.run_steps((("exec", lambda self: (_ for _ in ()).throw(OSError(2, "No such file"))),))
    assert told == [("exec", "[Errno 2] No such file")]


def test_each_step_is_timed(monkeypatch):
    marks = []
    monkeypatch.setattr(init.log, "timing", marks.append)
    _bare_init().run_steps((("a", lambda self: None), ("b", lambda self: None)))
    assert marks == ["init: a", "init: b"]


def test_architecture_md_lists_the_steps():
    import os
    doc = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "ARCHITECTURE.md")).read()
    block = doc.split("<!-- init-steps -->")[1].split("<!-- /init-steps -->")[0]
    stage1, stage2 = " ".join(block.split()).split("- stage 1: ")[1].split(" - stage 2: ")
    assert stage1.split(", ") == names(init.STAGE1_STEPS)
    assert stage2.split(", ") == names(init.STAGE2_STEPS)
