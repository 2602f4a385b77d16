"""Small medians as generated CUDA C++ (``median_filter`` up to 49 elements).

Two families, chosen by :meth:`stencilkit.backends.cuda.CudaBackend.rank_kernel`:
``sk_med3`` (3 x 3 boxes of any integer dtype, float32 and float64: sorted columns, below) and
``sk_net2x`` (any
window over the last two axes of 8/16-bit data: the CPU's sorting network, Batcher's odd-even
merge sort pruned to the middle rank, run on two outputs at a time in the 16-bit halves of
32-bit registers, ``__vminu2``/``__vmaxu2``; SASS for 5 x 5, sm_90: 197 minima and maxima per
pair of outputs against 202 per output in the generated stencil; 7 x 7 windows take about 115
registers, no spills). Other dtypes and windows keep the generated sorting network of the
filters' stencils.

The median of nine values is ``med3(the greatest column minimum, the median of the column
medians, the least column maximum)`` of the window's three sorted columns (the identity behind
the classic hardware and SIMD 3 x 3 median filters, e.g. J. L. Smith, "Implementing median
filters in XC4000E FPGAs", Xilinx Xcell 23, 1996). A column, once sorted (6 minimum/maximum
operations), serves the three outputs whose windows hold it, and each output then takes 12
more: about 20 operations an output, where the generated sorting network (the filters' other
route, :func:`stencilkit._passes.rank_source`) takes about 40. 8-bit data go two columns
at a time through 16x2 SIMD minima and maxima (``__vminu2``: one instruction on sm_90). SASS of
the 8-bit interior (sm_90): about 16 instructions an output, against 55 for the network. The
median of integers is one value whichever way it is found, so results equal the CPU's bit for
bit. Floats too, but for the network's choices among signed zeros and NaNs: an output whose
window holds a NaN or whose median is zero is the CPU's network's, run on its nine values
(:func:`generate`). Timed on an H200 (``tools/gpu_profile.py``, 8192^2 uint8): 0.15 ms a call
(the generated network: 0.35-0.48); on an H100 (2026-11-27) 0.119 ms for uint8, 0.343 ms for
float32 (0.55 of a copy; the network on an H200: 0.95 ms).

The kernels have the box's shape (:mod:`.cuda_box`, after ``shared/gpu/anchor_cpp.py``):
the interior (strips of rows, each thread whole 32-bit words of 8/16-bit data, rows
through the mode's index map for every mode but ``constant``; ``sk_med3`` keeps three rows
in registers, ``sk_net2x`` reads its rows each step) and the border (the columns at
either end, and the top and bottom rows for ``constant``: each output's window through the
index map), in one launch or two (:data:`.cuda_sweeps.FUSED`). Plain C++ for NVRTC and for
g++ (``-DSK_HOST``: the tests run every launch on the CPU, thread by thread).
"""

from __future__ import annotations

import functools

import numpy as np

from .. import _dtypes, codegen_cpp, modes
from . import cuda_sweeps

UNITS = 2
"""8-bit words each thread owns per row (16-bit rows: twice as many words, as many output
pairs, as cuda_sweeps.Pairs has it; unaligned rows and 32/64-bit data: elements). Four gave
the same time on an H100 (2026-11-27, ``tools/gpu_profile.py``: the 3 x 3 uint8 median of
8192^2, 0.119 ms either way), at 63 registers against 48."""


@functools.lru_cache(maxsize=256)
def fits(footprint, dtype, out_dtype, ndim, rank=4) -> bool:
    """Whether ``sk_med3`` takes the element of ``rank`` over ``footprint`` of ``dtype`` data.

    ``footprint``: full rank, nested tuples of bools (hashable: the answer is remembered).
    A 3 x 3 box over the last two axes of integer, bool, float32 or float64 data, into
    ``out_dtype`` the data's dtype, and its median (rank 4): the sorted columns find no other.
    """
    fp = np.asarray(footprint, bool)
    dtype = np.dtype(dtype)
    return (rank == 4 and ndim >= 2 and fp.ndim == ndim and fp.shape[-2:] == (3, 3)
            and bool(fp.all()) and all(s == 1 for s in fp.shape[:-2])
            and (dtype.kind in "biu" or dtype in (np.float32, np.float64))
            and np.dtype(out_dtype) == dtype)


