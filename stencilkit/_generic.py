"""The user's function of :func:`stencilkit.filters.generic_filter` and ``generic_filter1d``.

scipy.ndimage calls such a function from C once per element (or line), through the Python
interpreter: a 5 x 5 ``np.std`` of a megapixel image takes seconds. stencilkit compiles it
instead: a plain Python function (a lambda too) is compiled by numba (``numba.njit``, with
NumPy's error model: a float division by zero gives inf or NaN, as NumPy's float64 values give
scipy's call of the same function), a
numba-jitted function is used as it is, NumPy's own functions (``np.mean``, ``np.median``,
``np.ptp``, ...) are called from compiled code, which numba knows how to do, and a C function
(a ``scipy.LowLevelCallable`` or a bare capsule, with scipy's signatures) through ctypes from
a numba function. The backends then call it from a compiled loop over the elements
(:mod:`stencilkit.backends.cpu_lines.generic`, :mod:`stencilkit.backends.cuda_generic`).

A function numba cannot compile (one that uses Python objects, a keyword numba's NumPy does
not take) still works on the CPU: it is called from Python for each element, as scipy does,
with a :class:`stencilkit._errors.StencilPerformanceWarning` that says why. On a GPU there is
no such way round: the function must compile for the device.
"""

from __future__ import annotations

import functools
import itertools
import keyword
import types
import uuid

import numpy as np

from . import _dtypes
from ._errors import StencilTypeError

_JITTED: dict = {}  # a Python function -> its numba.njit twin (compiled once per types)


class WindowFunction:
    """A generic filter's function with its extra arguments, checked.

    ``kind``: ``"filter"`` (``function(values, *args, **kwargs)`` returns one number per
    window) or ``"filter1d"`` (``function(line_in, line_out, *args, **kwargs)`` fills
    ``line_out``). Picklable (for Dask workers in other processes; a C function only back into
    the process that made it, see :func:`_revive`); its ``repr`` holds a token of the function
    and arguments, so Dask tells two configurations apart.
    """

    unavailable = None  # why the function cannot run in this process (see _revive)

    def __init__(self, function, extra_arguments, extra_keywords, kind, name):
        label = getattr(function, "__name__", type(function).__name__)
        function = _c_function(function, kind, name)
        if not callable(function) and not _low_level(function):
            raise StencilTypeError(f"{name}: function must be callable (a Python function, a "
                                   f"numba.njit function or a NumPy function), got "
                                   f"{type(function).__name__}")
        self.function = function
        self.args, self.kwargs = extras(extra_arguments, extra_keywords, name)
        self.kind = kind
        self.name = name
        self.label = label

    @functools.cached_property
    def token(self) -> str:
        """Dask's token of the function and its arguments (worked out when Dask asks)."""
        return _token(self.function, self.args, self.kwargs)

    def __repr__(self):
        return f"WindowFunction({self.label}, {self.kind}, {self.token})"

    def __reduce__(self):
        if not _low_level(self.function):
            return super().__reduce__()
        # A C function's address means something only in this process (and in a fork of
        # it): the pickle names the function, and unpickling finds it again in this process
        # (dask.distributed pickles every graph, in-process workers' too) or says what to do
        # (a key of its own per instance, never reused: a key forgotten when the record is
        # full can only fail to find its function, never find another)
        key = self.__dict__.setdefault("_live_key", (_PROCESS, next(_KEYS)))
        _dtypes.remember(_LIVE, key, self.function, 256)
        state = {k: v for k, v in self.__dict__.items() if k not in ("function", "_live_key")}
        return _revive, (key, state)

    def available(self):
        """Raise the reason this (unpickled) function cannot run here, if there is one."""
        if self.unavailable is not None:
            raise StencilTypeError(self.unavailable)

    def call(self, *buffers):
        """The function on host buffers, from Python (the fallback's call)."""
        self.available()
        if _low_level(self.function):
            return _call_low_level(self.function, self.kind, *buffers)
        return self.function(*buffers, *self.args, **self.kwargs)

    def value(self, buf):
        """A ``"filter"`` function's value for the window ``buf``, as a float, checked."""
        v = np.asarray(self.call(buf))
        if v.size != 1 or v.dtype.kind not in "biuf":
            raise StencilTypeError(
                f"{self.name}: function {self.label!r} must return one real number per window, "
                f"got {_describe(v)}")
        return float(v.reshape(()))

    def compiled(self):
        """The callable compiled code calls: a numba function, or NumPy's own.

        A ``scipy.LowLevelCallable`` is called through ctypes from a numba function. Anything
        may still fail to compile, which the caller finds out when it compiles its loop.
        """
        self.available()
        f = self.function
        if _low_level(f):
            jitted = _JITTED.get((tuple.__getitem__(f, 0), self.kind))
            if jitted is None:
                jitted = _low_level_jit(f, self.kind)
                _dtypes.remember(_JITTED, (tuple.__getitem__(f, 0), self.kind), jitted, 64)
            return jitted
        from numba.core.dispatcher import Dispatcher

        if isinstance(f, Dispatcher):
            return f
        if isinstance(f, types.FunctionType) and not _numpys(f):
            jitted = _JITTED.get(f)
            if jitted is None:
                import numba

                jitted = numba.njit(f, error_model="numpy")
                _dtypes.remember(_JITTED, f, jitted, 64)
            return jitted
        if f is np.median:  # (numba's skips a NaN; NumPy's, and so scipy's call, gives NaN)
            return _median()
        return f  # NumPy's functions and ufuncs, builtins: numba types them by their identity

    def positional(self):
        """The extra arguments with the keywords bound to their places (for the device).

        numba.cuda's simulator calls device functions without keywords; a function whose
        keyword arguments have no place (keyword-only, ``**kwargs``) is refused.
        """
        import inspect

        if not self.kwargs:
            return self.args
        buffers = (None,) * (1 if self.kind == "filter" else 2)
        try:
            bound = inspect.signature(self.python()).bind(*buffers, *self.args, **self.kwargs)
        except TypeError as exc:
            raise StencilTypeError(f"{self.name}: function {self.label!r} does not take these "
                                   f"arguments: {exc}") from None
        bound.apply_defaults()
        if bound.kwargs:
            raise StencilTypeError(
                f"{self.name}: on a GPU, extra_keywords must name positional parameters of "
                f"{self.label!r}; {sorted(bound.kwargs)} are keyword-only: pass them by "
                "extra_arguments, or make them positional")
        return bound.args[len(buffers):]

    def python(self):
        """The Python function behind the function (for the device compiler), or None."""
        self.available()
        from numba.core.dispatcher import Dispatcher

        f = self.function
        if isinstance(f, Dispatcher):
            return f.py_func
        if isinstance(f, types.FunctionType) and not _numpys(f):
            return f
        return None


