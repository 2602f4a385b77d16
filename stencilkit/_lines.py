"""Line passes whose cost per element does not grow with the window: running sums and van Herk.

A box mean or a min/max over a large box is separable: one pass per axis of a 1-D window of
``k = lo + 1 + hi`` elements. Summing (or comparing) the k elements of every window costs k
operations per element; these passes cost a few, whatever k:

* :func:`box_pass`, a running sum: the window's sum moves along the line by adding the element
  that enters and subtracting the one that leaves. Integer sums are exact (int64). Float sums
  keep non-finite values out of the running sum and count them per window instead, so a NaN or
  an infinity reaches only the windows that hold it; such a window is summed directly, which
  gives IEEE's answer (NaN, or the infinity).
* :func:`extreme_pass`, van Herk / Gil-Werman: the extended line is cut into blocks of k; a
  window starting inside a block covers that block's tail and the next block's head, so its
  extreme is ``op(suffix[i], prefix[i + k - 1])`` with suffix and prefix extremes computed once
  per block (M. van Herk, Pattern Recognit. Lett. 13, 1992; J. Gil and M. Werman, IEEE TPAMI
  15, 1993): three comparisons per element. NaN propagates (``np.maximum``'s rule), confined to
  the windows holding it.

Arrays are viewed as ``(outer, n, inner)`` with the pass along ``n``; the inner axis is
processed in tiles of ``lanes`` contiguous elements side by side, so the inner loops vectorise.
A pass along rows (the last axis) works on each row instead, by span doubling (min/max) or
power-of-two partial sums (box), also vectorised. Further down: one-sweep 2-D box and separable
passes over the last two axes, and large-window medians. Indices past a line's ends go
through the same ``_sk_map`` source as the generated stencils, so both agree at every edge, and
Dask runs these passes per region through the same halo machinery.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import _buffers, modes

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


def native(dtype):
    """The dtype compiled code works in: native byte order, float32 for float16.

    numba cannot pass float16 arrays; callers cast results back.
    """
    dtype = np.dtype(dtype).newbyteorder("=")
    return np.dtype(np.float32) if dtype == np.float16 else dtype


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


@_sk_njit
def _sep_row(src, o, m, w, cval, ext, lou, n1):
    """ext[lou:] += w * row m of src (m < 0: a row of cval)."""
    if m >= 0:
        for c in range(n1):
            u = np.uint64(c)
            ext[u + lou] += w * src[o, m, u]
    else:
        for c in range(n1):
            u = np.uint64(c)
            ext[u + lou] += w * cval


@numba.njit(cache=True, nogil=True, parallel=True)
def _sep2(src, dst, wv, lov, wh, loh, mode, cval, band, rounding, clip_lo, clip_hi, step):
    """Separable correlation over the last two axes of (outer, n0, n1) in one sweep.

    For each output row: a vertical pass (``wv``, reaching ``lov`` rows up) into a row buffer,
    that row extended by the mode (outside the array, a column of cval, so ``cval * sum(wv)``),
    then a horizontal pass (``wh``, ``loh`` columns left), in the weights' float type; no
    intermediate array. ``rounding``: store integers rounded to nearest (ties to even) and clipped.
    ``step`` > 1 computes only every step-th row and column (a prefilter-and-decimate, as a
    pyramid level), into ``dst`` of ``ceil(n / step)`` per axis.
    """
    n_outer, n0, n1 = src.shape
    m0 = dst.shape[1]
    m1 = dst.shape[2]
    kv = wv.size
    kh = wh.size
    width = n1 + kh - 1
    bands = -(-m0 // band)
    zero = wv[0] * 0
    edge = zero + cval * wv.sum()
    for t in numba.prange(n_outer * bands):
        o = t // bands
        r0 = (t - o * bands) * band
        r1 = min(r0 + band, m0)
        ext = np.empty(width, wv.dtype)
        row = np.empty(m1, wv.dtype)
        lou = np.uint64(loh)
        for i in range(r0, r1):
            for c in range(n1):
                u = np.uint64(c)
                ext[u + lou] = zero
            # taps four at a time: each pass over the row buffer is a load and a store, so
            # folding four rows into one pass cuts that traffic (3x faster than one tap a pass)
            j = 0
            while j + 4 <= kv:
                m0_ = _map(i * step + j - lov, n0, mode)
                m1_ = _map(i * step + j + 1 - lov, n0, mode)
                m2 = _map(i * step + j + 2 - lov, n0, mode)
                m3 = _map(i * step + j + 3 - lov, n0, mode)
                if m0_ >= 0 and m1_ >= 0 and m2 >= 0 and m3 >= 0:
                    w0, w1, w2, w3 = wv[j], wv[j + 1], wv[j + 2], wv[j + 3]
                    for c in range(n1):
                        u = np.uint64(c)
                        ext[u + lou] += (w0 * src[o, m0_, u] + w1 * src[o, m1_, u]
                                         + w2 * src[o, m2, u] + w3 * src[o, m3, u])
                    j += 4
                else:
                    _sep_row(src, o, m0_, wv[j], cval, ext, lou, n1)
                    j += 1
            while j < kv:
                _sep_row(src, o, _map(i * step + j - lov, n0, mode), wv[j], cval, ext, lou,
                         n1)
                j += 1
            for p in range(loh):
                m = _map(p - loh, n1, mode)
                ext[p] = ext[m + loh] if m >= 0 else edge
            for p in range(loh + n1, width):
                m = _map(p - loh, n1, mode)
                ext[p] = ext[m + loh] if m >= 0 else edge
            for c in range(m1):
                row[np.uint64(c)] = zero
            # taps four at a time here too; column c reads ext[c * step + j ...]
            su = np.uint64(step)
            j = 0
            while j + 4 <= kh:
                w0, w1, w2, w3 = wh[j], wh[j + 1], wh[j + 2], wh[j + 3]
                ju = np.uint64(j)
                for c in range(m1):
                    u = np.uint64(c) * su + ju
                    row[np.uint64(c)] += (w0 * ext[u] + w1 * ext[u + np.uint64(1)]
                                          + w2 * ext[u + np.uint64(2)]
                                          + w3 * ext[u + np.uint64(3)])
                j += 4
            while j < kh:
                w = wh[j]
                ju = np.uint64(j)
                for c in range(m1):
                    u = np.uint64(c)
                    row[u] += w * ext[u * su + ju]
                j += 1
            if rounding:
                for c in range(m1):
                    u = np.uint64(c)
                    dst[o, i, u] = min(max(np.rint(row[u]), clip_lo), clip_hi)
            else:
                for c in range(m1):
                    u = np.uint64(c)
                    dst[o, i, u] = row[u]


def sep2_pass(src, wv, lov, wh, loh, mode, cval, out_dtype, step=1, acc=np.float64, tie=None,
              fast=True, dst=None):
    """Separable correlation (``wv`` down, ``wh`` across) over the last two axes.

    Only every ``step``-th row and column is computed (``step`` 2: a pyramid level). ``acc``:
    the float type of the sums (float32 vectors are twice as wide). Integer data with integer
    results asked in float64 may be summed in float32 with a float64 fallback (see
    :func:`float32_tie`); the integers are then those of the float64 sweep (only a float64 sum
    within float64 round-off of a half-integer could round either way, as between any two
    float64 evaluations). ``fast`` False turns that off; ``tie`` overrides the fallback's
    threshold (tests: 0 recomputes every element in float64).
    """
    out_dtype = np.dtype(out_dtype)
    n0, n1 = src.shape[-2:]
    m0, m1 = -(-n0 // step), -(-n1 // step)
    dst = _dest(dst, src.shape[:-2] + (m0, m1), out_dtype)
    if src.size == 0:
        return dst
    s = src.reshape(-1, n0, n1)
    d = dst.reshape(-1, m0, m1)
    tasks = max(1, 4 * numba.get_num_threads() // s.shape[0])
    band = max(16, -(-m0 // tasks))
    rounding = out_dtype.kind in "iub"
    lo_c, hi_c = (0.0, 1.0) if out_dtype.kind == "b" else (
        (float(np.iinfo(out_dtype).min), float(np.iinfo(out_dtype).max)) if rounding
        else (0.0, 0.0))
    wv64 = np.asarray(wv, np.float64)
    wh64 = np.asarray(wh, np.float64)
    code = modes.mode_code(mode)
    if code != modes.CONSTANT and wv64.size <= UNROLL_MAX and wh64.size <= UNROLL_MAX:
        # every window row exists (no cval rows): the generated kernel with its taps unrolled
        exact, rel = False, 0.0
        if fast and np.dtype(acc) == np.float64 and rounding and src.dtype.kind in "iub":
            bound = float32_tie(wv64, wh64, src.dtype)
            if tie is not None or bound is not None:
                acc, exact = np.float32, True
                rel, tie = bound if tie is None else (0.0, tie)
        kernel = _unrolled_sep2(wv64.size, wh64.size, np.dtype(acc).name, rounding, exact, step)
        kernel(s, d, wv64.astype(acc), lov, wh64.astype(acc), loh, code, band, lo_c, hi_c,
               np.float32(rel), np.float32(tie if exact else 1.0), wv64, wh64)
    else:
        _sep2(s, d, np.asarray(wv, acc), lov, np.asarray(wh, acc), loh, code, float(cval), band,
              rounding, lo_c, hi_c, step)
    return dst


def float32_tie(wv, wh, dtype, most=1e-3):
    """When float32 sums round as the float64 sweep's: ``(rel, tie)``, or None.

    The separable sum of integers ``|x| <= M`` with weights ``a`` (down) and ``b`` (across),
    computed in float32 (weights rounded to float32, recursive sums of ``kv`` then ``kh``
    products, with or without fused multiply-add) differs from the exact sum ``H`` by at most
    ``c * sum|a| sum|b| M`` with ``c = g(kv) + g(kh) + 2u`` (to first order), ``u = 2**-24``,
    ``g(n) = n u / (1 - n u)`` (Higham, Accuracy and Stability of Numerical Algorithms, 2nd
    ed., sections 2.2 and 3.1). With weights and data >= 0 every product and partial sum is
    >= 0 and the bound is relative, ``c * H``: sums near 0 are far more precise than the worst
    case. The float64 sweep's own error (the same with ``u = 2**-53``) is added. Two sums that
    close round to different integers only if a half-integer lies between them, so a float32
    sum ``v`` with ``|v - rint(v)| + rel * |v| < tie`` rounds as the float64 one; otherwise it
    is computed again in float64. None when the bound exceeds ``most`` (too many sums would be
    computed twice: 16-bit data, long or heavy kernels).
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iub" or dtype.itemsize > 2:
        return None
    wv = np.asarray(wv, np.float64)
    wh = np.asarray(wh, np.float64)
    lo, hi = (0, 1) if dtype.kind == "b" else (int(np.iinfo(dtype).min),
                                               int(np.iinfo(dtype).max))

    def g(n, u):
        return n * u / (1 - n * u)

    u32, u64 = 2.0**-24, 2.0**-53
    c = (g(wv.size, u32) + g(wh.size, u32) + 2 * u32 + g(wv.size, u64) + g(wh.size, u64)
         + 2 * u64)
    c = c / (1 - c) * 1.01  # against the computed sum (not the exact one), with a margin
    # float32 weights below 2**-126 are subnormal, their error absolute: at most 2**-150 each
    tiny = (wv.size + wh.size) * 2.0**-149 * max(-lo, hi) * float(np.abs(wh).sum() + 1)
    if lo >= 0 and (wv >= 0).all() and (wh >= 0).all():
        rel, absolute = c, tiny
        worst = c * hi * float(wv.sum() * wh.sum())
    else:
        rel, absolute = 0.0, c * max(-lo, hi) * float(np.abs(wv).sum() * np.abs(wh).sum())
        absolute += tiny
        worst = absolute
    if not math.isfinite(worst) or worst > most:
        return None
    # the largest float32 below 0.5 - absolute, less a margin for the test's own rounding
    tie = np.float32(0.5 - absolute - 2.0**-23)
    while float(tie) > 0.5 - absolute - 2.0**-23:
        tie = np.nextafter(tie, np.float32(0))
    return float(np.float32(rel)), float(tie)