def generate(dtype, lo0, lo1, *, words: bool, idx64: bool, rowmap: bool) -> cuda_sweeps.UnitsModule:
    """Emit the ``sk_med3`` module of one dtype and window start.

    The 3 x 3 box starts ``lo0`` rows and ``lo1`` columns before each output (1, 1: centred).
    ``words``: read 8/16-bit rows as 32-bit words (rows on 4-byte boundaries, whole words);
    ``rowmap``: the interior maps its rows through the mode (every mode but ``constant``).

    Floats: the sorted columns find the median's value where the window holds no NaN, and
    values that compare equal have the same bits unless they are zeros; so an output whose
    window holds a NaN, or whose median is zero (+0.0 or -0.0: the CPU's network picks one),
    is the CPU's network's (:func:`_network`, NumPy's minimum and maximum, the window's values
    in the CPU's order): bit for bit the CPU's either way.
    """
    dtype = np.dtype(dtype)
    hi0, hi1 = 2 - lo0, 2 - lo1
    # 8/16-bit words: the rows' values two to a register in 16-bit halves (cuda_sweeps.Pairs:
    # 8-bit words as pairs of columns two apart, 16-bit words as they are), sorted and combined
    # two at a time by 16x2 SIMD minima and maxima (one VIMNMX.U16x2 each on sm_90); signed
    # lanes biased (the sign bit flipped), so that their order is the unsigned one
    simd = words and dtype.itemsize < 4
    pairs = cuda_sweeps.Pairs(dtype, lo1, hi1, UNITS) if simd else None
    per = pairs.per if simd else 1
    units = pairs.units if simd else UNITS
    line = cuda_sweeps.unit_line(per, (dtype,), units)  # (the threads' first line)
    cols = per * units
    ul = (-lo1) // per
    ur = (cols - 1 + hi1) // per
    base = -per * ul             # output o's window: columns base + o - lo1 .. base + o + hi1
    ix = "sk_i64" if idx64 else "sk_i32"
    tc = codegen_cpp._ctype_of(dtype)
    v = "sk_i32" if dtype.itemsize < 4 else tc  # the values' type (8/16-bit: as int)
    unit = "sk_u32" if simd else tc
    (top, bottom), rmap = cuda_sweeps.row_reads(lo0, hi0, rowmap)

    def load(ring, ptr, pad):
        """Lines setting ``{ring}{t}`` to the row ``ptr``'s values, every column held."""
        if simd:
            return pairs.load(ring, ptr, pad, declare=False)
        return [f"{pad}{ring}{u - ul} = ({v}){ptr}[{u}];" for u in range(ul, ur + 1)]

    def take(ring, row, pad):
        """Lines setting ``{ring}{t}`` to the row ``row``'s values (the C++ row ``i + k``)."""
        return [f"{pad}{{ const {unit}* __restrict__ row = plane + {rmap(row)} * nu;",
                *load(ring, "row", pad + "  "), f"{pad}}}"]

    def outputs_pairs(rings, pad):
        """:func:`outputs` over pairs of outputs (``Pairs.outputs``).

        From pairs of columns (one straddling two registers: a byte permutation).
        """
        a, b, c = rings
        lines = [f"{pad}sk_sort2x({a}{t}, {b}{t}, {c}{t}, cl{t}, cm{t}, ch{t});"
                 for t in range(pairs.registers)]
        for o in pairs.outputs():
            cs = [o - lo1 + d for d in range(3)]
            args = ", ".join(pairs.pair(x, col) for x in ("cl", "cm", "ch") for col in cs)
            lines.append(f"{pad}const sk_u32 p{o} = sk_out2x({args});")
        return lines + pairs.store(lambda o: f"p{o}", pad)

    flt = dtype.kind == "f"

    def checked(o, window, nans, pad):
        """Floats: the line giving the output ``o`` the network's value where it must."""
        if not flt:
            return []
        return [f"{pad}if ({' || '.join(nans)} || {o} == ({v})0) {o} = sk_fnet({window});"]

    def outputs(rings, pad):
        """Lines storing the thread's outputs of one row, from the rows ``rings``.

        The held columns of the three rows (top to bottom) are sorted first.
        """
        if simd:
            return outputs_pairs(rings, pad)
        a, b, c = rings
        lines = []
        first, last = base - lo1, base + cols - 1 + hi1  # the columns the outputs read
        for t in range(first, last + 1):
            lines.append(f"{pad}sk_med3_sort({a}{t}, {b}{t}, {c}{t}, cl{t}, cm{t}, ch{t});")
            if flt:  # (a NaN anywhere in the column)
                lines.append(f"{pad}const bool nn{t} = {a}{t} != {a}{t} || {b}{t} != {b}{t} "
                             f"|| {c}{t} != {c}{t};")
        for o in range(cols):
            t = base + o - lo1
            lines.append(f"{pad}{v} o{o} = sk_med3_out(cl{t}, cl{t + 1}, cl{t + 2}, "
                         f"cm{t}, cm{t + 1}, cm{t + 2}, ch{t}, ch{t + 1}, ch{t + 2});")
            window = ", ".join(f"{r}{t + d}" for r in (a, b, c) for d in range(3))
            lines += checked(f"o{o}", window, [f"nn{t + d}" for d in range(3)], pad)
        return lines + [f"{pad}op[{o}] = ({tc})o{o};" for o in range(cols)]

    params = (f"const {tc}* __restrict__ src, {tc}* __restrict__ dst, {ix} B, {ix} n0, "
              f"{ix} n1, {ix} rows, {ix} k0, {ix} k1, int mode, {v} cval")
    names = "src, dst, B, n0, n1, rows, k0, k1, mode, cval"
    held = range(pairs.registers if simd else ur - ul + 1)
    rv = "sk_u32" if simd else v  # the held registers' type
    L = [f"// stencilkit 3 x 3 median ({dtype}), window from ({-lo0}, {-lo1}), {cols} outputs "
         "per thread",
         codegen_cpp.PRELUDE, f"typedef {ix} sk_idx;", codegen_cpp._map_source(ix),
         f"SK_FN {v} sk_mn({v} a, {v} b) {{ return b < a ? b : a; }}",
         f"SK_FN {v} sk_mx({v} a, {v} b) {{ return b > a ? b : a; }}",
         "// x, y, z sorted into lo <= md <= hi (6 operations)",
         f"SK_FN void sk_med3_sort({v} x, {v} y, {v} z, {v}& lo, {v}& md, {v}& hi) {{",
         f"  const {v} a = sk_mn(x, y), b = sk_mx(x, y), t = sk_mx(a, z);",
         "  lo = sk_mn(a, z); md = sk_mn(b, t); hi = sk_mx(b, t);",
         "}",
         f"SK_FN {v} sk_med3_of({v} a, {v} b, {v} c) {{ return sk_mx(sk_mn(a, b), "
         "sk_mn(sk_mx(a, b), c)); }",
         "// the median of a window from its three sorted columns",
         f"SK_FN {v} sk_med3_out({v} l0, {v} l1, {v} l2, {v} m0, {v} m1, {v} m2, {v} h0, "
         f"{v} h1, {v} h2) {{",
         "  return sk_med3_of(sk_mx(sk_mx(l0, l1), l2), sk_med3_of(m0, m1, m2), "
         "sk_mn(sk_mn(h0, h1), h2));",
         "}", "",
         *(["// floats: the CPU's network, for windows with a NaN and medians of zero",
            *_network("sk_fnet", v, "sk_np_min", "sk_np_max", 9, 4)] if flt else []),
         *(_SIMD if simd else []),
         "// the interior: strips of whole rows, the thread's units and halo inside the rows",
         *cuda_sweeps.interior_head("sk_med3", params, ix, units, top, bottom, per,
                                    unit, tc, line),
         "    " + " ".join(f"{rv} ra{t}, rb{t}, rc{t};" for t in held),
         "    " + " ".join(f"{rv} cl{t}, cm{t}, ch{t};" for t in held),
         f"    {{ const {unit}* __restrict__ row = plane + {rmap(f'lo - {lo0}')} * nu;",
         *load("ra", "row", "      "), "    }",
         f"    {{ const {unit}* __restrict__ row = plane + {rmap(f'lo - {lo0} + 1')} * nu;",
         *load("rb", "row", "      "), "    }",
         f"    {ix} i = lo;",
         "    // three rows a step, the rows' registers taking turns (no moves)",
         "    for (; i + 3 <= hi; i += 3) {"]
    rings = ["ra", "rb", "rc"]
    for step in range(3):
        new = rings[(step + 2) % 3]
        L += ["      {", *take(new, f"i + {step + hi0}", "        "),
              *outputs([rings[step % 3], rings[(step + 1) % 3], new], "        "),
              "        op += n1;", "      }"]
    L += ["    }",
          "    for (; i < hi; ++i) {  // the rows left: one a step, the registers moved",
          *take("rc", f"i + {hi0}", "      "),
          "      {", *outputs(rings, "        "), "      }",
          "      " + " ".join(f"ra{t} = rb{t}; rb{t} = rc{t};" for t in held),
          "      op += n1;",
          "    }", "  }", "}", ""]
    # -- the border kernel
    L += ["// everything else, nine reads through the mode's index map (-1: cval) per output:",
          "// the columns at either end of the rows (strips of "
          f"up to {cuda_sweeps.BORDER_ROWS} rows), and for constant the top and bottom rows",
          f"#define SK_RD(rr, cc) ((rr) < 0 || (cc) < 0 ? cval : ({v})plane[(rr) * n1 + (cc)])",
          cuda_sweeps.border_open("sk_med3", params, ix),
          *cuda_sweeps.border_strips(ix, top, bottom, f"{per} * k0", f"{per} * k1"),
          f"    const {tc}* __restrict__ plane = src + b * n0 * n1;",
          *(f"    const {ix} m{t} = sk_map(j + ({t - lo1}), n1, mode);" for t in range(3)),
          f"    for ({ix} i = r0; i < r1; ++i) {{",
          *(f"      const {ix} q{s} = sk_map(i + ({s - lo0}), n0, mode);" for s in range(3)),
          f"      const {v} " + ", ".join(f"w{3 * s + t} = SK_RD(q{s}, m{t})" for s in range(3)
                                      for t in range(3)) + ";",
          f"      {v} " + ", ".join(f"l{t}, d{t}, h{t}" for t in range(3)) + ";",
          *(f"      sk_med3_sort(w{t}, w{3 + t}, w{6 + t}, l{t}, d{t}, h{t});" for t in range(3)),
          f"      {v} o = sk_med3_out(l0, l1, l2, d0, d1, d2, h0, h1, h2);",
          *checked("o", ", ".join(f"w{k}" for k in range(9)),
                   [f"w{k} != w{k}" for k in range(9)], "      "),
          f"      dst[b * n0 * n1 + i * n1 + j] = ({tc})o;",
          "    }",
          "  }",
          "}",
          "#undef SK_RD", ""]
    return cuda_sweeps.units_module(L, "sk_med3", dtype, lo0, hi0, per, ul, ur, units, idx64,
                                    rowmap, params, names, fused=None, line=line)


