"""CUDA backend: device arrays, and host arrays with ``target="cuda"``.

:class:`CudaBackend` runs a planned Stencil call with the generated CUDA C++ kernels
(:mod:`stencilkit.backends.cuda_cpp`) or the generated numba.cuda fallback, lowers the filters'
passes to generated stencils, and runs resampling with :mod:`stencilkit.backends.cuda_blocks`.

Nothing here is imported by ``import stencilkit``; the first call with a device array (or
``target="cuda"``) imports numba.cuda. Device arrays are CuPy arrays, numba device arrays and
the CUDA simulator's arrays (``NUMBA_ENABLE_CUDASIM=1``, which lack
``__cuda_array_interface__``; recognised by their type's module, so that CI without a GPU runs
the same dispatch). Results come back as the kind of array that came in: CuPy for CuPy, numba
device arrays for numba's, host NumPy arrays for ``target="cuda"`` on host input.

CuPy arrays are reshaped, transposed and converted on the device. numba device arrays have no
transpose or dtype conversion of their own, so a call that needs one of those for them (core
axes that are not the last ones, float16, a dtype the kernel does not take, a strided view)
goes through host memory for that step; contiguous arrays of a computed dtype, the usual case,
never leave the device.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from .. import _dtypes
from .._errors import StencilError, StencilTypeError
from . import Backend, cuda_replay, is_device_array  # noqa: F401 (is_device_array: reexported)
from .cuda_replay import spoil


def is_cupy(a) -> bool:
    """True for CuPy arrays."""
    return type(a).__module__.startswith("cupy")


def as_is(a, dtype=None) -> bool:
    """Whether a kernel can take ``a`` as it is: a C-contiguous CuPy array (of ``dtype``).

    A kernel takes an array's address, so a replay (:mod:`.cuda_replay`) launches on such an
    array directly, without the views and checks of a first call.
    """
    return is_cupy(a) and bool(a.flags.c_contiguous) and (dtype is None or a.dtype == dtype)


def simulated() -> bool:
    """True when numba runs CUDA kernels in its simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)


@functools.lru_cache(maxsize=None)
def _probe():
    """``(ok, why)``: a usable device (or the simulator), and which kernel paths work on it."""
    try:
        from numba import cuda
    except Exception as exc:  # pragma: no cover - numba without its CUDA package
        return False, f"numba.cuda cannot be imported ({exc}); pip install 'stencilkit[gpu]'"
    if simulated():
        return True, "numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1): correct, not fast"
    try:
        if not cuda.is_available():
            return False, ("numba finds no usable CUDA GPU or driver (no device, or libcuda / "
                           "the CUDA runtime missing); numba.cuda.detect() says more")
        device = cuda.get_current_device()
        name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
        cc = ".".join(map(str, device.compute_capability))
    except Exception as exc:  # pragma: no cover - needs a broken driver
        return False, f"CUDA initialisation failed: {exc}"
    from . import cuda_cpp

    cpp_ok, cpp_why = cuda_cpp.available()
    problem = fallback_problem()
    if not cpp_ok and problem:
        return False, (f"{name}: neither kernel path works here: generated CUDA C++: {cpp_why}; "
                       f"numba.cuda: {problem}")
    paths = [f"generated CUDA C++ ({cpp_why})" if cpp_ok else
             f"no generated CUDA C++ ({cpp_why})",
             f"numba.cuda fallback: {problem}" if problem else "numba.cuda fallback"]
    return True, f"{name} (compute capability {cc}); kernels: {'; '.join(paths)}"


@functools.lru_cache(maxsize=None)
def fallback_problem():
    """Why the numba.cuda kernels cannot compile here, or None (checked without compiling).

    numba-cuda 0.30.4 and earlier register ``np.row_stack``, which NumPy 2.5 removed: their
    first kernel compile fails with an AttributeError deep inside numba. The ``gpu`` extra
    therefore asks for ``numpy<2.5``; this check names the problem where that did not happen.
    """
    if simulated() or hasattr(np, "row_stack"):
        return None
    try:
        import importlib

        importlib.import_module("numba_cuda.numba.cuda.np.arrayobj")
    except ModuleNotFoundError:
        return None  # numba's own CUDA target, or a layout this check does not know
    except Exception as exc:
        try:
            from importlib.metadata import version

            which = f"numba-cuda {version('numba-cuda')}"
        except Exception:
            which = "numba-cuda"
        return (f"{which} cannot compile kernels with NumPy {np.__version__} ({type(exc).__name__}"
                f": {exc}); install 'numpy<2.5' (the stencilkit[gpu] extra does) or a newer "
                "numba-cuda")
    return None


