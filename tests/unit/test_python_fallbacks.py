"""The private C modules ocirun uses for speed have a fallback where a Python lacks them: `_sha256`
became `_sha2` in 3.12 (create with a non-default --root failed there), `_json` is optional."""
import json
import subprocess
import sys

from tests.conftest import REPO


def run_without(modules: list, code: str) -> str:
    """Run `code` in a fresh interpreter where importing `modules` fails (ImportError)."""
    block = "".join(f"sys.modules[{m!r}] = None; " for m in modules)
    proc = subprocess.run([sys.executable, "-I", "-c", f"import sys; {block}sys.path.insert(0, {REPO!r}); {code}"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_cgroup_name_of_a_non_default_root_on_any_python():
    code = "from ocirun.parent import default_cgroup_name; print(default_cgroup_name('/x/root', 'c'))"
    names = {run_without(blocked, code) for blocked in ([], ["_sha256"], ["_sha2"], ["_sha256", "_sha2"])}
    assert len(names) == 1, names       # every fallback gives the same name (the same SHA-256)
    assert names.pop().strip() == "c-" + __import__("hashlib").sha256(b"/x/root").hexdigest()[:8]


def test_fastjson_without_the_c_accelerator():
    doc = {"a": [1, 2.5, "\u00e9\ud83d\ude00", None, True], "b": {}, "c": []}
    code = ("from ocirun import fastjson; import json; d = json.loads(sys.stdin.read()); "
            "print(fastjson.dumps(d)); print(fastjson.dumps_indented(d)); "
            "print(fastjson.loads(fastjson.dumps(d)) == d)")
    block = "sys.modules['_json'] = None; "
    proc = subprocess.run([sys.executable, "-I", "-c", f"import sys; {block}sys.path.insert(0, {REPO!r}); {code}"],
                          input=json.dumps(doc), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == json.dumps(doc) + "\n" + json.dumps(doc, indent=2) + "\nTrue\n"
