"""Filters' line passes on the device (numba.cuda): the box, and medians of large windows.

Imported on first use by :meth:`stencilkit.backends.cuda.CudaBackend.run_passes`; passes that
have no kernel here run as generated stencils (:meth:`stencilkit._passes.Passes.as_stencils`).
These are the numba.cuda fallback's (no CuPy, or ``STENCILKIT_CUDA_CPP=0``); the generated C++
path has faster ones (``cuda_box``, ``cuda_rank``).

:func:`run_rank` is the ``Rank`` pass (a median, rank or percentile filter of more than
``MEDIAN_MAX`` elements):
a thread per output gathers its window through the mode's index map, in the footprint's C
order, into its local memory (up to ``cuda_rank.SELECT_BYTES``), and selects with the CPU's own
quickselect (``cpu_lines.rank._select``, compiled as a device function): the same element as
the CPU, bit for bit, a NaN winning.

:func:`box2` is the exact integer box (``uniform_filter`` of integer data into an integer
output) at a cost that does not grow with the window's height and grows with its width only in
shared-memory reads: a block of threads owns a tile of output columns and walks a strip of rows.
Each thread keeps the running sums down the columns it owns (its own, and its share of the
tile's halo: add the row entering the window, subtract the row leaving it, two global reads per
column and row), writes them to shared memory, and sums ``lo1 + hi1 + 1`` neighbouring column
sums from there. Sums are exact (int64) and rounded once (nearest, ties to even) and saturated,
so results equal the CPU's line kernels bit for bit. Rows and columns past the edges go through
the same index map as every generated stencil (``_sk_map``); ``constant`` reads ``cval``.
"""

import math

import numba
import numpy as np
from numba import cuda

from .. import _dtypes, modes
from . import cuda as cuda_backend
from .cpu_lines.rank import _select
from .cuda_replay import spoil

# the tile: columns per block (threads), rows per strip, and the widest window it takes
TILE = 128
ROWS = 64
HALO_MAX = 256
SHARED = 384  # TILE + HALO_MAX: column sums in shared memory (a constant, as numba wants)
OWNED = 8  # running sums per thread at most (columns t, t + TILE, ...)

_sk_njit = cuda.jit(device=True)
exec(compile(modes.MAP_SOURCE, __file__, "exec"))  # _sk_map, as a device function
_map = globals()["_sk_map"]


@cuda.jit(device=True)
def _read(src, b, r, c, n0, n1, mode, cval):
    """``src[b, r, c]`` through the mode's index map (cval outside, for ``constant``)."""
    rr = _map(r, n0, mode)
    cc = _map(c, n1, mode)
    if rr < 0 or cc < 0:
        return cval
    return np.int64(src[b, rr, cc])


@cuda.jit(device=True)
def div_even(s, divisor, fdiv, half, even):
    """The integer nearest ``s / divisor``, ties to even (``s``, ``divisor`` > 0: integers).

    Without 64-bit integer division (slow on a GPU): the float64 quotient of two integers below
    2**53 is correctly rounded, and a non-integer quotient lies at least ``1 / divisor`` from an
    integer, far more than its rounding error, so ``floor`` of it is exact.
    """
    num = s + half
    v = np.int64(math.floor(np.float64(num) / fdiv))
    if even and num - v * divisor == 0 and (v & 1) != 0:
        v -= 1
    return v