def cuda_available(explain: bool = False):
    """Whether stencilkit can run kernels with CUDA, and (``explain=True``) what it found.

    Parameters
    ----------
    explain : bool, optional
        Return ``(available, reason)`` instead of a bool: the GPU's name and compute capability,
        the simulator, or why CUDA cannot be used.

    Returns
    -------
    bool or (bool, str)

    Examples
    --------
    >>> import stencilkit as sk
    >>> ok, why = sk.cuda_available(explain=True)
    >>> isinstance(ok, bool) and isinstance(why, str)
    True
    """
    ok, why = _probe()
    return (ok, why) if explain else ok


def require(where: str) -> None:
    """Raise a StencilError naming why CUDA cannot be used, if it cannot."""
    ok, why = _probe()
    if not ok:
        raise StencilError(f"{where}: the CUDA backend is not available: {why}. Pass host "
                           "(NumPy) arrays and no target='cuda' to run on the CPU")


def cuda():
    """The numba.cuda module (imported on first use)."""
    from numba import cuda as module

    return module


# -- arrays ------------------------------------------------------------------------------------


def to_host(a) -> np.ndarray:
    """A host (NumPy) copy of a device array; NumPy arrays pass through."""
    if isinstance(a, np.ndarray):
        return a
    spoil()  # (device work outside a route: no replay; see cuda_replay)
    if is_cupy(a):
        return a.get()
    return a.copy_to_host()


def empty(shape, dtype, like=None):
    """A device array of ``shape`` and ``dtype`` of the same kind as ``like``."""
    if like is not None and is_cupy(like):
        import cupy

        return cupy.empty(shape, dtype)
    return cuda().device_array(shape, dtype)


def zeros(shape, dtype, like=None):
    """A zero-filled device array of the same kind as ``like``."""
    spoil()
    if like is not None and is_cupy(like):
        import cupy

        return cupy.zeros(shape, dtype)
    return cuda().to_device(np.zeros(shape, dtype))


def _contiguous(a) -> bool:
    if is_cupy(a):
        return bool(a.flags.c_contiguous)
    return bool(a.is_c_contiguous())


def work(a, axes, moved, wshape, dtype, like):
    """``a`` as a C-contiguous ``(B, *core)`` device array of ``dtype`` (a copy when needed)."""
    k = len(wshape) - 1
    if isinstance(a, np.ndarray):  # host input: arrange it on the host, copy it in once
        spoil()
        if moved:
            a = np.moveaxis(a, axes, range(-k, 0))
        host = np.ascontiguousarray(a, dtype=dtype).reshape(wshape)
        if like is not None and is_cupy(like):
            import cupy

            return cupy.asarray(host)
        return cuda().to_device(host)
    if is_cupy(a):
        import cupy

        if moved:
            a = cupy.moveaxis(a, axes, range(-k, 0))
        if a.dtype == dtype and a.flags.c_contiguous:  # (the usual case: a view, one call)
            return a.reshape(wshape)
        spoil()
        return cupy.ascontiguousarray(a.astype(dtype, copy=False)).reshape(wshape)
    if not moved and np.dtype(a.dtype) == dtype and _contiguous(a):
        return a.reshape(wshape)
    # numba device arrays cannot transpose or convert on the device: via the host
    return work(to_host(a), axes, moved, wshape, dtype, like)


def result(dest, batch, core, axes, moved, out_dtype, like):
    """The ``(B, *core)`` device result as the caller's kind of array, shape and dtype."""
    spoil()
    k = len(core)
    if like is None:  # host input, target="cuda"
        res = to_host(dest).reshape(batch + core)
        if moved:
            res = np.moveaxis(res, range(-k, 0), axes)
        return res if res.dtype == out_dtype else res.astype(out_dtype)
    if is_cupy(like):
        import cupy

        res = dest.reshape(batch + core)
        if moved:
            res = cupy.moveaxis(res, range(-k, 0), axes)
        return res if res.dtype == out_dtype else res.astype(out_dtype)
    if not moved and np.dtype(dest.dtype) == out_dtype:
        return dest.reshape(batch + core)
    res = result(dest, batch, core, axes, moved, out_dtype, None)
    return cuda().to_device(np.ascontiguousarray(res))


def _span(a):
    """(first byte, end byte) of a device array's memory, or None if unknown."""
    if is_cupy(a):  # (its attributes: CuPy builds the interface's dict anew on each call)
        start = a.data.ptr
        if a.flags.c_contiguous:
            return (start, start + a.nbytes)
        return _extent(start, a.shape, a.strides, a.itemsize)
    iface = getattr(a, "__cuda_array_interface__", None)
    if iface is not None:
        return _extent(int(iface["data"][0]), iface["shape"], iface.get("strides"),
                       np.dtype(iface["typestr"]).itemsize)
    host = getattr(a, "_ary", None)  # the simulator's arrays wrap a NumPy array
    if isinstance(host, np.ndarray):
        return host
    return None


