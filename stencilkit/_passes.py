"""Filters' plans: the passes a filter needs, described once, lowered by each backend.

A filter (:mod:`stencilkit.filters`, :mod:`stencilkit.resample`) checks its arguments and then
says *what* to compute, never where: either a generated stencil (a kernel written out from the
window: :func:`linear_source`, :func:`extreme_source`, :func:`rank_source`, run by
:func:`run`, which calls a :class:`stencilkit.Stencil` and so reaches every backend), or a
:class:`Passes` of line passes, for the algorithms whose cost does not grow with the window:

- :class:`Box`: a running sum along one axis (``divisor`` and rounding into ``dtype``);
- :class:`Box2`: a box over the last two axes in one sweep;
- :class:`Sep2`: separable weights over the last two axes in one sweep;
- :class:`SepSum2`: several such terms summed (or a gradient's magnitude) in one sweep;
- :class:`Line1`: 1-D float weights along an axis before the last two, which :func:`run`
  takes from a generated stencil's route on NumPy and Dask arrays (the same values);
- :class:`Extreme`: a running minimum or maximum along one axis (van Herk / Gil-Werman);
- :class:`Rank`: a selection (the median) over a window of many elements;
- :class:`Generic`, :class:`Generic1d`: a user's function of each window or line.

``backends.for_array(arr).run_passes(passes, arr, out)`` runs them: the CPU backend with its
line kernels (:mod:`stencilkit.backends.cpu_lines`), Dask by mapping those over regions with the
halo the passes reach, and a backend without line kernels (CUDA today) through
:meth:`Passes.as_stencils`: the same passes as generated stencils, one 1-D pass per axis.

Each pass reads the previous one's result; outside the array, a pass sees the previous pass
applied to the constant ``cval`` (so ``mode='constant'`` filters the padded array itself).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from . import _dtypes
from ._errors import StencilError
from ._stencil import Stencil

# Terms per generated expression: longer sums and chains continue in further statements
CHUNK = 32
# Sorting networks for the median grow as n log^2 n comparisons; beyond this many elements the
# generated kernel would take too long to compile, and a selection per element takes over.
MEDIAN_MAX = 49


# ------------------------------------------------------------------------------- line passes

class Box(NamedTuple):
    """A running sum of ``lo + hi + 1`` elements along ``axis``.

    Divided by ``divisor`` (integers: rounded to nearest, ties to even, and saturated to
    ``clip``), into ``dtype``.
    """

    axis: int
    lo: int
    hi: int
    divisor: int
    dtype: np.dtype
    clip: tuple | None

    def reach(self, ndim):
        return {self.axis: (self.lo, self.hi)}


class Box2(NamedTuple):
    """A box over axes ``axis`` and ``axis + 1`` (the last two) in one sweep."""

    axis: int
    lo0: int
    hi0: int
    lo1: int
    hi1: int
    divisor: int
    dtype: np.dtype
    clip: tuple | None

    def reach(self, ndim):
        return {self.axis: (self.lo0, self.hi0), self.axis + 1: (self.lo1, self.hi1)}


class Sep2(NamedTuple):
    """Correlation weights ``wv`` along ``axis`` and ``wh`` along ``axis + 1``, in one sweep.

    The last two axes; ``lov``/``loh``: the taps before the centre; rounded into ``dtype``.
    """

    axis: int
    wv: tuple
    lov: int
    wh: tuple
    loh: int
    dtype: np.dtype

    def reach(self, ndim):
        return {self.axis: (self.lov, len(self.wv) - 1 - self.lov),
                self.axis + 1: (self.loh, len(self.wh) - 1 - self.loh)}


class SepSum2(NamedTuple):
    """Terms of separable weights over ``axis`` and ``axis + 1``, combined, in one sweep.

    ``terms``: ``((wv, wh), ...)``, each term's weights down and across (every term of the
    same lengths, ``lov``/``loh`` taps before the centre); the result, in the float ``dtype``,
    is the terms' sum, or with ``norm`` the square root of the sum of their squares: a
    Laplacian or a gradient's magnitude of Gaussian derivatives. Each term is exactly the
    :class:`Sep2` of its weights into ``dtype`` (:meth:`split`), and they combine as
    :func:`add` combines them in ``dtype``, so a backend without the sweep runs those.
    """

    axis: int
    terms: tuple
    lov: int
    loh: int
    norm: bool
    dtype: np.dtype

    def split(self):
        """The terms as ``Sep2`` passes into ``dtype``."""
        return [Sep2(self.axis, wv, self.lov, wh, self.loh, self.dtype) for wv, wh in self.terms]

    def reach(self, ndim):
        return self.split()[0].reach(ndim)


class Line1(NamedTuple):
    """1-D float weights along ``axis`` (one before the last two), summed in ``dtype``.

    ``offsets[j]``/``weights[j]``: the taps (no zero weight, each already a value of
    ``dtype``) in the order the generated stencil of the same taps adds them
    (:func:`linear_source`, whose value the CPU line kernel gives bit for bit); with a
    ``divisor``, the sum times its reciprocal in ``dtype`` (a float mean, as that stencil
    computes it). :func:`outer_taps` makes it.
    """

    axis: int
    offsets: tuple
    weights: tuple
    divisor: int | None
    dtype: np.dtype

    def reach(self, ndim):
        return {self.axis: (max(0, -min(self.offsets)), max(0, max(self.offsets)))}

    def taps(self, ndim):
        """The taps as :func:`linear_source` takes them (full-rank offsets, weight)."""
        return [(tuple(o if d == self.axis else 0 for d in range(ndim)), w)
                for o, w in zip(self.offsets, self.weights)]


def tie_bound(wv, wh, lo, hi, acc=np.float32, most=1e-3):
    """When a fast sum rounds to the integer of the float64 sweep: ``(rel, tie)``, or None.

    Integer results of separable weights (``Sep2``) are the float64 sweep's sums, rounded. A
    backend may sum faster (in float32, or in float64 in another order) and check each sum:
    ``v`` with ``|v - rint(v)| + rel * |v| < tie`` rounds as the float64 sweep's; any other is
    summed again in the float64 sweep's own order. ``lo``/``hi``: the range of the values
    summed (the data and, for ``mode='constant'``, cval), each exact in ``acc``.

    The separable sum of values ``|x| <= M`` with weights ``a`` (down) and ``b`` (across),
    computed in ``acc`` of unit roundoff ``u`` (weights rounded to ``acc``, recursive sums of
    ``kv`` then ``kh`` products or the other way round, with or without fused multiply-add, or
    any order in which no term passes through more roundings, such as the two values of a
    symmetric weight added first) differs from the exact sum ``H`` by at most
    ``c * sum|a| sum|b| M`` with ``c = g(kv) +
    g(kh) + 2u`` (to first order), ``g(n) = n u / (1 - n u)`` (Higham, Accuracy and Stability
    of Numerical Algorithms, 2nd ed., sections 2.2 and 3.1). With weights and values >= 0
    every product and partial sum is >= 0 and the bound is relative, ``c * H``: sums near 0
    are far more precise than the worst case. The float64 sweep's own error (the same with
    ``u = 2**-53``) is added. Two sums that close round to different integers only if a
    half-integer lies between them. None when the bound exceeds ``most`` (too many sums would
    be computed twice: 16-bit data in float32, long or heavy kernels), or for weights that are
    not finite.
    """
    wv = np.asarray(wv, np.float64)
    wh = np.asarray(wh, np.float64)
    if not (np.isfinite(wv).all() and np.isfinite(wh).all()):
        return None

    def g(n, u):
        return n * u / (1 - n * u)

    u, u64 = float(np.finfo(acc).eps) / 2, 2.0**-53
    c = g(wv.size, u) + g(wh.size, u) + 2 * u + g(wv.size, u64) + g(wh.size, u64) + 2 * u64
    c = c / (1 - c) * 1.01  # against the computed sum (not the exact one), with a margin
    # float32 weights below 2**-126 are subnormal, their error absolute: at most 2**-150 each
    big = max(-lo, hi)
    tiny = (wv.size + wh.size) * float(np.finfo(acc).smallest_subnormal) * big * float(
        np.abs(wh).sum() + 1)
    if lo >= 0 and (wv >= 0).all() and (wh >= 0).all():
        rel, absolute = c, tiny
        worst = c * hi * float(wv.sum() * wh.sum())
    else:
        rel, absolute = 0.0, c * big * float(np.abs(wv).sum() * np.abs(wh).sum())
        absolute += tiny
        worst = absolute
    if not math.isfinite(worst) or worst > most:
        return None
    # the largest float32 below 0.5 - absolute, less a margin for the test's own rounding
    tie = np.float32(0.5 - absolute - 2.0**-23)
    while float(tie) > 0.5 - absolute - 2.0**-23:
        tie = np.nextafter(tie, np.float32(0))
    return float(np.float32(rel)), float(tie)


class Extreme(NamedTuple):
    """The maximum (``is_max``) or minimum of ``lo + hi + 1`` elements along ``axis``."""

    axis: int
    lo: int
    hi: int
    is_max: bool

    def reach(self, ndim):
        return {self.axis: (self.lo, self.hi)}


@functools.lru_cache(maxsize=256)
def _elements(footprint) -> int:
    """True elements of a nested-tuple footprint (asked by each device call of a median pass)."""
    return int(np.array(footprint, bool).sum())


class Rank(NamedTuple):
    """The ``rank``-th smallest element of the window ``footprint``.

    ``footprint``: full rank, nested tuples of bools; ``lo``: the elements before the centre per
    axis; ``last2``: a box over the last two axes only (the 8/16-bit sliding-histogram case).
    """

    footprint: tuple
    lo: tuple
    rank: int
    last2: bool

    @property
    def size(self) -> int:
        """The window's elements."""
        return _elements(self.footprint)

    @property
    def networked(self) -> bool:
        """A window a sorting network takes (up to ``MEDIAN_MAX`` elements), any rank."""
        return self.size <= MEDIAN_MAX

    def reach(self, ndim):
        shape = np.array(self.footprint, bool).shape
        return {d: (lo, s - 1 - lo) for d, (s, lo) in enumerate(zip(shape, self.lo))}


