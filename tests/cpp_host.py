"""Run stencilkit's generated CUDA C++ on the CPU: g++ builds the module with ``-DSK_HOST`` and
the launches of :meth:`stencilkit.codegen_cpp.Module.launches` run every block and thread in
turn (the kernels use no shared memory or barriers, so one thread at a time is exact).

This checks, without a GPU, everything the kernels compute: numba's arithmetic in C++, the
32-bit narrowing, the strip walk with its register rings, the 32-bit word reads and writes (the
host is little-endian, as the GPU), the border enumeration and every boundary mode. g++ builds
with ``-ffp-contract=off``, as NVRTC with ``--fmad=false``: no fused multiply-adds.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np

from stencilkit import codegen_cpp

CXX = shutil.which("g++") or shutil.which("c++")

_CTYPES = {
    np.dtype(np.bool_): ctypes.c_bool, np.dtype(np.int8): ctypes.c_int8,
    np.dtype(np.int16): ctypes.c_int16, np.dtype(np.int32): ctypes.c_int32,
    np.dtype(np.int64): ctypes.c_int64, np.dtype(np.uint8): ctypes.c_uint8,
    np.dtype(np.uint16): ctypes.c_uint16, np.dtype(np.uint32): ctypes.c_uint32,
    np.dtype(np.uint64): ctypes.c_uint64, np.dtype(np.float32): ctypes.c_float,
    np.dtype(np.float64): ctypes.c_double,
}

_LIBS: dict = {}
_DIR = os.environ.get("STENCILKIT_HOST_CPP_DIR") or os.path.join(
    tempfile.gettempdir(), f"stencilkit-host-cpp-{os.getuid() if hasattr(os, 'getuid') else 0}")


def build(source: str) -> ctypes.CDLL:
    """The module compiled for the host (cached by the source's hash)."""
    key = hashlib.sha256(source.encode()).hexdigest()[:20]
    lib = _LIBS.get(key)
    if lib is not None:
        return lib
    os.makedirs(_DIR, exist_ok=True)
    so = os.path.join(_DIR, f"sk_{key}.so")
    if not os.path.exists(so):
        src = os.path.join(_DIR, f"sk_{key}.cpp")
        with open(src, "w") as f:
            f.write(source)
        tmp = f"{so}.{os.getpid()}.tmp"
        # -O0: twice as fast to build as -O1 and the same IEEE arithmetic (SSE, no
        # contraction); the small test arrays run fast enough (the host tests: 21 s cold
        # against 29 s)
        cmd = [CXX, "-std=c++17", "-O0", "-ffp-contract=off", "-fno-fast-math", "-DSK_HOST",
               "-shared", "-fPIC", "-w", "-o", tmp, src]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(f"g++ failed on {src}:\n{res.stderr[:4000]}")
        os.replace(tmp, so)
    lib = ctypes.CDLL(so)
    _LIBS[key] = lib
    return lib


def needs_nvrtc():
    """Skip the calling test where cuda-bindings or an NVRTC library is missing."""
    import pytest

    try:
        from cuda.bindings import nvrtc

        nvrtc.nvrtcVersion()
    except Exception as exc:
        pytest.skip(f"NVRTC not available ({exc})")


ROWS = 2 * codegen_cpp.UNROLL + 3
"""Rows per strip in the host runs: small arrays would get one-row strips (the GPU's rule),
which never reach the strip walk's steps of UNROLL rows; this length runs two of them and the
rows left over."""


def run(mod: codegen_cpp.Module, inputs, out, *, mode, cval=0, cvout=0, params=(),
        words=None, rows=ROWS):
    """Apply ``mod`` to C-contiguous ``(B, *core)`` arrays into ``out``, as a GPU launch would.

    ``words``: force the word kernel on (True) or off (False); default: where aligned.
    ``rows``: the strip length (None: the GPU's own choice).
    """
    lib = build(mod.source)
    wshape = out.shape
    if words is None:
        items = [(a.ctypes.data, a.shape[-1], a.itemsize) for a in inputs]
        words = codegen_cpp.words_ok(mod, items, (out.ctypes.data, out.shape[-1], out.itemsize))
    for kname, grid, block, (strip, c0, c1) in mod.launches(wshape, words, rows):
        fn = getattr(lib, f"{kname}_host")
        scalars = mod.scalars(wshape, strip, c0, c1, mode, cval, cvout, params)
        args = [ctypes.c_uint(v) for v in (*grid, *block)]
        args += [ctypes.c_void_p(a.ctypes.data) for a in inputs]
        args.append(ctypes.c_void_p(out.ctypes.data))
        args += [_CTYPES[np.asarray(v).dtype](v.item() if hasattr(v, "item") else v)
                 for v in scalars]
        fn.restype = None
        fn(*args)
    return out


def run_sweep(mod, x, out_dtype, scalars_of, *, fill, rows=ROWS):
    """Run a one-sweep module (stencilkit.backends.cuda_sweeps) over the last two axes of ``x``.

    ``scalars_of(shape, rows, a, b)``: a launch's scalars after the two arrays; ``fill``: the
    output's initial value (stale values must all be overwritten). Returns the result.
    """
    shape = x.shape
    src = np.ascontiguousarray(x).reshape(-1, *shape[-2:])
    dst = np.full(src.shape, fill, out_dtype)
    lib = build(mod.source)
    for kname, grid, block, (strip, a, b) in mod.launches(src.shape, rows):
        fn = getattr(lib, f"{kname}_host")
        fn.restype = None
        fn(*(ctypes.c_uint(v) for v in (*grid, *block)), ctypes.c_void_p(src.ctypes.data),
           ctypes.c_void_p(dst.ctypes.data),
           *(_CTYPES[np.asarray(v).dtype](v.item()) for v in scalars_of(src.shape, strip, a, b)))
    return dst.reshape(shape)


class FakeCupy:
    """A stand-in for the ``cupy`` module, enough for stencilkit.backends.cuda_cpp: arrays wrap
    NumPy arrays (or the CUDA simulator's), and a RawModule's kernels run on the host through
    :func:`build`. It lets the tests drive the C++ path's glue (compile, launch, arguments)
    end to end without a GPU. Each launch is recorded in ``launched``."""

    __version__ = "fake"

    def __init__(self):
        import types

        self.launched = []
        self.options = []
        outer = self

        class ndarray:  # noqa: N801 - CuPy's name
            def __init__(self, host):
                self.host = host
                self.shape = host.shape
                self.itemsize = host.itemsize
                self.data = types.SimpleNamespace(ptr=host.ctypes.data)

        class Kernel:
            def __init__(self, lib, name):
                self.fn = getattr(lib, f"{name}_host")
                self.name = name

            def __call__(self, grid, block, args):
                outer.launched.append(self.name)
                cargs = [ctypes.c_uint(v) for v in (*grid, *block)]
                for a in args:
                    if isinstance(a, ndarray):
                        cargs.append(ctypes.c_void_p(a.data.ptr))
                    else:
                        cargs.append(_CTYPES[np.asarray(a).dtype](a.item()))
                self.fn.restype = None
                self.fn(*cargs)

        class RawModule:
            def __init__(self, code, options=()):
                outer.options.append(tuple(options))
                self.lib = build(code)

            def get_function(self, name):
                return Kernel(self.lib, name)

        class CompileException(Exception):
            pass

        self.ndarray = ndarray
        self.RawModule = RawModule
        self.cuda = types.SimpleNamespace(
            compiler=types.SimpleNamespace(CompileException=CompileException))

    def asarray(self, a):
        host = getattr(a, "_ary", a)  # the simulator's device arrays wrap a NumPy array
        assert isinstance(host, np.ndarray) and host.flags.c_contiguous
        return self.ndarray(host)