def _extent(start, shape, strides, itemsize):
    """(first byte, end byte) of an array at ``start`` (``strides`` None: C order)."""
    if not shape or math.prod(shape) == 0:
        return (start, start)
    if strides is None:
        return (start, start + math.prod(shape) * itemsize)
    lo = sum(s * (n - 1) for s, n in zip(strides, shape) if s < 0)
    hi = sum(s * (n - 1) for s, n in zip(strides, shape) if s > 0)
    return (start + lo, start + hi + itemsize)


def may_share_memory(a, b) -> bool:
    """Conservative overlap test of two device arrays (True when it cannot tell)."""
    sa, sb = _span(a), _span(b)
    if isinstance(sa, np.ndarray) and isinstance(sb, np.ndarray):
        return bool(np.may_share_memory(sa, sb))
    if isinstance(sa, tuple) and isinstance(sb, tuple):  # (an empty one shares nothing)
        return sa[0] < sa[1] and sb[0] < sb[1] and sa[0] < sb[1] and sb[0] < sa[1]
    return True


def deliver(res, out, out_dtype=None):
    """A kernel's device result as the caller asked for it.

    Converted to ``out_dtype`` (NumPy's cast) where that differs, then copied into ``out``
    (returned) where one is given.
    """
    if out_dtype is not None and np.dtype(res.dtype) != np.dtype(out_dtype):
        res = astype(res, out_dtype)
    if out is None:
        return res
    copy_into(out, res)
    return out


def copy_into(out, src) -> None:
    """Copy the device array ``src`` (same shape and dtype) into the device array ``out``."""
    spoil()
    if is_cupy(out):
        import cupy

        out[...] = cupy.asarray(src)
    elif _contiguous(out) and _contiguous(src):
        out.copy_to_device(src)
    else:
        out[...] = to_host(src)


def astype(a, dtype):
    """The device array ``a`` converted to ``dtype`` (NumPy's unsafe cast), a new array."""
    spoil()
    if is_cupy(a):
        return a.astype(dtype)
    return cuda().to_device(to_host(a).astype(dtype))  # numba arrays convert on the host


# -- kernels -------------------------------------------------------------------------------------


def launches(radius, wshape):
    """The numba.cuda kernels' launches: ``[(kernel, grid, block, (rows, c0, c1))]``.

    The same geometry as the generated CUDA C++ (one column per thread, strips of rows);
    under the simulator, few threads (each is a Python thread).
    """
    from ..codegen_cpp import BLOCK_PLAIN, plan_launches

    return plan_launches(radius, wshape, 1, "_sk_cuda_interior", "_sk_cuda_border",
                         BLOCK_PLAIN, simulator=simulated())


def run(module, arrays, out, params, mode, cval_acc, cval_out, acc_marker, radius) -> None:
    """Launch the generated numba.cuda kernels on ``(B, *core)`` device arrays into ``out``."""
    spoil()
    calls = []
    for kernel, grid, block, (rows, c0, c1) in launches(radius, tuple(out.shape)):
        if kernel == "_sk_cuda_interior":
            calls.append((module._sk_cuda_interior[grid, block],
                          (*arrays, out, rows, acc_marker, *params)))
        else:
            calls.append((module._sk_cuda_border[grid, block],
                          (*arrays, out, c0, c1, mode, cval_acc, cval_out, acc_marker, *params)))
    if not simulated():
        for launch, args in calls:
            launch(*args)
        return
    # Compiled code wraps integers and overflows floats silently; the simulator's NumPy scalars
    # warn instead. Its threads do not inherit np.errstate, so the warnings are filtered.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for launch, args in calls:
            launch(*args)


def synchronize() -> None:
    """Wait for the device's queued work (for timing); nothing under the simulator."""
    if not simulated():
        cuda().synchronize()


# -- the backend ---------------------------------------------------------------------------------

