"""``make compat``: scipy's and dask-image's own filter tests, with stencilkit's filters in.

Runs ``scipy.ndimage.tests.test_filters``, ``test_c_api`` (the generic filters' C callbacks)
and ``test_morphology`` (from the installed scipy wheel) and dask-image's ndfilters and ndmorph
tests (from its source release, downloaded
once into ``.compat/``) with the plugin ``stencilkit_swap``: each peer's filters
(``stencilkit_swap.SWAPPED``) replaced by ``stencilkit.filters``' and its morphology
(``stencilkit_swap.MORPHOLOGY``) by ``stencilkit.morphology``', every documented
difference (``differences_*.tsv``) a strict expected failure. Exit status 0 when every run
fails exactly in its documented differences. ``--install`` (``make compat``) first installs
the peer versions the lists are for (SCIPY and DASK_IMAGE below).

    python compat/run.py [--install] [--only scipy|dask-image] [pytest options: -n 2, -k sobel]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

SCIPY = "1.17.1"
DASK_IMAGE = "2026.5.0"
HERE = Path(__file__).resolve().parent
CACHE = HERE.parent / ".compat"
# dask-image's test modules of the functions stencilkit has (the rest test others)
DASK_IMAGE_TESTS = ("test__conv.py", "test__diff.py", "test__edge.py", "test__gaussian.py",
                    "test__generic.py", "test__order.py", "test__smooth.py")
DASK_IMAGE_MORPHOLOGY_TESTS = ("test_ndmorph.py",)


def dask_image_tests(names=DASK_IMAGE_TESTS) -> list[Path]:
    """dask-image's ndfilters (ndmorph) test files, from its source release (downloaded once)."""
    folder = CACHE / f"dask-image-{DASK_IMAGE}-tests"
    wanted = DASK_IMAGE_TESTS + DASK_IMAGE_MORPHOLOGY_TESTS
    if not all((folder / name).is_file() for name in wanted):
        CACHE.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--no-binary", ":all:", "-d", str(CACHE), f"dask-image=={DASK_IMAGE}"],
                       check=True)
        sdist = CACHE / f"dask_image-{DASK_IMAGE}.tar.gz"
        folder.mkdir(exist_ok=True)
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                if Path(member.name).name in wanted and (
                        "test_ndfilters" in member.name or "test_ndmorph" in member.name):
                    (folder / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    return [folder / name for name in names]


def pytest(args: list) -> tuple[int, float]:
    """Run pytest in this folder with the plugin importable; (exit status, seconds)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])}
    t0 = time.perf_counter()
    rc = subprocess.run([sys.executable, "-m", "pytest", "-c", str(HERE / "pytest.ini"),
                         "--rootdir", str(HERE), *args], cwd=HERE, env=env).returncode
    return rc, time.perf_counter() - t0


def main(argv=None) -> int:
    """Run the peers' suites; 0 when each fails exactly in its documented differences."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("scipy", "dask-image"))
    parser.add_argument("--install", action="store_true",
                        help=f"first install scipy {SCIPY} and dask-image {DASK_IMAGE} (the "
                             "versions the lists are for; dask-image without its dependencies, "
                             "of which ndfilters needs only dask and scipy)")
    args, extra = parser.parse_known_args(argv)
    if args.install:
        pip = [sys.executable, "-m", "pip", "install", "--quiet"]
        subprocess.run(pip + [f"scipy=={SCIPY}"], check=True)
        subprocess.run(pip + ["--no-deps", f"dask-image=={DASK_IMAGE}"], check=True)
    runs = []
    if args.only in (None, "scipy"):
        runs.append((f"scipy {SCIPY} test_filters.py", ["--swap-into", "scipy.ndimage",
                                                          "--pyargs",
                                                          "scipy.ndimage.tests.test_filters"]))
        runs.append((f"scipy {SCIPY} test_c_api.py",
                     ["--swap-into", "scipy.ndimage", "--differences",
                      str(HERE / "differences_scipy_c_api.tsv"), "--pyargs",
                      "scipy.ndimage.tests.test_c_api"]))
        runs.append((f"scipy {SCIPY} test_morphology.py",
                     ["--swap-into", "scipy.ndimage", "--differences",
                      str(HERE / "differences_scipy_morphology.tsv"), "--pyargs",
                      "scipy.ndimage.tests.test_morphology"]))
    if args.only in (None, "dask-image"):
        runs.append((f"dask-image {DASK_IMAGE} ndfilters tests",
                     ["--swap-into", "dask_image.ndfilters",
                      *map(str, dask_image_tests())]))
        runs.append((f"dask-image {DASK_IMAGE} ndmorph tests",
                     ["--swap-into", "dask_image.ndmorph",
                      *map(str, dask_image_tests(DASK_IMAGE_MORPHOLOGY_TESTS))]))
    status = 0
    for title, run_args in runs:
        print(f"== {title}, stencilkit's functions swapped in", flush=True)
        rc, seconds = pytest(run_args + extra)
        if rc == 5 and ("-k" in extra or "-m" in extra):  # (the selection left none of it)
            print(f"== {title}: no test selected")
            continue
        print(f"== {title}: {'as documented' if rc == 0 else 'FAILED (see above)'} "
              f"({seconds:.0f} s)", flush=True)
        status = status or rc
    return status


if __name__ == "__main__":
    sys.exit(main())
