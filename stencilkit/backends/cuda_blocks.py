"""Resampling on the device: the block kernels of ``block_reduce`` and ``decimate`` (numba.cuda).

Imported on first use (by :class:`stencilkit.backends.cuda.CudaBackend`), so numba.cuda is
loaded only then.

Images and stacks (only the last two axes reduced) take one launch of :func:`reduce2` (or
:func:`take2` for ``decimate``): a thread per output, each input element read once, the sums in
the CPU kernel's types and order (each column of a block down its rows, then the columns left
to right; cval padding after the real elements, as ``np.pad`` puts it), a mean divided once in
float64, so results equal the CPU's bit for bit. Factors along other axes take one launch of
the generated C++ kernel where CuPy is at hand (:mod:`.cuda_resample`), else one launch per
reduced axis: a C-contiguous array seen as (outer, n, inner) is reduced along its middle axis,
which covers every rank, and :func:`finish_mean` divides. The median gathers each block into a
thread's buffer (C++: any axes, 256 elements; numba.cuda: the last two axes, 64).

The per-axis kernels are 1-D grid-stride loops, the last-two-axes ones 2-D grids striding over
rows and planes; indices are 64-bit (any size, any grid). Defined at
module level: the CUDA simulator finds ``cuda`` among a kernel's globals.
"""

import math

import numpy as np
from numba import cuda

from .._casts import store_cast, widen
from .._dtypes import work_dtype
from .._errors import StencilError
from . import cuda as cuda_backend
from . import cuda_replay, cuda_resample
from .cuda_lines import div_even
from .cuda_replay import spoil

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


@cuda.jit(device=True)
def _combine(s, x, op):
    """Sum (op 0), minimum (1) or maximum (2) of two values; NaN wins, as on the CPU."""
    if op == 0:
        return s + x
    if op == 1:
        return s if s <= x or s != s else x
    return s if s >= x or s != s else x


@cuda.jit(device=True)
def _column(src, b, r0, rstop, c, n0, n1, op, cval, acc):
    """Rows ``r0 .. rstop - 1`` of column ``c`` combined in order (cval past the edges)."""
    s = widen(src[b, r0, c], acc) if c < n1 else cval
    for r in range(r0 + 1, rstop):
        x = widen(src[b, r, c], acc) if r < n0 and c < n1 else cval
        s = _combine(s, x, op)
    return s


