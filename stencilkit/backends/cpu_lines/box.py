"""Box sums by running sums.

Along one axis (:func:`box_pass`), and over the last two axes in one sweep
(:func:`box2_pass`).
"""

from __future__ import annotations

import numba
import numpy as np

from ... import modes
from .common import (
    _along_rows,
    _dest,
    _extend_row,
    _finite,
    _int_range,
    _map,
    _sk_njit,
    _tile,
    _views,
)


@_sk_njit
def _slide_float(src, o, a, b, c0, w, cval, acc, bad):
    """Move float windows one step: add row ``a``, drop row ``b`` (-1: outside, cval).

    Inner loops index with unsigned integers: numba adds a negative-index check to every
    signed index, which keeps LLVM from vectorising the loop (3-5x slower here).
    """
    c0u = np.uint64(c0)
    if a >= 0 and b >= 0:
        for c in range(w):
            u = np.uint64(c)
            x = np.float64(src[o, a, c0u + u])
            y = np.float64(src[o, b, c0u + u])
            fx = _finite(x)
            fy = _finite(y)
            acc[u] += (x if fx else 0.0) - (y if fy else 0.0)
            bad[u] += (0 if fx else 1) - (0 if fy else 1)
    elif a >= 0 or b >= 0:
        sign = 1.0 if a >= 0 else -1.0
        r = a if a >= 0 else b
        cv = cval if _finite(cval) else 0.0
        cb = 0 if _finite(cval) else 1
        for c in range(w):
            u = np.uint64(c)
            x = np.float64(src[o, r, c0u + u])
            fx = _finite(x)
            acc[u] += sign * ((x if fx else 0.0) - cv)
            bad[u] += (1 if a >= 0 else -1) * ((0 if fx else 1) - cb)


@numba.njit(cache=True, nogil=True, parallel=True)
def _box_float(src, dst, lo, hi, mode, cval, divisor, lanes):
    n_outer, n, n_inner = src.shape
    tiles = (n_inner + lanes - 1) // lanes
    for t in numba.prange(n_outer * tiles):
        o, c0, w = _tile(t, tiles, lanes, n_inner)
        c0u = np.uint64(c0)
        acc = np.zeros(w, np.float64)
        bad = np.zeros(w, np.int64)
        for j in range(-lo, hi + 1):
            m = _map(j, n, mode)
            for c in range(w):
                u = np.uint64(c)
                v = np.float64(src[o, m, c0u + u]) if m >= 0 else cval
                if _finite(v):
                    acc[u] += v
                else:
                    bad[u] += 1
        for i in range(n):
            if i > 0:
                _slide_float(src, o, _map(i + hi, n, mode), _map(i - lo - 1, n, mode), c0, w,
                             cval, acc, bad)
            nbad = 0
            for c in range(w):
                u = np.uint64(c)
                dst[o, i, c0u + u] = acc[u] / divisor
                nbad += bad[u]
            if nbad:  # windows holding NaN or an infinity: summed directly (IEEE's answer)
                for c in range(w):
                    u = np.uint64(c)
                    if bad[u]:
                        s = 0.0
                        for j in range(i - lo, i + hi + 1):
                            m = _map(j, n, mode)
                            s += np.float64(src[o, m, c0u + u]) if m >= 0 else cval
                        dst[o, i, c0u + u] = s / divisor


@_sk_njit
def _slide_int(src, o, a, b, c0, w, cval, acc):
    c0u = np.uint64(c0)
    if a >= 0 and b >= 0:
        for c in range(w):
            u = np.uint64(c)
            acc[u] += np.int64(src[o, a, c0u + u]) - np.int64(src[o, b, c0u + u])
    elif a >= 0:
        for c in range(w):
            u = np.uint64(c)
            acc[u] += np.int64(src[o, a, c0u + u]) - cval
    elif b >= 0:
        for c in range(w):
            u = np.uint64(c)
            acc[u] += cval - np.int64(src[o, b, c0u + u])


