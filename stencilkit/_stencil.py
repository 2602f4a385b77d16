"""The public :class:`Stencil` object and the :func:`stencil` decorator.

A Stencil is the kernel's definition (parsed source, options), the validation of a call's
arguments and its plan (``_plan``: dtypes, axes, mode, cval, which compiled variant). Running
the plan is the business of the backend that :func:`stencilkit.backends.select` picks from the
inputs and ``target=``, in one place (``_backend``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import operator
import sys
import threading
import types
from typing import NamedTuple

import numpy as np

from . import _dtypes, backends, modes
from ._errors import StencilAxisError, StencilError, StencilTypeError
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
    parallel: bool | None
    size: int


class _ModuleRef:
    """A module in a pickled kernel's scope, pickled by name."""

    def __init__(self, name):
        self.name = name


def _rebuild(source, scope, neighborhood, options, cpu_rewrites=True):
    scope = {
        k: importlib.import_module(v.name) if isinstance(v, _ModuleRef) else v
        for k, v in scope.items()
    }
    return Stencil._from_source(source, scope, neighborhood, options, cpu_rewrites)


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
    def _from_source(cls, source, scope, neighborhood, options, cpu_rewrites=True):
        self = cls.__new__(cls)
        self._init(source, scope, neighborhood, options)
        self._cpu_rewrites = cpu_rewrites
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

    _cpu_rewrites = True
    """Whether the CPU backend rewrites the kernel for speed: integer variables held narrow
    where they fit (stencilkit/_narrow.py), a large body inlined (codegen.INLINE_NODES). Off
    for the filters' generated kernels, whose plans narrow their sums themselves and whose
    speed is measured as they are (benchmarks/filters.py)."""

    def __repr__(self):
        return f"<stencilkit.Stencil {self._spec.name}{self.signature} radius={self.radius}>"

    def __reduce__(self):
        scope = {
            k: _ModuleRef(v.__name__) if isinstance(v, types.ModuleType) else v
            for k, v in self._spec.globals.items()
        }
        options = {k: v for k, v in self.options.items() if v != _OPTIONS[k]}
        return _rebuild, (self._source, scope, self._neighborhood, options, self._cpu_rewrites)

    # -- compilation ---------------------------------------------------------------------------

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
                self._gufunc = backends.get("cpu").gufunc(self)
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

    def _backend(self, arrays, overrides):
        """The backend that runs a call on ``arrays``: the one decision of where code runs."""
        return backends.select(arrays, overrides.get("target") or self.options["target"])

    def __call__(self, *args, out=None, **kwargs):
        """Apply the kernel; see :func:`stencil` for arguments and options."""
        arrays, params, overrides = self._split_args(args, kwargs)
        with self._compile_errors(arrays, params):
            return self._backend(arrays, overrides).apply(self, arrays, params, out, overrides)

    @contextlib.contextmanager
    def _compile_errors(self, arrays, params):
        """A context in which numba's refusal to type the body is a :class:`StencilTypeError`.

        numba's own error names a generated file and lines the user never wrote; this one names
        the kernel and the call's types first, then quotes numba's account.
        """
        try:
            yield
        except Exception as exc:
            errors = sys.modules.get("numba.core.errors")  # (not loaded: numba compiled nothing)
            if errors is None or not isinstance(exc, errors.TypingError):
                raise
            kinds = ", ".join([str(getattr(a, "dtype", type(a).__name__)) for a in arrays]
                              + [type(p).__name__ for p in params])
            raise StencilTypeError(
                f"{self._where}: numba cannot compile the kernel's body for ({kinds}): the body, "
                "or a function it calls, has no numba implementation for these types. A body "
                "may use arithmetic, comparisons, math's functions, NumPy's ufuncs on scalars "
                f"and jitted functions. numba says:\n{exc}") from None

    def _axes(self, overrides, ndim):
        """The core axes of a call on ``ndim``-axis arrays, normalised."""
        return _normalize_axes(overrides.get("axes") or self.options["axes"], ndim, self.ndim,
                               self._where)

    def _check_arrays(self, arrays, params, out, backend):
        """The inputs, checked, as ``backend`` takes them.

        NumPy arrays, except the arrays ``backend.keeps`` (Dask arrays for the Dask backend,
        which stay lazy; device arrays for the CUDA backend); other backends' arrays (a device
        array for the CPU backend) are copied to the host.
        """
        where = self._where
        k = self.ndim
        names = self._spec.arrays
        host = []
        for name, a in zip(names, arrays):
            if type(a) is not np.ndarray and not backend.keeps(a):
                try:
                    a = backends.to_numpy(a)
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
        if out is not None and not isinstance(out, np.ndarray) and not backend.keeps(out):
            kind = f" or {backend.array_kind}" if backend.array_kind else ""
            raise StencilTypeError(
                f"{where}: out must be a NumPy array{kind}, got {type(out).__name__}"
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
            if overrides:  # (cval=-0.0 and 0.0 plan apart: exact_key)
                key += sorted((k, _dtypes.exact_key(v)) for k, v in overrides.items())
            key = tuple(key)
            plan = self._plans.get(key)
        except TypeError:  # an unhashable option value: plan without the cache
            key, plan = None, None
        if plan is None:
            plan = self._make_plan(host, out, overrides)
            if key is not None:
                _dtypes.remember(self._plans, key, plan, 257)
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
        return _Plan(
            mode=mode, axes=axes, moved=moved, batch=batch, core=core,
            wshape=(math.prod(batch),) + core, acc0=acc.type(0), out_dtype=out_dtype, wout=wout,
            work_dtypes=work_dtypes, cval_acc=cval_acc, cval_out=wout.type(cval_out),
            variant=(bool(opts["fastmath"]), bool(opts["debug"])),
            parallel=_use_parallel(opts), size=math.prod(shape),
        )

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
          t_binop_floordiv20_6 = (((sk_i32)(((sk_u32)(t_binop_add14_4 + 384) * 683u) >> 11)) - 128);
          t_24return_value_7 = t_binop_floordiv20_6;
          return t_24return_value_7;
        }
        """
        return backends.get("cuda").source(self, args, kwargs)

    def explain(self, *args, **kwargs) -> str:
        """Say how a call with these arguments would run: backend, kernel path and why.

        For the CPU backend: threads, the accumulator, the output, whether loops over
        constant ranges were written out, and the integer variables held in 16 or 32 bits for
        these dtypes (README, "Vectorising integer kernels"). For
        the CUDA backend: whether the generated CUDA C++ or the numba.cuda fallback runs
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
        >>> @sk.stencil
        ... def sharpen(x):
        ...     v = 3 * x[0] - x[-1] - x[1]
        ...     return min(max(v, 0), 255)
        >>> print(sharpen.explain(np.zeros(1000, np.uint8)))  # doctest: +ELLIPSIS
        sharpen on a (1000,) uint8 array: ...; v held in int16 (its values fit)
        >>> print(sharpen.explain(np.zeros(1000, np.int32)))  # doctest: +ELLIPSIS
        sharpen on a (1000,) int32 array: ...; accumulator int64, output int32
        """
        arrays, params, overrides = self._split_args(args, dict(kwargs))
        first = arrays[0]
        shape = tuple(getattr(first, "shape", np.shape(first)))
        dtype = first.dtype if hasattr(first, "dtype") else np.asarray(first).dtype
        kind = type(first).__module__.split(".")[0]
        what = f"{self._spec.name} on a {shape} {np.dtype(dtype)} " + (
            "array" if kind == "numpy" else f"{kind} array")
        return self._backend(arrays, overrides).explain(self, what, arrays, params, overrides)

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
            up to 16 for states of 16 MiB or more, else 1 (step by step). CUDA: a 2-D kernel
            on the generated C++ path advances tiles of the state in shared memory, up to
            ``block_steps`` steps a launch (fewer where a tile and its halo would not fit);
            default 8 for kernels reaching one element along each axis over states of 16 MiB
            or more (measured faster: 0.83 of a device copy a step against 0.70 for a float32
            heat step), else 1 (a launch a step).
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
        with self._compile_errors(arrays, params):
            return self._backend(arrays, overrides).iterate(self, arrays, params, out,
                                                            overrides, steps, block_steps)


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
            raise StencilAxisError(
                f"{where}: axis {a} is out of range for an array with {ndim} axes")
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


def _use_parallel(opts):
    """Threads (True), one thread (False), or the backend decides by size (None)."""
    if opts["debug"]:
        return False  # bounds-check exceptions are raised from the serial loop
    return opts["parallel"]



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
        integer inputs, the input's type for floats (float32 for float16). Floats converted to
        integers (an integer ``acc`` for float data, and the body's ``int()``, ``np.uint8()``,
        ``math.floor``, ``round``) truncate, saturate at the type's limits and give 0 for NaN
        on every backend; shifts by a count outside 0..63 give 0 (-1 for a negative value
        shifted right), as NumPy's.
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