def module(st, fastmath: bool, idx64: bool = True):
    """Stencil ``st``'s generated numba.cuda module (the fallback kernels), cached on ``st``."""
    from .. import codegen
    from . import cpu

    key = ("cuda", bool(fastmath), bool(idx64))
    mod = st._modules.get(key)
    if mod is None:
        if not simulated():  # NumPy's ufuncs numba-cuda's CUDA target lacks (np.sqrt, ...)
            from . import cuda_ufuncs

            cuda_ufuncs.install()
        header = f"# globals: {sorted(st._spec.global_keys.items())!r}\n"
        # numba-cuda (0.30) cannot cache kernels that link libraries ("Cannot pickle
        # CUDACodeLibrary with linking files", seen on an H100): compiled once per process
        mod = cpu.load_module(
            lambda cache: header + codegen.generate_cuda(
                st._spec, fastmath=key[1], cache=False, idx64=key[2],
                simulator=simulated()),
            _simulator_globals(st._spec.globals) if simulated() else st._spec.globals,
        )
        st._modules[key] = mod
    return mod


def _simulator_globals(namespace):
    """A kernel's globals for the simulator: numbers and operations with numba's types.

    The simulator runs kernels on NumPy scalars, where a Python number is "weak" (NEP 50):
    ``x * W`` with a float32 ``x`` and ``W = 0.1`` at module level stayed float32 there and is
    float64 in compiled code, so the kernel's numbers (alone or in tuples) become int64/float64
    scalars (the body's literals get the same treatment: ``codegen._StrongLiterals``). The
    generated source's operators call ``_sk_ops`` (:mod:`stencilkit._scalar_ops`: numba's
    signatures), ``math``'s functions (also bound by name) give NaN or infinity where
    Python's raise (``math.sqrt(-1.0)``) and float32 for float32, NumPy's ufuncs run the loop
    numba picks, and the builtin ``min``/``max``/``abs`` return numba's types. Only for the
    simulator: on a device numba types a Python int as a literal (which a heterogeneous
    tuple's index needs) and an np.int64 not.
    """
    from .. import _scalar_ops
    from ..kernel import library_function

    def strong(value):
        if value is math:
            return _scalar_ops.math_module()
        if value is np:
            return _scalar_ops.numpy_module()
        if isinstance(value, np.ufunc):
            return _scalar_ops.ufunc(value)  # (from numpy import hypot)
        if library_function(value) == "math":
            return getattr(_scalar_ops.math_module(), value.__name__)  # (from math import exp)
        if isinstance(value, float):
            return np.float64(value)
        if isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63:
            return np.int64(value)
        return value

    return {**_scalar_ops.BUILTINS, "_sk_ops": _scalar_ops.OPS,
            **{name: tuple(strong(v) for v in value) if isinstance(value, tuple)
               else strong(value) for name, value in namespace.items()}}


def _scalars(params):
    # Scalars as the NumPy types numba gives them (int64, float64, ...): the simulator then
    # promotes as compiled code does (a Python float next to float32 would stay float32).
    # (Python floats and bools by their type: np.asarray's conversion took a microsecond)
    return tuple(p if isinstance(p, np.generic) else
                 _PY_SCALARS[type(p)](p) if type(p) in _PY_SCALARS else np.asarray(p)[()]
                 for p in params)


_PY_SCALARS = {float: np.float64, bool: np.bool_}


def plan_call(st, args, kwargs):
    """``(plan, params, arrays, overrides)`` of a call ``st(*args, **kwargs)`` on this backend.

    Needs no GPU; ``params`` are the NumPy scalars the kernels receive.
    """
    arrays, params, overrides = st._split_args(args, kwargs)
    host = st._check_arrays(arrays, params, None, BACKEND)
    plan = st._plan(host, None, overrides)
    return plan, _scalars(params), host, overrides


def source(st, args, kwargs) -> str:
    """The CUDA C++ of a call (see ``Stencil.cuda_source``)."""
    from .. import _cpp_body
    from . import cuda_cpp

    plan, params, _, _ = plan_call(st, args, kwargs)
    try:
        mod = cuda_cpp.module_for_plan(st, plan, params)
    except _cpp_body.Unsupported as exc:
        raise StencilError(f"{st._where}: the CUDA C++ emitter does not cover this "
                           f"kernel ({exc}); on a GPU the numba.cuda kernel runs it") from None
    return mod.source


def run_plan(st, plan, work_, dest, params):
    """One application on the device.

    The generated CUDA C++ kernels where the emitter covers the kernel and CuPy is at hand
    (returns :func:`.cuda_cpp.run`'s ``launch``), the numba.cuda kernel otherwise (returns
    None).
    """
    from ..codegen_cpp import index_width
    from . import cuda_cpp

    choice = cuda_cpp.choose(st, plan, params)
    if choice.path == "cpp":
        try:
            return cuda_cpp.run(choice.module, work_, dest, plan, params, plan.variant[0])
        except cuda_cpp.CompileError as exc:
            cuda_cpp.compile_failed(exc)
            cuda_cpp.fall_back(st, plan, params, f"NVRTC failed: {exc}")
            choice = choice._replace(reason=f"NVRTC failed: {exc}")
    problem = fallback_problem()
    if problem:
        raise StencilError(f"{st._where}: this call needs the numba.cuda kernel "
                           f"({choice.reason}), which cannot run here: {problem}")
    idx64 = index_width([math.prod(plan.wshape)], st.radius)
    run(module(st, plan.variant[0], idx64), work_, dest, params,
        plan.mode, plan.cval_acc, plan.cval_out, plan.acc0, st.radius)