@numba.njit(cache=True, nogil=True, parallel=True)
def _box_int(src, dst, lo, hi, mode, cval, divisor, lanes, clip_lo, clip_hi):
    """Exact int64 sums; divisor 1 stores the sum, else the mean rounded (ties to even).

    The mean is ``rint(float64(sum) / divisor)``: exact for sums below 2^52, because a
    quotient s / n that is not a tie lies at least 1 / (2n) from one, far more than the
    division's rounding error (and a tie, k + 1/2, is computed exactly); unlike an integer
    division by a run-time divisor, it vectorises.
    """
    n_outer, n, n_inner = src.shape
    tiles = (n_inner + lanes - 1) // lanes
    fdiv = np.float64(divisor)
    flo = np.float64(clip_lo)
    fhi = np.float64(clip_hi)
    for t in numba.prange(n_outer * tiles):
        o, c0, w = _tile(t, tiles, lanes, n_inner)
        c0u = np.uint64(c0)
        acc = np.zeros(w, np.int64)
        for j in range(-lo, hi + 1):
            m = _map(j, n, mode)
            for c in range(w):
                u = np.uint64(c)
                acc[u] += np.int64(src[o, m, c0u + u]) if m >= 0 else cval
        for i in range(n):
            if i > 0:
                _slide_int(src, o, _map(i + hi, n, mode), _map(i - lo - 1, n, mode), c0, w,
                           cval, acc)
            if divisor == 1:
                for c in range(w):
                    u = np.uint64(c)
                    dst[o, i, c0u + u] = min(max(acc[u], clip_lo), clip_hi)
            else:
                for c in range(w):
                    u = np.uint64(c)
                    q = np.rint(np.float64(acc[u]) / fdiv)
                    dst[o, i, c0u + u] = np.int64(min(max(q, flo), fhi))


