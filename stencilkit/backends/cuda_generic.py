"""A user's function of each window or line on the device: the generic filters.

The function is compiled for the device by numba.cuda (``cuda.jit(device=True)`` of its
Python source: a numba.njit function's ``py_func``) and called from a generated kernel:

- :class:`stencilkit._passes.Generic`: a thread per output element gathers its window into a
  float64 array in its local memory, in the footprint's C order: at fixed offsets where the
  whole window lies inside the array, else through the mode's index map (``_sk_map``;
  ``cval`` as given for ``constant``), as the large-window medians do (:mod:`.cuda_lines`),
  and stores the function's value;
- :class:`stencilkit._passes.Generic1d`: a thread per line extends its line into a float64 row
  of a scratch array in global memory and has the function fill another (as many lines per
  launch as 256 MiB of scratch holds).

Each value is stored in the output's dtype by the CPU's store functions, compiled for the
device (:func:`stencilkit.backends.cpu_lines.generic.store_of`).

An exception the function raises is not seen on a real device (numba.cuda compiles a kernel's
``raise`` away unless it is compiled for debugging); the simulator raises it.

NumPy's own functions (``np.mean``) have no device version, so they are refused with advice,
on the simulator too (it would run them, a real device would not); so is a function
numba.cuda cannot compile. The results are the CPU's where the function computes the same in
both places (CUDA's libdevice may differ from the CPU's libm in the last bit).
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
from numba import cuda

from .. import _dtypes, modes
from .._errors import StencilError, StencilTypeError
from . import cuda as cuda_backend
from .cuda_lines import MAX_AXES, _first_axis, _map
from .cuda_replay import spoil

WINDOW_MAX = 8192  # window elements a thread's local buffer holds (64 KiB of float64)
SCRATCH = 256 << 20  # bytes of line buffers per launch of the 1-d kernel

_WINDOW = """
def _sk_generic(src, dst, offsets, flat, reach, core, mode, cval, lo, hi, extra):
    buf = cuda.local.array({n}, np.float64)
    idx = cuda.local.array({axes}, np.int64)
    k = core.shape[0]
    plane = np.int64(1)
    for d in range(k):
        plane *= core[d]
    q = np.int64(cuda.grid(1))
    stride = np.int64(cuda.gridsize(1))
    while q < dst.shape[0]:
        rem = q
        interior = True
        for d in range(k - 1, -1, -1):
            i = rem % core[d]
            idx[d] = i
            rem //= core[d]
            if i < reach[d, 0] or i >= core[d] - reach[d, 1]:
                interior = False
        base = rem * plane
        if interior:  # the whole window inside: fixed offsets from the element
            for e in range({n}):
                buf[e] = np.float64(src[q + flat[e]])
        else:
            for e in range({n}):
                at = np.int64(0)
                inside = True
                for d in range(k):
                    m = _sk_map(idx[d] + offsets[e, d], core[d], mode)
                    if m < 0:
                        inside = False
                    at = at * core[d] + m
                buf[e] = np.float64(src[base + at]) if inside else cval
        _sk_store(dst, q, _sk_f(buf, *extra), lo, hi)
        q += stride
"""

_LINE = """
def _sk_generic(src, dst, lines_in, lines_out, first, size, before, mode, cval, lo, hi, extra):
    outer, n, inner = src.shape
    out = dst.reshape(-1)
    t = np.int64(cuda.grid(1))
    stride = np.int64(cuda.gridsize(1))
    while t < lines_in.shape[0] and first + t < outer * inner:
        g = first + t
        o = g // inner
        c = g - o * inner
        line = lines_in[t]
        res = lines_out[t]
        for p in range(n + size - 1):
            m = _sk_map(p - before, n, mode)
            line[p] = np.float64(src[o, m, c]) if m >= 0 else cval
        for p in range(n):
            res[p] = 0.0
        _sk_f(line, res, *extra)
        for p in range(n):
            _sk_store(out, (o * n + p) * inner + c, res[p], lo, hi)
        t += stride
"""

_KERNELS: dict = {}


def _device_function(fn):
    """``fn``'s function compiled for the device, or a clear error."""
    py = fn.python()
    if py is None:
        raise StencilTypeError(
            f"{fn.name}: on a GPU the function must be a Python function (or a numba.njit "
            f"one) that numba.cuda compiles; {fn.label!r} is not one (NumPy's own functions "
            "and scipy.LowLevelCallable have no device version): write the reduction as a "
            "loop over the values, or filter a host copy (cupy.asnumpy) on the CPU")
    return _device(py)


_DEVICE: dict = {}


def _device(py):
    """``cuda.jit(device=True)`` of the Python function ``py``, once per function."""
    jitted = _DEVICE.get(py)
    if jitted is None:
        jitted = cuda.jit(device=True)(py)
        _dtypes.remember(_DEVICE, py, jitted, 64)
    return jitted


def _store(host):
    """The device twin of a CPU store function (:func:`.cpu_lines.generic.store_of`)."""
    return _device(host.py_func)