# Up to this many taps per axis, the separable sweep is generated with its taps unrolled: one
# pass over the row buffers per axis, sums in registers, instead of a read-modify-write pass
# per group of four taps (gaussian sigma=2 on uint8: about 2x faster).
UNROLL_MAX = 33

_SEP2_TEMPLATE = """
# Generated by stencilkit._lines (separable sweep, {kv} x {kh} taps, {acc}); do not edit.
import numba
import numpy as np

_sk_njit = numba.njit(cache={cache}, nogil=True)
{map_source}
{exact}

@numba.njit(cache={cache}, nogil=True, parallel=True, fastmath={fastmath})
def sep2(src, dst, wv, lov, wh, loh, mode, band, clip_lo, clip_hi, rel, tie, wv64, wh64):
    n_outer, n0, n1 = src.shape
    m0 = dst.shape[1]
    m1 = dst.shape[2]
    width = n1 + {kh} - 1
    bands = -(-m0 // band)
{weights}
    su = np.uint64({step})  # a constant: unit steps vectorise
    lou = np.uint64(loh)
    lo = np.{acc}(clip_lo)
    hi = np.{acc}(clip_hi)
    for t in numba.prange(n_outer * bands):
        o = t // bands
        r0 = (t - o * bands) * band
        r1 = min(r0 + band, m0)
        ext0 = np.empty(width, wv.dtype)
        ext1 = np.empty(width, wv.dtype)
{row}
        for i0 in range(r0, r1, {pair}):
{rows}
            for c in range(n1):
                u = np.uint64(c)
{vertical}
            # then each output row of the iteration (the second may fall past the band's end):
            # its row of vertical sums extended by the mode, the horizontal pass, the store
            for i in range(i0, min(i0 + {pair}, r1)):
                ext = ext0 if i == i0 else ext1
                for p in range(loh):
                    ext[p] = ext[_sk_map(p - loh, n1, mode) + loh]
                for p in range(loh + n1, width):
                    ext[p] = ext[_sk_map(p - loh, n1, mode) + loh]
{store}
"""

