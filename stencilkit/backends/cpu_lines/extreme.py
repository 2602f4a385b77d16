"""Running minimum and maximum along one axis (:func:`extreme_pass`): van Herk / Gil-Werman."""

from __future__ import annotations

import numba
import numpy as np

from ... import modes
from .common import _along_rows, _dest, _extend_row, _map, _sk_njit, _tile, _views


@_sk_njit
def _pick(x, y, is_max):
    """np.maximum / np.minimum for scalars: NaN wins."""
    if x != x:
        return x
    if y != y:
        return y
    if is_max:
        return x if x >= y else y
    return x if x <= y else y


@numba.njit(cache=True, nogil=True, parallel=True)
def _extreme(src, dst, lo, hi, mode, cval, lanes, is_max):
    n_outer, n, n_inner = src.shape
    k = lo + hi + 1
    length = n + k - 1  # the extended line: position p holds the line's element p - lo
    tiles = (n_inner + lanes - 1) // lanes
    for t in numba.prange(n_outer * tiles):
        o, c0, w = _tile(t, tiles, lanes, n_inner)
        c0u = np.uint64(c0)
        suffix = np.empty((k, w), src.dtype)
        prefix = np.empty((k, w), src.dtype)
        for start in range(0, n, k):  # the block that windows i = start .. start + k - 1 begin in
            stop = min(start + k, length)
            for p in range(stop - 1, start - 1, -1):
                m = _map(p - lo, n, mode)
                r = p - start
                for c in range(w):
                    u = np.uint64(c)
                    v = src[o, m, c0u + u] if m >= 0 else cval
                    suffix[r, u] = v if p == stop - 1 else _pick(v, suffix[r + 1, u], is_max)
            top = min(start + k + k - 1, length)  # the next block, as far as windows reach
            for p in range(start + k, top):
                m = _map(p - lo, n, mode)
                r = p - start - k
                for c in range(w):
                    u = np.uint64(c)
                    v = src[o, m, c0u + u] if m >= 0 else cval
                    prefix[r, u] = v if r == 0 else _pick(v, prefix[r - 1, u], is_max)
            for i in range(start, min(start + k, n)):
                r = i - start
                for c in range(w):
                    u = np.uint64(c)
                    if r == 0:
                        dst[o, i, c0u + u] = suffix[0, u]
                    else:
                        dst[o, i, c0u + u] = _pick(suffix[r, u], prefix[r - 1, u], is_max)


@numba.njit(cache=True, nogil=True, parallel=True)
def _rows_extreme(src, dst, lo, hi, mode, cval, is_max):
    """Min/max along the rows of a 2-D array by doubling spans (for the last axis).

    A row, extended by the mode, is folded onto itself: after the pass with span s, element j
    holds the extreme of ``[j, j + 2s)``. Overlapping spans are harmless for min/max, so two
    spans of at least k/2 cover a window of k: ``op(e[j], e[j + k - s])``. That is
    ceil(log2 k) passes, each contiguous and vectorised, instead of a chain of comparisons.
    """
    rows, n = src.shape
    k = lo + hi + 1
    width = n + k - 1
    for r in numba.prange(rows):
        ext = np.empty(width, src.dtype)
        nxt = np.empty(width, src.dtype)
        _extend_row(src, r, ext, lo, n, mode, cval)
        span = 1
        while 2 * span <= k:  # out of place: an in-place fold does not vectorise (20x slower)
            su = np.uint64(span)
            for j in range(width - span):
                u = np.uint64(j)
                nxt[u] = _pick(ext[u], ext[u + su], is_max)
            ext, nxt = nxt, ext
            span *= 2
        last = np.uint64(k - span)
        for j in range(n):
            u = np.uint64(j)
            dst[r, u] = _pick(ext[u], ext[u + last], is_max)


def extreme_pass(src, axis, lo, hi, mode, cval, is_max, dst=None):
    """Van Herk / Gil-Werman min or max pass along ``axis`` of a C-contiguous array."""
    dst = _dest(dst, src.shape, src.dtype)
    if src.size == 0:
        return dst
    fill = np.asarray(cval).astype(src.dtype)[()]
    if _along_rows(src.shape, axis):
        n = src.shape[axis]
        _rows_extreme(src.reshape(-1, n), dst.reshape(-1, n), lo, hi, modes.mode_code(mode),
                      fill, bool(is_max))
        return dst
    s, d, lanes = _views(src, dst, axis)
    _extreme(s, d, lo, hi, modes.mode_code(mode), fill, lanes, bool(is_max))
    return dst
