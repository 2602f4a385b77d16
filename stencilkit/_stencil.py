"""The public :class:`Stencil` object and the :func:`stencil` decorator."""

from __future__ import annotations

import functools
import importlib
import itertools
import math
import operator
import threading
import types
from typing import NamedTuple

import numpy as np

from . import _buffers, _dtypes, _regions, codegen, modes
from ._errors import StencilError, StencilTypeError
from .backends import cpu, is_dask_array
from .kernel import kernel_source, parse

_OPTIONS = {
    "mode": "reflect",
    "cval": None,
    "acc": None,
    "out_dtype": None,
    "axes": None,
    "parallel": None,
    "fastmath": False,
    "debug": False,
    "target": None,
}
"""Options of the decorator, each overridable per call (``fastmath``/``debug`` select another
compiled variant)."""

_TARGETS = (None, "cpu", "cuda")


class _Plan(NamedTuple):
    """What a call with given shapes, dtypes and options does (see ``Stencil._plan``)."""

    mode: int
    axes: tuple
    moved: bool
    batch: tuple
    core: tuple
    wshape: tuple
    acc0: np.generic
    out_dtype: np.dtype
    wout: np.dtype
    work_dtypes: tuple
    cval_acc: np.generic
    cval_out: np.generic
    variant: tuple
    parallel: bool


class _ModuleRef:
    """A module in a pickled kernel's scope, pickled by name."""

    def __init__(self, name):
        self.name = name


def _rebuild(source, scope, neighborhood, options):
    scope = {
        k: importlib.import_module(v.name) if isinstance(v, _ModuleRef) else v
        for k, v in scope.items()
    }
    return Stencil._from_source(source, scope, neighborhood, options)


