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
  Prewitt, Laplace, integer ``correlate`` weights) are computed in exact int64 arithmetic;
  fractional weights sum in float64. (The large-window Gaussian of 8-bit data sums in float32,
  twice the vector width, and sums again in float64 every element whose float32 sum lies within
  its proven error bound of a half-integer: the integers are the float64 sums', see
  ``stencilkit._lines.float32_tie``.)
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

from . import _lines, modes
from ._errors import StencilArgumentError, StencilAxisTypeError, StencilError, StencilTypeError
from ._stencil import Stencil
from .backends import is_dask_array
from .backends.cuda import is_device_array

__all__ = [
    "convolve", "correlate", "gaussian_filter", "laplace", "maximum_filter", "median_filter",
    "minimum_filter", "prewitt", "sobel", "uniform_filter",
]

_MODES = {
    "reflect": "reflect", "grid-mirror": "reflect", "mirror": "mirror", "nearest": "nearest",
    "wrap": "wrap", "grid-wrap": "wrap", "constant": "constant", "grid-constant": "constant",
}
# A window with more taps than this (or a separable filter with more than this many in all)
# runs as one pass per axis: one memory sweep per axis, but taps per element grow as the sum of
# the sizes instead of their product.
DIRECT_TAPS = 27
# Sorting networks for the median grow as n log^2 n comparisons; beyond this many elements the
# generated kernel would take too long to compile, and a selection per element takes over.
MEDIAN_MAX = 49


# --------------------------------------------------------------------------- argument checking

def _gpu(arr) -> bool:
    """Whether ``arr`` lives on a GPU (a device array, or a Dask array of CuPy chunks).

    Such arrays take only the generated-stencil paths (which have a CUDA backend): direct
    windows and one 1-D pass per axis, never the CPU line kernels of :mod:`_lines`.
    """
    if is_dask_array(arr):
        return is_device_array(getattr(arr, "_meta", None))
    return is_device_array(arr)


def _array(input, name):
    if is_dask_array(input) or is_device_array(input):
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
            raise StencilError(f"{name}: axis {ax} is out of range for a {ndim}-d input")
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise StencilError(f"{name}: axes must be unique; {tuple(axes)} names an axis twice")
    return tuple(out)


def _per_axis(value, axes, what, name, convert=int):
    """A scalar for every filtered axis, or a sequence of one value per axis."""
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
        return fp, bool(fp.all())
    if size is None:
        raise StencilArgumentError(f"{name}: give size or footprint (no footprint provided)")
    sizes = _per_axis(size, axes, "size", name)
    if any(s < 0 for s in sizes):
        raise StencilError(f"{name}: size must be >= 0 along every axis, got {sizes}")
    if 0 in sizes and name == "median_filter":  # (scipy raises RuntimeError too)
        raise StencilArgumentError(f"{name}: size 0 along an axis leaves no element in the window; "
                                f"give sizes >= 1, got {sizes}")
    # as scipy: a box of size 0 along an axis does not filter along it, as size 1
    return np.ones([max(s, 1) for s in sizes], bool), True


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
    if isinstance(output, np.ndarray) or is_device_array(output):
        if is_device_array(output) != is_device_array(arr):
            raise StencilTypeError(f"{name}: output must be "
                                   + ("a device array for device input" if is_device_array(arr)
                                      else "a NumPy array (or a dtype) for host input")
                                   + f", got {type(output).__name__}")
        if is_dask_array(arr):
            raise StencilError(f"{name}: output= arrays do not apply to Dask input; the result "
                               "is a lazy Dask array (pass a dtype instead)")
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
        warnings.warn(f"{name}: promoting specified output dtype to complex ({dtype} -> "
                      f"{np.promote_types(dtype, np.complex64)}): the result is complex",
                      UserWarning, stacklevel=4)
        dtype = np.promote_types(dtype, np.complex64)
    return None, dtype.newbyteorder("=")


