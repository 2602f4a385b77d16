"""Separable weights over the last two axes in one sweep, as generated CUDA C++ (``Sep2``).

``gaussian_filter`` (and every separable correlation the filters fuse into a ``Sep2`` pass) of
float32 and float64 images, with no intermediate array: the generated stencils ran it as two
passes, each a full read and write of the image. Each thread owns one output column of a strip
of rows and walks down it: for the row entering the window it computes the horizontal sum
(``wh``, its neighbours' columns: cached loads shared with the neighbouring threads), keeps the
last ``len(wv)`` of them in registers (a ring), and the output is their vertical sum (``wv``).
The weights are compile-time constants, in the data's type; multiply-adds are not fused
(``--fmad=false``), so every product and sum is rounded once, in order: horizontal terms left to
right, then vertical ones top to bottom. The CPU's sweep sums the other way round (vertical
first), so results agree to round-off; the tests check this order bit for bit against NumPy.

Two kernels per module: ``sk_sep_interior`` (no boundary logic) and ``sk_sep_border`` (the top
and bottom rows and the columns at either end: the same walk down short column strips, its reads
through the mode's index map; ``cval`` outside for ``constant``). Plain C++ for NVRTC and for g++
(``-DSK_HOST``: the tests run every launch on the CPU, thread by thread).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def generate(dtype, wv, lov, wh, loh, *, idx64: bool) -> SepModule:
    """Emit the module of one pair of weight vectors on ``dtype`` (float32 or float64) data.

    ``lov``/``loh``: the taps before the centre along the rows and the columns.
    """
    dtype = np.dtype(dtype)
    kv, kh = len(wv), len(wh)
    hiv, hih = kv - 1 - lov, kh - 1 - loh
    ix = "sk_i64" if idx64 else "sk_i32"
    t = codegen_cpp._ctype_of(dtype)
    wvs = [_literal(w, dtype) for w in wv]
    whs = [_literal(w, dtype) for w in wh]
    params = (f"const {t}* __restrict__ src, {t}* __restrict__ dst, {ix} B, {ix} n0, {ix} n1, "
              f"{ix} rows, {ix} c0, {ix} c1, int mode, {t} cval")
    names = "src, dst, B, n0, n1, rows, c0, c1, mode, cval"
    ring = [f"h{k}" for k in range(kv)]

    def horizontal(dst, term):
        """``dst = wh[0] * term(0) + ... `` left to right, one rounding per operation."""
        out = [f"{dst} = {whs[0]} * {term(0)};"]
        out += [f"{dst} = {dst} + {whs[c]} * {term(c)};" for c in range(1, kh)]
        return " ".join(out)

    def walk(pad, hrow, store):
        """The strip walk from row r0 to r1: ``hrow(k, row)`` fills ring register k.

        It starts ``kv - 1`` rows early, filling the ring without output, so that the
        horizontal sum is emitted once (an unrolled prologue of ``kv - 1`` of them made NVRTC
        take 36 s over 64 x 64 taps).
        """
        return [pad + f"{t} " + ", ".join(f"{h} = 0" for h in ring) + ";",
                pad + f"for ({ix} i = r0 - {kv - 1}; i < r1; ++i) {{",
                pad + "  " + hrow(kv - 1, f"i + {hiv}"),
                pad + "  if (i >= r0) {",
                pad + f"    {t} s = {wvs[0]} * h0;",
                *(pad + f"    s = s + {wvs[k]} * h{k};" for k in range(1, kv)),
                pad + "    " + store,
                pad + "  }",
                *(pad + f"  h{k} = h{k + 1};" for k in range(kv - 1)),
                pad + "}"]

    L = [f"// stencilkit separable {kv} x {kh} ({dtype}), weights in the data's type",
         codegen_cpp.PRELUDE, f"typedef {ix} sk_idx;", codegen_cpp._map_source(ix)]
    # -- interior
    L += ["// the interior: one column per thread, the ring of horizontal sums down its strip",
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

    L += walk("    ", direct, "op[i * n1] = s;")
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

    L += walk("    ", mapped, "op[i * n1] = s;")
    L += ["  }", "}", "#undef SK_RD", ""]
    L.append(codegen_cpp.host_launchers(SepModule.kernels, params, names))
    return SepModule("\n".join(L) + "\n", dtype, lov, hiv, loh, hih, idx64)


def fits(p, dtype) -> bool:
    """Whether the ``Sep2`` pass ``p`` runs here on data of ``dtype``.

    Float32 or float64 data into the same type, finite weights, at most :data:`MAX_TAPS` taps
    per axis.
    """
    dtype = np.dtype(dtype)
    return (dtype in (np.float32, np.float64) and np.dtype(p.dtype) == dtype
            and dtype.isnative and max(len(p.wv), len(p.wh)) <= MAX_TAPS
            and bool(np.isfinite(np.asarray((*p.wv, *p.wh), dtype)).all()))


_MODULES: dict = {}


def module_for(p, dtype, idx64) -> SepModule:
    """The module of the pass ``p`` (a ``Sep2``) on ``dtype`` data (emitted once)."""
    key = (tuple(p.wv), p.lov, tuple(p.wh), p.loh, np.dtype(dtype).str, idx64)
    mod = _MODULES.get(key)
    if mod is None:
        mod = _MODULES[key] = generate(dtype, p.wv, p.lov, p.wh, p.loh, idx64=idx64)
    return mod


def scalars(mod, shape, rows, c0, c1, mode, cval):
    """The launch's scalar arguments after the two arrays, typed as the kernel takes them."""
    ix = np.int64 if mod.idx64 else np.int32
    return (*(ix(v) for v in (*shape, rows, c0, c1)), np.int32(modes.mode_code(mode)),
            mod.dtype.type(cval))


def run(x, p, mode, cval):
    """The ``Sep2`` pass ``p`` over the last two axes of the device array ``x``.

    Returns a new device array of ``p.dtype`` (of ``x``'s kind: CuPy or numba).
    """
    return cuda_sweeps.run(
        x, p.dtype, lambda dtype, at, idx64: module_for(p, dtype, idx64),
        lambda mod, shape, rows, c0, c1: scalars(mod, shape, rows, c0, c1, mode, cval))
