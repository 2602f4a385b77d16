"""What every CPU line pass shares: the dtype rules, the edge index map, the views."""

from __future__ import annotations

import math

import numba
import numpy as np

from ... import _buffers, modes
from ..._dtypes import work_dtype as native  # noqa: F401 (float16 works as float32)

_sk_njit = numba.njit(cache=True, nogil=True)
MAX_LANES = 16384  # int64 accumulators of 128 KiB, in L2
# _sk_map, the index map every generated stencil uses too, compiled here under this file's name
# (so numba's on-disk cache can locate it)
exec(compile(modes.MAP_SOURCE, __file__, "exec"))
_map = globals()["_sk_map"]


def _int_range(dtype):
    """Clip bounds for integer (or bool) results, within int64."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return 0, 1
    info = np.iinfo(dtype)
    return max(int(info.min), -(2**63)), min(int(info.max), 2**63 - 1)


def _dest(dst, shape, dtype):
    """The array a pass writes: ``dst`` (the caller's output, checked), else a pooled one."""
    if dst is None:
        return _buffers.POOL.empty(shape, dtype)
    assert dst.shape == tuple(shape) and dst.dtype == dtype and dst.flags.c_contiguous
    return dst


@_sk_njit
def _tile(t, tiles, lanes, n_inner):
    """Task t of a (outer x lane tiles) split: (outer index, first lane, lane count)."""
    o = t // tiles
    c0 = (t - o * tiles) * lanes
    return o, c0, min(lanes, n_inner - c0)


@_sk_njit
def _finite(v):
    return v - v == 0  # False for NaN and +-inf; always True for integers


@_sk_njit
def _extend_row(src, r, ext, lo, n, mode, cval):
    """ext[p] = row r's element p - lo, past the ends as the mode says (interior: a copy)."""
    lou = np.uint64(lo)
    for j in range(n):
        u = np.uint64(j)
        ext[u + lou] = src[r, u]
    for p in range(lo):
        m = _map(p - lo, n, mode)
        ext[p] = src[r, m] if m >= 0 else cval
    for p in range(lo + n, ext.size):
        m = _map(p - lo, n, mode)
        ext[p] = src[r, m] if m >= 0 else cval


def _along_rows(shape, axis):
    """Whether a pass along ``axis`` runs along contiguous rows (nothing varies after it)."""
    return math.prod(shape[axis + 1:]) == 1


def _views(src, dst, axis):
    """(outer, n, inner) views of src and dst for a pass along ``axis``, and the lane count.

    Passes along rows (:func:`_along_rows`) take the row kernels instead.
    """
    shape = src.shape
    n = shape[axis]
    outer = math.prod(shape[:axis])
    inner = math.prod(shape[axis + 1:])
    # Lanes: whole rows where possible (each step then reads whole rows, sequentially: tiles
    # of a few hundred lanes made every step a TLB miss), split so every thread has work.
    tasks = max(1, 2 * numba.get_num_threads() // max(outer, 1))
    lanes = min(max(-(-inner // tasks), 256), MAX_LANES)
    return src.reshape(outer, n, inner), dst.reshape(outer, n, inner), lanes
