"""Ready filters with scipy.ndimage's names and parameters, on every backend.

Change ``from scipy import ndimage`` to ``from stencilkit import filters`` and the same calls
run multi-threaded, on Dask arrays (lazily, exact at chunk edges) and, through the same kernels,
on every backend stencilkit has. Each filter is *generated*: its window, weights and origin are
written out as an ordinary stencil kernel (``w0 * a[-1, 0] + ...``), compiled once per
configuration (and then loaded from the on-disk cache), so boundary modes, threads, Dask halos
and dtype handling are the ones every user kernel gets. Windows with many taps run as separable
passes (one per axis) where the filter allows it.

Results and the one place they differ from scipy.ndimage:

* Floating-point output: equal to scipy's to round-off (sums are evaluated in float64, or in
  float32 for float32 input as scipy does; the order of the additions differs).
* Integer output: scipy truncates toward zero and wraps out-of-range values (a 3 x 3 mean of
  ``[[1, 1, 0], ...]`` that is 0.67 becomes 0; a uint8 Laplacian of -20 becomes 236). stencilkit
  *rounds to nearest, ties to even, and saturates* to the output dtype's range, so an integer
  result is the exact result rounded. Integer inputs with integer weights (uniform, Sobel,
  Prewitt, Laplace, integer ``correlate`` weights) are computed in exact int64 arithmetic
  (in int16 or int32 where the data's range, and cval's, bound every sum: the same integers,
  twice to four times the vector lanes); fractional weights, and a cval beyond 2**31 or
  between integers, sum in float64. (The large-window Gaussian of 8-bit data sums in float32,
  twice the vector width, and sums again in float64 every element whose float32 sum lies within
  its proven error bound of a half-integer: the integers are the float64 sums', see
  ``stencilkit.backends.cpu_lines.float32_tie``.)
* Dask: the same values for every chunking; exactly for integer data and min/max/median, to
  round-off for float sums over large windows (running sums start where a chunk's region does:
  within 1e-12 relative for float64, a few ulps for float32).
* NaN: a window containing NaN gives NaN (min, max and median too, where scipy's answer depends
  on where the NaN is); a NaN never reaches outputs whose window does not contain it. NaN stored
  into an integer output becomes 0.

* ``sobel``/``prewitt`` and Gaussian derivatives with ``mode='constant'`` and a nonzero
  ``cval`` filter the padded array itself; scipy pads the intermediate of its second pass with
  ``cval`` again, so its edge values differ.

``mode`` takes scipy.ndimage's names (``'reflect'``, ``'mirror'``, ``'nearest'``, ``'wrap'``,
``'constant'`` and the ``'grid-*'`` aliases); ``cval`` is used by ``'constant'`` only.
"""

from __future__ import annotations

import functools
import math
import operator
import warnings

import numpy as np

from . import _dtypes, _passes, backends
from ._errors import (
    StencilArgumentError,
    StencilAxisError,
    StencilAxisTypeError,
    StencilError,
    StencilNotImplementedError,
    StencilTypeError,
    StencilValueTypeError,
)
from ._generic import WindowFunction, extras
from ._passes import MEDIAN_MAX, Box, Box2, Extreme, Generic, Generic1d, Rank, Sep2, SepSum2
from .backends.cuda_replay import memoized, spoil

__all__ = [
    "convolve", "convolve1d", "correlate", "correlate1d", "gaussian_filter", "gaussian_filter1d",
    "gaussian_gradient_magnitude", "gaussian_laplace", "generic_filter", "generic_filter1d",
    "generic_gradient_magnitude", "generic_laplace", "laplace", "maximum_filter",
    "maximum_filter1d", "median_filter", "minimum_filter", "minimum_filter1d",
    "percentile_filter", "prewitt", "rank_filter", "sobel", "uniform_filter", "uniform_filter1d",
    "vectorized_filter",
]

# The filters that pick an element of rank from their window (its dimensions run along the
# filtered axes in increasing order, as scipy.ndimage takes a footprint; one mode for all axes
# unless the rank is an extreme)
_ORDERED = ("median_filter", "rank_filter", "percentile_filter")

_MODES = {
    "reflect": "reflect", "grid-mirror": "reflect", "mirror": "mirror", "nearest": "nearest",
    "wrap": "wrap", "grid-wrap": "wrap", "constant": "constant", "grid-constant": "constant",
}
# A window with more taps than this (or a separable filter with more than this many in all)
# runs as one pass per axis: one memory sweep per axis, but taps per element grow as the sum of
# the sizes instead of their product.
DIRECT_TAPS = 27


# --------------------------------------------------------------------------- argument checking

def _array(input, name):
    if backends.foreign(input):  # Dask and device arrays stay where they are
        arr = input
    else:
        arr = np.asarray(input)
    if arr.dtype.kind not in "biufc":
        raise StencilTypeError(f"{name}: input must have a numeric or bool dtype, got "
                               f"{arr.dtype}")
    if arr.ndim == 0:
        raise StencilError(f"{name}: input is 0-d; a filter needs at least one axis "
                           "(np.atleast_1d(input) gives one)")
    return arr


def _parsed(name, arr, args, parse):
    """``parse()``, remembered per filter, input ndim and dtype and raw arguments ``args``.

    A filter's argument checks and the window they give depend on nothing else; on a GPU,
    where the kernel of a mid-sized image takes tens of microseconds, working them out on
    every call was a third of the call's host time. Arguments that are not plain scalars,
    strings and tuples of them (a footprint array, a list) are not remembered; floats count
    by their bits (:func:`stencilkit._dtypes.exact_key`). An error is raised each time.
    """
    try:
        key = (name, arr.ndim, arr.dtype.str, _dtypes.exact_key(args))
        found = _PARSED.get(key)
    except TypeError:  # an array or a list among the arguments: worked out each time
        return parse()
    if found is None:
        found = parse()
        _dtypes.remember(_PARSED, key, found, 512)
    return found


_PARSED: dict = {}


def _axes(axes, ndim, name):
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, (int, np.integer)):
        axes = (axes,)
    out = []
    for ax in axes:
        try:
            ax = operator.index(ax)
        except TypeError:
            # a TypeError for scipy's callers, a ValueError for dask-image's
            raise StencilAxisTypeError(f"{name}: axes must be ints; {ax!r} cannot be "
                                       "interpreted as an integer") from None
        if not -ndim <= ax < ndim:
            raise StencilAxisError(f"{name}: axis {ax} is out of range for a {ndim}-d input")
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise StencilError(f"{name}: axes must be unique; {tuple(axes)} names an axis twice")
    return tuple(out)


def _per_axis(value, axes, what, name, convert=int):
    """A scalar for every filtered axis, or a sequence of one value per axis."""
    t = type(value)
    if (t is int and convert is int) or (t is float and convert is not int):  # (most calls)
        return (value if t is int else float(value),) * len(axes)
    if np.ndim(value) == 0:
        values = [value] * len(axes)
    else:
        values = list(value)
        if len(values) != len(axes):
            raise StencilArgumentError(
                f"{name}: {what} has {len(values)} values but the filter runs along "
                f"{len(axes)} axes {axes}; give one per axis or a scalar (a sequence argument "
                "must have length equal to input rank, or to len(axes) when given)")
    out = []
    for v in values:
        if convert is int:
            # as scipy (and dask-image): an integer type, not a float that happens to be whole
            try:
                if isinstance(v, (bool, np.bool_)):
                    raise TypeError
                out.append(operator.index(v))
            except TypeError:
                raise StencilTypeError(f"{name}: {what} must be integers; {v!r} cannot be "
                                       "interpreted as an integer") from None
        else:
            if isinstance(v, (complex, np.complexfloating)) or np.ndim(v) != 0:
                raise StencilTypeError(f"{name}: {what} must be real numbers, got {v!r}")
            try:
                out.append(float(v))
            except (TypeError, ValueError):
                raise StencilTypeError(f"{name}: {what} must be real numbers, got "
                                       f"{v!r}") from None
    return tuple(out)


def _mode_cval(mode, cval, name, arr, axes=None):
    """The mode and cval, checked.

    The mode is a name, or, for separable filters (given ``axes``), a {axis: name} dict when
    the axes' modes differ.
    """
    if axes is not None and not isinstance(mode, str):
        modes = list(mode)
        if len(modes) != len(axes):
            raise StencilArgumentError(
                f"{name}: mode has {len(modes)} values but the filter runs along {len(axes)} "
                f"axes {axes}; give one per axis or a single mode (a sequence argument must "
                "have length equal to input rank, or to len(axes) when given)")
        names = [_mode(m, name) for m in modes]
        mode = names[0] if len(set(names)) == 1 else dict(zip(axes, names))
    else:
        mode = _mode(mode, name)
    # as scipy, a cval with modes that do not use it is accepted and ignored (wrappers such as
    # dask-image and scikit-image pass it on for every mode)
    return mode, _cval(cval, name, arr)


def _mode(mode, name):
    if not isinstance(mode, str):  # (scipy refuses a sequence here even of equal modes)
        raise StencilArgumentError(f"{name}: one mode per axis ({list(mode)}) is only supported "
                                   "by the separable filters (uniform, gaussian, minimum/maximum "
                                   "with a size, sobel, prewitt, laplace); pass a single mode")
    try:
        return _MODES[mode]
    except (KeyError, TypeError):
        raise StencilError(f"{name}: unknown mode {mode!r}; use one of "
                           f"{', '.join(sorted(_MODES))}") from None


def _footprint(size, footprint, axes, name):
    """The window over the filtered axes as a bool array, and whether it is a full box."""
    if footprint is not None:
        fp = np.asarray(footprint)
        if fp.ndim != len(axes):
            # (scipy's minimum/maximum take a footprint of all True as sizes, hence its words)
            raise StencilArgumentError(f"{name}: footprint.ndim ({fp.ndim}) must match len(axes) "
                                    f"({len(axes)}): the filter runs along axes {axes}; give a "
                                    f"{len(axes)}-d footprint"
                                    + (" (as a sequence argument must have length equal to "
                                       "input rank)" if fp.all() else ""))
        if fp.size == 0:  # (a RuntimeError for scipy's and dask-image's callers)
            raise StencilArgumentError(f"{name}: footprint of shape {fp.shape} is empty; it "
                                       "needs at least one True")
        if not fp.any():
            raise StencilError(f"{name}: footprint selects no element; it needs at least one "
                               "True")
        fp = fp.astype(bool)
        fp.flags.writeable = False  # (the filters remember it: _parsed)
        return fp, bool(fp.all())
    if size is None:
        raise StencilArgumentError(f"{name}: give size or footprint (no footprint provided)")
    sizes = _per_axis(size, axes, "size", name)
    if any(s < 0 for s in sizes):
        raise StencilError(f"{name}: size must be >= 0 along every axis, got {sizes}")
    if 0 in sizes and (name in _ORDERED or name == "generic_filter"):  # (scipy: RuntimeError)
        raise StencilArgumentError(f"{name}: size 0 along an axis leaves no element in the window; "
                                f"give sizes >= 1, got {sizes}")
    # as scipy: a box of size 0 along an axis does not filter along it, as size 1
    fp = np.ones([max(s, 1) for s in sizes], bool)
    fp.flags.writeable = False  # (the filters remember it: _parsed)
    return fp, True


