"""Compile stencilkit's CUDA kernels to PTX with numba's real CUDA target, without a GPU.

The tests run the generated kernels under numba's CUDA simulator, which executes them as
Python: it checks the arithmetic but not that numba's CUDA target can type and compile them
(overloads, casts, local arrays). This script compiles each kernel for a device (PTX for compute
capability 8.0) for a spread of dtypes, with no GPU and no driver needed.

Needs numba-cuda and NVVM from the CUDA toolkit wheels (about 0.5 GB, so not part of CI)::

    pip install 'numba-cuda[cu12]' nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12
    NUMBA_ENABLE_CUDASIM=0 python tools/cuda_compile_check.py [NAME ...]

(NAME: only the cases whose names contain it, such as ``loops``; if NVVM or NVRTC are not
found, put their ``lib`` folders on LD_LIBRARY_PATH). Exit status 0 when every kernel
compiles; each failure is printed.
"""

from __future__ import annotations

import math
import os
import sys
import traceback
import types

import numpy as np

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") != "0":
    sys.exit("run with NUMBA_ENABLE_CUDASIM=0: the simulator compiles nothing")

import numba  # noqa: E402
from numba import cuda  # noqa: E402
from numba import types as T  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import stencilkit as sk  # noqa: E402
from stencilkit import _cpp_body, _passes, filters, morphology, resample  # noqa: E402
from stencilkit.backends import cpu as cpu_backend  # noqa: E402
from stencilkit.backends import cuda as cuda_backend  # noqa: E402
from stencilkit.backends import cuda_blocks, cuda_cpp, cuda_lines  # noqa: E402


def _no_gpu_needed():
    # Device functions are compiled for the current device's compute capability; with no GPU
    # there is none, so answer for compute capability 8.0 (the PTX target below).
    try:
        from numba.cuda import dispatcher
    except ImportError:  # pragma: no cover
        return
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(8, 0))


def arr(dtype, ndim, layout="C"):
    """A numba array type."""
    return T.Array(numba.from_dtype(np.dtype(dtype)), ndim, layout)


def scalar(dtype):
    """A numba scalar type."""
    return numba.from_dtype(np.dtype(dtype))


def stencil_signatures(st, dtypes, params, acc, out):
    """The argument types of the generated ``_sk_cuda_interior`` and ``_sk_cuda_border``."""
    nd = st.ndim + 1
    arrays = [arr(d, nd) for d in dtypes]
    interior = (*arrays, arr(out, nd), T.int64, scalar(acc), *params)
    border = (*arrays, arr(out, nd), T.int64, T.int64, T.int64, scalar(acc), scalar(out),
              scalar(acc), *params)
    return interior, border


