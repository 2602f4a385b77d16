"""A pytest plugin: a peer's filter functions replaced by stencilkit's, its tests run unchanged.

``--swap-into scipy.ndimage`` (scipy's own ``scipy.ndimage.tests.test_filters`` and
``test_morphology``, from the installed wheel), ``--swap-into dask_image.ndfilters`` or
``dask_image.ndmorph`` (dask-image's tests, from its source release): the filters of
``SWAPPED`` that the peer has become ``stencilkit.filters``', and the functions of
``MORPHOLOGY`` ``stencilkit.morphology``'s, before the test modules are imported. Each test
listed in the peer's ``differences_*.tsv`` (``--differences FILE`` for another list; a
documented, deliberate difference: test id pattern, category, reason) becomes a strict
expected failure, so the run fails on any other failure and on any listed test that passes:
the list stays exact as stencilkit and the peers change. ``compat/run.py`` (``make compat``)
drives the runs.

``STENCILKIT_COMPAT_RECORD=FILE`` also writes every failure (test id, phase, exception), the
raw material for the list.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import pytest

SWAPPED = ("correlate", "convolve", "uniform_filter", "gaussian_filter", "laplace", "sobel",
           "prewitt", "minimum_filter", "maximum_filter", "median_filter", "rank_filter",
           "percentile_filter", "correlate1d", "convolve1d", "uniform_filter1d",
           "gaussian_filter1d", "minimum_filter1d", "maximum_filter1d", "gaussian_laplace",
           "gaussian_gradient_magnitude", "generic_filter", "generic_filter1d", "generic_laplace",
           "generic_gradient_magnitude", "vectorized_filter")
MORPHOLOGY = ("grey_erosion", "grey_dilation", "grey_opening", "grey_closing",
              "morphological_gradient", "morphological_laplace", "white_tophat", "black_tophat",
              "binary_erosion", "binary_dilation", "binary_opening", "binary_closing",
              "binary_hit_or_miss", "binary_propagation", "binary_fill_holes",
              "generate_binary_structure", "iterate_structure")
PEERS = {"scipy.ndimage": ("scipy", "differences_scipy.tsv"),
         "dask_image.ndfilters": ("dask-image", "differences_dask_image.tsv"),
         "dask_image.ndmorph": ("dask-image", "differences_dask_image_morphology.tsv")}
HERE = Path(__file__).parent
# the marks of the peers' own pytest configurations, which a run from outside their trees lacks
MARKS = ("array_api_backends", "skip_xp_backends", "xfail_xp_backends", "slow", "xslow",
         "thread_unsafe", "parallel_threads", "fail_slow", "timeout", "cupy")
_STATE = {}


def pytest_addoption(parser):
    """``--swap-into MODULE``: the peer namespace whose filters are replaced."""
    parser.addoption("--swap-into", choices=sorted(PEERS), required=True,
                     help="the namespace whose filter functions become stencilkit's")
    parser.addoption("--differences", metavar="FILE",
                     help="the list of documented differences (default: the peer's filters')")


def differences(path: Path) -> tuple[str, list]:
    """(the peer version the list is for, [(test id pattern, category, reason)])."""
    version, rows = "", []
    for line in path.read_text().splitlines():
        if line.startswith("# version "):
            version = line.split()[2]
        if not line.strip() or line.startswith("#"):
            continue
        pattern, category, reason = line.split("\t")
        rows.append((pattern, category, reason))
    return version, rows


def _test_id(nodeid: str) -> str:
    """``Class::test[params]``: the node id without its file (whose path varies)."""
    return nodeid.partition("::")[2] or nodeid


def _matches(pattern: str, test: str) -> bool:
    """``*`` matches any text; everything else, brackets included, only itself."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), test) is not None


def pytest_configure(config):
    """Swap the functions before the test modules are imported and their tests collected."""
    from stencilkit import filters, morphology

    _STATE["config"] = config
    for mark in MARKS:
        config.addinivalue_line("markers", f"{mark}: the peer's mark")
    target = config.getoption("swap_into")
    module = importlib.import_module(target)
    if target == "scipy.ndimage":
        # scipy's tests look up each function's array-API capabilities when they are defined
        from scipy._lib._array_api import xp_capabilities_table

        for name in SWAPPED:
            xp_capabilities_table[getattr(filters, name)] = xp_capabilities_table[
                getattr(module, name)]
        for name in MORPHOLOGY:
            if getattr(module, name) in xp_capabilities_table:
                xp_capabilities_table[getattr(morphology, name)] = xp_capabilities_table[
                    getattr(module, name)]
    for name in SWAPPED:
        if hasattr(module, name):  # (dask-image has no 1-D filters)
            setattr(module, name, getattr(filters, name))
    for name in MORPHOLOGY:
        if hasattr(module, name):
            setattr(module, name, getattr(morphology, name))


def pytest_collection_modifyitems(config, items):
    """Mark the listed tests as strict expected failures; a pattern that matches none fails."""
    import importlib.metadata as md

    dist, filename = PEERS[config.getoption("swap_into")]
    filename = config.getoption("differences") or filename
    version, rows = differences(HERE / filename)
    if version != md.version(dist):
        raise pytest.UsageError(f"{filename} lists the differences for {dist} {version}; this "
                                f"is {dist} {md.version(dist)} (make compat installs {version})")
    used = set()
    for item in items:
        test = _test_id(item.nodeid)
        for pattern, category, reason in rows:
            if _matches(pattern, test):
                item.add_marker(pytest.mark.xfail(strict=True, reason=f"{category}: {reason}"))
                used.add(pattern)
                break
    unused = [p for p, _, _ in rows if p not in used]
    if unused and not config.getoption("keyword") and not config.getoption("markexpr"):
        raise pytest.UsageError(f"{filename}: {len(unused)} pattern(s) match no test of {dist} "
                                f"{version}, e.g. {unused[0]!r}")


def pytest_runtest_logreport(report):
    """With STENCILKIT_COMPAT_RECORD, append each failure: test id, phase, exception."""
    path = os.environ.get("STENCILKIT_COMPAT_RECORD")
    if not path or not report.failed or hasattr(_STATE["config"], "workerinput"):
        return  # (pytest-xdist: the controller writes, not each worker)
    crash = getattr(report.longrepr, "reprcrash", None)
    message = (crash.message if crash is not None else str(report.longrepr)).strip()
    first = message.splitlines()[0] if message else ""
    with open(path, "a") as f:
        f.write(f"{_test_id(report.nodeid)}\t{report.when}\t{first[:300]}\n")
