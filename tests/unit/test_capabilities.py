"""The capability name table and process.capabilities validation (no privilege change here)."""
import prctl
import pytest

from ocirun.errors import ConfigError
from ocirun.linux import capabilities as caps


def test_table_numbers_match_linux():
    assert len(caps.CAPABILITIES) == 41
    assert caps.CAP_NUMBERS["CAP_CHOWN"] == 0
    assert caps.CAP_NUMBERS["CAP_SETPCAP"] == 8
    assert caps.CAP_NUMBERS["CAP_SYS_ADMIN"] == 21
    assert caps.CAP_NUMBERS["CAP_AUDIT_READ"] == 37
    assert caps.CAP_NUMBERS["CAP_CHECKPOINT_RESTORE"] == 40
    # cross-check with python-prctl's own constants for every name it knows
    for name, number in caps.CAP_NUMBERS.items():
        if hasattr(prctl, name):
            assert getattr(prctl, name) == number, name


def test_valid_config_has_no_warning():
    config = {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
              "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}
    assert caps.validate_capabilities(config) == []
    assert caps.validate_capabilities(None) == []
    assert caps.validate_capabilities({}) == []


def test_unknown_name_is_a_warning_naming_the_element_and_skipped():
    # config.md: a capability that cannot be mapped MUST be logged as a warning, SHOULD NOT fail
    config = {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_FOO"]}
    assert caps.validate_capabilities(config) == [
        'process.capabilities.bounding[3]: unknown capability "CAP_FOO", ignored']
    assert caps.cap_numbers(config["bounding"]) == {0, 5, 7}


@pytest.mark.parametrize("name", ["chown", "CHOWN", "cap_chown", ""])
def test_names_not_spelled_as_in_the_spec_are_unknown(name):
    warnings = caps.validate_capabilities({"effective": [name]}, path="p.caps")
    assert len(warnings) == 1 and warnings[0].startswith("p.caps.effective[0]: unknown capability")


@pytest.mark.parametrize("name", [3, None, ["CAP_KILL"]])
def test_a_name_that_is_not_a_string_is_refused(name):
    with pytest.raises(ConfigError) as exc:
        caps.validate_capabilities({"effective": [name]}, path="p.caps")
    assert exc.value.path == "p.caps.effective[0]"


def test_shape_errors():
    with pytest.raises(ConfigError, match=r"^process.capabilities.permitted: must be an array"):
        caps.validate_capabilities({"permitted": "CAP_KILL"})
    with pytest.raises(ConfigError, match=r"^process.capabilities.sideways: unknown capability set"):
        caps.validate_capabilities({"sideways": []})
    with pytest.raises(ConfigError, match=r"^process.capabilities: must be an object"):
        caps.validate_capabilities(["CAP_KILL"])


def test_capability_unknown_to_kernel_is_a_warning_and_skipped(monkeypatch):
    monkeypatch.setattr(caps, "_last_cap", 38)      # a kernel without CAP_BPF, CAP_CHECKPOINT_RESTORE
    warnings = caps.validate_capabilities({"bounding": ["CAP_CHOWN", "CAP_BPF"]})
    assert len(warnings) == 1
    assert warnings[0].startswith("process.capabilities.bounding[1]: capability CAP_BPF is not supported")
    assert caps.cap_numbers(["CAP_CHOWN", "CAP_BPF", "CAP_PERFMON"]) == {0, 38}


def test_ambient_outside_inheritable_and_permitted_is_said_at_debug_level(monkeypatch):
    from ocirun import log
    said = []
    monkeypatch.setattr(log, "debug", said.append)
    warnings = caps.validate_capabilities({"inheritable": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL"],
                                           "ambient": ["CAP_KILL", "CAP_CHOWN"]})
    assert warnings == []
    assert said == ["process.capabilities.ambient: CAP_CHOWN not in both inheritable and permitted, "
                    "so not raised (the kernel allows no other ambient capability)"]


def test_kernel_last_cap_reads_proc():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert caps.kernel_last_cap() == int(f.read())


def test_a_working_directory_outside_the_root_is_refused(tmp_path):
    """D-7: in a child whose root is moved away from its cwd, getcwd() is "(unreachable)"."""
    import os
    from ocirun import security
    from ocirun.errors import ConfigError
    security.verify_cwd(os.getcwd())        # an ordinary cwd passes
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(tmp_path)
            inner = tmp_path / "root"
            inner.mkdir()
            os.chroot(inner)                 # cwd now lies outside the root
            try:
                security.verify_cwd(str(tmp_path))
                os.write(w, b"accepted")
            except ConfigError as exc:
                os.write(w, str(exc).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    out = os.read(r, 4096).decode()
    assert "outside the container's root filesystem" in out, out


# --- capset/capget (ocirun.linux.syscalls; python-prctl is only this test's cross-check) -------------

def _status_caps(pid="self") -> tuple[int, int, int]:
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
    return tuple(int(fields[k], 16) for k in ("CapEff", "CapPrm", "CapInh"))


def test_capget_reads_what_proc_status_shows():
    from ocirun.linux import syscalls
    assert syscalls.capget() == _status_caps()


def test_capset_sets_all_three_sets_exactly_both_words():
    import os
    from ocirun.linux import syscalls
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            eff, prm, inh = syscalls.capget()
            # keep CAP_KILL (5) and, above bit 31, CAP_CHECKPOINT_RESTORE (40) where we have them
            keep = prm & ((1 << 5) | (1 << 40))
            syscalls.capset(keep & ~(1 << 40), keep, keep & (1 << 5))
            code = 0 if _status_caps() == (keep & ~(1 << 40), keep, keep & (1 << 5)) else 2
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0


def test_apply_capabilities_in_a_child():
    import os
    from ocirun.linux import syscalls
    if os.geteuid() != 0:
        pytest.skip("needs root")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            from ocirun import security
            security.set_capabilities(caps.plan_capabilities(
                {"effective": ["CAP_KILL"], "permitted": ["CAP_KILL", "CAP_CHECKPOINT_RESTORE"],
                 "inheritable": ["CAP_CHECKPOINT_RESTORE"]}))
            code = 0 if syscalls.capget() == (1 << 5, 1 << 5 | 1 << 40, 1 << 40) else 2
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0


def test_a_set_name_with_a_newline_is_refused_on_one_line():
    # the fuzzer found it: a key "\n" used to make a two-line error
    with pytest.raises(ConfigError) as exc:
        caps.validate_capabilities({"\n": None, "bounding\r": []})
    assert str(exc.value) == "process.capabilities.\\n: unknown capability set"
    assert "\n" not in str(exc.value)
