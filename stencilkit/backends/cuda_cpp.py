"""CUDA backend, fast path: the generated CUDA C++ of :mod:`stencilkit.codegen_cpp`.

It is compiled by NVRTC through CuPy (``cupy.RawModule``) and launched on CuPy views of the
device arrays.

A call takes this path when CuPy (with NVRTC) is importable, the kernel runs on a real device
(not numba's simulator), ``STENCILKIT_CUDA_CPP`` is not ``0``, and the emitter covers the
kernel's body for the call's dtypes; otherwise the numba.cuda kernel of
:func:`stencilkit.codegen.generate_cuda` runs (``Stencil.explain`` says which and why).

Compiled code is cached twice on disk in stencilkit's cache folder, so a second process neither
types the kernel again nor recompiles it: the emitted source (and what launching it needs), keyed
by the kernel, the dtypes, numba's version and the emitter's own code; and the compiled binary
(``sk_bin_*.cubin``), keyed by source, options, GPU architecture, NVRTC and CuPy.

Floating point: NVRTC compiles with ``--fmad=false`` unless ``fastmath=True``, so multiply-adds
are not fused and float results equal the CPU's bit for bit (measured on an H100 for a float32
heat step: no cost in a memory-bound kernel, ``shared/gpu/anchor_cpp.py``), except for the math
functions listed in the module's ``inexact`` (CUDA's libdevice, not the CPU's libm). Subnormal
float32 values are kept (``--ftz=false``, IEEE arithmetic as on the CPU). ``cupy.RawModule``
cannot do that: it appends ``-ftz=true`` to every option list (CuPy 14, ``cupy/cuda/compiler.py``,
cupy/cupy#9576), under which float32 arithmetic and comparisons read subnormals as zero (found
on an H100: a 3 x 3 median took a subnormal for a zero). So :func:`kernels` compiles through
``cupy.cuda.compiler.compile_using_nvrtc``, which adds no such option, and loads the binary with
``cupy.RawModule(path=...)``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import threading
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import _cpp_body, _dtypes, codegen_cpp, modes
from . import cpu
from .cuda_replay import spoil

ENV = "STENCILKIT_CUDA_CPP"
"""Set to ``0`` to run every kernel through the numba.cuda fallback."""

OPTIONS = ("-std=c++17", "--fmad=false", "--ftz=false")
FASTMATH_OPTIONS = ("-std=c++17", "--fmad=true", "--ftz=false")


class Choice(NamedTuple):
    """Which CUDA kernel a call runs: ``path`` is "cpp" or "numba"; ``reason`` says why."""

    path: str
    module: object
    reason: str


@functools.lru_cache(maxsize=None)
def _emitter_digest() -> str:
    """A hash of the emitter's own code: cached sources are invalid when it changes."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent.parent
    for name in ("_cpp_body.py", "codegen_cpp.py", "modes.py", "_casts.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


def available():
    """``(ok, why)``: whether the C++ path can run in this process."""
    if os.environ.get(ENV, "1") == "0":
        return False, f"disabled by {ENV}=0"
    from .cuda import simulated

    if simulated():
        return False, "numba's CUDA simulator runs numba.cuda kernels only"
    return _cupy_nvrtc()


@functools.lru_cache(maxsize=None)
def _cupy_nvrtc():
    try:
        import cupy
        from cupy.cuda import nvrtc

        major, minor = nvrtc.getVersion()
    except Exception as exc:  # pragma: no cover - needs a broken or missing CuPy
        return False, (f"CuPy with NVRTC is needed for the fast path ({type(exc).__name__}: "
                       f"{exc}); pip install 'stencilkit[gpu]'")
    return True, f"CuPy {cupy.__version__}, NVRTC {major}.{minor}"


# -- emitted modules ------------------------------------------------------------------------------

_MODULES: dict = {}
_LOCK = threading.Lock()


def module_for(spec, in_dtypes, out_dtype, acc, param_types, *, idx64: bool,
               narrow: bool) -> codegen_cpp.Module:
    """The emitted module for these types, from memory, the disk cache or the emitter.

    Raises :class:`stencilkit._cpp_body.Unsupported` when the emitter does not cover the body.
    """
    import numba

    in_dtypes = tuple(np.dtype(d) for d in in_dtypes)
    key_parts = [spec.digest, *(d.str for d in in_dtypes), np.dtype(out_dtype).str,
                 np.dtype(acc).str, *(str(t) for t in param_types), str(idx64), str(narrow),
                 f"settings{codegen_cpp.source_settings()}", numba.__version__,
                 _emitter_digest()]
    key = hashlib.sha256("|".join(key_parts).encode()).hexdigest()[:24]
    with _LOCK:
        mod = _MODULES.get(key)
        if mod is not None:
            if isinstance(mod, _cpp_body.Unsupported):
                raise mod
            return mod
    mod = _load(key)
    if mod is None:
        try:
            mod = codegen_cpp.generate(spec, in_dtypes, out_dtype, acc, param_types,
                                       idx64=idx64, narrow=narrow)
        except _cpp_body.Unsupported as exc:
            with _LOCK:
                _MODULES[key] = exc
            raise
        _store(key, mod)
    with _LOCK:
        _MODULES[key] = mod
    return mod


def _folder():
    base = cpu.cache_dir()
    return None if base is None else base / "cuda"


def _binaries():
    """The folder of the compiled binaries (:func:`_binary`): the emitted sources' folder."""
    return _folder()


def _load(key):
    folder = _folder()
    if folder is None:
        return None
    try:
        meta = json.loads((folder / f"sk_{key}.json").read_text())
        source = (folder / f"sk_{key}.cu").read_text()
    except (OSError, ValueError):
        return None
    try:
        return codegen_cpp.Module.from_meta(meta, source)
    except (KeyError, TypeError, ValueError):
        return None


def _store(key, mod):
    folder = _folder()
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        cpu._write_once(folder / f"sk_{key}.cu", mod.source)
        cpu._write_once(folder / f"sk_{key}.json", json.dumps(mod.meta()))
    except OSError:  # a full or read-only cache: the module still runs from memory
        pass


def choose(st, plan, params) -> Choice:
    """The CUDA path of a call with ``plan`` and ``params`` (cached per types on the Stencil)."""
    ok, why = available()
    if not ok:
        return Choice("numba", None, why)
    # per call configuration first: the module's key needs numba's types of the parameters,
    # the index width and the narrowing check (about a fifth of a small call's host time);
    # the parameters are NumPy scalars here, whose Python type gives their numba type
    calls = st._modules.setdefault("cuda-calls", {})
    fast = (plan.work_dtypes, plan.wout, plan.acc0.dtype, plan.wshape, plan.mode,
            _dtypes.exact_key(plan.cval_acc), tuple(map(type, params)),
            codegen_cpp.source_settings())
    choice = calls.get(fast)
    if choice is not None:
        return choice
    key = _choice_key(st, plan, params)
    choice = st._modules.get(key)
    if choice is None:
        try:
            mod = module_for_plan(st, plan, params)
            choice = Choice("cpp", mod, f"generated CUDA C++ ({why})")
        except _cpp_body.Unsupported as exc:
            choice = Choice("numba", None, f"the C++ emitter does not cover this kernel: {exc}")
        st._modules[key] = choice
    _dtypes.remember(calls, fast, choice, 256)
    return choice


def _variant(st, plan, params):
    """What selects a call's module besides the plan's dtypes.

    ``(parameter types, 64-bit indices?, narrowing?)``.
    """
    import numba

    idx64 = codegen_cpp.index_width([math.prod(plan.wshape)], st.radius)
    return tuple(numba.typeof(p) for p in params), idx64, _narrow_ok(plan)


def _choice_key(st, plan, params) -> tuple:
    return ("cuda-path", plan.work_dtypes, plan.wout, plan.acc0.dtype,
            *_variant(st, plan, params), codegen_cpp.source_settings())


def module_for_plan(st, plan, params) -> codegen_cpp.Module:
    """The module a call of Stencil ``st`` with ``plan`` and ``params`` runs.

    See :func:`module_for`; raises :class:`stencilkit._cpp_body.Unsupported`.
    """
    param_types, idx64, narrow = _variant(st, plan, params)
    return module_for(st._spec, plan.work_dtypes, plan.wout, plan.acc0.dtype, param_types,
                      idx64=idx64, narrow=narrow)


_TILED: dict = {}


def tiled_for(st, plan, params, steps):
    """The temporal-blocking module of a call (:mod:`stencilkit.codegen_tiled`), or None.

    It takes up to ``steps`` steps a launch (fewer where shared memory holds fewer). None where
    it does not apply: the C++ path off, not a 2-D kernel, a body the emitter does not cover,
    a grid too tall.
    """
    from .. import codegen_tiled

    if steps < 2 or not available()[0] or codegen_tiled.unsupported(
            st._spec, plan.work_dtypes, plan.wout, plan.mode):
        return None
    found = codegen_tiled.fits(st.radius, plan.wout.itemsize, steps)
    if found is None or codegen_cpp._cdiv(plan.wshape[1], found[1][0]) > codegen_cpp.MAX_GRID_YZ:
        return None
    param_types, idx64, narrow = _variant(st, plan, params)
    key = (st._spec.digest, plan.work_dtypes, plan.wout, plan.acc0.dtype, param_types, idx64,
           narrow, found[0], codegen_tiled.COLUMNS)
    with _LOCK:
        mod = _TILED.get(key)
    if mod is None:
        try:
            mod = codegen_tiled.generate(st._spec, plan.work_dtypes, plan.wout, plan.acc0.dtype,
                                         param_types, idx64=idx64, narrow=narrow,
                                         steps=found[0])
        except _cpp_body.Unsupported:
            mod = False
        with _LOCK:
            _TILED[key] = mod
    return mod or None


def _narrow_ok(plan) -> bool:
    """Narrowing assumes reads lie in the inputs' ranges; cval (constant mode) must too."""
    if plan.mode != modes.CONSTANT or plan.acc0.dtype.kind not in "iub":
        return True
    c = int(plan.cval_acc)
    for d in plan.work_dtypes:
        if d.kind in "iu":
            info = np.iinfo(d)
            if not info.min <= c <= info.max:
                return False
        elif d.kind == "b" and c not in (0, 1):
            return False
    return True


# -- compiling and launching -------------------------------------------------------------------

_KERNELS: dict = {}


def kernels(mod, fastmath: bool) -> dict:
    """``{name: kernel}`` of ``mod``, compiled once by NVRTC for the current GPU.

    Each kernel is called ``kernel(grid, block, args)``: CuPy's ``Function`` on the current
    device (:func:`_launcher`). The binary is kept in stencilkit's cache folder
    (:func:`_binary`). Raises :class:`CompileError` if NVRTC rejects the module (again at once
    on later calls: a rejection is remembered).
    """
    import cupy

    spoil()  # (a launch follows: a route that offers a replay covers it; see cuda_replay)
    key = (mod.source, fastmath, cupy.cuda.runtime.getDevice())
    found = _KERNELS.get(key)
    if isinstance(found, CompileError):
        raise found
    if found is None:
        from cupy.cuda.compiler import CompileException

        try:
            raw = _raw_module(mod.source, FASTMATH_OPTIONS if fastmath else OPTIONS,
                              mod.kernels[0])
            found = {name: _launcher(raw.get_function(name)) for name in mod.kernels}
        except CompileException as exc:
            text = str(exc).strip()
            _KERNELS[key] = CompileError(text.splitlines()[0] if text else type(exc).__name__)
            raise _KERNELS[key] from exc
        _KERNELS[key] = found
    return found


def _launcher(kernel):
    """What launches ``kernel`` (a RawModule's) with the least work at each call.

    A ``cupy.RawKernel`` forwards each call to its ``cupy.cuda.function.Function`` for the
    current device, found anew at every launch (the device asked for, a per-device list read,
    two calls with keyword arguments); :data:`_KERNELS` is per device already, so it keeps
    that Function (``RawKernel.kernel``, which ``RawModule.get_function`` has loaded). Other
    kernels (the tests' stand-in, another CuPy) stay as they are.
    """
    if (type(kernel).__module__, type(kernel).__name__) != ("cupy._core.raw", "RawKernel"):
        return kernel
    try:
        fn = kernel.kernel
        plain = not getattr(kernel, "enable_cooperative_groups", False)
    except Exception:  # noqa: BLE001 (another CuPy: its RawKernel launches)
        return kernel
    return fn if plain and (type(fn).__module__, type(fn).__name__) in _CUPY_KERNELS else kernel


def _raw_module(source: str, options: tuple, probe: str):
    """A ``cupy.RawModule`` of ``source`` compiled with ``options`` and no others.

    From the cached binary (:func:`_binary`) where one was kept (loaded at once by getting its
    kernel ``probe``: a damaged file is compiled again). Where stencilkit has no
    writable cache folder, or this CuPy lacks ``compile_using_nvrtc``, CuPy compiles it (with
    its ``-ftz=true``: float32 subnormals read as zero), with a warning saying so.
    """
    import cupy

    try:
        path, cached = _binary(source, options)
    except _NoBinary as exc:
        _warn_ftz(str(exc))
        return cupy.RawModule(code=source, options=options)
    raw = cupy.RawModule(path=str(path))
    if cached:
        try:
            raw.get_function(probe)
        except Exception:  # a damaged or foreign file: compile again over it
            path, _ = _binary(source, options, fresh=True)
            raw = cupy.RawModule(path=str(path))
    return raw


class _NoBinary(Exception):
    """:func:`_binary` cannot give a file (the message says why)."""


def _binary(source: str, options: tuple, fresh: bool = False):
    """``(path, cached)``: the file of ``source`` compiled by NVRTC with ``options`` alone.

    Named by a hash of the source, the options, the GPU's compute capability, NVRTC's version
    and CuPy's, in stencilkit's cache folder; written whole or not at all (a rename), so
    processes compiling the same module at once do not see each other's half-written files.
    ``fresh``: compile even where a file exists (it failed to load).
    """
    import cupy
    from cupy.cuda import compiler

    compile_nvrtc = getattr(compiler, "compile_using_nvrtc", None)
    if compile_nvrtc is None:
        raise _NoBinary(f"CuPy {cupy.__version__} has no compile_using_nvrtc")
    folder = _binaries()
    if folder is None:
        raise _NoBinary("no writable cache folder for the compiled kernels")
    arch = cupy.cuda.Device().compute_capability
    parts = [source, *options, str(arch), repr(cupy.cuda.nvrtc.getVersion()),
             cupy.__version__]
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    # a cubin, or PTX (CUPY_COMPILE_WITH_PTX, or a GPU newer than NVRTC): the driver loads either
    kept = [folder / f"sk_bin_{key}{suffix}" for suffix in (".cubin", ".ptx")]
    for path in kept:
        if not fresh and path.is_file():
            return path, True
    out = compile_nvrtc(source, options)  # (CuPy 14: (binary, names); earlier: the binary)
    binary = out[0] if isinstance(out, tuple) else out
    if isinstance(binary, str):
        binary = binary.encode()
    path = kept[0] if binary.startswith(b"\x7fELF") else kept[1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        cpu._write_once(path, binary)
    except OSError as exc:
        raise _NoBinary(f"the compiled kernel could not be written to {folder} ({exc})") from exc
    return path, False


@functools.lru_cache(maxsize=None)
def _warn_ftz(why: str) -> None:
    """Warn once per reason that CuPy compiles the kernels, flushing float32 subnormals."""
    warnings.warn(f"stencilkit's CUDA kernels are compiled by cupy.RawModule ({why}): CuPy adds "
                  "-ftz=true, so float32 subnormal values read as zero on the GPU and such "
                  "results can differ from the CPU's", RuntimeWarning, stacklevel=4)


class CompileError(Exception):
    """NVRTC rejected an emitted module."""


def packer(found: dict):
    """How the launches of ``found``'s kernels (:func:`kernels`) best take their scalars.

    A function that converts a NumPy scalar, once, into the object CuPy's launch would build
    from it at every launch (CuPy 14's ``cupy._core._scalar.CScalar``, which a launch passes
    on as it is: ``cupy/cuda/function.pyx``'s ``_pointer``), or None: NumPy scalars, which
    CuPy converts at each launch. That conversion is about 0.2 us an argument (ten: 2.0 us;
    real CuPy 14.2 on this project's 2-core machine, no GPU: ``tools/host_time.py
    --arguments``), and a launch takes 6-10 scalars. The packed scalars are kept with the
    recorded launches (:data:`_LAUNCHES`, keyed by the packer), so only a configuration's
    first call packs them. None for other kernels (the tests' stand-in, another CuPy).
    """
    return _packer(type(next(iter(found.values()), None)))


_CUPY_KERNELS = {("cupy._core.raw", "RawKernel"), ("cupy.cuda.function", "Function")}
"""CuPy's kernel classes (RawModule's kernels, and the functions they launch through)."""


@functools.lru_cache(maxsize=None)
def _packer(cls):
    if (cls.__module__, cls.__name__) not in _CUPY_KERNELS:
        return None
    try:  # (a private class of CuPy's: checked to take a scalar and keep its type and value)
        from cupy._core._scalar import CScalar
        from cupy.cuda.function import CPointer

        probe = CScalar(np.float32(1.5))
        kept = np.dtype(getattr(probe, "dtype", None) or getattr(probe, "descr", None))
        if not (isinstance(probe, CPointer) and kept == np.float32 and probe.value == 1.5):
            return None
    except Exception:  # noqa: BLE001 (another CuPy: its launches convert the NumPy scalars)
        return None
    return CScalar


def packed(pack, scalars) -> tuple:
    """``scalars`` (NumPy scalars of the C types) converted by ``pack`` (:func:`packer`)."""
    return tuple(scalars) if pack is None else tuple(pack(v) for v in scalars)


def as_cupy(a):
    """A CuPy view of a device array (CuPy arrays pass through; numba's are wrapped)."""
    import cupy

    return a if isinstance(a, cupy.ndarray) else cupy.asarray(a)


def run(mod, arrays, out, plan, params, fastmath: bool):
    """Launch ``mod`` on C-contiguous ``(B, *core)`` device arrays into ``out``.

    Returns ``launch(arrays, out, params=None)``: the same launches on other CuPy arrays of
    the same shapes, with other parameters of the same types (None: these). It launches
    nothing and returns None where the addresses would take another module variant (32-bit
    words or not), else ``out`` (for :mod:`.cuda_replay`). Raises :class:`CompileError`
    (before launching anything) if NVRTC rejects the module.
    """
    arrays = [as_cupy(a) for a in arrays]
    out = as_cupy(out)
    words = _words(mod, arrays, out)
    wshape = tuple(out.shape)
    found = kernels(mod, fastmath)
    pack = packer(found)

    def calls_for(params):
        key = (mod.source, fastmath, words, wshape, plan.mode,
               _dtypes.exact_key(plan.cval_acc), _dtypes.exact_key(plan.cval_out),
               _dtypes.exact_key(tuple(params)), codegen_cpp.launch_settings(), pack)
        calls = _LAUNCHES.get(key)
        if calls is None:
            calls = [(kname, grid, block,
                      packed(pack, mod.scalars(wshape, rows, c0, c1, plan.mode, plan.cval_acc,
                                               plan.cval_out, params)))
                     for kname, grid, block, (rows, c0, c1) in mod.launches(wshape, words)]
            _dtypes.remember(_LAUNCHES, key, calls)
        return [(found[kname], grid, block, scalars) for kname, grid, block, scalars in calls]

    first, first_key = calls_for(params), _dtypes.exact_key(tuple(params))

    def launch(arrays, out, params=None):  # (None: the first call's)
        if _words(mod, arrays, out) != words:
            return None
        calls = first if params is None or _dtypes.exact_key(tuple(params)) == first_key \
            else calls_for(params)
        for kernel, grid, block, scalars in calls:
            kernel(grid, block, (*arrays, out, *scalars))
        return out

    launch(arrays, out)
    return launch


def _words(mod, arrays, out) -> bool:
    """Whether ``mod``'s launches on these CuPy arrays read and write 32-bit words."""
    if not mod.cols:  # (no word kernel)
        return False
    items = [(a.data.ptr, a.shape[-1], a.itemsize) for a in arrays]
    return codegen_cpp.words_ok(mod, items, (out.data.ptr, out.shape[-1], out.itemsize))


_LAUNCHES: dict = {}
"""A call configuration's launches (kernel, grid, block, scalar arguments), worked out once:
the geometry and the typed scalars were about a third of a small call's host time. The
scalars are kept as the launches take them (:func:`packed`; the packer is part of each key)."""


def run_tiled(mod, arrays, out, nsteps, plan, params, fastmath: bool) -> None:
    """Advance the state ``arrays[0]`` by ``nsteps`` steps in one launch, into ``out``.

    ``arrays`` (the state, then the fixed arrays) and ``out``: C-contiguous ``(B, n0, n1)``
    device arrays; ``mod``: a tiled module (at most ``mod.steps`` steps).

    Raises :class:`CompileError` (before launching anything) if NVRTC rejects the module.
    """
    found = kernels(mod, fastmath)
    arrays, out = [as_cupy(x) for x in arrays], as_cupy(out)
    wshape = tuple(out.shape)
    for kname, grid, block in mod.launches(wshape):
        found[kname](grid, block, (*arrays, out, *mod.scalars(wshape, nsteps, plan.mode,
                                                             plan.cval_acc, plan.cval_out,
                                                             params)))


def compile_failed(exc) -> None:
    """Warn that NVRTC rejected an emitted module (a stencilkit bug); the caller falls back."""
    warnings.warn(f"stencilkit: NVRTC could not compile the generated CUDA C++ ({exc}); the "
                  f"numba.cuda kernel runs instead. Please report this; {ENV}=0 silences it by "
                  "always using numba.cuda", RuntimeWarning, stacklevel=3)


def fall_back(st, plan, params, reason: str) -> None:
    """Make later calls with these types take the numba.cuda kernel (after a compile error)."""
    st._modules[_choice_key(st, plan, params)] = Choice("numba", None, reason)
    st._modules.pop("cuda-calls", None)  # (the per-call answers: worked out again)


def resources(source: str, arch: str = "sm_90", fastmath: bool = False) -> dict:
    """What ptxas gives each kernel of ``source``, no GPU needed.

    ``{kernel: {"registers", "spill_stores", "spill_loads", "stack", "shared"}}`` (bytes but
    the registers).

    NVRTC to PTX (:func:`ptx`), then nvJitLink to a cubin for ``arch`` (``cuda-bindings`` and
    ``nvidia-nvjitlink-cu12``); its log says what every kernel uses: registers limit how many
    threads an SM holds, spills and stack are local-memory traffic.
    """
    import re

    log = _link(source, arch, fastmath)[1]
    found = {}
    for name, body in re.findall(r"Compiling entry function '(\w+)'(.*?)(?=Compiling entry|$)",
                                 log, re.S):
        def num(pattern, body=body):
            m = re.search(pattern, body)
            return int(m.group(1)) if m else 0

        found[name] = {"registers": num(r"Used (\d+) registers"),
                       "spill_stores": num(r"(\d+) bytes spill stores"),
                       "spill_loads": num(r"(\d+) bytes spill loads"),
                       "stack": num(r"(\d+) bytes stack frame"),
                       "shared": num(r"(\d+) bytes smem")}
    return found


def cubin(source: str, arch: str = "sm_90", fastmath: bool = False) -> bytes:
    """The device code (cubin) of ``source`` for ``arch``, no GPU needed.

    As :func:`resources`; ``nvdisasm -c`` shows its SASS (``tools/kernel_resources.py
    --sass``).
    """
    return _link(source, arch, fastmath)[0]


def _link(source, arch, fastmath):
    """``(cubin, ptxas log)``: NVRTC to PTX, nvJitLink to ``arch``."""
    from cuda.bindings import nvjitlink

    text = ptx(source, "compute_" + arch.split("_")[1], fastmath).encode()
    handle = nvjitlink.create(3, [f"-arch={arch}", "-verbose", "-O3"])
    try:
        nvjitlink.add_data(handle, nvjitlink.InputType.PTX, text, len(text), "stencilkit.ptx")
        nvjitlink.complete(handle)
        log = bytearray(nvjitlink.get_info_log_size(handle))
        nvjitlink.get_info_log(handle, log)
        code = bytearray(nvjitlink.get_linked_cubin_size(handle))
        nvjitlink.get_linked_cubin(handle, code)
    finally:
        nvjitlink.destroy(handle)
    return bytes(code), log.decode(errors="replace").replace("\x00", "")


def ptx(source: str, arch: str = "compute_80", fastmath: bool = False) -> str:
    """Compile ``source`` to PTX with NVRTC (no GPU or driver needed; for checks and tools).

    Uses the ``cuda-bindings`` package and an NVRTC library (``nvidia-cuda-nvrtc-cu12`` or a
    CUDA toolkit); raises RuntimeError with NVRTC's log when the source does not compile.
    """
    from cuda.bindings import nvrtc

    def check(result):
        err = result[0]
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise RuntimeError(f"NVRTC: {err}")
        return result[1:]

    (prog,) = check(nvrtc.nvrtcCreateProgram(source.encode(), b"stencilkit.cu", 0, [], []))
    try:
        opts = [o.encode() for o in (FASTMATH_OPTIONS if fastmath else OPTIONS)]
        opts.append(f"--gpu-architecture={arch}".encode())
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            (size,) = check(nvrtc.nvrtcGetProgramLogSize(prog))
            log = b" " * size
            check(nvrtc.nvrtcGetProgramLog(prog, log))
            text = log.decode(errors="replace")
            raise RuntimeError(f"NVRTC could not compile the module:\n{text}")
        (size,) = check(nvrtc.nvrtcGetPTXSize(prog))
        buf = b" " * size
        check(nvrtc.nvrtcGetPTX(prog, buf))
        return buf.decode(errors="replace").rstrip("\x00 ")
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