def _kernel(fn, template, store, n=0):
    key = (fn.kind, n, store, fn.python() or fn.function)
    kernel = _KERNELS.get(key)
    if kernel is None:
        source = template.format(n=n, axes=MAX_AXES)
        scope = {"np": np, "cuda": cuda, "_sk_f": _device_function(fn), "_sk_map": _map,
                 "_sk_store": _store(store)}
        exec(compile(textwrap.dedent(source), f"<stencilkit {fn.name} device>", "exec"), scope)
        kernel = cuda.jit(scope["_sk_generic"])
        _dtypes.remember(_KERNELS, key, kernel, 64)
    return kernel


def _extra(fn):
    """The extra arguments for a launch: host arrays copied in (numba would copy each time)."""
    return tuple(cuda.to_device(v) if isinstance(v, np.ndarray) else v
                 for v in fn.positional())


def _launch(fn, kernel, grid, block, extra, *args):
    from numba.core.errors import NumbaError

    spoil()
    try:
        kernel[grid, block](*args, extra)
    except NumbaError as exc:  # typing or lowering, before the kernel ran
        from .cpu_lines.generic import why

        raise StencilTypeError(
            f"{fn.name}: numba.cuda cannot compile function {fn.label!r} for the device "
            f"({why(exc)}); use loops, math and the NumPy scalar functions numba.cuda supports, or "
            "filter a host copy (cupy.asnumpy) on the CPU") from None


def _grid(total):
    block = 8 if cuda_backend.simulated() else 128
    return min(-(-total // block), 4 if cuda_backend.simulated() else 1 << 16), block


def _work(x):
    dtype = np.dtype(x.dtype)
    return np.dtype(np.uint8) if dtype.kind == "b" else _dtypes.work_dtype(dtype)


def run(x, p, mode, cval, out=None, out_dtype=None):
    """The pass ``p`` (``Generic`` or ``Generic1d``) over the device array ``x``, into ``out``.

    Each value stored in ``out_dtype`` by the CPU's store rule (float16: through float32).
    """
    from .._passes import Generic
    from .cpu_lines.generic import store_of

    out_dtype = np.dtype(out_dtype or np.float64)
    stored = _dtypes.work_dtype(out_dtype)
    store, lo, hi = store_of(stored)
    shape = tuple(x.shape)
    total = math.prod(shape)
    work = _work(x)
    code = np.int64(modes.mode_code(mode))
    if isinstance(p, Generic):
        fp = np.array(p.footprint, bool)
        n = int(fp.sum())
        if n > WINDOW_MAX:
            raise StencilError(f"{p.function.name}: a window of {n} elements is more than the "
                               f"{WINDOW_MAX} a GPU thread gathers; filter a host copy on the "
                               "CPU (cupy.asnumpy) or use a smaller footprint")
        first = _first_axis(fp)
        if fp.ndim - first > MAX_AXES:
            raise StencilError(f"{p.function.name}: a window along more than {MAX_AXES} axes "
                               "does not run on a GPU; filter a host copy on the CPU")
        core = shape[first:]
        src = cuda_backend.work(x, (), False, (total,), work, x)
        dst = cuda_backend.empty((total,), stored, x)
        offsets = np.array([[int(i[d]) - p.lo[d] for d in range(first, fp.ndim)]
                            for i in zip(*np.nonzero(fp))], np.int64)
        strides = np.cumprod((1,) + core[:0:-1])[::-1]  # (of the core axes, in elements)
        flat = offsets @ strides
        reach = np.stack([np.maximum(-offsets.min(0), 0), np.maximum(offsets.max(0), 0)], 1)
        grid, block = _grid(total)
        kernel = _kernel(p.function, _WINDOW, store, n)
        dev = cuda_backend.cuda()
        _launch(p.function, kernel, grid, block, _extra(p.function), src, dst,
                dev.to_device(offsets), dev.to_device(flat.astype(np.int64)),
                dev.to_device(reach.astype(np.int64)),
                dev.to_device(np.array(core, np.int64)), code, np.float64(cval), lo, hi)
        return cuda_backend.deliver(dst.reshape(shape), out, out_dtype)
    n = shape[p.axis]
    outer, inner = math.prod(shape[:p.axis]), math.prod(shape[p.axis + 1:])
    src = cuda_backend.work(x, (), False, (outer, n, inner), work, x)
    dst = cuda_backend.empty((outer, n, inner), stored, x)
    lines = outer * inner
    per = max(1, min(lines, SCRATCH // (8 * (2 * n + p.size))))
    lines_in = cuda_backend.empty((per, n + p.size - 1), np.float64, x)
    lines_out = cuda_backend.empty((per, n), np.float64, x)
    kernel = _kernel(p.function, _LINE, store)
    grid, block = _grid(per)
    extra = _extra(p.function)
    for first in range(0, lines, per):
        _launch(p.function, kernel, grid, block, extra, src, dst, lines_in, lines_out,
                np.int64(first), np.int64(p.size), np.int64(p.lo), code, np.float64(cval), lo,
                hi)
    return cuda_backend.deliver(dst.reshape(shape), out, out_dtype)
