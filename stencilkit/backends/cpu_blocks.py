"""Resampling on the CPU: block reductions and the fused pyramid level (numba kernels).

:func:`reduce` (mean, sum, min, max) and :func:`median` implement
:func:`stencilkit.resample.block_reduce` for NumPy arrays, :func:`pyramid_level` one level of
:func:`stencilkit.resample.pyramid_down` over the last two axes (the prefilter computed only
at the rows and columns kept).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .. import _buffers, modes
from .._regions import global_map
from .cpu_lines import native, sep2_pass

# cv2.pyrDown's prefilter: the 5-tap binomial along each axis
_WEIGHTS = np.array([1, 4, 6, 4, 1]) / 16.0
# the codes of _block2's op argument
_OPS = ("mean", "sum", "min", "max")


@numba.njit(cache=True, nogil=True, parallel=True)
def _block2(src, dst, f0, f1, op, rounding, lo_c, hi_c, acc_proto, int_acc, small):
    """Reduce (B, n0, n1) by blocks of f0 x f1 into (B, m0, m1); the last blocks may be short.

    op: 0 mean, 1 sum, 2 min, 3 max; a short block reduces its real elements. Sums accumulate
    in ``acc_proto``'s dtype (int64: exact; float64), one accumulator row per output row (the
    rows of a block added as whole vectorised rows), then each block of ``f1`` columns.
    ``rounding`` stores the nearest integer (ties to even), clipped to ``[lo_c, hi_c]``;
    ``int_acc``: integer sums (means by shifts where the count is a power of two); ``small``:
    int32 sums of <= 16-bit data (a one-pass 2 x 2 mean).
    """
    nb, n0, n1 = src.shape
    m0 = dst.shape[1]
    m1 = dst.shape[2]
    for t in numba.prange(nb * m0):
        b = t // m0
        i = t - b * m0
        r0 = i * f0
        r1 = min(r0 + f0, n0)
        if op == 0 and f0 == 2 and f1 == 2 and small and r1 - r0 == 2:
            # 2 x 2 means of <= 16-bit integers (halving an image): one pass over both rows,
            # int32 sums, rounded by shifts (ties to even)
            top = src[b, r0]
            bottom = src[b, r0 + 1]
            for j in range(n1 // 2):
                u = np.uint64(2 * j)
                v = np.uint64(1)
                t4 = (np.int32(top[u]) + np.int32(top[u + v]) + np.int32(bottom[u])
                      + np.int32(bottom[u + v]))
                dst[b, i, np.uint64(j)] = (t4 + 1 + ((t4 >> 2) & 1)) >> 2
            if n1 % 2:
                t2 = np.int32(top[n1 - 1]) + np.int32(bottom[n1 - 1])
                dst[b, i, n1 // 2] = (t2 + ((t2 >> 1) & 1)) >> 1
            continue
        acc = np.empty(n1, acc_proto.dtype)
        first = src[b, r0]
        for c in range(n1):
            acc[np.uint64(c)] = first[np.uint64(c)]
        for r in range(r0 + 1, r1):
            row = src[b, r]
            if op <= 1:
                for c in range(n1):
                    u = np.uint64(c)
                    acc[u] += row[u]
            elif op == 2:
                for c in range(n1):
                    u = np.uint64(c)
                    x = acc[u]
                    y = row[u]
                    acc[u] = x if x <= y or x != x else y
            else:
                for c in range(n1):
                    u = np.uint64(c)
                    x = acc[u]
                    y = row[u]
                    acc[u] = x if x >= y or x != x else y
        rows = r1 - r0
        full = n1 // f1
        shift = 0
        while (2 << shift) <= rows * 2:
            shift += 1
        if op == 0 and f1 == 2 and int_acc and (1 << shift) == rows * 2:
            # halving integers: the block holds 2^shift elements, so the mean rounded to
            # nearest, ties to even, is integer shifts (vectorised; no float division)
            half = (1 << shift) >> 1
            for j in range(full):
                u = np.uint64(2 * j)
                t2 = np.int64(acc[u] + acc[u + np.uint64(1)])  # (int_acc: already integral)
                dst[b, i, np.uint64(j)] = (t2 + (half - 1) + ((t2 >> shift) & 1)) >> shift
            start = full
        elif op <= 1 and f1 == 2:
            # halving, the common case: pairs at a constant stride vectorise
            cnt = np.float64(rows * 2)
            for j in range(full):
                u = np.uint64(2 * j)
                _put(dst, b, i, np.uint64(j), acc[u] + acc[u + np.uint64(1)], op, cnt,
                     rounding, lo_c, hi_c)
            start = full
        else:
            start = 0
        for j in range(start, m1):
            c0 = j * f1
            c1 = min(c0 + f1, n1)
            s = acc[c0]
            for c in range(c0 + 1, c1):
                x = acc[c]
                if op <= 1:
                    s += x
                elif op == 2:
                    s = s if s <= x or s != s else x
                else:
                    s = s if s >= x or s != s else x
            _put(dst, b, i, np.uint64(j), s, op, np.float64(rows * (c1 - c0)), rounding, lo_c,
                 hi_c)


@numba.njit(cache=True, nogil=True, inline="always")
def _put(dst, b, i, j, s, op, count, rounding, lo_c, hi_c):
    """Store one block's value: the sum, or the mean (op 0) or extreme, rounded if asked."""
    if op == 1:
        dst[b, i, j] = s
        return
    v = np.float64(s) / count if op == 0 else np.float64(s)
    if rounding:
        dst[b, i, j] = min(max(np.rint(v), lo_c), hi_c)
    else:
        dst[b, i, j] = v