def _replay_key(st, arrays, scalars, out, overrides):
    """What a call's replay is kept under (:meth:`CudaBackend.apply`), or None (not kept).

    Every array's configuration (all device arrays), the parameters' NumPy types
    (``scalars``: as :func:`_scalars` gives them; the module takes their types, their values
    go to the launch), the overrides and the output's (:func:`.cuda_replay.key`).
    """
    for a in arrays:
        if type(a) is np.ndarray or not cuda_replay.is_device(a):
            return None
    if out is not None and (type(out) is np.ndarray or not cuda_replay.is_device(out)):
        return None
    array_key = cuda_replay.array_key
    try:
        found = cuda_replay.key(
            tuple([array_key(a) for a in arrays]), tuple([type(v) for v in scalars]),
            _dtypes.exact_key(tuple(sorted(overrides.items()))) if overrides else (),
            None if out is None else array_key(out))
        hash(found)
    except TypeError:  # (an array among the overrides)
        return None
    return found


def _destination(plan, work_, out, like):
    """``(dest, direct)``: ``out`` itself as the work output where it can be, else a new one."""
    if (out is not None and like is not None and plan.wout == plan.out_dtype
            and not plan.moved and out.dtype.isnative and _contiguous(out)
            and not any(may_share_memory(out, w) for w in work_)):
        return out.reshape(plan.wshape), True
    return empty(plan.wshape, plan.wout, like), False


def _delivered(plan, dest, direct, out, like):
    """The call's result from the work output ``dest`` (:func:`_destination`)."""
    if direct:
        return out
    res = result(dest, plan.batch, plan.core, plan.axes, plan.moved, plan.out_dtype, like)
    if out is None:
        return res
    if like is None:
        np.copyto(out, res, casting="unsafe")
    else:
        copy_into(out, res)
    return out