class Stencil:
    """A compiled-on-demand stencil kernel; create it with :func:`stencil`.

    Calling it applies the kernel at every element of its input arrays (see :func:`stencil` for
    the options). Attributes: ``radius``, ``ndim``, ``signature``, ``gufunc``, ``arrays``,
    ``params``, ``options``; method :meth:`iterate`.
    """

    def __init__(self, fn, *, neighborhood=None, **options):
        source, scope = kernel_source(fn)
        self._init(source, scope, neighborhood, options)
        functools.update_wrapper(self, fn, updated=())

    @classmethod
    def _from_source(cls, source, scope, neighborhood, options):
        self = cls.__new__(cls)
        self._init(source, scope, neighborhood, options)
        self.__name__ = self._spec.name
        self.__qualname__ = self._spec.name
        self.__doc__ = None
        return self

    def _init(self, source, scope, neighborhood, options):
        self._spec = parse(source, scope, neighborhood)
        self._source = source
        self._neighborhood = neighborhood
        self._where = f"stencil kernel {self._spec.name!r}"
        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise StencilTypeError(
                f"{self._where}: unknown option(s) {', '.join(sorted(unknown))}; the options are "
                f"{', '.join(_OPTIONS)}"
            )
        clash = set(self._spec.params) & (set(_OPTIONS) | {"out", "steps"})
        if clash:
            raise StencilError(
                f"{self._where}: parameter name(s) {', '.join(sorted(clash))} clash with "
                "stencil options of the same name; rename them"
            )
        self.options = {**_OPTIONS, **options}
        self._check_options(self.options, explicit_cval="cval" in options)
        self._modules = {}
        self._plans = {}
        self._gufunc = None
        self._lock = threading.Lock()

    # -- public attributes ---------------------------------------------------------------------

    @property
    def radius(self) -> tuple:
        """``((before, after), ...)``: how far the kernel reads along each core axis."""
        return self._spec.radius

    @property
    def ndim(self) -> int:
        """The number of core axes (the number of indices in each subscript)."""
        return self._spec.ndim

    @property
    def signature(self) -> str:
        """The gufunc signature, e.g. ``"(n,m)->(n,m)"``; scalar parameters are ``()``."""
        return self._spec.signature

    @property
    def arrays(self) -> tuple:
        """Names of the kernel's array arguments."""
        return self._spec.arrays

    @property
    def params(self) -> tuple:
        """Names of the kernel's scalar parameters."""
        return self._spec.params

    def __repr__(self):
        return f"<stencilkit.Stencil {self._spec.name}{self.signature} radius={self.radius}>"

    def __reduce__(self):
        scope = {
            k: _ModuleRef(v.__name__) if isinstance(v, types.ModuleType) else v
            for k, v in self._spec.globals.items()
        }
        options = {k: v for k, v in self.options.items() if v != _OPTIONS[k]}
        return _rebuild, (self._source, scope, self._neighborhood, options)

    # -- compilation ---------------------------------------------------------------------------

    def _module(self, fastmath: bool, debug: bool):
        key = (bool(fastmath), bool(debug))
        module = self._modules.get(key)
        if module is None:
            opts = self.options
            gu = {
                "mode": modes.mode_code(opts["mode"], self._where),
                "cval": 0 if opts["cval"] is None else opts["cval"],
                "acc": opts["acc"],
            }
            header = f"# globals: {sorted(self._spec.global_keys.items())!r}\n"
            module = cpu.load_module(
                lambda cache: header + codegen.generate(
                    self._spec, fastmath=key[0], debug=key[1], cache=cache, gufunc=gu
                ),
                self._spec.globals,
            )
            self._modules[key] = module
        return module

    @property
    def gufunc(self):
        """The kernel as a generalized ufunc (numba.guvectorize) with :attr:`signature`.

        It applies the decorator's mode/cval/acc per core array, serially, with the input's
        dtype as output dtype; scalar parameters are float64. Each dtype's loop is compiled on
        first use (``gufunc.for_dtype(dtype)`` returns numba's gufunc for one dtype, whose
        ``.ufunc`` is the NumPy ufunc object). Use it where a gufunc is required (e.g. over a
        Dask stack whose frames are whole chunks); calling the Stencil is faster.
        """
        with self._lock:
            if self._gufunc is None:
                self._gufunc = StencilGUFunc(self)
            return self._gufunc

    # -- calling -------------------------------------------------------------------------------

    def _check_options(self, opts, explicit_cval):
        where = self._where
        code = modes.mode_code(opts["mode"], where)
        if explicit_cval and opts["cval"] is not None and code not in (modes.CONSTANT, modes.SKIP):
            raise StencilError(
                f"{where}: cval={opts['cval']!r} has no effect with mode={opts['mode']!r}; "
                "it is used by mode='constant' (value outside the array) and mode='skip' "
                "(value of the uncomputed border)"
            )
        if opts["target"] not in _TARGETS:
            raise StencilError(f"{where}: unknown target {opts['target']!r}; use 'cpu' or 'cuda'")
        if opts["parallel"] not in (None, True, False):
            raise StencilTypeError(f"{where}: parallel must be None, True or False")
        return code

    def _split_args(self, args, kwargs):
        spec = self._spec
        n_arr, n_par = len(spec.arrays), len(spec.params)
        if not kwargs and len(args) == n_arr + n_par:  # the common call, kept cheap
            return args[:n_arr], args[n_arr:], kwargs
        args = list(args)
        for name in spec.params[len(args) - n_arr:] if len(args) >= n_arr else ():
            if name in kwargs:
                args.append(kwargs.pop(name))
        if len(args) != n_arr + n_par:
            raise StencilTypeError(
                f"{self._where} takes {n_arr} array(s) ({', '.join(spec.arrays)}) and {n_par} "
                f"scalar parameter(s) ({', '.join(spec.params) or 'none'}); got {len(args)} "
                "positional argument(s)"
            )
        unknown = set(kwargs) - set(_OPTIONS) - {"out"}
        if unknown:
            raise StencilTypeError(
                f"{self._where}: unexpected keyword argument(s) {', '.join(sorted(unknown))}; "
                f"options are {', '.join(_OPTIONS)} and out"
            )
        return args[:n_arr], args[n_arr:], kwargs

    def __call__(self, *args, out=None, **kwargs):
        """Apply the kernel; see :func:`stencil` for arguments and options."""
        arrays, params, overrides = self._split_args(args, kwargs)
        if any(is_dask_array(a) for a in arrays):
            return self._apply_dask(arrays, params, out, overrides)
        if self._on_cuda(arrays, overrides):
            return self._apply_cuda(arrays, params, out, overrides)
        return self._apply(arrays, params, out, overrides)

    def _iterate_dask(self, arrays, params, out, overrides, steps, block_steps):
        from .backends import dask as dask_backend

        state = arrays[0]
        if not is_dask_array(state):
            ref = next(a for a in arrays if is_dask_array(a))
            state = dask_backend.da.from_array(np.asarray(state), chunks=ref.chunks)
        host = self._host_arrays([state, *arrays[1:]], params, out, None)
        out_dtype = self._plan(host, None, overrides).out_dtype
        if out is not None or out_dtype != state.dtype.newbyteorder("="):
            raise StencilError(
                f"{self._where}: iterate on Dask arrays needs out=None and an output dtype equal "
                f"to {self._spec.arrays[0]!r}'s ({state.dtype}; the result's is {out_dtype})"
            )
        if not steps:
            return state
        if block_steps is None:
            axes = _normalize_axes(overrides.get("axes") or self.options["axes"], state.ndim,
                                   self.ndim, self._where)
            block_steps = _regions.auto_block_steps(
                self.radius, [state.chunks[a] for a in axes], steps
            )
        remaining = steps
        while remaining:
            n = min(block_steps, remaining)
            state = self._apply_dask([state, *arrays[1:]], params, out, overrides, steps=n)
            remaining -= n
        return state

    def _apply_dask(self, arrays, params, out, overrides, steps=1):
        from .backends import dask as dask_backend

        if out is not None:
            raise StencilError(
                f"{self._where}: out= is not supported for Dask arrays (the result is lazy); "
                "store the result with dask.array.store or result.to_zarr(...)"
            )
        host = self._host_arrays(arrays, params, out,
                                 overrides.get("target") or self.options["target"])
        for name, a in zip(self._spec.arrays, host):
            if any(math.isnan(n) for n in a.shape):
                raise StencilError(
                    f"{self._where}: array {name!r} has unknown chunk sizes {a.shape}; call "
                    ".compute_chunk_sizes() on it first"
                )
        return dask_backend.apply(self, host, params, overrides, steps=steps)

    def _on_cuda(self, arrays, overrides) -> bool:
        """Whether a call runs on the CUDA backend.

        It does for target="cuda", and for device input unless target="cpu" (which copies
        device input to the host).
        """
        target = overrides.get("target") or self.options["target"]
        if target == "cuda":
            return True
        return target is None and any(_is_device_array(a) for a in arrays)

    def _host_arrays(self, arrays, params, out, target, device=False):
        """The inputs as NumPy arrays (Dask arrays stay lazy) of one shape, checked.

        ``device=True`` (the CUDA backend) keeps device arrays as they are.
        """
        where = self._where
        k = self.ndim
        names = self._spec.arrays
        host = []
        for name, a in zip(names, arrays):
            if type(a) is not np.ndarray and not is_dask_array(a):
                if _is_device_array(a):
                    from .backends import cuda as cuda_backend

                    if not device:  # target="cpu" on device input
                        a = cuda_backend.to_host(a)
                    if a.ndim < k:
                        raise StencilError(
                            f"{where}: array {name!r} has {a.ndim} axis/axes but the kernel has "
                            f"{k} core axes; pass an array with at least {k} axes"
                        )
                    host.append(a)
                    continue
                try:
                    a = np.asarray(a)
                except Exception as exc:
                    raise StencilTypeError(
                        f"{where}: cannot read {name} as an array ({exc})"
                    ) from None
            if a.ndim < k:
                raise StencilError(
                    f"{where}: array {name!r} has {a.ndim} axis/axes but the kernel has {k} core "
                    f"axes; pass an array with at least {k} axes (add axes with a[None])"
                )
            host.append(a)
        shape = tuple(host[0].shape)
        for name, a in zip(names[1:], host[1:]):
            if tuple(a.shape) != shape:
                raise StencilError(
                    f"{where}: arrays must have one shape, but {names[0]!r} has "
                    f"{shape} and {name!r} has {a.shape}; broadcast them first "
                    "(np.broadcast_to)"
                )
        for name, p in zip(self._spec.params, params):
            if not isinstance(p, (bool, int, float, complex, np.number, np.bool_)):
                raise StencilTypeError(
                    f"{where}: parameter {name!r} must be a scalar number, got "
                    f"{type(p).__name__}; arrays go before the parameters"
                )
        if out is not None and not isinstance(out, np.ndarray) and not (
                device and _is_device_array(out)):
            raise StencilTypeError(
                f"{where}: out must be a NumPy array{' or a device array' if device else ''}, "
                f"got {type(out).__name__}"
            )
        return host

    def _plan(self, host, out, overrides) -> _Plan:
        """Every decision that depends only on shapes, dtypes and options, cached per combination.

        A call then only reshapes its arrays and runs the compiled loop (the cache keeps a
        100 x 100 call at a few microseconds of Python).
        """
        key = [(tuple(a.shape), a.dtype) for a in host]
        if out is not None:
            key.append((tuple(out.shape), out.dtype))
        try:
            key = tuple(key) + tuple(sorted(overrides.items())) if overrides else tuple(key)
            plan = self._plans.get(key)
        except TypeError:  # an unhashable option value: plan without the cache
            key, plan = None, None
        if plan is None:
            plan = self._make_plan(host, out, overrides)
            if key is not None:
                if len(self._plans) > 256:
                    self._plans.clear()
                self._plans[key] = plan
        return plan

    def _make_plan(self, host, out, overrides) -> _Plan:
        where = self._where
        opts = {**self.options, **{k: v for k, v in overrides.items() if v is not None}}
        mode = self._check_options(opts, overrides.get("cval") is not None)
        k = self.ndim
        shape = tuple(host[0].shape)
        ndim = len(shape)
        axes = _normalize_axes(opts["axes"], ndim, k, where)
        acc, out_dtype, work_dtypes = _dtypes.resolve(
            tuple(a.dtype for a in host), opts["acc"], opts["out_dtype"], where, self._spec.arrays
        )
        cval = 0 if opts["cval"] is None else opts["cval"]
        cval_acc = _exact_scalar(cval, acc, "the accumulator", where) \
            if mode == modes.CONSTANT else acc.type(0)
        cval_out = _exact_scalar(cval, out_dtype, "the output", where) \
            if mode == modes.SKIP else out_dtype.type(0)
        moved = axes != tuple(range(ndim - k, ndim))
        batch = tuple(shape[d] for d in range(ndim) if d not in axes)
        core = tuple(shape[d] for d in axes)
        if out is not None:
            if tuple(out.shape) != shape:
                raise StencilError(
                    f"{where}: out has shape {out.shape} but the result has shape {shape}"
                )
            if out.dtype.newbyteorder("=") != out_dtype:
                raise StencilError(
                    f"{where}: out has dtype {out.dtype} but the result's dtype is {out_dtype}; "
                    f"pass out_dtype={out.dtype.name!r} or an out array of dtype {out_dtype}"
                )
        # float16 results are computed into float32 and rounded once at the end.
        wout = _dtypes.work_dtype(out_dtype)
        size = math.prod(shape)
        return _Plan(
            mode=mode, axes=axes, moved=moved, batch=batch, core=core,
            wshape=(math.prod(batch),) + core, acc0=acc.type(0), out_dtype=out_dtype, wout=wout,
            work_dtypes=work_dtypes, cval_acc=cval_acc, cval_out=wout.type(cval_out),
            variant=(bool(opts["fastmath"]), bool(opts["debug"])),
            parallel=_use_parallel(opts, size),
        )

    def _work(self, a, plan, wd):
        """An input as the C-contiguous ``(B, *core)`` array compiled code expects."""
        if plan.moved:
            a = np.moveaxis(a, plan.axes, range(-self.ndim, 0))
        if a.dtype != wd:
            a = a.astype(wd)
        # Compiled code indexes flat C-contiguous memory (see codegen); other layouts are
        # copied once, which is cheap next to strided access in every read.
        return np.ascontiguousarray(a).reshape(plan.wshape)

    def _prepare(self, arrays, params, out, overrides):
        host = self._host_arrays(arrays, params, out,
                                 overrides.get("target") or self.options["target"])
        plan = self._plan(host, out, overrides)
        if out is not None and not out.flags.writeable:
            raise StencilError(f"{self._where}: out is read-only; pass a writeable array")
        work = [self._work(a, plan, wd) for a, wd in zip(host, plan.work_dtypes)]
        return plan, work

    def _apply(self, arrays, params, out, overrides):
        plan, work = self._prepare(arrays, params, out, overrides)
        # Write straight into out= when it can be viewed as (B, *core) in native byte order and
        # does not overlap an input; otherwise compute aside and copy (in-place use is allowed).
        dest = None
        if out is not None and plan.wout == plan.out_dtype:
            dest = _work_view(out, plan)
            if dest is not None and any(np.may_share_memory(dest, w) for w in work):
                dest = None
        direct = dest is not None
        if not direct:
            dest = _buffers.POOL.empty(plan.wshape, plan.wout)
        if dest.size:
            cpu.run(self._module(*plan.variant), work, dest, params, plan.mode, plan.cval_acc,
                    plan.cval_out, plan.acc0, plan.parallel)
        if out is None:
            result = _from_work(dest, plan)
            return result if plan.wout == plan.out_dtype else result.astype(plan.out_dtype)
        if not direct:
            np.copyto(out, _from_work(dest, plan), casting="unsafe")
        return out

    # -- the CUDA backend ------------------------------------------------------------------------

    def _cuda_module(self, fastmath: bool, idx64: bool = True):
        key = ("cuda", bool(fastmath), bool(idx64))
        module = self._modules.get(key)
        if module is None:
            header = f"# globals: {sorted(self._spec.global_keys.items())!r}\n"
            module = cpu.load_module(
                lambda cache: header + codegen.generate_cuda(
                    self._spec, fastmath=key[1], cache=cache, idx64=key[2]),
                self._spec.globals,
            )
            self._modules[key] = module
        return module

    def _cuda_run(self, plan, work, dest, params):
        """One application on the device.

        The generated CUDA C++ kernels where the emitter covers the kernel and CuPy is at hand,
        the numba.cuda kernel otherwise.
        """
        from .backends import cuda as cuda_backend
        from .backends import cuda_cpp

        choice = cuda_cpp.choose(self, plan, params)
        if choice.path == "cpp":
            try:
                cuda_cpp.run(choice.module, work, dest, plan, params, plan.variant[0])
                return
            except cuda_cpp.CompileError as exc:
                cuda_cpp.compile_failed(exc)
                cuda_cpp.fall_back(self, plan, params, f"NVRTC failed: {exc}")
                choice = choice._replace(reason=f"NVRTC failed: {exc}")
        problem = cuda_backend.fallback_problem()
        if problem:
            raise StencilError(f"{self._where}: this call needs the numba.cuda kernel "
                               f"({choice.reason}), which cannot run here: {problem}")
        from .codegen_cpp import index_width

        idx64 = index_width([math.prod(plan.wshape)], self.radius)
        cuda_backend.run(self._cuda_module(plan.variant[0], idx64), work, dest, params,
                         plan.mode, plan.cval_acc, plan.cval_out, plan.acc0, self.radius)

    def _cuda_plan(self, args, kwargs):
        """``(plan, params, arrays, overrides)`` of a call as the CUDA backend makes it.

        Needs no GPU; ``params`` are the NumPy scalars the kernels receive.
        """
        arrays, params, overrides = self._split_args(args, kwargs)
        host = self._host_arrays(arrays, params, None, "cuda", device=True)
        plan = self._plan(host, None, overrides)
        params = tuple(np.asarray(p)[()] if not isinstance(p, np.generic) else p
                       for p in params)
        return plan, params, host, overrides

    def cuda_source(self, *args, **kwargs) -> str:
        """The CUDA C++ the GPU would compile for a call with these arguments.

        Needs no GPU: the source is generated from the kernel, the arrays' dtypes and the
        options, as for a call (``target="cuda"``). The kernels it holds are described in
        :mod:`stencilkit.codegen_cpp`.

        Raises
        ------
        StencilError
            When the C++ emitter does not cover the kernel (a call then runs the numba.cuda
            kernel instead); the message says what it met.

        Examples
        --------
        >>> import numpy as np, stencilkit as sk
        >>> @sk.stencil
        ... def mean3(x):
        ...     return (x[-1] + x[0] + x[1]) // 3
        >>> src = mean3.cuda_source(np.zeros(8, np.int8))
        >>> "mean3_interior" in src and "__restrict__" in src
        True
        >>> print(src[src.index("SK_FN sk_i32 mean3_body"):].split("}")[0] + "}")
        SK_FN sk_i32 mean3_body(sk_i32 x_m1, sk_i32 x_p0, sk_i32 x_p1) {
          sk_i32 t_binop_add8_2;
          sk_i32 t_binop_add14_4;
          sk_i32 t_binop_floordiv20_6;
          sk_i32 t_24return_value_7;
          goto L0;
         L0:;
          t_binop_add8_2 = (x_m1 + x_p0);
          t_binop_add14_4 = (t_binop_add8_2 + x_p1);
          t_binop_floordiv20_6 = sk_floordivc_i32(t_binop_add14_4, 3);
          t_24return_value_7 = t_binop_floordiv20_6;
          return t_24return_value_7;
        }
        """
        from . import _cpp_body
        from .backends import cuda_cpp

        plan, params, _, _ = self._cuda_plan(args, kwargs)
        try:
            mod = cuda_cpp.module_for_plan(self, plan, params)
        except _cpp_body.Unsupported as exc:
            raise StencilError(f"{self._where}: the CUDA C++ emitter does not cover this "
                               f"kernel ({exc}); on a GPU the numba.cuda kernel runs it") from None
        return mod.source

    def explain(self, *args, **kwargs) -> str:
        """Say how a call with these arguments would run: backend, kernel path and why.

        For the CUDA backend: whether the generated CUDA C++ or the numba.cuda fallback runs
        (and why), the accumulator narrowing, the index width and the launches (assuming the
        arrays' rows start on 4-byte boundaries, as fresh allocations do).

        Examples
        --------
        >>> import numpy as np, stencilkit as sk
        >>> @sk.stencil
        ... def mean3(x):
        ...     return (x[-1] + x[0] + x[1]) // 3
        >>> print(mean3.explain(np.zeros((4, 1000), np.int8)))  # doctest: +ELLIPSIS
        mean3 on a (4, 1000) int8 array: the CPU backend (numba), ...
        """
        from .backends import cuda as cuda_backend
        from .backends import cuda_cpp

        arrays, params, overrides = self._split_args(args, dict(kwargs))
        first = arrays[0]
        shape = tuple(getattr(first, "shape", np.shape(first)))
        dtype = first.dtype if hasattr(first, "dtype") else np.asarray(first).dtype
        kind = type(first).__module__.split(".")[0]
        what = f"{self._spec.name} on a {shape} {np.dtype(dtype)} " + (
            "array" if kind == "numpy" else f"{kind} array")
        if any(is_dask_array(a) for a in arrays):
            return (f"{what}: the Dask backend; each chunk's region (halo {self.radius}) runs "
                    "on the backend its chunks' type selects")
        if not self._on_cuda(arrays, overrides):
            plan = self._plan(self._host_arrays(arrays, params, None, None), None, overrides)
            how = "parallel threads" if plan.parallel else "one thread"
            return (f"{what}: the CPU backend (numba), {how}; accumulator "
                    f"{plan.acc0.dtype}, output {plan.out_dtype}")
        ok, why = cuda_backend.cuda_available(explain=True)
        if not ok:
            return f"{what}: the CUDA backend, not available here: {why}"
        plan, params, _, _ = self._cuda_plan(args, kwargs)
        choice = cuda_cpp.choose(self, plan, params)
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
                + (f", {mod.cols} outputs per thread in 32-bit words" if words else ""))
            lines.append(f"  launch {name}: grid {grid} x block {block}: {what}")
        return "\n".join(lines)

    def _prepare_cuda(self, arrays, params, out, overrides):
        """Plan a CUDA call: (plan, device work arrays, params, the kind of array to return)."""
        from .backends import cuda as cuda_backend

        cuda_backend.require(self._where)
        if overrides.get("debug") or (self.options["debug"] and overrides.get("debug") is None):
            raise StencilError(
                f"{self._where}: debug=True checks reads on the CPU backend only; run the "
                "kernel with target='cpu' (or on host arrays) to check it"
            )
        host = self._host_arrays(arrays, params, out, "cuda", device=True)
        like = next((a for a in host if _is_device_array(a)), None)
        if out is not None and (like is None) != isinstance(out, np.ndarray):
            raise StencilTypeError(
                f"{self._where}: out must be "
                + ("a NumPy array for host input" if like is None else
                   "a device array for device input") + f", got {type(out).__name__}"
            )
        plan = self._plan(host, out, overrides)
        work = [cuda_backend.work(a, plan.axes, plan.moved, plan.wshape, wd, like)
                for a, wd in zip(host, plan.work_dtypes)]
        # Scalars as the NumPy types numba gives them (int64, float64, ...): the simulator then
        # promotes as compiled code does (a Python float next to float32 would stay float32).
        params = tuple(np.asarray(p)[()] if not isinstance(p, np.generic) else p
                       for p in params)
        return plan, work, params, like

    def _apply_cuda(self, arrays, params, out, overrides):
        from .backends import cuda as cuda_backend

        plan, work, params, like = self._prepare_cuda(arrays, params, out, overrides)
        dest = None
        if (out is not None and like is not None and plan.wout == plan.out_dtype
                and not plan.moved and out.dtype.isnative
                and cuda_backend._contiguous(out)
                and not any(cuda_backend.may_share_memory(out, w) for w in work)):
            dest = out.reshape(plan.wshape)
        direct = dest is not None
        if not direct:
            dest = cuda_backend.empty(plan.wshape, plan.wout, like)
        if math.prod(plan.wshape):
            self._cuda_run(plan, work, dest, params)
        if direct:
            return out
        res = cuda_backend.result(dest, plan.batch, plan.core, plan.axes, plan.moved,
                                  plan.out_dtype, like)
        if out is None:
            return res
        if like is None:
            np.copyto(out, res, casting="unsafe")
        else:
            cuda_backend.copy_into(out, res)
        return out

    def _iterate_cuda(self, arrays, params, out, overrides, steps):
        """``steps`` launches ping-ponging two device buffers: no host round trip per step."""
        from .backends import cuda as cuda_backend

        plan, work, params, like = self._prepare_cuda(arrays, params, out, overrides)
        first_dtype = np.dtype(arrays[0].dtype) if hasattr(arrays[0], "dtype") else \
            np.asarray(arrays[0]).dtype
        if plan.out_dtype != first_dtype.newbyteorder("="):
            raise StencilError(
                f"{self._where}: iterate feeds each result back as {self._spec.arrays[0]!r}, so "
                f"the output dtype ({plan.out_dtype}) must equal that array's dtype "
                f"({first_dtype})"
            )
        if plan.wout != plan.out_dtype:  # float16 state: each step must round to float16
            if steps:
                res = arrays[0]
                for _ in range(steps):
                    res = self._apply_cuda([res, *arrays[1:]], params, None, overrides)
            else:  # work[0] is a float32 copy
                res = cuda_backend.result(work[0], plan.batch, plan.core, plan.axes, plan.moved,
                                          plan.out_dtype, like)
        else:
            cur = work[0]
            bufs = [cuda_backend.empty(plan.wshape, plan.wout, like) for _ in
                    range(min(steps, 2))]
            for i in range(steps):
                nxt = bufs[i % 2]
                if math.prod(plan.wshape):
                    self._cuda_run(plan, [cur, *work[1:]], nxt, params)
                cur = nxt
            if not steps:  # a copy, never the caller's array
                cur = cuda_backend.empty(plan.wshape, plan.wout, like)
                cuda_backend.copy_into(cur, work[0])
            res = cuda_backend.result(cur, plan.batch, plan.core, plan.axes, plan.moved,
                                      plan.out_dtype, like)
        if out is None:
            return res
        if like is None:
            np.copyto(out, res)
        else:
            cuda_backend.copy_into(out, res)
        return out

    # Temporal blocking on NumPy: tiles of about this many bytes (724^2 float32; each thread's
    # two scratch buffers, halo included, stay in its L2 and the shared L3). Heat 8000^2
    # float32, 16 steps, ms/step over two runs of `benchmarks/iterate.py --tile-bytes ...`:
    # 512 KiB 14.4/16.7, 1 MiB 12.2/14.5, 2 MiB 10.9/11.9, 4 MiB 12.9/11.7.
    TILE_BYTES = 1 << 21
    TILE_MIN_BYTES = 1 << 24  # below this the state stays in cache anyway: step by step
    TILE_MAX_STEPS = 16

    def _tile_chunks(self, plan):
        k = self.ndim
        elements = max(1, self.TILE_BYTES // plan.wout.itemsize)
        side = max(8, int(round(elements ** (1.0 / k))))
        return [_tiles(n, min(side, n)) if n else (0,) for n in plan.core]

    def _auto_tile_steps(self, plan, steps):
        if steps < 2 or plan.wout.itemsize * math.prod(plan.wshape) < self.TILE_MIN_BYTES \
                or plan.variant[1]:
            return 1
        if not any(b or a for b, a in self.radius):
            return 1
        return _regions.auto_block_steps(self.radius, self._tile_chunks(plan), steps,
                                         cap=self.TILE_MAX_STEPS)

    def _iterate_tiled(self, plan, cur, fixed, params, steps, block_steps):
        """Advance ``cur`` by ``steps``, ``block_steps`` at a time per cache-sized tile.

        ``cur`` is only read (the first pass reads the caller's array itself, no copy); the
        passes write to buffers from the pool, a second one only when there is a second pass.

        Each pass gives every tile a region with a halo ``radius * block_steps`` deep (laid
        out as in :mod:`stencilkit._regions`, so every mode stays exact at the edges), advances
        it ``block_steps`` times in cache, and writes its centre to the other buffer. Tiles run
        on a thread pool (the compiled kernels release the GIL; one thread when the call is
        serial, as inside a Dask task), each thread in two scratch
        buffers of its own: fresh memory for every tile cost more in page faults (0.6 ms per
        1 MiB tile) than the 16 steps it computed.
        """
        import concurrent.futures

        import numba

        chunks = self._tile_chunks(plan)
        bounds = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in chunks]
        B = plan.wshape[0]
        module = self._module(*plan.variant)
        largest = math.prod(max(c) + 2 * max(r) * block_steps
                            for c, r in zip(chunks, self.radius))
        local = threading.local()

        def selector(index, wrap):
            return index if wrap else slice(int(index[0]), int(index[-1]) + 1)

        wrap = plan.mode == modes.WRAP
        workers = numba.get_num_threads() if plan.parallel else 1
        spare, owned = None, False
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            remaining = steps
            while remaining:
                nxt = spare if spare is not None else _buffers.POOL.empty(plan.wshape, plan.wout)
                t = min(block_steps, remaining)
                per_axis = [
                    list(enumerate(_regions.axis_regions(c, n, b * t, a * t, plan.mode)))
                    for c, n, (b, a) in zip(chunks, plan.core, self.radius)
                ]

                def run(task, src=cur, dst=nxt, t=t):
                    bi, *regs = task
                    sel = [selector(index, wrap) for _, (index, _) in regs]
                    if wrap:
                        sel = list(np.ix_(*sel))
                    region = src[bi][tuple(sel)]
                    if not hasattr(local, "buffers"):
                        local.buffers = [np.empty(largest, plan.wout) for _ in range(2)]
                    size = region.size
                    a, b = (buf[:size].reshape((1,) + region.shape) for buf in local.buffers)
                    np.copyto(a[0], region)
                    others = [np.ascontiguousarray(f[bi][tuple(sel)])[None] for f in fixed]
                    for _ in range(t):
                        cpu.run(module, [a, *others], b, params, plan.mode, plan.cval_acc,
                                plan.cval_out, plan.acc0, False)
                        a, b = b, a
                    centre = tuple(c for _, (_, c) in regs)
                    target = tuple(slice(bd[j], bd[j + 1]) for bd, (j, _) in zip(bounds, regs))
                    dst[bi][target] = a[0][centre]

                tasks = itertools.product(range(B), *per_axis)
                for _ in pool.map(run, tasks):
                    pass
                spare = cur if owned else None
                cur, owned = nxt, True
                remaining -= t
        return cur

    def iterate(self, *args, steps, out=None, block_steps=None, **kwargs):
        """Apply the kernel ``steps`` times, feeding each result back as the first array.

        Other arrays and parameters stay fixed. Two buffers are allocated once and swapped, so
        no step allocates; the result equals ``steps`` successive calls bit for bit.

        Parameters
        ----------
        *args : arrays and scalars
            As for calling the stencil.
        steps : int
            Number of applications (0 returns a copy).
        block_steps : int, optional
            Steps per halo exchange (temporal blocking). Each exchange gives every block (a Dask
            chunk, or a cache-sized tile of a NumPy array) a halo ``radius * block_steps`` deep
            and advances it that many steps, so memory is swept (or the Dask graph layered)
            ``steps / block_steps`` times instead of ``steps`` times; results are identical.
            Default: Dask, the most that keeps the halo within half the smallest chunk; NumPy,
            up to 16 for states of 16 MiB or more, else 1 (step by step).
        out : ndarray, optional
            Where to put the final state.
        **kwargs
            Options, as for calling the stencil.

        Returns
        -------
        ndarray
            The state after ``steps`` applications.

        Examples
        --------
        >>> import numpy as np, stencilkit as sk
        >>> @sk.stencil(mode="wrap")
        ... def shift(x):
        ...     return x[-1]
        >>> shift.iterate(np.arange(5), steps=2)
        array([3, 4, 0, 1, 2])
        """
        try:
            steps = operator.index(steps)
        except TypeError:
            raise StencilTypeError(f"{self._where}: steps must be an int, got {steps!r}") from None
        if steps < 0:
            raise StencilError(f"{self._where}: steps must be >= 0, got {steps}")
        if block_steps is not None and (
            not isinstance(block_steps, (int, np.integer)) or block_steps < 1
        ):
            raise StencilError(
                f"{self._where}: block_steps must be a positive int, got {block_steps!r}"
            )
        arrays, params, overrides = self._split_args(args, kwargs)
        if any(is_dask_array(a) for a in arrays):
            return self._iterate_dask(arrays, params, out, overrides, steps, block_steps)
        if self._on_cuda(arrays, overrides):
            return self._iterate_cuda(arrays, params, out, overrides, steps)
        plan, work = self._prepare(arrays, params, out, overrides)
        first = np.asarray(arrays[0])
        if plan.out_dtype != first.dtype.newbyteorder("="):
            raise StencilError(
                f"{self._where}: iterate feeds each result back as {self._spec.arrays[0]!r}, so "
                f"the output dtype ({plan.out_dtype}) must equal that array's dtype "
                f"({first.dtype})"
            )
        if plan.wout != plan.out_dtype:  # float16 state: each step must round to float16
            state = np.array(first, copy=True)
            for _ in range(steps):
                state = self._apply([state, *arrays[1:]], params, None, overrides)
        else:
            if block_steps is None:
                block_steps = self._auto_tile_steps(plan, steps)
            if steps and work[0].size and block_steps > 1:
                cur = self._iterate_tiled(plan, work[0], work[1:], params, steps, block_steps)
            else:
                cur = _buffers.POOL.empty(plan.wshape, plan.wout)
                np.copyto(cur, work[0])
                if steps and cur.size:
                    nxt = _buffers.POOL.empty(plan.wshape, plan.wout)
                    module = self._module(*plan.variant)
                    for _ in range(steps):
                        cpu.run(module, [cur, *work[1:]], nxt, params, plan.mode,
                                plan.cval_acc, plan.cval_out, plan.acc0, plan.parallel)
                        cur, nxt = nxt, cur
            state = _from_work(cur, plan)
        if out is not None:
            np.copyto(out, state)
            return out
        return state


