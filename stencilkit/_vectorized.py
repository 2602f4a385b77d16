"""scipy's ``vectorized_filter``: a NumPy-vectorised function of sliding windows.

The function takes a whole batch of windows at once (``function(windows, axis=...)``, as
``np.mean`` or ``np.std`` do) and reduces each one; nothing is compiled. As scipy (whose
argument checks and messages this follows), the input is extended by the mode with
``np.pad`` and viewed as its sliding windows (``numpy.lib.stride_tricks``); what stencilkit
adds is where the batches run: on every core (NumPy's reductions release the GIL; a batch of
``batch_memory`` bytes at most, as in scipy, and of :data:`BATCH` (4 MiB, in cache), at least
one per thread) and, on a Dask
array, lazily per chunk with the halo the window reaches, every mode exact at chunk edges
(the regions of the other filters' line passes, :func:`stencilkit.backends.dask.run_program`).
"""

from __future__ import annotations

import concurrent.futures
import math
import numbers

import numpy as np

from ._errors import StencilError, StencilNotImplementedError, StencilTypeError

# scipy's names for np.pad's modes, and the grid- aliases scipy takes
_PAD = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap",
        "constant": "constant"}
_ALIASES = {"grid-mirror": "mirror", "grid-constant": "constant", "grid-wrap": "wrap"}
_MODES = {"reflect", "constant", "nearest", "mirror", "wrap", "grid-mirror", "grid-constant",
          "grid-wrap", "valid"}


