"""Resampling on the device: the block kernels of ``block_reduce`` and ``decimate`` (numba.cuda).

Imported on first use (by :class:`stencilkit.backends.cuda.CudaBackend`), so numba.cuda is
loaded only then.

Device arrays (CuPy, numba's, the simulator's) are reduced one axis at a time: a C-contiguous
array seen as (outer, n, inner) is reduced along its middle axis by one launch, which covers
every rank and leaves a contiguous result for the next axis. Sums accumulate in the CPU
kernel's types and order (axis by axis, each block from its first element, cval padding after
the real elements) and a mean divides the total once in float64, so results equal the CPU's
bit for bit. The median gathers each block (over the last two axes) into a local array.

Every kernel is a 1-D grid-stride loop with 64-bit indices (any size, any grid). Defined at
module level: the CUDA simulator finds ``cuda`` among a kernel's globals.
"""

import math

import numpy as np
from numba import cuda

from .._casts import store_cast, widen
from .._dtypes import work_dtype
from .._errors import StencilError
from . import cuda as cuda_backend

MEDIAN_BLOCK_MAX = 64
"""Largest median block on the GPU (elements per block, held in each thread's local memory)."""


@cuda.jit(device=True)
def grid_stride():
    """(first, step) of this thread's grid-stride loop, in 64 bits.

    blockIdx * blockDim in 32 bits overflows past 2**31 threads (numba #9229).
    """
    start = np.int64(cuda.blockIdx.x) * cuda.blockDim.x + cuda.threadIdx.x
    return start, np.int64(cuda.gridDim.x) * cuda.blockDim.x


@cuda.jit(device=True)
def split(t, m, inner):
    """Flat index of an (outer, m, inner) array -> (o, i, k)."""
    q = t // inner
    o = q // m
    return o, q - o * m, t - q * inner


@cuda.jit(device=True)
def rint_clip(v, lo, hi):
    """Nearest integer, ties to even, clipped: float64 arithmetic only (no int64 overflow)."""
    f = v - v % 1.0
    d = v - f
    r = f + 1.0 if d > 0.5 or (d == 0.5 and f % 2.0 != 0.0) else f
    return min(max(r, lo), hi)


@cuda.jit
def take_axis(src, dst, f):
    """Set ``dst[o, i, k] = src[o, i * f, k]``: decimation along the middle axis."""
    m = np.int64(dst.shape[1])
    inner = np.int64(dst.shape[2])
    total = np.int64(dst.shape[0]) * m * inner
    start, step = grid_stride()
    for t in range(start, total, step):
        o, i, k = split(t, m, inner)
        dst[o, i, k] = src[o, i * f, k]


@cuda.jit
def reduce_axis(src, dst, f, op, pad, cval, acc):
    """Blocks of ``f`` along the middle axis (op 0 sum, 1 min, 2 max) in ``acc``'s type.

    A short last block reduces its real elements, or (``pad``) those followed by ``cval``
    up to ``f`` elements.
    """
    n = np.int64(src.shape[1])
    m = np.int64(dst.shape[1])
    inner = np.int64(dst.shape[2])
    total = np.int64(dst.shape[0]) * m * inner
    start, step = grid_stride()
    for t in range(start, total, step):
        o, i, k = split(t, m, inner)
        r0 = i * f
        stop = r0 + f if pad else min(r0 + f, n)
        s = widen(src[o, r0, k], acc)
        for r in range(r0 + 1, stop):
            x = widen(src[o, r, k], acc) if r < n else cval
            if op == 0:
                s += x
            elif op == 1:
                s = s if s <= x or s != s else x
            else:
                s = s if s >= x or s != s else x
        dst[o, i, k] = s


@cuda.jit
def finish_mean(sums, counts, dst, rounding, lo, hi):
    """Set ``dst = sums / counts`` (flat arrays), rounded and clipped for integer output."""
    start, step = grid_stride()
    for t in range(start, np.int64(dst.shape[0]), step):
        v = np.float64(sums[t]) / np.float64(counts[t])
        dst[t] = store_cast(rint_clip(v, lo, hi) if rounding else v, dst)


