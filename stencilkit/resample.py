"""Downsampling: every n-th element, block reductions and a Gaussian pyramid.

* :func:`decimate`: every ``factor``-th element per axis ("direct assignment").
* :func:`block_reduce`: one value per block of ``factor`` elements per axis: mean (the "local
  mean" downsampling of skimage.transform.downscale_local_mean), sum, min, max or median.
* :func:`pyramid_down`: a 5 x 5 binomial (Gaussian) prefilter, then every second element, as
  cv2.pyrDown, per level.

Shapes the factor does not divide: ``edge="partial"`` (the default) reduces the real elements
of the last, smaller block; ``"pad"`` fills it with ``cval`` first (skimage's behaviour);
``"trim"`` drops it. Integer input keeps its dtype for mean, median, min and max, rounded to
nearest with ties to even (the exact mean of integers is computed from int64 sums); ``sum``
returns NumPy's sum dtype (int64 or uint64 for integers). NaN propagates to its block. NumPy and
Dask arrays are accepted; on Dask, reduced axes are rechunked to multiples of the factor so that
no block straddles chunks, and the result equals the NumPy one exactly.
"""

from __future__ import annotations

import math
import operator

import numba
import numpy as np

from . import _buffers, _lines, filters, modes
from ._errors import StencilError, StencilTypeError
from .backends import is_dask_array
from .backends.cuda import is_device_array

__all__ = ["block_reduce", "decimate", "pyramid_down"]

FUNCS = ("mean", "sum", "min", "max", "median")
EDGES = ("partial", "pad", "trim")
# skimage passes NumPy functions as func: the same reductions by name
_ALIASES = {np.mean: "mean", np.sum: "sum", np.min: "min", np.max: "max", np.median: "median",
            np.amin: "min", np.amax: "max"}


def _array(a, name):
    arr = a if is_dask_array(a) or is_device_array(a) else np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise StencilTypeError(f"{name}: input must be a real numeric or bool array, got "
                               f"{arr.dtype}")
    if arr.ndim == 0:
        raise StencilError(f"{name}: input is 0-d; there is nothing to downsample")
    return arr


def _factors(factor, ndim, axes, name):
    """One positive int per axis (1 on the axes not downsampled)."""
    if axes is None:
        axes = tuple(range(ndim))
    else:
        axes = filters._axes(axes, ndim, name)
    values = filters._per_axis(factor, axes, "factor", name)
    if any(f < 1 for f in values):
        raise StencilError(f"{name}: factor must be >= 1 along every axis, got {values}")
    full = [1] * ndim
    for ax, f in zip(axes, values):
        full[ax] = f
    return tuple(full)


def decimate(a, factor, *, axes=None):
    """Every ``factor``-th element along each axis, starting with the first.

    Parameters
    ----------
    a : array_like or dask array
    factor : int or sequence of int
        Step per axis (of ``axes``).
    axes : sequence of int, optional
        The axes to decimate. Default: all.

    Returns
    -------
    ndarray or dask array
        A C-contiguous copy (NumPy) or a lazy slice (Dask), of ``ceil(n / factor)`` elements
        per axis.

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import resample
    >>> resample.decimate(np.arange(10), 3)
    array([0, 3, 6, 9])
    """
    name = "decimate"
    arr = a if is_dask_array(a) or is_device_array(a) else np.asarray(a)
    if arr.ndim == 0:
        raise StencilError(f"{name}: input is 0-d; there is nothing to downsample")
    full = _factors(factor, arr.ndim, axes, name)
    if is_device_array(arr):
        return _decimate_device(arr, full)
    sliced = arr[tuple(slice(None, None, f) for f in full)]
    return sliced if is_dask_array(sliced) else np.ascontiguousarray(sliced)


# ----------------------------------------------------------------------------- block_reduce

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
    _block2(src, dst, f0, f1, FUNCS.index(op), rounding, lo_c, hi_c, proto, int_acc,
            int_acc and proto.dtype == np.int32)
    return dst.reshape(shape[:-2] + (m0, m1) if x.ndim >= 2 else (m1,))