def cases():
    """(name, Stencil, dtypes, acc, out, param types) for the generated kernels."""
    from kernels import (
        blend,
        box5,
        conversions,
        float_helpers,
        float_loops,
        helpers,
        int_loops,
        integer_roundings,
        lap3,
        math_edges,
        mixed_loops,
        named_functions,
        narrow_types,
        numpy_ufuncs,
        numpy_ufuncs_inexact,
        predicate_loops,
        scoped_numbers,
        shift,
        shifts,
        skew1,
        smooth,
        square_negative,
        tuple_loops,
        unpacking,
    )

    yield "smooth uint8", smooth, ["uint8"], "int64", "uint8", ()
    yield "smooth float32", smooth, ["float32"], "float32", "float32", ()
    yield "smooth int16->int8", smooth, ["int16"], "float64", "int8", ()
    yield "skew1 int32 (1-D)", skew1, ["int32"], "int64", "int32", ()
    yield "lap3 float64 (3-D)", lap3, ["float64"], "float64", "float64", ()
    yield "lap3 complex128 (3-D)", lap3, ["complex128"], "complex128", "complex128", ()
    yield "blend float32 x2 + param", blend, ["float32", "float32"], "float32", "float32", \
        (T.float64,)
    yield "shift uint16 run-time offsets", shift, ["uint16"], "int64", "uint16", \
        (T.int64, T.int64)
    yield "box5 bool loops", box5, ["bool"], "int64", "bool", ()
    for dt in ("float32", "float64"):  # int(), np.uint8(), math.floor, round: _casts.to_int
        yield f"conversions {dt}", conversions, [dt], dt, "int64", (T.int64,)
    yield "skew1 float64 into acc int16", skew1, ["float64"], "int16", "float64", ()
    for dt, acc in (("int64", "int64"), ("uint64", "uint64")):  # _casts.shl/shr
        yield f"shifts {dt}", shifts, [dt], acc, "int64", (T.int64,)
    yield "helpers int16 (jitted calls)", helpers, ["int16"], "int64", "int16", ()
    yield "float_helpers float32 (nested jitted calls)", float_helpers, ["float32"], "float32", \
        "float32", ()
    yield "unpacking int16 (tuples)", unpacking, ["int16"], "int64", "int16", ()
    for dt, acc in (("int16", "int64"), ("float32", "float32")):  # a global tuple, iterated
        yield f"tuple_loops {dt} (tuples iterated, indexed at run time)", tuple_loops, [dt], \
            acc, dt, ()
    yield "integer_roundings uint64 (math.floor of integers)", integer_roundings, ["uint64"], \
        "int64", "uint64", ()
    yield "math_edges float64", math_edges, ["float64"], "float64", "float64", ()
    yield "scoped_numbers float32 (a module's numbers)", scoped_numbers, ["float32"], \
        "float32", "float32", ()
    yield "narrow_types int16 (numba's promotions)", narrow_types, ["int16"], "int64", \
        "int16", ()
    yield "named_functions float32 (from math import sqrt)", named_functions, ["float32"], \
        "float32", "float32", ()
    for dt, acc in (("float32", "float32"), ("int16", "int64"), ("uint8", "int64")):
        yield f"square_negative {dt} (numba's loops)", square_negative, [dt], acc, dt, ()
    for dt, acc in (("float32", "float32"), ("int16", "int64"), ("float64", "float64")):
        yield f"numpy_ufuncs {dt} (cuda_ufuncs)", numpy_ufuncs, [dt], acc, dt, ()
        yield f"numpy_ufuncs_inexact {dt} (cuda_ufuncs)", numpy_ufuncs_inexact, [dt], acc, dt, ()
    for st, dtypes in ((int_loops, ("int8", "uint8", "int16", "uint32", "int64", "uint64")),
                       (float_loops, ("float32", "float64")),
                       (predicate_loops, ("int8", "uint64", "float32", "float64")),
                       (mixed_loops, ("int16", "float32"))):  # NumPy's loops in each type
        for dt in dtypes:
            out = "float64" if st is mixed_loops else dt
            acc = dt if st is not mixed_loops else ("float32" if dt == "float32" else "int64")
            yield f"{st.__name__} {dt} (numba's ufunc loops)", st, [dt, dt], acc, out, \
                (T.int64,)
    # filters: the generated sources behind calls on device arrays (captured from
    # _passes.compiled, with the CPU backend lowering the line passes as the CUDA backend
    # does where it has no kernel of its own: as generated stencils), with the dtypes those
    # calls use (float32 sums rounded by np.rint for 8-bit Gaussians, int64 sums for integer
    # weights)
    seen = []
    original = _passes.compiled

    def capture(source):
        st = original(source)
        seen.append(st)
        return st

    _passes.compiled = capture
    cpu_backend.BACKEND.run_passes = lambda passes, arr, out: passes.as_stencils(arr, out)
    try:
        a8 = np.zeros((8, 8), np.uint8)
        f32 = np.zeros((8, 8), np.float32)
        for a in (a8, f32):
            filters.uniform_filter(a, 3)
            filters.uniform_filter(a, 15)
            filters.median_filter(a, 3)
            filters.rank_filter(a, 1, footprint=np.eye(3) + np.eye(3)[::-1])  # not a median
            filters.gaussian_gradient_magnitude(a, 1.0)  # (its sum of squares, np.sqrt)
            filters.minimum_filter(a, 5)
            filters.gaussian_filter(a, 1.0)
            filters.sobel(a, 0)
            filters.laplace(a)
            filters.correlate(a, np.array([[0.5, 1.0], [0.25, 2.0]]))
            # pyramid_down on a device array: the binomial prefilter as a generated stencil
            w = np.multiply.outer(resample._BINOMIAL, resample._BINOMIAL)
            resample._binomial(a, w, (0, 1), "reflect", 256)
            # morphology: a non-flat structure (x - s, x + s), the compositions' signed sums,
            # the input's truth, an iteration's mask and the empty structure
            morphology.morphological_laplace(a, structure=np.ones((2, 3)))
            morphology.binary_opening(a, mask=a8 > 0, iterations=2)
            morphology.binary_erosion(a, np.zeros((3, 3), bool))
            morphology.binary_hit_or_miss(a)  # (the complement, both erosions' conjunction)
    finally:
        _passes.compiled = original
        del cpu_backend.BACKEND.run_passes
    done = set()
    for st in seen:
        for dt, acc, out in (("uint8", "int64", "uint8"), ("uint8", "float32", "uint8"),
                             ("float32", "float32", "float32"), ("int64", "int64", "uint8"),
                             ("float64", "float64", "uint8")):
            key = (st._source, dt, acc, out)
            if key not in done:
                done.add(key)
                yield (f"filter {st.__name__} {dt}->{out} acc {acc}", st,
                       [dt] * len(st._spec.arrays), acc, out, ())