NET_UNITS = 1
"""32-bit words of outputs per thread of the network kernel (4 outputs: its window's rows of
words and the networks of two output pairs stay in registers)."""


@functools.lru_cache(maxsize=256)
def network_fits(footprint, dtype, out_dtype, ndim) -> bool:
    """Whether ``sk_net2x`` takes a median over ``footprint`` of ``dtype`` data.

    8/16-bit integers or bools, a window over the last two axes of at most
    ``_passes.MEDIAN_MAX`` elements, the result in the data's dtype (rows as words: checked
    by :func:`run_network`).
    """
    from .._passes import MEDIAN_MAX

    fp = np.asarray(footprint, bool)
    dtype = np.dtype(dtype)
    return (ndim >= 2 and fp.ndim == ndim and all(s == 1 for s in fp.shape[:-2])
            and dtype.kind in "biu" and dtype.itemsize <= 2 and np.dtype(out_dtype) == dtype
            and 0 < int(fp.sum()) <= MEDIAN_MAX)


def _network(name, vt, vmin, vmax, n, rank):
    """A function returning the ``rank``-th smallest of its ``n`` arguments.

    Batcher's odd-even merge sort (the CPU's network, :func:`stencilkit._passes.batcher_pairs`),
    whose unused minima and maxima the compiler drops.
    """
    from .._passes import batcher_pairs

    args = ", ".join(f"{vt} v{i}" for i in range(n))
    lines = [f"SK_FN {vt} {name}({args}) {{"]
    for a, b in batcher_pairs(n):
        lines.append(f"  {{ const {vt} t = {vmin}(v{a}, v{b}); v{b} = {vmax}(v{a}, v{b}); "
                     f"v{a} = t; }}")
    return lines + [f"  return v{rank};", "}", ""]


