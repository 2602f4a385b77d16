"""A user's function of each window or line (:class:`stencilkit._passes.Generic`, ``Generic1d``).

scipy.ndimage's ``generic_filter`` hands the function a float64 buffer of the window's values
(the footprint's True elements in C order, past the edges as the mode says, ``cval`` as a
float for ``constant``) and stores the number it returns; ``generic_filter1d`` hands it each
line along an axis, extended by the window's reach, and an output line to fill. Here both
loops are compiled, with the function (:meth:`stencilkit._generic.WindowFunction.compiled`)
called from them: a loop per function, per ``*args`` and keyword names, serial or parallel
(threads over chunks of elements, each with its own buffer).

The window's values are gathered as the large-window medians gather theirs
(:func:`.rank.pad`): the array extended by the reach, in its own dtype where ``cval`` is one of
its values, else in float64, and each window read at fixed offsets from its corner. Lines are
extended through ``_sk_map``, the generated stencils' index map.

Each value is stored in the output's dtype as it is made, by the filters' rule for integers
(nearest, ties to even, saturated; NaN 0) and bools (True from 1 up), so no float64 copy of
the result is ever made whole. A function numba cannot compile is called from Python instead
(the result is the same; a :class:`stencilkit._errors.StencilPerformanceWarning` says why it
is slow).
"""

from __future__ import annotations

import math
import warnings

import numba
import numpy as np

from ... import _dtypes, modes
from ..._errors import StencilPerformanceWarning
from .common import _map, _sk_njit
from .rank import pad

# One task of the loop: a block of 1024 windows, or one line.
_TASK = """
def _sk_task(t, flat, pstrides, out, shape, offsets, lo, hi, extra, kw):
    nd = len(shape)
    n = offsets.size
    buf = np.empty(n, np.float64)
    for q in range(t * 1024, min(out.size, (t + 1) * 1024)):
        rem = q
        base = 0
        for d in range(nd - 1, -1, -1):
            i = rem % shape[d]
            rem //= shape[d]
            base += i * pstrides[d]
        for j in range(n):
            buf[j] = flat[base + offsets[j]]
        _sk_store(out, q, _sk_f(buf{call}), lo, hi)
"""

_TASK1D = """
def _sk_task(t, src, out, size, before, mode, cval, lo, hi, extra, kw):
    outer, n, inner = src.shape
    o = t // inner
    c = t - o * inner
    line = np.empty(n + size - 1, np.float64)
    res = np.zeros(n, np.float64)
    for p in range(n + size - 1):
        m = _sk_map(p - before, n, mode)
        line[p] = src[o, m, c] if m >= 0 else cval
    _sk_f(line, res{call})
    for p in range(n):
        _sk_store(out, (o * n + p) * inner + c, res[p], lo, hi)
"""

# The loops over the tasks. Serial: an exception rises from the task as from any numba
# function. Parallel: numba loses an exception raised in a prange body (a SystemError, or none
# at all and wrong values), so a guard around each task catches it and marks the task failed;
# the serial loop then runs again and raises it as it is.
_ARGS = "t, flat, pstrides, out, shape, offsets, lo, hi, extra, kw"
_ARGS1D = "t, src, out, size, before, mode, cval, lo, hi, extra, kw"
_LOOP = """
def _sk_generic(flat, pstrides, dst, offsets, lo, hi, failed, extra, kw):
    shape = dst.shape
    out = dst.reshape(-1)
    for t in _sk_range((out.size + 1023) // 1024):
{run}
"""
_LOOP1D = """
def _sk_generic(src, dst, size, before, mode, cval, lo, hi, failed, extra, kw):
    out = dst.reshape(-1)
    for t in _sk_range(src.shape[0] * src.shape[2]):
{run}
"""
_RUN = "        _sk_task({args})"
_RUN_GUARDED = """\
        if _sk_guarded({args}):
            failed[t] = 1"""
_GUARD = """
def _sk_guarded({args}):
    try:
        _sk_task({args})
        return False
    except Exception:
        return True
"""


_LOOPS: dict = {}
PARALLEL_MIN = 1 << 12  # windows below which one thread does the work


# How a value is stored in the output (lo, hi: the output dtype's limits): the filters' rule
# (stencilkit._dtypes.saturate) in the loop, so no float64 result is ever made whole.

@_sk_njit
def store_float(out, q, v, lo, hi):
    """Floats (and complex): the value, as NumPy converts it."""
    out[q] = v


@_sk_njit
def store_int(out, q, v, lo, hi):
    """Integers: the nearest (ties to even), saturated to [lo, hi]; NaN 0.

    The rounding written out (numba.cuda has no ``np.rint``; exact for every float64).
    """
    x = np.float64(v)
    if x != x:
        out[q] = 0
        return
    r = x
    if abs(x) < 4503599627370496.0:  # below 2**52 (above: an integer already; and
        f = math.floor(x)  # math.floor gives an int64; numba.cuda has no np.floor)
        d = x - f
        # up from a fraction above a half, and from a half to an even integer (no branch: the
        # fractions of a filter's values are as good as random)
        f += (d > 0.5) | ((d == 0.5) & (f % 2 != 0))
        r = np.float64(f)
    if r >= hi:
        out[q] = hi
    elif r <= lo:
        out[q] = lo
    else:
        out[q] = r


