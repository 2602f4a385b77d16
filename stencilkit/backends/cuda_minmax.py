"""Box minima and maxima of 8/16-bit images in one sweep, two outputs an instruction (CUDA C++).

``minimum_filter`` / ``maximum_filter`` with ``size=`` on 8/16-bit integer and bool images over
the last two axes: the filters' ``Extreme`` passes (boxes of more than ``DIRECT_TAPS``
elements), which otherwise run as one generated pass per axis (a full read and write of the
image each), and the smaller boxes, which otherwise run as a generated stencil taking an
extreme per window element. Each thread owns a 32-bit word of 8-bit outputs (4) or two words
of 16-bit ones in a strip of rows. Values sit two to a register in 16-bit halves: an 8-bit
word's lanes as two pairs (columns 4u, 4u+2 and 4u+1, 4u+3), a 16-bit word as it is (signed
lanes biased, so that the order is the unsigned one), and every extreme serves two outputs
(``__vminu2`` / ``__vmaxu2``: one VIMNMX.U16x2 on sm_90). For the row entering the window the
thread reduces each output pair's ``kh`` columns once, into a ring of ``kv`` registers per pair
(the row loop unrolled ``kv`` rows a step, so that the slots take turns without moves), and
each output is the extreme of the ring: ``(kh - 1 + kv - 1) / 2`` operations an output, one
read and one write of the image (the two passes: about ``kh + kv - 2`` operations an output and
two of each). The CPU computes the same extremes (van Herk / Gil-Werman lines), so results are
equal: an extreme is one of the values. Timed on an H100: :data:`UNITS`.

Two parts, as the other sweeps (:mod:`.cuda_sweeps`, in one launch or two): the interior (rows
through the mode's index map for every mode but ``constant``) and the border (the columns at
either end, and the top and bottom rows for ``constant``: each output's window through the
index map). Plain C++ for NVRTC and for g++ (``-DSK_HOST``: the tests run every launch on the
CPU, thread by thread).
"""

from __future__ import annotations

import numpy as np

from .. import codegen_cpp
from . import cuda_sweeps

UNITS = None
"""32-bit words of 8-bit outputs per thread (4 outputs: two pairs, each with a ring of ``kv``;
16-bit data: twice as many words, as many pairs), or None (the default) for
:func:`units_for`'s choice by the window's width.

Timed on an H100 (2026-11-27, ``tools/gpu_profile.py``, uint8 8192^2): the 3 x 3 maximum
0.126 ms at one word a thread, 0.155 at two; the 15 x 15 one 0.243 at one, 0.205 at two (its
halo, 14 columns, read once for two words instead of one; 105 registers against 68). By the
SASS (ptxas 12, sm_90) two words take 4.5 instructions an output against 6.5 for the 3 x 3."""

WIDE = 9
"""The narrowest window that takes two words a thread (:func:`units_for`; timed at 3, 9 and
15 columns)."""

WIDE_MOST = 400
"""The most elements of a window that takes two words a thread: by ptxas 12 (sm_90) two
words take up to 122 registers to 400 elements (2 blocks of 256 threads an SM, as the timed
15 x 15's 105), but 150 for 15 x 32 and 16 x 32 (1 block)."""


def units_for(kh: int, kv: int) -> int:
    """Words a thread for a window ``kv`` rows tall and ``kh`` columns wide.

    :data:`UNITS`, or by default two from :data:`WIDE` columns up to :data:`WIDE_MOST`
    elements (the halo's reads shared by more outputs), else one.
    """
    if UNITS is not None:
        return UNITS
    return 2 if kh >= WIDE and kv * kh <= WIDE_MOST else 1


MAX_ROWS = 16
"""The tallest window (the ring's registers per output pair)."""

MAX_COLS = 32
"""The widest window."""


def box_of(passes, ndim):
    """``(kv, lov, kh, loh, is_max)`` of ``Extreme`` passes along the last two axes, or None."""
    from .._passes import Extreme

    if ndim < 2 or not passes or not all(isinstance(p, Extreme) for p in passes):
        return None
    along = {p.axis: p for p in passes}
    if len(along) != len(passes) or not set(along) <= {ndim - 2, ndim - 1}:
        return None
    if len({p.is_max for p in passes}) != 1:
        return None
    pv, ph = along.get(ndim - 2), along.get(ndim - 1)
    lov, hiv = (pv.lo, pv.hi) if pv else (0, 0)
    loh, hih = (ph.lo, ph.hi) if ph else (0, 0)
    return lov + hiv + 1, lov, loh + hih + 1, loh, passes[0].is_max


def fits(box, dtype, out_dtype) -> bool:
    """Whether the kernels take the box ``(kv, lov, kh, loh, is_max)`` of ``dtype`` data.

    8/16-bit data into the same ``out_dtype``, at most :data:`MAX_ROWS` x :data:`MAX_COLS`; rows
    of whole words are checked by :func:`run`.
    """
    dtype = np.dtype(dtype)
    return (box is not None and dtype.itemsize <= 2 and dtype.kind in "biu"
            and np.dtype(out_dtype) == dtype and box[0] <= MAX_ROWS and box[2] <= MAX_COLS)