def generate_network(dtype, cells, rank, lo0, lo1, *, idx64: bool, rowmap: bool):
    """Emit the ``sk_net2x`` module of a window of 8/16-bit data.

    ``cells``: the window's elements' ``(row, column)`` within it (it starts ``lo0`` rows and
    ``lo1`` columns before each output); ``rank``: the rank returned (the median:
    ``len(cells) // 2``).

    The interior reads its rows as words, their values two to a register
    (:class:`.cuda_sweeps.Pairs`), and runs the sorting network on pairs of outputs with 16x2
    SIMD minima and maxima: two outputs per instruction. The border gathers each output's window
    through the mode's index map and runs the network on single values.
    """
    dtype = np.dtype(dtype)
    cells = [tuple(int(v) for v in c) for c in cells]
    n = len(cells)
    kv = 1 + max(r for r, _ in cells)  # the window's rows and columns
    kw = 1 + max(c for _, c in cells)
    hi0, hi1 = kv - 1 - lo0, kw - 1 - lo1
    pairs = cuda_sweeps.Pairs(dtype, lo1, hi1, NET_UNITS)  # two output pairs a thread
    ix = "sk_i64" if idx64 else "sk_i32"
    tc = codegen_cpp._ctype_of(dtype)
    (top, bottom), rmap = cuda_sweeps.row_reads(lo0, hi0, rowmap)
    rows_used = sorted({r for r, _ in cells})

    params, names = cuda_sweeps.words_params(tc, ix)
    L = [f"// stencilkit rank {rank} of a {kv} x {kw} window of {n} ({dtype}): a sorting "
         "network on 16x2 pairs",
         *cuda_sweeps.words_prelude(ix),
         *_network("sk_rank2x", "sk_u32", "sk_vmin2", "sk_vmax2", n, rank),
         *_network("sk_rank1", "sk_i32", "sk_mn", "sk_mx", n, rank),
         "// the interior: strips of whole rows, the thread's words and halo inside the rows",
         *cuda_sweeps.interior_head("sk_net2x", params, ix, pairs.units, top, bottom,
                                    pairs.per, "sk_u32", tc, pairs.line),
         f"    for ({ix} i = lo; i < hi; ++i) {{"]
    for r in rows_used:
        L += [f"      const sk_u32* __restrict__ row{r} = plane + "
              f"{rmap(f'i + ({r - lo0})')} * nu;",
              *pairs.load(f"e{r}_", f"row{r}", "      ")]
    for o in pairs.outputs():
        args = ", ".join(pairs.pair(f"e{r}_", o - lo1 + c) for r, c in cells)
        L.append(f"      const sk_u32 p{o} = sk_rank2x({args});")
    L += pairs.store(lambda o: f"p{o}", "      ")
    L += ["      op += n1;", "    }", "  }", "}", "",
          "// everything else: each output's window through the mode's index map (-1: cval)",
          "#define SK_RD(rr, cc) ((rr) < 0 || (cc) < 0 ? cval : (sk_i32)plane[(rr) * n1 + (cc)])",
          cuda_sweeps.border_open("sk_net2x", params, ix),
          *cuda_sweeps.border_strips(ix, top, bottom, f"{pairs.per} * k0",
                                     f"{pairs.per} * k1"),
          f"    const {tc}* __restrict__ plane = src + b * n0 * n1;",
          *(f"    const {ix} m{c} = sk_map(j + ({c - lo1}), n1, mode);"
            for c in sorted({c for _, c in cells})),
          f"    for ({ix} i = r0; i < r1; ++i) {{",
          *(f"      const {ix} q{r} = sk_map(i + ({r - lo0}), n0, mode);" for r in rows_used),
          "      dst[b * n0 * n1 + i * n1 + j] = "
          f"({tc})sk_rank1(" + ", ".join(f"SK_RD(q{r}, m{c})" for r, c in cells) + ");",
          "    }",
          "  }",
          "}",
          "#undef SK_RD", ""]
    return pairs.module(L, "sk_net2x", lo0, hi0, idx64, rowmap, params, names)


