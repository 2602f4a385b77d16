"""Where a GPU call's time goes, launch by launch.

Each C++ kernel launch timed by CUDA events (synchronised per launch; the least of 5 calls),
beside the call's GPU time and host time (best of 10). The call's GPU time less its launches'
is what the GPU waits for the host (Python and CuPy before each launch). Needs a GPU and CuPy.

    python tools/gpu_profile.py [--only REGEX]

``--only``: the rows whose names match (``re.search``), for a short run.
"""
import argparse
import re
import time
from collections import defaultdict

import cupy as cp
import numpy as np

import stencilkit as sk
from stencilkit import _cpp_body, codegen_cpp, codegen_tiled, filters, resample
from stencilkit.backends import (
    cuda_cpp,
    cuda_minmax,
    cuda_replay,
    cuda_resample,
    cuda_sep,
    cuda_sweeps,
)

LAUNCH = defaultdict(list)
CALLS = 5
"""Calls whose launches are timed one by one: a kernel's row shows its least time a call."""
_orig = cuda_cpp.kernels


def _timed(mod, fastmath):
    """cuda_cpp.kernels, each kernel wrapped in CUDA events."""
    found = _orig(mod, fastmath)

    class K:
        def __init__(self, name, k):
            self.name, self.k = name, k

        def __call__(self, grid, block, args, **kw):
            e0, e1 = cp.cuda.Event(), cp.cuda.Event()
            e0.record()
            self.k(grid, block, args, **kw)
            e1.record()
            e1.synchronize()
            LAUNCH[f"{self.name} g{grid} b{block}"].append(cp.cuda.get_elapsed_time(e0, e1))
    return {n: K(n, k) for n, k in found.items()}


def timed(fn, n=10):
    """(best GPU ms, best host ms) of ``fn`` over ``n`` calls."""
    fn()
    cp.cuda.Device().synchronize()
    e0, e1 = cp.cuda.Event(), cp.cuda.Event()
    g, h = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        h.append(time.perf_counter() - t0)
        g.append(cp.cuda.get_elapsed_time(e0, e1))
    return min(g), min(h) * 1e3


@sk.stencil(mode="skip")
def heat(u):
    """The 5-point heat step (as benchmarks/gpu.py)."""
    return u[0, 0] + np.float32(0.1) * (u[-1, 0] + u[1, 0] + u[0, -1] + u[0, 1]
                                        - np.float32(4) * u[0, 0])


@sk.stencil
def smooth(x):
    """The 3 x 3 int8 mean (as benchmarks/gpu.py and tests/kernels.py): Python's // 9."""
    return (x[-1, -1] + x[-1, 0] + x[-1, 1] + x[0, -1] + x[0, 0] + x[0, 1]
            + x[1, -1] + x[1, 0] + x[1, 1]) // 9


def patched(settings, fn, *args, **kw):
    """``fn(*args, **kw)`` with ``settings`` (``[(module, name, value)]``) in place: an A/B."""
    saved = [(m, name, getattr(m, name)) for m, name, _ in settings]
    for m, name, value in settings:
        setattr(m, name, value)
    try:
        return fn(*args, **kw)
    finally:
        for m, name, value in saved:
            setattr(m, name, value)


def one_column(fn, *args):
    """The sweeps' interiors at one column a thread (:func:`cuda_sep.columns_per_thread`)."""
    return patched([(cuda_sep, "REGISTERS", 0)], fn, *args)


def apart(fn, *args, **kw):
    """The border in a launch of its own after the interior's (the ``FUSED`` switches)."""
    return patched([(cuda_sweeps, "FUSED", False), (codegen_cpp, "FUSED", False)], fn, *args,
                   **kw)


def scalar_loads(fn, *args):
    """The separable sweeps' rows read an element at a time (``cuda_sep.VECTOR_LOADS``)."""
    return patched([(cuda_sep, "VECTOR_LOADS", False)], fn, *args)


def unfused(fn, *args):
    """The float32 weighted sums' products and sums apart (``cuda_sep.FMA`` off)."""
    return patched([(cuda_sep, "FMA", False)], fn, *args)


def ahead(fn, *args):
    """The separable sweeps reading a row a step ahead (``cuda_sep.AHEAD`` forced on)."""
    return patched([(cuda_sep, "AHEAD", True)], fn, *args)


