"""log.timing(): --debug timing lines (wall and CPU ms since the previous mark), nothing without it.
Run in a fresh interpreter each: the log module's state is per process."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(code: str, tmp_path) -> str:
    logfile = tmp_path / "log"
    prog = f"import sys; sys.path.insert(0, {REPO!r}); from ocirun import log\n" + code.replace("LOG", repr(str(logfile)))
    subprocess.run([sys.executable, "-ISB", "-c", prog], check=True)
    return logfile.read_text() if logfile.exists() else ""


def test_lines_with_debug(tmp_path):
    text = run("log.configure(LOG, debug=True)\nlog.timing('a: one')\nsum(range(10**6))\nlog.timing('a: two')", tmp_path)
    lines = [line for line in text.splitlines() if "timing" in line]
    assert len(lines) == 3, text
    assert 'msg="timing: interpreter start: cpu ' in lines[0]
    assert 'msg="timing: a: one: ' in lines[1] and " ms (cpu " in lines[1]
    assert 'msg="timing: a: two: ' in lines[2]


def test_marks_before_debug_is_known_are_logged_once_it_is(tmp_path):
    # the init marks phases before the bootstrap tells it whether --debug is on
    text = run("log.timing('i: early')\nlog.configure(LOG, debug=True)\nlog.timing('i: late')", tmp_path)
    assert "timing: i: early: " in text and "timing: i: late: " in text


def test_nothing_without_debug(tmp_path):
    text = run("log.timing('x: early')\nlog.configure(LOG)\nlog.timing('x: late')\nlog.info('hello')", tmp_path)
    assert "timing" not in text and "hello" in text


def test_lines_for_the_exec_helper_and_after_fork(tmp_path):
    code = ("import os\nlog.timing('h: one')\nlines = log.timing_lines()\n"
            "assert lines[0].startswith('timing: interpreter start: cpu '), lines\n"
            "assert [l.split(':')[1] for l in lines[1:]] == [' h'], lines\n"
            "assert log.timing_lines() == []\n"
            "sum(range(3 * 10**6))\npid = os.fork()\n"
            "if pid == 0:\n"
            "    log.timing_forked()\n    log.timing('h: child')\n    lines = log.timing_lines()\n"
            "    cpu = float(lines[0].split('cpu ')[1].split()[0])\n"
            "    os._exit(0 if len(lines) == 1 and lines[0].startswith('timing: h: child: ') and 0 <= cpu < 20 else 1)\n"
            "assert os.waitpid(pid, 0)[1] == 0\n")
    run(code, tmp_path)