def _kernel(x, f0, f1, op, out_dtype, acc):
    """One _block2 call over the last two axes of ``x`` (a 1-D ``x`` is one row)."""
    shape = x.shape if x.ndim >= 2 else (1,) + x.shape
    n0, n1 = shape[-2], shape[-1]
    m0, m1 = -(-n0 // f0), -(-n1 // f1)
    src = np.ascontiguousarray(x).reshape((-1, n0, n1))
    dst = _buffers.POOL.empty((src.shape[0], m0, m1), out_dtype)
    rounding = out_dtype.kind in "iub" and op in ("mean", "median")
    lo_c, hi_c = 0.0, 0.0
    if out_dtype.kind == "b":
        lo_c, hi_c = 0.0, 1.0
    elif rounding:
        info = np.iinfo(out_dtype)
        lo_c, hi_c = float(info.min), float(info.max)
    proto = acc if op in ("mean", "sum") else np.zeros(1, src.dtype)
    int_acc = rounding and proto.dtype.kind in "iu"
    _block2(src, dst, f0, f1, _OPS.index(op), rounding, lo_c, hi_c, proto, int_acc,
            int_acc and proto.dtype == np.int32)
    return dst.reshape(shape[:-2] + (m0, m1) if x.ndim >= 2 else (m1,))


def _along(x, axis, f, op, out_dtype, acc):
    """Blocks of ``f`` along one axis (moved last for the kernel, then back)."""
    moved = np.moveaxis(x, axis, -1)
    y = _kernel(moved.reshape((-1, 1, moved.shape[-1])), 1, f, op, out_dtype, acc)
    return np.moveaxis(y.reshape(moved.shape[:-1] + (y.shape[-1],)), -1, axis)


def reduce(arr, full, op, edge, cval, out_dtype):
    """Block reduction of a NumPy array of any rank (mean, sum, min, max)."""
    x = np.asarray(arr)
    x = x.astype(native(x.dtype), copy=False)
    if out_dtype == np.float16:  # compiled code has no float16: compute in float32
        return reduce(x, full, op, edge, cval, np.dtype(np.float32)).astype(out_dtype)
    if edge == "trim":
        x = x[tuple(slice(0, (n // f) * f) for n, f in zip(x.shape, full))]
    elif edge == "pad" and any(n % f for n, f in zip(x.shape, full)):
        x = np.pad(x, [(0, (-n) % f) for n, f in zip(x.shape, full)], constant_values=cval)
    base = x.shape  # after trimming or padding: the mean's block counts follow from it
    out_shape = tuple(-(-n // f) for n, f in zip(base, full))
    if x.size == 0:
        return np.zeros(out_shape, out_dtype)
    # exact sums: int64 for integers (a mean divides once, at the end); float64 otherwise
    acc = np.zeros(1, np.float64 if x.dtype.kind == "f" or x.dtype == np.uint64 else np.int64)
    if x.dtype.kind in "biu" and x.dtype.itemsize <= 2 and math.prod(full) < 2**15:
        acc = np.zeros(1, np.int32)  # exact too, and half the width of int64 rows
    last = [d for d in (x.ndim - 2, x.ndim - 1) if d >= 0]
    others = [d for d, f in enumerate(full) if f > 1 and d not in last]
    f0 = full[-2] if x.ndim >= 2 else 1
    f1 = full[-1]
    if op in ("min", "max"):
        for d in others:
            x = _along(x, d, full[d], op, x.dtype, acc)
        return _kernel(x, f0, f1, op, out_dtype, acc)
    if not others:
        return _kernel(x, f0, f1, op, out_dtype, acc)
    for d in others:
        x = _along(x, d, full[d], "sum", acc.dtype, acc)
    sums = _kernel(x, f0, f1, "sum", acc.dtype, acc)
    if op == "sum":
        return sums.astype(out_dtype)
    counts = np.ones((1,) * len(out_shape), np.int64)
    for d, (n, f) in enumerate(zip(base, full)):
        shape = [1] * len(out_shape)
        shape[d] = out_shape[d]
        counts = counts * _counts(n, f).reshape(shape)
    return _rounded(sums / counts, out_dtype)


def _rounded(values, out_dtype):
    """Float results into ``out_dtype``: integers nearest (ties to even), saturated."""
    if out_dtype.kind == "b":
        return np.rint(values) != 0
    if out_dtype.kind in "iu":
        info = np.iinfo(out_dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(out_dtype)
    return values.astype(out_dtype)


def _counts(n, f):
    """Elements per block along an axis of n (the last block may be short)."""
    counts = np.full(-(-n // f), f, np.int64)
    if n % f:
        counts[-1] = n % f
    return counts


def median(arr, full, edge, cval, out_dtype):
    """Median per block: complete blocks by a reshape, the short edge blocks one by one."""
    x = np.asarray(arr)
    if edge == "trim":
        x = x[tuple(slice(0, (n // f) * f) for n, f in zip(x.shape, full))]
    elif edge == "pad":
        pads = [(0, (-n) % f) for n, f in zip(x.shape, full)]
        x = np.pad(x, pads, constant_values=cval)
    out_shape = tuple(-(-n // f) for n, f in zip(x.shape, full))
    result = np.empty(out_shape, np.float64)
    whole = tuple(n // f for n, f in zip(x.shape, full))
    if all(whole):
        core = x[tuple(slice(0, w * f) for w, f in zip(whole, full))]
        split = []
        for w, f in zip(whole, full):
            split += [w, f]
        blocks = core.reshape(split).astype(np.float64)
        inner = tuple(range(1, 2 * x.ndim, 2))
        result[tuple(slice(0, w) for w in whole)] = np.median(blocks, axis=inner)
    for index in np.ndindex(*out_shape):
        if all(i < w for i, w in zip(index, whole)):
            continue
        block = x[tuple(slice(i * f, (i + 1) * f) for i, f in zip(index, full))]
        result[index] = np.median(block.astype(np.float64)) if block.size else 0
    return _rounded(result, out_dtype)



@numba.njit(cache=True, nogil=True)
def _column(even, odd, q):
    """Vertical sum of column ``q`` in the even/odd split of :func:`_pyr_int`."""
    return even[q // 2 + 1] if q % 2 == 0 else odd[(q + 1) // 2]


@numba.njit(cache=True, nogil=True, parallel=True)
def _pyr_int(src, dst, rmap, cmap, proto):
    """One pyramid level of 8/16-bit integers over (B, n0, n1) into (B, m0, m1).

    Exact integer sums of the 5 x 5 binomial (at most 255 * 256 or 65535 * 256; 16 bits hold
    those of 8-bit data, signed or not), divided by 256 with ties to even. ``rmap[i]``: the
    five source rows of output row i, mapped by the mode; ``cmap``: the columns -2, -1, n1,
    n1 + 1, mapped. Per output row, one vertical pass split by column parity,
    ``even[k] = v[2k - 2]`` and ``odd[k] = v[2k - 1]`` (so the padding columns -2 and -1 come
    first), in ``proto``'s dtype (16 bits for 8-bit data: half the bytes per vector); output j
    is then ``even[j] + 6 even[j + 1] + even[j + 2] + 4 (odd[j] + odd[j + 1])``: unit-stride
    reads only, where the stride-2 taps of the plain sweep did not vectorise (1.5x faster).
    """
    nb, n0, n1 = src.shape
    m0 = dst.shape[1]
    m1 = dst.shape[2]
    half = n1 // 2
    nblk = (m0 + 15) // 16
    for t in numba.prange(nb * nblk):
        b = t // nblk
        i0 = (t - b * nblk) * 16
        even = np.empty(m1 + 2, proto.dtype)
        odd = np.empty(m1 + 1, proto.dtype)
        sums = np.empty(m1, proto.dtype)
        for i in range(i0, min(i0 + 16, m0)):
            a0 = src[b, rmap[i, 0]]
            a1 = src[b, rmap[i, 1]]
            a2 = src[b, rmap[i, 2]]
            a3 = src[b, rmap[i, 3]]
            a4 = src[b, rmap[i, 4]]
            for k in range(half):
                u = np.uint64(2 * k)
                w = u + np.uint64(1)
                even[np.uint64(k + 1)] = (np.int64(a0[u]) + np.int64(a4[u])
                                          + 4 * (np.int64(a1[u]) + np.int64(a3[u]))
                                          + 6 * np.int64(a2[u]))
                odd[np.uint64(k + 1)] = (np.int64(a0[w]) + np.int64(a4[w])
                                         + 4 * (np.int64(a1[w]) + np.int64(a3[w]))
                                         + 6 * np.int64(a2[w]))
            if n1 % 2:  # the last column, even
                c = n1 - 1
                even[half + 1] = (np.int64(a0[c]) + np.int64(a4[c])
                                  + 4 * (np.int64(a1[c]) + np.int64(a3[c])) + 6 * np.int64(a2[c]))
                odd[m1] = _column(even, odd, cmap[2])  # v[n1]
                even[m1 + 1] = _column(even, odd, cmap[3])  # v[n1 + 1]
            else:
                even[m1 + 1] = _column(even, odd, cmap[2])  # v[n1]
            even[0] = _column(even, odd, cmap[0])  # v[-2]
            odd[0] = _column(even, odd, cmap[1])  # v[-1]
            for j in range(m1):
                u = np.uint64(j)
                sums[u] = (np.int64(even[u]) + np.int64(even[u + np.uint64(2)])
                           + 4 * (np.int64(odd[u]) + np.int64(odd[u + np.uint64(1)]))
                           + 6 * np.int64(even[u + np.uint64(1)]))
            # sum / 256, ties to even: floor plus one where the remainder (and the floor's
            # parity) pass half; a separate loop over stored sums, so that it vectorises at
            # their width (numba computes in int64, which LLVM narrows only when the loaded
            # values bound every step)
            row = dst[b, i]
            for j in range(m1):
                u = np.uint64(j)
                s = sums[u]
                q = s >> 8
                row[u] = q + ((s & 255) + (q & 1) > 128)


def _pyramid_int(src, mode):
    """One level for 8/16-bit integer images and stacks (last two axes), mode not constant."""
    shape = src.shape if src.ndim >= 2 else (1,) + src.shape
    n0, n1 = shape[-2], shape[-1]
    m0, m1 = -(-n0 // 2), -(-n1 // 2)
    rmap = global_map(2 * np.arange(m0)[:, None] + np.arange(-2, 3), n0, mode)
    cmap = global_map(np.array([-2, -1, n1, n1 + 1]), n1, mode)
    src3 = src.reshape((-1, n0, n1))
    dst = _buffers.POOL.empty((src3.shape[0], m0, m1), src.dtype)
    # the sums' dtype: 256 * 255 and 256 * -128 fit in 16 bits, 256 * 65535 does not
    proto = np.zeros(0, {"u1": np.uint16, "i1": np.int16}.get(src.dtype.str[1:], np.int32))
    _pyr_int(src3, dst, np.ascontiguousarray(rmap), cmap, proto)
    return dst.reshape(shape[:-2] + (m0, m1) if src.ndim >= 2 else (m1,))


def pyramid_level(x, mode):
    """One pyramid level of ``x`` over its last two axes (``mode``: a boundary mode's name).

    None where only the generic route applies (complex data).
    """
    if x.dtype.kind not in "biuf":
        return None
    src = np.ascontiguousarray(x)
    src = src.astype(native(src.dtype), copy=False)
    code = modes.mode_code(mode)
    if src.dtype.kind in "iu" and src.dtype.itemsize <= 2 and code != modes.CONSTANT:
        return _pyramid_int(src, code)
    # images and stacks: prefilter only the kept rows and columns, in one sweep (sums of
    # dyadic weights: exact for integer data, so rounded as the generic path rounds); float32
    # sums are exact for <= 16-bit integers: every partial sum is a multiple of 1/256 below
    # 2^16, within float32's 24-bit significand
    small = src.dtype.kind in "biu" and src.dtype.itemsize <= 2
    acc = np.float32 if small or src.dtype == np.float32 else np.float64
    return sep2_pass(src, _WEIGHTS, 2, _WEIGHTS, 2, mode, 0.0, src.dtype, step=2,
                     acc=acc).astype(x.dtype, copy=False)