def not_ahead(fn, *args):
    """The separable sweeps reading each row in its own step (``cuda_sep.AHEAD`` off)."""
    return patched([(cuda_sep, "AHEAD", False)], fn, *args)


def words(n, fn, *args):
    """The 8/16-bit extremes at ``n`` words a thread (``cuda_minmax.UNITS``)."""
    return patched([(cuda_minmax, "UNITS", n)], fn, *args)


def unrolled(n, fn, *args, **kw):
    """The generated stencils' strip walk ``n`` rows a step (``codegen_cpp.UNROLL``)."""
    return patched([(codegen_cpp, "UNROLL", n)], fn, *args, **kw)


def bounded(n, fn, *args, **kw):
    """The stencils' interior kernels asking ptxas for ``n`` blocks an SM (``MIN_BLOCKS``)."""
    return patched([(codegen_cpp, "MIN_BLOCKS", n)], fn, *args, **kw)


def from_first_column(fn, *args, **kw):
    """The interior kernels' threads from their first column, not from its line.

    ``codegen_cpp.LINE_BYTES`` 0: the kernels before 2026-11-27's eighth session.
    """
    return patched([(codegen_cpp, "LINE_BYTES", 0)], fn, *args, **kw)


def border_strips(n, fn, *args):
    """The fused sweeps' border bands in strips of ``n`` rows.

    ``cuda_sweeps.FUSED_BORDER_ROWS``, default 4: more threads, each output's window reduced
    more often.
    """
    return patched([(cuda_sweeps, "FUSED_BORDER_ROWS", n)], fn, *args)


def short_strips(fn, *args):
    """Strips of ``codegen_cpp.ROWS`` whatever the window's reach (``REACH_STRIPS`` 0)."""
    return patched([(cuda_sweeps, "REACH_STRIPS", 0)], fn, *args)


def strided(fn, *args, **kw):
    """The tiled ``iterate``'s threads on rows a block apart (``codegen_tiled.COLUMNS`` off)."""
    return patched([(codegen_tiled, "COLUMNS", False)], fn, *args, **kw)


SHARED_PER_SM = 228 * 1024
"""Shared memory an SM shares among its blocks (H100, H200), each block 1 KiB more."""


def capped(blocks, fn, *args, **kw):
    """``fn`` with every C++ launch holding at most ``blocks`` blocks an SM.

    Each block asks for dynamic shared memory it does not use, so that no more than
    ``blocks`` fit an SM: a call's time against the warps an SM holds tells a kernel waiting
    on latency (faster with more) from one bound by a throughput (flat).
    """
    size = SHARED_PER_SM * 2 // (2 * blocks + 1) - 1024
    cur = cuda_cpp.kernels
    touched = {}  # the functions' own settings, put back after (the other rows share them)
    drv = cp.cuda.driver
    most, carve = (drv.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                   drv.CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT)

    class Capped:
        def __init__(self, k):
            self.k = k
            raw = getattr(k, "k", k)  # (under the timing wrapper or not)
            # (a CuPy Function, as cuda_cpp.kernels gives them, or a RawKernel)
            ptr = raw.ptr if hasattr(raw, "ptr") else raw.kernel.ptr
            if ptr not in touched:
                touched[ptr] = (drv.funcGetAttribute(most, ptr), drv.funcGetAttribute(carve, ptr))
            drv.funcSetAttribute(ptr, most, size)
            drv.funcSetAttribute(ptr, carve, 100)  # all of it shared memory

        def __call__(self, grid, block, args):
            self.k(grid, block, args, shared_mem=size)

    def kernels(mod, fastmath):
        return {n: Capped(k) for n, k in cur(mod, fastmath).items()}

    try:
        return patched([(cuda_cpp, "kernels", kernels)], fn, *args, **kw)
    finally:
        for ptr, (was_most, was_carve) in touched.items():
            drv.funcSetAttribute(ptr, carve, was_carve)
            drv.funcSetAttribute(ptr, most, was_most)


def one_at_a_time(fn, *args):
    """The block kernels' threads at one output each (``cuda_resample.vector_bytes``)."""
    return patched([(cuda_resample, "vector_bytes", lambda n1, itemsize: 0)], fn, *args)


