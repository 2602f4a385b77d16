"""Mathematical morphology with scipy.ndimage's names and parameters.

Grey erosion and dilation with a flat window (``size`` or ``footprint``) are the minimum and
maximum filters of :mod:`stencilkit.filters`, so they run with those filters' algorithms on
every backend (NumPy, Dask with exact halos, CUDA); dilation reflects the window and its
origin as scipy does. A non-flat ``structure`` takes the minimum of ``x - s`` (the maximum of
``x + s``) over the footprint, a generated kernel in float64, as scipy computes it. The
compositions (opening, closing, gradient, Laplace, top-hats) combine those results with a
generated kernel in the data's own type for floats (scipy's order of operations) and exactly
for integers.

Binary erosion is the minimum of the input's truth (non-zero) over ``structure`` with
``border_value`` outside the array, dilation the maximum over the reflected structure;
``iterations`` repeats them (below 1: until nothing changes, not on Dask), and where ``mask``
is False an iteration keeps the element it had.

Integer results follow the filters' rule (:mod:`stencilkit.filters`): the exact value rounded
once and saturated into the output's type, where scipy truncates a non-integer structure's
result and wraps one beyond the type (a uint8 Laplace below 0).
"""

from __future__ import annotations

import functools
import math
import operator

import numpy as np

from . import _dtypes, _passes, backends, filters
from ._errors import (
    StencilArgumentError,
    StencilArgumentTypeError,
    StencilError,
    StencilNotImplementedError,
    StencilTypeError,
)

__all__ = [
    "binary_closing",
    "binary_dilation",
    "binary_erosion",
    "binary_fill_holes",
    "binary_hit_or_miss",
    "binary_opening",
    "binary_propagation",
    "black_tophat",
    "generate_binary_structure",
    "grey_closing",
    "grey_dilation",
    "grey_erosion",
    "grey_opening",
    "iterate_structure",
    "morphological_gradient",
    "morphological_laplace",
    "white_tophat",
]


# -- structuring elements ----------------------------------------------------------------------

def generate_binary_structure(rank, connectivity):
    """The structuring element of elements within ``connectivity`` steps of the centre.

    As scipy: a ``3 x ... x 3`` boolean array of ``rank`` dimensions, True where the squared
    distance from the centre (in steps along axes) is at most ``connectivity`` (below 1: 1);
    rank 0 gives ``np.array(True)``.

    Parameters
    ----------
    rank : int
        Number of dimensions.
    connectivity : int
        1: the centre and its face neighbours; ``rank``: the full 3 x ... x 3 box.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> from stencilkit import morphology
    >>> morphology.generate_binary_structure(2, 1).astype(int)
    array([[0, 1, 0],
           [1, 1, 1],
           [0, 1, 0]])
    """
    connectivity = max(connectivity, 1)
    if rank < 1:
        return np.array(True, dtype=bool)
    steps = np.add.reduce(np.fabs(np.indices([3] * rank) - 1), 0)
    return steps <= connectivity