def generate(dtype, kv, lov, kh, loh, is_max, *, idx64: bool, rowmap: bool):
    """Emit the module of one box's minimum or (``is_max``) maximum on 8/16-bit ``dtype`` data.

    The ``kv x kh`` box starts ``lov`` rows and ``loh`` columns before each output. 8-bit
    words hold two pairs (columns two apart), 16-bit words one (neighbouring columns).
    """
    dtype = np.dtype(dtype)
    hiv, hih = kv - 1 - lov, kh - 1 - loh
    pairs = cuda_sweeps.Pairs(dtype, loh, hih, units_for(kh, kv))  # two pairs a word
    ix = "sk_i64" if idx64 else "sk_i32"
    tc = codegen_cpp._ctype_of(dtype)
    (top, bottom), rmap = cuda_sweeps.row_reads(lov, hiv, rowmap)
    ext2, ext1 = ("sk_vmax2", "sk_mx") if is_max else ("sk_vmin2", "sk_mn")
    firsts = pairs.outputs()  # the output pairs' first outputs

    def fold(terms):
        """The extreme of the terms, as a balanced tree (short dependency chains)."""
        while len(terms) > 1:
            terms = [f"{ext2}({a}, {b})" for a, b in zip(terms[::2], terms[1::2])] + (
                [terms[-1]] if len(terms) % 2 else [])
        return terms[0]

    def row_into(slot, row, pad):
        """Lines reading the row ``row`` and setting each pair's ring slot ``slot``."""
        lines = [f"{pad}{{ const sk_u32* __restrict__ rp = plane + {rmap(row)} * nu;",
                 *pairs.load("e", "rp", pad + "  ")]
        for o in firsts:
            lines.append(f"{pad}  g{o}_{slot} = "
                         + fold([pairs.pair("e", o - loh + c) for c in range(kh)]) + ";")
        return lines + [f"{pad}}}"]

    def store(pad):
        lines = [f"{pad}const sk_u32 v{o} = " + fold([f"g{o}_{s}" for s in range(kv)]) + ";"
                 for o in firsts]
        lines += pairs.store(lambda o: f"v{o}", pad)
        return lines + [f"{pad}op += n1;"]

    params, names = cuda_sweeps.words_params(tc, ix)
    L = [f"// stencilkit {'maximum' if is_max else 'minimum'} of a {kv} x {kh} box ({dtype}), "
         "two outputs an instruction",
         *cuda_sweeps.words_prelude(ix),
         "// the interior: strips of whole rows, the thread's words and halo inside the rows",
         *cuda_sweeps.interior_head("sk_minmax", params, ix, pairs.units, top, bottom,
                                    pairs.per, "sk_u32", tc, pairs.line),
         "    " + " ".join(f"sk_u32 g{o}_{s};" for o in firsts for s in range(kv)),
         "    // the ring: slot s holds the row i - lov + s (slots 0 .. kv-2 before a step)"]
    for s in range(kv - 1):
        L += row_into(s, f"lo + ({s - lov})", "    ")
    L += [f"    {ix} i = lo;",
          f"    for (; i + {kv} <= hi; i += {kv}) {{  // {kv} rows a step: the slots take turns"]
    for t in range(kv):
        L += ["      {", *row_into((t + kv - 1) % kv, f"i + {t + hiv}", "        "),
              *store("        "), "      }"]
    L += ["    }",
          "    for (; i < hi; ++i) {  // the rows left, one a step: the slots moved",
          *row_into(kv - 1, f"i + {hiv}", "      "),
          "      {", *store("        "), "      }",
          *(f"      g{o}_{s} = g{o}_{s + 1};" for o in firsts for s in range(kv - 1)),
          "    }", "  }", "}", ""]
    # -- the border kernel
    L += ["// everything else: each output's window through the mode's index map (-1: cval)",
          "#define SK_RD(rr, cc) ((rr) < 0 || (cc) < 0 ? cval : (sk_i32)plane[(rr) * n1 + (cc)])",
          cuda_sweeps.border_open("sk_minmax", params, ix),
          *cuda_sweeps.border_strips(ix, top, bottom, f"{pairs.per} * k0",
                                     f"{pairs.per} * k1"),
          f"    const {tc}* __restrict__ plane = src + b * n0 * n1;",
          f"    {ix} m[{kh}];",
          f"    for (int c = 0; c < {kh}; ++c) m[c] = sk_map(j + c - {loh}, n1, mode);",
          f"    for ({ix} i = r0; i < r1; ++i) {{",
          f"      sk_i32 v = SK_RD(sk_map(i - {lov}, n0, mode), m[0]);",
          f"      for (int r = 0; r < {kv}; ++r) {{",
          f"        const {ix} q = sk_map(i + r - {lov}, n0, mode);",
          f"        for (int c = 0; c < {kh}; ++c) v = {ext1}(v, SK_RD(q, m[c]));",
          "      }",
          f"      dst[b * n0 * n1 + i * n1 + j] = ({tc})v;",
          "    }",
          "  }",
          "}",
          "#undef SK_RD", ""]
    return pairs.module(L, "sk_minmax", lov, hiv, idx64, rowmap, params, names)


_MODULES: dict = {}


def run(x, box, mode, cval, out=None):
    """The box extreme ``box`` (:func:`box_of`) of the device array ``x``.

    Into ``out`` or a new array; None (nothing launched) where the rows are not whole aligned
    words.
    """
    return cuda_sweeps.run_words(
        x, (box, units_for(box[2], box[0])),
        lambda dt, idx64, rowmap: generate(dt, *box, idx64=idx64, rowmap=rowmap),
        mode, cval, out, _MODULES)
