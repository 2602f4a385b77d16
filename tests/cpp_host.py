"""Run stencilkit's generated CUDA C++ on the CPU: g++ builds the module with ``-DSK_HOST`` and
the launches of :meth:`stencilkit.codegen_cpp.Module.launches` run every block and thread in
turn (the kernels use no shared memory or barriers, so one thread at a time is exact).

This checks, without a GPU, everything the kernels compute: numba's arithmetic in C++, the
32-bit narrowing, the strip walk with its register rings, the 32-bit word reads and writes (the
host is little-endian, as the GPU), the border enumeration and every boundary mode. g++ builds
with ``-ffp-contract=off``, as NVRTC with ``--fmad=false``: no fused multiply-adds.

And what would fail only on the device: each launch's geometry against CUDA's limits and its
scalar arguments against the kernel's parameter types (:func:`launch`), word accesses off their
boundaries (``-fsanitize=alignment``), and with ``make asan`` reads and writes outside the
arrays.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import types

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

# the C types of the kernels' scalar parameters (after the modules' typedefs)
_C_DTYPES = {
    "bool": np.bool_, "signed char": np.int8, "char": np.int8, "short": np.int16,
    "int": np.int32, "long long": np.int64, "unsigned char": np.uint8,
    "unsigned short": np.uint16, "unsigned int": np.uint32, "unsigned": np.uint32,
    "unsigned long long": np.uint64, "float": np.float32, "double": np.float64,
}
# CUDA's launch limits (compute capability 3.0 and up)
MAX_GRID = (2**31 - 1, 65535, 65535)
MAX_BLOCK = (1024, 1024, 64)
MAX_THREADS = 1024

_LIBS: dict = {}
_SIGS: dict = {}
_DIR = os.environ.get("STENCILKIT_HOST_CPP_DIR") or os.path.join(
    tempfile.gettempdir(), f"stencilkit-host-cpp-{os.getuid() if hasattr(os, 'getuid') else 0}")
# STENCILKIT_HOST_ASAN=1 (`make asan`): build with AddressSanitizer, so that a read or write
# outside the arrays (an illegal address on the device, which the host's memory would mostly
# hide) stops the run with a report. Python must start with the runtime preloaded:
#   STENCILKIT_HOST_ASAN=1 ASAN_OPTIONS=detect_leaks=0 \
#   LD_PRELOAD=$(g++ -print-file-name=libasan.so) python -m pytest tests/test_cuda_*.py
ASAN = os.environ.get("STENCILKIT_HOST_ASAN") == "1"


# The system headers every module includes on the host (PRELUDE's), precompiled once per
# directory and set of flags: parsing C++'s <math.h> was about half of each module's build
# (0.25 -> 0.15 CPU-s, user + system, a module at -O0; about a thousand modules a test run).
# A header g++ finds invalid for the flags is parsed as text instead (built slower, the same).
_PCH_TEXT = "#include <math.h>\n#include <string.h>\n"
_PCH: dict = {}


def _flags() -> list:
    # -O0: twice as fast to build as -O1 and the same IEEE arithmetic (SSE, no
    # contraction); the small test arrays run fast enough (the host tests: 21 s cold
    # against 29 s)
    # -fsanitize=alignment: a word read or written off its 4-byte boundary (a misaligned
    # address on the device, which x86 hides) stops the process, with SIGILL ("Illegal
    # instruction", a trap: no runtime library needed) or, under ASan, a report naming it
    checks = ["-fsanitize=alignment"] + (
        ["-fsanitize=address", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
        if ASAN else ["-fsanitize-undefined-trap-on-error"])
    return ["-std=c++17", "-O0", "-ffp-contract=off", "-fno-fast-math", "-DSK_HOST", *checks,
            "-fPIC", "-w"]


def _precompiled(flags: list) -> list:
    """``-include`` of the precompiled system headers (built here at the first call)."""
    key = hashlib.sha256(repr((CXX, flags, _PCH_TEXT)).encode()).hexdigest()[:16]
    if key not in _PCH:
        header = os.path.join(_DIR, f"sk_headers_{key}.h")
        if not os.path.exists(header + ".gch"):
            os.makedirs(_DIR, exist_ok=True)
            mine = f"{os.getpid()}.{threading.get_ident()}"
            with open(f"{header}.{mine}", "w") as f:
                f.write(_PCH_TEXT)
            os.replace(f"{header}.{mine}", header)  # (the same text from every process)
            res = subprocess.run([CXX, *flags, "-x", "c++-header", "-o", f"{header}.gch.{mine}",
                                  header], capture_output=True, text=True)
            if res.returncode:
                raise RuntimeError(f"g++ failed on the system headers:\n{res.stderr[:4000]}")
            os.replace(f"{header}.gch.{mine}", header + ".gch")
        _PCH[key] = ["-include", header]
    return _PCH[key]


def build(source: str) -> ctypes.CDLL:
    """The module compiled for the host (cached by the source's hash)."""
    key = hashlib.sha256(source.encode()).hexdigest()[:20] + ("_asan" if ASAN else "_al")
    lib = _LIBS.get(key)
    if lib is not None:
        return lib
    os.makedirs(_DIR, exist_ok=True)
    so = os.path.join(_DIR, f"sk_{key}.so")
    if not os.path.exists(so):
        # files of this process and thread (threads of one test build the same module at once)
        mine = f"{os.getpid()}.{threading.get_ident()}"
        src = os.path.join(_DIR, f"sk_{key}.{mine}.cpp")
        with open(src, "w") as f:
            f.write(source)
        tmp = f"{so}.{mine}.tmp"
        flags = _flags()
        cmd = [CXX, *flags, *_precompiled(flags), "-shared", "-o", tmp, src]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(f"g++ failed on {src}:\n{res.stderr[:4000]}")
        os.replace(tmp, so)
        os.replace(src, os.path.join(_DIR, f"sk_{key}.cpp"))  # (kept beside it, to read)
    lib = ctypes.CDLL(so)
    _LIBS[key] = lib
    return lib


def signature(lib, source: str, kname: str) -> list:
    """The kernel's parameters: ``None`` for a pointer, else the scalar's NumPy dtype.

    From ``<kernel>_sig()`` (:func:`stencilkit.codegen_cpp.host_signature`), the module's
    typedefs resolved.
    """
    key = (id(lib), kname)
    found = _SIGS.get(key)
    if found is not None:
        return found
    fn = getattr(lib, f"{kname}_sig")
    fn.restype = ctypes.c_char_p
    typedefs = dict((alias, base) for base, alias in
                    re.findall(r"typedef\s+([A-Za-z_][\w ]*?)\s+(\w+)\s*;", source))
    found = []
    for param in fn().decode().split(","):
        if "*" in param:
            found.append(None)
            continue
        words = [w for w in param.split()[:-1] if w not in ("const", "__restrict__")]
        ctype = " ".join(words)
        for _ in range(8):
            ctype = typedefs.get(ctype, ctype)
        if ctype not in _C_DTYPES:
            raise AssertionError(f"{kname}: parameter {param.strip()!r} of unknown C type")
        found.append(np.dtype(_C_DTYPES[ctype]))
    _SIGS[key] = found
    return found


def check_launch(kname, grid, block):
    """Raise AssertionError where CUDA would refuse the launch's geometry."""
    grid, block = tuple(grid), tuple(block)
    ok = (len(grid) == 3 and len(block) == 3
          and all(isinstance(v, (int, np.integer)) and v >= 1 for v in (*grid, *block))
          and all(v <= m for v, m in zip(grid, MAX_GRID))
          and all(v <= m for v, m in zip(block, MAX_BLOCK))
          and math.prod(block) <= MAX_THREADS)
    if not ok:
        raise AssertionError(f"{kname}: CUDA refuses grid {grid} x block {block} (limits: grid "
                             f"{MAX_GRID}, block {MAX_BLOCK}, {MAX_THREADS} threads)")


def cupy_dtype(value) -> np.dtype:
    """The dtype CuPy passes a scalar kernel argument as (a Python int: 64 bits)."""
    if isinstance(value, np.generic):
        return value.dtype
    if isinstance(value, bool):
        return np.dtype(np.bool_)
    if isinstance(value, int):
        return np.dtype(np.int64)
    if isinstance(value, float):
        return np.dtype(np.float64)
    raise AssertionError(f"CuPy cannot pass {type(value).__name__} {value!r} to a kernel")


def launch(lib, source, kname, grid, block, args):
    """Run one launch of kernel ``kname`` on the host, checked as the device would be.

    ``args``: the kernel's arguments, NumPy arrays (or objects with ``.data.ptr``) for its
    pointers, scalars as CuPy would receive them. The geometry must be one CUDA accepts and
    every scalar of exactly its parameter's C type (see :func:`signature`).
    """
    check_launch(kname, grid, block)
    params = signature(lib, source, kname)
    if len(params) != len(args):
        raise AssertionError(f"{kname}: {len(args)} arguments for {len(params)} parameters")
    cargs = [ctypes.c_uint(v) for v in (*grid, *block)]
    for i, (want, a) in enumerate(zip(params, args)):
        if want is None:
            ptr = a.ctypes.data if isinstance(a, np.ndarray) else getattr(a, "data", None)
            ptr = getattr(ptr, "ptr", ptr)
            if not isinstance(ptr, int):
                raise AssertionError(f"{kname}: argument {i} must be an array, got {a!r}")
            cargs.append(ctypes.c_void_p(ptr))
            continue
        got = cupy_dtype(a)
        if got != want:
            raise AssertionError(f"{kname}: argument {i} is {got} ({a!r}) but the parameter "
                                 f"is {want}: CuPy would pass {got.itemsize} bytes")
        cargs.append(_CTYPES[want](a.item() if hasattr(a, "item") else a))
    fn = getattr(lib, f"{kname}_host")
    fn.restype = None
    fn(*cargs)


def needs_nvrtc():
    """Skip the calling test where cuda-bindings or an NVRTC library is missing."""
    import pytest

    if ASAN:  # (NVRTC cannot load its builtins library with AddressSanitizer preloaded)
        pytest.skip("NVRTC does not run under STENCILKIT_HOST_ASAN")
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
        scalars = mod.scalars(wshape, strip, c0, c1, mode, cval, cvout, params)
        launch(lib, mod.source, kname, grid, block, [*inputs, out, *scalars])
    return out


def call(st, *args, words=None, idx64=None, **kw):
    """Apply stencil ``st`` as the CUDA backend would, its kernels run by :func:`run`."""
    import numba

    from stencilkit.backends import cpu, cuda_cpp
    from stencilkit.backends import cuda as cuda_backend

    plan, params, _, overrides = cuda_backend.plan_call(st, args, kw)
    arrays = args[:len(st.arrays)]
    plan, work = cpu.BACKEND.prepare(st, list(arrays), list(params), None, overrides)
    mod = cuda_cpp.module_for_plan(st, plan, params)
    if idx64 is not None and idx64 != mod.idx64:  # force the other index width
        mod = cuda_cpp.module_for(st._spec, plan.work_dtypes, plan.wout, plan.acc0.dtype,
                                  tuple(numba.typeof(p) for p in params), idx64=idx64,
                                  narrow=mod.narrow)
    dest = np.full(plan.wshape, 99, plan.wout)  # stale values must all be overwritten
    if dest.size:
        run(mod, work, dest, mode=plan.mode, cval=plan.cval_acc, cvout=plan.cval_out,
            params=params, words=words)
    res = cpu.from_work(dest, plan)
    return res if plan.wout == plan.out_dtype else res.astype(plan.out_dtype)


def run_sweep(mod, x, out_dtype, scalars_of, *, fill, rows=ROWS):
    """Run a one-sweep module (stencilkit.backends.cuda_sweeps) over the last two axes of ``x``.

    ``scalars_of(shape, rows, a, b)``: a launch's scalars after the two arrays; ``fill``: the
    output's initial value (stale values must all be overwritten); a module's ``scratch``
    buffer (:func:`stencilkit.backends.cuda_sweeps.run`) comes last, full of stale values.
    Returns the result.
    """
    shape = x.shape
    src = np.ascontiguousarray(x).reshape(-1, *shape[-2:])
    dst = np.full(src.shape, fill, out_dtype)
    lib = build(mod.source)
    scratch = getattr(mod, "scratch", lambda shape: None)(src.shape)
    extra = [] if scratch is None else [np.full(scratch[0], -1).astype(scratch[1])]  # (stale)
    for kname, grid, block, (strip, a, b) in mod.launches(src.shape, rows):
        launch(lib, mod.source, kname, grid, block,
               [src, dst, *scalars_of(src.shape, strip, a, b), *extra])
    return dst.reshape(shape)


FAKE_BINARY = b"\x7fELF stand-in cubin\n"
FAKE_PTX = b"// stand-in PTX\n"


class FakeCupy:
    """A stand-in for the ``cupy`` module, enough for stencilkit.backends.cuda_cpp: arrays wrap
    NumPy arrays (or the CUDA simulator's), and a RawModule's kernels run on the host through
    :func:`build`. It lets the tests drive the C++ path's glue (compile, launch, arguments)
    end to end without a GPU. Each launch is recorded in ``launched``."""

    __version__ = "fake"

    def __init__(self):
        import types

        self.launched = []
        self.grids = []  # (kernel, grid, block) of each launch
        self.options = []  # each compile's NVRTC options
        self.compiled = 0  # compile_using_nvrtc's calls
        self.loaded = []  # the files RawModule(path=...) was given
        outer = self

        ndarray = FakeCupyArray

        class Kernel:
            def __init__(self, module, name):
                self.module = module
                self.name = name
                getattr(module.lib, f"{name}_host")  # (as CuPy: an unknown name raises here)

            def __call__(self, grid, block, args):
                outer.launched.append(self.name)
                outer.grids.append((self.name, tuple(grid), tuple(block)))
                for a in args:
                    if not isinstance(a, (ndarray, np.generic, bool, int, float)):
                        raise AssertionError(f"{self.name}: CuPy cannot pass {a!r}")
                launch(self.module.lib, self.module.code, self.name, grid, block, args)

        class RawModule:
            """``code``: compiled as CuPy would (its ``-ftz=true`` added); ``path``: a file
            of :func:`compile_using_nvrtc`'s (built on the first ``get_function``, as CuPy
            loads the file then)."""

            def __init__(self, code=None, options=(), path=None):
                if path is not None:
                    outer.loaded.append(path)
                    self.path, self.lib = path, None
                    return
                outer.options.append((*options, "-ftz=true"))
                self.code = code
                self.lib = build(code)

            def get_function(self, name):
                if self.lib is None:
                    with open(self.path, "rb") as f:
                        binary = f.read()
                    head = next((h for h in (FAKE_BINARY, FAKE_PTX) if binary.startswith(h)),
                                None)
                    if head is None:
                        raise RuntimeError(f"{self.path}: not a stand-in binary "
                                           "(CUDA_ERROR_INVALID_IMAGE)")
                    self.code = binary[len(head):].decode()
                    self.lib = build(self.code)
                return Kernel(self, name)

        class CompileException(Exception):
            pass

        def compile_using_nvrtc(source, options=(), arch=None, **kw):
            """As CuPy's: NVRTC with ``options`` alone; the "binary" is the source, marked."""
            outer.options.append(tuple(options))
            outer.compiled += 1
            build(source)  # (g++ rejects what NVRTC would: raised here, as CuPy's)
            return FAKE_BINARY + source.encode(), None

        self.ndarray = ndarray
        self.RawModule = RawModule
        self.cuda = types.SimpleNamespace(
            compiler=types.SimpleNamespace(CompileException=CompileException,
                                           compile_using_nvrtc=compile_using_nvrtc),
            Device=lambda: types.SimpleNamespace(compute_capability="host"),
            runtime=types.SimpleNamespace(getDevice=lambda: 0),
            nvrtc=types.SimpleNamespace(getVersion=lambda: (0, 0)))

    def asarray(self, a):
        """A stand-in CuPy array: the same memory for device arrays, a copy of host data."""
        if isinstance(a, FakeCupyArray):
            return a
        host = getattr(a, "_ary", None)  # the simulator's device arrays wrap a NumPy array
        if host is None:  # (host data: CuPy copies it to the device)
            return FakeCupyArray(np.array(a))
        assert isinstance(host, np.ndarray) and host.flags.c_contiguous
        return FakeCupyArray(host)

    # -- the few array functions stencilkit calls on CuPy arrays ----------------------------

    fill_empty = True
    """``empty`` fills its arrays with stale bytes (a missed output shows); off for timing."""

    def empty(self, shape, dtype=np.float64):
        if not self.fill_empty:
            return FakeCupyArray(np.empty(shape, dtype))
        return FakeCupyArray(_stale(shape, dtype))

    @staticmethod
    def zeros(shape, dtype=np.float64):
        return FakeCupyArray(np.zeros(shape, dtype))

    @staticmethod
    def moveaxis(a, source, destination):
        return FakeCupyArray(np.moveaxis(a.host, source, destination))

    @staticmethod
    def ascontiguousarray(a):
        return FakeCupyArray(np.ascontiguousarray(a.host))

    @staticmethod
    def where(c, x, y):
        return FakeCupyArray(np.where(_host(c), _host(x), _host(y)))

    @staticmethod
    def rint(x):
        return FakeCupyArray(np.rint(x.host))

    @staticmethod
    def clip(x, lo, hi):
        return FakeCupyArray(np.clip(x.host, lo, hi))


def _stale(shape, dtype):
    """An uninitialised device array's stand-in: bytes that are no value a kernel would write
    (a missed output shows)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    return np.full(n, 0xA5, np.uint8).view(dtype).reshape(shape)


def _host(v):
    return v.host if isinstance(v, FakeCupyArray) else v


class FakeCupyArray:
    """A stand-in ``cupy.ndarray`` over a NumPy array (``host``), with the part of CuPy's array
    API that stencilkit uses: no implicit conversion to NumPy (``get()`` copies), a device
    pointer (``data.ptr``), ``__cuda_array_interface__``; its type's module is CuPy's, so that
    stencilkit takes it for a CuPy array (``backends.cuda.is_cupy``)."""

    __module__ = "cupy._core.core"  # (what stencilkit's CuPy checks look at)

    def __init__(self, host):
        self.host = host

    shape = property(lambda self: self.host.shape)
    dtype = property(lambda self: self.host.dtype)
    strides = property(lambda self: self.host.strides)
    itemsize = property(lambda self: self.host.itemsize)
    size = property(lambda self: self.host.size)
    ndim = property(lambda self: self.host.ndim)
    nbytes = property(lambda self: self.host.nbytes)
    flags = property(lambda self: self.host.flags)
    data = property(lambda self: types.SimpleNamespace(ptr=self.host.ctypes.data))

    @property
    def __cuda_array_interface__(self):
        h = self.host
        return {"shape": h.shape, "typestr": h.dtype.str, "data": (h.ctypes.data, False),
                "strides": None if h.flags.c_contiguous else h.strides, "version": 3}

    def get(self):
        return self.host.copy()

    def copy(self):
        return FakeCupyArray(self.host.copy())

    def reshape(self, *shape):
        h = self.host.reshape(*shape)
        assert np.shares_memory(h, self.host) or not h.size  # (CuPy: a view where it can)
        return FakeCupyArray(h)

    def astype(self, dtype, copy=True):
        if not copy and self.host.dtype == np.dtype(dtype):
            return self
        return FakeCupyArray(self.host.astype(dtype))

    def __getitem__(self, index):
        return FakeCupyArray(self.host[index])

    def __setitem__(self, index, value):
        self.host[index] = _host(value)

    def __len__(self):
        return len(self.host)

    def any(self):
        return FakeCupyArray(np.asarray(self.host.any()))

    def __bool__(self):  # (CuPy: the truth of a one-element array, copied to the host)
        return bool(self.host)

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed (stand-in CuPy: "
                        "use .get())")

    __hash__ = None


def _elementwise(name):
    def op(self, other):
        return FakeCupyArray(getattr(self.host, name)(_host(other)))
    return op


for _name in ("__ge__", "__le__", "__gt__", "__lt__", "__ne__", "__eq__", "__or__", "__and__",
              "__add__", "__sub__", "__mul__"):
    setattr(FakeCupyArray, _name, _elementwise(_name))
