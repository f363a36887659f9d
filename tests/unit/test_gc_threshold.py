"""Importing what a create needs (the command's modules and the init's) runs no garbage collection:
with the default threshold it ran a dozen young-generation collections, ~2.5 ms of CPU per create,
that found nothing to free (ocirun/__init__.py)."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_create_and_init_imports_run_no_collection():
    code = (f"import sys; sys.path.insert(0, {REPO!r}); import gc, ocirun; "
            "before = sum(s['collections'] for s in gc.get_stats()); "
            "import ocirun.cli, ocirun.lifecycle, ocirun.parent, ocirun.spec, ocirun.schema_check, "
            "ocirun.validate, ocirun.security, ocirun.init, ocirun.exec_init, ocirun.execcmd; "
            "print(sum(s['collections'] for s in gc.get_stats()) - before)")
    out = subprocess.run([sys.executable, "-ISB", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