def extras(extra_arguments, extra_keywords, name):
    """``(tuple, dict)``: scipy's ``extra_arguments`` and ``extra_keywords``, checked."""
    if isinstance(extra_arguments, (str, bytes)) or not hasattr(extra_arguments, "__iter__"):
        raise StencilTypeError(f"{name}: extra_arguments must be a tuple, got "
                               f"{type(extra_arguments).__name__}")
    if extra_keywords is None:
        extra_keywords = {}
    if not isinstance(extra_keywords, dict):
        raise StencilTypeError(f"{name}: extra_keywords must be a dict, got "
                               f"{type(extra_keywords).__name__}")
    for key in extra_keywords:
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
            raise StencilTypeError(f"{name}: extra_keywords' keys must be argument names, got "
                                   f"{key!r}")
    return tuple(extra_arguments), dict(extra_keywords)


@functools.cache
def _median():
    """``np.median`` of a window as NumPy's: NaN where the window holds one."""
    import numba

    @numba.njit
    def median(values):
        for v in values:
            if v != v:
                return np.nan
        return np.median(values)

    return median


def _numpys(f) -> bool:
    return (getattr(f, "__module__", None) or "").split(".")[0] == "numpy"


_PROCESS = uuid.uuid4().hex  # (a forked process inherits it, and the functions' addresses)
_LIVE: dict = {}  # (process, key) -> a C function pickled in this process
_KEYS = itertools.count()


def _revive(key, state):
    """A pickled :class:`WindowFunction` of a C function, unpickled.

    In the process that pickled it, the function itself; elsewhere one that raises when used
    (a task's error, which Dask reports as the computation's: raised while unpickling, it
    would take the worker down).
    """
    fn = WindowFunction.__new__(WindowFunction)
    fn.__dict__.update(state, function=_LIVE.get(key))
    if fn.function is None:
        fn.unavailable = (
            f"{state['name']}: the C function {state['label']!r} cannot run in another process "
            "(its machine code and user data exist only in the one that made it): compute "
            "with Dask's threads (scheduler='threads') or pass the function as Python or "
            "numba.njit code, which every worker compiles for itself")
    return fn


def _c_function(function, kind, name):
    """``function``, or a ``scipy.LowLevelCallable`` of it if it is a C function in another form.

    A bare capsule (as scipy takes it), a numba ``cfunc`` or a ctypes function pointer (scipy
    would call the last two from Python with the window's array, and ctypes refuse it).
    """
    import ctypes

    cls = type(function)
    if cls.__name__ == "PyCapsule":
        what = "a PyCapsule function"
    elif cls.__name__ == "CFunc" and cls.__module__.startswith("numba"):
        what, function = "a numba cfunc", function.ctypes
    elif isinstance(function, ctypes._CFuncPtr):
        what = "a ctypes function"
    else:
        return function
    try:
        from scipy import LowLevelCallable
    except ImportError:  # pragma: no cover - C callbacks come from scipy's world
        raise StencilTypeError(f"{name}: {what} needs scipy (pip install scipy)") from None
    try:
        return LowLevelCallable(function)
    except (TypeError, ValueError) as exc:  # a ctypes function of types scipy cannot name
        raise StencilTypeError(f"{name}: {what} must have one of the C signatures "
                               f"{' or '.join(_signatures(kind))}: {exc}") from None