def _cval_in(cval, dtype, name):
    """``cval`` as a value of ``dtype``, the type the window's values are compared or summed in.

    Floats round to the nearest (scipy converts a cval the same way where it computes in the
    data's type); integers truncate toward zero, as a C cast, and saturate at the dtype's
    limits, as stencilkit's integer results do (scipy wraps). Rank filters commute with both,
    so the result is the one of the unconverted cval, converted. NaN has no integer value.
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "fc":
        with np.errstate(over="ignore"):
            return dtype.type(cval)
    c = float(np.real(cval))
    if math.isnan(c):
        raise StencilError(f"{name}: cval=nan has no value in {dtype} (integer) data; give a "
                           "number, or filter a float copy of the data")
    if dtype.kind == "b":
        return np.bool_(c != 0)
    info = np.iinfo(dtype)
    return dtype.type(min(max(math.trunc(c) if math.isfinite(c) else c, info.min), info.max))


def _cval(cval, name, arr=None):
    if np.ndim(cval) != 0:
        raise StencilTypeError(f"{name}: cval must be a scalar, got {cval!r}")
    if isinstance(cval, (complex, np.complexfloating)) and arr is not None \
            and arr.dtype.kind != "c":
        raise StencilTypeError(f"{name}: a complex cval needs complex input, got {arr.dtype}")
    try:
        return complex(cval) if isinstance(cval, complex) else float(cval)
    except (TypeError, ValueError):
        raise StencilTypeError(f"{name}: cval must be a number, got {cval!r}") from None


# ------------------------------------------------------------------------ kernel generation

@functools.lru_cache(maxsize=512)
def _compiled(source: str) -> Stencil:
    """One Stencil per generated source (the source is the whole configuration)."""
    return Stencil._from_source(source, {"np": np}, None, {})


def _read(ndim, offsets):
    return "a[" + ", ".join(str(int(o)) for o in offsets) + ("," if ndim == 1 else "") + "]"


def _taps(fp, origins, axes, ndim):
    """(full-rank offsets, index into fp) for every True element of the window."""
    centre = [s // 2 + o for s, o in zip(fp.shape, origins)]
    taps = []
    for idx in zip(*np.nonzero(fp)):
        offs = [0] * ndim
        for ax, i, c in zip(axes, idx, centre):
            offs[ax] = int(i) - c
        taps.append((tuple(offs), idx))
    return taps


def _limits(dtype):
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _store(lines, value, acc, out_dtype):
    """Finish a kernel: the value rounded and saturated as the module docstring says."""
    if out_dtype.kind in "iu" and acc == "int":
        lo, hi = _limits(out_dtype)
        hi = min(hi, 2**63 - 1)  # the int64 accumulator cannot exceed this anyway
        if lo > -(2**63) or hi < 2**63 - 1:
            lines.append(f"    v = {value}")
            lines.append(f"    return {lo} if v < {lo} else ({hi} if v > {hi} else v)")
            return
    elif out_dtype.kind in "iub" and acc == "float":
        value = f"np.rint({value})"
    lines.append(f"    return {value}")


def _literal(w, acc_dtype):
    if acc_dtype == np.float32:
        return f"np.float32({float(w)!r})"
    if acc_dtype.kind == "c":
        return repr(complex(w))
    return repr(float(w))


def _plan_acc(arr_dtype, weights_integral, cval):
    """The accumulator: exact int64 for integer data and weights, float otherwise."""
    kind = arr_dtype.kind
    if kind == "c":
        return np.dtype(np.complex128), "float"
    if (kind in "biu" and arr_dtype.itemsize < 8 and weights_integral
            and float(np.real(cval)).is_integer()):
        return np.dtype(np.int64), "int"
    if kind == "f" and arr_dtype.itemsize <= 4:
        return np.dtype(np.float32), "float"
    return np.dtype(np.float64), "float"


def _linear_source(ndim, taps, acc, acc_kind, out_dtype, divisor=None):
    terms = []
    for offs, w in taps:
        if w == 0:
            continue
        read = _read(ndim, offs)
        if acc_kind == "int":
            w = int(w)
            term = read if abs(w) == 1 else f"{abs(w)} * {read}"
            terms.append(("- " if w < 0 else "+ ") + term)
        else:
            terms.append(f"+ {_literal(w, acc)} * {read}")
    if not terms:
        expr = "0 * " + _read(ndim, [0] * ndim)
    else:
        expr = " ".join(terms).lstrip("+ ")
        if expr.startswith("- "):
            expr = "-" + expr[2:]
    lines = ["def f_linear(a):", f"    s = {expr}"]
    if divisor is not None and acc_kind == "int":
        # exact mean: the nearest integer to s / n, ties to even; branch-free so that the loop
        # vectorises (floor((s + n//2) / n) rounds ties up; an odd n has no ties)
        lines.append(f"    q = (s + {divisor // 2}) // {divisor}")
        if divisor % 2 == 0:
            lines.append(f"    q = q - 1 if (s + {divisor // 2}) - q * {divisor} == 0 "
                         "and q % 2 != 0 else q")
        _store(lines, "q", acc_kind, out_dtype)
    elif divisor is not None:
        _store(lines, f"s / {_literal(divisor, acc)}", acc_kind, out_dtype)
    else:
        _store(lines, "s", acc_kind, out_dtype)
    return "\n".join(lines) + "\n"


def _run(source, arr, mode, cval, acc, out_dtype, out=None):
    st = _compiled(source)
    kwargs = dict(mode=mode, acc=acc, out_dtype=out_dtype)
    if mode == "constant":
        kwargs["cval"] = _cval_in(cval, acc, "filter")
    if out is not None:
        return st(arr, out=out, **kwargs)
    return st(arr, **kwargs)


def _linear(arr, taps, mode, cval, out, out_dtype, integral, divisor=None):
    acc, acc_kind = _plan_acc(arr.dtype, integral, cval)
    source = _linear_source(arr.ndim, taps, acc, acc_kind, out_dtype, divisor)
    return _run(source, arr, mode, cval, acc, out_dtype, out)


def _separable(arr, passes, mode, cval, out, out_dtype, integral, divisor=None):
    """Apply 1-D weight vectors along axes one after another; the last pass rounds/stores.

    Intermediates are exact int64 sums for integer data and weights, float64 for other
    integer data, and the input's float type for floats (as scipy.ndimage keeps them).
    ``mode``: one name, or {axis: name}, each pass using its axis' mode (the padded array is
    then the per-axis extension, and separability still holds).
    """
    acc, acc_kind = _plan_acc(arr.dtype, integral, cval)
    if acc_kind == "int":
        inter = np.dtype(np.int64)
    elif arr.dtype.kind in "fc":
        inter = arr.dtype.newbyteorder("=")
    else:
        inter = np.dtype(np.float64)
    for i, (axis, weights, origin) in enumerate(passes):
        offs = np.arange(len(weights)) - (len(weights) // 2 + origin)
        taps = []
        for o, w in zip(offs, weights):
            full = [0] * arr.ndim
            full[axis] = int(o)
            taps.append((tuple(full), w))
        last = i == len(passes) - 1
        target = out_dtype if last else inter
        source = _linear_source(arr.ndim, taps, acc, acc_kind, target,
                                divisor if last else None)
        pass_mode = mode[axis] if isinstance(mode, dict) else mode
        arr = _run(source, arr, pass_mode, cval, acc, target, out if last else None)
        if not last:  # outside the array, the intermediate is this pass applied to cval
            cval = np.asarray(cval * sum(weights)).astype(inter)[()]
    return arr


def _sum(parts, acc, out, out_dtype):
    """The element-wise sum of same-shape arrays into ``out_dtype`` (rounded, saturated).

    A generated kernel, so it runs on every backend.
    """
    names = [f"a{i}" for i in range(len(parts))]
    ndim = parts[0].ndim
    reads = [_read(ndim, [0] * ndim).replace("a[", f"{n}[", 1) for n in names]
    lines = [f"def f_sum({', '.join(names)}):", f"    s = {' + '.join(reads)}"]
    _store(lines, "s", "int" if acc.kind in "iu" else "float", out_dtype)
    st = _compiled("\n".join(lines) + "\n")
    if out is not None:
        return st(*parts, acc=acc, out_dtype=out_dtype, out=out)
    return st(*parts, acc=acc, out_dtype=out_dtype)


def _finish_empty(arr, out, out_dtype):
    if is_device_array(arr):
        from .backends import cuda as cuda_backend

        return out if out is not None else cuda_backend.zeros(arr.shape, out_dtype, arr)
    result = np.zeros(arr.shape, out_dtype) if not is_dask_array(arr) else arr.astype(out_dtype)
    if out is not None:
        out[...] = result
        return out
    return result


class _LineProgram:
    """Separable line passes (running sums, van Herk) over a whole array or a Dask region.

    ``passes``: ``("box", axis, lo, hi, divisor, dtype, clip)``,
    ``("box2", axis, (lo0, hi0, lo1, hi1), divisor, dtype, clip)`` and
    ``("sep2", axis, (wv, lov, wh, loh), dtype)`` (over axes ``axis`` and ``axis + 1``, the
    last two) or ``("extreme", axis, lo, hi, is_max)``. Each pass reads the previous one's
    result, and the constant outside the array follows along (the pass applied to cval).
    Picklable, for Dask workers in other processes.
    """

    def __init__(self, passes, mode, cval, out_dtype):
        self.passes = tuple(passes)
        self.mode = mode
        self.cval = cval
        self.out_dtype = np.dtype(out_dtype)

    def __call__(self, region, out=None):
        """The passes over ``region``; ``out``, if given, may receive the last pass directly."""
        x = np.ascontiguousarray(region)
        x = x.astype(_lines.native(x.dtype), copy=False)
        cval = self.cval
        # (intermediate and final dtypes go through _lines.native: compiled code has no
        # float16, so it works in float32 and _run_lines casts the result back)
        for p, (kind, axis, *rest) in enumerate(self.passes):
            last = p == len(self.passes) - 1 and out is not None

            def into(dtype, x=x, last=last):  # where this pass writes: out, if it can
                return _direct(out, x, dtype) if last else None

            if kind == "box":
                lo, hi, divisor, dtype, clip = rest
                dtype = _lines.native(dtype)
                x = _lines.box_pass(x, axis, lo, hi, self.mode, cval, dtype, divisor, clip,
                                    dst=into(dtype))
                k = lo + hi + 1
            elif kind == "sep2":
                (wv, lov, wh, loh), dtype = rest
                dtype = _lines.native(dtype)
                # float32 data is summed in float32, as scipy keeps it between passes
                acc = np.float32 if x.dtype == np.float32 else np.float64
                x = _lines.sep2_pass(x, np.array(wv), lov, np.array(wh), loh, self.mode, cval,
                                     dtype, acc=acc, dst=into(dtype))
                cval = cval * sum(wv) * sum(wh)
                continue
            elif kind == "box2":
                reach, divisor, dtype, clip = rest
                dtype = _lines.native(dtype)
                x = _lines.box2_pass(x, *reach, self.mode, cval, dtype, divisor, clip,
                                     dst=into(dtype))
                k = (reach[0] + reach[1] + 1) * (reach[2] + reach[3] + 1)
            elif kind == "rank":
                fp, lo, rank, last2 = rest
                x = _lines.rank_pass(x, np.array(fp, bool), lo, rank, self.mode, cval, last2,
                                     dst=into(x.dtype))
                continue
            else:
                lo, hi, is_max = rest
                x = _lines.extreme_pass(x, axis, lo, hi, self.mode, cval, is_max,
                                        dst=into(x.dtype))
                continue
            # outside the array, the next pass sees this one applied to constant cval
            cval = cval * k / divisor if divisor != 1 or dtype.kind == "f" else cval * k
        return x.astype(self.out_dtype, copy=False)  # float16 results come back as float16

    def __dask_tokenize__(self):
        return ("stencilkit.filters.lines", repr(self.passes), self.mode, self.cval,
                self.out_dtype.str)


def _direct(out, src, dtype):
    """``out`` when a line pass can write its result straight into it, else None.

    It must be exactly the array the pass would allocate (C-contiguous, native dtype) and
    share no memory with the pass' input: the passes read ahead of where they write.
    """
    if (out.dtype == dtype and out.flags.c_contiguous and out.flags.writeable
            and out.flags.aligned and not np.may_share_memory(out, src)):
        return out
    return None


def _run_lines(arr, passes, mode, cval, out, out_dtype):
    program = _LineProgram(passes, mode, cval, out_dtype)
    if is_dask_array(arr):
        from .backends import dask as dask_backend

        halo = [(0, 0)] * arr.ndim
        for kind, axis, *rest in passes:
            if kind == "box2":
                lo0, hi0, lo1, hi1 = rest[0]
                halo[axis], halo[axis + 1] = (lo0, hi0), (lo1, hi1)
            elif kind == "rank":
                fp, lo = np.array(rest[0], bool), rest[1]
                for d, (s, lo_d) in enumerate(zip(fp.shape, lo)):
                    halo[d] = (lo_d, s - 1 - lo_d)
            elif kind == "sep2":
                wv, lov, wh, loh = rest[0]
                halo[axis] = (lov, len(wv) - 1 - lov)
                halo[axis + 1] = (loh, len(wh) - 1 - loh)
            else:
                halo[axis] = (rest[0], rest[1])
        return dask_backend.run_program(program, [arr], arr.ndim, halo,
                                        modes.mode_code(mode), out_dtype)
    result = program(arr, out)
    if out is not None:
        if result is not out:
            np.copyto(out, result, casting="unsafe")
        return out
    return result if result.dtype == out_dtype else result.astype(out_dtype)


# ------------------------------------------------------------------------------- the filters

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
    name = "correlate"
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
    integral = w.dtype.kind in "biuf" and bool(np.all(w == np.round(w))) \
        and bool(np.all(np.abs(w) < 2**31))
    if integral and arr.dtype.kind in "iu":  # int64 sums must not overflow, else float64
        bound = max(abs(int(v)) for v in _limits(arr.dtype))
        integral = bound * float(np.abs(w).sum()) < 2**62
    taps = [(offs, w[idx]) for offs, idx in _taps(np.ones(w.shape, bool), origins, axes,
                                                 arr.ndim)]
    return _linear(arr, taps, mode, cval, out, out_dtype, integral)


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
    name = "convolve"
    arr, w, axes = _weights_args(input, weights, axes, name, cval)
    axes, origins = _window_axes(axes, origin, arr.ndim, name)
    # Reversing the weights mirrors the window about its centre; an even window's centre then
    # moves by one, which the origin takes back.
    flipped = w[(slice(None, None, -1),) * w.ndim]
    origins = tuple(-o - (1 - s % 2) for o, s in zip(origins, w.shape))
    return _correlate(arr, flipped, output, mode, cval, origins, axes, name)


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
    name = "uniform_filter"
    arr = _array(input, name)
    axes = _axes(axes, arr.ndim, name)
    fp, _ = _footprint(size, None, axes, name)
    mode, cval = _mode_cval(mode, cval, name, arr, axes)
    origins = _origins(origin, fp.shape, axes, name)
    out, out_dtype = _output(output, arr, name)
    if arr.size == 0:
        return _finish_empty(arr, out, out_dtype)
    n = fp.size
    if isinstance(mode, dict):  # a mode per axis: one pass per axis
        passes = [(ax, [1] * s, o) for ax, s, o in zip(axes, fp.shape, origins)]
        return _separable(arr, passes, mode, cval, out, out_dtype, True, divisor=n)
    if n <= DIRECT_TAPS:
        taps = [(offs, 1) for offs, _ in _taps(fp, origins, axes, arr.ndim)]
        return _linear(arr, taps, mode, cval, out, out_dtype, True, divisor=n)
    if arr.dtype.kind == "c" or (arr.dtype.kind in "iu" and arr.dtype.itemsize == 8) \
            or _gpu(arr):
        # complex, 64-bit integers (whose sums could overflow int64) and GPU arrays: tap-by-tap
        # passes
        passes = [(ax, [1] * s, o) for ax, s, o in zip(axes, fp.shape, origins) if s > 1]
        return _separable(arr, passes, mode, cval, out, out_dtype, True, divisor=n)
    # running sums: a few operations per element whatever the size
    lines = [(ax, s // 2 + o, s - 1 - (s // 2 + o), s)
             for ax, s, o in zip(axes, fp.shape, origins) if s > 1]
    exact = arr.dtype.kind in "biu" and out_dtype.kind in "biu"
    if exact:
        # int32 partial sums when they cannot overflow, else int64 (exact either way)
        bound = max(abs(int(v)) for v in _limits(arr.dtype)) if arr.dtype.kind != "b" else 1
        inter = np.dtype(np.int32) if bound * n + abs(cval) * n < 2**31 else np.dtype(np.int64)
        lo_c, hi_c = _limits(out_dtype) if out_dtype.kind != "b" else (0, 1)
    else:
        inter = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    # the last two axes in one sweep (no intermediate array), the others first, one pass each
    pair = [ln for ln in lines if ln[0] >= arr.ndim - 2] if arr.ndim >= 2 else []
    if len(pair) != 2:
        pair = []
    singles = [ln for ln in lines if ln not in pair]
    passes = []
    for i, (ax, lo, hi, s) in enumerate(singles):
        last = i == len(singles) - 1 and not pair
        if exact:
            passes.append(("box", ax, lo, hi, n if last else 1,
                           out_dtype if last else inter, (lo_c, hi_c) if last else None))
        else:
            passes.append(("box", ax, lo, hi, s, out_dtype if last else inter, None))
    if pair:
        (_, lo0, hi0, s0), (_, lo1, hi1, s1) = pair
        passes.append(("box2", arr.ndim - 2, (lo0, hi0, lo1, hi1), n if exact else s0 * s1,
                       out_dtype, (lo_c, hi_c) if exact else None))
    return _run_lines(arr, passes, mode, cval, out, out_dtype)


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
    name = "gaussian_filter"
    arr = _array(input, name)
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
        radii = _per_axis(radius, axes, "radius", name)
        if any(r < 0 for r in radii):
            raise StencilError(f"{name}: radius must be >= 0, got {radii}")
    mode, cval = _mode_cval(mode, cval, name, arr, axes)
    out, out_dtype = _output(output, arr, name)
    if arr.size == 0:
        return _finish_empty(arr, out, out_dtype)
    # as scipy: an axis with sigma ~ 0 is not filtered; a one-tap window (radius 0) is the
    # identity for smoothing but the derivative at 0 for order > 0 (0, -1/sigma^2, 0)
    passes = [(ax, _gaussian_weights(s, r, o), 0)
              for ax, s, r, o in zip(axes, sigmas, radii, orders) if s > 1e-15 and (r or o)]
    if not passes:
        return _linear(arr, [((0,) * arr.ndim, 1)], "nearest", 0.0, out, out_dtype, True)
    if isinstance(mode, dict):
        return _separable(arr, passes, mode, cval, out, out_dtype, False)
    taps = math.prod(len(w) for _, w, _ in passes)
    if len(passes) == 1 or taps <= DIRECT_TAPS:
        w = functools.reduce(np.multiply.outer, [p[1] for p in passes])
        pax = tuple(p[0] for p in passes)
        return _correlate(arr, w, output, mode, cval, 0, pax, name)
    last_two = [p for p in passes if p[0] >= arr.ndim - 2]
    if len(last_two) == 2 and arr.dtype.kind in "biuf" and out_dtype.kind in "biuf" \
            and not _gpu(arr):
        # the last two axes fused in one sweep (no intermediate array); others first
        (_, wv, _), (_, wh, _) = last_two
        head = [p for p in passes if p[0] < arr.ndim - 2]
        if head:
            inter = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
            arr = _separable(arr, head, mode, cval, None, inter, False)
        lines = [("sep2", arr.ndim - 2, (tuple(wv), len(wv) // 2, tuple(wh), len(wh) // 2),
                  out_dtype)]
        return _run_lines(arr, lines, mode, cval, out, out_dtype)
    return _separable(arr, passes, mode, cval, out, out_dtype, False)


def _derivative(input, axis, output, mode, cval, smooth, name):
    arr = _array(input, name)
    try:
        axis = _axes((axis,), arr.ndim, name)[0]
    except StencilTypeError:
        raise StencilAxisTypeError(f"{name}: axis must be an int; {axis!r} cannot be "
                                   "interpreted as an integer") from None
    all_axes = tuple(range(arr.ndim))
    mode, cval = _mode_cval(mode, cval, name, arr, all_axes)
    if isinstance(mode, dict):  # a mode per axis: one pass per axis
        out, out_dtype = _output(output, arr, name)
        if arr.size == 0:
            return _finish_empty(arr, out, out_dtype)
        passes = [(ax, [-1, 0, 1] if ax == axis else list(smooth), 0) for ax in all_axes]
        return _separable(arr, passes, mode, cval, out, out_dtype, True)
    w = np.array(1)
    for ax in all_axes:
        w = np.multiply.outer(w, np.array([-1, 0, 1]) if ax == axis else np.array(smooth))
    return _correlate(arr, w, output, mode, cval, 0, all_axes, name)


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
        parts = [_separable(arr, [(ax, [1, -2, 1], 0)], modes_, cval_, None, wide, True)
                 for ax in axes]
        return _sum(parts, wide, out, out_dtype)
    w = np.zeros((3,) * len(axes), np.int64)
    centre = (1,) * len(axes)
    for d in range(len(axes)):
        for o in (0, 2):
            idx = list(centre)
            idx[d] = o
            w[tuple(idx)] += 1
        w[centre] -= 2
    return _correlate(arr, w, output, modes_, cval, 0, axes, name)  # (one mode, if a list)


def _extreme_source(ndim, taps, op):
    reads = [_read(ndim, offs) for offs, _ in taps]
    expr = reads[0]
    for r in reads[1:]:
        expr = f"np.{op}({expr}, {r})"
    return f"def f_{op}(a):\n    return {expr}\n"


def _rank_args(input, size, footprint, output, mode, cval, origin, axes, name):
    arr = _array(input, name)
    if arr.dtype.kind == "c":
        raise StencilTypeError(f"{name}: complex input has no order; filter the real and "
                               "imaginary parts (or np.abs(input)) separately")
    axes = _axes(axes, arr.ndim, name)
    fp, box = _footprint(size, footprint, axes, name)
    mode_given = mode
    if name == "median_filter" or not box:  # (a box of minimum/maximum: sizes pair with axes)
        axes, origin = _window_axes(axes, origin, arr.ndim, name)
    mode, cval = _mode_cval(mode, cval, name, arr, axes)
    used = mode.values() if isinstance(mode, dict) else [mode]
    if "constant" in used:  # the windows compare values of this type, cval among them
        cval = _cval_in(cval, _lines.native(arr.dtype), name)
    if not isinstance(mode_given, str) and not (box and name != "median_filter"):
        raise StencilArgumentError(f"{name}: one mode per axis needs a separable window (minimum "
                                "or maximum with size=); pass a single mode")
    origins = _origins(origin, fp.shape, axes, name)
    out, out_dtype = _output(output, arr, name)
    return arr, axes, fp, box, mode, cval, origins, out, out_dtype


def _extreme(op, input, size, footprint, output, mode, cval, origin, axes, name):
    arr, axes, fp, box, mode, cval, origins, out, out_dtype = _rank_args(
        input, size, footprint, output, mode, cval, origin, axes, name)
    if arr.size == 0:
        return _finish_empty(arr, out, out_dtype)
    acc = _lines.native(arr.dtype)  # float16 compares in float32 (exactly)
    if box and fp.size > DIRECT_TAPS and _gpu(arr):  # generated passes, one per axis
        mode = dict.fromkeys(axes, mode)
    if isinstance(mode, dict):  # a mode per axis: a 1-D pass per axis, each with its mode
        for i, (ax, s, o) in enumerate(zip(axes, fp.shape, origins)):
            last = i == len(axes) - 1
            taps = _taps(np.ones((s,), bool), (o,), (ax,), arr.ndim)
            arr = _run(_extreme_source(arr.ndim, taps, op), arr, mode[ax], cval, acc,
                       out_dtype if last else acc, out if last else None)
        return arr
    if box and fp.size > DIRECT_TAPS:
        # a box's extreme is the extreme along each axis in turn (exact: no arithmetic), each
        # by van Herk / Gil-Werman in three comparisons per element
        passes = [("extreme", ax, s // 2 + o, s - 1 - (s // 2 + o), op == "maximum")
                  for ax, s, o in zip(axes, fp.shape, origins) if s > 1]
        return _run_lines(arr, passes, mode, cval, out, out_dtype)
    taps = _taps(fp, origins, axes, arr.ndim)
    return _run(_extreme_source(arr.ndim, taps, op), arr, mode, cval, acc, out_dtype, out)


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


def _batcher_pairs(n):
    """Comparators of Batcher's odd-even merge sort on n wires (those past n dropped).

    Wires past ``n`` would hold +inf, which no comparator moves, so dropping every comparator
    that touches one leaves a network that sorts the first ``n`` (Knuth, TAOCP vol. 3, 5.3.4).
    """
    pairs = []
    size = 1
    while size < n:
        size *= 2
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        a, b = i + j, i + j + k
                        if b < n:
                            pairs.append((a, b))
            k //= 2
        p *= 2
    return pairs


def _median_source(ndim, taps):
    n = len(taps)
    lines = ["def f_median(a):"]
    for i, (offs, _) in enumerate(taps):
        lines.append(f"    v{i} = {_read(ndim, offs)}")
    for a, b in _batcher_pairs(n):
        lines.append(f"    v{a}, v{b} = np.minimum(v{a}, v{b}), np.maximum(v{a}, v{b})")
    lines.append(f"    return v{n // 2}")
    return "\n".join(lines) + "\n"


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
    name = "median_filter"
    arr, axes, fp, box, mode, cval, origins, out, out_dtype = _rank_args(
        input, size, footprint, output, mode, cval, origin, axes, name)
    n = int(fp.sum())
    if arr.size == 0:
        return _finish_empty(arr, out, out_dtype)
    if n > MEDIAN_MAX and _gpu(arr):
        raise StencilError(f"{name}: windows of more than {MEDIAN_MAX} elements (here {n}) have "
                           "no GPU kernel yet; copy the array to the host (or use a smaller "
                           "window)")
    if n > MEDIAN_MAX:
        # large windows: a selection per element over the mode-padded array (uint8 and
        # uint16 boxes: Huang's sliding histogram)
        full = np.ones([1] * arr.ndim, bool)
        shape = [1] * arr.ndim
        for ax, s in zip(axes, fp.shape):
            shape[ax] = s
        full = fp.reshape(shape)
        lo = [0] * arr.ndim
        for ax, s, o in zip(axes, fp.shape, origins):
            lo[ax] = s // 2 + o
        last2 = box and all(s == 1 for ax, s in enumerate(shape) if ax < arr.ndim - 2)
        passes = [("rank", 0, full.tolist(), tuple(lo), n // 2, last2)]
        return _run_lines(arr, passes, mode, cval, out, out_dtype)
    taps = _taps(fp, origins, axes, arr.ndim)
    acc = _lines.native(arr.dtype)  # float16 compares in float32 (exactly)
    return _run(_median_source(arr.ndim, taps), arr, mode, cval, acc, out_dtype, out)
