"""Separable windows over the last two axes in one sweep, as generated CUDA C++.

Three of the filters' line passes (:func:`sweep_of`), which the generated stencils ran as two
passes, each a full read and write of the image: separable float32/float64 weights (``Sep2``:
``gaussian_filter`` and the other fused separable correlations), the float box (``Box2`` of
float data: ``uniform_filter``, sums divided once) and running extremes of a box
(``maximum_filter`` / ``minimum_filter`` of 32/64-bit data). Each thread owns one output column
of a strip of rows and walks down it: for the row entering the window it reduces the row's
``kh`` columns (its neighbours' columns: cached loads shared with the neighbouring threads),
keeps the last ``kv`` of those in registers (a ring), and the output is their vertical
reduction. Weights and divisor are compile-time constants, in the data's type; multiply-adds
are not fused (``--fmad=false``), so every product and sum is rounded once, in order:
horizontal terms left to right, then vertical ones top to bottom. The CPU sums the other way
round (vertical first) or by running sums, so sums agree to round-off; the tests check this
order bit for bit against NumPy. Extremes are exact (NumPy's NaN rule: a NaN wins).

Two kernels per module: ``sk_sep_interior`` (no boundary logic) and ``sk_sep_border`` (the top
and bottom rows and the columns at either end: the same walk down short column strips, its reads
through the mode's index map; ``cval`` outside for ``constant``). Plain C++ for NVRTC and for g++
(``-DSK_HOST``: the tests run every launch on the CPU, thread by thread).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import codegen_cpp, modes
from . import cuda_sweeps

BLOCK = (128, 2, 1)
"""Threads per block of the interior kernel (the float stencils' shape)."""


MAX_TAPS = 64
"""The most taps per axis the kernels take (a ring of registers per thread)."""


@dataclass(frozen=True)
class SepModule:
    """An emitted separable module and what launching it needs."""

    source: str
    dtype: np.dtype
    lov: int
    hiv: int
    loh: int
    hih: int
    idx64: bool

    kernels = ("sk_sep_interior", "sk_sep_border")

    def launches(self, shape, rows=None):
        """``[(kernel, grid, block, (rows, c0, c1))]`` for a ``(B, n0, n1)`` array.

        ``c0``/``c1``: the interior kernel's columns; ``rows``: force the strip length.
        """
        c0, c1 = self.loh, max(self.loh, shape[2] - self.hih)
        return cuda_sweeps.plan("sk_sep", shape, self.lov, self.hiv, c1 - c0, c1 - c0,
                                (c0, c1), BLOCK, rows)


def _literal(w, dtype) -> str:
    """The (finite) weight ``w`` rounded to ``dtype``, as an exact C++ hexadecimal literal."""
    return float(np.asarray(w).astype(dtype)).hex() + ("f" if dtype == np.float32 else "")


class Sweep(NamedTuple):
    """What one sweep computes over a window of ``kv`` rows by ``kh`` columns.

    ``lov``/``loh``: the rows and columns before the centre; ``op``: "sum" (weights ``wv`` /
    ``wh`` in the data's type, None: ones; the result divided once by ``divisor`` unless
    None), "max" or "min" (NumPy's: a NaN wins).
    """

    op: str
    kv: int
    lov: int
    kh: int
    loh: int
    wv: tuple | None = None
    wh: tuple | None = None
    divisor: int | None = None


def generate(dtype, sw: Sweep, *, idx64: bool) -> SepModule:
    """Emit the module of the sweep ``sw`` on ``dtype`` data (see :func:`sweep_of`)."""
    dtype = np.dtype(dtype)
    kv, kh, lov, loh = sw.kv, sw.kh, sw.lov, sw.loh
    hiv, hih = kv - 1 - lov, kh - 1 - loh
    ix = "sk_i64" if idx64 else "sk_i32"
    t = codegen_cpp._ctype_of(dtype)
    params = (f"const {t}* __restrict__ src, {t}* __restrict__ dst, {ix} B, {ix} n0, {ix} n1, "
              f"{ix} rows, {ix} c0, {ix} c1, int mode, {t} cval")
    names = "src, dst, B, n0, n1, rows, c0, c1, mode, cval"
    ring = [f"h{k}" for k in range(kv)]
    wvs, whs = [None] * kv, [None] * kh
    if sw.op == "sum":
        if sw.wv is not None:
            wvs = [_literal(w, dtype) for w in sw.wv]
            whs = [_literal(w, dtype) for w in sw.wh]

        def term(w, x):
            return x if w is None else f"{w} * {x}"

        def step(acc, w, x):
            return f"{acc} + {term(w, x)}"
    else:
        fn = (f"sk_np_{sw.op}" if dtype.kind == "f" else
              f"sk_{sw.op}_{dtype.kind}{8 * dtype.itemsize}")

        def term(w, x):
            return x

        def step(acc, w, x):
            return f"{fn}({acc}, {x})"

    def horizontal(dst, value):
        """``dst``: the row's reduction of ``value(c)``, left to right, one rounding each."""
        out = [f"{dst} = {term(whs[0], value(0))};"]
        out += [f"{dst} = {step(dst, whs[c], value(c))};" for c in range(1, kh)]
        return " ".join(out)

    final = f"s / {_literal(sw.divisor, dtype)}" if sw.divisor not in (None, 1) else "s"

    def walk(pad, hrow):
        """The strip walk from row r0 to r1: ``hrow(k, row)`` fills ring register k.

        It starts ``kv - 1`` rows early, filling the ring without output, so that the
        row reduction is emitted once (an unrolled prologue of ``kv - 1`` of them made NVRTC
        take 36 s over 64 x 64 taps).
        """
        return [pad + f"{t} " + ", ".join(f"{h} = 0" for h in ring) + ";",
                pad + f"for ({ix} i = r0 - {kv - 1}; i < r1; ++i) {{",
                pad + "  " + hrow(kv - 1, f"i + {hiv}"),
                pad + "  if (i >= r0) {",
                pad + f"    {t} s = {term(wvs[0], 'h0')};",
                *(pad + f"    s = {step('s', wvs[k], f'h{k}')};" for k in range(1, kv)),
                pad + f"    op[i * n1] = {final};",
                pad + "  }",
                *(pad + f"  h{k} = h{k + 1};" for k in range(kv - 1)),
                pad + "}"]

    what = (f"weights {kv} x {kh}" if sw.op == "sum" and sw.wv is not None else
            f"{'sums' if sw.op == 'sum' else sw.op} over {kv} x {kh}")
    L = [f"// stencilkit one-sweep {what} ({dtype})",
         codegen_cpp.PRELUDE, f"typedef {ix} sk_idx;", codegen_cpp._map_source(ix)]
    # -- interior
    L += ["// the interior: one column per thread, the ring of row reductions down its strip",
          f'extern "C" __global__ void sk_sep_interior({params}) {{',
          f"  const {ix} j = c0 + ({ix})blockIdx.x * ({ix})blockDim.x + ({ix})threadIdx.x;",
          "  if (j >= c1) return;",
          f"  const {ix} r0 = {lov} + (({ix})blockIdx.y * ({ix})blockDim.y + ({ix})threadIdx.y)"
          " * rows;",
          f"  const {ix} hiw = n0 - {hiv};",
          "  if (r0 >= hiw) return;",
          f"  const {ix} r1 = r0 + rows < hiw ? r0 + rows : hiw;",
          f"  for ({ix} b = blockIdx.z; b < B; b += gridDim.z) {{",
          f"    const {t}* __restrict__ plane = src + b * n0 * n1 + (j - {loh});",
          f"    {t}* __restrict__ op = dst + b * n0 * n1 + j;"]

    def direct(k, row):
        return (f"{{ const {t}* __restrict__ p = plane + ({row}) * n1; "
                + horizontal(f"h{k}", lambda c: f"p[{c}]") + " }")

    L += walk("    ", direct)
    L += ["  }", "}", ""]
    # -- border
    L += ["// everything else: short strips down single columns, reads through the index map",
          "#define SK_RD(rr, cc) ((rr) < 0 || (cc) < 0 ? cval : plane[(rr) * n1 + (cc)])",
          f'extern "C" __global__ void sk_sep_border({params}) {{',
          *cuda_sweeps.border_strips(ix, lov, hiv, "c0", "c1"),
          f"    const {t}* __restrict__ plane = src + b * n0 * n1;",
          f"    {t}* __restrict__ op = dst + b * n0 * n1 + j;",
          *(f"    const {ix} m{c} = sk_map(j + ({c - loh}), n1, mode);" for c in range(kh))]

    def mapped(k, row):
        return (f"{{ const {ix} rr = sk_map({row}, n0, mode); "
                + horizontal(f"h{k}", lambda c: f"SK_RD(rr, m{c})") + " }")

    L += walk("    ", mapped)
    L += ["  }", "}", "#undef SK_RD", ""]
    L.append(codegen_cpp.host_launchers(SepModule.kernels, params, names))
    return SepModule("\n".join(L) + "\n", dtype, lov, hiv, loh, hih, idx64)


_SUM = (np.float32, np.float64)
_EXTREME = (np.float32, np.float64, np.int32, np.uint32, np.int64, np.uint64)


def sweep_of(passes, dtype, out_dtype, ndim):
    """The sweep that computes a filter's line ``passes`` on ``ndim``-d ``dtype`` data, or None.

    Covered: separable float weights (``Sep2``), the float box (``Box2`` without clip: sums,
    divided once), and the running extremes of a box along the last two axes (``Extreme``
    passes) for 32/64-bit data; each into ``dtype`` itself, with at most :data:`MAX_TAPS`
    taps per axis. 8/16-bit extremes keep
    the generated passes, which read 32-bit words; the integer box has :mod:`.cuda_box`.
    """
    from .._passes import Box2, Extreme, Sep2

    dtype = np.dtype(dtype)
    if not dtype.isnative or np.dtype(out_dtype) != dtype or not passes:
        return None
    sw = None
    if len(passes) == 1 and isinstance(passes[0], (Box2, Sep2)):
        (p,) = passes
        if dtype not in _SUM or np.dtype(p.dtype) != dtype:
            return None
        if isinstance(p, Sep2):
            if not np.isfinite(np.asarray((*p.wv, *p.wh), dtype)).all():
                return None
            sw = Sweep("sum", len(p.wv), p.lov, len(p.wh), p.loh, tuple(p.wv), tuple(p.wh))
        elif p.clip is None:
            sw = Sweep("sum", p.lo0 + p.hi0 + 1, p.lo0, p.lo1 + p.hi1 + 1, p.lo1,
                       divisor=p.divisor)
    elif all(isinstance(p, Extreme) for p in passes) and dtype in _EXTREME and \
            len({p.is_max for p in passes}) == 1 and len(passes) <= 2:
        sw = extreme_sweep(passes, ndim)
    if sw is None or max(sw.kv, sw.kh) > MAX_TAPS:
        return None
    return sw


def extreme_sweep(passes, ndim):
    """The sweep of ``Extreme`` passes along the last two axes of an ``ndim`` array, or None."""
    along = {p.axis: p for p in passes}
    if ndim < 2 or len(along) != len(passes) or not set(along) <= {ndim - 2, ndim - 1}:
        return None
    pv, ph = along.get(ndim - 2), along.get(ndim - 1)
    lov, hiv = (pv.lo, pv.hi) if pv else (0, 0)
    loh, hih = (ph.lo, ph.hi) if ph else (0, 0)
    if max(lov + hiv, loh + hih) + 1 > MAX_TAPS:
        return None
    return Sweep("max" if passes[0].is_max else "min", lov + hiv + 1, lov, loh + hih + 1, loh)


_MODULES: dict = {}


def module_for(sw: Sweep, dtype, idx64) -> SepModule:
    """The module of the sweep ``sw`` on ``dtype`` data (emitted once)."""
    key = (sw, np.dtype(dtype).str, idx64)
    mod = _MODULES.get(key)
    if mod is None:
        mod = _MODULES[key] = generate(dtype, sw, idx64=idx64)
    return mod


def scalars(mod, shape, rows, c0, c1, mode, cval):
    """The launch's scalar arguments after the two arrays, typed as the kernel takes them."""
    ix = np.int64 if mod.idx64 else np.int32
    cval = cval if mode == "constant" else 0  # (ignored otherwise, and maybe NaN or huge)
    return (*(ix(v) for v in (*shape, rows, c0, c1)), np.int32(modes.mode_code(mode)),
            mod.dtype.type(cval))


def run(x, sw, mode, cval, out=None):
    """The sweep ``sw`` over the last two axes of the device array ``x``, into ``out``.

    ``out``: a device array of ``x``'s shape and dtype, or None: a new one of ``x``'s kind
    (CuPy or numba). Returns the result.
    """
    return cuda_sweeps.run(
        x, x.dtype, lambda dtype, at, idx64: module_for(sw, dtype, idx64),
        lambda mod, shape, rows, c0, c1: scalars(mod, shape, rows, c0, c1, mode, cval), out)
