"""Medians (any rank) of large windows (:func:`rank_pass`).

A selection per element over the mode-padded array, or a sliding histogram for 8/16-bit boxes
(Huang).
"""

from __future__ import annotations

import numba
import numpy as np

from ... import modes
from .common import _dest, _sk_njit

# ------------------------------------------------------------------ medians of large windows

@_sk_njit
def _select(buf, n, rank):
    """The element of ``rank`` in buf[:n] (Hoare's quickselect, in place); NaN if any is NaN."""
    for i in range(n):
        if buf[i] != buf[i]:
            return buf[i]
    lo = 0
    hi = n - 1
    while lo < hi:
        pivot = buf[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while buf[j] > pivot:
                j -= 1
            if i <= j:
                buf[i], buf[j] = buf[j], buf[i]
                i += 1
                j -= 1
        if rank <= j:
            hi = j
        elif rank >= i:
            lo = i
        else:
            return buf[rank]
    return buf[rank]


@numba.njit(cache=True, nogil=True, parallel=True)
def _rank_padded(flat, pstrides, dst, offsets, rank):
    """dst[idx] = the rank-th of flat[base(idx) + offsets] (a padded array, flattened)."""
    shape = dst.shape
    nd = len(shape)
    total = dst.size
    out = dst.reshape(-1)
    chunk = 4096
    for t in numba.prange((total + chunk - 1) // chunk):
        buf = np.empty(offsets.size, flat.dtype)
        for q in range(t * chunk, min(total, (t + 1) * chunk)):
            rem = q
            base = 0
            for d in range(nd - 1, -1, -1):
                i = rem % shape[d]
                rem //= shape[d]
                base += i * pstrides[d]
            for j in range(offsets.size):
                buf[j] = flat[base + offsets[j]]
            out[q] = _select(buf, offsets.size, rank)


@numba.njit(cache=True, nogil=True, parallel=True)
def _huang(padded, dst, k0, k1, rank):
    """Box median of uint8 by Huang's sliding histogram.

    Each output row keeps a 256-bin histogram of its window, moved one column at a time (add
    the entering column, drop the leaving one), with the count below the current median kept
    up to date: O(k0) per element instead of a selection over k0 * k1 values (T. Huang, G.
    Yang, G. Tang, IEEE TASSP 27, 1979). ``padded`` has the window's reach added.
    """
    nb, m0, m1 = dst.shape
    for t in numba.prange(nb * m0):
        b = t // m0
        i = t - b * m0
        hist = np.zeros(256, np.int64)
        for r in range(i, i + k0):
            for c in range(k1):
                hist[padded[b, r, c]] += 1
        med = 0
        below = 0  # elements below med
        while below + hist[med] <= rank:
            below += hist[med]
            med += 1
        dst[b, i, 0] = med
        for j in range(1, m1):
            for r in range(i, i + k0):
                v = padded[b, r, j - 1]
                hist[v] -= 1
                if v < med:
                    below -= 1
                w = padded[b, r, j + k1 - 1]
                hist[w] += 1
                if w < med:
                    below += 1
            while below > rank:
                med -= 1
                below -= hist[med]
            while below + hist[med] <= rank:
                below += hist[med]
                med += 1
            dst[b, i, j] = med


@numba.njit(cache=True, nogil=True, parallel=True)
def _huang16(padded, dst, k0, k1, rank):
    """Box median of uint16 by a sliding two-level histogram (Huang's method, 65536 values).

    As :func:`_huang`, with 65536 fine bins under 256 coarse ones (each the sum of 256 fine
    bins): the median moves one value at a time inside a coarse bin and a whole coarse bin at
    a time across them, so a jump of the median costs at most about 2 * 256 + 256 steps instead
    of one per value (the coarse level of Perreault and Hebert's O(1) median filter, IEEE TIP
    16, 2007, used here per row).
    """
    nb, m0, m1 = dst.shape
    for t in numba.prange(nb * m0):
        b = t // m0
        i = t - b * m0
        fine = np.zeros(65536, np.int32)
        coarse = np.zeros(256, np.int32)
        for r in range(i, i + k0):
            for c in range(k1):
                v = padded[b, r, c]
                fine[v] += 1
                coarse[v >> 8] += 1
        med = 0
        below = 0
        for j in range(m1):
            if j:
                for r in range(i, i + k0):
                    v = padded[b, r, j - 1]
                    fine[v] -= 1
                    coarse[v >> 8] -= 1
                    if v < med:
                        below -= 1
                    w = padded[b, r, j + k1 - 1]
                    fine[w] += 1
                    coarse[w >> 8] += 1
                    if w < med:
                        below += 1
            while below > rank:  # down: whole coarse bins when the median lies below them
                if med & 255 == 0 and below - coarse[(med >> 8) - 1] > rank:
                    med -= 256
                    below -= coarse[med >> 8]
                else:
                    med -= 1
                    below -= fine[med]
            while below + fine[med] <= rank:  # up
                if med & 255 == 0 and below + coarse[med >> 8] <= rank:
                    below += coarse[med >> 8]
                    med += 256
                else:
                    below += fine[med]
                    med += 1
            dst[b, i, j] = med


def pad(src, reach, mode, cval):
    """``src`` extended by ``reach[d] = (before, after)`` along each axis, as the mode says."""
    from ..._regions import global_map

    x = src
    code = modes.mode_code(mode)
    for d, (before, after) in enumerate(reach):
        if not before and not after:
            continue
        n = x.shape[d]
        index = np.arange(-before, n + after)
        if code == modes.CONSTANT:
            inside = (index >= 0) & (index < n)
            x = np.take(x, np.clip(index, 0, n - 1), axis=d)
            sel = [slice(None)] * x.ndim
            sel[d] = ~inside
            x[tuple(sel)] = cval
        else:
            x = np.take(x, global_map(index, n, code), axis=d)
    return np.ascontiguousarray(x)


def rank_pass(src, fp, lo, rank, mode, cval, box_last2=False, dst=None):
    """Rank filter with footprint ``fp`` (full rank, window start ``-lo`` per axis)."""
    reach = [(lo_d, s - 1 - lo_d) for lo_d, s in zip(lo, fp.shape)]
    fill = np.asarray(cval).astype(src.dtype)[()]
    padded = pad(src, reach, mode, fill)
    dst = _dest(dst, src.shape, src.dtype)
    if src.size == 0:
        return dst
    if box_last2 and src.dtype in (np.uint8, np.uint16):
        k0, k1 = fp.shape[-2:]
        n0, n1 = src.shape[-2:]
        kernel = _huang if src.dtype == np.uint8 else _huang16
        kernel(padded.reshape(-1, n0 + k0 - 1, n1 + k1 - 1), dst.reshape(-1, n0, n1), k0, k1,
               rank)
        return dst
    pstrides = np.array([s // padded.itemsize for s in padded.strides], np.int64)
    offsets = np.array([sum(int(i) * st for i, st in zip(idx, pstrides))
                        for idx in zip(*np.nonzero(fp))], np.int64)
    _rank_padded(padded.reshape(-1), pstrides, dst, offsets, rank)
    return dst