class Window:
    """A vectorized filter's checked arguments, with the core axes last.

    ``size``: the window's shape; ``footprint``: a boolean mask of it or None (every element);
    ``borders``: (before, after) per core axis, as ``np.pad`` takes them.
    """

    def __init__(self, function, size, footprint, mode, cval, origin, n_axes):
        self.function = function
        self.size = size
        self.footprint = footprint
        self.mode = mode
        self.cval = cval
        self.n_axes = n_axes
        self.borders = tuple((s // 2 + o, (s - 1) // 2 - o) for s, o in zip(size, origin))

    def axes(self):
        return tuple(range(-self.n_axes, 0))

    def result_shape(self, shape):
        """The result's shape for an input of ``shape`` (core axes last)."""
        if self.mode != "valid":
            return tuple(shape)
        nb = len(shape) - self.n_axes
        return tuple(shape[:nb]) + tuple(n - s + 1 for n, s in zip(shape[nb:], self.size))

    def call(self, windows):
        """The function of a batch of windows (core window axes last), one value each."""
        if self.footprint is not None:
            return self.function(windows[..., self.footprint], axis=-1)
        return self.function(windows, axis=self.axes())

    def padded(self, a):
        """``a`` extended along its core axes by the mode (``valid``: as it is)."""
        if self.mode == "valid":
            return a
        widths = ((0, 0),) * (a.ndim - self.n_axes) + self.borders
        if self.mode == "constant":
            return np.pad(a, widths, mode="constant", constant_values=self.cval)
        return np.pad(a, widths, mode=_PAD[self.mode])

    def __dask_tokenize__(self):
        from dask.base import tokenize

        return ("stencilkit.vectorized", tokenize(self.function), self.size,
                None if self.footprint is None else self.footprint.tobytes(), self.mode,
                self.cval, self.borders)


def check(input, function, size, footprint, mode, cval, origin, axes, batch_memory):
    """Check the arguments as scipy does: ``(Window, axes, batch_memory)``, or its ValueError."""
    if not callable(function):
        raise StencilError("`function` must be a callable.")
    if size is None and footprint is None:
        raise StencilError("Either `size` or `footprint` must be provided.")
    if size is not None and footprint is not None:
        raise StencilError("Either `size` or `footprint` may be provided, not both.")
    ndim = input.ndim
    if axes is None:
        axes = tuple(range(-ndim, 0))
    elif np.isscalar(axes):
        axes = (axes,)
    axes = tuple(axes)
    n_axes = len(axes)
    if n_axes > ndim:
        raise StencilError("The length of `axes` may not exceed the dimensionality of `input` "
                           "(`input.ndim`).")
    if size is not None:
        size = (size,) * n_axes if np.isscalar(size) else tuple(size)
        if not all(_integral(s) and s > 0 for s in size):
            raise StencilError("All elements of `size` must be positive integers.")
        size = tuple(int(s) for s in size)
    else:
        footprint = np.asarray(footprint, dtype=bool)
        size = footprint.shape
    if n_axes != len(size):
        raise StencilError("`axes` must be compatible with the dimensionality of the window "
                           "specified by `size` or `footprint`.")
    for ax in axes:
        if not _integral(ax) or not -ndim <= ax < ndim:
            raise StencilError(f"`axes` must name axes of the input (ndim {ndim}), got {axes}")
    if len({ax % ndim for ax in axes}) != n_axes:
        raise StencilError(f"`axes` must not repeat an axis, got {axes}")
    if origin is None:
        origin = (0,) * n_axes
    else:
        origin = (origin,) * n_axes if np.isscalar(origin) else tuple(origin)
        if not all(_integral(o) for o in origin):
            raise StencilError("All elements of `origin` must be integers.")
        if len(origin) != n_axes:
            raise StencilError("`origin` must be an integer or tuple of integers with length "
                               "equal to the number of axes.")
        origin = tuple(int(o) for o in origin)
    if not isinstance(mode, str) or mode not in _MODES:
        raise StencilError(f"`mode` must be one of {sorted(_MODES)}.")
    mode = _ALIASES.get(mode, mode)
    if mode == "valid" and any(origin):
        raise StencilError("`mode='valid'` is incompatible with use of `origin`.")
    for s, o in zip(size, origin):
        if not -(s // 2) <= o <= (s - 1) // 2:
            raise StencilError(f"each origin must lie within its window: {-(s // 2)} to "
                               f"{(s - 1) // 2} for a size of {s}, got {o}")
    if cval is None:
        cval = 0.0
    elif mode != "constant":
        raise StencilError("Use of `cval` is compatible only with `mode='constant'`.")
    if isinstance(cval, (str, bytes)) or np.asarray(cval).dtype.kind not in "biufc":
        raise StencilError("`cval` must include only numbers.")
    if (isinstance(batch_memory, (str, bytes)) or np.ndim(batch_memory) != 0
            or np.asarray(batch_memory).dtype.kind not in "biuf" or not batch_memory > 0):
        raise StencilError("`batch_memory` must be positive number.")
    return Window(function, size, footprint, mode, cval, origin, n_axes), axes, batch_memory


def _integral(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) or (
        isinstance(v, np.generic) and np.issubdtype(type(v), np.integer))


# Bytes of windows per batch (as batch_memory counts them) at most: a batch's temporaries
# then stay in cache. np.std / np.median of 5 x 5 windows of 2000^2 float64 on two threads:
# 668 / 1494 ms with one batch per thread, 338 / 712 with 1 MiB, 319 / 682 with 4 MiB, 329 /
# 736 with 16 MiB, 397 / 873 with 64 MiB (scipy's one thread, batches of its 1 GiB: 680-900 /
# 3000-4800 ms).
BATCH = 4 << 20


def run(a, window, output, batch_memory, threads):
    """The filter of ``a`` (core axes last) into ``output`` (core axes last) or a new array.

    The windows are cut along their first axis into batches of at most ``batch_memory`` bytes
    (counted as scipy counts them: every element of every window), of :data:`BATCH` at most
    and at least ``threads`` batches where there are rows enough; the first batch gives the
    result's dtype, the others run on ``threads`` threads. A function of more than one value
    per window gets the whole view in one call (as scipy, whose result it then is), which
    must fit ``batch_memory``.
    """
    view = np.lib.stride_tricks.sliding_window_view(window.padded(a), window.size,
                                                    axis=window.axes())
    shape = view.shape[:a.ndim]
    per_row = math.prod(view.shape[1:]) * view.dtype.itemsize
    rows = min(view.shape[0], batch_memory // per_row)
    if rows < 1:
        raise StencilError("`batch_memory` is insufficient for minimum chunk size.")
    rows = int(max(1, min(rows, -(-view.shape[0] // threads), BATCH // per_row)))
    first = np.asarray(window.call(view[:rows]))
    if first.shape != (rows,) + shape[1:]:  # several values per window: one call, as scipy
        if rows == view.shape[0]:
            whole = first
        elif view.shape[0] * per_row > batch_memory:
            raise StencilError("`function` must return one value per window when the windows "
                               "are taken in batches (`batch_memory` is less than the whole "
                               "sliding window view)")
        else:
            whole = np.asarray(window.call(view))
        if output is None:
            return whole
        store(output, whole)
        return output
    if output is None:
        output = np.empty(shape, first.dtype)
    store(output[:rows], first)
    starts = range(rows, view.shape[0], rows)

    def batch(i):
        store(output[i:i + rows], window.call(view[i:i + rows]))

    if threads > 1 and len(starts) > 1:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(batch, starts))  # (list: a function's exception rises here)
    else:
        for i in starts:
            batch(i)
    return output


def store(dst, values):
    """Store ``values`` into ``dst`` by the filters' rule.

    Into integers (or bool): nearest, ties to even, and saturated, by the CPU backend's
    rounding pass (:meth:`stencilkit.backends.Backend.saturate`); complex values only into
    complex.
    """
    values = np.asarray(values)
    if values.dtype == dst.dtype:
        dst[...] = values
    elif values.dtype.kind == "c" and dst.dtype.kind != "c":
        raise StencilTypeError(f"vectorized_filter: the function's values are complex "
                               f"({values.dtype}); the output's dtype {dst.dtype} is not: "
                               "give a complex output, or return the real part")
    elif dst.dtype.kind in "iub":
        from .backends import cpu

        cpu.BACKEND.saturate(np.ascontiguousarray(values), dst.dtype, out=dst)
    else:
        dst[...] = values


class Program:
    """The filter of one Dask region (core axes last), for :func:`run_program`.

    The region is filtered as an array of its own, extended by the mode; the result has its
    shape.
    """

    def __init__(self, window, dtype, batch_memory):
        self.window = window
        self.dtype = dtype  # the result's (values stored by store())
        self.batch_memory = batch_memory

    def __call__(self, region):
        # (NumPy's reductions add in an order that follows the operand's shape and layout: a
        # region's float sums may differ from the whole array's in the last bit)
        out = np.empty(region.shape, self.dtype)
        return run(region, self.window, out, self.batch_memory, 1)

    def __dask_tokenize__(self):
        return ("stencilkit.vectorized.Program", self.window.__dask_tokenize__(),
                str(self.dtype), self.batch_memory)


def result_dtype(window, dtype):
    """The dtype of the function's value of ``dtype`` windows, from two windows of ones.

    (Ones: no division by zero or log of zero in a function of the data; NumPy's floating
    point errors are ignored.) Raises if the function gives other than one value per window:
    a Dask array's chunks must each give their own part of the result.
    """
    probe = np.ones((2,) + window.size, dtype)
    with np.errstate(all="ignore"):
        value = np.asarray(window.call(probe))
    if value.shape != (2,):
        raise StencilNotImplementedError(
            "vectorized_filter: on a Dask array, the function must give one value per window "
            f"(two windows gave an array of shape {value.shape}); compute the array first for "
            "a function of several values")
    return value.dtype


def run_dask(x, window, batch_memory, out_dtype=None):
    """The filter of the Dask array ``x`` (core axes last), lazily.

    Per chunk, with the halo the window reaches; into ``out_dtype`` (None: the function's).
    """
    from . import modes
    from .backends.dask import run_program

    dtype = result_dtype(window, x.dtype)
    if out_dtype is not None:
        store(np.empty(0, out_dtype), np.empty(0, dtype))  # (complex into real: refused now)
        dtype = out_dtype
    mode = window.mode
    if mode == "valid":  # the windows inside the array: any mode's result, cut
        window = Window(window.function, window.size, window.footprint, "nearest",
                        window.cval, (0,) * window.n_axes, window.n_axes)
    program = Program(window, dtype, batch_memory)
    result = run_program(program, [x], window.n_axes, window.borders,
                         modes.mode_code(window.mode), dtype)
    if mode == "valid":
        nb = x.ndim - window.n_axes
        result = result[(slice(None),) * nb + tuple(
            slice(lo, n - hi) for (lo, hi), n in zip(window.borders, x.shape[nb:]))]
    return result