_SIMD = [  # the 3 x 3 median on pairs: sorted columns and the median of three
    codegen_cpp.VMINMAX2,
    "SK_FN void sk_sort2x(sk_u32 x, sk_u32 y, sk_u32 z, sk_u32& lo, sk_u32& md, sk_u32& hi) {",
    "  const sk_u32 a = sk_vmin2(x, y), b = sk_vmax2(x, y), t = sk_vmax2(a, z);",
    "  lo = sk_vmin2(a, z); md = sk_vmin2(b, t); hi = sk_vmax2(b, t);",
    "}",
    "SK_FN sk_u32 sk_med3x(sk_u32 a, sk_u32 b, sk_u32 c) { return sk_vmax2(sk_vmin2(a, b), "
    "sk_vmin2(sk_vmax2(a, b), c)); }",
    "SK_FN sk_u32 sk_out2x(sk_u32 l0, sk_u32 l1, sk_u32 l2, sk_u32 m0, sk_u32 m1, sk_u32 m2, "
    "sk_u32 h0, sk_u32 h1, sk_u32 h2) {",
    "  return sk_med3x(sk_vmax2(sk_vmax2(l0, l1), l2), sk_med3x(m0, m1, m2), "
    "sk_vmin2(sk_vmin2(h0, h1), h2));",
    "}", ""]

