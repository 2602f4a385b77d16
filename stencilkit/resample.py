"""Downsampling: every n-th element, block reductions and a Gaussian pyramid.

* :func:`decimate`: every ``factor``-th element per axis ("direct assignment").
* :func:`block_reduce`: one value per block of ``factor`` elements per axis: mean (the "local
  mean" downsampling of skimage.transform.downscale_local_mean), sum, min, max or median.
* :func:`pyramid_down`: a 5 x 5 binomial (Gaussian) prefilter, then every second element, as
  cv2.pyrDown, per level.

Shapes the factor does not divide: ``edge="partial"`` (the default) reduces the real elements
of the last, smaller block; ``"pad"`` fills it with ``cval`` first (skimage's behaviour);
``"trim"`` drops it. Integer input keeps its dtype for mean, median, min and max, rounded to
nearest with ties to even (the exact mean of integers is computed from int64 sums); ``sum``
returns NumPy's sum dtype (int64 or uint64 for integers). NaN propagates to its block. NumPy and
Dask arrays are accepted; on Dask, reduced axes are rechunked to multiples of the factor so that
no block straddles chunks, and the result equals the NumPy one exactly.
"""

from __future__ import annotations

import functools
import operator

import numpy as np

from . import _passes, backends, filters
from ._errors import StencilError, StencilTypeError
from .backends.cuda_replay import memoized

__all__ = ["block_reduce", "decimate", "pyramid_down"]

FUNCS = ("mean", "sum", "min", "max", "median")
EDGES = ("partial", "pad", "trim")
# skimage passes NumPy functions as func: the same reductions by name
_ALIASES = {np.mean: "mean", np.sum: "sum", np.min: "min", np.max: "max", np.median: "median",
            np.amin: "min", np.amax: "max"}


def _array(a, name):
    arr = a if backends.foreign(a) else np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise StencilTypeError(f"{name}: input must be a real numeric or bool array, got "
                               f"{arr.dtype}")
    if arr.ndim == 0:
        raise StencilError(f"{name}: input is 0-d; there is nothing to downsample")
    return arr


def _factors(factor, ndim, axes, name):
    """One positive int per axis (1 on the axes not downsampled)."""
    if axes is None:
        axes = tuple(range(ndim))
    else:
        axes = filters._axes(axes, ndim, name)
    values = filters._per_axis(factor, axes, "factor", name)
    if any(f < 1 for f in values):
        raise StencilError(f"{name}: factor must be >= 1 along every axis, got {values}")
    full = [1] * ndim
    for ax, f in zip(axes, values):
        full[ax] = f
    return tuple(full)


@memoized
def decimate(a, factor, *, axes=None):
    """Every ``factor``-th element along each axis, starting with the first.

    Parameters
    ----------
    a : array_like or dask array
    factor : int or sequence of int
        Step per axis (of ``axes``).
    axes : sequence of int, optional
        The axes to decimate. Default: all.

    Returns
    -------
    ndarray or dask array
        A C-contiguous copy (NumPy) or a lazy slice (Dask), of ``ceil(n / factor)`` elements
        per axis.

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import resample
    >>> resample.decimate(np.arange(10), 3)
    array([0, 3, 6, 9])
    """
    name = "decimate"
    arr = a if backends.foreign(a) else np.asarray(a)
    if arr.ndim == 0:
        raise StencilError(f"{name}: input is 0-d; there is nothing to downsample")
    full = _factors(factor, arr.ndim, axes, name)
    return backends.for_array(arr).decimate(arr, full)