def _along(x, axis, f, op, out_dtype, acc):
    """Blocks of ``f`` along one axis (moved last for the kernel, then back)."""
    moved = np.moveaxis(x, axis, -1)
    y = _kernel(moved.reshape((-1, 1, moved.shape[-1])), 1, f, op, out_dtype, acc)
    return np.moveaxis(y.reshape(moved.shape[:-1] + (y.shape[-1],)), -1, axis)


def _reduce_numpy(arr, full, op, edge, cval, out_dtype):
    """Block reduction of a NumPy array of any rank (mean, sum, min, max)."""
    x = np.asarray(arr)
    x = x.astype(_lines.native(x.dtype), copy=False)
    if out_dtype == np.float16:  # compiled code has no float16: compute in float32
        return _reduce_numpy(x, full, op, edge, cval, np.dtype(np.float32)).astype(out_dtype)
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


def _median_numpy(arr, full, edge, cval, out_dtype):
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


def block_reduce(a, factor, func="mean", *, edge="partial", cval=0, axes=None):
    """One value per block of ``factor`` elements per axis (downsampling by a block function).

    Parameters
    ----------
    a : array_like or dask array
        Real numeric or bool input.
    factor : int or sequence of int
        Block size per axis (of ``axes``).
    func : {'mean', 'sum', 'min', 'max', 'median'} or the NumPy function of that name
        The reduction. Default ``'mean'``.
    edge : {'partial', 'pad', 'trim'}, optional
        Where the factor does not divide an axis: reduce the real elements of the short last
        block (default), pad it with ``cval`` (skimage's behaviour), or drop it.
    cval : scalar, optional
        The padding value for ``edge='pad'``.
    axes : sequence of int, optional
        The axes to reduce. Default: all.

    Returns
    -------
    ndarray or dask array
        ``ceil(n / factor)`` elements per axis (``floor`` with ``edge='trim'``); the input's
        dtype (integers rounded to nearest, ties to even), except ``sum``: NumPy's sum dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import resample
    >>> a = np.array([[1, 2, 3, 4, 5], [5, 6, 7, 8, 9]], np.uint8)
    >>> resample.block_reduce(a, 2)
    array([[4, 6, 7]], dtype=uint8)
    >>> resample.block_reduce(a, 2, edge="pad")
    array([[4, 6, 4]], dtype=uint8)
    >>> resample.block_reduce(a, (1, 2), func="max", edge="trim")
    array([[2, 4],
           [6, 8]], dtype=uint8)
    """
    name = "block_reduce"
    arr = _array(a, name)
    full = _factors(factor, arr.ndim, axes, name)
    op = _ALIASES.get(func, func) if callable(func) else func
    if op not in FUNCS:
        raise StencilError(f"{name}: unknown func {func!r}; use one of {', '.join(FUNCS)}")
    if edge not in EDGES:
        raise StencilError(f"{name}: unknown edge {edge!r}; use one of {', '.join(EDGES)}")
    if np.ndim(cval) != 0 or isinstance(cval, (complex, np.complexfloating)):
        raise StencilTypeError(f"{name}: cval must be a real scalar, got {cval!r}")
    if edge != "pad" and cval != 0:
        raise StencilError(f"{name}: cval={cval!r} is only used with edge='pad'")
    if edge == "trim" and any(n < f for n, f in zip(arr.shape, full)):
        raise StencilError(f"{name}: factor {full} is larger than the array {arr.shape} along "
                           "an axis, so edge='trim' leaves nothing; use edge='partial'")
    dtype = arr.dtype.newbyteorder("=")
    if op == "sum":
        out_dtype = np.zeros(1, dtype).sum().dtype if dtype.kind != "b" else np.dtype(np.int64)
    else:
        out_dtype = dtype
    if is_dask_array(arr):
        return _block_reduce_dask(arr, full, op, edge, cval, out_dtype)
    if is_device_array(arr):
        return _reduce_device(arr, full, op, edge, cval, out_dtype)
    if op == "median":
        return _median_numpy(arr, full, edge, cval, out_dtype)
    return _reduce_numpy(arr, full, op, edge, cval, out_dtype)