def block_cases():
    """(name, kernel, signature) for the resampling kernels."""
    a3 = lambda d: arr(d, 3)  # noqa: E731
    yield "take_axis", cuda_blocks.take_axis, (a3("uint8"), a3("uint8"), T.int64)
    for src, acc in (("uint8", "int64"), ("float32", "float64"), ("uint16", "uint64"),
                     ("float32", "float32")):
        yield f"reduce_axis {src}->{acc}", cuda_blocks.reduce_axis, (
            a3(src), a3(acc), T.int64, T.int64, T.boolean, scalar(acc), scalar(acc))
    for out in ("uint8", "bool", "float32"):
        yield f"finish_mean ->{out}", cuda_blocks.finish_mean, (
            arr("int64", 1), arr("float64", 1), arr(out, 1), T.boolean, T.float64, T.float64)
    for src, acc, out in (("uint8", "int64", "uint8"), ("float32", "float64", "float32"),
                          ("uint16", "uint16", "uint16"), ("uint8", "int64", "bool")):
        yield f"reduce2 {src}->{acc}->{out}", cuda_blocks.reduce2, (
            a3(src), a3(out), T.int64, T.int64, T.int64, T.boolean, T.boolean, scalar(acc),
            scalar(acc), T.boolean, T.float64, T.float64, T.boolean)
    yield "take2 uint8", cuda_blocks.take2, (a3("uint8"), a3("uint8"), T.int64, T.int64)
    for src, acc in (("uint8", "int64"), ("int16", "int64"), ("float32", "float64")):
        yield f"pyr2 {src} acc {acc}", cuda_blocks.pyr2, (
            a3(src), a3(src), arr("int64", 2), arr("int64", 2), scalar(acc), T.boolean,
            T.float64, T.float64)
    for src, out in (("uint8", "uint8"), ("int8", "int8"), ("bool", "uint8"),
                     ("int32", "int32")):
        yield f"box2 {src}->{out}", cuda_lines.box2, (
            a3(src), a3(out), *[T.int64] * 4, T.int64, T.int64, T.int64, T.int64, T.int64,
            T.int64)
    for src, n in (("uint8", 81), ("int16", 81), ("float32", 75), ("float64", 256)):
        yield f"rank select {src} of {n}", cuda_lines._rank_kernel(n, np.dtype(src)), (
            arr(src, 1), arr(src, 1), arr("int64", 2), arr("int64", 1), T.int64, T.int64,
            scalar(src))
    yield from generic_cases()
    yield "median2 uint16", cuda_blocks.median2, (
        a3("uint16"), a3("uint16"), T.int64, T.int64, T.boolean, T.float64, T.boolean,
        T.float64, T.float64)


def _spread(values, scale, k=1.0):
    """A window's function as users write them for a device: a loop, math, extra arguments."""
    lo = values[0]
    hi = values[0]
    s = 0.0
    for v in values:
        lo = min(lo, v)
        hi = max(hi, v)
        s += math.sqrt(abs(v))
    return (hi - lo) * scale + s * k


