"""`python kill_at_line.py N RECORD ARGS...`: run `ocirun ARGS...` and SIGKILL it just before the
Nth source line it executes in ocirun's create path (parent.py, state.py, linux/cgroups/); N = -1
kills nothing and, with RECORD, writes the executed lines there ("file:line:function" each).

A test driver, not part of ocirun: sys.settrace stops the create at an exact, repeatable statement,
which a timer cannot. Lines run by a forked child before it execs (spawn_init) are not counted.
"""
import os
import sys

kill_at, record_to = int(sys.argv[1]), sys.argv[2]
import ocirun
PKG = os.path.dirname(ocirun.__file__)
FILES = (os.path.join(PKG, "parent.py"), os.path.join(PKG, "state.py"), os.path.join(PKG, "linux", "cgroups") + os.sep)
ME = os.getpid()
count = 0
seen = []


def local(frame, event, arg):
    global count
    if event == "line" and os.getpid() == ME:
        if count == kill_at:
            os.kill(ME, 9)
        count += 1
        if record_to:
            seen.append(f"{os.path.relpath(frame.f_code.co_filename, PKG)}:{frame.f_lineno}:{frame.f_code.co_name}")
    return local


def tracer(frame, event, arg):
    return local if frame.f_code.co_filename.startswith(FILES) else None


sys.argv = ["ocirun"] + sys.argv[3:]
sys.settrace(tracer)
try:
    from ocirun.cli import main
    main()
finally:
    sys.settrace(None)
    if record_to:
        with open(record_to, "w") as f:
            f.write("\n".join(seen))