@memoized
def block_reduce(a, factor, func="mean", *, edge="partial", cval=0, axes=None):
    """One value per block of ``factor`` elements per axis (downsampling by a block function).

    Parameters
    ----------
    a : array_like or dask array
        Real numeric or bool input.
    factor : int or sequence of int
        Block size per axis (of ``axes``).
    func : {'mean', 'sum', 'min', 'max', 'median'} or the NumPy function of that name
        The reduction. Default ``'mean'``.
    edge : {'partial', 'pad', 'trim'}, optional
        Where the factor does not divide an axis: reduce the real elements of the short last
        block (default), pad it with ``cval`` (skimage's behaviour), or drop it.
    cval : scalar, optional
        The padding value for ``edge='pad'``, in the input's dtype (as ``np.pad``: a fraction
        truncates towards zero for integer data; a value the dtype cannot hold is an error).
    axes : sequence of int, optional
        The axes to reduce. Default: all.

    Returns
    -------
    ndarray or dask array
        ``ceil(n / factor)`` elements per axis (``floor`` with ``edge='trim'``); the input's
        dtype (integers rounded to nearest, ties to even), except ``sum``: NumPy's sum dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import resample
    >>> a = np.array([[1, 2, 3, 4, 5], [5, 6, 7, 8, 9]], np.uint8)
    >>> resample.block_reduce(a, 2)
    array([[4, 6, 7]], dtype=uint8)
    >>> resample.block_reduce(a, 2, edge="pad")
    array([[4, 6, 4]], dtype=uint8)
    >>> resample.block_reduce(a, (1, 2), func="max", edge="trim")
    array([[2, 4],
           [6, 8]], dtype=uint8)
    """
    name = "block_reduce"
    arr = _array(a, name)
    full = _factors(factor, arr.ndim, axes, name)
    op = _ALIASES.get(func, func) if callable(func) else func
    if op not in FUNCS:
        raise StencilError(f"{name}: unknown func {func!r}; use one of {', '.join(FUNCS)}")
    if edge not in EDGES:
        raise StencilError(f"{name}: unknown edge {edge!r}; use one of {', '.join(EDGES)}")
    if np.ndim(cval) != 0 or isinstance(cval, (complex, np.complexfloating)):
        raise StencilTypeError(f"{name}: cval must be a real scalar, got {cval!r}")
    if edge != "pad" and cval != 0:
        raise StencilError(f"{name}: cval={cval!r} is only used with edge='pad'")
    if edge == "trim" and any(n < f for n, f in zip(arr.shape, full)):
        raise StencilError(f"{name}: factor {full} is larger than the array {arr.shape} along "
                           "an axis, so edge='trim' leaves nothing; use edge='partial'")
    dtype = arr.dtype.newbyteorder("=")
    if edge == "pad" and dtype.kind in "biu":
        lo, hi = (0, 1) if dtype.kind == "b" else (int(np.iinfo(dtype).min),
                                                  int(np.iinfo(dtype).max))
        try:
            fits = bool(np.isfinite(cval)) and lo <= cval <= hi
        except OverflowError:  # an integer beyond float64
            fits = False
        if not fits:  # np.pad would wrap it silently
            raise StencilError(
                f"{name}: cval={cval!r} does not fit the {dtype} data: edge='pad' pads in the "
                f"input's dtype (as skimage's np.pad does), so pass a cval in [{lo}, {hi}] or "
                "convert the array to a wider dtype first")
    if op == "sum":
        out_dtype = np.zeros(1, dtype).sum().dtype if dtype.kind != "b" else np.dtype(np.int64)
    else:
        out_dtype = dtype
    return backends.for_array(arr).block_reduce(arr, full, op, edge, cval, out_dtype)



# ----------------------------------------------------------------------------- pyramid_down

_BINOMIAL = np.array([1, 4, 6, 4, 1])


def pyramid_down(a, levels=1, *, axes=None, mode="mirror"):
    """Halve ``levels`` times, as cv2.pyrDown: prefilter, then every second element.

    The prefilter is the 5-tap binomial ``[1, 4, 6, 4, 1] / 16`` along each axis (cv2's
    border, BORDER_REFLECT_101, is ``mode='mirror'``).

    Integer results are the exact filtered value rounded to nearest, ties to even (cv2 rounds
    ties up, so a tie can differ by one). Float results of NumPy and Dask input agree to
    round-off (the NumPy path filters only the rows and columns it keeps).

    Parameters
    ----------
    a : array_like or dask array
    levels : int, optional
        Number of halvings. Default 1.
    axes : sequence of int, optional
        Axes to halve. Default: the last two (images and stacks of images); all for 1-D.
    mode : {'mirror', 'reflect', 'nearest', 'wrap', 'constant'}, optional
        Boundary mode of the prefilter, as for :func:`stencilkit.filters.correlate` (the
        constant is 0). Default ``'mirror'``.

    Returns
    -------
    list of ndarray or dask array
        The ``levels`` downsampled arrays, each ``ceil(n / 2)`` of the previous per axis.

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import resample
    >>> resample.pyramid_down(np.arange(8, dtype=np.float32), 1)[0]
    array([0.75 , 2.   , 4.   , 5.875], dtype=float32)
    """
    name = "pyramid_down"
    arr = _array(a, name)
    try:
        levels = operator.index(levels)
    except TypeError:
        raise StencilTypeError(f"{name}: levels must be an int, got {levels!r}") from None
    if levels < 1:
        raise StencilError(f"{name}: levels must be >= 1, got {levels}")
    if axes is None:
        axes = tuple(range(max(0, arr.ndim - 2), arr.ndim))
    axes = filters._axes(axes, arr.ndim, name)
    out = []
    x = arr
    for level in range(levels):
        short = [ax for ax in axes if x.shape[ax] <= 1]
        if short:
            raise StencilError(f"{name}: axis {short[0]} has length {x.shape[short[0]]} after "
                               f"{level} levels, nothing left to halve; use fewer levels")
        halved = None
        if axes == (x.ndim - 2, x.ndim - 1):  # images and stacks: the backend's fused level
            halved = backends.for_array(x).pyramid_level(x, filters._mode(mode, name))
        if halved is None:  # the prefilter as a generated stencil, then every second element
            weights = functools.reduce(np.multiply.outer, [_BINOMIAL] * len(axes))
            halved = decimate(_binomial(x, weights, axes, mode, 16 ** len(axes)), 2, axes=axes)
        x = halved
        out.append(x)
    return out


def _binomial(x, weights, axes, mode, divisor):
    """The prefilter: exact integer sums divided once (integers), float64 sums (floats)."""
    mode = filters._mode(mode, "pyramid_down")
    taps = [(offs, w) for offs, w in
            ((o, weights[idx]) for o, idx in _passes.taps(np.ones(weights.shape, bool),
                                                          (0,) * len(axes), axes, x.ndim))]
    return _passes.linear(x, taps, mode, 0.0, None, x.dtype.newbyteorder("="),
                          x.dtype.kind in "biu", divisor=divisor)


