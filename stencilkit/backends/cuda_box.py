"""The exact integer box over the last two axes as generated CUDA C++ (the ``Box2`` pass).

``uniform_filter`` of 8-, 16- and 32-bit integer images into an integer output, at a cost flat in
the window's height and small in its width, with the shape of the C++ path's stencils
(:mod:`stencilkit.codegen_cpp`, after ``shared/gpu/anchor_cpp.py``): each thread owns ``cols``
neighbouring output columns of a strip of rows, reads 8/16-bit rows as 32-bit words, and walks
down the strip keeping, in registers, the running sums down every column its windows touch (its
own and the halo's: add the row entering the window, subtract the row leaving it). Each output
is then a sum of ``lo1 + hi1 + 1`` column sums, slid along the thread's columns. Sums are exact
(32-bit where the window's sum provably fits, 64-bit otherwise), divided once, rounded to the
nearest (ties to even) and saturated, so results equal the CPU's line kernels bit for bit.

Two parts per module, in one launch (``sk_box_fused``) or two (:data:`.cuda_sweeps.FUSED`):
the interior (no boundary logic: strips whose rows and words are
all inside the array) and the border (every other output: short strips down single
columns, with running sums over the window's columns read through the mode's index map). The
window, divisor and clip limits are compile-time constants, so the division is a multiply.
Plain C++ for NVRTC and for g++ (``-DSK_HOST``: the tests run every launch on the CPU, thread by
thread).

Measured on an NVIDIA H200 (``tools/gpu_profile.py``, CUDA events): ``uniform_filter(x, 15)`` of
a uint8 8192^2 image 0.30-0.31 ms (the numba.cuda ``box2`` before it: 2.08 ms; cupyx 3.35 ms),
of which the interior kernel 0.13-0.17 ms: bound by its integer arithmetic (byte lanes,
running sums, the rounding), not by memory: about 271 instructions a thread per row of 8
outputs (SASS, sm_90), and 32-bit integer instructions issue at half the rate of float ones.
Since (not yet timed on a GPU): the interior rounds its sums, which hold data only, with one
unsigned division by the constant (``sk_box_in``), and 8-bit data keeps two column sums per
register (16-bit halves, one add per pair of lanes): 155 instructions per row of 8 outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _cpp_body, _dtypes, codegen_cpp, modes
from . import cuda_sweeps

UNITS = 2
"""32-bit words (or elements, for unaligned rows and 32-bit data) each thread owns per row:
two words of 8-bit data are 8 outputs per thread, which spreads the halo's reads and running
sums over more outputs than one word does. Four were slower on an H100 (2026-11-27,
``tools/gpu_profile.py``, uint8 8192^2: 15 x 15 0.180 ms against 0.168, 3 x 3 0.185 against
0.136), though by the SASS (ptxas 12, sm_90) they take 12.6 instructions an output against
17.1 at the same 56 registers: the interior waits on memory (fewer blocks an SM slow it down:
the profile's "blocks an SM" rows), it does not run out of instructions."""

BLOCK = (64, 4, 1)
"""Threads per block of the interior kernel (the word stencils' shape)."""

@dataclass(frozen=True)
class BoxModule:
    """An emitted box module and what launching it needs."""

    source: str
    in_dtype: np.dtype
    out_dtype: np.dtype
    lo0: int
    hi0: int
    lo1: int
    hi1: int
    per: int      # elements per unit read (4: 8-bit words, 2: 16-bit words, 1: elements)
    ul: int       # the first unit a thread reads, relative to its own first unit
    ur: int       # the last
    idx64: bool
    rowmap: bool = False  # the interior maps rows through the mode: it covers every row
    fused: bool = False  # the border in the interior's launch (cuda_sweeps.FUSED)
    units: int = UNITS  # words (or elements) a thread owns per row: :data:`UNITS` when emitted
    line: int = 1  # units per line of the interior kernel, as emitted (cuda_sweeps.unit_line)

    @property
    def kernels(self) -> tuple:
        """The kernel names the module defines."""
        return cuda_sweeps.kernel_names("sk_box", self.fused)

    def launches(self, shape, rows=None):
        """``[(kernel, grid, block, (rows, k0, k1))]`` for a ``(B, n0, n1)`` array.

        ``k0``/``k1``: the units whose threads run the interior kernel (``k1 - k0`` a
        multiple of :attr:`units`); ``rows``: force the strip length (host tests).
        """
        k0, threads, lead = cuda_sweeps.interior_units(shape[2], self.per, self.ul, self.ur,
                                                       self.units, self.line)
        lo0, hi0 = (0, 0) if self.rowmap else (self.lo0, self.hi0)
        return cuda_sweeps.plan("sk_box", shape, lo0, hi0, threads,
                                self.per * self.units * threads,
                                (k0, k0 + self.units * threads), BLOCK,
                                rows, self.fused, self.lo0 + self.hi0, lead)


def _acc(in_dtype, cells):
    """The sums' type: 32-bit where ``cells`` values of ``in_dtype`` provably fit."""
    if np.dtype(in_dtype).kind == "b":
        return "sk_i32" if cells < 2**31 else "sk_i64"
    info = np.iinfo(in_dtype)
    return "sk_i32" if cells * max(abs(info.min), info.max) < 2**31 else "sk_i64"


def generate(in_dtype, out_dtype, lo0, hi0, lo1, hi1, divisor, clip, *, words: bool,
             idx64: bool, rowmap: bool = False) -> BoxModule:
    """Emit the module of one window, divisor, clip range and pair of dtypes.

    ``words``: read 8/16-bit rows as 32-bit words (rows must start on 4-byte boundaries and
    hold a whole number of words); otherwise element by element. ``rowmap``: the interior
    kernel maps its rows through the mode (any mode but ``constant``), so it covers the top
    and bottom rows too and the border kernel only the columns at either end.
    """
    in_dtype, out_dtype = np.dtype(in_dtype), np.dtype(out_dtype)
    per = 4 // in_dtype.itemsize if words and in_dtype.itemsize < 4 else 1
    cols = per * UNITS
    line = cuda_sweeps.unit_line(per, (in_dtype, out_dtype), UNITS)  # (the threads' first line)
    ul = (-lo1) // per  # floor(-lo1 / per)
    ur = (cols - 1 + hi1) // per
    acc = _acc(in_dtype, (lo0 + hi0 + 1) * (lo1 + hi1 + 1))
    ix = "sk_i64" if idx64 else "sk_i32"
    tc, oc = codegen_cpp._ctype_of(in_dtype), codegen_cpp._ctype_of(out_dtype)
    acc_min, acc_max = (-2**31, 2**31 - 1) if acc == "sk_i32" else (-2**63, 2**63 - 1)
    clo, chi = max(clip[0], acc_min), min(clip[1], acc_max)
    unit = "sk_u32" if per > 1 else tc
    lane = codegen_cpp._lane_fn(in_dtype) if per > 1 else None
    word_out = out_dtype.itemsize * cols == 4 * UNITS and per > 1
    lit = f"(({acc}){divisor}LL)"
    (top, bottom), rmap = cuda_sweeps.row_reads(lo0, hi0, rowmap)

    def each_unit(pad, loads, term):
        """Lines adding ``term`` of each unit's lanes to the column sums.

        ``loads``: ``(variable, row pointer)`` pairs read per unit; ``term``: the lanes'
        values (one per variable) -> the C++ term added.
        """
        out = []
        for u in range(ul, ur + 1):
            out.append(pad + "{ " + " ".join(f"const {unit} {v} = {ptr}[{u}];"
                                             for v, ptr in loads))
            for q in range(per):
                vals = [f"{lane}({v}, {q})" if lane else f"(({acc}){v})" for v, _ in loads]
                out.append(f"{pad}  cs{per * (u - ul) + q} += {term(*vals)};")
            out.append(pad + "}")
        return out

    def each_pair(pad, add, sub):
        """Lines adding each word of the row ``add`` (less the row ``sub``) to the pairs.

        Even lanes by a mask, odd ones by a byte permutation (one ``PRMT``: bytes 1 and 3
        into the halves' low bytes).
        """
        flip = " ^ 0x80808080u" if bias else ""
        out = []
        for u in range(ul, ur + 1):
            e, o = 2 * (u - ul), 2 * (u - ul) + 1
            out.append(f"{pad}{{ const sk_u32 a = {add}[{u}]{flip};"
                       + (f" const sk_u32 s = {sub}[{u}]{flip};" if sub else ""))
            for c, lanes in ((e, "({} & 0x00ff00ffu)"), (o, "sk_byte_perm({}, 0u, 0x4341u)")):
                term = lanes.format("a") + (" - " + lanes.format("s") if sub else "")
                out.append(f"{pad}  cp{c} += {term};")
            out.append(pad + "}")
        return out

    ncs = per * (ur - ul + 1)   # running column sums: columns per * (k + ul) + t
    # 8-bit words: two column sums per 32-bit register, in its 16-bit halves (``cp{2u}``:
    # columns 4u and 4u+2, ``cp{2u+1}``: 4u+1 and 4u+3), where a column of the window holds
    # at most 65535: a word's lanes go in with a mask or a byte permutation, one add per
    # pair. int8 lanes are biased by 128 (the sign bit flipped): the halves never go negative.
    packed = per == 4 and (lo0 + hi0 + 1) * 255 <= 0xffff
    bias = 128 if packed and in_dtype.kind == "i" else 0
    params = (f"const {tc}* __restrict__ src, {oc}* __restrict__ dst, {ix} B, {ix} n0, "
              f"{ix} n1, {ix} rows, {ix} k0, {ix} k1, int mode, {acc} cval")
    names = "src, dst, B, n0, n1, rows, k0, k1, mode, cval"
    L = [f"// stencilkit box {lo0 + hi0 + 1} x {lo1 + hi1 + 1} ({in_dtype} -> {out_dtype}), "
         f"divisor {divisor}, {cols} outputs per thread",
         codegen_cpp.PRELUDE, f"typedef {ix} sk_idx;", codegen_cpp._map_source(ix),
         f"// the integer nearest s / {divisor}, ties to even, saturated to [{clo}, {chi}]",
         f"SK_FN {oc} sk_box_out({acc} s) {{",
         f"  {acc} q = s / {lit}; {acc} r = s - q * {lit};",
         f"  if (r < 0) {{ q -= 1; r += {lit}; }}",
         f"  if (2 * r > {lit} || (2 * r == {lit} && (q & 1))) q += 1;",
         f"  if (q < ({acc}){clo}LL) q = ({acc}){clo}LL;",
         f"  if (q > ({acc}){chi}LL) q = ({acc}){chi}LL;",
         f"  return ({oc})q;", "}", "",
         *_interior_out(in_dtype, oc, acc, lo0, hi0, lo1, hi1, divisor, clo, chi, bias)]
    # -- the interior kernel
    L += ["// the interior: strips of whole rows, the thread's units and halo inside the rows",
          *cuda_sweeps.interior_head("sk_box", params, ix, UNITS, top, bottom, per,
                                     unit, oc, line),
          "    " + (" ".join(f"sk_u32 cp{t} = 0;" for t in range(ncs // 2)) if packed else
                    " ".join(f"{acc} cs{t} = 0;" for t in range(ncs))),
          f"    for ({ix} r = lo - {lo0}; r <= lo + {hi0}; ++r) {{",
          f"      const {unit}* __restrict__ row = plane + {rmap('r')} * nu;",
          *(each_pair("      ", "row", None) if packed else
            each_unit("      ", [("v", "row")], lambda v: v)),
          "    }",
          f"    for ({ix} i = lo; i < hi; ++i) {{"]
    if packed:  # the column sums the outputs need, out of their halves
        L += [f"      const {acc} cs{4 * u + 2 * half + odd} = ({acc})("
              + (f"cp{2 * u + odd} & 0xffffu);" if half == 0 else f"cp{2 * u + odd} >> 16);")
              for u in range(ncs // 4) for odd in (0, 1) for half in (0, 1)]
    # outputs: column c = per * k + o sums column sums t = o + per*(-ul) - lo1 ... + hi1
    base = -per * ul
    first = [f"cs{base - lo1 + t}" for t in range(lo1 + hi1 + 1)]
    L.append(f"      {acc} h = " + " + ".join(first) + ";")
    for o in range(cols):
        if o:
            L.append(f"      h += cs{base + o + hi1} - cs{base + o - 1 - lo1};")
        L.append(f"      const {oc} o{o} = sk_box_in(h);")
    if word_out:
        bits = 8 * out_dtype.itemsize
        mask = "0xffu" if bits == 8 else "0xffffu"
        opw = 4 // out_dtype.itemsize
        for w in range(cols // opw):
            parts = [f"(((sk_u32)o{w * opw + i} & {mask}) << {bits * i})" for i in range(opw)]
            L.append(f"      ((sk_u32*)op)[{w}] = " + " | ".join(parts) + ";")
    else:
        L += [f"      op[{o}] = o{o};" for o in range(cols)]
    L += ["      if (i + 1 < hi) {  // the window moves down a row",
          f"        const {unit}* __restrict__ add = plane + {rmap(f'i + {1 + hi0}')} * nu;",
          f"        const {unit}* __restrict__ sub = plane + {rmap(f'i - {lo0}')} * nu;",
          *(each_pair("        ", "add", "sub") if packed else
            each_unit("        ", [("a", "add"), ("s", "sub")], lambda a, s: f"{a} - {s}")),
          "      }", "      op += n1;", "    }", "  }", "}", ""]
    # -- the border kernel
    w = lo1 + hi1 + 1
    cs = [f"cs{t}" for t in range(w)]
    L += ["// everything else, as running sums down short column strips through the mode's index",
          "// map (-1: cval): the top and bottom rows (a strip per column), and the columns at",
          f"// either end of the other rows (strips of up to {cuda_sweeps.BORDER_ROWS} rows)",
          f"#define SK_RD(rr, cc) ((rr) < 0 || (cc) < 0 ? cval : ({acc})plane[(rr) * n1 + (cc)])",
          cuda_sweeps.border_open("sk_box", params, ix),
          *cuda_sweeps.border_strips(ix, top, bottom, f"{per} * k0", f"{per} * k1"),
          f"    const {tc}* __restrict__ plane = src + b * n0 * n1;",
          *(f"    const {ix} m{t} = sk_map(j + ({t - lo1}), n1, mode);" for t in range(w)),
          "    " + " ".join(f"{acc} {c} = 0;" for c in cs),
          f"    for ({ix} r = r0 - {lo0}; r <= r0 + {hi0}; ++r) {{",
          f"      const {ix} rr = sk_map(r, n0, mode);",
          *(f"      {c} += SK_RD(rr, m{t});" for t, c in enumerate(cs)),
          "    }",
          f"    {oc}* __restrict__ op = dst + b * n0 * n1 + j;",
          f"    for ({ix} i = r0; i < r1; ++i) {{",
          "      op[i * n1] = sk_box_out(" + " + ".join(cs) + ");",
          "      if (i + 1 < r1) {",
          f"        const {ix} ra = sk_map(i + {1 + hi0}, n0, mode), rs = sk_map(i - {lo0}, n0, "
          "mode);",
          *(f"        {c} += SK_RD(ra, m{t}) - SK_RD(rs, m{t});" for t, c in enumerate(cs)),
          "      }",
          "    }",
          "  }",
          "}",
          "#undef SK_RD", ""]
    fused = cuda_sweeps.FUSED
    kernels = cuda_sweeps.kernel_names("sk_box", fused)
    L += cuda_sweeps.entries("sk_box", params, names, ix, fused, top + bottom)
    L.append(codegen_cpp.host_launchers(kernels, params, names))
    return BoxModule("\n".join(L) + "\n", in_dtype, out_dtype, lo0, hi0, lo1, hi1, per, ul, ur,
                     idx64, rowmap, fused, UNITS, line)


def _nearest(s, d):
    """The integer nearest ``s / d`` (``d > 0``), ties to even, exactly."""
    q, r = divmod(s, d)
    return q + (2 * r > d or (2 * r == d and q % 2 == 1))


def _interior_out(in_dtype, oc, acc, lo0, hi0, lo1, hi1, divisor, clo, chi, bias):
    """``sk_box_in``: ``sk_box_out`` for the interior kernel's sums, which hold data only.

    Its sums (less ``bias`` per element, the packed int8 lanes' offset) lie between the
    window's count times the dtype's least and greatest values, so they shift by a multiple
    ``K`` of the divisor to be non-negative: the nearest integer is then one unsigned
    division by the constant (a multiply) of the sum plus half the divisor, less ``K``, with
    a correction for ties only where the divisor is even, and clamps only where the means can
    leave ``[clo, chi]``. The same integers as ``sk_box_out``.
    """
    lo, hi = (0, 1) if in_dtype.kind == "b" else (int(np.iinfo(in_dtype).min),
                                                  int(np.iinfo(in_dtype).max))
    cells = (lo0 + hi0 + 1) * (lo1 + hi1 + 1)
    smin, smax, d = cells * lo, cells * hi, int(divisor)
    k = max(0, -(smin // d))  # s + k * d >= 0
    top = smax + k * d + d // 2
    wide, u = ("sk_i64", "sk_u64") if top >= 2**31 else ("sk_i32", "sk_u32")
    if top >= 2**63:
        return [f"SK_FN {oc} sk_box_in({acc} h) {{ return sk_box_out(h - ({acc}){bias * cells}"
                "LL); }"]
    c = k * d + d // 2 - bias * cells
    lines = [f"// the interior's sums: s = h - {bias * cells} in [{smin}, {smax}]",
             f"SK_FN {oc} sk_box_in({acc} h) {{",
             f"  const {u} t = ({u})(({wide})h + ({wide})({c}LL));",
             f"  {u} q = {_cpp_body.udiv('t', top, d, u)};"]
    if d % 2 == 0:  # a tie rounded up: back to the even one
        lines.append(f"  if (t == q * ({u}){d}u && ((q ^ ({u}){k}u) & 1u)) q -= 1;")
    lines.append(f"  {wide} v = ({wide})q - ({wide}){k};")
    if _nearest(smin, d) < clo:
        lines.append(f"  if (v < ({wide}){clo}LL) v = ({wide}){clo}LL;")
    if _nearest(smax, d) > chi:
        lines.append(f"  if (v > ({wide}){chi}LL) v = ({wide}){chi}LL;")
    return lines + [f"  return ({oc})v;", "}", ""]


def fits(p, dtype) -> bool:
    """Whether the pass ``p`` (a ``Box2``) runs here on data of ``dtype``.

    Integer data into an integer result (the exact box) with at most 64 running sums per
    thread (registers).
    """
    dtype = np.dtype(dtype)
    if p.clip is None or dtype.kind not in "biu" or dtype.itemsize > 4:
        return False
    if dtype == np.uint32 and (p.lo0 + p.hi0 + 1) * (p.lo1 + p.hi1 + 1) * 2**32 >= 2**63:
        return False
    return p.lo1 + p.hi1 + 4 * UNITS <= 64


_MODULES: dict = {}


def module_for(p, in_dtype, words, idx64, rowmap=False) -> BoxModule:
    """The module of the pass ``p`` (a ``Box2``) on ``in_dtype`` data (emitted once)."""
    key = (p.lo0, p.hi0, p.lo1, p.hi1, p.divisor, np.dtype(p.dtype).str, tuple(p.clip),
           np.dtype(in_dtype).str, words, idx64, UNITS, rowmap, cuda_sweeps.FUSED,
           codegen_cpp.LINE_BYTES)
    mod = _MODULES.get(key)
    if mod is None:
        mod = _MODULES[key] = generate(in_dtype, p.dtype, p.lo0, p.hi0, p.lo1, p.hi1,
                                       p.divisor, p.clip, words=words, idx64=idx64,
                                       rowmap=rowmap)
    return mod


def words_ok(dtype, n1, *ptrs) -> bool:
    """Rows of 8/16-bit data that start on 4-byte boundaries and hold whole words.

    ``ptrs``: the addresses of the arrays' first elements (input and output: the word kernel
    reads and, for outputs of the input's size, writes whole words).
    """
    dtype = np.dtype(dtype)
    return dtype.itemsize < 4 and (n1 * dtype.itemsize) % 4 == 0 and \
        all(int(ptr) % 4 == 0 for ptr in ptrs)


def scalars(mod, shape, rows, k0, k1, mode, cval):
    """The launch's scalar arguments after the two arrays, typed as the kernel takes them."""
    ix = np.int64 if mod.idx64 else np.int32
    acc = np.int32 if _acc(mod.in_dtype, (mod.lo0 + mod.hi0 + 1) *
                           (mod.lo1 + mod.hi1 + 1)) == "sk_i32" else np.int64
    cval = cval if mode == "constant" else 0  # (ignored otherwise, and maybe NaN or huge)
    return (*(ix(v) for v in (*shape, rows, k0, k1)), np.int32(modes.mode_code(mode)),
            acc(int(cval)))


def run(x, p, mode, cval, out=None):
    """The ``Box2`` pass ``p`` over the last two axes of the device array ``x``, into ``out``.

    ``out``: a device array of ``x``'s shape and ``p.dtype``, or None: a new one of ``x``'s
    kind (CuPy or numba). Returns the result.
    """
    n1 = tuple(x.shape)[-1]
    return cuda_sweeps.run(
        x, p.dtype,
        lambda dtype, at, idx64: module_for(p, dtype, words_ok(dtype, n1, *at), idx64,
                                            cuda_sweeps.rows_mapped(mode)),
        lambda mod, shape, rows, k0, k1: scalars(mod, shape, rows, k0, k1, mode, cval), out,
        (mode, _dtypes.exact_key(cval)))