@cuda.jit
def reduce2(src, dst, f0, f1, op, mean, pad, cval, acc, rounding, lo, hi, exact):
    """Blocks of f0 x f1 over the last two axes of (B, n0, n1), one output per thread.

    Each input element is read once. The order is the CPU kernel's (each column of a block
    down its rows, then the columns left to right), so float sums and NaN rules agree bit for
    bit; ``mean`` divides the sum by the block's count in float64 (rounded and clipped for
    integer output); ``pad`` extends short blocks with ``cval`` (in ``acc``'s type) as
    ``np.pad`` would. Threads: x over output columns, y over output rows (strided), z over B.
    """
    n0 = np.int64(src.shape[1])
    n1 = np.int64(src.shape[2])
    m0 = np.int64(dst.shape[1])
    m1 = np.int64(dst.shape[2])
    j = np.int64(cuda.blockIdx.x) * cuda.blockDim.x + cuda.threadIdx.x
    if j >= m1:
        return
    c0 = j * f1
    cstop = c0 + f1 if pad else min(c0 + f1, n1)
    i0 = np.int64(cuda.blockIdx.y) * cuda.blockDim.y + cuda.threadIdx.y
    istep = np.int64(cuda.gridDim.y) * cuda.blockDim.y
    for b in range(np.int64(cuda.blockIdx.z), np.int64(dst.shape[0]), np.int64(cuda.gridDim.z)):
        for i in range(i0, m0, istep):
            r0 = i * f0
            rstop = r0 + f0 if pad else min(r0 + f0, n0)
            s = _column(src, b, r0, rstop, c0, n0, n1, op, cval, acc)
            for c in range(c0 + 1, cstop):
                s = _combine(s, _column(src, b, r0, rstop, c, n0, n1, op, cval, acc), op)
            if mean and rounding and exact:  # integer sums: the nearest integer, exactly
                count = (rstop - r0) * (cstop - c0)
                q = div_even(np.int64(s), count, np.float64(count), count // 2, count % 2 == 0)
                dst[b, i, j] = store_cast(min(max(np.float64(q), lo), hi), dst)
            elif mean:
                v = np.float64(s) / np.float64((rstop - r0) * (cstop - c0))
                dst[b, i, j] = store_cast(rint_clip(v, lo, hi) if rounding else v, dst)
            else:
                dst[b, i, j] = s


@cuda.jit
def take2(src, dst, f0, f1):
    """Set ``dst[b, i, j] = src[b, i * f0, j * f1]``: decimation of the last two axes."""
    m0 = np.int64(dst.shape[1])
    j = np.int64(cuda.blockIdx.x) * cuda.blockDim.x + cuda.threadIdx.x
    if j >= np.int64(dst.shape[2]):
        return
    i0 = np.int64(cuda.blockIdx.y) * cuda.blockDim.y + cuda.threadIdx.y
    istep = np.int64(cuda.gridDim.y) * cuda.blockDim.y
    for b in range(np.int64(cuda.blockIdx.z), np.int64(dst.shape[0]), np.int64(cuda.gridDim.z)):
        for i in range(i0, m0, istep):
            dst[b, i, j] = src[b, i * f0, j * f1]


_PYR = (1, 4, 6, 4, 1)  # cv2.pyrDown's binomial, along each axis (divided by 256 in all)


@cuda.jit
def pyr2(src, dst, rmap, cmap, acc, rounding, lo, hi):
    """One pyramid level of (B, n0, n1): the 5 x 5 binomial at every second row and column.

    ``rmap[i]``/``cmap[j]``: the five source rows/columns of output row i/column j, mapped by
    the boundary mode (-1: outside, value 0). Sums in ``acc``'s type (exact integers: rounded
    once, ties to even; float64 for floats); each thread reads its 25 elements.
    """
    m0 = np.int64(dst.shape[1])
    j = np.int64(cuda.blockIdx.x) * cuda.blockDim.x + cuda.threadIdx.x
    if j >= np.int64(dst.shape[2]):
        return
    i0 = np.int64(cuda.blockIdx.y) * cuda.blockDim.y + cuda.threadIdx.y
    istep = np.int64(cuda.gridDim.y) * cuda.blockDim.y
    zero = acc - acc
    for b in range(np.int64(cuda.blockIdx.z), np.int64(dst.shape[0]), np.int64(cuda.gridDim.z)):
        for i in range(i0, m0, istep):
            s = zero
            for u in range(5):
                r = rmap[i, u]
                if r >= 0:
                    row = zero
                    for v in range(5):
                        c = cmap[j, v]
                        if c >= 0:
                            row += _PYR[v] * widen(src[b, r, c], acc)
                    s += _PYR[u] * row
            if rounding:  # the nearest integer to s / 256, ties to even (s is exact)
                q = (s + 128) // 256
                if (s + 128) - q * 256 == 0 and q % 2 != 0:
                    q -= 1
                dst[b, i, j] = store_cast(min(max(np.float64(q), lo), hi), dst)
            else:
                dst[b, i, j] = store_cast(np.float64(s) / 256.0, dst)


# -- the launches ------------------------------------------------------------------------------

def _launch(kernel, n, *args):
    spoil()
    threads = 8 if cuda_backend.simulated() else 256
    blocks = 2 if cuda_backend.simulated() else max(1, min(65535 * 32, -(-n // threads)))
    if n:
        kernel[blocks, threads](*args)


def _launch2(kernel, dst, *args):
    """Launch a kernel over the (B, m0, m1) output ``dst``: x columns, y rows, z planes."""
    spoil()
    nb, m0, m1 = (int(n) for n in dst.shape)
    if not nb * m0 * m1:
        return
    if cuda_backend.simulated():  # each thread is a Python thread: few of them
        block = (4, 2, 1)
        grid = (-(-m1 // 4), min(-(-m0 // 2), 2), min(nb, 2))
    else:
        block = (32, 8, 1)
        grid = (-(-m1 // 32), min(-(-m0 // 8), 65535), min(nb, 65535))
    kernel[grid, block](*args)


def _last2(x, full, out_shape):
    """(src as (B, n0, n1), f0, f1, (B, m0, m1)) of a reduction over the last two axes."""
    shape = tuple(x.shape)
    n0, n1 = (shape[-2], shape[-1]) if x.ndim >= 2 else (1, shape[-1])
    f0, f1 = (full[-2], full[-1]) if x.ndim >= 2 else (1, full[-1])
    m0, m1 = (out_shape[-2], out_shape[-1]) if x.ndim >= 2 else (1, out_shape[-1])
    return x.reshape((-1, n0, n1)), f0, f1, (math.prod(out_shape) // (m0 * m1), m0, m1)


def _lead(x, full, out_shape):
    """``(src, dst shape, f0, f1, lead)`` of blocks that also span the axes before the last two.

    Runs of those axes with factor 1 merge into one (they only pick planes), so ``src`` is
    ``(*L, n0, n1)`` and the output ``(*M, m0, m1)`` with a factor per lead axis in ``lead``
    (:func:`.cuda_resample.generate`).
    """
    L, M, lead = [], [], []
    for n, m, f in zip(x.shape[:-2], out_shape[:-2], full[:-2]):
        if f == 1 and lead and lead[-1] == 1:
            L[-1], M[-1] = L[-1] * n, M[-1] * m
        else:
            L.append(n)
            M.append(m)
            lead.append(f)
    src = x.reshape((*L, *x.shape[-2:]))
    return src, (*M, *out_shape[-2:]), full[-2], full[-1], tuple(lead)


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
    """``decimate`` on a device array.

    One launch when only the last two axes are decimated (images and stacks), else one per
    decimated axis.
    """
    token = cuda_replay.enter()
    x = _contiguous_device(arr, arr.dtype)
    out_shape = tuple(-(-n // f) for n, f in zip(x.shape, full))
    if all(f == 1 for f in full[:-2]):
        src, f0, f1, dshape = _last2(x, full, out_shape)
        dst = cuda_backend.empty(dshape, x.dtype, arr)
        launch = cuda_resample.run(src, dst, f0, f1, "take")
        if not launch:  # the C++ kernel, else numba's
            _launch2(take2, dst, src, dst, f0, f1)
            return dst.reshape(out_shape)
        return _offered(token, arr, arr.dtype, dst.reshape(out_shape), x.dtype, launch,
                        lambda x: _last2(x, full, out_shape)[0], dshape)
    src, dshape, f0, f1, lead = _lead(x, full, out_shape)
    dst = cuda_backend.empty(dshape, x.dtype, arr)
    launch = cuda_resample.run(src, dst, f0, f1, "take", lead=lead)
    if launch:  # one C++ launch
        return _offered(token, arr, arr.dtype, dst.reshape(out_shape), x.dtype, launch,
                        lambda x: _lead(x, full, out_shape)[0], dshape)
    for axis, f in enumerate(full):
        if f > 1:
            x = _device_axis(x, axis, -(-x.shape[axis] // f), take_axis, (f,), x.dtype, arr)
    return x


def _pyramid_map(n, mode):
    """(m, 5) source indices of the 5 taps of every second element (-1: outside)."""
    from .. import _regions, modes

    index = 2 * np.arange(-(-n // 2))[:, None] + np.arange(-2, 3)
    code = modes.mode_code(mode)
    if code == modes.CONSTANT:
        return np.where((index >= 0) & (index < n), index, -1)
    return _regions.global_map(index, n, code)


def pyramid_level(x, mode):
    """One ``pyramid_down`` level over the last two axes in one launch.

    None for bool and 64-bit integers (the generic route: generated prefilter, decimate).
    """
    key = cuda_replay.key(cuda_replay.array_key(x), mode) if isinstance(mode, str) else None
    replay = None if key is None else _LEVELS.get(key)
    if replay is not None:
        cuda_replay.REPLAYED[0] += 1
        return replay(x)
    native = np.dtype(work_dtype(x.dtype))
    if native.kind == "b" or (native.kind in "iu" and native.itemsize > 4):
        return None
    out_shape = tuple(x.shape[:-2]) + tuple(-(-n // 2) for n in x.shape[-2:])
    src = _contiguous_device(x, native)
    src3, _, _, dshape = _last2(src, (2, 2), out_shape)
    n0, n1 = src3.shape[1], src3.shape[2]
    dst = cuda_backend.empty(dshape, native, x)
    launch = cuda_resample.run_pyramid(src3, dst, mode)
    if not launch:  # C++ (maps inline), else numba's
        maps = [cuda_backend.work(np.ascontiguousarray(_pyramid_map(n, mode)), (), False,
                                  (-(-n // 2), 5), np.dtype(np.int64), x) for n in (n0, n1)]
        acc = np.float64(0) if native.kind == "f" else np.int64(0)  # integers: exact sums
        rounding, lo, hi = _rounding_bounds(native)
        _launch2(pyr2, dst, src3, dst, maps[0], maps[1], acc, rounding, lo, hi)
    out_dtype = np.dtype(x.dtype).newbyteorder("=")
    if launch and key is not None:
        # (as _offered: a plain CuPy input, launched on as it is)
        plain = (cuda_backend.as_is(x, native) and native == out_dtype
                 and src3.data.ptr == x.data.ptr)

        def replay(x):  # (a level of the same configuration: cuda_replay.key)
            if plain:
                dst = cuda_backend.empty(out_shape, native, x)
                launch(x, dst)
                return dst
            dst = cuda_backend.empty(dshape, native, x)
            launch(_last2(_contiguous_device(x, native), (2, 2), out_shape)[0], dst)
            return _device_result(dst.reshape(out_shape), out_dtype, x)

        cuda_replay.keep(_LEVELS, key, replay, 256)
    return _device_result(dst.reshape(out_shape), out_dtype, x)


_LEVELS: dict = {}  # a pyramid level's replay (:func:`pyramid_level`), by cuda_replay.key


def _offered(token, arr, native, res, out_dtype, launch, src_of, dshape, work_out=None):
    """``res``, a one-launch route's result, with its replay offered (:mod:`.cuda_replay`).

    ``launch``: :func:`.cuda_resample.run`'s; ``src_of(x)``: the launch's source from the
    input as :func:`_contiguous_device` gives it (of ``native``); ``dshape``: the launch's
    destination (of ``work_out``, default ``out_dtype``), reshaped to ``res``'s shape and
    delivered as ``out_dtype``.
    """
    out_shape, work_out = tuple(res.shape), work_out or out_dtype
    # a C-contiguous CuPy input of the kernel's dtype whose launch source starts where it
    # does, into a result of the launch's dtype: a replay launches on it and a new output of
    # the call's shape directly (a kernel takes an array's address)
    plain = (cuda_backend.as_is(arr, native) and np.dtype(work_out) == np.dtype(out_dtype)
             and src_of(_contiguous_device(arr, native)).data.ptr == arr.data.ptr)

    def replay(a, out):
        if plain:
            dst = cuda_backend.empty(out_shape, work_out, a)
            launch(a, dst)
            return dst
        dst = cuda_backend.empty(dshape, work_out, a)
        launch(src_of(_contiguous_device(a, native)), dst)
        return _device_result(dst.reshape(out_shape), out_dtype, a)

    res = _device_result(res, out_dtype, arr)
    cuda_replay.offer(token, arr, None, res, replay)
    return res


def _rounding_bounds(out_dtype):
    if out_dtype.kind == "b":
        return True, 0.0, 1.0
    if out_dtype.kind in "iu":
        info = np.iinfo(out_dtype)
        return True, float(info.min), float(info.max)
    return False, 0.0, 0.0


def reduce(arr, full, op, edge, cval, out_dtype):
    """``block_reduce`` on a device array (see the module docstring).

    One launch of :func:`reduce2` when only the last two axes are reduced (images and stacks),
    else one launch per reduced axis and one for the mean's division.
    """
    token = cuda_replay.enter()
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
        rounding, lo, hi = _rounding_bounds(out_dtype)
        cv = np.float64(native.type(cval))
        if cuda_resample.median_fits(*full):
            if any(f != 1 for f in lead):
                src, dshape, f0, f1, lead_f = _lead(x, full, out_shape)
            else:
                src, f0, f1, dshape = _last2(x, full, out_shape)
                lead_f = ()
            dst = cuda_backend.empty(dshape, work_out, arr)
            launch = cuda_resample.run(src, dst, f0, f1, "median", pad=pad, cval=cv,
                                       acc=np.float64, rounding=rounding, lead=lead_f)
            if launch:  # C++, else numba's
                src_of = ((lambda x: _lead(x, full, out_shape)[0]) if lead_f else
                          (lambda x: _last2(x, full, out_shape)[0]))
                return _offered(token, arr, native, dst.reshape(out_shape), out_dtype, launch,
                                src_of, dshape, work_out)
        if any(f != 1 for f in lead) or f0 * f1 > MEDIAN_BLOCK_MAX:
            raise StencilError(
                f"block_reduce: the GPU median takes blocks of at most "
                f"{cuda_resample.MEDIAN_SCRATCH_MAX} elements (generated CUDA C++, with CuPy), "
                f"or over the last two axes of at most {MEDIAN_BLOCK_MAX} (numba.cuda) (factor "
                f"{full}, {math.prod(full)} elements); copy the array to the host")
        shape = tuple(x.shape)
        n0, n1 = (shape[-2], shape[-1]) if x.ndim >= 2 else (1, shape[-1])
        m0, m1 = (out_shape[-2], out_shape[-1]) if x.ndim >= 2 else (1, out_shape[-1])
        # (trimmed: the output's blocks are all whole, and never read the dropped edge)
        dst = cuda_backend.empty((math.prod(out_shape) // (m0 * m1), m0, m1), work_out, arr)
        _launch(median2, math.prod(dst.shape), x.reshape((-1, n0, n1)), dst, f0, f1, pad, cv,
                rounding, lo, hi)
        return _device_result(dst.reshape(out_shape), out_dtype, arr)
    if op in ("min", "max"):
        acc = native
    elif op == "sum" and out_dtype.kind in "iu":
        acc = out_dtype  # int64 / uint64: exact (modulo 2^64, as NumPy's sum)
    elif native.kind == "f" or native == np.uint64:
        acc = np.dtype(np.float64)
    elif native.itemsize <= 2 and math.prod(full) < 2**15:
        acc = np.dtype(np.int32)  # exact too (as the CPU's), and 32-bit arithmetic
    else:
        acc = np.dtype(np.int64)
    code = {"sum": 0, "mean": 0, "min": 1, "max": 2}[op]
    cv = acc.type(native.type(cval))  # padding holds cval in the input's dtype, as np.pad
    if all(f == 1 for f in full[:-2]):  # images and stacks: one launch, each element read once
        src, f0, f1, dshape = _last2(x, full, out_shape)
        wout = work_out if op == "mean" else acc
        dst = cuda_backend.empty(dshape, wout, arr)
        rounding, lo, hi = _rounding_bounds(out_dtype)
        launch = cuda_resample.run(src, dst, f0, f1, op, pad=pad, cval=cv, acc=acc,
                                   rounding=rounding)
        if launch:  # the C++ kernel, else numba's
            return _offered(token, arr, native, dst.reshape(out_shape), out_dtype, launch,
                            lambda x: _last2(x, full, out_shape)[0], dshape, wout)
        _launch2(reduce2, dst, src, dst, f0, f1, code, op == "mean", pad, cv, acc.type(0),
                 rounding, lo, hi, acc.kind == "i")
        return _device_result(dst.reshape(out_shape), out_dtype, arr)
    src, dshape, f0, f1, lead = _lead(x, full, out_shape)  # volumes: one C++ launch
    wout = work_out if op == "mean" else acc
    dst = cuda_backend.empty(dshape, wout, arr)
    rounding, lo, hi = _rounding_bounds(out_dtype)
    launch = cuda_resample.run(src, dst, f0, f1, op, pad=pad, cval=cv, acc=acc,
                               rounding=rounding, lead=lead)
    if launch:
        return _offered(token, arr, native, dst.reshape(out_shape), out_dtype, launch,
                        lambda x: _lead(x, full, out_shape)[0], dshape, wout)
    for axis, (m, f) in enumerate(zip(out_shape, full)):  # numba.cuda: a launch per axis
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