_MODULES: dict = {}


def module_for(dtype, lo0, lo1, words, idx64, rowmap) -> cuda_sweeps.UnitsModule:
    """The module of this window start and dtype (emitted once)."""
    key = (np.dtype(dtype).str, lo0, lo1, words, idx64, rowmap, cuda_sweeps.FUSED, UNITS,
           codegen_cpp.LINE_BYTES)
    mod = _MODULES.get(key)
    if mod is None:
        mod = _MODULES[key] = generate(dtype, lo0, lo1, words=words, idx64=idx64,
                                       rowmap=rowmap)
    return mod


def scalars(mod, shape, rows, k0, k1, mode, cval):
    """The launch's scalar arguments after the two arrays, typed as the kernel takes them.

    ``cval``: already in the data's dtype (:func:`stencilkit._passes.cval_in`), used by
    ``constant`` only.
    """
    ix = np.int64 if mod.idx64 else np.int32
    vt = np.int32 if mod.dtype.itemsize < 4 else mod.dtype.type
    fill = vt(cval if mod.dtype.kind == "f" else int(cval)) if mode == "constant" else vt(0)
    return (*(ix(n) for n in (*shape, rows, k0, k1)), np.int32(modes.mode_code(mode)), fill)


def run(x, lo0, lo1, mode, cval, out=None):
    """The 3 x 3 median of the last two axes of the device array ``x``.

    The window starts at ``(-lo0, -lo1)``; the result goes into ``out`` (a device array of
    ``x``'s shape and dtype) or a new array.
    """
    from .cuda_box import words_ok

    n1 = tuple(x.shape)[-1]
    rowmap = cuda_sweeps.rows_mapped(mode)
    return cuda_sweeps.run(
        x, np.dtype(x.dtype),
        lambda dtype, at, idx64: module_for(dtype, lo0, lo1, words_ok(dtype, n1, *at), idx64,
                                            rowmap),
        lambda mod, shape, rows, k0, k1: scalars(mod, shape, rows, k0, k1, mode, cval), out,
        (mode, _dtypes.exact_key(cval)))


def run_network(x, p, mode, cval, out=None):
    """The ``Rank`` pass ``p`` of the device array ``x`` by the network kernel.

    ``p``: a window over the last two axes (:func:`network_fits`). Into ``out`` or a new
    array; None (nothing launched) where the rows are not whole aligned words: the generated
    stencil runs it then.
    """
    fp = np.array(p.footprint, bool)
    cells = tuple(zip(*(v.tolist() for v in np.nonzero(fp.reshape(fp.shape[-2:])))))
    lo0, lo1 = p.lo[-2], p.lo[-1]
    return cuda_sweeps.run_words(
        x, ("net", cells, p.rank, lo0, lo1),
        lambda dt, idx64, rowmap: generate_network(dt, cells, p.rank, lo0, lo1, idx64=idx64,
                                                   rowmap=rowmap),
        mode, cval, out, _MODULES)