def _tiles(n: int, size: int) -> tuple:
    return (size,) * (n // size) + ((n % size,) if n % size else ())


class StencilGUFunc:
    """A Stencil as a generalized ufunc, one numba gufunc per input dtype, compiled on demand.

    Compiling every dtype eagerly costs a few seconds per dtype, so loops are built when a dtype
    is first seen (and then come from numba's on-disk cache).
    """

    def __init__(self, st: Stencil):
        self._stencil = st
        self._loops = {}
        self._lock = threading.Lock()
        self.signature = st.signature
        self.nin = len(st.arrays) + len(st.params)
        self.nout = 1

    def __repr__(self):
        return f"<stencilkit gufunc {self._stencil.__name__}{self.signature}>"

    def for_dtype(self, dtype):
        """Numba's gufunc for inputs of ``dtype`` (compiled on first request)."""
        dtype = np.dtype(dtype)
        with self._lock:
            loop = self._loops.get(dtype)
            if loop is None:
                import numba

                if dtype.name not in _GUFUNC_DTYPES:
                    raise StencilTypeError(
                        f"{self._stencil._where}: the gufunc has loops for "
                        f"{', '.join(_GUFUNC_DTYPES)}; got {dtype}. Call the stencil itself, "
                        "which takes every numeric dtype"
                    )
                st = self._stencil
                arr = numba.types.Array(numba.from_dtype(dtype), st.ndim, "A")
                sig = (*[arr] * len(st.arrays), *[numba.float64] * len(st.params), arr)
                module = st._module(st.options["fastmath"], False)
                loop = numba.guvectorize([sig], self.signature,
                                         cache=cpu.cache_dir() is not None)(module._sk_gufunc)
                self._loops[dtype] = loop
            return loop

    def __call__(self, *args, **kwargs):
        """Apply the gufunc; the first argument's dtype selects the loop."""
        first = args[0]
        dtype = getattr(first, "dtype", None) or np.asarray(first).dtype
        return self.for_dtype(dtype)(*args, **kwargs)


_GUFUNC_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                  "uint64", "float32", "float64")