def _window_axes(axes, origin, ndim, name):
    """scipy.ndimage's pairing for a window given as an array: (axes, per-axis origins).

    The dimensions of weights, of a footprint and of a median's box run along the filtered
    axes in increasing order, whatever order ``axes`` lists them in; a per-axis ``origin``
    pairs with ``axes`` as given when fewer than all axes are filtered (with all of them,
    ``origin[k]`` is axis k's). Both come back in increasing order of axis.
    """
    origins = _per_axis(origin, axes, "origin", name)
    if len(axes) < ndim:
        origins = tuple(o for _, o in sorted(zip(axes, origins)))
    return tuple(sorted(axes)), origins


def _origins(origin, shape, axes, name):
    origins = _per_axis(origin, axes, "origin", name)
    for o, s in zip(origins, shape):
        if not -(s // 2) <= o <= (s - 1) // 2:
            raise StencilError(f"{name}: origin {o} is outside [{-(s // 2)}, {(s - 1) // 2}] "
                               f"for a window of {s}")
    return origins


def _output(output, arr, name):
    """(out array or None, output dtype)."""
    if output is None:
        return None, arr.dtype.newbyteorder("=")
    if isinstance(output, np.ndarray) or backends.foreign(output):
        want = backends.for_array(arr)
        if want.lazy:
            raise StencilError(f"{name}: output= arrays do not apply to Dask input; the result "
                               "is a lazy Dask array (pass a dtype instead)")
        if backends.for_array(output) is not want:
            raise StencilTypeError(f"{name}: output must be "
                                   + (want.array_kind or "a NumPy array (or a dtype)")
                                   + f" for {want.input_kind} input, got "
                                   f"{type(output).__name__}")
        if tuple(output.shape) != tuple(arr.shape):
            raise StencilError(f"{name}: output has shape {output.shape}, the input "
                               f"{arr.shape}; they must match")
        if output.dtype.kind not in "biufc":
            raise StencilTypeError(f"{name}: output must have a numeric dtype, got "
                                   f"{output.dtype}")
        if output.dtype.kind != "c" and arr.dtype.kind == "c":
            raise StencilArgumentError(f"{name}: the result is complex; output must have a "
                                       f"complex dtype, got {output.dtype}")
        return output, output.dtype.newbyteorder("=")
    try:
        dtype = np.dtype(output)
    except TypeError:
        raise StencilTypeError(f"{name}: output must be an array or a dtype, got "
                               f"{output!r}") from None
    if dtype.kind not in "biufc":
        raise StencilTypeError(f"{name}: output must have a numeric dtype, got {dtype}")
    if dtype.kind != "c" and arr.dtype.kind == "c":
        # as scipy: a real dtype asked of a complex result is promoted, with a warning
        spoil()  # (a replay would not warn: such calls are not replayed)
        warnings.warn(f"{name}: promoting specified output dtype to complex ({dtype} -> "
                      f"{np.promote_types(dtype, np.complex64)}): the result is complex",
                      UserWarning, stacklevel=4)
        dtype = np.promote_types(dtype, np.complex64)
    return None, dtype.newbyteorder("=")


def _cval(cval, name, arr=None):
    if type(cval) is float:  # (most calls)
        return cval
    if np.ndim(cval) != 0:
        raise StencilTypeError(f"{name}: cval must be a scalar, got {cval!r}")
    if isinstance(cval, (complex, np.complexfloating)) and arr is not None \
            and arr.dtype.kind != "c":
        raise StencilTypeError(f"{name}: a complex cval needs complex input, got {arr.dtype}")
    try:
        return complex(cval) if isinstance(cval, complex) else float(cval)
    except (TypeError, ValueError):
        raise StencilTypeError(f"{name}: cval must be a number, got {cval!r}") from None


def _finish_empty(arr, out, out_dtype):
    if out is not None:
        return out  # nothing to write
    return backends.for_array(arr).zeros(arr.shape, out_dtype, arr)


def _run_lines(arr, passes, mode, cval, out, out_dtype, name):
    """Line passes (:mod:`stencilkit._passes`), lowered by the array's backend.

    Float data into an integer output: the passes' float result, then the filters' rounding
    and saturation rule (the backends' kernels store a float sum as NumPy converts: a 7 x 7
    mean of -1.03 into uint8 was 255, a NaN or a Gaussian into 64-bit integers undefined).
    """
    if arr.dtype.kind == "f" and out_dtype.kind in "iu" and hasattr(passes[-1], "dtype"):
        inter = _dtypes.work_dtype(arr.dtype)  # (float16 sums: float32, not rounded to f16)
        passes = [*passes[:-1], passes[-1]._replace(dtype=inter)]
        res = _run_lines(arr, passes, mode, cval, None, inter, name)
        return backends.for_array(arr).saturate(res, out_dtype, out)
    plan = _passes.Passes(tuple(passes), mode, cval, np.dtype(out_dtype), name)
    return backends.for_array(arr).run_passes(plan, arr, out)


# ------------------------------------------------------------------------------- the filters

@memoized
def correlate(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Multidimensional correlation: ``sum(weights[k] * input[i + k - centre])``.

    Parameters
    ----------
    input : array_like or dask array
        Numeric or bool input.
    weights : array_like
        Weights, one dimension per filtered axis.
    output : ndarray or dtype, optional
        Where to put the result, or its dtype. Default: the input's dtype.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'}, optional
        How the input extends beyond its borders, as in scipy.ndimage (which also spells
        ``'reflect'``, ``'wrap'`` and ``'constant'`` as ``'grid-mirror'``, ``'grid-wrap'`` and
        ``'grid-constant'``; those are accepted too).
        Default ``'reflect'``.
    cval : scalar, optional
        Value outside the array for ``mode='constant'``. Default 0.
    origin : int or sequence of int, optional
        Shift of the window's centre, per axis, as in scipy.ndimage.
    axes : sequence of int, optional
        Axes the weights run along. Default: all.

    Returns
    -------
    ndarray or dask array
        The filtered array (``output`` if one was given).

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.correlate(np.array([0, 0, 4, 0, 0]), [1, 2, 3], mode="constant")
    array([ 0, 12,  8,  4,  0])
    """
    return _correlate_nd(input, weights, output, mode, cval, origin, axes, "correlate")


def _correlate_nd(input, weights, output, mode, cval, origin, axes, name):
    arr, w, axes = _weights_args(input, weights, axes, name, cval)
    # as scipy.ndimage: correlation with complex weights uses their conjugate
    return _correlate(arr, w.conj() if w.dtype.kind == "c" else w, output, mode, cval, origin,
                      axes, name)


def _weights_args(input, weights, axes, name, cval):
    arr = _array(input, name)
    axes = _axes(axes, arr.ndim, name)
    w = np.asarray(weights)
    if w.ndim != len(axes):
        raise StencilArgumentError(f"{name}: weights.ndim ({w.ndim}) must match len(axes) "
                                f"({len(axes)}): the filter runs along axes {axes}; give "
                                f"{len(axes)}-d weights")
    if w.size == 0:
        raise StencilError(f"{name}: weights are empty")
    if w.dtype.kind not in "biufc":
        raise StencilTypeError(f"{name}: weights must be numeric, got {w.dtype}")
    if w.dtype.kind == "c" and arr.dtype.kind != "c":
        # as scipy: real input with complex weights gives a complex result (input of up to
        # 16 bits as complex64, wider as complex128)
        _cval(cval, name, arr)  # a complex cval with real input is refused first
        if not hasattr(arr, "astype"):
            raise StencilTypeError(f"{name}: complex weights need complex input on this device "
                                   "array type; pass a CuPy array or convert it")
        arr = arr.astype(np.promote_types(arr.dtype, np.complex64))
    return arr, w, axes


def _correlate(arr, w, output, mode, cval, origin, axes, name):
    axes, origin = _window_axes(axes, origin, arr.ndim, name)
    mode, cval = _mode_cval(mode, cval, name, arr)
    origins = _origins(origin, w.shape, axes, name)
    out, out_dtype = _output(output, arr, name)
    if arr.size == 0:
        return _finish_empty(arr, out, out_dtype)
    # the kernel's source is a function of the weights' bits, the window's place and the
    # types (and whether cval is whole and within CVAL_INT: plan_acc; the values it reads):
    # worked out once (a fifth of a small GPU call's time)
    reads = _passes.read_span(arr.dtype, mode, cval)
    c = float(np.real(cval))
    key = None if w.nbytes > 1 << 16 else (  # (large windows: not kept)
        w.tobytes(), w.dtype.str, w.shape, origins, axes, arr.ndim, arr.dtype.str,
        out_dtype.str, c.is_integer(), abs(c) <= _passes.CVAL_INT, reads)
    found = _SOURCES.get(key)
    if found is None:
        integral = w.dtype.kind in "biuf" and bool(np.all(w == np.round(w))) \
            and bool(np.all(np.abs(w) < 2**31))
        if integral and reads is not None:  # int64 sums must not overflow, else float64
            integral = max(-reads[0], reads[1]) * float(np.abs(w).sum()) < 2**62
        taps = [(offs, w[idx]) for offs, idx in _passes.taps(np.ones(w.shape, bool), origins,
                                                             axes, arr.ndim)]
        acc, acc_kind = _passes.plan_acc(arr.dtype, integral, cval)
        found = (_passes.linear_source(arr.ndim, taps, acc, acc_kind, out_dtype, None, reads),
                 acc,
                 _passes.outer_taps(arr.ndim, taps, acc, acc_kind, out_dtype))
        if key is not None:
            _dtypes.remember(_SOURCES, key, found, 256)
    return _passes.run(found[0], arr, mode, cval, found[1], out_dtype, out, found[2])


_SOURCES: dict = {}
"""The generated source and accumulator of a correlation, per configuration (``_correlate``)."""


@memoized
def convolve(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Multidimensional convolution: correlation with the weights reversed.

    Parameters
    ----------
    input, weights, output, mode, cval, axes
        As for :func:`correlate`.
    origin : int or sequence of int, optional
        Shift of the window's centre, per axis, as in scipy.ndimage.convolve.

    Returns
    -------
    ndarray or dask array
        The filtered array.

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.convolve(np.array([0, 0, 4, 0, 0]), [1, 2, 3], mode="constant")
    array([ 0,  4,  8, 12,  0])
    """
    return _convolve_nd(input, weights, output, mode, cval, origin, axes, "convolve")


def _convolve_nd(input, weights, output, mode, cval, origin, axes, name):
    arr, w, axes = _weights_args(input, weights, axes, name, cval)
    axes, origins = _window_axes(axes, origin, arr.ndim, name)
    # Reversing the weights mirrors the window about its centre; an even window's centre then
    # moves by one, which the origin takes back.
    flipped = w[(slice(None, None, -1),) * w.ndim]
    origins = tuple(-o - (1 - s % 2) for o, s in zip(origins, w.shape))
    return _correlate(arr, flipped, output, mode, cval, origins, axes, name)


@memoized
def uniform_filter(input, size=3, output=None, mode="reflect", cval=0.0, origin=0, *,
                   axes=None):
    """Mean over a box window of ``size`` elements per axis.

    Integer input gives the exact window mean rounded to nearest (ties to even), from int64
    sums. Windows of more than ``DIRECT_TAPS`` elements run one pass per axis.

    Parameters
    ----------
    input : array_like or dask array
    size : int or sequence of int, optional
        Window length per filtered axis. Default 3.
    output, cval, origin, axes
        As for :func:`correlate`.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'} or sequence of them, optional
        Boundary mode as for :func:`correlate`, or one per filtered axis.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.uniform_filter(np.array([0, 3, 0, 0, 6], np.uint8), 3, mode="constant")
    array([1, 1, 1, 2, 2], dtype=uint8)
    """
    return _uniform(input, size, output, mode, cval, origin, axes, "uniform_filter")


def _uniform(input, size, output, mode, cval, origin, axes, name):
    arr = _array(input, name)
    args = (size, mode, cval, origin, axes)
    axes, fp, mode, cval, origins = _parsed(name, arr, args,
                                            lambda: _box_args(arr, *args, name))
    out, out_dtype = _output(output, arr, name)
    if arr.size == 0:
        return _finish_empty(arr, out, out_dtype)
    how, what = _parsed(name + " plan", arr, (*args, out_dtype.str), lambda: _uniform_plan(
        arr.ndim, arr.dtype, axes, fp, mode, cval, origins, out_dtype))
    if how == "separable":
        return _passes.separable(arr, what, mode, cval, out, out_dtype, True, divisor=fp.size)
    if how == "source":
        return _passes.run(what[0], arr, mode, cval, what[1], out_dtype, out, what[2])
    return _run_lines(arr, what, mode, cval, out, out_dtype, name)


def _box_args(arr, size, mode, cval, origin, axes, name):
    """``(axes, footprint, mode, cval, origins)`` of a box filter's arguments."""
    axes = _axes(axes, arr.ndim, name)
    fp, _ = _footprint(size, None, axes, name)
    mode, cval = _mode_cval(mode, cval, name, arr, axes)
    origins = _origins(origin, fp.shape, axes, name)
    return axes, fp, mode, cval, origins


def _uniform_plan(ndim, dtype, axes, fp, mode, cval, origins, out_dtype):
    """How uniform_filter computes, from its checked arguments (remembered: read-only).

    ``("separable", passes)``, ``("source", (generated source, accumulator, outer taps))`` or
    ``("lines", line passes)``.
    """
    n = fp.size
    if isinstance(mode, dict):  # a mode per axis: one pass per axis
        return "separable", [(ax, (1,) * s, o) for ax, s, o in zip(axes, fp.shape, origins)]
    if n <= DIRECT_TAPS:
        taps = [(offs, 1) for offs, _ in _passes.taps(fp, origins, axes, ndim)]
        acc, acc_kind = _passes.plan_acc(dtype, True, cval)
        return "source", (_passes.linear_source(ndim, taps, acc, acc_kind, out_dtype,
                                                n, _passes.read_span(dtype, mode, cval)), acc,
                          _passes.outer_taps(ndim, taps, acc, acc_kind, out_dtype, n))
    c = float(np.real(cval))
    float_cval = mode == "constant" and not (c.is_integer() and abs(c) <= _passes.CVAL_INT)
    if dtype.kind == "c" or (dtype.kind in "iu" and dtype.itemsize == 8) or (
            float_cval and dtype.kind in "biu"):
        # complex and 64-bit integers (whose sums could overflow int64), and integer data
        # padded with a cval between integers or beyond CVAL_INT (the running sums' exact path
        # adds integers; the passes then sum in float64): tap-by-tap passes
        return "separable", [(ax, (1,) * s, o) for ax, s, o in zip(axes, fp.shape, origins)
                             if s > 1]
    # running sums: a few operations per element whatever the size
    lines = [(ax, s // 2 + o, s - 1 - (s // 2 + o), s)
             for ax, s, o in zip(axes, fp.shape, origins) if s > 1]
    exact = dtype.kind in "biu" and out_dtype.kind in "biu"
    if exact:
        # int32 partial sums when they cannot overflow, else int64 (exact either way)
        bound = max(abs(v) for v in _passes.limits(dtype))
        inter = np.dtype(np.int32) if bound * n + abs(cval) * n < 2**31 else np.dtype(np.int64)
        lo_c, hi_c = _passes.limits(out_dtype)
    else:
        inter = dtype if dtype.kind == "f" else np.dtype(np.float64)
    # the last two axes in one sweep (no intermediate array), the others first, one pass each
    pair = [ln for ln in lines if ln[0] >= ndim - 2] if ndim >= 2 else []
    if len(pair) != 2:
        pair = []
    singles = [ln for ln in lines if ln not in pair]
    passes = []
    for i, (ax, lo, hi, s) in enumerate(singles):
        last = i == len(singles) - 1 and not pair
        if exact:
            passes.append(Box(ax, lo, hi, n if last else 1, out_dtype if last else inter,
                              (lo_c, hi_c) if last else None))
        else:
            passes.append(Box(ax, lo, hi, s, out_dtype if last else inter, None))
    if pair:
        (_, lo0, hi0, s0), (_, lo1, hi1, s1) = pair
        passes.append(Box2(ndim - 2, lo0, hi0, lo1, hi1, n if exact else s0 * s1,
                           out_dtype, (lo_c, hi_c) if exact else None))
    return "lines", passes


def _gaussian_weights(sigma, radius, order=0):
    """Correlation weights of the sampled Gaussian, or of its derivative of ``order`` (1-3).

    g(x) = exp(-x^2 / (2 sigma^2)) / sum, for x in [-radius, radius]. Smoothing by the n-th
    derivative g_n is a convolution with it, i.e. a correlation with g_n(-x) = (-1)^n g_n(x),
    where g_1 = -x/s^2 g, g_2 = (x^2/s^4 - 1/s^2) g and g_3 = (3x/s^4 - x^3/s^6) g.
    """
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    g = g / g.sum()
    s2 = sigma * sigma
    if order == 0:
        return g
    if order == 1:
        d = -x / s2 * g
    elif order == 2:
        d = (x * x / (s2 * s2) - 1 / s2) * g
    else:
        d = (3 * x / (s2 * s2) - x ** 3 / (s2 * s2 * s2)) * g
    return d * (-1) ** order


@memoized
def gaussian_filter(input, sigma, order=0, output=None, mode="reflect", cval=0.0,
                    truncate=4.0, *, radius=None, axes=None):
    """Gaussian smoothing, one separable pass per axis.

    Parameters
    ----------
    input : array_like or dask array
    sigma : float or sequence of float
        Standard deviation per filtered axis; 0 leaves an axis unfiltered.
    order : int or sequence of int, optional
        0 smooths; 1, 2 or 3 filters with that derivative of the Gaussian, per axis.
    output, cval, axes
        As for :func:`correlate`.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'} or sequence of them, optional
        Boundary mode as for :func:`correlate`, or one per filtered axis.
    truncate : float, optional
        The window reaches ``int(truncate * sigma + 0.5)`` elements each side. Default 4.
    radius : int or sequence of int, optional
        The reach each side, overriding ``truncate``.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.gaussian_filter(np.array([0.0, 0.0, 1.0, 0.0, 0.0]), 1.0).round(3)
    array([0.058, 0.242, 0.399, 0.242, 0.058])
    """
    return _gaussian(input, sigma, order, output, mode, cval, truncate, radius, axes,
                     "gaussian_filter")


def _gaussian(input, sigma, order, output, mode, cval, truncate, radius, axes, name):
    arr = _array(input, name)
    args = (sigma, order, mode, cval, truncate, radius, axes)
    mode, cval, passes = _parsed(name, arr, args, lambda: _gaussian_args(arr, *args, name))
    out, out_dtype = _output(output, arr, name)
    if arr.size == 0:
        return _finish_empty(arr, out, out_dtype)
    if not passes:
        return _passes.linear(arr, [((0,) * arr.ndim, 1)], "nearest", 0.0, out, out_dtype, True)
    return _gaussian_run(arr, mode, cval, passes, output, out, out_dtype, name)


def _mode_per_axis(mode, axes, name):
    """A mode for each of ``axes``: one given for all, or one per axis (checked in number)."""
    if isinstance(mode, str):
        return [mode] * len(axes)
    modes_ = list(mode)
    if len(modes_) != len(axes):
        raise StencilArgumentError(
            f"{name}: mode has {len(modes_)} values but the filter runs along {len(axes)} "
            f"axes {axes}; give one per axis or a single mode")
    return modes_


def _gaussian_derivatives(input, sigma, output, mode, cval, axes, truncate, radius, order, norm,
                          name):
    """Gaussian derivatives of ``order`` summed (``norm``: as a gradient's magnitude).

    scipy's ``generic_laplace`` (``norm`` False) or ``generic_gradient_magnitude`` (True)
    with :func:`gaussian_filter`: for each filtered axis, that order along it, smoothing along
    the other filtered axes, in that axis' mode on every axis (as scipy); the terms' sum, or
    the square root of their squares' sum, in the data's float type (float64 for integers),
    rounded once into an integer output.
    """
    arr = _array(input, name)
    axes = _axes(axes, arr.ndim, name)
    sigmas = _per_axis(sigma, axes, "sigma", name, convert=float)
    modes_ = _mode_per_axis(mode, axes, name)
    out, out_dtype = _output(output, arr, name)
    if arr.size == 0:
        return _finish_empty(arr, out, out_dtype)
    if not axes:  # (as scipy: the input)
        return _passes.linear(arr, [((0,) * arr.ndim, 1)], "nearest", 0.0, out, out_dtype, True)
    work = _dtypes.work_dtype(arr.dtype) if arr.dtype.kind in "fc" else np.dtype(np.float64)
    full = [0.0] * arr.ndim
    for ax, s in zip(axes, sigmas):
        full[ax] = s
    fused = _gaussian_sum(arr, tuple(full), order, modes_, cval, truncate, radius, axes, work,
                          norm, out_dtype, name)
    if fused is not None:  # both terms in one sweep, each as its own sweep would give it
        p, mode = fused
        if out_dtype.kind in "iu":
            res = _run_lines(arr, [p], mode, cval, None, work, name)
            return backends.for_array(arr).saturate(res, out_dtype, out)
        return _run_lines(arr, [p], mode, cval, out, out_dtype, name)
    res = _gaussian_volume(arr, tuple(full), order, modes_, cval, truncate, radius, axes, work,
                           norm, out_dtype, name)
    if res is not None:
        return _deliver(res, out, out_dtype)
    terms = []
    for ax, m in zip(axes, modes_):
        orders = [0] * arr.ndim
        orders[ax] = order
        terms.append(_gaussian(arr, tuple(full), tuple(orders), work, m, cval, truncate, radius,
                               None, name))
    return _passes.add(terms, work, out, out_dtype, norm=norm)


def _deliver(res, out, out_dtype):
    """A float result ``res`` in ``out_dtype`` (integers by the filters' rule), into ``out``."""
    if out_dtype.kind in "iub":
        return backends.for_array(res).saturate(res, out_dtype, out)
    if out is None:
        return res.astype(out_dtype, copy=False)
    np.copyto(out, res, casting="unsafe")
    return out


def _gaussian_volume(arr, full, order, modes_, cval, truncate, radius, axes, work, norm,
                     out_dtype, name):
    """Gaussian derivatives over the last three axes of a NumPy array, fewer sweeps; or None.

    The terms as :func:`_gaussian` computes them, combined as :func:`_passes.add` combines
    them, bit for bit: the first axis' term as it is (a pass along the first axis, then the
    last two in one sweep); the other two share their first pass (the same smoothing) and run
    as one ``SepSum2`` sweep that adds the first term in (``sepsum2_pass`` with a base). The
    axes in order, one mode that extends the array, the terms' sweeps the unrolled ones; the
    CPU only.
    """
    from .backends import cpu
    from .backends.cpu_lines.separable import UNROLL_MAX, sepsum2_pass

    nd = arr.ndim
    if (nd < 3 or tuple(axes) != (nd - 3, nd - 2, nd - 1) or out_dtype.kind not in "iuf"
            or not (arr.dtype.kind in "biu" or arr.dtype in (np.float32, np.float64))
            or backends.for_array(arr) is not cpu.BACKEND):
        return None
    found = _derivative_terms(arr, full, order, modes_, cval, truncate, radius, axes, name)
    if found is None:
        return None
    mode, weights = found
    (_, wv1, wh1), (head, wv2, wh2) = weights[1], weights[2]
    if (weights[1][0] != head or len(wv1) != len(wv2) or len(wh1) != len(wh2)
            or max(len(wv1), len(wh1)) > UNROLL_MAX):
        return None
    orders = [0] * nd
    orders[nd - 3] = order
    first = _gaussian(arr, full, tuple(orders), work, mode, cval, truncate, radius, None, name)
    # the smoothing along the first axis the other two terms share, as _gaussian_run makes it
    inter = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    x = _passes.separable(arr, [(nd - 3, head, 0)], mode, cval, None, inter, False)
    acc = np.float32 if x.dtype == np.float32 else np.float64
    return sepsum2_pass(np.ascontiguousarray(x), [(wv1, wh1), (wv2, wh2)], len(wv1) // 2,
                        len(wh1) // 2, mode, norm, work, acc=acc,
                        base=np.ascontiguousarray(first))


def _derivative_terms(arr, full, order, modes_, cval, truncate, radius, axes, name):
    """``(mode, weights)`` of the Gaussian derivative terms, one per axis of ``axes``, or None.

    None unless every term takes one mode that extends the array and runs as a pass per axis
    of ``axes`` (more than ``DIRECT_TAPS`` taps in all); ``weights[t]``: term t's weight
    vectors (tuples) in axis order.
    """
    names = {_mode(m, name) for m in modes_}
    if len(names) != 1 or "constant" in names:
        return None
    (mode,) = names
    weights = []
    for ax in axes:
        orders = [0] * arr.ndim
        orders[ax] = order
        args = (full, tuple(orders), mode, cval, truncate, radius, None)
        mode, _, passes = _parsed(name, arr, args,
                                  lambda args=args: _gaussian_args(arr, *args, name))
        if len(passes) != len(axes) or math.prod(len(w) for _, w, _ in passes) <= DIRECT_TAPS:
            return None
        weights.append([tuple(w) for _, w, _ in sorted(passes, key=lambda q: q[0])])
    return mode, weights


def _gaussian_sum(arr, full, order, modes_, cval, truncate, radius, axes, work, norm,
                  out_dtype, name):
    """``(SepSum2, mode)`` of the Gaussian derivatives over the last two axes, or None.

    Where each term would run as one ``Sep2`` sweep (the generated, unrolled one: a mode
    that extends the array, more than ``DIRECT_TAPS`` taps, at most ``UNROLL_MAX`` a side)
    the two run as one sweep that reads the image once, with the same sums (the CPU's
    ``sepsum2_pass``; a GPU runs the two sweeps and adds them, as before).
    """
    from .backends.cpu_lines.separable import UNROLL_MAX

    nd = arr.ndim
    if (nd < 2 or sorted(axes) != [nd - 2, nd - 1] or arr.dtype.kind not in "biuf"
            or out_dtype.kind not in "iuf"):
        return None
    found = _derivative_terms(arr, full, order, modes_, cval, truncate, radius, axes, name)
    if found is None:
        return None
    mode, weights = found
    terms = [(wv, wh) for wv, wh in weights]
    if max(len(w) for term in terms for w in term) > UNROLL_MAX:
        return None
    if len({(len(wv), len(wh)) for wv, wh in terms}) != 1:
        return None
    (wv, wh) = terms[0]
    return SepSum2(nd - 2, tuple(terms), len(wv) // 2, len(wh) // 2, norm, work), mode


@memoized
def gaussian_laplace(input, sigma, output=None, mode="reflect", cval=0.0, *, axes=None,
                     truncate=4.0, radius=None):
    """Laplacian of a Gaussian: the sum over axes of second Gaussian derivatives, as scipy.

    Each filtered axis' term is :func:`gaussian_filter` with order 2 along it and smoothing
    along the other filtered axes; the terms are summed in the data's float type (float64 for
    integer data) and an integer result is rounded once (scipy truncates every term).

    Parameters
    ----------
    input : array_like or dask array
    sigma : float or sequence of float
        Standard deviation per filtered axis.
    output, cval, axes
        As for :func:`correlate`.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'} or sequence of them, optional
        One mode, or one per filtered axis: as scipy, each axis' term then uses that mode on
        every axis.
    truncate, radius
        As for :func:`gaussian_filter` (scipy's ``**kwargs``, passed on to it).

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.gaussian_laplace(np.array([0.0, 0.0, 1.0, 0.0, 0.0]), 1.0).round(3)
    array([ 0.197,  0.002, -0.399,  0.002,  0.197])
    """
    return _gaussian_derivatives(input, sigma, output, mode, cval, axes, truncate, radius, 2,
                                 False, "gaussian_laplace")


@memoized
def gaussian_gradient_magnitude(input, sigma, output=None, mode="reflect", cval=0.0, *,
                                axes=None, truncate=4.0, radius=None):
    """Gradient magnitude by Gaussian derivatives: ``sqrt(sum over axes of d_k^2)``, as scipy.

    Each filtered axis' derivative is :func:`gaussian_filter` with order 1 along it and
    smoothing along the other filtered axes; squares, sum and square root in the data's float
    type (float64 for integer data), an integer result rounded once (scipy truncates each
    derivative and squares it in the integer type). With ``axes``, only those axes are
    smoothed, as in :func:`gaussian_laplace` (scipy 1.17 smooths the others too).

    Parameters
    ----------
    input, sigma, output, mode, cval, axes, truncate, radius
        As for :func:`gaussian_laplace`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.gaussian_gradient_magnitude(np.array([0.0, 0.0, 1.0, 0.0, 0.0]), 1.0).round(3)
    array([0.095, 0.241, 0.   , 0.241, 0.095])
    """
    return _gaussian_derivatives(input, sigma, output, mode, cval, axes, truncate, radius, 1,
                                 True, "gaussian_gradient_magnitude")


def _gaussian_args(arr, sigma, order, mode, cval, truncate, radius, axes, name):
    """``(mode, cval, passes)`` of gaussian_filter's arguments: a weight vector per axis."""
    axes = _axes(axes, arr.ndim, name)
    sigmas = _per_axis(sigma, axes, "sigma", name, convert=float)
    if any(not math.isfinite(s) or s < 0 for s in sigmas):
        raise StencilError(f"{name}: sigma must be finite and >= 0, got {sigmas}")
    orders = _per_axis(order, axes, "order", name)
    if any(not 0 <= o <= 3 for o in orders):
        raise StencilError(f"{name}: order must be 0 (smoothing) to 3 (third derivative) per "
                           f"axis, got {orders}")
    (truncate,) = _per_axis(truncate, (0,), "truncate", name, convert=float)
    if not math.isfinite(truncate) or truncate < 0:
        raise StencilError(f"{name}: truncate must be finite and >= 0, got {truncate!r}")
    if radius is None:
        radii = tuple(int(float(truncate) * s + 0.5) for s in sigmas)
    else:
        try:
            radii = _per_axis(radius, axes, "radius", name)
        except StencilTypeError as exc:  # (scipy: a ValueError)
            raise StencilValueTypeError(str(exc)) from None
        if any(r < 0 for r in radii):
            raise StencilError(f"{name}: radius must be >= 0, got {radii}")
    mode, cval = _mode_cval(mode, cval, name, arr, axes)
    # as scipy: an axis with sigma ~ 0 is not filtered; a one-tap window (radius 0) is the
    # identity for smoothing but the derivative at 0 for order > 0 (0, -1/sigma^2, 0)
    passes = [(ax, _gaussian_weights(s, r, o), 0)
              for ax, s, r, o in zip(axes, sigmas, radii, orders) if s > 1e-15 and (r or o)]
    for _, w, _ in passes:
        w.flags.writeable = False  # (remembered: _parsed)
    return mode, cval, passes


def _gaussian_run(arr, mode, cval, passes, output, out, out_dtype, name):
    """gaussian_filter once its arguments are checked and its ``passes`` weighed."""
    if isinstance(mode, dict):
        return _passes.separable(arr, passes, mode, cval, out, out_dtype, False)
    taps = math.prod(len(w) for _, w, _ in passes)
    if len(passes) == 1 or taps <= DIRECT_TAPS:
        w = functools.reduce(np.multiply.outer, [p[1] for p in passes])
        pax = tuple(p[0] for p in passes)
        return _correlate(arr, w, output, mode, cval, 0, pax, name)
    last_two = [p for p in passes if p[0] >= arr.ndim - 2]
    if len(last_two) == 2 and arr.dtype.kind in "biuf" and out_dtype.kind in "biuf":
        # the last two axes fused in one sweep (no intermediate array); others first
        (_, wv, _), (_, wh, _) = last_two
        head = [p for p in passes if p[0] < arr.ndim - 2]
        whole = arr.dtype.kind in "biu"
        if head:
            inter = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
            arr = _passes.separable(arr, head, mode, cval, None, inter, False)
            # outside the array, the intermediate is the head passes applied to cval
            cval = float(np.asarray(cval * math.prod(sum(w) for _, w, _ in head)).astype(inter))
        lines = [Sep2(arr.ndim - 2, tuple(wv), len(wv) // 2, tuple(wh), len(wh) // 2,
                      out_dtype)]
        from .backends import cpu

        if head and whole and out_dtype.kind in "biu" and backends.for_array(arr) is cpu.BACKEND:
            # the float64 intermediate of integer data is finite: the CPU's sweep rounds and
            # saturates into the output itself, as the float result saturated afterwards
            # (_run_lines' rule for float data, whose NaN and infinities the sweep's store
            # would not take), without that float64 result
            plan = _passes.Passes(tuple(lines), mode, cval, np.dtype(out_dtype), name)
            return cpu.BACKEND.run_passes(plan, arr, out)
        return _run_lines(arr, lines, mode, cval, out, out_dtype, name)
    return _passes.separable(arr, passes, mode, cval, out, out_dtype, False)


def _derivative(input, axis, output, mode, cval, smooth, name):
    arr = _array(input, name)
    axis, mode, cval, w = _parsed(name, arr, (axis, mode, cval), lambda: _derivative_args(
        arr, axis, mode, cval, smooth, name))
    if w is None:  # a mode per axis: one pass per axis
        out, out_dtype = _output(output, arr, name)
        if arr.size == 0:
            return _finish_empty(arr, out, out_dtype)
        passes = [(ax, [-1, 0, 1] if ax == axis else list(smooth), 0) for ax in range(arr.ndim)]
        return _passes.separable(arr, passes, mode, cval, out, out_dtype, True)
    return _correlate(arr, w, output, mode, cval, 0, tuple(range(arr.ndim)), name)


def _derivative_args(arr, axis, mode, cval, smooth, name):
    """``(axis, mode, cval, weights)`` of sobel's and prewitt's arguments.

    ``weights`` None: a mode per axis (one pass per axis).
    """
    try:
        axis = _axes((axis,), arr.ndim, name)[0]
    except StencilTypeError:
        raise StencilAxisTypeError(f"{name}: axis must be an int; {axis!r} cannot be "
                                   "interpreted as an integer") from None
    all_axes = tuple(range(arr.ndim))
    mode, cval = _mode_cval(mode, cval, name, arr, all_axes)
    if isinstance(mode, dict):
        return axis, mode, cval, None
    w = np.array(1)
    for ax in all_axes:
        w = np.multiply.outer(w, np.array([-1, 0, 1]) if ax == axis else np.array(smooth))
    w.flags.writeable = False  # (remembered: _parsed)
    return axis, mode, cval, w


@memoized
def sobel(input, axis=-1, output=None, mode="reflect", cval=0.0):
    """Sobel derivative along ``axis``: ``[-1, 0, 1]`` there, ``[1, 2, 1]`` along the others.

    Exact integer arithmetic for integer input; results saturate to the output dtype (scipy
    wraps them): pass ``output=np.int16`` (or a float dtype) to keep the sign of uint8 data.

    Parameters
    ----------
    input : array_like or dask array
    axis : int, optional
        The axis of the derivative. Default: the last.
    output, cval
        As for :func:`correlate`.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'} or sequence of them, optional
        Boundary mode as for :func:`correlate`, or one per filtered axis.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.sobel(np.array([[0, 0, 9]] * 3), axis=1)
    array([[ 0, 36, 36],
           [ 0, 36, 36],
           [ 0, 36, 36]])
    """
    return _derivative(input, axis, output, mode, cval, [1, 2, 1], "sobel")


@memoized
def prewitt(input, axis=-1, output=None, mode="reflect", cval=0.0):
    """Prewitt derivative along ``axis``: ``[-1, 0, 1]`` there, ``[1, 1, 1]`` along the others.

    Parameters
    ----------
    input, axis, output, mode, cval
        As for :func:`sobel`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.prewitt(np.array([[0, 0, 9]] * 3), axis=1)
    array([[ 0, 27, 27],
           [ 0, 27, 27],
           [ 0, 27, 27]])
    """
    return _derivative(input, axis, output, mode, cval, [1, 1, 1], "prewitt")


@memoized
def laplace(input, output=None, mode="reflect", cval=0.0, *, axes=None):
    """Discrete Laplacian: the sum over axes of ``[1, -2, 1]``.

    Parameters
    ----------
    input : array_like or dask array
    output, cval, axes
        As for :func:`correlate`.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'} or sequence of them, optional
        Boundary mode as for :func:`correlate`, or one per filtered axis.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.laplace(np.array([0, 10, 0]), mode="constant")
    array([ 10, -20,  10])
    """
    name = "laplace"
    arr = _array(input, name)
    axes = _axes(axes, arr.ndim, name)
    modes_, cval_ = _mode_cval(mode, cval, name, arr, axes)
    if isinstance(modes_, dict):
        # a mode per axis: the sum of one [1, -2, 1] pass per axis, exact (int64 or float64)
        out, out_dtype = _output(output, arr, name)
        if arr.size == 0:
            return _finish_empty(arr, out, out_dtype)
        wide = np.dtype(np.int64) if arr.dtype.kind in "biu" else (
            np.dtype(np.complex128) if arr.dtype.kind == "c" else np.dtype(np.float64))
        w = [1, -2, 1]
        if wide.kind == "i" and _passes.plan_acc(arr.dtype, True, cval_)[1] == "int":
            # each term in the narrowest type that holds it (a quarter of int64's bytes for
            # 8-bit data: uint8 8000^2 with a mode per axis, 45 -> 17 ms)
            taps = [((0,), v) for v in w]  # (sum_type reads only the weights)
            wide = _passes.sum_type(taps, _passes.read_span(arr.dtype, modes_, cval_)) or wide
        parts = [_passes.separable(arr, [(ax, w, 0)], modes_, cval_, None, wide, True)
                 for ax in axes]
        return _passes.add(parts, wide, out, out_dtype)
    w = np.zeros((3,) * len(axes), np.int64)
    centre = (1,) * len(axes)
    for d in range(len(axes)):
        for o in (0, 2):
            idx = list(centre)
            idx[d] = o
            w[tuple(idx)] += 1
        w[centre] -= 2
    return _correlate(arr, w, output, modes_, cval, 0, axes, name)  # (one mode, if a list)


def _rank_args(input, size, footprint, output, mode, cval, origin, axes, name):
    arr = _array(input, name)
    parsed = _parsed(name, arr, (size, footprint, mode, cval, origin, axes),
                     lambda: _rank_parse(arr, size, footprint, mode, cval, origin, axes, name))
    out, out_dtype = _output(output, arr, name)
    return (arr, *parsed, out, out_dtype)


def _rank_parse(arr, size, footprint, mode, cval, origin, axes, name):
    """``(axes, footprint, box?, mode, cval, origins, modes given?)`` of a rank filter's arguments.

    A mode per axis needs a box (sizes or a footprint of all True); for the ordered filters
    (``_ORDERED``) only where the rank is an extreme, which :func:`_ordered` checks.
    """
    if arr.dtype.kind == "c":
        raise StencilTypeError(f"{name}: complex input has no order; filter the real and "
                               "imaginary parts (or np.abs(input)) separately")
    axes = _axes(axes, arr.ndim, name)
    fp, box = _footprint(size, footprint, axes, name)
    per_axis = not isinstance(mode, str)
    if per_axis and not box:
        raise StencilArgumentError(f"{name}: one mode per axis needs a separable window (a box: "
                                   "size=, or a footprint of all True); pass a single mode")
    mode, cval = _mode_cval(mode, cval, name, arr, axes)  # (modes pair with axes as given)
    if name in _ORDERED or not box:  # (a box of minimum/maximum: sizes pair with axes)
        axes, origin = _window_axes(axes, origin, arr.ndim, name)
    used = mode.values() if isinstance(mode, dict) else [mode]
    if "constant" in used:  # the windows compare values of this type, cval among them
        cval = _passes.cval_in(cval, _dtypes.work_dtype(arr.dtype), name)
    origins = _origins(origin, fp.shape, axes, name)
    return axes, fp, box, mode, cval, origins, per_axis


def _rounded(arr, out, out_dtype, compute, *args):
    """``compute(*args, out, out_dtype)``, or in the data's dtype, then the integer rule.

    The second where an integer output needs the rounding and saturation rule
    (:func:`stencilkit._dtypes.needs_rounding`: a value the data's dtype holds but the
    output's does not). For the rank filters, whose kernels select in the data's type and
    store with NumPy's conversion: without it a maximum of int16 data into uint8 wrapped
    (-5 -> 251) and a float median truncated (2.7 -> 2).
    """
    if not _dtypes.needs_rounding(arr.dtype, out_dtype):
        return compute(*args, out, out_dtype)
    res = compute(*args, None, arr.dtype.newbyteorder("="))
    return backends.for_array(arr).saturate(res, out_dtype, out)


def _extreme(op, input, size, footprint, output, mode, cval, origin, axes, name):
    arr, axes, fp, box, mode, cval, origins, _, out, out_dtype = _rank_args(
        input, size, footprint, output, mode, cval, origin, axes, name)
    if arr.size == 0:
        return _finish_empty(arr, out, out_dtype)
    return _rounded(arr, out, out_dtype, _extreme_of, op, arr, axes, fp, box, mode, cval,
                    origins, name)


def _extreme_of(op, arr, axes, fp, box, mode, cval, origins, name, out, out_dtype):
    """A minimum or maximum filter from its checked arguments."""
    acc = _dtypes.work_dtype(arr.dtype)  # float16 compares in float32 (exactly)
    if isinstance(mode, dict):  # a mode per axis: a 1-D pass per axis, each with its mode
        for i, (ax, s, o) in enumerate(zip(axes, fp.shape, origins)):
            last = i == len(axes) - 1
            taps = _passes.taps(np.ones((s,), bool), (o,), (ax,), arr.ndim)
            arr = _passes.run(_passes.extreme_source(arr.ndim, taps, op), arr, mode[ax], cval, acc,
                       out_dtype if last else acc, out if last else None)
        return arr
    if box and fp.size > DIRECT_TAPS:
        # a box's extreme is the extreme along each axis in turn (exact: no arithmetic), each
        # by van Herk / Gil-Werman in three comparisons per element
        passes = [Extreme(ax, s // 2 + o, s - 1 - (s // 2 + o), op == "maximum")
                  for ax, s, o in zip(axes, fp.shape, origins) if s > 1]
        return _run_lines(arr, passes, mode, cval, out, out_dtype, name)
    if box:  # a backend's own kernel for a small box (the GPU's 8-bit sweep), where it has one
        passes = tuple(Extreme(ax, s // 2 + o, s - 1 - (s // 2 + o), op == "maximum")
                       for ax, s, o in zip(axes, fp.shape, origins) if s > 1)
        if passes:
            plan = _passes.Passes(passes, mode, cval, np.dtype(out_dtype), name)
            res = backends.for_array(arr).rank_kernel(plan, arr, out)
            if res is not None:
                return res
    taps = _passes.taps(fp, origins, axes, arr.ndim)
    return _passes.run(_passes.extreme_source(arr.ndim, taps, op), arr, mode, cval, acc,
                       out_dtype, out)


@memoized
def minimum_filter(input, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
                   origin=0, *, axes=None):
    """Minimum over a window (``size`` box or boolean ``footprint``).

    Exact for every dtype (int64/uint64 extremes included); a window holding NaN gives NaN.
    Box windows larger than ``DIRECT_TAPS`` run one pass per axis.

    Parameters
    ----------
    input : array_like or dask array
    size : int or sequence of int, optional
        Box window length per filtered axis; give ``size`` or ``footprint``.
    footprint : array_like, optional
        The window as a boolean mask, one dimension per filtered axis (instead of ``size``).
    output, cval, origin, axes
        As for :func:`correlate`.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'} or sequence of them, optional
        Boundary mode as for :func:`correlate`; one per filtered axis only with ``size``.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.minimum_filter(np.array([5, 3, 8, 1, 9]), size=3)
    array([3, 3, 1, 1, 1])
    """
    return _extreme("minimum", input, size, footprint, output, mode, cval, origin, axes,
                    "minimum_filter")


@memoized
def maximum_filter(input, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
                   origin=0, *, axes=None):
    """Maximum over a window (``size`` box or boolean ``footprint``).

    Parameters
    ----------
    input, size, footprint, output, mode, cval, origin, axes
        As for :func:`minimum_filter`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.maximum_filter(np.array([5, 3, 8, 1, 9]), size=3)
    array([5, 8, 8, 9, 9])
    """
    return _extreme("maximum", input, size, footprint, output, mode, cval, origin, axes,
                    "maximum_filter")


def _nested(lists):
    """Nested lists as nested tuples (hashable, for Dask's tokens)."""
    return tuple(_nested(v) for v in lists) if isinstance(lists, list) else bool(lists)


def _rank_pass(ndim, axes, fp, origins, which, name):
    """``(n, window shape over every axis, Rank pass)`` of an ordered filter's window.

    ``which``: ``("median", None)``, ``("rank", rank)`` or ``("percentile", percentile)``,
    turned into a rank as scipy.ndimage does (a negative rank or percentile counts from the
    top; percentile ``p`` of ``n`` elements is rank ``int(n * p / 100)``, 100 the largest).
    """
    n = int(fp.sum())
    kind, value = which
    if kind == "median":
        rank = n // 2
    elif kind == "percentile":
        try:
            if isinstance(value, (str, bytes)):
                raise TypeError
            p = float(value)
        except (TypeError, ValueError):
            raise StencilTypeError(f"{name}: percentile must be a number, got {value!r}") from None
        if p < 0:
            p += 100.0
        if not 0 <= p <= 100:  # (scipy: RuntimeError('invalid percentile'))
            raise StencilArgumentError(f"{name}: percentile {value!r} is outside [-100, 100]")
        rank = n - 1 if p == 100 else int(float(n) * p / 100.0)
    else:
        try:
            rank = operator.index(value)
        except TypeError:
            raise StencilTypeError(f"{name}: rank must be an integer, got {value!r}") from None
    if not -n <= rank < n:  # (scipy: RuntimeError('rank not within filter footprint size'))
        raise StencilArgumentError(f"{name}: rank {rank} is outside the window's {n} elements; "
                                   f"give {-n} <= rank < {n} (negative ranks count from the top)")
    rank %= n
    shape = [1] * ndim
    for ax, s in zip(axes, fp.shape):
        shape[ax] = s
    full = fp.reshape(shape)
    lo = [0] * ndim
    for ax, s, o in zip(axes, fp.shape, origins):
        lo[ax] = s // 2 + o
    last2 = bool(fp.all()) and all(s == 1 for ax, s in enumerate(shape) if ax < ndim - 2)
    return n, tuple(shape), Rank(_nested(full.tolist()), tuple(lo), rank, last2)


def _ordered(which, input, size, footprint, output, mode, cval, origin, axes, name):
    """The median, rank or percentile filter (``which``: see :func:`_rank_pass`).

    As scipy.ndimage: the smallest element is a minimum filter and the largest a maximum
    filter (with their one-pass-per-axis kernels for large boxes, and a mode per axis for a
    box); other ranks need a single mode.
    """
    arr, axes, fp, box, mode, cval, origins, per_axis, out, out_dtype = _rank_args(
        input, size, footprint, output, mode, cval, origin, axes, name)
    n, shape, rank = _parsed(f"{name} rank", arr, (size, footprint, origin, axes, which),
                             lambda: _rank_pass(arr.ndim, axes, fp, origins, which, name))
    if rank.rank in (0, n - 1):  # the minimum or the maximum of the window
        if arr.size == 0:
            return _finish_empty(arr, out, out_dtype)
        op = "minimum" if rank.rank == 0 else "maximum"
        return _rounded(arr, out, out_dtype, _extreme_of, op, arr, axes, fp, box, mode, cval,
                        origins, name)
    if per_axis:  # (scipy: RuntimeError, even for a sequence of one mode)
        raise StencilArgumentError(
            f"{name}: one mode per axis is only supported where the rank is the window's "
            f"smallest or largest (a minimum or maximum filter); rank {rank.rank} of {n} needs "
            "a single mode")
    if arr.size == 0:
        return _finish_empty(arr, out, out_dtype)
    return _rounded(arr, out, out_dtype, _rank_of, arr, fp, mode, cval, origins, axes, n,
                    shape, rank, name)


@memoized
def median_filter(input, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
                  origin=0, *, axes=None):
    """Median over a window: the element of rank ``n // 2`` of its ``n`` values, as scipy.

    Windows of up to ``MEDIAN_MAX`` elements: a generated sorting network (Batcher's odd-even
    merge sort, pruned by the compiler to what the middle rank needs); larger ones: a selection
    per element (quickselect), or for uint8 and uint16 boxes Huang's sliding histogram (two
    levels for 16 bits). Exact for every dtype; a window holding NaN gives NaN.

    Parameters
    ----------
    input, size, footprint, output, cval, origin, axes
        As for :func:`minimum_filter`.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'}, optional
        Boundary mode as for :func:`correlate` (one for every axis).

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.median_filter(np.array([5, 3, 8, 1, 9]), size=3)
    array([5, 5, 3, 8, 9])
    """
    return _ordered(("median", None), input, size, footprint, output, mode, cval, origin, axes,
                    "median_filter")


@memoized
def rank_filter(input, rank, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
                origin=0, *, axes=None):
    """The ``rank``-th smallest value of each window (0: the smallest), as scipy.

    Of a window of ``n`` values, ranks run from 0 to ``n - 1``; a negative ``rank`` counts
    from the top (-1: the largest). Rank 0 and ``n - 1`` are
    :func:`minimum_filter` and :func:`maximum_filter`; the others run as :func:`median_filter`
    does, its sorting network pruned to the rank asked for. Exact for every dtype; a window
    holding NaN gives NaN.

    Parameters
    ----------
    input : array_like or dask array
    rank : int
        The rank in the sorted window, ``-n <= rank < n``.
    size, footprint, output, cval, origin, axes
        As for :func:`minimum_filter`.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'} or sequence of them, optional
        Boundary mode as for :func:`correlate`; one per filtered axis only for a box window
        whose rank is the smallest or the largest.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.rank_filter(np.array([5, 3, 8, 1, 9, 4]), 1, size=4)
    array([3, 5, 3, 3, 4, 4])
    """
    return _ordered(("rank", rank), input, size, footprint, output, mode, cval, origin, axes,
                    "rank_filter")


@memoized
def percentile_filter(input, percentile, size=None, footprint=None, output=None,
                      mode="reflect", cval=0.0, origin=0, *, axes=None):
    """The ``percentile``-th percentile of each window (one of its values), as scipy.

    Of a window of ``n`` elements, percentile ``p`` is the element of rank ``int(n * p / 100)``
    (100: the largest); a negative ``p`` counts from the top (``p + 100``). No interpolation
    between elements (a :func:`rank_filter`).

    Parameters
    ----------
    input : array_like or dask array
    percentile : float
        Within ``[-100, 100]``.
    size, footprint, output, mode, cval, origin, axes
        As for :func:`rank_filter`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.percentile_filter(np.array([5, 3, 8, 1, 9, 4]), 75, size=3)
    array([5, 8, 8, 9, 9, 9])
    """
    return _ordered(("percentile", percentile), input, size, footprint, output, mode, cval,
                    origin, axes, "percentile_filter")


def _rank_of(arr, fp, mode, cval, origins, axes, n, shape, rank, name, out, out_dtype):
    """An ordered filter's ``Rank`` pass from its checked arguments."""
    if n > MEDIAN_MAX:
        # large windows: a selection per element over the mode-padded array (uint8 and
        # uint16 boxes: Huang's sliding histogram)
        return _run_lines(arr, [rank], mode, cval, out, out_dtype, name)
    if all(s == 1 for s in shape[:-2]):  # a backend's own kernel (the GPU's), where it has one
        plan = _passes.Passes((rank,), mode, cval, np.dtype(out_dtype), name)
        res = backends.for_array(arr).rank_kernel(plan, arr, out)
        if res is not None:
            return res
    taps = _passes.taps(fp, origins, axes, arr.ndim)
    acc = _dtypes.work_dtype(arr.dtype)  # float16 compares in float32 (exactly)
    return _passes.run(_passes.rank_source(arr.ndim, taps, rank.rank), arr, mode, cval, acc,
                       out_dtype, out)


# ------------------------------------------------------------------------ along one axis
# scipy.ndimage's 1-D filters: the N-d filters with ``axes=(axis,)``, checked as scipy checks
# them (a size of at least 1, weights of one dimension)


def _size1d(size, name):
    try:
        size = operator.index(size)
    except TypeError:
        raise StencilTypeError(f"{name}: size must be an integer, got {size!r}") from None
    if size < 1:  # (scipy: RuntimeError('incorrect filter size'))
        raise StencilArgumentError(f"{name}: size must be >= 1, got {size}")
    return size


def _weights1d(weights, name):
    w = np.asarray(weights)
    if w.ndim != 1 or w.size == 0:  # (scipy: RuntimeError('no filter weights given'))
        raise StencilArgumentError(f"{name}: weights must be a non-empty 1-d sequence, got shape "
                                   f"{w.shape}")
    return w


@memoized
def correlate1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """Correlation along one axis: :func:`correlate` with 1-d ``weights`` and ``axes=(axis,)``.

    Parameters
    ----------
    input : array_like or dask array
    weights : array_like
        1-d weights.
    axis : int, optional
        The axis filtered. Default -1.
    output, mode, cval
        As for :func:`correlate`.
    origin : int, optional
        Shift of the window's centre.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.correlate1d(np.array([[0, 0, 4, 0, 0]]), [1, 2, 3], mode="constant")
    array([[ 0, 12,  8,  4,  0]])
    """
    name = "correlate1d"
    return _correlate_nd(input, _weights1d(weights, name), output, mode, cval, origin, (axis,),
                         name)


@memoized
def convolve1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """Convolution along one axis: :func:`convolve` with 1-d ``weights`` and ``axes=(axis,)``.

    Parameters
    ----------
    input, weights, axis, output, mode, cval, origin
        As for :func:`correlate1d`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.convolve1d(np.array([0, 0, 4, 0, 0]), [1, 2, 3], mode="constant")
    array([ 0,  4,  8, 12,  0])
    """
    name = "convolve1d"
    return _convolve_nd(input, _weights1d(weights, name), output, mode, cval, origin, (axis,),
                        name)


@memoized
def uniform_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """Mean over ``size`` elements along one axis: :func:`uniform_filter` along ``axis``.

    Parameters
    ----------
    input : array_like or dask array
    size : int
        The window's length, at least 1.
    axis, output, mode, cval, origin
        As for :func:`correlate1d`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.uniform_filter1d(np.array([[0, 3, 0, 0, 6]], np.uint8), 3, mode="constant")
    array([[1, 1, 1, 2, 2]], dtype=uint8)
    """
    name = "uniform_filter1d"
    return _uniform(input, _size1d(size, name), output, mode, cval, origin, (axis,), name)


@memoized
def gaussian_filter1d(input, sigma, axis=-1, order=0, output=None, mode="reflect", cval=0.0,
                      truncate=4.0, *, radius=None):
    """Gaussian smoothing (or a derivative) along one axis: :func:`gaussian_filter` there.

    Parameters
    ----------
    input : array_like or dask array
    sigma : float
        Standard deviation.
    axis : int, optional
        The axis filtered. Default -1.
    order : int, optional
        0 smooths; 1, 2 or 3 filters with that derivative of the Gaussian.
    output, mode, cval
        As for :func:`correlate`.
    truncate : float, optional
        The window reaches ``int(truncate * sigma + 0.5)`` elements each side. Default 4.
    radius : int, optional
        The reach each side, overriding ``truncate``.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.gaussian_filter1d(np.array([[0.0, 0.0, 1.0, 0.0, 0.0]]), 1.0).round(3)
    array([[0.058, 0.242, 0.399, 0.242, 0.058]])
    """
    name = "gaussian_filter1d"
    if np.ndim(sigma) or np.ndim(order) or np.ndim(radius):
        raise StencilTypeError(f"{name}: sigma, order and radius are scalars (one axis); for "
                               "several axes use gaussian_filter")
    return _gaussian(input, sigma, order, output, mode, cval, truncate, radius, (axis,), name)


@memoized
def minimum_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """Minimum over ``size`` elements along one axis: :func:`minimum_filter` along ``axis``.

    Parameters
    ----------
    input, size, axis, output, mode, cval, origin
        As for :func:`uniform_filter1d`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.minimum_filter1d(np.array([5, 3, 8, 1, 9]), 3)
    array([3, 3, 1, 1, 1])
    """
    name = "minimum_filter1d"
    return _extreme("minimum", input, _size1d(size, name), None, output, mode, cval, origin,
                    (axis,), name)


@memoized
def maximum_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """Maximum over ``size`` elements along one axis: :func:`maximum_filter` along ``axis``.

    Parameters
    ----------
    input, size, axis, output, mode, cval, origin
        As for :func:`uniform_filter1d`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.maximum_filter1d(np.array([5, 3, 8, 1, 9]), 3)
    array([5, 8, 8, 9, 9])
    """
    name = "maximum_filter1d"
    return _extreme("maximum", input, _size1d(size, name), None, output, mode, cval, origin,
                    (axis,), name)


# ------------------------------------------------------------------ a user's function of windows
# scipy.ndimage's generic filters: the function compiled by numba and called from a compiled
# loop (:mod:`stencilkit._generic`), where scipy calls it from Python for every element


def generic_filter(input, function, size=None, footprint=None, output=None, mode="reflect",
                   cval=0.0, origin=0, extra_arguments=(), extra_keywords=None, *, axes=None):
    """A function of each window's values, compiled: scipy's ``generic_filter`` at speed.

    ``function(values, *extra_arguments, **extra_keywords)`` gets the window's values as a
    1-d float64 array (the footprint's True elements in C order; past the edges as ``mode``
    says, ``cval`` as given for ``constant``) and returns one number. A Python function
    (a lambda too) is compiled by numba, a ``numba.njit`` function is used as it is,
    NumPy's functions that numba supports (``np.mean``, ``np.std``, ``np.median``,
    ``np.ptp``, ...) are called from compiled code, and a C function (a
    ``scipy.LowLevelCallable``, a capsule, a numba ``cfunc`` or a ctypes function pointer,
    with scipy's signature) through ctypes; the loop over the elements is compiled too,
    and runs on every core. A function numba cannot compile is called from Python for each
    element instead, as scipy does, with a :class:`stencilkit.StencilPerformanceWarning`
    that says why. On a GPU the function is compiled for the device by numba.cuda (loops
    and ``math``; NumPy's reductions are not available there). Integer outputs are the
    function's value rounded to the nearest (ties to even) and saturated, as every
    filter's. Given both a ``size`` and a ``footprint``, the size is ignored, with a
    warning (as scipy).

    Parameters
    ----------
    input : array_like or dask array
        Real (bool, integer or float) input.
    function : callable
        The window's function, as above.
    size, footprint, origin, axes
        As for :func:`minimum_filter`.
    output, cval
        As for :func:`correlate`.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'}, optional
        Boundary mode as for :func:`correlate` (one for every axis).
    extra_arguments : tuple, optional
        Further positional arguments to ``function``.
    extra_keywords : dict, optional
        Further keyword arguments to ``function``.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.generic_filter(np.array([5.0, 3, 8, 1, 9]), np.ptp, size=3)
    array([2., 5., 7., 8., 8.])
    >>> filters.generic_filter(np.array([5.0, 3, 8, 1, 9]), lambda w, k: w[0] * k, size=2,
    ...                        extra_arguments=(10,))
    array([50., 50., 30., 80., 10.])
    """
    name = "generic_filter"
    if size is not None and footprint is not None:
        warnings.warn(f"{name}: ignoring size because footprint is set", UserWarning,
                      stacklevel=2)
    arr = _generic_input(input, name)
    fn = WindowFunction(function, extra_arguments, extra_keywords, "filter", name)
    axes = _axes(axes, arr.ndim, name)
    fp, _ = _footprint(None if footprint is not None else size, footprint, axes, name)
    axes, origin = _window_axes(axes, origin, arr.ndim, name)
    origins = _origins(origin, fp.shape, axes, name)
    mode, cval = _mode(mode, name), _cval(cval, name, arr)
    out, out_dtype = _output(output, arr, name)
    if arr.size == 0:
        return _finish_empty(arr, out, out_dtype)
    shape, lo = [1] * arr.ndim, [0] * arr.ndim
    for ax, s, o in zip(axes, fp.shape, origins):
        shape[ax], lo[ax] = s, s // 2 + o
    p = Generic(_nested(fp.reshape(shape).tolist()), tuple(lo), fn)
    return _generic_run(arr, p, mode, cval, out, out_dtype, name)


def generic_filter1d(input, function, filter_size, axis=-1, output=None, mode="reflect",
                     cval=0.0, origin=0, extra_arguments=(), extra_keywords=None):
    """A function of each line along an axis, compiled: scipy's ``generic_filter1d``.

    ``function(line, result, *extra_arguments, **extra_keywords)`` gets each line along
    ``axis`` as a float64 array extended by ``filter_size // 2 + origin`` elements before and
    the rest of the window after (as ``mode`` says), and fills the float64 array ``result``
    of the line's own length. Compiled and called as :func:`generic_filter`'s function.

    Parameters
    ----------
    input : array_like or dask array
        Real (bool, integer or float) input.
    function : callable
        The line's function, as above.
    filter_size : int
        The window's length along ``axis``, at least 1.
    axis : int, optional
        The axis the lines run along. Default: the last.
    output, mode, cval, origin, extra_arguments, extra_keywords
        As for :func:`generic_filter`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> def running_sum(line, result):
    ...     for i in range(result.size):
    ...         result[i] = line[i] + line[i + 1] + line[i + 2]
    >>> filters.generic_filter1d(np.array([1.0, 2, 3, 4]), running_sum, 3, mode="constant")
    array([3., 6., 9., 7.])
    """
    name = "generic_filter1d"
    arr = _generic_input(input, name)
    fn = WindowFunction(function, extra_arguments, extra_keywords, "filter1d", name)
    size = _size1d(filter_size, name)
    (axis,) = _axes((axis,), arr.ndim, name)
    (o,) = _origins(origin, (size,), (axis,), name)
    mode, cval = _mode(mode, name), _cval(cval, name, arr)
    out, out_dtype = _output(output, arr, name)
    if arr.size == 0:
        return _finish_empty(arr, out, out_dtype)
    return _generic_run(arr, Generic1d(axis, size, size // 2 + o, fn), mode, cval, out,
                        out_dtype, name)


def _generic_input(input, name):
    arr = _array(input, name)
    if arr.dtype.kind == "c":  # (scipy: TypeError('Complex type not supported'))
        raise StencilTypeError(f"{name}: complex input is not supported (the function gets "
                               "float64 values, as scipy's); filter the real and imaginary "
                               "parts separately")
    return arr


def _generic_run(arr, p, mode, cval, out, out_dtype, name):
    """The generic pass ``p``, each value stored in the output by the filters' rule.

    Integers: nearest, ties to even, saturated (NaN 0); bool: the same into [0, 1].
    """
    plan = _passes.Passes((p,), mode, cval, out_dtype, name)
    return backends.for_array(arr).run_passes(plan, arr, out)


def vectorized_filter(input, function, *, size=None, footprint=None, output=None,
                      mode="reflect", cval=None, origin=None, axes=None, batch_memory=2**30):
    """A NumPy-vectorised function of every window: scipy's ``vectorized_filter``.

    ``function(windows, axis=...)`` reduces a whole batch of windows at once along ``axis``
    (the window's axes, last), as ``np.mean``, ``np.std`` or ``np.percentile`` do; with a
    ``footprint``, it gets the footprint's elements along one last axis (``axis=-1``).
    Nothing is compiled: any dtype NumPy takes (complex, float16) and any NumPy code work,
    and the result has the function's dtype. As scipy, the input is extended by ``mode``
    (or not: ``"valid"`` keeps only the windows inside it, a smaller result) and viewed as
    its sliding windows, in batches of at most ``batch_memory`` bytes (counted as every
    element of every window); here the batches run on every core (the function is called
    from several threads at once, as the compiled filters' functions are), and a Dask array
    is filtered lazily per chunk with the halo the window reaches (functions of one value
    per window). Where a compiled filter exists (``uniform_filter`` for ``np.mean``,
    ``median_filter``, ``generic_filter`` for any numba-compilable function), it is faster.

    Parameters
    ----------
    input : array_like or dask array
    function : callable
        ``function(windows, axis=axes)``: one value per window (or, on an array in memory
        whose windows fit ``batch_memory``, any result, returned as it is).
    size : int or sequence of int, optional
        The window's shape along ``axes``. Either ``size`` or ``footprint``.
    footprint : array_like, optional
        The window's elements that the function gets (as bool).
    output : ndarray or dtype, optional
        Where the values go, or their dtype (default: the function's). Into integers (or
        bool) they are rounded to nearest, ties to even, and saturated, as every filter's
        (scipy assigns them: truncated, wrapped); complex values only into complex.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'valid'}, optional
        Default 'reflect'; also scipy's 'grid-mirror', 'grid-constant', 'grid-wrap'.
    cval : scalar, optional
        The value past the edges for 'constant' (only then; default 0).
    origin : int or sequence of int, optional
        Window shift per axis, as for the other filters (not with 'valid').
    axes : int or sequence of int, optional
        The axes the window spans. Default: all.
    batch_memory : int, optional
        The most bytes of windows the function gets in one call. Default 2**30.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> a = np.array([[1.0, 2, 3], [4, 5, 6]])
    >>> filters.vectorized_filter(a, np.max, size=2, mode="valid")
    array([[5., 6.]])
    >>> filters.vectorized_filter(a, np.ptp, size=3, axes=1, mode="nearest")
    array([[1., 2., 1.],
           [1., 2., 1.]])
    """
    from . import _vectorized

    name = "vectorized_filter"
    if backends.is_device_array(input):
        raise StencilNotImplementedError(
            f"{name}: device arrays are not supported (the function is NumPy code): use "
            "generic_filter, which compiles the function for the device, or filter "
            "cupy.asnumpy(input)")
    dask_input = backends.is_dask_array(input)
    arr = input if dask_input else np.asarray(input)
    window, axes, batch_memory = _vectorized.check(arr, function, size, footprint, mode, cval,
                                                   origin, axes, batch_memory)
    if arr.ndim == 0 and window.size == ():  # a 0-d input and window: as scipy's call
        a0 = np.asarray(arr)
        if window.footprint is None:
            return np.asarray(function(a0, axis=()))
        return np.asarray(window.call(a0[window.footprint]))  # (the mask applied twice)
    core = tuple(range(arr.ndim - len(axes), arr.ndim))
    out_dtype = None
    if output is not None and not isinstance(output, np.ndarray):
        if backends.is_dask_array(output) or backends.is_device_array(output):
            raise StencilTypeError(f"{name}: output must be a NumPy array or a dtype, got "
                                   f"{type(output).__name__}")
        try:
            out_dtype = np.dtype(output)
        except TypeError:
            raise StencilTypeError(f"{name}: output must be a NumPy array or a dtype, got "
                                   f"{output!r}") from None
        if out_dtype.kind not in "biufc":
            raise StencilTypeError(f"{name}: output must have a numeric dtype, got "
                                   f"{out_dtype}")
        output = None
    if dask_input:
        if output is not None:
            raise StencilTypeError(f"{name}: output= arrays do not apply to a Dask input (the "
                                   "result is a lazy Dask array): pass a dtype instead")
        if arr.size == 0:
            return arr.astype(out_dtype or arr.dtype)
        import dask.array as da

        moved = da.moveaxis(arr, axes, core)
        return da.moveaxis(_vectorized.run_dask(moved, window, batch_memory, out_dtype), core,
                           axes)
    if output is not None and not output.flags.writeable:
        raise StencilError(f"{name}: output is read-only")
    if arr.size == 0:
        if output is None:
            return arr.astype(out_dtype or arr.dtype)
        output[...] = arr
        return output
    import numba

    moved = np.moveaxis(arr, axes, core)
    shape = window.result_shape(moved.shape)
    if out_dtype is not None:
        output = np.moveaxis(np.empty(shape, out_dtype), core, axes)
    into = None if output is None else np.moveaxis(output, axes, core)
    if into is not None:
        if into.shape != shape:
            raise StencilError(f"{name}: output has shape {output.shape}; the result's is "
                               f"{np.moveaxis(np.empty(shape, bool), core, axes).shape}")
        if window.mode == "valid" and np.may_share_memory(output, arr):
            moved = moved.copy()  # (the other modes read a padded copy already)
    result = _vectorized.run(moved, window, into, batch_memory, numba.get_num_threads())
    if output is not None:
        return output
    # (a function of several values per window: its result as scipy places it)
    return np.moveaxis(result, tuple(range(-len(axes), 0)), axes)


def generic_laplace(input, derivative2, output=None, mode="reflect", cval=0.0,
                    extra_arguments=(), extra_keywords=None, *, axes=None):
    """The sum over axes of a given second derivative, as scipy's ``generic_laplace``.

    ``derivative2(input, axis, output, mode, cval, *extra_arguments, **extra_keywords)``
    returns the second derivative along ``axis`` (any filter here or your own; ``output``
    is a dtype: the data's float type, float64 for integers). The terms are summed in that
    type by a generated kernel and rounded once into an integer output.

    Parameters
    ----------
    input : array_like or dask array
    derivative2 : callable
        The second derivative along one axis, as above.
    output, cval
        As for :func:`correlate`.
    mode : str or sequence of str, optional
        Boundary mode, or one per filtered axis, passed on to ``derivative2``.
    extra_arguments, extra_keywords
        Further arguments to ``derivative2``.
    axes : sequence of int, optional
        The axes to differentiate along. Default: all.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> def d2(input, axis, output, mode, cval):
    ...     return filters.correlate1d(input, [1, -2, 1], axis, output, mode, cval)
    >>> filters.generic_laplace(np.array([0, 10, 0]), d2, mode="constant")
    array([ 10, -20,  10])
    """
    return _generic_derivatives(input, derivative2, output, mode, cval, extra_arguments,
                                extra_keywords, axes, False, "generic_laplace")


def generic_gradient_magnitude(input, derivative, output=None, mode="reflect", cval=0.0,
                               extra_arguments=(), extra_keywords=None, *, axes=None):
    """The gradient's magnitude from a given first derivative: scipy's function of that name.

    ``derivative(input, axis, output, mode, cval, *extra_arguments, **extra_keywords)``
    returns the derivative along ``axis`` (``output``: a dtype, as for
    :func:`generic_laplace`); the result is the square root of the sum of their squares,
    computed by a generated kernel and rounded once into an integer output.

    Parameters
    ----------
    input : array_like or dask array
    derivative : callable
        The first derivative along one axis, as above.
    output, mode, cval, extra_arguments, extra_keywords, axes
        As for :func:`generic_laplace`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import filters
    >>> filters.generic_gradient_magnitude(np.array([0.0, 0, 3, 3, 3, 0]), filters.sobel)
    array([0., 3., 3., 0., 3., 3.])
    """
    return _generic_derivatives(input, derivative, output, mode, cval, extra_arguments,
                                extra_keywords, axes, True, "generic_gradient_magnitude")


def _generic_derivatives(input, derivative, output, mode, cval, extra_arguments, extra_keywords,
                         axes, norm, name):
    arr = _array(input, name)
    if not callable(derivative):
        raise StencilTypeError(f"{name}: the derivative must be callable, got "
                               f"{type(derivative).__name__}")
    extra_arguments, extra_keywords = extras(extra_arguments, extra_keywords, name)
    axes = _axes(axes, arr.ndim, name)
    modes_ = _mode_per_axis(mode, axes, name)
    out, out_dtype = _output(output, arr, name)
    if arr.size == 0:
        return _finish_empty(arr, out, out_dtype)
    if not axes:  # (as scipy: the input)
        return _passes.linear(arr, [((0,) * arr.ndim, 1)], "nearest", 0.0, out, out_dtype, True)
    work = _dtypes.work_dtype(arr.dtype) if arr.dtype.kind in "fc" else np.dtype(np.float64)
    terms = []
    for ax, m in zip(axes, modes_):
        term = derivative(arr, ax, work, m, cval, *extra_arguments, **extra_keywords)
        if term is None or tuple(getattr(term, "shape", ())) != tuple(arr.shape):
            raise StencilTypeError(
                f"{name}: the derivative along axis {ax} must return an array of the input's "
                f"shape {tuple(arr.shape)}, got "
                + ("None" if term is None else f"{type(term).__name__} of shape "
                   f"{getattr(term, 'shape', ())}"))
        terms.append(term)
    return _passes.add(terms, work, out, out_dtype, norm=norm)