@numba.njit(cache=True, nogil=True, parallel=True)
def _box2(src, dst, lo0, hi0, lo1, hi1, mode, cval, divisor, clip_lo, clip_hi, band, acc_proto,
          f32=False):
    """2-D box over axes 1 and 2 of (outer, n0, n1) in one sweep (no intermediate array).

    Each task takes a band of rows: column sums over the k0 rows of the window slide down the
    band (add the row entering, drop the one leaving); each output row is then a difference of
    prefix sums of those column sums, extended past the row's ends by the mode. The dtype of
    ``acc_proto`` is the accumulator: int64 (exact; the mean rounded to nearest, ties to even,
    clipped) or float64 (non-finite values counted apart, as in :func:`_box_float`). ``f32``:
    every integer sum is below 2**23 in magnitude, so a float32 division rounds like the exact
    quotient (see box2_pass) at twice the vector width of float64.
    """
    n_outer, n0, n1 = src.shape
    k0 = lo0 + hi0 + 1
    k1 = lo1 + hi1 + 1
    width = n1 + k1 - 1
    k1u = np.uint64(k1)
    lo1u = np.uint64(lo1 + 1)
    bands = -(-n0 // band)
    is_int = acc_proto.dtype.kind != "f"
    zero = acc_proto[0] * 0
    cv = zero + cval
    cv_ok = _finite(cv)
    inv = 1.0 / divisor
    fdiv = np.float64(divisor)
    flo = np.float64(clip_lo)
    fhi = np.float64(clip_hi)
    fdiv32 = np.float32(divisor)
    flo32 = np.float32(clip_lo)
    fhi32 = np.float32(clip_hi)
    for t in numba.prange(n_outer * bands):
        o = t // bands
        r0 = (t - o * bands) * band
        r1 = min(r0 + band, n0)
        col = np.zeros(n1, acc_proto.dtype)  # column sums over the current window's rows
        bad = np.zeros(n1, np.int64)
        prefix = np.zeros(width + 1, acc_proto.dtype)
        prefix_bad = np.zeros(width + 1, np.int64)
        for j in range(r0 - lo0, r0 + hi0 + 1):
            m = _map(j, n0, mode)
            for c in range(n1):
                u = np.uint64(c)
                v = src[o, m, u] if m >= 0 else cv
                f = _finite(v)
                col[u] += v if f else zero
                bad[u] += 0 if f else 1
        for i in range(r0, r1):
            a = _map(i + hi0, n0, mode)  # the row entering the window, and the one leaving
            b = _map(i - lo0 - 1, n0, mode)
            if i > r0 and is_int and a >= 0 and b >= 0:
                # integers, both rows inside: no bookkeeping of non-finite values
                for c in range(n1):
                    u = np.uint64(c)
                    col[u] += (zero + src[o, a, u]) - (zero + src[o, b, u])
            elif i > r0:
                for c in range(n1):
                    u = np.uint64(c)
                    x = src[o, a, u] if a >= 0 else cv
                    y = src[o, b, u] if b >= 0 else cv
                    fx = _finite(x)
                    fy = _finite(y)
                    col[u] += (x if fx else zero) - (y if fy else zero)
                    bad[u] += (0 if fx else 1) - (0 if fy else 1)
            # prefix sums of the column sums along the row extended by the mode (position p
            # holds column p - lo1)
            acc = zero
            nb = 0
            for p in range(lo1):
                m = _map(p - lo1, n1, mode)
                acc += col[m] if m >= 0 else (cv * k0 if cv_ok else zero)
                nb += bad[m] if m >= 0 else (0 if cv_ok else k0)
                prefix[p + 1] = acc
                prefix_bad[p + 1] = nb
            for c in range(n1):
                u = np.uint64(c)
                acc += col[u]
                prefix[lo1u + u] = acc
            if not is_int:  # integers are always finite
                for c in range(n1):
                    u = np.uint64(c)
                    nb += bad[u]
                    prefix_bad[lo1u + u] = nb
            for p in range(lo1 + n1, width):
                m = _map(p - lo1, n1, mode)
                acc += col[m] if m >= 0 else (cv * k0 if cv_ok else zero)
                nb += bad[m] if m >= 0 else (0 if cv_ok else k0)
                prefix[p + 1] = acc
                prefix_bad[p + 1] = nb
            if is_int and f32:
                for c in range(n1):
                    u = np.uint64(c)
                    q = np.rint(np.float32(prefix[u + k1u] - prefix[u]) / fdiv32)
                    dst[o, i, u] = np.int64(min(max(q, flo32), fhi32))
            elif is_int:  # rounded as in _box_int
                for c in range(n1):
                    u = np.uint64(c)
                    q = np.rint(np.float64(prefix[u + k1u] - prefix[u]) / fdiv)
                    dst[o, i, u] = np.int64(min(max(q, flo), fhi))
            else:
                for c in range(n1):
                    u = np.uint64(c)
                    dst[o, i, u] = (prefix[u + k1u] - prefix[u]) * inv
                if prefix_bad[width]:
                    for c in range(n1):
                        u = np.uint64(c)
                        if prefix_bad[u + k1u] - prefix_bad[u]:  # NaN or inf inside: sum directly
                            d = zero
                            for jj in range(i - lo0, i + hi0 + 1):
                                mm = _map(jj, n0, mode)
                                for cc in range(c - lo1, c + hi1 + 1):
                                    mc = _map(cc, n1, mode)
                                    d += src[o, mm, mc] if mm >= 0 and mc >= 0 else cv
                            dst[o, i, u] = d * inv


def box2_pass(src, lo0, hi0, lo1, hi1, mode, cval, out_dtype, divisor, clip=None, dst=None):
    """Box sum/mean over the last two axes of a C-contiguous array, in one sweep."""
    dst = _dest(dst, src.shape, out_dtype)
    if src.size == 0:
        return dst
    n0, n1 = src.shape[-2:]
    s = src.reshape(-1, n0, n1)
    d = dst.reshape(-1, n0, n1)
    code = modes.mode_code(mode)
    # bands of rows: enough tasks for every thread, each long enough that re-summing its first
    # window (k0 rows) is a small part of its work
    tasks = max(1, 4 * numba.get_num_threads() // s.shape[0])
    band = max(4 * (lo0 + hi0 + 1), -(-n0 // tasks))
    if src.dtype.kind == "f" or out_dtype.kind == "f":
        _box2(s, d, lo0, hi0, lo1, hi1, code, float(cval), float(divisor), 0, 0, band,
              np.zeros(1, np.float64))
    else:
        lo_c, hi_c = clip if clip is not None else _int_range(out_dtype)
        # |sum| < 2**23: the float32 quotient of two exact integers is then never rounded onto
        # a half-integer it is not (its distance from one, >= 1 / (2 divisor), exceeds half an
        # ulp), so rint of it is the exact rounding, ties included
        lo_i, hi_i = _int_range(src.dtype)
        big = max(-lo_i, hi_i, abs(int(cval))) * (lo0 + hi0 + 1) * (lo1 + hi1 + 1)
        f32 = big < 2**23 and abs(int(divisor)) < 2**23
        _box2(s, d, lo0, hi0, lo1, hi1, code, int(cval), int(divisor), int(lo_c), int(hi_c),
              band, np.zeros(1, np.int64), f32)
    return dst


@numba.njit(cache=True, nogil=True, parallel=True)
def _rows_box(src, dst, lo, hi, mode, cval, divisor, clip_lo, clip_hi, acc_proto):
    """Box sum/mean along the rows of a 2-D array from power-of-two partial sums.

    The window ``[j, j + k)`` is split by the binary digits of k into blocks of 1, 2, 4, ...
    elements, each read from a level of pairwise sums (level b holds the sums of 2^b
    elements), so each element costs about 2 log2(k) vectorised additions, with no running
    subtraction: a NaN or an infinity stays inside its windows. ``acc_proto``: int64 sums
    rounded as in :func:`_box_int`, or float64 sums divided by ``divisor``.
    """
    rows, n = src.shape
    k = lo + hi + 1
    width = n + k - 1
    is_int = acc_proto.dtype.kind != "f"
    zero = acc_proto[0] * 0
    cv = zero + cval
    fdiv = np.float64(divisor)
    flo = np.float64(clip_lo)
    fhi = np.float64(clip_hi)
    for r in numba.prange(rows):
        level = np.empty(width, acc_proto.dtype)
        nxt = np.empty(width, acc_proto.dtype)
        total = np.zeros(n, acc_proto.dtype)
        _extend_row(src, r, level, lo, n, mode, cv)
        span = 1
        offset = 0
        while span <= k:
            if k & span:
                ou = np.uint64(offset)
                for j in range(n):
                    u = np.uint64(j)
                    total[u] += level[u + ou]
                offset += span
            if 2 * span <= k:  # out of place, as in _rows_extreme
                su = np.uint64(span)
                for j in range(width - span):
                    u = np.uint64(j)
                    nxt[u] = level[u] + level[u + su]
                level, nxt = nxt, level
            span *= 2
        if is_int:
            for j in range(n):
                u = np.uint64(j)
                q = np.rint(np.float64(total[u]) / fdiv)
                dst[r, u] = np.int64(min(max(q, flo), fhi))
        else:
            for j in range(n):
                u = np.uint64(j)
                dst[r, u] = total[u] / fdiv


def box_pass(src, axis, lo, hi, mode, cval, out_dtype, divisor=1, clip=None, dst=None):
    """Running-sum box pass along ``axis`` (window ``i - lo .. i + hi``) of a C-contiguous array.

    Integer ``src``: exact int64 sums; ``divisor`` > 1 stores their mean rounded to nearest
    (ties to even), clipped to ``clip``. Float ``src``: float64 sums divided by ``divisor``.
    ``dst``: where to write (every pass takes one; else the result is a pooled array).
    """
    dst = _dest(dst, src.shape, out_dtype)
    if src.size == 0:
        return dst
    code = modes.mode_code(mode)
    if _along_rows(src.shape, axis):
        n = src.shape[axis]
        s, d = src.reshape(-1, n), dst.reshape(-1, n)
        if src.dtype.kind == "f" or np.dtype(out_dtype).kind == "f":
            _rows_box(s, d, lo, hi, code, float(cval), float(divisor), 0, 0,
                      np.zeros(1, np.float64))
        else:
            lo_c, hi_c = clip if clip is not None else _int_range(out_dtype)
            _rows_box(s, d, lo, hi, code, int(cval), int(divisor), int(lo_c), int(hi_c),
                      np.zeros(1, np.int64))
        return dst
    if src.dtype.kind != "f" and np.dtype(out_dtype).kind == "f":
        src = src.astype(np.float64)  # integers into a float result: float sums (exact here)
    s, d, lanes = _views(src, dst, axis)
    if src.dtype.kind == "f":
        _box_float(s, d, lo, hi, code, float(cval), float(divisor), lanes)
    else:
        lo_c, hi_c = clip if clip is not None else _int_range(out_dtype)
        _box_int(s, d, lo, hi, code, int(cval), int(divisor), lanes, int(lo_c), int(hi_c))
    return dst