@cuda.jit
def box2(src, dst, lo0, hi0, lo1, hi1, mode, cval, divisor, clip_lo, clip_hi, rows):
    """The exact box mean over the last two axes of (B, n0, n1) (see the module docstring)."""
    n0 = np.int64(src.shape[1])
    n1 = np.int64(src.shape[2])
    width = np.int64(cuda.blockDim.x)
    t = np.int64(cuda.threadIdx.x)
    c0 = np.int64(cuda.blockIdx.x) * width  # the tile's first output column
    span = width + lo1 + hi1  # column sums the tile needs
    sums = cuda.shared.array(SHARED, np.int64)
    mine = cuda.local.array(OWNED, np.int64)  # this thread's running sums: t, t + width, ...
    owned = (span - t + width - 1) // width
    half = divisor // 2
    fdiv = np.float64(divisor)
    even = divisor % 2 == 0
    for b in range(np.int64(cuda.blockIdx.z), np.int64(src.shape[0]), np.int64(cuda.gridDim.z)):
        for r0 in range(np.int64(cuda.blockIdx.y) * rows, n0, np.int64(cuda.gridDim.y) * rows):
            r1 = min(r0 + rows, n0)
            for q in range(owned):
                c = c0 - lo1 + t + q * width
                s = np.int64(0)
                for r in range(r0 - lo0, r0 + hi0 + 1):
                    s += _read(src, b, r, c, n0, n1, mode, cval)
                mine[q] = s
            for i in range(r0, r1):
                for q in range(owned):
                    sums[t + q * width] = mine[q]
                cuda.syncthreads()
                j = c0 + t
                if j < n1:
                    s = np.int64(0)
                    for k in range(lo1 + hi1 + 1):
                        s += sums[t + k]
                    v = div_even(s, divisor, fdiv, half, even)
                    dst[b, i, j] = min(max(v, clip_lo), clip_hi)
                cuda.syncthreads()
                if i + 1 < r1:
                    for q in range(owned):
                        c = c0 - lo1 + t + q * width
                        mine[q] += (_read(src, b, i + hi0 + 1, c, n0, n1, mode, cval)
                                    - _read(src, b, i - lo0, c, n0, n1, mode, cval))


def _geometry():
    """(threads per block, rows per strip); few threads under the simulator."""
    return (8, 3) if cuda_backend.simulated() else (TILE, ROWS)


def box2_fits(p, dtype) -> bool:
    """Whether :func:`box2` runs the pass ``p`` (a ``Box2``) on data of ``dtype``.

    Integer data into an integer result (the exact box), a halo that fits the shared tile and
    at most eight running sums per thread.
    """
    width = _geometry()[0]
    dtype = np.dtype(dtype)
    return (p.clip is not None and dtype.kind in "biu" and dtype.itemsize < 8
            and p.lo1 + p.hi1 <= min(HALO_MAX, (OWNED - 1) * width))