def _low_level(f) -> bool:
    return type(f).__name__ == "LowLevelCallable" and type(f).__module__.startswith("scipy")


def _describe(v) -> str:
    if v.size != 1:
        return f"an array of shape {v.shape}"
    return f"a value of dtype {v.dtype}"


def _token(function, args, kwargs) -> str:
    try:
        from dask.base import tokenize
    except ImportError:  # (only Dask reads it)
        return f"{id(function):x}-{id(args):x}-{id(kwargs):x}"
    return tokenize(function, args, kwargs)


def _signatures(kind):
    """scipy.LowLevelCallable's signatures, as scipy.ndimage takes them.

    The size argument is ``npy_intp``, ``intptr_t`` or the C integer type of that size.
    """
    import ctypes

    sizes = ["npy_intp", "intptr_t"] + [
        name for name, t in (("short", ctypes.c_short), ("int", ctypes.c_int),
                             ("long", ctypes.c_long), ("long long", ctypes.c_longlong))
        if ctypes.sizeof(t) == ctypes.sizeof(ctypes.c_ssize_t)]
    if kind == "filter":
        return [f"int (double *, {n}, double *, void *)" for n in sizes]
    return [f"int (double *, {n}, double *, {n}, void *)" for n in sizes]


def _address(f, kind):
    """A ``scipy.LowLevelCallable``'s function address and user data, its signature checked."""
    import ctypes

    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    api.PyCapsule_GetContext.restype = ctypes.c_void_p
    api.PyCapsule_GetContext.argtypes = [ctypes.py_object]
    capsule = tuple.__getitem__(f, 0)  # (scipy's parsed capsule; user_data is its context)
    signature = api.PyCapsule_GetName(capsule)  # (None: a capsule without one, as scipy takes)
    if signature is not None and signature.decode() not in _signatures(kind):
        raise StencilTypeError(f"LowLevelCallable signature {signature.decode()!r} is not one "
                               f"that generic_{kind} takes: {' or '.join(_signatures(kind))}")
    return api.PyCapsule_GetPointer(capsule, signature), api.PyCapsule_GetContext(capsule) or 0


def _prototype(kind):
    import ctypes

    dp, size = ctypes.POINTER(ctypes.c_double), ctypes.c_ssize_t
    if kind == "filter":
        return ctypes.CFUNCTYPE(ctypes.c_int, dp, size, dp, ctypes.c_void_p)
    return ctypes.CFUNCTYPE(ctypes.c_int, dp, size, dp, size, ctypes.c_void_p)


def _call_low_level(f, kind, *buffers):
    """A ``scipy.LowLevelCallable`` called on host buffers through ctypes."""
    import ctypes

    address, user = _address(f, kind)
    fn = _prototype(kind)(address)
    dp = ctypes.POINTER(ctypes.c_double)
    if kind == "filter":
        src = np.ascontiguousarray(buffers[0], np.float64)
        res = np.zeros(1, np.float64)
        ok = fn(src.ctypes.data_as(dp), src.size, res.ctypes.data_as(dp), user)
        result = res[0]
    else:
        line_in, line_out = buffers
        ok = fn(line_in.ctypes.data_as(dp), line_in.size, line_out.ctypes.data_as(dp),
                line_out.size, user)
        result = None
    if not ok:
        raise RuntimeError(f"generic_{kind}: the LowLevelCallable returned 0 (an error)")
    return result


def _low_level_jit(f, kind):
    """A numba function calling a ``scipy.LowLevelCallable`` on float64 arrays (compiled).

    numba calls ctypes functions from compiled code; the arrays' data pointers and the user
    data's come from :func:`_intrinsics`.
    """
    import numba

    address, user = _address(f, kind)
    cfn = _prototype(kind)(address)
    user = np.uint64(user)
    data, pointer = _intrinsics()
    if kind == "filter":
        def call(buf):
            res = np.empty(1, np.float64)
            if cfn(data(buf), buf.size, data(res), pointer(user)) == 0:
                raise RuntimeError("generic_filter: the LowLevelCallable returned 0 (an error)")
            return res[0]
    else:
        def call(line, res):
            if cfn(data(line), line.size, data(res), res.size, pointer(user)) == 0:
                raise RuntimeError("generic_filter1d: the LowLevelCallable returned 0 (an "
                                   "error)")
    return numba.njit(call)


@functools.cache
def _intrinsics():
    """``(data, pointer)``: an array's data pointer, and an integer address as ``void *``."""
    from numba import types as nt
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def data(typingctx, arr):
        """The data pointer of a contiguous array."""
        def codegen(context, builder, sig, args):
            return context.make_array(arr)(context, builder, args[0]).data
        return nt.CPointer(arr.dtype)(arr), codegen

    @intrinsic
    def pointer(typingctx, address):
        """An integer address as ``void *``."""
        def codegen(context, builder, sig, args):
            return builder.inttoptr(args[0], cgutils.voidptr_t)
        return nt.voidptr(address), codegen

    return data, pointer