def _is_device_array(a) -> bool:
    if hasattr(a, "__cuda_array_interface__"):
        return True
    mod = type(a).__module__
    return mod.startswith("numba.cuda") or mod.startswith("cupy")


def _normalize_axes(axes, ndim, k, where):
    if axes is None:
        return tuple(range(ndim - k, ndim))
    if isinstance(axes, (int, np.integer)):
        axes = (axes,)
    try:
        axes = tuple(operator.index(a) for a in axes)
    except TypeError:
        raise StencilTypeError(f"{where}: axes must be a tuple of ints, got {axes!r}") from None
    if len(axes) != k:
        raise StencilError(
            f"{where}: axes={axes} names {len(axes)} axis/axes but the kernel has {k} core axes"
        )
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise StencilError(f"{where}: axis {a} is out of range for an array with {ndim} axes")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise StencilError(f"{where}: axes={axes} repeats an axis")
    return tuple(out)


def _exact_scalar(value, dtype, what, where):
    """Convert cval to ``dtype``, refusing values that would change (NaN or 1.5 into ints)."""
    try:
        with np.errstate(all="ignore"):
            converted = np.array(value).astype(dtype)[()]
        ok = np.array_equal(np.array(value), converted, equal_nan=True) if not isinstance(
            value, (complex, np.complexfloating)) or dtype.kind == "c" else False
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise StencilError(
            f"{where}: cval={value!r} cannot be represented exactly in {what} dtype "
            f"{np.dtype(dtype)}; choose another cval or pass acc=/out_dtype= of a wider type"
        )
    return converted


