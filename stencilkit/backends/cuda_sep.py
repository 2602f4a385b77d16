"""Separable windows over the last two axes in one sweep, as generated CUDA C++.

Three of the filters' line passes (:func:`sweep_of`), which the generated stencils ran as two
passes, each a full read and write of the image: separable weights (``Sep2``:
``gaussian_filter`` and the other fused separable correlations) of float32/float64 data and of
8/16/32-bit integers (:func:`integer_weights`: the CPU's integers, bit for bit, by a float32
or float64 sum checked near ties and recomputed in the CPU's order), the float box (``Box2`` of
float data: ``uniform_filter``, sums scaled once by the divisor's reciprocal) and running
extremes of a box
(``maximum_filter`` / ``minimum_filter`` of 32/64-bit data). Each thread owns up to four
neighbouring output columns of a strip of rows (:func:`columns_per_thread`) and walks down it:
it loads the row entering the window once (its columns and their ``kh - 1`` neighbours: cached
loads shared with the neighbouring threads), reduces each column's ``kh`` values, keeps the last
``kv`` of those reductions in registers (a ring a column), and each output is its ring's
vertical reduction. Weights and divisor are compile-time constants, in the sums' type; the
compiler fuses no multiply-add (``--fmad=false``): float32 weighted sums fuse each product into
its sum themselves (``fmaf``, :func:`fused_products`), other products and sums are rounded
once each, in order: horizontal terms left to right, then vertical ones top to bottom (a box's
sum then times the divisor's reciprocal, rounded to the sums' type). The CPU
sums the other way round (vertical first) or by running sums, so sums agree to round-off; the
tests check this order bit for bit against NumPy. Extremes are exact (NumPy's NaN rule: a NaN wins).

Two parts per module, in one launch (``sk_sep_fused``) or two (:data:`.cuda_sweeps.FUSED`; two
for integer results checked near ties, whose sums near a tie a third and a fourth launch list
and sum again: :data:`TIE_SHARE`): the interior (no boundary logic) and the border (the
top and bottom rows and the columns at either end: the same walk down short column strips, its
reads through the mode's index map; ``cval`` outside for ``constant``). Plain C++ for NVRTC
and for g++ (``-DSK_HOST``: the tests run every launch on the CPU, thread by thread).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import _dtypes, codegen_cpp, modes
from .._passes import tie_bound
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
    out: np.dtype
    cval_ctype: str
    rowmap: bool = False  # the interior maps rows through the mode: it covers every row
    cols: int = 1  # output columns per interior thread (:func:`columns_per_thread`)
    ties: bool = False  # integer results checked near ties: sums again in a launch of their own
    fused: bool = False  # the border in the interior's launch (cuda_sweeps.FUSED)
    vec: bool = False  # rows read as vectors of the thread's columns (:func:`vector_ok`)
    fma: bool = False  # products fused into their sums (:func:`fused_products`)
    line: int = 1  # columns per line of the interior kernel, as emitted (:func:`columns_line`)

    @property
    def kernels(self) -> tuple:
        """The kernel names the module defines."""
        return cuda_sweeps.kernel_names("sk_sep", self.fused) + (
            TIE_KERNELS if self.ties else ())

    def launches(self, shape, rows=None):
        """``[(kernel, grid, block, (rows, c0, c1))]`` for a ``(B, n0, n1)`` array.

        ``c0``/``c1``: the interior kernel's columns; ``rows``: force the strip length. With
        :attr:`ties`, the sweep's launches come between ``sk_sep_reset`` (the list of sums
        near a tie emptied) and ``sk_sep_ties`` (each of them summed again).
        """
        c0 = first_column(self.loh, self.cols)
        threads = max(0, shape[2] - self.hih - c0) // self.cols
        lead = codegen_cpp.lead_threads(c0, self.line, self.cols)
        lov, hiv = (0, 0) if self.rowmap else (self.lov, self.hiv)
        out = cuda_sweeps.plan("sk_sep", shape, lov, hiv, threads, self.cols * threads,
                               (c0, c0 + self.cols * threads), BLOCK, rows, self.fused,
                               self.lov + self.hiv, lead)
        if not (self.ties and out):
            return out
        cdiv, block = codegen_cpp._cdiv, codegen_cpp.BLOCK_1D
        grid = (max(1, min(cdiv(tie_capacity(shape), block[0]), TIE_BLOCKS)), 1, 1)
        span = out[0][3]
        return [("sk_sep_reset", (1, 1, 1), (1, 1, 1), span), *out,
                ("sk_sep_ties", grid, block, span)]

    def scratch(self, shape):
        """``(elements, dtype)`` of the device buffer a call's launches take last, or None.

        With :attr:`ties`: the count of sums near a tie, then their outputs' flat indices
        (:func:`tie_capacity` of them at most).
        """
        if not self.ties:
            return None
        return tie_capacity(shape) + 1, np.dtype(np.uint64 if self.idx64 else np.uint32)


TIE_KERNELS = ("sk_sep_reset", "sk_sep_ties")
"""The kernels of a module checked near ties besides the sweep's: one thread zeroes the count;
then, after the sweep, each listed output is summed again in the CPU's order."""

TIE_SHARE = 16
"""The list of sums near a tie holds one output in this many (and :data:`TIE_MIN` more); past
a full list ``sk_sep_ties`` sums every output again (correct, and slow: data with that many
sums near a half-integer, which noise and images come nowhere near).

On random uint8 noise the sigma 2 Gaussian's float32 sums come within the check's bound of a
tie once in 1800 outputs (0.055%), yet in 3.5% of the warps' rows of 64 outputs: computed
again where found, the float64 sum of 289 taps, a chain of dependent loads and adds, held up
its warp's 63 other outputs (on an H200 the sweep's interior took 1.01 ms, the float32 data's
of 4 times the bytes 0.42 ms; with the list 0.397 ms, and 0.147 ms for ``sk_sep_ties``, whose
reads then came one after another: each column's together since, not timed yet)."""

TIE_MIN = 1024
"""Entries the list of sums near a tie holds besides one in :data:`TIE_SHARE` outputs."""

