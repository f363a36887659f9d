#!/usr/bin/env python3
"""Time `ocirun bundle` of an image whose layers are already stored against `umoci unpack` of it.

    sudo python3 scripts/bench_bundle.py [--runs N] [--ocirun /usr/local/bin/ocirun]

Two images are built with umoci (tests/imagebuild.py): the three-layer busybox test image (2 MB)
and busybox plus a copy of the host's /usr/lib/python3.11 without __pycache__ (one 42 MB layer,
790 files). For each, the first `ocirun bundle` fills a temp layer store (timed once), then N more
bundles are timed, each removed (untimed) before the next; `umoci unpack` is timed N times the same way. Medians of wall
time, each command a fresh process as a user would run it. Disk use is `du` of one umoci bundle vs
the store plus one ocirun bundle.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from tests import imagebuild  # noqa: E402


def timed(cmd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def du(*paths) -> int:
    out = subprocess.run(["du", "-skx", "--total", *paths], capture_output=True, text=True, check=True).stdout
    return int(out.splitlines()[-1].split()[0])


def python_image(work: str) -> str:
    layout = os.path.join(work, "layout")
    ref = layout + ":py"
    bundle = os.path.join(work, "build")
    imagebuild.run("umoci", "init", "--layout", layout)
    imagebuild.run("umoci", "new", "--image", ref)
    imagebuild.run("umoci", "unpack", "--image", ref, bundle)
    root = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy2(imagebuild.BUSYBOX, os.path.join(root, "bin", "busybox"))
    shutil.copytree("/usr/lib/python3.11", os.path.join(root, "usr/lib/python3.11"), symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    imagebuild.run("umoci", "repack", "--image", ref, bundle)
    shutil.rmtree(bundle)
    return ref


def bench(name: str, ref: str, ocirun: str, runs: int, work: str) -> None:
    store = os.path.join(work, "store")
    first = timed([ocirun, "bundle", "--image", ref, "--layers", store, os.path.join(work, "b0")])
    ours, theirs = [], []
    for i in range(runs):
        b = os.path.join(work, f"b{i + 1}")
        ours.append(timed([ocirun, "bundle", "--image", ref, "--layers", store, b]))
        subprocess.run([ocirun, "bundle", "--remove", b], check=True)
        u = os.path.join(work, f"u{i}")
        theirs.append(timed(["umoci", "unpack", "--image", ref, u]))
        if i < runs - 1:
            shutil.rmtree(u)
    umoci_kb = du(os.path.join(work, f"u{runs - 1}"))
    ours_kb = du(store, os.path.join(work, "b0"))
    one_more_kb = du(os.path.join(work, "b0", "upper"), os.path.join(work, "b0", "work"))
    subprocess.run([ocirun, "bundle", "--remove", os.path.join(work, "b0")], check=True)
    print(f"{name}: ocirun bundle first (unpacks) {first * 1000:.0f} ms; "
          f"again (layers stored) median {statistics.median(ours) * 1000:.1f} ms "
          f"(min {min(ours) * 1000:.1f}); umoci unpack median {statistics.median(theirs) * 1000:.1f} ms "
          f"(min {min(theirs) * 1000:.1f}); disk: umoci {umoci_kb} KiB per bundle, ocirun {ours_kb} KiB "
          f"once (store + first bundle) + {one_more_kb} KiB per further bundle")


def main() -> None:
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 10
    ocirun = sys.argv[sys.argv.index("--ocirun") + 1] if "--ocirun" in sys.argv else "/usr/local/bin/ocirun"
    work = tempfile.mkdtemp(prefix="bench-bundle-")
    try:
        os.mkdir(os.path.join(work, "busybox"))
        imagebuild.build_busybox_image(os.path.join(work, "busybox"))
        bench("busybox, 3 layers", os.path.join(work, "busybox", "layout") + ":latest", ocirun, runs,
              os.path.join(work, "busybox"))
        os.mkdir(os.path.join(work, "py"))
        bench("python3.11 stdlib, 1 layer", python_image(os.path.join(work, "py")), ocirun, runs,
              os.path.join(work, "py"))
    finally:
        for line in open("/proc/self/mountinfo"):
            point = line.split()[4]
            if point.startswith(work):
                subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