@cuda.jit
def median2(src, dst, f0, f1, pad, cval, rounding, lo, hi):
    """The median of each f0 x f1 block of (B, n0, n1), as np.median of float64 values."""
    n0 = np.int64(src.shape[1])
    n1 = np.int64(src.shape[2])
    m0 = np.int64(dst.shape[1])
    m1 = np.int64(dst.shape[2])
    total = np.int64(dst.shape[0]) * m0 * m1
    vals = cuda.local.array(MEDIAN_BLOCK_MAX, np.float64)
    start, step = grid_stride()
    for t in range(start, total, step):
        b, i, j = split(t, m0, m1)
        count = 0
        nan = False
        for r in range(i * f0, i * f0 + f0):
            for c in range(j * f1, j * f1 + f1):
                if r < n0 and c < n1:
                    v = np.float64(src[b, r, c])
                elif pad:
                    v = np.float64(cval)
                else:
                    continue
                nan = nan or v != v
                # insertion into the sorted prefix
                p = count
                while p > 0 and vals[p - 1] > v:
                    vals[p] = vals[p - 1]
                    p -= 1
                vals[p] = v
                count += 1
        h = count // 2
        med = vals[h] if count % 2 else (vals[h - 1] + vals[h]) / 2.0
        if nan:
            med = np.float64(np.nan)
        dst[b, i, j] = store_cast(rint_clip(med, lo, hi) if rounding else med, dst)


# -- the launches ------------------------------------------------------------------------------

def _launch(kernel, n, *args):
    threads = 8 if cuda_backend.simulated() else 256
    blocks = 2 if cuda_backend.simulated() else max(1, min(65535 * 32, -(-n // threads)))
    if n:
        kernel[blocks, threads](*args)


def _device_axis(x, axis, m, kernel, args, out_dtype, like):
    """Launch ``kernel(src, dst, *args)`` along ``axis`` of the contiguous device array ``x``.

    ``x`` is seen as (outer, n, inner), the result made as (outer, m, inner) and returned with
    the axes of ``x``.
    """
    shape = tuple(x.shape)
    outer, n, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    dst = cuda_backend.empty((outer, m, inner), out_dtype, like)
    _launch(kernel, outer * m * inner, x.reshape((outer, n, inner)), dst, *args)
    return dst.reshape(shape[:axis] + (m,) + shape[axis + 1:])


def _contiguous_device(a, dtype):
    return cuda_backend.work(a, (), False, tuple(a.shape), np.dtype(dtype), a)


def decimate(arr, full):
    """``decimate`` on a device array: one launch per decimated axis."""
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


def reduce(arr, full, op, edge, cval, out_dtype):
    """``block_reduce`` on a device array: one launch per reduced axis (module docstring)."""
    native = np.dtype(work_dtype(arr.dtype))
    x = _contiguous_device(arr, native)
    work_out = np.dtype(work_dtype(out_dtype))
    pad = edge == "pad"
    trim = edge == "trim"
    out_shape = tuple(n // f if trim else -(-n // f) for n, f in zip(x.shape, full))
    if math.prod(out_shape) == 0:
        return cuda_backend.zeros(out_shape, out_dtype, arr)
    if op == "median":
        lead = [f for f in full[:-2]]
        f0, f1 = (full[-2], full[-1]) if x.ndim >= 2 else (1, full[-1])
        if any(f != 1 for f in lead) or f0 * f1 > MEDIAN_BLOCK_MAX:
            raise StencilError(
                f"block_reduce: the GPU median takes blocks over the last two axes of at most "
                f"{MEDIAN_BLOCK_MAX} elements (factor {full}); copy the array to the host")
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
    if np.dtype(x.dtype) == out_dtype:
        return x
    return cuda_backend.result(x, (), tuple(x.shape), (), False, out_dtype, like)