TIE_BLOCKS = 1024
"""Blocks of ``sk_sep_ties`` at most: its threads take the listed outputs in turn."""


def tie_capacity(shape) -> int:
    """Outputs the list of sums near a tie holds for a ``(B, n0, n1)`` launch."""
    return int(np.prod(shape)) // TIE_SHARE + TIE_MIN


ROTATE_MAX = 17
"""The tallest windows whose interior walk is written out a ring's turn at a time (no moves
between rows; :func:`generate`'s ``walk``): the source grows with the window's height."""

REGISTERS = 64
"""Registers an interior thread's rings and row values may take (:func:`columns_per_thread`);
the kernels take about 15 more (ptxas, sm_90: 68-72 for the sigma 2 float32 Gaussian's two
columns, 89 for sigma 3's two, which this budget gives one)."""


def columns_per_thread(kv, kh, acc) -> int:
    """Output columns each interior thread computes: 4, 2 or 1.

    A thread's columns share their rows' values: a row of ``cols + kh - 1`` loads serves
    ``cols`` outputs, where one column a thread loaded ``kh`` values an output (17 loads an
    output of a sigma 2 Gaussian, whose interior kernel ran at 0.24 of a copy on an H200).
    The most columns whose rings (``cols * kv`` sums) and row values fit :data:`REGISTERS`
    (64-bit sums count twice): sigma 2 Gaussians (17 x 17) two, sigma 1 (9 x 9) four.
    """
    w = 2 if np.dtype(acc).itemsize == 8 else 1
    for cols in (4, 2):
        if w * (cols * kv + cols + kh - 1) <= REGISTERS:
            return cols
    return 1


def _literal(w, dtype) -> str:
    """The (finite) weight ``w`` rounded to ``dtype``, as an exact C++ hexadecimal literal."""
    return float(np.asarray(w).astype(dtype)).hex() + ("f" if dtype == np.float32 else "")


class Sweep(NamedTuple):
    """What one sweep computes over a window of ``kv`` rows by ``kh`` columns.

    ``lov``/``loh``: the rows and columns before the centre; ``op``: "sum" (weights ``wv`` /
    ``wh``, None: ones; the result scaled once by ``1 / divisor``, rounded to the sums' type,
    unless None; integer results divided), "max" or "min"
    (NumPy's: a NaN wins). ``acc``: the type of the sums when not the data's (integer data:
    "float32" or "float64"; the weights are rounded to it). ``check``: ``(rel, tie,
    grouped)`` for integer results that must be the CPU's float64 sweep's: a sum ``v`` with
    ``|v - rint(v)| + rel * |v| >= tie`` (:func:`stencilkit._passes.tie_bound`) is summed
    again in float64, in the order of the CPU's sweep: its groups of four taps (``grouped``,
    ``_sep2``: ``mode='constant'`` or long windows) or one tap after another (the unrolled
    sweep).
    """

    op: str
    kv: int
    lov: int
    kh: int
    loh: int
    wv: tuple | None = None
    wh: tuple | None = None
    divisor: int | None = None
    acc: str | None = None
    check: tuple | None = None