def run_box2(x, p, mode, cval):
    """The ``Box2`` pass ``p`` over the last two axes of the device array ``x``.

    Returns a new device array of ``p.dtype``.
    """
    shape = tuple(x.shape)
    n0, n1 = shape[-2], shape[-1]
    nb = int(np.prod(shape[:-2], dtype=np.int64))
    src = cuda_backend.work(x, (), False, (nb, n0, n1), np.dtype(x.dtype), x)
    dst = cuda_backend.empty((nb, n0, n1), p.dtype, x)
    if nb * n0 * n1:
        width, rows = _geometry()
        grid = (-(-n1 // width), min(-(-n0 // rows), 65535), min(nb, 65535))
        if cuda_backend.simulated():
            grid = (grid[0], min(grid[1], 2), min(grid[2], 2))
        cval = int(cval) if mode == "constant" else 0  # (ignored otherwise: maybe NaN)
        spoil()
        box2[grid, (width, 1, 1)](src, dst, p.lo0, p.hi0, p.lo1, p.hi1,
                                  modes.mode_code(mode), np.int64(cval),
                                  np.int64(p.divisor), np.int64(max(p.clip[0], -2**63)),
                                  np.int64(min(p.clip[1], 2**63 - 1)), np.int64(rows))
    return dst.reshape(shape)


_select_device = cuda.jit(device=True)(_select.py_func)  # (the CPU's, not a second copy)
MAX_AXES = 8  # core axes a window may span
_RANK_KERNELS: dict = {}


def _rank_kernel(n, dtype):
    """The selection kernel for windows of ``n`` elements of ``dtype`` (compiled on first use).

    Arguments: the flat source and destination ``(B * prod(core),)``, ``offsets`` ``(n, k)``
    (each window element's offset along the k core axes), ``core`` ``(k,)`` sizes, the rank,
    the mode code and ``cval`` (of ``dtype``).
    """
    key = (n, np.dtype(dtype).str)
    kernel = _RANK_KERNELS.get(key)
    if kernel is not None:
        return kernel
    item = numba.from_dtype(np.dtype(dtype))

    @cuda.jit
    def select(src, dst, offsets, core, rank, mode, cval):
        buf = cuda.local.array(n, item)
        idx = cuda.local.array(MAX_AXES, np.int64)
        k = core.shape[0]
        plane = np.int64(1)
        for d in range(k):
            plane *= core[d]
        q = np.int64(cuda.grid(1))
        stride = np.int64(cuda.gridsize(1))
        while q < dst.shape[0]:
            rem = q
            for d in range(k - 1, -1, -1):
                idx[d] = rem % core[d]
                rem //= core[d]
            base = rem * plane
            for e in range(n):
                flat = np.int64(0)
                inside = True
                for d in range(k):
                    m = _map(idx[d] + offsets[e, d], core[d], mode)
                    if m < 0:
                        inside = False
                    flat = flat * core[d] + m
                buf[e] = src[base + flat] if inside else cval
            dst[q] = _select_device(buf, n, rank)
            q += stride

    _dtypes.remember(_RANK_KERNELS, key, select, 64)
    return select


def _first_axis(fp) -> int:
    """The first axis a footprint spans (its last where it spans none)."""
    return next((d for d in range(fp.ndim) if fp.shape[d] > 1), fp.ndim - 1)


def rank_fits(p, dtype) -> bool:
    """Whether :func:`run_rank` takes the ``Rank`` pass ``p`` on ``dtype`` data."""
    from .cuda_rank import SELECT_BYTES

    dtype = np.dtype(dtype)
    fp = np.array(p.footprint, bool)
    return (dtype.kind in "biuf" and fp.ndim - _first_axis(fp) <= MAX_AXES
            and p.size * _dtypes.work_dtype(dtype).itemsize <= SELECT_BYTES)


def run_rank(x, p, mode, cval, out=None, out_dtype=None):
    """The ``Rank`` pass ``p`` over the device array ``x`` (into ``out``).

    None where :func:`rank_fits` says no (the caller then raises the generated stencils'
    error, which names the limits).
    """
    dtype = np.dtype(x.dtype)
    out_dtype = np.dtype(out_dtype or dtype)
    if not rank_fits(p, dtype):
        return None
    work = np.dtype(np.uint8) if dtype.kind == "b" else _dtypes.work_dtype(dtype)
    shape = tuple(x.shape)
    fp = np.array(p.footprint, bool)
    first = _first_axis(fp)
    core = shape[first:]
    total = math.prod(shape)
    src = cuda_backend.work(x, (), False, (total,), work, x)
    dst = cuda_backend.empty((total,), work, x)
    if total:
        offsets = np.array([[int(i[d]) - p.lo[d] for d in range(first, fp.ndim)]
                            for i in zip(*np.nonzero(fp))], np.int64)
        fill = np.asarray(cval).astype(dtype if dtype.kind == "b" else work).astype(work)[()] \
            if mode == "constant" else work.type(0)  # (the CPU's conversion; else unused)
        block = 8 if cuda_backend.simulated() else 128
        grid = min(-(-total // block), 4 if cuda_backend.simulated() else 1 << 16)
        kernel = _rank_kernel(len(offsets), work)
        spoil()
        kernel[grid, block](src, dst, cuda_backend.cuda().to_device(offsets),
                            cuda_backend.cuda().to_device(np.array(core, np.int64)),
                            np.int64(p.rank), np.int64(modes.mode_code(mode)), fill)
    return cuda_backend.deliver(dst.reshape(shape), out, out_dtype)