# Float results.
_SEP2_FLOAT = """\
                for c in range(m1):
                    u = np.uint64(c) * su
                    dst[o, i, np.uint64(c)] = {horizontal}"""

# Integer results: round the sums, clip, store.
_SEP2_ROUND = """\
                for c in range(m1):
                    u = np.uint64(c) * su
                    dst[o, i, np.uint64(c)] = min(max(np.rint({horizontal}), lo), hi)"""

# Integer results from float32 sums (fused multiply-adds allowed) that must equal the float64
# sweep's: a sum within the float32 error bound of a half-integer (``|v - rint(v)| + rel * |v|
# >= tie``, see float32_tie) is summed again in float64 by ``_exact``. In blocks of columns: a
# vectorised pass rounds and stores every sum, keeps the block's sums and notes whether any is
# that close; only such a block is looked at again, element by element.
_SEP2_EXACT = """\
                for g0 in range(0, m1, {block}):
                    g1 = min(g0 + {block}, m1)
                    near = False
                    for c in range(g0, g1):
                        u = np.uint64(c) * su
                        v = {horizontal}
                        row[np.uint64(c - g0)] = v
                        r = np.rint(v)
                        near |= abs(v - r) + rel * abs(v) >= tie
                        dst[o, i, np.uint64(c)] = min(max(r, lo), hi)
                    if not near:
                        continue
                    for c in range(g0, g1):
                        v = row[c - g0]
                        if abs(v - np.rint(v)) + rel * abs(v) >= tie:
                            e = np.rint(_exact(src, o, i, c, wv64, lov, wh64, loh, mode))
                            dst[o, i, c] = min(max(e, clip_lo), clip_hi)"""

