"""The CUDA kernels of stencilkit.resample's block operations (numba.cuda, imported lazily).

Device arrays (CuPy, numba's, the simulator's) are reduced one axis at a time: a C-contiguous
array seen as (outer, n, inner) is reduced along its middle axis by one launch, which covers
every rank and leaves a contiguous result for the next axis. Sums accumulate in the CPU
kernel's types and order (axis by axis, each block from its first element, cval padding after
the real elements) and a mean divides the total once in float64, so results equal the CPU's
bit for bit. The median gathers each block (over the last two axes) into a local array.

Every kernel is a 1-D grid-stride loop with 64-bit indices (any size, any grid). Defined at
module level: the CUDA simulator finds ``cuda`` among a kernel's globals.
"""

import numpy as np
from numba import cuda

from ._casts import store_cast, widen

MEDIAN_BLOCK_MAX = 64
"""Largest median block on the GPU (elements per block, held in each thread's local memory)."""


@cuda.jit(device=True)
def grid_stride():
    # 64-bit: blockIdx * blockDim in 32 bits overflows past 2**31 threads (numba #9229)
    start = np.int64(cuda.blockIdx.x) * cuda.blockDim.x + cuda.threadIdx.x
    return start, np.int64(cuda.gridDim.x) * cuda.blockDim.x


@cuda.jit(device=True)
def split(t, m, inner):
    # flat index of an (outer, m, inner) array -> (o, i, k)
    q = t // inner
    o = q // m
    return o, q - o * m, t - q * inner


@cuda.jit(device=True)
def rint_clip(v, lo, hi):
    # nearest integer, ties to even, in float64 arithmetic only (no int64 overflow at 2^63)
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