@_sk_njit
def store_bool(out, q, v, lo, hi):
    """Bool: the integer rule into [0, 1]: True from 1 up, 0.5 (to even) and NaN False."""
    out[q] = np.float64(v) > 0.5


@numba.njit(cache=True, nogil=True, parallel=True)
def _saturate_int(src, dst, lo, hi):
    for i in numba.prange(src.size):
        store_int(dst, i, src[i], lo, hi)


@numba.njit(cache=True, nogil=True, parallel=True)
def _saturate_bool(src, dst, lo, hi):
    for i in numba.prange(src.size):
        store_bool(dst, i, src[i], lo, hi)


def saturate(a, dtype, out=None):
    """A float NumPy array in an integer (or bool) ``dtype`` by the filters' rule, one pass.

    The rule of :func:`stencilkit._dtypes.saturate`; None for other arrays. NumPy's form takes ten
    passes: 2.4 s for 2^28 float64 into uint8 (on this project's 2-core machine), as much as the
    whole filter whose result it rounds.
    """
    dtype = np.dtype(dtype)
    if (type(a) is not np.ndarray or a.dtype not in (np.float32, np.float64)
            or dtype.kind not in "biu" or not a.flags.c_contiguous):
        return None
    direct = out is not None and out.dtype == dtype and out.flags.c_contiguous \
        and out.flags.writeable and not np.may_share_memory(out, a)
    dst = out if direct else np.empty(a.shape, dtype)
    _, lo, hi = store_of(dtype)
    (_saturate_bool if dtype.kind == "b" else _saturate_int)(a.reshape(-1), dst.reshape(-1),
                                                            lo, hi)
    if out is not None and not direct:
        np.copyto(out, dst)
        return out
    return dst


def store_of(dtype):
    """``(store function, lo, hi)`` for an output of ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return store_int, dtype.type(info.min), dtype.type(info.max)
    zero = dtype.type(0)
    return (store_bool if dtype.kind == "b" else store_float), zero, zero


def _loop(fn, parallel, store):
    """The loop calling ``fn`` (a WindowFunction), compiled by numba at its first call."""
    callee = fn.compiled()
    try:
        key = (fn.kind, parallel, store, len(fn.args), tuple(fn.kwargs), callee)
        hash(key)
    except TypeError:  # (an unhashable callable: a loop per call)
        key = None
    loop = _LOOPS.get(key) if key is not None else None
    if loop is None:
        # the extra arguments spelled out (numba refuses ``*extra`` beside keywords)
        call = "".join(f", extra[{i}]" for i in range(len(fn.args))) + "".join(
            f", {k}=kw[{i}]" for i, k in enumerate(fn.kwargs))
        scope = {"np": np, "_sk_f": callee, "_sk_map": _map, "_sk_store": store,
                 "_sk_range": numba.prange if parallel else range}
        task, body, args = ((_TASK, _LOOP, _ARGS) if fn.kind == "filter"
                            else (_TASK1D, _LOOP1D, _ARGS1D))
        run = (_RUN_GUARDED if parallel else _RUN).format(args=args)
        source = task.format(call=call) + _GUARD.format(args=args) + body.format(run=run)
        exec(compile(source, f"<stencilkit {fn.name}>", "exec"), scope)
        for name in ("_sk_task", "_sk_guarded"):
            scope[name] = numba.njit(nogil=True, error_model="numpy")(scope[name])
        loop = numba.njit(nogil=True, parallel=parallel)(scope["_sk_generic"])
        if key is not None:
            _dtypes.remember(_LOOPS, key, loop, 64)
    return loop


def _run(fn, count, tasks, dtype, args):
    """Run the compiled loop on ``args`` (False where numba cannot compile the function).

    ``count``: the windows or line elements (parallel from ``PARALLEL_MIN``); ``tasks``: the
    parallel loop's iterations (blocks of 1024 windows, or lines).
    """
    from numba.core.errors import NumbaError

    from .. import cpu

    store, lo, hi = store_of(dtype)
    parallel = count >= PARALLEL_MIN and cpu._PARALLEL_LOCK.acquire(blocking=False)
    failed = np.zeros(tasks if parallel else 1, np.uint8)
    extra = (lo, hi, failed, fn.args, tuple(fn.kwargs.values()))
    try:
        try:
            _loop(fn, parallel, store)(*args, *extra)
        except NumbaError as exc:  # typing or lowering: before any element ran
            _warn(fn, why(exc))
            return False
    finally:
        if parallel:
            cpu._PARALLEL_LOCK.release()
    if failed.any():  # the function raised: run serially, which raises it as it is
        _loop(fn, False, store)(*args, *extra)
    return True


def why(exc) -> str:
    """The line of a numba compile error that says what failed (and the signature tried)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Failed in ")]
    if not lines:
        return type(exc).__name__
    first = lines[0]
    if first.startswith("No implementation of function"):
        tried = next((line for line in lines[1:] if line.startswith(">>>")), "")
        first = first.rstrip(":") + (f": {tried[3:].strip()}" if tried else "")
    return first