# The float64 recomputation of one element for _SEP2_EXACT, and the block of sums it rescans.
_SEP2_EXACT_DEFS = """
@numba.njit(cache={cache}, nogil=True)
def _exact(src, o, i, c, wv64, lov, wh64, loh, mode):
    # one element of the float64 sweep: its products summed in the same order
    n0 = src.shape[1]
    n1 = src.shape[2]
{rows64}
{weights64}
    e = 0.0
    for j in range({kh}):
        q = _sk_map(c * {step} + j - loh, n1, mode)
        e += wh64[j] * ({vertical64})
    return e
"""

# Columns per block of the exact float32 sweep: the unit of its second pass
EXACT_BLOCK = 64
_UNROLLED = {}


def _unrolled_sep2(kv, kh, acc, rounding, exact=False, step=1):
    """The generated sweep for ``kv`` x ``kh`` taps summed in ``acc`` (weights at run time).

    ``rounding``: integer results (rounded, clipped); ``exact``: those checked against the
    float64 sweep (``_SEP2_EXACT``); both and ``step`` are constants of the generated source.
    Unit steps make two output rows per iteration: their ``kv + 1`` source rows are read and
    converted once for both vertical sums (6-13% faster).
    """
    key = (kv, kh, acc, bool(rounding), exact, step)
    kernel = _UNROLLED.get(key)
    if kernel is None:
        from .backends import cpu

        pair = 2 if step == 1 else 1

        def source(cache):
            weights = "\n".join([f"    a{j} = wv[{j}]" for j in range(kv)]
                                 + [f"    b{j} = wh[{j}]" for j in range(kh)])
            nrows = kv + pair - 1
            rows = "\n".join(
                f"            s{j} = src[o, _sk_map(i0 * {step} + {j} - lov, n0, mode)]"
                for j in range(nrows))
            vertical = [f"                x{j} = np.{acc}(s{j}[u])" for j in range(nrows)]
            for r in range(pair):
                terms = " + ".join(f"a{j} * x{j + r}" for j in range(kv))
                vertical.append(f"                ext{r}[u + lou] = {terms}")
            horizontal = " + ".join(f"b{j} * ext[u + np.uint64({j})]" for j in range(kh))
            store = (_SEP2_EXACT if exact else _SEP2_ROUND if rounding else _SEP2_FLOAT)
            exact_defs = row = ""
            if exact:
                exact_defs = _SEP2_EXACT_DEFS.format(
                    cache=cache, kh=kh, step=step,
                    rows64="\n".join(f"    s{j} = src[o, _sk_map(i * {step} + {j} - lov, n0, mode)]"
                                      for j in range(kv)),
                    weights64="\n".join(f"    a{j} = wv64[{j}]" for j in range(kv)),
                    vertical64=" + ".join(f"a{j} * np.float64(s{j}[q])" for j in range(kv)))
                row = f"        row = np.empty({EXACT_BLOCK}, wv.dtype)"
            return _SEP2_TEMPLATE.format(
                kv=kv, kh=kh, acc=acc, cache=cache, pair=pair, step=step,
                map_source=modes.MAP_SOURCE, exact=exact_defs, weights=weights, rows=rows,
                row=row, vertical="\n".join(vertical),
                store=store.format(horizontal=horizontal, block=EXACT_BLOCK),
                fastmath="{'contract'}" if exact else "False")

        kernel = cpu.load_module(source, {}).sep2
        _UNROLLED[key] = kernel
    return kernel


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
    s, d, lanes = _views(src, dst, axis)
    if src.dtype.kind == "f":
        _box_float(s, d, lo, hi, code, float(cval), float(divisor), lanes)
    else:
        lo_c, hi_c = clip if clip is not None else _int_range(out_dtype)
        _box_int(s, d, lo, hi, code, int(cval), int(divisor), lanes, int(lo_c), int(hi_c))
    return dst


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
    from ._regions import global_map

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