def iterate_structure(structure, iterations, origin=None):
    """``structure`` dilated by itself ``iterations - 1`` times (a larger element of its shape).

    Parameters
    ----------
    structure : array_like
        The element (non-zero: True).
    iterations : int
        Number of times the element is used; below 2 a copy of it.
    origin : int or sequence of int, optional
        If given, returned too, multiplied by ``iterations``.

    Returns
    -------
    ndarray of bool, or (ndarray of bool, list of int) when ``origin`` is given

    Examples
    --------
    >>> from stencilkit import morphology
    >>> cross = morphology.generate_binary_structure(2, 1)
    >>> morphology.iterate_structure(cross, 2).astype(int)
    array([[0, 0, 1, 0, 0],
           [0, 1, 1, 1, 0],
           [1, 1, 1, 1, 1],
           [0, 1, 1, 1, 0],
           [0, 0, 1, 0, 0]])
    """
    structure = np.asarray(structure)
    if iterations < 2:
        return structure.copy()
    ni = iterations - 1
    shape = [s + ni * (s - 1) for s in structure.shape]
    at = tuple(slice(ni * (s // 2), ni * (s // 2) + s) for s in structure.shape)
    out = np.zeros(shape, bool)
    out[at] = structure != 0
    out = binary_dilation(out, structure, iterations=ni)
    if origin is None:
        return out
    origins = filters._per_axis(origin, tuple(range(structure.ndim)), "origin",
                                "iterate_structure")
    return out, [iterations * o for o in origins]


# -- grey morphology ---------------------------------------------------------------------------

def _reflected(arr, size, footprint, structure, origin, axes, name):
    """The dilation's window as scipy makes it.

    Footprint and structure reversed along every axis, origins negated (one less along an
    axis of even length).
    """
    def rev(a):
        a = np.asarray(a)
        return a[(slice(None, None, -1),) * a.ndim]

    footprint = None if footprint is None else rev(footprint)
    structure = None if structure is None else rev(structure)
    axes = filters._axes(axes, arr.ndim, name)
    origins = list(filters._per_axis(origin, axes, "origin", name))
    sizes = None
    if footprint is None and structure is None and size is not None:
        sizes = filters._per_axis(size, axes, "size", name)
    for i in range(len(origins)):
        window = footprint if footprint is not None else structure
        if window is not None:
            even = i < window.ndim and not window.shape[i] & 1
        else:
            even = not sizes[i] & 1
        origins[i] = _dilation_origin(origins[i], 2 if even else 1)
    return footprint, structure, tuple(origins)


def _dilation_origin(origin, length):
    """A dilation's origin along an axis of the window's ``length``.

    Negated (the window is reversed), one less for an even length (its centre is not
    symmetric).
    """
    return -origin - (0 if length & 1 else 1)


def _grey(op, input, size, footprint, structure, output, mode, cval, origin, axes, name):
    if size is None and footprint is None and structure is None:
        raise StencilError(f"{name}: size, footprint, or structure must be specified")
    if structure is None:
        return filters._extreme(op, input, size, footprint, output, mode, cval, origin, axes,
                                name)
    return _structured(op, input, footprint, structure, output, mode, cval, origin, axes, name)


def _structured(op, input, footprint, structure, output, mode, cval, origin, axes, name):
    """The grey erosion (``op`` minimum) or dilation of a non-flat ``structure``."""
    arr = filters._array(input, name)
    if arr.dtype.kind == "c":
        raise StencilTypeError(f"{name}: complex input is not supported; filter the real and "
                               "imaginary parts separately")
    axes = filters._axes(axes, arr.ndim, name)
    s = np.asarray(structure)
    if s.dtype.kind not in "biuf":
        raise StencilTypeError(f"{name}: structure must be real numbers, got {s.dtype}")
    s = s.astype(np.float64)
    if s.ndim != len(axes):
        raise StencilArgumentError(f"{name}: structure array has incorrect shape: "
                                   f"{s.ndim}-d for {len(axes)} filtered axes {axes}")
    fp = np.ones(s.shape, bool) if footprint is None else np.asarray(footprint)
    if fp.shape != s.shape:
        raise StencilArgumentError(f"{name}: footprint of shape {fp.shape} and structure of "
                                   f"shape {s.shape} must have the same shape")
    fp, _ = filters._footprint(None, fp, axes, name)
    mode, cval = filters._mode_cval(mode, cval, name, arr)
    axes, origin = filters._window_axes(axes, origin, arr.ndim, name)
    origins = filters._origins(origin, fp.shape, axes, name)
    out, out_dtype = filters._output(output, arr, name)
    if arr.size == 0:
        return filters._finish_empty(arr, out, out_dtype)
    sign = "-" if op == "minimum" else "+"
    terms = [f"{_passes.read(arr.ndim, offs)} {sign} {_number(s[idx])}"
             for offs, idx in _passes.taps(fp, origins, axes, arr.ndim)]
    lines = [f"def f_{op}_structure(a):", f"    m = {terms[0]}"]
    lines += [f"    m = np.{op}(m, {t})" for t in terms[1:]]  # (NaN wins, as the filters)
    _passes.store(lines, "m", "float", out_dtype)
    source = "\n".join(lines) + "\n"
    return _passes.run(source, arr, mode, cval, np.dtype(np.float64), out_dtype, out)


def _number(v) -> str:
    """Python source for the float ``v`` (``np.inf``, ``-np.inf`` and ``np.nan`` too)."""
    v = float(v)
    if math.isnan(v):
        return "np.nan"
    if math.isinf(v):
        return "np.inf" if v > 0 else "(-np.inf)"
    return f"({v!r})" if v < 0 or str(v).startswith("-") else repr(v)


def grey_erosion(input, size=None, footprint=None, structure=None, output=None,
                 mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Grey erosion: the minimum over a window, or of ``input - structure`` (non-flat).

    Flat (``size`` or ``footprint``): :func:`stencilkit.filters.minimum_filter`. With a
    ``structure``: the minimum of ``x - s`` over the footprint (default: all of the
    structure), computed in float64 as scipy.

    Parameters
    ----------
    input : array_like or dask array
    size : int or sequence of int, optional
        Box window length per filtered axis.
    footprint : array_like, optional
        The window as a boolean mask, one dimension per filtered axis.
    structure : array_like, optional
        Non-flat structuring element: a value subtracted at each window position.
    output : ndarray or dtype, optional
        The array to write the result into, or the result's dtype (default: the input's).
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'} or sequence of them, optional
        One per filtered axis only with ``size``.
    cval : scalar, optional
        The value outside the array with ``mode='constant'``.
    origin : int or sequence of int, optional
        Shift of the window's centre per filtered axis.
    axes : int or sequence of int, optional
        The axes filtered (default all).

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> morphology.grey_erosion(np.array([5, 3, 8, 1, 9]), size=3)
    array([3, 3, 1, 1, 1])
    >>> morphology.grey_erosion(np.array([5, 3, 8, 1, 9]), structure=[1, 0, 1])
    array([2, 3, 0, 1, 0])
    """
    return _grey("minimum", input, size, footprint, structure, output, mode, cval, origin,
                 axes, "grey_erosion")


def grey_dilation(input, size=None, footprint=None, structure=None, output=None,
                  mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Grey dilation: the maximum over the reflected window, or of ``input + structure``.

    As scipy: the footprint and structure reversed along every axis and the origin negated
    (one less along an axis of even length), then the maximum filter (of ``x + s`` with a
    structure).

    Parameters
    ----------
    input, size, footprint, structure, output, mode, cval, origin, axes
        As for :func:`grey_erosion`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> morphology.grey_dilation(np.array([5, 3, 8, 1, 9]), size=2)
    array([5, 8, 8, 9, 9])
    """
    if size is None and footprint is None and structure is None:
        raise StencilError("grey_dilation: size, footprint, or structure must be specified")
    arr = filters._array(input, "grey_dilation")
    footprint, structure, origin = _reflected(arr, size, footprint, structure, origin, axes,
                                              "grey_dilation")
    return _grey("maximum", arr, size, footprint, structure, output, mode, cval, origin, axes,
                 "grey_dilation")


def grey_opening(input, size=None, footprint=None, structure=None, output=None,
                 mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Grey opening: the erosion, then the dilation of it.

    Bright details smaller than the window are removed.

    Parameters
    ----------
    input, size, footprint, structure, output, mode, cval, origin, axes
        As for :func:`grey_erosion`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> morphology.grey_opening(np.array([1, 1, 9, 1, 1, 5, 5, 5]), size=3)
    array([1, 1, 1, 1, 1, 5, 5, 5])
    """
    tmp = grey_erosion(input, size, footprint, structure, None, mode, cval, origin, axes=axes)
    return grey_dilation(tmp, size, footprint, structure, output, mode, cval, origin, axes=axes)


def grey_closing(input, size=None, footprint=None, structure=None, output=None,
                 mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Grey closing: the dilation, then the erosion of it.

    Dark details smaller than the window are filled.

    Parameters
    ----------
    input, size, footprint, structure, output, mode, cval, origin, axes
        As for :func:`grey_erosion`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> morphology.grey_closing(np.array([9, 9, 1, 9, 9, 5, 5, 5]), size=3)
    array([9, 9, 9, 9, 9, 5, 5, 5])
    """
    tmp = grey_dilation(input, size, footprint, structure, None, mode, cval, origin, axes=axes)
    return grey_erosion(tmp, size, footprint, structure, output, mode, cval, origin, axes=axes)


def _combine(parts, signs, like, output, name):
    """``parts[0] +- parts[1] +- ...`` (``signs``), left to right, into ``output``.

    Floats in the data's own float type (scipy's order of operations, each step rounded as
    its in-place ufuncs round it); integers and bool exactly (int64; float64 for 64-bit
    integers, as the linear filters), then the filters' rule into the output type.
    """
    arr = filters._array(like, name)
    out, out_dtype = filters._output(output, arr, name)
    if arr.size == 0:
        return filters._finish_empty(arr, out, out_dtype)
    acc, _ = _passes.plan_acc(arr.dtype, True, 0.0)
    if arr.dtype.kind == "f":
        acc = np.dtype(np.float32) if arr.dtype.itemsize <= 4 else np.dtype(np.float64)
    return _passes.add(list(parts), acc, out, out_dtype, signs=signs)


def morphological_gradient(input, size=None, footprint=None, structure=None, output=None,
                           mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Morphological gradient: the dilation minus the erosion (edges of the window's width).

    Parameters
    ----------
    input, size, footprint, structure, output, mode, cval, origin, axes
        As for :func:`grey_erosion`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> morphology.morphological_gradient(np.array([1, 1, 1, 7, 7, 7]), size=3)
    array([0, 0, 6, 6, 0, 0])
    """
    dil = grey_dilation(input, size, footprint, structure, None, mode, cval, origin, axes=axes)
    ero = grey_erosion(input, size, footprint, structure, None, mode, cval, origin, axes=axes)
    return _combine((dil, ero), (1, -1), input, output, "morphological_gradient")


def morphological_laplace(input, size=None, footprint=None, structure=None, output=None,
                          mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Morphological Laplace: the dilation plus the erosion minus twice the input.

    Computed as scipy orders it (``((dilation + erosion) - input) - input``); for integer
    data exactly, then rounded and saturated into the output (scipy wraps a uint8 result
    below 0).

    Parameters
    ----------
    input, size, footprint, structure, output, mode, cval, origin, axes
        As for :func:`grey_erosion`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> morphology.morphological_laplace(np.array([1, 1, 1, 7, 7, 7]), size=3)
    array([ 0,  0,  6, -6,  0,  0])
    """
    dil = grey_dilation(input, size, footprint, structure, None, mode, cval, origin, axes=axes)
    ero = grey_erosion(input, size, footprint, structure, None, mode, cval, origin, axes=axes)
    arr = filters._array(input, "morphological_laplace")
    return _combine((dil, ero, arr, arr), (1, 1, -1, -1), arr, output, "morphological_laplace")


def white_tophat(input, size=None, footprint=None, structure=None, output=None,
                 mode="reflect", cval=0.0, origin=0, *, axes=None):
    """White top-hat: the input minus its grey opening.

    The bright details smaller than the window.

    Parameters
    ----------
    input, size, footprint, structure, output, mode, cval, origin, axes
        As for :func:`grey_erosion`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> morphology.white_tophat(np.array([1, 1, 9, 1, 1, 5, 5, 5]), size=3)
    array([0, 0, 8, 0, 0, 0, 0, 0])
    """
    opened = grey_opening(input, size, footprint, structure, None, mode, cval, origin,
                          axes=axes)
    arr = filters._array(input, "white_tophat")
    return _combine((arr, opened), (1, -1), arr, output, "white_tophat")


def black_tophat(input, size=None, footprint=None, structure=None, output=None,
                 mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Black top-hat: the grey closing minus the input (dark details smaller than the window).

    Parameters
    ----------
    input, size, footprint, structure, output, mode, cval, origin, axes
        As for :func:`grey_erosion`.

    Returns
    -------
    ndarray or dask array

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> morphology.black_tophat(np.array([9, 9, 1, 9, 9, 5, 5, 5]), size=3)
    array([0, 0, 8, 0, 0, 0, 0, 0])
    """
    closed = grey_closing(input, size, footprint, structure, None, mode, cval, origin,
                          axes=axes)
    arr = filters._array(input, "black_tophat")
    return _combine((closed, arr), (1, -1), arr, output, "black_tophat")


# -- binary morphology -------------------------------------------------------------------------

def _truth(arr, negate=False):
    """``arr != 0`` (``negate``: ``arr == 0``) as a bool array of the same kind.

    A generated kernel, so every backend runs it.
    """
    if arr.dtype == np.bool_ and not negate:
        return arr
    name, op = ("f_zero", "==") if negate else ("f_nonzero", "!=")
    source = f"def {name}(a):\n    return {_passes.read(arr.ndim, [0] * arr.ndim)} {op} 0\n"
    return _passes.run(source, arr, "nearest", 0.0, _dtypes.default_acc(arr.dtype),
                       np.dtype(bool), None)


def _into(res, out, out_dtype):
    """``res`` (bool) as the call's result: itself, or converted into ``out``/``out_dtype``."""
    if out is None and out_dtype == res.dtype:
        return res
    return _passes.linear(res, [((0,) * res.ndim, 1)], "nearest", 0.0, out, out_dtype, True)


def _where(new, old, mask):
    """``new`` where ``mask`` is True, else ``old`` (bool arrays; a generated kernel)."""
    at = _passes.read(new.ndim, [0] * new.ndim)[1:]
    source = (f"def f_masked(n, o, m):\n    return n{at} if m{at} else o{at}\n")
    return _passes.compiled(source)(new, old, mask, out_dtype=np.bool_)


def _same(a, b) -> bool:
    """Whether two bool arrays (NumPy, CuPy or numba device arrays) are equal."""
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if hasattr(a, "copy_to_host"):  # (numba device arrays have no comparisons)
        return np.array_equal(a.copy_to_host(), b.copy_to_host())
    return not bool((a != b).any())


def _binary(op, input, structure, iterations, mask, output, border_value, origin, axes, name):
    try:
        iterations = operator.index(iterations)
    except TypeError:
        raise StencilTypeError(f"{name}: iterations must be an integer, got "
                               f"{iterations!r}") from None
    if not backends.foreign(input) and np.ndim(input) == 0:
        # a 0-d array (as scipy): its one element is its own window, the centre of a 0-d
        # structure; computed as a 1-element 1-D array
        one = lambda a: None if a is None else np.asarray(a).reshape(1)  # noqa: E731
        if structure is None or np.ndim(structure) == 0:
            structure = np.ones(1, bool) if structure is None else one(structure)
        if isinstance(output, np.ndarray) and output.ndim == 0:
            output = output.reshape(1)
        res = _binary(op, one(input), structure, iterations, one(mask) if mask is not None
                      and np.ndim(mask) == 0 else mask, output, border_value, origin, axes,
                      name)
        return res.reshape(())
    arr = filters._array(input, name)
    if arr.dtype.kind == "c":
        raise StencilTypeError(f"{name}: complex input is not supported; take np.abs(input) "
                               "or compare it with 0 first")
    axes = filters._axes(axes, arr.ndim, name)
    if structure is None:
        structure = generate_binary_structure(len(axes), 1)
    s = np.asarray(structure).astype(bool)
    if s.ndim != len(axes):
        error = StencilArgumentTypeError if s.ndim == 0 else StencilArgumentError
        raise error(f"{name}: structure and input must have same dimensionality: a "
                    f"{s.ndim}-d structure for {len(axes)} filtered axes {axes}")
    try:
        border = bool(operator.index(border_value))
    except TypeError:
        raise StencilTypeError(f"{name}: border_value must be an integer (0 or 1), got "
                               f"{border_value!r}") from None
    if s.size < 1:
        raise StencilArgumentError(f"{name}: structure must not be empty")
    lazy = backends.for_array(arr).lazy
    if iterations < 1 and lazy:
        raise StencilNotImplementedError(
            f"{name}: repeating until nothing changes (iterations={iterations}) needs the "
            "whole array after each pass; compute the Dask array first (x.compute()), or give "
            "a number of iterations where the function takes one")
    if mask is not None:
        mask = mask if backends.foreign(mask) else np.asarray(mask)
        if tuple(mask.shape) != tuple(arr.shape):
            raise StencilArgumentError(f"{name}: mask and input must have equal sizes: "
                                       f"{tuple(mask.shape)} and {tuple(arr.shape)}")
        mask = _truth(mask)
    if output is None:
        out, out_dtype = None, np.dtype(bool)
    else:  # (an array, or a dtype, which scipy ignores)
        out, out_dtype = filters._output(output, arr, name)
        if out_dtype.kind == "c":
            raise StencilTypeError(f"{name}: complex output is not supported")
    # the structure's dimensions run along the filtered axes in increasing order, whatever
    # order axes lists them in, even where it is a box (the minimum and maximum filters pair a
    # box's sizes with axes as given): scipy's binary erosion takes it as a footprint
    axes, origin = filters._window_axes(axes, origin, arr.ndim, name)
    if op == "maximum":  # dilation: the reflected structure (scipy's binary_dilation), its
        # origin negated, one less along an even length (of the axis the length is along:
        # scipy pairs them by position, which differs for axes listed out of order)
        s = s[(slice(None, None, -1),) * s.ndim]
        origin = tuple(_dilation_origin(o, n) for o, n in zip(origin, s.shape))
    x = _truth(arr)
    if arr.size == 0:
        return filters._finish_empty(x, out, out_dtype)
    taps = [offs for offs, _ in _passes.taps(s, filters._origins(origin, s.shape, axes, name),
                                            axes, arr.ndim)]
    if iterations < 1 and isinstance(x, np.ndarray) and (0,) * arr.ndim in taps:
        # until nothing changes: with the centre in the window each pass only adds (dilation)
        # or only removes (erosion), so the end is what a breadth-first growth from the True
        # elements reaches (of the complement for an erosion: its dual), each element visited
        # once, where the passes would take as many as the longest path
        grown = np.ascontiguousarray(x if op == "maximum" else ~x)  # (grown in place:
        grown = grown.copy() if grown is x else grown  # a C-ordered array of its own)
        allowed = np.ones(x.shape, bool) if mask is None else np.asarray(mask)
        _grow()(grown.reshape(-1), np.ascontiguousarray(allowed).reshape(-1),
                np.array(x.shape, np.int64), np.array(taps, np.int64).reshape(len(taps), -1),
                border if op == "maximum" else not border)
        return _into(grown if op == "maximum" else ~grown, out, out_dtype)
    done = 0
    while True:
        if s.any():
            new = filters._extreme(op, x, None, s, None, "constant", border, origin, axes, name)
        else:  # (no element: an erosion of nothing is True, a dilation False, as scipy)
            value = "or True" if op == "minimum" else "and False"
            source = f"def f_empty(a):\n    return {_passes.read(x.ndim, [0] * x.ndim)} {value}\n"
            new = _passes.run(source, x, "nearest", 0.0, np.dtype(bool), np.dtype(bool), None)
        if mask is not None:
            new = _where(new, x, mask)
        done += 1
        if 1 <= iterations <= done or iterations < 1 and _same(new, x):
            break
        x = new
    return _into(new, out, out_dtype)


@functools.cache
def _grow():
    """The compiled breadth-first growth (:func:`_grow_py`)."""
    import numba

    return numba.njit(cache=True, nogil=True)(_grow_py)


def _grow_py(y, allowed, shape, taps, border):
    """Grow the True elements of ``y`` (flat, C order, of ``shape``) to a fixed point, in place.

    An allowed False element becomes True where ``y[p + tap]`` is True for a tap (``border``:
    or ``p + tap`` lies outside the array): the end of iterating a binary dilation with the
    window's offsets ``taps`` (``(taps, ndim)``; the centre among them) and a mask. Each
    element enters the queue at most once; away from the faces (most elements) a tap is one
    flat offset, with no bounds to check.
    """
    n = y.size
    ndim = shape.shape[0]
    ntaps = taps.shape[0]
    strides = np.empty(ndim, np.int64)
    step = 1
    for d in range(ndim - 1, -1, -1):
        strides[d] = step
        step *= shape[d]
    flat = np.zeros(ntaps, np.int64)
    lo = np.zeros(ndim, np.int64)  # an element's window stays inside where lo <= at < hi
    hi = shape.copy()
    for k in range(ntaps):
        for d in range(ndim):
            flat[k] += taps[k, d] * strides[d]
            lo[d] = max(lo[d], -taps[k, d])
            hi[d] = min(hi[d], shape[d] - taps[k, d])
    queue = np.empty(n, np.int64)
    head = 0
    tail = 0
    at = np.zeros(ndim, np.int64)
    for p in range(n):  # (at: p's coordinates, counted up as an odometer)
        if y[p]:
            queue[tail] = p
            tail += 1
        elif border and allowed[p]:
            for d in range(ndim):
                if at[d] < lo[d] or at[d] >= hi[d]:  # the window reaches outside
                    y[p] = True
                    queue[tail] = p
                    tail += 1
                    break
        d = ndim - 1
        at[d] += 1
        while d > 0 and at[d] == shape[d]:
            at[d] = 0
            d -= 1
            at[d] += 1
    # the elements whose window holds q at tap k: p = q - tap; all of them inside the array
    # where rlo <= q's coordinates < rhi
    rlo = np.zeros(ndim, np.int64)
    rhi = shape.copy()
    for k in range(ntaps):
        for d in range(ndim):
            rlo[d] = max(rlo[d], taps[k, d])
            rhi[d] = min(rhi[d], shape[d] + taps[k, d])
    while head < tail:
        q = queue[head]
        head += 1
        r = q
        interior = True
        for d in range(ndim):
            c = r // strides[d]
            r -= c * strides[d]
            at[d] = c
            if c < rlo[d] or c >= rhi[d]:
                interior = False
        for k in range(ntaps):
            if interior:
                p = q - flat[k]
            else:
                p = 0
                for d in range(ndim):
                    c = at[d] - taps[k, d]
                    if c < 0 or c >= shape[d]:
                        p = -1
                        break
                    p += c * strides[d]
                if p < 0:
                    continue
            if not y[p] and allowed[p]:
                y[p] = True
                queue[tail] = p
                tail += 1


def binary_erosion(input, structure=None, iterations=1, mask=None, output=None,
                   border_value=0, origin=0, brute_force=False, *, axes=None):
    """Binary erosion: True where ``structure`` fits inside the input's True elements.

    Parameters
    ----------
    input : array_like or dask array
        Non-zero elements are True.
    structure : array_like, optional
        The structuring element, one dimension per filtered axis (default: the cross,
        ``generate_binary_structure(len(axes), 1)``).
    iterations : int, optional
        Number of erosions; below 1, repeated until nothing changes (NumPy and GPU arrays).
    mask : array_like, optional
        Where False, each iteration keeps the element it had.
    output : ndarray or dtype, optional
        The array to write the result into, or the result's dtype (default bool; scipy
        ignores a dtype and returns bool).
    border_value : int, optional
        The value outside the array (non-zero: True).
    origin : int or sequence of int, optional
        Shift of the structure's centre per filtered axis.
    brute_force : bool, optional
        Accepted for scipy's signature (every iteration here visits every element).
    axes : int or sequence of int, optional
        The axes filtered (default all).

    Returns
    -------
    ndarray or dask array of bool (or of ``output``'s dtype)

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> a = np.zeros((5, 5), bool); a[1:4, 1:4] = True
    >>> morphology.binary_erosion(a).astype(int)
    array([[0, 0, 0, 0, 0],
           [0, 0, 0, 0, 0],
           [0, 0, 1, 0, 0],
           [0, 0, 0, 0, 0],
           [0, 0, 0, 0, 0]])
    """
    return _binary("minimum", input, structure, iterations, mask, output, border_value, origin,
                   axes, "binary_erosion")


def binary_dilation(input, structure=None, iterations=1, mask=None, output=None,
                    border_value=0, origin=0, brute_force=False, *, axes=None):
    """Binary dilation: True where the reflected ``structure`` meets a True element.

    Parameters
    ----------
    input, structure, iterations, mask, output, border_value, origin, brute_force, axes
        As for :func:`binary_erosion`.

    Returns
    -------
    ndarray or dask array of bool (or of ``output``'s dtype)

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> a = np.zeros((3, 5), bool); a[1, 2] = True
    >>> morphology.binary_dilation(a).astype(int)
    array([[0, 0, 1, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 1, 0, 0]])
    """
    return _binary("maximum", input, structure, iterations, mask, output, border_value, origin,
                   axes, "binary_dilation")


def binary_opening(input, structure=None, iterations=1, output=None, origin=0, mask=None,
                   border_value=0, brute_force=False, *, axes=None):
    """Binary opening: ``iterations`` erosions, then as many dilations (removes specks).

    Parameters
    ----------
    input, structure, iterations, output, origin, mask, border_value, brute_force, axes
        As for :func:`binary_erosion`.

    Returns
    -------
    ndarray or dask array of bool (or of ``output``'s dtype)

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> a = np.zeros((5, 7), bool); a[1:4, 1:4] = True; a[2, 5] = True
    >>> morphology.binary_opening(a).astype(int)
    array([[0, 0, 0, 0, 0, 0, 0],
           [0, 0, 1, 0, 0, 0, 0],
           [0, 1, 1, 1, 0, 0, 0],
           [0, 0, 1, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0, 0]])
    """
    tmp = binary_erosion(input, structure, iterations, mask, None, border_value, origin,
                         brute_force, axes=axes)
    return binary_dilation(tmp, structure, iterations, mask, output, border_value, origin,
                           brute_force, axes=axes)


def binary_closing(input, structure=None, iterations=1, output=None, origin=0, mask=None,
                   border_value=0, brute_force=False, *, axes=None):
    """Binary closing: ``iterations`` dilations, then as many erosions (fills small holes).

    Parameters
    ----------
    input, structure, iterations, output, origin, mask, border_value, brute_force, axes
        As for :func:`binary_erosion`.

    Returns
    -------
    ndarray or dask array of bool (or of ``output``'s dtype)

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> a = np.ones((5, 5), bool); a[2, 2] = False
    >>> int(morphology.binary_closing(a)[2, 2])
    1
    """
    tmp = binary_dilation(input, structure, iterations, mask, None, border_value, origin,
                          brute_force, axes=axes)
    return binary_erosion(tmp, structure, iterations, mask, output, border_value, origin,
                          brute_force, axes=axes)


def binary_hit_or_miss(input, structure1=None, structure2=None, output=None, origin1=0,
                       origin2=None, *, axes=None):
    """Hit-or-miss: where ``structure1`` fits the True elements and ``structure2`` the False.

    As scipy: the erosion of the input by ``structure1`` (outside the array False) and of its
    complement by ``structure2`` (outside True), both True.

    Parameters
    ----------
    input : array_like or dask array
        Non-zero elements are True.
    structure1 : array_like, optional
        What must fit the True elements (default: the cross,
        ``generate_binary_structure(len(axes), 1)``).
    structure2 : array_like, optional
        What must fit the False elements (default: the complement of ``structure1``).
    output : ndarray or dtype, optional
        As for :func:`binary_erosion`.
    origin1, origin2 : int or sequence of int, optional
        Shift of each structure's centre per filtered axis (``origin2`` defaults to
        ``origin1``).
    axes : int or sequence of int, optional
        The axes filtered (default all).

    Returns
    -------
    ndarray or dask array of bool (or of ``output``'s dtype)

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> a = np.zeros((5, 5), bool); a[2, 2] = True; a[0, 3:] = True
    >>> dot = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], bool)
    >>> morphology.binary_hit_or_miss(a, dot).astype(int)  # the isolated True elements
    array([[0, 0, 0, 0, 0],
           [0, 0, 0, 0, 0],
           [0, 0, 1, 0, 0],
           [0, 0, 0, 0, 0],
           [0, 0, 0, 0, 0]])
    """
    name = "binary_hit_or_miss"
    if not backends.foreign(input) and np.ndim(input) == 0:
        input = np.asarray(input).reshape(1)  # (0-d: one element, as binary_erosion's)
        res = binary_hit_or_miss(input, np.ones(1, bool) if structure1 is None else np.reshape(
            structure1, -1), None if structure2 is None else np.reshape(structure2, -1),
            output if output is None or not isinstance(output, np.ndarray)
            else output.reshape(1), origin1, origin2, axes=axes)
        return res.reshape(())
    arr = filters._array(input, name)
    if structure1 is None:
        structure1 = generate_binary_structure(len(filters._axes(axes, arr.ndim, name)), 1)
    if structure2 is None:
        structure2 = np.logical_not(structure1)
    if origin2 is None:
        origin2 = origin1
    hit = _binary("minimum", arr, structure1, 1, None, None, 0, origin1, axes, name)
    miss = _binary("minimum", _truth(arr, negate=True), structure2, 1, None, None, 1, origin2,
                   axes, name)
    at = _passes.read(arr.ndim, [0] * arr.ndim)[1:]
    both = _passes.compiled(f"def f_both(h, m):\n    return h{at} and m{at}\n")
    out, out_dtype = (None, np.dtype(bool)) if output is None else filters._output(output, arr,
                                                                                  name)
    return both(hit, miss, out_dtype=out_dtype, **({} if out is None else {"out": out}))


def binary_propagation(input, structure=None, mask=None, output=None, border_value=0,
                       origin=0, *, axes=None):
    """Binary propagation: the True elements grown through ``mask`` until nothing changes.

    :func:`binary_dilation` with ``iterations=-1``, as scipy (the reconstruction of ``mask``
    from the markers in ``input``). On NumPy arrays a breadth-first growth that visits each
    element once; on GPU arrays passes until nothing changes; not on Dask (it needs the whole
    array).

    Parameters
    ----------
    input, structure, mask, output, border_value, origin, axes
        As for :func:`binary_erosion`.

    Returns
    -------
    ndarray of bool (or of ``output``'s dtype)

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> mask = np.array([1, 1, 1, 0, 1, 1], bool)
    >>> morphology.binary_propagation(np.array([0, 1, 0, 0, 0, 0], bool), mask=mask)
    array([ True,  True,  True, False, False, False])
    """
    return _binary("maximum", input, structure, -1, mask, output, border_value, origin, axes,
                   "binary_propagation")


def binary_fill_holes(input, structure=None, output=None, origin=0, *, axes=None):
    """Fill the holes: the False regions that ``structure``'s steps cannot join to the border.

    As scipy: the complement of the propagation of the border through the False elements.

    Parameters
    ----------
    input : array_like
        Non-zero elements are True (NumPy or GPU arrays; not Dask: it needs the whole array).
    structure, output, origin, axes
        As for :func:`binary_erosion`.

    Returns
    -------
    ndarray of bool (or of ``output``'s dtype)

    Examples
    --------
    >>> import numpy as np
    >>> from stencilkit import morphology
    >>> ring = np.zeros((5, 5), bool); ring[1:4, 1:4] = True; ring[2, 2] = False
    >>> morphology.binary_fill_holes(ring).astype(int)
    array([[0, 0, 0, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 0, 0, 0]])
    """
    name = "binary_fill_holes"
    if not backends.foreign(input) and np.ndim(input) == 0:  # (0-d: as scipy)
        return binary_fill_holes(np.asarray(input).reshape(1), np.ones(1, bool) if structure
                                 is None else np.reshape(structure, -1), output, origin,
                                 axes=axes).reshape(())
    arr = filters._array(input, name)
    seeds = backends.for_array(arr).zeros(arr.shape, np.dtype(bool), arr)
    outside = _binary("maximum", seeds, structure, -1, _truth(arr, negate=True), None, 1, origin,
                      axes, name)
    out, out_dtype = (None, np.dtype(bool)) if output is None else filters._output(output, arr,
                                                                                  name)
    return _into(_truth(outside, negate=True), out, out_dtype)