def _warn(fn, why):
    warnings.warn(
        f"{fn.name}: function {fn.label!r} could not be compiled by numba ({why}); it is "
        "called from Python for every element instead, as scipy.ndimage does, which is slow. "
        "Use the NumPy and math functions numba supports, pass a numba.njit function, or give "
        "options by extra_arguments", StencilPerformanceWarning, stacklevel=_outside())


def _outside() -> int:
    """The stack level of the first caller outside stencilkit (the user's call)."""
    import os
    import sys

    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def generic_pass(src, footprint, lo, fn, mode, cval, dtype, dst=None):
    """``fn`` of every window of ``footprint`` (full rank, ``lo`` before the centre).

    Stored in ``dtype`` (native byte order, no float16) by the filters' rule.
    """
    fp = np.array(footprint, bool)
    reach = [(lo_d, s - 1 - lo_d) for lo_d, s in zip(lo, fp.shape)]
    dst = np.empty(src.shape, dtype) if dst is None else dst
    if src.size == 0:
        return dst
    work, fill = src.dtype, 0  # (cval: used by 'constant' only, and ignored as scipy does)
    if mode == "constant":
        if not _holds(work, cval):  # (scipy's buffer holds cval as a float)
            work = np.dtype(np.float64)
        fill = cval
    padded = pad(src.astype(work, copy=False), reach, mode, work.type(fill))
    pstrides = np.array([s // padded.itemsize for s in padded.strides], np.int64)
    offsets = np.array([sum(int(i) * st for i, st in zip(idx, pstrides))
                        for idx in zip(*np.nonzero(fp))], np.int64)
    flat = padded.reshape(-1)
    if not _run(fn, src.size, -(-src.size // 1024), dst.dtype, (flat, pstrides, dst, offsets)):
        _python_filter(flat, pstrides, dst, offsets, fn)
    return dst


def _holds(dtype, cval) -> bool:
    """Whether the float ``cval`` is exactly a value of ``dtype`` (no conversion warns).

    (Arithmetic, not a cast under ``warnings.catch_warnings``: that swaps the process's
    warning filters, which Dask's threads share.)
    """
    cval = float(cval)
    if dtype.kind == "b":
        return cval in (0.0, 1.0)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return cval.is_integer() and info.min <= cval <= info.max
    if not math.isfinite(cval):
        return True  # (every float type holds inf and NaN)
    return abs(cval) <= float(np.finfo(dtype).max) and float(dtype.type(cval)) == cval


def _python_filter(flat, pstrides, dst, offsets, fn):
    """The compiled loop's work, calling ``fn`` from Python (a block of windows at a time)."""
    shape = dst.shape
    out = dst.reshape(-1)
    step = max(1, (1 << 16) // max(offsets.size, 1))
    for start in range(0, dst.size, step):
        q = np.arange(start, min(dst.size, start + step))
        base = np.zeros(q.size, np.int64)
        for d, i in enumerate(np.unravel_index(q, shape)):
            base += i * pstrides[d]
        windows = flat[base[:, None] + offsets[None, :]].astype(np.float64)
        values = np.array([fn.value(w) for w in windows])
        out[start:start + q.size] = _stored(values, out.dtype)


def _stored(values, dtype):
    """Float64 ``values`` in ``dtype`` by the store rule (the loops' ``store_of``)."""
    if dtype.kind in "biu":
        return _dtypes.saturate(values, dtype)
    return values.astype(dtype)


def generic1d_pass(src, axis, size, lo, fn, mode, cval, dtype, dst=None):
    """``fn`` over every line along ``axis``, extended by ``lo`` before and the rest after.

    Stored in ``dtype`` as :func:`generic_pass` stores.
    """
    shape = src.shape
    dst = np.empty(shape, dtype) if dst is None else dst
    if src.size == 0:
        return dst
    n = shape[axis]
    view = src.reshape(math.prod(shape[:axis]), n, math.prod(shape[axis + 1:]))
    out = dst.reshape(view.shape)
    code = modes.mode_code(mode)
    args = (view, out, np.int64(size), np.int64(lo), np.int64(code), np.float64(cval))
    if not _run(fn, src.size, view.shape[0] * view.shape[2], dst.dtype, args):
        _python_filter1d(view, out, size, lo, code, float(cval), fn)
    return dst


def _python_filter1d(view, out, size, lo, code, cval, fn):
    from ..._regions import global_map

    outer, n, inner = view.shape
    index = np.arange(-lo, n + size - 1 - lo)
    mapped = global_map(index, n, code) if code != modes.CONSTANT else index
    inside = (mapped >= 0) & (mapped < n)
    src = np.clip(mapped, 0, n - 1)
    for o in range(outer):
        for c in range(inner):
            line = np.where(inside, view[o, src, c].astype(np.float64), cval)
            res = np.zeros(n, np.float64)
            fn.call(line, res)
            out[o, :, c] = _stored(res, out.dtype)