def _block_reduce_dask(arr, full, op, edge, cval, out_dtype):
    import dask.array as da

    if edge == "trim":
        arr = arr[tuple(slice(0, (n // f) * f) for n, f in zip(arr.shape, full))]
    chunks = []
    for n, f, c in zip(arr.shape, full, arr.chunks):
        if f == 1:
            chunks.append(c)
            continue
        size = max(f, (max(c) // f) * f)  # chunks of whole blocks, near the original size
        chunks.append(tuple([size] * (n // size) + ([n % size] if n % size else [])) or (0,))
    arr = arr.rechunk(tuple(chunks))
    out_chunks = tuple(tuple(-(-c // f) for c in cs) for cs, f in zip(arr.chunks, full))

    def block(x):
        if is_device_array(x):  # CuPy chunks
            return _reduce_device(x, full, op, edge, cval, out_dtype)
        if op == "median":
            return _median_numpy(x, full, edge, cval, out_dtype)
        return _reduce_numpy(x, full, op, edge, cval, out_dtype)

    return da.map_blocks(block, arr, chunks=out_chunks, dtype=out_dtype,
                         meta=np.empty_like(arr._meta, shape=(0,) * arr.ndim, dtype=out_dtype))


# ----------------------------------------------------------------------------- pyramid_down

_BINOMIAL = np.array([1, 4, 6, 4, 1])


def pyramid_down(a, levels=1, *, axes=None, mode="mirror"):
    """Halve ``levels`` times, as cv2.pyrDown: prefilter, then every second element.

    The prefilter is the 5-tap binomial ``[1, 4, 6, 4, 1] / 16`` along each axis (cv2's
    border, BORDER_REFLECT_101, is ``mode='mirror'``).

    Integer results are the exact filtered value rounded to nearest, ties to even (cv2 rounds
    ties up, so a tie can differ by one). Float results of NumPy and Dask input agree to
    round-off (the NumPy path filters only the rows and columns it keeps).

    Parameters
    ----------
    a : array_like or dask array
    levels : int, optional
        Number of halvings. Default 1.
    axes : sequence of int, optional
        Axes to halve. Default: the last two (images and stacks of images); all for 1-D.
    mode : {'mirror', 'reflect', 'nearest', 'wrap', 'constant'}, optional
        Boundary mode of the prefilter, as for :func:`stencilkit.filters.correlate` (the
        constant is 0). Default ``'mirror'``.

    Returns
    -------
    list of ndarray or dask array
        The ``levels`` downsampled arrays, each ``ceil(n / 2)`` of the previous per axis.

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import resample
    >>> resample.pyramid_down(np.arange(8, dtype=np.float32), 1)[0]
    array([0.75 , 2.   , 4.   , 5.875], dtype=float32)
    """
    name = "pyramid_down"
    arr = _array(a, name)
    try:
        levels = operator.index(levels)
    except TypeError:
        raise StencilTypeError(f"{name}: levels must be an int, got {levels!r}") from None
    if levels < 1:
        raise StencilError(f"{name}: levels must be >= 1, got {levels}")
    if axes is None:
        axes = tuple(range(max(0, arr.ndim - 2), arr.ndim))
    axes = filters._axes(axes, arr.ndim, name)
    weights = _BINOMIAL
    for _ in range(len(axes) - 1):
        weights = np.multiply.outer(weights, _BINOMIAL)
    divisor = 16 ** len(axes)
    out = []
    x = arr
    for level in range(levels):
        short = [ax for ax in axes if x.shape[ax] <= 1]
        if short:
            raise StencilError(f"{name}: axis {short[0]} has length {x.shape[short[0]]} after "
                               f"{level} levels, nothing left to halve; use fewer levels")
        if (not is_dask_array(x) and not is_device_array(x) and axes == (x.ndim - 2, x.ndim - 1)
                and x.dtype.kind in "biuf"):
            # images and stacks: prefilter only the kept rows and columns, in one sweep (sums of
            # dyadic weights: exact for integer data, so rounded as the generic path rounds)
            w = _BINOMIAL / 16.0
            src = np.ascontiguousarray(x)
            src = src.astype(_lines.native(src.dtype), copy=False)
            code = modes.mode_code(filters._mode(mode, name))
            if src.dtype.kind in "iu" and src.dtype.itemsize <= 2 and code != modes.CONSTANT:
                x = _pyramid_int(src, code)
                out.append(x)
                continue
            # float32 sums are exact for <= 16-bit integers: every partial sum is a multiple
            # of 1/256 below 2^16, within float32's 24-bit significand
            small = src.dtype.kind in "biu" and src.dtype.itemsize <= 2
            acc = np.float32 if small or src.dtype == np.float32 else np.float64
            x = _lines.sep2_pass(src, w, 2, w, 2, filters._mode(mode, name), 0.0,
                                 src.dtype, step=2, acc=acc).astype(x.dtype, copy=False)
        else:
            y = _binomial(x, weights, axes, mode, divisor)
            x = decimate(y, 2, axes=axes)
        out.append(x)
    return out


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
    from ._regions import global_map

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


def _binomial(x, weights, axes, mode, divisor):
    """The prefilter: exact integer sums divided once (integers), float64 sums (floats)."""
    mode = filters._mode(mode, "pyramid_down")
    taps = [(offs, w) for offs, w in
            ((o, weights[idx]) for o, idx in filters._taps(np.ones(weights.shape, bool),
                                                           (0,) * len(axes), axes, x.ndim))]
    return filters._linear(x, taps, mode, 0.0, None, x.dtype.newbyteorder("="),
                           x.dtype.kind in "biu", divisor=divisor)



# ------------------------------------------------------------------------- the CUDA backend
# Device arrays: the kernels of stencilkit._cuda_blocks, one launch per reduced axis.

def _cuda_kernels():
    """The block kernels (importing numba.cuda on first use)."""
    from . import _cuda_blocks

    return (_cuda_blocks.take_axis, _cuda_blocks.reduce_axis, _cuda_blocks.finish_mean,
            _cuda_blocks.median2)


def _cuda_blocks_max():
    from ._cuda_blocks import MEDIAN_BLOCK_MAX

    return MEDIAN_BLOCK_MAX


def _launch(kernel, n, *args):
    from .backends import cuda as cuda_backend

    threads = 8 if cuda_backend.simulated() else 256
    blocks = 2 if cuda_backend.simulated() else max(1, min(65535 * 32, -(-n // threads)))
    if n:
        kernel[blocks, threads](*args)


def _device_axis(x, axis, m, kernel, args, out_dtype, like):
    """Launch ``kernel(src, dst, *args)`` along ``axis`` of the contiguous device array ``x``.

    ``x`` is seen as (outer, n, inner), the result made as (outer, m, inner) and returned with
    the axes of ``x``.
    """
    from .backends import cuda as cuda_backend

    shape = tuple(x.shape)
    outer, n, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    dst = cuda_backend.empty((outer, m, inner), out_dtype, like)
    _launch(kernel, outer * m * inner, x.reshape((outer, n, inner)), dst, *args)
    return dst.reshape(shape[:axis] + (m,) + shape[axis + 1:])


def _contiguous_device(a, dtype):
    from .backends import cuda as cuda_backend

    return cuda_backend.work(a, (), False, tuple(a.shape), np.dtype(dtype), a)


def _decimate_device(arr, full):
    take_axis = _cuda_kernels()[0]
    x = _contiguous_device(arr, arr.dtype)
    for axis, f in enumerate(full):
        if f > 1:
            x = _device_axis(x, axis, -(-x.shape[axis] // f), take_axis, (f,), x.dtype, arr)
    return x


def _rounding_bounds(out_dtype):
    if out_dtype.kind == "b":
        return True, 0.0, 1.0
    if out_dtype.kind in "iu":
        info = np.iinfo(out_dtype)
        return True, float(info.min), float(info.max)
    return False, 0.0, 0.0


def _reduce_device(arr, full, op, edge, cval, out_dtype):
    """block_reduce on a device array (see the section comment)."""
    from .backends import cuda as cuda_backend

    _, reduce_axis, finish_mean, median2 = _cuda_kernels()
    native = np.dtype(_lines.native(arr.dtype))
    x = _contiguous_device(arr, native)
    work_out = np.dtype(_lines.native(out_dtype))
    pad = edge == "pad"
    trim = edge == "trim"
    out_shape = tuple(n // f if trim else -(-n // f) for n, f in zip(x.shape, full))
    if math.prod(out_shape) == 0:
        return cuda_backend.zeros(out_shape, out_dtype, arr)
    if op == "median":
        lead = [f for f in full[:-2]]
        f0, f1 = (full[-2], full[-1]) if x.ndim >= 2 else (1, full[-1])
        if any(f != 1 for f in lead) or f0 * f1 > _cuda_blocks_max():
            raise StencilError(
                f"block_reduce: the GPU median takes blocks over the last two axes of at most "
                f"{_cuda_blocks_max()} elements (factor {full}); copy the array to the host")
        shape = tuple(x.shape)
        n0, n1 = (shape[-2], shape[-1]) if x.ndim >= 2 else (1, shape[-1])
        m0, m1 = (out_shape[-2], out_shape[-1]) if x.ndim >= 2 else (1, out_shape[-1])
        # (trimmed: the output's blocks are all whole, and never read the dropped edge)
        dst = cuda_backend.empty((math.prod(out_shape) // (m0 * m1), m0, m1), work_out, arr)
        rounding, lo, hi = _rounding_bounds(out_dtype)
        _launch(median2, math.prod(dst.shape), x.reshape((-1, n0, n1)), dst, f0, f1, pad,
                np.float64(native.type(cval)), rounding, lo, hi)
        return _device_result(dst.reshape(out_shape), out_dtype, arr)
    if op in ("min", "max"):
        acc = native
    elif op == "sum" and out_dtype.kind in "iu":
        acc = out_dtype  # int64 / uint64: exact (modulo 2^64, as NumPy's sum)
    elif native.kind == "f" or native == np.uint64:
        acc = np.dtype(np.float64)
    else:
        acc = np.dtype(np.int64)
    code = {"sum": 0, "mean": 0, "min": 1, "max": 2}[op]
    cv = acc.type(native.type(cval))  # padding holds cval in the input's dtype, as np.pad
    for axis, (m, f) in enumerate(zip(out_shape, full)):
        if f > 1:
            x = _device_axis(x, axis, m, reduce_axis, (f, code, pad, cv, acc.type(0)), acc,
                             arr)
            if code == 0:  # padding seen by the next axis: a sum of f cvals along this one
                cv = acc.type(cv * f)
    if op == "mean":
        counts = np.ones((1,) * len(out_shape), np.float64)
        for d, (n, f) in enumerate(zip(arr.shape, full)):
            shape = [1] * len(out_shape)
            shape[d] = out_shape[d]
            per_axis = np.full(out_shape[d], f, np.float64)
            if not pad and not trim and n % f:
                per_axis[-1] = n % f
            counts = counts * per_axis.reshape(shape)
        counts = cuda_backend.work(np.broadcast_to(counts, out_shape), (), False,
                                   (math.prod(out_shape),), np.dtype(np.float64), arr)
        dst = cuda_backend.empty((math.prod(out_shape),), work_out, arr)
        rounding, lo, hi = _rounding_bounds(out_dtype)
        _launch(finish_mean, math.prod(out_shape), x.reshape((-1,)), counts, dst, rounding,
                lo, hi)
        return _device_result(dst.reshape(out_shape), out_dtype, arr)
    return _device_result(x, out_dtype, arr)


def _device_result(x, out_dtype, like):
    from .backends import cuda as cuda_backend

    if np.dtype(x.dtype) == out_dtype:
        return x
    return cuda_backend.result(x, (), tuple(x.shape), (), False, out_dtype, like)