def _line(line, result, scale):
    for i in range(result.size):
        result[i] = (line[i] + line[i + 1] + line[i + 2]) * scale


def generic_cases():
    """(name, kernel, signature) for generic_filter's and generic_filter1d's device kernels."""
    from stencilkit import _generic
    from stencilkit.backends import cuda_generic
    from stencilkit.backends.cpu_lines.generic import store_of

    for kwargs in ({}, {"k": 2.0}):
        fn = _generic.WindowFunction(_spread, (0.5,), kwargs, "filter", "generic_filter")
        extra = numba.typeof(fn.positional())
        for src, n, out in (("uint8", 9, "uint8"), ("float32", 25, "float32"),
                            ("bool", 5, "bool"), ("int16", 9, "uint64")):
            store, lo, hi = store_of(out)
            yield (f"generic_filter {src}->{out} of {n} {sorted(kwargs)}",
                   cuda_generic._kernel(fn, cuda_generic._WINDOW, store, n),
                   (arr(src, 1), arr(out, 1), arr("int64", 2), arr("int64", 1),
                    arr("int64", 2), arr("int64", 1), T.int64, T.float64, numba.typeof(lo),
                    numba.typeof(hi), extra))
    fn = _generic.WindowFunction(_line, (), {"scale": 0.25}, "filter1d", "generic_filter1d")
    for src, out in (("uint16", "uint16"), ("float64", "float64"), ("float32", "int64")):
        store, lo, hi = store_of(out)
        yield (f"generic_filter1d {src}->{out}", cuda_generic._kernel(fn, cuda_generic._LINE,
                                                                     store),
               (arr(src, 3), arr(out, 3), arr("float64", 2), arr("float64", 2), T.int64,
                T.int64, T.int64, T.int64, T.float64, numba.typeof(lo), numba.typeof(hi),
                numba.typeof(fn.positional())))


def main(only=()) -> int:
    """Compile everything (or the cases whose names contain one of ``only``); the exit status."""
    _no_gpu_needed()
    print(f"numba {numba.__version__}, numba.cuda from {cuda.__file__}")
    failures = 0
    count = 0
    for name, st, dtypes, acc, out, params in cases():
        if only and not any(word in name for word in only):
            continue
        interior, border = stencil_signatures(st, dtypes, params, acc, out)
        for idx64 in (False, True):
            module = cuda_backend.module(st, False, idx64)
            for kernel, sig in (("_sk_cuda_interior", interior), ("_sk_cuda_border", border)):
                count += 1
                try:
                    ptx, _ = cuda.compile_ptx(getattr(module, kernel).py_func, sig, cc=(8, 0))
                    print(f"ok    numba.cuda {name} {kernel} idx{64 if idx64 else 32}: "
                          f"{len(ptx)} bytes of PTX")
                except Exception:
                    failures += 1
                    print(f"FAIL  numba.cuda {name} {kernel}\n{traceback.format_exc()}")
        count += 1
        try:  # the generated CUDA C++ of the same call, through NVRTC
            mod = cuda_cpp.module_for(st._spec, [np.dtype(d) for d in dtypes], np.dtype(out),
                                      np.dtype(acc), params, idx64=False, narrow=True)
            ptx = cuda_cpp.ptx(mod.source, "compute_80")
            print(f"ok    C++ {name}: {len(ptx)} bytes of PTX")
        except _cpp_body.Unsupported as exc:
            print(f"skip  C++ {name}: numba.cuda only ({exc})")
        except Exception:
            failures += 1
            print(f"FAIL  C++ {name}\n{traceback.format_exc()}")
    for name, kernel, sig in block_cases():
        if only and not any(word in name for word in only):
            continue
        count += 1
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(8, 0))
            print(f"ok    {name}: {len(ptx)} bytes of PTX")
        except Exception:
            failures += 1
            print(f"FAIL  {name}\n{traceback.format_exc()}")
    print(f"{count} compilations, {failures} failure(s); stencilkit {sk.__version__}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