def generate(dtype, sw: Sweep, *, idx64: bool, out_dtype=None, rowmap=False,
             vec=False) -> SepModule:
    """Emit the module of the sweep ``sw`` on ``dtype`` data (see :func:`sweep_of`).

    ``out_dtype``: the result's type (default: the data's). ``rowmap``: the interior kernel
    maps its rows through the mode (any mode but ``constant``) and covers the top and bottom
    rows too (:func:`cuda_sweeps.rows_mapped`). ``vec``: the interior reads each row's values
    as whole vectors of its columns (:func:`vector_ok`: the caller checks the alignment).
    """
    dtype = np.dtype(dtype)
    out = np.dtype(out_dtype or dtype)
    acc = np.dtype(sw.acc or dtype)
    kv, kh, lov, loh = sw.kv, sw.kh, sw.lov, sw.loh
    hiv, hih = kv - 1 - lov, kh - 1 - loh
    ix = "sk_i64" if idx64 else "sk_i32"
    t, a, o = (codegen_cpp._ctype_of(d) for d in (dtype, acc, out))
    cv = "double" if dtype.kind != "f" and sw.op == "sum" else t  # (the CPU's float cval)
    params = (f"const {t}* __restrict__ src, {o}* __restrict__ dst, {ix} B, {ix} n0, {ix} n1, "
              f"{ix} rows, {ix} c0, {ix} c1, int mode, {cv} cval")
    names = "src, dst, B, n0, n1, rows, c0, c1, mode, cval"
    if sw.check is not None:  # the list of sums near a tie (:meth:`SepModule.scratch`)
        params += ", sk_tie cap, sk_tie* __restrict__ ties"
        names += ", cap, ties"
    (top, bottom), rmap = cuda_sweeps.row_reads(lov, hiv, rowmap)
    wvs, whs = [None] * kv, [None] * kh
    fuse = fused_products(sw, acc)
    if sw.op == "sum":
        if sw.wv is not None:
            wvs = [_literal(w, acc) for w in sw.wv]
            whs = [_literal(w, acc) for w in sw.wh]

        def term(w, x):
            return x if w is None else f"{w} * {x}"

        def step(acc_, w, x):
            return f"sk_fmaf({w}, {x}, {acc_})" if fuse else f"{acc_} + {term(w, x)}"
    else:
        fn = (f"sk_np_{sw.op}" if dtype.kind == "f" else
              f"sk_{sw.op}_{dtype.kind}{8 * dtype.itemsize}")

        def term(w, x):
            return x

        def step(acc_, w, x):
            return f"{fn}({acc_}, {x})"

    def horizontal(dst, value):
        """``dst``: the row's reduction of ``value(c)``, left to right, one rounding each."""
        out_ = [f"{dst} = {term(whs[0], value(0))};"]
        out_ += [f"{dst} = {step(dst, whs[c], value(c))};" for c in range(1, kh)]
        return " ".join(out_)

    final = "s"
    if sw.divisor not in (None, 1):  # (the float box's mean: by the divisor's reciprocal,
        # within an ulp of the division, which took more instructions than a 3 x 3 sum)
        final = (f"s * {_literal(1 / sw.divisor, acc)}" if acc.kind == "f" and sw.check is None
                 else f"s / {_literal(sw.divisor, acc)}")

    def store(q=0):
        """Lines storing the output ``s`` of column ``j + q``."""
        at, col = (f"i * n1 + {q}", f"j + {q}") if q else ("i * n1", "j")
        if sw.check is None:
            return [f"op[{at}] = {final};" if o == a else f"op[{at}] = ({o})({final});"]
        # integers: rounded (ties to even), saturated; a sum near a tie goes on the list that
        # sk_sep_ties sums again after the sweep (the list full: it sums every output again)
        f = "f" if a == "float" else ""
        rel, tie, _ = sw.check
        return [f"{{ const {a} v = {final}; const {a} r = rint{f}(v);",
                f"  if (fabs{f}(v - r) + {_literal(rel, acc)} * fabs{f}(v) >= "
                f"{_literal(tie, acc)}) {{",
                "    const sk_tie slot = sk_tie_slot(ties);",
                f"    if (slot < cap) ties[1 + slot] = (sk_tie)((b * n0 + i) * n1 + {col});",
                "  }",
                f"  op[{at}] = sk_settle((double)r); }}"]

    # Integer data checked near ties may sum in any order within tie_bound's error (each
    # term's roundings are at most the in-order sum's): symmetric weights then take the two
    # elements (rows) they share first, in the interior, which halves the products (and, across,
    # adds the two integers exactly before one conversion).
    paired = sw.check is not None and a == "float" and sw.wv is not None

    def symmetric(w):
        return len(w) > 1 and all(w[c] == w[len(w) - 1 - c] for c in range(len(w)))

    pair_v = paired and symmetric(sw.wv)
    pair_h = paired and symmetric(sw.wh)

    def vertical(pad, pairs, h):
        """Lines summing the ring ``h(k)`` into ``s`` (``pairs``: symmetric rows first added)."""
        if not pairs:
            return [pad + f"{a} s = {term(wvs[0], h(0))};",
                    *(pad + f"s = {step('s', wvs[k], h(k))};" for k in range(1, kv))]
        lines = [pad + f"{a} s = {wvs[0]} * ({h(0)} + {h(kv - 1)});"]
        lines += [pad + f"s = {step('s', wvs[k], f'({h(k)} + {h(kv - 1 - k)})')};"
                  for k in range(1, kv // 2)]
        if kv % 2:
            lines.append(pad + f"s = {step('s', wvs[kv // 2], h(kv // 2))};")
        return lines

    def walk(pad, hrow, pairs=False, cols=1, rotate=False):
        """The strip walk from row r0 to r1: ``hrow(k, row)`` fills ring slot k.

        ``cols``: output columns (``j`` to ``j + cols - 1``), each with its ring (registers
        ``h{q}_{k}``, or ``h{k}`` for one column). It starts ``kv - 1`` rows early, filling
        the rings without output, so that the row reduction is emitted once (an unrolled
        prologue of ``kv - 1`` of them made NVRTC take 36 s over 64 x 64 taps).
        ``rotate``: the loop's body written out ``kv`` times, each step's rows in slots
        renamed round the ring, instead of ``kv - 1`` moves a column a row (the SASS of the
        sigma 2 Gaussian's interior: 16 moves an output, beside 66 float operations).
        """
        names = [(lambda k: f"h{k}")] if cols == 1 else [
            (lambda k, q=q: f"h{q}_{k}") for q in range(cols)]
        lines = [pad + f"{a} " + ", ".join(f"{h(k)} = 0" for h in names for k in range(kv))
                 + ";"]

        def step(u, inner):  # row i: the newest slot, then (once inside) each output
            body = [inner + hrow((kv - 1 + u) % kv, f"i + {hiv}"), inner + "if (i >= r0) {"]
            for q, h in enumerate(names):
                body += [inner + "  {",
                         *vertical(inner + "    ", pairs, lambda k, h=h: h((k + u) % kv)),
                         *(inner + "    " + line for line in store(q)), inner + "  }"]
            return body + [inner + "}"]

        if not rotate:
            lines += [pad + f"for ({ix} i = r0 - {kv - 1}; i < r1; ++i) {{", *step(0, pad + "  "),
                      *(pad + f"  {h(k)} = {h(k + 1)};" for h in names for k in range(kv - 1)),
                      pad + "}"]
            return lines
        lines.append(pad + f"for ({ix} i0 = r0 - {kv - 1}; i0 < r1; i0 += {kv}) {{")
        for u in range(kv):
            lines += [pad + "  {", pad + f"    const {ix} i = i0 + {u};",
                      *([pad + "    if (i >= r1) break;"] if u else []),
                      *step(u, pad + "    "), pad + "  }"]
        return lines + [pad + "}"]

    what = (f"weights {kv} x {kh}" if sw.op == "sum" and sw.wv is not None else
            f"{'sums' if sw.op == 'sum' else sw.op} over {kv} x {kh}")
    L = [f"// stencilkit one-sweep {what} ({dtype} -> {out}, in {acc}"
         f"{', products fused into the sums' if fuse else ''})",
         codegen_cpp.PRELUDE, f"typedef {ix} sk_idx;", codegen_cpp._map_source(ix)]
    if fuse:  # (one rounding a step, the same on both: the CUDA math API's and C99's fmaf)
        L += ["#if defined(__CUDACC__) || defined(__CUDACC_RTC__)",
              "#define sk_fmaf(w, x, s) __fmaf_rn(w, x, s)",
              "#else",
              "#define sk_fmaf(w, x, s) fmaf(w, x, s)",
              "#endif"]
    if sw.check is not None:
        L += [_exact_source(sw, t, ix), _ties_source(out, o, ix, idx64)]
    # -- interior
    cols = columns_per_thread(kv, kh, acc)
    vec = vec and vector_ok(cols, kh, dtype.itemsize)
    if vec:
        L += [f"struct alignas({cols * dtype.itemsize}) sk_vec {{ {t} e[{cols}]; }};"]
    line = columns_line(dtype, out, cols, first_column(loh, cols))
    pad = vector_pad(loh, cols, vec)
    start = codegen_cpp.line_start_cpp("c0", line, cols)
    L += [f"// the interior: {cols} column(s) per thread, a ring of row reductions each, down "
          "its strip",
          cuda_sweeps.interior_open("sk_sep", params, ix),
          f"  const {ix} j = {start} + (({ix})blockIdx.x * ({ix})blockDim.x + "
          f"({ix})threadIdx.x){f' * {cols}' if cols > 1 else ''};",
          f"  if ({'j < c0 || ' if start != 'c0' else ''}j >= c1) return;",
          f"  const {ix} r0 = {top} + (sk_by * ({ix})blockDim.y + ({ix})threadIdx.y) * rows;",
          f"  const {ix} hiw = n0 - {bottom};",
          "  if (r0 >= hiw) return;",
          f"  const {ix} r1 = r0 + rows < hiw ? r0 + rows : hiw;",
          f"  for ({ix} b = blockIdx.z; b < B; b += gridDim.z) {{",
          f"    const {t}* __restrict__ base = src + b * n0 * n1;",
          f"    const {t}* __restrict__ plane = base + (j - {loh + pad});",
          f"    {o}* __restrict__ op = dst + b * n0 * n1 + j;"]

    def convert(x):
        """The element ``x`` in the sums' type.

        8/16-bit integers go into float32 by their bits (2**23 + x, less 2**23: two
        full-rate operations, exact): the conversion instruction runs at a quarter of the rate
        (the CUDA guide's throughput table for sm_90), one per tap in the 8-bit Gaussian's
        interior (its SASS; the difference is not measured yet).
        """
        if a == t:
            return x
        if a == "float" and dtype.kind in "iu" and dtype.itemsize <= 2:
            bias = 0 if dtype.kind == "u" else 1 << (8 * dtype.itemsize - 1)
            u = f"(sk_u32)({x} + {bias})" if bias else f"(sk_u32){x}"
            return f"(sk_f32_bits(0x4b000000u | {u}) - {float(2**23 + bias).hex()}f)"
        return f"({a}){x}"

    def convert_pair(x, y):
        """``x + y`` of two 8/16-bit integers (exact in 32 bits) into float32 by its bits."""
        bias = 0 if dtype.kind == "u" else 1 << (8 * dtype.itemsize)
        u = f"(sk_u32)((int){x} + (int){y} + {bias})"
        return f"(sk_f32_bits(0x4b000000u | {u}) - {float(2**23 + bias).hex()}f)"

    ahead = reads_ahead(sw, dtype, acc)
    nload = codegen_cpp._cdiv(pad + cols + kh - 1, cols) if vec else cols + kh - 1  # a row

    def fetch(row, into, clamp=True):
        """Lines loading the row ``row``'s values (vectors with ``vec``) into ``into{m}``.

        ``clamp``: a row past the array's last (the row after a strip's last, fetched ahead
        where the rows are not mapped) reads the last instead.
        """
        at = cuda_sweeps.ahead_row(row, rowmap, rmap) if clamp else rmap(row)
        head = f"const {t}* __restrict__ p = plane + {at} * n1; "
        if vec:
            return head + " ".join(f"{into}{m} = ((const sk_vec*)p)[{m}];" for m in range(nload))
        return head + " ".join(f"{into}{m} = p[{m}];" for m in range(nload))

    def direct(k, row):
        """The row's values loaded once, then each column's reduction into its ring slot.

        With :data:`AHEAD` the values are those loaded the step before (``pf``), and the
        next row's loads go out first.
        """
        unit = "sk_vec" if vec else t
        if ahead:  # (``row`` is ``i + hiv``: the next step's is one further)
            nxt = f"i + {hiv + 1}"
            head = ("{ " + " ".join(f"const {unit} v{m} = pf{m};" for m in range(nload)) + " { "
                    + fetch(nxt, "pf") + " } ")
        else:
            head = "{ " + fetch(row, f"const {unit} v", clamp=False) + " "
        if vec:  # (the thread's values start ``pad`` into its vectors)
            head += " ".join(f"const {t} x{m} = v{(pad + m) // cols}.e[{(pad + m) % cols}];"
                             for m in range(cols + kh - 1)) + " "
        else:
            head += " ".join(f"const {t} x{m} = v{m};" for m in range(cols + kh - 1)) + " "
        parts = []
        for q in range(cols):
            def x(c, q=q):
                return f"x{q + c}"

            hk = f"h{k}" if cols == 1 else f"h{q}_{k}"
            if not pair_h:
                parts.append(horizontal(hk, lambda c, x=x: convert(x(c))))
                continue
            parts += [f"{hk} = {whs[0]} * {convert_pair(x(0), x(kh - 1))};"]
            parts += [f"{hk} = {step(hk, whs[c], convert_pair(x(c), x(kh - 1 - c)))};"
                      for c in range(1, kh // 2)]
            if kh % 2:
                parts.append(f"{hk} = {step(hk, whs[kh // 2], convert(x(kh // 2)))};")
        return head + " ".join(parts) + " }"

    if ahead:  # the first row's values, before the walk
        L += [f"    {'sk_vec' if vec else t} " + ", ".join(f"pf{m}" for m in range(nload)) + ";",
              f"    {{ {fetch(f'r0 - {kv - 1} + {hiv}', 'pf')} }}"]
    # (integer results too: their sums near a tie only go on the list; sk_exact, inlined at
    # every step of the turn when the sweep called it, made NVRTC take 9 s)
    L += walk("    ", direct, pair_v, cols, kv <= ROTATE_MAX)
    L += ["  }", "}", ""]
    # -- border
    cval = f"({a})cval" if cv != a else "cval"
    L += ["// everything else: short strips down single columns, reads through the index map",
          f"#define SK_RD(rr, cc) ((rr) < 0 || (cc) < 0 ? {cval} : ({a})base[(rr) * n1 + (cc)])",
          cuda_sweeps.border_open("sk_sep", params, ix),
          *cuda_sweeps.border_strips(ix, top, bottom, "c0", "c1"),
          f"    const {t}* __restrict__ base = src + b * n0 * n1;",
          f"    {o}* __restrict__ op = dst + b * n0 * n1 + j;",
          *(f"    const {ix} m{c} = sk_map(j + ({c - loh}), n1, mode);" for c in range(kh))]

    def mapped(k, row):
        return (f"{{ const {ix} rr = sk_map({row}, n0, mode); "
                + horizontal(f"h{k}", lambda c: f"SK_RD(rr, m{c})") + " }")

    L += walk("    ", mapped)
    L += ["  }", "}", "#undef SK_RD", ""]
    # (not integer results checked near ties: fused, the sigma 2 uint8 Gaussian's kernel took
    # 72 registers, its interior alone 64, its border 55; at 64 an SM holds 1024 threads)
    fused = cuda_sweeps.FUSED and sw.check is None
    L += cuda_sweeps.entries("sk_sep", params, names, ix, fused, top + bottom)
    kernels = cuda_sweeps.kernel_names("sk_sep", fused)
    if sw.check is not None:
        kernels += TIE_KERNELS
        L += ["// the list of sums near a tie: emptied before the sweep, summed again after it",
              f'extern "C" __global__ void sk_sep_reset({params}) {{ ties[0] = 0; }}',
              f"static __device__ void sk_sep_again(const {t}* __restrict__ src, {o}* "
              f"__restrict__ dst, {ix} at, {ix} n0, {ix} n1, int mode, {cv} cval) {{",
              f"  const {ix} b = at / (n0 * n1), i = (at - b * n0 * n1) / n1, "
              "j = at - (b * n0 + i) * n1;",
              "  dst[at] = sk_settle(rint(sk_exact(src + b * n0 * n1, n0, n1, i, j, mode, "
              "cval)));",
              "}",
              f'extern "C" __global__ void sk_sep_ties({params}) {{',
              f"  const {ix} t0 = ({ix})blockIdx.x * ({ix})blockDim.x + ({ix})threadIdx.x;",
              f"  const {ix} stride = ({ix})gridDim.x * ({ix})blockDim.x;",
              "  if (ties[0] > cap) {  // the list overflowed (one output in TIE_SHARE and more",
              "    // near a tie, which real images do not come near): every output again",
              f"    for ({ix} at = t0; at < B * n0 * n1; at += stride) "
              "sk_sep_again(src, dst, at, n0, n1, mode, cval);",
              "    return;",
              "  }",
              f"  for ({ix} t = t0; t < ({ix})ties[0]; t += stride) "
              f"sk_sep_again(src, dst, ({ix})ties[1 + t], n0, n1, mode, cval);",
              "}", ""]
    L.append(codegen_cpp.host_launchers(kernels, params, names))
    return SepModule("\n".join(L) + "\n", dtype, lov, hiv, loh, hih, idx64, out, cv, rowmap,
                     cols, sw.check is not None, fused, vec, fuse, line)


FMA = True
"""Whether float32 weighted sums fuse each product into its sum (:func:`fused_products`);
``tools/gpu_profile.py`` times both."""


def fused_products(sw: Sweep, acc) -> bool:
    """Whether the sweep ``sw`` in ``acc`` sums as ``s = fmaf(w, x, s)``: one rounding a tap.

    Weighted sums in float32 (float32 data, and 8/16-bit integers summed in float32 and checked
    near ties), with :data:`FMA`. Modules compile with ``--fmad=false``, where each product
    and each sum is an instruction of its own and a rounding: 66 float operations an output
    in the sigma 2 Gaussian's interior (its SASS), whose time on an H200, 0.40 ms for
    8192^2 float32 and as long for uint8 (a quarter of the bytes), is not the memory's.
    Fused: 35 (its registers unchanged, 72 by ptxas 12 for sm_90). Both targets round each
    step once and alike (``__fmaf_rn``; C99's ``fmaf`` for g++), so the host tests still
    equal the device bit for bit, against a NumPy reference that emulates the step exactly
    (tests/reference.py ``fma32``). A fused sum is at least as close to the exact one (one
    rounding a term instead of two), within :func:`stencilkit._passes.tie_bound`'s model.
    Float64 sums are not fused: NumPy has no exact float64 fused step to test them against.
    """
    return FMA and sw.op == "sum" and sw.wv is not None and np.dtype(acc) == np.float32


AHEAD = None
"""Whether interior threads load the next row's values a step ahead: ``True``, ``False``, or
``None`` (the default) for where it was measured faster (:func:`reads_ahead`).

Each step of the walk issues its row's loads and at once sums what they bring (the SASS of the
sigma 2 float32 Gaussian's interior: 9 loads, then the 34 multiply-adds of the row's
reductions): a warp waits for memory once a step, and that interior issues about 40% of the
instructions an SM could (its time against its SASS). Ahead, the loads of row ``i + 1`` go
out before row ``i``'s sums, at the cost of their registers (ptxas 12, sm_90: that Gaussian
72 -> 80, still 3 blocks of 256 threads an SM; sigma 1 72 -> 76, the same; the uint8 one's
64 -> 72, 4 blocks -> 3; sigma 3 float32 71 -> 96, 3 -> 2). Results are the same bit for bit
(tests/test_cuda_sep.py, also under AddressSanitizer: the row after a strip's last is read
clamped).

Timed on an H100 (2026-11-27, ``tools/gpu_profile.py``, 8192^2): the float32 Gaussian sigma
2 0.416 -> 0.390 ms (a second run on another H100: 0.504 -> 0.466), sigma 1 0.368 -> 0.341
(then 0.349 -> 0.359: level); but the uint8 Gaussian 0.629 -> 0.805 (a block an SM fewer),
sigma 3 float32 0.870 -> 0.937 and the float32 15 x 15 box 0.413 -> 0.473 (0.430 -> 0.469)."""

AHEAD_TAPS = 17
"""The most taps an axis of the float32 weighted sums that read ahead by default (sigma 2's
17 gained; sigma 3's 25 would take 96 registers, 2 blocks an SM against 3)."""


def reads_ahead(sw: Sweep, dtype, acc) -> bool:
    """Whether the sweep ``sw`` of ``dtype`` data summed in ``acc`` reads a row ahead.

    :data:`AHEAD` where set; by default float32 weighted sums (float32 data) of at most
    :data:`AHEAD_TAPS` taps an axis, the ones measured faster.
    """
    if AHEAD is not None:
        return AHEAD
    return (sw.op == "sum" and sw.wv is not None and np.dtype(dtype) == np.float32
            and np.dtype(acc) == np.float32 and max(sw.kv, sw.kh) <= AHEAD_TAPS)


VECTOR_LOADS = True
"""Whether interiors read their rows as vectors where :func:`vector_ok` and the alignment
allow (``tools/gpu_profile.py`` times both)."""


def first_column(loh, cols) -> int:
    """The interior kernel's first column.

    The first whose window stays in the row (``loh``, its reach to the left), rounded up to
    whole threads of ``cols`` columns, so that the threads can start a line.
    """
    return codegen_cpp._cdiv(loh, cols) * cols


def vector_pad(loh, cols, vec) -> int:
    """Values a thread's vector reads take before its window (0 without vectors, ``vec``).

    A thread's first column ``j`` is a multiple of ``cols`` (:func:`first_column`), and its
    row values, from ``j - loh``, start ``-loh`` modulo ``cols`` into a vector. Its last
    vector may end past its window too, never past the row: vector reads take rows of whole
    vectors (:func:`aligned`), so the next vector's end after a value of the row is in it.
    """
    return -loh % cols if vec else 0


LINES = False
"""Whether the interior kernel's threads start on a line (:func:`columns_line`), as the other
families' do. Off: on an H200 (2026-11-27, two runs, each kernel's least of 5 launches) the
sigma 2 float32 Gaussian took 0.304 / 0.298 ms from a line against 0.295 / 0.290 from its
first column, and the 15 x 15 float32 box and maximum were level (0.349 against 0.351, 0.842
against 0.849): these sweeps wait on their arithmetic and their loads' latency, not on the
lines their stores touch (the stencils' heat step took 0.169 against 0.186 ms, the float32
Sobel 0.154 against 0.197). ``tools/gpu_profile.py``'s "from a line" rows time it."""


def columns_line(dtype, out, cols, c0) -> int:
    """Columns per line (:func:`.codegen_cpp.line_of`) of the interior kernel's threads.

    Counted in elements of the narrower of ``dtype`` and ``out``. Its threads' columns
    ``c0 + m * cols`` (:func:`first_column`) start a line where ``cols`` divides ``c0`` and
    :data:`LINES` is on; else ``cols`` (the first thread at ``c0``).
    """
    if not LINES or c0 % cols:
        return cols
    return codegen_cpp.line_of(min(np.dtype(dtype).itemsize, np.dtype(out).itemsize), cols)


def vector_ok(cols, kh, itemsize) -> bool:
    """Whether a thread's ``cols + kh - 1`` row values are read as vectors of ``cols`` elements.

    One ``cols * itemsize``-byte load (at most 16) reads ``cols`` values, on a vector's
    boundary, where ``cols`` divides ``kh - 1`` (the values then span whole vectors, or one
    more where the window's reach to the left is not a multiple of ``cols``:
    :func:`vector_pad`): a sigma 2 Gaussian's two columns take 9 float2 loads a row instead of
    18 loads of a float each (whose warp spans two 128-byte lines per load).
    """
    size = cols * itemsize
    return cols > 1 and (kh - 1) % cols == 0 and size <= 16 and size & (size - 1) == 0


def _ties_source(out, o, ix, idx64) -> str:
    """The list of sums near a tie (``sk_tie``, ``sk_tie_slot``) and ``sk_settle``.

    ``sk_tie_slot``: the next free entry of the list (its count at ``ties[0]``), one atomic
    add on the device; ``sk_settle``: a rounded float64 sum as the integer output ``o`` of
    dtype ``out``, saturated.
    """
    info = np.iinfo(out)
    lo, hi = float(info.min), float(info.max)
    tie = "sk_u64" if idx64 else "sk_u32"
    return "\n".join([
        f"typedef {tie} sk_tie;",
        "SK_FN sk_tie sk_tie_slot(sk_tie* ties) {",
        "#if defined(__CUDACC__) || defined(__CUDACC_RTC__)",
        "  return atomicAdd(ties, (sk_tie)1);",
        "#else",
        "  return ties[0]++;  // (the host runs one thread at a time)",
        "#endif",
        "}",
        f"SK_FN {o} sk_settle(double e) {{ return ({o})(e < {lo!r} ? {lo!r} : e > {hi!r} ? "
        f"{hi!r} : e); }}", ""])


def _exact_source(sw: Sweep, t: str, ix: str) -> str:
    """``sk_exact``: one output element of the CPU's float64 sweep, in that sweep's order.

    The weights are the float64 ones (``__constant__`` arrays: loops, at most one of them
    unrolled, keep NVRTC's time flat); no fused multiply-adds. Called by ``sk_sep_ties`` only,
    for the sums near a tie.
    Two orders (:mod:`stencilkit.backends.cpu_lines.separable`): ``grouped``, ``_sep2``'s:
    each column's vertical sum in groups of four rows (whole groups only where all four rows
    lie inside; rows outside add ``w * cval`` one at a time), columns outside the array
    (``mode='constant'``) ``cval * sum(wv)``, then the horizontal sum in groups of four;
    otherwise the unrolled sweep's: every tap in turn, vertical sums first.
    """
    kv, kh, lov, loh = sw.kv, sw.kh, sw.lov, sw.loh
    grouped = sw.check[2]

    def arr(name, w):
        return f"__constant__ double {name}[{len(w)}] = {{{', '.join(float(x).hex() for x in w)}}};"

    wsum = 0.0
    for w in sw.wv:  # numba's array.sum(): one after another, from 0
        wsum += float(w)
    L = ["#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)",
         "#define __constant__",
         "#define SK_COLD static",
         "#else",  # (inlined into its one caller, sk_sep_ties)
         "#define SK_COLD static __device__ __forceinline__",
         "#endif",
         "// the CPU's float64 sweep for one element: sums near a tie are computed again",
         arr("sk_wv64", sw.wv), arr("sk_wh64", sw.wh),
         "#define SK_X(m, q) ((m) < 0 || (q) < 0 ? cval : (double)base[(m) * n1 + (q)])"]
    if not grouped:  # (the rows' index maps worked out once, each column's reads issued
        # together: its loop unrolled; the columns' too made NVRTC take 4.2 s instead of 0.33
        # for the sigma 2 Gaussian. On an H200 the sums one read after another took 0.147 ms
        # of the 0.72 ms sigma 2 Gaussian of an 8192^2 uint8 image: 37000 sums near a tie,
        # chains of 289 dependent reads)
        L += [f"SK_COLD double sk_exact(const {t}* __restrict__ base, {ix} n0, {ix} n1, {ix} i, "
              f"{ix} j, int mode, double cval) {{",
              f"  {ix} mk[{kv}];",
              "#pragma unroll",
              f"  for (int k = 0; k < {kv}; ++k) mk[k] = sk_map(i + k - {lov}, n0, mode);",
              "  double e = 0.0;",
              f"  for (int c = 0; c < {kh}; ++c) {{",
              f"    const {ix} q = sk_map(j + c - {loh}, n1, mode);",
              "    double v = 0.0;",
              "#pragma unroll",
              f"    for (int k = 0; k < {kv}; ++k) v = v + sk_wv64[k] * SK_X(mk[k], q);",
              "    e = e + sk_wh64[c] * v;",
              "  }",
              "  return e;",
              "}"]
    else:
        L += [f"SK_COLD double sk_column(const {t}* __restrict__ base, {ix} n0, {ix} n1, {ix} i, "
              f"{ix} p, int mode, double cval) {{",
              f"  const {ix} q = sk_map(p, n1, mode);",
              f"  if (q < 0) return 0.0 + cval * {wsum.hex()};",
              "  double ext = 0.0;",
              "  int k = 0;",
              f"  while (k + 4 <= {kv}) {{",
              f"    const {ix} m0 = sk_map(i + k - {lov}, n0, mode), "
              f"m1 = sk_map(i + k + 1 - {lov}, n0, mode),",
              f"        m2 = sk_map(i + k + 2 - {lov}, n0, mode), "
              f"m3 = sk_map(i + k + 3 - {lov}, n0, mode);",
              "    if (m0 >= 0 && m1 >= 0 && m2 >= 0 && m3 >= 0) {",
              "      ext = ext + (sk_wv64[k] * SK_X(m0, q) + sk_wv64[k + 1] * SK_X(m1, q)",
              "                   + sk_wv64[k + 2] * SK_X(m2, q) + sk_wv64[k + 3] * SK_X(m3, q));",
              "      k += 4;",
              "    } else {",
              "      ext = ext + sk_wv64[k] * SK_X(m0, q);",
              "      k += 1;",
              "    }",
              "  }",
              f"  for (; k < {kv}; ++k) ext = ext + sk_wv64[k] * "
              f"SK_X(sk_map(i + k - {lov}, n0, mode), q);",
              "  return ext;",
              "}",
              f"SK_COLD double sk_exact(const {t}* __restrict__ base, {ix} n0, {ix} n1, {ix} i, "
              f"{ix} j, int mode, double cval) {{",
              "  double row = 0.0;",
              "  int c = 0;",
              f"  for (; c + 4 <= {kh}; c += 4) {{",
              f"    const {ix} p = j + c - {loh};",
              "    row = row + (sk_wh64[c] * sk_column(base, n0, n1, i, p, mode, cval)",
              "                 + sk_wh64[c + 1] * sk_column(base, n0, n1, i, p + 1, mode, cval)",
              "                 + sk_wh64[c + 2] * sk_column(base, n0, n1, i, p + 2, mode, cval)",
              "                 + sk_wh64[c + 3] * sk_column(base, n0, n1, i, p + 3, mode, cval));",
              "  }",
              f"  for (; c < {kh}; ++c)",
              f"    row = row + sk_wh64[c] * sk_column(base, n0, n1, i, j + c - {loh}, mode, "
              "cval);",
              "  return row;",
              "}"]
    L.append("#undef SK_X")
    return "\n".join(L) + "\n"


_SUM = (np.float32, np.float64)
_EXTREME = (np.float32, np.float64, np.int32, np.uint32, np.int64, np.uint64)


def sweep_of(passes, dtype, out_dtype, ndim, mode="reflect", cval=0.0):
    """The sweep that computes a filter's line ``passes`` on ``ndim``-d ``dtype`` data, or None.

    Remembered per call configuration (:func:`_sweep_of` is a pure function of it: the tie
    bound of integer weights alone took about a third of a small call's host time).
    """
    try:
        passes = tuple(passes)
        key = (passes, weight_bits(passes), np.dtype(dtype), np.dtype(out_dtype), ndim, mode,
               _dtypes.exact_key(cval))
        found = _SWEEPS.get(key, _SWEEPS)
    except TypeError:  # something unhashable (a mode per axis): work it out each time
        return _sweep_of(passes, dtype, out_dtype, ndim, mode, cval)
    if found is _SWEEPS:
        found = _sweep_of(passes, dtype, out_dtype, ndim, mode, cval)
        _dtypes.remember(_SWEEPS, key, found, 512)
    return found


_SWEEPS: dict = {}


def weight_bits(items) -> tuple:
    """The weights of passes or sweeps (``wv``/``wh``) as bytes, for cache keys.

    Python's ``==`` takes a weight -0.0 for 0.0, but the emitted literal's sign decides the
    sign of an all-zero sum.
    """
    return tuple(struct.pack(f"{len(w)}d", *w) for p in items
                 for w in (getattr(p, "wv", None), getattr(p, "wh", None)) if w is not None)


def _sweep_of(passes, dtype, out_dtype, ndim, mode="reflect", cval=0.0):
    """:func:`sweep_of`, worked out.

    Covered, with at most :data:`MAX_TAPS` taps per axis: separable weights (``Sep2``) on
    float32/float64 data into the data's type, and on 8/16/32-bit integer data
    (:func:`integer_weights`); the float box (``Box2`` without clip: sums, scaled once);
    the running extremes of a box along the last two axes (``Extreme`` passes) of 32/64-bit
    data. 8/16-bit extremes have :mod:`.cuda_minmax` (and passes it does not take, the
    generated ones); the integer box has :mod:`.cuda_box`. ``mode`` and ``cval``: the call's
    (integer weights only).
    """
    from .._passes import Box2, Extreme, Sep2

    dtype = np.dtype(dtype)
    out_dtype = np.dtype(out_dtype)
    if not dtype.isnative or not out_dtype.isnative or not passes:
        return None
    sw = None
    if len(passes) == 1 and isinstance(passes[0], Sep2) and dtype.kind in "iu":
        sw = integer_weights(passes[0], dtype, out_dtype, mode, cval)
    elif out_dtype != dtype:
        return None
    elif len(passes) == 1 and isinstance(passes[0], (Box2, Sep2)):
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


def integer_weights(p, dtype, out_dtype, mode, cval):
    """The sweep of the ``Sep2`` pass ``p`` on 8/16/32-bit integer data, or None.

    Integer results are the CPU's bit for bit, the rounded sums of its float64 sweep: summed
    in float32 where :func:`stencilkit._passes.tie_bound` allows it (8/16-bit data: the
    Gaussian of 8-bit images), else in float64 (the device sums across first, the CPU down
    first), each sum near a tie summed again in the CPU's order (:class:`Sweep` ``check``).
    Float results (``output=np.float32`` of integer data) are float64 sums, to round-off.
    """
    from .cpu_lines.separable import UNROLL_MAX

    kv, kh = len(p.wv), len(p.wh)
    if dtype.itemsize > 4 or np.dtype(p.dtype) != out_dtype:
        return None
    if out_dtype in _SUM:
        check, acc = None, np.float64
    elif out_dtype.kind in "iu" and out_dtype.itemsize <= 4:
        info = np.iinfo(dtype)
        lo, hi = int(info.min), int(info.max)
        constant = mode == "constant"
        if constant:  # outside the array: cval (the CPU's float64)
            if not np.isfinite(cval):
                return None
            lo, hi = min(lo, cval), max(hi, cval)
        for acc in (np.float32, np.float64):  # every value summed must be exact in acc
            if acc == np.float32 and (dtype.itemsize > 2 or (
                    constant and float(np.float32(cval)) != float(cval))):
                continue
            bound = tie_bound(p.wv, p.wh, lo, hi, acc)
            if bound is not None:
                break
        else:
            return None
        check = (*bound, constant or max(kv, kh) > UNROLL_MAX)
    else:
        return None
    if not np.isfinite(np.asarray((*p.wv, *p.wh), acc)).all():
        return None
    return Sweep("sum", kv, p.lov, kh, p.loh, tuple(map(float, p.wv)),
                 tuple(map(float, p.wh)), acc=np.dtype(acc).name, check=check)


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


def module_for(sw: Sweep, dtype, idx64, out_dtype=None, rowmap=False, vec=False) -> SepModule:
    """The module of the sweep ``sw`` on ``dtype`` data (emitted once)."""
    out_dtype = np.dtype(out_dtype or dtype)
    key = (sw, weight_bits((sw,)), np.dtype(dtype).str, out_dtype.str, idx64, rowmap,
           REGISTERS, cuda_sweeps.FUSED, vec, FMA, AHEAD, AHEAD_TAPS, codegen_cpp.LINE_BYTES,
           LINES)
    mod = _MODULES.get(key)
    if mod is None:
        mod = _MODULES[key] = generate(dtype, sw, idx64=idx64, out_dtype=out_dtype,
                                       rowmap=rowmap, vec=vec)
    return mod


def aligned(sw: Sweep, dtype, n1, src) -> bool:
    """Whether rows of ``n1`` elements from the address ``src`` take vector loads.

    :data:`VECTOR_LOADS`, :func:`vector_ok` for the sweep's columns a thread, rows whole
    vectors, the first on a vector's boundary (the interior's threads start at column 0 of
    their window).
    """
    dtype = np.dtype(dtype)
    cols = columns_per_thread(sw.kv, sw.kh, np.dtype(sw.acc or dtype))
    size = cols * dtype.itemsize
    return (VECTOR_LOADS and vector_ok(cols, sw.kh, dtype.itemsize) and n1 % cols == 0
            and int(src) % size == 0)


def scalars(mod, shape, rows, c0, c1, mode, cval):
    """The launch's scalar arguments after the two arrays, typed as the kernel takes them."""
    ix = np.int64 if mod.idx64 else np.int32
    cval = cval if mode == "constant" else 0  # (ignored otherwise, and maybe NaN or huge)
    cv = np.float64 if mod.cval_ctype == "double" else mod.dtype.type
    cap = (np.uint64 if mod.idx64 else np.uint32)(tie_capacity(shape))
    return (*(ix(v) for v in (*shape, rows, c0, c1)), np.int32(modes.mode_code(mode)), cv(cval),
            *((cap,) if mod.ties else ()))


def run(x, sw, mode, cval, out=None, out_dtype=None):
    """The sweep ``sw`` over the last two axes of the device array ``x``, into ``out``.

    ``out``: a device array of ``x``'s shape and ``out_dtype`` (default: ``x``'s), or None:
    a new one of ``x``'s kind (CuPy or numba). Returns the result.
    """
    out_dtype = np.dtype(out_dtype or x.dtype)
    n1 = tuple(x.shape)[-1]
    return cuda_sweeps.run(
        x, out_dtype, lambda dtype, at, idx64: module_for(
            sw, dtype, idx64, out_dtype, cuda_sweeps.rows_mapped(mode),
            aligned(sw, dtype, n1, at[0])),
        lambda mod, shape, rows, c0, c1: scalars(mod, shape, rows, c0, c1, mode, cval), out,
        (mode, _dtypes.exact_key(cval)))