def _use_parallel(opts, size) -> bool:
    if opts["debug"]:
        return False  # bounds-check exceptions are raised from the serial loop
    if opts["parallel"] is None:
        return size >= cpu.PARALLEL_THRESHOLD
    return bool(opts["parallel"])


def _work_view(out, plan):
    """``out`` as a ``(B, *core)`` view, or None if that needs a copy or a byte swap."""
    if not out.dtype.isnative:
        return None
    if plan.moved:
        out = np.moveaxis(out, plan.axes, range(-len(plan.core), 0))
    if not out.flags.c_contiguous:
        return None
    return out.reshape(plan.wshape)


def _from_work(dest, plan):
    res = dest.reshape(plan.batch + plan.core)
    if plan.moved:
        res = np.moveaxis(res, range(-len(plan.core), 0), plan.axes)
    return res


def stencil(fn=None, /, *, neighborhood=None, **options):
    """Compile a plain-Python relative-index kernel into a fast, multi-backend stencil.

    Parameters
    ----------
    fn : function
        The kernel: array arguments read by relative offsets (``x[-1, 0]``), then scalar
        parameters; it returns the value of the output element. See :mod:`stencilkit.kernel` for
        the full grammar.
    neighborhood : tuple of (int, int), optional
        ``((low, high), ...)`` per core axis: the offset range of reads whose offsets are not
        constants (loops over a window). Required for such kernels.
    mode : {'reflect', 'mirror', 'nearest', 'wrap', 'constant', 'skip'}, optional
        How reads beyond the array's edges are answered (scipy.ndimage's names); ``skip`` does not
        compute border outputs and sets them to ``cval`` (numba.stencil's behaviour). Default
        ``'reflect'``.
    cval : scalar, optional
        The value outside the array for ``constant``, the border value for ``skip``. Default 0.
    acc : dtype, optional
        Type every element read is widened to before arithmetic. Default int64 for bool and
        integer inputs, the input's type for floats (float32 for float16).
    out_dtype : dtype, optional
        dtype of the result. Default: the first input's dtype.
    axes : tuple of int, optional
        The core axes, one per subscript index. Default: the last ``ndim`` axes; other axes are
        batch axes (the kernel runs on each of their elements independently).
    parallel : bool or None, optional
        Threads (True), one thread (False), or automatic (None: threads for large arrays).
    fastmath : bool, optional
        Let LLVM reassociate float arithmetic. Off by default, so results are bit-identical
        across backends, chunkings and thread counts.
    debug : bool, optional
        Check every read against the declared neighbourhood (``IndexError`` on violation) and
        bounds-check all indexing. Slow; for developing kernels with ``neighborhood=``.
    target : {'cpu', 'cuda'}, optional
        Force a backend; by default it follows the input's type.

    Returns
    -------
    Stencil
        Call it as the kernel's signature says: ``smooth(a)``, ``blend(a, b, 0.5)``, with any of
        the options above as keyword overrides and ``out=`` for a preallocated result.

    See Also
    --------
    numba.stencil : the relative-index kernel notation this follows (mode ``'skip'``).
    scipy.ndimage.correlate : for fixed linear weights.

    Examples
    --------
    >>> import numpy as np, stencilkit as sk
    >>> @sk.stencil
    ... def smooth(x):
    ...     return (x[-1, -1] + x[-1, 0] + x[-1, 1] +
    ...             x[ 0, -1] + x[ 0, 0] + x[ 0, 1] +
    ...             x[ 1, -1] + x[ 1, 0] + x[ 1, 1]) // 9
    >>> smooth.radius, smooth.signature
    (((1, 1), (1, 1)), '(n,m)->(n,m)')
    >>> a = np.arange(16, dtype=np.int8).reshape(4, 4) * 8
    >>> smooth(a, mode="skip")
    array([[ 0,  0,  0,  0],
           [ 0, 40, 48,  0],
           [ 0, 72, 80,  0],
           [ 0,  0,  0,  0]], dtype=int8)
    >>> smooth(a)[0]
    array([13, 18, 26, 32], dtype=int8)
    """
    if fn is None:
        return lambda f: Stencil(f, neighborhood=neighborhood, **options)
    return Stencil(fn, neighborhood=neighborhood, **options)