class Generic(NamedTuple):
    """A user's function of each window's values (scipy's ``generic_filter``).

    ``function``: a :class:`stencilkit._generic.WindowFunction`, called with a float64 buffer
    of the window's values in the footprint's C order; ``footprint``, ``lo``: as for
    :class:`Rank`. Each value is stored in the plan's ``out_dtype`` by the filters' rule
    (integers nearest and saturated, bools True from 1 up): the filter's only pass.
    """

    footprint: tuple
    lo: tuple
    function: object

    def reach(self, ndim):
        return Rank.reach(self, ndim)


class Generic1d(NamedTuple):
    """A user's function of each line along ``axis`` (scipy's ``generic_filter1d``).

    ``function`` fills a float64 output line from the input line extended by ``lo`` elements
    before and ``size - 1 - lo`` after, as the mode says. Stored as :class:`Generic`'s.
    """

    axis: int
    size: int
    lo: int
    function: object

    def reach(self, ndim):
        return {self.axis: (self.lo, self.size - 1 - self.lo)}


class Passes(NamedTuple):
    """Line passes over one array.

    With ``mode`` (one name), ``cval`` (in the input's type), the result's dtype, and the
    filter's ``name`` for messages.
    """

    passes: tuple
    mode: str
    cval: object
    out_dtype: np.dtype
    name: str

    def as_stencils(self, arr, out):
        """The passes as generated stencils (one call per pass and axis).

        For a backend without line kernels: integers exactly as the line kernels compute
        them, floats to round-off.

        Consecutive box passes become one :func:`separable` run of sums divided once at the
        end (float means: times the divisor's reciprocal); a ``Rank`` median becomes the
        filters' sorting network where one takes it (up to ``MEDIAN_MAX`` elements; larger
        windows have no such lowering).
        """
        x, cval = arr, self.cval
        todo = list(self.passes)
        while todo:
            p = todo.pop(0)
            last = not todo or (isinstance(p, (Box, Box2)) and
                                all(isinstance(q, (Box, Box2)) for q in todo))
            if isinstance(p, (Box, Box2)):
                group = [p] + (todo if last else [])
                todo = [] if last else todo
                lines = []
                for q in group:
                    lines += [(q.axis, q.lo, q.hi)] if isinstance(q, Box) else [
                        (q.axis, q.lo0, q.hi0), (q.axis + 1, q.lo1, q.hi1)]
                divisor = math.prod(q.divisor for q in group)
                one_d = [(ax, [1] * (lo + hi + 1), lo - (lo + hi + 1) // 2)
                         for ax, lo, hi in lines]
                dtype = self.out_dtype if last else np.dtype(group[-1].dtype)
                # integer data: exact sums (divided once, rounded) where the line kernels
                # compute exactly (the last pass saturates), float sums otherwise
                integral = x.dtype.kind not in "biu" or group[-1].clip is not None
                x = separable(x, one_d, self.mode, cval, out if last else None, dtype,
                              integral, divisor=divisor)
                cval = cval * math.prod(lo + hi + 1 for _, lo, hi in lines) / divisor
            elif isinstance(p, Sep2):
                one_d = [(p.axis, p.wv, p.lov - len(p.wv) // 2),
                         (p.axis + 1, p.wh, p.loh - len(p.wh) // 2)]
                dtype = self.out_dtype if last else np.dtype(p.dtype)
                x = separable(x, one_d, self.mode, cval, out if last else None, dtype, False)
                cval = cval * sum(p.wv) * sum(p.wh)
            elif isinstance(p, Line1):
                dtype = self.out_dtype if last else np.dtype(p.dtype)
                source = linear_source(x.ndim, p.taps(x.ndim), p.dtype, "float", dtype,
                                       p.divisor)
                x = run(source, x, self.mode, cval, p.dtype, dtype, out if last else None)
                cval = cval * sum(p.weights) / (p.divisor or 1)
            elif isinstance(p, SepSum2):  # each term, then their sum (or magnitude)
                parts = [Passes((q,), self.mode, cval, np.dtype(p.dtype), self.name)
                         .as_stencils(x, None) for q in p.split()]
                x = add(parts, np.dtype(p.dtype), out if last else None,
                        self.out_dtype if last else np.dtype(p.dtype), norm=p.norm)
            elif isinstance(p, Extreme):
                taps = [(tuple(o if d == p.axis else 0 for d in range(x.ndim)), None)
                        for o in range(-p.lo, p.hi + 1)]
                acc = _dtypes.work_dtype(x.dtype)  # float16 compares in float32 (exactly)
                source = extreme_source(x.ndim, taps, "maximum" if p.is_max else "minimum")
                x = run(source, x, self.mode, cval, acc, self.out_dtype if last else acc,
                        out if last else None)
            elif p.networked:  # the filters' own route for such windows
                taps = [(tuple(int(i) - lo for i, lo in zip(idx, p.lo)), None)
                        for idx in zip(*np.nonzero(np.array(p.footprint, bool)))]
                acc = _dtypes.work_dtype(x.dtype)  # float16 compares in float32 (exactly)
                x = run(rank_source(x.ndim, taps, p.rank), x, self.mode, cval, acc,
                        self.out_dtype if last else acc, out if last else None)
            else:
                raise StencilError(
                    f"{self.name}: windows of more than {MEDIAN_MAX} elements (here {p.size}) have "
                    "no lowering to generated stencils: the CPU backend computes them, and on a "
                    "GPU the generated CUDA C++ path (CuPy with NVRTC; boxes of up to 65535 "
                    "elements, other footprints of up to 8192 offsets: 4096 elements in 2-D) "
                    "and the numba.cuda fallback "
                    "(windows of up to 2048 bytes: 512 float32); copy the array to the host "
                    "(or use a smaller window)")
        return x


# ------------------------------------------------------------------------ generated stencils

def cval_in(cval, dtype, name):
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


@functools.lru_cache(maxsize=512)
def compiled(source: str) -> Stencil:
    """One Stencil per generated source (the source is the whole configuration).

    Its integer sums are narrowed here, from the data's span (:func:`sum_type`), so the CPU
    backend's rewrites of users' kernels are off for it (``Stencil._cpu_rewrites``): their
    narrowing would compile a second module per dtype to convert what is already converted
    (measured: no faster, 8000^2 uint8 Sobel and Prewitt at a copy's speed either way), and
    the filters' speed is measured as their kernels are compiled now (benchmarks/filters.py).
    """
    return Stencil._from_source(source, {"np": np}, None, {}, cpu_rewrites=False)


def read(ndim, offsets):
    return "a[" + ", ".join(str(int(o)) for o in offsets) + ("," if ndim == 1 else "") + "]"


def taps(fp, origins, axes, ndim):
    """(full-rank offsets, index into fp) for every True element of the window."""
    centre = [s // 2 + o for s, o in zip(fp.shape, origins)]
    taps = []
    for idx in zip(*np.nonzero(fp)):
        offs = [0] * ndim
        for ax, i, c in zip(axes, idx, centre):
            offs[ax] = int(i) - c
        taps.append((tuple(offs), idx))
    return taps


def limits(dtype):
    """``(min, max)`` of an integer or bool dtype."""
    if np.dtype(dtype).kind == "b":
        return 0, 1
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def store(lines, value, acc, out_dtype):
    """Finish a kernel: the value rounded and saturated as the module docstring says."""
    if out_dtype.kind in "iu" and acc == "int":
        lo, hi = limits(out_dtype)
        hi = min(hi, 2**63 - 1)  # the int64 accumulator cannot exceed this anyway
        if lo > -(2**63) or hi < 2**63 - 1:
            lines.append(f"    v = {value}")
            lines.append(f"    return {lo} if v < {lo} else ({hi} if v > {hi} else v)")
            return
    elif out_dtype.kind in "iub" and acc == "float":
        value = f"np.rint({value})"
    lines.append(f"    return {value}")


def literal(w, acc_dtype):
    if acc_dtype == np.float32:
        return f"np.float32({float(w)!r})"
    if acc_dtype.kind == "c":
        return repr(complex(w))
    return repr(float(w))


CVAL_INT = 2**31
"""An integer cval of at most this magnitude keeps integer data's sums in int64 (as large as
32-bit data: what the filters' int64 bounds assume); a larger one sums in float64, where int64
sums of it could overflow (a 3 x 3 correlation with cval=2**62 wrapped, silently)."""


def plan_acc(arr_dtype, weights_integral, cval):
    """The accumulator: exact int64 for integer data and weights, float otherwise."""
    kind = arr_dtype.kind
    if kind == "c":
        return np.dtype(np.complex128), "float"
    c = float(np.real(cval))
    if (kind in "biu" and arr_dtype.itemsize < 8 and weights_integral
            and c.is_integer() and abs(c) <= CVAL_INT):
        return np.dtype(np.int64), "int"
    if kind == "f" and arr_dtype.itemsize <= 4:
        return np.dtype(np.float32), "float"
    return np.dtype(np.float64), "float"


NARROW = True
"""Whether :func:`linear_source` narrows an integer sum that :func:`sum_type` bounds (A/B)."""


def read_span(dtype, mode, cval):
    """``(lo, hi)``: every value an integer filter of ``dtype`` data reads, cval included.

    None for float and complex data. ``mode`` is one name or ``{axis: name}``; where any is
    ``'constant'``, cval (as the int64 accumulator holds it: :func:`cval_in`) widens the span.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "biu":
        return None
    lo, hi = limits(dtype)
    modes_ = mode.values() if isinstance(mode, dict) else (mode,)
    c = float(np.real(cval))
    if "constant" in modes_ and math.isfinite(c):
        c = int(cval_in(c, np.int64, "filter"))
        lo, hi = min(lo, c), max(hi, c)
    return lo, hi


def sum_span(taps, reads):
    """``(lo, hi)``: the least and greatest sums of ``taps`` over values within ``reads``."""
    return _terms_span([(int(w), reads) for _, w in taps if w != 0])


def _terms_span(terms):
    """``(lo, hi)`` of a sum of ``w * v`` over ``(w, (v_lo, v_hi))`` terms."""
    return (sum(min(w * lo, w * hi) for w, (lo, hi) in terms),
            sum(max(w * lo, w * hi) for w, (lo, hi) in terms))


def sum_type(taps, reads):
    """The narrowest of int16 and int32 holding every sum of ``taps`` over values in ``reads``.

    None where neither does (or ``reads`` is None). An int64 sum known to fit is exact in the
    narrower type; said so (``np.int16(s)``), LLVM computes the whole sum in it: numba types
    sums of small integers as int64, 8 lanes to a vector register, int16 has 32 (the uint8
    Sobel on 8000^2: 5.1 -> 2.8 ms, the copy 2.8 ms; an unsaturated sum already narrowed
    through the store's truncation, a saturated one could not).
    """
    if reads is None or not NARROW:
        return None
    return _narrowest(*sum_span(taps, reads))


def _narrowest(s_lo, s_hi):
    """int16 or int32, the first that holds ``s_lo .. s_hi``, or None."""
    for t in (np.int16, np.int32):
        info = np.iinfo(t)
        if info.min <= s_lo and s_hi <= info.max:
            return np.dtype(t)
    return None


def linear_source(ndim, taps, acc, acc_kind, out_dtype, divisor=None, reads=None):
    """A kernel of the weighted sum of ``taps`` (``(offsets, weight)``), stored in ``out_dtype``.

    ``reads`` (:func:`read_span`): the values an integer sum reads, so that it may be computed
    in a narrower type (:func:`sum_type`).
    """
    terms = []
    for offs, w in taps:
        if w == 0:
            continue
        ref = read(ndim, offs)
        if acc_kind == "int":
            w = int(w)
            term = ref if abs(w) == 1 else f"{abs(w)} * {ref}"
            terms.append(("- " if w < 0 else "+ ") + term)
        else:
            terms.append(f"+ {literal(w, acc)} * {ref}")
    if not terms:
        expr = "0 * " + read(ndim, [0] * ndim)
    else:
        expr = " ".join(terms[:CHUNK]).lstrip("+ ")
        if expr.startswith("- "):
            expr = "-" + expr[2:]
    lines = ["def f_linear(a):", f"    s = {expr}"]
    # long windows: the rest added CHUNK terms per statement, in the same order (the same
    # sum, bit for bit), so that no expression nests deeper than Python's parser and numba take
    lines += [f"    s = s {' '.join(terms[i:i + CHUNK])}" for i in range(CHUNK, len(terms), CHUNK)]
    narrow = sum_type(taps, reads) if acc_kind == "int" else None
    if narrow is not None:
        lines.append(f"    s = np.{narrow.name}(s)")
    if divisor is not None and acc_kind == "int" and out_dtype.kind in "fc":
        # the exact sum's mean, unrounded (float64, correctly rounded, then the output's type)
        store(lines, f"s / {divisor}", "float", out_dtype)
    elif divisor is not None and acc_kind == "int":
        # exact mean: the nearest integer to s / n, ties to even; branch-free so that the loop
        # vectorises (floor((s + n//2) / n) rounds ties up; an odd n has no ties)
        lines.append(f"    q = (s + {divisor // 2}) // {divisor}")
        if divisor % 2 == 0:
            lines.append(f"    q = q - 1 if (s + {divisor // 2}) - q * {divisor} == 0 "
                         "and q % 2 != 0 else q")
        store(lines, "q", acc_kind, out_dtype)
    elif divisor is not None and out_dtype.kind == "f" and np.dtype(acc).kind == "f":
        # a float mean by the divisor's reciprocal: within an ulp of the division (the CPU's
        # 2-D box kernel multiplies too), where the device's correctly rounded division took
        # about as many instructions as the whole 3 x 3 sum (tools/kernel_steps.py)
        store(lines, f"s * {literal(1 / divisor, acc)}", acc_kind, out_dtype)
    elif divisor is not None:  # (an integer output: rounded, so the division exactly)
        store(lines, f"s / {literal(divisor, acc)}", acc_kind, out_dtype)
    else:
        store(lines, "s", acc_kind, out_dtype)
    return "\n".join(lines) + "\n"


def outer_taps(ndim, taps, acc, acc_kind, out_dtype, divisor=None):
    """The :class:`Line1` of :func:`linear_source`'s kernel of these arguments, or None.

    None unless that kernel is 1-D float weights along an axis before the last two, into its
    own float type (a float mean's divisor as its factor). On NumPy and Dask arrays such a
    pass runs as the CPU line kernel ``cpu_lines.outer_pass``: there the generated stencil
    reads a window's rows a plane apart, at one offset in their pages (more of them than a
    cache set holds), while the line kernel reads each once per tile of lanes.
    """
    acc = np.dtype(acc)
    if acc_kind != "float" or acc.kind != "f" or np.dtype(out_dtype) != acc:
        return None
    axes = {d for offs, w in taps if w != 0 for d, o in enumerate(offs) if o != 0}
    if len(axes) != 1 or next(iter(axes)) > ndim - 3:
        return None
    (axis,) = axes
    kept = [(int(offs[axis]), float(acc.type(float(w)))) for offs, w in taps if w != 0]
    return Line1(axis, tuple(o for o, _ in kept), tuple(w for _, w in kept), divisor, acc)


def _line_backend(arr):
    """The backend that runs a :class:`Line1` on ``arr`` as a line pass, or None.

    The CPU's for NumPy arrays and Dask's for NumPy chunks; device arrays keep the stencil
    (the CUDA backend has no such kernel).
    """
    from . import backends
    from .backends import cpu

    backend = backends.for_array(arr)
    if backend is cpu.BACKEND or (backends.is_dask_array(arr) and not backends.is_device_array(
            getattr(arr, "_meta", None))):
        return backend
    return None


def run(source, arr, mode, cval, acc, out_dtype, out=None, outer=None):
    """The generated ``source`` over ``arr``.

    ``outer`` (:func:`outer_taps`): the same sum, by the CPU line kernel on NumPy arrays.
    """
    backend = _line_backend(arr) if outer is not None and mode != "skip" else None
    if backend is not None:
        cv = cval_in(cval, outer.dtype, "filter") if mode == "constant" else 0.0
        plan = Passes((outer,), mode, float(cv), outer.dtype, "filter")
        return backend.run_passes(plan, arr, out)
    st = compiled(source)
    kwargs = dict(mode=mode, acc=acc, out_dtype=out_dtype)
    if mode == "constant":
        kwargs["cval"] = cval_in(cval, acc, "filter")
    if out is not None:
        return st(arr, out=out, **kwargs)
    return st(arr, **kwargs)


def linear(arr, taps, mode, cval, out, out_dtype, integral, divisor=None):
    acc, acc_kind = plan_acc(arr.dtype, integral, cval)
    source = linear_source(arr.ndim, taps, acc, acc_kind, out_dtype, divisor,
                           read_span(arr.dtype, mode, cval))
    return run(source, arr, mode, cval, acc, out_dtype, out,
               outer_taps(arr.ndim, taps, acc, acc_kind, out_dtype, divisor))


def separable(arr, passes, mode, cval, out, out_dtype, integral, divisor=None):
    """Apply 1-D weight vectors along axes one after another; the last pass rounds/stores.

    Intermediates are exact int64 sums for integer data and weights, float64 for other
    integer data, and the input's float type for floats (as scipy.ndimage keeps them).
    ``mode``: one name, or {axis: name}, each pass using its axis' mode (the padded array is
    then the per-axis extension, and separability still holds).
    """
    acc, acc_kind = plan_acc(arr.dtype, integral, cval)
    span = read_span(arr.dtype, mode, cval) if acc_kind == "int" else None
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
        # an integer intermediate in the narrowest type that holds it: a quarter of the
        # int64 traffic for 8-bit data (the uint8 Sobel with a mode per axis at 8000^2:
        # 27 -> 8.6 ms)
        target = out_dtype if last else (sum_type(taps, span) or inter)
        source = linear_source(arr.ndim, taps, acc, acc_kind, target,
                               divisor if last else None, span)
        pass_mode = mode[axis] if isinstance(mode, dict) else mode
        arr = run(source, arr, pass_mode, cval, acc, target, out if last else None,
                  outer_taps(arr.ndim, taps, acc, acc_kind, target, divisor if last else None))
        if not last:  # outside the array, the intermediate is this pass applied to cval
            cval = np.asarray(cval * sum(weights)).astype(target)[()]
            # (which lies within the span of this pass's sums, as cval lay in the reads')
            span = None if span is None else sum_span(taps, span)
    return arr


def add(parts, acc, out, out_dtype, norm=False, signs=None):
    """The element-wise sum of same-shape arrays into ``out_dtype`` (rounded, saturated).

    ``signs``: +1 or -1 per part (``a0 - a1``); ``norm``: the square root of the sum of
    their squares instead. A generated kernel (in ``acc``, left to right), so it runs on
    every backend.
    """
    names = [f"a{i}" for i in range(len(parts))]
    ndim = parts[0].ndim
    reads = [read(ndim, [0] * ndim).replace("a[", f"{n}[", 1) for n in names]
    if norm:
        squares = " + ".join(f"{r} * {r}" for r in reads)
        lines = [f"def f_norm({', '.join(names)}):", f"    s = np.sqrt({squares})"]
    elif signs is not None:
        terms = reads[0] + "".join(f" {'-' if g < 0 else '+'} {r}"
                                   for g, r in zip(signs[1:], reads[1:]))
        lines = [f"def f_{'_'.join('p' if g > 0 else 'm' for g in signs)}"
                 f"({', '.join(names)}):", f"    s = {'-' if signs[0] < 0 else ''}{terms}"]
    else:
        lines = [f"def f_sum({', '.join(names)}):", f"    s = {' + '.join(reads)}"]
    if not norm and acc.kind in "iu" and NARROW and all(p.dtype.kind in "biu" for p in parts):
        # integer parts: the sum in the narrowest type that holds it (as sum_type says why;
        # a uint8 difference with saturation at 8000^2: 2.3 -> 2.0 ms)
        gs = signs if signs is not None else [1] * len(parts)
        narrow = _narrowest(*_terms_span([(g, limits(p.dtype)) for g, p in zip(gs, parts)]))
        if narrow is not None:
            lines.append(f"    s = np.{narrow.name}(s)")
    store(lines, "s", "int" if acc.kind in "iu" else "float", out_dtype)
    st = compiled("\n".join(lines) + "\n")
    if out is not None:
        return st(*parts, acc=acc, out_dtype=out_dtype, out=out)
    return st(*parts, acc=acc, out_dtype=out_dtype)


def _chain(op, exprs):
    """``np.op`` of ``exprs``, left to right."""
    expr = exprs[0]
    for r in exprs[1:]:
        expr = f"np.{op}({expr}, {r})"
    return expr


def extreme_source(ndim, taps, op):
    reads = [read(ndim, offs) for offs, _ in taps]
    expr = _chain(op, reads[:CHUNK])
    if len(reads) <= CHUNK:
        # each row's extreme first, then the rows', in the same order: the same result (the
        # first NaN, else one of equal values, 0.0 or -0.0, by a fixed rule: np.minimum and
        # np.maximum are associative to the bit), and a kernel walking down the rows computes
        # a row's extreme once for every output that holds it (after inlining, the same
        # expression of the same registers). Where every row has the same columns: a box's
        # rows (other rows are not shared).
        rows, cols = {}, {}
        for (offs, _), r in zip(taps, reads):
            rows.setdefault(tuple(offs[:-1]), []).append(r)
            cols.setdefault(tuple(offs[:-1]), []).append(offs[-1])
        if 1 < len(rows) < len(reads) and len({tuple(c) for c in cols.values()}) == 1:
            expr = _chain(op, [_chain(op, g) for g in rows.values()])
        return f"def f_{op}(a):\n    return {expr}\n"
    # long windows: one statement per further read, in the same order
    lines = [f"def f_{op}(a):", f"    m = {expr}"]
    lines += [f"    m = np.{op}(m, {r})" for r in reads[CHUNK:]]
    return "\n".join(lines + ["    return m"]) + "\n"


def batcher_pairs(n):
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


def rank_source(ndim, taps, rank):
    """The kernel of the ``rank``-th smallest of the window's values: Batcher's network."""
    n = len(taps)
    lines = [f"def {'f_median' if rank == n // 2 else f'f_rank{rank}'}(a):"]
    for i, (offs, _) in enumerate(taps):
        lines.append(f"    v{i} = {read(ndim, offs)}")
    for a, b in batcher_pairs(n):
        lines.append(f"    v{a}, v{b} = np.minimum(v{a}, v{b}), np.maximum(v{a}, v{b})")
    lines.append(f"    return v{rank}")
    return "\n".join(lines) + "\n"