class CudaBackend(Backend):
    """Device arrays (CuPy, numba's, the simulator's), and host arrays with target="cuda"."""

    name = "cuda"
    array_kind = "a device array"
    input_kind = "device"

    def keeps(self, a):
        return is_device_array(a)

    def to_host(self, a):
        return to_host(a)

    def zeros(self, shape, dtype, like):
        return zeros(shape, dtype, like)

    def saturate(self, a, dtype, out=None):
        from .._dtypes import saturate

        spoil()
        # (CuPy on the device; numba device arrays through the host, as astype)
        res = saturate(a, dtype) if is_cupy(a) else cuda().to_device(saturate(to_host(a), dtype))
        return deliver(res, out)

    # -- user kernels ----------------------------------------------------------------------------

    def prepare(self, st, arrays, params, out, overrides):
        """Plan a call: (plan, device work arrays, params, the kind of array to return)."""
        require(st._where)
        if overrides.get("debug") or (st.options["debug"] and overrides.get("debug") is None):
            raise StencilError(
                f"{st._where}: debug=True checks reads on the CPU backend only; run the "
                "kernel with target='cpu' (or on host arrays) to check it"
            )
        host = st._check_arrays(arrays, params, out, self)
        like = next((a for a in host if is_device_array(a)), None)
        if out is not None and (like is None) != isinstance(out, np.ndarray):
            raise StencilTypeError(
                f"{st._where}: out must be "
                + ("a NumPy array for host input" if like is None else
                   "a device array for device input") + f", got {type(out).__name__}"
            )
        plan = st._plan(host, out, overrides)
        work_ = [work(a, plan.axes, plan.moved, plan.wshape, wd, like)
                 for a, wd in zip(host, plan.work_dtypes)]
        return plan, work_, _scalars(params), like

    def apply(self, st, arrays, params, out, overrides):
        scalars = _scalars(params)
        key = _replay_key(st, arrays, scalars, out, overrides)
        replays = st._modules.get("cuda-replays")
        replay = None if key is None or replays is None else replays.get(key)
        if replay is not None:
            res = replay(arrays, scalars, out)
            if res is not None:
                cuda_replay.REPLAYED[0] += 1
                return res
        from . import cuda_cpp

        token = cuda_replay.enter()
        plan, work_, params_, like = self.prepare(st, arrays, params, out, overrides)
        dest, direct = _destination(plan, work_, out, like)
        launch = None
        if math.prod(plan.wshape):
            launch = run_plan(st, plan, work_, dest, params_)
        res = _delivered(plan, dest, direct, out, like)
        if launch is None or like is not arrays[0]:
            return res

        # CuPy arrays the kernels can take as they are (C-contiguous, of the work dtypes, no
        # axes moved) into a result that is the work output itself: a replay launches on them
        # directly (a kernel takes an array's address; the launches' shapes are the call's),
        # with no views made and none of the steps between, into a new output or into out=
        # where the first call wrote out= itself and this one does not overlap the inputs
        plain = (not plan.moved and plan.wout == plan.out_dtype
                 and all(as_is(a, wd) for a, wd in zip(arrays, plan.work_dtypes)))
        plain_out = plain and direct
        shape = plan.batch + plan.core

        def replay(arrays, scalars, out):  # (the same configuration: see _replay_key)
            if plain and out is None:
                dest = empty(shape, plan.wout, arrays[0])
                return dest if launch(arrays, dest, scalars) is not None else None
            if plain_out and out is not None and not any(may_share_memory(out, a)
                                                         for a in arrays):
                return out if launch(arrays, out, scalars) is not None else None
            work_ = [work(a, plan.axes, plan.moved, plan.wshape, wd, a)
                     for a, wd in zip(arrays, plan.work_dtypes)]
            dest, direct = _destination(plan, work_, out, arrays[0])
            if launch([cuda_cpp.as_cupy(w) for w in work_], cuda_cpp.as_cupy(dest),
                      scalars) is None:
                return None
            return _delivered(plan, dest, direct, out, arrays[0])

        if key is not None:
            cuda_replay.keep(st._modules.setdefault("cuda-replays", {}), key, replay, 64)
        if len(arrays) == 1:  # (a filter's stencil: its call's replay)
            cuda_replay.offer(token, arrays[0], out, res,
                              lambda x, out: replay([x], scalars, out))
        return res

    def iterate(self, st, arrays, params, out, overrides, steps, block_steps):
        """``steps`` launches ping-ponging two device buffers: no host round trip per step."""
        plan, work_, params, like = self.prepare(st, arrays, params, out, overrides)
        first_dtype = np.dtype(arrays[0].dtype) if hasattr(arrays[0], "dtype") else \
            np.asarray(arrays[0]).dtype
        if plan.out_dtype != first_dtype.newbyteorder("="):
            raise StencilError(
                f"{st._where}: iterate feeds each result back as {st._spec.arrays[0]!r}, so "
                f"the output dtype ({plan.out_dtype}) must equal that array's dtype "
                f"({first_dtype})"
            )
        if plan.wout != plan.out_dtype:  # float16 state: each step must round to float16
            if steps:
                res = arrays[0]
                for _ in range(steps):
                    res = self.apply(st, [res, *arrays[1:]], params, None, overrides)
            else:  # work_[0] is a float32 copy
                res = result(work_[0], plan.batch, plan.core, plan.axes, plan.moved,
                             plan.out_dtype, like)
        else:
            from . import cuda_cpp

            cur = work_[0]
            bufs = [empty(plan.wshape, plan.wout, like) for _ in range(min(steps, 2))]
            tiled = None  # several steps a launch in shared memory, where asked and possible
            if block_steps is None:
                block_steps = default_block_steps(st, plan)
            if block_steps and block_steps > 1 and steps > 1 and math.prod(plan.wshape):
                tiled = cuda_cpp.tiled_for(st, plan, params, min(block_steps, steps))
            remaining, i = steps, 0
            launch = fixed = None  # (after the first step: its launches again, no planning)
            again = cuda_replay.active()
            while remaining:
                nxt = bufs[i % 2]
                n = 1
                if tiled is not None:
                    n = min(tiled.steps, remaining)
                    try:
                        cuda_cpp.run_tiled(tiled, [cur, *work_[1:]], nxt, n, plan, params,
                                           plan.variant[0])
                    except cuda_cpp.CompileError as exc:
                        cuda_cpp.compile_failed(exc)
                        tiled = None
                        continue
                elif math.prod(plan.wshape):
                    if launch is None or not again or launch(
                            [cuda_cpp.as_cupy(cur), *fixed], cuda_cpp.as_cupy(nxt)) is None:
                        launch = run_plan(st, plan, [cur, *work_[1:]], nxt, params)
                        if launch is not None and fixed is None:
                            fixed = [cuda_cpp.as_cupy(w) for w in work_[1:]]
                cur = nxt
                remaining -= n
                i += 1
            if not steps:  # a copy, never the caller's array
                cur = empty(plan.wshape, plan.wout, like)
                copy_into(cur, work_[0])
            res = result(cur, plan.batch, plan.core, plan.axes, plan.moved, plan.out_dtype,
                         like)
        if out is None:
            return res
        if like is None:
            np.copyto(out, res)
        else:
            copy_into(out, res)
        return out

    def source(self, st, args, kwargs):
        """The CUDA C++ of a call ``st(*args, **kwargs)`` (see ``Stencil.cuda_source``)."""
        return source(st, args, kwargs)

    def explain(self, st, what, arrays, params, overrides):
        from . import cuda_cpp

        ok, why = cuda_available(explain=True)
        if not ok:
            return f"{what}: the CUDA backend, not available here: {why}"
        plan, params, _, _ = plan_call(st, (*arrays, *params), dict(overrides))
        choice = cuda_cpp.choose(st, plan, params)
        lines = [f"{what}: the CUDA backend on {why}"]
        if choice.path == "numba":
            lines.append(f"  kernel: numba.cuda (the fallback): {choice.reason}")
            return "\n".join(lines)
        mod = choice.module
        lines.append(f"  kernel: {choice.reason}")
        lines.append(f"  arithmetic: accumulator {mod.acc}; {mod.narrowed} 64-bit integer "
                     f"value(s) proven to fit 32 bits, {mod.wide} kept at 64 bits; "
                     f"{'64' if mod.idx64 else '32'}-bit indices; multiply-adds "
                     f"{'fused (fastmath)' if plan.variant[0] else 'not fused (the CPU bits)'}")
        if mod.inexact:
            lines.append(f"  note: {', '.join(mod.inexact)} use CUDA's libdevice, whose last bits "
                         "may differ from the CPU's libm")
        row_bytes = [plan.wshape[-1] * d.itemsize for d in (*plan.work_dtypes, plan.wout)]
        words = mod.cols and all(b % 4 == 0 for b in row_bytes)
        for name, grid, block, (rows, c0, c1) in mod.launches(plan.wshape, bool(words)):
            what = "border" if name.endswith("_border") else (
                f"interior columns {c0}..{c1 - 1}, {rows} row(s) per thread"
                + (f", {mod.cols} outputs per thread in 32-bit words" if words else "")
                + (", the border in the first rows of blocks" if mod.fused else ""))
            lines.append(f"  launch {name}: grid {grid} x block {block}: {what}")
        return "\n".join(lines)

    # -- the library ---------------------------------------------------------------------------

    def run_passes(self, passes, arr, out):
        from .._passes import Box, Box2, Generic, Generic1d, Rank, SepSum2
        from . import cuda_cpp, cuda_sep

        (p, *rest) = passes.passes
        if isinstance(p, (Generic, Generic1d)):  # a user's function (numba.cuda)
            from . import cuda_generic

            return cuda_generic.run(arr, p, passes.mode, passes.cval, out, passes.out_dtype)
        if isinstance(p, SepSum2) and not rest:  # each term's sweep, then their sum
            from .._passes import add

            dtype = np.dtype(p.dtype)
            parts = [self.run_passes(passes._replace(passes=(q,), out_dtype=dtype), arr, None)
                     for q in p.split()]
            return add(parts, dtype, out, passes.out_dtype, norm=p.norm)
        cpp = cuda_cpp.available()[0]
        if cpp and not rest and isinstance(p, Rank) and p.networked:  # (regions of Dask)
            res = self.rank_kernel(passes, arr, out)
            if res is not None:
                return res
            return passes.as_stencils(arr, out)  # the sorting network
        if cpp and not rest and isinstance(p, Rank):  # large medians: generated C++ only
            from . import cuda_rank

            try:
                res = cuda_rank.run(arr, p, passes.mode, passes.cval, out, passes.out_dtype)
                if res is not None:
                    return res
            except cuda_cpp.CompileError as exc:
                cuda_cpp.compile_failed(exc)
        if not rest and isinstance(p, Rank):  # large medians on the numba.cuda fallback
            from . import cuda_lines

            res = cuda_lines.run_rank(arr, p, passes.mode, passes.cval, out, passes.out_dtype)
            if res is not None:
                return res
        if cpp:  # box extremes of 8/16-bit data: one sweep, two outputs an instruction
            res = _minmax(passes, arr, out)
            if res is not None:
                return res
        if cpp:  # one sweep of generated C++ where one fits
            sw = cuda_sep.sweep_of(passes.passes, arr.dtype, passes.out_dtype, arr.ndim,
                                   passes.mode, passes.cval)
            if sw is not None:
                try:
                    return cuda_sep.run(arr, sw, passes.mode, passes.cval, out, passes.out_dtype)
                except cuda_cpp.CompileError as exc:  # a stencilkit bug: say so, carry on
                    cuda_cpp.compile_failed(exc)
        if not rest and isinstance(p, Box) and p.clip is not None and arr.ndim >= 2 \
                and p.axis >= arr.ndim - 2:  # a box along one of the last two axes
            last = p.axis == arr.ndim - 1
            p = Box2(arr.ndim - 2, 0 if last else p.lo, 0 if last else p.hi,
                     p.lo if last else 0, p.hi if last else 0, p.divisor, p.dtype, p.clip)
        if not rest and isinstance(p, Box2):  # the exact box of integer images
            from . import cuda_box, cuda_lines

            if cpp and cuda_box.fits(p, arr.dtype):
                try:
                    return cuda_box.run(arr, p, passes.mode, passes.cval, out)
                except cuda_cpp.CompileError as exc:
                    cuda_cpp.compile_failed(exc)
            if cuda_lines.box2_fits(p, arr.dtype):
                return deliver(cuda_lines.run_box2(arr, p, passes.mode, passes.cval), out)
        # the other passes as generated stencils, one 1-D pass per axis
        return passes.as_stencils(arr, out)

    def rank_kernel(self, passes, arr, out):
        from .._passes import Rank
        from . import cuda_cpp, cuda_median

        if not cuda_cpp.available()[0]:
            return None
        if not isinstance(passes.passes[0], Rank):  # a small box's extreme
            return _minmax(passes, arr, out)
        (p,) = passes.passes
        args = (p.footprint, arr.dtype, passes.out_dtype, arr.ndim)
        try:
            if cuda_median.fits(*args, p.rank):  # 3 x 3 medians: sorted columns
                return cuda_median.run(arr, p.lo[-2], p.lo[-1], passes.mode, passes.cval, out)
            if cuda_median.network_fits(*args):  # 8/16-bit windows: the network on 16x2 pairs
                return cuda_median.run_network(arr, p, passes.mode, passes.cval, out)
        except cuda_cpp.CompileError as exc:  # a stencilkit bug: say so; the stencil runs
            cuda_cpp.compile_failed(exc)
        return None

    def block_reduce(self, arr, full, op, edge, cval, out_dtype):
        from . import cuda_blocks

        return cuda_blocks.reduce(arr, full, op, edge, cval, out_dtype)

    def decimate(self, arr, full):
        from . import cuda_blocks

        return cuda_blocks.decimate(arr, full)

    def pyramid_level(self, x, mode):
        from . import cuda_blocks

        return cuda_blocks.pyramid_level(x, mode)