rng = np.random.default_rng(0)
f = cp.asarray(rng.standard_normal((8192, 8192)).astype(np.float32))
u8 = cp.asarray(rng.integers(0, 255, (8192, 8192), dtype=np.uint8))
i8 = cp.asarray(rng.integers(-128, 128, (8192, 8192), dtype=np.int8))
b8 = cp.asarray(rng.integers(0, 255, (16384, 16384), dtype=np.uint8))
v8 = cp.asarray(rng.integers(0, 255, (512, 512, 512), dtype=np.uint8))
w8 = cp.asarray(rng.integers(0, 255, (644, 644, 644), dtype=np.uint8))  # 644-byte rows
u16 = cp.asarray(rng.integers(0, 65535, (8192, 8192), dtype=np.uint16))
ramp16 = cp.asarray((np.add.outer(np.arange(8192) * 4, np.arange(8192) * 2) % 60000
                     + rng.integers(0, 64, (8192, 8192))).astype(np.uint16))
f2k = f[:2048, :2048].copy()
fo = cp.empty_like(f)
cases = {
    "copy f32 8192^2": lambda: cp.copyto(fo, f),
    "copy u8 8192^2": lambda: u8.copy(),
    "heat(out=)": lambda: heat(f, out=fo),
    "gaussian s=2 f32": lambda: filters.gaussian_filter(f, 2.0),
    "gaussian s=2 f32 out=": lambda: filters.gaussian_filter(f, 2.0, output=fo),
    "uniform 15 u8": lambda: filters.uniform_filter(u8, 15),
    "uniform 3 u8": lambda: filters.uniform_filter(u8, 3),
    "uniform 15 f32": lambda: filters.uniform_filter(f, 15),
    "median 5 u8": lambda: filters.median_filter(u8, 5),
    "median 3 u8": lambda: filters.median_filter(u8, 3),
    "median 3 f32 (sorted columns, checked)": lambda: filters.median_filter(f, 3),
    "median 15 u8 (histograms)": lambda: filters.median_filter(u8, 15),
    "median 9 f32 (selection)": lambda: filters.median_filter(f, 9),
    "median 15 u16 noise (two-level histograms)": lambda: filters.median_filter(u16, 15),
    "median 15 u16 smooth (two-level histograms)": lambda: filters.median_filter(ramp16, 15),
    "maximum 3 u8": lambda: filters.maximum_filter(u8, 3),
    "maximum 15 u8": lambda: filters.maximum_filter(u8, 15),
    "sobel f32": lambda: filters.sobel(f),
    "laplace f32": lambda: filters.laplace(f),
    "gaussian s=2 u8": lambda: filters.gaussian_filter(u8, 2.0),
    "gaussian s=2 f32, 1 column a thread": lambda: one_column(filters.gaussian_filter, f, 2.0),
    "gaussian s=2 f32, scalar loads": lambda: scalar_loads(filters.gaussian_filter, f, 2.0),
    "gaussian s=1 f32": lambda: filters.gaussian_filter(f, 1.0),
    "gaussian s=1 f32, scalar loads": lambda: scalar_loads(filters.gaussian_filter, f, 1.0),
    "uniform 15 f32, scalar loads": lambda: scalar_loads(filters.uniform_filter, f, 15),
    "gaussian s=1 u8": lambda: filters.gaussian_filter(u8, 1.0),
    # strips of 32 rows whatever the reach (cuda_sweeps.REACH_STRIPS 0), against the rows above
    "gaussian s=2 f32, strips of 32 rows": lambda: short_strips(filters.gaussian_filter, f, 2.0),
    "uniform 15 u8, strips of 32 rows": lambda: short_strips(filters.uniform_filter, u8, 15),
    "maximum 15 u8, strips of 32 rows": lambda: short_strips(filters.maximum_filter, u8, 15),
    # threads from the interior's first column instead of its line (codegen_cpp.LINE_BYTES)
    "heat(out=), from the first column": lambda: from_first_column(heat, f, out=fo),
    "gaussian s=2 f32, from a line": lambda: patched([(cuda_sep, "LINES", True)],
                                                     filters.gaussian_filter, f, 2.0),
    "uniform 15 u8, from the first column": lambda: from_first_column(
        filters.uniform_filter, u8, 15),
    "uniform 3 u8, from the first column": lambda: from_first_column(
        filters.uniform_filter, u8, 3),
    "median 3 u8, from the first column": lambda: from_first_column(
        filters.median_filter, u8, 3),
    "maximum 3 u8, from the first column": lambda: from_first_column(
        filters.maximum_filter, u8, 3),
    "sobel f32, from the first column": lambda: from_first_column(filters.sobel, f),
    # (the separable sweeps from their first column by default: cuda_sep.LINES)
    "uniform 15 f32, from a line": lambda: patched([(cuda_sep, "LINES", True)],
                                                   filters.uniform_filter, f, 15),
    "maximum 15 f32": lambda: filters.maximum_filter(f, 15),
    "maximum 15 f32, from a line": lambda: patched([(cuda_sep, "LINES", True)],
                                                   filters.maximum_filter, f, 15),
    # the fused border's strips (cuda_sweeps.FUSED_BORDER_ROWS, default 4 rows; 16 before)
    "gaussian s=2 f32, border strips of 16 rows": lambda: border_strips(
        16, filters.gaussian_filter, f, 2.0),
    "gaussian s=2 f32, border strips of 1 row": lambda: border_strips(
        1, filters.gaussian_filter, f, 2.0),
    "uniform 15 u8, border strips of 16 rows": lambda: border_strips(
        16, filters.uniform_filter, u8, 15),
    "maximum 15 u8, border strips of 16 rows": lambda: border_strips(
        16, filters.maximum_filter, u8, 15),
    "maximum 15 u8, border strips of 1 row": lambda: border_strips(
        1, filters.maximum_filter, u8, 15),
    # fused multiply-adds (cuda_sep.FMA), against the rows above
    "gaussian s=2 f32, products apart": lambda: unfused(filters.gaussian_filter, f, 2.0),
    "gaussian s=1 f32, products apart": lambda: unfused(filters.gaussian_filter, f, 1.0),
    "gaussian s=2 u8, products apart": lambda: unfused(filters.gaussian_filter, u8, 2.0),
    # rows read a step ahead (cuda_sep.AHEAD: by default float32 weights of up to 17 taps)
    "gaussian s=2 f32, not ahead": lambda: not_ahead(filters.gaussian_filter, f, 2.0),
    "gaussian s=1 f32, not ahead": lambda: not_ahead(filters.gaussian_filter, f, 1.0),
    "gaussian s=3 f32": lambda: filters.gaussian_filter(f, 3.0),
    "gaussian s=3 f32, next row ahead": lambda: ahead(filters.gaussian_filter, f, 3.0),
    "uniform 15 f32, next row ahead": lambda: ahead(filters.uniform_filter, f, 15),
    # 8/16-bit extremes: 2 words a thread from 9 columns (cuda_minmax.UNITS None), else 1
    "maximum 3 u8, 2 words a thread": lambda: words(2, filters.maximum_filter, u8, 3),
    "maximum 9 u8": lambda: filters.maximum_filter(u8, 9),
    "maximum 9 u8, 1 word a thread": lambda: words(1, filters.maximum_filter, u8, 9),
    "maximum 15 u8, 1 word a thread": lambda: words(1, filters.maximum_filter, u8, 15),
    # the generated stencils' strip walk, rows a step (codegen_cpp.UNROLL, default 8)
    # (ptxas 12, sm_90: heat_fused 48 registers at 8 rows a step, 40 at 1; the interior alone
    # 32 at 1 row a step, as the anchor's heat strip, 30, at 0.92x of a copy on an H100)
    "heat(out=), 1 row a step": lambda: unrolled(1, heat, f, out=fo),
    "heat(out=), 2 rows a step": lambda: unrolled(2, heat, f, out=fo),
    "heat(out=), 4 rows a step": lambda: unrolled(4, heat, f, out=fo),
    # (at 4 rows a step the heat step took 0.163-0.164 ms against 0.168-0.169, two H200 runs;
    # the other stencils at 4, for UNROLL's default)
    "sobel f32, 4 rows a step": lambda: unrolled(4, filters.sobel, f),
    "laplace f32, 4 rows a step": lambda: unrolled(4, filters.laplace, f),
    "uniform 3 u8, 4 rows a step": lambda: unrolled(4, filters.uniform_filter, u8, 3),
    # integer tests and divisions by their operands' ranges (_cpp_body.RANGED, default on;
    # SASS of uniform 3 u8's 7-row step: 364 instructions with them, 515 without; whether an
    # 8-bit 3 x 3 kernel is bound by instruction issue)
    "uniform 3 u8, ranges unused": lambda: patched([(_cpp_body, "RANGED", False)],
                                                   filters.uniform_filter, u8, 3),
    # rows' sums kept apart and shared down the strip (_cpp_body.SHARE_ROWS, default on;
    # SASS per output: uniform 3 u8 10.0 against 11.4, sobel u8 axis 0 8.7 against 10.2,
    # smooth i8 12.0 against 14.9)
    "uniform 3 u8, rows not shared": lambda: patched([(_cpp_body, "SHARE_ROWS", False)],
                                                     filters.uniform_filter, u8, 3),
    "sobel u8": lambda: filters.sobel(u8, axis=0),
    "sobel u8, rows not shared": lambda: patched([(_cpp_body, "SHARE_ROWS", False)],
                                                 filters.sobel, u8, 0),
    "smooth i8 (3 x 3 int8 mean)": lambda: smooth(i8),
    "smooth i8, rows not shared": lambda: patched([(_cpp_body, "SHARE_ROWS", False)],
                                                  smooth, i8),
    "smooth i8, ranges unused": lambda: patched([(_cpp_body, "RANGED", False)], smooth, i8),
    # registers capped for more blocks an SM (codegen_cpp.MIN_BLOCKS, default None: no cap;
    # ptxas 12: heat_fused 48 registers at 8 rows a step, 32 and 8 bytes spilled at 8 blocks)
    "heat(out=), launch bounds 8 blocks": lambda: bounded(8, heat, f, out=fo),
    "heat(out=), launch bounds 6 blocks": lambda: bounded(6, heat, f, out=fo),
    "heat(out=), launch bounds 8 blocks, 4 rows a step": lambda: unrolled(
        4, bounded, 8, heat, f, out=fo),
    "sobel f32, launch bounds 8 blocks": lambda: bounded(8, filters.sobel, f),
    "uniform 3 u8, launch bounds 8 blocks": lambda: bounded(8, filters.uniform_filter, u8, 3),
    # strips of 64 / 16 rows a thread (codegen_cpp.ROWS, default 32: the anchor's)
    "heat(out=), strips of 64 rows": lambda: patched([(codegen_cpp, "ROWS", 64)], heat, f,
                                                     out=fo),
    "heat(out=), strips of 16 rows": lambda: patched([(codegen_cpp, "ROWS", 16)], heat, f,
                                                     out=fo),
    "uniform 3 u8, strips of 64 rows": lambda: patched([(codegen_cpp, "ROWS", 64)],
                                                       filters.uniform_filter, u8, 3),
    "heat(out=), border apart, 1 row a step": lambda: unrolled(1, apart, heat, f, out=fo),
    "maximum 9 f32": lambda: filters.maximum_filter(f, 9),
    # (72 registers at 4 columns a thread, 3 blocks an SM: cuda_sep.REGISTERS 30 gives 2 columns)
    "maximum 9 f32, 2 columns a thread": lambda: patched([(cuda_sep, "REGISTERS", 30)],
                                                         filters.maximum_filter, f, 9),
    "maximum 9 f32, 1 column a thread": lambda: one_column(filters.maximum_filter, f, 9),
    # the border in a launch of its own (cuda_sweeps.FUSED off), against the rows above
    "gaussian s=2 f32, border apart": lambda: apart(filters.gaussian_filter, f, 2.0),
    "uniform 15 u8, border apart": lambda: apart(filters.uniform_filter, u8, 15),
    "uniform 15 f32, border apart": lambda: apart(filters.uniform_filter, f, 15),
    "median 5 u8, border apart": lambda: apart(filters.median_filter, u8, 5),
    "median 3 u8, border apart": lambda: apart(filters.median_filter, u8, 3),
    "maximum 3 u8, border apart": lambda: apart(filters.maximum_filter, u8, 3),
    "maximum 15 u8, border apart": lambda: apart(filters.maximum_filter, u8, 15),
    "maximum 9 f32, border apart": lambda: apart(filters.maximum_filter, f, 9),
    "heat(out=), border apart": lambda: apart(heat, f, out=fo),
    "sobel f32, border apart": lambda: apart(filters.sobel, f),
    "uniform 3 u8, border apart": lambda: apart(filters.uniform_filter, u8, 3),
    # blocks an SM capped (by unused shared memory): latency-bound or throughput-bound
    "gaussian s=2 f32, 1 block an SM": lambda: capped(1, filters.gaussian_filter, f, 2.0),
    "gaussian s=2 f32, 2 blocks an SM": lambda: capped(2, filters.gaussian_filter, f, 2.0),
    "uniform 15 u8, 1 block an SM": lambda: capped(1, filters.uniform_filter, u8, 15),
    "uniform 15 u8, 2 blocks an SM": lambda: capped(2, filters.uniform_filter, u8, 15),
    "uniform 15 u8, 3 blocks an SM": lambda: capped(3, filters.uniform_filter, u8, 15),
    "maximum 3 u8, 2 blocks an SM": lambda: capped(2, filters.maximum_filter, u8, 3),
    "maximum 3 u8, 4 blocks an SM": lambda: capped(4, filters.maximum_filter, u8, 3),
    "heat(out=), 2 blocks an SM": lambda: capped(2, heat, f, out=fo),
    "heat(out=), 4 blocks an SM": lambda: capped(4, heat, f, out=fo),
    "block_reduce 2 16k u8": lambda: resample.block_reduce(b8, 2),
    "block_reduce 2 512^3 u8": lambda: resample.block_reduce(v8, 2),
    "copy u8 512^3": lambda: v8.copy(),
    "block_reduce 2 512^3 u8, one at a time": lambda: one_at_a_time(resample.block_reduce, v8, 2),
    "block_reduce 2 644^3 u8 (4-byte loads)": lambda: resample.block_reduce(w8, 2),
    "block_reduce 2 644^3 u8, one at a time": lambda: one_at_a_time(resample.block_reduce, w8, 2),
    "copy u8 644^3": lambda: w8.copy(),
    "block_reduce 2 16k u8, one at a time": lambda: one_at_a_time(resample.block_reduce, b8, 2),
    "iterate heat 20 (default: tiled)": lambda: heat.iterate(f, steps=20),
    "iterate heat 20 block_steps=1": lambda: heat.iterate(f, steps=20, block_steps=1),
    "iterate heat 20 block_steps=1, 4 rows a step": lambda: unrolled(
        4, heat.iterate, f, steps=20, block_steps=1),
    "iterate heat 20 block_steps=4": lambda: heat.iterate(f, steps=20, block_steps=4),
    "iterate heat 20 block_steps=8": lambda: heat.iterate(f, steps=20, block_steps=8),
    "iterate heat 20, tiled rows strided": lambda: strided(heat.iterate, f, steps=20),
    "median 25 f32 2048^2 (scratch)": lambda: filters.median_filter(f2k, 25),  # last: slow
}
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--only", help="the rows whose names match this regular expression")
only = ap.parse_args().only
# Every call planned in full (no replays, stencilkit.backends.cuda_replay): the A/B rows set
# settings around each call, which makes each of their calls record anew, so their "gpu" and
# "host" times would count the planning that the default rows' replays skip.
cuda_replay.ENABLED = False
cuda_cpp.kernels = _timed
for name, fn in cases.items():
    if only and not re.search(only, name):
        continue
    try:
        fn()
        LAUNCH.clear()
        for _ in range(CALLS):
            fn()
        launches = dict(LAUNCH)
        cuda_cpp.kernels = _orig
        g, h = timed(fn)
        cuda_cpp.kernels = _timed
        print(f"{name:<26} gpu {g:7.3f} ms  host {h:7.3f} ms", flush=True)
        for k, v in launches.items():  # a call's launches of the kernel: the least sum
            each = len(v) // CALLS
            least = min(sum(v[c * each:(c + 1) * each]) for c in range(CALLS))
            print(f"    {k:<70} {least:7.3f} ms x{each}")
    except Exception as exc:
        cuda_cpp.kernels = _timed
        print(f"{name}: {type(exc).__name__}: {exc}"[:300], flush=True)