TILED_STEPS = 8
"""Steps a launch of the tiled ``iterate`` takes by default (:func:`default_block_steps`)."""

TILED_BYTES = 16 << 20
"""The least state, in bytes, that ``iterate`` tiles by default."""


def default_block_steps(st, plan) -> int:
    """``block_steps`` of an ``iterate`` on the GPU that does not give it.

    :data:`TILED_STEPS` for 2-D kernels reaching one element along each axis, over states of
    :data:`TILED_BYTES` or more (where the C++ path's tiled kernel covers the body; else the
    launches stay one a step), 1 otherwise. Measured on an H200 (benchmarks/gpu.py, a float32
    heat step of 8192 x 8192, 20 steps): 3.69 ms a launch a step, 3.42 ms at 4 steps a
    launch, 3.11 ms at 8 (0.70, 0.76, 0.83 of a copy a step). Wider reaches deepen the halo
    each step adds and are not measured: they stay one step a launch unless asked.
    """
    if (len(st.radius) != 2 or max(max(r) for r in st.radius) > 1
            or math.prod(plan.wshape) * plan.wout.itemsize < TILED_BYTES):
        return 1
    return TILED_STEPS


def _minmax(passes, arr, out):
    """``Extreme`` passes of 8/16-bit data by :mod:`.cuda_minmax`, or None where it cannot."""
    from . import cuda_cpp, cuda_minmax

    box = cuda_minmax.box_of(passes.passes, arr.ndim)
    if not cuda_minmax.fits(box, arr.dtype, passes.out_dtype):
        return None
    try:
        return cuda_minmax.run(arr, box, passes.mode, passes.cval, out)
    except cuda_cpp.CompileError as exc:  # a stencilkit bug: say so; the passes run
        cuda_cpp.compile_failed(exc)
        return None


BACKEND = CudaBackend()
